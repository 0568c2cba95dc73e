//! One websocket: Phoenix channel joins, leaves, heartbeats, token refreshes and expiry, client
//! broadcasts, presence, replay — and draining the socket's bounded queue.
//!
//! Everything happens in one task, so what a join writes (its reply, a replay, the presence
//! state) always precedes the live events queued for it meanwhile; live copies of replayed
//! events are dropped by id.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::changes::Binding;
use super::hub::{Member, Outgoing, SocketHandle};
use super::protocol::{self, Body, Message, Vsn, Wire};
use super::tailer::{event_outgoing, Event};
use super::Realtime;
use crate::auth::{AuthUser, Principal};
use crate::db::user::{begin_as_user, Access};
use crate::AppState;

/// A client that sends nothing (not even the 25 s heartbeat) for this long is gone.
const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// A client broadcast on a `consultation:` topic re-asks `access.may_join_topic` when the last
/// check is older than this: the call's topic closes with the call (at most one query per
/// channel per interval, however many signaling messages flow).
const CONSULTATION_RECHECK: Duration = Duration::from_secs(2);

struct Channel {
    topic: String,
    client_topic: String,
    join_ref: Option<String>,
    user: Arc<AuthUser>,
    exp: i64,
    ack: bool,
    echo_self: bool,
    presence_key: String,
    tracked: bool,
    /// `presence_state` was sent (at join with presence enabled, or at the first track).
    presence_synced: bool,
    bindings: Arc<Vec<Binding>>,
    /// Ids sent by replay, so their live copies are not sent twice.
    replayed: HashSet<i64>,
    /// When `access.may_join_topic` last said yes (join, refresh, re-check).
    checked_at: Instant,
}

struct Session {
    state: AppState,
    rt: Arc<Realtime>,
    vsn: Vsn,
    handle: Arc<SocketHandle>,
    /// The `apikey` query parameter: the token when a join carries none.
    apikey: Option<String>,
    channels: HashMap<String, Channel>,
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

fn to_ws(w: Wire) -> WsMessage {
    match w {
        Wire::Text(t) => WsMessage::Text(Utf8Bytes::from(t)),
        Wire::Binary(b) => WsMessage::Binary(b),
    }
}

async fn close(ws: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame { code, reason: Utf8Bytes::from(reason) };
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.send(WsMessage::Close(Some(frame)))).await;
}

pub async fn serve(mut ws: WebSocket, state: AppState, rt: Arc<Realtime>, vsn: Vsn, apikey: Option<String>) {
    let (tx, mut rx) = mpsc::channel::<Arc<Outgoing>>(rt.config.queue_capacity);
    let handle = Arc::new(SocketHandle { id: rt.hub.next_conn_id(), queue: tx, kill: Default::default() });
    let mut shutdown = rt.shutdown.subscribe();
    let _open = rt.open();
    let mut s = Session { state, rt: rt.clone(), vsn, handle: handle.clone(), apikey, channels: HashMap::new(), window: (Instant::now(), 0) };
    let mut last_seen = Instant::now();
    let end: Option<(u16, String)> = loop {
        if *shutdown.borrow() {
            break Some((1001, "server shutting down".into()));
        }
        let next_exp = s.channels.values().map(|c| c.exp).min();
        let expiry = async {
            match next_exp {
                Some(exp) => {
                    let wait = (exp + 1 - unix_now()).max(0) as u64;
                    tokio::time::sleep(Duration::from_secs(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.changed() => break Some((1001, "server shutting down".into())),
            _ = handle.kill.notify.notified() => break handle.kill.reason(),
            incoming = ws.recv() => {
                last_seen = Instant::now();
                match incoming {
                    Some(Ok(WsMessage::Text(t))) => match protocol::decode_text(vsn, t.as_str()) {
                        Ok(m) => { if s.handle_message(&mut ws, m, None).await.is_err() { break None; } }
                        Err(e) => { break Some((1003, format!("unreadable frame: {e}"))); }
                    },
                    Some(Ok(WsMessage::Binary(b))) => match protocol::decode_binary(&b) {
                        Ok(p) => {
                            let m = Message { join_ref: p.join_ref, reference: p.reference, topic: p.topic, event: "broadcast".into(),
                                              payload: json!({"type": "broadcast", "event": p.event}) };
                            if s.handle_message(&mut ws, m, Some(p.body)).await.is_err() { break None; }
                        }
                        Err(e) => { break Some((1003, format!("unreadable frame: {e}"))); }
                    },
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => break None,
                    Some(Ok(_)) => {}
                }
            }
            Some(out) = rx.recv() => {
                if let Some(ch) = s.channels.get_mut(&out.topic) {
                    if let Some(id) = out.event_id {
                        if ch.replayed.remove(&id) { continue; }
                    }
                } else {
                    continue; // left since it was queued
                }
                let Some(wire) = out.wire(vsn) else { continue };
                tokio::select! {
                    biased;
                    _ = handle.kill.notify.notified() => break handle.kill.reason(),
                    sent = ws.send(to_ws(wire)) => if sent.is_err() { break None; },
                }
            }
            _ = expiry => s.expire(&mut ws).await,
            _ = tokio::time::sleep(IDLE_TIMEOUT.saturating_sub(last_seen.elapsed())) => {
                break Some((1000, "no heartbeat".into()));
            }
        }
    };
    if let Some((code, reason)) = end {
        close(&mut ws, code, &reason).await;
    }
    s.leave_all().await;
}

impl Session {
    async fn send(&self, ws: &mut WebSocket, w: Wire) -> Result<(), ()> {
        ws.send(to_ws(w)).await.map_err(|_| ())
    }

    async fn handle_message(&mut self, ws: &mut WebSocket, m: Message, body: Option<Body>) -> Result<(), ()> {
        let vsn = self.vsn;
        match (m.topic.as_str(), m.event.as_str()) {
            ("phoenix", "heartbeat") => self.send(ws, protocol::reply(vsn, &m, "ok", json!({}))).await,
            (_, "phx_join") => self.join(ws, m).await,
            (_, "phx_leave") => {
                if let Some(topic) = m.topic.strip_prefix("realtime:") {
                    self.leave(topic).await;
                }
                self.send(ws, protocol::reply(vsn, &m, "ok", json!({}))).await
            }
            (_, "access_token") => self.refresh(ws, m).await,
            (_, "broadcast") => self.client_broadcast(ws, m, body).await,
            (_, "presence") => self.presence(ws, m).await,
            _ => self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": format!("unknown event {:?}", m.event)}))).await,
        }
    }

    fn token_for<'a>(&'a self, payload: &'a Value) -> Option<&'a str> {
        payload.get("access_token").and_then(Value::as_str).filter(|t| !t.is_empty()).or(self.apikey.as_deref())
    }

    /// Verifies `token` and asks the database, as that user, whether they may join `topic`.
    async fn authorize(&self, token: Option<&str>, topic: &str) -> Result<(Arc<AuthUser>, i64), String> {
        let token = token.ok_or("Unauthorized: no access token (send apikey or access_token)")?;
        let user = match self.state.verifier.verify(token).await {
            Ok(Principal::User(u)) => u,
            Ok(Principal::Service(_)) => return Err("Unauthorized: channels are joined as a signed-in user".into()),
            Err(e) => return Err(format!("Unauthorized: {e}")),
        };
        let exp = user.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        match self.may_join(&user, topic).await {
            Ok(true) => Ok((Arc::new(user), exp)),
            Ok(false) => Err(format!("Unauthorized: you do not have permissions to read from this Channel topic: {topic}")),
            Err(()) => Err("Unable to join: the database is unavailable; retrying".into()),
        }
    }

    /// `access.may_join_topic(topic)` asked as `user` (`Err` when the database is unavailable).
    async fn may_join(&self, user: &AuthUser, topic: &str) -> Result<bool, ()> {
        let mut tx = begin_as_user(&self.state.db, user, Access::ReadOnly).await.map_err(|_| ())?;
        let ok: bool = sqlx::query_scalar("select access.may_join_topic($1)").bind(topic).fetch_one(&mut *tx).await.map_err(|_| ())?;
        tx.rollback().await.map_err(|_| ())?;
        Ok(ok)
    }

    /// For a client broadcast on a `consultation:` topic whose last check is older than
    /// [`CONSULTATION_RECHECK`]: may the channel's user still use it? `Err` when the database
    /// cannot say (the broadcast is refused, the channel kept).
    async fn still_allowed(&mut self, topic: &str) -> Result<bool, ()> {
        let Some(ch) = self.channels.get(topic) else { return Ok(false) };
        if !topic.starts_with("consultation:") || ch.checked_at.elapsed() < CONSULTATION_RECHECK {
            return Ok(true);
        }
        let user = ch.user.clone();
        let ok = self.may_join(&user, topic).await?;
        if let (true, Some(ch)) = (ok, self.channels.get_mut(topic)) {
            ch.checked_at = Instant::now();
        }
        Ok(ok)
    }

    async fn join(&mut self, ws: &mut WebSocket, m: Message) -> Result<(), ()> {
        let vsn = self.vsn;
        let refuse = |reason: String| protocol::reply(vsn, &m, "error", json!({"reason": reason}));
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else {
            metrics::counter!("careplane_realtime_joins_total", "outcome" => "invalid").increment(1);
            return self.send(ws, refuse("topics are realtime:<name>".into())).await;
        };
        if !self.channels.contains_key(&topic) && self.channels.len() >= self.rt.config.max_channels_per_socket {
            metrics::counter!("careplane_realtime_joins_total", "outcome" => "invalid").increment(1);
            return self.send(ws, refuse(format!("too many channels on one socket (at most {})", self.rt.config.max_channels_per_socket))).await;
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
                return self.send(ws, refuse(e)).await;
            }
        };
        let (user, exp) = match self.authorize(self.token_for(&m.payload), &topic).await {
            Ok(u) => u,
            Err(reason) => {
                metrics::counter!("careplane_realtime_joins_total", "outcome" => "refused").increment(1);
                return self.send(ws, refuse(reason)).await;
            }
        };
        // A second join of the same topic replaces the first.
        self.leave(&topic).await;
        let bindings = Arc::new(bindings);
        let echo_self = config["broadcast"]["self"].as_bool().unwrap_or(false);
        self.rt.hub.join(&topic, Member { socket: self.handle.clone(), vsn, echo_self, user: user.clone(), bindings: bindings.clone() });
        let presence_key = config["presence"]["key"].as_str().filter(|k| !k.is_empty()).map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut channel = Channel {
            topic: topic.clone(),
            client_topic: m.topic.clone(),
            join_ref: m.join_ref.clone().or(m.reference.clone()),
            user,
            exp,
            ack: config["broadcast"]["ack"].as_bool().unwrap_or(false),
            echo_self,
            presence_key,
            tracked: false,
            presence_synced: false,
            bindings: bindings.clone(),
            replayed: HashSet::new(),
            checked_at: Instant::now(),
        };
        metrics::counter!("careplane_realtime_joins_total", "outcome" => "ok").increment(1);
        let reply: Vec<Value> = bindings.iter().map(Binding::reply).collect();
        self.send(ws, protocol::reply(vsn, &m, "ok", json!({"postgres_changes": reply}))).await?;

        let replay = &config["broadcast"]["replay"];
        if config["private"].as_bool() == Some(true) && replay.is_object() {
            match self.replay(&topic, replay).await {
                Ok(events) => {
                    for e in events {
                        channel.replayed.insert(e.id);
                        if let Some(w) = event_outgoing(&e, true).wire(vsn) {
                            self.send(ws, w).await?;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "realtime: replay failed");
                    let msg = json!({"extension": "system", "status": "error", "channel": topic,
                                     "message": "replay is unavailable right now; rejoin to try again"});
                    self.send(ws, protocol::push(vsn, None, &m.topic, "system", msg)).await?;
                }
            }
        }
        let presence = config["presence"]["enabled"].as_bool() == Some(true);
        self.channels.insert(topic.clone(), channel);
        if presence {
            self.presence_state(ws, &topic).await?;
        }
        Ok(())
    }

    /// Sends `presence_state` (everyone tracked on the topic by a live instance) once per join:
    /// the client applies `presence_diff`s only after it.
    async fn presence_state(&mut self, ws: &mut WebSocket, topic: &str) -> Result<(), ()> {
        let Some(ch) = self.channels.get_mut(topic) else { return Ok(()) };
        if ch.presence_synced {
            return Ok(());
        }
        ch.presence_synced = true;
        let client_topic = ch.client_topic.clone();
        let state = match &self.rt.cluster {
            Some(c) => c.state(topic).await.unwrap_or_else(|_| json!({})),
            None => json!({}),
        };
        self.send(ws, protocol::push(self.vsn, None, &client_topic, "presence_state", state)).await
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
        if let Some(ch) = self.channels.remove(topic) {
            self.rt.hub.leave(&ch.topic, self.handle.id);
            if ch.tracked {
                if let Some(c) = &self.rt.cluster {
                    let _ = c.untrack(&ch.topic, self.handle.id).await;
                }
            }
        }
    }

    async fn leave_all(&mut self) {
        let topics: Vec<String> = self.channels.keys().cloned().collect();
        for t in topics {
            self.leave(&t).await;
        }
    }

    /// Ends a channel: a `system` message saying why, then `phx_close` (the client does not rejoin).
    async fn end_channel(&mut self, ws: &mut WebSocket, topic: &str, message: &str) -> Result<(), ()> {
        let Some(ch) = self.channels.get(topic) else { return Ok(()) };
        let (client_topic, join_ref) = (ch.client_topic.clone(), ch.join_ref.clone());
        self.leave(topic).await;
        let vsn = self.vsn;
        let msg = json!({"extension": "system", "status": "error", "message": message, "channel": topic});
        self.send(ws, protocol::push(vsn, None, &client_topic, "system", msg)).await?;
        self.send(ws, protocol::push(vsn, join_ref.as_deref(), &client_topic, "phx_close", json!({}))).await
    }

    async fn expire(&mut self, ws: &mut WebSocket) {
        let now = unix_now();
        let expired: Vec<String> = self.channels.values().filter(|c| c.exp < now).map(|c| c.topic.clone()).collect();
        for topic in expired {
            metrics::counter!("careplane_realtime_channels_expired_total").increment(1);
            let _ = self.end_channel(ws, &topic, "Token has expired; refresh the session and subscribe again").await;
        }
    }

    /// `access_token`: a new token for a joined channel; the topic is checked again as its user.
    async fn refresh(&mut self, ws: &mut WebSocket, m: Message) -> Result<(), ()> {
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        if !self.channels.contains_key(&topic) {
            return Ok(());
        }
        let token = m.payload.get("access_token").and_then(Value::as_str);
        match self.authorize(token, &topic).await {
            Ok((user, exp)) => {
                let vsn = self.vsn;
                let ch = self.channels.get_mut(&topic).expect("checked above");
                ch.user = user.clone();
                ch.exp = exp;
                ch.checked_at = Instant::now();
                self.rt.hub.join(&topic, Member { socket: self.handle.clone(), vsn, echo_self: ch.echo_self, user, bindings: ch.bindings.clone() });
                Ok(())
            }
            Err(reason) => self.end_channel(ws, &topic, &reason).await,
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

    async fn client_broadcast(&mut self, ws: &mut WebSocket, m: Message, body: Option<Body>) -> Result<(), ()> {
        let vsn = self.vsn;
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        if !self.channels.contains_key(&topic) {
            return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "join the channel before broadcasting"}))).await;
        }
        match self.still_allowed(&topic).await {
            Ok(true) => {}
            Ok(false) => {
                metrics::counter!("careplane_realtime_broadcasts_refused_total").increment(1);
                let reason = format!("Unauthorized: you may no longer send on this Channel topic: {topic} (the call is not open)");
                self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": reason.clone()}))).await?;
                return self.end_channel(ws, &topic, &reason).await;
            }
            Err(()) => {
                metrics::counter!("careplane_realtime_broadcasts_refused_total").increment(1);
                let reason = "the database is unavailable; the broadcast was not sent";
                return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": reason}))).await;
            }
        }
        let ch = &self.channels[&topic];
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
            return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": reason}))).await;
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
            self.send(ws, protocol::reply(vsn, &m, "ok", json!({}))).await?;
        }
        Ok(())
    }

    async fn presence(&mut self, ws: &mut WebSocket, m: Message) -> Result<(), ()> {
        let vsn = self.vsn;
        let Some(topic) = m.topic.strip_prefix("realtime:").map(str::to_owned) else { return Ok(()) };
        let Some(ch) = self.channels.get_mut(&topic) else {
            return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "join the channel before tracking presence"}))).await;
        };
        let Some(cluster) = self.rt.cluster.clone() else {
            return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "presence is not configured"}))).await;
        };
        let result = match m.payload["event"].as_str() {
            Some("track") => {
                let meta = m.payload.get("payload").cloned().unwrap_or(json!({}));
                if meta.to_string().len() > self.rt.config.broadcast_max_bytes {
                    return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "presence payload too large"}))).await;
                }
                ch.tracked = true;
                cluster.track(&topic, self.handle.id, &ch.presence_key, meta).await
            }
            Some("untrack") => {
                ch.tracked = false;
                cluster.untrack(&topic, self.handle.id).await
            }
            _ => return self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "presence events are track and untrack"}))).await,
        };
        match result {
            Ok(()) => {
                self.send(ws, protocol::reply(vsn, &m, "ok", json!({}))).await?;
                self.presence_state(ws, &topic).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "realtime: presence unavailable");
                self.send(ws, protocol::reply(vsn, &m, "error", json!({"reason": "presence is unavailable right now"}))).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_cannot_use_server_event_names() {
        assert!(super::is_server_event_name("emergency:new"));
        assert!(super::is_server_event_name("message_read:done"));
        assert!(!super::is_server_event_name("typing"));
        assert!(!super::is_server_event_name("webrtc:Offer"));
        assert!(!super::is_server_event_name("a:b:c"));
    }
}
