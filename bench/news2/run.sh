#!/usr/bin/env bash
# NEWS2 over 1,000,000 stored observations: careplane.news2 (the rule in Rust, through the
# extension) against the same scoring written in SQL, in the same run. Equal totals are
# asserted row by row before anything is timed. Writes bench/news2/REPORT.md.
#
# Needs the careplane extension installed as a release build (make bench-news2 installs it).
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"
ROWS="${ROWS:-1000000}"
ROUNDS="${ROUNDS:-3}"
REPORT="$ROOT/bench/news2/REPORT.md"
install_release_extension
bench_db news2
psql -d "$DB" -qc "create extension careplane" >/dev/null
require_release_build

echo "news2 bench: $ROWS rows, $ROUNDS interleaved rounds"
# Observations as the product stores them (emergency_requests.reported_vitals): every band of
# every parameter, SpO2 scale 2 for a tenth (confirmed hypercapnic failure), temperatures with
# one or two decimals, and about 2 % of rows missing a parameter (their total is null).
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<SQL
select setseed(0.18) \g /dev/null
create table bench_vitals (id bigint generated always as identity primary key, vitals jsonb not null);
insert into bench_vitals (vitals)
select jsonb_strip_nulls(jsonb_build_object(
  'respiration_rate', case when g.missing < 0.01 then null else 6 + floor(random() * 24)::int end,
  'spo2', 80 + floor(random() * 21)::int,
  'spo2_scale', case when g.scale2 then 2 end,
  'hypercapnic_respiratory_failure', case when g.scale2 then true end,
  'supplemental_oxygen', case when g.missing > 0.99 then null else random() < 0.3 end,
  'systolic_bp', 80 + floor(random() * 150)::int,
  'pulse', 35 + floor(random() * 110)::int,
  'consciousness', (array['A', 'A', 'A', 'A', 'A', 'A', 'C', 'V', 'P', 'U'])[1 + floor(random() * 10)::int],
  'temperature', round((34.5 + random() * 5.5)::numeric, case when random() < 0.1 then 2 else 1 end)))
from (select random() < 0.1 as scale2, random() as missing from generate_series(1, $ROWS)) g;
vacuum analyze bench_vitals;

-- The same scoring in SQL (rules/src/triage.rs, bands as thresholds on the exact value); null
-- when a parameter is missing. Each field is extracted once per row (offset 0 keeps the
-- subquery from being flattened, which would extract a field once per use).
create view news2_sql as
select id,
       (case when rr is null then null when rr <= 8 then 3 when rr <= 11 then 1 when rr <= 20 then 0 when rr <= 24 then 2 else 3 end)
     + (case when spo2 is null then null
             when not scale2 then (case when spo2 <= 91 then 3 when spo2 <= 93 then 2 when spo2 <= 95 then 1 else 0 end)
             when spo2 <= 83 then 3 when spo2 <= 85 then 2 when spo2 <= 87 then 1 when spo2 <= 92 then 0
             when o2 is null then null when not o2 then 0
             when spo2 <= 94 then 1 when spo2 <= 96 then 2 else 3 end)
     + (case when o2 then 2 when not o2 then 0 end)
     + (case when sbp is null then null when sbp <= 90 then 3 when sbp <= 100 then 2 when sbp <= 110 then 1 when sbp <= 219 then 0 else 3 end)
     + (case when pulse is null then null when pulse <= 40 then 3 when pulse <= 50 then 1 when pulse <= 90 then 0
             when pulse <= 110 then 1 when pulse <= 130 then 2 else 3 end)
     + (case when acvpu is null then null when acvpu = 'A' then 0 else 3 end)
     + (case when temp is null then null when temp <= 35.0 then 3 when temp <= 36.0 then 1 when temp <= 38.0 then 0
             when temp <= 39.0 then 1 else 2 end) as total
  from (select id, (vitals ->> 'respiration_rate')::int as rr, (vitals ->> 'spo2')::int as spo2,
               coalesce((vitals ->> 'spo2_scale')::int, 1) = 2 as scale2, (vitals ->> 'supplemental_oxygen')::boolean as o2,
               (vitals ->> 'systolic_bp')::int as sbp, (vitals ->> 'pulse')::int as pulse, vitals ->> 'consciousness' as acvpu,
               (vitals ->> 'temperature')::numeric as temp
          from bench_vitals offset 0) v;
create view news2_ext as
select id, (careplane.news2(vitals) ->> 'total')::int as total from bench_vitals;
create view news2_ext_total as
select id, careplane.news2_total(vitals) as total from bench_vitals;
SQL

# Equal totals, row by row, before any timing.
read -r differ nulls total < <(psql -d "$DB" -tA -F' ' -c "
  select count(*) filter (where s.total is distinct from e.total or s.total is distinct from t.total),
         count(*) filter (where s.total is null), coalesce(sum(s.total), 0)
    from news2_sql s join news2_ext e using (id) join news2_ext_total t using (id)")
echo "  equal totals: $differ rows differ, $nulls incomplete, sum of totals $total"
[[ "$differ" == 0 ]] || { echo "careplane.news2 and the SQL scoring disagree on $differ rows" >&2; exit 1; }

SUM_SQL="select sum(total), count(total) from news2_sql"
SUM_EXT="select sum(total), count(total) from news2_ext"
SUM_TOTAL="select sum(total), count(total) from news2_ext_total"
# Warm-up (discarded): the table's pages read once, the library loaded.
seconds "$SUM_SQL" >/dev/null; seconds "select count(careplane.news2(vitals)) from bench_vitals where id <= 100000" >/dev/null
: > "$WORK/sql"; : > "$WORK/ext"; : > "$WORK/tot"; : > "$WORK/r_ext"; : > "$WORK/r_tot"; rounds_md=""
for r in $(seq 1 "$ROUNDS"); do
  s=$(seconds "$SUM_SQL"); e=$(seconds "$SUM_EXT"); t=$(seconds "$SUM_TOTAL")
  echo "$s" >> "$WORK/sql"; echo "$e" >> "$WORK/ext"; echo "$t" >> "$WORK/tot"
  ratio "$s" "$e" >> "$WORK/r_ext"; ratio "$s" "$t" >> "$WORK/r_tot"
  printf '  round %s: SQL %ss, careplane.news2 %ss (%s×), careplane.news2_total %ss (%s×)\n' "$r" "$s" "$e" "$(ratio "$s" "$e")" "$t" "$(ratio "$s" "$t")"
  rounds_md+="| $r | $s | $e | $(ratio "$s" "$e")× | $t | $(ratio "$s" "$t")× |"$'\n'
done
per_call() { awk -v s="$1" -v n="$ROWS" 'BEGIN { printf "%.2f", s * 1e6 / n }'; }
sql_s=$(median < "$WORK/sql"); ext_s=$(median < "$WORK/ext"); tot_s=$(median < "$WORK/tot")
r_ext=$(median < "$WORK/r_ext"); r_tot=$(median < "$WORK/r_tot")
cat > "$REPORT" <<MD
# NEWS2 benchmark

Generated by \`bench/news2/run.sh\` (\`make bench-news2\`) on $(date -u +%Y-%m-%d), PostgreSQL
$(psql -d postgres -tAc 'show server_version' | awk '{print $1}'), careplane $(psql -d "$DB" -tAc "select careplane.build_info()::text"),
$ROWS stored observations (jsonb, $nulls of them missing a parameter), one backend
(\`max_parallel_workers_per_gather = 0\`), JIT as configured (\`jit = $(psql -d "$DB" -tAc 'show jit')\`), a warm-up pass
of each, then $ROUNDS interleaved rounds. Machine: $(machine_note).

Each query sums the NEWS2 total of every row. Before timing, every row's total was compared:
**$differ rows differ** (sum of totals $total).

| scoring (median of rounds) | seconds | µs per row |
| --- | ---: | ---: |
| SQL \`CASE\` over the jsonb fields (baseline) | $sql_s | $(per_call "$sql_s") |
| \`careplane.news2(vitals) ->> 'total'\` | $ext_s | $(per_call "$ext_s") |
| \`careplane.news2_total(vitals)\` | $tot_s | $(per_call "$tot_s") |

| round | SQL s | news2 s | SQL / news2 | news2_total s | SQL / news2_total |
| ---: | ---: | ---: | ---: | ---: | ---: |
$rounds_md
Speed-up over SQL (median of the rounds' ratios): \`careplane.news2\` **${r_ext}×** (range
$(lowest < "$WORK/r_ext")–$(highest < "$WORK/r_ext")), \`careplane.news2_total\` **${r_tot}×** (range
$(lowest < "$WORK/r_tot")–$(highest < "$WORK/r_tot")). Target ≥ 2×: news2 **$(verdict "$r_ext" 2)**,
news2_total **$(verdict "$r_tot" 2)**.

Where the time goes (docs/benchmarks.md, "The extension boundary"): both functions read the
argument straight from the binary jsonb (\`pg_ext/src/binary.rs\`: typed fields, numbers decoded from
the numeric's binary form, unknown keys refused while iterating, no \`serde_json::Value\`, no call into
Postgres); \`careplane.news2\` then builds its 25-value answer as a \`JsonbValue\` tree in key order and
encodes it with one \`JsonbValueToJsonb\` call, which is most of its remaining cost (the answer is
about 600 bytes, the clinical response text included). The SQL baseline reads seven fields and
compares integers.
MD
cat "$REPORT"
