-- Attack: one account floods the dispatch queue (issue 11 #3). Persona A (a patient) raises
-- emergency after emergency, each self-reported as life-threatening so that it would be ESI 1
-- and page every dispatcher. Each report still reaches the top of the queue; what stops the
-- flood is the requester's limits (open at once, raised per window), paging at most once per
-- burst, the dispatcher's abuse mark, and staff assessment superseding the report.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(35);

insert into auth.users (id, email) values ('a9999999-9999-4999-8999-999999999999', 'flooder@example.org');
insert into tests.personas values (10, 'flooder', 'authenticated', 'a9999999-9999-4999-8999-999999999999', 'patient');
update public.profiles set phone = '+2348030000005' where id = '55555555-5555-4555-8555-555555555555';

create temp table flood (n int, id uuid) on commit drop;
grant all on flood to authenticated;

-- A report of a life-threatening situation goes to the top, and pages once ----------------------
select tests.act_as('flooder');
insert into flood select 1, id from public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}');
insert into flood select 2, id from public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}');
insert into flood select 3, id from public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}');
select tests.act_as_owner();
select results_eq($$select e.esi_level from public.emergency_requests e join flood f using (id) order by f.n$$,
  $$values (1::smallint), (1::smallint), (1::smallint)$$, 'each self-reported life-threatening request is ESI 1');
select tests.act_as('dispatcher');
select is((select id from public.dispatch_queue() limit 1), (select id from flood where n = 1),
  'and the first of them is at the top of the dispatch queue');
select tests.act_as_owner();
select is((select count(*)::int from private.outbox where template = 'emergency_high_risk'), 1,
  'three paging emergencies in one burst page the dispatchers once');
select is((select count(*)::int from public.emergency_requests e join flood f using (id) where e.paged_at is not null), 1,
  'the request that paged is marked');
select is((select count(*)::int from private.realtime_events where event = 'emergency:new'), 3,
  'every request is still announced on the dispatch topic');

-- The open limit ------------------------------------------------------------------------------------
select tests.act_as('flooder');
select throws_ok($$select public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}')$$, 'PT422',
  'you already have 3 open emergency requests (at most 3); dispatchers are handling them', 'a fourth open request is refused');
select tests.act_as_owner();
select is(tests.error_detail('flooder', $$select public.raise_emergency(6.5, 3.4, 'help')$$),
  '{"code": "too_many_open_emergencies", "open": 3, "limit": 3}'::jsonb, 'with its code and the numbers');
select is((select count(*)::int from public.emergency_requests where requester_id = 'a9999999-9999-4999-8999-999999999999'), 3,
  'the refused request stored nothing');
select is((select count(*)::int from private.outbox), 1, 'and paged nobody');

-- A dispatcher marks abuse --------------------------------------------------------------------------
select tests.act_as('flooder');
select throws_ok($$select public.mark_emergency_abuse((select id from flood where n = 1))$$, '42501', null,
  'a requester cannot mark requests as abuse');
select tests.act_as_owner();
select tests.act_as('responder');
select throws_ok($$select public.mark_emergency_abuse((select id from flood where n = 1))$$, '42501', null,
  'nor can a responder');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select is((public.mark_emergency_abuse((select id from flood where n = 1), 'prank caller, third time today')).status, 'cancelled',
  'a dispatcher marks a request as abuse: it is cancelled');
select throws_ok($$select public.mark_emergency_abuse((select id from flood where n = 1))$$, 'PT422',
  'an emergency request cannot go from cancelled to cancelled', 'a closed request is not marked twice');
select throws_ok(format('select public.mark_emergency_abuse(%L, %L)', (select id from flood where n = 2), repeat('x', 501)), '22023',
  'the note is 501 characters long; at most 500 are accepted', 'the note is bounded');
select tests.act_as_owner();
select results_eq(
  $$select abuse_marked_by, abuse_note, abuse_marked_at is not null from public.emergency_requests where id = (select id from flood where n = 1)$$,
  $$values ('55555555-5555-4555-8555-555555555555'::uuid, 'prank caller, third time today', true)$$,
  'the mark stays on the request: who, when, why');
select ok((select changed_columns @> array['abuse_marked_at', 'abuse_marked_by', 'abuse_note', 'status']
             and actor_id = '55555555-5555-4555-8555-555555555555'
             from private.audit_log
            where table_name = 'emergency_requests' and row_id = (select id::text from flood where n = 1) and action = 'UPDATE'
            order by id desc limit 1),
  'the audit log records who marked it');
select throws_ok($$delete from private.audit_log where table_name = 'emergency_requests'$$, '42501', null,
  'and keeps it (append-only)');

-- The rate limit ------------------------------------------------------------------------------------
select tests.act_as('flooder');
insert into flood select 4, id from public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select public.mark_emergency_abuse((select id from flood where n = 4));
select tests.act_as_owner();
select tests.act_as('flooder');
insert into flood select 5, id from public.raise_emergency(6.5, 3.4, 'help', null, '{"lifesaving_intervention": true}');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select public.mark_emergency_abuse((select id from flood where n = 5));
select tests.act_as_owner();
select tests.act_as('flooder');
select throws_ok($$select public.raise_emergency(6.5, 3.4, 'help')$$, 'PT429',
  'you have raised 5 emergency requests in the last 60 minutes (at most 5)',
  'with 2 open, a sixth request within the hour is rate limited (PT429: HTTP 429)');
select tests.act_as_owner();
select is(tests.error_detail('flooder', $$select public.raise_emergency(6.5, 3.4, 'help')$$),
  '{"code": "emergency_rate_limited", "raised": 5, "limit": 5, "window_minutes": 60}'::jsonb, 'with its code and the window');
update public.emergency_requests set created_at = now() - interval '61 minutes'
 where id in (select id from flood where n in (1, 4));
select tests.act_as('flooder');
insert into flood select 6, id from public.raise_emergency(6.5, 3.4, 'help');
select isnt((select id from flood where n = 6), null, 'once the window has passed, the requester may raise again');
select tests.act_as_owner();
set local careplane.max_open_emergencies = '1';
select throws_ok($$select tests.act_as('flooder'); select public.raise_emergency(6.5, 3.4, 'help')$$, 'PT422', null,
  'careplane.max_open_emergencies overrides the limit');
reset careplane.max_open_emergencies;
select tests.act_as_owner();

-- Reported versus assessed --------------------------------------------------------------------------
select is((select findings from public.emergency_requests where id = (select id from flood where n = 2)),
  '{"lifesaving_intervention": true}'::jsonb, 'what the requester reported is stored as theirs');
select tests.act_as('flooder');
select throws_ok($$select public.assess_emergency((select id from flood where n = 2), '{"consciousness": "A"}')$$, '42501',
  'staff assess an emergency request; a requester may not', 'a requester cannot assess their own request');
select tests.act_as_owner();
select tests.act_as('dispatcher');
select is((public.assess_emergency((select id from flood where n = 2),
    '{"consciousness": "A", "spo2": 98, "pulse": 80, "respiration_rate": 16}', '{"resources": ["xray"]}')).esi_level,
  4::smallint, 'a dispatcher''s assessment supersedes the report (ESI 1 → 4)');
select throws_ok($$select public.assess_emergency((select id from flood where n = 2))$$, '22023',
  'give vitals, findings or both to assess', 'an assessment gives something');
select tests.act_as_owner();
select results_eq(
  $$select findings, assessed_findings, assessed_by, triage -> 'sources'
      from public.emergency_requests where id = (select id from flood where n = 2)$$,
  $$values ('{"lifesaving_intervention": true}'::jsonb, '{"resources": ["xray"]}'::jsonb,
            '55555555-5555-4555-8555-555555555555'::uuid, '{"vitals": "assessed", "findings": "assessed"}'::jsonb)$$,
  'both are kept, with who assessed and which source triage used');
select tests.act_as('dispatcher');
select isnt((select id from public.dispatch_queue() limit 1), (select id from flood where n = 2),
  'the assessed request no longer heads the queue');
select tests.act_as_owner();

-- The burst is the requester's own: another person's emergency pages --------------------------------
select set_config('careplane.max_open_emergencies', '10', true);  -- room for three more of patient_b's
select tests.act_as('patient_b');
select isnt((public.raise_emergency(5.6, -0.2, 'collapsed', '{"consciousness": "U"}')).paged_at, null::timestamptz,
  'another person''s ESI 1 within the flooder''s burst still pages');
select is((public.raise_emergency(5.6, -0.2, 'collapsed still', '{"consciousness": "U"}')).paged_at, null::timestamptz,
  'their own second ESI 1 within their burst does not page again');
select tests.act_as_owner();
update public.emergency_requests set paged_at = now() - interval '5 minutes'
 where paged_at is not null and requester_id = '22222222-2222-4222-8222-222222222222';
select tests.act_as('patient_b');
select isnt((public.raise_emergency(5.6, -0.2, 'collapsed again', '{"consciousness": "U"}')).paged_at, null::timestamptz,
  'once their burst is over, their next ESI 1 pages');
select tests.act_as_owner();
select is((select count(*)::int from private.outbox where template = 'emergency_high_risk'), 3, 'three pages in all');

-- Findings the size of a flood ------------------------------------------------------------------------
select tests.act_as('patient_b');
select throws_ok(format($f$select public.raise_emergency(5.6, -0.2, 'x', null, '{"resources": [%s]}')$f$,
                        (select string_agg('"labs"', ',') from generate_series(1, 200000))), '22023', null,
  'megabytes of findings are refused (22023), not stored');
select throws_ok(format($f$select public.raise_emergency(5.6, -0.2, 'x', null, '{"resources": [%s]}')$f$,
                        (select string_agg('"labs"', ',') from generate_series(1, 33))), '22023',
  'findings.resources: lists 33 resources; at most 32 are accepted', 'a long list of resources is refused naming the field');
select throws_ok(format($f$select public.raise_emergency(5.6, -0.2, 'x', '{"consciousness": "%s"}')$f$, repeat('U', 5000)), '22023',
  'vitals: is 5020 bytes of JSON; at most 4096 are accepted', 'oversized vitals are refused naming the field');
select tests.act_as_owner();
select is((select max(pg_column_size(findings)) < 4096 and max(pg_column_size(vitals)) < 4096
             from public.emergency_requests), true, 'what is stored stays small');

select * from finish();
rollback;
