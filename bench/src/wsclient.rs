//! The load generator's WebSocket client: a hand-rolled handshake and frame parser over a
//! `TcpStream`, cheap enough that one core drives 10,000 connections.
//!
//! It speaks three dialects ([`Proto`]): the native protocol, the Pusher protocol and the
//! baseline's raw frames. Receivers record the publish → receive latency of every message
//! carrying a [`crate::payload`] marker.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::payload;
use crate::stats::Recorder;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Proto {
    /// The baseline: no protocol; every text frame is a message, the first one a hello.
    Raw,
    /// Our native protocol (`GET /ws?v=1`).
    Native,
    /// The Pusher protocol (`GET /app/<key>?protocol=7`).
    Pusher,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server.
    pub addr: SocketAddr,
    /// The request path of the WebSocket upgrade.
    pub path: String,
    /// The dialect.
    pub proto: Proto,
}

/// A decoded frame header: its opcode and where its payload is in the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    /// RFC 6455 opcode (1 text, 2 binary, 8 close, 9 ping, 10 pong).
    pub opcode: u8,
    start: usize,
    end: usize,
}

/// One client WebSocket connection.
#[derive(Debug)]
pub struct WsConn {
    stream: TcpStream,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl WsConn {
    /// Connects from `source` (an address in 127.0.0.0/8, to spread ephemeral ports) or the
    /// default address, and performs the upgrade.
    pub async fn connect(addr: SocketAddr, path: &str, source: Option<IpAddr>) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = source {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            buf: vec![0; 4096],
            start: 0,
            end: 0,
        };
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        conn.stream.write_all(req.as_bytes()).await?;
        loop {
            if let Some(pos) = conn.buf[..conn.end]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                let head = String::from_utf8_lossy(&conn.buf[..pos]).to_string();
                let status = head.lines().next().unwrap_or_default();
                if !status.contains(" 101") {
                    return Err(bad(format!("upgrade refused: {status}")));
                }
                conn.start = pos + 4;
                return Ok(conn);
            }
            if conn.end == conn.buf.len() {
                return Err(bad("upgrade answer too long"));
            }
            let n = conn.stream.read(&mut conn.buf[conn.end..]).await?;
            if n == 0 {
                return Err(bad("closed during the upgrade"));
            }
            conn.end += n;
        }
    }

    fn try_parse(&self) -> io::Result<Option<(Frame, usize)>> {
        let b = &self.buf[self.start..self.end];
        if b.len() < 2 {
            return Ok(None);
        }
        let opcode = b[0] & 0x0f;
        let masked = b[1] & 0x80 != 0;
        let mut len = u64::from(b[1] & 0x7f);
        let mut at = 2usize;
        if len == 126 {
            if b.len() < 4 {
                return Ok(None);
            }
            len = u64::from(u16::from_be_bytes([b[2], b[3]]));
            at = 4;
        } else if len == 127 {
            if b.len() < 10 {
                return Ok(None);
            }
            let mut l = [0u8; 8];
            l.copy_from_slice(&b[2..10]);
            len = u64::from_be_bytes(l);
            at = 10;
        }
        let len = usize::try_from(len).map_err(|_| bad("frame too large"))?;
        if len > 64 * 1024 * 1024 {
            return Err(bad("frame too large"));
        }
        let key_at = at;
        if masked {
            at += 4;
        }
        if b.len() < at + len {
            return Ok(None);
        }
        let start = self.start + at;
        let frame = Frame {
            opcode,
            start,
            end: start + len,
        };
        if masked {
            // Servers never mask, but stay correct if one does.
            return Ok(Some((frame, key_at)));
        }
        Ok(Some((frame, usize::MAX)))
    }

    /// The server side of the upgrade on an accepted connection (for the harness's scripted
    /// peers): reads the request, answers `101` with the accept key.
    pub async fn accept(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            buf: vec![0; 4096],
            start: 0,
            end: 0,
        };
        loop {
            if let Some(pos) = conn.buf[..conn.end]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                let head = String::from_utf8_lossy(&conn.buf[..pos]).to_string();
                let key = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.trim()
                            .eq_ignore_ascii_case("sec-websocket-key")
                            .then(|| value.trim().to_owned())
                    })
                    .ok_or_else(|| bad("no Sec-WebSocket-Key"))?;
                let accept =
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                );
                conn.stream.write_all(resp.as_bytes()).await?;
                conn.start = pos + 4;
                return Ok(conn);
            }
            if conn.end == conn.buf.len() {
                return Err(bad("upgrade request too long"));
            }
            let n = conn.stream.read(&mut conn.buf[conn.end..]).await?;
            if n == 0 {
                return Err(bad("closed during the upgrade"));
            }
            conn.end += n;
        }
    }

    /// Writes raw bytes (already encoded frames) to the socket.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next frame, or `None` when the peer closed the TCP connection.
    pub async fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some((frame, key_at)) = self.try_parse()? {
                if key_at != usize::MAX {
                    let k0 = self.start + key_at;
                    let key = [
                        self.buf[k0],
                        self.buf[k0 + 1],
                        self.buf[k0 + 2],
                        self.buf[k0 + 3],
                    ];
                    for (i, byte) in self.buf[frame.start..frame.end].iter_mut().enumerate() {
                        *byte ^= key[i % 4];
                    }
                }
                self.start = frame.end;
                return Ok(Some(frame));
            }
            // Need more bytes: compact, grow when a frame does not fit, read.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                let grow = self.buf.len();
                self.buf.resize(grow * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Ok(None);
            }
            self.end += n;
        }
    }

    /// Reads in chunks of up to `bytes` from now on (the default is 4 KiB, which keeps
    /// 10,000 connections small; a single fast connection wants more).
    pub fn set_read_buffer(&mut self, bytes: usize) {
        if self.buf.len() < bytes {
            self.buf.resize(bytes, 0);
        }
    }

    /// The payload of a frame returned by the last [`WsConn::next_frame`].
    pub fn payload(&self, f: &Frame) -> &[u8] {
        &self.buf[f.start..f.end]
    }

    /// Sends a masked frame.
    pub async fn send(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(0x80 | opcode);
        let len = payload.len();
        if len < 126 {
            out.push(0x80 | len as u8);
        } else if len <= usize::from(u16::MAX) {
            out.push(0x80 | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        out.extend_from_slice(&MASK);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        self.stream.write_all(&out).await
    }

    /// Sends a text frame.
    pub async fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.send(1, text.as_bytes()).await
    }

    /// Sends a close frame (best effort) and shuts the socket down.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            let _ = self.send(8, &1000u16.to_be_bytes()).await;
            let _ = self.stream.shutdown().await;
        })
        .await;
    }

    /// The next text frame's payload as a string (answering pings on the way); `None` when
    /// the connection closed.
    pub async fn next_text(&mut self) -> io::Result<Option<String>> {
        loop {
            let Some(f) = self.next_frame().await? else {
                return Ok(None);
            };
            match f.opcode {
                1 => return Ok(Some(String::from_utf8_lossy(self.payload(&f)).into_owned())),
                8 => return Ok(None),
                9 => {
                    let p = self.payload(&f).to_vec();
                    self.send(10, &p).await?;
                }
                _ => {}
            }
        }
    }
}

/// Appends an unmasked (server → client) text frame to `out`.
pub fn encode_server_text(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    out.push(0x81);
    if len < 126 {
        out.push(len as u8);
    } else if len <= usize::from(u16::MAX) {
        out.push(126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// Connects and subscribes to `channel` (the baseline has one implicit channel), returning
/// the connection once the subscription is live.
pub async fn open(
    target: &Target,
    channel: &str,
    source: Option<IpAddr>,
    within: Duration,
) -> io::Result<WsConn> {
    tokio::time::timeout(within, open_inner(target, channel, source))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "subscribe timed out"))?
}

async fn open_inner(target: &Target, channel: &str, source: Option<IpAddr>) -> io::Result<WsConn> {
    let mut conn = WsConn::connect(target.addr, &target.path, source).await?;
    let first = conn
        .next_text()
        .await?
        .ok_or_else(|| bad("closed before the first frame"))?;
    let (subscribe, ok, err) = match target.proto {
        Proto::Raw => return Ok(conn),
        Proto::Native => {
            if !first.contains("\"connected\"") {
                return Err(bad(format!("expected connected, got {first}")));
            }
            (
                format!(r#"{{"type":"subscribe","ref":"s","channel":"{channel}"}}"#),
                "\"subscribed\"",
                "\"error\"",
            )
        }
        Proto::Pusher => {
            if !first.contains("pusher:connection_established") {
                return Err(bad(format!("expected connection_established, got {first}")));
            }
            (
                format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{channel}"}}}}"#),
                "pusher_internal:subscription_succeeded",
                "pusher:error",
            )
        }
    };
    conn.send_text(&subscribe).await?;
    loop {
        let text = conn
            .next_text()
            .await?
            .ok_or_else(|| bad("closed before the subscription was confirmed"))?;
        if text.contains(ok) {
            return Ok(conn);
        }
        if text.contains(err) {
            return Err(bad(format!("subscribe refused: {text}")));
        }
    }
}

/// What the receivers of one run share.
#[derive(Debug, Default)]
pub struct RecvCtx {
    /// Latencies of counted messages.
    pub recorder: Recorder,
    /// Counted messages received (sequence at or above `count_from`).
    pub received: AtomicU64,
    /// Messages received twice on one connection (or more than `SEEN_WINDOW` sequences late).
    pub duplicates: AtomicU64,
    /// Messages below `count_from` (warm-up) received.
    pub uncounted: AtomicU64,
    /// Only sequences at or above this are counted.
    pub count_from: AtomicU64,
    /// When the last counted message arrived (`payload::now_ns`).
    pub last_ns: AtomicU64,
    /// Receivers still running.
    pub alive: AtomicUsize,
    /// Receivers whose connection the server closed.
    pub closed_by_server: AtomicUsize,
    /// Stops every receiver.
    pub cancel: CancellationToken,
}

impl RecvCtx {
    /// A fresh context.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Starts counting at sequence `from` and clears the counters and the histogram.
    pub fn reset(&self, from: u64) {
        self.count_from.store(from, Ordering::SeqCst);
        self.received.store(0, Ordering::SeqCst);
        self.duplicates.store(0, Ordering::SeqCst);
        self.uncounted.store(0, Ordering::SeqCst);
        self.last_ns.store(0, Ordering::SeqCst);
        self.recorder.reset();
    }
}

/// Reads messages until cancelled or closed, recording each marked message.
pub async fn receive(mut conn: WsConn, proto: Proto, ctx: Arc<RecvCtx>) {
    ctx.alive.fetch_add(1, Ordering::SeqCst);
    let mut seen = SeenWindow::default();
    let mut heartbeat = tokio::time::interval(Duration::from_secs(20));
    heartbeat.tick().await;
    let mut closed = false;
    loop {
        let frame = tokio::select! {
            biased;
            _ = ctx.cancel.cancelled() => break,
            _ = heartbeat.tick(), if proto == Proto::Native => {
                if conn.send_text(r#"{"type":"ping"}"#).await.is_err() {
                    closed = true;
                    break;
                }
                continue;
            }
            f = conn.next_frame() => f,
        };
        let f = match frame {
            Ok(Some(f)) => f,
            _ => {
                closed = true;
                break;
            }
        };
        match f.opcode {
            1 | 2 => {
                let p = conn.payload(&f);
                if let Some((t, seq)) = payload::parse(p) {
                    let now = payload::now_ns();
                    if seq >= ctx.count_from.load(Ordering::Relaxed) {
                        ctx.recorder.record_ns(now.saturating_sub(t));
                        ctx.received.fetch_add(1, Ordering::Relaxed);
                        ctx.last_ns.fetch_max(now, Ordering::Relaxed);
                    } else {
                        ctx.uncounted.fetch_add(1, Ordering::Relaxed);
                    }
                    if !seen.insert(seq) {
                        ctx.duplicates.fetch_add(1, Ordering::Relaxed);
                    }
                } else if proto == Proto::Pusher
                    && p.windows(11).any(|w| w == b"pusher:ping")
                    && conn
                        .send_text(r#"{"event":"pusher:pong","data":{}}"#)
                        .await
                        .is_err()
                {
                    closed = true;
                    break;
                }
            }
            8 => {
                closed = true;
                break;
            }
            9 => {
                let p = conn.payload(&f).to_vec();
                if conn.send(10, &p).await.is_err() {
                    closed = true;
                    break;
                }
            }
            _ => {}
        }
    }
    if closed {
        ctx.closed_by_server.fetch_add(1, Ordering::SeqCst);
    } else {
        conn.close().await;
    }
    ctx.alive.fetch_sub(1, Ordering::SeqCst);
}

/// How many of the latest sequences [`SeenWindow`] remembers.
pub const SEEN_WINDOW: u64 = 4096;

/// Which of the last [`SEEN_WINDOW`] sequences a connection has seen: tells a duplicate from
/// a message merely reordered by concurrent publishers, in constant memory (512 bytes).
#[derive(Debug, Clone)]
pub struct SeenWindow {
    max: Option<u64>,
    /// Bit `seq % SEEN_WINDOW` set: `seq` (within the window below `max`) was seen.
    bits: Box<[u64; (SEEN_WINDOW / 64) as usize]>,
}

impl Default for SeenWindow {
    fn default() -> Self {
        Self {
            max: None,
            bits: Box::new([0; (SEEN_WINDOW / 64) as usize]),
        }
    }
}

impl SeenWindow {
    fn bit(seq: u64) -> (usize, u64) {
        let i = seq % SEEN_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Records `seq`; `false` when it was seen before (or is too old to tell, which counts
    /// as a duplicate so that nothing is hidden).
    pub fn insert(&mut self, seq: u64) -> bool {
        match self.max {
            Some(max) if seq <= max => {
                if max - seq >= SEEN_WINDOW {
                    return false;
                }
                let (w, b) = Self::bit(seq);
                if self.bits[w] & b != 0 {
                    return false;
                }
                self.bits[w] |= b;
                true
            }
            _ => {
                // Advancing: forget the sequences that fall out of the window.
                match self.max {
                    Some(max) if seq - max < SEEN_WINDOW => {
                        for q in max + 1..seq {
                            let (w, b) = Self::bit(q);
                            self.bits[w] &= !b;
                        }
                    }
                    _ => self.bits.fill(0),
                }
                let (w, b) = Self::bit(seq);
                self.bits[w] |= b;
                self.max = Some(seq);
                true
            }
        }
    }
}

/// The `i`-th source address in 127.0.0.2 ..= 127.0.0.9, to spread ephemeral ports.
pub fn source_ip(i: usize) -> IpAddr {
    IpAddr::from([127, 0, 0, 2 + (i % 8) as u8])
}

#[cfg(test)]
mod tests {
    use super::{SEEN_WINDOW, SeenWindow};

    #[test]
    fn seen_window_tells_duplicates_from_reordering() {
        let mut w = SeenWindow::default();
        assert!(w.insert(5));
        assert!(w.insert(7));
        assert!(w.insert(6), "reordered, not a duplicate");
        assert!(!w.insert(6), "a duplicate");
        assert!(!w.insert(7));
        assert!(w.insert(5000));
        assert!(!w.insert(100), "too old to tell counts as a duplicate");
        assert!(w.insert(4999));
        assert!(w.insert(1200), "late but inside the window");
        assert!(!w.insert(1200));
        assert!(w.insert(5000 + 2 * SEEN_WINDOW));
        assert!(
            w.insert(5000 + SEEN_WINDOW + 1),
            "forgotten bits were cleared"
        );
    }
}
