#!/usr/bin/env bash
# Ledger throughput: balanced two-leg transfers per second through private.post_transfer at
# 8 clients over 1,000 accounts, against the baseline of a raw INSERT of one entry row, in the
# same run, with pgbench. Writes bench/ledger/REPORT.md.
#
# Installs this checkout's extension as a release build (bench/lib.sh) and needs
# the companion built (for the migration runner; CAREPLANE_COMPANION_BIN names another
# build). Uses its own database, dropped after.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
source "$ROOT/bench/lib.sh"
install_release_extension
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
PG_MAJOR="${PG_MAJOR:-15}"
PGBENCH="/usr/lib/postgresql/$PG_MAJOR/bin/pgbench"
CLIENTS="${CLIENTS:-8}"
SECONDS_EACH="${SECONDS_EACH:-10}"
ROUNDS="${ROUNDS:-3}"
ACCOUNTS=1000
DB="careplane_bench_ledger_$$"
REPORT="$ROOT/bench/ledger/REPORT.md"
WORK="$(mktemp -d)"
cleanup() { psql -d postgres -qc "drop database if exists \"$DB\" with (force)" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
[[ -n "${KEEP_DB:-}" ]] && trap - EXIT

createdb "$DB"
DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB" "${CAREPLANE_COMPANION_BIN:-$ROOT/target/debug/careplane-companion}" migrate \
  --compat sql/supabase_compat.sql --dir migrations >/dev/null
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<SQL
create table public.bench_accounts (n int primary key, id uuid not null);
insert into public.ledger_accounts (kind, currency, flags)
select 'clinic_revenue', 'NGN', 'none' from generate_series(1, $ACCOUNTS);
insert into public.bench_accounts select row_number() over (order by id), id from public.ledger_accounts;
-- The baseline: the same shape of row the ledger appends, with nothing checked.
create table public.bench_raw_entries (
  id bigint generated always as identity primary key, transfer_id uuid not null, account_id uuid not null,
  direction text not null, amount bigint not null, currency text not null, created_at timestamptz not null default now());
grant select on public.bench_accounts to service_role;
grant insert on public.bench_raw_entries to service_role;
alter table public.bench_accounts enable row level security;
create policy "bench reads" on public.bench_accounts for select to service_role using (true);
vacuum analyze;
SQL
require_release_build

cat > "$WORK/transfer.sql" <<'SQL'
\set a random(1, 1000)
\set b random(1, 999)
\set amount random(1, 100000)
begin;
set local role service_role;
select private.post_transfer(gen_random_uuid(), 'bench', jsonb_build_array(
  jsonb_build_object('account_id', (select id from public.bench_accounts where n = :a), 'direction', 'debit', 'amount', :amount, 'currency', 'NGN'),
  jsonb_build_object('account_id', (select id from public.bench_accounts where n = 1 + (:a + :b - 1) % 1000), 'direction', 'credit', 'amount', :amount, 'currency', 'NGN')));
commit;
SQL
cat > "$WORK/raw.sql" <<'SQL'
\set a random(1, 1000)
\set amount random(1, 100000)
begin;
set local role service_role;
insert into public.bench_raw_entries (transfer_id, account_id, direction, amount, currency)
values (gen_random_uuid(), (select id from public.bench_accounts where n = :a), 'debit', :amount, 'NGN');
commit;
SQL

run() {  # run NAME SCRIPT → prints tps and p99 latency (ms)
  local log="$WORK/$1.log"
  rm -f "$WORK/log-$1".*
  psql -d "$DB" -qc "checkpoint"  # each workload starts from a fresh checkpoint (same full-page-write cost)
  "$PGBENCH" -n -c "$CLIENTS" -j 2 -T "$SECONDS_EACH" -l --log-prefix="$WORK/log-$1" -f "$2" "$DB" > "$log" 2>&1 || { cat "$log"; exit 1; }
  local tps p99
  tps=$(grep -E '^tps = ' "$log" | sed -E 's/tps = ([0-9.]+).*/\1/')
  p99=$(cat "$WORK/log-$1".* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]/1000}')
  echo "$tps $p99"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "ledger bench: $CLIENTS clients, $ROUNDS interleaved rounds of ${SECONDS_EACH}s per workload, $ACCOUNTS accounts"
# Warm-up (discarded): first connections, caches, the accounts' pages.
SECONDS_EACH=3 run raw "$WORK/raw.sql" >/dev/null
SECONDS_EACH=3 run transfer "$WORK/transfer.sql" >/dev/null
rounds_md=""
: > "$WORK/raw.tps"; : > "$WORK/transfer.tps"; : > "$WORK/raw.p99"; : > "$WORK/transfer.p99"; : > "$WORK/ratios"
for r in $(seq 1 "$ROUNDS"); do
  read -r raw_tps raw_p99 < <(run raw "$WORK/raw.sql")
  read -r tr_tps tr_p99 < <(run transfer "$WORK/transfer.sql")
  ratio_r=$(awk -v a="$tr_tps" -v b="$raw_tps" 'BEGIN { printf "%.2f", a / b }')
  echo "$raw_tps" >> "$WORK/raw.tps"; echo "$tr_tps" >> "$WORK/transfer.tps"
  echo "$raw_p99" >> "$WORK/raw.p99"; echo "$tr_p99" >> "$WORK/transfer.p99"; echo "$ratio_r" >> "$WORK/ratios"
  printf '  round %s: raw %8.1f tx/s, transfer %8.1f tx/s, ratio %s\n' "$r" "$raw_tps" "$tr_tps" "$ratio_r"
  rounds_md+="| $r | $(printf '%.0f' "$raw_tps") | $(printf '%.0f' "$tr_tps") | ${ratio_r}× |"$'\n'
done
raw_tps=$(median < "$WORK/raw.tps"); tr_tps=$(median < "$WORK/transfer.tps")
raw_p99=$(median < "$WORK/raw.p99"); tr_p99=$(median < "$WORK/transfer.p99")
ratio=$(median < "$WORK/ratios")
ratio_min=$(sort -n "$WORK/ratios" | head -1); ratio_max=$(sort -n "$WORK/ratios" | tail -1)
# Where a transfer's time goes: one more run with every function timed (bench/lib.sh).
profile_on
SECONDS_EACH=5 run transfer "$WORK/transfer.sql" > "$WORK/profile.tps"
profile_md=$(profile_rows private post_transfer)
profiled=$(profile_calls private post_transfer)
violations=$(psql -d "$DB" -tAc "select count(*) from private.verify_ledger()")
transfers=$(psql -d "$DB" -tAc "select count(*) from public.ledger_transfers")
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.5) ? "met" : "NOT met" }')
cat > "$REPORT" <<MD
# Ledger benchmark

Generated by \`bench/ledger/run.sh\` (\`make bench-ledger\`) on $(date -u +%Y-%m-%d), $(nproc) cores,
PostgreSQL $(psql -d postgres -tAc 'show server_version' | awk '{print $1}'), pgbench with $CLIENTS clients
(2 threads), a 3 s warm-up of each, then $ROUNDS interleaved rounds of ${SECONDS_EACH} s per workload, each after a \`CHECKPOINT\`,
$ACCOUNTS NGN accounts, random pairs, one transaction per operation, as \`service_role\`; load
average at the end: $(cut -d' ' -f1-3 /proc/loadavg).

| workload (median of rounds) | tx/s | p99 latency (ms) |
| --- | ---: | ---: |
| raw \`INSERT\` of one entry row (baseline) | $raw_tps | $raw_p99 |
| balanced two-leg transfer via \`private.post_transfer\` | $tr_tps | $tr_p99 |

| round | raw tx/s | transfer tx/s | ratio |
| ---: | ---: | ---: | ---: |
$rounds_md
Ratio transfer / raw insert (median of the rounds' ratios): **$ratio×**, range $ratio_min–$ratio_max
(target ≥ 0.5×: **$verdict**). Both workloads are bound by commit latency (WAL flush) and the
2 cores; the figures vary from run to run on this shared machine, hence the rounds.
Transfers stored: $transfers; \`private.verify_ledger()\` violations afterwards: $violations.

A transfer reads the request (\`careplane.ledger_request\`), locks both accounts in id order, reads
what the decision needs, decides in Rust (\`careplane.ledger_apply\`), and writes the transfer, two
entries and two balance updates; the baseline writes one row. For
scale, pgledger reports more than 10,000 transfers/s on a laptop (different hardware).

Where a transfer's time goes: a further 5 s run with \`track_functions = all\` ($profiled transfers,
$(cut -d' ' -f1 "$WORK/profile.tps") tx/s), per transfer, by time spent in the function itself (SQL it runs
directly, inserts and the triggers they fire included; the functions it calls excluded):

| function | calls per transfer | ms per transfer, total | ms per transfer, self |
| --- | ---: | ---: | ---: |
$profile_md

The rest of a transaction's latency is outside any function: the round trips, \`set local role\`,
the account-id lookups of the script, and the commit (its WAL flush, shared by the clients).
Machine: $(machine_note).
MD
cat "$REPORT"
[[ "$violations" == 0 ]]
