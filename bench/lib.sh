# Helpers shared by the database benchmarks (bench/*/run.sh source this file).
#
# Every benchmark measures a workload against its baseline in the same run, in interleaved
# rounds, and reports the median ratio with its range: the machine is shared, so absolute
# figures move from run to run, the ratios much less.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
PG_MAJOR="${PG_MAJOR:-15}"
PGBENCH="/usr/lib/postgresql/$PG_MAJOR/bin/pgbench"
COMPANION_BIN="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"

# bench_db NAME: a new database named careplane_bench_NAME_<pid>, dropped on exit (unless
# KEEP_DB is set); sets DB and WORK (a scratch directory).
bench_db() {
  DB="careplane_bench_$1_$$"
  WORK="$(mktemp -d)"
  trap bench_cleanup EXIT
  [[ -n "${KEEP_DB:-}" ]] && trap 'rm -rf "$WORK"' EXIT
  createdb "$DB"
}
bench_cleanup() { psql -d postgres -qc "drop database if exists \"$DB\" with (force)" >/dev/null 2>&1 || true; rm -rf "$WORK"; }

# The schema as deployed: compat layer and every migration, with the companion's runner.
bench_migrate() {
  DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "$COMPANION_BIN" migrate \
    --compat sql/supabase_compat.sql --dir migrations >/dev/null
}

# Builds and installs this checkout's extension as a release build, then keeps other installs
# out until the benchmark ends: installs on this machine serialize on CAREPLANE_BUILD_LOCK
# (exclusive to install, shared while the installed library is in use). SKIP_INSTALL=1 uses
# what is installed (require_release_build still checks it).
install_release_extension() {
  exec 9>"${CAREPLANE_BUILD_LOCK:-/tmp/careplane-build.lock}"
  if [[ -z "${SKIP_INSTALL:-}" ]]; then
    flock -x 9
    echo "installing the release build of the extension (log: /tmp/careplane-bench-install.log)"
    (cd "$ROOT/pg_ext" && cargo pgrx install --release --pg-config "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config") \
      > /tmp/careplane-bench-install.log 2>&1 || { tail -20 /tmp/careplane-bench-install.log >&2; return 1; }
  fi
  flock -s 9
}

# Refuses to measure a debug build of the extension (unoptimised: not what ships).
require_release_build() {
  local profile
  profile=$(psql -d "$DB" -tAc "select careplane.build_info() ->> 'profile'")
  if [[ "$profile" != "release" ]]; then
    echo "the installed careplane extension is a $profile build; install the release build (make db does)" >&2
    exit 1
  fi
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
lowest() { sort -g | head -1; }
highest() { sort -g | tail -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r >= t) ? "met" : "NOT met" }'; }

# pgbench_run NAME SCRIPT: $CLIENTS clients (2 threads) for $SECONDS_EACH s after a CHECKPOINT
# (each workload starts with the same full-page-write cost) → "tps p99_ms". A client that
# errors aborts the run.
pgbench_run() {
  local log="$WORK/$1.log"
  rm -f "$WORK/log-$1".*
  psql -d "$DB" -qc "checkpoint"
  "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" -l --log-prefix="$WORK/log-$1" -f "$2" "$DB" > "$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
  ! grep -q 'aborted' "$log" || { cat "$log" >&2; exit 1; }
  local tps p99
  tps=$(grep -E '^tps = ' "$log" | sed -E 's/tps = ([0-9.]+).*/\1/')
  p99=$(cat "$WORK/log-$1".* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]/1000}')
  echo "$tps $p99"
}

# seconds SQL: wall-clock seconds of one statement in a fresh session (its output discarded).
seconds() {
  local t0 t1
  t0=$(date +%s.%N)
  psql -d "$DB" -v ON_ERROR_STOP=1 -qAt -c "set max_parallel_workers_per_gather = 0" -c "$1" >/dev/null
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

# Function-level profile: `profile_on` before a run (times every function call in $DB:
# track_functions = all), then `profile_rows SCHEMA FUNC` prints markdown table rows, per call
# of SCHEMA.FUNC: each function's calls, total and self milliseconds, by self time (self: the SQL
# it runs directly, inserts and the triggers they fire included; the functions it calls excluded).
profile_on() {
  psql -d "$DB" -qc "alter database \"$DB\" set track_functions = 'all'" -c "select pg_stat_reset()" >/dev/null
}
profile_rows() {
  sleep 1  # backends flush their statistics as they exit
  psql -d "$DB" -tA -F' | ' -c "
    with root as (select calls from pg_stat_user_functions where schemaname = '$1' and funcname = '$2')
    select '| ' || schemaname || '.' || funcname, round(f.calls::numeric / root.calls, 2), round((total_time / root.calls)::numeric, 3),
           round((self_time / root.calls)::numeric, 3) || ' |'
      from pg_stat_user_functions f, root order by self_time desc limit ${3:-14}"
}
profile_calls() { psql -d "$DB" -tAc "select calls from pg_stat_user_functions where schemaname = '$1' and funcname = '$2'"; }

# What else the machine was doing: load average and the busiest other processes.
machine_note() {
  echo "$(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end; busiest other processes then: $(
    ps -eo pcpu=,comm= --sort=-pcpu | awk '$1 > 5 {printf "%s%s (%s%%)", sep, $2, $1; sep=", "}' | head -c 300)"
}
