-- Identity: profiles (one per auth.users row), roles and permissions (Supabase's RBAC guide),
-- the custom access token hook that puts the roles in the JWT, and role management RPCs.

create type public.app_role as enum ('patient', 'doctor', 'nurse', 'dispatcher', 'responder', 'admin');

create type public.app_permission as enum (
  'profiles.read_all',
  'roles.manage',
  'practitioners.manage',
  'appointments.read_all',
  'appointments.book_for_patients',
  'consultations.read_all',
  'messages.read_all',
  'emergencies.read_all',
  'emergencies.read_open',
  'emergencies.dispatch',
  'emergencies.respond',
  'responders.read_all',
  'ledger.read_all',
  'payments.read_all',
  'notifications.read_all'
);

-- Profiles ---------------------------------------------------------------------------------------
create table public.profiles (
  id uuid primary key references auth.users (id) on delete cascade,
  full_name text check (length(full_name) <= 200),
  email text check (length(email) <= 320),
  phone text check (phone ~ '^\+[1-9][0-9]{6,14}$'),  -- E.164
  date_of_birth date check (date_of_birth > '1900-01-01' and date_of_birth <= current_date),
  time_zone text not null default 'UTC' check (public.is_valid_time_zone(time_zone)),
  sms_opt_in boolean not null default false,
  email_opt_in boolean not null default true,
  quiet_hours_start time,
  quiet_hours_end time,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint quiet_hours_both_or_neither check ((quiet_hours_start is null) = (quiet_hours_end is null))
);
comment on table public.profiles is 'One per auth.users row, created by a trigger on sign-up.';
create trigger touch_updated_at before update on public.profiles
  for each row execute function private.touch_updated_at();

-- Roles ------------------------------------------------------------------------------------------
create table public.user_roles (
  user_id uuid not null references auth.users (id) on delete cascade,
  role public.app_role not null,
  granted_by uuid references auth.users (id) on delete set null,
  granted_at timestamptz not null default now(),
  primary key (user_id, role)
);
comment on table public.user_roles is 'Roles a user holds; a user may hold several. Written only by role RPCs and the sign-up trigger.';

create table public.role_permissions (
  role public.app_role not null,
  permission public.app_permission not null,
  primary key (role, permission)
);

insert into public.role_permissions (role, permission) values
  ('admin', 'profiles.read_all'), ('admin', 'roles.manage'), ('admin', 'practitioners.manage'),
  ('admin', 'appointments.read_all'), ('admin', 'appointments.book_for_patients'), ('admin', 'consultations.read_all'), ('admin', 'messages.read_all'),
  ('admin', 'emergencies.read_all'), ('admin', 'responders.read_all'), ('admin', 'ledger.read_all'),
  ('admin', 'payments.read_all'), ('admin', 'notifications.read_all'),
  ('dispatcher', 'emergencies.read_open'), ('dispatcher', 'emergencies.dispatch'),
  ('dispatcher', 'responders.read_all'),
  ('responder', 'emergencies.respond');

-- Effective roles -------------------------------------------------------------------------------
-- A role counts for a request only while it is in the caller's token AND granted now in
-- public.user_roles: the token can only narrow what the database allows. Revoking a role
-- therefore takes effect on the caller's next statement, whatever tokens they still hold; a
-- new grant takes effect with the next token (the access token hook reads user_roles). Each
-- check reads the caller's few user_roles rows through the primary key; policies wrap the
-- checks in (select …) so a statement asks once. See docs/identity.md.

-- The roles the caller's token claims: the user_roles claim (array), else user_role. Not an
-- authorization on its own: see access.effective_roles().
create function access.claimed_roles() returns text[]
language sql stable set search_path = '' as $$
  select case
    when jsonb_typeof(auth.jwt() -> 'user_roles') = 'array'
      then array(select jsonb_array_elements_text(auth.jwt() -> 'user_roles'))
    when auth.jwt() ->> 'user_role' is not null then array[auth.jwt() ->> 'user_role']
    else '{}'::text[]
  end
$$;

-- The caller's effective roles: claimed by the token and granted now. Security definer so it
-- reads user_roles whatever that table's policies let the caller see (its own policies call
-- public.authorize, which would otherwise recurse).
create function access.effective_roles() returns public.app_role[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array(
    select ur.role from public.user_roles ur
     where coalesce(auth.role(), '') = 'authenticated'
       and ur.user_id = auth.uid()
       and ur.role::text = any (access.claimed_roles())
     order by ur.role), '{}')
$$;

-- Supabase RBAC: does any of the caller's effective roles carry the permission?
create function public.authorize(requested_permission public.app_permission) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.role_permissions rp
     where rp.permission = requested_permission
       and rp.role = any (access.effective_roles()))
$$;

-- Is the role one of the caller's effective roles?
create function access.has_role(r public.app_role) returns boolean
language sql stable set search_path = '' as $$
  select r = any (access.effective_roles())
$$;

-- Sign-up: a profile and the patient role -------------------------------------------------------
create function private.handle_new_user() returns trigger
language plpgsql security definer set search_path = '' as $$
declare
  tz text := new.raw_user_meta_data ->> 'time_zone';
begin
  insert into public.profiles (id, email, phone, full_name, time_zone)
  values (
    new.id,
    new.email,
    case when new.phone ~ '^\+?[1-9][0-9]{6,14}$' then '+' || ltrim(new.phone, '+') end,
    left(new.raw_user_meta_data ->> 'full_name', 200),
    case when tz is not null and public.is_valid_time_zone(tz) then tz else 'UTC' end
  );
  insert into public.user_roles (user_id, role) values (new.id, 'patient');
  return new;
end
$$;
create trigger on_auth_user_created after insert on auth.users
  for each row execute function private.handle_new_user();

-- Email and phone are changed through Supabase Auth; keep the profile's copy in step.
create function private.sync_user_contact() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  update public.profiles
     set email = new.email,
         phone = case when new.phone ~ '^\+?[1-9][0-9]{6,14}$' then '+' || ltrim(new.phone, '+') end
   where id = new.id;
  return new;
end
$$;
create trigger on_auth_user_contact_changed after update of email, phone on auth.users
  for each row when (old.email is distinct from new.email or old.phone is distinct from new.phone)
  execute function private.sync_user_contact();

-- Custom access token hook (Supabase Auth) -------------------------------------------------------
-- Adds user_role (the primary role) and user_roles (all) to every access token. Required
-- claims are passed through untouched.
create function public.custom_access_token_hook(event jsonb) returns jsonb
language plpgsql stable set search_path = '' as $$
declare
  claims jsonb := coalesce(event -> 'claims', '{}'::jsonb);
  roles text[];
begin
  select coalesce(array_agg(ur.role::text order by
           array_position(array['admin', 'dispatcher', 'doctor', 'nurse', 'responder', 'patient'], ur.role::text)),
         '{}')
    into roles
    from public.user_roles ur
   where ur.user_id = (event ->> 'user_id')::uuid;
  claims := jsonb_set(claims, '{user_role}', coalesce(to_jsonb(roles[1]), 'null'::jsonb));
  claims := jsonb_set(claims, '{user_roles}', to_jsonb(roles));
  return jsonb_build_object('claims', claims);
end
$$;

grant usage on schema public to supabase_auth_admin;
grant execute on function public.custom_access_token_hook(jsonb) to supabase_auth_admin;
revoke execute on function public.custom_access_token_hook(jsonb) from authenticated, anon, public, service_role;
grant select on table public.user_roles to supabase_auth_admin;

-- Role management: admins only, never oneself ------------------------------------------------------
-- A role is a grant in user_roles; some roles also have a standing record that holds what the
-- person does in that role (public.practitioners for doctors and nurses, public.responders for
-- responders). Privileged paths check both: the role now (access.has_role, public.authorize)
-- and that the record is active. Revoking a role ends the standing in the same transaction;
-- granting it again restores a responder's standing (still off duty), while a practitioner is
-- registered again by an admin (fee, kind and calendar are reviewed). See docs/identity.md.
-- (The practitioners and responders tables come later in the migration order; PL/pgSQL reads
-- them when it runs.)

create function public.grant_role(target_user uuid, new_role public.app_role) returns public.user_roles
language plpgsql security definer set search_path = '' as $$
declare
  granted public.user_roles;
begin
  if not public.authorize('roles.manage') then
    raise exception 'only an admin may grant roles' using errcode = '42501';
  end if;
  if target_user = auth.uid() then
    raise exception 'nobody may change their own roles' using errcode = '42501',
      hint = 'Ask another admin.';
  end if;
  if not exists (select 1 from auth.users where id = target_user) then
    raise exception 'no user %', target_user using errcode = 'PT404';
  end if;
  insert into public.user_roles (user_id, role, granted_by)
  values (target_user, new_role, auth.uid())
  on conflict (user_id, role) do nothing
  returning * into granted;
  if granted.user_id is null then
    -- Already held: nothing changes, the standing included.
    select * into granted from public.user_roles ur where ur.user_id = target_user and ur.role = new_role;
  elsif new_role = 'responder' then
    update public.responders r set active = true where r.id = target_user;
  end if;
  return granted;
end
$$;

-- Takes the role and its standing away at once: a doctor's or nurse's practitioner record of
-- that kind stops being active and stops accepting patients; a responder's record stops being
-- active and goes off duty; a dispatcher's claims on open requests go back to the queue. The
-- standing is ended even when the grant was already gone, so a revocation always leaves none.
-- Answers whether a grant was removed.
create function public.revoke_role(target_user uuid, old_role public.app_role) returns boolean
language plpgsql security definer set search_path = '' as $$
declare
  removed boolean;
begin
  if not public.authorize('roles.manage') then
    raise exception 'only an admin may revoke roles' using errcode = '42501';
  end if;
  if target_user = auth.uid() then
    raise exception 'nobody may change their own roles' using errcode = '42501',
      hint = 'Ask another admin.';
  end if;
  delete from public.user_roles ur where ur.user_id = target_user and ur.role = old_role;
  removed := found;
  case old_role
    when 'doctor', 'nurse' then
      update public.practitioners p set active = false, accepting_patients = false
       where p.profile_id = target_user and p.kind = old_role::text;
    when 'responder' then
      update public.responders r set active = false, on_duty = false where r.id = target_user;
    when 'dispatcher' then
      with freed as (
        update public.emergency_requests e set claimed_by = null, claimed_at = null
         where e.claimed_by = target_user and e.status = 'open'
        returning e.id)
      insert into private.realtime_events (topic, event, payload)
      select 'dispatch', 'emergency:released', jsonb_build_object('id', f.id) from freed f;
    else
      null;  -- patient and admin carry no standing beyond the grant
  end case;
  return removed;
end
$$;

revoke execute on function public.grant_role(uuid, public.app_role), public.revoke_role(uuid, public.app_role)
  from public, anon;
grant execute on function public.grant_role(uuid, public.app_role), public.revoke_role(uuid, public.app_role)
  to authenticated, service_role;

-- Grants and policies --------------------------------------------------------------------------
revoke all on public.profiles, public.user_roles, public.role_permissions from anon, authenticated, service_role;
grant select on public.profiles to authenticated, service_role;
-- Own profile: the person's own details only; id, email, phone (owned by Supabase Auth) and the
-- timestamps are not theirs to set.
grant update (full_name, date_of_birth, time_zone, sms_opt_in, email_opt_in, quiet_hours_start, quiet_hours_end)
  on public.profiles to authenticated;
grant select on public.user_roles to authenticated, service_role;
grant select on public.role_permissions to authenticated, service_role;

alter table public.profiles enable row level security;
alter table public.user_roles enable row level security;
alter table public.role_permissions enable row level security;

create policy "users read own profile" on public.profiles
  for select to authenticated using (id = (select auth.uid()));
create policy "users update own profile" on public.profiles
  for update to authenticated using (id = (select auth.uid())) with check (id = (select auth.uid()));
create policy "admins read all profiles" on public.profiles
  for select to authenticated using ((select public.authorize('profiles.read_all')));

create policy "users read own roles" on public.user_roles
  for select to authenticated using (user_id = (select auth.uid()));
create policy "admins read all roles" on public.user_roles
  for select to authenticated using ((select public.authorize('roles.manage')));
create policy "auth admin reads roles for the token hook" on public.user_roles
  as permissive for select to supabase_auth_admin using (true);

create policy "signed-in users read the permission table" on public.role_permissions
  for select to authenticated using (true);

create trigger audit after insert or update or delete on public.profiles
  for each row execute function private.audit();
create trigger audit after insert or update or delete on public.user_roles
  for each row execute function private.audit();

revoke all on all functions in schema private from public, anon, authenticated, service_role;
