//! What instances share through Redis: presence and client broadcasts.
//!
//! - Presence: `<prefix>:presence:<topic>` is a hash of `<instance>/<conn>` → `{key, meta}` for
//!   every tracked client; `<prefix>:presence:of:<instance>` lists what an instance tracked;
//!   `<prefix>:instances` scores each instance by its last heartbeat (unix ms). An instance
//!   whose heartbeat is older than `presence_ttl` is dead: any live instance removes its entries
//!   (once: `HDEL` decides who) and announces the leaves, and state reads ignore it meanwhile.
//! - The bus: one pub/sub channel `<prefix>:bus` carries client broadcasts (each instance
//!   delivers to its own sockets; the origin has already delivered locally) and presence diffs
//!   (every instance, the origin too, delivers them to its sockets).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::hub::{ConnId, Hub, Outgoing};
use super::protocol::Body;
use crate::redis_conn::Redis;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum BusMessage {
    Broadcast { origin: String, topic: String, event: String, payload: Value },
    PresenceDiff { topic: String, joins: Value, leaves: Value },
}

pub struct Cluster {
    pub instance: String,
    redis: Arc<Redis>,
    prefix: String,
    ttl: Duration,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Cluster {
    pub fn new(redis: Arc<Redis>, prefix: String, ttl: Duration) -> Self {
        Cluster { instance: uuid::Uuid::new_v4().simple().to_string(), redis, prefix, ttl }
    }

    fn bus(&self) -> String {
        format!("{}:bus", self.prefix)
    }
    fn presence_key(&self, topic: &str) -> String {
        format!("{}:presence:{topic}", self.prefix)
    }
    fn owned_key(&self, instance: &str) -> String {
        format!("{}:presence:of:{instance}", self.prefix)
    }
    fn instances_key(&self) -> String {
        format!("{}:instances", self.prefix)
    }
    fn field(&self, conn: ConnId) -> String {
        format!("{}/{conn}", self.instance)
    }

    async fn publish(&self, msg: &BusMessage) -> redis::RedisResult<()> {
        let mut c = self.redis.connection().await?;
        let text = serde_json::to_string(msg).expect("bus messages serialize");
        let _: i64 = c.publish(self.bus(), text).await?;
        Ok(())
    }

    /// A client broadcast for the other instances.
    pub async fn publish_broadcast(&self, topic: &str, event: &str, payload: &Value) -> redis::RedisResult<()> {
        self.publish(&BusMessage::Broadcast {
            origin: self.instance.clone(),
            topic: topic.to_owned(),
            event: event.to_owned(),
            payload: payload.clone(),
        })
        .await
    }

    /// Tracks (or re-tracks) `conn` on `topic` under `key`; announces the diff.
    pub async fn track(&self, topic: &str, conn: ConnId, key: &str, meta: Value) -> redis::RedisResult<()> {
        let mut c = self.redis.connection().await?;
        let field = self.field(conn);
        let mut meta = match meta {
            Value::Object(m) => m,
            other => Map::from_iter([("value".to_owned(), other)]),
        };
        let phx_ref = uuid::Uuid::new_v4().simple().to_string();
        meta.insert("phx_ref".into(), json!(phx_ref));
        let entry = json!({"key": key, "meta": meta});
        let previous: Option<String> = c.hget(self.presence_key(topic), &field).await?;
        let _: () = redis::pipe()
            .hset(self.presence_key(topic), &field, entry.to_string())
            .sadd(self.owned_key(&self.instance), format!("{topic}\n{field}"))
            .query_async(&mut c)
            .await?;
        let leaves = previous.and_then(|p| serde_json::from_str::<Value>(&p).ok()).map(as_diff).unwrap_or_else(|| json!({}));
        self.publish(&BusMessage::PresenceDiff { topic: topic.to_owned(), joins: as_diff(entry), leaves }).await
    }

    /// Removes `conn`'s presence on `topic`, if any; announces the leave.
    pub async fn untrack(&self, topic: &str, conn: ConnId) -> redis::RedisResult<()> {
        let field = self.field(conn);
        self.remove(&self.instance.clone(), topic, &field).await
    }

    async fn remove(&self, instance: &str, topic: &str, field: &str) -> redis::RedisResult<()> {
        let mut c = self.redis.connection().await?;
        let previous: Option<String> = c.hget(self.presence_key(topic), field).await?;
        let removed: i64 = c.hdel(self.presence_key(topic), field).await?;
        let _: i64 = c.srem(self.owned_key(instance), format!("{topic}\n{field}")).await?;
        if removed == 1 {
            if let Some(entry) = previous.and_then(|p| serde_json::from_str::<Value>(&p).ok()) {
                self.publish(&BusMessage::PresenceDiff { topic: topic.to_owned(), joins: json!({}), leaves: as_diff(entry) })
                    .await?;
            }
        }
        Ok(())
    }

    /// Everyone tracked on `topic` by a live instance, as `presence_state` carries it.
    pub async fn state(&self, topic: &str) -> redis::RedisResult<Value> {
        let mut c = self.redis.connection().await?;
        let entries: Vec<(String, String)> = c.hgetall(self.presence_key(topic)).await?;
        let live_since = now_ms() - self.ttl.as_millis() as i64;
        let alive: Vec<(String, f64)> = c.zrangebyscore_withscores(self.instances_key(), live_since, "+inf").await?;
        let mut state = Map::new();
        for (field, value) in entries {
            let instance = field.split('/').next().unwrap_or_default();
            if instance != self.instance && !alive.iter().any(|(i, _)| i == instance) {
                continue;
            }
            let Ok(entry) = serde_json::from_str::<Value>(&value) else { continue };
            let key = entry["key"].as_str().unwrap_or_default().to_owned();
            let metas = state.entry(key).or_insert_with(|| json!({"metas": []}));
            if let Some(list) = metas["metas"].as_array_mut() {
                list.push(entry["meta"].clone());
            }
        }
        Ok(Value::Object(state))
    }

    /// Heartbeat, and removal of dead instances' presence. Runs until aborted.
    pub async fn heartbeat(self: Arc<Self>) {
        let every = (self.ttl / 3).max(Duration::from_millis(100));
        loop {
            if let Err(e) = self.beat().await {
                tracing::warn!(error = %e, "realtime presence: heartbeat failed");
            }
            tokio::time::sleep(every).await;
        }
    }

    async fn beat(&self) -> redis::RedisResult<()> {
        let mut c = self.redis.connection().await?;
        let now = now_ms();
        let _: i64 = c.zadd(self.instances_key(), &self.instance, now).await?;
        let dead: Vec<String> = c.zrangebyscore(self.instances_key(), "-inf", now - self.ttl.as_millis() as i64).await?;
        for instance in dead {
            let owned: Vec<String> = c.smembers(self.owned_key(&instance)).await?;
            for item in owned {
                if let Some((topic, field)) = item.split_once('\n') {
                    self.remove(&instance, topic, field).await?;
                }
            }
            let _: i64 = c.zrem(self.instances_key(), &instance).await?;
        }
        Ok(())
    }

    /// Leaves the cluster on shutdown: this instance's presence goes at once.
    pub async fn depart(&self) {
        let work = async {
            let mut c = self.redis.connection().await?;
            let owned: Vec<String> = c.smembers(self.owned_key(&self.instance)).await?;
            for item in owned {
                if let Some((topic, field)) = item.split_once('\n') {
                    self.remove(&self.instance.clone(), topic, field).await?;
                }
            }
            let _: i64 = c.zrem(self.instances_key(), &self.instance).await?;
            redis::RedisResult::Ok(())
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), work).await;
    }

    /// Delivers bus messages to this instance's sockets. Runs until aborted; resubscribes after
    /// Redis comes back.
    pub async fn subscribe(self: Arc<Self>, hub: Arc<Hub>) {
        loop {
            match self.redis.client().get_async_pubsub().await {
                Ok(mut pubsub) => {
                    if let Err(e) = pubsub.subscribe(self.bus()).await {
                        tracing::warn!(error = %e, "realtime bus: subscribe failed");
                    } else {
                        let mut messages = pubsub.on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(text) = msg.get_payload::<String>() else { continue };
                            match serde_json::from_str::<BusMessage>(&text) {
                                Ok(BusMessage::Broadcast { origin, topic, event, payload }) if origin != self.instance => {
                                    hub.fan_out(Arc::new(Outgoing::broadcast(&topic, &event, None, Body::Json(payload), None)), None);
                                }
                                Ok(BusMessage::PresenceDiff { topic, joins, leaves }) => {
                                    hub.fan_out(
                                        Arc::new(Outgoing::push(&topic, "presence_diff", json!({"joins": joins, "leaves": leaves}))),
                                        None,
                                    );
                                }
                                Ok(_) => {}
                                Err(e) => tracing::warn!(error = %e, "realtime bus: unreadable message"),
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "realtime bus: Redis unavailable; client broadcasts stay on this instance"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// `{key, meta}` → `{key: {metas: [meta]}}`.
fn as_diff(entry: Value) -> Value {
    let key = entry["key"].as_str().unwrap_or_default().to_owned();
    json!({ key: {"metas": [entry["meta"].clone()]} })
}
