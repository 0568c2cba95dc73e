-- The ledger through its entry points, as the service role calls them: each error with its own
-- SQLSTATE and a detail carrying its code, idempotency, two-phase transfers, expiry, reversals,
-- money at 2^53 + 1 and at the bigint limit, immutability, balances, verification.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(51);

-- The world's ledger rows were inserted directly; give its accounts the balances they imply.
update public.ledger_accounts set debits_posted = 5000 where id = '1a000000-0000-4000-8000-00000000000a';
update public.ledger_accounts set debits_posted = 3000 where id = '1a000000-0000-4000-8000-00000000000b';
update public.ledger_accounts set credits_posted = 8000 where id = '1a000000-0000-4000-8000-00000000000c';
-- Fresh accounts for this test.
insert into public.ledger_accounts (id, owner_id, kind, currency, flags) values
  ('1b000000-0000-4000-8000-000000000001', '11111111-1111-4111-8111-111111111111', 'patient_wallet', 'KES', 'debits_must_not_exceed_credits'),
  ('1b000000-0000-4000-8000-000000000002', null, 'payment_clearing', 'KES', 'credits_must_not_exceed_debits'),
  ('1b000000-0000-4000-8000-000000000003', null, 'clinic_revenue', 'KES', 'none'),
  ('1b000000-0000-4000-8000-000000000004', null, 'clinic_revenue', 'KWD', 'none');
create function tests.legs(debit uuid, credit uuid, amount bigint, currency text default 'KES') returns jsonb
language sql immutable as $$
  select jsonb_build_array(
    jsonb_build_object('account_id', debit, 'direction', 'debit', 'amount', amount, 'currency', currency),
    jsonb_build_object('account_id', credit, 'direction', 'credit', 'amount', amount, 'currency', currency))
$$;
grant execute on function tests.legs(uuid, uuid, bigint, text) to service_role;
-- The SQLSTATE and detail a statement is refused with.
create function tests.refusal(sql text) returns jsonb language plpgsql as $$
declare
  state text;
  detail text;
begin
  execute sql;
  return null;
exception when others then
  get stacked diagnostics state = returned_sqlstate, detail = pg_exception_detail;
  return jsonb_build_object('sqlstate', state, 'detail', nullif(detail, '')::jsonb);
end
$$;
grant execute on function tests.refusal(text) to service_role;

-- The lists are the extension's (rules::ledger): the check constraints read them, and the values
-- the ledger's SQL names one by one (an index predicate, the entry points, the sweep) are in them.
select lives_ok($$insert into public.ledger_accounts (currency, kind, flags)
                  select 'KES', 'refunds', f from unnest(careplane.ledger_flags()) f$$,
  'every flag the extension names is accepted');
select throws_ok($$insert into public.ledger_transfers (id, kind, type) values (gen_random_uuid(), 'x', 'teleported')$$,
  '23514', null, 'a transfer type the extension does not name is refused');
select is_empty($$
  select 'flag ' || v from unnest(array['none']) v where v <> all (careplane.ledger_flags())
  union all select 'type ' || v from unnest(array['posted', 'pending', 'post_pending', 'void_pending']) v
             where v <> all (careplane.ledger_transfer_types())
  union all select 'direction ' || v from unnest(array['debit', 'credit']) v where v <> all (careplane.ledger_directions())
  union all select 'void reason ' || v from unnest(array['voided', 'expired']) v where v <> all (careplane.ledger_void_reasons())
  union all select 'posting type ' || v from unnest(careplane.ledger_posting_types()) v where v <> all (careplane.ledger_transfer_types())
  union all select 'resolution type ' || v from unnest(careplane.ledger_resolution_types()) v where v <> all (careplane.ledger_transfer_types())$$,
  'the values the ledger''s SQL names are the extension''s');

set local role service_role;
-- A card payment of KES 1,000.00 lands in the wallet.
select is((private.post_transfer('2a000000-0000-4000-8000-000000000001', 'top_up',
  tests.legs('1b000000-0000-4000-8000-000000000002', '1b000000-0000-4000-8000-000000000001', 100000))).type, 'posted',
  'a balanced transfer posts');
select is((private.post_transfer('2a000000-0000-4000-8000-000000000001', 'top_up',
  tests.legs('1b000000-0000-4000-8000-000000000002', '1b000000-0000-4000-8000-000000000001', 100000))).id,
  '2a000000-0000-4000-8000-000000000001'::uuid, 'the same id and content returns the existing transfer');
select throws_ok($$select private.post_transfer('2a000000-0000-4000-8000-000000000001', 'top_up',
  tests.legs('1b000000-0000-4000-8000-000000000002', '1b000000-0000-4000-8000-000000000001', 100001))$$,
  'LG004', 'transfer 2a000000-0000-4000-8000-000000000001 already exists with a different legs',
  'the same id with different content is LG004, naming what differs');
select is(tests.refusal($$select private.post_transfer('2a000000-0000-4000-8000-000000000001', 'top_up',
  tests.legs('1b000000-0000-4000-8000-000000000002', '1b000000-0000-4000-8000-000000000001', 100001))$$),
  '{"sqlstate": "LG004", "detail": {"code": "exists_with_different", "fields": ["legs"],
    "transfer_id": "2a000000-0000-4000-8000-000000000001"}}'::jsonb,
  'the detail carries the code and the differing fields');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x', '[{"account_id": "1b000000-0000-4000-8000-000000000001", "direction": "debit", "amount": 5, "currency": "KES"},
  {"account_id": "1b000000-0000-4000-8000-000000000003", "direction": "credit", "amount": 4, "currency": "KES"}]')$$,
  'LG001', 'the transfer does not balance in KES: debits 5, credits 4', 'unbalanced is LG001');
select is(tests.refusal($$select private.post_transfer(gen_random_uuid(), 'x', '[{"account_id": "1b000000-0000-4000-8000-000000000001", "direction": "debit", "amount": 5, "currency": "KES"},
  {"account_id": "1b000000-0000-4000-8000-000000000003", "direction": "credit", "amount": 4, "currency": "KES"}]')$$),
  '{"sqlstate": "LG001", "detail": {"code": "unbalanced", "currency": "KES", "debits": 5, "credits": 4}}'::jsonb,
  'the detail carries the code and the sums');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000004', 5))$$,
  'LG002', null, 'a leg in another currency than its account is LG002');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'fee',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000003', 100001))$$,
  'LG003', null, 'an overdraft of a wallet is LG003');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000003', 0))$$,
  'LG009', null, 'a zero amount is LG009');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x',
  tests.legs('1b000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000000', 5))$$,
  'LG010', null, 'an unknown account is LG010');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x', '[]')$$, 'LG011', null, 'no legs is LG011');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x', null)$$, 'LG011', null, 'legs that are not an array are LG011');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x', '[{"account_id": "1b000000-0000-4000-8000-000000000001", "direction": "sideways", "amount": 5, "currency": "KES"}]')$$,
  '22023', null, 'a malformed leg is 22023 naming the field');
reset role;
select results_eq($$select debits_posted, credits_posted from public.ledger_accounts where id = '1b000000-0000-4000-8000-000000000001'$$,
  $$values (0::bigint, 100000::bigint)$$, 'rejected transfers changed nothing');

-- Two-phase: reserve the consultation fee, post part of it, void the rest ----------------------------
set local role service_role;
select is((private.reserve_transfer('2a000000-0000-4000-8000-000000000002', 'consultation_hold',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000003', 60000), 3600)).type, 'pending',
  'a pending transfer reserves');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'fee',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000003', 40001))$$,
  'LG003', null, 'the reservation counts against the wallet');
select throws_ok($$select private.post_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000002', 60001)$$,
  'LG005', 'cannot post 60001: the pending transfer reserved 60000', 'posting more than reserved is LG005');
select is((private.post_pending_transfer('2a000000-0000-4000-8000-000000000003', '2a000000-0000-4000-8000-000000000002', 45000)).amount,
  45000::bigint, 'posting part of a reservation');
select throws_ok($$select private.post_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000002')$$,
  'LG006', null, 'a pending transfer posts once (LG006)');
select throws_ok($$select private.void_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000002')$$,
  'LG006', null, 'and cannot be voided after posting');
select is((private.reserve_transfer('2a000000-0000-4000-8000-000000000004', 'consultation_hold',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000003', 1000))).type, 'pending', 'another hold');
select is((private.void_pending_transfer('2a000000-0000-4000-8000-000000000005', '2a000000-0000-4000-8000-000000000004')).void_reason,
  'voided', 'voiding releases it');
select throws_ok($$select private.post_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000004')$$,
  'LG007', null, 'posting after a void is LG007');
select throws_ok($$select private.void_pending_transfer(gen_random_uuid(), '00000000-0000-4000-8000-000000000000')$$,
  'LG013', null, 'an unknown pending transfer is LG013');
select throws_ok($$select private.post_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000001')$$,
  'LG013', 'no pending transfer 2a000000-0000-4000-8000-000000000001', 'a posted transfer is not a pending one (LG013)');
reset role;

-- Expiry: a hold whose timeout passed cannot be posted, and the sweep voids it.
insert into public.ledger_accounts (id, currency, kind, flags) values ('1b000000-0000-4000-8000-000000000005', 'KES', 'refunds', 'none');
set local role service_role;
select is((private.reserve_transfer('2a000000-0000-4000-8000-000000000006', 'hold',
  tests.legs('1b000000-0000-4000-8000-000000000001', '1b000000-0000-4000-8000-000000000005', 500), 1)).type, 'pending', 'a short hold');
reset role;
-- Time passes: the hold's deadline is moved into the past by its owner (the only update the test makes).
alter table public.ledger_transfers disable trigger append_only;
update public.ledger_transfers set timeout_at = now() - interval '1 second' where id = '2a000000-0000-4000-8000-000000000006';
alter table public.ledger_transfers enable trigger append_only;
set local role service_role;
select throws_ok($$select private.post_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000006')$$,
  'LG008', 'the pending transfer expired', 'posting after the timeout is LG008');
select is(private.expire_pending_transfers(), 1, 'the sweep voids the expired hold');
select is((select void_reason from public.ledger_transfers where pending_id = '2a000000-0000-4000-8000-000000000006'), 'expired',
  'recorded as expired');
select is(private.expire_pending_transfers(), 0, 'a hold is swept once');
select throws_ok($$select private.void_pending_transfer(gen_random_uuid(), '2a000000-0000-4000-8000-000000000006')$$,
  'LG008', null, 'a swept hold stays expired');

-- Reversal --------------------------------------------------------------------------------------------
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'refund',
  tests.legs('1b000000-0000-4000-8000-000000000003', '1b000000-0000-4000-8000-000000000001', 100), null, '2a000000-0000-4000-8000-000000000003')$$,
  'LG012', null, 'a reversal must mirror the original exactly');
select is((private.post_transfer('2a000000-0000-4000-8000-000000000007', 'refund',
  tests.legs('1b000000-0000-4000-8000-000000000003', '1b000000-0000-4000-8000-000000000001', 45000), null,
  '2a000000-0000-4000-8000-000000000003')).reverses, '2a000000-0000-4000-8000-000000000003'::uuid, 'a correction reverses the original');
select is(tests.refusal($$select private.post_transfer(gen_random_uuid(), 'refund',
  tests.legs('1b000000-0000-4000-8000-000000000003', '1b000000-0000-4000-8000-000000000001', 45000), null,
  '2a000000-0000-4000-8000-000000000003')$$) -> 'detail',
  '{"code": "already_reversed", "reverses": "2a000000-0000-4000-8000-000000000003",
    "reversed_by": "2a000000-0000-4000-8000-000000000007"}'::jsonb, 'a transfer is reversed once (LG012)');
select is(tests.refusal($$select private.post_transfer(gen_random_uuid(), 'refund',
  tests.legs('1b000000-0000-4000-8000-000000000003', '1b000000-0000-4000-8000-000000000001', 1000), null,
  '2a000000-0000-4000-8000-000000000004')$$),
  '{"sqlstate": "LG012", "detail": {"code": "reversed_not_posted", "reverses": "2a000000-0000-4000-8000-000000000004"}}'::jsonb,
  'a reservation is not reversed, it is voided (LG012)');
reset role;

-- Money as integers: 2^53 + 1 (past what a double holds) and the bigint limit, exactly -----------------
insert into public.ledger_accounts (id, currency, kind, flags) values
  ('1c000000-0000-4000-8000-000000000001', 'UGX', 'payment_clearing', 'none'),
  ('1c000000-0000-4000-8000-000000000002', 'UGX', 'clinic_revenue', 'none'),
  ('1c000000-0000-4000-8000-000000000003', 'UGX', 'payment_clearing', 'none'),
  ('1c000000-0000-4000-8000-000000000004', 'UGX', 'clinic_revenue', 'none');
set local role service_role;
select is((private.post_transfer('2b000000-0000-4000-8000-000000000001', 'big',
  tests.legs('1c000000-0000-4000-8000-000000000001', '1c000000-0000-4000-8000-000000000002', 9007199254740993, 'UGX'))).type,
  'posted', '2^53 + 1 posts');
reset role;
select results_eq($$select amount from public.ledger_entries where transfer_id = '2b000000-0000-4000-8000-000000000001' order by id$$,
  $$values (9007199254740993::bigint), (9007199254740993::bigint)$$, 'and reads back exactly from the entries');
select results_eq($$select debits_posted, credits_posted from public.ledger_accounts
                    where id in ('1c000000-0000-4000-8000-000000000001', '1c000000-0000-4000-8000-000000000002') order by id$$,
  $$values (9007199254740993::bigint, 0::bigint), (0::bigint, 9007199254740993::bigint)$$, 'and from the balances');
set local role service_role;
select is((private.post_transfer('2b000000-0000-4000-8000-000000000002', 'big',
  tests.legs('1c000000-0000-4000-8000-000000000003', '1c000000-0000-4000-8000-000000000004', 9223372036854775807, 'UGX'))).type,
  'posted', 'the bigint limit posts');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'big',
  tests.legs('1c000000-0000-4000-8000-000000000003', '1c000000-0000-4000-8000-000000000004', 1, 'UGX'))$$,
  'LG009', 'account 1c000000-0000-4000-8000-000000000003: debits_posted would pass the bigint limit (9223372036854775807)',
  'one more is refused: the balance would pass the bigint limit');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'big', '[
  {"account_id": "1c000000-0000-4000-8000-000000000001", "direction": "debit", "amount": 9223372036854775808, "currency": "UGX"},
  {"account_id": "1c000000-0000-4000-8000-000000000002", "direction": "credit", "amount": 9223372036854775808, "currency": "UGX"}]')$$,
  '22023', 'request.legs[0].amount: must be a whole number between -9223372036854775808 and 9223372036854775807, got 9223372036854775808',
  'an amount past the bigint limit is 22023 naming the field');
reset role;
select results_eq($$select debits_posted from public.ledger_accounts where id = '1c000000-0000-4000-8000-000000000003'$$,
  $$values (9223372036854775807::bigint)$$, 'the refused posting changed nothing');
set local role service_role;
select is_empty($$select * from private.verify_ledger()$$, 'the ledger verifies clean');
reset role;

-- Immutability and verification ---------------------------------------------------------------------
select throws_ok($$update public.ledger_entries set amount = 1$$, '42501', null, 'not even the owner updates entries');
select throws_ok($$delete from public.ledger_transfers where id = '2a000000-0000-4000-8000-000000000001'$$, '42501', null,
  'not even the owner deletes transfers');
update public.ledger_accounts set credits_posted = credits_posted + 1 where id = '1b000000-0000-4000-8000-000000000003';
select is((select array_agg(distinct invariant order by invariant) from private.verify_ledger()),
  array['currency_unbalanced', 'stored_balance_mismatch'], 'tampering with a stored balance is reported');

-- A patient's view ---------------------------------------------------------------------------------
select tests.act_as('patient_a');
select results_eq($$select currency, balance_minor, available, pending_debits_minor from public.my_balances() where currency = 'KES'$$,
  $$values ('KES'::text, 100000::bigint, '1000.00'::text, 0::bigint)$$,
  'the patient sees their own wallet: 1000.00 − 450.00 paid + 450.00 refunded');
select throws_ok($$select private.post_transfer(gen_random_uuid(), 'x', '[]')$$, '42501', null, 'a patient cannot write the ledger');
select tests.act_as_owner();

select * from finish();
rollback;
