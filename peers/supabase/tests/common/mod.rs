//! A raw Phoenix client for the peer's own tests: frames in and out, nothing interpreted.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_peer_supabase::{PeerHandle, Vsn};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

/// One decoded server message.
#[derive(Debug, Clone, PartialEq)]
pub enum In {
    /// A text message: `(join_ref, ref, topic, event, payload)` (`join_ref` is always None on
    /// vsn 1, which never sends it).
    Msg {
        join_ref: Option<String>,
        msg_ref: Option<String>,
        topic: String,
        event: String,
        payload: Value,
    },
    /// A binary frame.
    Binary(Vec<u8>),
    /// The socket closed.
    Closed,
}

impl In {
    pub fn event(&self) -> &str {
        match self {
            In::Msg { event, .. } => event,
            In::Binary(_) => "<binary>",
            In::Closed => "<closed>",
        }
    }

    pub fn payload(&self) -> &Value {
        match self {
            In::Msg { payload, .. } => payload,
            _ => &Value::Null,
        }
    }
}

type Stream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client socket: writes go straight out; a reader task queues what arrives, so waiting
/// with a timeout never cancels a read half-way.
pub struct Ws {
    pub vsn: Vsn,
    tx: futures_util::stream::SplitSink<Stream, Message>,
    rx: tokio::sync::mpsc::UnboundedReceiver<Option<Message>>,
    reader: tokio::task::JoinHandle<()>,
    next_ref: u64,
}

impl Drop for Ws {
    /// Dropping the socket drops the connection (no close frame), as a crashed client would.
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Longer than every server backoff (5 s), so paused-clock tests can wait past them.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn url(peer: &PeerHandle, apikey: &str, vsn: Vsn) -> String {
    let v = match vsn {
        Vsn::V1 => "1.0.0",
        Vsn::V2 => "2.0.0",
    };
    format!("{}/websocket?apikey={apikey}&vsn={v}", peer.endpoint())
}

pub async fn connect(peer: &PeerHandle, vsn: Vsn) -> Ws {
    connect_with(peer, vsn, &peer.anon_key()).await
}

pub async fn connect_with(peer: &PeerHandle, vsn: Vsn, apikey: &str) -> Ws {
    let (ws, _) = connect_async(url(peer, apikey, vsn))
        .await
        .expect("the handshake succeeds");
    let (tx, mut read) = ws.split();
    let (qtx, rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(m) = read.next().await {
            let closed = !matches!(m, Ok(Message::Text(_) | Message::Binary(_)));
            let _ = qtx.send(m.ok().filter(|_| !closed));
            if closed {
                break;
            }
        }
        let _ = qtx.send(None);
    });
    Ws {
        vsn,
        tx,
        rx,
        reader,
        next_ref: 0,
    }
}

impl Ws {
    pub fn fresh_ref(&mut self) -> String {
        self.next_ref += 1;
        self.next_ref.to_string()
    }

    /// Sends `[join_ref, ref, topic, event, payload]` in this socket's serializer.
    pub async fn push(
        &mut self,
        join_ref: Option<&str>,
        msg_ref: &str,
        topic: &str,
        event: &str,
        payload: Value,
    ) {
        let text = match self.vsn {
            Vsn::V2 => json!([join_ref, msg_ref, topic, event, payload]).to_string(),
            Vsn::V1 => json!({"topic": topic, "event": event, "payload": payload,
                              "ref": msg_ref, "join_ref": join_ref})
            .to_string(),
        };
        self.raw(Message::Text(text.into())).await;
    }

    pub async fn raw(&mut self, m: Message) {
        self.tx.send(m).await.expect("send");
    }

    /// Joins `topic` with `payload`; returns the join ref (the reply is not read).
    pub async fn join(&mut self, topic: &str, payload: Value) -> String {
        let r = self.fresh_ref();
        self.push(Some(&r), &r, topic, "phx_join", payload).await;
        r
    }

    /// Joins and expects an ok reply; returns the join ref.
    pub async fn join_ok(&mut self, topic: &str, payload: Value) -> String {
        let r = self.join(topic, payload).await;
        let reply = self.recv().await;
        assert_eq!(reply.event(), "phx_reply", "{reply:?}");
        assert_eq!(reply.payload()["status"], "ok", "{reply:?}");
        r
    }

    pub async fn recv(&mut self) -> In {
        match tokio::time::timeout(WAIT, self.rx.recv()).await {
            Err(_) => panic!("nothing from the peer within {WAIT:?}"),
            Ok(None) | Ok(Some(None)) => In::Closed,
            Ok(Some(Some(Message::Binary(b)))) => In::Binary(b.to_vec()),
            Ok(Some(Some(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("the peer sends JSON");
                let s = |v: &Value| v.as_str().map(str::to_owned);
                match self.vsn {
                    Vsn::V2 => In::Msg {
                        join_ref: s(&v[0]),
                        msg_ref: s(&v[1]),
                        topic: s(&v[2]).expect("topic"),
                        event: s(&v[3]).expect("event"),
                        payload: v[4].clone(),
                    },
                    Vsn::V1 => {
                        assert!(
                            v.get("join_ref").is_none(),
                            "vsn 1 never sends join_ref: {v}"
                        );
                        In::Msg {
                            join_ref: None,
                            msg_ref: s(&v["ref"]),
                            topic: s(&v["topic"]).expect("topic"),
                            event: s(&v["event"]).expect("event"),
                            payload: v["payload"].clone(),
                        }
                    }
                }
            }
            Ok(Some(Some(_))) => In::Closed,
        }
    }

    /// Asserts nothing arrives for `d`.
    pub async fn silent_for(&mut self, d: Duration) {
        if let Ok(m) = tokio::time::timeout(d, self.rx.recv()).await {
            panic!("expected silence, got {m:?}");
        }
    }
}

/// A peer with no backoffs and no idle timeout.
pub async fn quick_peer() -> PeerHandle {
    relayport_peer_supabase::SupabasePeer::builder()
        .join_error_backoff(Duration::ZERO)
        .connect_error_backoff(Duration::ZERO)
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .expect("binds")
}
