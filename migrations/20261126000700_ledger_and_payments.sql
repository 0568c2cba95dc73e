-- The double-entry ledger's tables and payments. No API role (service_role included) writes
-- them directly: the ledger's own functions do. Patients read their own accounts, the transfers
-- and entries that touch them, and their payments; admins read all.

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
);

create table public.ledger_transfers (
  id uuid primary key,                   -- the idempotency key
  kind text not null check (length(kind) between 1 and 100),
  description text check (length(description) <= 1000),
  reverses uuid references public.ledger_transfers (id),
  created_at timestamptz not null default now()
);

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
