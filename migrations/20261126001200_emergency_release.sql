-- Handing an emergency back: a dispatcher releases a claim (claims also lapse after 10 minutes
-- without an assignment, see claim_next_emergency).

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
