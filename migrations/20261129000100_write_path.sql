-- The write path's database cost (issue 18): a booking and a ledger transfer, measured by
-- bench/booking and bench/ledger against a raw INSERT. Nothing here changes an answer, a row
-- written, an error or its SQLSTATE, or who may see what; each function keeps its name,
-- arguments, result, volatility, security and grants (create or replace keeps them).
--
-- 1. Helpers written in LANGUAGE sql are planned again on every call in PostgreSQL 15: a SQL
--    function with `set search_path` (all of ours) or `security definer` is never inlined, and
--    its plan lives only as long as the calling expression's executor state — one statement at
--    most, so each call from an RPC or a trigger plans its query anew (PostgreSQL 18 added a
--    plan cache for them). The same body in PL/pgSQL keeps its plan for the session, and an
--    expression without a sub-query (`return r = any (access.effective_roles())`) does not go
--    through the executor at all. The helpers a booking, a move, a transfer and the policies
--    of the common reads call are rewritten so, each returning exactly what its query did: a
--    scalar sub-query where the function returned its single row (at most one row: each reads
--    by a primary or unique key, or aggregates).

-- Identity ---------------------------------------------------------------------------------------

-- The token is read once per call instead of three times (each auth.jwt() parses the claims).
create or replace function access.claimed_roles() returns text[]
language plpgsql stable set search_path = '' as $$
declare
  claims jsonb := auth.jwt();
begin
  if jsonb_typeof(claims -> 'user_roles') = 'array' then
    return array(select jsonb_array_elements_text(claims -> 'user_roles'));
  end if;
  return case when claims ->> 'user_role' is not null then array[claims ->> 'user_role'] else '{}'::text[] end;
end
$$;

-- The claimed roles are asked once per call ((select …): an initPlan, run when the first of
-- the caller's user_roles rows needs it), not once per row and once more by the planner.
create or replace function access.effective_roles() returns public.app_role[]
language plpgsql stable security definer set search_path = '' as $$
begin
  return coalesce(array(
    select ur.role from public.user_roles ur
     where coalesce(auth.role(), '') = 'authenticated'
       and ur.user_id = auth.uid()
       and ur.role::text = any ((select access.claimed_roles())::text[])
     order by ur.role), '{}');
end
$$;

create or replace function public.authorize(requested_permission public.app_permission) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1 from public.role_permissions rp
     where rp.permission = requested_permission
       and rp.role = any ((select access.effective_roles())::public.app_role[]));
end
$$;

create or replace function access.has_role(r public.app_role) returns boolean
language plpgsql stable set search_path = '' as $$
begin
  return r = any (access.effective_roles());
end
$$;

-- Practitioners, conversations, ledger accounts (the set-based helpers of the policies) ----------

create or replace function access.my_practitioner_ids() returns uuid[]
language plpgsql stable security definer set search_path = '' as $$
begin
  return coalesce(array(
    select p.id from public.practitioners p
     where p.profile_id = auth.uid()
       and p.active
       and access.has_role(p.kind::public.app_role)), '{}');
end
$$;

create or replace function access.is_practitioner(practitioner uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return practitioner = any (access.my_practitioner_ids());
end
$$;

create or replace function access.my_conversation_ids() returns uuid[]
language plpgsql stable security definer set search_path = '' as $$
begin
  return coalesce(array(
    select m.conversation_id
      from public.conversation_members m
      join public.conversations c on c.id = m.conversation_id
      left join public.consultations co on co.id = c.consultation_id
      left join public.appointments a on a.id = co.appointment_id
      left join public.practitioners p on p.id = a.practitioner_id
     where m.user_id = auth.uid()
       and (p.profile_id is distinct from m.user_id or p.id = any ((select access.my_practitioner_ids())::uuid[]))), '{}');
end
$$;

create or replace function access.my_ledger_account_ids() returns uuid[]
language plpgsql stable security definer set search_path = '' as $$
begin
  return coalesce(array(select a.id from public.ledger_accounts a where a.owner_id = auth.uid()), '{}');
end
$$;

create or replace function access.is_conversation_member(conversation uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1
      from public.conversation_members m
      join public.conversations c on c.id = m.conversation_id
      left join public.consultations co on co.id = c.consultation_id
      left join public.appointments a on a.id = co.appointment_id
      left join public.practitioners p on p.id = a.practitioner_id
     where m.conversation_id = conversation
       and m.user_id = auth.uid()
       and (p.profile_id is distinct from m.user_id or access.is_practitioner(p.id)));
end
$$;

create or replace function access.can_read_message(message uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1 from public.messages msg
     where msg.id = message and access.is_conversation_member(msg.conversation_id));
end
$$;

create or replace function access.owns_ledger_account(account uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (select 1 from public.ledger_accounts a where a.id = account and a.owner_id = auth.uid());
end
$$;

create or replace function access.transfer_touches_own_account(transfer uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (select 1 from public.ledger_entries e
                   join public.ledger_accounts a on a.id = e.account_id
                  where e.transfer_id = transfer and a.owner_id = auth.uid());
end
$$;

-- Appointments and consultations ----------------------------------------------------------------

create or replace function access.is_care_team_of(patient uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1
      from public.appointments a
     where a.patient_id = patient
       and careplane.is_care_team_appointment_status(a.status)
       and access.is_practitioner(a.practitioner_id));
end
$$;

create or replace function access.is_appointment_party(appointment uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1
      from public.appointments a
     where a.id = appointment
       and (a.patient_id = auth.uid() or access.is_practitioner(a.practitioner_id)));
end
$$;

create or replace function private.appointment_actor(a public.appointments) returns text
language plpgsql stable security definer set search_path = '' as $$
begin
  return case
    when a.id is null then null
    when access.is_practitioner(a.practitioner_id) then 'practitioner'
    when a.patient_id = auth.uid() then 'patient'
    when public.authorize('appointments.book_for_patients') then 'admin'
  end;
end
$$;

create or replace function private.check_move(a public.appointments, action text, to_status text default null) returns jsonb
language plpgsql volatile set search_path = '' as $$
begin
  return private.enforce(careplane.appointment_transition(jsonb_strip_nulls(jsonb_build_object(
    'action', action, 'from', a.status, 'to', to_status, 'actor', private.appointment_actor(a),
    'starts_at', lower(a.period), 'now', now(),
    'cancel_notice_minutes', (select p.min_notice_minutes from public.practitioners p where p.id = a.practitioner_id)))));
end
$$;

create or replace function private.consultation_setting(name text) returns bigint
language plpgsql stable set search_path = '' as $$
begin
  return careplane.consultation_setting(name, current_setting('careplane.' || name, true));
end
$$;

create or replace function private.consultation_party(a public.appointments) returns text
language plpgsql stable security definer set search_path = '' as $$
begin
  return case private.appointment_actor(a)
    when 'practitioner' then 'clinician'
    when 'patient' then 'patient'
  end;
end
$$;

create or replace function access.is_consultation_participant(consultation uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return (
    select private.consultation_party(a) is not null
      from public.consultations c
      join public.appointments a on a.id = c.appointment_id
     where c.id = consultation);
end
$$;

create or replace function access.may_use_consultation_call(consultation uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return coalesce((
    select careplane.consultation_call_is_open(c.status) and private.consultation_party(a) is not null
      from public.consultations c
      join public.appointments a on a.id = c.appointment_id
     where c.id = consultation), false);
end
$$;

-- Booking ----------------------------------------------------------------------------------------

create or replace function private.schedule_json(p public.practitioners) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return jsonb_build_object(
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
        from public.availability_exceptions e where e.practitioner_id = p.id), '[]'::jsonb));
end
$$;

create or replace function private.busy_span(from_ts timestamptz, to_ts timestamptz) returns tstzrange
language plpgsql stable set search_path = '' as $$
begin
  return tstzrange(least(from_ts, to_ts) - make_interval(mins => careplane.busy_window_minutes()),
                   greatest(from_ts, to_ts) + make_interval(mins => careplane.busy_window_minutes()));
end
$$;

-- Busy time, as before through the exclusion constraints' GiST indexes (one branch runs), built
-- as one array of {start, end} records turned into jsonb at once instead of one jsonb object
-- per appointment folded in by jsonb_agg: the same document (keys "start" and "end", ordered by
-- start), about a quarter less CPU with the 96 appointments a booking of bench/booking reads.
-- The query is kept whole between `return (` and `);` so that 70_performance can plan it alone.
create or replace function private.busy_json(owner_id uuid, by_patient boolean, span tstzrange, except_id uuid) returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return (
  select coalesce(to_jsonb(array_agg(b order by b.start)), '[]'::jsonb)
    from (select lower(a.period) as start, upper(a.period) as "end"
            from public.appointments a
           where not by_patient
             and a.practitioner_id = owner_id
             and careplane.is_active_appointment_status(a.status)
             and a.period && span
             and a.id is distinct from except_id
          union all
          select lower(a.period) as start, upper(a.period) as "end"
            from public.appointments a
           where by_patient
             and a.patient_id = owner_id
             and careplane.is_active_appointment_status(a.status)
             and a.period && span
             and a.id is distinct from except_id) b
  );
end
$$;

create or replace function private.conflicts(p public.practitioners, patient uuid, slot tstzrange, except_id uuid, status text)
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
begin
  return careplane.booking_conflicts(jsonb_build_object(
    'schedule', private.schedule_json(p),
    'status', status,
    'practitioner_busy', private.busy_json(p.id, false, private.busy_span(lower(slot), upper(slot)), except_id),
    'patient_busy', private.busy_json(patient, true, private.busy_span(lower(slot), upper(slot)), except_id),
    'now', now(),
    'start', lower(slot),
    'end', upper(slot)));
end
$$;

create or replace function private.exclusion_verdict(violated text) returns jsonb
language plpgsql stable set search_path = '' as $$
begin
  return careplane.conflict_verdict(array[case when violated = 'appointments_patient_time_free'
                                                then 'patient_busy' else 'practitioner_busy' end]);
end
$$;

create or replace function private.has_relationship(patient uuid, practitioner uuid) returns boolean
language plpgsql stable security definer set search_path = '' as $$
begin
  return exists (
    select 1 from public.appointments a
     where a.patient_id = patient and a.practitioner_id = practitioner
       and careplane.establishes_relationship(a.status, a.patient_participation));
end
$$;

-- 2. The triggers every write fires ---------------------------------------------------------------

-- The audit row in one statement: the changed columns of an insert (those not null) are
-- computed inside the insert (a second statement cost more than the computation), and read as
-- the keys of jsonb_strip_nulls(row) — the same set as the keys whose value is not JSON null
-- (a SQL null becomes JSON null in to_jsonb), in the same order (by key, default collation).
-- What is recorded is unchanged: who, as which role, the action, the table, the row's key and
-- the changed column names; an update that changes nothing records nothing.
create or replace function private.audit() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  claims jsonb := auth.jwt();
  old_row jsonb := case when tg_op <> 'INSERT' then to_jsonb(old) end;
  new_row jsonb := case when tg_op <> 'DELETE' then to_jsonb(new) end;
  changed text[] := '{}';
begin
  if tg_op = 'UPDATE' then
    changed := array(select n.key from jsonb_each(new_row) n where n.value is distinct from old_row -> n.key order by n.key);
    if changed = '{}' then
      return null;  -- nothing changed: nothing to record
    end if;
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
    case when tg_op = 'INSERT' then array(select k from jsonb_object_keys(jsonb_strip_nulls(new_row)) k order by k)
         else changed end
  );
  return null;
end
$$;

-- A captured change in one statement, its column list read inside the insert: each column's
-- type name by the pg_type primary key (a sub-query per column) instead of a hash join over
-- the whole of pg_type, which cost most of the trigger. The same list: every live column in
-- attnum order, {name, type} with the type's name.
create or replace function private.capture_change() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  insert into private.realtime_changes (schema_name, table_name, op, pk, record, old_record, columns)
  values (
    tg_table_schema, tg_table_name, tg_op,
    jsonb_build_object('id', case when tg_op = 'DELETE' then old.id else new.id end),
    case when tg_op <> 'DELETE' then to_jsonb(new) end,
    case when tg_op = 'DELETE' then jsonb_build_object('id', old.id) end,
    (select coalesce(jsonb_agg(jsonb_build_object('name', a.attname,
                                                  'type', (select t.typname from pg_catalog.pg_type t where t.oid = a.atttypid))
                               order by a.attnum), '[]')
       from pg_catalog.pg_attribute a
      where a.attrelid = tg_relid and a.attnum > 0 and not a.attisdropped));
  return null;
end
$$;

-- The recipient's profile by the index of the channel's address (profiles_email_lower_idx,
-- profiles_phone_idx), one query per channel: the single query with `case new.channel …` has no
-- generic plan that can use either index, so it was planned anew for every outbox row (or, on a
-- small table, read every profile). The same profile: the oldest with that address.
create or replace function private.outbox_recipient() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.recipient_id is null then
    if new.channel = 'email' then
      select p.id into new.recipient_id
        from public.profiles p
       where lower(p.email) = lower(new.recipient) and p.email is not null
       order by p.created_at
       limit 1;
    else
      select p.id into new.recipient_id
        from public.profiles p
       where p.phone = new.recipient and p.phone is not null
       order by p.created_at
       limit 1;
    end if;
  end if;
  return new;
end
$$;

-- 3. Plans that were made again on every call --------------------------------------------------
-- PL/pgSQL caches a statement's plan, but the plan cache still plans each execution for its
-- parameters (a custom plan) whenever that looks cheaper than the generic plan — which it always
-- does for `id = any (<array of 2>)` or a query over a jsonb argument, whose generic plan is
-- costed for an unknown number of elements. ledger_execute's account reads and balance update
-- were planned anew on every transfer that way (seen with auto_explain: the 12th call in a
-- session still had the account ids as constants), and so were statements a booking runs. Every
-- statement these two run reads or writes by key, and the generic plans are the same plans; the
-- busy-time query's generic plan is the one 70_performance checks. Measured, backend CPU per
-- operation, interleaved: a transfer 1234 -> 1032 us, a booking 3316 -> 3194 us (load ~4).
alter function private.ledger_execute(jsonb) set plan_cache_mode = force_generic_plan;
alter function public.book_appointment(uuid, timestamptz, text, text, uuid) set plan_cache_mode = force_generic_plan;
