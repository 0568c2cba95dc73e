-- The database at scale (issue 18): policies that asked a question per row.
--
-- A policy written as `access.is_x(column)` calls a security-definer function for every row
-- the query reads, and each call reads the caller's claims and roles again. With a few rows
-- that does not show; on the large seed (`make seed-large`) a practitioner's "my upcoming
-- appointments" read ~660 rows of their calendar through the practitioner_id index and
-- called access.is_practitioner for each (bench/requests/REPORT.md, before and after). The
-- same question is answered once per statement instead: the set of the caller's ids, computed
-- by a security-definer helper in an initPlan (`(select …)::uuid[]`), and the row's column compared
-- with it (`column = any (…)`), which the planner can also serve from the column's index.
-- Each helper answers exactly what the per-row check answered, for every row at once:
--   x = any (access.my_practitioner_ids())   ⇔ access.is_practitioner(x)
--   x = any (access.my_conversation_ids())   ⇔ access.is_conversation_member(x)
--   x = any (access.my_ledger_account_ids()) ⇔ access.owns_ledger_account(x)
-- The per-row functions stay: RPCs and other checks use them for a single row.
-- supabase/tests/database/72_policy_indexes.test.sql checks that every select policy on a
-- large table is served by an index for the per-user query.

-- The caller's practitioner records in which they practise now (active, holding the role they
-- practise under). This is now the one place that takes "this record's profile is the caller"
-- for the right to act as a practitioner (61_attack_revocation checks that nothing else does):
-- access.is_practitioner(id) asks whether id is one of these.
create function access.my_practitioner_ids() returns uuid[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array(
    select p.id from public.practitioners p
     where p.profile_id = auth.uid()
       and p.active
       and access.has_role(p.kind::public.app_role)), '{}')
$$;

-- Is the caller this practitioner, active, and holding the role they practise under now?
-- (The same answer as before, from the set above.)
create or replace function access.is_practitioner(practitioner uuid) returns boolean
language sql stable security definer set search_path = '' as $$
  select practitioner = any (access.my_practitioner_ids())
$$;

-- The conversations the caller takes part in now: access.is_conversation_member(id) for each
-- (a member, except the practitioner of a consultation's conversation while not in practice).
create function access.my_conversation_ids() returns uuid[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array(
    select m.conversation_id
      from public.conversation_members m
      join public.conversations c on c.id = m.conversation_id
      left join public.consultations co on co.id = c.consultation_id
      left join public.appointments a on a.id = co.appointment_id
      left join public.practitioners p on p.id = a.practitioner_id
     where m.user_id = auth.uid()
       and (p.profile_id is distinct from m.user_id or p.id = any ((select access.my_practitioner_ids())::uuid[]))), '{}')
$$;

-- The caller's own ledger accounts: access.owns_ledger_account(id) for each.
create function access.my_ledger_account_ids() returns uuid[]
language sql stable security definer set search_path = '' as $$
  select coalesce(array(select a.id from public.ledger_accounts a where a.owner_id = auth.uid()), '{}')
$$;

revoke execute on function access.my_practitioner_ids(), access.my_conversation_ids(), access.my_ledger_account_ids() from public;
grant execute on function access.my_practitioner_ids(), access.my_conversation_ids(), access.my_ledger_account_ids()
  to anon, authenticated, service_role;

alter policy "practitioners read own calendar" on public.appointments
  using (practitioner_id = any ((select access.my_practitioner_ids())::uuid[]));

alter policy "members read their conversations" on public.conversations
  using (id = any ((select access.my_conversation_ids())::uuid[]));
alter policy "members see who else is in their conversations" on public.conversation_members
  using (conversation_id = any ((select access.my_conversation_ids())::uuid[]));
alter policy "members read messages" on public.messages
  using (conversation_id = any ((select access.my_conversation_ids())::uuid[]));

alter policy "owners read entries on their accounts" on public.ledger_entries
  using (account_id = any ((select access.my_ledger_account_ids())::uuid[]));
