-- Practitioners and scheduling: the practitioner directory (doctors and nurses), their weekly
-- availability and date exceptions, appointments (FHIR R4 Appointment statuses) and
-- consultations (one per appointment), and the booking RPCs.
-- Availability and conflicts are decided by the extension's scheduling rules; this file holds
-- the data, who sees it, and the RPCs that lock, read, call the rules and write. The schema's
-- exclusion constraints are the last line of defence against double booking.
-- The directory and availability are public (anon may read them); nothing personal is there.

create extension if not exists btree_gist with schema extensions;


create table public.practitioners (
  id uuid primary key default gen_random_uuid(),
  profile_id uuid not null unique references public.profiles (id) on delete cascade,
  kind text not null check (kind in ('doctor', 'nurse')),
  display_name text not null check (length(display_name) between 1 and 200),
  specialty text check (length(specialty) <= 200),
  bio text check (length(bio) <= 4000),
  consultation_fee_minor bigint not null check (consultation_fee_minor >= 0),
  currency text not null check (careplane.currency_exponent(currency) is not null),
  slot_minutes int not null default 30 check (slot_minutes between 5 and 480),
  -- Slot starts are aligned to this many minutes past local midnight (default: the slot length).
  slot_alignment_minutes int check (slot_alignment_minutes between 5 and 240),
  buffer_before_minutes int not null default 0 check (buffer_before_minutes between 0 and 240),
  buffer_after_minutes int not null default 0 check (buffer_after_minutes between 0 and 240),
  min_notice_minutes int not null default 60 check (min_notice_minutes between 0 and 43200),
  booking_horizon_days int not null default 60 check (booking_horizon_days between 1 and 730),
  time_zone text not null check (public.is_valid_time_zone(time_zone)),
  accepting_patients boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on column public.practitioners.consultation_fee_minor is 'In minor units of currency (kobo for NGN).';
create trigger touch_updated_at before update on public.practitioners
  for each row execute function private.touch_updated_at();

-- Weekly hours in the practitioner's time zone (wall clock): 09:00–17:00 stays 09:00–17:00
-- across DST changes. Several intervals a day are several rows.
create table public.availability_rules (
  id uuid primary key default gen_random_uuid(),
  practitioner_id uuid not null references public.practitioners (id) on delete cascade,
  weekday smallint not null check (weekday between 1 and 7),  -- ISO 8601: 1 = Monday
  start_time time not null,
  end_time time not null,
  valid_from date,
  valid_until date,
  created_at timestamptz not null default now(),
  constraint availability_rule_interval check (start_time < end_time),
  constraint availability_rule_validity check (valid_from is null or valid_until is null or valid_from <= valid_until)
);
create index availability_rules_practitioner_idx on public.availability_rules (practitioner_id, weekday);

-- Date exceptions in the practitioner's time zone: time off (whole day when no times) or extra hours.
create table public.availability_exceptions (
  id uuid primary key default gen_random_uuid(),
  practitioner_id uuid not null references public.practitioners (id) on delete cascade,
  on_date date not null,
  kind text not null check (kind in ('time_off', 'extra_hours')),
  start_time time,
  end_time time,
  created_at timestamptz not null default now(),
  constraint exception_times_both_or_neither check ((start_time is null) = (end_time is null)),
  constraint exception_interval check (start_time is null or start_time < end_time),
  constraint extra_hours_need_times check (kind = 'time_off' or start_time is not null)
);
create index availability_exceptions_practitioner_idx on public.availability_exceptions (practitioner_id, on_date);

-- Is the caller this practitioner?
create function access.is_practitioner(practitioner uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (select 1 from public.practitioners p where p.id = practitioner and p.profile_id = auth.uid())
$$;

-- Registering a practitioner: admins, for a user who holds the doctor or nurse role.
create function public.register_practitioner(
  profile_id uuid, kind text, display_name text, consultation_fee_minor bigint, currency text,
  time_zone text, specialty text default null
) returns public.practitioners
language plpgsql security definer set search_path = '' as $$
declare
  created public.practitioners;
begin
  if not public.authorize('practitioners.manage') then
    raise exception 'only an admin may register practitioners' using errcode = '42501';
  end if;
  if not exists (select 1 from public.user_roles ur
                 where ur.user_id = register_practitioner.profile_id and ur.role::text = register_practitioner.kind) then
    raise exception 'user % does not hold the % role', register_practitioner.profile_id, register_practitioner.kind
      using errcode = 'PT422', hint = 'Grant the role first (grant_role).';
  end if;
  insert into public.practitioners (profile_id, kind, display_name, specialty, consultation_fee_minor, currency, time_zone)
  values (register_practitioner.profile_id, register_practitioner.kind, register_practitioner.display_name,
          register_practitioner.specialty, register_practitioner.consultation_fee_minor,
          register_practitioner.currency, register_practitioner.time_zone)
  returning * into created;
  return created;
end
$$;
revoke execute on function public.register_practitioner(uuid, text, text, bigint, text, text, text) from public, anon;

revoke all on public.practitioners, public.availability_rules, public.availability_exceptions
  from anon, authenticated, service_role;
grant select on public.practitioners, public.availability_rules, public.availability_exceptions
  to anon, authenticated, service_role;
-- A practitioner edits their own booking settings; who they are (profile, kind) is the admin's.
grant update (display_name, specialty, bio, consultation_fee_minor, currency, slot_minutes, slot_alignment_minutes, buffer_before_minutes,
              buffer_after_minutes, min_notice_minutes, booking_horizon_days, time_zone, accepting_patients)
  on public.practitioners to authenticated;
grant insert (practitioner_id, weekday, start_time, end_time, valid_from, valid_until),
      update (weekday, start_time, end_time, valid_from, valid_until), delete
  on public.availability_rules to authenticated;
grant insert (practitioner_id, on_date, kind, start_time, end_time),
      update (on_date, kind, start_time, end_time), delete
  on public.availability_exceptions to authenticated;

alter table public.practitioners enable row level security;
alter table public.availability_rules enable row level security;
alter table public.availability_exceptions enable row level security;

create policy "anyone reads the practitioner directory" on public.practitioners
  for select to anon, authenticated using (true);
create policy "practitioners update own record" on public.practitioners
  for update to authenticated using (profile_id = (select auth.uid())) with check (profile_id = (select auth.uid()));

create policy "anyone reads availability" on public.availability_rules
  for select to anon, authenticated using (true);
create policy "practitioners add own availability" on public.availability_rules
  for insert to authenticated with check (access.is_practitioner(practitioner_id));
create policy "practitioners change own availability" on public.availability_rules
  for update to authenticated using (access.is_practitioner(practitioner_id))
  with check (access.is_practitioner(practitioner_id));
create policy "practitioners remove own availability" on public.availability_rules
  for delete to authenticated using (access.is_practitioner(practitioner_id));

create policy "anyone reads availability exceptions" on public.availability_exceptions
  for select to anon, authenticated using (true);
create policy "practitioners add own exceptions" on public.availability_exceptions
  for insert to authenticated with check (access.is_practitioner(practitioner_id));
create policy "practitioners change own exceptions" on public.availability_exceptions
  for update to authenticated using (access.is_practitioner(practitioner_id))
  with check (access.is_practitioner(practitioner_id));
create policy "practitioners remove own exceptions" on public.availability_exceptions
  for delete to authenticated using (access.is_practitioner(practitioner_id));

-- Appointments and consultations ---------------------------------------------------------------

create table public.appointments (
  id uuid primary key default gen_random_uuid(),
  patient_id uuid not null references public.profiles (id) on delete restrict,
  practitioner_id uuid not null references public.practitioners (id) on delete restrict,
  period tstzrange,
  status text not null default 'booked' check (status in (
    'proposed', 'pending', 'booked', 'arrived', 'checked-in', 'fulfilled',
    'cancelled', 'noshow', 'entered-in-error', 'waitlist')),
  reason text check (length(reason) <= 2000),
  cancellation_reason text check (length(cancellation_reason) <= 2000),
  created_by uuid references auth.users (id) on delete set null,
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- FHIR: start and end both or neither (a range has both), required unless proposed, cancelled or waitlist.
  constraint appointment_period_required check (period is not null or status in ('proposed', 'cancelled', 'waitlist')),
  constraint appointment_period_bounded check (
    period is null or (not isempty(period) and not lower_inf(period) and not upper_inf(period))),
  -- FHIR: a cancellation reason only when cancelled or noshow.
  constraint cancellation_reason_only_when_cancelled check (
    cancellation_reason is null or status in ('cancelled', 'noshow')),
  unique (patient_id, idempotency_key),
  -- Time held by active appointments (same list as careplane_rules::scheduling::ACTIVE_STATUSES):
  -- the last line of defence against double booking.
  constraint appointments_practitioner_time_free exclude using gist (practitioner_id with =, period with &&)
    where (status in ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')),
  constraint appointments_patient_time_free exclude using gist (patient_id with =, period with &&)
    where (status in ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled'))
);
create index appointments_practitioner_idx on public.appointments (practitioner_id, lower(period));
create index appointments_patient_idx on public.appointments (patient_id, lower(period));
create trigger touch_updated_at before update on public.appointments
  for each row execute function private.touch_updated_at();

create table public.consultations (
  id uuid primary key default gen_random_uuid(),
  appointment_id uuid not null unique references public.appointments (id) on delete restrict,
  status text not null default 'scheduled' check (status in ('scheduled', 'waiting', 'in_progress', 'ended')),
  started_at timestamptz,
  ended_at timestamptz,
  summary text check (length(summary) <= 20000),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint consultation_started check ((started_at is not null) = (status in ('in_progress', 'ended'))),
  constraint consultation_ended check ((ended_at is not null) = (status = 'ended')),
  constraint consultation_order check (ended_at is null or ended_at >= started_at)
);
create trigger touch_updated_at before update on public.consultations
  for each row execute function private.touch_updated_at();

-- The statuses from which a practitioner may see the patient's records ("booked onward").
create function access.is_care_team_of(patient uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1
      from public.appointments a
      join public.practitioners p on p.id = a.practitioner_id
     where a.patient_id = patient
       and p.profile_id = auth.uid()
       and a.status in ('booked', 'arrived', 'checked-in', 'fulfilled', 'noshow'))
$$;

-- Is the caller the patient or the practitioner of this appointment?
create function access.is_appointment_party(appointment uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1
      from public.appointments a
      join public.practitioners p on p.id = a.practitioner_id
     where a.id = appointment
       and (a.patient_id = auth.uid() or p.profile_id = auth.uid()))
$$;

revoke all on public.appointments, public.consultations from anon, authenticated, service_role;
grant select on public.appointments, public.consultations to authenticated, service_role;

alter table public.appointments enable row level security;
alter table public.consultations enable row level security;

create policy "patients read own appointments" on public.appointments
  for select to authenticated using (patient_id = (select auth.uid()));
create policy "practitioners read own calendar" on public.appointments
  for select to authenticated using (access.is_practitioner(practitioner_id));
create policy "admins read all appointments" on public.appointments
  for select to authenticated using ((select public.authorize('appointments.read_all')));

create policy "participants read their consultations" on public.consultations
  for select to authenticated using (access.is_appointment_party(appointment_id));
create policy "admins read all consultations" on public.consultations
  for select to authenticated using ((select public.authorize('consultations.read_all')));

-- Care team reads the patient's profile.
create policy "care team reads patient profiles" on public.profiles
  for select to authenticated using (access.is_care_team_of(id));

create trigger audit after insert or update or delete on public.appointments
  for each row execute function private.audit();
create trigger audit after insert or update or delete on public.consultations
  for each row execute function private.audit();


-- Booking ---------------------------------------------------------------------------------------
-- The practitioner's schedule as the extension reads it.
create function private.schedule_json(p public.practitioners) returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'time_zone', p.time_zone,
    'slot_minutes', p.slot_minutes,
    'align_minutes', p.slot_alignment_minutes,
    'buffer_before_minutes', p.buffer_before_minutes,
    'buffer_after_minutes', p.buffer_after_minutes,
    'min_notice_minutes', p.min_notice_minutes,
    'booking_horizon_days', p.booking_horizon_days,
    'weekly', coalesce((
      select jsonb_agg(jsonb_build_object('weekday', r.weekday, 'start_time', r.start_time, 'end_time', r.end_time,
                                          'valid_from', r.valid_from, 'valid_until', r.valid_until))
        from public.availability_rules r where r.practitioner_id = p.id), '[]'::jsonb),
    'exceptions', coalesce((
      select jsonb_agg(jsonb_build_object('on_date', e.on_date, 'kind', e.kind, 'start_time', e.start_time, 'end_time', e.end_time))
        from public.availability_exceptions e where e.practitioner_id = p.id), '[]'::jsonb))
$$;

-- Active appointments of a practitioner (or, with by_patient, of a patient) near a window, as
-- [{start, end}], leaving out one appointment (the one being moved).
create function private.busy_json(owner_id uuid, by_patient boolean, around tstzrange, except_id uuid) returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('start', lower(a.period), 'end', upper(a.period)) order by lower(a.period)), '[]'::jsonb)
    from public.appointments a
   where (case when by_patient then a.patient_id else a.practitioner_id end) = owner_id
     and a.status in ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')
     and a.period && around
     and a.id is distinct from except_id
$$;

-- The conflict reasons for booking `slot` with practitioner p for patient.
create function private.conflicts(p public.practitioners, patient uuid, slot tstzrange, except_id uuid) returns jsonb
language sql stable security definer set search_path = '' as $$
  select careplane.booking_conflicts(jsonb_build_object(
    'schedule', private.schedule_json(p),
    'practitioner_busy', private.busy_json(p.id, false, tstzrange(lower(slot) - interval '1 day', upper(slot) + interval '1 day'), except_id),
    'patient_busy', private.busy_json(patient, true, tstzrange(lower(slot) - interval '1 day', upper(slot) + interval '1 day'), except_id),
    'now', now(),
    'start', lower(slot),
    'end', upper(slot)))
$$;

create function private.raise_conflict(reasons jsonb) returns void
language plpgsql volatile set search_path = '' as $$
begin
  raise exception 'the appointment cannot be booked: %', (select string_agg(r, ', ') from jsonb_array_elements_text(reasons) r)
    using errcode = 'PT409', detail = jsonb_build_object('reasons', reasons)::text,
          hint = 'Pick a slot from available_slots().';
end
$$;

-- A 23P01 from the exclusion constraints, as the conflict it means.
create function private.raise_exclusion_conflict(violated text) returns void
language sql volatile set search_path = '' as $$
  select private.raise_conflict(case when violated = 'appointments_patient_time_free'
                                     then '["patient_busy"]'::jsonb else '["practitioner_busy"]'::jsonb end)
$$;

-- Realtime events, in-app notifications and outbox messages for an appointment change, to the
-- patient and the practitioner, in the caller's transaction.
create function private.announce_appointment(a public.appointments, what text) returns void
language plpgsql security definer set search_path = '' as $$
declare
  practitioner_profile uuid;
  title text := case what
    when 'booked' then 'Consultation booked'
    when 'rescheduled' then 'Consultation moved'
    when 'cancelled' then 'Consultation cancelled'
    else 'Consultation ' || replace(a.status, '-', ' ') end;
  payload jsonb := jsonb_build_object('appointment_id', a.id, 'status', a.status, 'change', what,
                                      'starts_at', lower(a.period), 'ends_at', upper(a.period));
begin
  select p.profile_id into practitioner_profile from public.practitioners p where p.id = a.practitioner_id;
  insert into private.realtime_events (topic, event, payload)
  select 'user:' || u, 'appointment:updated', payload from unnest(array[a.patient_id, practitioner_profile]) u;
  insert into public.notifications (user_id, kind, title, data)
  select u, 'appointment:updated', title, payload from unnest(array[a.patient_id, practitioner_profile]) u;
  insert into private.outbox (channel, recipient, template, payload)
  select 'email', pr.email, 'appointment_' || what, payload
    from public.profiles pr
   where pr.id in (a.patient_id, practitioner_profile) and pr.email is not null and pr.email_opt_in
  union all
  select 'sms', pr.phone, 'appointment_' || what, payload
    from public.profiles pr
   where pr.id in (a.patient_id, practitioner_profile) and pr.phone is not null and pr.sms_opt_in;
end
$$;

-- public.available_slots: anyone, anonymous visitors included; only free slots leave the database.
create function public.available_slots(practitioner_id uuid, from_ts timestamptz, to_ts timestamptz)
returns table (slot_start timestamptz, slot_end timestamptz)
language plpgsql stable security definer set search_path = '' as $$
declare
  p public.practitioners;
begin
  select * into p from public.practitioners pr where pr.id = available_slots.practitioner_id;
  if p.id is null then
    raise exception 'no practitioner %', available_slots.practitioner_id using errcode = 'PT404';
  end if;
  if from_ts is null or to_ts is null then
    raise exception 'from_ts and to_ts are required' using errcode = '22023';
  end if;
  if not p.accepting_patients then
    return;
  end if;
  return query
    select (s ->> 'slot_start')::timestamptz, (s ->> 'slot_end')::timestamptz
      from jsonb_array_elements(careplane.available_slots(jsonb_build_object(
             'schedule', private.schedule_json(p),
             'busy', private.busy_json(p.id, false, tstzrange(from_ts - interval '1 day', to_ts + interval '1 day'), null),
             'now', now(), 'from', from_ts, 'to', to_ts))) s;
end
$$;

-- Books for the caller; with patient_id, for that patient: a practitioner into their own
-- calendar, or anyone holding appointments.book_for_patients into any calendar.
create function public.book_appointment(
  practitioner_id uuid,
  starts_at timestamptz,
  reason text default null,
  idempotency_key text default null,
  patient_id uuid default null
) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  caller uuid := auth.uid();
  patient uuid := coalesce(book_appointment.patient_id, auth.uid());
  p public.practitioners;
  slot tstzrange;
  reasons jsonb;
  existing public.appointments;
  booked public.appointments;
  violated text;
  consultation_id uuid;
  conversation_id uuid;
begin
  if caller is null then
    raise exception 'sign in to book a consultation' using errcode = '42501';
  end if;
  if starts_at is null then
    raise exception 'starts_at is required' using errcode = '22023';
  end if;
  if patient <> caller and not exists (select 1 from public.profiles pr where pr.id = patient) then
    raise exception 'no patient %', patient using errcode = 'PT404';
  end if;
  if length(reason) > 2000 or length(idempotency_key) not between 1 and 200 then
    raise exception 'reason is at most 2000 characters and idempotency_key 1 to 200' using errcode = '22023';
  end if;
  -- One booking at a time per practitioner: availability, buffers and the insert are atomic.
  select * into p from public.practitioners pr where pr.id = book_appointment.practitioner_id for update;
  if p.id is null then
    raise exception 'no practitioner %', book_appointment.practitioner_id using errcode = 'PT404';
  end if;
  if p.profile_id = patient then
    raise exception 'a practitioner cannot book a consultation with themselves' using errcode = '22023';
  end if;
  if patient <> caller and p.profile_id <> caller and not public.authorize('appointments.book_for_patients') then
    raise exception 'booking for another patient needs the appointments.book_for_patients permission, or your own calendar'
      using errcode = '42501';
  end if;
  slot := tstzrange(starts_at, starts_at + make_interval(mins => p.slot_minutes));

  if idempotency_key is not null then
    select * into existing from public.appointments a
     where a.patient_id = patient and a.idempotency_key = book_appointment.idempotency_key;
    if existing.id is not null then
      if existing.practitioner_id = p.id and lower(existing.period) = starts_at then
        return existing;  -- a retry of the same request
      end if;
      raise exception 'idempotency key % was used for a different booking', book_appointment.idempotency_key
        using errcode = 'PT409', detail = '{"reasons": ["idempotency_key_reused"]}';
    end if;
  end if;

  if not p.accepting_patients then
    perform private.raise_conflict('["outside_hours"]');
  end if;
  reasons := private.conflicts(p, patient, slot, null);
  if jsonb_array_length(reasons) > 0 then
    perform private.raise_conflict(reasons);
  end if;

  begin
    insert into public.appointments (patient_id, practitioner_id, period, status, reason, created_by, idempotency_key)
    values (patient, p.id, slot, 'booked', nullif(btrim(book_appointment.reason), ''), caller, book_appointment.idempotency_key)
    returning * into booked;
  exception when exclusion_violation then
    get stacked diagnostics violated = constraint_name;
    perform private.raise_exclusion_conflict(violated);
  end;

  insert into public.consultations (appointment_id) values (booked.id) returning id into consultation_id;
  insert into public.conversations (consultation_id, kind) values (consultation_id, 'consultation') returning id into conversation_id;
  insert into public.conversation_members (conversation_id, user_id) values (conversation_id, patient), (conversation_id, p.profile_id);
  perform private.announce_appointment(booked, 'booked');
  return booked;
end
$$;

-- Who the caller is to this appointment: its practitioner, its patient, or an admin; null for
-- anyone else (who is then told it does not exist).
create function private.appointment_actor(a public.appointments) returns text
language sql stable security definer set search_path = '' as $$
  select case
    when a.id is null then null
    when exists (select 1 from public.practitioners p where p.id = a.practitioner_id and p.profile_id = auth.uid()) then 'practitioner'
    when a.patient_id = auth.uid() then 'patient'
    when access.has_role('admin') then 'admin'
  end
$$;

create function private.locked_appointment(appointment_id uuid) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments;
begin
  if auth.uid() is null then
    raise exception 'sign in to change an appointment' using errcode = '42501';
  end if;
  -- Practitioner first, then the appointment: the same lock order as booking.
  perform 1 from public.practitioners p
   where p.id = (select a2.practitioner_id from public.appointments a2 where a2.id = appointment_id) for update;
  select * into a from public.appointments a3 where a3.id = appointment_id for update;
  if private.appointment_actor(a) is null then
    raise exception 'no appointment %', appointment_id using errcode = 'PT404';
  end if;
  return a;
end
$$;

create function private.check_appointment_move(a public.appointments, to_status text) returns void
language sql volatile set search_path = '' as $$
  select private.enforce_transition(
    careplane.appointment_transition(a.status, to_status, private.appointment_actor(a)), a.status, to_status)
$$;

create function public.reschedule_appointment(appointment_id uuid, starts_at timestamptz) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  p public.practitioners;
  slot tstzrange;
  reasons jsonb;
  violated text;
begin
  if private.appointment_actor(a) = 'admin' then
    raise exception 'admins do not move consultations; the patient or the practitioner does' using errcode = '42501';
  end if;
  if a.status not in ('pending', 'booked') then
    raise exception 'a % appointment cannot be rescheduled', a.status using errcode = 'PT422',
      detail = jsonb_build_object('reason', 'invalid_transition', 'from', a.status)::text;
  end if;
  if starts_at is null then
    raise exception 'starts_at is required' using errcode = '22023';
  end if;
  select * into p from public.practitioners pr where pr.id = a.practitioner_id;
  slot := tstzrange(starts_at, starts_at + make_interval(mins => p.slot_minutes));
  reasons := private.conflicts(p, a.patient_id, slot, a.id);
  if jsonb_array_length(reasons) > 0 then
    perform private.raise_conflict(reasons);
  end if;
  begin
    update public.appointments ap set period = slot where ap.id = a.id returning * into a;
  exception when exclusion_violation then
    get stacked diagnostics violated = constraint_name;
    perform private.raise_exclusion_conflict(violated);
  end;
  perform private.announce_appointment(a, 'rescheduled');
  return a;
end
$$;

create function public.cancel_appointment(appointment_id uuid, reason text) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
begin
  if reason is null or length(btrim(reason)) = 0 or length(reason) > 2000 then
    raise exception 'a cancellation reason (1 to 2000 characters) is required' using errcode = '22023';
  end if;
  perform private.check_appointment_move(a, 'cancelled');
  update public.appointments ap set status = 'cancelled', cancellation_reason = btrim(cancel_appointment.reason)
   where ap.id = a.id returning * into a;
  perform private.announce_appointment(a, 'cancelled');
  return a;
end
$$;

create function public.set_appointment_status(appointment_id uuid, status text) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  new_status text := set_appointment_status.status;
begin
  if new_status = 'cancelled' then
    raise exception 'use cancel_appointment, which records the reason' using errcode = 'PT422',
      detail = '{"reason": "use_cancel_appointment"}';
  end if;
  perform private.check_appointment_move(a, new_status);
  update public.appointments ap set status = new_status where ap.id = a.id returning * into a;
  update public.consultations c
     set status = case when new_status in ('arrived', 'checked-in') and c.status = 'scheduled' then 'waiting' else c.status end
   where c.appointment_id = a.id;
  perform private.announce_appointment(a, new_status);
  return a;
end
$$;

revoke all on all functions in schema private from public, anon, authenticated, service_role;
revoke execute on function public.book_appointment(uuid, timestamptz, text, text, uuid),
  public.reschedule_appointment(uuid, timestamptz), public.cancel_appointment(uuid, text),
  public.set_appointment_status(uuid, text)
  from public, anon;
grant execute on function public.book_appointment(uuid, timestamptz, text, text, uuid),
  public.reschedule_appointment(uuid, timestamptz), public.cancel_appointment(uuid, text),
  public.set_appointment_status(uuid, text)
  to authenticated, service_role;
grant execute on function public.available_slots(uuid, timestamptz, timestamptz) to anon, authenticated, service_role;
