-- My upcoming appointments. A patient: GET /rest/v1/appointments?patient_id=eq.<me>&period=nxl.[now,now]&order=period.asc&limit=20
-- A practitioner (1 in 5): the same with practitioner_id=eq.<their practitioner record>.
\set who random(1, 5)
\if :who = 1
\set k random(1, :npractitioners)
select profile_id as me, id as filter_id, claims, 'practitioner_id' as filter_column from bench.practitioners where k = :k \gset
\else
\set k random(1, :npatients)
select id as me, id as filter_id, claims, 'patient_id' as filter_column from bench.patients where k = :k \gset
\endif
begin isolation level read committed read only;
set local role authenticated;
select set_config('request.jwt.claims', ':claims', true), set_config('request.method', 'GET', true), set_config('request.path', '/appointments', true);
WITH pgrst_source AS (SELECT "public"."appointments".* FROM "public"."appointments" WHERE "public"."appointments".":filter_column" = ':filter_id' AND "public"."appointments"."period" &> tstzrange(now(), now(), '[]') ORDER BY "public"."appointments"."period" ASC LIMIT 20 OFFSET 0) SELECT null::bigint AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, nullif(current_setting('response.headers', true), '') AS response_headers, nullif(current_setting('response.status', true), '') AS response_status, '' AS response_inserted FROM (SELECT * FROM pgrst_source) _postgrest_t;
commit;
