-- Attack: a responder whose role was revoked keeps acting (issue 11 #2). The responder persona
-- is assigned the world's emergency ee…02; revocation is simulated as revoke_role does it (the
-- user_roles row deleted, the responder record set inactive) while the old token still claims
-- the role. Every responder power — reading the assigned emergency and its requester, moving
-- it, assessing it, going on duty, being assigned — must stop at once. The same calls succeed
-- before the revocation, so each check can fail.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(20);

-- A responder with a new token that no longer carries the role: the token narrows.
insert into tests.personas values (11, 'responder_new_token', 'authenticated', '66666666-6666-4666-8666-666666666666', 'patient');

-- Before: the responder's powers work -----------------------------------------------------------
select is(tests.attempt('responder', 'select count(*) from public.emergency_requests'), '1',
  'before: the responder reads the emergency assigned to them');
select is(tests.attempt('responder', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$), '1',
  'before: and its requester''s profile');
select is(tests.attempt('responder', $$select count(*) from public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'en_route')$$), '1',
  'before: they set off');
select is(tests.attempt('responder', $$select count(*) from public.assess_emergency('ee000000-0000-4000-8000-000000000002', '{"pulse": 90}')$$), '1',
  'before: they record an assessment');
select is(tests.attempt('responder', 'update public.responders set on_duty = on_duty'), '1', 'before: they go on and off duty');
select tests.act_as('dispatcher');
select is((select count(*)::int from public.nearest_responders('ee000000-0000-4000-8000-000000000001', 5)), 0,
  'before: busy on ee…02, the responder is not offered');
select tests.act_as_owner();

-- A token without the role: nothing, though the record is active -------------------------------
select is(tests.attempt('responder_new_token', 'select count(*) from public.emergency_requests'), '0',
  'a token without the responder role reads no assigned emergency');
select throws_ok($$select tests.act_as('responder_new_token');
                   select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'en_route')$$,
  'PT404', null, 'and cannot move it');
select tests.act_as_owner();

-- Revocation --------------------------------------------------------------------------------------
delete from public.user_roles where user_id = '66666666-6666-4666-8666-666666666666' and role = 'responder';
update public.responders set active = false where id = '66666666-6666-4666-8666-666666666666';

select is(tests.attempt('responder', 'select count(*) from public.emergency_requests'), '0',
  'revoked, with the old token: the assigned emergency is no longer readable');
select is(tests.attempt('responder', $$select count(*) from public.profiles where id = '11111111-1111-4111-8111-111111111111'$$), '0',
  'nor its requester''s profile');
select throws_ok($$select tests.act_as('responder'); select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'on_scene')$$,
  'PT404', null, 'the revoked responder cannot move the emergency (it does not exist for them)');
select throws_ok($$select tests.act_as('responder'); select public.assess_emergency('ee000000-0000-4000-8000-000000000002', '{"pulse": 60}')$$,
  'PT404', null, 'nor assess it');
select is(tests.attempt('responder', 'update public.responders set on_duty = true'), '0', 'nor go on duty');
select tests.act_as_owner();
select results_eq($$select status, assessed_at from public.emergency_requests where id = 'ee000000-0000-4000-8000-000000000002'$$,
  $$values ('assigned'::text, null::timestamptz)$$,
  'the revoked responder''s attempts changed nothing (the "before" probes were rolled back)');

-- Dispatchers cannot route to a revoked responder ----------------------------------------------------
update public.emergency_requests set status = 'resolved' where id = 'ee000000-0000-4000-8000-000000000002';
update public.responders set on_duty = true where id = '66666666-6666-4666-8666-666666666666';
select tests.act_as('dispatcher');
select is_empty($$select * from public.nearest_responders('ee000000-0000-4000-8000-000000000001', 5)$$,
  'free and on duty, a revoked responder is not offered');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')$$,
  'PT409', 'this responder is not an active responder', 'nor assignable');
select tests.act_as_owner();

-- The role alone decides too: a record still active but the grant gone is not assignable.
update public.responders set active = true where id = '66666666-6666-4666-8666-666666666666';
select tests.act_as('dispatcher');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')$$,
  'PT409', 'this responder is not an active responder', 'an active record without a current grant is not assignable');
select tests.act_as_owner();
-- And the flag alone: the grant back, the record inactive.
insert into public.user_roles (user_id, role) values ('66666666-6666-4666-8666-666666666666', 'responder');
update public.responders set active = false where id = '66666666-6666-4666-8666-666666666666';
select is(tests.attempt('responder', 'select count(*) from public.responders where on_duty'), '1',
  'an inactive responder still sees their own record');
select tests.act_as('dispatcher');
select throws_ok($$select public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')$$,
  'PT409', 'this responder is not an active responder', 'a granted but inactive responder is not assignable');
select tests.act_as_owner();
-- Reinstated: assignable again.
update public.responders set active = true where id = '66666666-6666-4666-8666-666666666666';
select tests.act_as('dispatcher');
select is((public.assign_responder('ee000000-0000-4000-8000-000000000001', '66666666-6666-4666-8666-666666666666')).status, 'assigned',
  'reinstated (role and record), the responder is assignable again');
select tests.act_as_owner();

select * from finish();
rollback;
