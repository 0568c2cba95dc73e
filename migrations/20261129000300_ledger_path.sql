-- A ledger transfer's database cost, second pass (issue 18; bench/ledger). Nothing here changes
-- an answer, a row written (entry ids still follow the legs' order), an error or its SQLSTATE.
--
-- private.ledger_execute, as before, but:
-- 1. the accounts a request touches are its legs' accounts, with the pending transfer's only
--    when it posts or voids one (the union with the pending transfer's entries read the entries
--    index, and sorted the ids for the union, on every transfer);
-- 2. the transfer, its entries and the new balances are written by one statement (the entries'
--    foreign key to the transfer is checked at the statement's end, as before at each insert's).
create or replace function private.ledger_execute(p_request jsonb) returns public.ledger_transfers
language plpgsql security definer set search_path = '' set plan_cache_mode = force_generic_plan as $$
declare
  verdict jsonb;
  request jsonb;
  pending public.ledger_transfers;
  resolution public.ledger_transfers;
  reversed public.ledger_transfers;
  reversed_by public.ledger_transfers;
  existing public.ledger_transfers;
  account_ids uuid[];
  accounts jsonb;
  created public.ledger_transfers;
begin
  -- The request in canonical form, and the accounts its legs name (22023 naming a malformed field).
  verdict := private.enforce(careplane.ledger_request(p_request));
  request := verdict -> 'request';

  -- Lock the transfer the request names, so that everything done to it queues: the pending
  -- transfer it posts or voids, or the transfer it reverses (a request names at most one), and
  -- read what already resolved or reversed it. A writer locks at most one transfer row, always
  -- before accounts: no deadlock.
  if request ? 'pending_id' then
    select * into pending from public.ledger_transfers t where t.id = (request ->> 'pending_id')::uuid for update;
    select * into resolution from public.ledger_transfers r where r.pending_id = pending.id;
  end if;
  if request ? 'reverses' then
    select * into reversed from public.ledger_transfers t where t.id = (request ->> 'reverses')::uuid for update;
    select * into reversed_by from public.ledger_transfers r where r.reverses = reversed.id;
  end if;

  -- Lock the accounts the legs touch (a resolution's: its pending transfer's), in id order, so
  -- concurrent writers never deadlock, and read their balances.
  account_ids := array(select jsonb_array_elements_text(verdict -> 'account_ids')::uuid);
  if pending.id is not null then
    account_ids := account_ids || array(select e.account_id from public.ledger_entries e where e.transfer_id = pending.id);
  end if;
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', a.id, 'currency', a.currency, 'flags', a.flags,
           'debits_posted', a.debits_posted, 'credits_posted', a.credits_posted,
           'debits_pending', a.debits_pending, 'credits_pending', a.credits_pending)), '[]')
    into accounts
    from (select * from public.ledger_accounts la where la.id = any (account_ids) order by la.id for update) a;

  -- A transfer with the same id, read under the locks so a concurrent retry sees the first one's result.
  select * into existing from public.ledger_transfers t where t.id = (request ->> 'id')::uuid;

  verdict := private.enforce(careplane.ledger_apply(jsonb_build_object(
    'request', request, 'accounts', accounts,
    -- (each read only when found: most requests name none of them)
    'pending', case when pending.id is not null then private.ledger_transfer_json(pending) end,
    'pending_resolution', case when resolution.id is not null then private.ledger_transfer_json(resolution) end,
    'existing', case when existing.id is not null then private.ledger_transfer_json(existing) end,
    'reversed', case when reversed.id is not null then private.ledger_transfer_json(reversed) end,
    'reversed_by', case when reversed_by.id is not null then private.ledger_transfer_json(reversed_by) end,
    'now', now())));
  if verdict ->> 'outcome' = 'exists' then
    return existing;
  end if;

  with transfer as (
         insert into public.ledger_transfers (id, kind, description, reverses, type, pending_id, amount, timeout_at, void_reason)
         select t.id, t.kind, t.description, t.reverses, t.type, t.pending_id, t.amount, t.timeout_at, t.void_reason
           from jsonb_to_record(verdict -> 'transfer') as t(id uuid, kind text, description text, reverses uuid, type text,
                                                             pending_id uuid, amount bigint, timeout_at timestamptz, void_reason text)
         returning *),
       entries as (
         insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency)
         select transfer.id, (e ->> 'account_id')::uuid, e ->> 'direction', (e ->> 'amount')::bigint, e ->> 'currency'
           from transfer, jsonb_array_elements(verdict -> 'entries') with ordinality as x(e, n)
          order by x.n),
       balances as (
         update public.ledger_accounts a
            set debits_posted = n.debits_posted, credits_posted = n.credits_posted,
                debits_pending = n.debits_pending, credits_pending = n.credits_pending
           from jsonb_to_recordset(verdict -> 'accounts')
                as n(id uuid, debits_posted bigint, credits_posted bigint, debits_pending bigint, credits_pending bigint)
          where a.id = n.id and a.id = any (account_ids))
  select * into created from transfer;
  return created;
end
$$;
