-- The double-entry ledger and payments, after TigerBeetle's model (contract: docs/ledger.md).
--
-- No API role (service_role included) writes these tables directly. One writer,
-- private.ledger_execute, locks what a request touches, reads it, asks the extension for the
-- decision (careplane.ledger_request, careplane.ledger_apply: rules::ledger) and writes what the
-- decision says; a refusal is raised by private.enforce with its own SQLSTATE (LG001–LG014).
-- History is append-only. The lists the check constraints read (flags, transfer types,
-- directions, void reasons) are the extension's. Patients read their own accounts, the
-- transfers and entries that touch them, and their payments; admins read all.

create table public.ledger_accounts (
  id uuid primary key default gen_random_uuid(),
  owner_id uuid references public.profiles (id) on delete restrict,  -- null: a clinic/platform account
  kind text not null check (kind in (
    'patient_wallet', 'practitioner_payable', 'clinic_revenue', 'payment_clearing', 'refunds', 'platform_fees')),
  currency text not null check (careplane.currency_exponent(currency) is not null),
  flags text not null default 'none' check (flags = any (careplane.ledger_flags())),
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
  type text not null default 'posted' check (type = any (careplane.ledger_transfer_types())),
  pending_id uuid references public.ledger_transfers (id),
  amount bigint check (amount > 0),
  timeout_at timestamptz,
  void_reason text check (void_reason = any (careplane.ledger_void_reasons())),
  constraint resolution_names_its_pending check ((pending_id is not null) = (type = any (careplane.ledger_resolution_types()))),
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
  direction text not null check (direction = any (careplane.ledger_directions())),
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
-- Entry ids are drawn by the writer, as the table's owner. No API role needs the sequence, and
-- Supabase's default privileges would let anon setval it (the next posting then collides).
revoke all on sequence public.ledger_entries_id_seq from anon, authenticated, service_role;

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

-- A stored transfer as the extension reads it: the row and its entries (legs), in entry order.
create function private.ledger_transfer_json(t public.ledger_transfers) returns jsonb
language sql stable set search_path = '' as $$
  select to_jsonb(t) || jsonb_build_object('legs',
           (select coalesce(jsonb_agg(jsonb_build_object('account_id', e.account_id, 'direction', e.direction,
                                                         'amount', e.amount, 'currency', e.currency) order by e.id), '[]')
              from public.ledger_entries e where e.transfer_id = t.id))
$$;

-- The one writer: lock, read, ask the extension, write. p_request is a transfer request
-- {id, type, kind, legs, description, reverses, pending_id, amount, timeout_seconds, void_reason}
-- as the entry points below build it.
create function private.ledger_execute(p_request jsonb) returns public.ledger_transfers
language plpgsql security definer set search_path = '' as $$
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
  account_ids := array(select jsonb_array_elements_text(verdict -> 'account_ids')::uuid
                       union
                       select e.account_id from public.ledger_entries e where e.transfer_id = pending.id);
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

  insert into public.ledger_transfers (id, kind, description, reverses, type, pending_id, amount, timeout_at, void_reason)
  select t.id, t.kind, t.description, t.reverses, t.type, t.pending_id, t.amount, t.timeout_at, t.void_reason
    from jsonb_to_record(verdict -> 'transfer') as t(id uuid, kind text, description text, reverses uuid, type text,
                                                      pending_id uuid, amount bigint, timeout_at timestamptz, void_reason text)
  returning * into created;

  insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency)
  select created.id, (e ->> 'account_id')::uuid, e ->> 'direction', (e ->> 'amount')::bigint, e ->> 'currency'
    from jsonb_array_elements(verdict -> 'entries') with ordinality as x(e, n)
   order by x.n;

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
  return private.ledger_execute(jsonb_build_object(
    'id', id, 'type', 'posted', 'kind', kind, 'legs', legs, 'description', description, 'reverses', reverses));
end
$$;

create function private.reserve_transfer(id uuid, kind text, legs jsonb, timeout_seconds int default null, description text default null)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(jsonb_build_object(
    'id', id, 'type', 'pending', 'kind', kind, 'legs', legs, 'timeout_seconds', timeout_seconds, 'description', description));
end
$$;

create function private.post_pending_transfer(id uuid, pending_id uuid, amount bigint default null)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(jsonb_build_object('id', id, 'type', 'post_pending', 'pending_id', pending_id, 'amount', amount));
end
$$;

create function private.void_pending_transfer(id uuid, pending_id uuid)
returns public.ledger_transfers language plpgsql security definer set search_path = '' as $$
begin
  return private.ledger_execute(jsonb_build_object('id', id, 'type', 'void_pending', 'pending_id', pending_id, 'void_reason', 'voided'));
end
$$;

-- Releases every pending transfer past its timeout (run it periodically: pg_cron on Supabase, or
-- the companion). Returns how many expired. The query only finds candidates (by the index on
-- timeout_at); the extension decides each release, and refuses one before its timeout (LG014).
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
    perform private.ledger_execute(jsonb_build_object(
      'id', gen_random_uuid(), 'type', 'void_pending', 'pending_id', p.id, 'void_reason', 'expired'));
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
           coalesce(sum(e.amount) filter (where e.direction = 'debit' and t.type = any (careplane.ledger_posting_types())), 0) as debits_posted,
           coalesce(sum(e.amount) filter (where e.direction = 'credit' and t.type = any (careplane.ledger_posting_types())), 0) as credits_posted,
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
   where not careplane.ledger_flags_hold(a.flags, a.debits_posted, a.credits_posted, a.debits_pending, a.credits_pending)
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
