//! One websocket: Phoenix channel joins, leaves, heartbeats, token refreshes and expiry, client
//! broadcasts, presence, replay — and draining the socket's bounded queue.
//!
//! Everything happens in one task, so what a join writes (its reply, a replay, the presence
//! state) always precedes the live events queued for it meanwhile; live copies of replayed
//! events are dropped by id.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::{json, Value};

use super::changes::Binding;
use super::hub::{Member, Outgoing, SocketHandle, Subscriber};
use super::protocol::{self, Body, Message, Vsn, Wire};
use super::tailer::{event_outgoing, Event};
use super::ws::{self, Incoming};
use super::Realtime;
use crate::auth::Principal;
use crate::db::user::{begin_as, Access};
use crate::AppState;

/// A client that sends nothing (not even the 25 s heartbeat) for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// A client broadcast on a `consultation:` topic re-asks `access.may_join_topic` when the last
/// check is older than this: the call's topic closes with the call (at most one query per
/// channel per interval, however many signaling messages flow).
const CONSULTATION_RECHECK: Duration = Duration::from_secs(2);

/// One joined channel. Kept small: a socket holds one per topic for as long as it is open.
struct Channel {
    /// Internal topic (`user:<uuid>`); the client's is `realtime:` + this.
    topic: Box<str>,
    join_ref: Option<Box<str>>,
    /// Shared with the socket's other channels joined with the same token.
    user: Arc<Subscriber>,
    exp: i64,
    ack: bool,
    echo_self: bool,
    tracked: bool,
    /// `presence_state` was sent (at join with presence enabled, or at the first track).
    presence_synced: bool,
    /// `config.presence.key`, or a random key made at the first `track`.
    presence_key: Option<Box<str>>,
    bindings: Arc<Vec<Binding>>,
    /// Ids sent by replay, so their live copies are not sent twice (`None` once all are seen,
    /// and forgotten [`REPLAY_DEDUPE`] after the replay). While any are kept, the socket's frames
    /// go through its task.
    replayed: Option<Box<Replayed>>,
    /// When `access.may_join_topic` last said yes (join, refresh, re-check).
    checked_at: Instant,
}

/// What a channel's replay sent, while its live copies may still come.
struct Replayed {
    ids: Vec<i64>,
    at: Instant,
}

impl Channel {
    fn client_topic(&self) -> String {
        format!("realtime:{}", self.topic)
    }

    /// `true` (once) when event `id` was already sent by this channel's replay.
    fn take_replayed(&mut self, id: i64) -> bool {
        let Some(r) = self.replayed.as_mut() else { return false };
        let Some(i) = r.ids.iter().position(|x| *x == id) else { return false };
        r.ids.swap_remove(i);
        if r.ids.is_empty() {
            self.replayed = None;
        }
        true
    }
}

struct Session {
    state: AppState,
    rt: Arc<Realtime>,
    vsn: Vsn,
    handle: Arc<SocketHandle>,
    /// The `apikey` query parameter, verified when the socket opened: who a join without its
    /// own `access_token` is joined as.
    apikey: Option<ApiKey>,
    /// Joined channels; a handful per socket, so a vector grown one at a time.
    channels: Vec<Channel>,
    window: (Instant, u32),
}

/// The shape of the log's event names (`private.realtime_events.event`: `^[a-z_]+:[a-z_]+$`).
fn is_server_event_name(event: &str) -> bool {
    let word = |w: &str| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    event.split_once(':').is_some_and(|(a, b)| word(a) && word(b))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// The socket's `apikey` query parameter, verified once when the socket opens (as Supabase
/// Realtime verifies it at connect): the user a join without its own `access_token` is joined
/// as (its expiry still checked at each join), or why such a join is refused. The token itself
/// is not kept.
pub enum ApiKey {
    User(Arc<Subscriber>, i64),
    Refused(Box<str>),
}

impl ApiKey {
    pub async fn verify(state: &AppState, token: &str) -> ApiKey {
        match verify(state, token).await {
            Ok((user, exp)) => ApiKey::User(Arc::new(user), exp),
            Err(reason) => ApiKey::Refused(reason.into()),
        }
    }
}

/// A token verified afresh, not through the verified-token cache: a join is rare next to HTTP
/// requests, and the socket keeps the user it verified (one per claim set, shared by its
/// channels), so caching it again would hold a second copy per socket. Only the id and the
/// claims are kept (the token's other fields are in them); `Err` is the join's refusal.
async fn verify(state: &AppState, token: &str) -> Result<(Subscriber, i64), String> {
    match state.verifier.verify_fresh(token).await {
        Ok((Principal::User(u), exp)) => Ok((Subscriber { id: u.id, claims: u.claims }, exp)),
        Ok((Principal::Service(_), _)) => Err("Unauthorized: channels are joined as a signed-in user".into()),
        Err(e) => Err(format!("Unauthorized: {e}")),
    }
}

/// Why the socket loop stopped: `Some` closes the websocket with that code and reason.
type End = Option<(u16, String)>;

static NO_BINDINGS: std::sync::LazyLock<Arc<Vec<Binding>>> = std::sync::LazyLock::new(|| Arc::new(Vec::new()));

/// How long a closing socket waits for the client to take the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long a replayed event's id is kept to drop its live copy: far longer than the tailer
/// takes to deliver what committed before the replay's read.
const REPLAY_DEDUPE: Duration = Duration::from_secs(30);

/// Runs one websocket until it closes.
///
/// The future of this function lives as long as the socket, so it is kept small: everything
/// that waits on the database, Redis or a reply (joins, refreshes, broadcasts, presence,
/// expiry, closing) runs in a boxed future allocated only while it runs. The hot path
/// allocates nothing per socket: while the task is parked the hub writes live frames to the
/// socket itself (see [`super::ws`]); one timer serves the idle timeout, token expiry and the
/// replay window, and one `Notify` both the queue and the kill switch.
pub fn serve(io: ws::Io, state: AppState, rt: Arc<Realtime>, vsn: Vsn, apikey: Option<ApiKey>) -> impl Future<Output = ()> + Send {
    let handle = Arc::new(SocketHandle::new(rt.hub.next_conn_id(), rt.config.queue_capacity));
    let (mut reader, write_half) = ws::split(io, rt.config.max_frame_bytes);
    handle.writer.attach(write_half);
    let mut s = Session {
        state,
        rt: rt.clone(),
        vsn,
        handle: handle.clone(),
        apikey,
        channels: Vec::new(),
        window: (Instant::now(), 0),
    };
    // A plain function returning an `async move` block rather than an `async fn`: the block uses
    // the reader and the session where it captured them, where an `async fn` would also keep
    // its (dead) arguments in the future for the socket's whole life (rust-lang/rust#62958).
    async move {
        let _open = rt.open(&handle);
        let end = if rt.shutting_down() {
            Some((super::SHUTTING_DOWN.0, super::SHUTTING_DOWN.1.to_owned()))
        } else {
            run(&mut reader, &mut s).await
        };
        handle.closed();
        if let Some((code, reason)) = end {
            // After whatever is still unwritten (a slow client's half-written frame), so the
            // client reads a whole stream and then the reason; a client that reads nothing
            // for CLOSE_GRACE is cut off without it.
            let _ = tokio::time::timeout(CLOSE_GRACE, handle.writer.send(ws::close_frame(code, &reason))).await;
        }
        handle.writer.detach();
        drop(reader);
        Box::pin(s.leave_all()).await;
    }
}

async fn run(reader: &mut ws::Reader, s: &mut Session) -> End {
    let handle = s.handle.clone();
    let mut last_seen = tokio::time::Instant::now();
    let timer = tokio::time::sleep_until(s.next_deadline(last_seen));
    tokio::pin!(timer);
    loop {
        // Parked, the hub writes live frames straight to the socket, except while a channel's
        // replayed ids are still wanted (their live copies must be dropped here).
        let direct = s.channels.iter().all(|c| c.replayed.is_none());
        if !handle.park(direct) {
            // Frames were queued, or bytes left unwritten, while the task ran.
            if let Some(end) = Box::pin(s.drain()).await {
                return end;
            }
            continue;
        }
        tokio::select! {
            biased;
            _ = handle.wake.notified() => {
                handle.writer.busy();
                // Boxed: with direct writes, draining is the exception, and its future would
                // otherwise be part of every socket's own.
                if let Some(end) = Box::pin(s.drain()).await {
                    return end;
                }
            }
            incoming = reader.next() => {
                handle.writer.busy();
                last_seen = tokio::time::Instant::now();
                let (m, body) = match incoming {
                    Ok(Incoming::Text(t)) => match protocol::decode_text(s.vsn, &t) {
                        Ok(m) => (m, None),
                        Err(e) => return Some((1003, format!("unreadable frame: {e}"))),
                    },
                    Ok(Incoming::Binary(b)) => match protocol::decode_binary(&b) {
                        Ok(p) => (
                            Message { join_ref: p.join_ref, reference: p.reference, topic: p.topic, event: "broadcast".into(),
                                      payload: json!({"type": "broadcast", "event": p.event}) },
                            Some(p.body),
                        ),
                        Err(e) => return Some((1003, format!("unreadable frame: {e}"))),
                    },
                    Ok(Incoming::Ping(data)) => {
                        // Written now if the kernel takes it, else by the drain before parking.
                        if handle.writer.write_now(ws::encode(ws::PONG, &data)).is_err() {
                            return None;
                        }
                        continue;
                    }
                    // The client's close is answered with its code (RFC 6455 §5.5.1).
                    Ok(Incoming::Close(code)) => return Some((code.unwrap_or(1000), String::new())),
                    Err(ws::ReadError(end)) => return end,
                };
                let is_heartbeat = m.topic == "phoenix" && m.event == "heartbeat";
                let sent = if is_heartbeat {
                    // The most frequent message: answered without a future of its own (written
                    // now if the kernel takes it, else by the drain before parking).
                    handle.writer.write_now(ws::frame(&protocol::reply(s.vsn, &m, "ok", json!({})))).map_err(|_| ())
                } else {
                    Box::pin(s.handle_message(m, body)).await
                };
                if sent.is_err() {
                    return None;
                }
                if handle.fired() {
                    return handle.reason();
                }
                // A join or refresh may have brought an earlier deadline.
                let deadline = s.next_deadline(last_seen);
                if deadline < timer.deadline() {
                    timer.as_mut().reset(deadline);
                }
            }
            () = &mut timer => {
                handle.writer.busy();
                if last_seen.elapsed() >= IDLE_TIMEOUT {
                    return Some((1000, "no heartbeat".into()));
                }
                for ch in &mut s.channels {
                    if ch.replayed.as_ref().is_some_and(|r| r.at.elapsed() >= REPLAY_DEDUPE) {
                        ch.replayed = None;
                    }
                }
                if s.channels.iter().any(|c| c.exp < unix_now()) {
                    Box::pin(s.expire()).await;
                }
                timer.as_mut().reset(s.next_deadline(last_seen));
            }
        }
    }
}

impl Session {
    /// The next time the socket loop must look at the clock: the idle timeout, the first
    /// channel whose token expires, or the end of a replay's window.
    fn next_deadline(&self, last_seen: tokio::time::Instant) -> tokio::time::Instant {
        let mut at = last_seen + IDLE_TIMEOUT;
        if let Some(exp) = self.channels.iter().map(|c| c.exp).min() {
            at = at.min(tokio::time::Instant::now() + Duration::from_secs((exp + 1 - unix_now()).max(0) as u64));
        }
        for r in self.channels.iter().filter_map(|c| c.replayed.as_ref()) {
            at = at.min(tokio::time::Instant::from_std(r.at + REPLAY_DEDUPE));
        }
        at
    }

    fn channel(&self, topic: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| &*c.topic == topic)
    }

    fn channel_mut(&mut self, topic: &str) -> Option<&mut Channel> {
        self.channels.iter_mut().find(|c| &*c.topic == topic)
    }

    /// Writes what is left unwritten, then everything queued for this socket, until its queue
    /// is empty; `Some` when the socket must end (killed, or the client went away).
    async fn drain(&mut self) -> Option<End> {
        if self.handle.writer.has_pending() {
            if let Some(end) = self.write(None).await {
                return Some(end);
            }
        }
        loop {
            if self.handle.fired() {
                return Some(self.handle.reason());
            }
            let batch: VecDeque<Arc<Outgoing>> = self.handle.take_queued();
            if batch.is_empty() {
                return None;
            }
            for out in batch {
                let Some(ch) = self.channel_mut(&out.topic) else { continue }; // left since it was queued
                if let Some(id) = out.event_id {
                    if ch.take_replayed(id) {
                        continue;
                    }
                }
                let Some(frame) = out.frame(self.vsn) else { continue };
                drop(out);
                if let Some(end) = self.write(Some(frame)).await {
                    return Some(end);
                }
            }
        }
    }

    /// Writes `frame` (or only what is pending) and waits until the kernel has it; `Some` when
    /// the socket must end. A blocked write does not keep a killed socket open.
    async fn write(&self, frame: Option<Bytes>) -> Option<End> {
        let writer = &self.handle.writer;
        let send = async {
            match frame {
                Some(f) => writer.send(f).await,
                None => writer.flush().await,
            }
        };
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => return sent.is_err().then_some(None),
                // Other wake-ups (more frames) are picked up by the caller's next round.
                _ = self.handle.wake.notified() => {
                    if self.handle.fired() {
                        return Some(self.handle.reason());
                    }
                }
            }
        }
    }


    /// The user for a channel: the same `Arc` as another channel of this socket verified from
    /// an identical claim set (the usual case: every join carries the same token), so a socket
    /// holds one copy of its user however many topics it joins.
    fn shared_user(&self, user: Subscriber) -> Arc<Subscriber> {
        let from_apikey = match &self.apikey {
            Some(ApiKey::User(u, _)) => Some(u),
            _ => None,
        };
        self.channels
            .iter()
            .map(|c| &c.user)
            .chain(from_apikey)
            .find(|u| u.id == user.id && (u.claims.ptr_eq(&user.claims) || u.claims == user.claims))
            .cloned()
            .unwrap_or_else(|| Arc::new(user))
    }

    async fn send(&self, w: Wire) -> Result<(), ()> {
        self.handle.writer.send(ws::frame(&w)).await.map_err(|_| ())
    }

    async fn handle_message(&mut self, m: Message, body: Option<Body>) -> Result<(), ()> {
        let vsn = self.vsn;
        match (m.topic.as_str(), m.event.as_str()) {
            ("phoenix", "heartbeat") => self.send(protocol::reply(vsn, &m, "ok", json!({}))).await,
            (_, "phx_join") => self.join(m).await,
            (_, "phx_leave") => {
                if let Some(topic) = m.topic.strip_prefix("realtime:") {
                    self.leave(topic).await;
                }
                self.send(protocol::reply(vsn, &m, "ok", json!({}))).await
            }
            (_, "access_token") => self.refresh(m).await,
            (_, "broadcast") => self.client_broadcast(m, body).await,
            (_, "presence") => self.presence(m).await,
            _ => self.send(protocol::reply(vsn, &m, "error", json!({"reason": format!("unknown event {:?}", m.event)}))).await,
        }
    }

    fn token_for<'a>(&'a self, payload: &'a Value) -> Option<&'a str> {
        payload.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty())
    }

    /// Verifies `token` (else takes the socket's verified `apikey`) and asks the database, as
    /// that user, whether they may join `topic`.
    async fn authorize(&self, token: Option<&str>, topic: &str) -> Result<(Arc<Subscriber>, i64), String> {
        let (user, exp) = match (token, &self.apikey) {
            (Some(token), _) => {
                let (user, exp) = verify(&self.state, token).await?;
                (self.shared_user(user), exp)
            }
            (None, Some(ApiKey::User(user, exp))) => {
                if *exp < unix_now() {
                    return Err("Unauthorized: the apikey token has expired; join with a fresh access_token".into());
                }
                (user.clone(), *exp)
            }
            (None, Some(ApiKey::Refused(reason))) => return Err(reason.to_string()),
            (None, None) => return Err("Unauthorized: no access token (send apikey or access_token)".into()),
        };
        match self.may_join(&user, topic).await {
            Ok(true) => Ok((user, exp)),
            Ok(false) => Err(format!("Unauthorized: you do not have permissions to read from this Channel topic: {topic}")),
            Err(()) => Err("Unable to join: the database is unavailable; retrying".into()),
        }
    }

    /// `access.may_join_topic(topic)` asked as `user` (`Err` when the database is unavailable).
    async fn may_join(&self, user: &Subscriber, topic: &str) -> Result<bool, ()> {
        let mut tx = begin_as(&self.state.db, "authenticated", &user.claims, Access::ReadOnly).await.map_err(|_| ())?;
        let ok: bool = sqlx::query_scalar("select access.may_join_topic($1)").bind(topic).fetch_one(&mut *tx).await.map_err(|_| ())?;
        tx.rollback().await.map_err(|_| ())?;
        Ok(ok)
    }

    /// For a client broadcast on a `consultation:` topic whose last check is older than
    /// [`CONSULTATION_RECHECK`]: may the channel's user still use it? `Err` when the database
    /// cannot say (the broadcast is refused, the channel kept).
    async fn still_allowed(&mut self, topic: &str) -> Result<bool, ()> {
        let Some(ch) = self.channel(topic) else { return Ok(false) };
        if !topic.starts_with("consultation:") || ch.checked_at.elapsed() < CONSULTATION_RECHECK {
            return Ok(true);
        }
        let user = ch.user.clone();
        let ok = self.may_join(&user, topic).await?;
        if let (true, Some(ch)) = (ok, self.channel_mut(topic)) {
            ch.checked_at = Instant::now();
        }
        Ok(ok)
    }

    async fn join(&mut self, m: Message) -> Result<(), ()> {
        let vsn = self.vsn;
        let refuse = |reason: String| protocol::reply(vsn, &m, "error", json!({"reason": reason}));
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else {
            metrics::counter!("careplane_realtime_joins_total", "outcome" => "invalid").increment(1);
            return self.send(refuse("topics are realtime:<name>".into())).await;
        };
        if self.channel(&topic).is_none() && self.channels.len() >= self.rt.config.max_channels_per_socket {
            metrics::counter!("careplane_realtime_joins_total", "outcome" => "invalid").increment(1);
            return self.send(refuse(format!("too many channels on one socket (at most {})", self.rt.config.max_channels_per_socket))).await;
        }
        let config = &m.payload["config"];
        let bindings: Result<Vec<Binding>, String> = match &config["postgres_changes"] {
            Value::Array(list) => list.iter().map(Binding::parse).collect(),
            Value::Null => Ok(Vec::new()),
            _ => Err("postgres_changes must be a list".into()),
        };
        let bindings = match bindings {
            Ok(b) => b,
            Err(e) => {
                metrics::counter!("careplane_realtime_joins_total", "outcome" => "invalid").increment(1);
                return self.send(refuse(e)).await;
            }
        };
        let (user, exp) = match self.authorize(self.token_for(&m.payload), &topic).await {
            Ok(u) => u,
            Err(reason) => {
                metrics::counter!("careplane_realtime_joins_total", "outcome" => "refused").increment(1);
                return self.send(refuse(reason)).await;
            }
        };
        // A second join of the same topic replaces the first.
        self.leave(&topic).await;
        // Most channels have no postgres_changes bindings: they share one empty list.
        let bindings = if bindings.is_empty() { NO_BINDINGS.clone() } else { Arc::new(bindings) };
        let echo_self = config["broadcast"]["self"].as_bool().unwrap_or(false);
        self.rt.hub.join(&topic, Member { socket: self.handle.clone(), vsn, echo_self, user: user.clone(), bindings: bindings.clone() });
        let presence_key = config["presence"]["key"].as_str().filter(|k| !k.is_empty()).map(Box::from);
        let mut channel = Channel {
            topic: topic.as_str().into(),
            join_ref: m.join_ref.as_deref().or(m.reference.as_deref()).map(Box::from),
            user,
            exp,
            ack: config["broadcast"]["ack"].as_bool().unwrap_or(false),
            echo_self,
            tracked: false,
            presence_synced: false,
            presence_key,
            bindings: bindings.clone(),
            replayed: None,
            checked_at: Instant::now(),
        };
        metrics::counter!("careplane_realtime_joins_total", "outcome" => "ok").increment(1);
        let reply: Vec<Value> = bindings.iter().map(Binding::reply).collect();
        self.send(protocol::reply(vsn, &m, "ok", json!({"postgres_changes": reply}))).await?;

        let replay = &config["broadcast"]["replay"];
        if config["private"].as_bool() == Some(true) && replay.is_object() {
            match self.replay(&topic, replay).await {
                Ok(events) => {
                    if !events.is_empty() {
                        channel.replayed = Some(Box::new(Replayed { ids: events.iter().map(|e| e.id).collect(), at: Instant::now() }));
                    }
                    for e in events {
                        if let Some(frame) = event_outgoing(&e, true).frame(vsn) {
                            self.handle.writer.send(frame).await.map_err(|_| ())?;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: replay failed");
                    let msg = json!({"extension": "system", "status": "error", "channel": topic,
                                     "message": "replay is unavailable right now; rejoin to try again"});
                    self.send(protocol::push(vsn, None, &m.topic, "system", msg)).await?;
                }
            }
        }
        let presence = config["presence"]["enabled"].as_bool() == Some(true);
        // One slot at a time: a socket on two topics holds two channels, not a doubled vector.
        self.channels.reserve_exact(1);
        self.channels.push(channel);
        if presence {
            self.presence_state(&topic).await?;
        }
        Ok(())
    }

    /// Sends `presence_state` (everyone tracked on the topic by a live instance) once per join:
    /// the client applies `presence_diff`s only after it.
    async fn presence_state(&mut self, topic: &str) -> Result<(), ()> {
        let Some(ch) = self.channel_mut(topic) else { return Ok(()) };
        if ch.presence_synced {
            return Ok(());
        }
        ch.presence_synced = true;
        let client_topic = ch.client_topic();
        let state = match &self.rt.cluster {
            Some(c) => c.state(topic).await.unwrap_or_else(|_| json!({})),
            None => json!({}),
        };
        self.send(protocol::push(self.vsn, None, &client_topic, "presence_state", state)).await
    }

    /// Events on `topic` committed since `since` (unix ms, less the configured slack), within
    /// the retention window, oldest first.
    async fn replay(&self, topic: &str, replay: &Value) -> Result<Vec<Event>, sqlx::Error> {
        let cfg = &self.rt.config;
        let since = replay["since"].as_i64().unwrap_or(0) - cfg.replay_slack.as_millis() as i64;
        let limit = replay["limit"].as_i64().filter(|l| *l > 0).unwrap_or(cfg.replay_max).min(cfg.replay_max);
        let rows = sqlx::query_as::<_, (i64, String, String, Value, chrono::DateTime<chrono::Utc>)>(
            "select id, topic, event, payload, created_at from private.realtime_events
              where topic = $1
                and created_at >= greatest(to_timestamp($2::double precision / 1000), now() - make_interval(secs => $3))
              order by xid, id
              limit $4",
        )
        .bind(topic)
        .bind(since as f64)
        .bind(cfg.replay_retention.as_secs_f64())
        .bind(limit)
        .fetch_all(&self.state.db)
        .await?;
        Ok(rows.into_iter().map(|(id, topic, event, payload, created_at)| Event { id, topic, event, payload, created_at }).collect())
    }

    async fn leave(&mut self, topic: &str) {
        if let Some(i) = self.channels.iter().position(|c| &*c.topic == topic) {
            let ch = self.channels.swap_remove(i);
            self.rt.hub.leave(&ch.topic, self.handle.id);
            if ch.tracked {
                if let Some(c) = &self.rt.cluster {
                    let _ = c.untrack(&ch.topic, self.handle.id).await;
                }
            }
        }
    }

    async fn leave_all(&mut self) {
        let topics: Vec<String> = self.channels.iter().map(|c| c.topic.to_string()).collect();
        for t in topics {
            self.leave(&t).await;
        }
    }

    /// Ends a channel: a `system` message saying why, then `phx_close` (the client does not rejoin).
    async fn end_channel(&mut self, topic: &str, message: &str) -> Result<(), ()> {
        let Some(ch) = self.channel(topic) else { return Ok(()) };
        let (client_topic, join_ref) = (ch.client_topic(), ch.join_ref.clone());
        self.leave(topic).await;
        let vsn = self.vsn;
        let msg = json!({"extension": "system", "status": "error", "message": message, "channel": topic});
        self.send(protocol::push(vsn, None, &client_topic, "system", msg)).await?;
        self.send(protocol::push(vsn, join_ref.as_deref(), &client_topic, "phx_close", json!({}))).await
    }

    async fn expire(&mut self) {
        let now = unix_now();
        let expired: Vec<String> = self.channels.iter().filter(|c| c.exp < now).map(|c| c.topic.to_string()).collect();
        for topic in expired {
            metrics::counter!("careplane_realtime_channels_expired_total").increment(1);
            let _ = self.end_channel(&topic, "Token has expired; refresh the session and subscribe again").await;
        }
    }

    /// `access_token`: a new token for a joined channel; the topic is checked again as its user.
    async fn refresh(&mut self, m: Message) -> Result<(), ()> {
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        if self.channel(&topic).is_none() {
            return Ok(());
        }
        // A refresh names its token: it never falls back to the apikey.
        let Some(token) = m.payload.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()) else {
            return self.end_channel(&topic, "Unauthorized: access_token carries no token").await;
        };
        match self.authorize(Some(token), &topic).await {
            Ok((user, exp)) => {
                let vsn = self.vsn;
                let ch = self.channels.iter_mut().find(|c| *c.topic == *topic).expect("checked above");
                ch.user = user.clone();
                ch.exp = exp;
                ch.checked_at = Instant::now();
                self.rt.hub.join(&topic, Member { socket: self.handle.clone(), vsn, echo_self: ch.echo_self, user, bindings: ch.bindings.clone() });
                Ok(())
            }
            Err(reason) => self.end_channel(&topic, &reason).await,
        }
    }

    fn within_rate(&mut self) -> bool {
        let now = Instant::now();
        if now.duration_since(self.window.0) >= Duration::from_secs(1) {
            self.window = (now, 0);
        }
        self.window.1 += 1;
        self.window.1 <= self.rt.config.broadcast_per_second
    }

    async fn client_broadcast(&mut self, m: Message, body: Option<Body>) -> Result<(), ()> {
        let vsn = self.vsn;
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        if self.channel(&topic).is_none() {
            return self.send(protocol::reply(vsn, &m, "error", json!({"reason": "join the channel before broadcasting"}))).await;
        }
        match self.still_allowed(&topic).await {
            Ok(true) => {}
            Ok(false) => {
                metrics::counter!("careplane_realtime_broadcasts_refused_total").increment(1);
                let reason = format!("Unauthorized: you may no longer send on this Channel topic: {topic} (the call is not open)");
                self.send(protocol::reply(vsn, &m, "error", json!({"reason": reason.clone()}))).await?;
                return self.end_channel(&topic, &reason).await;
            }
            Err(()) => {
                metrics::counter!("careplane_realtime_broadcasts_refused_total").increment(1);
                let reason = "the database is unavailable; the broadcast was not sent";
                return self.send(protocol::reply(vsn, &m, "error", json!({"reason": reason}))).await;
            }
        }
        let ch = self.channel(&topic).expect("checked above");
        let ack = ch.ack && m.reference.is_some();
        let echo_self = ch.echo_self;
        let event = m.payload["event"].as_str().unwrap_or_default().to_owned();
        let body = body.unwrap_or_else(|| Body::Json(m.payload.get("payload").cloned().unwrap_or(json!({}))));
        let size = match &body {
            Body::Json(v) => v.to_string().len(),
            Body::Raw(b) => b.len(),
        };
        let refusal = if event.is_empty() || event.len() > 255 {
            Some("a broadcast needs an event name of 1 to 255 bytes".to_owned())
        } else if is_server_event_name(&event) {
            // Server events (`appointment:updated`, `emergency:new`, …) come only from the log,
            // so no client can forge one to the others on a topic.
            Some(format!("event names like {event:?} (<word>:<word>) are reserved for server events"))
        } else if size > self.rt.config.broadcast_max_bytes {
            Some(format!("broadcast payload is {size} bytes; at most {} are allowed", self.rt.config.broadcast_max_bytes))
        } else if !self.within_rate() {
            Some(format!("too many broadcasts: at most {} per second", self.rt.config.broadcast_per_second))
        } else {
            None
        };
        if let Some(reason) = refusal {
            metrics::counter!("careplane_realtime_broadcasts_refused_total").increment(1);
            return self.send(protocol::reply(vsn, &m, "error", json!({"reason": reason}))).await;
        }
        let skip = (!echo_self).then_some(self.handle.id);
        let sent = self.rt.hub.fan_out(Arc::new(Outgoing::broadcast(&topic, &event, None, body.clone(), None)), skip);
        metrics::counter!("careplane_realtime_events_relayed_total", "kind" => "client_broadcast").increment(sent as u64);
        if let (Some(c), Body::Json(payload)) = (&self.rt.cluster, &body) {
            if let Err(e) = c.publish_broadcast(&topic, &event, payload).await {
                tracing::warn!(error = %e, "realtime: broadcast reached this instance only (Redis unavailable)");
            }
        }
        if ack {
            self.send(protocol::reply(vsn, &m, "ok", json!({}))).await?;
        }
        Ok(())
    }

    async fn presence(&mut self, m: Message) -> Result<(), ()> {
        let vsn = self.vsn;
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        let Some(ch) = self.channels.iter_mut().find(|c| *c.topic == *topic) else {
            return self.send(protocol::reply(vsn, &m, "error", json!({"reason": "join the channel before tracking presence"}))).await;
        };
        let Some(cluster) = self.rt.cluster.clone() else {
            return self.send(protocol::reply(vsn, &m, "error", json!({"reason": "presence is not configured"}))).await;
        };
        let result = match m.payload["event"].as_str() {
            Some("track") => {
                let meta = m.payload.get("payload").cloned().unwrap_or(json!({}));
                if meta.to_string().len() > self.rt.config.broadcast_max_bytes {
                    return self.send(protocol::reply(vsn, &m, "error", json!({"reason": "presence payload too large"}))).await;
                }
                ch.tracked = true;
                let key = ch.presence_key.get_or_insert_with(|| uuid::Uuid::new_v4().to_string().into()).clone();
                cluster.track(&topic, self.handle.id, &key, meta).await
            }
            Some("untrack") => {
                ch.tracked = false;
                cluster.untrack(&topic, self.handle.id).await
            }
            _ => return self.send(protocol::reply(vsn, &m, "error", json!({"reason": "presence events are track and untrack"}))).await,
        };
        match result {
            Ok(()) => {
                self.send(protocol::reply(vsn, &m, "ok", json!({}))).await?;
                self.presence_state(&topic).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime: presence unavailable");
                self.send(protocol::reply(vsn, &m, "error", json!({"reason": "presence is unavailable right now"}))).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future `serve` returns, without calling it.
    fn future_size<F, Fut>(_: F) -> usize
    where
        F: FnOnce(ws::Io, AppState, Arc<Realtime>, Vsn, Option<ApiKey>) -> Fut,
    {
        std::mem::size_of::<Fut>()
    }

    /// The socket's own future lives as long as the socket: what it holds is memory per
    /// connection. Joins, replays and the like are boxed while they run, so it stays small.
    #[test]
    fn the_per_socket_future_stays_small() {
        let size = future_size(serve);
        eprintln!(
            "serve future: {size} bytes (reader {}, session {}, run {}, drain {}, sleep {})",
            std::mem::size_of::<ws::Reader>(),
            std::mem::size_of::<Session>(),
            {
                fn run_size<'a, F, Fut>(_: F) -> usize
                where
                    F: FnOnce(&'a mut ws::Reader, &'a mut Session) -> Fut,
                {
                    std::mem::size_of::<Fut>()
                }
                run_size(run)
            },
            {
                fn drain_size<'a, F, Fut>(_: F) -> usize
                where
                    F: FnOnce(&'a mut Session) -> Fut,
                {
                    std::mem::size_of::<Fut>()
                }
                drain_size(Session::drain)
            },
            std::mem::size_of::<tokio::time::Sleep>(),
        );
        assert!(size <= 768, "the per-socket future is {size} bytes");
    }

    #[test]
    fn clients_cannot_use_server_event_names() {
        assert!(super::is_server_event_name("emergency:new"));
        assert!(super::is_server_event_name("message_read:done"));
        assert!(!super::is_server_event_name("typing"));
        assert!(!super::is_server_event_name("webrtc:Offer"));
        assert!(!super::is_server_event_name("a:b:c"));
    }
}
