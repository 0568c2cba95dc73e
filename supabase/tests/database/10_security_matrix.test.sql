-- Who sees and changes what: every persona × every public table × select / insert / update /
-- delete, run as PostgREST runs a request (set local role + request.jwt.claims).
-- A cell is the number of rows selected or affected; a denial (no privilege, or a row-level
-- security check) counts as 0. A new table in public without a row here fails the suite.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
\ir helpers/files_world.psql

create table tests.expectations (
  tbl text, op text, probe text,
  anon text, patient_a text, patient_b text, doctor_with text, doctor_without text,
  dispatcher text, responder text, admin text,
  primary key (tbl, op)
);

-- select: count(*) · insert: one plausible row on the persona's own behalf · update: every row
-- the persona may change (set c = c) · delete: every row the persona may delete.
insert into tests.expectations values
--  table                     op        probe                                                                                                        anon pa pb dw dwo disp resp admin
('profiles',                'select', null,                                                                                                          '0','1','1','2','1','4','2','7'),
('profiles',                'insert', $$insert into public.profiles (id) values (auth.uid())$$,                                                        '0','0','0','0','0','0','0','0'),
('profiles',                'update', 'full_name',                                                                                                   '0','1','1','1','1','1','1','1'),
('profiles',                'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('user_roles',              'select', null,                                                                                                          '0','1','1','2','2','2','2','12'),
('user_roles',              'insert', $$insert into public.user_roles (user_id, role) values (auth.uid(), 'admin')$$,                                 '0','0','0','0','0','0','0','0'),
('user_roles',              'update', 'role',                                                                                                        '0','0','0','0','0','0','0','0'),
('user_roles',              'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('role_permissions',        'select', null,                                                                                                          '0','16','16','16','16','16','16','16'),
('role_permissions',        'insert', $$insert into public.role_permissions values ('patient', 'roles.manage')$$,                                     '0','0','0','0','0','0','0','0'),
('role_permissions',        'update', 'permission',                                                                                                  '0','0','0','0','0','0','0','0'),
('role_permissions',        'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('practitioners',           'select', null,                                                                                                          '2','2','2','2','2','2','2','2'),
('practitioners',           'insert', $$insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone) values (auth.uid(), 'doctor', 'X', 1000, 'NGN', 'Africa/Lagos')$$, '0','0','0','0','0','0','0','0'),
('practitioners',           'update', 'bio',                                                                                                         '0','0','0','1','1','0','0','0'),
('practitioners',           'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('availability_rules',      'select', null,                                                                                                          '2','2','2','2','2','2','2','2'),
('availability_rules',      'insert', $$insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values ('d1000000-0000-4000-8000-000000000001', 3, '13:00', '14:00')$$, '0','0','0','1','0','0','0','0'),
('availability_rules',      'update', 'start_time',                                                                                                  '0','0','0','1','1','0','0','0'),
('availability_rules',      'delete', null,                                                                                                          '0','0','0','1','1','0','0','0'),
('availability_exceptions', 'select', null,                                                                                                          '1','1','1','1','1','1','1','1'),
('availability_exceptions', 'insert', $$insert into public.availability_exceptions (practitioner_id, on_date, kind) values ('d1000000-0000-4000-8000-000000000001', '2027-01-05', 'time_off')$$, '0','0','0','1','0','0','0','0'),
('availability_exceptions', 'update', 'on_date',                                                                                                     '0','0','0','1','0','0','0','0'),
('availability_exceptions', 'delete', null,                                                                                                          '0','0','0','1','0','0','0','0'),
('appointments',            'select', null,                                                                                                          '0','1','1','1','1','0','0','2'),
('appointments',            'insert', $$insert into public.appointments (patient_id, practitioner_id, period, status) values (auth.uid(), 'd1000000-0000-4000-8000-000000000001', tstzrange('2027-01-04 10:00+01', '2027-01-04 10:30+01'), 'booked')$$, '0','0','0','0','0','0','0','0'),
('appointments',            'update', 'reason',                                                                                                      '0','0','0','0','0','0','0','0'),
('appointments',            'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('consultations',           'select', null,                                                                                                          '0','1','0','1','0','0','0','1'),
('consultations',           'insert', $$insert into public.consultations (appointment_id) values ('a2000000-0000-4000-8000-000000000002')$$,          '0','0','0','0','0','0','0','0'),
('consultations',           'update', 'summary',                                                                                                     '0','0','0','0','0','0','0','0'),
('consultations',           'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('conversations',           'select', null,                                                                                                          '0','1','0','1','0','0','0','1'),
('conversations',           'insert', $$insert into public.conversations (kind) values ('direct')$$,                                                  '0','0','0','0','0','0','0','0'),
('conversations',           'update', 'kind',                                                                                                        '0','0','0','0','0','0','0','0'),
('conversations',           'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('conversation_members',    'select', null,                                                                                                          '0','2','0','2','0','0','0','2'),
('conversation_members',    'insert', $$insert into public.conversation_members (conversation_id, user_id) values ('cc000000-0000-4000-8000-000000000001', auth.uid())$$, '0','0','0','0','0','0','0','0'),
('conversation_members',    'update', 'joined_at',                                                                                                   '0','0','0','0','0','0','0','0'),
('conversation_members',    'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('messages',                'select', null,                                                                                                          '0','2','0','2','0','0','0','2'),
('messages',                'insert', $$insert into public.messages (conversation_id, body) values ('cc000000-0000-4000-8000-000000000001', 'hello')$$, '0','1','0','1','0','0','0','0'),
('messages',                'update', 'body',                                                                                                        '0','0','0','0','0','0','0','0'),
('messages',                'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('message_reads',           'select', null,                                                                                                          '0','1','0','1','0','0','0','1'),
('message_reads',           'insert', $$insert into public.message_reads (message_id) values ('e2000000-0000-4000-8000-000000000002')$$,              '0','1','0','1','0','0','0','0'),
('message_reads',           'update', 'read_at',                                                                                                     '0','0','0','0','0','0','0','0'),
('message_reads',           'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('responders',              'select', null,                                                                                                          '0','0','0','0','0','1','1','1'),
('responders',              'insert', $$insert into public.responders (id, call_sign) values (auth.uid(), 'X-1')$$,                                   '0','0','0','0','0','0','0','0'),
('responders',              'update', 'on_duty',                                                                                                     '0','0','0','0','0','0','1','0'),
('responders',              'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('emergency_requests',      'select', null,                                                                                                          '0','1','1','0','0','2','1','2'),
('emergency_requests',      'insert', $$insert into public.emergency_requests (requester_id, lat, lon) values (auth.uid(), 6.5, 3.4)$$,               '0','0','0','0','0','0','0','0'),
('emergency_requests',      'update', 'description',                                                                                                 '0','0','0','0','0','0','0','0'),
('emergency_requests',      'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('ledger_accounts',         'select', null,                                                                                                          '0','1','1','0','0','0','0','3'),
('ledger_accounts',         'insert', $$insert into public.ledger_accounts (owner_id, kind, currency) values (auth.uid(), 'patient_wallet', 'USD')$$, '0','0','0','0','0','0','0','0'),
('ledger_accounts',         'update', 'flags',                                                                                                       '0','0','0','0','0','0','0','0'),
('ledger_accounts',         'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('ledger_transfers',        'select', null,                                                                                                          '0','1','1','0','0','0','0','2'),
('ledger_transfers',        'insert', $$insert into public.ledger_transfers (id, kind) values (gen_random_uuid(), 'gift')$$,                           '0','0','0','0','0','0','0','0'),
('ledger_transfers',        'update', 'description',                                                                                                 '0','0','0','0','0','0','0','0'),
('ledger_transfers',        'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('ledger_entries',          'select', null,                                                                                                          '0','1','1','0','0','0','0','4'),
('ledger_entries',          'insert', $$insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency) values ('7a000000-0000-4000-8000-000000000001', '1a000000-0000-4000-8000-00000000000a', 'credit', 100, 'NGN')$$, '0','0','0','0','0','0','0','0'),
('ledger_entries',          'update', 'amount',                                                                                                      '0','0','0','0','0','0','0','0'),
('ledger_entries',          'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('payments',                'select', null,                                                                                                          '0','1','1','0','0','0','0','2'),
('payments',                'insert', $$insert into public.payments (patient_id, amount_minor, currency, provider_reference) values (auth.uid(), 100, 'NGN', 'ref-x')$$, '0','0','0','0','0','0','0','0'),
('payments',                'update', 'status',                                                                                                      '0','0','0','0','0','0','0','0'),
('payments',                'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('notifications',           'select', null,                                                                                                          '0','1','1','0','0','0','0','2'),
('notifications',           'insert', $$insert into public.notifications (user_id, kind, title) values (auth.uid(), 'x', 'y')$$,                      '0','0','0','0','0','0','0','0'),
('notifications',           'update', 'read_at',                                                                                                     '0','1','1','0','0','0','0','0'),
('notifications',           'delete', null,                                                                                                          '0','0','0','0','0','0','0','0'),
('attachments',             'select', null,                                                                                                          '0','4','1','3','0','0','0','2'),
('attachments',             'insert', $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, patient_id) values ('medical-records', auth.uid() || '/ab000000-0000-4000-8000-000000000009/x.pdf', 'x.pdf', 'application/pdf', 10, auth.uid())$$, '0','1','1','1','1','1','1','1'),
('attachments',             'update', 'kind',                                                                                                        '0','0','0','0','0','0','0','0'),
('attachments',             'delete', null,                                                                                                          '0','3','1','1','0','0','0','0');

select plan((select count(*)::int * 8 + 1 from tests.expectations));

select set_eq(
  $$select tablename::text from pg_catalog.pg_tables where schemaname = 'public'$$,
  $$select distinct tbl from tests.expectations$$,
  'every table in public has a row in the security matrix');

select is(
  tests.attempt(p.name, case e.op
    when 'select' then format('select count(*) from public.%I', e.tbl)
    when 'insert' then e.probe
    when 'update' then format('update public.%I set %I = %2$I', e.tbl, e.probe)
    when 'delete' then format('delete from public.%I', e.tbl)
  end),
  (array[e.anon, e.patient_a, e.patient_b, e.doctor_with, e.doctor_without, e.dispatcher, e.responder, e.admin])[p.ord],
  format('%s: %s %s', p.name, e.op, e.tbl))
from tests.expectations e cross join tests.personas p
order by e.tbl, e.op, p.ord;

select * from finish();
rollback;
