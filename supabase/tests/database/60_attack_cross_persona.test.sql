-- Attack: one persona, through each scheduling RPC, tries to reach another persona's data or
-- powers — a practitioner booking a stranger and reading them or learning their calendar, a
-- patient moving someone else's appointment, a practitioner accepting on a patient's behalf,
-- a practitioner whose role is gone. The matrix (10_security_matrix) checks tables persona by
-- persona; this checks what the RPCs let one persona do to another.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(49);

-- Next Monday: Dr Obi (d1, Lagos, patient A's doctor through a1) works 09:00–17:00 Lagos; Dr Mensah
-- (d2, Accra) 09:00–12:00 Accra = 10:00–13:00 Lagos, and has never seen patient A.
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values
  ('d2000000-0000-4000-8000-000000000002', 1, '09:00', '12:00');
-- What an RPC call answered: 'ok <status>' or '<sqlstate> <detail code>'.
create function tests.outcome(sql text) returns text language plpgsql as $$
declare
  result text;
  d text;
begin
  execute sql into result;
  return 'ok ' || coalesce(result, '');
exception when others then
  get stacked diagnostics d = pg_exception_detail;
  return sqlstate || ' ' || coalesce(nullif(d, '')::jsonb ->> 'code', '');
end
$$;
grant execute on all functions in schema tests to anon, authenticated;
create table tests.ids (name text primary key, id uuid);
grant select, insert on tests.ids to authenticated;

-- book_appointment: a practitioner books a stranger into their own calendar ------------------------
select tests.act_as('patient_a');
insert into tests.ids select 'a_with_obi', id from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('10:00'));
select tests.act_as_owner();
select tests.act_as('doctor_without');
insert into tests.ids select 'proposal', id from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('11:00'),
  'I would like to see you', 'attack-key', '11111111-1111-4111-8111-111111111111');
select is((select status from public.appointments where id = (select id from tests.ids where name = 'proposal')), 'proposed',
  'a practitioner booking a stranger only proposes');
select is((select count(*)::int from public.profiles where id = '11111111-1111-4111-8111-111111111111'), 0,
  'the stranger''s profile (email, phone) stays closed');
select is((select count(*)::int from public.conversation_members where user_id = '11111111-1111-4111-8111-111111111111'), 0,
  'no conversation with the stranger is opened');
select is((select count(*)::int from public.appointments where patient_id = '11111111-1111-4111-8111-111111111111'), 1,
  'the practitioner sees only their own proposal of the stranger''s appointments');
select is(tests.outcome($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('10:00'),
                           null, null, '11111111-1111-4111-8111-111111111111')$$),
  'ok proposed', 'proposing a time the stranger is busy (with another doctor) answers as for any time: no patient_busy');
select tests.act_as_owner();
select is((select count(*)::int from private.outbox o join public.appointments a on a.id::text = o.payload ->> 'appointment_id'
            where o.recipient = 'patient_a@example.org' and a.practitioner_id = 'd2000000-0000-4000-8000-000000000002'), 0,
  'no email or SMS reaches the stranger through the outbox');
select is((select count(*)::int from public.consultations c join public.appointments a on a.id = c.appointment_id
            where a.practitioner_id = 'd2000000-0000-4000-8000-000000000002' and a.patient_id = '11111111-1111-4111-8111-111111111111'), 0,
  'no consultation exists for a proposal');
select tests.act_as('patient_a');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('11:00'), null, 'attack-key')$$),
  'ok booked', 'the proposal neither blocks the stranger''s time nor uses up their idempotency key');
select tests.act_as_owner();

-- book_appointment: into someone else's calendar, or for someone else ----------------------------
select tests.act_as('doctor_without');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                           null, null, '22222222-2222-4222-8222-222222222222')$$),
  '42501 forbidden', 'a practitioner cannot book anyone into another practitioner''s calendar');
select tests.act_as_owner();
select tests.act_as('patient_b');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                           null, null, '11111111-1111-4111-8111-111111111111')$$),
  '42501 forbidden', 'a patient cannot book for another patient');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                           null, null, '11111111-1111-4111-8111-111111111111')$$),
  '42501 forbidden', 'a dispatcher cannot book for a patient');
select tests.act_as_owner();
select tests.act_as('responder');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                           null, null, '11111111-1111-4111-8111-111111111111')$$),
  '42501 forbidden', 'a responder cannot book for a patient');
select tests.act_as_owner();
select tests.act_as('anon');
select throws_ok($$select public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                    null, null, '11111111-1111-4111-8111-111111111111')$$, '42501', null, 'anon cannot book at all');
select tests.act_as_owner();
select tests.act_as('doctor_with');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('14:00'),
                           'follow-up', null, '11111111-1111-4111-8111-111111111111')$$),
  'ok booked', 'a practitioner the patient chose (a1) books a follow-up directly');
select tests.act_as_owner();
select tests.act_as('admin');
select is(tests.outcome($$select status from public.book_appointment('d2000000-0000-4000-8000-000000000002', tests.lagos('12:00'),
                           null, null, '22222222-2222-4222-8222-222222222222')$$),
  'ok booked', 'an admin with appointments.book_for_patients keeps the power to book into any calendar');
select tests.act_as_owner();
insert into tests.ids select 'b_with_mensah', id from public.appointments
 where patient_id = '22222222-2222-4222-8222-222222222222' and practitioner_id = 'd2000000-0000-4000-8000-000000000002' and status = 'booked';

-- reschedule_appointment ------------------------------------------------------------------------------
select tests.act_as('patient_b');
select is(tests.outcome($$select status from public.reschedule_appointment((select id from tests.ids where name = 'a_with_obi'), tests.lagos('15:00'))$$),
  'PT404 appointment_not_found', 'a patient cannot move another patient''s appointment (it does not exist for them)');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.outcome($$select status from public.reschedule_appointment((select id from tests.ids where name = 'a_with_obi'), tests.lagos('15:00'))$$),
  'PT404 appointment_not_found', 'a practitioner cannot move an appointment in another calendar');
select is(tests.outcome($$select status from public.reschedule_appointment((select id from tests.ids where name = 'proposal'), tests.lagos('11:00'))$$),
  'ok proposed', 'moving a proposal onto the stranger''s busy time answers as for any time: no patient_busy');
select tests.act_as_owner();
select tests.act_as('patient_a');
select is(tests.outcome($$select status from public.reschedule_appointment((select id from tests.ids where name = 'proposal'), tests.lagos('12:30'))$$),
  '42501 forbidden', 'the patient answers a proposal, they do not move it');
select tests.act_as_owner();
select tests.act_as('admin');
select is(tests.outcome($$select status from public.reschedule_appointment((select id from tests.ids where name = 'a_with_obi'), tests.lagos('15:00'))$$),
  '42501 forbidden', 'an admin does not choose the parties'' times');
select tests.act_as_owner();

-- cancel_appointment ----------------------------------------------------------------------------------
select tests.act_as('patient_b');
select is(tests.outcome($$select status from public.cancel_appointment((select id from tests.ids where name = 'a_with_obi'), 'spite')$$),
  'PT404 appointment_not_found', 'a patient cannot cancel another patient''s appointment');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.outcome($$select status from public.cancel_appointment((select id from tests.ids where name = 'a_with_obi'), 'spite')$$),
  'PT404 appointment_not_found', 'a practitioner cannot cancel in another calendar');
select tests.act_as_owner();
select tests.act_as('responder');
select is(tests.outcome($$select status from public.cancel_appointment((select id from tests.ids where name = 'a_with_obi'), 'spite')$$),
  'PT404 appointment_not_found', 'a responder cannot cancel appointments');
select tests.act_as_owner();

-- set_appointment_status ------------------------------------------------------------------------------
select tests.act_as('patient_b');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'a_with_obi'), 'noshow')$$),
  'PT404 appointment_not_found', 'a patient cannot mark another patient''s appointment');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'a_with_obi'), 'noshow')$$),
  'PT404 appointment_not_found', 'a practitioner cannot mark an appointment in another calendar');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'proposal'), 'booked')$$),
  'PT422 use_accept_appointment', 'a practitioner cannot turn their proposal into a booking');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'proposal'), 'pending')$$),
  'PT422 use_accept_appointment', 'nor into a pending appointment that holds the patient''s time');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'b_with_mensah'), 'noshow')$$),
  'PT422 not_yet_started', 'a practitioner cannot mark a future appointment noshow');
select tests.act_as_owner();
select tests.act_as('patient_a');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'a_with_obi'), 'fulfilled')$$),
  'PT422 invalid_transition', 'a patient cannot skip to fulfilled');
select is(tests.outcome($$select status from public.set_appointment_status((select id from tests.ids where name = 'a_with_obi'), 'arrived')$$),
  '42501 forbidden', 'nor mark themselves arrived');
select tests.act_as_owner();

-- accept_appointment / decline_appointment -------------------------------------------------------------
select tests.act_as('doctor_without');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'proposal'))$$),
  '42501 forbidden', 'a practitioner cannot accept their proposal for the patient');
select is(tests.outcome($$select status from public.decline_appointment((select id from tests.ids where name = 'proposal'))$$),
  '42501 forbidden', 'nor decline it');
select tests.act_as_owner();
select tests.act_as('patient_b');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'proposal'))$$),
  'PT404 appointment_not_found', 'another patient cannot accept it');
select is(tests.outcome($$select status from public.decline_appointment((select id from tests.ids where name = 'proposal'))$$),
  'PT404 appointment_not_found', 'nor decline it');
select tests.act_as_owner();
select tests.act_as('admin');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'proposal'))$$),
  '42501 forbidden', 'an admin cannot accept for the patient');
select tests.act_as_owner();
select tests.act_as('doctor_with');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'a_with_obi'))$$),
  'PT422 invalid_transition', 'a booked appointment is not accepted again');
select tests.act_as_owner();

-- After the patient accepts, and only then, the practitioner is in their care ---------------------------
select tests.act_as('patient_a');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'proposal'))$$),
  'PT409 booking_conflict', 'the patient''s own calendar decides (they are busy then)');
select lives_ok($$select public.cancel_appointment(a.id, 'prefer Dr Mensah') from public.appointments a
                   where a.practitioner_id = 'd1000000-0000-4000-8000-000000000001' and a.created_by = auth.uid() and a.idempotency_key = 'attack-key'$$,
  'the patient frees that time');
select is(tests.outcome($$select status from public.accept_appointment((select id from tests.ids where name = 'proposal'))$$),
  'ok booked', 'and accepts');
select tests.act_as_owner();
select tests.act_as('doctor_without');
select is((select count(*)::int from public.profiles where id = '11111111-1111-4111-8111-111111111111'), 1,
  'now the practitioner reads the patient''s profile');
select is((select count(*)::int from public.conversation_members where user_id = '11111111-1111-4111-8111-111111111111'), 1,
  'and shares one conversation with them (the consultation''s; not the patient''s others)');
select tests.act_as_owner();

-- Reading around the RPCs ----------------------------------------------------------------------------
select is(tests.attempt('doctor_without', $$select count(*) from public.appointments where practitioner_id = 'd1000000-0000-4000-8000-000000000001'$$), '0',
  'a practitioner reads no other practitioner''s calendar');
select is(tests.attempt('patient_b', $$select count(*) from public.appointments where patient_id = '11111111-1111-4111-8111-111111111111'$$), '0',
  'a patient reads no other patient''s appointments');
select is(tests.attempt('doctor_without', $$select count(*) from public.profiles where id = '22222222-2222-4222-8222-222222222222'$$), '1',
  'booked by an admin, patient B is in Dr Mensah''s care');
select is(tests.attempt('doctor_with', $$select count(*) from public.profiles where id = '22222222-2222-4222-8222-222222222222'$$), '0',
  'but not in Dr Obi''s');

-- A practitioner whose role is gone (a token without it) ---------------------------------------------------
insert into tests.personas values (9, 'former_doctor', 'authenticated', '33333333-3333-4333-8333-333333333333', 'patient');
delete from public.user_roles where user_id = '33333333-3333-4333-8333-333333333333' and role = 'doctor';
select is(tests.attempt('former_doctor', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$), '0',
  'a former practitioner reads no patient''s profile');
select is(tests.attempt('former_doctor', $$update public.practitioners set consultation_fee_minor = 1, currency = 'USD'$$), '0',
  'nor changes fees');
select tests.act_as('former_doctor');
select is(tests.outcome($$select status from public.book_appointment('d1000000-0000-4000-8000-000000000001', tests.lagos('15:00'),
                           null, null, '11111111-1111-4111-8111-111111111111')$$),
  '42501 forbidden', 'nor books for patients, even one they saw');
select is(tests.outcome($$select status from public.set_appointment_status('a1000000-0000-4000-8000-000000000001', 'noshow')$$),
  'PT404 appointment_not_found', 'nor moves appointments in the calendar that was theirs');
select tests.act_as_owner();

select * from finish();
rollback;
