-- In-app notifications. Created by RPCs and triggers; the recipient reads them and marks them read.

create table public.notifications (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null references public.profiles (id) on delete cascade,
  kind text not null check (length(kind) between 1 and 100),
  title text not null check (length(title) between 1 and 200),
  body text check (length(body) <= 2000),
  data jsonb not null default '{}' check (jsonb_typeof(data) = 'object'),
  read_at timestamptz,
  created_at timestamptz not null default now()
);
create index notifications_user_idx on public.notifications (user_id, created_at desc);

revoke all on public.notifications from anon, authenticated, service_role;
grant select on public.notifications to authenticated, service_role;
grant update (read_at) on public.notifications to authenticated;

alter table public.notifications enable row level security;

create policy "users read own notifications" on public.notifications
  for select to authenticated using (user_id = (select auth.uid()));
create policy "users mark own notifications read" on public.notifications
  for update to authenticated using (user_id = (select auth.uid())) with check (user_id = (select auth.uid()));
create policy "admins read all notifications" on public.notifications
  for select to authenticated using ((select public.authorize('notifications.read_all')));

create trigger audit after insert or update or delete on public.notifications
  for each row execute function private.audit();
