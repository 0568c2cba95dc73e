#!/usr/bin/env bash
# Payments bench: signed Paystack webhooks verified (HMAC-SHA512, constant time) and durably
# stored (committed in private.webhook_inbox) per second at 8 concurrent senders, against the
# same companion's unauthenticated GET /v1/ping in the same run (target: ≥ 0.3×); and the
# webhook-to-ledger latency (stored → the payment's transfer posted, after re-verifying with a
# local Paystack) at p50 / p99. Writes bench/payments/REPORT.md.
#
# Needs the careplane extension installed, wrk (installed with apt when missing) and python3.
# Builds the companion in release mode unless CAREPLANE_COMPANION_BIN names a build.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/bench/payments"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
CONNECTIONS=8
DURATION="${DURATION:-10}"
ROUNDS="${ROUNDS:-3}"
LATENCY_WEBHOOKS="${LATENCY_WEBHOOKS:-300}"
AMOUNT=500000
SECRET="sk_test_bench_$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
DB="careplane_bench_payments_$$"
REPORT="$HERE/REPORT.md"
WORK="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  psql -d postgres -qc "drop database if exists \"$DB\" with (force)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

command -v wrk >/dev/null || {
  echo "    installing wrk"
  sudo_=""; [[ $(id -u) -ne 0 ]] && sudo_=sudo
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq wrk >/dev/null
}
if [[ -n "${CAREPLANE_COMPANION_BIN:-}" ]]; then
  COMPANION="$CAREPLANE_COMPANION_BIN"
else
  echo "==> release build of the companion"
  cargo build --release -p careplane-companion
  COMPANION="$ROOT/target/release/careplane-companion"
fi
BUILD="$(file -b "$COMPANION" | grep -q 'with debug_info' && echo debug || echo release)"
[[ "$COMPANION" == *"/release/"* ]] && BUILD=release
[[ "$COMPANION" == *"/debug/"* ]] && BUILD=debug

createdb "$DB"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "$COMPANION" migrate --compat sql/supabase_compat.sql --dir migrations >/dev/null

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
FAKE_PORT="$(free_port)"
AMOUNT=$AMOUNT python3 "$HERE/fake_paystack.py" "$FAKE_PORT" & pids+=($!)

# serve NAME WORKERS → starts a companion (pid appended to pids), sets BASE to its URL
serve() {
  local port; port="$(free_port)"
  env -i PATH="$PATH" HOME="${HOME:-/tmp}" DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" \
    REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}" BIND_ADDR="127.0.0.1:$port" RUST_LOG=warn \
    SUPABASE_JWT_SECRET="bench-secret-bench-secret-bench-secret-0123" RATE_LIMIT_REDIS_PREFIX="careplane-bench:$DB" \
    RATE_LIMIT_IP_PER_MINUTE=100000000 RATE_LIMIT_IP_BURST=10000000 DATABASE_MAX_CONNECTIONS=16 \
    PAYSTACK_SECRET_KEY="$SECRET" PAYSTACK_BASE_URL="http://127.0.0.1:$FAKE_PORT" PAYMENT_WORKERS="$2" \
    PAYSTACK_INBOX_POLL_MS=200 LEDGER_EXPIRY_INTERVAL_SECONDS=0 \
    "$COMPANION" serve > "$WORK/$1.log" 2>&1 &
  pids+=($!)
  BASE="http://127.0.0.1:$port"
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$BASE/health" 2>/dev/null && return; sleep 0.1; done
  echo "the companion did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1
}
inbox_rows() { psql -d "$DB" -Atc "select count(*) from private.webhook_inbox"; }

# --- throughput: an instance that only takes webhooks (PAYMENT_WORKERS=false) -----------------------
serve ingest false
INGEST="$BASE"
INGEST_PID="${pids[-1]}"
per_round=$(( 60000 * DURATION / 10 ))
# run_wrk NAME URL [BODIES] → "rps p50_ms p99_ms requests non2xx"
run_wrk() {
  local out
  if [[ -n "${3:-}" ]]; then
    out="$(BODIES="$3" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/webhooks.lua" "$2")"
  else
    out="$(wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$2")"
  fi
  echo "$out" > "$WORK/wrk-$1-$(date +%s%N).txt"
  local rps p50 p99 requests non2xx
  rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  requests="$(awk '/requests in/ {print $1}' <<<"$out")"
  non2xx="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms/, "", v); print v } else { sub(/s/, "", v); print v * 1000 } }'; }
  echo "$rps $(to_ms "$p50") $(to_ms "$p99") $requests ${non2xx:-0}"
}

echo "payments bench: $CONNECTIONS connections, $ROUNDS interleaved rounds of ${DURATION}s, $BUILD build"
wrk -t1 -c"$CONNECTIONS" -d2s "$INGEST/v1/ping" >/dev/null   # warm-up
: > "$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  python3 "$HERE/signed_bodies.py" "$SECRET" $(( round * 10000000 )) "$per_round" "$AMOUNT" > "$WORK/bodies-$round"
  before="$(inbox_rows)"
  read -r w_rps w_p50 w_p99 w_req w_bad < <(run_wrk webhook "$INGEST" "$WORK/bodies-$round")
  stored=$(( $(inbox_rows) - before ))
  read -r p_rps p_p50 p_p99 p_req p_bad < <(run_wrk ping "$INGEST/v1/ping")
  echo "  round $round: webhooks $w_rps/s (p99 ${w_p99} ms, $w_req answered, $stored stored, $w_bad non-2xx); ping $p_rps/s (p99 ${p_p99} ms)"
  echo "$round $w_rps $w_p50 $w_p99 $w_req $stored $w_bad $p_rps $p_p50 $p_p99 $p_bad" >> "$WORK/results"
done

# --- latency: stored → posted, by an instance running the worker ------------------------------------
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<SQL
delete from private.webhook_inbox;
insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000000b1', 'bench-patient@example.test'),
                                          ('00000000-0000-4000-8000-0000000000b2', 'bench-doctor@example.test');
insert into public.user_roles (user_id, role) values ('00000000-0000-4000-8000-0000000000b2', 'doctor');
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, time_zone)
values ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000b2', 'doctor', 'Dr Bench', $AMOUNT, 'NGN', 'Africa/Lagos');
insert into public.appointments (patient_id, practitioner_id, period, status)
select '00000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-0000000000c1',
       tstzrange(now() + make_interval(hours => n), now() + make_interval(hours => n, mins => 30)), 'booked'
  from generate_series(1, $LATENCY_WEBHOOKS) n;
insert into public.payments (patient_id, appointment_id, amount_minor, currency, provider_reference, status)
select a.patient_id, a.id, $AMOUNT, 'NGN', 'bench_lat_' || row_number() over (order by lower(a.period)), 'pending'
  from public.appointments a;
SQL
kill "$INGEST_PID" 2>/dev/null || true   # the ingest-only instance
serve worker true
WORKER="$BASE"
python3 "$HERE/signed_bodies.py" "$SECRET" 1 "$LATENCY_WEBHOOKS" "$AMOUNT" bench_lat_ > "$WORK/latency-bodies"
python3 - "$WORKER" "$WORK/latency-bodies" <<'PY'
import sys, time, urllib.request
url, path = sys.argv[1] + "/webhooks/paystack", sys.argv[2]
for line in open(path):
    sig, body = line.rstrip("\n").split(" ", 1)
    req = urllib.request.Request(url, data=body.encode(), headers={"content-type": "application/json", "x-paystack-signature": sig})
    assert urllib.request.urlopen(req).status == 200
    time.sleep(0.02)  # a steady 40-50 webhooks a second: the worker is not queueing
PY
for _ in $(seq 1 300); do
  done_="$(psql -d "$DB" -Atc "select count(*) from public.payments where status = 'succeeded'")"
  [[ "$done_" -ge "$LATENCY_WEBHOOKS" ]] && break
  sleep 0.2
done
read -r lat_n lat_p50 lat_p99 lat_max < <(psql -d "$DB" -AtF ' ' -c "
  select count(*), round((percentile_cont(0.5) within group (order by ms))::numeric, 1),
         round((percentile_cont(0.99) within group (order by ms))::numeric, 1), round(max(ms)::numeric, 1)
    from (select extract(epoch from t.created_at - w.received_at) * 1000 as ms
            from public.payments p
            join private.webhook_inbox w on w.event_id = 'charge.success:' || p.provider_reference
            join public.ledger_transfers t on t.id = p.id) x")
violations="$(psql -d "$DB" -Atc "select count(*) from private.verify_ledger()")"
transfers="$(psql -d "$DB" -Atc "select count(*) from public.ledger_transfers where kind = 'payment'")"
echo "  latency: $lat_n of $LATENCY_WEBHOOKS posted ($transfers transfers), p50 ${lat_p50} ms, p99 ${lat_p99} ms; verify_ledger: $violations violations"

# --- report -------------------------------------------------------------------------------------------
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
w_med="$(awk '{print $2}' "$WORK/results" | median)"
p_med="$(awk '{print $8}' "$WORK/results" | median)"
ratios="$(awk '{printf "%.2f\n", $2 / $8}' "$WORK/results")"
ratio="$(median <<<"$ratios")"
ratio_range="$(sort -n <<<"$ratios" | awk 'NR == 1 {lo = $1} {hi = $1} END {print lo "–" hi}')"
verdict="$(awk -v r="$ratio" 'BEGIN { print (r >= 0.3) ? "met" : "NOT met" }')"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
{
  echo "# Payments bench"
  echo
  echo "Generated by \`bench/payments/run.sh\` (\`make bench-payments\`) on $(date -u +%Y-%m-%d) — do not edit by hand."
  echo
  echo "## Webhooks verified and durably stored, against /v1/ping"
  echo
  echo "wrk, one thread, $CONNECTIONS connections, $ROUNDS interleaved rounds of ${DURATION} s, loopback. Each webhook is a"
  echo "distinct \`charge.success\` signed as Paystack signs it; the companion checks the HMAC-SHA512 in"
  echo "constant time, parses it and commits it to \`private.webhook_inbox\` (synchronous commit) before"
  echo "answering 200. The ingesting instance runs with \`PAYMENT_WORKERS=false\` (applying is measured"
  echo "below). Baseline: the same instance's unauthenticated \`GET /v1/ping\`, in the same rounds."
  echo
  echo "| round | webhooks/s | p50 ms | p99 ms | answered | rows stored | non-2xx | /v1/ping req/s | p50 ms | p99 ms | ratio |"
  echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
  awk '{printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f× |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $2 / $8}' "$WORK/results"
  echo
  echo "**Ratio (median of the rounds' ratios): ${ratio}× (rounds ${ratio_range}×); target ≥ 0.3×: $verdict.** Median rates:"
  echo "$w_med webhooks/s, $p_med pings/s."
  echo "Every 200 comes after its row's commit (\`rows stored\` ≥ \`answered\`; the few more rows are the requests wrk"
  echo "still had in flight when it stopped counting)."
  echo
  echo "## Webhook to ledger"
  echo
  echo "$LATENCY_WEBHOOKS pending payments, one \`charge.success\` each, sent one at a time ~45 a second to an"
  echo "instance running the worker; each is re-verified with a local Paystack (\`fake_paystack.py\`)"
  echo "and posted (split, payment succeeded, event, receipt) in one transaction. Latency is the"
  echo "inbox row's \`received_at\` to the transfer's \`created_at\` (the posting transaction's start)."
  echo
  echo "| posted | p50 ms | p99 ms | max ms | transfers | verify_ledger violations |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| $lat_n / $LATENCY_WEBHOOKS | $lat_p50 | $lat_p99 | $lat_max | $transfers | $violations |"
  echo
  echo "## Setup"
  echo
  echo "- Machine: $(nproc) CPUs ($cpu), $(uname -sr), shared with other work (load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))."
  echo "- Companion: $BUILD build ($(basename "$COMPANION")), PostgreSQL $(psql -d "$DB" -Atc 'show server_version'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
} > "$REPORT"
echo "wrote ${REPORT#"$ROOT"/}"
