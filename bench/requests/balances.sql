-- My balances: GET /rest/v1/rpc/my_balances, by a patient or (half the time) a practitioner.
\set who random(1, 2)
\if :who = 1
\set k random(1, :npractitioners)
select profile_id as me, claims from bench.practitioners where k = :k \gset
\else
\set k random(1, :npatients)
select id as me, claims from bench.patients where k = :k \gset
\endif
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/rpc/my_balances', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."my_balances"() pgrst_call) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
