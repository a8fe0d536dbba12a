//! Binary payloads and echo on our own server: bytes travel as base64 with
//! `"encoding": "base64"` over WebSocket, SSE, `POST /publish` and history, and come out of the
//! client as `Payload::Binary`; bad base64 and unknown encodings are refused with `malformed`;
//! the payload limit counts the decoded bytes (at the limit accepted, one past refused); a
//! client with echo off never sees its own publishes.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::sync::Arc;

use relayport_core::{HistoryQuery, Message, Payload, RealtimeClient, Subscription};
use relayport_selfhosted::client::{SelfHostedProvider, TransportPreference};
use relayport_selfhosted::protocol::code;
use relayport_selfhosted::server::SelfHostedAuthorizer;
use serde_json::json;
use server_common::*;

fn client(
    addr: std::net::SocketAddr,
    transport: TransportPreference,
    echo: bool,
) -> RealtimeClient {
    let provider = SelfHostedProvider::new(&format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_transport(transport);
    RealtimeClient::builder(provider)
        .authorizer(Arc::new(SelfHostedAuthorizer::new(SECRET)))
        .echo(echo)
        .build()
}

async fn recv(sub: &mut Subscription) -> Message {
    within("a message", sub.recv())
        .await
        .expect("the subscription is open")
}

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 256) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_websocket_and_sse_subscribers_as_bytes_and_history_keeps_them() {
    let server = start_with(builder().allow_public_publish(true)).await;
    let addr = server.local_addr();
    let publisher = client(addr, TransportPreference::WebSocketOnly, true);
    let ws = client(addr, TransportPreference::WebSocketOnly, true);
    let sse = client(addr, TransportPreference::SseOnly, true);
    let mut on_ws = within("subscribe", ws.subscribe("files")).await.unwrap();
    let mut on_sse = within("subscribe", sse.subscribe("files")).await.unwrap();
    let mut own = within("subscribe", publisher.subscribe("files"))
        .await
        .unwrap();
    let blob = bytes(1000);
    within("publish", publisher.publish("files", "blob", blob.clone()))
        .await
        .unwrap();
    for sub in [&mut on_ws, &mut on_sse, &mut own] {
        let m = recv(sub).await;
        assert_eq!(m.event, "blob");
        assert_eq!(m.data.as_bytes(), Some(&blob[..]));
    }
    // A raw subscriber sees the wire form.
    let mut raw = WsClient::connect(addr).await;
    raw.subscribe("files").await;
    within(
        "publish",
        publisher.publish("files", "blob", vec![0xffu8, 0]),
    )
    .await
    .unwrap();
    let frame = raw.expect("message").await;
    assert_eq!(
        (frame["data"].as_str(), frame["encoding"].as_str()),
        (Some("/wA="), Some("base64"))
    );
    // History gives the bytes back too (HTTP and the client's paging).
    let (_, h) = get_json(addr, "/channels/files/history").await;
    assert_eq!(h["messages"][0]["encoding"], "base64");
    let page = within(
        "history",
        publisher.history("files", HistoryQuery::new().limit(10)),
    )
    .await
    .unwrap();
    let payloads: Vec<&Payload> = page.messages().iter().map(|m| &m.data).collect();
    assert!(
        payloads.contains(&&Payload::from(blob.clone())),
        "{payloads:?}"
    );
    for c in [publisher, ws, sse] {
        c.close().await;
    }
    server.shutdown().await;
}

#[tokio::test]
async fn http_publish_carries_bytes_and_refuses_bad_encodings() {
    let server = start().await;
    let addr = server.local_addr();
    let mut raw = WsClient::connect(addr).await;
    raw.subscribe("files").await;
    let (status, _) = publish(
        addr,
        json!({"channel": "files", "event": "b", "data": "AQID", "encoding": "base64"}),
    )
    .await;
    assert_eq!(status, 200);
    let frame = raw.expect("message").await;
    assert_eq!(
        (frame["data"].as_str(), frame["encoding"].as_str()),
        (Some("AQID"), Some("base64"))
    );
    for (data, encoding) in [
        (json!("not base64!"), "base64"),
        (json!(12), "base64"),
        (json!("AQID"), "utf-7"),
    ] {
        let (status, body) = publish(
            addr,
            json!({"channel": "files", "event": "b", "data": data, "encoding": encoding}),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code::MALFORMED)),
            "{body}"
        );
    }
    assert!(raw.sync().await.is_empty(), "nothing refused was delivered");
    server.shutdown().await;
}

#[tokio::test]
async fn websocket_publish_of_bad_base64_gets_an_error_frame() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    a.subscribe_private("private:files").await;
    a.send(
        json!({"type": "publish", "ref": "7", "channel": "private:files", "event": "b",
        "data": "%%%", "encoding": "base64"}),
    )
    .await;
    let e = a.expect_error(code::MALFORMED).await;
    assert_eq!(e["ref"], "7");
    assert!(a.sync().await.is_empty());
    server.shutdown().await;
}

#[tokio::test]
async fn the_payload_limit_counts_decoded_bytes_at_and_past_it() {
    let server = start().await;
    let addr = server.local_addr();
    let max = server.config().limits.max_payload;
    let mut a = WsClient::connect(addr).await;
    a.subscribe_private("private:files").await;
    let encode = |n: usize| {
        Payload::from(bytes(n))
            .to_wire()
            .0
            .as_str()
            .unwrap()
            .to_owned()
    };
    // At the limit: its base64 form is a third larger, and still fits the frame limit.
    a.send(
        json!({"type": "publish", "ref": "1", "channel": "private:files", "event": "b",
        "data": encode(max), "encoding": "base64"}),
    )
    .await;
    // The message (to this subscriber) and the ack, in either order.
    let (x, y) = (a.next().await, a.next().await);
    let (ack, m) = if x["type"] == "ack" { (x, y) } else { (y, x) };
    assert_eq!(
        (ack["type"].as_str(), ack["ref"].as_str()),
        (Some("ack"), Some("1"))
    );
    assert_eq!(m["data"].as_str().map(str::len), Some(encode(max).len()));
    a.send(
        json!({"type": "publish", "ref": "2", "channel": "private:files", "event": "b",
        "data": encode(max + 1), "encoding": "base64"}),
    )
    .await;
    let e = a.expect_error(code::PAYLOAD_TOO_LARGE).await;
    assert_eq!(e["ref"], "2");
    let (status, body) = publish(
        addr,
        json!({"channel": "files", "event": "b", "data": encode(max + 1), "encoding": "base64"}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some(code::PAYLOAD_TOO_LARGE))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_off_hides_own_publishes_and_keeps_everyone_elses() {
    let server = start_with(builder().allow_public_publish(true)).await;
    let addr = server.local_addr();
    let quiet = client(addr, TransportPreference::WebSocketOnly, false);
    let other = client(addr, TransportPreference::WebSocketOnly, true);
    let mut sub = within("subscribe", quiet.subscribe("room")).await.unwrap();
    let mut other_sub = within("subscribe", other.subscribe("room")).await.unwrap();
    within("publish", quiet.publish("room", "mine", json!(1)))
        .await
        .unwrap();
    within("publish", other.publish("room", "theirs", json!(2)))
        .await
        .unwrap();
    let m = recv(&mut sub).await;
    assert_eq!(
        m.event, "theirs",
        "the own publish was skipped, the other's arrived"
    );
    // The other client (echo on) got both, its own included.
    let got: Vec<String> = vec![
        recv(&mut other_sub).await.event,
        recv(&mut other_sub).await.event,
    ];
    assert_eq!(got, ["mine", "theirs"]);
    quiet.close().await;
    other.close().await;
    server.shutdown().await;
}
