-- The policies as they were before migrations/20261128000800_scale.sql (the "before" of
-- bench/requests: SCALE_MIGRATION=off); run.sh applies the migration again afterwards. The
-- helpers are dropped so that the migration can create them again.
alter policy "practitioners read own calendar" on public.appointments using (access.is_practitioner(practitioner_id));
alter policy "members read their conversations" on public.conversations using (access.is_conversation_member(id));
alter policy "members see who else is in their conversations" on public.conversation_members
  using (access.is_conversation_member(conversation_id));
alter policy "members read messages" on public.messages using (access.is_conversation_member(conversation_id));
alter policy "owners read entries on their accounts" on public.ledger_entries using (access.owns_ledger_account(account_id));
create or replace function access.is_practitioner(practitioner uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select exists (
    select 1 from public.practitioners p
     where p.id = practitioner
       and p.profile_id = auth.uid()
       and p.active
       and access.has_role(p.kind::public.app_role))
$$;
drop function if exists access.my_practitioner_ids(), access.my_conversation_ids(), access.my_ledger_account_ids();
