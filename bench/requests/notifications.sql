-- My notifications: GET /rest/v1/notifications?user_id=eq.<me>&order=created_at.desc&limit=20 (patients and practitioners).
\set k random(1, :nmembers)
select user_id as me, claims from bench.members where k = :k \gset
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/notifications', true);
WITH pgrst_source AS (SELECT "public"."notifications".* FROM "public"."notifications" WHERE "public"."notifications"."user_id" = ':me' ORDER BY "public"."notifications"."created_at" DESC LIMIT 20 OFFSET 0) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
