-- Schemas private (never exposed) and access (row-level-security helpers), and the durable logs
-- in private: audit log, realtime event log, outbox, webhook inbox.
--
-- Conventions for every later migration:
-- - public tables: RLS enabled, explicit policies, explicit grants (Supabase's default "all to
--   anon, authenticated, service_role" is revoked and re-granted per table and column).
-- - private: no API role has usage on the schema, and every migration that creates functions
--   there revokes execute on them from public (functions are executable by public by default,
--   and a per-schema default privilege cannot take that away). Triggers write the logs.
-- - access: security definer, stable functions that answer yes/no questions about the caller
--   (auth.uid()) for policies. Not exposed by PostgREST; executable by the API roles because
--   policies run with the caller's privileges.
-- - Privileged RPCs (writes the caller's grants do not cover) are security definer functions
--   in public with search_path = '' that check authorization before anything else.

-- Sequences: Supabase's default privileges give the API roles every right on sequences created
-- in public, which would let any signed-in user setval() an identity sequence and make the next
-- insert fail on a duplicate key. Inserting through an identity column needs no right on its
-- sequence, so the API roles get none.
alter default privileges in schema public revoke all on sequences from anon, authenticated, service_role;

create schema if not exists private;
revoke all on schema private from public, anon, authenticated, service_role;

create schema if not exists access;
revoke all on schema access from public;
grant usage on schema access to anon, authenticated, service_role;
alter default privileges in schema access grant execute on functions to anon, authenticated, service_role;

-- Audit log (HIPAA 45 CFR 164.312(b)) -------------------------------------------------------------
-- Who touched which row of which table holding health information, and which columns changed.
-- Values are not copied here (minimum necessary): the row itself is the record.
create table private.audit_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor_id uuid,                       -- auth.uid() of the request, null for service work
  actor_role text,                     -- user_role claim, or the database role
  db_role text not null,               -- the role the request ran as (authenticated, service_role, …)
  action text not null check (action in ('INSERT', 'UPDATE', 'DELETE')),
  table_name text not null,
  row_id text,
  changed_columns text[] not null default '{}'
);
create index audit_log_row_idx on private.audit_log (table_name, row_id, at);
create index audit_log_actor_idx on private.audit_log (actor_id, at);

-- Realtime event log: the source of truth the companion relays (ordered by id).
create table private.realtime_events (
  id bigint generated always as identity primary key,
  topic text not null check (topic ~ '^(user|consultation):[0-9a-f-]{36}$' or topic = 'dispatch'),
  event text not null check (event ~ '^[a-z_]+:[a-z_]+$'),
  payload jsonb not null default '{}',
  created_at timestamptz not null default now()
);
create index realtime_events_topic_idx on private.realtime_events (topic, id);

-- Outbox: SMS and email to send, claimed by the companion's worker.
create table private.outbox (
  id bigint generated always as identity primary key,
  channel text not null check (channel in ('sms', 'email')),
  recipient text not null check (length(recipient) between 3 and 320),
  template text not null,
  payload jsonb not null default '{}',
  status text not null default 'pending' check (status in ('pending', 'sending', 'sent', 'failed', 'dead')),
  attempts int not null default 0 check (attempts >= 0),
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz
);
create index outbox_due_idx on private.outbox (next_attempt_at) where status = 'pending';

-- Webhook inbox: every signed provider webhook, once (idempotent on provider + event id).
create table private.webhook_inbox (
  id bigint generated always as identity primary key,
  provider text not null check (provider in ('paystack', 'twilio', 'sendgrid')),
  event_id text not null,
  event_type text not null,
  payload jsonb not null,
  received_at timestamptz not null default now(),
  processed_at timestamptz,
  error text,
  unique (provider, event_id)
);

revoke all on all tables in schema private from public, anon, authenticated, service_role;

-- Audit rows are append-only, even for roles that own the table's functions.
create function private.audit_log_is_append_only() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception 'private.audit_log is append-only: % is not allowed', tg_op
    using errcode = '42501', hint = 'Audit rows are never changed or deleted.';
end
$$;
create trigger audit_log_append_only before update or delete on private.audit_log
  for each row execute function private.audit_log_is_append_only();
create trigger audit_log_no_truncate before truncate on private.audit_log
  for each statement execute function private.audit_log_is_append_only();

-- The audit trigger: attach with
--   create trigger audit after insert or update or delete on public.<t>
--     for each row execute function private.audit();
create function private.audit() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  claims jsonb := auth.jwt();
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  changed text[];
begin
  if tg_op = 'UPDATE' then
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
    from jsonb_each(new_row) n
    where n.value is distinct from old_row -> n.key;
    if changed = '{}' then
      return null;  -- nothing changed: nothing to record
    end if;
  elsif tg_op = 'INSERT' then
    select coalesce(array_agg(n.key order by n.key), '{}') into changed
    from jsonb_each(new_row) n where n.value <> 'null'::jsonb;
  else
    changed := '{}';
  end if;
  insert into private.audit_log (actor_id, actor_role, db_role, action, table_name, row_id, changed_columns)
  values (
    auth.uid(),
    coalesce(claims ->> 'user_role', claims ->> 'role', session_user),
    -- Inside security definer current_user is the owner; the role GUC is the caller's SET ROLE.
    coalesce(nullif(current_setting('role'), 'none'), session_user),
    tg_op,
    tg_table_name,
    coalesce(new_row ->> 'id', old_row ->> 'id',
             concat_ws('/', coalesce(new_row, old_row) ->> 'conversation_id', coalesce(new_row, old_row) ->> 'message_id',
                       coalesce(new_row, old_row) ->> 'user_id', coalesce(new_row, old_row) ->> 'role')),
    changed
  );
  return null;
end
$$;

-- updated_at maintenance for every table that has the column.
create function private.touch_updated_at() returns trigger
language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end
$$;

-- An IANA time zone name ('Africa/Lagos', 'Europe/London', 'UTC'), not an abbreviation ('WAT')
-- or a POSIX string ('EST5EDT', 'UTC+1'). Marked immutable for use in check constraints: zones
-- are only ever added. (pg_timezone_names is exact but reads the zone files: ~100 ms a call.)
create function public.is_valid_time_zone(tz text) returns boolean
language plpgsql immutable strict parallel safe set search_path = '' as $$
begin
  if tz <> 'UTC' and tz !~ '^[A-Za-z]+(/[A-Za-z0-9_+-]+)+$' then
    return false;
  end if;
  perform now() at time zone tz;
  return true;
exception when invalid_parameter_value then
  return false;
end
$$;

-- The one place a rule's refusal is raised. Every careplane.* rule that can refuse answers a
-- verdict chosen in Rust (careplane_rules::verdict): {"ok": true, …} or {"ok": false, sqlstate,
-- message, detail: {code, …}, hint}. This returns an allowed verdict (with its payload) and
-- raises a refused one with the rule's SQLSTATE, so PostgREST answers
-- {code: <sqlstate>, message, details: "{\"code\": …}", hint} with the status the SQLSTATE maps to.
create function private.enforce(verdict jsonb) returns jsonb
language plpgsql volatile set search_path = '' as $$
begin
  if (verdict ->> 'ok')::boolean then
    return verdict;
  end if;
  raise exception '%', verdict ->> 'message'
    using errcode = verdict ->> 'sqlstate',
          detail = coalesce(verdict -> 'detail', '{}')::text,
          hint = coalesce(verdict ->> 'hint', '');
end
$$;

revoke all on all functions in schema private from public, anon, authenticated, service_role;
