-- Row-level security everywhere (by catalogue, so a new table without it fails), privilege
-- escalation attempts, the sign-up trigger, the access token hook, and the audit log.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(47);

-- Catalogue checks -------------------------------------------------------------------------------
select is_empty(
  $$select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity$$,
  'every table in public has row-level security enabled');
select is_empty(
  $$select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind in ('r', 'p')
      and not exists (select 1 from pg_catalog.pg_policy p where p.polrelid = c.oid)$$,
  'every table in public has at least one policy');
select is_empty(
  $$select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relkind = 'v'
      and not coalesce('security_invoker=true' = any (c.reloptions), false)$$,
  'every view in public runs with the invoker''s rights (no RLS bypass through a view)');
select is_empty(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'private', 'access') and p.prosecdef
      and not coalesce('search_path=""' = any (p.proconfig), false)$$,
  'every security definer function pins search_path to empty');
select is_empty(
  $$select r.rolname || ' on ' || t.relname from pg_catalog.pg_class t
      join pg_catalog.pg_namespace n on n.oid = t.relnamespace
      cross join (values ('anon'), ('authenticated'), ('service_role')) r(rolname)
    where n.nspname = 'public' and t.relname in ('ledger_accounts', 'ledger_transfers', 'ledger_entries', 'payments')
      and (has_table_privilege(r.rolname, t.oid, 'insert') or has_table_privilege(r.rolname, t.oid, 'update')
           or has_table_privilege(r.rolname, t.oid, 'delete') or has_table_privilege(r.rolname, t.oid, 'truncate'))$$,
  'no API role, service_role included, may write ledger or payment rows directly');
select is_empty(
  $$select r.rolname from (values ('anon'), ('authenticated')) r(rolname)
    where has_schema_privilege(r.rolname, 'private', 'usage')$$,
  'neither anon nor authenticated may use schema private');
select set_eq(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname = 'private' and has_function_privilege('service_role', p.oid, 'execute')$$,
  array['private.post_transfer(uuid,text,jsonb,text,uuid)', 'private.reserve_transfer(uuid,text,jsonb,integer,text)',
        'private.post_pending_transfer(uuid,uuid,bigint)', 'private.void_pending_transfer(uuid,uuid)',
        'private.expire_pending_transfers()', 'private.verify_ledger()',
        -- payments (migrations/20261128000100_payments.sql)
        'private.ledger_account_for(uuid,text,text,text)', 'private.payment_opening(uuid,text)',
        'private.payment_create(uuid,uuid,bigint,text,text,text)', 'private.payment_facts(text)',
        'private.payment_apply(uuid,jsonb)', 'private.payments_to_reconcile(interval,integer)',
        'private.claim_refunds(integer,integer)', 'private.webhook_store(text,text,text,jsonb)',
        'private.webhook_claim(text,integer,integer)', 'private.webhook_done(bigint)',
        'private.webhook_failed(bigint,text,double precision)', 'private.webhook_inbox_stats(text)',
        -- consultations (migrations/20261128000600_consultations.sql)
        'private.end_overdue_consultations()'],
  'service_role executes the ledger''s, the payments'' and the sweeps'' entry points and no other private function');
select is_empty(
  $$select t.table_name from information_schema.role_table_grants t
    where t.table_schema = 'private' and t.grantee in ('anon', 'authenticated', 'service_role')$$,
  'no API role has privileges on any private table');
select is_empty(
  $$select r.rolname || ' ' || p.oid::regprocedure::text
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
      cross join (values ('anon'), ('authenticated')) r(rolname)
    where n.nspname = 'private' and has_function_privilege(r.rolname, p.oid, 'execute')$$,
  'no private function is executable by anon or authenticated');
select set_eq(
  $$select p.oid::regprocedure::text from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
    where n.nspname in ('public', 'private', 'access', 'careplane')
      and p.prosrc ~* '(auth\.jwt\s*\(|request\.jwt\.claim)'$$,
  array['access.claimed_roles()', 'private.audit()', 'private.realtime_visible_to(text,text,jsonb,jsonb)'],
  'roles are read from the token in one place (access.claimed_roles, which access.effective_roles narrows to '
  'what user_roles grants now); the audit log records the claim as made; the realtime relay only sets each '
  'subscriber''s claims to ask RLS as them, and restores the caller''s');

-- Escalation attempts ------------------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$insert into public.user_roles (user_id, role) values (auth.uid(), 'admin')$$, '42501', null,
  'a patient cannot give themselves a role');
select throws_ok($$update public.user_roles set role = 'admin' where user_id = auth.uid()$$, '42501', null,
  'a patient cannot change their role');
select throws_ok($$select public.grant_role(auth.uid(), 'admin')$$, '42501', 'only an admin may grant roles',
  'a patient cannot grant roles through the RPC');
select throws_ok($$update public.profiles set id = gen_random_uuid() where id = auth.uid()$$, '42501', null,
  'nobody can change their own id');
select throws_ok($$update public.profiles set email = 'x@evil.test' where id = auth.uid()$$, '42501', null,
  'the email on a profile belongs to Supabase Auth, not to the profile owner');
select is((select count(*)::int from public.profiles p join public.appointments a on a.patient_id = p.id), 1,
  'a join reaches only rows each table lets the patient see');
select throws_ok($$create view public.leak as select * from public.profiles$$, '42501', null,
  'a patient cannot create a view to read around RLS');
select throws_ok($$insert into private.outbox (channel, recipient, template) values ('sms', '+2348000000000', 'x')$$,
  '42501', null, 'a patient cannot write the outbox');
select throws_ok($$insert into private.audit_log (action, table_name) values ('DELETE', 'profiles')$$,
  '42501', null, 'a patient cannot write audit rows');
select throws_ok($$select private.touch_updated_at()$$, '42501', null, 'a patient cannot execute private functions');
select throws_ok($$select public.custom_access_token_hook('{"user_id": "11111111-1111-4111-8111-111111111111", "claims": {}}')$$,
  '42501', null, 'a patient cannot call the access token hook');
select tests.act_as_owner();

select tests.act_as('anon');
select throws_ok($$select private.touch_updated_at()$$, '42501', null, 'anon cannot execute private functions');
select throws_ok($$select count(*) from public.profiles$$, '42501', null, 'anon cannot read profiles');
select tests.act_as_owner();

select tests.act_as('admin');
select throws_ok($$select public.grant_role('77777777-7777-4777-8777-777777777777', 'dispatcher')$$, '42501',
  'nobody may change their own roles', 'an admin cannot change their own roles');
select is((public.grant_role('22222222-2222-4222-8222-222222222222', 'nurse')).granted_by,
  '77777777-7777-4777-8777-777777777777'::uuid, 'an admin grants a role to someone else, recorded as the granter');
select ok(public.revoke_role('22222222-2222-4222-8222-222222222222', 'nurse'), 'an admin revokes it');
select throws_ok($$delete from public.user_roles where user_id = '22222222-2222-4222-8222-222222222222'$$, '42501', null,
  'even an admin writes roles only through the RPCs');
select tests.act_as_owner();

-- service_role: the backend's key; still cannot forge money or audit history.
set local role service_role;
select throws_ok($$insert into public.ledger_transfers (id, kind) values (gen_random_uuid(), 'gift')$$, '42501', null,
  'service_role cannot write ledger rows directly');
select throws_ok($$delete from private.audit_log$$, '42501', null, 'service_role cannot delete audit rows');
reset role;

-- Sign-up trigger and the access token hook --------------------------------------------------------
insert into auth.users (id, email, phone, raw_user_meta_data) values
  ('88888888-8888-4888-8888-888888888888', 'new@example.org', '2348012345678', '{"full_name": "New Person", "time_zone": "Mars/Olympus"}');
select results_eq(
  $$select full_name, email, phone, time_zone from public.profiles where id = '88888888-8888-4888-8888-888888888888'$$,
  $$values ('New Person'::text, 'new@example.org'::text, '+2348012345678'::text, 'UTC'::text)$$,
  'sign-up creates the profile (an unknown time zone falls back to UTC)');
select results_eq(
  $$select role::text from public.user_roles where user_id = '88888888-8888-4888-8888-888888888888'$$,
  $$values ('patient')$$, 'sign-up grants the patient role');
update auth.users set email = 'renamed@example.org' where id = '88888888-8888-4888-8888-888888888888';
select is((select email from public.profiles where id = '88888888-8888-4888-8888-888888888888'), 'renamed@example.org',
  'an email change in Supabase Auth reaches the profile');

select ok(has_function_privilege('supabase_auth_admin', 'public.custom_access_token_hook(jsonb)', 'execute'),
  'supabase_auth_admin executes the hook');
select ok(not has_function_privilege('authenticated', 'public.custom_access_token_hook(jsonb)', 'execute')
          and not has_function_privilege('anon', 'public.custom_access_token_hook(jsonb)', 'execute'),
  'nobody else does');
grant usage on schema extensions to supabase_auth_admin;  -- for pgTAP itself; rolled back
set local role supabase_auth_admin;
select is(
  public.custom_access_token_hook(jsonb_build_object(
    'user_id', '33333333-3333-4333-8333-333333333333',
    'authentication_method', 'password',
    'claims', jsonb_build_object('sub', '33333333-3333-4333-8333-333333333333', 'role', 'authenticated',
                                 'aud', 'authenticated', 'aal', 'aal1', 'session_id', 's1', 'is_anonymous', false))),
  jsonb_build_object('claims', jsonb_build_object(
    'sub', '33333333-3333-4333-8333-333333333333', 'role', 'authenticated', 'aud', 'authenticated',
    'aal', 'aal1', 'session_id', 's1', 'is_anonymous', false,
    'user_role', 'doctor', 'user_roles', jsonb_build_array('doctor', 'patient'))),
  'the hook adds user_role (primary) and user_roles (all) and keeps every required claim');
select is(
  public.custom_access_token_hook('{"user_id": "99999999-9999-4999-8999-999999999999", "claims": {"role": "authenticated"}}') -> 'claims',
  '{"role": "authenticated", "user_role": null, "user_roles": []}'::jsonb,
  'a user without roles gets an explicit null role, not a default');
reset role;

-- Audit log ----------------------------------------------------------------------------------------
select tests.act_as('patient_a');
update public.profiles set full_name = 'Ada A. Patient' where id = auth.uid();
insert into public.messages (conversation_id, body) values ('cc000000-0000-4000-8000-000000000001', 'Thank you');
select throws_ok($$select count(*) from private.audit_log$$, '42501', null, 'a patient cannot read the audit log');
select tests.act_as_owner();

select results_eq(
  $$select actor_id, actor_role, db_role, action, changed_columns from private.audit_log
     where table_name = 'profiles' and row_id = '11111111-1111-4111-8111-111111111111' and action = 'UPDATE'$$,
  $$values ('11111111-1111-4111-8111-111111111111'::uuid, 'patient'::text, 'authenticated'::text, 'UPDATE'::text,
            array['full_name']::text[])$$,
  'a profile edit is audited: who (from the JWT), as which role, which columns');
select results_eq(
  $$select actor_id, action, 'body' = any (changed_columns) from private.audit_log
     where table_name = 'messages' and actor_id = '11111111-1111-4111-8111-111111111111'$$,
  $$values ('11111111-1111-4111-8111-111111111111'::uuid, 'INSERT'::text, true)$$,
  'a new message is audited with its columns');
select is_empty(
  $$select 1 from private.audit_log where table_name = 'messages' and changed_columns::text like '%Thank you%'$$,
  'the audit log records column names, not health information');

delete from public.notifications where user_id = '22222222-2222-4222-8222-222222222222';
select results_eq(
  $$select actor_id, action from private.audit_log where table_name = 'notifications' and action = 'DELETE'$$,
  $$values (null::uuid, 'DELETE'::text)$$,
  'service work (no JWT) is audited with no actor');

select throws_ok($$update private.audit_log set actor_id = null$$, '42501', null,
  'audit rows cannot be changed, even by the owner');
select throws_ok($$delete from private.audit_log$$, '42501', null, 'audit rows cannot be deleted, even by the owner');

-- Data rules -----------------------------------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$update public.profiles set time_zone = 'WAT' where id = auth.uid()$$, '23514', null,
  'a time zone must be an IANA name');
select tests.act_as_owner();
select throws_ok(
  $$insert into public.practitioners (profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
    values ('22222222-2222-4222-8222-222222222222', 'doctor', 'X', 100, 'XXX', 'UTC')$$,
  '22023', 'currency "XXX" is not a supported ISO 4217 currency', 'fees are in a known ISO 4217 currency');
select throws_ok(
  $$insert into public.appointments (patient_id, practitioner_id, status) values
    ('22222222-2222-4222-8222-222222222222', 'd1000000-0000-4000-8000-000000000001', 'booked')$$,
  '23514', null, 'FHIR: a booked appointment needs a start and an end');
select throws_ok(
  $$update public.appointments set cancellation_reason = 'changed mind' where id = 'a1000000-0000-4000-8000-000000000001'$$,
  '23514', null, 'FHIR: a cancellation reason only on a cancelled or no-show appointment');

select * from finish();
rollback;
