#!/usr/bin/env bash
# Brings the real docker-compose.yml up with docker-compose 1.29 against podman's Docker API,
# on the images `make images` built, with its published ports moved to free ones (this machine
# already serves 5432 and maybe 8080): waits for health, checks the migrate service ran to
# completion, the companion's /health/detailed and one authenticated call through it, then
# tears everything down, stopping only what it started.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WORK="$ROOT/target/images"
PROJECT="careplane-composetest-$$"
SOCK="$WORK/podman-$$.sock"
COMPANION="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
fail() { printf '\033[1;31m!!  %s\033[0m\n' "$*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

for image in careplane/postgres careplane/companion docker.io/library/redis:7-bookworm; do
  podman image exists "$image" || fail "$image is missing: run make images first"
done
[[ -x "$COMPANION" ]] || fail "$COMPANION is missing (it mints the test token)"

mkdir -p "$WORK"
export CAREPLANE_DB_PORT CAREPLANE_COMPANION_PORT SUPABASE_JWT_SECRET POSTGRES_PASSWORD
CAREPLANE_DB_PORT="$(free_port)"
CAREPLANE_COMPANION_PORT="$(free_port)"
SUPABASE_JWT_SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
POSTGRES_PASSWORD="$(head -c 24 /dev/urandom | base64 | tr -d '\n/+=')"
export DOCKER_HOST="unix://$SOCK"
compose() { docker-compose -p "$PROJECT" -f docker-compose.yml "$@"; }

SERVICE_PID=""
WATCH_PID=""
cleanup() {
  local rc=$?
  [[ -n "$WATCH_PID" ]] && kill "$WATCH_PID" 2>/dev/null
  if [[ -n "$SERVICE_PID" ]]; then
    if ((rc != 0)); then compose logs --no-color --tail=40 >&2 2>/dev/null || true; fi
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    kill "$SERVICE_PID" 2>/dev/null; wait "$SERVICE_PID" 2>/dev/null || true
  fi
  rm -f "$SOCK"
  exit "$rc"
}
trap cleanup EXIT

bold "==> podman's Docker API on $SOCK"
podman system service --time=0 "unix://$SOCK" >/dev/null 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 50); do [[ -S "$SOCK" ]] && break; sleep 0.2; done
[[ -S "$SOCK" ]] || fail "podman system service did not start"

# Podman runs healthchecks from systemd timers; without systemd, this loop runs them.
watch_health() {
  while true; do
    for c in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
      podman healthcheck run "$c" >/dev/null 2>&1 || true
    done
    sleep 2
  done
}
watch_health &
WATCH_PID=$!

bold "==> docker-compose up (db :$CAREPLANE_DB_PORT, companion :$CAREPLANE_COMPANION_PORT)"
t0=$SECONDS
compose up -d --no-build
companion_container="$(compose ps -q companion)"
for _ in $(seq 1 90); do
  state="$(podman inspect -f '{{.State.Health.Status}}' "$companion_container" 2>/dev/null || echo starting)"
  [[ "$state" == healthy ]] && break
  sleep 2
done
[[ "$state" == healthy ]] || fail "the companion did not become healthy (last: $state)"
echo "    healthy after $((SECONDS - t0))s"

migrate_exit="$(podman inspect -f '{{.State.ExitCode}} {{.State.Status}}' "$(compose ps -q migrate)")"
[[ "$migrate_exit" == "0 exited" ]] || fail "the migrate service did not complete successfully: $migrate_exit"
echo "    migrate service: exited 0"

base="http://127.0.0.1:$CAREPLANE_COMPANION_PORT"
detailed="$(curl -fsS "$base/health/detailed")"
python3 - "$detailed" <<'PY'
import json, sys
body = json.loads(sys.argv[1])
assert body["status"] == "ok" and body["failing"] == [], body
for check in ("database", "extension", "redis"):
    assert body["checks"][check]["status"] == "ok", (check, body)
print("    /health/detailed: database, extension", body["checks"]["extension"].get("version"), "and redis ok")
PY

# The seed's patient Amaka (supabase/seed.sql), through the companion into the database as
# PostgREST would run it: the database must see her as auth.uid().
amaka="a0000000-0000-4000-8000-00000000000a"
token="$(SUPABASE_JWT_SECRET="$SUPABASE_JWT_SECRET" "$COMPANION" token --sub "$amaka" --role patient)"
me="$(curl -fsS -H "Authorization: Bearer $token" "$base/v1/me")"
python3 - "$me" "$amaka" <<'PY'
import json, sys
body, sub = json.loads(sys.argv[1]), sys.argv[2]
assert body["success"] is True, body
text = json.dumps(body["data"])
assert text.count(sub) >= 2, body  # the token's sub and the database's auth.uid()
print("    GET /v1/me as the seed's patient: the database sees auth.uid() =", sub)
PY
status="$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/me")"
[[ "$status" == 401 ]] || fail "GET /v1/me without a token answered $status, not 401"
echo "    GET /v1/me without a token: 401"

bold "compose stack passed in $((SECONDS - t0))s; tearing down"
