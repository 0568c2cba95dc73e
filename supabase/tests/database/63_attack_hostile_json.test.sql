-- Attack: hostile JSON. No function in public, private, access or careplane that takes json or
-- jsonb can be made to raise XX000 (an internal error: HTTP 500, and before the fix, a Rust
-- panic inside the extension) by a number out of range, deep nesting, or sheer size. The list
-- of functions is read from the catalogue, so a function added later is attacked too.
-- Each call runs as the database owner (privileges are not what is tested here) with the
-- claims of a signed-in persona, in its own subtransaction.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(6);

create table tests.hostile (label text primary key, doc jsonb);
insert into tests.hostile values
  ('number out of f64 range',      '1e400'),
  ('negative number out of range', '-1e400'),
  ('out-of-range numbers in fields',
   '{"spo2": 1e400, "pulse": -1e400, "amount": 1e400, "temperature": 1e400, "pain_score": 1e400}'),
  ('one past the bigint limit',    '{"amount": 9223372036854775808, "spo2": 9223372036854775808}'),
  ('array nested 500 deep',        (repeat('[', 500) || '1' || repeat(']', 500))::jsonb),
  ('object nested 300 deep',       (repeat('{"a":', 300) || '1' || repeat('}', 300))::jsonb),
  ('a megabyte string',            jsonb_build_object('description', repeat('x', 1048576))),
  ('100,000-element array',        (select jsonb_agg(g) from generate_series(1, 100000) g)),
  ('wrong shapes',                 '[null, true, "x", {}, [], 1.5]');

-- A plausible value for a non-JSON argument, so that the call reaches the JSON.
create function tests.plausible(t regtype) returns text language sql immutable as $$
  select case
    when t = 'uuid'::regtype then quote_literal(gen_random_uuid()) || '::uuid'
    when t in ('text'::regtype, 'character varying'::regtype) then $q$'x'$q$
    when t in ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype,
               'numeric'::regtype, 'double precision'::regtype, 'real'::regtype) then '1::' || t::text
    when t = 'boolean'::regtype then 'true'
    when t = 'timestamp with time zone'::regtype then 'now()'
    when t = 'date'::regtype then 'current_date'
    else 'null::' || t::text
  end
$$;

-- Every function taking json/jsonb, with the position of each such argument.
create table tests.json_targets as
select p.oid as fn, p.oid::regprocedure::text as signature, n.nspname as schema, a.pos
  from pg_catalog.pg_proc p
  join pg_catalog.pg_namespace n on n.oid = p.pronamespace
  cross join lateral unnest(p.proargtypes::oid[]) with ordinality as a(typ, pos)
 where n.nspname in ('public', 'private', 'access', 'careplane')
   and p.prokind = 'f'
   and p.prorettype <> 'trigger'::regtype
   and a.typ in ('json'::regtype, 'jsonb'::regtype);

create table tests.json_outcomes (signature text, schema text, label text, sqlstate text, message text);

do $$
declare
  t record;
  h record;
  args text;
  st text;
  msg text;
begin
  perform set_config('request.jwt.claims', tests.claims('admin'), true);
  for t in select * from tests.json_targets loop
    for h in select * from tests.hostile loop
      select string_agg(case when a.pos = t.pos then quote_literal(h.doc::text) || '::' || a.typ::regtype::text
                             when a.typ in ('json'::regtype, 'jsonb'::regtype) then $q$'{}'::$q$ || a.typ::regtype::text
                             else tests.plausible(a.typ::regtype) end, ', ' order by a.pos)
        into args
        from pg_catalog.pg_proc p cross join lateral unnest(p.proargtypes::oid[]) with ordinality as a(typ, pos)
       where p.oid = t.fn;
      begin
        execute format('select %s(%s)', t.fn::regproc::text, args);
        st := '00000';
        msg := null;
      exception when others then
        get stacked diagnostics st = returned_sqlstate, msg = message_text;
      end;
      insert into tests.json_outcomes values (t.signature, t.schema, h.label, st, left(msg, 200));
    end loop;
  end loop;
end
$$;

select cmp_ok((select count(distinct signature) from tests.json_outcomes where schema = 'careplane')::int, '>=', 4,
  'the catalogue finds the extension''s JSON-taking functions');
select cmp_ok((select count(distinct signature) from tests.json_outcomes where schema <> 'careplane')::int, '>=', 3,
  'the catalogue finds the RPCs and helpers that take JSON');
select is_empty(
  $$select signature || ' with ' || label || ': ' || message from tests.json_outcomes where sqlstate = 'XX000'$$,
  'no JSON-taking function raises XX000 (an internal error) on hostile input');
select is_empty(
  $$select signature || ' with ' || label || ' answered ' || sqlstate from tests.json_outcomes
     where schema = 'careplane' and label in ('number out of f64 range', 'array nested 500 deep', 'a megabyte string')
       and sqlstate <> '22023'$$,
  'the extension refuses out-of-range numbers, deep nesting and oversize JSON with 22023');
select ok(
  (select bool_and(message ~ '^[a-z_]+[.:a-z_ ]*(is|must|unknown|required)') from tests.json_outcomes
    where schema = 'careplane' and label = 'number out of f64 range' and sqlstate = '22023'),
  'each 22023 from the extension names the argument or field it refuses');
select is(
  (select count(*)::int from tests.json_outcomes where sqlstate like '57%' or sqlstate like '53%'),
  0,
  'no hostile input exhausts resources (no out-of-memory, statement timeout or stack depth error)');

select * from finish();
rollback;
