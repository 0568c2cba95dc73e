-- Claims lapse and can be handed back, so no emergency is stranded with one dispatcher.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(16);

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
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, 'PT409',
  'another dispatcher holds this emergency request', 'nor can another dispatcher release it');
select tests.act_as_owner();

-- Ten minutes pass without an assignment.
update public.emergency_requests set claimed_at = now() - interval '11 minutes'
 where id = 'ee000000-0000-4000-8000-000000000001';
select tests.act_as('dispatcher_2');
select is((select claimed_by from public.claim_next_emergency()), '59999999-9999-4999-8999-999999999999'::uuid,
  'a lapsed claim goes to the next dispatcher who asks');
select tests.act_as_owner();

select tests.act_as('dispatcher');
select throws_ok($$select public.release_emergency('ee000000-0000-4000-8000-000000000001')$$, 'PT409',
  'another dispatcher holds this emergency request', 'the first dispatcher no longer holds it');
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


-- The lapse is a named setting: careplane.claim_lapse_minutes overrides the rule's default (10).
select is(private.dispatch_setting('claim_lapse_minutes'), 10::bigint, 'the claim lapse defaults to 10 minutes');
select tests.act_as('dispatcher');
select is((select id from public.claim_next_emergency()), 'ee000000-0000-4000-8000-000000000001'::uuid, 'claimed again');
select tests.act_as_owner();
update public.emergency_requests set claimed_at = now() - interval '3 minutes' where id = 'ee000000-0000-4000-8000-000000000001';
select tests.act_as('dispatcher_2');
select is_empty($$select * from public.claim_next_emergency()$$, 'three minutes into a ten-minute claim, it holds');
set local careplane.claim_lapse_minutes = '2';
select is((select claimed_by from public.claim_next_emergency()), '59999999-9999-4999-8999-999999999999'::uuid,
  'with careplane.claim_lapse_minutes = 2 the same claim has lapsed');
set local careplane.claim_lapse_minutes = '0';
select throws_ok($$select * from public.claim_next_emergency()$$, '22023',
  'careplane.claim_lapse_minutes: must be a whole number between 1 and 1440, got "0"', 'an out-of-bounds setting is 22023 naming it');
reset careplane.claim_lapse_minutes;
select tests.act_as_owner();

-- The queue order is written once (private.emergency_queue) and served by its index: no sort.
create function tests.plan_of(q text) returns jsonb language plpgsql as $$
declare p json;
begin
  execute 'explain (format json) ' || q into p;
  return p::jsonb;
end
$$;
create function tests.index_order_without_sort(q text) returns boolean language sql as $$
  select not jsonb_path_exists(tests.plan_of(q), 'strict $.** ? (@."Node Type" == "Sort")')
     and jsonb_path_exists(tests.plan_of(q), 'strict $.** ? (@."Index Name" == "emergency_requests_queue_idx")')
$$;
set local enable_seqscan = off;
set local enable_bitmapscan = off;
select ok(tests.index_order_without_sort('select * from private.emergency_queue'),
  'dispatch_queue() reads the queue in index order, without sorting');
select ok(tests.index_order_without_sort($q$select q.id from private.emergency_queue q
            where q.claimed_by is null or not careplane.claim_is_live(q.claimed_at, now(), 10) limit 1 for update skip locked$q$),
  'claim_next_emergency() takes the first claimable request in index order, without sorting');
select ok(not tests.index_order_without_sort('select * from public.emergency_requests e where e.status = ''open'' order by e.created_at'),
  'the check fails for an order the index does not serve');
reset enable_seqscan;
reset enable_bitmapscan;

select * from finish();
rollback;
