-- Performance work (issue 18) that must not change an answer:
-- * the extension reads jsonb arguments and builds jsonb results directly (pg_ext/src/jsonb.rs)
--   instead of through text: every kind of value survives the trip exactly;
-- * careplane.news2_total agrees with careplane.news2 and refuses what it refuses;
-- * careplane.build_info says which build is installed;
-- * private.busy_json reads busy time through an index, not the whole appointments table.
begin;
set local search_path = extensions, public;
select plan(18);

-- A transfer request comes back in canonical form with its description and amounts as given:
-- strings with escapes and non-ASCII text, integers past 2^53, nulls left out.
select is(
  careplane.ledger_request(jsonb_build_object(
    'id', '00000000-0000-4000-8000-0000000000aa', 'type', 'posted', 'kind', 'test',
    'description', E'é "quoted" \\ back\nslash 😀 \u0001',
    'legs', jsonb_build_array(
      jsonb_build_object('account_id', '00000000-0000-4000-8000-0000000000a1', 'direction', 'debit',
                         'amount', 9007199254740993, 'currency', 'NGN'),
      jsonb_build_object('account_id', '00000000-0000-4000-8000-0000000000a2', 'direction', 'credit',
                         'amount', 9007199254740993, 'currency', 'NGN')))) -> 'request' -> 'description',
  to_jsonb(E'é "quoted" \\ back\nslash 😀 \u0001'::text),
  'strings cross the boundary unchanged both ways');
select is(
  careplane.ledger_request(jsonb_build_object(
    'id', '00000000-0000-4000-8000-0000000000aa', 'type', 'posted', 'kind', 'test',
    'legs', jsonb_build_array(
      jsonb_build_object('account_id', '00000000-0000-4000-8000-0000000000a1', 'direction', 'debit',
                         'amount', 9007199254740993, 'currency', 'NGN'),
      jsonb_build_object('account_id', '00000000-0000-4000-8000-0000000000a2', 'direction', 'credit',
                         'amount', 9007199254740993, 'currency', 'NGN')))) #> '{request,legs,0,amount}',
  '9007199254740993'::jsonb,
  'a bigint past 2^53 stays exact');
-- Fractions keep their shortest exact form; a top-level object, nested objects, booleans and
-- arrays are built as jsonb_in would build them (equal as jsonb, keys in jsonb order).
select is(
  careplane.assess('{"temperature": 38.05, "spo2": 96, "supplemental_oxygen": false}', '{"resources": ["labs"]}',
                   null, null, null, current_date) -> 'reported',
  '{"vitals": {"temperature": 38.05, "spo2": 96, "supplemental_oxygen": false}, "findings": {"resources": ["labs"]}}'::jsonb,
  'numbers, booleans, arrays and nested objects cross unchanged');
select is(careplane.assess('{"temperature": 37.123456789012344}', null, null, null, null, current_date)
            #>> '{reported,vitals,temperature}',
          '37.123456789012344', 'a float keeps its shortest exact digits');
select is(careplane.news2('{"respiration_rate": 22, "spo2": 95, "supplemental_oxygen": false, "systolic_bp": 105,
                            "pulse": 115, "consciousness": "A", "temperature": 38.05}')::text,
          '{"risk": "high", "total": 7, "missing": [], "complete": true, "response": {"monitoring": "continuous monitoring of vital signs", "clinical_response": "registered nurse to immediately inform the medical team caring for the patient (at least specialist registrar level); emergency assessment by a team with critical-care competencies, including advanced airway management; consider transfer to a level 2 or 3 care facility"}, "components": {"spo2": 1, "pulse": 2, "systolic_bp": 1, "temperature": 1, "consciousness": 0, "respiration_rate": 2, "supplemental_oxygen": 0}, "partial_total": 7, "single_parameter_3": false}',
          'careplane.news2 answers the same document as before, byte for byte in its text form');
select is(careplane.scheduling_limits() -> 'settings' -> 'slot_alignment_minutes' -> 'default', 'null'::jsonb,
          'a JSON null inside a result stays a JSON null');
select is(jsonb_typeof(careplane.available_slots(jsonb_build_object(
            'schedule', jsonb_build_object('time_zone', 'UTC', 'slot_minutes', 30, 'weekly', '[]'::jsonb),
            'busy', '[]'::jsonb, 'now', now(), 'from', now(), 'to', now() + interval '1 day'))), 'array',
          'an empty array result is an array');
select throws_ok($$select careplane.news2('{"spo2": "high"}')$$, '22023', null, 'a wrong type is still 22023');
select throws_ok($$select careplane.news2(jsonb_build_object('pulse', (repeat('[', 40) || '1' || repeat(']', 40))::jsonb))$$,
                 '22023', 'vitals: is nested more than 32 levels deep', 'depth is bounded as before');

-- news2_total: the total of news2, null when incomplete, the same refusals.
select is(careplane.news2_total('{"respiration_rate": 22, "spo2": 95, "supplemental_oxygen": false, "systolic_bp": 105,
                                  "pulse": 115, "consciousness": "A", "temperature": 38.05}'), 7, 'news2_total is the total');
select is(careplane.news2_total('{"respiration_rate": 22, "spo2": 95}'), null, 'incomplete observations have no total');
select is((select count(*) from (
             select v from (values ('{"respiration_rate": 8, "spo2": 91, "supplemental_oxygen": true, "systolic_bp": 220, "pulse": 131, "consciousness": "U", "temperature": 35.0}'::jsonb),
                                   ('{"respiration_rate": 12, "spo2": 97, "spo2_scale": 2, "hypercapnic_respiratory_failure": true, "supplemental_oxygen": true, "systolic_bp": 120, "pulse": 60, "consciousness": "A", "temperature": 36.5}'),
                                   ('{"respiration_rate": 12, "spo2": 97, "spo2_scale": 2, "hypercapnic_respiratory_failure": true, "systolic_bp": 120, "pulse": 60, "consciousness": "A", "temperature": 36.5}')) t(v)
            where careplane.news2_total(v) is distinct from (careplane.news2(v) ->> 'total')::int) d), 0::bigint,
          'news2_total agrees with news2 at the bands'' edges and on scale 2');
select throws_ok($$select careplane.news2_total('{"spo2": 101}')$$, '22023', null, 'news2_total refuses what news2 refuses');

-- Which build is installed.
select ok(careplane.build_info() ->> 'profile' in ('release', 'debug'), 'build_info names the build profile');
select is(careplane.build_info() ->> 'version', careplane.version(), 'build_info names the version');

-- Busy time comes through the exclusion constraints' GiST indexes (the first version of
-- private.busy_json could use no index and read the whole table on every booking). The query of
-- the function as deployed is planned (generic plan, sequential scans priced out): no branch
-- may need a sequential scan of appointments.
set local plan_cache_mode = force_generic_plan;
set local enable_seqscan = off;
do $$
declare
  -- The query its PL/pgSQL body returns, `return (<query>);` (migrations/…29000100_write_path.sql).
  body text := (select substring(prosrc from 'return \((.*)\);\s*end\s*$') from pg_proc where oid = 'private.busy_json'::regproc);
begin
  body := regexp_replace(body, '\mowner_id\M', '$1', 'g');
  body := regexp_replace(body, '\mby_patient\M', '$2', 'g');
  body := regexp_replace(body, '\mspan\M', '$3', 'g');
  body := regexp_replace(body, '\mexcept_id\M', '$4', 'g');
  execute 'prepare busy_body(uuid, boolean, tstzrange, uuid) as ' || body;
end
$$;
create function pg_temp.plan(q text) returns setof text language plpgsql as $$
begin
  return query execute 'explain (costs off) ' || q;
end
$$;
-- With one owner's index at a time (the other dropped inside a subtransaction that is then
-- undone), so that the planner's choice between two equally cheap indexes on an empty table
-- does not matter. The plan is read inside the subtransaction and asserted outside it: a PL/pgSQL
-- variable survives the rollback, pgTAP's own counter would not.
create function pg_temp.plan_matches_without(dropped text, q text, pattern text) returns boolean language plpgsql as $$
declare
  hit boolean;
begin
  begin
    execute format('alter table public.appointments drop constraint %I', dropped);
    hit := exists (select 1 from pg_temp.plan(q) l where l ~ pattern);
    raise exception using errcode = 'P0999', message = 'undo the dropped constraint';
  exception when sqlstate 'P0999' then
    return hit;
  end;
end
$$;
select ok(pg_temp.plan_matches_without('appointments_patient_time_free',
            $$execute busy_body(gen_random_uuid(), false, tstzrange(now(), now() + interval '1 day'), null)$$,
            'Index Cond: .*practitioner_id = \$1'),
  'a practitioner''s busy time is found by practitioner in the index');
select ok(pg_temp.plan_matches_without('appointments_practitioner_time_free',
            $$execute busy_body(gen_random_uuid(), true, tstzrange(now(), now() + interval '1 day'), null)$$,
            'Index Cond: .*patient_id = \$1'),
  'a patient''s busy time is found by patient in the index');
select ok(exists (select 1 from pg_constraint where conname in ('appointments_patient_time_free', 'appointments_practitioner_time_free')
                  having count(*) = 2), 'both constraints are back afterwards');

select * from finish();
rollback;
