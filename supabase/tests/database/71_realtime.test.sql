-- The realtime relay's SQL: who may join which topic (access.may_join_topic, asked as the user),
-- which subscribers may see a captured change (private.realtime_visible_to, as each of them),
-- capture of row changes, and the watermark column every log row carries.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
select plan(17);

create function tests.may_join(persona text, topic text) returns boolean language plpgsql as $$
declare ok boolean;
begin
  perform tests.act_as(persona);
  ok := access.may_join_topic(topic);
  perform tests.act_as_owner();
  return ok;
end
$$;

-- Joins --------------------------------------------------------------------------------------------
select ok(tests.may_join('patient_a', 'user:11111111-1111-4111-8111-111111111111'), 'a user joins their own topic');
select ok(not tests.may_join('patient_b', 'user:11111111-1111-4111-8111-111111111111'), 'and not another user''s');
select ok(tests.may_join('doctor_with', 'conversation:cc000000-0000-4000-8000-000000000001'), 'a member joins the conversation');
select ok(not tests.may_join('patient_b', 'conversation:cc000000-0000-4000-8000-000000000001'), 'a non-member does not');
select ok(not tests.may_join('patient_a', 'consultation:c1000000-0000-4000-8000-000000000001'),
  'a scheduled consultation''s topic is closed, even to its patient (the call is not open)');
update public.consultations set status = 'waiting' where id = 'c1000000-0000-4000-8000-000000000001';
select ok(tests.may_join('patient_a', 'consultation:c1000000-0000-4000-8000-000000000001'), 'the patient joins their consultation once waiting');
select ok(tests.may_join('doctor_with', 'consultation:c1000000-0000-4000-8000-000000000001'), 'so does its practitioner');
select ok(not tests.may_join('doctor_without', 'consultation:c1000000-0000-4000-8000-000000000001'), 'another practitioner does not');
select ok(tests.may_join('dispatcher', 'dispatch') and tests.may_join('responder', 'dispatch') and tests.may_join('admin', 'dispatch'),
  'dispatchers, responders and admins join dispatch');
select ok(not tests.may_join('patient_a', 'dispatch'), 'a patient does not');
select ok(not tests.may_join('patient_a', 'user:11111111-1111-4111-8111-11111111111') and not tests.may_join('patient_a', 'lobby'),
  'malformed and unknown topics are refused');
select ok(not coalesce(tests.may_join('anon', 'dispatch'), false), 'anonymous callers join nothing');
delete from public.user_roles where user_id = '33333333-3333-4333-8333-333333333333' and role = 'doctor';
select ok(not tests.may_join('doctor_with', 'conversation:cc000000-0000-4000-8000-000000000001'),
  'a practitioner whose role was revoked no longer joins the conversation, token or not');

-- Changes and who sees them -----------------------------------------------------------------------
select tests.act_as('patient_a');
insert into public.messages (conversation_id, body) values ('cc000000-0000-4000-8000-000000000001', 'New symptom');
select tests.act_as_owner();
select is((select count(*)::int from private.realtime_changes
            where table_name = 'messages' and op = 'INSERT' and record ->> 'body' = 'New symptom'),
  1, 'a message insert is captured with its row');
select is((select array_agg(i order by i) from private.realtime_visible_to('public', 'messages',
           (select pk from private.realtime_changes where record ->> 'body' = 'New symptom'),
           jsonb_build_array(tests.claims('patient_b')::jsonb, tests.claims('patient_a')::jsonb, tests.claims('admin')::jsonb)) i),
  array[1, 2], 'only the member and the admin (by RLS) may see it; the non-member may not');
select is(current_setting('role'), 'none', 'the caller''s role is restored');
select is((select count(*)::int from private.realtime_events e where e.xid is null), 0, 'every event row carries its transaction id');

select * from finish();
rollback;
