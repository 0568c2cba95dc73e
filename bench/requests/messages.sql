-- The last 50 messages of a conversation: GET /rest/v1/messages?conversation_id=eq.<id>&order=created_at.desc&limit=50, by a member.
\set k random(1, :nmembers)
select conversation_id, user_id as me, claims from bench.members where k = :k \gset
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/messages', true);
WITH pgrst_source AS (SELECT "public"."messages".* FROM "public"."messages" WHERE "public"."messages"."conversation_id" = ':conversation_id' ORDER BY "public"."messages"."created_at" DESC LIMIT 50 OFFSET 0) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
