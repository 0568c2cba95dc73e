-- Every row-level-security policy on a large table is served by an index (issue 18).
--
-- The tables that grow with use are filled with enough rows (thousands, spread over many
-- owners), ANALYZEd, and then, for every select policy on them — found in the catalogue
-- (pg_policy, and in pg_depend the columns each policy reads), so a new policy is checked
-- without an entry here — the common per-user query is planned as PostgREST runs it (role
-- authenticated, a signed-in patient's claims): `select * from <table> where <column> = <a
-- value>` for each uuid column the policy reads (the owner, or the parent the policy checks:
-- patient_id, conversation_id, account_id, …; the value is the column's most frequent one),
-- as supabase-js sends it with `.eq(column, value)` beside the policy. A plan with a
-- sequential scan of the table fails. Non-uuid columns a policy reads (a status, a bucket) are
-- role-wide filters, not a user's key, and are not checked here (the dispatch queue's index
-- is checked in 30_triage_and_dispatch).
--
-- A table with row-level security is large unless it is listed in tests.small_tables (rows
-- bounded by staff and configuration, not by use); a large table the fill below does not fill
-- fails the suite, so a new table needs rows here.
begin;
set local search_path = extensions, public;

create schema tests;
create function tests.u(n int) returns uuid language sql immutable as
  $$ select ('7a000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;  -- users 1..2000 patients, 2001..2200 doctors
create function tests.x(prefix text, n int) returns uuid language sql immutable as
  $$ select (prefix || '-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;

create table tests.small_tables (tbl text primary key, why text not null);
insert into tests.small_tables values
  ('role_permissions', 'the role × permission table: configuration'),
  ('practitioners', 'one per clinician: staff'),
  ('availability_rules', 'a few per clinician: staff'),
  ('availability_exceptions', 'a few per clinician and month: staff'),
  ('responders', 'one per responder: staff');

-- The fill: 2,000 patients and 200 doctors (profiles and roles by the sign-up trigger),
-- 10,000 appointments (each doctor 50, each patient 5; an hour apart, so nothing overlaps),
-- 5,000 consultations with their conversations and 10,000 members, 10,000 messages, 5,000
-- read receipts, 10,000 notifications, 10,000 emergency requests, 2,200 ledger accounts with
-- 5,000 transfers and 10,000 entries, 10,000 payments, 2,000 attachments.
insert into auth.users (id, aud, role, email, raw_user_meta_data)
select tests.u(n), 'authenticated', 'authenticated', 'scale' || n || '@example.org', '{"time_zone": "UTC"}'
  from generate_series(1, 2200) n;
insert into public.user_roles (user_id, role) select tests.u(n), 'doctor' from generate_series(2001, 2200) n;
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
select tests.x('7b000000', n), tests.u(2000 + n), 'doctor', 'Dr Scale ' || n, 100000, 'NGN', 'UTC' from generate_series(1, 200) n;
insert into public.appointments (id, patient_id, practitioner_id, period, status, created_by)
select tests.x('7c000000', i), tests.u(1 + i % 2000), tests.x('7b000000', 1 + i % 200),
       tstzrange(timestamptz '2026-01-05 08:00Z' + i * interval '1 hour', timestamptz '2026-01-05 08:30Z' + i * interval '1 hour'),
       'fulfilled', tests.u(1 + i % 2000)
  from generate_series(0, 9999) i;
insert into public.consultations (id, appointment_id) select tests.x('7d000000', i), tests.x('7c000000', i) from generate_series(0, 4999) i;
insert into public.conversations (id, consultation_id) select tests.x('7e000000', i), tests.x('7d000000', i) from generate_series(0, 4999) i;
insert into public.conversation_members (conversation_id, user_id)
select tests.x('7e000000', i), u from generate_series(0, 4999) i, unnest(array[tests.u(1 + i % 2000), tests.u(2001 + i % 200)]) u;
insert into public.messages (id, conversation_id, sender_id, body)
select tests.x('7f000000', i), tests.x('7e000000', i / 2), case when i % 2 = 0 then tests.u(1 + (i / 2) % 2000) else tests.u(2001 + (i / 2) % 200) end, 'hello'
  from generate_series(0, 9999) i;
insert into public.message_reads (message_id, user_id)
select tests.x('7f000000', 2 * i), tests.u(2001 + i % 200) from generate_series(0, 4999) i;
insert into public.notifications (user_id, kind, title) select tests.u(1 + i % 2200), 'appointment:updated', 'Consultation booked' from generate_series(0, 9999) i;
insert into public.emergency_requests (requester_id, lat, lon, status, resolved_at)
select tests.u(1 + i % 2000), 6.45, 3.39, 'cancelled', now() from generate_series(0, 9999) i;
insert into public.ledger_accounts (id, owner_id, kind, currency, flags)
select tests.x('7a100000', n), tests.u(n), case when n > 2000 then 'practitioner_payable' else 'patient_wallet' end, 'NGN',
       'debits_must_not_exceed_credits' from generate_series(1, 2200) n;
insert into public.ledger_transfers (id, kind) select tests.x('7a200000', i), 'test' from generate_series(0, 4999) i;
insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency)
select tests.x('7a200000', i), tests.x('7a100000', case when d = 'debit' then 1 + i % 2000 else 2001 + i % 200 end), d, 100, 'NGN'
  from generate_series(0, 4999) i, unnest(array['debit', 'credit']) d;
insert into public.payments (patient_id, amount_minor, currency, provider_reference, status)
select tests.u(1 + i % 2000), 100000, 'NGN', 'scale_' || i, 'succeeded' from generate_series(0, 9999) i;
insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, uploaded_by, patient_id)
select 'medical-records', tests.u(n) || '/scan.pdf', 'scan.pdf', 'application/pdf', 1000, tests.u(n), tests.u(n) from generate_series(1, 2000) n;

select format('analyze %I.%I', n.nspname, c.relname)
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname in ('public', 'auth') and c.relkind = 'r' \gexec

-- The large tables with row-level security, and their rows now.
create table tests.large_tables as
select c.oid::regclass as tbl, c.relname as name, c.reltuples::bigint as rows
  from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public' and c.relkind = 'r' and c.relrowsecurity
   and c.relname not in (select tbl from tests.small_tables);

-- Every select policy for the API roles on a large table × each uuid column it reads.
create table tests.checks as
select l.name, pol.polname, a.attname as col
  from tests.large_tables l
  join pg_policy pol on pol.polrelid = l.tbl
  join pg_depend d on d.classid = 'pg_policy'::regclass and d.objid = pol.oid
                  and d.refclassid = 'pg_class'::regclass and d.refobjid = pol.polrelid and d.refobjsubid > 0
  join pg_attribute a on a.attrelid = d.refobjid and a.attnum = d.refobjsubid
 where pol.polcmd in ('r', '*')
   and (pol.polroles && array['authenticated'::regrole::oid, 'anon'::regrole::oid] or pol.polroles = '{0}')
   and a.atttypid = 'uuid'::regtype
 order by 1, 2, 3;

-- The plan of `query` as PostgREST runs it for a signed-in patient: does it read `tbl` with a
-- sequential scan? (The plan, for the failure's diagnostics.)
create function tests.plan_as_patient(query text) returns jsonb language plpgsql as $$
declare
  plan jsonb;
begin
  perform set_config('request.jwt.claims', jsonb_build_object('sub', tests.u(1), 'role', 'authenticated', 'aud', 'authenticated',
                                                               'user_role', 'patient', 'user_roles', array['patient'])::text, true);
  set local role authenticated;
  execute 'explain (format json) ' || query into plan;
  reset role;
  perform set_config('request.jwt.claims', '', true);
  return plan;
end
$$;

create function tests.seq_scans(plan jsonb, tbl text) returns boolean language sql immutable as $$
  select jsonb_path_exists(plan, 'lax $.** ? (@."Node Type" == "Seq Scan" && @."Relation Name" == $t)', jsonb_build_object('t', tbl))
$$;

select plan(2 + (select count(*)::int from tests.checks));

select is(
  (select string_agg(name, ', ' order by name) from tests.large_tables where rows < 2000), null,
  'every large table with row-level security has thousands of rows here (or is listed in tests.small_tables)');
select cmp_ok((select count(*)::int from tests.checks), '>=', 15, 'the policies on the large tables were found in the catalogue');

create function tests.check_policy(tbl text, policy text, col text) returns text language plpgsql as $$
declare
  value text;
  query text;
  plan jsonb;
begin
  execute format('select %1$I::text from public.%2$I where %1$I is not null group by 1 order by count(*) desc, 1 limit 1', col, tbl)
     into value;
  query := format('select * from public.%I where %I = %L', tbl, col, value);
  plan := tests.plan_as_patient(query);
  if tests.seq_scans(plan, tbl) then
    return format('%s: %s%s', query, E'\n', jsonb_pretty(plan));
  end if;
  return null;
end
$$;

select is(tests.check_policy(name, polname, col), null,
          format('%s, policy "%s": the per-user query on %s is served by an index', name, polname, col))
  from tests.checks order by name, polname, col;

select * from finish();
rollback;
