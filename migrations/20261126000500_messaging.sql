-- Conversations between patients and clinicians (a consultation has one), members, messages and
-- read receipts. Only members read a conversation (a consultation's practitioner only while in
-- practice); members post as themselves.

create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  consultation_id uuid unique references public.consultations (id) on delete restrict,
  kind text not null default 'consultation' check (kind in ('consultation', 'direct')),
  created_at timestamptz not null default now(),
  constraint consultation_conversation_has_consultation check (kind <> 'consultation' or consultation_id is not null)
);

create table public.conversation_members (
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  user_id uuid not null references public.profiles (id) on delete cascade,
  joined_at timestamptz not null default now(),
  primary key (conversation_id, user_id)
);
create index conversation_members_user_idx on public.conversation_members (user_id);

create table public.messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  sender_id uuid not null default auth.uid() references public.profiles (id) on delete restrict,
  body text not null check (length(btrim(body)) between 1 and 10000),
  created_at timestamptz not null default now()
);
create index messages_conversation_idx on public.messages (conversation_id, created_at);

create table public.message_reads (
  message_id uuid not null references public.messages (id) on delete cascade,
  user_id uuid not null default auth.uid() references public.profiles (id) on delete cascade,
  read_at timestamptz not null default now(),
  primary key (message_id, user_id)
);

-- Does the caller take part in the conversation now? A member reads and posts, except the
-- practitioner of a consultation's conversation, who does so only while in practice
-- (access.is_practitioner: the role now and an active record). A revoked clinician keeps their
-- membership row (the history says who was there) and loses the access.
create function access.is_conversation_member(conversation uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1
      from public.conversation_members m
      join public.conversations c on c.id = m.conversation_id
      left join public.consultations co on co.id = c.consultation_id
      left join public.appointments a on a.id = co.appointment_id
      left join public.practitioners p on p.id = a.practitioner_id
     where m.conversation_id = conversation
       and m.user_id = auth.uid()
       and (p.profile_id is distinct from m.user_id or access.is_practitioner(p.id)))
$$;

create function access.can_read_message(message uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.messages msg
     where msg.id = message and access.is_conversation_member(msg.conversation_id))
$$;

revoke all on public.conversations, public.conversation_members, public.messages, public.message_reads
  from anon, authenticated, service_role;
grant select on public.conversations, public.conversation_members, public.messages, public.message_reads
  to authenticated, service_role;
grant insert (conversation_id, body) on public.messages to authenticated;
grant insert (message_id) on public.message_reads to authenticated;

alter table public.conversations enable row level security;
alter table public.conversation_members enable row level security;
alter table public.messages enable row level security;
alter table public.message_reads enable row level security;

create policy "members read their conversations" on public.conversations
  for select to authenticated using (access.is_conversation_member(id));
create policy "admins read all conversations" on public.conversations
  for select to authenticated using ((select public.authorize('messages.read_all')));

create policy "members see who else is in their conversations" on public.conversation_members
  for select to authenticated using (access.is_conversation_member(conversation_id));
create policy "admins read all memberships" on public.conversation_members
  for select to authenticated using ((select public.authorize('messages.read_all')));

create policy "members read messages" on public.messages
  for select to authenticated using (access.is_conversation_member(conversation_id));
create policy "members post as themselves" on public.messages
  for insert to authenticated
  with check (sender_id = (select auth.uid()) and access.is_conversation_member(conversation_id));
create policy "admins read all messages" on public.messages
  for select to authenticated using ((select public.authorize('messages.read_all')));

create policy "members read receipts" on public.message_reads
  for select to authenticated using (access.can_read_message(message_id));
create policy "members mark messages read for themselves" on public.message_reads
  for insert to authenticated
  with check (user_id = (select auth.uid()) and access.can_read_message(message_id));
create policy "admins read all receipts" on public.message_reads
  for select to authenticated using ((select public.authorize('messages.read_all')));

create trigger audit after insert or update or delete on public.conversation_members
  for each row execute function private.audit();
create trigger audit after insert or update or delete on public.messages
  for each row execute function private.audit();
