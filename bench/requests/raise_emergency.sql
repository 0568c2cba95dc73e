-- Raise an emergency: POST /rest/v1/rpc/raise_emergency {lat, lon, description, vitals}, by a patient; then the requester
-- cancels it (POST /rest/v1/rpc/set_emergency_status), so the open queue stays as the seed left it. Timed together.
\set k random(1, :npatients)
select id as me, claims from bench.patients where k = :k \gset
begin;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/raise_emergency', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."raise_emergency"("lat" := 6.45, "lon" := 3.39, "description" := 'Chest pain and shortness of breath', "vitals" := '{"respiration_rate": 22, "spo2": 95, "supplemental_oxygen": false, "systolic_bp": 105, "pulse": 115, "consciousness": "A", "temperature": 38.05}') pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted, (SELECT id FROM pgrst_source) AS raised_id FROM (SELECT * FROM pgrst_source) _postgrest_t \gset
commit;
begin;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/rpc/set_emergency_status', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."set_emergency_status"("request_id" := ':raised_id', "status" := 'cancelled') pgrst_call) SELECT null::bigint AS total_result_set, 1 AS page_total, coalesce(json_agg(_postgrest_t)->0, 'null') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
