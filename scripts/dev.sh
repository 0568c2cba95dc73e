#!/usr/bin/env bash
# careplane's set-up and test driver; the Makefile's targets call it.
#
#   scripts/dev.sh deps       apt packages, cargo-pgrx 0.18.0 + init, Postgres and Redis up
#   scripts/dev.sh db         deps, extension, companion build, database $DB migrated and seeded
#   scripts/dev.sh db-reset   drop database $DB, then db
#   scripts/dev.sh run        db, then the companion in the foreground
#   scripts/dev.sh test       deps, extension, then every test (never touches $DB)
#   scripts/dev.sh deps-build deps, then build and install the extension and the companion
#   scripts/dev.sh token --sub <uuid> --role <role>
#                             print a development access token for the companion `run` serves
#   scripts/dev.sh bench      the benchmark in bench/ (release build, wrk, Node 20 + Express)
#   scripts/dev.sh bench-deps deps and the companion (the database benchmarks in bench/*/ install
#                             the extension's release build themselves)
#
# Each step prints its name and how long it took; a failing step stops everything and says so.
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

PG_MAJOR="${PG_MAJOR:-15}"
PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}"
PGRX_VERSION="0.18.0"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
DB="${DB:-careplane}"
REDIS_HOST="${REDIS_HOST:-127.0.0.1}" REDIS_PORT="${REDIS_PORT:-6379}"
export REDIS_URL="${REDIS_URL:-redis://$REDIS_HOST:$REDIS_PORT}"
COMPANION="$ROOT/target/debug/careplane-companion"
# The HS256 secret `run` uses when SUPABASE_JWT_SECRET is not set: random, generated once per
# checkout, kept out of git (target/ is ignored). For development only; the binary itself has
# no default and refuses to serve without token keys.
DEV_JWT_SECRET_FILE="$ROOT/target/careplane-dev-jwt-secret"

APT_PACKAGES=(
  "postgresql-$PG_MAJOR" "postgresql-server-dev-$PG_MAJOR" "postgresql-$PG_MAJOR-pgtap"
  "postgresql-$PG_MAJOR-cron" nginx openssl libtap-parser-sourcehandler-pgtap-perl libclang-dev clang redis-server redis-tools
  chromium coturn
)

bold() { printf '\033[1m%s\033[0m\n' "$*"; }

# step "description" command args… — runs one step, timing it.
step() {
  local name="$1"; shift
  local t0=$SECONDS
  bold "==> $name"
  if "$@"; then
    printf '    done in %ss\n' "$((SECONDS - t0))"
  else
    local rc=$?
    printf '\033[1;31m!!  step failed after %ss: %s (exit %s)\033[0m\n' "$((SECONDS - t0))" "$name" "$rc" >&2
    exit "$rc"
  fi
}

apt_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then echo "    all present"; return 0; fi
  echo "    installing: ${missing[*]}"
  local sudo=""; [[ $(id -u) == 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

cargo_pgrx() {
  if cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx $PGRX_VERSION"; then
    echo "    cargo-pgrx $PGRX_VERSION present"
  else
    echo "    installing cargo-pgrx $PGRX_VERSION (takes a few minutes, once)"
    cargo install cargo-pgrx --version "$PGRX_VERSION" --locked
  fi
  local config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
  if grep -q "^pg$PG_MAJOR = \"$PG_CONFIG\"" "$config" 2>/dev/null; then
    echo "    pgrx initialised against $PG_CONFIG"
  else
    cargo pgrx init "--pg$PG_MAJOR" "$PG_CONFIG"
  fi
}

postgres_up() {
  if pg_isready -q; then echo "    Postgres answering on $PGHOST:$PGPORT"; return 0; fi
  echo "    starting Postgres $PG_MAJOR"
  pg_ctlcluster --skip-systemctl-redirect "$PG_MAJOR" main start
  for _ in $(seq 1 30); do pg_isready -q && return 0; sleep 1; done
  echo "    Postgres did not come up on $PGHOST:$PGPORT" >&2; return 1
}

redis_up() {
  if redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; then
    echo "    Redis answering on $REDIS_HOST:$REDIS_PORT"; return 0
  fi
  echo "    starting Redis on $REDIS_HOST:$REDIS_PORT"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/careplane.log
  for _ in $(seq 1 30); do redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && return 0; sleep 0.5; done
  echo "    Redis did not come up" >&2; return 1
}

# The extension is installed as a release build unless PGRX_PROFILE=debug: a debug build is
# unoptimised (with debug assertions), and a database must not get one by accident. `test` alone
# defaults to debug (debug assertions on, quicker to rebuild); PGRX_RELEASE=1 is the older
# spelling of PGRX_PROFILE=release. The installed build says which it is:
# `select careplane.build_info()`, and /health/detailed reports it.
extension_profile() {
  local profile="${PGRX_PROFILE:-${PGRX_RELEASE:+release}}"
  profile="${profile:-${1:-release}}"
  case "$profile" in
    release|debug) echo "$profile" ;;
    *) echo "PGRX_PROFILE must be release or debug, not '$profile'" >&2; return 2 ;;
  esac
}

install_extension() {
  local profile
  profile=$(extension_profile "${1:-release}") || return
  echo "    $profile build"
  (cd pg_ext && cargo pgrx install --pg-config "$PG_CONFIG" $([[ $profile == release ]] && echo --release))
}

build_companion() {
  cargo build -p careplane-companion
}

create_database() {
  if psql -d postgres -tAc "select 1 from pg_database where datname = '$DB'" | grep -q 1; then
    echo "    database $DB exists"
  else
    createdb "$DB" && echo "    created database $DB"
  fi
}

# A database made with an earlier release of the extension is updated to this one
# (`alter extension careplane update`, through the upgrade scripts in pg_ext/sql/). One made
# with an earlier build of this same, unreleased version may lack functions the migrations
# need and has no upgrade path: say so instead of failing half-way through a migration.
check_extension_is_current() {
  local installed_version build_version functions script
  installed_version=$(psql -d "$DB" -tAc "select extversion from pg_catalog.pg_extension where extname = 'careplane'" 2>/dev/null || true)
  [[ -z "$installed_version" ]] && return 0
  build_version="$(cargo pkgid -p careplane 2>/dev/null | sed 's/.*[#@]//')"
  if [[ "$installed_version" != "$build_version" ]]; then
    echo "    database $DB has careplane $installed_version: updating to $build_version"
    psql -d "$DB" -v ON_ERROR_STOP=1 -qc "alter extension careplane update to '$build_version'"
    return
  fi
  functions=$(psql -d "$DB" -tAc "select count(*) from pg_catalog.pg_proc where pronamespace = to_regnamespace('careplane')")
  script="$("$PG_CONFIG" --sharedir)/extension/careplane--$build_version.sql"
  [[ -f "$script" ]] || return 0
  if [[ "$functions" != "$(grep -ci 'create  *function' "$script")" ]]; then
    echo "    database $DB has an older build of careplane $build_version than the one just installed;" >&2
    echo "    an unreleased build has no upgrade script: run 'make db-reset' (drops $DB) and try again." >&2
    return 1
  fi
}

migrate_database() {
  DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "$COMPANION" migrate \
    --compat sql/supabase_compat.sql --dir migrations --seed supabase/seed.sql
}

drop_database() {
  psql -d postgres -v ON_ERROR_STOP=1 -qc "drop database if exists \"$DB\" with (force)"
}

deps() {
  step "apt packages" apt_packages
  step "cargo-pgrx $PGRX_VERSION" cargo_pgrx
  step "Postgres" postgres_up
  step "Redis" redis_up
}

build() {
  step "build and install the careplane extension" install_extension "${1:-release}"
  step "build the companion" build_companion
}

db() {
  deps
  build
  step "database $DB" create_database
  step "extension in $DB matches the build" check_extension_is_current
  step "compat layer, migrations, seed" migrate_database
}

rust_tests() {
  # The verifier micro-benchmark (make bench-jwt) has no tests and builds AWS-LC from C: left out.
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --exclude careplane-jwt-verify-bench --no-fail-fast
  else
    cargo test --workspace --exclude careplane-jwt-verify-bench --no-fail-fast
  fi
}

# The pinned @supabase/supabase-js the realtime conformance suite runs (tests/realtime_js.rs).
realtime_js_deps() {
  command -v npm >/dev/null || { echo "npm (Node 20+) is needed for the realtime conformance suite" >&2; return 1; }
  (cd tests/realtime-js && npm ci --no-audit --no-fund --loglevel=error)
}

# The consultation page's supabase-js (served by the companion) and the browser test's
# playwright-core (tests/consultation_browser.rs).
examples_deps() {
  command -v npm >/dev/null || { echo "npm (Node 20+) is needed for examples/consultation" >&2; return 1; }
  (cd examples/consultation && npm ci --no-audit --no-fund --loglevel=error)
}

dev_jwt_secret() {
  if [[ ! -s "$DEV_JWT_SECRET_FILE" ]]; then
    mkdir -p "$(dirname "$DEV_JWT_SECRET_FILE")"
    (umask 077; head -c 48 /dev/urandom | base64 | tr -d '\n/+=' > "$DEV_JWT_SECRET_FILE")
  fi
  cat "$DEV_JWT_SECRET_FILE"
}

case "${1:-}" in
  deps) deps ;;
  deps-build) deps; build ;;
  bench-deps) deps; step "build the companion" build_companion ;;  # the benchmarks install the extension (release) themselves
  db) db ;;
  db-reset) step "drop database $DB" drop_database; db ;;
  run)
    db
    if [[ -z "${SUPABASE_JWT_SECRET:-}" && -z "${SUPABASE_URL:-}" && -z "${SUPABASE_JWKS_URL:-}" ]]; then
      SUPABASE_JWT_SECRET="$(dev_jwt_secret)"
      export SUPABASE_JWT_SECRET
      echo "    SUPABASE_JWT_SECRET not set: using the development secret in ${DEV_JWT_SECRET_FILE#"$ROOT"/}"
    fi
    step "Node packages for the consultation page (npm ci)" examples_deps
    export EXAMPLES_DIR="${EXAMPLES_DIR:-$ROOT/examples}"
    bold "==> companion (Ctrl-C stops it)"
    DATABASE_URL="${DATABASE_URL:-postgres://$PGUSER@$PGHOST:$PGPORT/$DB}" exec "$COMPANION" serve
    ;;
  token)
    shift
    [[ -x "$COMPANION" ]] || step "build the companion" build_companion >&2
    SUPABASE_JWT_SECRET="${SUPABASE_JWT_SECRET:-$(dev_jwt_secret)}" exec "$COMPANION" token "$@"
    ;;
  bench) exec bench/run.sh ;;
  test)
    t0=$SECONDS
    deps
    build debug
    # Tests make their own databases. Anything that would fall back to the developer's database
    # ($DB, DATABASE_URL) is pointed at one that does not exist, so leaning on it fails loudly.
    absent="careplane_test_absent_$$"
    export DB="$absent" DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$absent"
    export CAREPLANE_COMPANION_BIN="$COMPANION"
    export CAREPLANE_TEST_ADMIN_URL="${CAREPLANE_TEST_ADMIN_URL:-postgres://$PGUSER@$PGHOST:$PGPORT/postgres}"
    step "local S3 stores for the file tests (moto, s3rver; pinned, under target/)" \
      bash -c 'scripts/moto.sh install && scripts/s3rver.sh install'
    step "Node packages for the realtime conformance suite (npm ci)" realtime_js_deps
    step "Node packages for the consultation page and its browser test (npm ci)" examples_deps
    step "Rust tests: rules, companion, end-to-end" rust_tests
    step "pgTAP tests (pg_prove) in a throwaway database" scripts/pgtap.sh
    step "schemathesis over every companion operation" scripts/schemathesis.sh
    bold "all tests passed in $((SECONDS - t0))s"
    ;;
  *) echo "usage: $0 deps|deps-build|bench-deps|db|db-reset|run|test|token|bench" >&2; exit 2 ;;
esac
