"""Writes bench/realtime/REPORT.md from the two load generator results (called by run.sh)."""
import json, sys, platform, subprocess, datetime
c, s = (json.load(open(p)) for p in sys.argv[1:3])
report, clients, rate, shared_every = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mib = lambda b: b / 1048576
kib = lambda b: b / 1024
def row(name, r):
    return (f"| {name} | {r['held']:,} / {r['clients']:,} | {r['connect_seconds']:.1f} s | {r['deliveries']:,} / {r['expected_deliveries']:,} | "
            f"{r['p50_ms']:.1f} ms | {r['p99_ms']:.1f} ms | {r['max_ms']:.0f} ms | {r['own_p50_ms']:.1f} / {r['own_p99_ms']:.1f} ms | {kib(r['bytes_per_connection']):.1f} KiB | "
            f"{mib(r['rss_connected_bytes']):.0f} MiB | {r['cpu_percent']:.0f} % |")
ratio = s["bytes_per_connection"] / c["bytes_per_connection"] if c["bytes_per_connection"] > 0 else float("nan")
targets = [
    ("10,000 clients held", c["held"] >= 10000),
    ("p99 commit-to-client ≤ 100 ms", c["p99_ms"] <= 100),
    ("≥ 5× less memory per connection than Socket.IO", ratio >= 5),
    ("every expected delivery arrived", c["deliveries"] >= c["expected_deliveries"]),
]
with open(report, "w") as f:
    f.write(f"""# Realtime relay benchmark

Written by `bench/realtime/run.sh` (`make bench-realtime`) on {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC.
{clients:,} websocket clients, each joined to its own `user:<uuid>` topic and the shared `dispatch`
topic; {rate:,} events per second, each its own committed transaction inserting into
`private.realtime_events` (every {shared_every:,}th on `dispatch`, reaching every client); the same
Rust load generator (`bench/realtime/loadgen.rs`) for both servers, one after the other on fresh
databases. Latency: from COMMIT returning in the generator to the frame arriving at the client.
Memory per connection: (server RSS with every client joined − RSS idle) / clients. CPU: the
server process during the measured window (100 % = one core). Machine: {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores shared by
Postgres, Redis, the server and the generator. Node {node}.

| server | clients held | connect | deliveries (measured window) | p50 | p99 | max | own-topic events only: p50 / p99 | memory / connection | RSS connected | CPU |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
{row("careplane-companion (Supabase Realtime protocol, vsn 2.0.0)", c)}
{row("Socket.IO 4 on Node " + node, s)}

p50 / p99 / max are over every delivery, most of which are the shared-topic events (each reaches
every client at once, so the generator receives 10,000 frames in a burst); the own-topic column
is the events that reach one client.

Memory per connection: Socket.IO / careplane = **{ratio:.1f}×**.

Targets (careplane): """ + "; ".join(f"{name}: {'met' if ok else '**not met**'}" for name, ok in targets) + f""".

What differs between the two servers (all in the baseline's favour except the last):
careplane authorises every join in the database as the user (`access.may_join_topic`, two per
client), reads the log with the commit-safe snapshot read (5 round trips per read) and encodes Supabase's binary frames;
the Socket.IO peer verifies the same HS256 token, joins rooms without asking the database, and
reads new rows with a plain id cursor (which can skip late commits). Both wake on the same
`NOTIFY`. Failures (clients that could not connect): careplane {c['failures']}, Socket.IO {s['failures']}.
""")
print(open(report).read())
