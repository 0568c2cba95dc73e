-- Book then cancel: POST /rest/v1/rpc/book_appointment, then POST /rest/v1/rpc/cancel_appointment, as the patient; each
-- client its own free slot (bench.slots), booked and freed again each time. Two transactions, timed together.
select practitioner_id, slot_start, patient_id as me, claims from bench.slots where client = :client_id \gset
begin;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/book_appointment', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."book_appointment"("practitioner_id" := ':practitioner_id', "starts_at" := ':slot_start', "reason" := 'Follow-up') pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted, (SELECT id FROM pgrst_source) AS booked_id FROM (SELECT * FROM pgrst_source) _postgrest_t \gset
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/cancel_appointment', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."cancel_appointment"("appointment_id" := ':booked_id', "reason" := 'Changed my plans') pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
