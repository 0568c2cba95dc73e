#!/usr/bin/env bash
# Runs supabase/tests/*.sql with pg_prove in a throwaway database that has the compat layer,
# the extension and every migration, then drops it (also on failure).
#   scripts/pgtap.sh                 every file
#   scripts/pgtap.sh FILE…           only those (paths under supabase/tests/database/)
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
COMPANION="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"
TEST_DB="careplane_pgtap_$$_$RANDOM"

cleanup() { psql -d postgres -qc "drop database if exists \"$TEST_DB\" with (force)" >/dev/null 2>&1 || true; }
trap cleanup EXIT

createdb "$TEST_DB"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$TEST_DB" "$COMPANION" migrate \
  --compat sql/supabase_compat.sql --dir migrations >/dev/null
psql -d "$TEST_DB" -v ON_ERROR_STOP=1 -qc "create extension if not exists pgtap with schema extensions"
if (($#)); then
  pg_prove --dbname "$TEST_DB" --failures "$@"
else
  pg_prove --dbname "$TEST_DB" --ext .sql --recurse --failures supabase/tests/
fi
