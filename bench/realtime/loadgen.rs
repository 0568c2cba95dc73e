//! The load generator of bench/realtime (one Rust client for both servers): opens CLIENTS
//! websockets, each subscribed to its own `user:<uuid>` topic and the shared `dispatch` topic,
//! commits RATE events per second into `private.realtime_events` (one transaction each), and
//! measures, for every event delivered, the time from its COMMIT returning to its arrival.
//! Also samples the server's RSS and CPU from /proc. Prints one JSON line of results.
//!
//! What it measures, and how it keeps itself out of the figures:
//! - Two runtimes: the clients run on a multi-threaded runtime (LOADGEN_THREADS workers); the
//!   producer (the commits) and a LISTEN connection run on a runtime of their own, so a
//!   10,000-frame burst arriving at the clients does not delay the producer's ticks or the
//!   instant a COMMIT is seen to return.
//! - A client does the least per frame: it finds `"seq":` in the frame's bytes, parses the
//!   digits, and appends `(seq, instant)` to its own vector (no shared lock, no channel, no JSON
//!   parse); it also counts the arrival in a per-event atomic, so the generator knows when every
//!   expected delivery has arrived.
//! - The measured window is the events *scheduled* during MEASURE_SECONDS after WARMUP. After
//!   the last one is scheduled, the generator waits for every commit to return, then for every
//!   expected delivery of the window's events (or DRAIN_SECONDS, or DRAIN_QUIET_SECONDS with no
//!   new arrival), and only then stops the clients and counts.
//! - Expected deliveries per event: 1 for an own-topic event whose client is joined, the number
//!   of joined clients for a `dispatch` event. Events short of their expected count are listed
//!   (with whether they committed at all), as are sockets the server closed and why.
//! - Stages: schedule → COMMIT returned (the database's commit latency under this load);
//!   COMMIT → NOTIFY seen by a listener (the k-th notification against the k-th commit to
//!   return: approximate, as commit order and return order may differ slightly); COMMIT →
//!   first and last arrival of each shared event (the last minus the first is the fan-out's
//!   spread over 10,000 sockets, server and generator together); for careplane, the tailer's
//!   own stage times scraped from its `/metrics` (read, NOTIFY → rows in hand, fan-out of one
//!   event onto every joined socket's queue, transaction start → fan-out), and slow clients it
//!   dropped.
//!
//! Env: TARGET (careplane | socketio), URL (http://127.0.0.1:port), SERVER_PID, CLIENTS, RATE,
//! MEASURE_SECONDS, WARMUP, SHARED_EVERY (every n-th event goes to `dispatch`), DRAIN_SECONDS
//! (default 15), DRAIN_QUIET_SECONDS (default 3), LOADGEN_THREADS (default 2), DATABASE_URL,
//! SUPABASE_JWT_SECRET. Built by `cargo build --release -p careplane-tests --example realtime_load`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

fn env(k: &str, default: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| default.to_owned())
}

fn env_num<T: std::str::FromStr>(k: &str, default: &str) -> anyhow::Result<T> {
    let v = env(k, default);
    v.parse().map_err(|_| anyhow::anyhow!("{k}={v:?} is not a number"))
}

fn token(secret: &str, sub: uuid::Uuid, role: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = json!({"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 7200,
                        "user_role": role, "user_roles": [role]});
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

/// (rss bytes, cpu ticks utime+stime) of `pid`.
fn proc_sample(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss_kb * 1024, ticks)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The `seq` of a delivered event: the digits after the first `"seq":` in the frame (both
/// servers carry the generator's payload `{"seq":N}` verbatim).
fn seq_in(frame: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"\"seq\":";
    let at = frame.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let digits = frame[at..].iter().skip_while(|b| **b == b' ').take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

/// What every client shares with the generator.
struct Shared {
    /// Arrivals per seq (index), for the drain.
    received: Vec<AtomicU32>,
    /// Joined (both topics) per client index.
    joined: Vec<AtomicBool>,
    joined_count: AtomicU64,
    /// Every client's `(seq, arrival)` list, handed over when it stops.
    arrivals: Mutex<Vec<(u32, Instant)>>,
    last_arrival: Mutex<Option<Instant>>,
    /// Sockets that ended before the generator stopped them, by reason.
    closed: Mutex<BTreeMap<String, u64>>,
    failures: AtomicU64,
}

impl Shared {
    fn arrived(&self, local: &mut Vec<(u32, Instant)>, frame: &[u8]) {
        let at = Instant::now();
        if let Some(seq) = seq_in(frame) {
            if let Some(c) = self.received.get(seq as usize) {
                c.fetch_add(1, Ordering::Relaxed);
                local.push((seq as u32, at));
            }
        }
    }

    fn mark_joined(&self, i: usize) {
        if !self.joined[i].swap(true, Ordering::Relaxed) {
            self.joined_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn closed_because(&self, reason: String) {
        *self.closed.lock().unwrap().entry(reason).or_default() += 1;
    }
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn close_reason(m: &Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> String {
    match m {
        Some(Ok(Message::Close(Some(f)))) => format!("closed by the server: {} {}", u16::from(f.code), f.reason),
        Some(Ok(Message::Close(None))) => "closed by the server (no reason)".into(),
        Some(Err(e)) => format!("socket error: {e}"),
        None => "connection ended".into(),
        Some(Ok(_)) => "unexpected frame".into(),
    }
}

async fn careplane_client(
    ws: &mut Ws,
    user: uuid::Uuid,
    i: usize,
    shared: &Shared,
    local: &mut Vec<(u32, Instant)>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<String>> {
    for (n, topic) in [format!("user:{user}"), "dispatch".to_owned()].iter().enumerate() {
        let r = (n + 1).to_string();
        let join = json!([r, r, format!("realtime:{topic}"), "phx_join", {"config": {"private": true, "broadcast": {"self": false, "ack": false}}}]);
        ws.send(Message::text(join.to_string())).await?;
    }
    let mut ok = 0;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(25));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            m = ws.next() => match &m {
                // vsn 2.0.0 broadcast: a binary frame of kind 4.
                Some(Ok(Message::Binary(b))) if b.first() == Some(&4) => shared.arrived(local, b),
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v[3] == "phx_reply" && (v[1] == "1" || v[1] == "2") {
                        if v[4]["status"] != "ok" {
                            anyhow::bail!("join refused: {v}");
                        }
                        ok += 1;
                        if ok == 2 { shared.mark_joined(i); }
                    } else if v[3] == "broadcast" {
                        shared.arrived(local, t.as_bytes());
                    } else if v[3] == "phx_close" || v[3] == "phx_error" || (v[3] == "system" && v[4]["status"] != "ok") {
                        // The reason, not the topic: one key per kind of ending.
                        let why = v[4].get("message").or_else(|| v[4].get("reason")).cloned().unwrap_or(Value::Null);
                        shared.closed_because(format!("{}: {why}", v[3].as_str().unwrap_or("?")));
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                _ => return Ok(Some(close_reason(&m))),
            },
            _ = heartbeat.tick() => { ws.send(Message::text(r#"[null,"hb","phoenix","heartbeat",{}]"#)).await?; }
            _ = stop.changed() => return Ok(None),
        }
    }
}

/// Engine.IO 4 / Socket.IO 4 over a websocket: `0{open}`, `40{auth}` → `40{sid}`, events `42[…]`,
/// ping `2` → pong `3`.
async fn socketio_client(
    ws: &mut Ws,
    jwt: &str,
    i: usize,
    shared: &Shared,
    local: &mut Vec<(u32, Instant)>,
    stop: &mut watch::Receiver<bool>,
) -> anyhow::Result<Option<String>> {
    loop {
        tokio::select! {
            m = ws.next() => match &m {
                Some(Ok(Message::Text(t))) => {
                    let t = t.as_str();
                    if let Some(body) = t.strip_prefix("42") {
                        shared.arrived(local, body.as_bytes());
                    } else if t == "2" {
                        ws.send(Message::text("3")).await?;
                    } else if t.starts_with("40") {
                        shared.mark_joined(i);
                    } else if t.starts_with('0') {
                        ws.send(Message::text(format!("40{}", json!({"token": jwt})))).await?;
                    } else if t.starts_with("44") {
                        anyhow::bail!("socket.io refused: {t}");
                    } else if t.starts_with('1') || t.starts_with("41") {
                        return Ok(Some(format!("closed by the server: {t}")));
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_) | Message::Binary(_))) => {}
                _ => return Ok(Some(close_reason(&m))),
            },
            _ = stop.changed() => return Ok(None),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<f64>) -> Value {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    json!({"n": v.len(), "p50_ms": percentile(&v, 0.5), "p99_ms": percentile(&v, 0.99), "max_ms": v.last().copied().unwrap_or(f64::NAN)})
}

/// The tailer's stage series from careplane's `/metrics` (quantiles, sums and counts) and its
/// slow-client and relay counters.
async fn scrape(base: &str) -> Value {
    let page = match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => return json!({"error": e.to_string()}),
    };
    let mut out = serde_json::Map::new();
    for line in page.lines() {
        if line.starts_with('#') || !line.starts_with("careplane_realtime_") {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        if let Ok(v) = value.parse::<f64>() {
            out.insert(series.to_owned(), json!(v));
        }
    }
    Value::Object(out)
}

fn main() -> anyhow::Result<()> {
    let threads: usize = env_num("LOADGEN_THREADS", "2")?;
    let clients_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads.max(1)).thread_name("clients").enable_all().build()?;
    let producer_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("producer").enable_all().build()?;
    let result = clients_rt.block_on(run(producer_rt.handle().clone()))?;
    println!("{result}");
    // Sockets and tasks are not torn down one by one: the process ends here.
    std::process::exit(0);
}

async fn run(producer_rt: tokio::runtime::Handle) -> anyhow::Result<Value> {
    let target = env("TARGET", "careplane");
    if target != "careplane" && target != "socketio" {
        anyhow::bail!("TARGET={target:?} is neither careplane nor socketio");
    }
    let base = env("URL", "http://127.0.0.1:8080");
    let pid: u32 = env_num("SERVER_PID", "0")?;
    let clients: usize = env_num("CLIENTS", "10000")?;
    let rate: u64 = env_num("RATE", "1000")?;
    let seconds: u64 = env_num("MEASURE_SECONDS", "20")?;
    let warmup: u64 = env_num("WARMUP", "5")?;
    let shared_every: u64 = env_num("SHARED_EVERY", "1000")?;
    let drain_secs: u64 = env_num("DRAIN_SECONDS", "15")?;
    let quiet_secs: u64 = env_num("DRAIN_QUIET_SECONDS", "3")?;
    if clients == 0 || rate == 0 || shared_every == 0 {
        anyhow::bail!("CLIENTS, RATE and SHARED_EVERY must be positive");
    }
    let secret = env("SUPABASE_JWT_SECRET", "");
    let db = sqlx::postgres::PgPoolOptions::new().max_connections(16).connect(&env("DATABASE_URL", "")).await?;

    // The users: dispatchers, so `dispatch` is theirs to join (careplane asks the database).
    let users: Vec<uuid::Uuid> = sqlx::query_scalar(
        "with u as (insert into auth.users (id, email) select gen_random_uuid(), gen_random_uuid() || '@bench.test'
                    from generate_series(1, $1) returning id),
              r as (insert into public.user_roles (user_id, role) select id, 'dispatcher' from u returning user_id)
         select user_id from r",
    )
    .bind(clients as i64)
    .fetch_all(&db)
    .await?;

    // Room for every seq the producer can schedule (it stops at warmup + seconds).
    let capacity = (rate * (warmup + seconds) + rate + 16) as usize;
    let shared = Arc::new(Shared {
        received: (0..capacity).map(|_| AtomicU32::new(0)).collect(),
        joined: (0..clients).map(|_| AtomicBool::new(false)).collect(),
        joined_count: AtomicU64::new(0),
        arrivals: Mutex::new(Vec::new()),
        last_arrival: Mutex::new(None),
        closed: Mutex::new(BTreeMap::new()),
        failures: AtomicU64::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopping = Arc::new(AtomicBool::new(false));
    let (rss_idle, _) = proc_sample(pid);
    let connect_started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(100));
    let mut tasks = Vec::with_capacity(clients);
    for (i, user) in users.iter().copied().enumerate() {
        let (base, jwt, shared, permits, target) = (base.clone(), token(&secret, user, "dispatcher"), shared.clone(), permits.clone(), target.clone());
        let (mut stop, stopping) = (stop_rx.clone(), stopping.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = Vec::new();
            let outcome = async {
                let permit = permits.acquire_owned().await?;
                let url = if target == "careplane" {
                    format!("{}/realtime/v1/websocket?apikey={jwt}&vsn=2.0.0", base.replacen("http", "ws", 1))
                } else {
                    format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1))
                };
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
                // Hold the permit only while connecting (released after a short while).
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    drop(permit);
                });
                if target == "careplane" {
                    careplane_client(&mut ws, user, i, &shared, &mut local, &mut stop).await
                } else {
                    socketio_client(&mut ws, &jwt, i, &shared, &mut local, &mut stop).await
                }
            }
            .await;
            match outcome {
                Ok(None) => {}
                Ok(Some(reason)) if !stopping.load(Ordering::Relaxed) => shared.closed_because(reason),
                Ok(Some(_)) => {}
                Err(e) => {
                    if shared.failures.fetch_add(1, Ordering::Relaxed) < 3 {
                        eprintln!("client {i}: {e:#}");
                    }
                }
            }
            if let Some(last) = local.iter().map(|(_, at)| *at).max() {
                let mut l = shared.last_arrival.lock().unwrap();
                *l = Some(l.map_or(last, |x| x.max(last)));
            }
            shared.arrivals.lock().unwrap().extend(local);
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while (shared.joined_count.load(Ordering::Relaxed) as usize) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_connected, _) = proc_sample(pid);
    let held = shared.joined_count.load(Ordering::Relaxed);
    // Who is joined when production starts decides what is expected.
    let joined_at_start: Vec<bool> = shared.joined.iter().map(|j| j.load(Ordering::Relaxed)).collect();

    // The listener: when each NOTIFY careplane_realtime reaches a client of the database.
    let notified: Arc<Mutex<Vec<Instant>>> = Arc::new(Mutex::new(Vec::new()));
    let listener = {
        let (db, notified, mut stop) = (db.clone(), notified.clone(), stop_rx.clone());
        producer_rt.spawn(async move {
            let mut l = sqlx::postgres::PgListener::connect_with(&db).await?;
            l.listen("careplane_realtime").await?;
            loop {
                tokio::select! {
                    n = l.recv() => { n?; notified.lock().unwrap().push(Instant::now()); }
                    _ = stop.changed() => return anyhow::Ok(()),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Producer: RATE commits per second; (scheduled, COMMIT returned) per seq.
    let slots = Arc::new((0..capacity).map(|_| Mutex::new(None::<(Instant, Instant)>)).collect::<Vec<_>>());
    let insert_failures = Arc::new(AtomicU64::new(0));
    let next_seq = Arc::new(AtomicU64::new(0));
    let producing_until = Instant::now() + Duration::from_secs(warmup + seconds);
    let producer = {
        let (db, slots, next_seq, users, insert_failures) = (db.clone(), slots.clone(), next_seq.clone(), users.clone(), insert_failures.clone());
        producer_rt.spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut inserts = Vec::new();
            loop {
                tick.tick().await;
                let scheduled = Instant::now();
                if scheduled >= producing_until || next_seq.load(Ordering::Relaxed) as usize >= slots.len() {
                    break;
                }
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let topic = if seq % shared_every == 0 { "dispatch".to_owned() } else { format!("user:{}", users[seq as usize % users.len()]) };
                let (db, slots, insert_failures) = (db.clone(), slots.clone(), insert_failures.clone());
                inserts.push(tokio::spawn(async move {
                    let r = sqlx::query("insert into private.realtime_events (topic, event, payload) values ($1, 'bench:event', $2)")
                        .bind(&topic)
                        .bind(json!({"seq": seq}))
                        .execute(&db)
                        .await;
                    match r {
                        Ok(_) => *slots[seq as usize].lock().unwrap() = Some((scheduled, Instant::now())),
                        Err(e) => {
                            if insert_failures.fetch_add(1, Ordering::Relaxed) < 3 {
                                eprintln!("insert {seq}: {e}");
                            }
                        }
                    }
                }));
            }
            // Every commit returns before the producer is done.
            for i in inserts {
                let _ = i.await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let measure_from_seq = next_seq.load(Ordering::Relaxed);
    let (_, cpu0) = proc_sample(pid);
    let (_, self0) = proc_sample(std::process::id());
    let load_start = loadavg();
    let t0 = Instant::now();
    let mut rss_peak = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(proc_sample(pid).0);
    }
    let (_, cpu1) = proc_sample(pid);
    let (_, self1) = proc_sample(std::process::id());
    let load_end = loadavg();
    let measured = t0.elapsed().as_secs_f64();
    let measure_to_seq = next_seq.load(Ordering::Relaxed);
    // Wait for the last commits (the producer stops scheduling now), then for the deliveries.
    let commits_wait = Instant::now();
    tokio::time::timeout(Duration::from_secs(60), producer).await.map_err(|_| anyhow::anyhow!("commits still pending after 60 s"))??;
    let commits_drain_ms = ms(commits_wait.elapsed());
    let window = measure_from_seq..measure_to_seq;
    let held_at_start = joined_at_start.iter().filter(|j| **j).count() as u32;
    let expected_of = |seq: u64| -> u32 {
        if seq % shared_every == 0 {
            held_at_start
        } else {
            u32::from(joined_at_start[seq as usize % users.len()])
        }
    };
    let committed = |seq: u64| slots[seq as usize].lock().unwrap().is_some();
    let outstanding = || -> u64 {
        window
            .clone()
            .filter(|s| committed(*s))
            .map(|s| u64::from(expected_of(s).saturating_sub(shared.received[s as usize].load(Ordering::Relaxed))))
            .sum()
    };
    let drain_started = Instant::now();
    let mut last_total = u64::MAX;
    let mut last_change = Instant::now();
    loop {
        let left = outstanding();
        if left == 0 || drain_started.elapsed() >= Duration::from_secs(drain_secs) || last_change.elapsed() >= Duration::from_secs(quiet_secs) {
            break;
        }
        if left != last_total {
            last_total = left;
            last_change = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_ms = ms(drain_started.elapsed());
    let server_stages = if target == "careplane" { scrape(&base).await } else { Value::Null };
    stopping.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let _ = listener.await;

    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_percent = (cpu1 - cpu0) as f64 / ticks_per_sec / measured * 100.0;
    let loadgen_cpu_percent = (self1 - self0) as f64 / ticks_per_sec / measured * 100.0;

    // Per event: what was expected and what arrived; latencies from COMMIT returning.
    let arrivals = std::mem::take(&mut *shared.arrivals.lock().unwrap());
    let commit_of: Vec<Option<(Instant, Instant)>> = slots.iter().map(|s| *s.lock().unwrap()).collect();
    let mut all = Vec::new();
    let mut own = Vec::new();
    let mut first: BTreeMap<u64, (Instant, Instant)> = BTreeMap::new();
    let mut before_commit_returned = 0u64;
    for (seq, at) in &arrivals {
        let seq = u64::from(*seq);
        if !window.contains(&seq) {
            continue;
        }
        let Some((_, c)) = commit_of[seq as usize] else { continue };
        if *at < c {
            before_commit_returned += 1;
        }
        let l = ms(at.saturating_duration_since(c));
        all.push(l);
        if seq % shared_every != 0 {
            own.push(l);
        } else {
            let e = first.entry(seq).or_insert((*at, *at));
            e.0 = e.0.min(*at);
            e.1 = e.1.max(*at);
        }
    }
    let mut shared_first = Vec::new();
    let mut shared_last = Vec::new();
    let mut shared_spread = Vec::new();
    for (seq, (f, l)) in &first {
        let (_, c) = commit_of[*seq as usize].unwrap();
        shared_first.push(ms(f.saturating_duration_since(c)));
        shared_last.push(ms(l.saturating_duration_since(c)));
        shared_spread.push(ms(l.saturating_duration_since(*f)));
    }
    let mut expected = 0u64;
    let mut delivered = 0u64;
    let mut duplicates = 0u64;
    let mut short = Vec::new();
    let (mut short_own, mut short_shared, mut short_uncommitted) = (0u64, 0u64, 0u64);
    // Only a committed event can be delivered: one that never committed (the database did not
    // keep up) is counted apart, not as a delivery the server missed.
    for seq in window.clone() {
        let want = if commit_of[seq as usize].is_some() { expected_of(seq) } else { 0 };
        let got = shared.received[seq as usize].load(Ordering::Relaxed);
        expected += u64::from(want);
        delivered += u64::from(got.min(want));
        duplicates += u64::from(got.saturating_sub(want));
        if commit_of[seq as usize].is_none() {
            short_uncommitted += 1;
        } else if got < want {
            if seq % shared_every == 0 {
                short_shared += 1;
            } else {
                short_own += 1;
            }
            if short.len() < 10 {
                short.push(json!({"seq": seq, "shared": seq % shared_every == 0, "expected": want, "received": got,
                                  "committed": commit_of[seq as usize].is_some()}));
            }
        }
    }
    // Database stages: schedule → COMMIT returned; COMMIT → NOTIFY at a listener (k-th to k-th).
    let commit_latency: Vec<f64> =
        window.clone().filter_map(|s| commit_of[s as usize]).map(|(sch, c)| ms(c.saturating_duration_since(sch))).collect();
    let mut returns: Vec<Instant> = commit_of.iter().flatten().map(|(_, c)| *c).collect();
    returns.sort();
    let notified = notified.lock().unwrap().clone();
    let window_start = commit_of.get(measure_from_seq as usize).copied().flatten().map(|(s, _)| s);
    let notify_lag: Vec<f64> = returns
        .iter()
        .zip(notified.iter())
        .filter(|(c, _)| window_start.is_some_and(|w| **c >= w))
        .map(|(c, n)| if n >= c { ms(n.duration_since(*c)) } else { -ms(c.duration_since(*n)) })
        .collect();

    let events = measure_to_seq - measure_from_seq;
    let committed_events = window.clone().filter(|s| commit_of[*s as usize].is_some()).count();
    let mut all_sorted = all.clone();
    all_sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let mut own_sorted = own.clone();
    own_sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let closed = shared.closed.lock().unwrap().clone();
    Ok(json!({
        "target": target, "clients": clients, "held": held, "held_at_start": held_at_start, "connect_seconds": connect_secs,
        "events": events, "committed_events": committed_events,
        "committed_per_second": committed_events as f64 / measured,
        "insert_failures": insert_failures.load(Ordering::Relaxed),
        "expected_deliveries": expected, "deliveries": delivered, "duplicates": duplicates,
        "short_events": {"own_topic": short_own, "shared": short_shared, "never_committed": short_uncommitted, "first": short},
        "sockets_closed_by_server": closed,
        "own_p50_ms": percentile(&own_sorted, 0.5), "own_p99_ms": percentile(&own_sorted, 0.99),
        "p50_ms": percentile(&all_sorted, 0.5), "p99_ms": percentile(&all_sorted, 0.99), "max_ms": all_sorted.last().copied().unwrap_or(f64::NAN),
        "arrivals_before_commit_returned": before_commit_returned,
        "stages": {
            "schedule_to_commit_returned": summary(commit_latency),
            "commit_to_notify_approx": summary(notify_lag),
            "shared_commit_to_first_arrival": summary(shared_first),
            "shared_commit_to_last_arrival": summary(shared_last),
            "shared_burst_spread": summary(shared_spread),
            "own_commit_to_arrival": summary(own),
            "server": server_stages,
        },
        "commits_drain_ms": commits_drain_ms, "delivery_drain_ms": drain_ms,
        "rss_idle_bytes": rss_idle, "rss_connected_bytes": rss_connected, "rss_peak_bytes": rss_peak,
        "bytes_per_connection": (rss_connected.saturating_sub(rss_idle)) as f64 / held.max(1) as f64,
        "cpu_percent": cpu_percent, "loadgen_cpu_percent": loadgen_cpu_percent, "loadgen_threads": env("LOADGEN_THREADS", "2"),
        "loadavg_start": load_start, "loadavg_end": load_end, "measured_seconds": measured,
        "failures": shared.failures.load(Ordering::Relaxed),
    }))
}
