#!/usr/bin/env bash
# `make seed-large`: a realistically large careplane database (scripts/seed-large.sql says what
# is in it) in a database of its own, LARGE_DB (default careplane_large), made as `make db`
# makes one (compat layer, the extension, every migration; no demo seed), then loaded
# deterministically from SEED (an integer, default 18), VACUUM ANALYZEd and counted.
#
# It only ever drops a database it made itself (marked by a comment on the database): it
# refuses the development database, the test and benchmark databases, and any database of
# that name it did not make. SKIP_INSTALL=1 uses the extension already installed (it must
# be the release build).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
PG_MAJOR="${PG_MAJOR:-15}"
LARGE_DB="${LARGE_DB:-careplane_large}"
SEED="${SEED:-18}"
COMPANION_BIN="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"
MARK="careplane seed-large"

[[ "$SEED" =~ ^[0-9]{1,9}$ ]] || { echo "SEED must be an integer of at most 9 digits, not '$SEED'" >&2; exit 2; }
[[ "$LARGE_DB" =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || { echo "LARGE_DB must be a plain lower-case name, not '$LARGE_DB'" >&2; exit 2; }
case "$LARGE_DB" in
  careplane|postgres|template0|template1|careplane_test_*|careplane_bench_*|careplane_absent)
    echo "refusing LARGE_DB=$LARGE_DB: that name belongs to the development, test or benchmark databases" >&2; exit 2 ;;
esac
[[ -x "$COMPANION_BIN" ]] || { echo "no companion binary at $COMPANION_BIN (make seed-large builds it)" >&2; exit 1; }

psql_q() { psql -X -v ON_ERROR_STOP=1 -qtA "$@"; }
stamp() { while IFS= read -r line; do printf '[%s +%4ss] %s\n' "$(date +%T)" "$SECONDS" "$line"; done; }

# The extension: the release build, installed under the machine's build lock (then held shared
# while the load calls it, so nobody installs another build under it).
exec 9>"${CAREPLANE_BUILD_LOCK:-/tmp/careplane-build.lock}"
if [[ -z "${SKIP_INSTALL:-}" ]]; then
  flock -x 9
  echo "installing the release build of the extension (log: /tmp/careplane-seed-large-install.log)"
  (cd pg_ext && cargo pgrx install --release --pg-config "/usr/lib/postgresql/$PG_MAJOR/bin/pg_config") \
    > /tmp/careplane-seed-large-install.log 2>&1 || { tail -20 /tmp/careplane-seed-large-install.log >&2; exit 1; }
fi
flock -s 9

exists=$(psql_q -d postgres -c "select count(*) from pg_database where datname = '$LARGE_DB'")
if [[ "$exists" == 1 ]]; then
  comment=$(psql_q -d postgres -c "select shobj_description(oid, 'pg_database') from pg_database where datname = '$LARGE_DB'")
  if [[ "$comment" != "$MARK"* ]]; then
    echo "database $LARGE_DB exists and was not made by seed-large: refusing to drop it (choose another LARGE_DB)" >&2
    exit 1
  fi
  echo "dropping the earlier $LARGE_DB ($comment)"
  psql_q -d postgres -c "drop database \"$LARGE_DB\" with (force)"
fi
createdb "$LARGE_DB"
psql_q -d postgres -c "comment on database \"$LARGE_DB\" is '$MARK, SEED=$SEED'"

echo "database $LARGE_DB: compat layer, extension, migrations" | stamp
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$LARGE_DB" "$COMPANION_BIN" migrate \
  --compat sql/supabase_compat.sql --dir migrations > /dev/null
profile=$(psql_q -d "$LARGE_DB" -c "select careplane.build_info() ->> 'profile'")
[[ "$profile" == release ]] || { echo "the installed careplane extension is a $profile build; seed-large wants the release build" >&2; exit 1; }

echo "loading (SEED=$SEED)" | stamp
# setseed takes a number in [-1, 1].
psql -X -v ON_ERROR_STOP=1 -q -v seed="$(awk -v s="$SEED" 'BEGIN { printf "%.9f", (s % 1000000000) / 1000000000 }')" \
  -d "$LARGE_DB" -f scripts/seed-large.sql 2>&1 | stamp
echo "vacuum analyze" | stamp
psql_q -d "$LARGE_DB" -c "vacuum (analyze)"

echo "what is in $LARGE_DB:" | stamp
psql -X -v ON_ERROR_STOP=1 -d "$LARGE_DB" -c "
  select t as table, to_char(n, 'FM9,999,999') as rows from (values
    ('auth.users', (select count(*) from auth.users)), ('public.practitioners', (select count(*) from public.practitioners)),
    ('public.availability_rules', (select count(*) from public.availability_rules)),
    ('public.appointments', (select count(*) from public.appointments)), ('public.consultations', (select count(*) from public.consultations)),
    ('public.conversations', (select count(*) from public.conversations)), ('public.messages', (select count(*) from public.messages)),
    ('public.message_reads', (select count(*) from public.message_reads)), ('public.notifications', (select count(*) from public.notifications)),
    ('public.emergency_requests', (select count(*) from public.emergency_requests)), ('public.payments', (select count(*) from public.payments)),
    ('public.ledger_transfers', (select count(*) from public.ledger_transfers)), ('public.ledger_entries', (select count(*) from public.ledger_entries)),
    ('private.audit_log', (select count(*) from private.audit_log))) v(t, n)"
problems=$(psql_q -d "$LARGE_DB" -c "select count(*) from private.verify_ledger()")
[[ "$problems" == 0 ]] || { echo "private.verify_ledger() reports $problems problems in $LARGE_DB" >&2; exit 1; }
echo "private.verify_ledger(): clean; $LARGE_DB ready in ${SECONDS}s" | stamp
