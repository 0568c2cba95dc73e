-- The write path's rewrites (migrations/…29000100_write_path.sql) record exactly what the
-- previous versions recorded: the audit row of an insert and of an update (none for an update
-- that changes nothing), a captured change's record and column list, busy time as the rules
-- read it, the outbox recipient found by address; and the helpers a booking and a transfer call
-- stay PL/pgSQL (a LANGUAGE sql helper is planned again on every call in PostgreSQL 15).
begin;
set local search_path = extensions, public;
select plan(10);

insert into auth.users (id, aud, role, email, phone, raw_user_meta_data) values
  ('00000000-0000-4000-8000-00000000a001', 'authenticated', 'authenticated', 'Writer@Example.test', null, '{"full_name": "Writer"}'),
  ('00000000-0000-4000-8000-00000000a002', 'authenticated', 'authenticated', 'doctor.write@example.test', '2348011112222', '{"full_name": "Doctor"}');
insert into public.user_roles (user_id, role) values ('00000000-0000-4000-8000-00000000a002', 'doctor');
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
values ('00000000-0000-4000-8000-00000000c002', '00000000-0000-4000-8000-00000000a002', 'doctor', 'Dr Write', 1000, 'NGN', 'UTC');

-- Audit -----------------------------------------------------------------------------------------
select set_config('request.jwt.claims',
  '{"sub": "00000000-0000-4000-8000-00000000a001", "role": "authenticated", "user_role": "patient"}', true);
insert into public.notifications (id, user_id, kind, title, data)
values ('00000000-0000-4000-8000-00000000b001', '00000000-0000-4000-8000-00000000a001', 'test:write', 'T', '{"k": null}');
select is(
  (select array[actor_id::text, actor_role, action, row_id, changed_columns::text]
     from private.audit_log where table_name = 'notifications' and row_id = '00000000-0000-4000-8000-00000000b001'),
  array['00000000-0000-4000-8000-00000000a001', 'patient', 'INSERT', '00000000-0000-4000-8000-00000000b001',
        '{created_at,data,id,kind,title,user_id}'],
  'an insert is audited with who, the claimed role, the row id and its non-null columns in order');
update public.notifications set title = 'T' where id = '00000000-0000-4000-8000-00000000b001';
select is((select count(*)::int from private.audit_log where row_id = '00000000-0000-4000-8000-00000000b001'), 1,
  'an update that changes nothing records nothing');
update public.notifications set read_at = now(), body = 'b' where id = '00000000-0000-4000-8000-00000000b001';
select is((select changed_columns from private.audit_log where row_id = '00000000-0000-4000-8000-00000000b001' and action = 'UPDATE'),
  '{body,read_at}'::text[], 'an update records the columns it changed, in order');
insert into public.user_roles (user_id, role) values ('00000000-0000-4000-8000-00000000a001', 'nurse');
select is((select row_id || ' ' || changed_columns::text from private.audit_log where table_name = 'user_roles' and action = 'INSERT'
             and row_id = '00000000-0000-4000-8000-00000000a001/nurse'),
  '00000000-0000-4000-8000-00000000a001/nurse {granted_at,role,user_id}',
  'a row without an id is audited under its composite key');

-- Realtime capture -------------------------------------------------------------------------------
select is(
  (select columns from private.realtime_changes where table_name = 'notifications' and op = 'INSERT'
      and pk = '{"id": "00000000-0000-4000-8000-00000000b001"}'),
  '[{"name": "id", "type": "uuid"}, {"name": "user_id", "type": "uuid"}, {"name": "kind", "type": "text"},
    {"name": "title", "type": "text"}, {"name": "body", "type": "text"}, {"name": "data", "type": "jsonb"},
    {"name": "read_at", "type": "timestamptz"}, {"name": "created_at", "type": "timestamptz"}]'::jsonb,
  'a captured change lists every column in table order with its type name');
select is(
  (select record ->> 'kind' from private.realtime_changes where table_name = 'notifications' and op = 'INSERT'
      and pk = '{"id": "00000000-0000-4000-8000-00000000b001"}'),
  'test:write', 'a captured insert carries the row');

-- Busy time -------------------------------------------------------------------------------------
insert into public.appointments (patient_id, practitioner_id, period, status) values
  ('00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000c002', '[2030-01-02 10:00+00, 2030-01-02 10:30+00)', 'booked'),
  ('00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000c002', '[2030-01-02 09:00+00, 2030-01-02 09:30+00)', 'booked'),
  ('00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000c002', '[2030-01-02 11:00+00, 2030-01-02 11:30+00)', 'cancelled');
select is(private.busy_json('00000000-0000-4000-8000-00000000c002', false, '[2030-01-02 00:00+00, 2030-01-03 00:00+00)', null),
  '[{"start": "2030-01-02T09:00:00+00:00", "end": "2030-01-02T09:30:00+00:00"},
    {"start": "2030-01-02T10:00:00+00:00", "end": "2030-01-02T10:30:00+00:00"}]'::jsonb,
  'busy time: the appointments holding time, {start, end} by start');
select is(private.busy_json('00000000-0000-4000-8000-00000000a001', true, '[2030-01-02 10:15+00, 2030-01-03 00:00+00)', null),
  '[{"start": "2030-01-02T10:00:00+00:00", "end": "2030-01-02T10:30:00+00:00"}]'::jsonb,
  'a patient''s busy time within the span');

-- Outbox recipient ------------------------------------------------------------------------------
insert into private.outbox (channel, recipient, template) values
  ('email', 'WRITER@example.TEST', 'test'), ('sms', '+2348011112222', 'test'), ('sms', '+2340000000000', 'test');
select is((select array_agg(recipient_id order by id) from private.outbox where template = 'test'),
  array['00000000-0000-4000-8000-00000000a001', '00000000-0000-4000-8000-00000000a002', null]::uuid[],
  'outbox rows find their recipient by email (any case) or phone; an unknown address finds none');

-- The helpers stay PL/pgSQL ---------------------------------------------------------------------
select is_empty($$
  select p.oid::regprocedure::text from pg_catalog.pg_proc p
   where p.oid in ('access.claimed_roles()'::regprocedure, 'access.effective_roles()'::regprocedure,
                   'public.authorize(public.app_permission)'::regprocedure, 'access.has_role(public.app_role)'::regprocedure,
                   'access.my_practitioner_ids()'::regprocedure, 'access.is_practitioner(uuid)'::regprocedure,
                   'private.schedule_json(public.practitioners)'::regprocedure,
                   'private.busy_json(uuid, boolean, tstzrange, uuid)'::regprocedure,
                   'private.conflicts(public.practitioners, uuid, tstzrange, uuid, text)'::regprocedure,
                   'private.has_relationship(uuid, uuid)'::regprocedure)
     and p.prolang <> (select l.oid from pg_catalog.pg_language l where l.lanname = 'plpgsql')$$,
  'the helpers a booking calls are PL/pgSQL (their plans are kept)');

select * from finish();
rollback;
