#!/usr/bin/env bash
# Notification throughput: messages per second from private.outbox to the local fake Twilio and
# SendGrid (tests/src/fake_providers.rs) with one and with two companion instances, against the
# baseline of the same provider calls made directly (no outbox, no database) at the same
# concurrency, in the same run. Writes bench/notifications/REPORT.md.
#
# Needs the careplane extension installed and Postgres on PGHOST:PGPORT. Builds the companion
# and the bench driver with PROFILE (default release). Each round uses its own databases,
# dropped after.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
PROFILE="${PROFILE:-release}"
export ROWS="${ROWS:-2000}" ROUNDS="${ROUNDS:-3}" CONCURRENCY="${CONCURRENCY:-16}" BATCH="${BATCH:-50}" LATENCY_MS="${LATENCY_MS:-0}"
export CAREPLANE_TEST_ADMIN_URL="${CAREPLANE_TEST_ADMIN_URL:-postgres://${PGUSER:-postgres}@${PGHOST:-127.0.0.1}:${PGPORT:-5432}/postgres}"
REPORT="$ROOT/bench/notifications/REPORT.md"
flag=(); dir=debug
if [[ "$PROFILE" == release ]]; then flag=(--release); dir=release; fi
cargo build "${flag[@]}" -q -p careplane-companion -p careplane-tests --bin careplane-companion --bin notify-bench
export CAREPLANE_COMPANION_BIN="$ROOT/target/$dir/careplane-companion"
OUT="$(mktemp)"; trap 'rm -f "$OUT"' EXIT
"$ROOT/target/$dir/notify-bench" | tee "$OUT"

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
col() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) print $(i+1)}' "$OUT"; }
BASE=$(col baseline | median); ONE=$(col one | median); TWO=$(col two | median)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
{
  echo "# Notifications: outbox to provider, messages per second"
  echo
  echo "\`bench/notifications/run.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)),"
  echo "profile \`$PROFILE\`: $ROWS messages (half SMS to the fake Twilio, half email to the fake SendGrid)"
  echo "per run, $CONCURRENCY provider calls in flight per instance, batches of $BATCH, fake latency ${LATENCY_MS} ms;"
  echo "median of $ROUNDS rounds. Each run starts the instances on an empty outbox, then commits all"
  echo "rows at once; the clock stops when every row is \`sent\`."
  echo
  echo "| | messages/s | ratio |"
  echo "| --- | ---: | ---: |"
  echo "| baseline: the same calls straight to the fakes (no outbox) | $BASE | 1.00 |"
  echo "| one companion | $ONE | $(ratio "$ONE" "$BASE") of baseline |"
  echo "| two companions | $TWO | $(ratio "$TWO" "$ONE") × one companion |"
  echo
  echo "Rounds:"
  echo
  echo '```'
  cat "$OUT"
  echo '```'
} > "$REPORT"
echo "wrote $REPORT"
