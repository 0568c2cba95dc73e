-- The consultation's life through its RPCs, as PostgREST calls them: the waiting room and its
-- clock, admission, the call's end, no-shows, the clinician's summary, the sweep, who may make
-- each move, and who may use the call (signaling, TURN).
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(47);

-- Patient A's consultation with Dr Obi started five minutes ago; patient B had one an hour ago
-- (never joined) and one that ran on past its slot two hours ago.
update public.appointments set period = tstzrange(now() - interval '5 minutes', now() + interval '25 minutes')
 where id = 'a1000000-0000-4000-8000-000000000001';
insert into public.appointments (id, patient_id, practitioner_id, period, status, reason, created_by) values
  ('a3000000-0000-4000-8000-000000000003', '22222222-2222-4222-8222-222222222222', 'd1000000-0000-4000-8000-000000000001',
   tstzrange(now() - interval '60 minutes', now() - interval '30 minutes'), 'booked', 'check-up', '22222222-2222-4222-8222-222222222222'),
  ('a4000000-0000-4000-8000-000000000004', '22222222-2222-4222-8222-222222222222', 'd1000000-0000-4000-8000-000000000001',
   tstzrange(now() - interval '120 minutes', now() - interval '90 minutes'), 'checked-in', 'review', '22222222-2222-4222-8222-222222222222');
insert into public.consultations (id, appointment_id, status, started_at) values
  ('c3000000-0000-4000-8000-000000000003', 'a3000000-0000-4000-8000-000000000003', 'scheduled', null),
  ('c4000000-0000-4000-8000-000000000004', 'a4000000-0000-4000-8000-000000000004', 'in_progress', now() - interval '115 minutes');
delete from private.realtime_events;

-- Who may act at all -------------------------------------------------------------------------------
select throws_ok($$select tests.act_as('anon'); select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$,
  '42501', null, 'anon cannot call the RPCs');
select tests.act_as_owner();
select is(tests.error_detail('patient_b', $$select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'consultation_not_found', 'another patient cannot tell the consultation exists');
select is(tests.error_detail('admin', $$select public.admit_patient('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'consultation_not_found', 'an admin reads consultations but takes no part in the call');
select is(tests.error_detail('doctor_without', $$select public.end_consultation('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'consultation_not_found', 'another clinician neither');
select is(tests.error_detail('doctor_with', $$select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$),
  '{"code": "forbidden", "move": "join", "party": "clinician"}', 'the clinician does not join the waiting room');
select is(tests.error_detail('patient_a', $$select public.admit_patient('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'forbidden', 'the patient does not admit themselves');
select is(tests.error_detail('patient_a', $$select public.end_consultation('c1000000-0000-4000-8000-000000000001')$$),
  '{"code": "invalid_transition", "from": "scheduled", "move": "end"}', 'nothing to end before the call');
select is(tests.error_detail('patient_a', $$select public.write_consultation_summary('c1000000-0000-4000-8000-000000000001', 'x')$$) ->> 'code',
  'forbidden', 'only the clinician writes the summary');
select is(tests.error_detail('doctor_with', $$select public.write_consultation_summary('c1000000-0000-4000-8000-000000000001', 'x')$$) ->> 'code',
  'not_started', 'and only once the consultation started');

-- The waiting room's clock ------------------------------------------------------------------------
update public.appointments set period = tstzrange(now() + interval '20 minutes', now() + interval '50 minutes')
 where id = 'a1000000-0000-4000-8000-000000000001';
select is(tests.error_detail('patient_a', $$select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'waiting_room_not_open', 'twenty minutes early the waiting room is closed (it opens ten minutes before)');
set local careplane.waiting_room_opens_minutes = '30';
select lives_ok($$select tests.act_as('patient_a'); select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$,
  'a clinic that opens the room thirty minutes before lets the patient in');
select tests.act_as_owner();
reset careplane.waiting_room_opens_minutes;
update public.consultations set status = 'scheduled' where id = 'c1000000-0000-4000-8000-000000000001';
update public.appointments set status = 'booked', period = tstzrange(now() - interval '200 minutes', now() - interval '170 minutes')
 where id = 'a1000000-0000-4000-8000-000000000001';
select is(tests.error_detail('patient_a', $$select public.join_consultation('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'waiting_room_closed', 'after the slot the waiting room is closed');
update public.appointments set period = tstzrange(now() - interval '5 minutes', now() + interval '25 minutes')
 where id = 'a1000000-0000-4000-8000-000000000001';
delete from private.realtime_events;
delete from public.notifications;

-- Join, admit, end ------------------------------------------------------------------------------
select tests.act_as('patient_a');
select is((public.join_consultation('c1000000-0000-4000-8000-000000000001')).status, 'waiting', 'the patient joins the waiting room');
select tests.act_as_owner();
select is((select status from public.appointments where id = 'a1000000-0000-4000-8000-000000000001'), 'arrived',
  'the appointment shows the patient arrived');
select set_eq($$select topic, event from private.realtime_events where event = 'consultation:updated'$$,
  $$values ('consultation:c1000000-0000-4000-8000-000000000001', 'consultation:updated'),
           ('user:11111111-1111-4111-8111-111111111111', 'consultation:updated'),
           ('user:33333333-3333-4333-8333-333333333333', 'consultation:updated')$$,
  'the consultation topic and both participants hear of it');
select is((select title from public.notifications where user_id = '33333333-3333-4333-8333-333333333333' and kind = 'consultation:waiting'),
  'Your patient is in the waiting room', 'the clinician is told');
select tests.act_as('patient_a');
select is((public.join_consultation('c1000000-0000-4000-8000-000000000001')).status, 'waiting', 'joining again (a reloaded page) changes nothing');
select tests.act_as_owner();
select is((select count(*)::int from private.realtime_events where event = 'consultation:updated'), 3, 'and announces nothing twice');

select tests.act_as('patient_a');
select ok(access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'the waiting patient may signal');
select tests.act_as('doctor_with');
select ok(access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'so may the clinician');
select tests.act_as('patient_b');
select ok(not access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'another patient may not');
select tests.act_as('doctor_without');
select ok(not access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'nor another clinician');
select tests.act_as('admin');
select ok(not access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'nor an admin');

select tests.act_as('doctor_with');
select results_eq($$select status, started_at from public.admit_patient('c1000000-0000-4000-8000-000000000001')$$,
  $$values ('in_progress'::text, now())$$, 'the clinician admits the patient: the call starts now');
select tests.act_as_owner();
select is((select status from public.appointments where id = 'a1000000-0000-4000-8000-000000000001'), 'checked-in', 'the appointment is checked in');
select is((select title from public.notifications where user_id = '11111111-1111-4111-8111-111111111111' and kind = 'consultation:ready'),
  'Your clinician is ready', 'the patient is told their clinician is ready');

select tests.act_as('doctor_with');
select is((public.write_consultation_summary('c1000000-0000-4000-8000-000000000001', '  Viral cough; fluids and rest.  ')).summary,
  'Viral cough; fluids and rest.', 'the clinician writes the summary during the call');
select tests.act_as_owner();
select is(tests.error_detail('doctor_with', $$select public.write_consultation_summary('c1000000-0000-4000-8000-000000000001', '   ')$$) ->> 'field',
  'summary', 'an empty summary is refused, naming the field');

select tests.act_as('patient_a');
select results_eq($$select status, ended_at, duration_seconds from public.end_consultation('c1000000-0000-4000-8000-000000000001')$$,
  $$values ('ended'::text, now(), 0)$$, 'the patient hangs up: ended, with its duration');
select is((public.end_consultation('c1000000-0000-4000-8000-000000000001')).status, 'ended', 'hanging up twice changes nothing');
select ok(not access.may_use_consultation_call('c1000000-0000-4000-8000-000000000001'), 'an ended call is closed to signaling');
select tests.act_as_owner();
select is((select status from public.appointments where id = 'a1000000-0000-4000-8000-000000000001'), 'fulfilled', 'the appointment is fulfilled');
select is(tests.error_detail('doctor_with', $$select public.admit_patient('c1000000-0000-4000-8000-000000000001')$$) ->> 'code',
  'invalid_transition', 'an ended consultation does not start again');
select tests.act_as('doctor_with');
select lives_ok($$select public.write_consultation_summary('c1000000-0000-4000-8000-000000000001', 'Amended: fluids, rest, review in a week.')$$,
  'the summary can still be written after the call');
select tests.act_as_owner();

-- No-shows ---------------------------------------------------------------------------------------
set local careplane.no_show_grace_minutes = '90';
select is(tests.error_detail('doctor_with', $$select public.mark_no_show('c3000000-0000-4000-8000-000000000003')$$) ->> 'code',
  'no_show_too_early', 'within the grace period a no-show cannot be marked');
reset careplane.no_show_grace_minutes;
select is(tests.error_detail('patient_b', $$select public.mark_no_show('c3000000-0000-4000-8000-000000000003')$$) ->> 'code',
  'forbidden', 'the patient cannot mark themselves absent');
select tests.act_as('doctor_with');
select is((public.mark_no_show('c3000000-0000-4000-8000-000000000003')).status, 'scheduled', 'an hour later the clinician marks a no-show');
select tests.act_as_owner();
select is((select status from public.appointments where id = 'a3000000-0000-4000-8000-000000000003'), 'noshow', 'the appointment is a no-show');
select is(tests.error_detail('patient_b', $$select public.join_consultation('c3000000-0000-4000-8000-000000000003')$$),
  '{"code": "appointment_not_active", "appointment_status": "noshow"}', 'and its consultation is closed');
select tests.act_as('doctor_with');
select ok(not access.may_use_consultation_call('c3000000-0000-4000-8000-000000000003'), 'a consultation that never opened has no call');
select tests.act_as_owner();

-- The sweep --------------------------------------------------------------------------------------
select throws_ok($$select tests.act_as('doctor_with'); select private.end_overdue_consultations()$$,
  '42501', null, 'users cannot run the sweep');
select tests.act_as_owner();
set local role service_role;
select is(private.end_overdue_consultations(), 1, 'the sweep ends the call that ran on past its slot');
select is(private.end_overdue_consultations(), 0, 'and finds nothing more on its next run');
reset role;
select results_eq($$select c.status, a.status from public.consultations c join public.appointments a on a.id = c.appointment_id
                   where c.id = 'c4000000-0000-4000-8000-000000000004'$$,
  $$values ('ended'::text, 'fulfilled'::text)$$, 'ended, and the appointment fulfilled');
select is((select payload ->> 'move' from private.realtime_events where topic = 'consultation:c4000000-0000-4000-8000-000000000004'),
  'auto_end', 'the participants hear that the system ended it');
set local careplane.auto_end_after_minutes = 'soon';
select throws_like($$select tests.act_as('patient_a'); select public.end_consultation('c1000000-0000-4000-8000-000000000001')$$,
  '%careplane.auto_end_after_minutes: must be a whole number between 0 and 720, got "soon"%', 'a malformed clinic setting is refused, naming it');
select throws_ok($$select private.consultation_setting('auto_end_after_minutes')$$, '22023', null, 'with SQLSTATE 22023');

select * from finish();
rollback;
