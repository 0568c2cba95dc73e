-- Performance (issue 18): queries that did not scale, found by the benchmarks in bench/.

-- Busy time of a practitioner (or, with by_patient, a patient). The first version filtered on
-- `case when by_patient then patient_id else practitioner_id end = owner_id`, which no index
-- can serve: every booking, move and slot listing read the whole appointments table
-- (bench/booking: 6 of a booking's 25 ms with a few thousand appointments stored, growing with
-- the table). Written as two branches, only one of which runs (`by_patient` is a one-time filter),
-- each matches the partial GiST index of its exclusion constraint
-- (appointments_practitioner_time_free / appointments_patient_time_free: the owner with =,
-- the period with &&, active statuses only), so the read is bounded by the span.
create or replace function private.busy_json(owner_id uuid, by_patient boolean, span tstzrange, except_id uuid) returns jsonb
language sql stable security definer set search_path = '' as $$
  select coalesce(jsonb_agg(jsonb_build_object('start', lower(b.period), 'end', upper(b.period)) order by lower(b.period)), '[]'::jsonb)
    from (select a.period
            from public.appointments a
           where not by_patient
             and a.practitioner_id = owner_id
             and careplane.is_active_appointment_status(a.status)
             and a.period && span
             and a.id is distinct from except_id
          union all
          select a.period
            from public.appointments a
           where by_patient
             and a.patient_id = owner_id
             and careplane.is_active_appointment_status(a.status)
             and a.period && span
             and a.id is distinct from except_id) b
$$;
