-- Booking through the RPCs as PostgREST calls them: availability, every conflict reason as
-- PT409 with its code, idempotency, rescheduling, cancelling, statuses and who may set them.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(41);

-- Dr Obi (Lagos) works Mondays 09:00–17:00; Dr Mensah (Accra) gets Monday mornings too.
update public.appointments set status = 'cancelled', cancellation_reason = 'fixture cleared' where status <> 'cancelled';
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values
  ('d2000000-0000-4000-8000-000000000002', 1, '09:00', '12:00');
create table tests.days as
select (date_trunc('week', now() at time zone 'Africa/Lagos') + interval '7 days')::date as monday,
       (date_trunc('week', now() at time zone 'Africa/Lagos') + interval '14 days')::date as monday2;
grant select on tests.days to anon, authenticated;
create function tests.lagos(d date, t text) returns timestamptz language sql stable as $$
  select (d + t::time) at time zone 'Africa/Lagos'
$$;
grant execute on function tests.lagos(date, text) to anon, authenticated;
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
  '{"reasons": ["invalid_period"]}'::jsonb, 'the detail is {"reasons": [...]}');
select tests.act_as_owner();

select tests.act_as('patient_b');
select is((public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '10:00'),
                                   'follow-up', 'key-1')).id, (select id from booked), 'a retry with the same key returns the same appointment');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos((select monday from tests.days), '11:00'), null, 'key-1')$$,
  'PT409', null, 'the same key for a different booking is refused');
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
select is(careplane.appointment_transition('booked', 'arrived', 'patient') ->> 'reason', 'forbidden', 'the transition rule is the extension''s');
select throws_ok($$select careplane.appointment_transition('booked', 'done', 'patient')$$, '22023', null, 'unknown statuses are 22023');

select * from finish();
rollback;
