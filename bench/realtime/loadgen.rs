//! The load generator of bench/realtime (one Rust client for both servers): opens CLIENTS
//! websockets, each subscribed to its own `user:<uuid>` topic and the shared `dispatch` topic,
//! commits RATE events per second into `private.realtime_events` (one transaction each), and
//! measures, for every event delivered, the time from its COMMIT returning to its arrival.
//! Also samples the server's RSS and CPU, and its own CPU, from /proc. Prints one JSON line of
//! results.
//!
//! What it measures, and how it keeps itself out of the figures:
//! - The clients are LOADGEN_THREADS (default 1) plain threads, each an epoll loop (mio) over
//!   raw non-blocking sockets: it connects its clients (at most 100 connecting at once, each
//!   place held until half a second after its handshake), writes the websocket upgrade itself
//!   and checks the answer (101, Sec-WebSocket-Accept), then reads whatever a readable socket
//!   holds into one buffer and walks the websocket frames in place (16- and 64-bit lengths, text
//!   and binary, fragments, a frame split across reads kept for the next; ping → pong, close →
//!   close). Its own frames are masked (RFC 6455 §5.3). For each delivered event it finds
//!   `"seq":` in the frame's bytes, parses the digits and appends `(seq, instant)` to the loop's
//!   own vector (allocated up front; one `Instant::now()` per read), and counts the arrival in
//!   a per-event atomic, so the generator knows when every expected delivery has arrived. No
//!   task, waker, channel or lock per frame: ~3 µs of CPU per frame when a burst arrives faster
//!   than the loop reads (the `burst` test, 9,000 sockets), more per frame when frames trickle
//!   in at a server's pace (each wake-up costs a context switch): `client_loops_cpu_us_per_frame`
//!   in the output.
//! - Protocols: careplane is Supabase Realtime (Phoenix, vsn 2.0.0): two `phx_join`s, a
//!   heartbeat on `phoenix` every 25 s per socket (the server drops a socket silent for 75 s),
//!   broadcasts as binary frames of kind 4 (JSON `broadcast` messages are counted too).
//!   Socket.IO is Engine.IO 4 over a websocket: `0{open}` → `40{auth}`, `40{sid}` = joined,
//!   events `42[…]`, the server's ping `2` answered with `3`.
//! - The producer (the commits, its own pool) and a LISTEN connection run on a tokio runtime of
//!   their own; the orchestration on the main thread. A burst arriving at the clients does not
//!   delay the producer's ticks or the instant a COMMIT is seen to return (unless the machine
//!   has no core for it: pin with LOADGEN_CPUS in run.sh to see the same for both servers).
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
//!   event to every joined socket, transaction start → fan-out), and slow clients it
//!   dropped.
//!
//! Env: TARGET (careplane | socketio), URL (http://127.0.0.1:port), SERVER_PID, CLIENTS, RATE,
//! MEASURE_SECONDS, WARMUP, SHARED_EVERY (every n-th event goes to `dispatch`), DRAIN_SECONDS
//! (default 15), DRAIN_QUIET_SECONDS (default 3), LOADGEN_THREADS (client loops, default 1),
//! DATABASE_URL, SUPABASE_JWT_SECRET. Built by `cargo build --release -p careplane-tests --example realtime_load`.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::watch;

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

/// What every client loop shares with the generator.
struct Shared {
    /// Arrivals per seq (index), for the drain.
    received: Vec<AtomicU32>,
    /// Joined (both topics) per client index.
    joined: Vec<AtomicBool>,
    joined_count: AtomicU64,
    /// Sockets that ended before the generator stopped them, by reason.
    closed: Mutex<BTreeMap<String, u64>>,
    failures: AtomicU64,
    /// Connections between their TCP connect and half a second after their websocket
    /// handshake (at most CONNECTING at once, across every loop).
    connecting: AtomicUsize,
    /// Websocket frames and bytes received so far (each loop adds its own once per poll).
    frames: AtomicU64,
    bytes: AtomicU64,
    /// Thread ids of the client loops (their CPU is sampled apart from the producer's).
    loop_tids: Mutex<Vec<u32>>,
    /// Set when the generator has counted: the loops return their arrivals, and sockets that
    /// end from then on are not the server's doing.
    stop: AtomicBool,
}

impl Shared {
    /// Counters for `seqs` events and `clients` clients.
    fn new(seqs: usize, clients: usize) -> Arc<Shared> {
        Arc::new(Shared {
            received: (0..seqs).map(|_| AtomicU32::new(0)).collect(),
            joined: (0..clients).map(|_| AtomicBool::new(false)).collect(),
            joined_count: AtomicU64::new(0),
            closed: Mutex::new(BTreeMap::new()),
            failures: AtomicU64::new(0),
            connecting: AtomicUsize::new(0),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            loop_tids: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        })
    }

    fn mark_joined(&self, i: usize) {
        if !self.joined[i].swap(true, Ordering::Relaxed) {
            self.joined_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn closed_because(&self, reason: String) {
        *self.closed.lock().unwrap().entry(reason).or_default() += 1;
    }

    fn failed(&self, client: usize, why: &str) {
        if self.failures.fetch_add(1, Ordering::Relaxed) < 3 {
            eprintln!("client {client}: {why}");
        }
    }
}

/// At most this many clients connecting at once; each holds its place from its TCP connect
/// until half a second after its websocket handshake (the pacing the generator always had).
const CONNECTING: usize = 100;
const CONNECT_HOLD: Duration = Duration::from_millis(500);
/// Phoenix drops a socket silent for 75 s; supabase-js sends a heartbeat every 25 s.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// The largest server message the generator accepts (its frames are a few hundred bytes).
const MAX_MESSAGE: usize = 16 << 20;
const READ_BUFFER: usize = 64 << 10;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    /// Supabase Realtime (Phoenix channels, vsn 2.0.0).
    Careplane,
    /// Engine.IO 4 / Socket.IO 4 over a websocket.
    SocketIo,
}

/// One client a loop will open: its global index, its user and token.
struct Client {
    index: usize,
    user: uuid::Uuid,
    jwt: String,
}

enum State {
    /// TCP connect in progress (non-blocking).
    Connecting,
    /// Upgrade request sent, waiting for the 101 response.
    Handshake,
    Open,
}

struct Conn {
    /// Index into the loop's clients.
    local: usize,
    stream: mio::net::TcpStream,
    state: State,
    /// The Sec-WebSocket-Accept the server must answer.
    accept: String,
    /// Bytes read but not yet used: a partial HTTP response or a frame split across reads.
    pending: Vec<u8>,
    /// A fragmented message being assembled: (opcode, payload so far).
    fragment: Option<(u8, Vec<u8>)>,
    /// Client frames not yet written (the socket was full).
    out: Vec<u8>,
    joins_ok: u8,
    /// Holds a connecting place not yet scheduled for release.
    holds_place: bool,
}

/// How a connection ended.
enum End {
    /// The server (or the network) ended it after the websocket opened.
    Closed(String),
    /// It never became a working client: connect, handshake or join failed.
    Failed(String),
}

/// What a loop hands back when it stops.
struct LoopResult {
    arrivals: Vec<(u32, Instant)>,
}

/// One event loop (epoll, via mio) over raw non-blocking sockets: connects its clients (paced),
/// does the websocket handshake and the protocol's join itself, then for every readable socket
/// reads what is there, walks the websocket frames, and records `(seq, arrival)` for each
/// delivered event. One `Instant::now()` per read (the frames of one read arrived together).
struct ClientLoop {
    proto: Proto,
    addr: std::net::SocketAddr,
    host: String,
    shared: Arc<Shared>,
    clients: Vec<Client>,
    conns: Vec<Option<Conn>>,
    next_to_start: usize,
    /// When each connecting place this loop holds is given back (in order: a fixed delay).
    releases: VecDeque<Instant>,
    /// Heartbeats due (careplane), in order: (due, local index).
    heartbeats: VecDeque<(Instant, usize)>,
    arrivals: Vec<(u32, Instant)>,
    frames: u64,
    bytes: u64,
    read_buf: Vec<u8>,
    poll: mio::Poll,
}

/// `base64(sha1(key + GUID))`, RFC 6455 §4.2.2.
fn accept_of(key: &str) -> String {
    use base64::Engine;
    use sha1::Digest;
    let mut h = sha1::Sha1::new();
    h.update(key.as_bytes());
    h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

/// Appends one client frame (FIN, masked with a fresh random key: RFC 6455 §5.3).
fn put_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.push(0x80 | opcode);
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let mask: [u8; 4] = rand::random();
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
}

/// A server frame's header at the start of `buf`: `Ok(None)` if incomplete, else
/// `(b0, header length, payload length)`. Server frames are never masked (§5.1).
fn frame_header(buf: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err("reserved bits set (no extension was negotiated)".into());
    }
    if b1 & 0x80 != 0 {
        return Err("masked frame from the server".into());
    }
    let (header, len) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            (4, u64::from(u16::from_be_bytes([buf[2], buf[3]])))
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            (10, u64::from_be_bytes(buf[2..10].try_into().unwrap()))
        }
        n => (2, u64::from(n)),
    };
    if len > MAX_MESSAGE as u64 {
        return Err(format!("frame of {len} bytes"));
    }
    Ok(Some((b0, header, len as usize)))
}

/// The end of the HTTP response head, and whether it is a websocket upgrade with the right
/// accept key.
fn check_upgrade(head: &[u8], accept: &str) -> Result<(), String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    if !status.starts_with("HTTP/1.1 101") {
        return Err(format!("handshake refused: {status}"));
    }
    let (mut upgrade, mut accepted) = (false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("upgrade") && value.eq_ignore_ascii_case("websocket") {
            upgrade = true;
        } else if name.eq_ignore_ascii_case("sec-websocket-accept") && value == accept {
            accepted = true;
        }
    }
    if !upgrade || !accepted {
        return Err(format!("bad upgrade response (upgrade: {upgrade}, accept matches: {accepted})"));
    }
    Ok(())
}

fn would_block(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
}

/// Writes what it can of `c.out`; the rest waits for the socket to become writable.
fn flush(c: &mut Conn) -> Result<(), End> {
    while !c.out.is_empty() {
        match c.stream.write(&c.out) {
            Ok(0) => return Err(End::Closed("socket error: write returned 0".into())),
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if would_block(&e) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(End::Closed(format!("socket error: {e}"))),
        }
    }
    Ok(())
}

impl ClientLoop {
    fn new(proto: Proto, addr: std::net::SocketAddr, host: String, shared: Arc<Shared>, clients: Vec<Client>, expected_frames: usize) -> std::io::Result<Self> {
        let n = clients.len();
        Ok(ClientLoop {
            proto,
            addr,
            host,
            shared,
            clients,
            conns: (0..n).map(|_| None).collect(),
            next_to_start: 0,
            releases: VecDeque::new(),
            heartbeats: VecDeque::new(),
            arrivals: Vec::with_capacity(expected_frames),
            frames: 0,
            bytes: 0,
            read_buf: vec![0; READ_BUFFER],
            poll: mio::Poll::new()?,
        })
    }

    fn run(mut self) -> LoopResult {
        if let Ok(link) = std::fs::read_link("/proc/thread-self") {
            if let Some(tid) = link.file_name().and_then(|t| t.to_str()).and_then(|t| t.parse().ok()) {
                self.shared.loop_tids.lock().unwrap().push(tid);
            }
        }
        let mut events = mio::Events::with_capacity(4096);
        let (mut frames_published, mut bytes_published) = (0u64, 0u64);
        while !self.shared.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            while self.releases.front().is_some_and(|r| *r <= now) {
                self.releases.pop_front();
                self.shared.connecting.fetch_sub(1, Ordering::Relaxed);
            }
            self.start_connects();
            self.heartbeats_due(now);
            let mut timeout = Duration::from_millis(50);
            for due in [self.releases.front().copied(), self.heartbeats.front().map(|h| h.0)].into_iter().flatten() {
                timeout = timeout.min(due.saturating_duration_since(now));
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    eprintln!("poll: {e}");
                    break;
                }
            }
            for ev in events.iter() {
                self.drive(ev.token().0, ev.is_readable() || ev.is_read_closed() || ev.is_error(), ev.is_writable());
            }
            if self.frames != frames_published {
                self.shared.frames.fetch_add(self.frames - frames_published, Ordering::Relaxed);
                frames_published = self.frames;
            }
            if self.bytes != bytes_published {
                self.shared.bytes.fetch_add(self.bytes - bytes_published, Ordering::Relaxed);
                bytes_published = self.bytes;
            }
        }
        LoopResult { arrivals: self.arrivals }
    }

    fn start_connects(&mut self) {
        while self.next_to_start < self.clients.len() {
            let taken = self.shared.connecting.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < CONNECTING).then_some(n + 1));
            if taken.is_err() {
                return;
            }
            let local = self.next_to_start;
            self.next_to_start += 1;
            let started = mio::net::TcpStream::connect(self.addr).and_then(|mut stream| {
                self.poll.registry().register(&mut stream, mio::Token(local), mio::Interest::READABLE | mio::Interest::WRITABLE)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    self.conns[local] = Some(Conn {
                        local,
                        stream,
                        state: State::Connecting,
                        accept: String::new(),
                        pending: Vec::new(),
                        fragment: None,
                        out: Vec::new(),
                        joins_ok: 0,
                        holds_place: true,
                    });
                }
                Err(e) => {
                    self.shared.connecting.fetch_sub(1, Ordering::Relaxed);
                    self.shared.failed(self.clients[local].index, &format!("connect: {e}"));
                }
            }
        }
    }

    fn heartbeats_due(&mut self, now: Instant) {
        while let Some(&(due, local)) = self.heartbeats.front() {
            if due > now {
                return;
            }
            self.heartbeats.pop_front();
            let Some(mut c) = self.conns[local].take() else { continue };
            put_frame(&mut c.out, 0x1, br#"[null,"hb","phoenix","heartbeat",{}]"#);
            match flush(&mut c) {
                Ok(()) => {
                    self.conns[local] = Some(c);
                    self.heartbeats.push_back((due + HEARTBEAT, local));
                }
                Err(end) => self.finish(c, end),
            }
        }
    }

    /// Handles readiness of one connection.
    fn drive(&mut self, local: usize, readable: bool, writable: bool) {
        let Some(mut c) = self.conns.get_mut(local).and_then(Option::take) else { return };
        match self.step(&mut c, readable, writable).and_then(|()| flush(&mut c)) {
            Ok(()) => self.conns[local] = Some(c),
            Err(end) => self.finish(c, end),
        }
    }

    fn step(&mut self, c: &mut Conn, readable: bool, writable: bool) -> Result<(), End> {
        if let State::Connecting = c.state {
            if let Some(e) = c.stream.take_error().map_err(|e| End::Failed(format!("connect: {e}")))? {
                return Err(End::Failed(format!("connect: {e}")));
            }
            match c.stream.peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(End::Failed(format!("connect: {e}"))),
            }
            let _ = c.stream.set_nodelay(true);
            let client = &self.clients[c.local];
            let path = match self.proto {
                Proto::Careplane => format!("/realtime/v1/websocket?apikey={}&vsn=2.0.0", client.jwt),
                Proto::SocketIo => "/socket.io/?EIO=4&transport=websocket".to_owned(),
            };
            let key = {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>())
            };
            c.accept = accept_of(&key);
            c.out.extend_from_slice(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    self.host
                )
                .as_bytes(),
            );
            c.state = State::Handshake;
        }
        if writable {
            flush(c)?;
        }
        if readable {
            self.read(c)?;
        }
        Ok(())
    }

    /// Reads until the socket is drained. mio's readiness is edge-triggered; a read shorter than
    /// the buffer took everything the socket held, and any byte arriving later raises a new
    /// edge (tokio clears readiness on a short read for the same reason), so no read is wasted
    /// on EAGAIN in the common case of one frame per wake-up.
    fn read(&mut self, c: &mut Conn) -> Result<(), End> {
        loop {
            let n = match c.stream.read(&mut self.read_buf) {
                Ok(0) => return Err(self.ended_by_peer(c, "connection ended")),
                Ok(n) => n,
                Err(e) if would_block(&e) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.ended_by_peer(c, &format!("socket error: {e}"))),
            };
            let at = Instant::now();
            self.bytes += n as u64;
            let buf = std::mem::take(&mut self.read_buf);
            let r = if c.pending.is_empty() {
                self.consume(c, &buf[..n], at).map(|used| {
                    if used < n {
                        c.pending.extend_from_slice(&buf[used..n]);
                    }
                })
            } else {
                let mut pending = std::mem::take(&mut c.pending);
                pending.extend_from_slice(&buf[..n]);
                self.consume(c, &pending, at).map(|used| {
                    pending.drain(..used);
                    c.pending = pending;
                })
            };
            self.read_buf = buf;
            r?;
            if n < self.read_buf.len() {
                return Ok(());
            }
        }
    }

    fn ended_by_peer(&self, c: &Conn, why: &str) -> End {
        match c.state {
            State::Open => End::Closed(why.to_owned()),
            _ => End::Failed(format!("before the websocket opened: {why}")),
        }
    }

    /// Uses what it can of `data` (the handshake response, then whole frames); returns how many
    /// bytes it used (the rest is an incomplete frame, kept for the next read).
    fn consume(&mut self, c: &mut Conn, data: &[u8], at: Instant) -> Result<usize, End> {
        let mut pos = 0;
        if let State::Handshake = c.state {
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                if data.len() > 16 << 10 {
                    return Err(End::Failed("handshake response too long".into()));
                }
                return Ok(0);
            };
            check_upgrade(&data[..end], &c.accept).map_err(End::Failed)?;
            pos = end + 4;
            self.opened(c);
        }
        while let Some((b0, header, len)) = frame_header(&data[pos..]).map_err(|e| End::Closed(format!("protocol error: {e}")))? {
            if data.len() - pos < header + len {
                break;
            }
            let payload = &data[pos + header..pos + header + len];
            pos += header + len;
            self.frames += 1;
            self.frame(c, b0, payload, at)?;
        }
        Ok(pos)
    }

    /// The websocket is open: give back the connecting place after the hold, and join.
    fn opened(&mut self, c: &mut Conn) {
        c.state = State::Open;
        let now = Instant::now();
        if c.holds_place {
            c.holds_place = false;
            self.releases.push_back(now + CONNECT_HOLD);
        }
        if self.proto == Proto::Careplane {
            let user = self.clients[c.local].user;
            for (n, topic) in [format!("user:{user}"), "dispatch".to_owned()].iter().enumerate() {
                let r = (n + 1).to_string();
                let join = json!([r, r, format!("realtime:{topic}"), "phx_join", {"config": {"private": true, "broadcast": {"self": false, "ack": false}}}]);
                put_frame(&mut c.out, 0x1, join.to_string().as_bytes());
            }
            self.heartbeats.push_back((now + HEARTBEAT, c.local));
        }
    }

    fn frame(&mut self, c: &mut Conn, b0: u8, payload: &[u8], at: Instant) -> Result<(), End> {
        let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0f);
        if opcode >= 0x8 && (!fin || payload.len() > 125) {
            return Err(End::Closed("protocol error: fragmented or oversized control frame".into()));
        }
        match opcode {
            0x1 | 0x2 if c.fragment.is_some() => Err(End::Closed("protocol error: a new message inside a fragmented one".into())),
            0x1 | 0x2 if fin => self.message(c, opcode, payload, at),
            0x1 | 0x2 => {
                c.fragment = Some((opcode, payload.to_vec()));
                Ok(())
            }
            0x0 => {
                let Some((_, so_far)) = c.fragment.as_mut() else {
                    return Err(End::Closed("protocol error: continuation without a message".into()));
                };
                if so_far.len() + payload.len() > MAX_MESSAGE {
                    return Err(End::Closed("protocol error: message too long".into()));
                }
                so_far.extend_from_slice(payload);
                if fin {
                    let (opcode, whole) = c.fragment.take().unwrap();
                    self.message(c, opcode, &whole, at)?;
                }
                Ok(())
            }
            0x8 => {
                // Answer the close (echoing its code), then end.
                let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                put_frame(&mut c.out, 0x8, &payload[..payload.len().min(2)]);
                let _ = flush(c);
                Err(End::Closed(match code {
                    Some(code) => format!("closed by the server: {code} {}", String::from_utf8_lossy(&payload[2..])),
                    None => "closed by the server (no reason)".into(),
                }))
            }
            0x9 => {
                put_frame(&mut c.out, 0xA, payload);
                Ok(())
            }
            0xA => Ok(()),
            _ => Err(End::Closed(format!("protocol error: opcode {opcode}"))),
        }
    }

    /// A whole message.
    fn message(&mut self, c: &mut Conn, opcode: u8, payload: &[u8], at: Instant) -> Result<(), End> {
        let index = self.clients[c.local].index;
        match (self.proto, opcode) {
            // vsn 2.0.0 broadcast: a binary frame of kind 4.
            (Proto::Careplane, 0x2) => {
                if payload.first() == Some(&4) {
                    self.arrived(payload, at);
                }
            }
            (Proto::Careplane, _) => {
                let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
                if v[3] == "phx_reply" && (v[1] == "1" || v[1] == "2") {
                    if v[4]["status"] != "ok" {
                        return Err(End::Failed(format!("join refused: {v}")));
                    }
                    c.joins_ok += 1;
                    if c.joins_ok == 2 {
                        self.shared.mark_joined(index);
                    }
                } else if v[3] == "broadcast" {
                    self.arrived(payload, at);
                } else if v[3] == "phx_close" || v[3] == "phx_error" || (v[3] == "system" && v[4]["status"] != "ok") {
                    // The reason, not the topic: one key per kind of ending.
                    let why = v[4].get("message").or_else(|| v[4].get("reason")).cloned().unwrap_or(Value::Null);
                    self.shared.closed_because(format!("{}: {why}", v[3].as_str().unwrap_or("?")));
                }
            }
            (Proto::SocketIo, 0x1) => {
                if let Some(body) = payload.strip_prefix(b"42") {
                    self.arrived(body, at);
                } else if payload == b"2" {
                    put_frame(&mut c.out, 0x1, b"3");
                } else if payload.starts_with(b"40") {
                    self.shared.mark_joined(index);
                } else if payload.starts_with(b"0") {
                    let auth = format!("40{}", json!({"token": self.clients[c.local].jwt}));
                    put_frame(&mut c.out, 0x1, auth.as_bytes());
                } else if payload.starts_with(b"44") {
                    return Err(End::Failed(format!("socket.io refused: {}", String::from_utf8_lossy(payload))));
                } else if payload.starts_with(b"1") || payload.starts_with(b"41") {
                    return Err(End::Closed(format!("closed by the server: {}", String::from_utf8_lossy(payload))));
                }
            }
            (Proto::SocketIo, _) => {}
        }
        Ok(())
    }

    fn arrived(&mut self, frame: &[u8], at: Instant) {
        if let Some(seq) = seq_in(frame) {
            if let Some(n) = self.shared.received.get(seq as usize) {
                n.fetch_add(1, Ordering::Relaxed);
                self.arrivals.push((seq as u32, at));
            }
        }
    }

    fn finish(&mut self, mut c: Conn, end: End) {
        if c.holds_place {
            self.shared.connecting.fetch_sub(1, Ordering::Relaxed);
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        let index = self.clients[c.local].index;
        match end {
            End::Closed(_) if self.shared.stop.load(Ordering::Relaxed) => {}
            End::Closed(reason) => self.shared.closed_because(reason),
            End::Failed(why) => self.shared.failed(index, &why),
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
    // The orchestration (set-up, sampling, the drain, the counting) sleeps most of the time:
    // one thread. The producer and the listener run on a runtime of their own; the clients on
    // LOADGEN_THREADS plain threads, each an epoll loop.
    let main_rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let producer_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("producer").enable_all().build()?;
    let result = main_rt.block_on(run(producer_rt.handle().clone()))?;
    println!("{result}");
    // Sockets and tasks are not torn down one by one: the process ends here.
    std::process::exit(0);
}

/// Nanoseconds on a CPU of the thread `tid` of this process (`/proc/.../schedstat`).
fn thread_cpu_ns(tid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
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
    let shared = Shared::new(capacity, clients);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (rss_idle, _) = proc_sample(pid);

    // The clients: LOADGEN_THREADS epoll loops, each with its share of the users.
    let url = reqwest::Url::parse(&base)?;
    let host = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port_or_known_default().unwrap_or(80));
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&host)?.next().ok_or_else(|| anyhow::anyhow!("{host} does not resolve"))?;
    let proto = if target == "careplane" { Proto::Careplane } else { Proto::SocketIo };
    let loops: usize = env_num::<usize>("LOADGEN_THREADS", "1")?.clamp(1, clients);
    // Each loop's arrivals are allocated up front (no reallocation in the middle of a burst).
    let events_total = rate * (warmup + seconds) + rate;
    let per_loop = clients.div_ceil(loops);
    let expected_frames = ((events_total / shared_every + 1) as usize * per_loop + events_total as usize / loops + 1024).min(64 << 20);
    let connect_started = Instant::now();
    let mut loop_threads = Vec::with_capacity(loops);
    for (n, chunk) in users.chunks(per_loop).enumerate() {
        let chunk: Vec<Client> = chunk
            .iter()
            .enumerate()
            .map(|(k, user)| Client { index: n * per_loop + k, user: *user, jwt: token(&secret, *user, "dispatcher") })
            .collect();
        let l = ClientLoop::new(proto, addr, host.clone(), shared.clone(), chunk, expected_frames)?;
        loop_threads.push(std::thread::Builder::new().name(format!("clients-{n}")).spawn(move || l.run())?);
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

    // The producer's own pool, opened on its runtime (its sockets are driven there, not by the
    // orchestration's thread).
    let db = {
        let url = env("DATABASE_URL", "");
        producer_rt.spawn(async move { sqlx::postgres::PgPoolOptions::new().max_connections(16).connect(&url).await }).await??
    };

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
    let loop_tids = shared.loop_tids.lock().unwrap().clone();
    let loops_cpu0: u64 = loop_tids.iter().map(|t| thread_cpu_ns(*t)).sum();
    let (frames0, bytes0) = (shared.frames.load(Ordering::Relaxed), shared.bytes.load(Ordering::Relaxed));
    let load_start = loadavg();
    let t0 = Instant::now();
    let mut rss_peak = 0;
    while t0.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss_peak = rss_peak.max(proc_sample(pid).0);
    }
    let (_, cpu1) = proc_sample(pid);
    let (_, self1) = proc_sample(std::process::id());
    let loops_cpu1: u64 = loop_tids.iter().map(|t| thread_cpu_ns(*t)).sum();
    let (frames1, bytes1) = (shared.frames.load(Ordering::Relaxed), shared.bytes.load(Ordering::Relaxed));
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
    shared.stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    // Each loop sees the flag within one poll timeout (50 ms).
    let mut arrivals = Vec::new();
    for t in loop_threads {
        arrivals.extend(t.join().map_err(|_| anyhow::anyhow!("a client loop panicked"))?.arrivals);
    }
    let _ = listener.await;

    let ticks_per_sec = 100.0; // USER_HZ on Linux
    let cpu_percent = (cpu1 - cpu0) as f64 / ticks_per_sec / measured * 100.0;
    let loadgen_cpu_percent = (self1 - self0) as f64 / ticks_per_sec / measured * 100.0;
    // The generator's cost per frame received in the window: the whole process (clients,
    // producer, orchestration; 10 ms ticks) and the client loops alone (nanoseconds).
    let frames_window = frames1 - frames0;
    let per_frame_us = |cpu_seconds: f64| if frames_window == 0 { f64::NAN } else { cpu_seconds * 1e6 / frames_window as f64 };
    let loadgen_cpu_us_per_frame = per_frame_us((self1 - self0) as f64 / ticks_per_sec);
    let loops_cpu_seconds = loops_cpu1.saturating_sub(loops_cpu0) as f64 / 1e9;
    let client_loops_cpu_us_per_frame = per_frame_us(loops_cpu_seconds);

    // Per event: what was expected and what arrived; latencies from COMMIT returning.
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
        "cpu_percent": cpu_percent, "loadgen_cpu_percent": loadgen_cpu_percent, "loadgen_threads": loops,
        "loadgen_cpu_us_per_frame": loadgen_cpu_us_per_frame,
        "client_loops_cpu_percent": loops_cpu_seconds / measured * 100.0, "client_loops_cpu_us_per_frame": client_loops_cpu_us_per_frame,
        "client_loops_sampled": loop_tids.len(),
        "frames_received_window": frames_window, "bytes_received_window": bytes1 - bytes0,
        "frames_received_total": shared.frames.load(Ordering::Relaxed),
        "loadavg_start": load_start, "loadavg_end": load_end, "measured_seconds": measured,
        "failures": shared.failures.load(Ordering::Relaxed),
    }))
}

/// The client loop against a real websocket server (tungstenite's, on a thread): the handshake
/// and its accept key, masking (tungstenite refuses an unmasked client frame), every length
/// encoding, fragments with a ping between them, frames split across reads (in the header and
/// in the payload) and several frames in one read, ping → pong, Engine.IO ping → pong, close.
#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::{
        self,
        protocol::frame::coding::{Data, OpCode},
        protocol::frame::Frame,
        protocol::{frame::coding::CloseCode, CloseFrame},
        Message,
    };

    fn shared(clients: usize) -> Arc<Shared> {
        Shared::new(64, clients)
    }

    fn event(seq: u64, padding: usize) -> String {
        format!(r#"42["broadcast",{{"pad":"{}","payload":{{"seq":{seq}}}}}]"#, "x".repeat(padding))
    }

    /// A server text frame's raw bytes (unmasked, 7-bit length).
    fn raw_text(s: &str) -> Vec<u8> {
        assert!(s.len() < 126);
        let mut v = vec![0x81, s.len() as u8];
        v.extend_from_slice(s.as_bytes());
        v
    }

    fn run_loop(proto: Proto, shared: Arc<Shared>, addr: std::net::SocketAddr) -> std::thread::JoinHandle<LoopResult> {
        let user = uuid::Uuid::new_v4();
        let client = Client { index: 0, user, jwt: "the-token".into() };
        let l = ClientLoop::new(proto, addr, addr.to_string(), shared, vec![client], 16).unwrap();
        std::thread::spawn(move || l.run())
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn socketio_client_walks_every_frame_shape() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(stream).unwrap();
            ws.send(Message::text(r#"0{"sid":"s","pingInterval":25000,"pingTimeout":20000}"#)).unwrap();
            // The auth packet, masked (tungstenite's server refuses an unmasked frame).
            let auth = ws.read().unwrap();
            assert_eq!(auth, Message::text(r#"40{"token":"the-token"}"#));
            ws.send(Message::text(r#"40{"sid":"x"}"#)).unwrap();
            ws.send(Message::text("2")).unwrap();
            assert_eq!(ws.read().unwrap(), Message::text("3"));
            ws.send(Message::Ping(b"abc".to_vec().into())).unwrap();
            assert_eq!(ws.read().unwrap(), Message::Pong(b"abc".to_vec().into()));
            // 7-bit, 16-bit and 64-bit lengths (the last spans more than one 64 KiB read).
            ws.send(Message::text(event(1, 0))).unwrap();
            ws.send(Message::text(event(2, 300))).unwrap();
            ws.send(Message::text(event(3, 100_000))).unwrap();
            // A fragmented message with a ping between its fragments.
            let whole = event(4, 10);
            let (a, rest) = whole.split_at(5);
            let (b, c) = rest.split_at(7);
            ws.write(Message::Frame(Frame::message(a.as_bytes().to_vec(), OpCode::Data(Data::Text), false))).unwrap();
            ws.write(Message::Frame(Frame::message(b.as_bytes().to_vec(), OpCode::Data(Data::Continue), false))).unwrap();
            ws.write(Message::Ping(b"mid".to_vec().into())).unwrap();
            ws.write(Message::Frame(Frame::message(c.as_bytes().to_vec(), OpCode::Data(Data::Continue), true))).unwrap();
            ws.flush().unwrap();
            // Raw bytes: a frame split inside its header, one split inside its payload, then
            // two frames in one write.
            let (f5, f6) = (raw_text(&event(5, 0)), raw_text(&event(6, 0)));
            let mut two = raw_text(&event(7, 0));
            two.extend(raw_text(&event(8, 0)));
            for (bytes, at) in [(&f5, 1), (&f6, 20), (&two, two.len())] {
                let s = ws.get_mut();
                s.write_all(&bytes[..at]).unwrap();
                s.flush().unwrap();
                std::thread::sleep(Duration::from_millis(50));
                s.write_all(&bytes[at..]).unwrap();
                s.flush().unwrap();
            }
            ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).unwrap();
            let mut pongs = Vec::new();
            loop {
                match ws.read() {
                    Ok(Message::Pong(p)) => pongs.push(p.to_vec()),
                    Ok(Message::Close(f)) => {
                        assert_eq!(f.map(|f| f.code), Some(CloseCode::Normal));
                        break;
                    }
                    Ok(m) => panic!("unexpected {m:?}"),
                    Err(tungstenite::Error::ConnectionClosed) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(pongs, vec![b"mid".to_vec()]);
        });
        let sh = shared(1);
        let client = run_loop(Proto::SocketIo, sh.clone(), addr);
        server.join().unwrap();
        wait_for("the close", || !sh.closed.lock().unwrap().is_empty());
        sh.stop.store(true, Ordering::Relaxed);
        let mut seqs: Vec<u32> = client.join().unwrap().arrivals.iter().map(|(s, _)| *s).collect();
        seqs.sort();
        assert_eq!(seqs, (1..=8).collect::<Vec<u32>>());
        assert!(sh.joined[0].load(Ordering::Relaxed));
        assert_eq!(sh.failures.load(Ordering::Relaxed), 0);
        assert_eq!(*sh.closed.lock().unwrap(), BTreeMap::from([("closed by the server: 1000 bye".to_owned(), 1)]));
        // 0, 40, 2, ping, 3 events, 3 fragments + ping, 4 raw, close.
        assert_eq!(sh.frames.load(Ordering::Relaxed), 1 + 1 + 1 + 1 + 3 + 4 + 4 + 1);
    }

    #[test]
    fn careplane_client_joins_and_counts_binary_broadcasts() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut ws = tungstenite::accept(stream).unwrap();
            for r in ["1", "2"] {
                let Message::Text(t) = ws.read().unwrap() else { panic!("join not text") };
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!((v[0].as_str(), v[1].as_str(), v[3].as_str()), (Some(r), Some(r), Some("phx_join")));
                let reply = json!([r, r, v[2], "phx_reply", {"status": "ok", "response": {}}]);
                ws.send(Message::text(reply.to_string())).unwrap();
            }
            // A kind-4 binary broadcast, a kind-3 frame (not a broadcast: ignored), a JSON one.
            let mut b = vec![4u8, 17, 11, 0, 1];
            b.extend_from_slice(b"realtime:dispatchbench:event{\"seq\":9}");
            ws.send(Message::binary(b)).unwrap();
            ws.send(Message::binary(b"\x03{\"seq\":10}".to_vec())).unwrap();
            let j = json!([null, null, "realtime:dispatch", "broadcast", {"event": "e", "payload": {"seq": 11}, "type": "broadcast"}]);
            ws.send(Message::text(j.to_string())).unwrap();
            ws.send(Message::Close(None)).unwrap();
            while ws.read().is_ok() {}
        });
        let sh = shared(1);
        let client = run_loop(Proto::Careplane, sh.clone(), addr);
        server.join().unwrap();
        wait_for("the close", || !sh.closed.lock().unwrap().is_empty());
        sh.stop.store(true, Ordering::Relaxed);
        let seqs: Vec<u32> = client.join().unwrap().arrivals.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, vec![9, 11]);
        assert!(sh.joined[0].load(Ordering::Relaxed));
        assert_eq!(sh.received[10].load(Ordering::Relaxed), 0);
        assert_eq!(*sh.closed.lock().unwrap(), BTreeMap::from([("closed by the server (no reason)".to_owned(), 1)]));
    }

    #[test]
    fn a_refused_handshake_is_a_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).unwrap();
            stream.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let sh = shared(1);
        let client = run_loop(Proto::Careplane, sh.clone(), addr);
        wait_for("the failure", || sh.failures.load(Ordering::Relaxed) == 1);
        server.join().unwrap();
        sh.stop.store(true, Ordering::Relaxed);
        client.join().unwrap();
        assert!(!sh.joined[0].load(Ordering::Relaxed));
        assert!(sh.closed.lock().unwrap().is_empty());
        // The place it held while connecting is given back.
        assert_eq!(sh.connecting.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn client_frames_are_masked_with_every_length() {
        for n in [0usize, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let mut out = Vec::new();
            put_frame(&mut out, 0x2, &payload);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0x80, "mask bit");
            let (header, len) = match out[1] & 0x7f {
                126 => (4, u16::from_be_bytes([out[2], out[3]]) as usize),
                127 => (10, u64::from_be_bytes(out[2..10].try_into().unwrap()) as usize),
                l => (2, l as usize),
            };
            assert_eq!(len, n);
            assert_eq!(out.len(), header + 4 + n);
            let mask = &out[header..header + 4];
            let unmasked: Vec<u8> = out[header + 4..].iter().enumerate().map(|(i, b)| b ^ mask[i & 3]).collect();
            assert_eq!(unmasked, payload);
        }
    }
}

/// Many sockets through one loop, paced connects included: every frame of every burst arrives.
/// The server writes each burst as fast as it can, so the loop runs saturated; it prints the
/// loop's CPU per frame and each burst's spread. GEN_BURST_CLIENTS / GEN_BURSTS size it (300 × 5
/// by default; 10,000 × 20 to see a full-size burst).
#[cfg(test)]
mod burst {
    use super::*;

    #[test]
    fn every_frame_of_every_burst_arrives() {
        let n: usize = std::env::var("GEN_BURST_CLIENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
        let bursts: u32 = std::env::var("GEN_BURSTS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sh = Shared::new(bursts as usize, n);
        let server = {
            let sh = sh.clone();
            std::thread::spawn(move || {
                let mut socks = Vec::with_capacity(n);
                for _ in 0..n {
                    let (mut s, _) = listener.accept().unwrap();
                    let mut head = Vec::new();
                    let mut buf = [0u8; 2048];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        let k = s.read(&mut buf).unwrap();
                        assert!(k > 0);
                        head.extend_from_slice(&buf[..k]);
                    }
                    let text = String::from_utf8(head).unwrap();
                    let key = text.lines().find_map(|l| l.strip_prefix("Sec-WebSocket-Key: ")).unwrap().trim().to_owned();
                    let mut out = format!("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n", accept_of(&key)).into_bytes();
                    out.extend_from_slice(&[0x81, 3, b'0', b'{', b'}', 0x81, 4, b'4', b'0', b'{', b'}']);
                    s.write_all(&out).unwrap();
                    socks.push(s);
                }
                while (sh.joined_count.load(Ordering::Relaxed) as usize) < n {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let cpu0 = sh.loop_tids.lock().unwrap().iter().map(|t| thread_cpu_ns(*t)).sum::<u64>();
                let frames0 = sh.frames.load(Ordering::Relaxed);
                let mut sent = Vec::new();
                for b in 0..bursts {
                    std::thread::sleep(Duration::from_millis(200));
                    let body = format!(r#"42["broadcast",{{"event":"bench:event","payload":{{"seq":{b}}}}}]"#);
                    let mut frame = vec![0x81, body.len() as u8];
                    frame.extend_from_slice(body.as_bytes());
                    sent.push(Instant::now());
                    for s in socks.iter_mut() {
                        s.write_all(&frame).unwrap();
                    }
                }
                (socks, sent, cpu0, frames0)
            })
        };
        let clients = (0..n).map(|i| Client { index: i, user: uuid::Uuid::new_v4(), jwt: "t".into() }).collect();
        let l = ClientLoop::new(Proto::SocketIo, addr, addr.to_string(), sh.clone(), clients, n * bursts as usize + 16).unwrap();
        let client = std::thread::spawn(move || l.run());
        let (_socks, sent, cpu0, frames0) = server.join().unwrap();
        let until = Instant::now() + Duration::from_secs(60);
        while (0..bursts as usize).any(|b| (sh.received[b].load(Ordering::Relaxed) as usize) < n) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
        }
        let cpu1 = sh.loop_tids.lock().unwrap().iter().map(|t| thread_cpu_ns(*t)).sum::<u64>();
        let frames1 = sh.frames.load(Ordering::Relaxed);
        sh.stop.store(true, Ordering::Relaxed);
        let arrivals = client.join().unwrap().arrivals;
        for b in 0..bursts as usize {
            assert_eq!(sh.received[b].load(Ordering::Relaxed) as usize, n, "burst {b}");
        }
        assert_eq!(sh.failures.load(Ordering::Relaxed), 0);
        assert!(sh.closed.lock().unwrap().is_empty());
        assert_eq!(sh.connecting.load(Ordering::Relaxed), 0, "every connecting place given back");
        let mut spread = Vec::new();
        for (b, at) in sent.iter().enumerate() {
            let last = arrivals.iter().filter(|(s, _)| *s as usize == b).map(|(_, t)| *t).max().unwrap();
            spread.push(ms(last.saturating_duration_since(*at)));
        }
        eprintln!(
            "{n} sockets × {bursts} bursts: {} frames, the loop's CPU {:.2} µs per frame; first write of a burst → its last arrival (ms): {spread:.1?}",
            frames1 - frames0,
            (cpu1 - cpu0) as f64 / 1e3 / (frames1 - frames0).max(1) as f64
        );
    }
}
