-- The ledger's rules in the database: one writer (private.ledger_execute) that locks the
-- accounts in id order, asks the extension to validate (careplane.ledger_apply), and appends the
-- transfer and its entries. History is append-only. Errors have their own SQLSTATEs:
--   LG001 unbalanced · LG002 mixed currency · LG003 overdraft (a flag would be violated) ·
--   LG004 same id, different content · LG005 posting more than reserved · LG006 pending already
--   posted · LG007 pending already voided · LG008 pending expired · LG009 invalid amount ·
--   LG010 unknown account · LG011 invalid legs · LG012 bad reversal · LG013 no such pending transfer

alter table public.ledger_transfers
  add column type text not null default 'posted' check (type in ('posted', 'pending', 'post_pending', 'void_pending')),
  add column pending_id uuid references public.ledger_transfers (id),
  add column amount bigint check (amount > 0),
  add column timeout_at timestamptz,
  add column void_reason text check (void_reason in ('voided', 'expired')),
  add constraint resolution_names_its_pending check ((pending_id is not null) = (type in ('post_pending', 'void_pending'))),
  add constraint only_pending_transfers_time_out check (timeout_at is null or type = 'pending'),
  add constraint void_reason_only_on_voids check ((void_reason is not null) = (type = 'void_pending'));
-- A pending transfer is posted or voided once; a transfer is reversed once.
create unique index ledger_transfers_resolved_once on public.ledger_transfers (pending_id) where pending_id is not null;
create unique index ledger_transfers_reversed_once on public.ledger_transfers (reverses) where reverses is not null;
create index ledger_transfers_open_pending on public.ledger_transfers (timeout_at) where type = 'pending';
-- Balances change on every transfer; room on each page keeps those updates HOT (no index churn).
alter table public.ledger_accounts set (fillfactor = 70);

-- A transfer request in a canonical form, for idempotency: built from a stored transfer (and its
-- entries) or from the arguments of a new request, so the two compare field by field.
create function private.transfer_request(
  p_type text, p_kind text, p_legs jsonb, p_description text, p_reverses uuid, p_pending_id uuid,
  p_amount bigint, p_timeout_seconds int
) returns jsonb language sql immutable set search_path = '' as $$
  select jsonb_strip_nulls(jsonb_build_object(
    'type', p_type, 'kind', p_kind, 'description', p_description, 'reverses', p_reverses,
    'pending_id', p_pending_id, 'amount', p_amount, 'timeout_seconds', p_timeout_seconds,
    'legs', (select jsonb_agg(jsonb_build_object('account_id', (l ->> 'account_id')::uuid, 'direction', l ->> 'direction',
                                                 'amount', (l ->> 'amount')::bigint, 'currency', l ->> 'currency') order by i)
               from jsonb_array_elements(p_legs) with ordinality as x(l, i))))
$$;

create function private.stored_transfer_request(t public.ledger_transfers) returns jsonb
language sql stable set search_path = '' as $$
  select private.transfer_request(
    t.type, case when t.type in ('posted', 'pending') then t.kind end,
    case when t.type in ('posted', 'pending') then
      (select jsonb_agg(jsonb_build_object('account_id', e.account_id, 'direction', e.direction, 'amount', e.amount,
                                           'currency', e.currency) order by e.id)
         from public.ledger_entries e where e.transfer_id = t.id) end,
    t.description, t.reverses, t.pending_id, t.amount,
    case when t.timeout_at is not null then round(extract(epoch from t.timeout_at - t.created_at))::int end)
$$;

-- History is immutable, for every role.
create function private.ledger_is_append_only() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception '% is append-only: % is not allowed', tg_table_name, tg_op
    using errcode = '42501', hint = 'Correct a transfer with a reversing transfer that references it.';
end
$$;
create trigger append_only before update or delete on public.ledger_transfers
  for each row execute function private.ledger_is_append_only();
create trigger append_only before update or delete on public.ledger_entries
  for each row execute function private.ledger_is_append_only();
create trigger no_truncate before truncate on public.ledger_transfers
  for each statement execute function private.ledger_is_append_only();
create trigger no_truncate before truncate on public.ledger_entries
  for each statement execute function private.ledger_is_append_only();

-- The one writer. p_type: posted | pending | post_pending | void_pending.
create function private.ledger_execute(
  p_id uuid, p_type text, p_kind text, p_legs jsonb, p_description text, p_reverses uuid,
  p_pending_id uuid, p_amount bigint, p_timeout_seconds int, p_void_reason text
) returns public.ledger_transfers
language plpgsql security definer set search_path = '' as $$
declare
  existing public.ledger_transfers;
  pending public.ledger_transfers;
  legs jsonb := p_legs;
  state text := 'pending';
  accounts jsonb;
  account_ids uuid[];
  verdict jsonb;
  created public.ledger_transfers;
  diffs text[];
begin
  if p_id is null then
    raise exception 'a transfer id (its idempotency key) is required' using errcode = '22023';
  end if;

  if p_type in ('post_pending', 'void_pending') then
    -- Serialises every resolution of this pending transfer.
    select * into pending from public.ledger_transfers t where t.id = p_pending_id and t.type = 'pending' for update;
    if pending.id is null then
      raise exception 'no pending transfer %', p_pending_id using errcode = 'LG013';
    end if;
    select coalesce(jsonb_agg(jsonb_build_object('account_id', e.account_id, 'direction', e.direction,
                                                 'amount', e.amount, 'currency', e.currency) order by e.id), '[]')
      into legs from public.ledger_entries e where e.transfer_id = pending.id;
    select case when r.type = 'post_pending' then 'posted' when r.void_reason = 'expired' then 'expired' else 'voided' end
      into state from public.ledger_transfers r where r.pending_id = pending.id;
    state := coalesce(state, case when pending.timeout_at <= now() and p_void_reason is distinct from 'expired'
                                  then 'expired' else 'pending' end);
  elsif jsonb_typeof(legs) is distinct from 'array' then
    raise exception 'legs must be an array of {account_id, direction, amount, currency}' using errcode = 'LG011';
  end if;

  -- Lock every account the legs touch, in id order (no deadlocks between writers), and read
  -- their balances.
  account_ids := array(select distinct (l ->> 'account_id')::uuid from jsonb_array_elements(legs) l);
  select coalesce(jsonb_agg(jsonb_build_object(
           'id', a.id, 'currency', a.currency, 'flags', a.flags,
           'debits_posted', a.debits_posted, 'credits_posted', a.credits_posted,
           'debits_pending', a.debits_pending, 'credits_pending', a.credits_pending)), '[]')
    into accounts
    from (select * from public.ledger_accounts la where la.id = any (account_ids) order by la.id for update) a;

  -- Idempotency, checked under the locks so a concurrent retry sees the first one's result.
  select * into existing from public.ledger_transfers t where t.id = p_id;
  if existing.id is not null then
    diffs := careplane.ledger_differences(
      private.stored_transfer_request(existing),
      private.transfer_request(p_type, case when p_type in ('posted', 'pending') then p_kind end,
        case when p_type in ('posted', 'pending') then p_legs end, p_description, p_reverses, p_pending_id,
        case when p_type = 'post_pending' then coalesce(p_amount, (legs -> 0 ->> 'amount')::bigint) end,
        case when p_timeout_seconds > 0 then p_timeout_seconds end));
    if cardinality(diffs) = 0 then
      return existing;
    end if;
    raise exception 'transfer % already exists with a different %', p_id, array_to_string(diffs, ', ')
      using errcode = 'LG004', detail = jsonb_build_object('code', 'exists_with_different', 'fields', diffs)::text;
  end if;

  verdict := careplane.ledger_apply(jsonb_build_object(
    'accounts', accounts,
    'action', case p_type when 'posted' then 'post' when 'pending' then 'reserve' else p_type end,
    'legs', legs, 'pending_state', state, 'amount', p_amount));
  if not (verdict ->> 'ok')::boolean then
    raise exception '%', verdict ->> 'message' using errcode = verdict ->> 'sqlstate',
      detail = jsonb_build_object('code', verdict ->> 'code')::text;
  end if;

  if p_reverses is not null then
    -- A reversal mirrors a posted transfer exactly: same accounts and amounts, directions swapped.
    if not exists (select 1 from public.ledger_transfers o where o.id = p_reverses and o.type in ('posted', 'post_pending'))
       or (select coalesce(jsonb_agg(jsonb_build_array(e.account_id, case e.direction when 'debit' then 'credit' else 'debit' end, e.amount)
                                     order by e.account_id, e.direction desc), '[]')
             from (select account_id::text, direction, sum(amount) as amount from public.ledger_entries
                    where transfer_id = p_reverses group by 1, 2) e(account_id, direction, amount))
          is distinct from
          (select coalesce(jsonb_agg(jsonb_build_array(l.account_id, l.direction, l.amount) order by l.account_id, l.direction), '[]')
             from (select l ->> 'account_id', l ->> 'direction', sum((l ->> 'amount')::bigint)
                     from jsonb_array_elements(legs) l group by 1, 2) l(account_id, direction, amount)) then
      raise exception 'transfer % does not exactly reverse posted transfer %', p_id, p_reverses using errcode = 'LG012';
    end if;
  end if;

  insert into public.ledger_transfers (id, kind, description, reverses, type, pending_id, amount, timeout_at, void_reason)
  values (p_id, coalesce(p_kind, pending.kind), p_description, p_reverses, p_type, pending.id,
          case when p_type = 'post_pending' then coalesce(p_amount, (legs -> 0 ->> 'amount')::bigint) end,
          case when p_timeout_seconds > 0 then now() + make_interval(secs => p_timeout_seconds) end,
          case when p_type = 'void_pending' then coalesce(p_void_reason, 'voided') end)
  returning * into created;

  if p_type in ('posted', 'pending', 'post_pending') then
    insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency)
    select created.id, (l ->> 'account_id')::uuid, l ->> 'direction',
           case when p_type = 'post_pending' then created.amount else (l ->> 'amount')::bigint end, l ->> 'currency'
      from jsonb_array_elements(legs) l;
  end if;

  update public.ledger_accounts a
     set debits_posted = n.debits_posted, credits_posted = n.credits_posted,
         debits_pending = n.debits_pending, credits_pending = n.credits_pending
    from jsonb_to_recordset(verdict -> 'accounts')
         as n(id uuid, debits_posted bigint, credits_posted bigint, debits_pending bigint, credits_pending bigint)
   where a.id = n.id and a.id = any (account_ids);
  return created;
end
$$;

-- The service role's entry points (plpgsql, not SQL: plpgsql keeps its plans between calls) -------
create function private.post_transfer(id uuid, kind text, legs jsonb, description text default null, reverses uuid default null)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(id, 'posted', kind, legs, description, reverses, null, null, null, null);
end
$$;

create function private.reserve_transfer(id uuid, kind text, legs jsonb, timeout_seconds int default null, description text default null)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(id, 'pending', kind, legs, description, null, null, null, timeout_seconds, null);
end
$$;

create function private.post_pending_transfer(id uuid, pending_id uuid, amount bigint default null)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(id, 'post_pending', null, null, null, null, pending_id, amount, null, null);
end
$$;

create function private.void_pending_transfer(id uuid, pending_id uuid)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(id, 'void_pending', null, null, null, null, pending_id, null, null, 'voided');
end
$$;

-- Voids every pending transfer past its timeout (run it periodically: pg_cron on Supabase, or
-- the companion). Returns how many expired.
create function private.expire_pending_transfers() returns int
language plpgsql security definer set search_path = '' as $$
declare
  p record;
  n int := 0;
begin
  for p in
    select t.id from public.ledger_transfers t
     where t.type = 'pending' and t.timeout_at <= now()
       and not exists (select 1 from public.ledger_transfers r where r.pending_id = t.id)
     order by t.timeout_at
     for update skip locked
  loop
    perform private.ledger_execute(gen_random_uuid(), 'void_pending', null, null, null, null, p.id, null, null, 'expired');
    n := n + 1;
  end loop;
  return n;
end
$$;

-- Every violated invariant; empty when the ledger is healthy.
create function private.verify_ledger() returns table (invariant text, details jsonb)
language sql stable security definer set search_path = '' as $$
  with open_pending as (
    select t.id from public.ledger_transfers t
     where t.type = 'pending' and not exists (select 1 from public.ledger_transfers r where r.pending_id = t.id)
  ), computed as (
    select a.id,
           coalesce(sum(e.amount) filter (where e.direction = 'debit' and t.type in ('posted', 'post_pending')), 0) as debits_posted,
           coalesce(sum(e.amount) filter (where e.direction = 'credit' and t.type in ('posted', 'post_pending')), 0) as credits_posted,
           coalesce(sum(e.amount) filter (where e.direction = 'debit' and t.id in (select id from open_pending)), 0) as debits_pending,
           coalesce(sum(e.amount) filter (where e.direction = 'credit' and t.id in (select id from open_pending)), 0) as credits_pending
      from public.ledger_accounts a
      left join public.ledger_entries e on e.account_id = a.id
      left join public.ledger_transfers t on t.id = e.transfer_id
     group by a.id
  )
  select 'transfer_unbalanced', jsonb_build_object('transfer_id', e.transfer_id, 'currency', e.currency,
           'debits', sum(e.amount) filter (where e.direction = 'debit'), 'credits', sum(e.amount) filter (where e.direction = 'credit'))
    from public.ledger_entries e
   group by e.transfer_id, e.currency
  having coalesce(sum(e.amount) filter (where e.direction = 'debit'), 0) <> coalesce(sum(e.amount) filter (where e.direction = 'credit'), 0)
  union all
  select 'currency_unbalanced', jsonb_build_object('currency', a.currency)
    from public.ledger_accounts a
   group by a.currency
  having sum(a.debits_posted) <> sum(a.credits_posted) or sum(a.debits_pending) <> sum(a.credits_pending)
  union all
  select 'entry_currency_mismatch', jsonb_build_object('entry_id', e.id, 'account_id', a.id)
    from public.ledger_entries e join public.ledger_accounts a on a.id = e.account_id
   where e.currency <> a.currency
  union all
  select 'stored_balance_mismatch', jsonb_build_object('account_id', a.id,
           'stored', jsonb_build_array(a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending),
           'from_entries', jsonb_build_array(c.debits_posted, c.credits_posted, c.debits_pending, c.credits_pending))
    from public.ledger_accounts a join computed c on c.id = a.id
   where (a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
         <> (c.debits_posted, c.credits_posted, c.debits_pending, c.credits_pending)
  union all
  select 'flag_violated', jsonb_build_object('account_id', a.id, 'flags', a.flags)
    from public.ledger_accounts a
   where (a.flags = 'debits_must_not_exceed_credits' and a.debits_posted + a.debits_pending > a.credits_posted)
      or (a.flags = 'credits_must_not_exceed_debits' and a.credits_posted + a.credits_pending > a.debits_posted)
$$;

-- The caller's own balances (RLS decides which accounts).
create function public.my_balances()
returns table (account_id uuid, kind text, currency text, balance_minor bigint, pending_debits_minor bigint,
               pending_credits_minor bigint, available_minor bigint, available text)
language sql stable security invoker set search_path = '' as $$
  select a.id, a.kind, a.currency,
         a.credits_posted - a.debits_posted,
         a.debits_pending, a.credits_pending,
         a.credits_posted - a.debits_posted - a.debits_pending,
         careplane.format_minor(a.credits_posted - a.debits_posted - a.debits_pending, a.currency)
    from public.ledger_accounts a
   where a.owner_id = auth.uid()
   order by a.kind, a.currency
$$;
revoke execute on function public.my_balances() from public, anon;
grant execute on function public.my_balances() to authenticated;

-- The service role writes money through these functions only (it has no table privileges).
revoke all on all functions in schema private from public, anon, authenticated, service_role;
grant usage on schema private to service_role;
grant execute on function private.post_transfer(uuid, text, jsonb, text, uuid),
  private.reserve_transfer(uuid, text, jsonb, int, text),
  private.post_pending_transfer(uuid, uuid, bigint),
  private.void_pending_transfer(uuid, uuid),
  private.expire_pending_transfers(),
  private.verify_ledger()
  to service_role;
