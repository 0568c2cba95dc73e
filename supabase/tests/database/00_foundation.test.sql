-- The installed careplane extension, the Supabase compatibility layer and the migration
-- history, as a database built by `careplane-companion migrate` has them.
begin;
set local search_path = extensions, public;
select plan(22);

-- The extension ---------------------------------------------------------------------------------
select has_extension('careplane', 'careplane is installed');
select has_schema('careplane', 'CREATE EXTENSION created schema careplane');
select is(careplane.version(),
          (select extversion from pg_catalog.pg_extension where extname = 'careplane'),
          'careplane.version() is the installed extension version');
select volatility_is('careplane', 'version', 'immutable', 'careplane.version() is immutable');
select is(careplane.currency_exponent('NGN'), 2, 'NGN has two decimals (kobo)');
select is(careplane.currency_exponent('JPY'), 0, 'JPY has no minor unit');
select is(careplane.currency_exponent('KWD'), 3, 'KWD has three decimals (fils)');
select is(careplane.format_minor(150050, 'NGN'), '1500.50', 'minor units format in major units');
select throws_ok($$select careplane.currency_exponent('XXX')$$, '22023',
                 'currency "XXX" is not a supported ISO 4217 currency',
                 'an unknown currency is 22023, not a guessed exponent');
select throws_ok($$select careplane.currency_exponent('ngn')$$, '22023', null,
                 'a lower-case code is 22023, not silently upper-cased');
select is(careplane.currency_exponent(null), null, 'strict: null in, null out');

-- The Supabase compatibility layer ---------------------------------------------------------------
select has_role('anon', 'role anon exists');
select has_role('authenticated', 'role authenticated exists');
select has_role('service_role', 'role service_role exists');
select is_member_of('authenticated', 'authenticator', 'authenticator can switch to authenticated');
select has_table('auth', 'users', 'auth.users exists');

select set_config('request.jwt.claims',
  '{"sub":"6f1c2a52-7d7a-4f55-9a43-2b0f6f7b8e11","role":"authenticated","email":"ada@example.org"}', true);
select is(auth.uid(), '6f1c2a52-7d7a-4f55-9a43-2b0f6f7b8e11'::uuid, 'auth.uid() reads sub from request.jwt.claims');
select is(auth.role(), 'authenticated', 'auth.role() reads role');
select is(auth.email(), 'ada@example.org', 'auth.email() reads email');
select is(auth.jwt() ->> 'sub', '6f1c2a52-7d7a-4f55-9a43-2b0f6f7b8e11', 'auth.jwt() is the claims');

-- Migration history, recorded as the Supabase CLI records it ---------------------------------------
select results_eq(
  $$select version, name from supabase_migrations.schema_migrations
    where version = '20261126000000'$$,
  $$values ('20261126000000'::text, 'careplane_extension'::text)$$,
  'the first migration is recorded with its version and name');
select ok((select cardinality(statements) >= 2 from supabase_migrations.schema_migrations
           where version = '20261126000000'),
          'its statements are recorded one by one');

select * from finish();
rollback;
