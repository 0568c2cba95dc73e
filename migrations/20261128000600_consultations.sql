-- The consultation's life: waiting room, admission, the call, its end, no-shows and the
-- clinician's summary. The rules (who may make which move, when) are the extension's
-- (careplane.consultation_move, careplane_rules::scheduling::consultation); these RPCs lock,
-- read, ask, write and announce. docs/consultations.md.

-- How long the call lasted, once it ended.
alter table public.consultations
  add column duration_seconds integer generated always as (extract(epoch from ended_at - started_at)::integer) stored;

-- A named timing setting (careplane_rules::scheduling::consultation::SETTINGS): the custom
-- setting careplane.<name> when set, else the rule's default; 22023 naming careplane.<name>
-- when out of bounds.
create function private.consultation_setting(name text) returns bigint
language sql stable set search_path = '' as $$
  select careplane.consultation_setting(name, current_setting('careplane.' || name, true))
$$;

-- The caller's part in the consultation of appointment `a`: 'patient', 'clinician' (the
-- practitioner, holding their role now), or null for anyone else — admins included: they read
-- consultations, they do not take part in calls. It is private.appointment_actor's answer,
-- named for the call, without the admin.
create function private.consultation_party(a public.appointments) returns text
language sql stable security definer set search_path = '' as $$
  select case private.appointment_actor(a)
    when 'practitioner' then 'clinician'
    when 'patient' then 'patient'
  end
$$;

-- Who may read the consultation's events: its two participants (used by the realtime relay's
-- topic check as well).
create function access.is_consultation_participant(consultation uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select private.consultation_party(a) is not null
    from public.consultations c
    join public.appointments a on a.id = c.appointment_id
   where c.id = consultation
$$;

-- Tells both participants (and the consultation's topic) where the consultation is now.
create function private.announce_consultation(c public.consultations, a public.appointments, move text) returns void
language plpgsql security definer set search_path = '' as $$
declare
  clinician uuid := (select p.profile_id from public.practitioners p where p.id = a.practitioner_id);
  payload jsonb := jsonb_build_object('consultation_id', c.id, 'appointment_id', a.id, 'status', c.status,
                                      'appointment_status', a.status, 'move', move,
                                      'started_at', c.started_at, 'ended_at', c.ended_at);
begin
  insert into private.realtime_events (topic, event, payload)
  select t, 'consultation:updated', payload
    from unnest(array['consultation:' || c.id, 'user:' || a.patient_id, 'user:' || clinician]) t;
  -- The appointment moved with it: its own event for those watching appointments.
  insert into private.realtime_events (topic, event, payload)
  select 'user:' || u, 'appointment:updated',
         jsonb_build_object('appointment_id', a.id, 'practitioner_id', a.practitioner_id, 'status', a.status,
                            'change', a.status, 'starts_at', lower(a.period), 'ends_at', upper(a.period))
    from unnest(array[a.patient_id, clinician]) u
   where move in ('join', 'admit', 'end', 'auto_end', 'no_show');
  -- In-app notices where the other side has to act.
  if move = 'join' then
    insert into public.notifications (user_id, kind, title, data)
    values (clinician, 'consultation:waiting', 'Your patient is in the waiting room', payload);
  elsif move = 'admit' then
    insert into public.notifications (user_id, kind, title, data)
    values (a.patient_id, 'consultation:ready', 'Your clinician is ready', payload);
  end if;
end
$$;

-- Makes one move on a consultation, as `party` ('patient' / 'clinician' from the caller, or
-- 'system' for the sweep), and returns the consultation. Locks in booking's order:
-- practitioner, appointment, consultation.
create function private.move_consultation(consultation_id uuid, move text, party text) returns public.consultations
language plpgsql security definer set search_path = '' as $$
declare
  c public.consultations;
  a public.appointments;
  verdict jsonb;
begin
  perform 1 from public.practitioners p
   where p.id = (select a2.practitioner_id from public.consultations c2
                   join public.appointments a2 on a2.id = c2.appointment_id
                  where c2.id = consultation_id)
     for update;
  select * into a from public.appointments a3
   where a3.id = (select c3.appointment_id from public.consultations c3 where c3.id = consultation_id)
     for update;
  select * into c from public.consultations c4 where c4.id = consultation_id for update;
  if party is null then
    party := private.consultation_party(a);
  end if;
  if c.id is null or party is null then
    raise exception 'no consultation %', consultation_id using errcode = 'PT404',
      detail = '{"code": "consultation_not_found"}',
      hint = 'Only the patient and the clinician of a consultation can act on it.';
  end if;
  verdict := private.enforce(careplane.consultation_move(jsonb_build_object(
    'move', move, 'party', party, 'status', c.status, 'appointment_status', a.status,
    'starts_at', lower(a.period), 'ends_at', upper(a.period), 'now', now(),
    'timing', jsonb_build_object(
      'waiting_room_opens_minutes', private.consultation_setting('waiting_room_opens_minutes'),
      'no_show_grace_minutes', private.consultation_setting('no_show_grace_minutes'),
      'auto_end_after_minutes', private.consultation_setting('auto_end_after_minutes')))));
  if not (verdict ->> 'changed')::boolean then
    return c;
  end if;
  if verdict ? 'appointment_to' then
    update public.appointments ap set status = verdict ->> 'appointment_to' where ap.id = a.id returning * into a;
  end if;
  update public.consultations co
     set status = verdict ->> 'to',
         started_at = case when (verdict ->> 'starts')::boolean then now() else co.started_at end,
         ended_at = case when (verdict ->> 'ends')::boolean then greatest(now(), co.started_at) else co.ended_at end
   where co.id = c.id
  returning * into c;
  perform private.announce_consultation(c, a, move);
  return c;
end
$$;

-- The patient enters the waiting room (from careplane.waiting_room_opens_minutes before the
-- start until the slot ends). Calling it again while waiting or in the call changes nothing.
create function public.join_consultation(consultation_id uuid) returns public.consultations
language sql security definer set search_path = '' as $$
  select private.move_consultation(consultation_id, 'join', null)
$$;

-- The clinician admits the waiting patient: the call starts.
create function public.admit_patient(consultation_id uuid) returns public.consultations
language sql security definer set search_path = '' as $$
  select private.move_consultation(consultation_id, 'admit', null)
$$;

-- Either participant ends the call; the appointment is fulfilled.
create function public.end_consultation(consultation_id uuid) returns public.consultations
language sql security definer set search_path = '' as $$
  select private.move_consultation(consultation_id, 'end', null)
$$;

-- The clinician records that the patient never joined (from careplane.no_show_grace_minutes
-- after the start); the appointment is noshow.
create function public.mark_no_show(consultation_id uuid) returns public.consultations
language sql security definer set search_path = '' as $$
  select private.move_consultation(consultation_id, 'no_show', null)
$$;

-- The clinician's summary, once the consultation has started (during the call or after).
create function public.write_consultation_summary(consultation_id uuid, summary text) returns public.consultations
language plpgsql security definer set search_path = '' as $$
declare
  c public.consultations;
begin
  if summary is null or length(btrim(summary)) = 0 or length(summary) > 20000 then
    raise exception 'a summary of 1 to 20000 characters is required' using errcode = '22023',
      detail = '{"code": "invalid_parameter", "field": "summary"}';
  end if;
  c := private.move_consultation(consultation_id, 'write_summary', null);
  update public.consultations co set summary = btrim(write_consultation_summary.summary)
   where co.id = c.id returning * into c;
  insert into private.realtime_events (topic, event, payload)
  values ('consultation:' || c.id, 'consultation:updated',
          jsonb_build_object('consultation_id', c.id, 'status', c.status, 'move', 'write_summary'));
  return c;
end
$$;

-- The sweep: ends calls still running careplane.auto_end_after_minutes after their slot, as
-- the system, and returns how many it ended. Each is locked in the RPCs' order by
-- move_consultation; a call another sweep (or a participant) ended meanwhile is a no-op there,
-- so any number of companions may run it at once.
create function private.end_overdue_consultations() returns integer
language plpgsql security definer set search_path = '' as $$
declare
  overdue uuid;
  ended integer := 0;
begin
  for overdue in
    select c.id
      from public.consultations c
      join public.appointments a on a.id = c.appointment_id
     where c.status = 'in_progress'
       and upper(a.period) + make_interval(mins => private.consultation_setting('auto_end_after_minutes')::int) <= now()
     order by upper(a.period)
     limit 500
  loop
    if (private.move_consultation(overdue, 'auto_end', 'system')).ended_at = now() then
      ended := ended + 1;
    end if;
  end loop;
  return ended;
end
$$;

create index consultations_in_progress_idx on public.consultations (appointment_id) where status = 'in_progress';

revoke all on function private.consultation_setting(text), private.consultation_party(public.appointments),
  private.announce_consultation(public.consultations, public.appointments, text),
  private.move_consultation(uuid, text, text), private.end_overdue_consultations()
  from public, anon, authenticated, service_role;
grant execute on function private.end_overdue_consultations() to service_role;
revoke all on function access.is_consultation_participant(uuid) from public, anon;
grant execute on function access.is_consultation_participant(uuid) to authenticated, service_role;
revoke all on function public.join_consultation(uuid), public.admit_patient(uuid), public.end_consultation(uuid),
  public.mark_no_show(uuid), public.write_consultation_summary(uuid, text)
  from public, anon;
grant execute on function public.join_consultation(uuid), public.admit_patient(uuid), public.end_consultation(uuid),
  public.mark_no_show(uuid), public.write_consultation_summary(uuid, text)
  to authenticated, service_role;

-- May the caller signal on the consultation's call (and get TURN credentials)? One of its two
-- participants, while the call is open (careplane.consultation_call_is_open: waiting or in
-- progress). The realtime relay's join and send checks and the companion's ice-servers
-- endpoint ask this.
create function access.may_use_consultation_call(consultation uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select coalesce((
    select careplane.consultation_call_is_open(c.status) and private.consultation_party(a) is not null
      from public.consultations c
      join public.appointments a on a.id = c.appointment_id
     where c.id = consultation), false)
$$;
revoke all on function access.may_use_consultation_call(uuid) from public, anon;
grant execute on function access.may_use_consultation_call(uuid) to authenticated, service_role;

-- Chat: a new message and a read receipt are announced on the conversation's topic, in the
-- sender's transaction (ids only; members read the message itself through PostgREST, under
-- its row-level security). Typing indicators are client broadcasts on the same topic and are
-- never stored.
create function private.announce_message() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if tg_table_name = 'messages' then
    insert into private.realtime_events (topic, event, payload)
    values ('conversation:' || new.conversation_id, 'message:new',
            jsonb_build_object('message_id', new.id, 'conversation_id', new.conversation_id,
                               'sender_id', new.sender_id, 'created_at', new.created_at));
  else
    insert into private.realtime_events (topic, event, payload)
    select 'conversation:' || m.conversation_id, 'message:read',
           jsonb_build_object('message_id', new.message_id, 'conversation_id', m.conversation_id,
                              'user_id', new.user_id, 'read_at', new.read_at)
      from public.messages m where m.id = new.message_id;
  end if;
  return null;
end
$$;
create trigger announce_message after insert on public.messages
  for each row execute function private.announce_message();
create trigger announce_message_read after insert on public.message_reads
  for each row execute function private.announce_message();
revoke all on function private.announce_message() from public, anon, authenticated, service_role;

