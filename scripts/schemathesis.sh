#!/usr/bin/env bash
# Fuzzes every operation in the companion's OpenAPI document with schemathesis, signed in with a
# valid token, and fails on any 5xx and on anything that breaks the document: a body, status
# code, content type or header it does not declare, a request it calls valid that is refused
# (or invalid that is accepted), an undeclared method that answers, an operation declaring
# auth that serves without it (`--checks all`). `make test` runs it after pgTAP.
#
# It makes everything it uses and removes it afterwards: a throwaway database (compat layer and
# migrations, no seed), a companion on a free port with a random HS256 secret and a Redis key
# prefix of its own, a user token from `careplane-companion token` and a service_role key. schemathesis itself lives in a
# virtualenv under target/ (ignored by git), installed from scripts/schemathesis-requirements.txt
# (exact versions) and re-installed only when that file changes.
#
# Settings: CAREPLANE_COMPANION_BIN (default target/debug/careplane-companion), PGHOST / PGPORT /
# PGUSER (default 127.0.0.1:5432, postgres), REDIS_URL (default redis://127.0.0.1:6379),
# SCHEMATHESIS_MAX_EXAMPLES (cases per operation and phase, default 50), SCHEMATHESIS_SEED
# (reproduce a run; schemathesis prints the seed it used).
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
COMPANION="${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}"
REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
REQUIREMENTS="$ROOT/scripts/schemathesis-requirements.txt"
VENV="$ROOT/target/schemathesis-venv"
WORK="$ROOT/target/schemathesis"
MAX_EXAMPLES="${SCHEMATHESIS_MAX_EXAMPLES:-50}"

[[ -x "$COMPANION" ]] || { echo "schemathesis.sh: $COMPANION is missing: cargo build -p careplane-companion" >&2; exit 1; }

# --- schemathesis, pinned --------------------------------------------------------------------
stamp="$VENV/.requirements.sha256"
want="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/schemathesis" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "    installing schemathesis into ${VENV#"$ROOT"/} (pinned in ${REQUIREMENTS#"$ROOT"/})"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
  echo "$want" > "$stamp"
fi

# --- a database, a companion, a token ----------------------------------------------------------
mkdir -p "$WORK"
rm -f "$WORK"/junit-*.xml
db="careplane_schemathesis_$$_$(date +%s)"
database_url="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
companion_pid=""
log="$WORK/companion.log"

cleanup() {
  local rc=$?
  if [[ -n "${MOTO_PID:-}" ]]; then kill "$MOTO_PID" 2>/dev/null || true; fi
  if [[ -n "$companion_pid" ]]; then
    kill "$companion_pid" 2>/dev/null || true
    wait "$companion_pid" 2>/dev/null || true
  fi
  dropdb --if-exists --force "$db" 2>/dev/null || echo "schemathesis.sh: could not drop database $db" >&2
  if ((rc != 0)) && [[ -s "$log" ]]; then
    echo "--- last lines of the companion's log ($log):" >&2
    tail -n 30 "$log" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT

createdb "$db"
DATABASE_URL="$database_url" "$COMPANION" migrate --compat sql/supabase_compat.sql --dir migrations >/dev/null

# moto's S3 server (scripts/moto.sh), so the file endpoints answer as they do with a store;
# it stops when this script's end closes its standard input.
coproc MOTO { exec "$ROOT/scripts/moto.sh"; }
moto_endpoint=""
while read -r -t 300 line <&"${MOTO[0]}"; do
  [[ "$line" == listening* ]] && { moto_endpoint="${line#listening }"; break; }
done
[[ -n "$moto_endpoint" ]] || { echo "schemathesis.sh: moto did not start" >&2; exit 1; }
curl -fsS -o /dev/null -X PUT "$moto_endpoint/careplane-files"

secret="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# A clean environment: nothing from the caller's shell (make test points DATABASE_URL at a
# database that does not exist) reaches the companion. The limits are high enough that the
# fuzzer's own request rate is not what gets answered.
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  DATABASE_URL="$database_url" REDIS_URL="$REDIS_URL" BIND_ADDR="127.0.0.1:$port" \
  SUPABASE_JWT_SECRET="$secret" RATE_LIMIT_REDIS_PREFIX="careplane-schemathesis:$db" \
  RATE_LIMIT_IP_PER_MINUTE=1000000 RATE_LIMIT_IP_BURST=100000 \
  RATE_LIMIT_USER_PER_MINUTE=1000000 RATE_LIMIT_USER_BURST=100000 \
  LEDGER_EXPIRY_INTERVAL_SECONDS=0 RUST_LOG=warn \
  S3_ENDPOINT="$moto_endpoint" S3_BUCKET=careplane-files S3_ACCESS_KEY_ID=schemathesis S3_SECRET_ACCESS_KEY=schemathesis \
  TURN_URLS="turn:127.0.0.1:3478?transport=udp" TURN_SECRET="$secret" \
  "$COMPANION" serve >"$log" 2>&1 &
companion_pid=$!

for _ in $(seq 1 100); do
  curl -fsS -o /dev/null "$base/health" 2>/dev/null && break
  kill -0 "$companion_pid" 2>/dev/null || { echo "schemathesis.sh: the companion exited" >&2; exit 1; }
  sleep 0.1
done
if ! curl -fsS -o /dev/null "$base/health/detailed"; then
  echo "schemathesis.sh: the companion is not ready (database, extension or Redis):" >&2
  curl -sS "$base/health/detailed" >&2 || true
  exit 1
fi

# A user token (every /v1 operation but one acts for a signed-in user) and a service_role key
# shaped like Supabase's (iss "supabase", role service_role, no sub) for the one that is
# service_role only. Both are handed to schemathesis through the environment, not argv.
user_sub="$(cat /proc/sys/kernel/random/uuid)"
CAREPLANE_USER_TOKEN="$(SUPABASE_JWT_SECRET="$secret" "$COMPANION" token --sub "$user_sub" --role patient)"
# The user exists and has one completed medical record, so the two file operations taking an
# id are fuzzed with it (their answers for ids that are not the caller's are all 403).
CAREPLANE_FILE_ID="$(cat /proc/sys/kernel/random/uuid)"
psql -d "$db" -v ON_ERROR_STOP=1 -q -v sub="$user_sub" -v file="$CAREPLANE_FILE_ID" >/dev/null <<'SQL'
insert into auth.users (id, email) values (:'sub', 'schemathesis@example.test');
insert into storage.objects (bucket_id, name, owner, owner_id)
values ('medical-records', :'sub' || '/' || :'file' || '/lab.pdf', :'sub', :'sub');
insert into public.attachments (id, bucket_id, object_name, file_name, content_type, size_bytes, sha256, status,
                                uploaded_by, patient_id, completed_at)
values (:'file', 'medical-records', :'sub' || '/' || :'file' || '/lab.pdf', 'lab.pdf', 'application/pdf', 10,
        sha256('lab'), 'ready', :'sub', :'sub', now());
SQL
export CAREPLANE_FILE_ID
CAREPLANE_SERVICE_TOKEN="$(SECRET="$secret" python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
def b64(raw): return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
now = int(time.time())
claims = {"iss": "supabase", "ref": "local", "role": "service_role", "iat": now, "exp": now + 3600}
signing_input = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
signature = hmac.new(os.environ["SECRET"].encode(), signing_input.encode(), hashlib.sha256).digest()
print(signing_input + "." + b64(signature))
PY
)"
export CAREPLANE_USER_TOKEN CAREPLANE_SERVICE_TOKEN
config="$WORK/schemathesis.toml"
# Fail, not just warn, when a token is refused everywhere (the run would test nothing behind
# it), when a 429 answers (the limits above are meant to keep it out), or when the operation
# below no longer exists.
cat > "$config" <<'TOML'
headers = { Authorization = "Bearer ${CAREPLANE_USER_TOKEN}" }

[warnings]
fail-on = ["missing_auth", "rate_limited", "unmatched_filter"]

[[operations]]
include-path = "/v1/auth/introspect"
headers = { Authorization = "Bearer ${CAREPLANE_SERVICE_TOKEN}" }

[[operations]]
include-path = "/v1/files/{id}/download-url"
parameters = { id = "${CAREPLANE_FILE_ID}" }

[[operations]]
include-path = "/v1/files/{id}/complete"
parameters = { id = "${CAREPLANE_FILE_ID}" }
TOML

# --- fuzz ----------------------------------------------------------------------------------------
seed_args=()
[[ -n "${SCHEMATHESIS_SEED:-}" ]] && seed_args=(--seed "$SCHEMATHESIS_SEED")

# One worker: with two, schemathesis 4.32.5 can describe a path parameter's filter in two threads
# at once, and CPython's ast then fails ("AST constructor recursion depth mismatch").
# The Paystack webhook is left out: every request without Paystack's HMAC over its exact body
# is 401 before anything else is read, which schemathesis cannot sign (tests/tests/payments.rs
# and proxy_nginx.rs drive it with signed bodies).
# `--include-path-regex '^/'` names every operation explicitly: without it schemathesis leaves
# out the one serving the document itself (GET /openapi.json). Run from target/schemathesis so
# its cache of past failures (replayed first next time) stays out of the source tree.
cd "$WORK"
"$VENV/bin/schemathesis" --no-color --config-file "$config" run "$base/openapi.json" \
  --include-path-regex '^/' \
  --exclude-path /webhooks/paystack \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --workers 1 \
  --request-timeout 20 \
  --report junit --report-dir "$WORK" \
  "${seed_args[@]}"
