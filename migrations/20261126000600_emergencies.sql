-- Emergency requests and responders. Requests are raised and moved through their statuses by
-- the triage RPCs (triage is computed in the database, never taken from the client).

create table public.responders (
  id uuid primary key references public.profiles (id) on delete cascade,
  call_sign text not null unique check (length(call_sign) between 1 and 50),
  on_duty boolean not null default false,
  last_lat double precision check (last_lat between -90 and 90),
  last_lon double precision check (last_lon between -180 and 180),
  last_seen_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint responder_location_both_or_neither check ((last_lat is null) = (last_lon is null))
);
create trigger touch_updated_at before update on public.responders
  for each row execute function private.touch_updated_at();

create table public.emergency_requests (
  id uuid primary key default gen_random_uuid(),
  requester_id uuid not null references public.profiles (id) on delete restrict,
  lat double precision not null check (lat between -90 and 90),
  lon double precision not null check (lon between -180 and 180),
  description text check (length(description) <= 4000),
  vitals jsonb check (vitals is null or jsonb_typeof(vitals) = 'object'),
  news2 jsonb,
  news2_total smallint check (news2_total between 0 and 20),
  esi_level smallint check (esi_level between 1 and 5),
  triage jsonb,
  status text not null default 'open'
    check (status in ('open', 'assigned', 'en_route', 'on_scene', 'resolved', 'cancelled')),
  assigned_responder_id uuid references public.responders (id) on delete restrict,
  created_at timestamptz not null default now(),
  assigned_at timestamptz,
  resolved_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint assigned_needs_responder check (
    status in ('open', 'cancelled', 'resolved') or assigned_responder_id is not null)
);
create index emergency_requests_open_idx on public.emergency_requests (esi_level, news2_total desc, created_at)
  where status in ('open', 'assigned', 'en_route', 'on_scene');
create index emergency_requests_requester_idx on public.emergency_requests (requester_id, created_at);
create index emergency_requests_responder_idx on public.emergency_requests (assigned_responder_id)
  where assigned_responder_id is not null;
create trigger touch_updated_at before update on public.emergency_requests
  for each row execute function private.touch_updated_at();

-- Profiles a dispatcher needs: requesters of active emergencies, and responders.
create function access.is_dispatch_contact(person uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select public.authorize('emergencies.read_open') and (
    exists (select 1 from public.emergency_requests e
             where e.requester_id = person and e.status in ('open', 'assigned', 'en_route', 'on_scene'))
    or exists (select 1 from public.responders r where r.id = person))
$$;

-- Profiles a responder needs: requesters of the active emergencies assigned to them.
create function access.is_assigned_requester(person uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (select 1 from public.emergency_requests e
                  where e.requester_id = person and e.assigned_responder_id = auth.uid()
                    and e.status in ('assigned', 'en_route', 'on_scene'))
$$;

revoke all on public.responders, public.emergency_requests from anon, authenticated, service_role;
grant select on public.responders, public.emergency_requests to authenticated, service_role;
grant update (on_duty, last_lat, last_lon, last_seen_at) on public.responders to authenticated;

alter table public.responders enable row level security;
alter table public.emergency_requests enable row level security;

create policy "dispatchers read responders" on public.responders
  for select to authenticated using ((select public.authorize('responders.read_all')));
create policy "responders read own record" on public.responders
  for select to authenticated using (id = (select auth.uid()));
create policy "responders update own duty and location" on public.responders
  for update to authenticated using (id = (select auth.uid())) with check (id = (select auth.uid()));

create policy "requesters read own emergencies" on public.emergency_requests
  for select to authenticated using (requester_id = (select auth.uid()));
create policy "dispatchers read active emergencies" on public.emergency_requests
  for select to authenticated using (
    (select public.authorize('emergencies.read_open')) and status in ('open', 'assigned', 'en_route', 'on_scene'));
create policy "responders read assigned emergencies" on public.emergency_requests
  for select to authenticated using (assigned_responder_id = (select auth.uid()));
create policy "admins read all emergencies" on public.emergency_requests
  for select to authenticated using ((select public.authorize('emergencies.read_all')));

create policy "dispatchers read emergency contacts" on public.profiles
  for select to authenticated using (access.is_dispatch_contact(id));
create policy "responders read assigned requesters" on public.profiles
  for select to authenticated using (access.is_assigned_requester(id));

create trigger audit after insert or update or delete on public.responders
  for each row execute function private.audit();
create trigger audit after insert or update or delete on public.emergency_requests
  for each row execute function private.audit();
