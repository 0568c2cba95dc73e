-- A realistically large careplane database (issue 18, "The database at scale"), loaded by
-- scripts/seed-large.sh (`make seed-large`) into a database of its own that has the compat
-- layer, the extension and every migration. Set-based (generate_series), deterministic: ids
-- follow a pattern (below), every random choice comes from random() after setseed(:seed), in a
-- session without parallel workers, so the same seed gives the same people, appointments (who,
-- with whom, when relative to the day it runs), messages' texts and emergencies. Dates are
-- relative to the run (a year back, a year ahead), and what has already happened follows the
-- clock: an appointment's status (past or ahead of now), and so which 20,000 appointments
-- have consultations and conversations, can differ between runs at different times.
--
--   10,000 patients, 300 practitioners (doctors and nurses in six time zones, weekly hours),
--   10 dispatchers, 50 responders, 2 admins — auth.users rows; the sign-up trigger makes the
--   profiles and the patient role, user_roles holds the rest (what the token hook reads);
--   200,000 appointments over two years (a year back, a year ahead), never overlapping for a
--   practitioner or a patient (the exclusion constraints check it);
--   20,000 consultations, each with its conversation and two members; 1,000,000 messages;
--   400,000 notifications (an appointment's, to its patient and its practitioner);
--   50,000 emergency requests (triaged by careplane.assess, as raise_emergency does);
--   the ledger history of every paid appointment: the payment and its posted transfer
--   (payment clearing against the practitioner's payable and the platform's fee, 10 %), with
--   the accounts' balances as the ledger's writer leaves them (private.verify_ledger is clean).
--
-- Ids: <prefix>-0000-4000-8000-<n, 12 digits>; prefixes:
--   10000000 patients (n 1..10000)      20000000 practitioners' users, 21000000 practitioners (1..300)
--   30000000 dispatchers (1..10)        31000000 responders (1..50)   32000000 admins (1..2)
--   40000000 appointments (0..199999)   41000000 consultations, 42000000 conversations (by appointment n)
--   43000000 messages (0..999999)       44000000 emergencies (0..49999) 45000000 payments (by appointment n)
--
-- Triggers: every trigger runs as it does in production (sign-up, audit, checks, foreign keys),
-- except the realtime log's (realtime_capture, announce_message), disabled on appointments,
-- messages, notifications and emergency_requests for the load: private.realtime_events and
-- private.realtime_changes are a relay log pruned after its retention window
-- (private.prune_realtime), so history this old would no longer be in it; what a realtime
-- client would replay is therefore exactly what a pruned production log holds. No outbox rows
-- either: the SMS and emails of two years ago were sent.

\set ON_ERROR_STOP on
set client_min_messages = warning;
set max_parallel_workers_per_gather = 0;  -- one process draws the random numbers, in order
set synchronous_commit = off;
select setseed(:seed) \g /dev/null

create function pg_temp.id(prefix text, n bigint) returns uuid language sql immutable as
  $$ select (prefix || '-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;

\echo '  users: 10,000 patients, 300 practitioners, 10 dispatchers, 50 responders, 2 admins'
create temporary table zones (z int primary key, tz text, currency text, fee bigint, phone_prefix text);
insert into zones values
  (0, 'Africa/Lagos', 'NGN', 1500000, '234'), (1, 'Africa/Accra', 'GHS', 25000, '233'),
  (2, 'Africa/Nairobi', 'KES', 150000, '254'), (3, 'Africa/Johannesburg', 'ZAR', 65000, '27'),
  (4, 'Africa/Kigali', 'RWF', 20000, '250'), (5, 'Europe/Paris', 'EUR', 6000, '33');

insert into auth.users (id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data, email_confirmed_at, created_at)
select pg_temp.id(u.prefix, u.n), 'authenticated', 'authenticated', u.kind || u.n || '@large.careplane.test',
       case when random() < 0.6 then z.phone_prefix || (700000000 + u.no * 7)::text end,
       '{"provider": "email"}', jsonb_build_object('full_name', initcap(u.kind) || ' ' || u.n, 'time_zone', z.tz),
       now() - interval '800 days', now() - interval '800 days'
  from (select '10000000' prefix, 'patient' kind, n, n no from generate_series(1, 10000) n
        union all select '20000000', 'clinician', n, 10000 + n from generate_series(1, 300) n
        union all select '30000000', 'dispatcher', n, 10300 + n from generate_series(1, 10) n
        union all select '31000000', 'responder', n, 10310 + n from generate_series(1, 50) n
        union all select '32000000', 'admin', n, 10360 + n from generate_series(1, 2) n) u
  join zones z on z.z = u.no % 6
 order by u.no;
-- Dates of birth (triage reads them), opt-ins as people choose them.
update public.profiles p
   set date_of_birth = current_date - (365 * 2 + floor(random() * 365 * 80))::int,
       sms_opt_in = p.phone is not null and random() < 0.5
 where p.id >= pg_temp.id('10000000', 0) and p.id <= pg_temp.id('10000000', 10000);
insert into public.user_roles (user_id, role)
select pg_temp.id('20000000', n), case when n % 5 = 0 then 'nurse' else 'doctor' end::public.app_role from generate_series(1, 300) n
union all select pg_temp.id('30000000', n), 'dispatcher' from generate_series(1, 10) n
union all select pg_temp.id('31000000', n), 'responder' from generate_series(1, 50) n
union all select pg_temp.id('32000000', n), 'admin' from generate_series(1, 2) n;

\echo '  practitioners and their weekly hours'
insert into public.practitioners (id, profile_id, kind, display_name, specialty, consultation_fee_minor, currency,
                                  slot_minutes, buffer_after_minutes, min_notice_minutes, booking_horizon_days, time_zone)
select pg_temp.id('21000000', n), pg_temp.id('20000000', n), case when n % 5 = 0 then 'nurse' else 'doctor' end,
       case when n % 5 = 0 then 'Nurse ' else 'Dr ' end || 'Large ' || n,
       (array['General practice', 'Paediatrics', 'Cardiology', 'Dermatology', 'Maternal health', 'Mental health'])[1 + n % 6],
       z.fee, z.currency, 30, 0, 60, 400, z.tz
  from generate_series(1, 300) n join zones z on z.z = (10000 + n) % 6;
-- Mornings and afternoons on weekdays (08:00–12:00, 13:00–17:00 local time), Saturday mornings
-- for one in three.
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
select pg_temp.id('21000000', n), wd, h.s, h.e
  from generate_series(1, 300) n, generate_series(1, 5) wd, (values ('08:00'::time, '12:00'::time), ('13:00', '17:00')) h(s, e)
union all
select pg_temp.id('21000000', n), 6, '09:00', '12:00' from generate_series(1, 300) n where n % 3 = 0;
insert into public.availability_exceptions (practitioner_id, on_date, kind)
select pg_temp.id('21000000', n), current_date + 30 + (n % 60), 'time_off' from generate_series(1, 300) n;

\echo '  responders'
insert into public.responders (id, call_sign, on_duty, last_lat, last_lon, last_seen_at)
select pg_temp.id('31000000', n), 'LRG-' || lpad(n::text, 3, '0'), n % 2 = 0,
       6.4 + random() * 0.3, 3.3 + random() * 0.3, now() - interval '5 minutes'
  from generate_series(1, 50) n;

-- Appointments ---------------------------------------------------------------------------------
-- Appointment n: practitioner p = n % 300, its j = n / 300-th (0..666) on the j·522/667-th weekday
-- from a year ago (so a practitioner has at most two a day, j even in the morning (08:00–11:00
-- local), j odd in the afternoon (14:00–17:00 local); in these zones (UTC+0…+3) the mornings
-- end by 11:00 UTC and the afternoons start at 11:00 UTC or later). The patients of group j are
-- 300 consecutive patients from a random offset: nobody has two appointments in one group, and
-- groups that share a day are a morning and an afternoon — no overlap for anyone.
\echo '  200,000 appointments'
alter table public.appointments disable trigger realtime_capture;
create temporary table weekdays as
select row_number() over (order by d) - 1 as w, d::date as d
  from generate_series(current_date - 365, current_date + 371, interval '1 day') d
 where extract(isodow from d) < 6;
create temporary table groups as
select j, floor(random() * 10000)::int as offset_ from generate_series(0, 666) j order by j;
create temporary table plan_appointments as
select n, p, g.j, 1 + (p + g.offset_) % 10000 as patient,
       (wd.d + case when g.j % 2 = 0 then time '08:00' else time '14:00' end
             + make_interval(mins => 30 * ((p * 7 + g.j) % 6))) at time zone pr.time_zone as starts,
       random() as r, random() as r2
  from (select n, n % 300 as p, n / 300 as j from generate_series(0, 199999) n) a
  join groups g on g.j = a.j
  join weekdays wd on wd.w = a.j * 522 / 667
  join public.practitioners pr on pr.id = pg_temp.id('21000000', a.p + 1)
 order by n;
insert into public.appointments (id, patient_id, practitioner_id, period, status, patient_participation, reason,
                                 cancellation_reason, created_by, created_at, updated_at)
select pg_temp.id('40000000', n), pg_temp.id('10000000', patient), pg_temp.id('21000000', p + 1),
       tstzrange(starts, starts + interval '30 minutes'), s.status, 'accepted',
       (array['Follow-up', 'New symptoms', 'Prescription review', 'Test results', 'Check-up'])[1 + n % 5],
       case when s.status = 'cancelled' then 'Patient cancelled' end,
       pg_temp.id('10000000', patient), least(now(), starts - make_interval(days => 1 + (r2 * 30)::int)),
       least(now(), starts - make_interval(days => 1 + (r2 * 30)::int))
  from plan_appointments a,
       lateral (select case when starts < now() then case when r < 0.85 then 'fulfilled' when r < 0.90 then 'noshow' else 'cancelled' end
                            else case when r < 0.90 then 'booked' else 'cancelled' end end as status) s
 order by n;

\echo '  20,000 consultations, their conversations and members'
create temporary table chosen as
select row_number() over (order by md5(a.id::text)) - 1 as c, a.*
  from public.appointments a where a.status in ('booked', 'fulfilled')
 order by md5(a.id::text) limit 20000;
insert into public.consultations (id, appointment_id, status, started_at, ended_at, created_at, updated_at)
select pg_temp.id('41000000', c), id, case when status = 'fulfilled' then 'ended' else 'scheduled' end,
       case when status = 'fulfilled' then lower(period) end, case when status = 'fulfilled' then lower(period) + interval '25 minutes' end,
       created_at, created_at
  from chosen order by c;
insert into public.conversations (id, consultation_id, kind, created_at)
select pg_temp.id('42000000', c), pg_temp.id('41000000', c), 'consultation', created_at from chosen order by c;
insert into public.conversation_members (conversation_id, user_id, joined_at)
select pg_temp.id('42000000', ch.c), u, ch.created_at
  from chosen ch join public.practitioners pr on pr.id = ch.practitioner_id,
       unnest(array[ch.patient_id, pr.profile_id]) u
 order by c, u;

-- Conversation c has 50 ± (c/2 % 41) messages (10 to 90; the pairs add up to 100, so
-- 1,000,000 in all), patient and practitioner in turn, 37 minutes apart, the last a day after
-- the appointment started (or a minute ago, for those ahead).
\echo '  1,000,000 messages'
alter table public.messages disable trigger realtime_capture;
alter table public.messages disable trigger announce_message;
alter table public.message_reads disable trigger announce_message_read;
create temporary table conversation_sizes as
select ch.c, ch.patient_id, pr.profile_id as practitioner_profile,
       least(now() - interval '1 minute', lower(ch.period) + interval '1 day') as last_at,
       50 + case when ch.c % 2 = 0 then -(ch.c / 2 % 41) else ch.c / 2 % 41 end as size,
       (sum(50 + case when ch.c % 2 = 0 then -(ch.c / 2 % 41) else ch.c / 2 % 41 end) over (order by ch.c)
         - (50 + case when ch.c % 2 = 0 then -(ch.c / 2 % 41) else ch.c / 2 % 41 end))::bigint as first_message
  from chosen ch join public.practitioners pr on pr.id = ch.practitioner_id;
insert into public.messages (id, conversation_id, sender_id, body, created_at)
select pg_temp.id('43000000', cs.first_message + k), pg_temp.id('42000000', cs.c),
       case when k % 2 = 0 then cs.patient_id else cs.practitioner_profile end,
       (array['Good morning doctor, my readings were a little high this week.', 'Thank you, keep taking them morning and evening.',
              'Should I continue the medication?', 'Yes, and we will review it at the consultation.',
              'I have uploaded the lab results.', 'Thanks, I will look at them before we meet.',
              'The pain is better today.', 'Good. Let me know if anything changes.'])[1 + floor(random() * 8)::int],
       cs.last_at - make_interval(mins => (37 * (cs.size - 1 - k))::int)
  from conversation_sizes cs, generate_series(0, cs.size - 1) k
 order by cs.c, k;
-- The practitioner has read what the patient wrote, except in the 500 most recent conversations.
insert into public.message_reads (message_id, user_id, read_at)
select m.id, cs.practitioner_profile, m.created_at + interval '5 minutes'
  from conversation_sizes cs
  join public.messages m on m.conversation_id = pg_temp.id('42000000', cs.c) and m.sender_id = cs.patient_id
 where cs.c >= 500 and cs.c < 2000
 order by m.id;

\echo '  400,000 notifications'
alter table public.notifications disable trigger realtime_capture;
insert into public.notifications (user_id, kind, title, data, read_at, created_at)
select u, 'appointment:updated', case when a.status = 'cancelled' then 'Consultation cancelled' else 'Consultation booked' end,
       jsonb_build_object('appointment_id', a.id, 'practitioner_id', a.practitioner_id, 'status', a.status,
                          'change', case when a.status = 'cancelled' then 'cancelled' else 'booked' end,
                          'starts_at', lower(a.period), 'ends_at', upper(a.period)),
       case when lower(a.period) < now() then a.created_at + interval '2 hours' end, a.created_at
  from public.appointments a join public.practitioners pr on pr.id = a.practitioner_id,
       unnest(array[a.patient_id, pr.profile_id]) u
 where a.id between pg_temp.id('40000000', 0) and pg_temp.id('40000000', 199999)
 order by a.id, u;

-- Emergencies: two years of them; the 40 most recent are still open (a dispatch queue), the
-- rest resolved by a responder (85 %) or cancelled. Triage as raise_emergency computes it.
\echo '  50,000 emergency requests'
alter table public.emergency_requests disable trigger realtime_capture;
insert into public.emergency_requests (id, requester_id, lat, lon, description, vitals, news2, news2_total, esi_level, priority,
                                       triage, status, assigned_responder_id, assigned_at, resolved_at, created_at, updated_at)
select pg_temp.id('44000000', e), pg_temp.id('10000000', 1 + (e * 7) % 10000), 6.3 + r.lat, 3.2 + r.lon, r.description,
       x.assessment -> 'reported' -> 'vitals', nullif(x.assessment -> 'news2', 'null'), (x.assessment ->> 'news2_total')::smallint,
       (x.assessment -> 'esi' ->> 'level')::smallint, (x.assessment ->> 'priority')::smallint,
       x.assessment - 'reported' - 'assessed', s.status,
       case when s.status = 'resolved' then pg_temp.id('31000000', 1 + e % 50) end,
       case when s.status = 'resolved' then r.created_at + interval '4 minutes' end,
       case when s.status <> 'open' then r.created_at + interval '50 minutes' end,
       r.created_at, r.created_at
  from generate_series(0, 49999) e,
       lateral (select random() * 0.4 as lat, random() * 0.4 as lon, random() as u,
                       now() - (49999 - e) * interval '21 minutes' - interval '1 minute' as created_at,
                       (array['Shortness of breath', 'Chest pain', 'Fall at home', 'High fever', 'Road accident', 'Allergic reaction'])[1 + e % 6]
                         as description,
                       jsonb_build_object('respiration_rate', 12 + floor(random() * 16)::int, 'spo2', 88 + floor(random() * 12)::int,
                                          'supplemental_oxygen', false, 'systolic_bp', 95 + floor(random() * 60)::int,
                                          'pulse', 55 + floor(random() * 70)::int, 'consciousness', 'A',
                                          'temperature', round((36 + random() * 3)::numeric, 1)) as vitals) r,
       lateral (select careplane.assess(r.vitals, null, null, null,
                                        (select p.date_of_birth from public.profiles p where p.id = pg_temp.id('10000000', 1 + (e * 7) % 10000)),
                                        r.created_at::date) as assessment) x,
       lateral (select case when e >= 49960 then 'open' when r.u < 0.85 then 'resolved' else 'cancelled' end as status) s
 order by e;

-- The ledger ----------------------------------------------------------------------------------
-- Every appointment that held its time (booked, fulfilled, noshow), except one in five, was paid:
-- a succeeded payment and its posted transfer (id = the payment's id, kind payment), as the
-- companion's settlement writes them through private.payment_apply with PLATFORM_FEE_BPS=1000.
\echo '  payments and the ledger history of every paid appointment'
insert into public.ledger_accounts (owner_id, kind, currency, flags, created_at)
select null, k.kind, z.currency, k.flags, now() - interval '800 days'
  from zones z, (values ('payment_clearing', 'credits_must_not_exceed_debits'), ('platform_fees', 'debits_must_not_exceed_credits')) k(kind, flags)
union all
select pr.profile_id, 'practitioner_payable', pr.currency, 'debits_must_not_exceed_credits', now() - interval '800 days'
  from public.practitioners pr where pr.id between pg_temp.id('21000000', 1) and pg_temp.id('21000000', 300);
create temporary table paid as
select a.id as appointment_id, substr(a.id::text, 25)::bigint as n, a.patient_id, pr.profile_id as practitioner_profile,
       pr.consultation_fee_minor as amount, pr.consultation_fee_minor * 1000 / 10000 as fee, pr.currency,
       a.created_at + interval '10 minutes' as paid_at
  from public.appointments a join public.practitioners pr on pr.id = a.practitioner_id
 where a.id between pg_temp.id('40000000', 0) and pg_temp.id('40000000', 199999)
   and a.status in ('booked', 'fulfilled', 'noshow') and substr(a.id::text, 25)::bigint % 5 <> 4;
insert into public.payments (id, patient_id, appointment_id, amount_minor, currency, provider_reference, status,
                             provider_transaction_id, paid_at, created_at, updated_at)
select pg_temp.id('45000000', n), patient_id, appointment_id, amount, currency, 'cp_large_' || n, 'succeeded',
       (4000000000 + n)::text, paid_at, paid_at - interval '9 minutes', paid_at
  from paid order by n;
insert into public.ledger_transfers (id, kind, description, type, created_at)
select pg_temp.id('45000000', n), 'payment', 'payment cp_large_' || n, 'posted', paid_at from paid order by n;
insert into public.ledger_entries (transfer_id, account_id, direction, amount, currency, created_at)
select pg_temp.id('45000000', p.n), acc.id, leg.direction, leg.amount, p.currency, p.paid_at
  from paid p
  cross join lateral (values (1, 'payment_clearing', null::uuid, 'debit', p.amount),
                       (2, 'practitioner_payable', p.practitioner_profile, 'credit', p.amount - p.fee),
                       (3, 'platform_fees', null, 'credit', p.fee)) leg(i, kind, owner, direction, amount)
  join public.ledger_accounts acc on acc.kind = leg.kind and acc.currency = p.currency and acc.owner_id is not distinct from leg.owner
 where leg.amount > 0
 order by p.n, leg.i;
update public.ledger_accounts a
   set debits_posted = s.debits, credits_posted = s.credits
  from (select e.account_id, coalesce(sum(e.amount) filter (where e.direction = 'debit'), 0) as debits,
               coalesce(sum(e.amount) filter (where e.direction = 'credit'), 0) as credits
          from public.ledger_entries e group by e.account_id) s
 where s.account_id = a.id;

alter table public.appointments enable trigger realtime_capture;
alter table public.messages enable trigger realtime_capture;
alter table public.messages enable trigger announce_message;
alter table public.message_reads enable trigger announce_message_read;
alter table public.notifications enable trigger realtime_capture;
alter table public.emergency_requests enable trigger realtime_capture;
