-- Notification delivery: what the companion's outbox worker, reminder scheduler and provider
-- webhooks need beside private.outbox. Contract: docs/notifications.md.
--
-- Decisions (retry schedule, permanent or transient, quiet hours, which reminder is due, what a
-- status callback may change, what an inbound SMS means) are careplane_rules::notify, called by
-- the companion; this file holds the columns, the claim with its lease, and the admin RPCs.

-- The outbox's own bookkeeping --------------------------------------------------------------------
alter table private.outbox drop constraint outbox_status_check;
alter table private.outbox
  add constraint outbox_status_check
    check (status in ('pending', 'sending', 'sent', 'delivered', 'failed', 'dead', 'skipped')),
  -- Who the message is for (derived on insert from the recipient address; null when no profile
  -- has it, e.g. a deleted account).
  add column recipient_id uuid references public.profiles (id) on delete set null,
  -- The claim: which companion holds the row while sending, and until when.
  add column lease_owner text,
  add column lease_expires_at timestamptz,
  -- Set just before the provider is called: a row found `sending` with an expired lease and this
  -- set may have been sent (the outcome is unknown); without it, it never left.
  add column provider_called_at timestamptz,
  add column provider_message_id text,
  add column delivered_at timestamptz,
  -- Reminders: one row per appointment, offset, start time and channel, whoever enqueues it.
  add column dedupe_key text unique,
  add column updated_at timestamptz not null default now();

create index outbox_lease_idx on private.outbox (lease_expires_at) where status = 'sending';
create index outbox_provider_message_idx on private.outbox (provider_message_id) where provider_message_id is not null;
create index outbox_dead_idx on private.outbox (updated_at) where status = 'dead';

-- The recipient's profile, found by the address the inserting RPC wrote (the RPCs insert only
-- channel, recipient, template and payload).
create function private.outbox_recipient() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.recipient_id is null then
    select p.id into new.recipient_id
      from public.profiles p
     where case new.channel when 'email' then lower(p.email) = lower(new.recipient) else p.phone = new.recipient end
     order by p.created_at
     limit 1;
  end if;
  return new;
end
$$;
create trigger outbox_recipient before insert on private.outbox
  for each row execute function private.outbox_recipient();

create index profiles_phone_idx on public.profiles (phone) where phone is not null;
create index profiles_email_lower_idx on public.profiles (lower(email)) where email is not null;

-- Preferences: the language messages are written in (BCP 47, e.g. `fr`, `en-GB`); time zone,
-- quiet hours and opt-ins are already on the profile.
alter table public.profiles add column locale text check (locale ~ '^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$');
grant update (locale) on public.profiles to authenticated;

-- Addresses that must not be emailed (SendGrid bounce, dropped, spam report, unsubscribe),
-- with the reason. Written by the companion's event webhook.
create table private.email_suppressions (
  email text primary key check (email = lower(email)),
  event text not null,
  reason text,
  created_at timestamptz not null default now()
);
alter table private.email_suppressions enable row level security;
revoke all on private.email_suppressions from public, anon, authenticated, service_role;

-- Claim ---------------------------------------------------------------------------------------
-- Up to `batch` due rows, leased to `owner` for `lease`: first rows `sending` whose lease expired
-- (a crashed instance's, oldest first, so they never starve behind new work), then `pending`
-- rows that are due. Each is locked with SKIP LOCKED where it is read, so concurrent workers
-- take disjoint rows and never wait for each other. Returns each row with whether it was taken
-- over after the provider was called (the outcome of that call is unknown), and what the worker
-- decides with about the recipient: locale, time zone, quiet hours, the channel's opt-in, and the
-- suppression event of an email address.
create function private.claim_outbox(owner text, batch int, lease interval)
returns table (id bigint, channel text, recipient text, template text, payload jsonb, attempts int,
               outcome_unknown boolean, locale text, time_zone text, quiet_hours_start time,
               quiet_hours_end time, opted_in boolean, suppressed text)
language sql security definer set search_path = '' as $$
  with expired as (
    select s.id, s.provider_called_at is not null as unknown
      from private.outbox s
     where s.status = 'sending' and s.lease_expires_at < now()
     order by s.lease_expires_at
     limit batch
       for update skip locked
  ), due_now as (
    select p.id, false as unknown
      from private.outbox p
     where p.status = 'pending' and p.next_attempt_at <= now()
     order by p.next_attempt_at
     limit batch
       for update skip locked
  ), due as (
    (select * from expired) union all (select * from due_now) limit batch
  ), claimed as (
    update private.outbox o
       set status = 'sending', lease_owner = owner, lease_expires_at = now() + lease,
           attempts = o.attempts + 1, provider_called_at = null, updated_at = now()
      from due
     where o.id = due.id
    returning o.id, o.channel, o.recipient, o.template, o.payload, o.attempts, o.recipient_id, due.unknown
  )
  select c.id, c.channel, c.recipient, c.template, c.payload, c.attempts, c.unknown,
         pr.locale, pr.time_zone, pr.quiet_hours_start, pr.quiet_hours_end,
         case c.channel when 'sms' then pr.sms_opt_in else pr.email_opt_in end,
         (select s.event from private.email_suppressions s where c.channel = 'email' and s.email = lower(c.recipient))
    from claimed c left join public.profiles pr on pr.id = c.recipient_id
$$;

-- Reminders -----------------------------------------------------------------------------------
-- Appointments the patient accepted that hold time and start within `horizon`: the companion
-- decides which reminder is due (careplane_rules::notify::due_reminder).
create function private.reminder_candidates(horizon interval)
returns table (appointment_id uuid, starts_at timestamptz)
language sql stable security definer set search_path = '' as $$
  select a.id, lower(a.period)
    from public.appointments a
   where a.period is not null
     and lower(a.period) > now() and lower(a.period) <= now() + horizon
     and careplane.is_active_appointment_status(a.status)
     and careplane.may_contact_patient(a.patient_participation)
$$;

-- The reminder rows for one appointment, offset and start time, once: the dedupe key names all
-- three and the channel, so a second enqueue (another instance, a restart) adds nothing and a
-- moved appointment gets reminders for its new time. Returns how many rows were added.
create function private.enqueue_reminder(appointment_id uuid, offset_minutes int, starts_at timestamptz)
returns int
language plpgsql security definer set search_path = '' as $$
declare
  added int;
begin
  insert into private.outbox (channel, recipient, template, payload, recipient_id, dedupe_key)
  select c.channel, c.address, 'appointment_reminder',
         jsonb_build_object('appointment_id', a.id, 'practitioner_id', a.practitioner_id,
                            'starts_at', lower(a.period), 'ends_at', upper(a.period), 'offset_minutes', offset_minutes),
         pr.id,
         format('reminder:%s:%s:%s:%s', a.id, offset_minutes, extract(epoch from lower(a.period))::bigint, c.channel)
    from public.appointments a
    join public.profiles pr on pr.id = a.patient_id
    cross join lateral (values ('email', pr.email, pr.email_opt_in), ('sms', pr.phone, pr.sms_opt_in)) c(channel, address, opted_in)
   where a.id = enqueue_reminder.appointment_id
     and lower(a.period) = enqueue_reminder.starts_at
     and careplane.is_active_appointment_status(a.status)
     and c.address is not null and c.opted_in
  on conflict (dedupe_key) do nothing;
  get diagnostics added = row_count;
  return added;
end
$$;

-- Admin RPCs ----------------------------------------------------------------------------------
-- Dead messages (newest first) without their recipient address or payload: id, channel,
-- template, attempts, the provider's last error, when it died. Admins (notifications.read_all).
create function public.dead_notifications(max_rows int default 100)
returns table (id bigint, channel text, template text, attempts int, last_error text, created_at timestamptz,
               died_at timestamptz)
language plpgsql stable security definer set search_path = '' as $$
begin
  if not public.authorize('notifications.read_all') then
    raise exception 'only an admin may list undelivered notifications' using errcode = '42501';
  end if;
  if max_rows is null or max_rows not between 1 and 1000 then
    raise exception 'max_rows is 1 to 1000' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "max_rows"}';
  end if;
  return query
    select o.id, o.channel, o.template, o.attempts, o.last_error, o.created_at, o.updated_at
      from private.outbox o
     where o.status = 'dead'
     order by o.updated_at desc
     limit max_rows;
end
$$;

-- Puts one dead message back in the queue, due now, with its attempts reset.
create function public.requeue_notification(outbox_id bigint)
returns table (id bigint, status text, next_attempt_at timestamptz)
language plpgsql security definer set search_path = '' as $$
declare
  current_status text;
begin
  if not public.authorize('notifications.read_all') then
    raise exception 'only an admin may requeue notifications' using errcode = '42501';
  end if;
  select o.status into current_status from private.outbox o where o.id = outbox_id for update;
  if current_status is null then
    raise exception 'no notification %', outbox_id using errcode = 'PT404',
      detail = '{"code": "notification_not_found"}';
  end if;
  if current_status <> 'dead' then
    raise exception 'notification % is %, not dead', outbox_id, current_status using errcode = 'PT409',
      detail = json_build_object('code', 'not_dead', 'status', current_status)::text;
  end if;
  return query
    update private.outbox o
       set status = 'pending', attempts = 0, next_attempt_at = now(), lease_owner = null,
           lease_expires_at = null, provider_called_at = null, updated_at = now()
     where o.id = outbox_id
    returning o.id, o.status, o.next_attempt_at;
end
$$;

revoke all on function private.outbox_recipient(), private.claim_outbox(text, int, interval),
  private.reminder_candidates(interval), private.enqueue_reminder(uuid, int, timestamptz)
  from public, anon, authenticated, service_role;
revoke execute on function public.dead_notifications(int), public.requeue_notification(bigint) from public, anon;
grant execute on function public.dead_notifications(int), public.requeue_notification(bigint) to authenticated, service_role;

-- Cancellation notice ---------------------------------------------------------------------------
-- A patient's cancellation closes at the practitioner's notice before the start
-- (careplane_rules::scheduling::appointment::check_cancellation_notice): the same rule for
-- cancel_appointment through PostgREST and for an `X` replied by SMS, which calls it as the
-- patient. The move check passes the practitioner's min_notice_minutes; nothing else changes.
create or replace function private.check_move(a public.appointments, action text, to_status text default null) returns jsonb
language sql volatile set search_path = '' as $$
  select private.enforce(careplane.appointment_transition(jsonb_strip_nulls(jsonb_build_object(
    'action', action, 'from', a.status, 'to', to_status, 'actor', private.appointment_actor(a),
    'starts_at', lower(a.period), 'now', now(),
    'cancel_notice_minutes', (select p.min_notice_minutes from public.practitioners p where p.id = a.practitioner_id)))))
$$;
