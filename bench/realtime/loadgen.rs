//! The load generator of bench/realtime (one Rust client for both servers): opens CLIENTS
//! websockets, each subscribed to its own `user:<uuid>` topic and the shared `dispatch` topic,
//! commits RATE events per second into `private.realtime_events` (one transaction each), and
//! measures, for every event delivered, the time from its COMMIT returning to its arrival.
//! Also samples the server's RSS and CPU from /proc. Prints one JSON line of results.
//!
//! Env: TARGET (careplane | socketio), URL (http://127.0.0.1:port), SERVER_PID, CLIENTS, RATE,
//! MEASURE_SECONDS, WARMUP, SHARED_EVERY (every n-th event goes to `dispatch`), DATABASE_URL,
//! SUPABASE_JWT_SECRET. Built by `cargo build --release -p careplane-tests --example realtime_load`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

fn env(k: &str, default: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| default.to_owned())
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

/// Pulls `seq` out of a delivered event.
fn seq_of(v: &Value) -> Option<u64> {
    v.get("seq").and_then(Value::as_u64)
}

type Arrivals = mpsc::UnboundedSender<(u64, Instant)>;

async fn careplane_client(base: String, jwt: String, user: uuid::Uuid, arrivals: Arrivals, joined: Arc<AtomicU64>) -> anyhow::Result<()> {
    let url = format!("{}/realtime/v1/websocket?apikey={jwt}&vsn=2.0.0", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    for (i, topic) in [format!("user:{user}"), "dispatch".to_owned()].iter().enumerate() {
        let r = (i + 1).to_string();
        let join = json!([r, r, format!("realtime:{topic}"), "phx_join", {"config": {"private": true, "broadcast": {"self": false, "ack": false}}}]);
        ws.send(Message::text(join.to_string())).await?;
    }
    let mut ok = 0;
    let mut heartbeat = tokio::time::interval(Duration::from_secs(25));
    heartbeat.tick().await;
    loop {
        tokio::select! {
            m = ws.next() => match m {
                Some(Ok(Message::Binary(b))) if b.first() == Some(&4) && b.len() >= 5 => {
                    let at = Instant::now();
                    let start = 5 + b[1] as usize + b[2] as usize + b[3] as usize;
                    if let Some(seq) = b.get(start..).and_then(|p| serde_json::from_slice::<Value>(p).ok()).as_ref().and_then(seq_of) {
                        let _ = arrivals.send((seq, at));
                    }
                }
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v[3] == "phx_reply" && v[4]["status"] == "ok" && (v[1] == "1" || v[1] == "2") {
                        ok += 1;
                        if ok == 2 { joined.fetch_add(1, Ordering::Relaxed); }
                    } else if v[3] == "phx_reply" && v[4]["status"] != "ok" {
                        anyhow::bail!("join refused: {v}");
                    }
                }
                Some(Ok(_)) => {}
                _ => return Ok(()),
            },
            _ = heartbeat.tick() => { ws.send(Message::text(r#"[null,"hb","phoenix","heartbeat",{}]"#)).await?; }
        }
    }
}

/// Engine.IO 4 / Socket.IO 4 over a websocket: `0{open}`, `40{auth}` → `40{sid}`, events `42[…]`,
/// ping `2` → pong `3`.
async fn socketio_client(base: String, jwt: String, arrivals: Arrivals, joined: Arc<AtomicU64>) -> anyhow::Result<()> {
    let url = format!("{}/socket.io/?EIO=4&transport=websocket", base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    while let Some(m) = ws.next().await {
        let Message::Text(t) = m? else { continue };
        let t = t.as_str();
        if t.starts_with('0') {
            ws.send(Message::text(format!("40{}", json!({"token": jwt})))).await?;
        } else if t.starts_with("40") {
            joined.fetch_add(1, Ordering::Relaxed);
        } else if t.starts_with("44") {
            anyhow::bail!("socket.io refused: {t}");
        } else if t == "2" {
            ws.send(Message::text("3")).await?;
        } else if let Some(body) = t.strip_prefix("42") {
            let at = Instant::now();
            if let Ok(v) = serde_json::from_str::<Value>(body) {
                if let Some(seq) = seq_of(&v[1]["payload"]) {
                    let _ = arrivals.send((seq, at));
                }
            }
        }
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target = env("TARGET", "careplane");
    let base = env("URL", "http://127.0.0.1:8080");
    let pid: u32 = env("SERVER_PID", "0").parse()?;
    let clients: usize = env("CLIENTS", "10000").parse()?;
    let rate: u64 = env("RATE", "1000").parse()?;
    let seconds: u64 = env("MEASURE_SECONDS", "20").parse()?;
    let warmup: u64 = env("WARMUP", "5").parse()?;
    let shared_every: u64 = env("SHARED_EVERY", "1000").parse()?;
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

    let (rss_idle, _) = proc_sample(pid);
    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let joined = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let connect_started = Instant::now();
    let permits = Arc::new(tokio::sync::Semaphore::new(100));
    for (i, user) in users.iter().enumerate() {
        let (base, jwt, tx, joined, failures, permits) =
            (base.clone(), token(&secret, *user, "dispatcher"), tx.clone(), joined.clone(), failures.clone(), permits.clone());
        let target = target.clone();
        let user = *user;
        tokio::spawn(async move {
            let permit = permits.acquire_owned().await.ok();
            let run = async {
                if target == "careplane" {
                    careplane_client(base, jwt, user, tx, joined).await
                } else {
                    socketio_client(base, jwt, tx, joined).await
                }
            };
            // Hold the permit only while connecting (released after a short while).
            let releaser = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                drop(permit);
            });
            if let Err(e) = run.await {
                if failures.fetch_add(1, Ordering::Relaxed) < 3 {
                    eprintln!("client {i}: {e:#}");
                }
            }
            releaser.abort();
        });
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    while (joined.load(Ordering::Relaxed) as usize) < clients && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let held = joined.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss_connected, _) = proc_sample(pid);

    // Producer: RATE commits per second; the commit time of each seq is recorded when COMMIT returns.
    let committed: Arc<Mutex<HashMap<u64, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let next_seq = Arc::new(AtomicU64::new(0));
    let producing_until = Instant::now() + Duration::from_secs(warmup + seconds);
    let producer = {
        let (db, committed, next_seq, users) = (db.clone(), committed.clone(), next_seq.clone(), users.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < producing_until {
                tick.tick().await;
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let topic = if seq % shared_every == 0 { "dispatch".to_owned() } else { format!("user:{}", users[seq as usize % users.len()]) };
                let (db, committed) = (db.clone(), committed.clone());
                tokio::spawn(async move {
                    let r = sqlx::query("insert into private.realtime_events (topic, event, payload) values ($1, 'bench:event', $2)")
                        .bind(&topic)
                        .bind(json!({"seq": seq}))
                        .execute(&db)
                        .await;
                    if r.is_ok() {
                        committed.lock().unwrap().insert(seq, Instant::now());
                    }
                });
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(warmup)).await;
    let measure_from_seq = next_seq.load(Ordering::Relaxed);
    let (_, cpu0) = proc_sample(pid);
    let t0 = Instant::now();
    let mut rss_peak = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(proc_sample(pid).0);
    }
    let (_, cpu1) = proc_sample(pid);
    let measured = t0.elapsed().as_secs_f64();
    let measure_to_seq = next_seq.load(Ordering::Relaxed);
    producer.await?;
    // Deliveries still in flight when production stops count, if they arrive within 5 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(tx);
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_percent = (cpu1 - cpu0) as f64 / ticks_per_sec / measured * 100.0;

    let committed = committed.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut own_topic = Vec::new();
    let mut deliveries = 0u64;
    while let Ok((seq, at)) = rx.try_recv() {
        if seq < measure_from_seq || seq >= measure_to_seq {
            continue;
        }
        deliveries += 1;
        if let Some(c) = committed.get(&seq) {
            let ms = at.saturating_duration_since(*c).as_secs_f64() * 1000.0;
            latencies.push(ms);
            if seq % shared_every != 0 {
                own_topic.push(ms);
            }
        }
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    own_topic.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let events = measure_to_seq - measure_from_seq;
    let shared = (measure_from_seq..measure_to_seq).filter(|s| s % shared_every == 0).count() as u64;
    let expected = (events - shared) + shared * held;
    let result = json!({
        "target": target, "clients": clients, "held": held, "connect_seconds": connect_secs,
        "events": events, "expected_deliveries": expected, "deliveries": deliveries,
        "own_p50_ms": percentile(&own_topic, 0.5), "own_p99_ms": percentile(&own_topic, 0.99),
        "p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99), "max_ms": latencies.last().copied().unwrap_or(f64::NAN),
        "rss_idle_bytes": rss_idle, "rss_connected_bytes": rss_connected, "rss_peak_bytes": rss_peak,
        "bytes_per_connection": (rss_connected.saturating_sub(rss_idle)) as f64 / held.max(1) as f64,
        "cpu_percent": cpu_percent, "measured_seconds": measured,
        "failures": failures.load(Ordering::Relaxed),
    });
    println!("{result}");
    std::process::exit(0);
}
