-- Claims lapse and can be handed back, so no emergency is stranded with one dispatcher.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(8);

-- A second dispatcher.
insert into auth.users (id, email) values ('59999999-9999-4999-8999-999999999999', 'dispatcher2@example.org');
insert into public.user_roles (user_id, role) values ('59999999-9999-4999-8999-999999999999', 'dispatcher');
insert into tests.personas values (9, 'dispatcher_2', 'authenticated', '59999999-9999-4999-8999-999999999999', 'dispatcher');

select tests.act_as('dispatcher');
select is((select id from public.claim_next_emergency()), 'ee000000-0000-4000-8000-000000000001'::uuid,
  'the first dispatcher claims the only open request');
select tests.act_as_owner();
select tests.act_as('dispatcher_2');
select is_empty($$select * from public.claim_next_emergency()$$, 'a fresh claim is not handed to anyone else');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, '42501',
  null, 'nor can another dispatcher release it');
select tests.act_as_owner();

-- Ten minutes pass without an assignment.
update public.emergency_requests set claimed_at = now() - interval '11 minutes'
 where id = 'ee000000-0000-4000-8000-000000000001';
select tests.act_as('dispatcher_2');
select is((select claimed_by from public.claim_next_emergency()), '59999999-9999-4999-8999-999999999999'::uuid,
  'a lapsed claim goes to the next dispatcher who asks');
select tests.act_as_owner();

select tests.act_as('dispatcher');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, '42501',
  null, 'the first dispatcher no longer holds it');
select tests.act_as_owner();
select tests.act_as('dispatcher_2');
select is((public.release_emergency('ee000000-0000-4000-8000-000000000001')).claimed_by, null::uuid,
  'the claimant hands it back');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, 'PT409',
  null, 'an unclaimed request cannot be released');
select tests.act_as_owner();
select tests.act_as('patient_a');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, '42501',
  null, 'patients do not release emergencies');
select tests.act_as_owner();

select * from finish();
rollback;
