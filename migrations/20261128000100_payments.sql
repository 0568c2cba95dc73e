-- Payments with Paystack (contract: docs/payments.md).
--
-- The companion takes payments: it opens a payment for an appointment's patient, initializes it
-- with Paystack, stores every signed webhook once in private.webhook_inbox, and a worker applies
-- each verified outcome here. Every decision (may this appointment be paid, does Paystack's
-- answer match the payment, the fee split, how much a refund may move and how it splits, whether
-- a cancellation is refunded) is careplane_rules::payments, called by the companion between the
-- read and the write of one transaction: the functions below lock and read
-- (private.payment_opening, private.payment_facts), or write what the rules decided
-- (private.payment_create, private.payment_apply). Money moves only through the ledger's writer;
-- the transfer ids are the payment's and the refund's own ids, so a retried posting is the same
-- transfer (the ledger answers "exists") and never a second one.
--
-- Executable by service_role only; the companion runs them with `set local role service_role`
-- inside the transaction that read the caller's appointment as the caller (RLS decides).

-- Payments: more statuses, what Paystack answered, what was refunded ------------------------------
-- The status list is careplane_rules::payments::PaymentStatus; tests/tests/payments.rs fails when
-- this constraint names another list.
alter table public.payments drop constraint payments_status_check;
alter table public.payments add constraint payments_status_check check (status in (
  'initializing', 'pending', 'succeeded', 'failed', 'needs_review', 'refund_pending', 'partially_refunded', 'refunded'));
alter table public.payments
  add column idempotency_key text check (length(idempotency_key) between 1 and 200),
  add column authorization_url text check (length(authorization_url) <= 2000),
  add column access_code text check (length(access_code) <= 200),
  add column provider_transaction_id text check (length(provider_transaction_id) <= 100),
  add column paid_at timestamptz,
  add column refunded_minor bigint not null default 0 check (refunded_minor >= 0),
  -- Why a payment needs a person: what did not match (codes, no personal data).
  add column review_reason jsonb,
  -- What Paystack answered when initializing failed (the row stays initializing; the same key resumes it).
  add column provider_error text check (length(provider_error) <= 500),
  add constraint refunded_at_most_paid check (refunded_minor <= amount_minor),
  -- A patient's idempotency key names one payment.
  add constraint payments_idempotency_key unique (patient_id, idempotency_key);
create index payments_appointment_idx on public.payments (appointment_id);
-- The reconciliation job's candidates: pending payments by age.
create index payments_pending_idx on public.payments (created_at) where status = 'pending';

-- Refunds: requested (by an admin, or by a cancellation), submitted to Paystack, processed (the
-- reversing transfer posted, its id is the refund's id), failed, or declined by the rules.
create table private.payment_refunds (
  id uuid primary key default gen_random_uuid(),
  payment_id uuid not null references public.payments (id) on delete restrict,
  amount_minor bigint check (amount_minor > 0),   -- null until decided: what remains refundable
  reason text not null check (reason in ('admin', 'appointment_cancelled', 'provider')),
  status text not null default 'requested' check (status in ('requested', 'submitted', 'processed', 'failed', 'declined')),
  requested_by uuid references auth.users (id) on delete set null,
  provider_refund_id text unique check (length(provider_refund_id) <= 100),
  decision jsonb,                                  -- the rules' answer (codes only)
  attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index payment_refunds_payment_idx on private.payment_refunds (payment_id);
create index payment_refunds_due_idx on private.payment_refunds (next_attempt_at) where status = 'requested';
create trigger touch_updated_at before update on private.payment_refunds
  for each row execute function private.touch_updated_at();
alter table private.payment_refunds enable row level security;
revoke all on private.payment_refunds from public, anon, authenticated, service_role;

-- The webhook inbox: claims, attempts and backoff for the async worker --------------------------
-- (issue 14's Twilio / SendGrid callbacks are applied synchronously and set processed_at.)
alter table private.webhook_inbox
  add column attempts int not null default 0 check (attempts >= 0),
  add column next_attempt_at timestamptz not null default now(),
  add column claimed_until timestamptz,
  add column failed_at timestamptz;           -- given up after the last attempt: needs a person
create index webhook_inbox_due_idx on private.webhook_inbox (provider, next_attempt_at)
  where processed_at is null and failed_at is null;
alter table private.webhook_inbox enable row level security;

-- Clinic accounts (no owner) are unique per kind and currency only by convention, so their
-- creation is serialised by an advisory lock; owned accounts by their unique key.
create function private.ledger_account_for(p_owner uuid, p_kind text, p_currency text, p_flags text) returns uuid
language plpgsql security definer set search_path = '' as $$
declare
  found uuid;
begin
  if p_owner is null then
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended('careplane.ledger_account:' || p_kind || ':' || p_currency, 0));
  end if;
  select a.id into found from public.ledger_accounts a
   where a.owner_id is not distinct from p_owner and a.kind = p_kind and a.currency = p_currency
   order by a.created_at, a.id limit 1;
  if found is null then
    insert into public.ledger_accounts as a (owner_id, kind, currency, flags) values (p_owner, p_kind, p_currency, p_flags)
    on conflict (owner_id, kind, currency) do nothing
    returning a.id into found;
    if found is null then  -- a concurrent insert of the same owned account won
      select a.id into found from public.ledger_accounts a
       where a.owner_id = p_owner and a.kind = p_kind and a.currency = p_currency;
    end if;
  end if;
  return found;
end
$$;

-- Lock and read: the appointment a patient wants to pay, and what it already has ------------------
-- {appointment_id, patient_id, appointment_status, fee_minor, currency, practitioner_profile_id,
--  payments: [{id, reference, status}], existing: <the patient's payment under this key> | null}
-- or null when there is no such appointment. The caller's visibility was decided before, as the
-- caller, by RLS.
create function private.payment_opening(appointment uuid, idempotency_key text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments;
  p public.practitioners;
begin
  select * into a from public.appointments ap where ap.id = appointment for update;
  if a.id is null then
    return null;
  end if;
  select * into p from public.practitioners pr where pr.id = a.practitioner_id;
  return jsonb_build_object(
    'appointment_id', a.id, 'patient_id', a.patient_id, 'appointment_status', a.status,
    'fee_minor', p.consultation_fee_minor, 'currency', p.currency, 'practitioner_profile_id', p.profile_id,
    'payments', (select coalesce(jsonb_agg(jsonb_build_object('id', x.id, 'reference', x.provider_reference, 'status', x.status)
                                           order by x.created_at), '[]')
                   from public.payments x where x.appointment_id = a.id),
    'email', (select pr.email from public.profiles pr where pr.id = a.patient_id),
    'existing', (select to_jsonb(x) || jsonb_build_object('seconds_since_update', extract(epoch from now() - x.updated_at))
                   from public.payments x
                  where x.patient_id = a.patient_id and x.idempotency_key = payment_opening.idempotency_key));
end
$$;

-- Write: a payment the rules allowed, before Paystack is asked (status initializing).
create function private.payment_create(appointment uuid, patient uuid, amount bigint, currency text,
                                       reference text, idempotency_key text) returns public.payments
language sql security definer set search_path = '' as $$
  insert into public.payments (patient_id, appointment_id, amount_minor, currency, provider_reference, status, idempotency_key)
  values (patient, appointment, amount, currency, reference, 'initializing', idempotency_key)
  returning *
$$;

-- Lock and read one payment for a decision: the row, who is paid, the refunds, the appointment.
-- {payment, practitioner_profile_id, appointment: {status, starts_at, cancelled_at}, refunds: [...]}
create function private.payment_facts(reference text) returns jsonb
language plpgsql security definer set search_path = '' as $$
declare
  pay public.payments;
begin
  select * into pay from public.payments x where x.provider_reference = reference for update;
  if pay.id is null then
    return null;
  end if;
  return jsonb_build_object(
    'payment', to_jsonb(pay),
    'practitioner_profile_id', (select pr.profile_id from public.appointments a
                                  join public.practitioners pr on pr.id = a.practitioner_id where a.id = pay.appointment_id),
    'age_seconds', floor(extract(epoch from now() - pay.created_at))::bigint,
    -- Unix seconds: when the appointment starts, and when it was last changed (its cancellation).
    'appointment', (select jsonb_build_object('status', a.status, 'starts_at', floor(extract(epoch from lower(a.period)))::bigint,
                                              'changed_at', floor(extract(epoch from a.updated_at))::bigint)
                      from public.appointments a where a.id = pay.appointment_id),
    -- How the charge was split when it was posted (its transfer has the payment's id).
    'charge', (select jsonb_build_object(
                 'payable', coalesce(sum(e.amount) filter (where a.kind = 'practitioner_payable'), 0),
                 'fee', coalesce(sum(e.amount) filter (where a.kind = 'platform_fees'), 0))
                 from public.ledger_entries e join public.ledger_accounts a on a.id = e.account_id
                where e.transfer_id = pay.id and e.direction = 'credit'),
    'refunds', (select coalesce(jsonb_agg(to_jsonb(r) order by r.created_at), '[]')
                  from private.payment_refunds r where r.payment_id = pay.id));
end
$$;

-- Write what the rules decided for a locked payment, in the caller's transaction. `change`:
--   status, review_reason, provider_error, provider_reference, authorization_url, access_code,
--   provider_transaction_id, refunded_minor   (columns to set; absent: unchanged)
--   paid: true       paid_at is now (unless it was set)
--   transfer: {id, kind, legs, description, reverses}   (posted through the ledger's writer)
--   refund: {id, amount_minor, reason, status, requested_by, provider_refund_id, decision, last_error,
--            retry_in_seconds}  (inserted, or its status and facts updated; retry_in_seconds: when the
--            refund worker may take it (again))
--   announce: true   a payment:updated realtime event to the patient
--   receipt: true    a payment_receipt email to the patient (ids only; issue 14 renders it)
create function private.payment_apply(payment uuid, change jsonb) returns public.payments
language plpgsql security definer set search_path = '' as $$
declare
  pay public.payments;
  t jsonb := change -> 'transfer';
  r jsonb := change -> 'refund';
begin
  if t is not null then
    perform private.post_transfer((t ->> 'id')::uuid, t ->> 'kind', t -> 'legs', t ->> 'description', (t ->> 'reverses')::uuid);
  end if;
  if r is not null then
    insert into private.payment_refunds as pr (id, payment_id, amount_minor, reason, status, requested_by, provider_refund_id,
                                               decision, last_error, next_attempt_at)
    values ((r ->> 'id')::uuid, payment, (r ->> 'amount_minor')::bigint, coalesce(r ->> 'reason', 'provider'),
            coalesce(r ->> 'status', 'requested'), (r ->> 'requested_by')::uuid, r ->> 'provider_refund_id', r -> 'decision',
            r ->> 'last_error', now() + make_interval(secs => coalesce((r ->> 'retry_in_seconds')::double precision, 0)))
    on conflict (id) do update
       set status = coalesce(excluded.status, pr.status),
           amount_minor = coalesce((r ->> 'amount_minor')::bigint, pr.amount_minor),
           provider_refund_id = coalesce(excluded.provider_refund_id, pr.provider_refund_id),
           decision = coalesce(excluded.decision, pr.decision),
           last_error = excluded.last_error,
           attempts = pr.attempts + case when r ? 'retry_in_seconds' then 1 else 0 end,
           next_attempt_at = case when r ? 'retry_in_seconds'
                                  then now() + make_interval(secs => (r ->> 'retry_in_seconds')::double precision)
                                  else pr.next_attempt_at end;
  end if;
  update public.payments x set
    status = coalesce(change ->> 'status', x.status),
    review_reason = case when change ? 'review_reason' then change -> 'review_reason' else x.review_reason end,
    provider_error = case when change ? 'provider_error' then change ->> 'provider_error' else x.provider_error end,
    provider_reference = coalesce(change ->> 'provider_reference', x.provider_reference),
    authorization_url = coalesce(change ->> 'authorization_url', x.authorization_url),
    access_code = coalesce(change ->> 'access_code', x.access_code),
    provider_transaction_id = coalesce(change ->> 'provider_transaction_id', x.provider_transaction_id),
    paid_at = case when (change ->> 'paid')::boolean then coalesce(x.paid_at, now()) else x.paid_at end,
    refunded_minor = coalesce((change ->> 'refunded_minor')::bigint, x.refunded_minor)
  where x.id = payment
  returning * into pay;
  if pay.id is null then
    raise exception 'no payment %', payment using errcode = 'PT404', detail = '{"code": "payment_not_found"}';
  end if;
  if (change ->> 'announce')::boolean then
    insert into private.realtime_events (topic, event, payload)
    values ('user:' || pay.patient_id, 'payment:updated',
            jsonb_build_object('payment_id', pay.id, 'reference', pay.provider_reference, 'appointment_id', pay.appointment_id,
                               'status', pay.status, 'amount_minor', pay.amount_minor, 'currency', pay.currency,
                               'refunded_minor', pay.refunded_minor));
  end if;
  if (change ->> 'receipt')::boolean then
    insert into private.outbox (channel, recipient, template, payload)
    select 'email', pr.email, 'payment_receipt',
           jsonb_build_object('payment_id', pay.id, 'appointment_id', pay.appointment_id, 'patient_id', pay.patient_id)
      from public.profiles pr
     where pr.id = pay.patient_id and pr.email is not null;
  end if;
  return pay;
end
$$;

-- Pending payments older than `older_than`, oldest first, for the reconciliation job (it locks
-- each through payment_facts when it applies Paystack's answer).
create function private.payments_to_reconcile(older_than interval, max_rows int) returns setof text
language sql stable security definer set search_path = '' as $$
  select x.provider_reference from public.payments x
   where x.status = 'pending' and x.created_at <= now() - older_than
   order by x.created_at limit max_rows
$$;

-- A paid appointment that is cancelled asks for a refund; the companion's refund worker asks the
-- rules whether the cancellation is inside the refund window and how much remains refundable.
create function private.request_refund_on_cancellation() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into private.payment_refunds (payment_id, reason, status)
  select x.id, 'appointment_cancelled', 'requested'
    from public.payments x
   where x.appointment_id = new.id and x.refunded_minor < x.amount_minor and x.paid_at is not null;
  return null;
end
$$;
create trigger request_refund_on_cancellation after update of status on public.appointments
  for each row when (new.status = 'cancelled' and old.status is distinct from new.status)
  execute function private.request_refund_on_cancellation();

-- Refunds due for the worker, claimed with SKIP LOCKED for `lease_seconds`.
create function private.claim_refunds(max_rows int, lease_seconds int) returns table (id uuid, reference text)
language sql security definer set search_path = '' as $$
  update private.payment_refunds r
     set next_attempt_at = now() + make_interval(secs => lease_seconds)
    from public.payments x
   where r.id in (select c.id from private.payment_refunds c
                   where c.status = 'requested' and c.next_attempt_at <= now()
                   order by c.next_attempt_at limit max_rows for update skip locked)
     and x.id = r.payment_id
  returning r.id, x.provider_reference
$$;

-- The webhook inbox -------------------------------------------------------------------------------
-- Stores a verified webhook once; true when it is new. (plpgsql, not SQL: its plan is kept
-- between calls, and this is the webhook's hot path.)
create function private.webhook_store(p_provider text, p_event_id text, p_event_type text, p_payload jsonb) returns boolean
language plpgsql security definer set search_path = '' as $$
begin
  insert into private.webhook_inbox (provider, event_id, event_type, payload)
  values (p_provider, p_event_id, p_event_type, p_payload)
  on conflict do nothing;
  return found;
end
$$;

-- Claims up to max_rows due rows of `provider` for `lease_seconds` (SKIP LOCKED: concurrent
-- workers take different rows; a worker that dies loses its claim when the lease passes).
create function private.webhook_claim(provider text, max_rows int, lease_seconds int) returns setof private.webhook_inbox
language sql security definer set search_path = '' as $$
  update private.webhook_inbox w
     set attempts = w.attempts + 1, claimed_until = now() + make_interval(secs => lease_seconds)
   where w.id in (select c.id from private.webhook_inbox c
                   where c.provider = webhook_claim.provider and c.processed_at is null and c.failed_at is null
                     and c.next_attempt_at <= now() and (c.claimed_until is null or c.claimed_until < now())
                   order by c.next_attempt_at, c.id limit max_rows
                   for update skip locked)
  returning w.*
$$;

-- Done: in the transaction that applied it.
create function private.webhook_done(inbox_id bigint) returns void
language sql security definer set search_path = '' as $$
  update private.webhook_inbox set processed_at = now(), claimed_until = null, error = null where id = inbox_id
$$;

-- Failed: retried after `retry_in_seconds`, or given up (null).
create function private.webhook_failed(inbox_id bigint, error text, retry_in_seconds double precision) returns void
language sql security definer set search_path = '' as $$
  update private.webhook_inbox
     set error = left(webhook_failed.error, 1000), claimed_until = null,
         next_attempt_at = case when retry_in_seconds is null then next_attempt_at
                                else now() + make_interval(secs => retry_in_seconds) end,
         failed_at = case when retry_in_seconds is null then now() end
   where id = inbox_id
$$;

-- What /health/detailed and /metrics report: rows waiting, rows failing (an attempt failed,
-- still retried), rows given up, and the age of the oldest waiting row.
create function private.webhook_inbox_stats(provider text)
returns table (waiting bigint, retrying bigint, dead bigint, oldest_waiting_seconds double precision)
language sql stable security definer set search_path = '' as $$
  select count(*) filter (where w.processed_at is null and w.failed_at is null),
         count(*) filter (where w.processed_at is null and w.failed_at is null and w.error is not null),
         count(*) filter (where w.failed_at is not null),
         coalesce(extract(epoch from now() - min(w.received_at) filter (where w.processed_at is null and w.failed_at is null)), 0)::double precision
    from private.webhook_inbox w
   where w.provider = webhook_inbox_stats.provider and (w.processed_at is null)
$$;

-- Functions are executable by public by default: take that away from every function above (and
-- only those: other migrations' grants stay as they are), then grant the service role.
do $$
declare
  f regprocedure;
begin
  for f in select p.oid::regprocedure from pg_catalog.pg_proc p
            where p.pronamespace = 'private'::regnamespace
              and p.proname in ('ledger_account_for', 'payment_opening', 'payment_create', 'payment_facts', 'payment_apply',
                                'payments_to_reconcile', 'request_refund_on_cancellation', 'claim_refunds', 'webhook_store',
                                'webhook_claim', 'webhook_done', 'webhook_failed', 'webhook_inbox_stats')
  loop
    execute format('revoke all on function %s from public, anon, authenticated, service_role', f);
  end loop;
end
$$;
grant execute on function
  private.ledger_account_for(uuid, text, text, text),
  private.payment_opening(uuid, text),
  private.payment_create(uuid, uuid, bigint, text, text, text),
  private.payment_facts(text),
  private.payment_apply(uuid, jsonb),
  private.payments_to_reconcile(interval, int),
  private.claim_refunds(int, int),
  private.webhook_store(text, text, text, jsonb),
  private.webhook_claim(text, int, int),
  private.webhook_done(bigint),
  private.webhook_failed(bigint, text, double precision),
  private.webhook_inbox_stats(text)
  to service_role;
