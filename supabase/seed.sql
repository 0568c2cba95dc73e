-- Demo world for local development, loaded by `make db` (and by `supabase db reset`).
-- Idempotent: fixed ids and `on conflict do nothing`, so loading it again changes nothing.
-- Users have no passwords: mint a development token for one of them with the companion, or sign
-- in through Supabase Auth after setting a password there.
--
--   patients    Amaka Okafor   a0000000-0000-4000-8000-00000000000a   (Africa/Lagos)
--               Kwame Asante   a0000000-0000-4000-8000-00000000000b   (Africa/Accra)
--   doctors     Dr Ngozi Eze (GP, NGN)            d0000000-0000-4000-8000-00000000000d
--               Dr Thandiwe Dlamini (paeds, ZAR)  d0000000-0000-4000-8000-00000000000e
--   nurse       Nurse Wanjiru Kamau (KES)         d0000000-0000-4000-8000-00000000000f
--   dispatcher  Tunde Bakare                      f0000000-0000-4000-8000-000000000001
--   responder   Chidi Nwosu (LAG-01)              f0000000-0000-4000-8000-000000000002
--   admin       Admin                             f0000000-0000-4000-8000-000000000003

insert into auth.users (id, aud, role, email, phone, raw_app_meta_data, raw_user_meta_data, email_confirmed_at)
values
  ('a0000000-0000-4000-8000-00000000000a', 'authenticated', 'authenticated', 'amaka@careplane.test', '2348031234567',
   '{"provider": "email"}', '{"full_name": "Amaka Okafor", "time_zone": "Africa/Lagos"}', now()),
  ('a0000000-0000-4000-8000-00000000000b', 'authenticated', 'authenticated', 'kwame@careplane.test', '233241234567',
   '{"provider": "email"}', '{"full_name": "Kwame Asante", "time_zone": "Africa/Accra"}', now()),
  ('d0000000-0000-4000-8000-00000000000d', 'authenticated', 'authenticated', 'ngozi.eze@careplane.test', null,
   '{"provider": "email"}', '{"full_name": "Ngozi Eze", "time_zone": "Africa/Lagos"}', now()),
  ('d0000000-0000-4000-8000-00000000000e', 'authenticated', 'authenticated', 'thandiwe.dlamini@careplane.test', null,
   '{"provider": "email"}', '{"full_name": "Thandiwe Dlamini", "time_zone": "Africa/Johannesburg"}', now()),
  ('d0000000-0000-4000-8000-00000000000f', 'authenticated', 'authenticated', 'wanjiru.kamau@careplane.test', null,
   '{"provider": "email"}', '{"full_name": "Wanjiru Kamau", "time_zone": "Africa/Nairobi"}', now()),
  ('f0000000-0000-4000-8000-000000000001', 'authenticated', 'authenticated', 'tunde.dispatch@careplane.test', null,
   '{"provider": "email"}', '{"full_name": "Tunde Bakare", "time_zone": "Africa/Lagos"}', now()),
  ('f0000000-0000-4000-8000-000000000002', 'authenticated', 'authenticated', 'chidi.responder@careplane.test', '2348059876543',
   '{"provider": "email"}', '{"full_name": "Chidi Nwosu", "time_zone": "Africa/Lagos"}', now()),
  ('f0000000-0000-4000-8000-000000000003', 'authenticated', 'authenticated', 'admin@careplane.test', null,
   '{"provider": "email"}', '{"full_name": "Careplane Admin", "time_zone": "UTC"}', now())
on conflict (id) do nothing;

insert into public.user_roles (user_id, role) values
  ('d0000000-0000-4000-8000-00000000000d', 'doctor'),
  ('d0000000-0000-4000-8000-00000000000e', 'doctor'),
  ('d0000000-0000-4000-8000-00000000000f', 'nurse'),
  ('f0000000-0000-4000-8000-000000000001', 'dispatcher'),
  ('f0000000-0000-4000-8000-000000000002', 'responder'),
  ('f0000000-0000-4000-8000-000000000003', 'admin')
on conflict do nothing;

insert into public.practitioners (id, profile_id, kind, display_name, specialty, bio, consultation_fee_minor, currency,
                                  slot_minutes, buffer_after_minutes, min_notice_minutes, booking_horizon_days, time_zone)
values
  ('b0000000-0000-4000-8000-00000000000d', 'd0000000-0000-4000-8000-00000000000d', 'doctor', 'Dr Ngozi Eze',
   'General practice', 'Family medicine, 12 years in Lagos.', 1500000, 'NGN', 30, 10, 120, 60, 'Africa/Lagos'),
  ('b0000000-0000-4000-8000-00000000000e', 'd0000000-0000-4000-8000-00000000000e', 'doctor', 'Dr Thandiwe Dlamini',
   'Paediatrics', 'Children''s health and development.', 65000, 'ZAR', 45, 15, 240, 90, 'Africa/Johannesburg'),
  ('b0000000-0000-4000-8000-00000000000f', 'd0000000-0000-4000-8000-00000000000f', 'nurse', 'Nurse Wanjiru Kamau',
   'Maternal health', 'Antenatal and postnatal follow-up.', 150000, 'KES', 20, 5, 60, 30, 'Africa/Nairobi')
on conflict (id) do nothing;

-- Weekday hours; Dr Eze also has a Saturday morning clinic and a lunch break.
insert into public.availability_rules (id, practitioner_id, weekday, start_time, end_time)
select ('c0000000-0000-4000-8000-' || lpad(((p.n - 1) * 10 + wd)::text, 12, '0'))::uuid, p.id, wd, p.starts, p.ends
from (values (1, 'b0000000-0000-4000-8000-00000000000d'::uuid, '09:00'::time, '13:00'::time),
             (2, 'b0000000-0000-4000-8000-00000000000e'::uuid, '08:30'::time, '16:30'::time),
             (3, 'b0000000-0000-4000-8000-00000000000f'::uuid, '10:00'::time, '18:00'::time)) p(n, id, starts, ends)
cross join generate_series(1, 5) wd
on conflict (id) do nothing;
insert into public.availability_rules (id, practitioner_id, weekday, start_time, end_time) values
  ('c0000000-0000-4000-8000-000000000101', 'b0000000-0000-4000-8000-00000000000d', 1, '14:00', '17:00'),
  ('c0000000-0000-4000-8000-000000000102', 'b0000000-0000-4000-8000-00000000000d', 3, '14:00', '17:00'),
  ('c0000000-0000-4000-8000-000000000103', 'b0000000-0000-4000-8000-00000000000d', 6, '09:00', '12:00')
on conflict (id) do nothing;
insert into public.availability_exceptions (id, practitioner_id, on_date, kind, start_time, end_time) values
  ('c1000000-0000-4000-8000-000000000001', 'b0000000-0000-4000-8000-00000000000d', '2026-12-25', 'time_off', null, null),
  ('c1000000-0000-4000-8000-000000000002', 'b0000000-0000-4000-8000-00000000000d', '2027-01-01', 'time_off', null, null),
  ('c1000000-0000-4000-8000-000000000003', 'b0000000-0000-4000-8000-00000000000e', '2026-12-19', 'extra_hours', '09:00', '12:00')
on conflict (id) do nothing;

-- Amaka has a booked consultation with Dr Eze next Monday at 10:00 Lagos time.
insert into public.appointments (id, patient_id, practitioner_id, period, status, reason, created_by)
select 'e0000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a',
       'b0000000-0000-4000-8000-00000000000d',
       tstzrange(s, s + interval '30 minutes'), 'booked', 'Follow-up on blood pressure readings',
       'a0000000-0000-4000-8000-00000000000a'
from (select (date_trunc('week', now() at time zone 'Africa/Lagos') + interval '7 days 10 hours')
             at time zone 'Africa/Lagos' as s) t
on conflict (id) do nothing;
insert into public.consultations (id, appointment_id, status) values
  ('e1000000-0000-4000-8000-000000000001', 'e0000000-0000-4000-8000-000000000001', 'scheduled')
on conflict (id) do nothing;
insert into public.conversations (id, consultation_id, kind) values
  ('e2000000-0000-4000-8000-000000000001', 'e1000000-0000-4000-8000-000000000001', 'consultation')
on conflict (id) do nothing;
insert into public.conversation_members (conversation_id, user_id) values
  ('e2000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a'),
  ('e2000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-00000000000d')
on conflict do nothing;
insert into public.messages (id, conversation_id, sender_id, body, created_at) values
  ('e3000000-0000-4000-8000-000000000001', 'e2000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a',
   'Good morning doctor, my home readings have been around 150/95 this week.', now() - interval '2 hours'),
  ('e3000000-0000-4000-8000-000000000002', 'e2000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-00000000000d',
   'Thank you Amaka. Keep taking them morning and evening; we will review on Monday.', now() - interval '1 hour')
on conflict (id) do nothing;
insert into public.message_reads (message_id, user_id) values
  ('e3000000-0000-4000-8000-000000000001', 'd0000000-0000-4000-8000-00000000000d')
on conflict do nothing;

-- A responder on duty in Lagos, and an open emergency from Kwame.
insert into public.responders (id, call_sign, on_duty, last_lat, last_lon, last_seen_at) values
  ('f0000000-0000-4000-8000-000000000002', 'LAG-01', true, 6.4541, 3.3947, now())
on conflict (id) do nothing;
insert into public.emergency_requests (id, requester_id, lat, lon, description, vitals, status) values
  ('e4000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000b', 6.4474, 3.4067,
   'Sudden shortness of breath and chest tightness',
   '{"respiration_rate": 26, "spo2": 91, "supplemental_oxygen": false, "systolic_bp": 104, "pulse": 118, "consciousness": "A", "temperature": 37.9}',
   'open')
on conflict (id) do nothing;

-- Wallets and a welcome notification.
insert into public.ledger_accounts (id, owner_id, kind, currency, flags) values
  ('e5000000-0000-4000-8000-00000000000a', 'a0000000-0000-4000-8000-00000000000a', 'patient_wallet', 'NGN', 'debits_must_not_exceed_credits'),
  ('e5000000-0000-4000-8000-00000000000b', 'a0000000-0000-4000-8000-00000000000b', 'patient_wallet', 'GHS', 'debits_must_not_exceed_credits'),
  ('e5000000-0000-4000-8000-000000000001', null, 'clinic_revenue', 'NGN', 'none')
on conflict (id) do nothing;
insert into public.notifications (id, user_id, kind, title, body) values
  ('e6000000-0000-4000-8000-000000000001', 'a0000000-0000-4000-8000-00000000000a', 'appointment:updated',
   'Consultation booked', 'Dr Ngozi Eze, next Monday at 10:00.')
on conflict (id) do nothing;
