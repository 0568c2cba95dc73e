//! The realtime relay end to end: commit order across out-of-order commits, row-level security on
//! `postgres_changes`, slow consumers, and 1001 on SIGTERM. (The official client's behaviour is
//! covered by the Node suite, `tests/realtime-js`, run by `realtime_js.rs`.)

use std::time::Duration;

use careplane_companion::realtime::tailer::{read_events, start_events_cursor};
use careplane_tests::{create_user, jwt, redis_url, unique_prefix, Companion, TestDb, TEST_JWT_SECRET};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn token(sub: uuid::Uuid, role: &str) -> String {
    let now = jwt::now();
    let claims = json!({"sub": sub, "role": "authenticated", "aud": "authenticated", "iat": now, "exp": now + 3600,
                        "user_role": role, "user_roles": [role]});
    jwt::sign_hs256(TEST_JWT_SECRET.as_bytes(), &claims)
}

/// A vsn 1.0.0 client (JSON object frames), enough to drive the protocol by hand.
struct Client {
    ws: Stream,
    next_ref: u64,
}

impl Client {
    async fn connect(base: &str, token: &str) -> Client {
        let url = format!("{}/realtime/v1/websocket?apikey={token}&vsn=1.0.0", base.replacen("http", "ws", 1));
        let (ws, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Client { ws, next_ref: 0 }
    }

    async fn send(&mut self, topic: &str, event: &str, payload: Value) -> String {
        self.next_ref += 1;
        let r = self.next_ref.to_string();
        let frame = json!({"join_ref": r, "ref": r, "topic": topic, "event": event, "payload": payload});
        self.ws.send(Message::text(frame.to_string())).await.expect("send");
        r
    }

    /// Joins `realtime:<topic>` and returns the reply's payload.
    async fn join(&mut self, topic: &str, config: Value) -> Value {
        let topic = format!("realtime:{topic}");
        let r = self.send(&topic, "phx_join", json!({"config": config})).await;
        loop {
            let m = self.next(Duration::from_secs(5)).await.expect("a join reply");
            if m["event"] == "phx_reply" && m["ref"] == r {
                return m["payload"].clone();
            }
        }
    }

    /// The next JSON frame, or None after `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        loop {
            match tokio::time::timeout(wait, self.ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(t.as_str()).expect("JSON frame")),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }

    /// The next frame of `event` (others are skipped).
    async fn next_event(&mut self, event: &str, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = self.next(left).await?;
            if m["event"] == event {
                return Some(m);
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    async fn close_frame(&mut self, wait: Duration) -> Option<(u16, String)> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.ws.next()).await {
                Ok(Some(Ok(Message::Close(Some(f))))) => return Some((f.code.into(), f.reason.to_string())),
                Ok(Some(Ok(Message::Close(None)))) => return Some((CloseCode::Status.into(), String::new())),
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }
}

async fn companion(db: &TestDb, extra: &[(&str, &str)]) -> Companion {
    let prefix = unique_prefix();
    let redis = redis_url();
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("REDIS_URL", redis.as_str()),
        ("REALTIME_REDIS_PREFIX", prefix.as_str()),
        ("REALTIME_POLL_INTERVAL_MS", "200"),
        ("LEDGER_EXPIRY_INTERVAL_SECONDS", "0"),
    ];
    env.extend_from_slice(extra);
    Companion::spawn(&env).await.expect("companion starts")
}

/// Transaction A inserts the lower id but commits after B. A reader that remembers "the last id
/// I saw" reads B, then never A; the watermark reader returns B, then A, then nothing more —
/// and a client joined to the topic receives both.
#[tokio::test(flavor = "multi_thread")]
async fn reverse_commit_order_is_delivered_without_a_gap() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut setup = db.connect().await?;
    let user = create_user(&mut setup, "patient").await?;
    let topic = format!("user:{user}");
    let node = companion(&db, &[]).await;
    let mut client = Client::connect(&node.base, &token(user, "patient")).await;
    assert_eq!(client.join(&topic, json!({"private": true})).await["status"], "ok");

    let pool = PgPoolOptions::new().max_connections(2).connect(&db.url).await?;
    let mut cursor = start_events_cursor(&pool).await?;
    assert!(read_events(&pool, &cursor).await?.0.is_empty(), "a new cursor starts after what is committed");
    let insert = "insert into private.realtime_events (topic, event, payload) values ($1, 'appointment:updated', $2) returning id";
    let mut a = sqlx::PgConnection::connect(&db.url).await?;
    let mut b = sqlx::PgConnection::connect(&db.url).await?;
    let mut ta = a.begin().await?;
    let id_a: i64 = sqlx::query_scalar(insert).bind(&topic).bind(json!({"tx": "a"})).fetch_one(&mut *ta).await?;
    let mut tb = b.begin().await?;
    let id_b: i64 = sqlx::query_scalar(insert).bind(&topic).bind(json!({"tx": "b"})).fetch_one(&mut *tb).await?;
    assert!(id_a < id_b, "A holds the lower id");
    tb.commit().await?;

    let (rows, next) = read_events(&pool, &cursor).await?;
    cursor = next;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id_b], "only B has committed");
    let last_seen = rows.iter().map(|r| r.id).max().unwrap();
    assert!(id_a < last_seen, "an id cursor would now be past A for good");

    let live_b = client.next_event("broadcast", Duration::from_secs(5)).await.expect("B arrives live");
    assert_eq!(live_b["payload"]["payload"]["tx"], "b");

    ta.commit().await?;
    let (rows, next) = read_events(&pool, &cursor).await?;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id_a], "A is read once it commits");
    let (rows, _) = read_events(&pool, &next).await?;
    assert!(rows.is_empty(), "nothing is read twice");

    let live_a = client.next_event("broadcast", Duration::from_secs(5)).await.expect("A arrives live, after B");
    assert_eq!(live_a["payload"]["payload"]["tx"], "a");
    assert_eq!(live_a["payload"]["meta"]["id"], id_a.to_string());
    Ok(())
}

/// More rows than one read takes (1,000), committed by one transaction while another holds a
/// lower id open: the reads resume within the first snapshot, return every row once and in
/// order, then the late transaction's row, then nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_batch_resumes_without_a_gap_or_a_repeat() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut setup = db.connect().await?;
    let user = create_user(&mut setup, "patient").await?;
    let topic = format!("user:{user}");
    let pool = PgPoolOptions::new().max_connections(2).connect(&db.url).await?;
    let mut cursor = start_events_cursor(&pool).await?;
    let mut late = sqlx::PgConnection::connect(&db.url).await?;
    let mut open = late.begin().await?;
    let late_id: i64 = sqlx::query_scalar(
        "insert into private.realtime_events (topic, event, payload) values ($1, 'appointment:updated', '{}') returning id",
    )
    .bind(&topic)
    .fetch_one(&mut *open)
    .await?;
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into private.realtime_events (topic, event, payload)
         select $1, 'appointment:updated', jsonb_build_object('n', n) from generate_series(1, 2500) n returning id",
    )
    .bind(&topic)
    .fetch_all(&mut setup)
    .await?;
    let mut read = Vec::new();
    for _ in 0..3 {
        let (rows, next) = read_events(&pool, &cursor).await?;
        assert!(rows.len() <= 1000, "one read takes at most a batch");
        read.extend(rows.iter().map(|r| r.id));
        cursor = next;
    }
    assert_eq!(read, ids, "every row of the big transaction once, in id order, across three reads");
    assert!(read_events(&pool, &cursor).await?.0.is_empty(), "nothing more until the open transaction commits");
    open.commit().await?;
    let (rows, next) = read_events(&pool, &cursor).await?;
    assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), vec![late_id], "the lower id, committed late, is read");
    assert!(read_events(&pool, &next).await?.0.is_empty(), "nothing is read twice");
    Ok(())
}

/// Two subscribers bound to every INSERT on messages; only the conversation member receives the
/// new message. The outsider's next change is its own notification: nothing came before it.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_changes_reach_only_who_may_select_the_row() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let member = create_user(&mut conn, "patient").await?;
    let other_member = create_user(&mut conn, "patient").await?;
    let outsider = create_user(&mut conn, "patient").await?;
    let conversation = careplane_tests::create_conversation(&mut conn, &[member, other_member]).await?;
    let node = companion(&db, &[]).await;
    let bindings = json!([
        {"event": "INSERT", "schema": "public", "table": "messages"},
        {"event": "INSERT", "schema": "public", "table": "notifications"},
    ]);
    let mut m = Client::connect(&node.base, &token(member, "patient")).await;
    let reply = m.join(&format!("user:{member}"), json!({"private": true, "postgres_changes": bindings})).await;
    assert_eq!(reply["status"], "ok");
    let ids = reply["response"]["postgres_changes"].as_array().unwrap().iter().map(|b| b["id"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(ids.len(), 2);
    let mut o = Client::connect(&node.base, &token(outsider, "patient")).await;
    assert_eq!(o.join(&format!("user:{outsider}"), json!({"private": true, "postgres_changes": bindings})).await["status"], "ok");

    let mut tx = careplane_tests::begin_as(&mut conn, &careplane_tests::user_claims(other_member, "patient")).await?;
    sqlx::query("insert into public.messages (conversation_id, body) values ($1, 'private words')")
        .bind(conversation)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    sqlx::query("insert into public.notifications (user_id, kind, title) values ($1, 'test', 'for the outsider')")
        .bind(outsider)
        .execute(&mut conn)
        .await?;

    let got = m.next_event("postgres_changes", Duration::from_secs(5)).await.expect("the member gets the message");
    assert_eq!(got["payload"]["data"]["table"], "messages");
    assert_eq!(got["payload"]["data"]["record"]["body"], "private words");
    assert_eq!(got["payload"]["ids"], json!([ids[0]]));
    let first = o.next_event("postgres_changes", Duration::from_secs(5)).await.expect("the outsider gets its notification");
    assert_eq!(first["payload"]["data"]["table"], "notifications", "the outsider never receives the message row");
    assert!(m.next_event("postgres_changes", Duration::from_millis(500)).await.is_none(), "not the outsider's notification");
    Ok(())
}

/// A client that stops reading while events pour in is disconnected with a reason, and counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_consumer_is_disconnected_with_a_reason() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let user = create_user(&mut conn, "patient").await?;
    let node = companion(&db, &[("REALTIME_QUEUE_CAPACITY", "8")]).await;
    let mut slow = Client::connect(&node.base, &token(user, "patient")).await;
    assert_eq!(slow.join(&format!("user:{user}"), json!({})).await["status"], "ok");
    // ~24 MB of events: far more than the socket buffers and a queue of 8 can hold.
    sqlx::query(
        "insert into private.realtime_events (topic, event, payload)
         select $1, 'test:bulk', jsonb_build_object('n', n, 'pad', repeat('x', 60000)) from generate_series(1, 400) n",
    )
    .bind(format!("user:{user}"))
    .execute(&mut conn)
    .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, reason) = slow.close_frame(Duration::from_secs(20)).await.expect("the server closes the slow socket");
    assert_eq!(code, 1008);
    assert!(reason.contains("slow consumer"), "reason: {reason}");
    let metrics = reqwest::get(node.url("/metrics")).await?.text().await?;
    assert!(metrics.lines().any(|l| l.starts_with("careplane_realtime_slow_clients_dropped_total") && !l.ends_with(" 0")), "{metrics}");
    Ok(())
}

/// SIGTERM closes every websocket with 1001 (going away) before the process exits.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_every_socket_with_1001() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let user = create_user(&mut conn, "patient").await?;
    let mut node = companion(&db, &[]).await;
    let mut a = Client::connect(&node.base, &token(user, "patient")).await;
    let mut b = Client::connect(&node.base, &token(user, "patient")).await;
    assert_eq!(a.join(&format!("user:{user}"), json!({})).await["status"], "ok");
    assert_eq!(b.join(&format!("user:{user}"), json!({})).await["status"], "ok");
    let pid = node.child.id().expect("running");
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
    assert!(status.success());
    for c in [&mut a, &mut b] {
        let (code, _) = c.close_frame(Duration::from_secs(10)).await.expect("a close frame");
        assert_eq!(code, 1001);
    }
    let exit = tokio::time::timeout(Duration::from_secs(10), node.child.wait()).await??;
    assert!(exit.success(), "the companion exits cleanly: {exit}");
    Ok(())
}

/// The `apikey` is verified once, when the socket opens, and only its user is kept: a join
/// without its own `access_token` is joined as that user (and refused beyond what that user may
/// read); an apikey that is not a user's token refuses such joins with its reason, while a join
/// carrying its own token still succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn a_join_without_a_token_is_joined_as_the_verified_apikey_user() -> anyhow::Result<()> {
    let db = TestDb::migrated().await?;
    let mut conn = db.connect().await?;
    let (a, b) = (create_user(&mut conn, "patient").await?, create_user(&mut conn, "patient").await?);
    let node = companion(&db, &[]).await;

    let mut with_key = Client::connect(&node.base, &token(a, "patient")).await;
    assert_eq!(with_key.join(&format!("user:{a}"), json!({})).await["status"], "ok");
    let refused = with_key.join(&format!("user:{b}"), json!({})).await;
    assert_eq!(refused["status"], "error", "{refused}");

    let mut bad_key = Client::connect(&node.base, "not-a-token").await;
    let refused = bad_key.join(&format!("user:{a}"), json!({})).await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert!(refused["response"]["reason"].as_str().unwrap_or_default().starts_with("Unauthorized"), "{refused}");
    let topic = format!("realtime:user:{a}");
    let r = bad_key.send(&topic, "phx_join", json!({"config": {}, "access_token": token(a, "patient")})).await;
    let reply = loop {
        let m = bad_key.next(Duration::from_secs(5)).await.expect("a join reply");
        if m["event"] == "phx_reply" && m["ref"] == r {
            break m["payload"].clone();
        }
    };
    assert_eq!(reply["status"], "ok", "a join with its own token: {reply}");
    Ok(())
}
