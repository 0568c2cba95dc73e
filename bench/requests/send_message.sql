-- Send a message: POST /rest/v1/messages {conversation_id, body}, Prefer: return=representation, by a member.
\set k random(1, :nmembers)
select conversation_id, user_id as me, claims from bench.members where k = :k \gset
begin;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'POST', true), set_config('request.path', '/messages', true);
WITH pgrst_source AS (INSERT INTO "public"."messages"("body", "conversation_id") SELECT "pgrst_body"."body", "pgrst_body"."conversation_id" FROM (SELECT '{"conversation_id": ":conversation_id", "body": "See you at the consultation."}'::json AS json_data) pgrst_payload, LATERAL (SELECT "body", "conversation_id" FROM json_to_record(pgrst_payload.json_data) AS _("body" text, "conversation_id" uuid) LIMIT 1) pgrst_body RETURNING "public"."messages".*) SELECT '' AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
