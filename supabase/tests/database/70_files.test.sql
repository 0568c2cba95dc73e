-- Medical files: the persona matrix on storage.objects (read, write, delete, per bucket), run
-- as PostgREST and Supabase Storage run a request (set local role + request.jwt.claims), and
-- what public.attachments, completion and the access log add. public.attachments' own matrix
-- is in 10_security_matrix. helpers/files_world.psql says which files exist.
begin;
set local search_path = extensions, public;
\ir helpers/world.psql
\ir helpers/files_world.psql

create table tests.object_expectations (
  bucket text, op text, probe text,
  anon text, patient_a text, patient_b text, doctor_with text, doctor_without text,
  dispatcher text, responder text, admin text,
  primary key (bucket, op)
);

-- select: the bucket's objects the persona sees · insert: a new object in the world's folder
-- of that bucket (patient_a's records, consultation c1, conversation cc) with the persona as
-- owner · update: every object of the bucket · delete: every object of the bucket.
insert into tests.object_expectations values
--  bucket                 op        probe (folder)                                     anon pa  pb  dw  dwo disp resp admin
('medical-records',     'select', null,                                               '0','2','1','2','0','0','0','0'),
('medical-records',     'insert', '11111111-1111-4111-8111-111111111111',             '0','1','0','0','0','0','0','0'),
('medical-records',     'update', null,                                               '0','0','0','0','0','0','0','0'),
('medical-records',     'delete', null,                                               '0','2','1','0','0','0','0','0'),
('consultation-files',  'select', null,                                               '0','1','0','1','0','0','0','1'),
('consultation-files',  'insert', 'c1000000-0000-4000-8000-000000000001',             '0','0','0','1','0','0','0','0'),
('consultation-files',  'update', null,                                               '0','0','0','0','0','0','0','0'),
('consultation-files',  'delete', null,                                               '0','0','0','1','0','0','0','0'),
('message-attachments', 'select', null,                                               '0','1','0','1','0','0','0','1'),
('message-attachments', 'insert', 'cc000000-0000-4000-8000-000000000001',             '0','1','0','1','0','0','0','0'),
('message-attachments', 'update', null,                                               '0','0','0','0','0','0','0','0'),
('message-attachments', 'delete', null,                                               '0','1','0','0','0','0','0','0');

select plan((select count(*)::int * 8 from tests.object_expectations) + 24);

select is(
  tests.attempt(p.name, case e.op
    when 'select' then format('select count(*) from storage.objects where bucket_id = %L', e.bucket)
    when 'insert' then format('insert into storage.objects (bucket_id, name, owner, owner_id) values (%L, %L, auth.uid(), auth.uid()::text)',
                              e.bucket, e.probe || '/ab000000-0000-4000-8000-00000000000a/new.pdf')
    when 'update' then format('update storage.objects set metadata = metadata where bucket_id = %L', e.bucket)
    when 'delete' then format('delete from storage.objects where bucket_id = %L', e.bucket)
  end),
  (array[e.anon, e.patient_a, e.patient_b, e.doctor_with, e.doctor_without, e.dispatcher, e.responder, e.admin])[p.ord],
  format('%s: %s storage.objects in %s', p.name, e.op, e.bucket))
from tests.object_expectations e cross join tests.personas p
order by e.bucket, e.op, p.ord;

-- The buckets: private, with Supabase's limits ----------------------------------------------------
select is((select count(*)::int from storage.buckets
            where id in ('medical-records', 'consultation-files', 'message-attachments')
              and public = false and file_size_limit > 0 and cardinality(allowed_mime_types) > 0),
          3, 'the three buckets are private and carry size and type limits');

-- Supabase's helper functions, as Storage defines them -----------------------------------------------
select is(storage.foldername('a/b/c.pdf'), array['a', 'b'], 'storage.foldername: every folder');
select is(storage.filename('a/b/c.tar.gz'), 'c.tar.gz', 'storage.filename: the last segment');
select is(storage.extension('a/b/c.tar.gz'), 'gz', 'storage.extension: after the last dot');
select is(access.object_folder('not-a-uuid/x/y.pdf'), null, 'a folder that names no uuid names no owner');

-- Writes that the matrix does not show -------------------------------------------------------------
select is(tests.attempt('patient_a',
  $$insert into storage.objects (bucket_id, name, owner_id) values ('medical-records',
    '11111111-1111-4111-8111-111111111111/ab000000-0000-4000-8000-00000000000b/x.pdf', '33333333-3333-4333-8333-333333333333')$$),
  '0', 'an object cannot be uploaded in someone else''s name');
select is(tests.attempt('patient_a',
  $$insert into storage.objects (bucket_id, name, owner_id) values ('some-public-bucket',
    '11111111-1111-4111-8111-111111111111/x.pdf', auth.uid()::text)$$),
  '0', 'the policies open no other bucket');
select is(tests.attempt('patient_b',
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, patient_id) values ('medical-records',
    '11111111-1111-4111-8111-111111111111/ab000000-0000-4000-8000-00000000000c/x.pdf', 'x.pdf', 'application/pdf', 10, '11111111-1111-4111-8111-111111111111')$$),
  '0', 'another patient cannot attach to a patient''s records');
select is(tests.attempt('doctor_with',
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, message_id) values ('message-attachments',
    'cc000000-0000-4000-8000-000000000001/ab000000-0000-4000-8000-00000000000d/x.pdf', 'x.pdf', 'application/pdf', 10, 'e1000000-0000-4000-8000-000000000001')$$),
  '0', 'a member cannot attach files to another member''s message');
select is(tests.attempt('doctor_with',
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, message_id) values ('message-attachments',
    'cc000000-0000-4000-8000-000000000001/ab000000-0000-4000-8000-00000000000e/x.pdf', 'x.pdf', 'application/pdf', 10, 'e2000000-0000-4000-8000-000000000002')$$),
  '1', 'a member attaches files to their own message');
select is(tests.attempt('patient_a',
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, patient_id) values ('medical-records',
    '22222222-2222-4222-8222-222222222222/ab000000-0000-4000-8000-00000000000f/x.pdf', 'x.pdf', 'application/pdf', 10, '11111111-1111-4111-8111-111111111111')$$),
  '0', 'an attachment''s object lies in its owner''s folder (policy: not a folder the caller writes)');
select throws_ok(
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, uploaded_by, patient_id) values ('medical-records',
    '22222222-2222-4222-8222-222222222222/ab000000-0000-4000-8000-000000000010/x.pdf', 'x.pdf', 'application/pdf', 10,
    '11111111-1111-4111-8111-111111111111', '11111111-1111-4111-8111-111111111111')$$,
  '23514', null, 'an attachment''s object lies in its owner''s folder (constraint, whoever writes)');
select is(tests.attempt('patient_a',
  $$insert into public.attachments (bucket_id, object_name, file_name, content_type, size_bytes, patient_id, status) values ('medical-records',
    '11111111-1111-4111-8111-111111111111/ab000000-0000-4000-8000-000000000011/x.pdf', 'x.pdf', 'application/pdf', 10, auth.uid(), 'ready')$$),
  '0', 'an uploader cannot mark their own upload ready');
select is(tests.attempt('patient_b', $$select count(*) from public.attachments where id = 'f5000000-0000-4000-8000-000000000005'$$),
  '0', 'a pending upload is invisible to everyone but its uploader');
select is(tests.attempt('doctor_with', $$select count(*) from public.attachments where id = 'f5000000-0000-4000-8000-000000000005'$$),
  '0', 'a pending upload is invisible even to the care team');

-- A clinician whose role is revoked loses the care team's files at once ---------------------------
select is(tests.attempt('doctor_with', tests.fresh_claims('doctor_with'), $$select count(*) from storage.objects$$),
  '4', 'the care-team clinician sees the patient''s records, the consultation''s files and the conversation''s');
delete from public.user_roles where user_id = '33333333-3333-4333-8333-333333333333' and role = 'doctor';
select is(tests.attempt('doctor_with', $$select count(*) from storage.objects$$),
  '0', 'with the role revoked, the same token sees no file');

-- Completion ---------------------------------------------------------------------------------------
select throws_ok(
  $$select private.complete_attachment('f5000000-0000-4000-8000-000000000005', '22222222-2222-4222-8222-222222222222', sha256('x'), '"e"')$$,
  'PT404', null, 'only the uploader''s upload is completed');
select is((private.complete_attachment('f5000000-0000-4000-8000-000000000005', '11111111-1111-4111-8111-111111111111', sha256('x'), '"e"')).status,
  'ready', 'completing makes the upload ready');
select is((select metadata ->> 'mimetype' from storage.objects where name like '%/f5000000-0000-4000-8000-000000000005/%'),
  'image/png', 'the object gets Supabase''s metadata');

insert into public.attachments (id, bucket_id, object_name, file_name, content_type, size_bytes, uploaded_by, consultation_id, message_id) values
  ('f6000000-0000-4000-8000-000000000006', 'consultation-files', 'c1000000-0000-4000-8000-000000000001/f6000000-0000-4000-8000-000000000006/plan.pdf',
   'plan.pdf', 'application/pdf', 10, '33333333-3333-4333-8333-333333333333', 'c1000000-0000-4000-8000-000000000001', null),
  ('f7000000-0000-4000-8000-000000000007', 'message-attachments', 'cc000000-0000-4000-8000-000000000001/f7000000-0000-4000-8000-000000000007/scan.pdf',
   'scan.pdf', 'application/pdf', 10, '11111111-1111-4111-8111-111111111111', null, 'e1000000-0000-4000-8000-000000000001');
select private.complete_attachment('f6000000-0000-4000-8000-000000000006', '33333333-3333-4333-8333-333333333333', sha256('p'), null);
select private.complete_attachment('f7000000-0000-4000-8000-000000000007', '11111111-1111-4111-8111-111111111111', sha256('s'), null);
select is((select count(*)::int from private.realtime_events
            where topic = 'consultation:c1000000-0000-4000-8000-000000000001' and event = 'consultation:updated'
              and payload ->> 'attachment_id' = 'f6000000-0000-4000-8000-000000000006'),
  1, 'a consultation file announces consultation:updated on the consultation''s topic');
select set_eq(
  $$select topic from private.realtime_events where event = 'message:new' and payload ->> 'attachment_id' = 'f7000000-0000-4000-8000-000000000007'$$,
  array['conversation:cc000000-0000-4000-8000-000000000001'],
  'a message attachment announces message:new on the conversation''s topic');

-- The access log ----------------------------------------------------------------------------------
select private.log_file_access('11111111-1111-4111-8111-111111111111', 'patient', 'download_url', 'granted',
                               'f1000000-0000-4000-8000-000000000001', 'medical-records', null);
select throws_ok($$update private.file_access_log set outcome = 'denied'$$, '42501', null, 'the access log is append-only');
select is(tests.attempt('patient_a', $$select count(*) from private.file_access_log$$), '0', 'no API role reads the access log');

select * from finish();
rollback;
