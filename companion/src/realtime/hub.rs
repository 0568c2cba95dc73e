//! Who on this instance is joined to what, and the bounded queue of every socket.
//!
//! The tailer, the Redis bus and client broadcasts hand the hub one [`Outgoing`] per event; the
//! hub encodes it at most once per protocol version and puts the same `Arc` on each joined
//! socket's queue. A queue that is full means the client is not keeping up: the socket is told
//! to close (with a reason; it can rejoin with replay), never blocked on and never grown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use super::changes::Binding;
use super::protocol::{self, Body, Vsn, Wire};
use crate::auth::AuthUser;

pub type ConnId = u64;

/// A frame on a socket's queue. Shared between every socket that receives it.
#[derive(Debug)]
pub struct Outgoing {
    /// `(topic, event id)` for events from the log, so a socket that has just replayed can drop
    /// a live copy of what it replayed.
    pub event_id: Option<i64>,
    /// Internal topic (`user:<uuid>`, `dispatch`, …).
    pub topic: String,
    pub frame: Frame,
}

#[derive(Debug)]
pub enum Frame {
    /// A broadcast, encoded lazily per protocol version.
    Broadcast { event: String, meta: Option<Value>, body: Body, v1: OnceLock<Option<Wire>>, v2: OnceLock<Option<Wire>> },
    /// A frame already encoded for one socket.
    Encoded(Wire),
    /// A fan-out push (presence_diff …), encoded lazily.
    Push { event: String, payload: Value, v1: OnceLock<Wire>, v2: OnceLock<Wire> },
}

impl Outgoing {
    pub fn broadcast(topic: &str, event: &str, meta: Option<Value>, body: Body, event_id: Option<i64>) -> Self {
        Outgoing {
            event_id,
            topic: topic.to_owned(),
            frame: Frame::Broadcast { event: event.to_owned(), meta, body, v1: OnceLock::new(), v2: OnceLock::new() },
        }
    }

    pub fn push(topic: &str, event: &str, payload: Value) -> Self {
        Outgoing {
            event_id: None,
            topic: topic.to_owned(),
            frame: Frame::Push { event: event.to_owned(), payload, v1: OnceLock::new(), v2: OnceLock::new() },
        }
    }

    /// The frame for a client speaking `vsn`; `None` when it cannot be carried (a raw binary
    /// broadcast to a 1.0.0 client).
    pub fn wire(&self, vsn: Vsn) -> Option<Wire> {
        let client_topic = || format!("realtime:{}", self.topic);
        match &self.frame {
            Frame::Encoded(w) => Some(w.clone()),
            Frame::Broadcast { event, meta, body, v1, v2 } => {
                let cell = if vsn == Vsn::V1 { v1 } else { v2 };
                cell.get_or_init(|| protocol::encode_broadcast(vsn, &client_topic(), event, meta.as_ref(), body)).clone()
            }
            Frame::Push { event, payload, v1, v2 } => {
                let cell = if vsn == Vsn::V1 { v1 } else { v2 };
                Some(cell.get_or_init(|| protocol::push(vsn, None, &client_topic(), event, payload.clone())).clone())
            }
        }
    }
}

/// The handle the hub keeps for one socket.
pub struct SocketHandle {
    pub id: ConnId,
    pub queue: mpsc::Sender<Arc<Outgoing>>,
    /// Set (with the reason) when the socket must close.
    pub kill: Arc<Kill>,
}

#[derive(Default)]
pub struct Kill {
    fired: AtomicBool,
    reason: Mutex<Option<(u16, String)>>,
    pub notify: Notify,
}

impl Kill {
    pub fn fire(&self, code: u16, reason: &str) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            *self.reason.lock().expect("kill lock") = Some((code, reason.to_owned()));
            self.notify.notify_one();
        }
    }

    pub fn reason(&self) -> Option<(u16, String)> {
        self.reason.lock().expect("kill lock").clone()
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }
}

/// One socket's membership of one topic.
#[derive(Clone)]
pub struct Member {
    pub socket: Arc<SocketHandle>,
    pub vsn: Vsn,
    /// The client's own broadcasts come back to it (`config.broadcast.self`).
    pub echo_self: bool,
    /// The user the channel was joined (or last refreshed) as.
    pub user: Arc<AuthUser>,
    /// `postgres_changes` bindings of this channel.
    pub bindings: Arc<Vec<Binding>>,
}

#[derive(Default)]
pub struct Hub {
    topics: RwLock<HashMap<String, HashMap<ConnId, Member>>>,
    next_id: AtomicU64,
}

/// Close code and reason for a client whose queue overflowed.
pub const SLOW_CLIENT: (u16, &str) = (1008, "slow consumer: the client did not keep up; reconnect and replay");

impl Hub {
    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn join(&self, topic: &str, member: Member) {
        let mut topics = self.topics.write().expect("hub lock");
        topics.entry(topic.to_owned()).or_default().insert(member.socket.id, member);
    }

    pub fn leave(&self, topic: &str, conn: ConnId) {
        let mut topics = self.topics.write().expect("hub lock");
        if let Some(members) = topics.get_mut(topic) {
            members.remove(&conn);
            if members.is_empty() {
                topics.remove(topic);
            }
        }
    }

    /// Members of `topic` (a snapshot).
    pub fn members(&self, topic: &str) -> Vec<Member> {
        self.topics.read().expect("hub lock").get(topic).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Every member with `postgres_changes` bindings on `schema.table`.
    pub fn change_subscribers(&self, schema: &str, table: &str) -> Vec<(String, Member)> {
        let topics = self.topics.read().expect("hub lock");
        let mut out = Vec::new();
        for (topic, members) in topics.iter() {
            for m in members.values() {
                if m.bindings.iter().any(|b| b.covers_table(schema, table)) {
                    out.push((topic.clone(), m.clone()));
                }
            }
        }
        out
    }

    /// Puts `out` on the queue of every member of its topic (except `skip`); returns how many
    /// sockets received it.
    pub fn fan_out(&self, out: Arc<Outgoing>, skip: Option<ConnId>) -> usize {
        let members = {
            let topics = self.topics.read().expect("hub lock");
            match topics.get(&out.topic) {
                Some(m) => m.values().filter(|m| Some(m.socket.id) != skip).map(|m| m.socket.clone()).collect::<Vec<_>>(),
                None => return 0,
            }
        };
        let mut sent = 0;
        for socket in members {
            if offer(&socket, out.clone()) {
                sent += 1;
            }
        }
        sent
    }

    pub fn topic_count(&self) -> usize {
        self.topics.read().expect("hub lock").len()
    }
}

/// Queues `out` for one socket; a full queue closes the socket as a slow consumer.
pub fn offer(socket: &SocketHandle, out: Arc<Outgoing>) -> bool {
    if socket.kill.fired() {
        return false;
    }
    match socket.queue.try_send(out) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(_)) => {
            metrics::counter!("careplane_realtime_slow_clients_dropped_total").increment(1);
            socket.kill.fire(SLOW_CLIENT.0, SLOW_CLIENT.1);
            false
        }
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}
