-- Booking through the RPCs as PostgREST calls them: availability, every conflict reason as
-- PT409 with its code, idempotency, rescheduling, cancelling, statuses and who may set them,
-- proposals and their acceptance, practitioners who stop accepting patients or lose their role,
-- and the one definition of every list and bound (the constraints call the extension).
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(92);

-- Dr Obi (Lagos) works Mondays 09:00–17:00; Dr Mensah (Accra) gets Monday mornings too.
update public.appointments set status = 'cancelled', cancellation_reason = 'fixture cleared' where status <> 'cancelled';
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values
  ('d2000000-0000-4000-8000-000000000002', 1, '09:00', '12:00');
insert into public.availability_exceptions (practitioner_id, on_date, kind)
select 'd1000000-0000-4000-8000-000000000001', monday2, 'time_off' from tests.days;

-- Availability ---------------------------------------------------------------------------------------
select tests.act_as('anon');
select is((select count(*)::int from public.available_slots('d1000000-0000-4000-8000-000000000001',
           tests.lagos((select monday from tests.days), '00:00'), tests.lagos((select monday from tests.days), '23:59'))),
  16, 'anyone sees the sixteen half-hour slots of a 09:00–17:00 Monday');
select is((select min(slot_start) from public.available_slots('d1000000-0000-4000-8000-000000000001',
           tests.lagos((select monday from tests.days), '00:00'), tests.lagos((select monday from tests.days), '23:59'))),
  tests.lagos((select monday from tests.days), '09:00'), 'the first slot is 09:00 in the practitioner''s zone');
select is_empty($$select * from public.available_slots('d1000000-0000-4000-8000-000000000001',
           tests.lagos((select monday2 from tests.days), '00:00'), tests.lagos((select monday2 from tests.days), '23:59'))$$,
  'a day off has no slots');
select throws_ok($$select * from public.available_slots('00000000-0000-4000-8000-000000000000', now(), now() + interval '1 day')$$,
  'PT404', null, 'an unknown practitioner is 404');
select throws_ok($$select * from public.available_slots('d1000000-0000-4000-8000-000000000001', now(), now() - interval '1 day')$$,
  '22023', null, 'a window that ends before it starts is 22023');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'))$$,
  '42501', null, 'anon cannot book');
select tests.act_as_owner();

-- Booking ------------------------------------------------------------------------------------------
select tests.act_as('patient_b');
create temp table booked on commit drop as
select * from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'),
                                      'follow-up', 'key-1');
select tests.act_as_owner();
select results_eq($$select patient_id, status, upper(period) - lower(period), created_by from booked$$,
  $$values ('22222222-2222-4222-8222-222222222222'::uuid, 'booked'::text, interval '30 minutes', '22222222-2222-4222-8222-222222222222'::uuid)$$,
  'booked for the calling patient, one slot long');
select is((select count(*)::int from public.conversation_members m join public.conversations c on c.id = m.conversation_id
            join public.consultations k on k.id = c.consultation_id where k.appointment_id = (select id from booked)), 2,
  'a consultation and its conversation with patient and practitioner');
select is((select count(*)::int from private.realtime_events where event = 'appointment:updated' and payload ->> 'appointment_id' = (select id::text from booked)),
  2, 'realtime events for the patient and the practitioner');
select is((select count(*)::int from private.outbox where template = 'appointment_booked' and channel = 'email'), 2,
  'emails for the patient and the practitioner are queued');

select tests.act_as('patient_a');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'))$$,
  'PT409', 'the appointment cannot be booked: practitioner_busy', 'the same slot twice is 409 practitioner_busy');
select is((select count(*)::int from public.available_slots('d1000000-0000-4000-8000-000000000001',
           tests.lagos((select monday from tests.days), '10:00'), tests.lagos((select monday from tests.days), '10:30'))), 0,
  'the booked slot is no longer offered');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '18:00'))$$,
  'PT409', 'the appointment cannot be booked: outside_hours', 'outside working hours');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday2 from tests.days), '10:00'))$$,
  'PT409', 'the appointment cannot be booked: time_off', 'on a day off');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:10'))$$,
  'PT409', 'the appointment cannot be booked: invalid_period', 'a start that is not a slot boundary');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '09:00') + interval '70 days')$$,
  'PT409', 'the appointment cannot be booked: too_far', 'beyond the booking horizon');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', date_trunc('hour', now()) + interval '30 minutes')$$,
  'PT409', null, 'within the minimum notice (and likely outside hours)');
select tests.act_as_owner();

-- The reason codes travel in the error detail, as JSON.
create function tests.detail_of(sql text) returns jsonb language plpgsql as $$
declare d text;
begin
  execute sql;
  return null;
exception when others then
  get stacked diagnostics d = pg_exception_detail;
  return d::jsonb;
end
$$;
grant execute on function tests.detail_of(text) to authenticated;
select tests.act_as('patient_a');
select is(tests.detail_of($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '18:10'))$$),
  '{"code": "booking_conflict", "reasons": ["invalid_period"]}'::jsonb, 'the detail is {"code": "booking_conflict", "reasons": [...]}');
select tests.act_as_owner();

select tests.act_as('patient_b');
select is((public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'),
                                   'follow-up', 'key-1')).id, (select id from booked), 'a retry with the same key returns the same appointment');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '11:00'), null, 'key-1')$$,
  'PT409', null, 'the same key for a different booking is refused');
select is(tests.detail_of($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '11:00'), null, 'key-1')$$),
  '{"code": "idempotency_key_reused", "reasons": ["idempotency_key_reused"]}'::jsonb, 'a reused key says so in the detail');
select throws_ok($$select public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '10:00'))$$,
  'PT409', 'the appointment cannot be booked: patient_busy', 'a patient cannot be in two consultations at once');
select tests.act_as_owner();

-- Rescheduling, statuses, cancelling -------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$select public.reschedule_appointment((select id from booked), tests.lagos((select monday from tests.days), '11:00'))$$,
  'PT404', null, 'someone else''s appointment does not exist for you');
select tests.act_as_owner();
select tests.act_as('patient_b');
select is(lower((public.reschedule_appointment((select id from booked), tests.lagos((select monday from tests.days), '11:00'))).period),
  tests.lagos((select monday from tests.days), '11:00'), 'the patient moves it to a free slot');
select throws_ok($$select public.set_appointment_status((select id from booked), 'arrived')$$, '42501',
  'a patient may not move an appointment from booked to arrived', 'a patient cannot mark themselves arrived');
select tests.act_as_owner();
select tests.act_as('doctor_with');
select throws_ok($$select public.set_appointment_status((select id from booked), 'fulfilled')$$, 'PT422',
  'an appointment cannot go from booked to fulfilled', 'steps are not skipped');
select is(tests.detail_of($$select public.set_appointment_status((select id from booked), null)$$),
  '{"code": "invalid_parameter", "field": "status"}'::jsonb, 'a missing status is 22023 naming the field');
select is((public.set_appointment_status((select id from booked), 'arrived')).status, 'arrived', 'the practitioner marks arrival');
select tests.act_as_owner();
select is((select status from public.consultations where appointment_id = (select id from booked)), 'waiting',
  'the consultation is waiting once the patient has arrived');
select tests.act_as('patient_b');
select throws_ok($$select public.cancel_appointment((select id from booked), 'changed my mind')$$, '42501', null,
  'a patient cannot cancel after arriving');
select throws_ok($$select public.cancel_appointment((select id from booked), '  ')$$, '22023', null,
  'a cancellation needs a reason');
select tests.act_as_owner();
select tests.act_as('doctor_with');
select is((public.cancel_appointment((select id from booked), 'clinic closed')).cancellation_reason, 'clinic closed',
  'the practitioner cancels with a reason');
select tests.act_as_owner();
select tests.act_as('patient_a');
select is((select count(*)::int from public.available_slots('d1000000-0000-4000-8000-000000000001',
           tests.lagos((select monday from tests.days), '11:00'), tests.lagos((select monday from tests.days), '11:30'))), 1,
  'a cancelled slot is offered again');
select is((public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '11:00'))).status,
  'booked', 'and can be booked again');
select tests.act_as_owner();

-- Booking for someone else ---------------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '14:00'),
                   null, null, '22222222-2222-4222-8222-222222222222')$$,
  '42501', null, 'a patient cannot book for another patient');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '14:00'),
                   null, null, '22222222-2222-4222-8222-222222222222')$$,
  '42501', null, 'nobody books into another practitioner''s calendar without the permission');
select tests.act_as_owner();
select tests.act_as('doctor_with');
select results_eq($$select patient_id, created_by from public.book_appointment('d1000000-0000-4000-8000-000000000001',
                     tests.lagos((select monday from tests.days), '14:00'), 'follow-up', null, '22222222-2222-4222-8222-222222222222')$$,
  $$values ('22222222-2222-4222-8222-222222222222'::uuid, '33333333-3333-4333-8333-333333333333'::uuid)$$,
  'a practitioner books a follow-up into their own calendar, recorded as its creator');
select tests.act_as_owner();
select tests.act_as('admin');
select is((public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '15:00'),
           null, null, '11111111-1111-4111-8111-111111111111')).patient_id, '11111111-1111-4111-8111-111111111111'::uuid,
  'an admin (appointments.book_for_patients) books into any calendar');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '15:30'),
                   null, null, '00000000-0000-4000-8000-000000000000')$$, 'PT404', null, 'an unknown patient is 404');
select tests.act_as_owner();

-- The schema's last line of defence ---------------------------------------------------------------------
select throws_ok($$insert into public.appointments (patient_id, practitioner_id, period, status)
                   values ('22222222-2222-4222-8222-222222222222', 'd1000000-0000-4000-8000-000000000001',
                           tstzrange(tests.lagos((select monday from tests.days), '11:15'), tests.lagos((select monday from tests.days), '11:45')), 'booked')$$,
  '23P01', null, 'an overlapping active appointment violates the practitioner exclusion constraint');
select lives_ok($$insert into public.appointments (patient_id, practitioner_id, period, status)
                   values ('22222222-2222-4222-8222-222222222222', 'd1000000-0000-4000-8000-000000000001',
                           tstzrange(tests.lagos((select monday from tests.days), '11:15'), tests.lagos((select monday from tests.days), '11:45')), 'proposed')$$,
  'a proposed appointment holds no time');
select is(careplane.appointment_transition('{"action": "set_status", "from": "booked", "to": "arrived", "actor": "patient", "now": "2026-11-30T10:00:00Z"}') -> 'detail' ->> 'code',
  'forbidden', 'the transition rule is the extension''s');
select throws_ok($$select careplane.appointment_transition('{"action": "set_status", "from": "booked", "to": "done", "actor": "patient", "now": "2026-11-30T10:00:00Z"}')$$,
  '22023', null, 'unknown statuses are 22023');

-- Proposals: a practitioner booking someone who has not chosen them -------------------------------
-- Dr Mensah (Accra, UTC+0) works Monday 09:00–12:00 Accra, 10:00–13:00 Lagos; patient A has never
-- booked with him.
select tests.act_as('doctor_without');
create temp table proposal on commit drop as
select * from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '10:00'),
                                      'check-up', 'k-shared', '11111111-1111-4111-8111-111111111111');
create temp table proposal2 on commit drop as
select * from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '10:30'),
                                      null, null, '11111111-1111-4111-8111-111111111111');
select is((select count(*)::int from public.profiles where id = '11111111-1111-4111-8111-111111111111'), 0,
  'a proposal does not open the patient''s profile to the practitioner');
select throws_ok($$select public.accept_appointment((select id from proposal))$$, '42501', null,
  'the practitioner cannot accept their own proposal');
select is(tests.detail_of($$select public.set_appointment_status((select id from proposal), 'booked')$$) ->> 'code',
  'use_accept_appointment', 'nor book it through set_appointment_status');
select tests.act_as_owner();
select results_eq($$select status, patient_participation, created_by from proposal$$,
  $$values ('proposed'::text, 'needs-action'::text, '44444444-4444-4444-8444-444444444444'::uuid)$$,
  'a practitioner booking a patient who never chose them makes a proposal');
select is((select count(*)::int from public.consultations where appointment_id = (select id from proposal)), 0,
  'a proposal has no consultation and no conversation');
select is((select count(*)::int from private.outbox where recipient = 'patient_a@example.org'
            and payload ->> 'appointment_id' in ((select id::text from proposal), (select id::text from proposal2))), 0,
  'a proposal queues no email to the patient');
select is((select count(*)::int from public.notifications
            where user_id = '11111111-1111-4111-8111-111111111111' and data ->> 'appointment_id' = (select id::text from proposal)), 1,
  'the patient is told in the app');

select tests.act_as('patient_a');
select is((public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'),
           null, 'k-shared')).status, 'booked',
  'the proposal neither holds the patient''s time nor uses up their idempotency key');
select is(tests.detail_of($$select public.accept_appointment((select id from proposal))$$),
  '{"code": "booking_conflict", "reasons": ["patient_busy"]}'::jsonb,
  'accepting is checked against the patient''s own calendar');
select lives_ok($$select public.cancel_appointment(a.id, 'prefer the proposal') from public.appointments a
                   where a.created_by = auth.uid() and a.idempotency_key = 'k-shared'$$, 'the patient frees the time');
select results_eq($$select status, patient_participation from public.accept_appointment((select id from proposal))$$,
  $$values ('booked'::text, 'accepted'::text)$$, 'the patient accepts the proposal');
select results_eq($$select status, patient_participation, cancellation_reason from public.decline_appointment((select id from proposal2), 'not needed')$$,
  $$values ('cancelled'::text, 'declined'::text, 'not needed'::text)$$, 'and declines the other');
select tests.act_as_owner();
select is((select count(*)::int from public.conversation_members m join public.conversations c on c.id = m.conversation_id
            join public.consultations k on k.id = c.consultation_id where k.appointment_id = (select id from proposal)), 2,
  'acceptance opens the consultation and its conversation');
select is((select count(*)::int from private.outbox where recipient = 'patient_a@example.org' and template = 'appointment_booked'
            and payload ->> 'appointment_id' = (select id::text from proposal)), 1,
  'once accepted, the patient is emailed like any booking');
select tests.act_as('doctor_without');
select is((select count(*)::int from public.profiles where id = '11111111-1111-4111-8111-111111111111'), 1,
  'once accepted, the practitioner is on the patient''s care team');
select is((public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '11:30'),
           'follow-up', null, '11111111-1111-4111-8111-111111111111')).status, 'booked',
  'a practitioner the patient has chosen books follow-ups directly');
select tests.act_as_owner();

-- Not accepting patients ---------------------------------------------------------------------------
select tests.act_as('patient_a');
create temp table with_mensah on commit drop as
select * from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '12:00'));
select tests.act_as_owner();
update public.practitioners set accepting_patients = false where id = 'd2000000-0000-4000-8000-000000000002';
select tests.act_as('patient_b');
select is(tests.detail_of($$select public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos((select monday from tests.days), '12:30'))$$),
  '{"code": "booking_conflict", "reasons": ["not_accepting_patients"]}'::jsonb,
  'a practitioner not accepting patients says so, not outside_hours');
select is((select count(*)::int from public.available_slots('d2000000-0000-4000-8000-000000000002',
           tests.lagos((select monday from tests.days), '00:00'), tests.lagos((select monday from tests.days), '23:59'))), 0,
  'and offers no slots');
select tests.act_as_owner();
select tests.act_as('patient_a');
select is(tests.detail_of($$select public.reschedule_appointment((select id from with_mensah), tests.lagos((select monday from tests.days), '12:30'))$$),
  '{"code": "booking_conflict", "reasons": ["not_accepting_patients"]}'::jsonb,
  'rescheduling checks accepting_patients too');
select tests.act_as_owner();
update public.practitioners set accepting_patients = true where id = 'd2000000-0000-4000-8000-000000000002';

-- No-shows only after the start ---------------------------------------------------------------------
insert into public.appointments (id, patient_id, practitioner_id, period, status, created_by) values
  ('a3000000-0000-4000-8000-000000000003', '22222222-2222-4222-8222-222222222222', 'd2000000-0000-4000-8000-000000000002',
   tstzrange(date_trunc('hour', now()) - interval '1 day', date_trunc('hour', now()) - interval '1 day' + interval '30 minutes'),
   'booked', '22222222-2222-4222-8222-222222222222');
select tests.act_as('doctor_without');
select is(tests.detail_of($$select public.set_appointment_status((select id from with_mensah), 'noshow')$$),
  '{"code": "not_yet_started", "to": "noshow"}'::jsonb, 'a future appointment cannot be marked noshow');
select is((public.set_appointment_status('a3000000-0000-4000-8000-000000000003', 'noshow')).status, 'noshow',
  'a past one can');
select tests.act_as_owner();

-- Fees, currency and time zones -----------------------------------------------------------------------
select tests.act_as('doctor_with');
update public.practitioners set consultation_fee_minor = 1600000, currency = 'GHS' where id = 'd1000000-0000-4000-8000-000000000001';
select throws_ok($$update public.practitioners set time_zone = 'posix/Africa/Lagos' where id = 'd1000000-0000-4000-8000-000000000001'$$,
  '23514', null, 'a practitioner cannot set a zone the rules cannot read (posix/…), which would break their calendar');
select tests.act_as_owner();
select is((select count(*)::int from private.audit_log
            where table_name = 'practitioners' and actor_id = '33333333-3333-4333-8333-333333333333'
              and changed_columns @> array['consultation_fee_minor', 'currency']), 1,
  'fee and currency changes are audited, with who made them');
update public.practitioners set consultation_fee_minor = 1500000, currency = 'NGN' where id = 'd1000000-0000-4000-8000-000000000001';
select is_empty($$select name from pg_catalog.pg_timezone_names where name ~ '^(posix|right)/' and public.is_valid_time_zone(name)$$,
  'no zone-directory path is a valid time zone');
select ok(public.is_valid_time_zone('Africa/Lagos') and public.is_valid_time_zone('UTC') and not public.is_valid_time_zone('EST5EDT'),
  'IANA names are, POSIX strings are not');

-- A practitioner who loses their standing loses their powers --------------------------------------------
create temp table d1_booked on commit drop as
select id from public.appointments where practitioner_id = 'd1000000-0000-4000-8000-000000000001' and status = 'booked' limit 1;
grant select on d1_booked to authenticated;
update public.practitioners set active = false where id = 'd1000000-0000-4000-8000-000000000001';
select is(tests.attempt('doctor_with', $$select count(*) from public.appointments$$), '0', 'an inactive practitioner reads no calendar');
select is(tests.attempt('doctor_with', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$), '0',
  'nor their patients'' profiles');
select is(tests.attempt('doctor_with', $$update public.practitioners set consultation_fee_minor = 1$$), '0',
  'nor changes their fee');
select is(tests.attempt('doctor_with', $$insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
                                          values ('d1000000-0000-4000-8000-000000000001', 2, '09:00', '10:00')$$), '0',
  'nor their hours');
select tests.act_as('doctor_with');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '13:00'),
                   null, null, '22222222-2222-4222-8222-222222222222')$$, '42501', null, 'nor books for patients');
select throws_ok($$select public.set_appointment_status((select id from d1_booked), 'arrived')$$, 'PT404', null,
  'nor moves appointments in their calendar');
select tests.act_as_owner();
select tests.act_as('patient_b');
select is(tests.detail_of($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '13:00'))$$),
  '{"code": "booking_conflict", "reasons": ["practitioner_inactive"]}'::jsonb, 'and takes no bookings');
select tests.act_as_owner();
update public.practitioners set active = true where id = 'd1000000-0000-4000-8000-000000000001';
-- Active, but the role is no longer held (the token that says so is the one the database trusts).
insert into tests.personas values (9, 'doctor_with_role_gone', 'authenticated', '33333333-3333-4333-8333-333333333333', 'patient');
delete from public.user_roles where user_id = '33333333-3333-4333-8333-333333333333' and role = 'doctor';
select is(tests.attempt('doctor_with_role_gone', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$), '0',
  'without the role, no patient profiles');
select is(tests.attempt('doctor_with_role_gone', $$select count(*) from public.appointments where practitioner_id = 'd1000000-0000-4000-8000-000000000001'$$), '0',
  'and no calendar');
select is(tests.attempt('doctor_with_role_gone', $$update public.practitioners set consultation_fee_minor = 1$$), '0',
  'and no fee changes');
insert into public.user_roles (user_id, role) values ('33333333-3333-4333-8333-333333333333', 'doctor');

-- Registering again after a revocation --------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$select public.register_practitioner('22222222-2222-4222-8222-222222222222', 'doctor', 'Dr B', 100, 'NGN', 'Africa/Lagos')$$,
  '42501', null, 'only an admin registers practitioners');
select tests.act_as_owner();
select tests.act_as('admin');
select throws_ok($$select public.register_practitioner('22222222-2222-4222-8222-222222222222', 'doctor', 'Dr B', 100, 'NGN', 'Africa/Lagos')$$,
  'PT422', null, 'a user without the role is not registered');
select tests.act_as_owner();
update public.practitioners set active = false, accepting_patients = false where id = 'd2000000-0000-4000-8000-000000000002';
select tests.act_as('admin');
select results_eq($$select id, active, accepting_patients, display_name, consultation_fee_minor
                      from public.register_practitioner('44444444-4444-4444-8444-444444444444', 'doctor', 'Dr K. Mensah', 25000, 'GHS', 'Africa/Accra')$$,
  $$values ('d2000000-0000-4000-8000-000000000002'::uuid, true, false, 'Dr K. Mensah'::text, 25000::bigint)$$,
  'registering a deactivated practitioner again reactivates the same record with the reviewed fee; the calendar stays closed');
select tests.act_as_owner();
select is((select count(*)::int from public.availability_rules where practitioner_id = 'd2000000-0000-4000-8000-000000000002'), 2,
  'and keeps their hours');

-- One definition of each list and bound ----------------------------------------------------------------
select is(careplane.appointment_statuses(),
  array['proposed', 'pending', 'booked', 'arrived', 'checked-in', 'fulfilled', 'cancelled', 'noshow', 'entered-in-error', 'waitlist'],
  'the statuses are FHIR R4''s');
select is_empty($$select c.conname from pg_catalog.pg_constraint c
                   where c.conrelid in ('public.appointments'::regclass, 'public.consultations'::regclass,
                                        'public.practitioners'::regclass, 'public.availability_exceptions'::regclass)
                     and pg_catalog.pg_get_constraintdef(c.oid) ~ '''(proposed|pending|booked|arrived|checked-in|fulfilled|cancelled|noshow|entered-in-error|waitlist)'''$$,
  'no constraint spells out appointment statuses: they call the extension');
select ok((select bool_and(pg_catalog.pg_get_constraintdef(c.oid) ~ 'careplane\.is_active_appointment_status\(status\)')
             from pg_catalog.pg_constraint c where c.conname in ('appointments_practitioner_time_free', 'appointments_patient_time_free')),
  'the exclusion constraints hold time for the extension''s active statuses');
select is_empty($$select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
                   where n.nspname in ('public', 'private', 'access') and p.prosrc ~ 'appointments'
                     and p.prosrc ~* 'status\s*(=|<>|!=|in)\s*\(?\s*''(proposed|pending|booked|arrived|checked-in|fulfilled|cancelled|noshow|entered-in-error|waitlist)'''$$,
  'no function compares appointment statuses with a literal: they ask the extension');
select is_empty($$select s from jsonb_object_keys(careplane.scheduling_limits() -> 'settings') s
                   where not exists (select 1 from pg_catalog.pg_constraint c
                                      where c.conrelid = 'public.practitioners'::regclass
                                        and pg_catalog.pg_get_constraintdef(c.oid) like '%is_valid_schedule_setting(''' || s || '''%')$$,
  'every scheduling setting column is bounded by the extension');
select lives_ok($$update public.practitioners set slot_alignment_minutes = 240 where id = 'd1000000-0000-4000-8000-000000000001'$$,
  'alignment 240 is the upper bound');
select throws_ok($$update public.practitioners set slot_alignment_minutes = 241 where id = 'd1000000-0000-4000-8000-000000000001'$$,
  '23514', null, 'and 241 is past it');
select throws_ok($$update public.practitioners set slot_alignment_minutes = 4 where id = 'd1000000-0000-4000-8000-000000000001'$$,
  '23514', null, 'alignment 4 is below the lower bound (5)');
select is((select column_default from information_schema.columns
            where table_schema = 'public' and table_name = 'practitioners' and column_name = 'min_notice_minutes'),
  'careplane.schedule_setting_default(''min_notice_minutes''::text)', 'defaults are the extension''s too');
select is(careplane.busy_window_minutes(), 720, 'the busy window is the largest buffer plus the longest slot');

select * from finish();
rollback;
