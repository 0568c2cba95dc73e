-- The dispatch queue: GET /rest/v1/rpc/dispatch_queue?limit=50, by a dispatcher.
\set k random(1, :ndispatchers)
select id as me, claims from bench.dispatchers where k = :k \gset
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/rpc/dispatch_queue', true);
WITH pgrst_source AS (SELECT pgrst_call.* FROM "public"."dispatch_queue"() pgrst_call LIMIT 50 OFFSET 0) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
