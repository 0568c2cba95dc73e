"""Writes bench/realtime/REPORT.md from the two load generator results (called by run.sh)."""
import json, os, sys, platform, subprocess, datetime
c, s = (json.load(open(p)) for p in sys.argv[1:3])
report, clients, rate, shared_every = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
nproc = subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()
loadgen_cpus, server_cpus = os.environ.get("LOADGEN_CPUS", ""), os.environ.get("SERVER_CPUS", "")
mib = lambda b: b / 1048576
kib = lambda b: b / 1024

def f(x, spec=".1f"):
    return "n/a" if x is None or x != x else format(x, spec)

def row(name, r):
    return (f"| {name} | {r['held']:,} / {r['clients']:,} | {r['connect_seconds']:.1f} s | {r['deliveries']:,} / {r['expected_deliveries']:,} | "
            f"{f(r['p50_ms'])} ms | {f(r['p99_ms'])} ms | {f(r['max_ms'], '.0f')} ms | {f(r['own_p50_ms'])} / {f(r['own_p99_ms'])} ms | "
            f"{kib(r['bytes_per_connection']):.1f} KiB | {mib(r['rss_connected_bytes']):.0f} MiB | {r['cpu_percent']:.0f} % | "
            f"{r['loadgen_cpu_percent']:.0f} % | {f(r.get('client_loops_cpu_us_per_frame'), '.1f')} µs | {r['loadavg_start']} → {r['loadavg_end']} |")

def generator(name, r):
    return (f"- {name}: {r.get('frames_received_window', 0):,} websocket frames received in the measured window "
            f"({r.get('bytes_received_window', 0) / 1048576:.1f} MiB); CPU per frame received: the client loops "
            f"{f(r.get('client_loops_cpu_us_per_frame'), '.2f')} µs ({f(r.get('client_loops_cpu_percent'), '.1f')} % of a core), "
            f"the whole generator {f(r.get('loadgen_cpu_us_per_frame'), '.1f')} µs ({r['loadgen_cpu_percent']:.0f} %, "
            f"the producer's commits and the LISTEN connection included)")

def stage(name, r, key):
    st = r["stages"][key]
    return f"{f(st['p50_ms'])} / {f(st['p99_ms'])} / {f(st['max_ms'], '.0f')} ms (n={st['n']:,})"

STAGES = [
    ("schedule → COMMIT returned (the database under this load)", "schedule_to_commit_returned"),
    ("COMMIT returned → NOTIFY at a listener (k-th to k-th, approximate)", "commit_to_notify_approx"),
    ("own-topic event: COMMIT returned → arrival", "own_commit_to_arrival"),
    (f"shared event: COMMIT returned → first of its {clients:,} arrivals", "shared_commit_to_first_arrival"),
    ("shared event: COMMIT returned → last arrival", "shared_commit_to_last_arrival"),
    ("shared event: last arrival − first arrival (spread of the burst)", "shared_burst_spread"),
]

def server_stages(r):
    st = r["stages"].get("server") or {}
    if not st or "error" in st:
        return "not scraped" + (f" ({st['error']})" if st else "")
    def q(series, label=""):
        vals = []
        for quant in ("0.5", "0.99"):
            key = next((k for k in st if k.startswith(series + "{") and f'quantile="{quant}"' in k and label in k), None)
            vals.append(f"{st[key] * 1000:.2f}" if key else "n/a")
        cnt = next((v for k, v in st.items() if k.startswith(series + "_count") and label in k), None)
        return f"{vals[0]} / {vals[1]} ms" + (f" (n={int(cnt):,})" if cnt is not None else "")
    events_label = 'log="events"'
    lines = [
        f"- the read (one statement, events log): p50 / p99 {q('careplane_realtime_read_seconds', events_label)}",
        f"- NOTIFY received → rows in hand: {q('careplane_realtime_notify_to_read_seconds')}",
        f"- fan-out of one event to every joined socket (written at once, or queued for its task): {q('careplane_realtime_fan_out_seconds')}",
    ]
    ctos = {k: v for k, v in st.items() if k.startswith("careplane_realtime_commit_to_send_seconds_bucket")}
    total = st.get("careplane_realtime_commit_to_send_seconds_count")
    if ctos and total:
        under = [(k.split('le="')[1].rstrip('"}'), v) for k, v in ctos.items()]
        lines.append("- transaction start → fan-out (histogram, whole run): " +
                     ", ".join(f"≤ {le} s: {v / total * 100:.1f} %" for le, v in under if le in ("0.01", "0.025", "0.05", "0.1", "0.25")))
    dropped = sum(v for k, v in st.items() if k.startswith("careplane_realtime_slow_clients_dropped_total"))
    lines.append(f"- slow clients dropped by the server: {int(dropped)}")
    return "\n".join(lines)

def completeness(name, r):
    sh = r["short_events"]
    closed = r.get("sockets_closed_by_server") or {}
    closed_txt = "; ".join(f"{k} × {v}" for k, v in closed.items()) or "none"
    return (f"- {name}: {r['events']:,} events scheduled in the window, {r['committed_events']:,} committed "
            f"({r.get('committed_per_second', 0):.0f}/s; {r['insert_failures']:,} inserts failed, so {sh['never_committed']:,} events "
            f"never committed and are not expected); {r['deliveries']:,} of {r['expected_deliveries']:,} expected deliveries of the "
            f"committed events arrived ({r['duplicates']} duplicates); committed events short of their audience: "
            f"{sh['own_topic']} own-topic, {sh['shared']} shared; sockets the server closed during the run: {closed_txt}. "
            f"Waited {r['commits_drain_ms'] / 1000:.1f} s for the last commits, then {r['delivery_drain_ms'] / 1000:.1f} s for deliveries.")

ratio = s["bytes_per_connection"] / c["bytes_per_connection"] if c["bytes_per_connection"] > 0 else float("nan")
targets = [
    ("10,000 clients held", c["held"] >= 10000),
    ("p99 commit-to-client ≤ 100 ms", c["p99_ms"] is not None and c["p99_ms"] <= 100),
    ("≥ 5× less memory per connection than Socket.IO", ratio >= 5),
    ("every expected delivery arrived", c["deliveries"] >= c["expected_deliveries"]),
]
pinning = (f"generator pinned to CPU {loadgen_cpus} (`taskset -c {loadgen_cpus}`)" if loadgen_cpus else "generator not pinned") + ", " + \
          (f"each server pinned to CPU {server_cpus}" if server_cpus else "servers not pinned") + "; Postgres and Redis not pinned"
stage_rows = "\n".join(f"| {label} | {stage('c', c, key)} | {stage('s', s, key)} |" for label, key in STAGES)
with open(report, "w") as fh:
    fh.write(f"""# Realtime relay benchmark

Written by `bench/realtime/run.sh` (`make bench-realtime`) on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.
{clients:,} websocket clients, each joined to its own `user:<uuid>` topic and the shared `dispatch`
topic; {rate:,} events per second, each its own committed transaction inserting into
`private.realtime_events` (every {shared_every:,}th on `dispatch`, reaching every client); the same
Rust load generator (`bench/realtime/loadgen.rs`: {c['loadgen_threads']} client thread(s), each an epoll
loop over raw non-blocking sockets; the producer on a runtime of its own) for both servers, one after the other on fresh databases. Latency: from COMMIT
returning in the generator to the frame arriving at the client. The window is the events
scheduled during the measured seconds; the generator waits for their commits and then for every
expected delivery (or the drain timeout) before it counts. Memory per connection: (server RSS
with every client joined − RSS idle) / clients. CPU: the server process (and the generator)
during the measured window (100 % = one core). Machine: {cpu}, {nproc} cores shared by Postgres,
Redis, the server and the generator; {pinning}. Node {node}. The load average is the machine's
at the start and end of each measured window: figures taken under other load are not the
machine's best.

| server | clients held | connect | deliveries (window) | p50 | p99 | max | own-topic p50 / p99 | memory / connection | RSS connected | server CPU | generator CPU | generator client loops: CPU / frame | load avg |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{row("careplane-companion (Supabase Realtime protocol, vsn 2.0.0)", c)}
{row("Socket.IO 4 on Node " + node, s)}

p50 / p99 / max are over every delivery, most of which are the shared-topic events (each reaches
every client at once, so the generator receives {clients:,} frames in a burst); the own-topic column
is the events that reach one client.

Memory per connection: Socket.IO / careplane = **{ratio:.1f}×**.

Targets (careplane): """ + "; ".join(f"{name}: {'met' if ok else '**not met**'}" for name, ok in targets) + f""".

## Where the time goes (p50 / p99 / max)

| stage | careplane | Socket.IO |
| --- | --- | --- |
{stage_rows}

The generator's own cost (it must not be what spreads a burst):
{generator("careplane", c)}
{generator("Socket.IO", s)}

careplane's tailer, from its `/metrics` at the end of the run (summaries over the recent window):
{server_stages(c)}

## Completeness
{completeness("careplane", c)}
{completeness("Socket.IO", s)}

The raw results (with the first short events) are in `careplane.json` and `socketio.json` beside
this report.

What differs between the two servers (all in the baseline's favour except the last):
careplane authorises every join in the database as the user (`access.may_join_topic`, two per
client), reads the log with the commit-safe snapshot read (one statement per read) and encodes
Supabase's binary frames; the Socket.IO peer verifies the same HS256 token, joins rooms without
asking the database, and reads new rows with a plain id cursor (which can skip late commits).
Both wake on the same `NOTIFY`. Failures (clients that could not connect): careplane
{c['failures']}, Socket.IO {s['failures']}.
""")
print(open(report).read())
