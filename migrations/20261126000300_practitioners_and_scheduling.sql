-- Practitioners and scheduling: the practitioner directory (doctors and nurses), their weekly
-- availability and date exceptions, appointments (FHIR R4 Appointment statuses) and
-- consultations (one per appointment), and the booking RPCs. Contract: docs/scheduling.md.
--
-- Every decision is the extension's (careplane_rules::scheduling): availability and conflicts,
-- who books for whom and how (booked, or proposed to the patient), which moves an appointment
-- may make and by whom, and every list and bound the constraints below use. This file holds
-- the data and who sees it, and RPCs that lock, read, call the rules, raise their verdicts
-- with private.enforce, and write. The exclusion constraints are the last line of defence
-- against double booking.
--
-- A practitioner's powers (their calendar, their patients' records, booking for patients,
-- their fees) need the practitioner to be active and to hold their role now
-- (access.is_practitioner): revoking the role deactivates the practitioner and takes them all.
-- The directory and availability are public (anon may read them); nothing personal is there.

create extension if not exists btree_gist with schema extensions;

-- Practitioners ----------------------------------------------------------------------------------
create table public.practitioners (
  id uuid primary key default gen_random_uuid(),
  profile_id uuid not null unique references public.profiles (id) on delete cascade,
  kind text not null check (kind in ('doctor', 'nurse')),  -- the role (public.app_role) they practise under
  display_name text not null check (length(display_name) between 1 and 200),
  specialty text check (length(specialty) <= 200),
  bio text check (length(bio) <= 4000),
  consultation_fee_minor bigint not null check (consultation_fee_minor >= 0),
  currency text not null check (careplane.currency_exponent(currency) is not null),
  -- Scheduling settings: bounds and defaults are careplane_rules::scheduling::SETTINGS.
  slot_minutes int not null default careplane.schedule_setting_default('slot_minutes')
    check (careplane.is_valid_schedule_setting('slot_minutes', slot_minutes)),
  slot_alignment_minutes int  -- null: the slot length
    check (careplane.is_valid_schedule_setting('slot_alignment_minutes', slot_alignment_minutes)),
  buffer_before_minutes int not null default careplane.schedule_setting_default('buffer_before_minutes')
    check (careplane.is_valid_schedule_setting('buffer_before_minutes', buffer_before_minutes)),
  buffer_after_minutes int not null default careplane.schedule_setting_default('buffer_after_minutes')
    check (careplane.is_valid_schedule_setting('buffer_after_minutes', buffer_after_minutes)),
  min_notice_minutes int not null default careplane.schedule_setting_default('min_notice_minutes')
    check (careplane.is_valid_schedule_setting('min_notice_minutes', min_notice_minutes)),
  booking_horizon_days int not null default careplane.schedule_setting_default('booking_horizon_days')
    check (careplane.is_valid_schedule_setting('booking_horizon_days', booking_horizon_days)),
  time_zone text not null check (public.is_valid_time_zone(time_zone)),
  accepting_patients boolean not null default true,
  -- False once the practitioner's role is revoked (public.revoke_role): no powers, no bookings.
  active boolean not null default true,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on column public.practitioners.consultation_fee_minor is 'In minor units of currency (kobo for NGN).';
comment on column public.practitioners.active is
  'False when the practitioner no longer holds their role: no powers, no bookings. Set by revoke_role.';
create trigger touch_updated_at before update on public.practitioners
  for each row execute function private.touch_updated_at();
-- Fees, currency and standing change what patients pay and who may practise: every change is audited.
create trigger audit after insert or update or delete on public.practitioners
  for each row execute function private.audit();

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
  kind text not null check (kind = any (careplane.availability_exception_kinds())),
  start_time time,
  end_time time,
  created_at timestamptz not null default now(),
  constraint exception_times_both_or_neither check ((start_time is null) = (end_time is null)),
  constraint exception_interval check (start_time is null or start_time < end_time),
  constraint extra_hours_need_times check (kind = 'time_off' or start_time is not null)
);
create index availability_exceptions_practitioner_idx on public.availability_exceptions (practitioner_id, on_date);

-- Is the caller this practitioner, active, and holding the role they practise under now?
-- Every practitioner power below goes through here.
create function access.is_practitioner(practitioner uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.practitioners p
     where p.id = practitioner
       and p.profile_id = auth.uid()
       and p.active
       and access.has_role(p.kind::public.app_role))
$$;

-- Registering a practitioner: admins, for a user who holds the doctor or nurse role. A
-- practitioner deactivated by a revoked role is registered again the same way once the role is
-- back: the record is reactivated with the kind, name, fee, currency and zone given (calendar
-- and scheduling settings kept; accepting_patients stays as the revocation left it, off, until
-- the practitioner opens their calendar).
create function public.register_practitioner(
  profile_id uuid, kind text, display_name text, consultation_fee_minor bigint, currency text,
  time_zone text, specialty text default null
) returns public.practitioners
language plpgsql security definer set search_path = '' as $$
declare
  registered public.practitioners;
begin
  if not public.authorize('practitioners.manage') then
    raise exception 'only an admin may register practitioners' using errcode = '42501';
  end if;
  if not exists (select 1 from public.user_roles ur
                 where ur.user_id = register_practitioner.profile_id and ur.role::text = register_practitioner.kind) then
    raise exception 'user % does not hold the % role', register_practitioner.profile_id, register_practitioner.kind
      using errcode = 'PT422', hint = 'Grant the role first (grant_role).';
  end if;
  update public.practitioners pr
     set active = true, kind = register_practitioner.kind, display_name = register_practitioner.display_name,
         specialty = register_practitioner.specialty, consultation_fee_minor = register_practitioner.consultation_fee_minor,
         currency = register_practitioner.currency, time_zone = register_practitioner.time_zone
   where pr.profile_id = register_practitioner.profile_id and not pr.active
  returning * into registered;
  if registered.id is not null then
    return registered;
  end if;
  insert into public.practitioners (profile_id, kind, display_name, specialty, consultation_fee_minor, currency, time_zone)
  values (register_practitioner.profile_id, register_practitioner.kind, register_practitioner.display_name,
          register_practitioner.specialty, register_practitioner.consultation_fee_minor,
          register_practitioner.currency, register_practitioner.time_zone)
  returning * into registered;
  return registered;
end
$$;
revoke execute on function public.register_practitioner(uuid, text, text, bigint, text, text, text) from public, anon;

revoke all on public.practitioners, public.availability_rules, public.availability_exceptions
  from anon, authenticated, service_role;
grant select on public.practitioners, public.availability_rules, public.availability_exceptions
  to anon, authenticated, service_role;
-- A practitioner edits their own booking settings; who they are (profile, kind, standing) is the admin's.
grant update (display_name, specialty, bio, consultation_fee_minor, currency, slot_minutes, slot_alignment_minutes,
              buffer_before_minutes, buffer_after_minutes, min_notice_minutes, booking_horizon_days, time_zone,
              accepting_patients)
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

-- The whole directory, inactive practitioners included (with active = false), so that what
-- booking answers about a practitioner never tells more than the directory does.
create policy "anyone reads the practitioner directory" on public.practitioners
  for select to anon, authenticated using (true);
create policy "practitioners update own record" on public.practitioners
  for update to authenticated using (access.is_practitioner(id)) with check (access.is_practitioner(id));

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

-- Appointments and consultations -----------------------------------------------------------------
-- Written only by the scheduling RPCs; read by their patient, their practitioner and admins.
-- Statuses, the statuses that hold time, and the FHIR invariants are the extension's
-- (careplane_rules::scheduling::appointment).
create table public.appointments (
  id uuid primary key default gen_random_uuid(),
  patient_id uuid not null references public.profiles (id) on delete restrict,
  practitioner_id uuid not null references public.practitioners (id) on delete restrict,
  period tstzrange,
  status text not null default 'booked' check (status = any (careplane.appointment_statuses())),
  -- The patient's answer (FHIR Appointment.participant.status): accepted (they booked it, accepted
  -- it, or it was booked by someone entitled to), needs-action (a practitioner's proposal),
  -- declined. Only an accepted appointment shows a relationship, and only then is the patient
  -- emailed or texted about it.
  patient_participation text not null default 'accepted'
    check (patient_participation = any (careplane.participation_statuses())),
  reason text check (length(reason) <= 2000),
  cancellation_reason text check (length(cancellation_reason) <= 2000),
  created_by uuid references auth.users (id) on delete set null,
  idempotency_key text check (length(idempotency_key) between 1 and 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  -- FHIR: start and end both or neither (a range has both), required unless proposed, cancelled or waitlist.
  constraint appointment_period_required check (period is not null or not careplane.appointment_needs_period(status)),
  constraint appointment_period_bounded check (
    period is null or (not isempty(period) and not lower_inf(period) and not upper_inf(period))),
  -- FHIR: a cancellation reason only when cancelled or noshow.
  constraint cancellation_reason_only_when_cancelled check (
    cancellation_reason is null or careplane.appointment_allows_cancellation_reason(status)),
  -- An idempotency key is the requester's own: booking on someone's behalf never uses up theirs.
  constraint appointments_idempotency_key unique (created_by, idempotency_key),
  -- Time held by the statuses that hold time: the last line of defence against double booking.
  constraint appointments_practitioner_time_free exclude using gist (practitioner_id with =, period with &&)
    where (careplane.is_active_appointment_status(status)),
  constraint appointments_patient_time_free exclude using gist (patient_id with =, period with &&)
    where (careplane.is_active_appointment_status(status))
);
create index appointments_practitioner_idx on public.appointments (practitioner_id, lower(period));
create index appointments_patient_idx on public.appointments (patient_id, practitioner_id);
create trigger touch_updated_at before update on public.appointments
  for each row execute function private.touch_updated_at();

create table public.consultations (
  id uuid primary key default gen_random_uuid(),
  appointment_id uuid not null unique references public.appointments (id) on delete restrict,
  status text not null default 'scheduled' check (status = any (careplane.consultation_statuses())),
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

-- Is the caller, as a practitioner holding their role now, on this patient's care team (an
-- appointment the patient accepted, booked onward)? A proposal opens nothing.
create function access.is_care_team_of(patient uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1
      from public.appointments a
     where a.patient_id = patient
       and careplane.is_care_team_appointment_status(a.status)
       and access.is_practitioner(a.practitioner_id))
$$;

-- Is the caller the patient, or the practitioner (holding their role now), of this appointment?
create function access.is_appointment_party(appointment uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1
      from public.appointments a
     where a.id = appointment
       and (a.patient_id = auth.uid() or access.is_practitioner(a.practitioner_id)))
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

-- Booking ----------------------------------------------------------------------------------------

-- The practitioner's schedule as the extension reads it (careplane_rules::scheduling::Schedule).
create function private.schedule_json(p public.practitioners) returns jsonb
language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'time_zone', p.time_zone,
    'slot_minutes', p.slot_minutes,
    'slot_alignment_minutes', p.slot_alignment_minutes,
    'buffer_before_minutes', p.buffer_before_minutes,
    'buffer_after_minutes', p.buffer_after_minutes,
    'min_notice_minutes', p.min_notice_minutes,
    'booking_horizon_days', p.booking_horizon_days,
    'accepting_patients', p.accepting_patients,
    'active', p.active,
    'weekly', coalesce((
      select jsonb_agg(jsonb_build_object('weekday', r.weekday, 'start_time', r.start_time, 'end_time', r.end_time,
                                          'valid_from', r.valid_from, 'valid_until', r.valid_until))
        from public.availability_rules r where r.practitioner_id = p.id), '[]'::jsonb),
    'exceptions', coalesce((
      select jsonb_agg(jsonb_build_object('on_date', e.on_date, 'kind', e.kind, 'start_time', e.start_time, 'end_time', e.end_time))
        from public.availability_exceptions e where e.practitioner_id = p.id), '[]'::jsonb))
$$;

-- The span around [from_ts, to_ts) in which busy time can matter: the extension's busy window
-- (careplane.busy_window_minutes(), at least the largest buffer) either side.
create function private.busy_span(from_ts timestamptz, to_ts timestamptz) returns tstzrange
language sql stable set search_path = '' as $$
  select tstzrange(least(from_ts, to_ts) - make_interval(mins => careplane.busy_window_minutes()),
                   greatest(from_ts, to_ts) + make_interval(mins => careplane.busy_window_minutes()))
$$;

-- Appointments holding time for a practitioner (or, with by_patient, a patient) within a span,
-- as [{start, end}], leaving out one appointment (the one being moved).
create function private.busy_json(owner_id uuid, by_patient boolean, span tstzrange, except_id uuid) returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('start', lower(a.period), 'end', upper(a.period)) order by lower(a.period)), '[]'::jsonb)
    from public.appointments a
   where (case when by_patient then a.patient_id else a.practitioner_id end) = owner_id
     and careplane.is_active_appointment_status(a.status)
     and a.period && span
     and a.id is distinct from except_id
$$;

-- The verdict on putting `slot` with practitioner p and patient into an appointment that will
-- have `status` (the extension consults the patient's calendar only when that status holds time).
create function private.conflicts(p public.practitioners, patient uuid, slot tstzrange, except_id uuid, status text)
returns jsonb
language sql stable security definer set search_path = '' as $$
  select careplane.booking_conflicts(jsonb_build_object(
    'schedule', private.schedule_json(p),
    'status', status,
    'practitioner_busy', private.busy_json(p.id, false, private.busy_span(lower(slot), upper(slot)), except_id),
    'patient_busy', private.busy_json(patient, true, private.busy_span(lower(slot), upper(slot)), except_id),
    'now', now(),
    'start', lower(slot),
    'end', upper(slot)))
$$;

-- A 23P01 from the exclusion constraints, as the conflict verdict it means.
create function private.exclusion_verdict(violated text) returns jsonb
language sql stable set search_path = '' as $$
  select careplane.conflict_verdict(array[case when violated = 'appointments_patient_time_free'
                                                then 'patient_busy' else 'practitioner_busy' end])
$$;

-- Has the patient chosen this practitioner before (an appointment they booked or accepted)?
create function private.has_relationship(patient uuid, practitioner uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.appointments a
     where a.patient_id = patient and a.practitioner_id = practitioner
       and careplane.establishes_relationship(a.status, a.patient_participation))
$$;

-- The consultation of a booked appointment and its conversation, with the patient and the
-- practitioner as members (once; a second call changes nothing).
create function private.open_consultation(a public.appointments) returns void
language plpgsql security definer set search_path = '' as $$
declare
  consultation_id uuid;
  conversation_id uuid;
begin
  insert into public.consultations (appointment_id) values (a.id)
  on conflict (appointment_id) do nothing
  returning id into consultation_id;
  if consultation_id is null then
    return;
  end if;
  insert into public.conversations (consultation_id, kind) values (consultation_id, 'consultation') returning id into conversation_id;
  insert into public.conversation_members (conversation_id, user_id)
  select conversation_id, u
    from unnest(array[a.patient_id, (select p.profile_id from public.practitioners p where p.id = a.practitioner_id)]) u;
end
$$;

-- Realtime events and in-app notifications for an appointment change, to the patient and the
-- practitioner, in the caller's transaction; email / SMS to those who opted in — to the patient
-- only about an appointment they accepted (careplane.may_contact_patient), so a proposal never
-- reaches their email or phone.
create function private.announce_appointment(a public.appointments, what text) returns void
language plpgsql security definer set search_path = '' as $$
declare
  practitioner_profile uuid;
  contact_patient boolean := careplane.may_contact_patient(a.patient_participation);
  title text := case what
    when 'booked' then 'Consultation booked'
    when 'proposed' then 'Consultation proposed'
    when 'declined' then 'Consultation declined'
    when 'rescheduled' then 'Consultation moved'
    when 'cancelled' then 'Consultation cancelled'
    else 'Consultation ' || replace(a.status, '-', ' ') end;
  payload jsonb := jsonb_build_object('appointment_id', a.id, 'practitioner_id', a.practitioner_id, 'status', a.status,
                                      'change', what, 'starts_at', lower(a.period), 'ends_at', upper(a.period));
begin
  select p.profile_id into practitioner_profile from public.practitioners p where p.id = a.practitioner_id;
  insert into private.realtime_events (topic, event, payload)
  select 'user:' || u, 'appointment:updated', payload from unnest(array[a.patient_id, practitioner_profile]) u;
  insert into public.notifications (user_id, kind, title, data)
  select u, 'appointment:updated', title, payload from unnest(array[a.patient_id, practitioner_profile]) u;
  insert into private.outbox (channel, recipient, template, payload)
  select 'email', pr.email, 'appointment_' || what, payload
    from public.profiles pr
   where (pr.id = practitioner_profile or (pr.id = a.patient_id and contact_patient))
     and pr.email is not null and pr.email_opt_in
  union all
  select 'sms', pr.phone, 'appointment_' || what, payload
    from public.profiles pr
   where (pr.id = practitioner_profile or (pr.id = a.patient_id and contact_patient))
     and pr.phone is not null and pr.sms_opt_in;
end
$$;

-- public.available_slots: anyone, anonymous visitors included; only free slots leave the database
-- (none while the practitioner is inactive or not accepting patients).
create function public.available_slots(practitioner_id uuid, from_ts timestamptz, to_ts timestamptz)
returns table (slot_start timestamptz, slot_end timestamptz)
language plpgsql stable security definer set search_path = '' as $$
declare
  p public.practitioners;
begin
  select * into p from public.practitioners pr where pr.id = available_slots.practitioner_id;
  if p.id is null then
    raise exception 'no practitioner %', available_slots.practitioner_id using errcode = 'PT404',
      detail = '{"code": "practitioner_not_found"}';
  end if;
  if from_ts is null or to_ts is null then
    raise exception 'from_ts and to_ts are required' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "from_ts, to_ts"}';
  end if;
  return query
    select (s ->> 'slot_start')::timestamptz, (s ->> 'slot_end')::timestamptz
      from jsonb_array_elements(careplane.available_slots(jsonb_build_object(
             'schedule', private.schedule_json(p),
             'busy', private.busy_json(p.id, false, private.busy_span(from_ts, to_ts), null),
             'now', now(), 'from', from_ts, 'to', to_ts))) s;
end
$$;

-- Books for the caller; with patient_id, for that patient: as the calendar's practitioner (a
-- proposal unless the patient has chosen them before), or holding appointments.book_for_patients
-- into any calendar. careplane.plan_booking decides who may and how; nothing about the patient
-- shows to a caller without the permission, and a proposal neither holds the patient's time nor
-- opens their records.
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
  earlier public.appointments;
  plan jsonb;
  slot tstzrange;
  booked public.appointments;
  violated text;
begin
  if length(book_appointment.reason) > 2000 then
    raise exception 'reason is at most 2000 characters' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "reason"}';
  end if;
  if length(book_appointment.idempotency_key) not between 1 and 200 then
    raise exception 'idempotency_key is 1 to 200 characters' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "idempotency_key"}';
  end if;
  -- One booking at a time per practitioner: availability, buffers and the insert are atomic.
  select * into p from public.practitioners pr where pr.id = book_appointment.practitioner_id for update;
  if caller is not null and book_appointment.idempotency_key is not null then
    select * into earlier from public.appointments a
     where a.created_by = caller and a.idempotency_key = book_appointment.idempotency_key;
  end if;
  plan := private.enforce(careplane.plan_booking(jsonb_build_object(
    'signed_in', caller is not null,
    'on_behalf', patient is distinct from caller,
    'may_book_for_patients', public.authorize('appointments.book_for_patients'),
    'owns_calendar', p.id is not null and access.is_practitioner(p.id),
    'practitioner_found', p.id is not null,
    'patient_found', exists (select 1 from public.profiles pr where pr.id = patient),
    'patient_is_practitioner', coalesce(p.profile_id = patient, false),
    'relationship', p.id is not null and patient is not null and private.has_relationship(patient, p.id),
    'practitioner_id', book_appointment.practitioner_id,
    'patient_id', patient,
    'starts_at', book_appointment.starts_at,
    'earlier', case when earlier.id is not null then jsonb_build_object(
      'practitioner_id', earlier.practitioner_id, 'patient_id', earlier.patient_id, 'starts_at', lower(earlier.period)) end)));
  if (plan ->> 'replay')::boolean then
    return earlier;  -- a retry of the same request
  end if;

  slot := tstzrange(starts_at, starts_at + make_interval(mins => p.slot_minutes));
  perform private.enforce(private.conflicts(p, patient, slot, null, plan ->> 'status'));
  begin
    insert into public.appointments (patient_id, practitioner_id, period, status, patient_participation, reason,
                                     created_by, idempotency_key)
    values (patient, p.id, slot, plan ->> 'status', plan ->> 'participation', nullif(btrim(book_appointment.reason), ''),
            caller, book_appointment.idempotency_key)
    returning * into booked;
  exception when exclusion_violation then
    get stacked diagnostics violated = constraint_name;
    perform private.enforce(private.exclusion_verdict(violated));
  end;

  if (plan ->> 'opens_consultation')::boolean then
    perform private.open_consultation(booked);
  end if;
  perform private.announce_appointment(booked, plan ->> 'change');
  return booked;
end
$$;

-- Who the caller is to this appointment: its practitioner (holding their role now), its
-- patient, or someone holding appointments.book_for_patients; null for anyone else (who is then
-- told it does not exist).
create function private.appointment_actor(a public.appointments) returns text
language sql stable security definer set search_path = '' as $$
  select case
    when a.id is null then null
    when access.is_practitioner(a.practitioner_id) then 'practitioner'
    when a.patient_id = auth.uid() then 'patient'
    when public.authorize('appointments.book_for_patients') then 'admin'
  end
$$;

create function private.locked_appointment(appointment_id uuid) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments;
begin
  if auth.uid() is null then
    raise exception 'sign in to change an appointment' using errcode = '42501',
      detail = '{"code": "sign_in_required"}';
  end if;
  -- Practitioner first, then the appointment: the same lock order as booking.
  perform 1 from public.practitioners p
   where p.id = (select a2.practitioner_id from public.appointments a2 where a2.id = appointment_id) for update;
  select * into a from public.appointments a3 where a3.id = appointment_id for update;
  if private.appointment_actor(a) is null then
    raise exception 'no appointment %', appointment_id using errcode = 'PT404',
      detail = '{"code": "appointment_not_found"}';
  end if;
  return a;
end
$$;

-- The extension's verdict on `action` (set_status with to_status, cancel, accept, decline,
-- reschedule) by the caller, raised when refused: {"ok": true, "to", "participation"?}.
create function private.check_move(a public.appointments, action text, to_status text default null) returns jsonb
language sql volatile set search_path = '' as $$
  select private.enforce(careplane.appointment_transition(jsonb_strip_nulls(jsonb_build_object(
    'action', action, 'from', a.status, 'to', to_status, 'actor', private.appointment_actor(a),
    'starts_at', lower(a.period), 'now', now()))))
$$;

create function public.reschedule_appointment(appointment_id uuid, starts_at timestamptz) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  p public.practitioners;
  slot tstzrange;
  violated text;
begin
  perform private.check_move(a, 'reschedule');
  if starts_at is null then
    raise exception 'starts_at is required' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "starts_at"}';
  end if;
  select * into p from public.practitioners pr where pr.id = a.practitioner_id;
  slot := tstzrange(starts_at, starts_at + make_interval(mins => p.slot_minutes));
  perform private.enforce(private.conflicts(p, a.patient_id, slot, a.id, a.status));
  begin
    update public.appointments ap set period = slot where ap.id = a.id returning * into a;
  exception when exclusion_violation then
    get stacked diagnostics violated = constraint_name;
    perform private.enforce(private.exclusion_verdict(violated));
  end;
  perform private.announce_appointment(a, 'rescheduled');
  return a;
end
$$;

create function public.cancel_appointment(appointment_id uuid, reason text) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  move jsonb;
begin
  if reason is null or length(btrim(reason)) = 0 or length(reason) > 2000 then
    raise exception 'a cancellation reason (1 to 2000 characters) is required' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "reason"}';
  end if;
  move := private.check_move(a, 'cancel');
  update public.appointments ap set status = move ->> 'to', cancellation_reason = btrim(cancel_appointment.reason)
   where ap.id = a.id returning * into a;
  perform private.announce_appointment(a, 'cancelled');
  return a;
end
$$;

create function public.set_appointment_status(appointment_id uuid, status text) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  move jsonb;
begin
  if set_appointment_status.status is null then
    raise exception 'status is required' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "status"}';
  end if;
  move := private.check_move(a, 'set_status', set_appointment_status.status);
  update public.appointments ap set status = move ->> 'to' where ap.id = a.id returning * into a;
  update public.consultations c
     set status = careplane.consultation_status_after(a.status, c.status)
   where c.appointment_id = a.id
     and c.status is distinct from careplane.consultation_status_after(a.status, c.status);
  perform private.announce_appointment(a, a.status);
  return a;
end
$$;

-- The patient accepts a practitioner's proposal: checked against both calendars (the patient's
-- own included) as a booking is, then booked, with its consultation and conversation.
create function public.accept_appointment(appointment_id uuid) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  move jsonb := private.check_move(a, 'accept');
  p public.practitioners;
  violated text;
begin
  select * into p from public.practitioners pr where pr.id = a.practitioner_id;
  perform private.enforce(private.conflicts(p, a.patient_id, a.period, a.id, move ->> 'to'));
  begin
    update public.appointments ap set status = move ->> 'to', patient_participation = move ->> 'participation'
     where ap.id = a.id returning * into a;
  exception when exclusion_violation then
    get stacked diagnostics violated = constraint_name;
    perform private.enforce(private.exclusion_verdict(violated));
  end;
  perform private.open_consultation(a);
  perform private.announce_appointment(a, 'booked');
  return a;
end
$$;

-- The patient declines a practitioner's proposal (a reason is optional).
create function public.decline_appointment(appointment_id uuid, reason text default null) returns public.appointments
language plpgsql security definer set search_path = '' as $$
declare
  a public.appointments := private.locked_appointment(appointment_id);
  move jsonb := private.check_move(a, 'decline');
begin
  if length(reason) > 2000 then
    raise exception 'reason is at most 2000 characters' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "reason"}';
  end if;
  update public.appointments ap
     set status = move ->> 'to', patient_participation = move ->> 'participation',
         cancellation_reason = nullif(btrim(decline_appointment.reason), '')
   where ap.id = a.id returning * into a;
  perform private.announce_appointment(a, 'declined');
  return a;
end
$$;

revoke all on all functions in schema private from public, anon, authenticated, service_role;
revoke execute on function public.book_appointment(uuid, timestamptz, text, text, uuid),
  public.reschedule_appointment(uuid, timestamptz), public.cancel_appointment(uuid, text),
  public.set_appointment_status(uuid, text), public.accept_appointment(uuid), public.decline_appointment(uuid, text)
  from public, anon;
grant execute on function public.book_appointment(uuid, timestamptz, text, text, uuid),
  public.reschedule_appointment(uuid, timestamptz), public.cancel_appointment(uuid, text),
  public.set_appointment_status(uuid, text), public.accept_appointment(uuid), public.decline_appointment(uuid, text)
  to authenticated, service_role;
grant execute on function public.available_slots(uuid, timestamptz, timestamptz) to anon, authenticated, service_role;
