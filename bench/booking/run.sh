#!/usr/bin/env bash
# book_appointment at 8 clients, each transaction run the way PostgREST runs an RPC (a
# transaction, `set local role authenticated`, the JWT claims and request settings as
# transaction-local settings, the call), against a raw INSERT of one appointment row in the
# same run, with pgbench, in interleaved rounds. Writes bench/booking/REPORT.md.
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"
CLIENTS="${CLIENTS:-8}"
SECONDS_EACH="${SECONDS_EACH:-10}"
ROUNDS="${ROUNDS:-3}"
REPORT="$ROOT/bench/booking/REPORT.md"
((CLIENTS <= 10)) || { echo "at most 10 clients (ids are made from the client number)" >&2; exit 2; }
install_release_extension
bench_db booking
bench_migrate
require_release_build

# Each client books for its own patient into its own practitioner's calendar (open every day,
# 00:00–23:30 UTC, 30-minute slots, no notice needed), the next free slot each time: the
# bookings never conflict, as most real bookings do not. The raw INSERTs go to other
# practitioners and patients, so both workloads store the same kind of row.
# Ids (last group 000000000k0c for client c): patients 00000000-…, k = 1 (RPC) / 2 (raw);
# practitioners b0000000-…, k = 1 / 2; the practitioners' own profiles k = 3 / 4.
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<SQL
create schema bench;
insert into auth.users (id, aud, role, email, raw_user_meta_data)
select ('00000000-0000-4000-8000-000000000' || k || '0' || c)::uuid, 'authenticated', 'authenticated',
       'bench' || k || c || '@careplane.test', jsonb_build_object('full_name', 'Bench ' || k || c, 'time_zone', 'UTC')
  from generate_series(0, $CLIENTS - 1) c, generate_series(1, 4) k;
insert into public.user_roles (user_id, role)
select ('00000000-0000-4000-8000-000000000' || k || '0' || c)::uuid, 'doctor'
  from generate_series(0, $CLIENTS - 1) c, generate_series(3, 4) k;
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, slot_minutes,
                                  min_notice_minutes, booking_horizon_days, time_zone)
select ('b0000000-0000-4000-8000-000000000' || k || '0' || c)::uuid, ('00000000-0000-4000-8000-000000000' || k + 2 || '0' || c)::uuid,
       'doctor', 'Dr Bench ' || k || c, 1500000, 'NGN', 30, 0, 730, 'UTC'
  from generate_series(0, $CLIENTS - 1) c, generate_series(1, 2) k;
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
select p.id, wd, '00:00', '23:30' from public.practitioners p, generate_series(1, 7) wd;
-- The n-th slot from tomorrow: 47 a day.
create function bench.slot_at(n bigint) returns timestamptz language sql stable as
  \$\$ select date_trunc('day', now()) + interval '1 day' + make_interval(days => (n / 47)::int, mins => (n % 47)::int * 30) \$\$;
select format('create sequence bench.seq_%s_%s', w, c) from generate_series(0, $CLIENTS - 1) c, (values ('rpc'), ('raw')) ws(w) \gexec
grant usage on schema bench to authenticated;
grant usage on all sequences in schema bench to authenticated;
grant execute on function bench.slot_at(bigint) to authenticated;
vacuum analyze;
SQL

# As PostgREST runs POST /rpc/book_appointment for a signed-in patient (its claims, method
# and path as transaction-local settings; the result read as JSON).
cat > "$WORK/rpc.sql" <<'SQL'
begin;
set local role authenticated;
select set_config('request.jwt.claims', '{"sub": "00000000-0000-4000-8000-00000000010:client_id", "role": "authenticated", "aud": "authenticated"}', true),
       set_config('request.method', 'POST', true), set_config('request.path', '/rpc/book_appointment', true);
select to_jsonb(b) from public.book_appointment(practitioner_id => 'b0000000-0000-4000-8000-00000000010:client_id',
                                                starts_at => bench.slot_at(nextval('bench.seq_rpc_:client_id'))) b;
commit;
SQL
# The baseline: one appointment row stored, as the table's owner (no checks beyond the table's).
cat > "$WORK/raw.sql" <<'SQL'
begin;
insert into public.appointments (patient_id, practitioner_id, period, status, created_by)
select '00000000-0000-4000-8000-00000000020:client_id', 'b0000000-0000-4000-8000-00000000020:client_id',
       tstzrange(t, t + interval '30 minutes'), 'booked', '00000000-0000-4000-8000-00000000020:client_id'
  from (select bench.slot_at(nextval('bench.seq_raw_:client_id')) as t) s;
commit;
SQL

run() { pgbench_run "$1" "$WORK/$1.sql"; }

echo "booking bench: $CLIENTS clients, $ROUNDS interleaved rounds of ${SECONDS_EACH}s per workload"
SECONDS_EACH=3 run raw >/dev/null; SECONDS_EACH=3 run rpc >/dev/null
: > "$WORK/raw.tps"; : > "$WORK/rpc.tps"; : > "$WORK/raw.p99"; : > "$WORK/rpc.p99"; : > "$WORK/ratios"; rounds_md=""
for r in $(seq 1 "$ROUNDS"); do
  read -r raw_tps raw_p99 < <(run raw)
  read -r rpc_tps rpc_p99 < <(run rpc)
  echo "$raw_tps" >> "$WORK/raw.tps"; echo "$rpc_tps" >> "$WORK/rpc.tps"
  echo "$raw_p99" >> "$WORK/raw.p99"; echo "$rpc_p99" >> "$WORK/rpc.p99"; ratio "$rpc_tps" "$raw_tps" >> "$WORK/ratios"
  printf '  round %s: raw %8.1f tx/s, book_appointment %8.1f tx/s, ratio %s\n' "$r" "$raw_tps" "$rpc_tps" "$(ratio "$rpc_tps" "$raw_tps")"
  rounds_md+="| $r | $(printf '%.0f' "$raw_tps") | $(printf '%.0f' "$rpc_tps") | $(ratio "$rpc_tps" "$raw_tps")× |"$'\n'
done
r=$(median < "$WORK/ratios")
# Where a booking's time goes: one more run of the RPC workload with every function timed
# (track_functions = all; pg_stat_user_functions), per booking.
profile_on
SECONDS_EACH=5 run rpc > "$WORK/profile.tps"
profile_md=$(profile_rows public book_appointment)
bookings_profiled=$(profile_calls public book_appointment)
read -r booked consultations outbox < <(psql -d "$DB" -tA -F' ' -c "
  select (select count(*) from public.appointments a join public.practitioners p on p.id = a.practitioner_id where p.display_name like 'Dr Bench 1%'),
         (select count(*) from public.consultations), (select count(*) from private.outbox)")
cat > "$REPORT" <<MD
# book_appointment benchmark

Generated by \`bench/booking/run.sh\` (\`make bench-booking\`) on $(date -u +%Y-%m-%d), PostgreSQL
$(psql -d postgres -tAc 'show server_version' | awk '{print $1}'), careplane $(psql -d "$DB" -tAc "select careplane.build_info()::text"),
pgbench with $CLIENTS clients (2 threads), a 3 s warm-up of each, then $ROUNDS interleaved rounds of
${SECONDS_EACH} s per workload, each after a \`CHECKPOINT\`. Machine: $(machine_note).

| workload (median of rounds) | tx/s | p99 latency (ms) |
| --- | ---: | ---: |
| raw \`INSERT\` of one appointment row, as the owner (baseline) | $(median < "$WORK/raw.tps") | $(median < "$WORK/raw.p99") |
| \`public.book_appointment\` as PostgREST runs it | $(median < "$WORK/rpc.tps") | $(median < "$WORK/rpc.p99") |

| round | raw tx/s | book_appointment tx/s | ratio |
| ---: | ---: | ---: | ---: |
$rounds_md
Ratio book_appointment / raw insert (median of the rounds' ratios): **${r}×**, range
$(lowest < "$WORK/ratios")–$(highest < "$WORK/ratios") (target ≥ 0.5×: **$(verdict "$r" 0.5)**). Stored by the RPC workload:
$booked appointments, $consultations consultations (each with its conversation and members), $outbox
outbox rows, besides realtime events, notifications and audit rows.

A booking, per transaction: the claims and role set, the practitioner locked, the idempotency
lookup, \`careplane.plan_booking\` (role, relationship, patient checks), the schedule and busy time
read and \`careplane.booking_conflicts\`, the insert (exclusion constraints, audit), the
consultation, its conversation and two members, two realtime events, two notifications and the
outbox rows; the baseline is the insert alone.

Where a booking's time goes: a further 5 s run of the RPC workload with \`track_functions = all\`
($bookings_profiled bookings, $(cut -d' ' -f1 "$WORK/profile.tps") tx/s), per booking, by time spent in the function itself
(SQL it runs directly, inserts and the triggers they fire included; the functions it calls excluded):

| function | calls per booking | ms per booking, total | ms per booking, self |
| --- | ---: | ---: | ---: |
$profile_md

The rest of a transaction's latency is outside any function: the round trips, \`set local role\`
and the settings, and the commit (its WAL flush, shared by the 8 clients).
MD
cat "$REPORT"
