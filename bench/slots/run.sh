#!/usr/bin/env bash
# available_slots over 90 days for a practitioner with 2,000 existing appointments:
# careplane.available_slots (the rule in Rust) against the same slot algorithm in PL/pgSQL
# (bench/slots/slots.sql), same inputs, equal results asserted before timing, in interleaved
# rounds with pgbench (one client). Writes bench/slots/REPORT.md.
set -Eeuo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
cd "$ROOT"
SECONDS_EACH="${SECONDS_EACH:-8}"
ROUNDS="${ROUNDS:-3}"
REPORT="$ROOT/bench/slots/REPORT.md"
install_release_extension
bench_db slots
bench_migrate
require_release_build
psql -d "$DB" -v ON_ERROR_STOP=1 -qf bench/slots/slots.sql

echo "slots bench: $ROUNDS interleaved rounds of ${SECONDS_EACH}s per implementation"
# One practitioner in Lagos: weekdays 08:00–12:00 and 13:00–17:00, Saturday mornings, 30-minute
# slots, 10 minutes' buffer after each appointment, two hours' notice, a year's horizon; three
# days off, an afternoon off and an evening of extra hours in the window. 2,000 booked
# appointments on the slot grid: 600 in the next 90 days, 1,400 in the year before.
psql -d "$DB" -v ON_ERROR_STOP=1 -q <<'SQL'
select setseed(0.18) \g /dev/null
insert into auth.users (id, aud, role, email, raw_user_meta_data)
select ('00000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, 'authenticated', 'authenticated',
       'bench' || n || '@careplane.test', jsonb_build_object('full_name', 'Bench ' || n, 'time_zone', 'Africa/Lagos')
  from generate_series(1, 51) n;
insert into public.user_roles (user_id, role) values ('00000000-0000-4000-8000-000000000001', 'doctor');
insert into public.practitioners (id, profile_id, kind, display_name, consultation_fee_minor, currency, slot_minutes,
                                  buffer_after_minutes, min_notice_minutes, booking_horizon_days, time_zone)
values ('b0000000-0000-4000-8000-0000000000b1', '00000000-0000-4000-8000-000000000001', 'doctor', 'Dr Bench', 1500000,
        'NGN', 30, 10, 120, 365, 'Africa/Lagos');
insert into public.availability_rules (practitioner_id, weekday, start_time, end_time)
select 'b0000000-0000-4000-8000-0000000000b1'::uuid, wd, h.s, h.e
  from generate_series(1, 5) wd, (values ('08:00'::time, '12:00'::time), ('13:00', '17:00')) h(s, e)
union all select 'b0000000-0000-4000-8000-0000000000b1'::uuid, 6, '09:00', '13:00';
insert into public.availability_exceptions (practitioner_id, on_date, kind, start_time, end_time)
values ('b0000000-0000-4000-8000-0000000000b1', current_date + 10, 'time_off', null, null),
       ('b0000000-0000-4000-8000-0000000000b1', current_date + 11, 'time_off', null, null),
       ('b0000000-0000-4000-8000-0000000000b1', current_date + 40, 'time_off', null, null),
       ('b0000000-0000-4000-8000-0000000000b1', current_date + 20, 'time_off', '13:00', '17:00'),
       ('b0000000-0000-4000-8000-0000000000b1', current_date + 30, 'extra_hours', '17:00', '20:00');
-- Every working slot start (local) of the year before and the 90 days after today.
create temporary table grid as
select ((d + h) at time zone 'Africa/Lagos') as starts_at, d >= current_date as upcoming
  from generate_series(current_date - 365, current_date + 89, interval '1 day') d,
       lateral (select interval '8 hours' + k * interval '30 minutes' as h from generate_series(0, 17) k) hs
 where extract(isodow from d) <= 5 and h <> interval '12 hours' and h <> interval '12 hours 30 minutes';
insert into public.appointments (patient_id, practitioner_id, period, status)
select ('00000000-0000-4000-8000-' || lpad((2 + row_number() over () % 50)::text, 12, '0'))::uuid,
       'b0000000-0000-4000-8000-0000000000b1', tstzrange(starts_at, starts_at + interval '30 minutes'), 'booked'
  from ((select starts_at from grid where upcoming and starts_at > now() + interval '1 day' order by random() limit 600)
        union all (select starts_at from grid where not upcoming order by random() limit 1400)) picked;
-- The inputs, built as public.available_slots builds them: 90 days in two windows (the rules
-- compute at most 62 days at once).
create table bench.slot_inputs as
select w, jsonb_build_object('schedule', private.schedule_json(p),
                             'busy', private.busy_json(p.id, false, private.busy_span(f, t), null),
                             'now', now(), 'from', f, 'to', t) as input
  from public.practitioners p,
       lateral (select w, date_trunc('hour', now()) + (w - 1) * interval '45 days' as f,
                       date_trunc('hour', now()) + w * interval '45 days' as t from generate_series(1, 2) w) win;
analyze;
SQL

read -r appointments busy ext_slots plpgsql_slots differ < <(psql -d "$DB" -tA -F' ' -c "
  with ext as (select w, (s ->> 'slot_start')::timestamptz as s, (s ->> 'slot_end')::timestamptz as e
                 from bench.slot_inputs, jsonb_array_elements(careplane.available_slots(input)) s),
       plp as (select w, (s ->> 'slot_start')::timestamptz as s, (s ->> 'slot_end')::timestamptz as e
                 from bench.slot_inputs, jsonb_array_elements(bench.available_slots_plpgsql(input)) s)
  select (select count(*) from public.appointments),
         (select sum(jsonb_array_length(input -> 'busy')) from bench.slot_inputs),
         (select count(*) from ext), (select count(*) from plp),
         (select count(*) from ((table ext except all table plp) union all (table plp except all table ext)) d)")
echo "  $appointments appointments, $busy busy periods in the inputs; slots: extension $ext_slots, PL/pgSQL $plpgsql_slots, differing $differ"
[[ "$differ" == 0 && "$ext_slots" -gt 0 ]] || { echo "careplane.available_slots and the PL/pgSQL version disagree" >&2; exit 1; }

echo "select sum(jsonb_array_length(careplane.available_slots(input))) from bench.slot_inputs;" > "$WORK/ext.sql"
echo "select sum(jsonb_array_length(bench.available_slots_plpgsql(input))) from bench.slot_inputs;" > "$WORK/plpgsql.sql"
latency() {  # latency NAME: average ms of one 90-day computation (both windows)
  "$PGBENCH" -n -c 1 -T "$SECONDS_EACH" -f "$WORK/$1.sql" "$DB" > "$WORK/$1.log" 2>&1 || { cat "$WORK/$1.log"; exit 1; }
  grep -E '^latency average' "$WORK/$1.log" | sed -E 's/latency average = ([0-9.]+) ms/\1/'
}
SECONDS_EACH=2 latency ext >/dev/null; SECONDS_EACH=2 latency plpgsql >/dev/null
: > "$WORK/e"; : > "$WORK/p"; : > "$WORK/r"; rounds_md=""
for r in $(seq 1 "$ROUNDS"); do
  e=$(latency ext); p=$(latency plpgsql)
  echo "$e" >> "$WORK/e"; echo "$p" >> "$WORK/p"; ratio "$p" "$e" >> "$WORK/r"
  printf '  round %s: extension %s ms, PL/pgSQL %s ms, %s×\n' "$r" "$e" "$p" "$(ratio "$p" "$e")"
  rounds_md+="| $r | $e | $p | $(ratio "$p" "$e")× |"$'\n'
done
e=$(median < "$WORK/e"); p=$(median < "$WORK/p"); r=$(median < "$WORK/r")
cat > "$REPORT" <<MD
# available_slots benchmark

Generated by \`bench/slots/run.sh\` (\`make bench-slots\`) on $(date -u +%Y-%m-%d), PostgreSQL
$(psql -d postgres -tAc 'show server_version' | awk '{print $1}'), careplane $(psql -d "$DB" -tAc "select careplane.build_info()::text"),
pgbench with one client, a 2 s warm-up of each, then $ROUNDS interleaved rounds of ${SECONDS_EACH} s per
implementation. Machine: $(machine_note).

One practitioner (Africa/Lagos, 30-minute slots, 10-minute buffer, weekdays with a lunch break and
Saturday mornings, days off, an afternoon off and extra hours in the window) with $appointments booked
appointments; 90 days computed as two 45-day windows (the rules compute at most 62 days at
once), from inputs built as \`public.available_slots\` builds them ($busy busy periods in all).
Before timing, both answers were compared slot by slot: extension $ext_slots slots, PL/pgSQL
$plpgsql_slots, **$differ differing**.

| implementation (median of rounds) | ms per 90 days |
| --- | ---: |
| PL/pgSQL, \`bench/slots/slots.sql\` (baseline) | $p |
| \`careplane.available_slots\` | $e |

| round | extension ms | PL/pgSQL ms | speed-up |
| ---: | ---: | ---: | ---: |
$rounds_md
Speed-up (median of the rounds' ratios): **${r}×**, range $(lowest < "$WORK/r")–$(highest < "$WORK/r") (target ≥ 10×:
**$(verdict "$r" 10)**). The PL/pgSQL version skips one check the Rust makes for every candidate
(that it lies within the day's working hours), so it does less work than the extension.
MD
cat "$REPORT"
