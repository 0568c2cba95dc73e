#!/usr/bin/env bash
# The cost of crossing into the extension: microseconds per call of the hot functions
# (triage, scheduling, ledger) with realistic inputs, for this checkout's build against the
# build of BEFORE_REF (default: the commit before jsonb was read and built directly, 0.2.0's
# first boundary), both release builds, installed in turn in interleaved rounds (the library
# has one name per version, so only one can be installed at a time; the build lock is held
# exclusively for the whole run). Writes bench/boundary/REPORT.md.
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"
BEFORE_REF="${BEFORE_REF:-840279c}"
ROUNDS="${ROUNDS:-2}"
REPORT="$ROOT/bench/boundary/REPORT.md"
PG_CONFIG="/usr/lib/postgresql/$PG_MAJOR/bin/pg_config"
BEFORE_TARGET="$ROOT/target/boundary-before"

exec 9>"${CAREPLANE_BUILD_LOCK:-/tmp/careplane-build.lock}"
flock -x 9
bench_db boundary
git archive "$BEFORE_REF" | tar -x -C "$WORK" --one-top-level=before
# The other build reuses the compiled dependencies (a first build from nothing takes minutes).
[[ -d "$BEFORE_TARGET/release" || ! -d "$ROOT/target/release" ]] || { mkdir -p "$BEFORE_TARGET"; cp -a "$ROOT/target/release" "$BEFORE_TARGET/"; }
INSTALLED=""
restore_after() { [[ "$INSTALLED" == before ]] && install_build after; bench_cleanup; }
install_build() {  # install_build before|after
  INSTALLED="$1"
  local dir="$ROOT/pg_ext" target="$ROOT/target"
  [[ $1 == before ]] && { dir="$WORK/before/pg_ext"; target="$BEFORE_TARGET"; }
  (cd "$dir" && CARGO_TARGET_DIR="$target" cargo pgrx install --release --pg-config "$PG_CONFIG") > "$WORK/install-$1.log" 2>&1 \
    || { tail -20 "$WORK/install-$1.log" >&2; return 1; }
}
trap restore_after EXIT
echo "boundary bench: this checkout against $BEFORE_REF, $ROUNDS interleaved rounds"
install_build after
psql -d "$DB" -qc "create extension careplane" >/dev/null

# Inputs shaped as the RPCs build them: a week of opening hours and 90 appointments either side
# of a slot (booking_conflicts), 45 days with 300 busy periods (available_slots), a two-leg
# transfer and its decision (ledger_request, ledger_apply), a full set of observations (news2).
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<'SQL'
create table inputs (fn text primary key, input jsonb not null, calls int not null);
with schedule as (
  select jsonb_build_object('time_zone', 'Africa/Lagos', 'slot_minutes', 30, 'buffer_after_minutes', 10,
           'min_notice_minutes', 60, 'booking_horizon_days', 365,
           'weekly', (select jsonb_agg(jsonb_build_object('weekday', wd, 'start_time', '08:00', 'end_time', '17:00'))
                        from generate_series(1, 7) wd),
           'exceptions', '[]'::jsonb) as s),
busy as (
  select jsonb_agg(jsonb_build_object('start', t, 'end', t + interval '30 minutes') order by t) as b
    from generate_series(date_trunc('day', now()) + interval '1 day', date_trunc('day', now()) + interval '45 days', interval '150 minutes') t)
insert into inputs
select 'booking_conflicts', jsonb_build_object('schedule', s, 'status', 'booked',
         'practitioner_busy', (select jsonb_agg(e) from jsonb_array_elements(b) with ordinality x(e, n) where n <= 90),
         'patient_busy', (select jsonb_agg(e) from jsonb_array_elements(b) with ordinality x(e, n) where n <= 90),
         'now', now(), 'start', date_trunc('day', now()) + interval '3 days 9 hours',
         'end', date_trunc('day', now()) + interval '3 days 9 hours 30 minutes'), 20000 from schedule, busy
union all
select 'available_slots', jsonb_build_object('schedule', s, 'busy', b, 'now', now(),
         'from', date_trunc('day', now()), 'to', date_trunc('day', now()) + interval '45 days'), 200 from schedule, busy
union all
select 'ledger_request', jsonb_build_object('id', gen_random_uuid(), 'type', 'posted', 'kind', 'consultation_fee',
         'description', 'Consultation with Dr Eze', 'legs', jsonb_build_array(
           jsonb_build_object('account_id', '00000000-0000-4000-8000-000000000001', 'direction', 'debit', 'amount', 1500000, 'currency', 'NGN'),
           jsonb_build_object('account_id', '00000000-0000-4000-8000-000000000002', 'direction', 'credit', 'amount', 1500000, 'currency', 'NGN'))), 50000
union all
select 'news2', '{"respiration_rate": 22, "spo2": 95, "supplemental_oxygen": false, "systolic_bp": 105, "pulse": 115,
                  "consciousness": "A", "temperature": 38.05}', 50000;
insert into inputs
select 'ledger_apply', jsonb_build_object('request', careplane.ledger_request(input) -> 'request',
         'accounts', jsonb_build_array(
           jsonb_build_object('id', '00000000-0000-4000-8000-000000000001', 'currency', 'NGN', 'flags', 'none',
                              'debits_posted', 0, 'credits_posted', 0, 'debits_pending', 0, 'credits_pending', 0),
           jsonb_build_object('id', '00000000-0000-4000-8000-000000000002', 'currency', 'NGN', 'flags', 'none',
                              'debits_posted', 0, 'credits_posted', 0, 'debits_pending', 0, 'credits_pending', 0)),
         'now', now()), 50000
  from inputs where fn = 'ledger_request';
SQL
FUNCTIONS=(news2 booking_conflicts available_slots ledger_request ledger_apply)
per_call() {  # per_call FN → µs per call: one statement of many calls, after a warm-up in the same session
  local calls ms
  calls=$(psql -d "$DB" -tAc "select calls from inputs where fn = '$1'")
  ms=$(psql -d "$DB" -qAt -c "set max_parallel_workers_per_gather = 0" \
         -c "select count(careplane.$1(i.input)) from inputs i, generate_series(1, 20) g where i.fn = '$1' and g > 0" \
         -c '\timing on' \
         -c "select count(careplane.$1(i.input)) from inputs i, generate_series(1, $calls) g where i.fn = '$1' and g > 0" \
       | sed -nE 's/^Time: ([0-9.]+) ms.*/\1/p' | tail -1)
  awk -v ms="$ms" -v n="$calls" 'BEGIN { printf "%.2f", ms * 1e3 / n }'
}
for f in "${FUNCTIONS[@]}"; do : > "$WORK/before.$f"; : > "$WORK/after.$f"; done
for r in $(seq 1 "$ROUNDS"); do
  for build in before after; do
    install_build "$build"
    for f in "${FUNCTIONS[@]}"; do per_call "$f" >> "$WORK/$build.$f"; done
    echo "  round $r, $build: $(for f in "${FUNCTIONS[@]}"; do printf '%s %s µs  ' "$f" "$(tail -1 "$WORK/$build.$f")"; done)"
  done
done
rows=""
for f in "${FUNCTIONS[@]}"; do
  b=$(median < "$WORK/before.$f"); a=$(median < "$WORK/after.$f")
  rows+="| \`careplane.$f\` | $(psql -d "$DB" -tAc "select pg_column_size(input) from inputs where fn = '$f'") | $b | $a | $(ratio "$b" "$a")× |"$'\n'
done
cat > "$REPORT" <<MD
# Extension boundary benchmark

Generated by \`bench/boundary/run.sh\` on $(date -u +%Y-%m-%d), PostgreSQL
$(psql -d postgres -tAc 'show server_version' | awk '{print $1}'): microseconds per call of the hot functions with inputs shaped as
the RPCs build them, one backend, for the release build of \`$BEFORE_REF\` (arguments printed by
\`jsonb_out\` and parsed by serde_json, results printed by serde_json and parsed by \`jsonb_in\`)
and for this checkout's release build (\`pg_ext/src/jsonb.rs\`: arguments read from the binary
jsonb, results built with \`pushJsonbValue\`), installed in turn, $ROUNDS interleaved rounds, medians.
Machine: $(machine_note).

| function | input (bytes) | µs per call, $BEFORE_REF | µs per call, now | speed-up |
| --- | ---: | ---: | ---: | ---: |
$rows
MD
cat "$REPORT"
