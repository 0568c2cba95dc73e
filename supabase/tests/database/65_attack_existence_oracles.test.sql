-- Attack: learning whether something exists from how an RPC refuses. For each scheduling RPC, a
-- persona without the power asks about something that does not exist and about something that
-- exists but is not theirs: the answers (SQLSTATE, message with ids masked, detail) are the same.
-- Permission is checked before existence. And a practitioner proposing a time learns nothing of
-- the patient's calendar: busy and free answer alike.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(17);

insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values
  ('d2000000-0000-4000-8000-000000000002', 1, '09:00', '12:00');
-- Everything a caller learns from a call: 'ok <status>', or SQLSTATE, message (uuids masked),
-- detail and hint.
create function tests.answer(sql text) returns text language plpgsql as $$
declare
  result text;
  m text;
  d text;
  h text;
begin
  execute sql into result;
  return 'ok ' || coalesce(result, '');
exception when others then
  get stacked diagnostics m = message_text, d = pg_exception_detail, h = pg_exception_hint;
  return concat_ws(' | ', sqlstate,
    regexp_replace(m, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g'), d, h);
end
$$;
grant execute on all functions in schema tests to anon, authenticated;

-- Booking for someone: an unknown user id and an existing stranger answer the same -----------------------
select tests.act_as('patient_b');
select is(tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '00000000-0000-4000-8000-000000000000')$$),
          tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'a patient booking for an unknown id or for patient A: the same answer');
select ok(tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '00000000-0000-4000-8000-000000000000')$$) like '42501 |%',
  'and that answer is 42501, not PT404');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '00000000-0000-4000-8000-000000000000')$$),
          tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'a practitioner booking into another calendar: unknown id or real patient, the same answer');
select is(tests.answer($$select status from public.book_appointment('00000000-0000-4000-8000-0000000000d9', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
          tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'an unknown calendar and another practitioner''s: the same answer');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select is(tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '00000000-0000-4000-8000-000000000000')$$),
          tests.answer($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'),
                          null, null, '22222222-2222-4222-8222-222222222222')$$),
  'a dispatcher: the same answer for an unknown id and a real patient');
select tests.act_as_owner();

-- Appointments: an unknown id and someone else's answer the same ------------------------------------------
select tests.act_as('patient_b');
select is(tests.answer($$select status from public.reschedule_appointment('00000000-0000-4000-8000-0000000000a9', tests.lagos('11:00'))$$),
          tests.answer($$select status from public.reschedule_appointment('a1000000-0000-4000-8000-000000000001', tests.lagos('11:00'))$$),
  'reschedule_appointment: unknown and someone else''s answer the same');
select is(tests.answer($$select status from public.cancel_appointment('00000000-0000-4000-8000-0000000000a9', 'x')$$),
          tests.answer($$select status from public.cancel_appointment('a1000000-0000-4000-8000-000000000001', 'x')$$),
  'cancel_appointment: the same');
select is(tests.answer($$select status from public.set_appointment_status('00000000-0000-4000-8000-0000000000a9', 'noshow')$$),
          tests.answer($$select status from public.set_appointment_status('a1000000-0000-4000-8000-000000000001', 'noshow')$$),
  'set_appointment_status: the same');
select is(tests.answer($$select status from public.accept_appointment('00000000-0000-4000-8000-0000000000a9')$$),
          tests.answer($$select status from public.accept_appointment('a1000000-0000-4000-8000-000000000001')$$),
  'accept_appointment: the same');
select is(tests.answer($$select status from public.decline_appointment('00000000-0000-4000-8000-0000000000a9')$$),
          tests.answer($$select status from public.decline_appointment('a1000000-0000-4000-8000-000000000001')$$),
  'decline_appointment: the same');
select ok(tests.answer($$select status from public.cancel_appointment('a1000000-0000-4000-8000-000000000001', 'x')$$) like 'PT404 |%',
  'and it is PT404');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.answer($$select status from public.set_appointment_status('00000000-0000-4000-8000-0000000000a9', 'noshow')$$),
          tests.answer($$select status from public.set_appointment_status('a1000000-0000-4000-8000-000000000001', 'noshow')$$),
  'a practitioner probing another calendar''s appointment: the same as an unknown id');
select tests.act_as_owner();
-- The moves are decided before the request's other arguments are looked at: a bad argument on
-- someone else's appointment still answers PT404.
select tests.act_as('patient_b');
select is(tests.answer($$select status from public.reschedule_appointment('a1000000-0000-4000-8000-000000000001', null)$$),
          tests.answer($$select status from public.reschedule_appointment('00000000-0000-4000-8000-0000000000a9', null)$$),
  'a missing start on someone else''s appointment answers as an unknown one');
select tests.act_as_owner();

-- A practitioner proposing learns nothing of the patient's calendar -------------------------------------------
select tests.act_as('patient_a');
select lives_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'))$$,
  'patient A is busy with Dr Obi at 10:00');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.answer($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
          tests.answer($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('10:30'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'proposing a time the patient is busy and a free one: the same answer');
select is(tests.answer($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('11:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'ok proposed', 'and that answer is a proposal');
select tests.act_as_owner();
-- The admin (appointments.read_all) may learn it: an admin's booking answers patient_busy.
select tests.act_as('admin');
select is(tests.answer($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('10:00'),
                          null, null, '11111111-1111-4111-8111-111111111111')$$),
  'PT409 | the appointment cannot be booked: patient_busy | {"code": "booking_conflict", "reasons": ["patient_busy"]} | Pick a slot from available_slots().',
  'an admin, who reads every appointment anyway, is told patient_busy');
select tests.act_as_owner();

select * from finish();
rollback;
