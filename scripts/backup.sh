#!/usr/bin/env bash
# Backs up a careplane database into a directory that restore.sh can rebuild it from:
#   db.dump     pg_dump custom format of the whole database: the application schemas (public,
#               private, access), the extension (`create extension careplane`, whose functions
#               come from the installed files), auth (on plain Postgres, the compatibility
#               layer's users) and the migration history;
#   roles.sql   the cluster roles the database's grants and memberships name (anon,
#               authenticated, service_role, …), created only where missing — pg_dump does not
#               carry roles, and a restore into a new cluster needs them;
#   manifest    what was backed up, from which server and extension version.
#
#   scripts/backup.sh [DATABASE] [DIRECTORY]    (default: $DB or careplane, backups/<db>-<UTC time>)
set -Eeuo pipefail
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
db="${1:-${DB:-careplane}}"
dir="${2:-backups/$db-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$dir"

psql -d "$db" -v ON_ERROR_STOP=1 -tAq > "$dir/roles.sql" <<'SQL'
select format($f$do $r$ begin if not exists (select 1 from pg_catalog.pg_roles where rolname = %L) then create role %I %s; end if; end $r$;$f$,
              r.rolname, r.rolname,
              concat_ws(' ', case when r.rolcanlogin then 'login' else 'nologin' end,
                        case when r.rolbypassrls then 'bypassrls' end, case when r.rolinherit then 'inherit' else 'noinherit' end))
  from pg_catalog.pg_roles r
 where r.rolname !~ '^pg_' and not r.rolsuper
 order by r.rolname;
select format('grant %I to %I;', g.rolname, m.rolname)
  from pg_catalog.pg_auth_members am
  join pg_catalog.pg_roles g on g.oid = am.roleid
  join pg_catalog.pg_roles m on m.oid = am.member
 where g.rolname !~ '^pg_' and m.rolname !~ '^pg_' and not g.rolsuper
 order by 1;
SQL
pg_dump -d "$db" -Fc -f "$dir/db.dump"
{
  echo "database: $db"
  echo "taken_at: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "server: $(psql -d "$db" -tAc 'show server_version')"
  echo "careplane: $(psql -d "$db" -tAc "select extversion from pg_catalog.pg_extension where extname = 'careplane'")"
  echo "migrations: $(psql -d "$db" -tAc 'select count(*) from supabase_migrations.schema_migrations' 2>/dev/null || echo 0)"
} > "$dir/manifest"
echo "$dir"
