-- Booking: availability and conflicts are decided by the extension's scheduling rules; the
-- schema's exclusion constraints are the last line of defence against double booking.

create extension if not exists btree_gist with schema extensions;

-- Time held by active appointments (same list as careplane_rules::scheduling::ACTIVE_STATUSES).
alter table public.appointments
  add constraint appointments_practitioner_time_free exclude using gist (practitioner_id with =, period with &&)
    where (status in ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled')),
  add constraint appointments_patient_time_free exclude using gist (patient_id with =, period with &&)
    where (status in ('pending', 'booked', 'arrived', 'checked-in', 'fulfilled'));

-- Slot starts are aligned to this many minutes past local midnight (default: the slot length).
alter table public.practitioners
  add column slot_alignment_minutes int check (slot_alignment_minutes between 5 and 240);
grant update (slot_alignment_minutes) on public.practitioners to authenticated;

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
