-- Realtime relay: what the companion's tailer needs to deliver private.realtime_events (and row
-- changes for postgres_changes subscriptions) in commit order with nothing skipped, who may join
-- which topic, and the retention of the log. See docs/realtime.md.

-- Commit-safe position --------------------------------------------------------------------------
-- Every row records the (top-level) id of the transaction that wrote it. The tailer reads only
-- rows whose transaction has finished: it keeps a watermark W = xmin of its last snapshot (every
-- transaction below W has ended, and no new one can start below it) and the set of transaction
-- ids at or above W it has already delivered. A transaction that commits late, whatever its row
-- ids, is still >= W and not yet delivered, so it is read on the first poll after its commit.
alter table private.realtime_events
  add column xid xid8 not null default pg_current_xact_id();
create index realtime_events_xid_idx on private.realtime_events (xid);
-- Replay reads a topic's recent events by time.
create index realtime_events_topic_created_idx on private.realtime_events (topic, created_at, id);

-- conversation:<uuid> joins the topics (members; see access.may_join_topic).
alter table private.realtime_events drop constraint realtime_events_topic_check;
alter table private.realtime_events add constraint realtime_events_topic_check
  check (topic ~ '^(user|consultation|conversation):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
         or topic = 'dispatch');

-- Row changes for postgres_changes subscriptions, under the same watermark. The record is the
-- row as committed; a delete keeps only the primary key (as Supabase Realtime sends it). Who may
-- receive a change is decided at delivery, as each subscriber, by the table's own RLS.
create table private.realtime_changes (
  id bigint generated always as identity primary key,
  xid xid8 not null default pg_current_xact_id(),
  schema_name text not null,
  table_name text not null,
  op text not null check (op in ('INSERT', 'UPDATE', 'DELETE')),
  pk jsonb not null,
  record jsonb,
  old_record jsonb,
  columns jsonb not null,
  created_at timestamptz not null default now()
);
create index realtime_changes_xid_idx on private.realtime_changes (xid);
create index realtime_changes_created_idx on private.realtime_changes (created_at);
alter table private.realtime_changes enable row level security;
revoke all on private.realtime_changes from public, anon, authenticated, service_role;

-- One wake-up per writing statement, delivered by Postgres at commit (never for a rollback).
create function private.realtime_notify() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  perform pg_notify('careplane_realtime', tg_table_name);
  return null;
end
$$;
create trigger realtime_notify after insert on private.realtime_events
  for each statement execute function private.realtime_notify();
create trigger realtime_notify after insert on private.realtime_changes
  for each statement execute function private.realtime_notify();

-- Capture: after each row change on a table a user may subscribe to.
create function private.capture_change() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  cols jsonb;
begin
  select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'type', t.typname) order by a.attnum), '[]')
    into cols
    from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
   where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped;
  insert into private.realtime_changes (schema_name, table_name, op, pk, record, old_record, columns)
  values (
    tg_table_schema, tg_table_name, tg_op,
    jsonb_build_object('id', case when tg_op = 'DELETE' then old.id else new.id end),
    case when tg_op <> 'DELETE' then to_jsonb(new) end,
    case when tg_op = 'DELETE' then jsonb_build_object('id', old.id) end,
    cols);
  return null;
end
$$;
create trigger realtime_capture after insert or update or delete on public.messages
  for each row execute function private.capture_change();
create trigger realtime_capture after insert or update or delete on public.notifications
  for each row execute function private.capture_change();
create trigger realtime_capture after insert or update or delete on public.appointments
  for each row execute function private.capture_change();
create trigger realtime_capture after insert or update or delete on public.emergency_requests
  for each row execute function private.capture_change();

-- Who may join a topic: asked as the user (role authenticated, the token's claims), so the
-- access.* helpers decide exactly as they do for the user's reads.
create function access.may_join_topic(topic text) returns boolean
language plpgsql stable security definer set search_path = '' as $$
declare
  kind text := split_part(topic, ':', 1);
  target uuid;
begin
  if auth.uid() is null then
    return false;
  end if;
  if topic = 'dispatch' then
    return access.has_role('dispatcher') or access.has_role('responder') or access.has_role('admin');
  end if;
  if topic !~ '^(user|consultation|conversation):[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then
    return false;
  end if;
  target := split_part(topic, ':', 2)::uuid;
  return case kind
    when 'user' then target = auth.uid()
    when 'conversation' then access.is_conversation_member(target)
    -- Its two participants while the call is open (migrations/…0600_consultations.sql).
    when 'consultation' then access.may_use_consultation_call(target)
    else false
  end;
end
$$;

-- Which of `users` (claims objects) may select the row `pk` of a captured table right now,
-- asked as each of them under the table's RLS: one call per change for every subscriber set.
-- Runs as the caller (the companion's role, a member of authenticated); switches role and
-- claims per user and restores both before returning.
create function private.realtime_visible_to(schema_name text, table_name text, pk jsonb, users jsonb)
returns setof int
language plpgsql volatile set search_path = '' as $$
declare
  saved_role text := current_setting('role');
  saved_claims text := current_setting('request.jwt.claims', true);
  u record;
  visible boolean;
begin
  if (schema_name, table_name) not in (('public', 'messages'), ('public', 'notifications'),
                                       ('public', 'appointments'), ('public', 'emergency_requests')) then
    raise exception 'realtime: % is not a captured table', format('%I.%I', schema_name, table_name)
      using errcode = '22023';
  end if;
  for u in select (e.ordinality - 1)::int as idx, e.value as claims
             from jsonb_array_elements(users) with ordinality e loop
    perform set_config('request.jwt.claims', u.claims::text, true);
    perform set_config('role', 'authenticated', true);
    execute format('select exists (select 1 from %I.%I where id = ($1 ->> ''id'')::uuid)', schema_name, table_name)
      into visible using pk;
    perform set_config('role', saved_role, true);
    if visible then
      return next u.idx;
    end if;
  end loop;
  perform set_config('request.jwt.claims', coalesce(saved_claims, ''), true);
end
$$;

-- Retention: events and changes older than the window are removed (the companion runs this
-- periodically; pg_cron may too).
create function private.prune_realtime(retention interval) returns bigint
language plpgsql volatile security definer set search_path = '' as $$
declare
  n bigint;
  m bigint;
begin
  delete from private.realtime_events where created_at < now() - retention;
  get diagnostics n = row_count;
  delete from private.realtime_changes where created_at < now() - retention;
  get diagnostics m = row_count;
  return n + m;
end
$$;

revoke all on function private.realtime_notify(), private.capture_change(),
  private.realtime_visible_to(text, text, jsonb, jsonb), private.prune_realtime(interval)
  from public, anon, authenticated, service_role;
