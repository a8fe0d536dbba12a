//! Attacks on the WebSocket side of the real server (issue 11), each run the way an attacker
//! would, on loopback, against `Server::builder()…bind("127.0.0.1:0")`. Every test here
//! failed before its fix.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_selfhosted::protocol::{Limits, close, code};
use relayport_selfhosted::server::{Clock, Publication};
use serde_json::{Value, json};
use server_common::*;
use tokio_tungstenite::tungstenite::Message;

fn publication(channel: &str, data: Value) -> Publication {
    Publication {
        encoding: None,
        channel: channel.parse().unwrap(),
        event: "e".into(),
        data,
        sender: None,
        exclude: None,
        retain: false,
    }
}

/// Item 1: `public:private:secret` used to parse as a public channel printing as
/// `private:secret`, so an unsigned subscriber read, published into and watched the private
/// and presence channels.
#[tokio::test]
async fn a_public_alias_of_a_private_or_presence_channel_is_refused() {
    let server = start_with(builder().allow_public_publish(true)).await;
    let addr = server.local_addr();
    let mut victim = WsClient::connect(addr).await;
    victim.subscribe_private("private:secret").await;
    victim
        .subscribe_presence("presence:room", "alice", json!({}))
        .await;

    let mut attacker = WsClient::connect(addr).await;
    for alias in [
        "public:private:secret",
        "public:presence:room",
        "public:public:private:secret",
    ] {
        attacker
            .send(json!({"type": "subscribe", "ref": alias, "channel": alias}))
            .await;
        let e = attacker.expect_error(code::INVALID_CHANNEL).await;
        assert_eq!(e["ref"], alias);
        attacker
            .send(json!({"type": "publish", "channel": alias, "event": "e", "data": 1}))
            .await;
        attacker.expect_error(code::INVALID_CHANNEL).await;
    }
    // Nothing reached the victim; the private channel's stream is untouched.
    server
        .publish(publication("private:secret", json!("for members")))
        .await
        .unwrap();
    let m = victim.expect("message").await;
    assert_eq!(
        (m["channel"].as_str(), m["seq"].as_u64()),
        (Some("private:secret"), Some(1))
    );
    assert!(attacker.sync().await.is_empty(), "the attacker got frames");
    assert!(victim.sync().await.is_empty());
    // HTTP keys channels the same way.
    let (status, body) = get_json(addr, "/channels/public:private:secret/history").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], code::INVALID_CHANNEL);
    server.shutdown().await;
}

/// Item 2: one subscribe to `"#." * 81 + "zz"` and one publish to a 7-segment channel froze
/// the broker (and `/health`) for minutes. Now consecutive `#` collapse and matching is
/// linear; the step count is bounded in `relayport-core`'s channel tests, and here the
/// server must answer at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pathological_wildcard_pattern_does_not_freeze_the_server() {
    let server = start().await;
    let addr = server.local_addr();
    let mut attacker = WsClient::connect(addr).await;
    let pattern = format!("{}zz", "#.".repeat(81));
    attacker.subscribe(&pattern).await;
    let mut other = WsClient::connect(addr).await;
    other.subscribe("a.b.c.d.e.f.zz").await;
    let started = std::time::Instant::now();
    server
        .publish(publication("a.b.c.d.e.f.g", json!(1)))
        .await
        .unwrap();
    server
        .publish(publication("a.b.c.d.e.f.zz", json!(2)))
        .await
        .unwrap();
    let (status, _) = get_json(addr, "/health").await;
    assert_eq!(status, 200);
    // The pattern still matches what it should.
    let m = attacker.expect("message").await;
    assert_eq!(m["channel"], "a.b.c.d.e.f.zz");
    other.expect("message").await;
    assert!(started.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn wildcard_segments_past_the_limit_are_refused_with_a_clear_error() {
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let at = vec!["*"; relayport_core::channel::MAX_WILDCARD_SEGMENTS].join(".");
    c.subscribe(&at).await;
    let past = vec!["*"; relayport_core::channel::MAX_WILDCARD_SEGMENTS + 1].join(".");
    c.send(json!({"type": "subscribe", "channel": past})).await;
    let e = c.expect_error(code::INVALID_CHANNEL).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("max_wildcard_segments"),
        "{e}"
    );
    server.shutdown().await;
}

/// Item 3: a client that never reads and re-subscribes with `since` grew the server's memory
/// by a full history frame each time (the queue was bounded in frames only). Now the queue
/// is bounded in bytes and the client is closed as a slow consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_flood_from_a_client_that_never_reads_hits_the_byte_budget() {
    let budget = 1024 * 1024;
    let server = start_with(
        builder()
            .history_size(20)
            .send_queue_bytes(budget)
            .subscribes_per_minute(10_000)
            .ws_buffers(4096, 4096, usize::MAX),
    )
    .await;
    let addr = server.local_addr();
    // 20 messages of 60 KiB: each replay is a ~1.2 MB frame.
    let mut epoch = String::new();
    for i in 0..20 {
        let data = Value::String(format!("{i}{}", "r".repeat(60 * 1024)));
        epoch = server
            .publish(publication("hist", data))
            .await
            .unwrap()
            .epoch;
    }
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .unwrap();
    let sub =
        json!({"type": "subscribe", "channel": "hist", "since": {"epoch": epoch, "sequence": 0}});
    let metrics = server.metrics();
    // Before the fix all 100 were queued (~120 MB; the frame bound is 1000).
    for _ in 0..100 {
        if ws.send(Message::text(sub.to_string())).await.is_err() {
            break;
        }
    }
    let m = metrics
        .wait_for(WAIT, |m| m.slow_consumer_disconnects == 1)
        .await
        .expect("closed as a slow consumer");
    assert_eq!(m.disconnects.get(&close::SLOW_CONSUMER), Some(&1));
    // Read what was in flight, then the close frame (unless the kernel reset the connection
    // first: the server closed it with the client's unread subscribes still in its buffer).
    loop {
        match within("the close", ws.next()).await {
            Some(Ok(Message::Close(f))) => {
                assert_eq!(f.map(|f| u16::from(f.code)), Some(close::SLOW_CONSUMER));
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => break,
        }
    }
    server.shutdown().await;
}

/// Item 3: re-subscribing did not count against anything; now every subscribe request counts
/// against `subscribes_per_minute`, at and just past the limit, until the window moves.
#[tokio::test]
async fn subscribe_requests_are_rate_limited_at_and_past_the_limit() {
    let clock = Clock::manual();
    let server = start_with(builder().subscribes_per_minute(5).clock(clock.clone())).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    for _ in 0..5 {
        c.subscribe("same").await;
    }
    c.send(json!({"type": "subscribe", "ref": "6", "channel": "same"}))
        .await;
    let e = c.expect_error(code::RATE_LIMITED).await;
    assert_eq!(e["ref"], "6");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("subscribes_per_minute")
    );
    clock.advance(Duration::from_secs(60));
    c.subscribe("same").await;
    server.shutdown().await;
}

/// Item 6: subscribe/unsubscribe churn left every channel behind. Now a channel nobody uses
/// is forgotten when its last subscriber leaves.
#[tokio::test]
async fn subscribe_unsubscribe_churn_leaves_no_channels_behind() {
    let server = start_with(builder().subscribes_per_minute(1000)).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    for i in 0..200 {
        let ch = format!("churn{i}");
        c.send(json!({"type": "subscribe", "channel": ch})).await;
        c.send(json!({"type": "unsubscribe", "channel": ch})).await;
    }
    let frames = c.sync().await;
    assert_eq!(
        frames
            .iter()
            .filter(|f| f["type"] == "unsubscribed")
            .count(),
        200
    );
    assert_eq!(server.broker().channel_count(), 0);
    // A channel with history is kept (until its history expires).
    server.publish(publication("kept", json!(1))).await.unwrap();
    c.subscribe("kept").await;
    c.send(json!({"type": "unsubscribe", "channel": "kept"}))
        .await;
    c.expect("unsubscribed").await;
    assert_eq!(server.broker().channel_count(), 1);
    // Unregistering a connection forgets its channels too.
    c.subscribe("left-open").await;
    assert_eq!(server.broker().channel_count(), 2);
    drop(c);
    server
        .metrics()
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("the connection is gone");
    assert_eq!(server.broker().channel_count(), 1);
    server.shutdown().await;
}

/// Item 7: presence enter/update was neither size-checked nor rate-limited.
#[tokio::test]
async fn presence_data_is_bounded_by_max_payload() {
    let limit = Limits::default().max_payload;
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    c.subscribe_presence("presence:p", "u", json!({})).await;
    let at = Value::String("m".repeat(limit - 2));
    let past = Value::String("m".repeat(limit - 1));
    for kind in ["presence_enter", "presence_update"] {
        c.send(json!({"type": kind, "ref": "at", "channel": "presence:p", "data": at}))
            .await;
        assert_eq!(c.expect("ack").await["ref"], "at");
        c.send(json!({"type": kind, "ref": "past", "channel": "presence:p", "data": past}))
            .await;
        let e = c.expect_error(code::PAYLOAD_TOO_LARGE).await;
        assert_eq!(e["ref"], "past");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn presence_updates_are_rate_limited_at_and_past_the_limit() {
    let clock = Clock::manual();
    let server = start_with(
        builder()
            .presence_updates_per_minute(3)
            .clock(clock.clone()),
    )
    .await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    c.subscribe_presence("presence:p", "u", json!({})).await;
    let mut watcher = WsClient::connect(addr).await;
    watcher
        .subscribe_presence("presence:p", "w", json!({}))
        .await;
    c.sync().await;
    c.send(json!({"type": "presence_enter", "channel": "presence:p", "data": {"n": 0}}))
        .await;
    c.expect("ack").await;
    for n in 1..3 {
        c.send(json!({"type": "presence_update", "channel": "presence:p", "data": {"n": n}}))
            .await;
        c.expect("ack").await;
    }
    c.send(
        json!({"type": "presence_update", "ref": "4", "channel": "presence:p", "data": {"n": 3}}),
    )
    .await;
    let e = c.expect_error(code::RATE_LIMITED).await;
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("presence_updates_per_minute")
    );
    // The refused update was not fanned out.
    let seen: Vec<Value> = watcher
        .sync()
        .await
        .into_iter()
        .filter(|f| f["type"] == "presence")
        .map(|f| f["member"]["data"]["n"].clone())
        .collect();
    assert!(!seen.contains(&json!(3)), "{seen:?}");
    clock.advance(Duration::from_secs(60));
    c.send(json!({"type": "presence_update", "channel": "presence:p", "data": {"n": 4}}))
        .await;
    c.expect("ack").await;
    server.shutdown().await;
}

/// Item 8: a frame past twice the frame limit closed the connection with 1005 (no code);
/// now with 1009 (message too big). Up to twice the limit: `frame_too_large`, still open.
#[tokio::test]
async fn a_frame_past_twice_the_limit_closes_with_1009() {
    let server = start_with(builder().max_frame_size(1024)).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    c.send_raw(Message::text("x".repeat(2048))).await;
    c.expect_error(code::FRAME_TOO_LARGE).await;
    c.send_raw(Message::text("x".repeat(2049))).await;
    let (code, _) = c.until_close().await;
    assert_eq!(code, Some(close::MESSAGE_TOO_BIG));
    server
        .metrics()
        .wait_for(WAIT, |m| {
            m.disconnects.get(&close::MESSAGE_TOO_BIG) == Some(&1)
        })
        .await
        .expect("counted as a 1009 disconnect");
    server.shutdown().await;
}
