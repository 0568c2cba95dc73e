-- Revoking a role takes its powers away at once, whatever token the person still holds.
-- Written as the attack: an admin revokes a role; the person goes on with the token they had
-- (minted before, its claims still list the role) and with a freshly issued one, each request
-- run as PostgREST runs it (set local role + request.jwt.claims), and tries every power the
-- role gave. Each power is first shown working, so a refusal afterwards is the revocation's.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(65);

-- A second responder (free, on duty, near the open request) and a second admin.
insert into tests.personas values
  (61, 'responder_2', 'authenticated', '6a666666-6666-4666-8666-666666666666', 'responder'),
  (62, 'admin_2',     'authenticated', '7a777777-7777-4777-8777-777777777777', 'admin');
insert into auth.users (id, email) values
  ('6a666666-6666-4666-8666-666666666666', 'responder_2@example.org'),
  ('7a777777-7777-4777-8777-777777777777', 'admin_2@example.org');
insert into public.user_roles (user_id, role) values
  ('6a666666-6666-4666-8666-666666666666', 'responder'),
  ('7a777777-7777-4777-8777-777777777777', 'admin');
insert into public.responders (id, call_sign, on_duty, last_lat, last_lon) values
  ('6a666666-6666-4666-8666-666666666666', 'ACC-02', true, 5.61, -0.18);

-- The tokens everyone holds before any revocation, as the access token hook issued them.
create table tests.old_tokens as
  select p.name, tests.fresh_claims(p.name) as claims from tests.personas p where p.sub is not null;

-- Runs `sql` as `persona` with the old token and with a freshly issued one.
create function tests.with_old_and_new_token(persona text, sql text) returns text language sql as $$
  select 'old token: ' || tests.attempt(persona, (select o.claims from tests.old_tokens o where o.name = persona), sql)
      || ', new token: ' || tests.attempt(persona, tests.fresh_claims(persona), sql)
$$;

-- The same, naming a refusal 'refused' whatever its kind, when the kind is the domain's choice:
-- no privilege (42501), or the request answered as if the target did not exist or could not
-- take the move (PT404, PT409, PT422). Anything else is shown as it happened.
create function tests.refusal(outcome text) returns text language sql immutable as $$
  select case when outcome = '0' or outcome ~ '^unexpected (PT404|PT409|PT422): ' then 'refused' else outcome end
$$;
create function tests.refusals_with_old_and_new_token(persona text, sql text) returns text language sql as $$
  select 'old token: ' || tests.refusal(tests.attempt(persona, (select o.claims from tests.old_tokens o where o.name = persona), sql))
      || ', new token: ' || tests.refusal(tests.attempt(persona, tests.fresh_claims(persona), sql))
$$;

-- Next Monday, 10:00 in Lagos: inside Dr Obi's hours, past the minimum notice, within the horizon.
create function tests.next_monday_10() returns timestamptz language sql stable as $$
  select (date_trunc('week', ((now() at time zone 'Africa/Lagos')::date + 7)::timestamp) + interval '10 hours') at time zone 'Africa/Lagos'
$$;

-- The permission the responder paths check is defined for responders (and only for them).
select set_eq($$select role::text from public.role_permissions where permission = 'emergencies.respond'$$,
  array['responder'], 'emergencies.respond belongs to responders');
select is((select p.provolatile::text from pg_catalog.pg_proc p where p.oid = 'access.effective_roles()'::regprocedure), 's',
  'effective roles are read once per statement (a stable function), not cached beyond it');
-- The class: a practitioner's rights hang on their standing, checked in one place. Nothing but
-- access.my_practitioner_ids (the caller's practitioner records in practice; access.is_practitioner
-- asks it) takes "this record's profile is the caller" for the right to act.
select set_eq(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'private', 'access')
       and p.prosrc ~* 'profile_id\s*(=|<>)\s*\(?\s*(select\s+)?auth\.uid\(\)'
    union all
    select 'policy ' || pol.tablename || ': ' || pol.policyname from pg_catalog.pg_policies pol
     where pol.schemaname = 'public'
       and coalesce(pol.qual, '') || ' ' || coalesce(pol.with_check, '') ~* 'profile_id\s*(=|<>)\s*\(?\s*(select\s+)?auth\.uid\(\)'$$,
  array['access.my_practitioner_ids()'],
  'only access.my_practitioner_ids decides that the caller acts as a practitioner');

-- Before: every power works -----------------------------------------------------------------------
select is(tests.attempt('doctor_with', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$),
  '1', 'before: the doctor reads their patient''s profile');
select is(tests.attempt('doctor_with', $$select count(*) from public.appointments where practitioner_id = 'd1000000-0000-4000-8000-000000000001'$$),
  '1', 'before: the doctor reads their calendar');
select is(tests.attempt('doctor_with', $$select count(*) from public.messages where conversation_id = 'cc000000-0000-4000-8000-000000000001'$$),
  '2', 'before: the doctor reads the consultation''s messages');
select is(tests.attempt('doctor_with', $$update public.practitioners set consultation_fee_minor = 2500000 where id = 'd1000000-0000-4000-8000-000000000001'$$),
  '1', 'before: the doctor changes their fee');
select is(tests.attempt('doctor_with', format(
    $$select count(*) from public.book_appointment('d1000000-0000-4000-8000-000000000001', %L, null, null, '11111111-1111-4111-8111-111111111111')$$,
    tests.next_monday_10())),
  '1', 'before: the doctor books their patient into their own calendar');
select isnt_empty(format($$select * from public.available_slots('d1000000-0000-4000-8000-000000000001', %L, %L)$$,
    tests.next_monday_10() - interval '1 hour', tests.next_monday_10() + interval '7 hours'),
  'before: the doctor''s calendar offers slots');
select is(tests.attempt('responder', $$select count(*) from public.emergency_requests where id = 'ee000000-0000-4000-8000-000000000002'$$),
  '1', 'before: the responder reads the emergency assigned to them');
select is(tests.attempt('responder', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$),
  '1', 'before: the responder reads the requester''s profile');
select is(tests.attempt('responder', $$select count(*) from public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'en_route')$$),
  '1', 'before: the responder moves their emergency on');
select is(tests.attempt('dispatcher', $$select count(*) from public.nearest_responders('ee000000-0000-4000-8000-000000000001') where responder_id = '6a666666-6666-4666-8666-666666666666'$$),
  '1', 'before: the second responder is offered for the open request');
select is(tests.attempt('dispatcher', $$select count(*) from public.assign_responder('ee000000-0000-4000-8000-000000000001', '6a666666-6666-4666-8666-666666666666')$$),
  '1', 'before: a dispatcher assigns the second responder');
select is(tests.attempt('dispatcher', $$select count(*) from public.claim_next_emergency()$$),
  '1', 'before: the dispatcher claims the open request');
select is(tests.attempt('admin', $$select count(*) from public.grant_role('22222222-2222-4222-8222-222222222222', 'nurse')$$),
  '1', 'before: the admin grants roles');

-- The admin revokes the doctor and both responders ------------------------------------------------
select tests.act_as('admin');
select ok(public.revoke_role('33333333-3333-4333-8333-333333333333', 'doctor'), 'the admin revokes the doctor role');
select ok(public.revoke_role('66666666-6666-4666-8666-666666666666', 'responder'), 'and the responder role');
select ok(public.revoke_role('6a666666-6666-4666-8666-666666666666', 'responder'), 'and the second responder''s');
select tests.act_as_owner();

select results_eq(
  $$select actor_id, actor_role from private.audit_log
     where table_name = 'user_roles' and row_id = '33333333-3333-4333-8333-333333333333/doctor' and action = 'DELETE'$$,
  $$values ('77777777-7777-4777-8777-777777777777'::uuid, 'admin'::text)$$,
  'the revocation is audited with the admin who made it');
select is((select old.claims -> 'user_roles' from tests.old_tokens old where old.name = 'doctor_with'), '["doctor", "patient"]'::jsonb,
  'the doctor''s old token still claims the doctor role');
select is(tests.fresh_claims('doctor_with') -> 'user_roles', '["patient"]'::jsonb,
  'a token issued now no longer does');

-- Standing ends with the role.
select results_eq(
  $$select active, accepting_patients from public.practitioners where id = 'd1000000-0000-4000-8000-000000000001'$$,
  $$values (false, false)$$, 'the revoked doctor''s practitioner record is inactive and accepts no patients');
select results_eq(
  $$select id, active, on_duty from public.responders
     where id in ('66666666-6666-4666-8666-666666666666', '6a666666-6666-4666-8666-666666666666') order by id$$,
  $$values ('66666666-6666-4666-8666-666666666666'::uuid, false, false), ('6a666666-6666-4666-8666-666666666666'::uuid, false, false)$$,
  'the revoked responders'' records are inactive and off duty');
select is_empty(format($$select * from public.available_slots('d1000000-0000-4000-8000-000000000001', %L, %L)$$,
    tests.next_monday_10() - interval '1 hour', tests.next_monday_10() + interval '7 hours'),
  'the revoked doctor''s calendar offers no slot');
select is((select count(*)::int from public.practitioners where id = 'd2000000-0000-4000-8000-000000000002' and active and accepting_patients), 1,
  'another doctor''s standing is untouched');

-- The revoked doctor, with the old token and with a new one ----------------------------------------
select is(tests.with_old_and_new_token('doctor_with', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$),
  'old token: 0, new token: 0', 'a revoked doctor no longer reads their former patient''s profile');
select is(tests.with_old_and_new_token('doctor_with', $$select count(*) from public.appointments where practitioner_id = 'd1000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor the appointments in their calendar');
select is(tests.with_old_and_new_token('doctor_with', $$select count(*) from public.consultations where id = 'c1000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor the consultations');
select is(tests.with_old_and_new_token('doctor_with', $$select count(*) from public.messages where conversation_id = 'cc000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor the consultation''s messages');
select is(tests.with_old_and_new_token('doctor_with', $$select count(*) from public.message_reads where message_id = 'e1000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor its read receipts');
select is(tests.with_old_and_new_token('doctor_with', $$insert into public.messages (conversation_id, body) values ('cc000000-0000-4000-8000-000000000001', 'still here')$$),
  'old token: 0, new token: 0', 'nor posts in the conversation');
select is(tests.with_old_and_new_token('doctor_with', $$update public.practitioners set consultation_fee_minor = 1 where id = 'd1000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor changes their fee');
select is(tests.with_old_and_new_token('doctor_with', $$update public.practitioners set accepting_patients = true where id = 'd1000000-0000-4000-8000-000000000001'$$),
  'old token: 0, new token: 0', 'nor opens their calendar again');
select is(tests.with_old_and_new_token('doctor_with', $$insert into public.availability_rules (practitioner_id, weekday, start_time, end_time) values ('d1000000-0000-4000-8000-000000000001', 3, '13:00', '14:00')$$),
  'old token: 0, new token: 0', 'nor adds hours to it');
select is(tests.with_old_and_new_token('patient_a', $$select count(*) from public.messages where conversation_id = 'cc000000-0000-4000-8000-000000000001'$$),
  'old token: 2, new token: 2', 'the patient still reads the whole conversation');
-- Even with the calendar open again (behind the API's back), the revoked doctor cannot book.
update public.practitioners set accepting_patients = true where id = 'd1000000-0000-4000-8000-000000000001';
select is(tests.refusals_with_old_and_new_token('doctor_with', format(
    $$select count(*) from public.book_appointment('d1000000-0000-4000-8000-000000000001', %L, null, null, '11111111-1111-4111-8111-111111111111')$$,
    tests.next_monday_10())),
  'old token: refused, new token: refused', 'nor books a patient into their calendar');
update public.practitioners set accepting_patients = false where id = 'd1000000-0000-4000-8000-000000000001';

-- The revoked responders ------------------------------------------------------------------------------
select is(tests.with_old_and_new_token('responder', $$select count(*) from public.emergency_requests where id = 'ee000000-0000-4000-8000-000000000002'$$),
  'old token: 0, new token: 0', 'a revoked responder no longer reads the emergency assigned to them');
select is(tests.with_old_and_new_token('responder', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$),
  'old token: 0, new token: 0', 'nor the requester''s profile');
select is(tests.refusals_with_old_and_new_token('responder',
    $$select count(*) from public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'en_route')$$),
  'old token: refused, new token: refused', 'nor moves it on');
select is(tests.with_old_and_new_token('responder_2', $$update public.responders set on_duty = true where id = auth.uid()$$),
  'old token: 0, new token: 0', 'a revoked responder cannot put themselves back on duty');

-- Even on duty (set behind the API's back), a revoked responder is neither offered nor assigned.
update public.responders set on_duty = true where id = '6a666666-6666-4666-8666-666666666666';
select is(tests.attempt('dispatcher', $$select count(*) from public.nearest_responders('ee000000-0000-4000-8000-000000000001') where responder_id = '6a666666-6666-4666-8666-666666666666'$$),
  '0', 'a revoked responder is not offered to dispatchers');
select is(tests.refusals_with_old_and_new_token('dispatcher',
    $$select count(*) from public.assign_responder('ee000000-0000-4000-8000-000000000001', '6a666666-6666-4666-8666-666666666666')$$),
  'old token: refused, new token: refused', 'a revoked responder cannot be assigned');
select tests.act_as('responder_2');
select ok(not public.authorize('emergencies.respond'), 'the old token''s claim carries no permission any more');
select tests.act_as_owner();

-- The revoked dispatcher --------------------------------------------------------------------------------
select tests.act_as('dispatcher');
select is((select id from public.claim_next_emergency()), 'ee000000-0000-4000-8000-000000000001'::uuid,
  'the dispatcher holds a claim when their role is revoked');
select tests.act_as_owner();
select tests.act_as('admin');
select ok(public.revoke_role('55555555-5555-4555-8555-555555555555', 'dispatcher'), 'the admin revokes the dispatcher role');
select tests.act_as_owner();
select is((select claimed_by from public.emergency_requests where id = 'ee000000-0000-4000-8000-000000000001'), null::uuid,
  'the revoked dispatcher''s claim goes back to the queue');
select isnt_empty($$select 1 from private.realtime_events
   where topic = 'dispatch' and event = 'emergency:released' and payload ->> 'id' = 'ee000000-0000-4000-8000-000000000001'$$,
  'and the other dispatchers are told');
select is(tests.with_old_and_new_token('dispatcher', $$select count(*) from public.claim_next_emergency()$$),
  'old token: 0, new token: 0', 'a revoked dispatcher cannot claim');
select is(tests.with_old_and_new_token('dispatcher', $$select count(*) from public.dispatch_queue()$$),
  'old token: 0, new token: 0', 'nor see the queue');
select is(tests.with_old_and_new_token('dispatcher', $$select count(*) from public.emergency_requests$$),
  'old token: 0, new token: 0', 'nor read emergencies');
select is(tests.with_old_and_new_token('dispatcher', $$select count(*) from public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')$$),
  'old token: 0, new token: 0', 'nor assign one');

-- The revoked admin -----------------------------------------------------------------------------------------
select tests.act_as('admin_2');
select ok(public.revoke_role('77777777-7777-4777-8777-777777777777', 'admin'), 'a second admin revokes the first');
select tests.act_as_owner();
select is(tests.with_old_and_new_token('admin', $$select count(*) from public.grant_role('22222222-2222-4222-8222-222222222222', 'admin')$$),
  'old token: 0, new token: 0', 'a revoked admin cannot grant roles');
select is(tests.with_old_and_new_token('admin', $$select count(*) from public.grant_role('55555555-5555-4555-8555-555555555555', 'dispatcher') $$),
  'old token: 0, new token: 0', 'not even back to whom they were revoked from');
select is(tests.with_old_and_new_token('admin', $$select count(*)::int from (select public.revoke_role('7a777777-7777-4777-8777-777777777777', 'admin')) r$$),
  'old token: 0, new token: 0', 'nor revoke them');
select is(tests.with_old_and_new_token('admin', $$select count(*) from public.profiles where id <> auth.uid()$$),
  'old token: 0, new token: 0', 'nor read anyone else''s profile');

-- Tokens only ever narrow what the database grants -----------------------------------------------------------
select is(tests.attempt('patient_a', (select claims from tests.old_tokens where name = 'patient_a') || '{"user_role": "admin", "user_roles": ["admin"]}',
    $$select count(*) from public.profiles$$),
  '1', 'a token claiming a role never granted carries nothing of it');
select tests.act_as('admin_2');
select is((public.grant_role('22222222-2222-4222-8222-222222222222', 'dispatcher')).role, 'dispatcher'::public.app_role,
  'an admin grants a new role');
select tests.act_as_owner();
select is(tests.attempt('patient_b', (select claims from tests.old_tokens where name = 'patient_b'), $$select count(*) from public.dispatch_queue()$$),
  '0', 'a new grant is not effective on a token issued before it');
select is(tests.attempt('patient_b', tests.fresh_claims('patient_b'), $$select count(*) from public.dispatch_queue()$$),
  '1', 'it is on the next token');
select tests.act_as('admin_2');
select ok(public.grant_role('66666666-6666-4666-8666-666666666666', 'responder') is not null, 'a responder''s role is granted again');
select tests.act_as_owner();
select results_eq($$select active, on_duty from public.responders where id = '66666666-6666-4666-8666-666666666666'$$,
  $$values (true, false)$$, 'which restores their standing, off duty until they say otherwise');
select tests.act_as('admin_2');
select ok(public.grant_role('33333333-3333-4333-8333-333333333333', 'doctor') is not null, 'a doctor''s role is granted again');
select tests.act_as_owner();
select results_eq($$select active, accepting_patients from public.practitioners where id = 'd1000000-0000-4000-8000-000000000001'$$,
  $$values (false, false)$$, 'which leaves the practitioner record inactive until an admin registers them again');

select * from finish();
rollback;
