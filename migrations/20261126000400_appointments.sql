-- Appointments (FHIR R4 Appointment statuses) and consultations (one per appointment).
-- Written only by the scheduling RPCs; read by their patient, their practitioner and admins.

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
  unique (patient_id, idempotency_key)
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
