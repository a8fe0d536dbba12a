//! `GET /sse`: events, resumable ids with `Last-Event-ID`, private channels through tickets,
//! heartbeat comments, and the end of the stream on shutdown.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use relayport_selfhosted::protocol::{close, code};
use relayport_selfhosted::server::ServerConfig;
use serde_json::{Value, json};
use server_common::*;

/// One parsed SSE block.
#[derive(Debug, Default, Clone)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: Value,
    comment: Option<String>,
}

struct SseReader {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buf: String,
}

impl SseReader {
    async fn open(addr: SocketAddr, query: &str, last_event_id: Option<&str>) -> Self {
        let mut req = http().get(format!("http://{addr}/sse{query}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = within("GET /sse", req.send()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            stream: resp.bytes_stream().boxed(),
            buf: String::new(),
        }
    }

    /// The next block (event or comment), or `None` at the end of the stream.
    async fn next_block(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut ev = SseEvent::default();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        ev.comment = Some(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        ev.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("id:") {
                        ev.id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if !data.is_empty() {
                    ev.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                }
                return Some(ev);
            }
            match within("an SSE chunk", self.stream.next()).await {
                Some(Ok(chunk)) => self.buf.push_str(&String::from_utf8_lossy(&chunk)),
                _ => return None,
            }
        }
    }

    /// The next event that is not a comment.
    async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_block().await {
                Some(ev) if ev.comment.is_some() && ev.event.is_empty() => continue,
                Some(ev) => return ev,
                None => panic!("the SSE stream ended"),
            }
        }
    }
}

async fn get_status(addr: SocketAddr, query: &str) -> (u16, Value) {
    let resp = http()
        .get(format!("http://{addr}/sse{query}"))
        .send()
        .await
        .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sse_delivers_messages_and_resumes_with_last_event_id() {
    let server = start().await;
    let addr = server.local_addr();
    let mut sse = SseReader::open(addr, "?channel=a&channel=public:b", None).await;
    let connected = sse.next_event().await;
    assert_eq!(connected.event, "connected");
    assert!(connected.data["socket_id"].is_string());
    assert_eq!(sse.next_event().await.event, "subscribed");
    assert_eq!(sse.next_event().await.event, "subscribed");
    publish(addr, json!({"channel": "a", "event": "e", "data": 1})).await;
    publish(addr, json!({"channel": "b", "event": "e", "data": 2})).await;
    let m1 = sse.next_event().await;
    assert_eq!(
        (m1.event.as_str(), m1.data["data"].as_i64()),
        ("message", Some(1))
    );
    let m2 = sse.next_event().await;
    assert_eq!(m2.data["data"], 2);
    let last_id = m2.id.clone().expect("messages carry an id");
    drop(sse);
    server
        .metrics()
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("the SSE client is gone");

    // Missed while away.
    publish(addr, json!({"channel": "a", "event": "e", "data": 3})).await;
    publish(addr, json!({"channel": "b", "event": "e", "data": 4})).await;
    publish(addr, json!({"channel": "a", "event": "e", "data": 5})).await;
    let mut sse = SseReader::open(addr, "?channel=a&channel=b", Some(&last_id)).await;
    assert_eq!(sse.next_event().await.event, "connected");
    let mut data = Vec::new();
    let mut subscribed = 0;
    while data.len() < 3 {
        let ev = sse.next_event().await;
        match ev.event.as_str() {
            "subscribed" => {
                subscribed += 1;
                assert_eq!(ev.data["recovered"], true, "{:?}", ev.data);
            }
            "message" => data.push(ev.data["data"].as_i64().unwrap()),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(subscribed, 2);
    data.sort_unstable();
    assert_eq!(data, vec![3, 4, 5], "exactly the missed ones");
    // And live again.
    publish(addr, json!({"channel": "a", "event": "e", "data": 6})).await;
    assert_eq!(sse.next_event().await.data["data"], 6);
    // The query parameter works like the header.
    let mut sse2 = SseReader::open(
        addr,
        &format!("?channel=a&last_event_id={}", urlencode(&last_id)),
        None,
    )
    .await;
    assert_eq!(sse2.next_event().await.event, "connected");
    let sub = sse2.next_event().await;
    assert_eq!(sub.data["recovered"], true);
    let replay: Vec<i64> = [
        sse2.next_event().await,
        sse2.next_event().await,
        sse2.next_event().await,
    ]
    .iter()
    .map(|e| e.data["data"].as_i64().unwrap())
    .collect();
    assert_eq!(replay, vec![3, 5, 6]);
    server.shutdown().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST path` with a JSON body (no bearer: the SSE ticket endpoints are for browsers).
async fn post_json(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let resp = within(
        "POST",
        http()
            .post(format!("http://{addr}{path}"))
            .json(&body)
            .send(),
    )
    .await
    .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// A ticket and its server-assigned socket id.
async fn ticket(addr: SocketAddr) -> (String, String) {
    let (s, b) = post_json(addr, "/sse/tickets", json!({})).await;
    assert_eq!(s, 200, "{b}");
    (
        b["ticket"].as_str().unwrap().to_owned(),
        b["socket_id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn sse_private_channels_need_a_ticket_with_signatures_handed_in() {
    let server = start().await;
    let addr = server.local_addr();
    let ch = "private:inbox";
    let (s, b) = get_status(addr, &format!("?channel={ch}")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some(code::UNAUTHORIZED))
    );
    let (t, socket_id) = ticket(addr).await;
    // A wrong signature, or one for another socket id, is refused when handed in.
    for bad in ["0".repeat(64), sign_private("someone.else", ch)] {
        let (s, b) = post_json(addr, "/sse/auth", json!({"ticket": t, "auth": {ch: bad}})).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (401, Some(code::UNAUTHORIZED))
        );
    }
    // Without a handed-in signature the ticket does not open the private channel.
    let (s, _) = get_status(addr, &format!("?channel={ch}&ticket={t}")).await;
    assert_eq!(s, 401);
    let (s, b) = get_status(addr, "?channel=presence:room").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some(code::FORBIDDEN))
    );
    let (s, _) = get_status(addr, "").await;
    assert_eq!(s, 400);
    let (s, b) = get_status(addr, "?channel=bad%20name").await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some(code::INVALID_CHANNEL))
    );

    let (t, socket_id2) = ticket(addr).await;
    assert_ne!(socket_id, socket_id2, "every ticket gets a fresh socket id");
    let auth = sign_private(&socket_id2, ch);
    let (s, b) = post_json(addr, "/sse/auth", json!({"ticket": t, "auth": {ch: auth}})).await;
    assert_eq!((s, b["authorized"].clone()), (200, json!([ch])));
    let mut sse = SseReader::open(addr, &format!("?channel={ch}&ticket={t}"), None).await;
    assert_eq!(
        sse.next_event().await.data["socket_id"],
        socket_id2.as_str()
    );
    assert_eq!(sse.next_event().await.event, "subscribed");
    // The ticket was used up.
    let (s, b) = get_status(addr, &format!("?channel={ch}&ticket={t}")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some(code::UNAUTHORIZED))
    );
    publish(addr, json!({"channel": ch, "event": "e", "data": "secret"})).await;
    assert_eq!(sse.next_event().await.data["data"], "secret");
    server.shutdown().await;
}

#[tokio::test]
async fn sse_heartbeat_comment_and_close_on_shutdown() {
    let mut config = ServerConfig::default();
    config.secret = SECRET.into();
    config.sse_keep_alive = Duration::from_millis(50);
    let server = start_with(builder().config(config)).await;
    let addr = server.local_addr();
    let mut sse = SseReader::open(addr, "?channel=quiet", None).await;
    let heartbeat = loop {
        let block = sse.next_block().await.expect("stream open");
        if let Some(c) = block.comment {
            break c;
        }
    };
    assert_eq!(heartbeat, "heartbeat");
    let shutdown = tokio::spawn(server.shutdown());
    let close_event = loop {
        let ev = sse.next_event().await;
        if ev.event == "close" {
            break ev;
        }
    };
    assert_eq!(close_event.data["code"], close::SERVICE_RESTART);
    assert!(sse.next_block().await.is_none(), "the stream ends");
    within("shutdown", shutdown).await.unwrap();
}
