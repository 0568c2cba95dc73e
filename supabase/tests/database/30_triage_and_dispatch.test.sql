-- NEWS2 and ESI through SQL, and the dispatch RPCs as PostgREST calls them.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(68);


-- One list of statuses -------------------------------------------------------------------------------
select is(careplane.emergency_statuses(), array['open', 'assigned', 'en_route', 'on_scene', 'resolved', 'cancelled'],
  'the statuses, in life-cycle order, from the extension');
select ok(careplane.emergency_active_statuses() <@ careplane.emergency_statuses()
      and careplane.emergency_responder_statuses() <@ careplane.emergency_active_statuses()
      and not 'open' = any (careplane.emergency_responder_statuses()),
  'active statuses are statuses, and the statuses with a responder are active ones after open');
select throws_ok($$insert into public.emergency_requests (requester_id, lat, lon, status)
                   values ('11111111-1111-4111-8111-111111111111', 1, 1, 'closed')$$, '23514', null,
  'the status constraint calls the extension''s list');
-- Every status literal in the SQL that touches emergency_requests (functions, the queue view,
-- indexes, policies) is one of the extension's: a misspelt or retired status fails here rather
-- than silently matching nothing.
create temp table status_literals on commit drop as
  select distinct m[2] as literal from (
    select p.prosrc as src from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where n.nspname in ('public', 'private', 'access') and p.prosrc like '%emergency_requests%'
    union all select pg_catalog.pg_get_viewdef('private.emergency_queue'::regclass)
    union all select pg_catalog.pg_get_indexdef(i.indexrelid) from pg_catalog.pg_index i
               where i.indrelid = 'public.emergency_requests'::regclass
    union all select pg_catalog.pg_get_expr(pol.polqual, pol.polrelid) from pg_catalog.pg_policy pol
               where pol.polrelid = 'public.emergency_requests'::regclass
  ) t, regexp_matches(t.src, 'status\s*(=|<>|!=)\s*''([a-z_]+)''', 'g') m;
select ok((select array_agg(literal) from status_literals) @> array['open', 'assigned'],
  'the status-literal scan finds the literals it checks');
select is_empty($$select literal from status_literals where literal <> all (careplane.emergency_statuses())$$,
  'every status SQL names is in careplane.emergency_statuses()');

-- careplane.news2 ----------------------------------------------------------------------------------
select is(
  careplane.news2('{"respiration_rate": 16, "spo2": 97, "supplemental_oxygen": false, "systolic_bp": 120,
                    "pulse": 70, "consciousness": "A", "temperature": 37.5}') - 'response',
  '{"total": 0, "complete": true, "partial_total": 0, "risk": "low", "single_parameter_3": false, "missing": [],
    "components": {"respiration_rate": 0, "spo2": 0, "supplemental_oxygen": 0, "systolic_bp": 0, "pulse": 0,
                   "consciousness": 0, "temperature": 0}}'::jsonb,
  'normal observations: total 0, every component named (37.5 °C scores 0, as the chart says)');
select is(careplane.news2('{"respiration_rate": 16}') -> 'response' ->> 'monitoring', 'minimum 12-hourly',
  'the response comes with the score');
select is(
  careplane.news2('{"respiration_rate": 25, "spo2": 91, "supplemental_oxygen": true, "systolic_bp": 90, "pulse": 131,
                    "consciousness": "U", "temperature": 35.0}') ->> 'total', '20', 'the worst observations total 20');
select results_eq(
  $$select careplane.news2(v) ->> 'risk', (careplane.news2(v) ->> 'total')::int from (values
      ('{"respiration_rate": 12, "spo2": 96, "supplemental_oxygen": false, "systolic_bp": 111, "pulse": 91, "consciousness": "A", "temperature": 36.1}'::jsonb),
      ('{"respiration_rate": 12, "spo2": 96, "supplemental_oxygen": false, "systolic_bp": 111, "pulse": 51, "consciousness": "C", "temperature": 36.1}'::jsonb),
      ('{"respiration_rate": 21, "spo2": 94, "supplemental_oxygen": false, "systolic_bp": 101, "pulse": 91, "consciousness": "A", "temperature": 36.1}'::jsonb),
      ('{"respiration_rate": 21, "spo2": 94, "supplemental_oxygen": true, "systolic_bp": 101, "pulse": 91, "consciousness": "A", "temperature": 36.1}'::jsonb),
      ('{"respiration_rate": 21, "spo2": 94, "supplemental_oxygen": true, "systolic_bp": 101, "pulse": 111, "consciousness": "A", "temperature": 36.1}'::jsonb)
    ) t(v)$$,
  $$values ('low', 1), ('low-medium', 3), ('medium', 5), ('high', 7), ('high', 8)$$,
  'risk at each response threshold: 1 low, a single 3 low-medium, 5 medium, 7 high');
select is(
  careplane.news2('{"respiration_rate": 18, "spo2": 95, "spo2_scale": 2, "hypercapnic_respiratory_failure": true,
                    "supplemental_oxygen": true, "systolic_bp": 120, "pulse": 80, "consciousness": "A", "temperature": 37}')
    -> 'components' ->> 'spo2', '2', 'scale 2: 95 % on oxygen scores 2');
select is(
  careplane.news2('{"respiration_rate": 18, "spo2": 95, "spo2_scale": 2, "hypercapnic_respiratory_failure": true,
                    "supplemental_oxygen": false, "systolic_bp": 120, "pulse": 80, "consciousness": "A", "temperature": 37}')
    -> 'components' ->> 'spo2', '0', 'scale 2: 95 % on air scores 0');
select is(
  careplane.news2('{"respiration_rate": 30, "pulse": 80}') - 'response' - 'components',
  '{"total": null, "complete": false, "partial_total": 3, "risk": "low-medium", "single_parameter_3": true,
    "missing": ["spo2", "supplemental_oxygen", "systolic_bp", "consciousness", "temperature"]}'::jsonb,
  'missing parameters: no total, named, with the partial score as a lower bound — never a silent 0');
select throws_ok($$select careplane.news2('{"spo2": 101}')$$, '22023', 'vitals.spo2: must be a whole number between 0 and 100, got 101',
  'SpO2 above 100 is 22023 naming the field');
select throws_ok($$select careplane.news2('{"respiration_rate": -1}')$$, '22023', null, 'a negative rate is 22023');
select throws_ok($$select careplane.news2('{"temperature": 46}')$$, '22023', 'vitals.temperature: must be between 25 and 45, got 46',
  'a temperature outside 25–45 °C is 22023');
select throws_ok($$select careplane.news2('{"consciousness": "Z"}')$$, '22023', null, 'an unknown ACVPU letter is 22023');
select throws_ok($$select careplane.news2('{"spo2_scale": 2, "spo2": 90}')$$, '22023', null,
  'scale 2 without the hypercapnic respiratory failure flag is 22023');

-- careplane.esi ------------------------------------------------------------------------------------
select is(careplane.esi('{"lifesaving_intervention": true, "expected_resources": 0}') ->> 'level', '1', 'ESI A → 1');
select is(careplane.esi('{"pain_score": 8, "expected_resources": 0}') ->> 'level', '2', 'ESI B (severe pain) → 2');
select is(careplane.esi('{"expected_resources": 0}') ->> 'level', '5', 'ESI C: no resources → 5');
select is(careplane.esi('{"resources": ["labs"]}') ->> 'level', '4', 'ESI C: one resource → 4');
select is(careplane.esi('{"resources": ["labs", "xray"], "age_years": 30, "pulse": 90, "respiration_rate": 18, "spo2": 97}') ->> 'level',
  '3', 'ESI C: two resources, normal vitals → 3');
select is(careplane.esi('{"expected_resources": 2, "age_months": 1, "pulse": 181, "respiration_rate": 40, "spo2": 99}') -> 'decision_points' ->> -1,
  'D: danger-zone vital signs (pulse 181 > 180 for age <3 months)', 'ESI D names the danger-zone vital');
select throws_ok($$select careplane.esi('{"expected_resources": 2, "heart_rate": 90}')$$, '22023', null,
  'one name per vital sign: heart_rate is not an alias of pulse');
select throws_ok($$select careplane.esi('{"expected_resources": 2, "respiratory_rate": 18}')$$, '22023', null,
  'one name per vital sign: respiratory_rate is not an alias of respiration_rate');

-- careplane.assess ---------------------------------------------------------------------------------
select is(careplane.assess('{"spo2": 89, "consciousness": "A"}', null, null, null, null, current_date) -> 'esi' ->> 'level', '1',
  'the SpO2 path: a measured SpO2 of 89 is a lifesaving need (ESI 1)');
select is(careplane.assess('{"spo2": 90, "consciousness": "A"}', null, null, null, null, current_date) -> 'esi' ->> 'level', '2',
  'the SpO2 path: 90 is not A, but below 92 it is a danger-zone vital (ESI 2)');
select is(careplane.assess('{"spo2": 89}', null, null, null, null, current_date) ->> 'page', 'true', 'ESI 1 pages');
select is(careplane.assess(null, '{"expected_resources": 2}', null, null, '2025-01-15', '2026-11-14') ->> 'age_months', '21',
  'age in completed months from the date of birth');
select is(careplane.assess('{"pulse": 150}', '{"expected_resources": 2}', null, null, '2025-01-15', '2026-11-14') -> 'esi' ->> 'level', '3',
  'the danger zone for a toddler: pulse 150 is within the limit of 160');
select is(careplane.assess('{"pulse": 150}', '{"expected_resources": 2}', null, null, '1980-01-15', '2026-11-14') -> 'esi' ->> 'level', '2',
  'and beyond an adult''s 100');
select is(careplane.assess('{"consciousness": "U"}', '{"lifesaving_intervention": true}', '{"consciousness": "A", "spo2": 98}', '{"resources": ["xray"]}', null, current_date)
    - 'news2' - 'esi' - 'reported' - 'assessed',
  '{"news2_total": null, "age_months": null, "page": false, "priority": 420, "sources": {"vitals": "assessed", "findings": "assessed"}}'::jsonb,
  'staff assessment supersedes the report, and the sources say so');
select throws_ok($$select careplane.assess(null, '{"esi_level": 1}', null, null, null, current_date)$$, '22023', null,
  'a level from the client is refused');
select throws_ok($$select careplane.assess(null, null, null, null, null, null)$$, '22023', 'today: required', 'today is required');
select throws_ok($$select careplane.assess('{"spo2": 1e400}', null, null, null, null, current_date)$$, '22023', null,
  'a number out of range in the vitals is 22023, not a crash (XX000)');
select throws_ok(format('select careplane.assess(null, %L, null, null, null, current_date)',
                        repeat('{"a": ', 300) || '1' || repeat('}', 300)), '22023', null,
  'findings nested 300 levels deep are 22023, not a crash');
select throws_ok($$select careplane.esi('{"level": 1, "expected_resources": 0}')$$, '22023', null,
  'the level is computed, never accepted');

-- raise_emergency ------------------------------------------------------------------------------------
update public.profiles set phone = '+2348030000005' where id = '55555555-5555-4555-8555-555555555555';
update public.profiles set date_of_birth = '1980-05-01' where id = '11111111-1111-4111-8111-111111111111';

select tests.act_as('patient_a');
create temp table raised on commit drop as
select * from public.raise_emergency(6.50, 3.38, 'crushing chest pain',
  '{"respiration_rate": 26, "spo2": 90, "supplemental_oxygen": false, "systolic_bp": 95, "pulse": 125, "consciousness": "A", "temperature": 37.2}',
  '{"pain_score": 9}');
select tests.act_as_owner();
select is((select requester_id from raised), '11111111-1111-4111-8111-111111111111'::uuid, 'raised for the caller');
select is((select news2_total from raised), 10::smallint, 'NEWS2 computed in the database (rr 3 + SpO2 3 + BP 2 + pulse 2 = 10)');
select is((select esi_level from raised), 2::smallint, 'ESI computed in the database (severe pain → 2)');
select is((select status from raised), 'open', 'a new request is open');
select results_eq(
  $$select event, payload ->> 'id' from private.realtime_events where topic = 'dispatch' and event = 'emergency:new'$$,
  $$select 'emergency:new', id::text from raised$$, 'a new emergency is announced to dispatchers');
select results_eq(
  $$select channel, recipient, template from private.outbox$$,
  $$values ('sms', '+2348030000005', 'emergency_high_risk')$$,
  'a high-risk emergency texts the on-call dispatchers');

select tests.act_as('patient_b');
select is((public.raise_emergency(5.6, -0.2, 'sprained ankle', '{"respiration_rate": 16, "spo2": 98, "supplemental_oxygen": false, "systolic_bp": 120, "pulse": 80, "consciousness": "A", "temperature": 36.8}',
  '{"resources": ["xray"]}')).esi_level, 4::smallint, 'a low-acuity emergency is ESI 4');
select is((public.raise_emergency(5.6, -0.2, 'fainted', '{"consciousness": "U"}')).esi_level, 1::smallint,
  'unresponsive is ESI 1 whatever the client says');
select throws_ok($$select public.raise_emergency(95, 0, 'x')$$, '22023', null, 'an impossible location is 22023');
select throws_ok($$select public.raise_emergency(5, 0, 'x', '{"spo2": 120}')$$, '22023', 'vitals.spo2: must be a whole number between 0 and 100, got 120',
  'bad vitals are 22023 naming the field, and nothing is stored');
select tests.act_as_owner();
select is((select count(*)::int from public.emergency_requests where requester_id = '22222222-2222-4222-8222-222222222222'), 3,
  'the rejected request stored nothing');

select tests.act_as('anon');
select throws_ok($$select public.raise_emergency(5, 0, 'x')$$, '42501', null, 'anon cannot raise an emergency');
select tests.act_as_owner();

-- The queue and claiming ---------------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$select * from public.dispatch_queue()$$, '42501', 'only dispatchers see the dispatch queue', 'patients have no queue');
select throws_ok($$select * from public.claim_next_emergency()$$, '42501', null, 'patients cannot claim');
select tests.act_as_owner();

select tests.act_as('dispatcher');
select results_eq($$select esi_level from public.dispatch_queue()$$, $$values (1::smallint), (2::smallint), (4::smallint), (null::smallint)$$,
  'the queue is ordered by ESI level (untriaged last)');
select is((select esi_level from public.claim_next_emergency()), 1::smallint, 'claiming takes the most urgent');
select is((select esi_level from public.claim_next_emergency()), 2::smallint, 'and then the next one');
select is_empty($$select * from public.nearest_responders((select id from raised), 3)$$,
  'a responder busy on another emergency is not offered');
select throws_ok($$select * from public.nearest_responders((select id from raised), 0)$$, '22023', null, 'n must be 1..50');
-- The responder is busy with the fixture's assigned emergency.
select throws_ok($$select public.assign_responder((select id from raised), '66666666-6666-4666-8666-666666666666')$$,
  'PT409', 'this responder is already on another emergency', 'a busy responder cannot take a second emergency');
select tests.act_as_owner();

-- The life cycle -----------------------------------------------------------------------------------
select tests.act_as('responder');
select is((public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'en_route')).status, 'en_route',
  'the assigned responder sets off');
select throws_ok($$select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'resolved')$$, 'PT422',
  'an emergency request cannot go from en_route to resolved', 'steps are not skipped');
select tests.act_as_owner();
select is(tests.error_detail('responder', $$select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'resolved')$$),
  '{"code": "invalid_transition", "from": "en_route", "to": "resolved"}'::jsonb, 'the refusal''s detail carries its code');
select is(tests.error_detail('responder', $$select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'assigned')$$),
  '{"code": "use_assign_responder", "from": "en_route", "to": "assigned"}'::jsonb, 'assignment goes through assign_responder');
select tests.act_as('responder');
select tests.act_as_owner();
select tests.act_as('patient_a');
select throws_ok($$select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'cancelled')$$, '42501',
  'a requester may not move an emergency request from en_route to cancelled', 'once help is on the way the requester cannot cancel');
select tests.act_as_owner();
select tests.act_as('patient_b');
select throws_ok($$select public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'cancelled')$$, 'PT404', null,
  'someone else''s emergency does not exist for you');
select tests.act_as_owner();
select tests.act_as('responder');
select is((public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'on_scene')).status, 'on_scene', 'on scene');
select is((public.set_emergency_status('ee000000-0000-4000-8000-000000000002', 'resolved')).status, 'resolved', 'resolved');
select tests.act_as_owner();

select tests.act_as('dispatcher');
select results_eq($$select call_sign, round(distance_km)::int from public.nearest_responders((select id from raised), 3)$$,
  $$values ('LAG-07'::text, 6)$$, 'once free, the responder is offered with the great-circle distance');
select is((public.assign_responder((select id from raised), '66666666-6666-4666-8666-666666666666')).status, 'assigned',
  'the responder is free again and is assigned');
select tests.act_as_owner();
select is((select count(*)::int from public.notifications where kind = 'emergency:assigned'), 2,
  'assignment notifies the responder and the requester');

select * from finish();
rollback;
