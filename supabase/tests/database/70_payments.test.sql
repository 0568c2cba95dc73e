-- Payments (migrations/20261128000100_payments.sql): who may call what, RLS on the new tables,
-- the writer's refusals (a refused posting changes nothing), idempotent postings, the inbox's
-- claims, and the refund a cancellation requests.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(27);

-- The new private tables: RLS on, no API role may touch them ------------------------------------------
select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'private.payment_refunds'::regclass), 'RLS on private.payment_refunds');
select ok((select relrowsecurity from pg_catalog.pg_class where oid = 'private.webhook_inbox'::regclass), 'RLS on private.webhook_inbox');
select is_empty($$select 1 from information_schema.role_table_grants
                  where table_schema = 'private' and table_name in ('payment_refunds', 'webhook_inbox')
                    and grantee in ('anon', 'authenticated', 'service_role')$$, 'no API role has privileges on them');

-- The functions are the service role's only ------------------------------------------------------------
select tests.act_as('patient_a');
select throws_ok($$select private.payment_apply('00000000-0000-4000-8000-000000000000', '{}')$$, '42501', null,
  'a patient cannot call the payment writer');
select throws_ok($$select private.webhook_store('paystack', 'x', 'charge.success', '{}')$$, '42501', null,
  'nor store a webhook');
select tests.act_as_owner();

-- The status list and the refunded bound -------------------------------------------------------------
select throws_ok($$update public.payments set status = 'paid' where provider_reference = 'psk_ref_a'$$, '23514', null,
  'a status the rules do not name is refused');
select throws_ok($$update public.payments set refunded_minor = amount_minor + 1 where provider_reference = 'psk_ref_a'$$, '23514', null,
  'more refunded than paid is refused');

-- The writer: lock, post through the ledger, refuse as the ledger refuses -----------------------------------
-- The world's ledger rows were inserted directly; give its accounts the balances they imply.
update public.ledger_accounts set debits_posted = 5000 where id = '1a000000-0000-4000-8000-00000000000a';
update public.ledger_accounts set debits_posted = 3000 where id = '1a000000-0000-4000-8000-00000000000b';
update public.ledger_accounts set credits_posted = 8000 where id = '1a000000-0000-4000-8000-00000000000c';
create temporary table pb as select id from public.payments where provider_reference = 'psk_ref_b';
grant select on pb to service_role;
set local role service_role;
select is(private.ledger_account_for(null, 'payment_clearing', 'NGN', 'credits_must_not_exceed_debits'),
          private.ledger_account_for(null, 'payment_clearing', 'NGN', 'credits_must_not_exceed_debits'),
  'a clinic account is created once');
select is(private.ledger_account_for('33333333-3333-4333-8333-333333333333', 'practitioner_payable', 'NGN', 'debits_must_not_exceed_credits'),
          private.ledger_account_for('33333333-3333-4333-8333-333333333333', 'practitioner_payable', 'NGN', 'debits_must_not_exceed_credits'),
  'an owned account is created once');
select throws_ok($$select private.payment_apply('00000000-0000-4000-8000-000000000000', '{"status": "failed"}')$$, 'PT404', null,
  'an unknown payment is PT404');
select throws_ok(format($$select private.payment_apply(%L, jsonb_build_object('status', 'succeeded', 'transfer',
    jsonb_build_object('id', %L, 'kind', 'payment', 'legs', jsonb_build_array(
      jsonb_build_object('account_id', private.ledger_account_for(null, 'payment_clearing', 'NGN', 'credits_must_not_exceed_debits'),
                         'direction', 'debit', 'amount', 20000, 'currency', 'NGN'),
      jsonb_build_object('account_id', private.ledger_account_for(null, 'platform_fees', 'NGN', 'debits_must_not_exceed_credits'),
                         'direction', 'credit', 'amount', 19999, 'currency', 'NGN')))))$$, (select id from pb), (select id from pb)),
  'LG001', null, 'an unbalanced posting is refused with the ledger''s SQLSTATE');
select is((private.payment_facts('psk_ref_b') -> 'payment' ->> 'status'), 'pending', 'and the refused change wrote nothing');
create temporary table legs as select jsonb_build_array(
  jsonb_build_object('account_id', private.ledger_account_for(null, 'payment_clearing', 'NGN', 'credits_must_not_exceed_debits'),
                     'direction', 'debit', 'amount', 20000, 'currency', 'NGN'),
  jsonb_build_object('account_id', private.ledger_account_for(null, 'platform_fees', 'NGN', 'debits_must_not_exceed_credits'),
                     'direction', 'credit', 'amount', 20000, 'currency', 'NGN')) as v;
select is((private.payment_apply((select id from pb), jsonb_build_object('status', 'succeeded', 'paid', true, 'announce', true,
    'receipt', true, 'transfer', jsonb_build_object('id', (select id from pb), 'kind', 'payment', 'legs', (select v from legs))))).status,
  'succeeded', 'a balanced posting succeeds the payment');
select is((private.payment_apply((select id from pb), jsonb_build_object('transfer',
    jsonb_build_object('id', (select id from pb), 'kind', 'payment', 'legs', (select v from legs))))).status,
  'succeeded', 'the same posting again is the same transfer (idempotent)');
select throws_ok(format($$select private.payment_apply(%L, jsonb_build_object('transfer', jsonb_build_object('id', %L, 'kind', 'payment',
    'legs', jsonb_build_array(
      jsonb_build_object('account_id', private.ledger_account_for(null, 'payment_clearing', 'NGN', 'credits_must_not_exceed_debits'),
                         'direction', 'debit', 'amount', 1, 'currency', 'NGN'),
      jsonb_build_object('account_id', private.ledger_account_for(null, 'platform_fees', 'NGN', 'debits_must_not_exceed_credits'),
                         'direction', 'credit', 'amount', 1, 'currency', 'NGN')))))$$, (select id from pb), (select id from pb)),
  'LG004', null, 'another posting under the payment''s transfer id is LG004');
reset role;
select is((select count(*)::int from public.ledger_transfers where id = (select id from pb)), 1, 'one transfer');
select is((select count(*)::int from private.realtime_events where event = 'payment:updated'
             and topic = 'user:22222222-2222-4222-8222-222222222222'), 1, 'one payment:updated to the patient');
select is((select payload from private.outbox where template = 'payment_receipt'),
  jsonb_build_object('payment_id', (select id from pb), 'appointment_id', null, 'patient_id', '22222222-2222-4222-8222-222222222222'),
  'a receipt with ids only');
select is_empty($$select * from private.verify_ledger()$$, 'the ledger verifies');

-- The inbox: stored once, claimed by one worker at a time, retried, given up ----------------------------------
set local role service_role;
select ok(private.webhook_store('paystack', 'charge.success:r1', 'charge.success', '{"event": "charge.success"}'), 'a new webhook is stored');
select ok(not private.webhook_store('paystack', 'charge.success:r1', 'charge.success', '{"event": "charge.success"}'), 'a duplicate is not');
select is((select count(*)::int from private.webhook_claim('paystack', 10, 60)), 1, 'a worker claims it');
select is((select count(*)::int from private.webhook_claim('paystack', 10, 60)), 0, 'no other worker takes it while the lease holds');
reset role;
select private.webhook_failed((select id from private.webhook_inbox where event_id = 'charge.success:r1'), 'Paystack did not answer', 30);
select is((select (waiting, retrying, dead) from private.webhook_inbox_stats('paystack')), row(1::bigint, 1::bigint, 0::bigint),
  'a failed attempt is retried and shows');
select private.webhook_failed((select id from private.webhook_inbox where event_id = 'charge.success:r1'), 'gave up', null);
select is((select (waiting, retrying, dead) from private.webhook_inbox_stats('paystack')), row(0::bigint, 0::bigint, 1::bigint),
  'a row given up shows as dead');

-- A paid appointment that is cancelled requests a refund (the worker asks the rules) ------------------------
update public.payments set paid_at = now() where provider_reference = 'psk_ref_a';
select tests.act_as('patient_a');
select lives_ok($$select public.cancel_appointment('a1000000-0000-4000-8000-000000000001', 'travelling')$$, 'the patient cancels');
select tests.act_as_owner();
select is((select (r.reason, r.status) from private.payment_refunds r join public.payments p on p.id = r.payment_id
            where p.provider_reference = 'psk_ref_a'), row('appointment_cancelled'::text, 'requested'::text),
  'the cancellation requested a refund');

select * from finish();
rollback;
