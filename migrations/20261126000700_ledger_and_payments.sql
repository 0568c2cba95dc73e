-- The double-entry ledger and payments, after TigerBeetle's model.
--
-- No API role (service_role included) writes these tables directly: one writer,
-- private.ledger_execute, locks the accounts in id order, asks the extension to validate
-- (careplane.ledger_apply), and appends the transfer and its entries. History is append-only.
-- Patients read their own accounts, the transfers and entries that touch them, and their
-- payments; admins read all. Errors have their own SQLSTATEs:
--   LG001 unbalanced · LG002 mixed currency · LG003 overdraft (a flag would be violated) ·
--   LG004 same id, different content · LG005 posting more than reserved · LG006 pending already
--   posted · LG007 pending already voided · LG008 pending expired · LG009 invalid amount ·
--   LG010 unknown account · LG011 invalid legs · LG012 bad reversal · LG013 no such pending transfer

create table public.ledger_accounts (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid references public.profiles (id) on delete restrict,  -- null: a clinic/platform account
  kind text not null check (kind in (
    'patient_wallet', 'practitioner_payable', 'clinic_revenue', 'payment_clearing', 'refunds', 'platform_fees')),
  currency text not null check (careplane.currency_exponent(currency) is not null),
  flags text not null default 'none' check (flags in (
    'none', 'debits_must_not_exceed_credits', 'credits_must_not_exceed_debits')),
  debits_posted bigint not null default 0 check (debits_posted >= 0),
  credits_posted bigint not null default 0 check (credits_posted >= 0),
  debits_pending bigint not null default 0 check (debits_pending >= 0),
  credits_pending bigint not null default 0 check (credits_pending >= 0),
  created_at timestamptz not null default now(),
  constraint owned_accounts_have_owner check (kind not in ('patient_wallet', 'practitioner_payable') or owner_id is not null),
  unique (owner_id, kind, currency)
)
-- Balances change on every transfer; room on each page keeps those updates HOT (no index churn).
with (fillfactor = 70);

create table public.ledger_transfers (
  id uuid primary key,                   -- the idempotency key
  kind text not null check (length(kind) between 1 and 100),
  description text check (length(description) <= 1000),
  reverses uuid references public.ledger_transfers (id),
  created_at timestamptz not null default now(),
  type text not null default 'posted' check (type in ('posted', 'pending', 'post_pending', 'void_pending')),
  pending_id uuid references public.ledger_transfers (id),
  amount bigint check (amount > 0),
  timeout_at timestamptz,
  void_reason text check (void_reason in ('voided', 'expired')),
  constraint resolution_names_its_pending check ((pending_id is not null) = (type in ('post_pending', 'void_pending'))),
  constraint only_pending_transfers_time_out check (timeout_at is null or type = 'pending'),
  constraint void_reason_only_on_voids check ((void_reason is not null) = (type = 'void_pending'))
);
-- A pending transfer is posted or voided once; a transfer is reversed once.
create unique index ledger_transfers_resolved_once on public.ledger_transfers (pending_id) where pending_id is not null;
create unique index ledger_transfers_reversed_once on public.ledger_transfers (reverses) where reverses is not null;
create index ledger_transfers_open_pending on public.ledger_transfers (timeout_at) where type = 'pending';

create table public.ledger_entries (
  id bigint generated always as identity primary key,
  transfer_id uuid not null references public.ledger_transfers (id),
  account_id uuid not null references public.ledger_accounts (id),
  direction text not null check (direction in ('debit', 'credit')),
  amount bigint not null check (amount > 0),
  currency text not null,
  created_at timestamptz not null default now()
);
create index ledger_entries_account_idx on public.ledger_entries (account_id, id);
create index ledger_entries_transfer_idx on public.ledger_entries (transfer_id);

create table public.payments (
  id uuid primary key default gen_random_uuid(),
  patient_id uuid not null references public.profiles (id) on delete restrict,
  appointment_id uuid references public.appointments (id) on delete restrict,
  amount_minor bigint not null check (amount_minor > 0),
  currency text not null check (careplane.currency_exponent(currency) is not null),
  provider text not null default 'paystack' check (provider in ('paystack')),
  provider_reference text not null unique check (length(provider_reference) between 1 and 200),
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed', 'refunded')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index payments_patient_idx on public.payments (patient_id, created_at);
create trigger touch_updated_at before update on public.payments
  for each row execute function private.touch_updated_at();

create function access.owns_ledger_account(account uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (select 1 from public.ledger_accounts a where a.id = account and a.owner_id = auth.uid())
$$;

create function access.transfer_touches_own_account(transfer uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (select 1 from public.ledger_entries e
                   join public.ledger_accounts a on a.id = e.account_id
                  where e.transfer_id = transfer and a.owner_id = auth.uid())
$$;

revoke all on public.ledger_accounts, public.ledger_transfers, public.ledger_entries, public.payments
  from anon, authenticated, service_role;
grant select on public.ledger_accounts, public.ledger_transfers, public.ledger_entries, public.payments
  to authenticated, service_role;

alter table public.ledger_accounts enable row level security;
alter table public.ledger_transfers enable row level security;
alter table public.ledger_entries enable row level security;
alter table public.payments enable row level security;

create policy "owners read own ledger accounts" on public.ledger_accounts
  for select to authenticated using (owner_id = (select auth.uid()));
create policy "admins read all ledger accounts" on public.ledger_accounts
  for select to authenticated using ((select public.authorize('ledger.read_all')));

create policy "owners read transfers touching their accounts" on public.ledger_transfers
  for select to authenticated using (access.transfer_touches_own_account(id));
create policy "admins read all transfers" on public.ledger_transfers
  for select to authenticated using ((select public.authorize('ledger.read_all')));

-- A patient sees the legs on their own accounts, not the counter-party legs.
create policy "owners read entries on their accounts" on public.ledger_entries
  for select to authenticated using (access.owns_ledger_account(account_id));
create policy "admins read all entries" on public.ledger_entries
  for select to authenticated using ((select public.authorize('ledger.read_all')));

create policy "patients read own payments" on public.payments
  for select to authenticated using (patient_id = (select auth.uid()));
create policy "admins read all payments" on public.payments
  for select to authenticated using ((select public.authorize('payments.read_all')));

create trigger audit after insert or update or delete on public.payments
  for each row execute function private.audit();

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
