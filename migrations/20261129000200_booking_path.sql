-- A booking's database cost, second pass (issue 18; bench/booking). Nothing here changes an
-- answer, a row written, an error or its SQLSTATE, or who may see what.
--
-- 1. A patient booking for themselves no longer reads the facts that decide only a booking on
--    someone's behalf: whether the caller holds appointments.book_for_patients, owns the
--    calendar, and whether the patient has chosen this practitioner before. careplane.plan_booking
--    does not consult them for a booking for oneself (rules::scheduling::booking, a property
--    test: a_booking_for_oneself_ignores_the_on_behalf_facts), so they are passed as false. The
--    relationship read was the costly one: an index probe on (patient_id, practitioner_id) whose
--    cost grows with the pair's history (a bitmap scan over every earlier appointment when the
--    statistics say the pair is rare), and it ran on every booking.
-- 2. The busy time read around a slot is now the largest buffer plus the longest slot either
--    side (careplane.busy_window_minutes(), 720; it was a day): nothing further out can conflict.
--    That is in the extension; the SQL that reads it is unchanged.

create or replace function public.book_appointment(
  practitioner_id uuid,
  starts_at timestamptz,
  reason text default null,
  idempotency_key text default null,
  patient_id uuid default null
) returns public.appointments
language plpgsql security definer set search_path = '' set plan_cache_mode = force_generic_plan as $$
declare
  caller uuid := auth.uid();
  patient uuid := coalesce(book_appointment.patient_id, caller);
  on_behalf boolean := patient is distinct from caller;
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
  -- (case, not and: the facts about booking on someone's behalf are read only then)
  plan := private.enforce(careplane.plan_booking(jsonb_build_object(
    'signed_in', caller is not null,
    'on_behalf', on_behalf,
    'may_book_for_patients', case when on_behalf then public.authorize('appointments.book_for_patients') else false end,
    'owns_calendar', case when on_behalf then p.id is not null and access.is_practitioner(p.id) else false end,
    'practitioner_found', p.id is not null,
    'patient_found', exists (select 1 from public.profiles pr where pr.id = patient),
    'patient_is_practitioner', coalesce(p.profile_id = patient, false),
    'relationship', case when on_behalf and p.id is not null and patient is not null
                         then private.has_relationship(patient, p.id) else false end,
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

-- 3. The consultation and its conversation in one statement (the conversation and its members
--    read the rows the statement before inserted; the foreign keys are checked at its end, as
--    before), instead of three statements and a fourth for the practitioner's profile. Still
--    once: a second call inserts no consultation, hence nothing else.
create or replace function private.open_consultation(a public.appointments) returns void
language plpgsql security definer set search_path = '' as $$
begin
  with consultation as (
         insert into public.consultations (appointment_id) values (a.id)
         on conflict (appointment_id) do nothing
         returning id),
       conversation as (
         insert into public.conversations (consultation_id, kind)
         select consultation.id, 'consultation' from consultation
         returning id)
  insert into public.conversation_members (conversation_id, user_id)
  select conversation.id, u
    from conversation,
         unnest(array[a.patient_id, (select p.profile_id from public.practitioners p where p.id = a.practitioner_id)]) u;
end
$$;

-- 4. An appointment's announcements in one statement: the realtime events, the in-app
--    notifications and the email / SMS outbox rows (each profile's email, then its SMS), to the
--    same people as before. An outbox row now names its recipient's profile itself (the profile
--    it was addressed from), so private.outbox_recipient no longer looks it up by address.
create or replace function private.announce_appointment(a public.appointments, what text) returns void
language plpgsql security definer set search_path = '' as $$
declare
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
  with parties as (
         select a.patient_id as patient,
                (select p.profile_id from public.practitioners p where p.id = a.practitioner_id) as practitioner),
       events as (
         insert into private.realtime_events (topic, event, payload)
         select 'user:' || u, 'appointment:updated', payload from parties, unnest(array[parties.patient, parties.practitioner]) u),
       inbox as (
         insert into public.notifications (user_id, kind, title, data)
         select u, 'appointment:updated', title, payload from parties, unnest(array[parties.patient, parties.practitioner]) u)
  insert into private.outbox (channel, recipient, recipient_id, template, payload)
  select c.channel, c.address, pr.id, 'appointment_' || what, payload
    from parties
    join public.profiles pr on pr.id = parties.practitioner or (pr.id = parties.patient and contact_patient)
    cross join lateral (values ('email', pr.email, pr.email_opt_in), ('sms', pr.phone, pr.sms_opt_in)) c (channel, address, opted_in)
   where c.address is not null and c.opted_in;
end
$$;

-- 5. realtime_events carried two indexes led by topic: (topic, id), from the first migration,
--    and (topic, created_at, id), which replay reads by (companion/src/realtime/socket.rs).
--    Nothing reads by (topic, id) — the tailer reads by xid, pruning by created_at — and the
--    second serves any query on topic alone, so the first only cost every event an index insert
--    (two per booking).
drop index private.realtime_events_topic_idx;
