-- A week of slots: POST /rest/v1/rpc/available_slots {practitioner_id, from_ts: tomorrow, to_ts: + 7 days}, by a patient.
\set k random(1, :npatients)
select id as me, claims from bench.patients where k = :k \gset
\set p random(1, :npractitioners)
select id as practitioner from bench.practitioners where k = :p \gset
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/available_slots', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."available_slots"("practitioner_id" := ':practitioner', "from_ts" := date_trunc('day', now()) + interval '1 day', "to_ts" := date_trunc('day', now()) + interval '8 days') pgrst_call) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
