//! The relay's websocket transport (RFC 6455, server side), built for many mostly idle sockets
//! and for one frame fanned out to thousands of them.
//!
//! The frame codec is tungstenite's ([`FrameHeader::parse`] / [`FrameHeader::format`], its
//! opcodes and close codes); what is written here is the I/O around it, which a general
//! websocket library cannot give this relay:
//! - **Writes without the socket's task.** A socket's write half sits in its [`Writer`], shared
//!   with the hub. While the socket's task is parked (nothing queued, nothing unwritten), the
//!   hub writes a frame straight to the socket from the fan-out loop: one `write` system call
//!   per socket, no task woken. Server frames are unmasked, so the bytes of a broadcast frame are
//!   the same for every socket and are encoded once. Whatever the kernel does not take at once
//!   is kept (one frame at most) and the task is woken to finish it; frames that come meanwhile
//!   wait in the socket's bounded queue, in order.
//! - **No buffers held while idle.** A read takes what the kernel has into a stack buffer and
//!   keeps bytes on the heap only while a frame is incomplete; nothing is buffered for writing
//!   once the kernel has it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::io::Cursor;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use axum::body::{Body, Bytes};
use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf, ReadHalf, WriteHalf};
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

use super::protocol::Wire;
use crate::error::AppError;

/// The upgraded connection.
pub type Io = TokioIo<hyper::upgrade::Upgraded>;

/// How much one read takes from the kernel at most (on the stack, never kept).
const READ_CHUNK: usize = 4096;

// The upgrade ------------------------------------------------------------------------------------

/// A websocket handshake request (`GET` with `Upgrade: websocket`, version 13 and a key), as
/// an extractor; refused with 400 / 405 / 426 and the error envelope otherwise.
pub struct Upgrade {
    on_upgrade: hyper::upgrade::OnUpgrade,
    accept: HeaderValue,
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Response> {
        let refuse = |status, code, message: &str| AppError::status(status, code, message).into_response();
        if parts.method != Method::GET {
            return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "a websocket is opened with GET"));
        }
        if !header_has_token(&parts.headers, header::CONNECTION, "upgrade") || !header_has_token(&parts.headers, header::UPGRADE, "websocket") {
            return Err(refuse(StatusCode::UPGRADE_REQUIRED, "websocket_required", "this endpoint speaks websocket only (Connection: upgrade, Upgrade: websocket)"));
        }
        if parts.headers.get(header::SEC_WEBSOCKET_VERSION).map(HeaderValue::as_bytes) != Some(b"13") {
            return Err(refuse(StatusCode::BAD_REQUEST, "websocket_version", "Sec-WebSocket-Version must be 13"));
        }
        let Some(key) = parts.headers.get(header::SEC_WEBSOCKET_KEY) else {
            return Err(refuse(StatusCode::BAD_REQUEST, "websocket_key", "Sec-WebSocket-Key is missing"));
        };
        let accept = HeaderValue::from_str(&tungstenite::handshake::derive_accept_key(key.as_bytes())).expect("base64 is a header value");
        let Some(on_upgrade) = parts.extensions.remove::<hyper::upgrade::OnUpgrade>() else {
            return Err(refuse(StatusCode::UPGRADE_REQUIRED, "websocket_required", "this connection cannot be upgraded"));
        };
        Ok(Upgrade { on_upgrade, accept })
    }
}

impl Upgrade {
    /// Answers 101 and runs `serve` on the connection once the client has it.
    pub fn on_upgrade<F, Fut>(self, serve: F) -> Response
    where
        F: FnOnce(Io) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => serve(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!(error = %e, "realtime: the websocket upgrade did not complete"),
            }
        });
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept);
        response
    }
}

// Frames out -------------------------------------------------------------------------------------

pub const PONG: OpCode = OpCode::Control(Control::Pong);

/// One whole server frame (final, unmasked): header and payload in one buffer.
pub fn encode(opcode: OpCode, payload: &[u8]) -> Bytes {
    let header = FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode, mask: None };
    let mut out = Vec::with_capacity(header.len(payload.len() as u64) + payload.len());
    header.format(payload.len() as u64, &mut out).expect("writing to a Vec cannot fail");
    out.extend_from_slice(payload);
    Bytes::from(out)
}

/// The frame carrying `wire`.
pub fn frame(wire: &Wire) -> Bytes {
    match wire {
        Wire::Text(t) => encode(OpCode::Data(Data::Text), t.as_bytes()),
        Wire::Binary(b) => encode(OpCode::Data(Data::Binary), b),
    }
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control frame allows).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut cut = reason.len().min(123);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    encode(OpCode::Control(Control::Close), &payload)
}

/// What a direct write did.
pub enum Direct {
    /// The kernel took the whole frame.
    Written,
    /// The socket's task must write the rest (the task was woken by the caller's contract:
    /// see [`Writer::try_direct`]).
    Kept,
    /// The socket is gone.
    Failed,
}

struct WriteState<W> {
    /// `None` before the connection is attached (unit tests) and once the socket has closed.
    io: Option<W>,
    /// Bytes the kernel has not taken yet, oldest first.
    pending: VecDeque<Bytes>,
    /// The socket's task is parked with nothing queued and nothing pending: others may write.
    direct: bool,
}

/// The write side of one socket, shared by its task and the hub (generic over the stream for
/// tests; the relay's is the upgraded connection's write half).
pub struct Writer<W = WriteHalf<Io>> {
    state: Mutex<WriteState<W>>,
}

impl<W> Default for Writer<W> {
    fn default() -> Self {
        Writer { state: Mutex::new(WriteState { io: None, pending: VecDeque::new(), direct: false }) }
    }
}

/// Writes as much of `pending` as the kernel takes now; `Ready(Ok)` once all of it is written.
fn poll_pending<W: AsyncWrite + Unpin>(st: &mut WriteState<W>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
    let WriteState { io, pending, .. } = st;
    let Some(io) = io.as_mut() else { return Poll::Ready(Err(std::io::ErrorKind::NotConnected.into())) };
    while let Some(front) = pending.front_mut() {
        match Pin::new(&mut *io).poll_write(cx, front) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) if n == front.len() => {
                pending.pop_front();
            }
            Poll::Ready(Ok(n)) => {
                let rest = front.split_off(n);
                *front = rest;
            }
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
    // Written out: nothing stays allocated for the socket.
    *pending = VecDeque::new();
    Poll::Ready(Ok(()))
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    /// Attaches the connection's write half.
    pub fn attach(&self, io: W) {
        self.state.lock().expect("writer lock").io = Some(io);
    }

    /// Drops the write half (the connection closes once the task's read half goes too).
    pub fn detach(&self) {
        let mut st = self.state.lock().expect("writer lock");
        st.io = None;
        st.pending = VecDeque::new();
        st.direct = false;
    }

    /// Writes `frame` now if the socket's task is parked with nothing queued or pending;
    /// `None` when it is not (the caller queues the frame for the task instead). On
    /// [`Direct::Kept`] the caller must wake the task, which writes the rest first.
    pub fn try_direct(&self, frame: &Bytes) -> Option<Direct> {
        let mut st = self.state.lock().expect("writer lock");
        if !st.direct {
            return None;
        }
        let Some(io) = st.io.as_mut() else { return Some(Direct::Failed) };
        // Straight from the shared frame: nothing is allocated unless the kernel leaves some.
        let mut cx = Context::from_waker(Waker::noop());
        let mut written = 0;
        let outcome = loop {
            match Pin::new(&mut *io).poll_write(&mut cx, &frame[written..]) {
                Poll::Ready(Ok(0)) => break Direct::Failed,
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if written == frame.len() {
                        break Direct::Written;
                    }
                }
                // The rest is the task's to write, with its own waker: until then nobody else
                // writes (the task left `direct`), so the no-op waker registered here is
                // replaced before anyone waits on it.
                Poll::Pending => break Direct::Kept,
                Poll::Ready(Err(_)) => break Direct::Failed,
            }
        };
        match outcome {
            Direct::Written => {}
            Direct::Kept => {
                st.direct = false;
                st.pending.push_back(frame.slice(written..));
            }
            Direct::Failed => st.direct = false,
        }
        Some(outcome)
    }

    /// The task parks: others may write directly until [`busy`](Self::busy). Refused (`false`)
    /// while bytes are pending.
    pub fn park(&self) -> bool {
        let mut st = self.state.lock().expect("writer lock");
        st.direct = st.pending.is_empty() && st.io.is_some();
        st.direct
    }

    /// The task runs again: every write goes through it until it parks.
    pub fn busy(&self) {
        self.state.lock().expect("writer lock").direct = false;
    }

    /// Whether bytes wait to be written (then the task must flush before parking).
    pub fn has_pending(&self) -> bool {
        !self.state.lock().expect("writer lock").pending.is_empty()
    }

    /// Writes `frame` after whatever is pending as far as the kernel takes it now, without
    /// waiting; what is left stays pending (the task flushes it before it parks). Only the
    /// socket's task calls this (while busy).
    pub fn write_now(&self, frame: Bytes) -> std::io::Result<()> {
        let mut st = self.state.lock().expect("writer lock");
        st.pending.push_back(frame);
        // The no-op waker is replaced by the task's own when it flushes what is left.
        match poll_pending(&mut st, &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => Ok(()),
        }
    }

    /// Writes `frame` after whatever is pending, waiting as long as the kernel needs. Only the
    /// socket's task calls this (while busy).
    pub async fn send(&self, frame: Bytes) -> std::io::Result<()> {
        self.state.lock().expect("writer lock").pending.push_back(frame);
        self.flush().await
    }

    /// Waits until everything pending is written.
    pub async fn flush(&self) -> std::io::Result<()> {
        poll_fn(|cx| poll_pending(&mut self.state.lock().expect("writer lock"), cx)).await
    }
}

// Frames in --------------------------------------------------------------------------------------

/// A message from the client.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Text(String),
    Binary(Bytes),
    /// A ping: answer with a pong carrying the same bytes.
    Ping(Bytes),
    /// The client closes (its code, if it sent one).
    Close(Option<u16>),
}

/// Why reading stopped: the close code and reason to send, or `None` when the connection is
/// already gone.
#[derive(Debug, PartialEq)]
pub struct ReadError(pub Option<(u16, String)>);

fn protocol_error(code: CloseCode, reason: impl Into<String>) -> ReadError {
    ReadError(Some((code.into(), reason.into())))
}

/// The read side of one socket, owned by its task.
pub struct Reader<R = ReadHalf<Io>> {
    io: R,
    /// Bytes of an incomplete frame (empty and unallocated between frames).
    buf: Vec<u8>,
    /// A fragmented message being assembled: whether it is text, and its bytes so far.
    fragments: Option<(bool, Vec<u8>)>,
    max_message: usize,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// A reader refusing messages over `max_message` bytes (1009).
    pub fn new(io: R, max_message: usize) -> Self {
        Reader { io, buf: Vec::new(), fragments: None, max_message }
    }

    /// The next message. Cancel-safe: bytes read are kept in the reader until used.
    pub async fn next(&mut self) -> Result<Incoming, ReadError> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(message);
            }
            self.fill().await?;
        }
    }

    /// Reads what the kernel has (at least one byte) onto the end of `buf`.
    async fn fill(&mut self) -> Result<(), ReadError> {
        let Reader { io, buf, .. } = self;
        poll_fn(|cx| {
            let mut chunk = [0u8; READ_CHUNK];
            let mut rb = ReadBuf::new(&mut chunk);
            match Pin::new(&mut *io).poll_read(cx, &mut rb) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Err(_)) => Poll::Ready(Err(ReadError(None))),
                Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Err(ReadError(None))),
                Poll::Ready(Ok(())) => {
                    buf.extend_from_slice(rb.filled());
                    Poll::Ready(Ok(()))
                }
            }
        })
        .await
    }

    /// Takes one whole message out of `buf`, if there is one (control frames in between are
    /// returned as they come).
    fn parse(&mut self) -> Result<Option<Incoming>, ReadError> {
        loop {
            let mut cursor = Cursor::new(&self.buf[..]);
            let (header, len) = match FrameHeader::parse(&mut cursor) {
                Ok(Some(h)) => h,
                Ok(None) => return Ok(None),
                Err(e) => return Err(protocol_error(CloseCode::Protocol, format!("bad frame header: {e}"))),
            };
            let start = cursor.position() as usize;
            let assembled = self.fragments.as_ref().map_or(0, |(_, f)| f.len()) as u64;
            if len.saturating_add(assembled) > self.max_message as u64 {
                return Err(protocol_error(CloseCode::Size, format!("message over {} bytes", self.max_message)));
            }
            let len = len as usize;
            if self.buf.len() < start + len {
                self.buf.reserve_exact(start + len - self.buf.len());
                return Ok(None);
            }
            let Some(mask) = header.mask else {
                return Err(protocol_error(CloseCode::Protocol, "client frames must be masked"));
            };
            if header.rsv1 || header.rsv2 || header.rsv3 {
                return Err(protocol_error(CloseCode::Protocol, "no extension was negotiated"));
            }
            let mut payload = self.buf[start..start + len].to_vec();
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            self.buf.drain(..start + len);
            if self.buf.is_empty() {
                self.buf = Vec::new();
            }
            match header.opcode {
                OpCode::Control(c) => {
                    if !header.is_final || len > 125 {
                        return Err(protocol_error(CloseCode::Protocol, "control frames are single frames of at most 125 bytes"));
                    }
                    match c {
                        Control::Ping => return Ok(Some(Incoming::Ping(Bytes::from(payload)))),
                        Control::Pong => continue,
                        Control::Close => {
                            let code = (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                            return Ok(Some(Incoming::Close(code)));
                        }
                        Control::Reserved(_) => return Err(protocol_error(CloseCode::Protocol, "unknown control opcode")),
                    }
                }
                OpCode::Data(Data::Continue) => {
                    let Some((_, so_far)) = self.fragments.as_mut() else {
                        return Err(protocol_error(CloseCode::Protocol, "continuation frame without a message"));
                    };
                    so_far.extend_from_slice(&payload);
                    if header.is_final {
                        let (text, whole) = self.fragments.take().expect("checked above");
                        return message(text, whole).map(Some);
                    }
                }
                OpCode::Data(d @ (Data::Text | Data::Binary)) => {
                    if self.fragments.is_some() {
                        return Err(protocol_error(CloseCode::Protocol, "a new message began inside a fragmented one"));
                    }
                    let text = matches!(d, Data::Text);
                    if header.is_final {
                        return message(text, payload).map(Some);
                    }
                    self.fragments = Some((text, payload));
                }
                OpCode::Data(Data::Reserved(_)) => return Err(protocol_error(CloseCode::Protocol, "unknown data opcode")),
            }
        }
    }
}

fn message(text: bool, bytes: Vec<u8>) -> Result<Incoming, ReadError> {
    if !text {
        return Ok(Incoming::Binary(Bytes::from(bytes)));
    }
    String::from_utf8(bytes)
        .map(Incoming::Text)
        .map_err(|_| protocol_error(CloseCode::Invalid, "text message is not UTF-8"))
}

/// Splits an upgraded connection into its reader (for the task) and write half (for the
/// socket's [`Writer`]).
pub fn split(io: Io, max_message: usize) -> (Reader, WriteHalf<Io>) {
    let (r, w) = tokio::io::split(io);
    (Reader::new(r, max_message), w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;


    /// A client frame: masked with `mask`.
    fn client_frame(opcode: OpCode, fin: bool, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let header = FrameHeader { is_final: fin, rsv1: false, rsv2: false, rsv3: false, opcode, mask: Some(mask) };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        out
    }

    const TEXT: OpCode = OpCode::Data(Data::Text);
    const BINARY: OpCode = OpCode::Data(Data::Binary);
    const CONTINUE: OpCode = OpCode::Data(Data::Continue);
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<Incoming, ReadError>> {
        let (mut client, server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // Written in uneven pieces, so frames arrive split across reads.
            for piece in bytes.chunks(7) {
                if client.write_all(piece).await.is_err() {
                    break; // the reader stopped (a protocol error) and went away
                }
            }
        });
        let mut reader = Reader::new(server, max);
        let mut out = Vec::new();
        loop {
            let next = reader.next().await;
            let end = next.is_err();
            out.push(next);
            if end {
                break;
            }
        }
        drop(reader);
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn masked_messages_arrive_whole_across_reads_and_fragments() {
        let mut bytes = client_frame(TEXT, true, br#"[null,"1","phoenix","heartbeat",{}]"#, MASK);
        bytes.extend(client_frame(TEXT, false, "héllo ".as_bytes(), MASK));
        bytes.extend(client_frame(OpCode::Control(Control::Ping), true, b"p", MASK));
        bytes.extend(client_frame(CONTINUE, true, "wörld".as_bytes(), [1, 2, 3, 4]));
        let big = vec![0xab; 70_000]; // a 64-bit length
        bytes.extend(client_frame(BINARY, true, &big, MASK));
        bytes.extend(client_frame(OpCode::Control(Control::Close), true, &1000u16.to_be_bytes(), MASK));
        let got = read_all(bytes, 100_000).await;
        assert_eq!(got[0], Ok(Incoming::Text(r#"[null,"1","phoenix","heartbeat",{}]"#.into())));
        assert_eq!(got[1], Ok(Incoming::Ping(Bytes::from_static(b"p"))));
        assert_eq!(got[2], Ok(Incoming::Text("héllo wörld".into())));
        assert_eq!(got[3], Ok(Incoming::Binary(Bytes::from(big))));
        assert_eq!(got[4], Ok(Incoming::Close(Some(1000))));
        assert_eq!(got[5], Err(ReadError(None)), "then the connection ends");
    }

    #[tokio::test]
    async fn protocol_violations_close_with_the_code_rfc_6455_names() {
        let unmasked = {
            let mut out = Vec::new();
            FrameHeader { is_final: true, rsv1: false, rsv2: false, rsv3: false, opcode: TEXT, mask: None }.format(2, &mut out).unwrap();
            out.extend_from_slice(b"hi");
            out
        };
        let cases: Vec<(Vec<u8>, u16)> = vec![
            (unmasked, 1002),
            (client_frame(TEXT, true, &[0xff, 0xfe], MASK), 1007),
            (client_frame(BINARY, true, &[0; 2000], MASK), 1009),
            (client_frame(CONTINUE, true, b"x", MASK), 1002),
            (client_frame(OpCode::Control(Control::Ping), false, b"x", MASK), 1002),
            ([client_frame(TEXT, false, b"a", MASK), client_frame(TEXT, true, b"b", MASK)].concat(), 1002),
            ([client_frame(BINARY, false, &[0; 600], MASK), client_frame(CONTINUE, true, &[0; 600], MASK)].concat(), 1009),
        ];
        for (bytes, code) in cases {
            let got = read_all(bytes, 1024).await;
            match got.last() {
                Some(Err(ReadError(Some((c, reason))))) => assert_eq!(*c, code, "{reason}"),
                other => panic!("expected close {code}, got {other:?}"),
            }
        }
    }

    #[test]
    fn server_frames_are_unmasked_and_whole() {
        let f = encode(TEXT, b"abc");
        assert_eq!(&f[..], &[0x81, 3, b'a', b'b', b'c']);
        let long = encode(BINARY, &[7; 300]);
        assert_eq!(&long[..4], &[0x82, 126, 1, 44]);
        assert_eq!(long.len(), 304);
        let close = close_frame(1001, &"é".repeat(100));
        assert_eq!(close[0], 0x88);
        assert!(close[1] as usize <= 125 && std::str::from_utf8(&close[4..]).is_ok(), "cut at a character boundary");
    }

    #[tokio::test]
    async fn direct_writes_only_while_the_task_is_parked_and_leftovers_go_to_the_task() {
        let (mut client, server) = tokio::io::duplex(16);
        let (_r, w) = tokio::io::split(server);
        let writer = Writer::default();
        let frame = Bytes::from_static(b"0123456789");
        assert!(!writer.park(), "nothing to write to yet");
        writer.attach(w);
        assert!(writer.try_direct(&frame).is_none(), "busy until parked");
        assert!(writer.park());
        assert!(matches!(writer.try_direct(&frame), Some(Direct::Written)));
        // The pipe holds 16 bytes: the second frame is only partly taken.
        assert!(matches!(writer.try_direct(&frame), Some(Direct::Kept)));
        assert!(writer.try_direct(&frame).is_none(), "no direct write while bytes are pending");
        assert!(writer.has_pending() && !writer.park(), "the task flushes first");
        let reading = tokio::spawn(async move {
            let mut got = vec![0u8; 20];
            tokio::io::AsyncReadExt::read_exact(&mut client, &mut got).await.unwrap();
            got
        });
        writer.flush().await.unwrap();
        assert_eq!(reading.await.unwrap(), b"01234567890123456789");
        assert!(writer.park());
        writer.detach();
        assert!(!writer.park(), "closed");
    }
}
