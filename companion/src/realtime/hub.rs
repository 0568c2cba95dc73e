//! Who on this instance is joined to what, and the bounded queue of every socket.
//!
//! The tailer, the Redis bus and client broadcasts hand the hub one [`Outgoing`] per event; the
//! hub encodes it (into a whole websocket frame) at most once per protocol version. A socket
//! whose task is parked gets the frame written to it at once, from the fan-out loop (see
//! [`super::ws`]); any other gets the same `Arc` on its queue, for its task to write in order.
//! A queue that is full means the client is not keeping up: the socket is told to close (with
//! a reason; it can rejoin with replay), never blocked on and never grown.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde_json::Value;
use tokio::sync::Notify;

use super::changes::Binding;
use super::protocol::{self, Body, Vsn, Wire};
use super::ws::{self, Direct, Writer};
use axum::body::Bytes;
use crate::auth::Claims;

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
    /// A broadcast, encoded lazily per protocol version (the whole websocket frame).
    Broadcast { event: String, meta: Option<Value>, body: Body, v1: OnceLock<Option<Bytes>>, v2: OnceLock<Option<Bytes>> },
    /// A frame already encoded for one socket.
    Encoded(Bytes),
    /// A fan-out push (presence_diff …), encoded lazily.
    Push { event: String, payload: Value, v1: OnceLock<Bytes>, v2: OnceLock<Bytes> },
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

    /// A frame for one socket.
    pub fn encoded(topic: String, wire: &Wire) -> Self {
        Outgoing { event_id: None, topic, frame: Frame::Encoded(ws::frame(wire)) }
    }

    /// The websocket frame for a client speaking `vsn` (the same bytes for every such client);
    /// `None` when it cannot be carried (a raw binary broadcast to a 1.0.0 client).
    pub fn frame(&self, vsn: Vsn) -> Option<Bytes> {
        let client_topic = || format!("realtime:{}", self.topic);
        match &self.frame {
            Frame::Encoded(f) => Some(f.clone()),
            Frame::Broadcast { event, meta, body, v1, v2 } => {
                let cell = if vsn == Vsn::V1 { v1 } else { v2 };
                cell.get_or_init(|| protocol::encode_broadcast(vsn, &client_topic(), event, meta.as_ref(), body).as_ref().map(ws::frame))
                    .clone()
            }
            Frame::Push { event, payload, v1, v2 } => {
                let cell = if vsn == Vsn::V1 { v1 } else { v2 };
                Some(cell.get_or_init(|| ws::frame(&protocol::push(vsn, None, &client_topic(), event, payload.clone()))).clone())
            }
        }
    }
}

/// The handle the hub keeps for one socket: its writer, its bounded queue and its kill switch.
///
/// The queue is a plain `VecDeque` behind a mutex, empty (and unallocated) whenever the socket
/// has caught up: the socket task takes the whole queue at once, so an idle socket costs no
/// queue memory (a bounded `tokio::sync::mpsc` channel allocates its first block of 32 slots
/// and a cache-padded channel up front, for every socket).
pub struct SocketHandle {
    pub id: ConnId,
    capacity: usize,
    queue: Mutex<VecDeque<Arc<Outgoing>>>,
    /// Set once the socket must close (slow consumer, shutdown) or has closed.
    fired: AtomicBool,
    reason: Mutex<Option<(u16, Box<str>)>>,
    /// Wakes the socket task: frames were queued or left half written, or it must close.
    pub wake: Notify,
    /// The socket's write side, shared by its task and the fan-out.
    pub writer: Writer,
}

impl SocketHandle {
    /// A socket whose queue holds at most `capacity` frames.
    pub fn new(id: ConnId, capacity: usize) -> Self {
        SocketHandle {
            id,
            capacity: capacity.max(1),
            queue: Mutex::new(VecDeque::new()),
            fired: AtomicBool::new(false),
            reason: Mutex::new(None),
            wake: Notify::new(),
            writer: Writer::default(),
        }
    }

    /// The task is about to wait: with `direct`, the hub may write to the socket itself until
    /// the task runs again. `false` (and nothing changes) while frames are queued or bytes are
    /// unwritten: the task writes those first, so frames stay in order.
    pub fn park(&self, direct: bool) -> bool {
        let queue = self.queue.lock().expect("queue lock");
        if !queue.is_empty() || self.writer.has_pending() {
            return false;
        }
        if direct {
            self.writer.park();
        }
        true
    }

    /// Tells the socket to close with `code` and `reason` (the first call wins).
    pub fn fire(&self, code: u16, reason: &str) {
        if !self.fired.swap(true, Ordering::AcqRel) {
            *self.reason.lock().expect("kill lock") = Some((code, reason.into()));
            self.wake.notify_one();
        }
    }

    /// Marks a socket whose task has ended: nothing is queued for it any more.
    pub fn closed(&self) {
        self.fired.store(true, Ordering::Release);
        self.queue.lock().expect("queue lock").clear();
    }

    /// Why the socket must close, once [`fire`](Self::fire)d.
    pub fn reason(&self) -> Option<(u16, String)> {
        self.reason.lock().expect("kill lock").as_ref().map(|(c, r)| (*c, r.to_string()))
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::Acquire)
    }

    /// Everything queued so far, oldest first; the queue is left empty and unallocated.
    pub fn take_queued(&self) -> VecDeque<Arc<Outgoing>> {
        std::mem::take(&mut *self.queue.lock().expect("queue lock"))
    }

    /// Frames waiting (for tests and metrics).
    pub fn queued(&self) -> usize {
        self.queue.lock().expect("queue lock").len()
    }
}

/// Who a channel was joined as: the user's id and verified claims, what the database is told
/// when it is asked as them (role `authenticated`). All a socket keeps of a verified token.
#[derive(Debug, PartialEq, Eq)]
pub struct Subscriber {
    pub id: uuid::Uuid,
    pub claims: Claims,
}

/// One socket's membership of one topic.
#[derive(Clone)]
pub struct Member {
    pub socket: Arc<SocketHandle>,
    pub vsn: Vsn,
    /// The client's own broadcasts come back to it (`config.broadcast.self`).
    pub echo_self: bool,
    /// The user the channel was joined (or last refreshed) as.
    pub user: Arc<Subscriber>,
    /// `postgres_changes` bindings of this channel.
    pub bindings: Arc<Vec<Binding>>,
}

/// The members of one topic. Most topics (`user:<uuid>`, a conversation open on one device)
/// have one member, kept inline instead of in a map of its own.
enum Members {
    One(Member),
    Many(HashMap<ConnId, Member>),
}

impl Members {
    fn iter(&self) -> impl Iterator<Item = &Member> {
        let (one, many) = match self {
            Members::One(m) => (Some(m), None),
            Members::Many(map) => (None, Some(map.values())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    fn insert(&mut self, member: Member) {
        match self {
            Members::One(m) if m.socket.id == member.socket.id => *m = member,
            Members::One(m) => {
                let mut map = HashMap::with_capacity(2);
                map.insert(m.socket.id, m.clone());
                map.insert(member.socket.id, member);
                *self = Members::Many(map);
            }
            Members::Many(map) => {
                map.insert(member.socket.id, member);
            }
        }
    }

    /// Removes `conn`; `true` when no member is left.
    fn remove(&mut self, conn: ConnId) -> bool {
        match self {
            Members::One(m) => m.socket.id == conn,
            Members::Many(map) => {
                map.remove(&conn);
                if map.len() == 1 {
                    let (_, last) = map.drain().next().expect("one member left");
                    *self = Members::One(last);
                } else if map.capacity() > 64 && map.len() * 4 < map.capacity() {
                    map.shrink_to_fit();
                }
                map_is_empty(self)
            }
        }
    }
}

fn map_is_empty(m: &Members) -> bool {
    matches!(m, Members::Many(map) if map.is_empty())
}

#[derive(Default)]
pub struct Hub {
    topics: RwLock<HashMap<Box<str>, Members>>,
    next_id: AtomicU64,
}

/// Topics with at least this many members on this instance are fanned out on every core.
const PARALLEL_FAN_OUT_MIN: usize = 2000;

/// The cores this process may run on (its CPU affinity), read once.
fn fan_out_threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Close code and reason for a client whose queue overflowed.
pub const SLOW_CLIENT: (u16, &str) = (1008, "slow consumer: the client did not keep up; reconnect and replay");

impl Hub {
    pub fn next_conn_id(&self) -> ConnId {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn join(&self, topic: &str, member: Member) {
        let mut topics = self.topics.write().expect("hub lock");
        match topics.get_mut(topic) {
            Some(members) => members.insert(member),
            None => {
                topics.insert(topic.into(), Members::One(member));
            }
        }
    }

    pub fn leave(&self, topic: &str, conn: ConnId) {
        let mut topics = self.topics.write().expect("hub lock");
        if let Some(members) = topics.get_mut(topic) {
            if members.remove(conn) {
                topics.remove(topic);
            }
        }
    }

    /// Members of `topic` (a snapshot).
    pub fn members(&self, topic: &str) -> Vec<Member> {
        self.topics.read().expect("hub lock").get(topic).map(|m| m.iter().cloned().collect()).unwrap_or_default()
    }

    /// Every member with `postgres_changes` bindings on `schema.table`.
    pub fn change_subscribers(&self, schema: &str, table: &str) -> Vec<(String, Member)> {
        let topics = self.topics.read().expect("hub lock");
        let mut out = Vec::new();
        for (topic, members) in topics.iter() {
            for m in members.iter() {
                if m.bindings.iter().any(|b| b.covers_table(schema, table)) {
                    out.push((topic.to_string(), m.clone()));
                }
            }
        }
        out
    }

    /// Sends `out` to every member of its topic (except `skip`); returns how many sockets
    /// received it. Sending never waits (a frame is written at once or queued, and a full queue
    /// closes its socket), so it is done under the read lock: no snapshot of the members is
    /// copied. A large topic is split over the cores the process may use: each frame costs a
    /// `write` whose loopback or NIC work the kernel does on the sending core, so one core
    /// writing 10,000 frames is what spreads a burst.
    pub fn fan_out(&self, out: Arc<Outgoing>, skip: Option<ConnId>) -> usize {
        let topics = self.topics.read().expect("hub lock");
        let Some(members) = topics.get(out.topic.as_str()) else { return 0 };
        let send = |m: &Member| Some(m.socket.id) != skip && offer(&m.socket, out.clone(), m.vsn);
        let send_all = |chunk: &[&Member]| chunk.iter().filter(|m| send(m)).count();
        let threads = fan_out_threads();
        match members {
            Members::Many(map) if threads > 1 && map.len() >= PARALLEL_FAN_OUT_MIN => {
                let all: Vec<&Member> = map.values().collect();
                let per = all.len().div_ceil(threads);
                std::thread::scope(|scope| {
                    let others: Vec<_> = all[per..].chunks(per).map(|chunk| scope.spawn(move || send_all(chunk))).collect();
                    let mut sent = send_all(&all[..per]);
                    for t in others {
                        sent += t.join().unwrap_or(0);
                    }
                    sent
                })
            }
            _ => members.iter().filter(|m| send(m)).count(),
        }
    }

    pub fn topic_count(&self) -> usize {
        self.topics.read().expect("hub lock").len()
    }
}

/// Sends `out` to one socket speaking `vsn`: written at once when its task is parked (see
/// [`SocketHandle::park`]), else queued for the task; a full queue closes the socket as a slow
/// consumer.
pub fn offer(socket: &SocketHandle, out: Arc<Outgoing>, vsn: Vsn) -> bool {
    if socket.fired() {
        return false;
    }
    // Under the queue lock, so a frame written now cannot pass one queued before it.
    let mut queue = socket.queue.lock().expect("queue lock");
    if queue.is_empty() {
        let Some(frame) = out.frame(vsn) else { return false };
        match socket.writer.try_direct(&frame) {
            Some(Direct::Written) => return true,
            Some(Direct::Kept) => {
                drop(queue);
                socket.wake.notify_one();
                return true;
            }
            Some(Direct::Failed) => {
                drop(queue);
                socket.wake.notify_one();
                return false;
            }
            None => {}
        }
    }
    if queue.len() >= socket.capacity {
        drop(queue);
        metrics::counter!("careplane_realtime_slow_clients_dropped_total").increment(1);
        socket.fire(SLOW_CLIENT.0, SLOW_CLIENT.1);
        return false;
    }
    let wake = queue.is_empty();
    queue.push_back(out);
    drop(queue);
    // A non-empty queue has already been signalled (the permit is stored until the task takes it).
    if wake {
        socket.wake.notify_one();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn member(socket: &Arc<SocketHandle>, vsn: Vsn) -> Member {
        let user = Subscriber { id: uuid::Uuid::nil(), claims: Claims::new("{}") };
        Member { socket: socket.clone(), vsn, echo_self: false, user: Arc::new(user), bindings: Arc::new(Vec::new()) }
    }


    #[test]
    fn fan_out_queues_one_shared_frame_per_member_and_skips_the_sender() {
        let hub = Hub::default();
        let sockets: Vec<Arc<SocketHandle>> = (0..3).map(|_| Arc::new(SocketHandle::new(hub.next_conn_id(), 8))).collect();
        for s in &sockets {
            hub.join("dispatch", member(s, Vsn::V2));
        }
        hub.join("user:a", member(&sockets[0], Vsn::V2));
        assert_eq!(hub.topic_count(), 2);
        let out = Arc::new(Outgoing::broadcast("dispatch", "emergency:new", None, Body::Json(json!({"n": 1})), Some(7)));
        assert_eq!(hub.fan_out(out, Some(sockets[2].id)), 2);
        let (a, b, c) = (sockets[0].take_queued(), sockets[1].take_queued(), sockets[2].take_queued());
        assert_eq!((a.len(), b.len(), c.len()), (1, 1, 0));
        // Encoded once: both sockets send the very same bytes.
        let (wa, wb) = (a[0].frame(Vsn::V2).unwrap(), b[0].frame(Vsn::V2).unwrap());
        assert_eq!(wa.as_ptr(), wb.as_ptr());
        // Taking the queue leaves nothing allocated behind.
        assert_eq!(sockets[0].queue.lock().unwrap().capacity(), 0);
        assert_eq!(hub.fan_out(Arc::new(Outgoing::push("user:a", "presence_diff", json!({}))), None), 1);
        assert_eq!(sockets[0].queued(), 1);
    }

    #[test]
    fn a_large_topic_reaches_every_member_once() {
        let hub = Hub::default();
        let n = PARALLEL_FAN_OUT_MIN + 7;
        let sockets: Vec<Arc<SocketHandle>> = (0..n).map(|_| Arc::new(SocketHandle::new(hub.next_conn_id(), 8))).collect();
        for s in &sockets {
            hub.join("dispatch", member(s, Vsn::V2));
        }
        let out = Arc::new(Outgoing::broadcast("dispatch", "emergency:new", None, Body::Json(json!({"n": 1})), Some(1)));
        assert_eq!(hub.fan_out(out, Some(sockets[3].id)), n - 1);
        let queued: Vec<usize> = sockets.iter().map(|s| s.queued()).collect();
        assert_eq!(queued.iter().filter(|q| **q == 1).count(), n - 1);
        assert_eq!(queued[3], 0, "the sender is skipped");
    }

    #[test]
    fn members_shrink_back_to_one_and_empty_topics_go() {
        let hub = Hub::default();
        let (a, b) = (Arc::new(SocketHandle::new(1, 8)), Arc::new(SocketHandle::new(2, 8)));
        hub.join("t", member(&a, Vsn::V1));
        hub.join("t", member(&a, Vsn::V1)); // a second join replaces the first
        assert_eq!(hub.members("t").len(), 1);
        hub.join("t", member(&b, Vsn::V2));
        assert_eq!(hub.members("t").len(), 2);
        hub.leave("t", 1);
        let left = hub.members("t");
        assert_eq!((left.len(), left[0].socket.id), (1, 2));
        hub.leave("t", 1); // not a member: nothing changes
        assert_eq!(hub.members("t").len(), 1);
        hub.leave("t", 2);
        assert_eq!(hub.topic_count(), 0);
    }

    #[test]
    fn a_full_queue_kills_the_socket_with_the_slow_consumer_reason() {
        let hub = Hub::default();
        let s = Arc::new(SocketHandle::new(1, 2));
        hub.join("t", member(&s, Vsn::V2));
        let push = || Arc::new(Outgoing::push("t", "x", json!({})));
        assert_eq!(hub.fan_out(push(), None), 1);
        assert_eq!(hub.fan_out(push(), None), 1);
        assert!(!s.fired());
        assert_eq!(hub.fan_out(push(), None), 0);
        assert!(s.fired());
        assert_eq!(s.reason(), Some((SLOW_CLIENT.0, SLOW_CLIENT.1.to_owned())));
        // Nothing more is queued for a socket that must close, and the first reason stays.
        assert_eq!(hub.fan_out(push(), None), 0);
        s.fire(1001, "later");
        assert_eq!(s.reason().unwrap().0, SLOW_CLIENT.0);
        s.closed();
        assert_eq!(s.queued(), 0);
    }

    #[tokio::test]
    async fn the_socket_task_is_woken_for_frames_queued_before_it_waits() {
        let s = Arc::new(SocketHandle::new(1, 8));
        assert!(offer(&s, Arc::new(Outgoing::push("t", "x", json!({}))), Vsn::V2));
        // The wake-up was stored: waiting now returns at once.
        tokio::time::timeout(std::time::Duration::from_secs(1), s.wake.notified()).await.expect("woken");
        assert_eq!(s.take_queued().len(), 1);
    }
}
