#!/usr/bin/env bash
# Realtime relay benchmark: careplane's companion vs Socket.IO 4 on Node 20, in the same run,
# driven by the same Rust load generator (bench/realtime/loadgen.rs): CLIENTS websockets, each
# on its own user topic plus the shared `dispatch` topic, events produced by real database
# commits (one INSERT into private.realtime_events per transaction) at RATE per second, every
# SHARED_EVERY-th of them on the shared topic. Reports commit-to-client latency (p50/p99, from
# COMMIT returning in the generator to the frame arriving), server memory per connection
# ((RSS with every client joined − RSS idle) / clients) and server CPU during the measurement.
# Writes bench/realtime/REPORT.md.
#
#   bench/realtime/run.sh                        (make bench-realtime)
#   CLIENTS=10000 RATE=1000 MEASURE_SECONDS=20 WARMUP=5 SHARED_EVERY=1000 bench/realtime/run.sh  (defaults)
#   LOADGEN_CPUS=1 SERVER_CPUS=0 bench/realtime/run.sh   (pin with taskset; the same pinning for both
#                                                         servers; Postgres and Redis stay unpinned)
#   LOADGEN_THREADS=1 DRAIN_SECONDS=15 DRAIN_QUIET_SECONDS=3   (the generator: client loops, each an
#                                                         epoll loop over raw sockets; see loadgen.rs)
#
# One database of its own (dropped after); Postgres, Redis, the server and the generator share
# the machine's cores, as they would in the target figures (2 cores).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/realtime"
cd "$ROOT"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
CLIENTS="${CLIENTS:-10000}"
RATE="${RATE:-1000}"
SECONDS_MEASURED="${MEASURE_SECONDS:-20}"
WARMUP="${WARMUP:-5}"
SHARED_EVERY="${SHARED_EVERY:-1000}"
LOADGEN_CPUS="${LOADGEN_CPUS-1}"  # the reported layout: the generator on CPU 1, the servers free; LOADGEN_CPUS= to unpin
SERVER_CPUS="${SERVER_CPUS:-}"
export LOADGEN_THREADS="${LOADGEN_THREADS:-1}" DRAIN_SECONDS="${DRAIN_SECONDS:-15}" DRAIN_QUIET_SECONDS="${DRAIN_QUIET_SECONDS:-3}"
# taskset execs the command, so the pid the bench watches is the server's own.
PIN_SERVER=(); [[ -n "$SERVER_CPUS" ]] && PIN_SERVER=(taskset -c "$SERVER_CPUS")
PIN_LOADGEN=(); [[ -n "$LOADGEN_CPUS" ]] && PIN_LOADGEN=(taskset -c "$LOADGEN_CPUS")
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
SECRET="careplane-bench-realtime-secret-0123456789abcdef"
REPORT="$HERE/REPORT.md"
WORK="$(mktemp -d)"
PIDS=()
DBS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for db in "${DBS[@]}"; do psql -d postgres -qc "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
bold() { printf '\033[1m%s\033[0m\n' "$*"; }

# Each side holds CLIENTS sockets (and the generator as many): raise the descriptor limit.
ulimit -n "$(ulimit -Hn)"
(( $(ulimit -n) > CLIENTS + 1000 )) || { echo "ulimit -n $(ulimit -n) is too low for $CLIENTS clients" >&2; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[[ "$node_major" == 20 ]] || echo "    warning: Node $node_major; the comparison is specified against Node 20"

# PROFILE=debug: a quick smoke run of the scripts (figures from debug builds mean nothing).
PROFILE="${PROFILE:-release}"
flag="--release"; [[ "$PROFILE" == debug ]] && flag=""
bold "==> builds ($PROFILE) and the Socket.IO peer's packages"
cargo build $flag -q -p careplane-companion
cargo build $flag -q -p careplane-tests --example realtime_load
COMPANION="$ROOT/target/$PROFILE/careplane-companion"
LOADGEN="$ROOT/target/$PROFILE/examples/realtime_load"
(cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)

fresh_db() {  # name → a migrated database, its URL in $DB_URL (not echoed: a command substitution's
              # subshell would lose DBS, and cleanup would leave the database behind)
  local db="careplane_bench_rt_${1}_$$"
  DBS+=("$db")
  createdb "$db"
  DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db" "$COMPANION" migrate --compat sql/supabase_compat.sql --dir migrations >/dev/null
  DB_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
}

start() {  # log-file command… → prints "pid url"
  local log="$1"; shift
  "$@" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 200); do
    local url; url="$(grep -oE 'listening +http://[0-9.:]+' "$log" | awk '{print $2}' | head -1 || true)"
    [[ -n "$url" ]] && { echo "$pid $url"; return 0; }
    sleep 0.1
  done
  echo "server did not start:" >&2; cat "$log" >&2; exit 1
}

run_side() {  # target → JSON line in $WORK/<target>.json
  local target="$1" url pid db
  fresh_db "$target"; db="$DB_URL"
  if [[ "$target" == careplane ]]; then
    read -r pid url < <(start "$WORK/careplane.log" "${PIN_SERVER[@]}" env -i PATH="$PATH" BIND_ADDR=127.0.0.1:0 RUST_LOG=warn \
      DATABASE_URL="$db" REDIS_URL="$REDIS_URL" SUPABASE_JWT_SECRET="$SECRET" LEDGER_EXPIRY_INTERVAL_SECONDS=0 \
      REALTIME_REDIS_PREFIX="careplane-bench:$$" DATABASE_MAX_CONNECTIONS=16 "$COMPANION" serve)
  else
    read -r pid url < <(start "$WORK/socketio.log" "${PIN_SERVER[@]}" env DATABASE_URL="$db" SUPABASE_JWT_SECRET="$SECRET" \
      node "$HERE/socketio-server.js")
  fi
  bold "==> $target at $url (pid $pid): $CLIENTS clients, $RATE commits/s, ${SECONDS_MEASURED}s measured"
  TARGET="$target" URL="$url" SERVER_PID="$pid" CLIENTS="$CLIENTS" RATE="$RATE" MEASURE_SECONDS="$SECONDS_MEASURED" WARMUP="$WARMUP" \
    SHARED_EVERY="$SHARED_EVERY" DATABASE_URL="$db" SUPABASE_JWT_SECRET="$SECRET" "${PIN_LOADGEN[@]}" "$LOADGEN" | tail -1 > "$WORK/$target.json"
  cat "$WORK/$target.json"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

run_side careplane
# Let the first run's closed connections leave TIME_WAIT's share of the port range.
sleep 20
run_side socketio

LOADGEN_CPUS="$LOADGEN_CPUS" SERVER_CPUS="$SERVER_CPUS" \
  python3 "$HERE/report.py" "$WORK/careplane.json" "$WORK/socketio.json" "$REPORT" "$CLIENTS" "$RATE" "$SHARED_EVERY"
# The raw results beside the report (the per-stage figures and the short events are there).
cp "$WORK/careplane.json" "$HERE/careplane.json"; cp "$WORK/socketio.json" "$HERE/socketio.json"
