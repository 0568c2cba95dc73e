-- Medical files: three private Storage buckets with their limits, the policies on
-- storage.objects that decide who reads, writes and deletes an object (by the owner its path
-- names: `<patient id>/…`, `<consultation id>/…`, `<conversation id>/…`, as Supabase's examples
-- do), public.attachments (what a file is attached to) with RLS mirroring those policies, the
-- completion that makes an uploaded file visible and announces it, and the log of every access
-- that goes through the companion (docs/files.md).
--
-- On Supabase, Storage's server checks these same policies; on plain Postgres,
-- sql/supabase_compat.sql supplies the storage schema. Object rows are written only through
-- the policies (as the user); nothing here adds triggers to storage.objects, which Supabase
-- owns.

-- Buckets ----------------------------------------------------------------------------------------
-- Private (never public), with Supabase's per-bucket limits; the companion reads them from here
-- and binds them into every upload it signs.
insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types) values
  ('medical-records', 'medical-records', false, 20971520,
   array['application/pdf', 'image/jpeg', 'image/png', 'image/webp', 'image/heic', 'text/plain']),
  ('consultation-files', 'consultation-files', false, 20971520,
   array['application/pdf', 'image/jpeg', 'image/png', 'image/webp', 'text/plain']),
  ('message-attachments', 'message-attachments', false, 10485760,
   array['application/pdf', 'image/jpeg', 'image/png', 'image/webp', 'image/heic'])
on conflict (id) do update
  set public = false, file_size_limit = excluded.file_size_limit, allowed_mime_types = excluded.allowed_mime_types;

-- Who may do what with an object -----------------------------------------------------------------
-- The uuid the first folder of an object path names (null when it names none).
create function access.object_folder(name text) returns uuid
language sql immutable set search_path = '' as $$
  select case when f ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' then f::uuid end
    from (select (storage.foldername(name))[1] as f) folder
$$;

-- Read: a patient's records by the patient and their care team; a consultation's files by its
-- two participants (and those who read every consultation); a conversation's attachments by its
-- members (and those who read every message): the rules that decide who reads the thing a file
-- belongs to.
create function access.can_read_object(bucket text, name text) returns boolean
language sql stable security definer set search_path = '' as $$
  select coalesce(case bucket
    when 'medical-records' then
      access.object_folder(name) = auth.uid() or access.is_care_team_of(access.object_folder(name))
    when 'consultation-files' then exists (
      select 1 from public.consultations c
       where c.id = access.object_folder(name)
         and (access.is_appointment_party(c.appointment_id) or public.authorize('consultations.read_all')))
    when 'message-attachments' then
      access.is_conversation_member(access.object_folder(name)) or public.authorize('messages.read_all')
  end, false)
$$;

-- Write: a patient into their own records; the consultation's clinician (in practice now) into
-- its files; a member into their conversation.
create function access.can_write_object(bucket text, name text) returns boolean
language sql stable security definer set search_path = '' as $$
  select coalesce(case bucket
    when 'medical-records' then access.object_folder(name) = auth.uid()
    when 'consultation-files' then exists (
      select 1 from public.consultations c join public.appointments a on a.id = c.appointment_id
       where c.id = access.object_folder(name) and access.is_practitioner(a.practitioner_id))
    when 'message-attachments' then access.is_conversation_member(access.object_folder(name))
  end, false)
$$;

-- Delete: whoever may write there, and for a conversation only the member who uploaded it.
create function access.can_delete_object(bucket text, name text, owner_id text) returns boolean
language sql stable security definer set search_path = '' as $$
  select access.can_write_object(bucket, name)
     and (bucket <> 'message-attachments' or owner_id = auth.uid()::text)
$$;

-- Is the caller the sender of this message (and still a member of its conversation)?
create function access.is_message_sender(message uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.messages m
     where m.id = message and m.sender_id = auth.uid() and access.is_conversation_member(m.conversation_id))
$$;

create policy "patients, care teams and members read medical files" on storage.objects
  for select to authenticated using (access.can_read_object(bucket_id, name));
create policy "patients, clinicians and members upload medical files as themselves" on storage.objects
  for insert to authenticated
  with check (owner_id = (select auth.uid())::text and access.can_write_object(bucket_id, name));
create policy "uploaders remove medical files" on storage.objects
  for delete to authenticated using (access.can_delete_object(bucket_id, name, owner_id));

-- Attachments ------------------------------------------------------------------------------------
-- One per uploaded file: its object, what it is, and what it is attached to (a patient's
-- records, a consultation, or a message, whose conversation names the folder). Pending until
-- the companion has seen the object in the store with the declared size and type.
create table public.attachments (
  id uuid primary key default gen_random_uuid(),
  bucket_id text not null references storage.buckets (id) on delete restrict,
  object_name text not null check (length(object_name) <= 1024),
  kind text not null default 'document' check (kind in ('lab_result', 'imaging', 'document', 'report', 'photo')),
  file_name text not null check (length(file_name) between 1 and 255),
  content_type text not null check (length(content_type) between 3 and 255),
  size_bytes bigint not null check (size_bytes > 0),
  sha256 bytea check (octet_length(sha256) = 32),
  status text not null default 'pending' check (status in ('pending', 'ready')),
  uploaded_by uuid not null default auth.uid() references public.profiles (id) on delete restrict,
  patient_id uuid references public.profiles (id) on delete restrict,
  consultation_id uuid references public.consultations (id) on delete restrict,
  message_id uuid references public.messages (id) on delete restrict,
  conversation_id uuid references public.conversations (id) on delete restrict,
  created_at timestamptz not null default now(),
  completed_at timestamptz,
  constraint attachments_object unique (bucket_id, object_name),
  constraint attachment_ready_is_verified check ((status = 'ready') = (sha256 is not null and completed_at is not null)),
  -- Each bucket holds one kind of owner, and the object lies in that owner's folder.
  constraint attachment_target check (case bucket_id
    when 'medical-records' then patient_id is not null and num_nulls(consultation_id, message_id, conversation_id) = 3
    when 'consultation-files' then consultation_id is not null and num_nulls(patient_id, message_id, conversation_id) = 3
    when 'message-attachments' then message_id is not null and conversation_id is not null and num_nulls(patient_id, consultation_id) = 2
    else false end),
  constraint attachment_in_owner_folder check (
    access.object_folder(object_name) = coalesce(patient_id, consultation_id, conversation_id))
);
create index attachments_patient_idx on public.attachments (patient_id, created_at) where patient_id is not null;
create index attachments_consultation_idx on public.attachments (consultation_id, created_at) where consultation_id is not null;
create index attachments_message_idx on public.attachments (message_id) where message_id is not null;
create index attachments_uploader_idx on public.attachments (uploaded_by, created_at);

-- A message's attachment lies in its conversation: the conversation comes from the message.
create function private.attachment_conversation() returns trigger
language plpgsql security definer set search_path = '' as $$
begin
  if new.message_id is not null then
    select m.conversation_id into new.conversation_id from public.messages m where m.id = new.message_id;
  end if;
  return new;
end
$$;
create trigger attachment_conversation before insert on public.attachments
  for each row execute function private.attachment_conversation();

revoke all on public.attachments from anon, authenticated, service_role;
grant select, delete on public.attachments to authenticated, service_role;
grant insert (id, bucket_id, object_name, kind, file_name, content_type, size_bytes, patient_id, consultation_id, message_id)
  on public.attachments to authenticated;

alter table public.attachments enable row level security;

create policy "readers of the object read ready attachments, uploaders their pending ones" on public.attachments
  for select to authenticated
  using ((status = 'ready' or uploaded_by = (select auth.uid())) and access.can_read_object(bucket_id, object_name));
create policy "writers of the object attach as themselves" on public.attachments
  for insert to authenticated
  with check (uploaded_by = (select auth.uid()) and status = 'pending'
              and access.can_write_object(bucket_id, object_name)
              and (message_id is null or access.is_message_sender(message_id)));
create policy "deleters of the object remove attachments" on public.attachments
  for delete to authenticated using (access.can_delete_object(bucket_id, object_name, uploaded_by::text));

create trigger audit after insert or update or delete on public.attachments
  for each row execute function private.audit();

-- Completion -------------------------------------------------------------------------------------
-- Called by the companion, acting for `uploader` (request.jwt.claims set, so the audit row names
-- them), once it has seen the object in the store with the declared size and type and computed
-- its digest. Marks the attachment ready, records Supabase's object metadata, and announces it:
-- `consultation:updated` on the consultation's topic, `message:new` to each conversation member.
-- Completing twice returns the attachment as it is.
create function private.complete_attachment(attachment uuid, uploader uuid, digest bytea, etag text)
returns public.attachments
language plpgsql security definer set search_path = '' as $$
declare
  a public.attachments;
  payload jsonb;
begin
  select * into a from public.attachments where id = attachment for update;
  if not found or a.uploaded_by is distinct from uploader then
    raise exception 'no pending upload % of yours', attachment using errcode = 'PT404';
  end if;
  if a.status = 'ready' then
    return a;
  end if;
  update public.attachments
     set status = 'ready', sha256 = digest, completed_at = now()
   where id = attachment
  returning * into a;
  update storage.objects
     set metadata = jsonb_build_object('eTag', etag, 'size', a.size_bytes, 'mimetype', a.content_type,
                                       'cacheControl', 'no-cache', 'lastModified', now(),
                                       'contentLength', a.size_bytes, 'httpStatusCode', 200),
         updated_at = now()
   where bucket_id = a.bucket_id and name = a.object_name;

  payload := jsonb_build_object('attachment_id', a.id, 'bucket', a.bucket_id, 'kind', a.kind,
                                'file_name', a.file_name, 'content_type', a.content_type, 'size', a.size_bytes);
  if a.consultation_id is not null then
    insert into private.realtime_events (topic, event, payload)
    values ('consultation:' || a.consultation_id, 'consultation:updated',
            payload || jsonb_build_object('consultation_id', a.consultation_id, 'change', 'attachment'));
  elsif a.message_id is not null then
    insert into private.realtime_events (topic, event, payload)
    values ('conversation:' || a.conversation_id, 'message:new',
            payload || jsonb_build_object('conversation_id', a.conversation_id, 'message_id', a.message_id));
  end if;
  return a;
end
$$;

-- Access log -------------------------------------------------------------------------------------
-- Every request for an upload URL, a download URL or a completion that reaches the companion,
-- granted or not (HIPAA 45 CFR 164.312(b)): who, which file, what, and the outcome. No file
-- names or contents (they may be PHI); the attachment id leads to the row.
create table private.file_access_log (
  id bigint generated always as identity primary key,
  at timestamptz not null default now(),
  actor_id uuid not null,
  actor_role text,
  action text not null check (action in ('upload_url', 'download_url', 'complete')),
  outcome text not null check (outcome in ('granted', 'denied', 'rejected')),
  attachment_id uuid,
  bucket_id text,
  reason text check (length(reason) <= 100)
);
create index file_access_log_attachment_idx on private.file_access_log (attachment_id, at);
create index file_access_log_actor_idx on private.file_access_log (actor_id, at);
revoke all on private.file_access_log from public, anon, authenticated, service_role;

-- The append-only trigger of private.audit_log, naming whichever log it guards.
create or replace function private.audit_log_is_append_only() returns trigger
language plpgsql set search_path = '' as $$
begin
  raise exception '%.% is append-only: % is not allowed', tg_table_schema, tg_table_name, tg_op
    using errcode = '42501', hint = 'Audit rows are never changed or deleted.';
end
$$;
create trigger file_access_log_append_only before update or delete on private.file_access_log
  for each row execute function private.audit_log_is_append_only();
create trigger file_access_log_no_truncate before truncate on private.file_access_log
  for each statement execute function private.audit_log_is_append_only();

create function private.log_file_access(actor uuid, actor_role text, action text, outcome text,
                                        attachment uuid, bucket text, reason text)
returns void
language sql security definer set search_path = '' as $$
  insert into private.file_access_log (actor_id, actor_role, action, outcome, attachment_id, bucket_id, reason)
  values (actor, actor_role, action, outcome, attachment, bucket, reason)
$$;

revoke all on function private.attachment_conversation(), private.complete_attachment(uuid, uuid, bytea, text),
  private.log_file_access(uuid, text, text, text, uuid, text, text), private.audit_log_is_append_only()
  from public, anon, authenticated, service_role;
