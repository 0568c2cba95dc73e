#!/usr/bin/env bash
# Where a statement's time goes inside the backend that runs it:
#
#   bench/profile.sh DB "select …" [SETUP_SQL]
#
# Runs SETUP_SQL, then the statement, in one session, with `perf record` (cpu-clock samples:
# this machine's virtual CPUs have no hardware counters) attached to that backend only, and
# prints the functions with the most samples, with and without their callees. Needs perf and
# the rights to attach to the server's processes (root, or kernel.perf_event_paranoid <= 1).
set -Eeuo pipefail
DB="$1"; SQL="$2"; SETUP="${3:-select 1}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
psql -d "$DB" -qAt -v ON_ERROR_STOP=1 >/dev/null <<SQL
$SETUP;
select pg_backend_pid() as pid \gset
\setenv BACKEND_PID :pid
\! perf record -q -e cpu-clock -F 2000 -g -p \$BACKEND_PID -o $OUT/perf.data > /dev/null 2>&1 & echo \$! > $OUT/perf.pid; sleep 1
$SQL;
\! kill -INT \$(cat $OUT/perf.pid); sleep 2
SQL
echo "## self (functions where the samples land)"
perf report -i "$OUT/perf.data" --no-children --stdio --percent-limit 1.5 -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | sed -E 's/ +\[\.\] / /' | head -25
echo "## with callees (inclusive)"
perf report -i "$OUT/perf.data" --children --stdio --percent-limit 4 -g none 2>/dev/null \
  | grep -E '^ +[0-9]' | sed -E 's/ +\[\.\] / /' | head -35
