-- Claims on emergencies do not strand a request: a dispatcher can hand one back, and a claim
-- that has not led to an assignment within 10 minutes lapses, so another dispatcher gets it.

create or replace function public.claim_next_emergency() returns setof public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  claimed public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers claim emergencies' using errcode = '42501';
  end if;
  update public.emergency_requests e
     set claimed_by = auth.uid(), claimed_at = now()
   where e.id = (
     select q.id from public.emergency_requests q
      where q.status = 'open'
        and (q.claimed_by is null or q.claimed_at < now() - interval '10 minutes')
      order by q.esi_level nulls last, (q.news2 ->> 'partial_total')::int desc nulls last, q.created_at
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

-- Hands a claimed, still open request back to the queue (its claimant, or any dispatcher once
-- the claim has lapsed).
create function public.release_emergency(request_id uuid) returns public.emergency_requests
language plpgsql security definer set search_path = '' as $$
declare
  req public.emergency_requests;
begin
  if not public.authorize('emergencies.dispatch') then
    raise exception 'only dispatchers release emergencies' using errcode = '42501';
  end if;
  select * into req from public.emergency_requests e where e.id = request_id for update;
  if req.id is null then
    raise exception 'no emergency request %', request_id using errcode = 'PT404';
  end if;
  if req.status <> 'open' or req.claimed_by is null then
    raise exception 'emergency request % is not claimed and open', request_id using errcode = 'PT409',
      detail = jsonb_build_object('reason', 'not_claimed', 'status', req.status)::text;
  end if;
  if req.claimed_by <> auth.uid() and req.claimed_at >= now() - interval '10 minutes' then
    raise exception 'emergency request % is claimed by another dispatcher', request_id using errcode = '42501';
  end if;
  update public.emergency_requests e set claimed_by = null, claimed_at = null where e.id = request_id returning * into req;
  insert into private.realtime_events (topic, event, payload)
  values ('dispatch', 'emergency:released', jsonb_build_object('id', req.id));
  return req;
end
$$;
revoke execute on function public.release_emergency(uuid) from public, anon;
grant execute on function public.release_emergency(uuid) to authenticated, service_role;
