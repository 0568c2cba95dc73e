-- Emergencies and dispatch: responders, emergency requests, and the RPCs that raise a request,
-- queue it, let dispatchers claim and route it, and move it through its life cycle.
--
-- Every decision is the extension's (careplane_rules::triage and ::dispatch; the contracts are
-- in docs/triage.md): the status lists (careplane.emergency_statuses() and friends, which the
-- constraints and queries call), the life cycle, triage (careplane.assess), the queue priority,
-- claims and their lapse, assignment, release, the flooding limits and paging. Refusals are
-- verdicts raised by private.enforce. The named settings (claim_lapse_minutes, …) have their
-- defaults in the rules; `alter database … set careplane.<name> = …` overrides one.

create table public.responders (
  id uuid primary key references public.profiles (id) on delete cascade,
  call_sign text not null unique check (length(call_sign) between 1 and 50),
  -- Standing as a responder: revoking the responder role sets it false (revoke_role), and then
  -- nothing a responder may do works for this person, whatever their token says.
  active boolean not null default true,
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
  -- What the requester reported (vitals, findings: raise_emergency's arguments), and what staff
  -- (a dispatcher or the assigned responder) assessed (assessed_*), each in the normal form
  -- careplane.assess read it (at most 4096 bytes each).
  -- Triage uses the assessed part where there is one, the reported part otherwise; triage ->
  -- 'sources' says which.
  vitals jsonb check (jsonb_typeof(vitals) = 'object'),
  findings jsonb check (jsonb_typeof(findings) = 'object'),
  assessed_vitals jsonb check (jsonb_typeof(assessed_vitals) = 'object'),
  assessed_findings jsonb check (jsonb_typeof(assessed_findings) = 'object'),
  assessed_by uuid references public.profiles (id) on delete set null,
  assessed_at timestamptz,
  -- Triage (careplane.assess): NEWS2, ESI, the queue priority, the sources, the age used.
  news2 jsonb,
  news2_total smallint check (news2_total between 0 and 20),
  esi_level smallint check (esi_level between 1 and 5),
  -- The dispatch queue's order (careplane_rules::triage::queue_priority), lower first; null
  -- (untriaged) last.
  priority smallint,
  triage jsonb,
  status text not null default 'open' check (status = any (careplane.emergency_statuses())),
  assigned_responder_id uuid references public.responders (id) on delete restrict,
  claimed_by uuid references public.profiles (id) on delete set null,
  claimed_at timestamptz,
  -- When this request paged the on-call dispatchers (at most one page per burst).
  paged_at timestamptz,
  -- A dispatcher's mark: the request was abuse (it is cancelled; the audit log keeps who and when).
  abuse_marked_by uuid references public.profiles (id) on delete set null,
  abuse_marked_at timestamptz,
  abuse_note text,
  created_at timestamptz not null default now(),
  assigned_at timestamptz,
  resolved_at timestamptz,
  updated_at timestamptz not null default now(),
  constraint assigned_needs_responder check (
    not (status = any (careplane.emergency_responder_statuses())) or assigned_responder_id is not null),
  -- A claimant or assessor has a time (the person may later be deleted: the time stays).
  constraint claim_has_time check (claimed_by is null or claimed_at is not null),
  constraint assessment_has_time check ((assessed_vitals is null and assessed_findings is null) or assessed_at is not null),
  constraint abuse_mark_has_time check (abuse_marked_by is null or abuse_marked_at is not null)
);
-- The dispatch queue: open requests by priority, then waiting time. Written once, in
-- private.emergency_queue below, and served by this index (tested with EXPLAIN).
create index emergency_requests_queue_idx on public.emergency_requests (priority, created_at) where status = 'open';

-- The flooding limits count a requester's requests; paging looks up the last page.
create index emergency_requests_requester_idx on public.emergency_requests (requester_id, created_at);
create index emergency_requests_responder_idx on public.emergency_requests (assigned_responder_id)
  where assigned_responder_id is not null;
create trigger touch_updated_at before update on public.emergency_requests
  for each row execute function private.touch_updated_at();

-- Is the caller a responder now: the permission (public.authorize, which checks the current
-- grant) and an active responder record. Every responder power goes through this.
create function access.is_active_responder() returns boolean
language sql stable security definer set search_path = '' as $$
  select public.authorize('emergencies.respond')
     and exists (select 1 from public.responders r where r.id = auth.uid() and r.active)
$$;

-- May this person be assigned emergencies now: an active responder record and a current grant
-- of a role with emergencies.respond (read from user_roles, not from anyone's token).
create function access.is_assignable_responder(person uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (select 1 from public.responders r where r.id = person and r.active)
     and exists (select 1 from public.user_roles ur join public.role_permissions rp on rp.role = ur.role
                  where ur.user_id = person and rp.permission = 'emergencies.respond')
$$;

-- Profiles a dispatcher needs: requesters of active emergencies, and responders.
create function access.is_dispatch_contact(person uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select public.authorize('emergencies.read_open') and (
    exists (select 1 from public.emergency_requests e
             where e.requester_id = person and e.status = any (careplane.emergency_active_statuses()))
    or exists (select 1 from public.responders r where r.id = person))
$$;

-- Profiles a responder needs: requesters of the active emergencies assigned to them.
create function access.is_assigned_requester(person uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select access.is_active_responder() and exists (select 1 from public.emergency_requests e
                  where e.requester_id = person and e.assigned_responder_id = auth.uid()
                    and e.status = any (careplane.emergency_responder_statuses()))
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
  for update to authenticated using (id = (select auth.uid()) and (select access.is_active_responder()))
  with check (id = (select auth.uid()));

create policy "requesters read own emergencies" on public.emergency_requests
  for select to authenticated using (requester_id = (select auth.uid()));
create policy "dispatchers read active emergencies" on public.emergency_requests
  for select to authenticated using (
    (select public.authorize('emergencies.read_open')) and status = any (careplane.emergency_active_statuses()));
create policy "responders read assigned emergencies" on public.emergency_requests
  for select to authenticated using (assigned_responder_id = (select auth.uid()) and (select access.is_active_responder()));
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

-- The dispatch queue's one definition: open requests, most urgent first (priority from the
-- triage rule, then waiting time), in the order of emergency_requests_queue_idx.
create view private.emergency_queue as
  select e.* from public.emergency_requests e
   where e.status = 'open'
   order by e.priority, e.created_at;

-- Whether a responder is on an active emergency (other than `except_request`).
create function private.responder_is_busy(responder uuid, except_request uuid) returns boolean
language sql stable set search_path = '' as $$
  select exists (select 1 from public.emergency_requests e
                  where e.assigned_responder_id = responder and e.id is distinct from except_request
                    and e.status = any (careplane.emergency_responder_statuses()))
$$;

-- Who the caller is to a request, for the life-cycle rules: 'dispatcher', 'assigned_responder'
-- (only while an active responder), 'requester', or null (the request is not theirs to see).
create function private.emergency_actor(req public.emergency_requests) returns text
language sql stable set search_path = '' as $$
  select case
    when req.id is null then null
    when public.authorize('emergencies.dispatch') then 'dispatcher'
    when req.assigned_responder_id = auth.uid() and access.is_active_responder() then 'assigned_responder'
    when req.requester_id = auth.uid() then 'requester'
  end
$$;

-- The request, locked for the rest of the transaction, or PT404.
create function private.locked_emergency(request_id uuid) returns public.emergency_requests
language plpgsql volatile set search_path = '' as $$
declare
  req public.emergency_requests;
begin
  select * into req from public.emergency_requests e where e.id = request_id for update;
  if req.id is null then
    raise exception 'no emergency request %', request_id using errcode = 'PT404', detail = '{"code": "emergency_not_found"}';
  end if;
  return req;
end
$$;

-- A named setting (careplane_rules::dispatch::SETTINGS): the custom setting careplane.<name>
-- when set, else the rule's default; 22023 naming careplane.<name> when it is out of bounds.
create function private.dispatch_setting(name text) returns bigint
language sql stable set search_path = '' as $$
  select careplane.dispatch_setting(name, current_setting('careplane.' || name, true))
$$;

-- RPCs -------------------------------------------------------------------------------------------
-- Refusals that are not a rule's (no sign-in, no permission, not found, a malformed argument)
-- are raised here, each with a machine-readable detail code like the verdicts'.

-- Raises an emergency for the caller. The caller reports a location, a description, and
-- optionally vitals and findings; triage is never taken from the client: careplane.assess
-- computes it (NEWS2 from the vitals, ESI from the findings with the vitals and the profile's
-- age deciding what they can, the queue priority, whether to page) and refuses a score, a level
-- or a priority as unknown fields. A report of a life-threatening situation goes to the top of
-- the queue; what keeps one account from flooding it is careplane.emergency_raise_verdict
-- (max_open_emergencies active at once, max_emergencies_per_window per emergency_window_minutes)
-- and paging at most once per page_burst_minutes per requester. What the requester reported is stored as
-- theirs (vitals, findings); staff assessment (assess_emergency) is stored beside it.
create function public.raise_emergency(
  lat double precision,
  lon double precision,
  description text,
  vitals jsonb default null,
  findings jsonb default null
) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  requester uuid := auth.uid();
  dob date;
  assessment jsonb;
  window_minutes bigint := private.dispatch_setting('emergency_window_minutes');
  open_count bigint;
  raised_count bigint;
  last_page timestamptz;
  pages boolean := false;
  created public.emergency_requests;
begin
  if requester is null then
    raise exception 'sign in to raise an emergency' using errcode = '42501', detail = '{"code": "sign_in_required"}';
  end if;
  if lat is null or lon is null or lat not between -90 and 90 or lon not between -180 and 180 then
    raise exception 'location must be a latitude in -90..90 and a longitude in -180..180 (got %, %)', lat, lon
      using errcode = '22023', detail = '{"code": "invalid_location"}';
  end if;
  if length(description) > 4000 then
    raise exception 'description is longer than 4000 characters' using errcode = '22023',
      detail = '{"code": "description_too_long"}';
  end if;
  select p.date_of_birth into dob from public.profiles p where p.id = requester;
  assessment := careplane.assess(vitals, findings, null, null, dob, current_date);  -- 22023 naming the field

  -- One requester's raises one at a time, so concurrent requests cannot all pass the limits.
  perform pg_catalog.pg_advisory_xact_lock(20261126, pg_catalog.hashtext(requester::text));
  select count(*) filter (where e.status = any (careplane.emergency_active_statuses())),
         count(*) filter (where e.created_at > now() - make_interval(mins => window_minutes::int))
    into open_count, raised_count
    from public.emergency_requests e
   where e.requester_id = requester;
  perform private.enforce(careplane.emergency_raise_verdict(
    open_count, raised_count, private.dispatch_setting('max_open_emergencies'),
    private.dispatch_setting('max_emergencies_per_window'), window_minutes));

  -- The rule says whether this request qualifies for a page; one requester's requests page at
  -- most once per burst (under the requester's lock taken above, so two of their requests
  -- cannot both find their last page old enough). The burst is per requester: an account
  -- repeating itself pages once, while another person's emergency always pages.
  if (assessment ->> 'page')::boolean then
    select max(e.paged_at) into last_page from public.emergency_requests e
     where e.requester_id = requester and e.paged_at is not null;
    pages := careplane.page_due(last_page, now(), private.dispatch_setting('page_burst_minutes'));
  end if;

  insert into public.emergency_requests (requester_id, lat, lon, description, vitals, findings,
                                         news2, news2_total, esi_level, priority, triage, paged_at)
  values (requester, lat, lon, nullif(btrim(description), ''), assessment -> 'reported' -> 'vitals',
          assessment -> 'reported' -> 'findings', nullif(assessment -> 'news2', 'null'), (assessment ->> 'news2_total')::smallint,
          (assessment -> 'esi' ->> 'level')::smallint, (assessment ->> 'priority')::smallint, assessment - 'reported' - 'assessed',
          case when pages then now() end)
  returning * into created;

  insert into private.realtime_events (topic, event, payload)
  values ('dispatch', 'emergency:new', jsonb_build_object(
    'id', created.id, 'esi_level', created.esi_level, 'news2_total', created.news2_total,
    'news2_risk', assessment -> 'news2' ->> 'risk', 'priority', created.priority, 'created_at', created.created_at));

  -- The page: an SMS to every dispatcher (holding the role now) with a phone.
  if pages then
    insert into private.outbox (channel, recipient, template, payload)
    select 'sms', p.phone, 'emergency_high_risk',
           jsonb_build_object('emergency_id', created.id, 'esi_level', created.esi_level,
                              'news2_total', coalesce(created.news2_total, (assessment -> 'news2' ->> 'partial_total')::int))
      from public.user_roles ur join public.profiles p on p.id = ur.user_id
     where ur.role = 'dispatcher' and p.phone is not null;
  end if;
  return created;
end
$$;

-- The open requests, most urgent first (private.emergency_queue). Dispatchers only.
create function public.dispatch_queue() returns setof public.emergency_requests
language plpgsql stable security definer set search_path = '' as $$
begin
  if not public.authorize('emergencies.read_open') then
    raise exception 'only dispatchers see the dispatch queue' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  return query select * from private.emergency_queue;
end
$$;

-- Takes the most urgent open request nobody holds. Concurrent dispatchers never get the same
-- one (skip locked); none left is an empty result. A claim that has not led to an assignment
-- within claim_lapse_minutes lapses, so a request is never stranded with one dispatcher.
create function public.claim_next_emergency() returns setof public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  lapse bigint := private.dispatch_setting('claim_lapse_minutes');
  claimed public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers claim emergencies' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  update public.emergency_requests e
     set claimed_by = auth.uid(), claimed_at = now()
   where e.id = (
     select q.id from private.emergency_queue q
      where q.claimed_by is null or not careplane.claim_is_live(q.claimed_at, now(), lapse)
      limit 1
      for update skip locked)
  returning * into claimed;
  if claimed.id is not null then
    insert into private.realtime_events (topic, event, payload)
    values ('dispatch', 'emergency:claimed', jsonb_build_object('id', claimed.id, 'claimed_by', claimed.claimed_by));
    return next claimed;
  end if;
end
$$;

-- Assignable (active, holding the role now), on-duty responders with a known position and no
-- active assignment, nearest first.
create function public.nearest_responders(request_id uuid, n int default 5)
returns table (responder_id uuid, call_sign text, distance_km double precision, last_seen_at timestamptz)
language plpgsql stable security definer set search_path = '' as $$
declare
  req public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers route emergencies' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  if n is null or n not between 1 and 50 then
    raise exception 'n must be between 1 and 50 (got %)', n using errcode = '22023', detail = '{"code": "invalid_n"}';
  end if;
  select * into req from public.emergency_requests e where e.id = request_id;
  if req.id is null then
    raise exception 'no emergency request %', request_id using errcode = 'PT404', detail = '{"code": "emergency_not_found"}';
  end if;
  return query
    select r.id, r.call_sign, careplane.distance_km(req.lat, req.lon, r.last_lat, r.last_lon) as d, r.last_seen_at
      from public.responders r
     where r.on_duty and r.last_lat is not null and access.is_assignable_responder(r.id)
       and not private.responder_is_busy(r.id, null)
     order by d
     limit n;
end
$$;

-- Assigns (or reassigns) a responder. careplane.emergency_assignment_verdict decides: the move,
-- another dispatcher's live claim (so two dispatchers never both route one request), and an
-- active, on-duty, free responder. The assignment takes (or renews) the caller's claim.
create function public.assign_responder(request_id uuid, responder_id uuid) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
  responder public.responders;
  phone text;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers assign responders' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  req := private.locked_emergency(request_id);
  -- Lock the responder (after the request, always in this order) so two dispatchers cannot
  -- give one responder two emergencies.
  select * into responder from public.responders r where r.id = responder_id for update;
  if responder.id is null then
    raise exception 'no responder %', responder_id using errcode = 'PT404', detail = '{"code": "responder_not_found"}';
  end if;
  perform private.enforce(careplane.emergency_assignment_verdict(
    req.status, req.claimed_by, req.claimed_at, auth.uid(), now(), private.dispatch_setting('claim_lapse_minutes'),
    access.is_assignable_responder(responder_id), responder.on_duty,
    private.responder_is_busy(responder_id, request_id)));
  update public.emergency_requests e
     set status = 'assigned', assigned_responder_id = responder_id, assigned_at = now(),
         claimed_by = auth.uid(), claimed_at = now()
   where e.id = request_id
  returning * into req;

  insert into private.realtime_events (topic, event, payload) values
    ('dispatch', 'emergency:assigned', jsonb_build_object('id', req.id, 'responder_id', responder_id)),
    ('user:' || responder_id, 'notification:new', jsonb_build_object('kind', 'emergency:assigned', 'emergency_id', req.id)),
    ('user:' || req.requester_id, 'notification:new', jsonb_build_object('kind', 'emergency:assigned', 'emergency_id', req.id));
  insert into public.notifications (user_id, kind, title, data) values
    (responder_id, 'emergency:assigned', 'New emergency assigned to you', jsonb_build_object('emergency_id', req.id)),
    (req.requester_id, 'emergency:assigned', 'A responder has been assigned', jsonb_build_object('emergency_id', req.id));
  select p.phone into phone from public.profiles p where p.id = responder_id;
  if phone is not null then
    insert into private.outbox (channel, recipient, template, payload)
    values ('sms', phone, 'emergency_assigned', jsonb_build_object('emergency_id', req.id, 'lat', req.lat, 'lon', req.lon));
  end if;
  return req;
end
$$;

-- en_route, on_scene, resolved (dispatcher or the assigned responder), cancelled (dispatcher,
-- or the requester before help is on the way): careplane.emergency_transition decides.
create function public.set_emergency_status(request_id uuid, status text) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
  actor text;
  new_status text := set_emergency_status.status;
begin
  if auth.uid() is null then
    raise exception 'sign in to change an emergency' using errcode = '42501', detail = '{"code": "sign_in_required"}';
  end if;
  select * into req from public.emergency_requests e where e.id = request_id for update;
  actor := private.emergency_actor(req);
  if actor is null then
    -- Not visible to the caller: answer as if it did not exist.
    raise exception 'no emergency request %', request_id using errcode = 'PT404', detail = '{"code": "emergency_not_found"}';
  end if;
  perform private.enforce(careplane.emergency_transition(req.status, new_status, actor));
  update public.emergency_requests e
     set status = new_status,
         resolved_at = case when new_status = any (careplane.emergency_active_statuses()) then null else now() end
   where e.id = request_id
  returning * into req;
  insert into private.realtime_events (topic, event, payload) values
    ('dispatch', 'emergency:updated', jsonb_build_object('id', req.id, 'status', req.status)),
    ('user:' || req.requester_id, 'emergency:updated', jsonb_build_object('id', req.id, 'status', req.status));
  return req;
end
$$;

-- Staff (a dispatcher, or the assigned responder) record their own vitals and/or findings on
-- an active request. The requester's report stays as it was; each call replaces the assessed
-- parts it gives; triage is recomputed (staff's parts supersede the requester's) and the
-- request moves in the queue. No page: staff are already on it.
create function public.assess_emergency(request_id uuid, vitals jsonb default null, findings jsonb default null)
returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
  actor text;
  dob date;
  assessment jsonb;
begin
  if auth.uid() is null then
    raise exception 'sign in to assess an emergency' using errcode = '42501', detail = '{"code": "sign_in_required"}';
  end if;
  select * into req from public.emergency_requests e where e.id = request_id for update;
  actor := private.emergency_actor(req);
  if actor is null then
    raise exception 'no emergency request %', request_id using errcode = 'PT404', detail = '{"code": "emergency_not_found"}';
  end if;
  perform private.enforce(careplane.emergency_assessment_verdict(req.status, actor, vitals is not null or findings is not null));
  select p.date_of_birth into dob from public.profiles p where p.id = req.requester_id;
  assessment := careplane.assess(req.vitals, req.findings, coalesce(vitals, req.assessed_vitals),
                             coalesce(findings, req.assessed_findings), dob, current_date);
  update public.emergency_requests e
     set assessed_vitals = assessment -> 'assessed' -> 'vitals', assessed_findings = assessment -> 'assessed' -> 'findings',
         assessed_by = auth.uid(), assessed_at = now(),
         news2 = nullif(assessment -> 'news2', 'null'), news2_total = (assessment ->> 'news2_total')::smallint,
         esi_level = (assessment -> 'esi' ->> 'level')::smallint, priority = (assessment ->> 'priority')::smallint,
         triage = assessment - 'reported' - 'assessed'
   where e.id = request_id
  returning * into req;
  insert into private.realtime_events (topic, event, payload)
  values ('dispatch', 'emergency:updated', jsonb_build_object(
    'id', req.id, 'status', req.status, 'esi_level', req.esi_level, 'news2_total', req.news2_total,
    'priority', req.priority, 'assessed_by', req.assessed_by));
  return req;
end
$$;

-- A dispatcher marks a request as abuse: it is cancelled and keeps the mark (who, when, an
-- optional note); the audit log records the change. careplane.emergency_abuse_verdict decides.
create function public.mark_emergency_abuse(request_id uuid, note text default null) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers mark emergencies as abuse' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  req := private.locked_emergency(request_id);
  perform private.enforce(careplane.emergency_abuse_verdict(req.status, coalesce(length(note), 0)));
  update public.emergency_requests e
     set status = 'cancelled', resolved_at = now(), abuse_marked_by = auth.uid(), abuse_marked_at = now(),
         abuse_note = nullif(btrim(note), '')
   where e.id = request_id
  returning * into req;
  insert into private.realtime_events (topic, event, payload) values
    ('dispatch', 'emergency:updated', jsonb_build_object('id', req.id, 'status', req.status, 'abuse', true)),
    ('user:' || req.requester_id, 'emergency:updated', jsonb_build_object('id', req.id, 'status', req.status));
  return req;
end
$$;

-- Hands a claimed, still open request back to the queue (its claimant, or any dispatcher once
-- the claim has lapsed): careplane.emergency_release_verdict decides.
create function public.release_emergency(request_id uuid) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers release emergencies' using errcode = '42501', detail = '{"code": "permission_denied"}';
  end if;
  req := private.locked_emergency(request_id);
  perform private.enforce(careplane.emergency_release_verdict(
    req.status, req.claimed_by, req.claimed_at, auth.uid(), now(), private.dispatch_setting('claim_lapse_minutes')));
  update public.emergency_requests e set claimed_by = null, claimed_at = null where e.id = request_id returning * into req;
  insert into private.realtime_events (topic, event, payload)
  values ('dispatch', 'emergency:released', jsonb_build_object('id', req.id));
  return req;
end
$$;

revoke all on all functions in schema private from public, anon, authenticated, service_role;
revoke all on private.emergency_queue from public, anon, authenticated, service_role;
revoke execute on function public.raise_emergency(double precision, double precision, text, jsonb, jsonb),
  public.dispatch_queue(), public.claim_next_emergency(), public.nearest_responders(uuid, int),
  public.assign_responder(uuid, uuid), public.set_emergency_status(uuid, text), public.release_emergency(uuid),
  public.assess_emergency(uuid, jsonb, jsonb), public.mark_emergency_abuse(uuid, text)
  from public, anon;
grant execute on function public.raise_emergency(double precision, double precision, text, jsonb, jsonb),
  public.dispatch_queue(), public.claim_next_emergency(), public.nearest_responders(uuid, int),
  public.assign_responder(uuid, uuid), public.set_emergency_status(uuid, text), public.release_emergency(uuid),
  public.assess_emergency(uuid, jsonb, jsonb), public.mark_emergency_abuse(uuid, text)
  to authenticated, service_role;
