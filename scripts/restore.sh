#!/usr/bin/env bash
# Restores a backup made by backup.sh into a NEW database (it refuses to overwrite one):
# the roles first (only those missing), then pg_restore, stopping at the first error. The
# careplane extension must be installed in the target cluster at the version in the manifest.
#
#   scripts/restore.sh DIRECTORY DATABASE
set -Eeuo pipefail
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
dir="${1:?usage: restore.sh DIRECTORY DATABASE}"
db="${2:?usage: restore.sh DIRECTORY DATABASE}"
[[ -f "$dir/db.dump" && -f "$dir/roles.sql" ]] || { echo "$dir is not a careplane backup (db.dump, roles.sql)" >&2; exit 2; }
if psql -d postgres -tAc "select 1 from pg_catalog.pg_database where datname = '$db'" | grep -q 1; then
  echo "database $db exists: restore.sh only restores into a new database" >&2; exit 2
fi
psql -d postgres -v ON_ERROR_STOP=1 -q -f "$dir/roles.sql"
createdb "$db"
pg_restore -d "$db" --exit-on-error "$dir/db.dump"
psql -d "$db" -tAc "select 'restored ' || current_database() || ': careplane ' || careplane.version()"
