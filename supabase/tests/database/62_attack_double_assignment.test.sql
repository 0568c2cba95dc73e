-- Attack: two dispatchers route the same request (issue 11 #7). Dispatcher 1 claims the world's
-- open request ee…01; dispatcher 2 tries to assign, reassign or release it while the claim is
-- live. Only after the claim lapses may another dispatcher take it over. (The same race on real
-- connections: tests/tests/dispatch_race.rs.)
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(13);

insert into auth.users (id, email) values ('59999999-9999-4999-8999-999999999999', 'dispatcher2@example.org');
insert into public.user_roles (user_id, role) values ('59999999-9999-4999-8999-999999999999', 'dispatcher');
insert into tests.personas values (9, 'dispatcher_2', 'authenticated', '59999999-9999-4999-8999-999999999999', 'dispatcher');
-- Two free responders.
insert into auth.users (id, email) values ('68888888-8888-4888-8888-888888888888', 'responder2@example.org'),
                                          ('69999999-9999-4999-8999-999999999999', 'responder3@example.org');
insert into public.user_roles (user_id, role) values ('68888888-8888-4888-8888-888888888888', 'responder'),
                                                     ('69999999-9999-4999-8999-999999999999', 'responder');
insert into public.responders (id, call_sign, on_duty, last_lat, last_lon) values
  ('68888888-8888-4888-8888-888888888888', 'ACC-02', true, 5.61, -0.18),
  ('69999999-9999-4999-8999-999999999999', 'ACC-03', true, 5.62, -0.17);

select tests.act_as('dispatcher');
select is((select id from public.claim_next_emergency()), 'ee000000-0000-4000-8000-000000000001'::uuid, 'dispatcher 1 claims ee…01');
select tests.act_as_owner();

select tests.act_as('dispatcher_2');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '69999999-9999-4999-8999-999999999999')$$,
  'PT409', 'another dispatcher holds this emergency request', 'dispatcher 2 cannot assign a request dispatcher 1 holds');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$,
  'PT409', 'another dispatcher holds this emergency request', 'nor release it');
select tests.act_as_owner();

select tests.act_as('dispatcher');
select is((public.assign_responder('ee000000-0000-4000-8000-000000000001', '68888888-8888-4888-8888-888888888888')).assigned_responder_id,
  '68888888-8888-4888-8888-888888888888'::uuid, 'dispatcher 1 assigns ACC-02');
select tests.act_as_owner();

select tests.act_as('dispatcher_2');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '69999999-9999-4999-8999-999999999999')$$,
  'PT409', 'another dispatcher holds this emergency request', 'nor reassign it just after (the assignment renews the claim)');
select tests.act_as_owner();
select results_eq($$select status, assigned_responder_id, claimed_by from public.emergency_requests where id = 'ee000000-0000-4000-8000-000000000001'$$,
  $$values ('assigned'::text, '68888888-8888-4888-8888-888888888888'::uuid, '55555555-5555-4555-8555-555555555555'::uuid)$$,
  'dispatcher 1''s assignment stands');
select is((select count(*)::int from public.notifications where kind = 'emergency:assigned'), 2, 'and notified once');

select tests.act_as('dispatcher');
select is((public.assign_responder('ee000000-0000-4000-8000-000000000001', '69999999-9999-4999-8999-999999999999')).assigned_responder_id,
  '69999999-9999-4999-8999-999999999999'::uuid, 'the claimant may reassign');
select tests.act_as_owner();

-- The claim lapses: a handover.
update public.emergency_requests set claimed_at = now() - interval '11 minutes' where id = 'ee000000-0000-4000-8000-000000000001';
select tests.act_as('dispatcher_2');
select is((public.assign_responder('ee000000-0000-4000-8000-000000000001', '68888888-8888-4888-8888-888888888888')).claimed_by,
  '59999999-9999-4999-8999-999999999999'::uuid, 'after the lapse another dispatcher may take over, and holds the claim');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000002', '68888888-8888-4888-8888-888888888888')$$,
  'PT409', 'this responder is already on another emergency', 'one responder is never on two emergencies');
select tests.act_as_owner();

-- Nobody else routes at all.
select tests.act_as('patient_b');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '69999999-9999-4999-8999-999999999999')$$,
  '42501', null, 'the requester cannot assign');
select tests.act_as_owner();
select tests.act_as('responder');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')$$,
  '42501', null, 'a responder cannot assign themselves');
select throws_ok($$select public.claim_next_emergency()$$, '42501', null, 'nor claim');
select tests.act_as_owner();

select * from finish();
rollback;
