-- Attack: an API role sets a sequence back (setval) so that the next insert collides on its
-- primary key — the ledger's entries stop posting — or reads one (last_value: how many rows
-- exist). Supabase's default privileges grant every sequence in public to anon and
-- authenticated; none of them needs it: identity columns draw their values without any
-- privilege on the sequence, and only a serial column (a nextval() default) in a table the
-- role inserts into needs USAGE. Every sequence in public and private is listed from the
-- catalogue, so a sequence added later is attacked too, without editing this file.
begin;
set local search_path = extensions, public;
select plan(7);

create schema tests;

create view tests.api_sequences as
  select c.oid::regclass as seq, n.nspname as schema_name
    from pg_class c join pg_namespace n on n.oid = c.relnamespace
   where c.relkind = 'S' and n.nspname in ('public', 'private');

-- Whether a role needs nextval on a sequence: a column default of a table it may insert into
-- calls it (identity sequences are not used through defaults, so they never qualify).
create function tests.needs_nextval(role_name text, seq regclass) returns boolean language sql stable as $$
  select exists (select 1 from pg_attrdef d
                   join pg_depend dep on dep.classid = 'pg_attrdef'::regclass and dep.objid = d.oid
                  where dep.refobjid = seq and has_table_privilege(role_name, d.adrelid, 'INSERT'))
$$;

-- The attack itself: as role_name, set every sequence to the value it already has. A sequence
-- the role may set back is listed (its value is left as it was).
create function tests.sequences_settable_by(role_name text) returns setof text language plpgsql as $$
declare
  s record;
  last bigint;
  called boolean;
begin
  for s in select a.seq from tests.api_sequences a order by a.seq::text loop
    execute format('select last_value, is_called from %s', s.seq) into last, called;
    begin
      execute format('set local role %I', role_name);
      perform setval(s.seq, last, called);
      reset role;
      return next s.seq::text;
    exception when insufficient_privilege then
      null;  -- refused, and the subtransaction's role change is undone with it
    end;
  end loop;
end
$$;

select ok((select count(*) from tests.api_sequences where seq = 'public.ledger_entries_id_seq'::regclass) = 1
          and (select count(*) from tests.api_sequences where schema_name = 'private') >= 1,
  'the catalogue lists the sequences of public and private (the ledger''s entries and the logs at least)');

select is_empty($$
  select format('%s: %s has %s', a.seq, r.role_name, p.privilege)
    from tests.api_sequences a
   cross join (values ('anon'), ('authenticated')) r(role_name)
   cross join (values ('UPDATE'), ('SELECT'), ('USAGE')) p(privilege)
   where has_sequence_privilege(r.role_name, a.seq, p.privilege)
     and not (p.privilege = 'USAGE' and tests.needs_nextval(r.role_name, a.seq))
   order by 1
$$, 'anon and authenticated hold no right on any sequence beyond the nextval a serial column they insert into needs');

select is_empty($$
  select format('%s: service_role has %s', a.seq, p.privilege)
    from tests.api_sequences a
   cross join (values ('UPDATE'), ('SELECT')) p(privilege)
   where has_sequence_privilege('service_role', a.seq, p.privilege)
   order by 1
$$, 'service_role cannot set back or read any sequence either');

select is_empty($$select tests.sequences_settable_by('anon')$$, 'anon sets back no sequence');
select is_empty($$select tests.sequences_settable_by('authenticated')$$, 'a signed-in user sets back no sequence');

set local role authenticated;
select throws_ok($$select last_value from public.ledger_entries_id_seq$$, '42501', null,
  'a signed-in user cannot read how many ledger entries exist');
select throws_ok($$select setval('public.ledger_entries_id_seq', 1)$$, '42501', null,
  'nor set the ledger''s entry sequence back');
reset role;

select * from finish();
rollback;
