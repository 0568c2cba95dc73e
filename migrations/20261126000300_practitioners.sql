-- Practitioners (doctors and nurses), their weekly availability and date exceptions. The
-- scheduling rules that read these live in the extension; this is the data and who sees it.
-- The directory and availability are public (anon may read them); nothing personal is here.

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
grant update (display_name, specialty, bio, consultation_fee_minor, currency, slot_minutes, buffer_before_minutes,
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
