-- A booking's second pass (migrations/…29000200_booking_path.sql): a patient's own booking and
-- a practitioner's booking for a patient still plan as before; the consultation, its
-- conversation and members are opened once; the announcements reach the same people, the
-- outbox rows naming their recipient's profile; a buffer conflict at the far edge of the
-- narrower busy window is still found.
begin;
set local search_path = extensions, public;
select plan(9);

insert into auth.users (id, aud, role, email, phone, raw_user_meta_data) values
  ('00000000-0000-4000-8000-00000000d001', 'authenticated', 'authenticated', 'pat.path@example.test', '2348010000001', '{"full_name": "Pat"}'),
  ('00000000-0000-4000-8000-00000000d002', 'authenticated', 'authenticated', 'doc.path@example.test', '2348010000002', '{"full_name": "Doc"}');
update public.profiles set email_opt_in = true, sms_opt_in = true
 where id in ('00000000-0000-4000-8000-00000000d001', '00000000-0000-4000-8000-00000000d002');
insert into public.user_roles (user_id, role) values ('00000000-0000-4000-8000-00000000d002', 'doctor');
-- Open every day, eight-hour slots on a five-minute grid, a four-hour buffer.
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, time_zone,
                                  slot_minutes, slot_alignment_minutes, buffer_before_minutes, buffer_after_minutes,
                                  min_notice_minutes, booking_horizon_days)
values ('00000000-0000-4000-8000-00000000d0c2', '00000000-0000-4000-8000-00000000d002', 'doctor', 'Dr Path', 1000, 'NGN', 'UTC',
        480, 5, 240, 240, 0, 730);
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
select '00000000-0000-4000-8000-00000000d0c2', wd, '00:00', '23:59' from generate_series(1, 7) wd;

-- The patient books for themselves.
select set_config('request.jwt.claims',
  '{"sub": "00000000-0000-4000-8000-00000000d001", "role": "authenticated", "user_role": "patient"}', true);
set local role authenticated;
create temp table booked on commit drop as
select * from public.book_appointment('00000000-0000-4000-8000-00000000d0c2', (current_date + 2)::timestamptz);
reset role;
select is((select status || ' ' || patient_participation from booked), 'booked accepted',
  'a patient''s own booking is booked and accepted');
select is(
  (select count(*)::int from public.conversation_members m
     join public.conversations v on v.id = m.conversation_id
     join public.consultations c on c.id = v.consultation_id
     join booked b on b.id = c.appointment_id),
  2, 'the booking opened its consultation, its conversation and both members');
select lives_ok($$select private.open_consultation(a) from public.appointments a join booked b on b.id = a.id$$, 'opening the consultation again is allowed');
select is((select count(*)::int from public.consultations c join booked b on b.id = c.appointment_id), 1,
  '... and opens nothing more');
select set_eq(
  $$select o.channel, o.recipient, o.recipient_id from private.outbox o join booked b on o.payload ->> 'appointment_id' = b.id::text$$,
  $$values ('email', 'pat.path@example.test', '00000000-0000-4000-8000-00000000d001'::uuid),
           ('sms', '+2348010000001', '00000000-0000-4000-8000-00000000d001'::uuid),
           ('email', 'doc.path@example.test', '00000000-0000-4000-8000-00000000d002'::uuid),
           ('sms', '+2348010000002', '00000000-0000-4000-8000-00000000d002'::uuid)$$,
  'email and SMS to both, each outbox row naming its recipient''s profile');
select set_eq(
  $$select n.user_id, e.topic from public.notifications n
      join booked b on n.data ->> 'appointment_id' = b.id::text
      join private.realtime_events e on e.payload ->> 'appointment_id' = b.id::text and e.topic = 'user:' || n.user_id$$,
  $$values ('00000000-0000-4000-8000-00000000d001'::uuid, 'user:00000000-0000-4000-8000-00000000d001'),
           ('00000000-0000-4000-8000-00000000d002'::uuid, 'user:00000000-0000-4000-8000-00000000d002')$$,
  'a notification and a realtime event to each');

-- The practitioner books for a stranger: a proposal (the facts about booking on someone's
-- behalf are read then).
insert into auth.users (id, aud, role, email, raw_user_meta_data) values
  ('00000000-0000-4000-8000-00000000d003', 'authenticated', 'authenticated', 'new.path@example.test', '{"full_name": "New"}');
select set_config('request.jwt.claims',
  '{"sub": "00000000-0000-4000-8000-00000000d002", "role": "authenticated", "user_role": "doctor"}', true);
set local role authenticated;
select is(
  (select status from public.book_appointment('00000000-0000-4000-8000-00000000d0c2', (current_date + 5)::timestamptz,
                                               patient_id => '00000000-0000-4000-8000-00000000d003')),
  'proposed', 'a practitioner''s booking for a patient who has not chosen them is a proposal');
-- ... and for the patient who booked them: booked straight away.
select is(
  (select status from public.book_appointment('00000000-0000-4000-8000-00000000d0c2', (current_date + 8)::timestamptz,
                                               patient_id => '00000000-0000-4000-8000-00000000d001')),
  'booked', 'a practitioner''s booking for a patient who chose them is booked');
reset role;

-- The busy window is the largest buffer plus the longest slot: an eight-hour appointment whose
-- end is 3 h 55 min before an eight-hour slot is still read, and is its buffer conflict.
select is(
  (select private.conflicts(p, '00000000-0000-4000-8000-00000000d003',
                            tstzrange((current_date + 2)::timestamptz + interval '11 hours 55 minutes',
                                      (current_date + 2)::timestamptz + interval '19 hours 55 minutes'), null, 'booked') -> 'detail' -> 'reasons'
     from public.practitioners p where p.id = '00000000-0000-4000-8000-00000000d0c2'),
  '["buffer"]'::jsonb, 'a buffer conflict at the far edge of the busy window is found');

select * from finish();
rollback;
