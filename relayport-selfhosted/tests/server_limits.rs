//! Every limit at and just past it, and the slow-consumer disconnect with a bounded queue.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::time::Duration;

use futures_util::StreamExt;
use relayport_selfhosted::protocol::{Limits, close, code};
use relayport_selfhosted::server::{Clock, Publication};
use serde_json::{Value, json};
use server_common::*;
use tokio_tungstenite::tungstenite::Message;

/// A JSON string value whose serialized size is exactly `n` bytes (quotes included).
fn payload_of(n: usize) -> Value {
    Value::String("x".repeat(n - 2))
}

#[tokio::test]
async fn payload_64kib_is_accepted_and_one_byte_more_is_refused() {
    let limit = Limits::default().max_payload;
    assert_eq!(limit, 64 * 1024);
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    c.subscribe_private("private:big").await;
    // WebSocket client publish.
    c.send(json!({"type": "publish", "ref": "ok", "channel": "private:big", "event": "e", "data": payload_of(limit)}))
        .await;
    let frames = c.sync().await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "ack" && f["ref"] == "ok"),
        "exactly at the limit is fine"
    );
    c.send(json!({"type": "publish", "ref": "big", "channel": "private:big", "event": "e", "data": payload_of(limit + 1)}))
        .await;
    let e = c.expect_error(code::PAYLOAD_TOO_LARGE).await;
    assert_eq!(e["ref"], "big");
    assert!(
        e["message"].as_str().unwrap_or("").contains("max_payload"),
        "{e}"
    );
    // HTTP publish.
    let (s, _) = publish(
        addr,
        json!({"channel": "room", "event": "e", "data": payload_of(limit)}),
    )
    .await;
    assert_eq!(s, 200);
    let (s, body) = publish(
        addr,
        json!({"channel": "room", "event": "e", "data": payload_of(limit + 1)}),
    )
    .await;
    assert_eq!(s, 413);
    assert_eq!(body["error"]["code"], code::PAYLOAD_TOO_LARGE);
    server.shutdown().await;
}

#[tokio::test]
async fn fifty_subscriptions_are_fine_and_the_fifty_first_is_refused() {
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    for i in 0..50 {
        c.send(json!({"type": "subscribe", "channel": format!("ch{i}")}))
            .await;
    }
    let frames = c.sync().await;
    assert_eq!(
        frames.iter().filter(|f| f["type"] == "subscribed").count(),
        50
    );
    c.send(json!({"type": "subscribe", "ref": "51", "channel": "ch50"}))
        .await;
    let e = c.expect_error(code::TOO_MANY_SUBSCRIPTIONS).await;
    assert_eq!(
        (e["ref"].as_str(), e["channel"].as_str()),
        (Some("51"), Some("ch50"))
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("max_subscriptions")
    );
    assert_eq!(server.metrics().snapshot().subscriptions, 50);
    // Freeing one makes room again.
    c.send(json!({"type": "unsubscribe", "channel": "ch0"}))
        .await;
    c.expect("unsubscribed").await;
    c.subscribe("ch50").await;
    server.shutdown().await;
}

#[tokio::test]
async fn hundred_publishes_per_minute_then_rate_limited_until_the_window_moves() {
    let clock = Clock::manual();
    let server = start_with(builder().clock(clock.clone())).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    c.subscribe_private("private:r").await;
    for i in 0..100 {
        c.send(json!({"type": "publish", "ref": i.to_string(), "channel": "private:r", "event": "e", "data": i}))
            .await;
    }
    let frames = c.sync().await;
    assert_eq!(frames.iter().filter(|f| f["type"] == "ack").count(), 100);
    assert_eq!(frames.iter().filter(|f| f["type"] == "error").count(), 0);
    c.send(
        json!({"type": "publish", "ref": "101", "channel": "private:r", "event": "e", "data": 101}),
    )
    .await;
    let e = c.expect_error(code::RATE_LIMITED).await;
    assert_eq!(e["ref"], "101");
    assert!(
        e["message"]
            .as_str()
            .unwrap_or("")
            .contains("publishes_per_minute")
    );
    clock.advance(Duration::from_secs(59));
    c.send(json!({"type": "publish", "channel": "private:r", "event": "e", "data": 0}))
        .await;
    c.expect_error(code::RATE_LIMITED).await;
    clock.advance(Duration::from_secs(1));
    c.send(
        json!({"type": "publish", "ref": "again", "channel": "private:r", "event": "e", "data": 0}),
    )
    .await;
    let frames = c.sync().await;
    assert!(
        frames
            .iter()
            .any(|f| f["type"] == "ack" && f["ref"] == "again"),
        "{frames:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn batch_of_100_is_published_and_101_is_refused() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    c.subscribe("b").await;
    let batch = |n: usize| json!({"batch": (0..n).map(|i| json!({"channel": "b", "event": "e", "data": i})).collect::<Vec<_>>()});
    let (s, body) = publish(addr, batch(101)).await;
    assert_eq!(s, 400);
    assert_eq!(body["error"]["code"], code::BATCH_TOO_LARGE);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("max_batch"),
        "{body}"
    );
    assert!(
        c.sync().await.is_empty(),
        "nothing of a refused batch is published"
    );
    let (s, body) = publish(addr, batch(100)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["published"].as_array().map(Vec::len), Some(100));
    let seqs: Vec<u64> = c
        .sync()
        .await
        .iter()
        .map(|m| m["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>(), "in order, gapless");
    server.shutdown().await;
}

/// A client that stops reading fills its bounded queue and is closed with SLOW_CONSUMER; the
/// queue never exceeds its bound, and the client recovers everything through history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_disconnected_with_a_bounded_queue_and_recovers() {
    let queue = 8;
    let limits = Limits {
        send_queue: queue,
        ..Limits::default()
    };
    let server = start_with(builder().limits(limits).history_size(100_000).ws_buffers(
        4096,
        4096,
        64 * 1024 * 1024,
    ))
    .await;
    let addr = server.local_addr();
    // A raw TCP socket with a tiny receive buffer, upgraded by hand; after subscribing it is
    // never polled, so nothing is read from the socket.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let tcp = sock.connect(addr).await.unwrap();
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws"), tcp)
        .await
        .unwrap();
    use futures_util::SinkExt;
    let read_json = async |ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>| loop {
        match within("a frame", ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str::<Value>(t.as_str()).unwrap();
            }
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(read_json(&mut ws).await["type"], "connected");
    ws.send(Message::text(
        json!({"type": "subscribe", "channel": "firehose"}).to_string(),
    ))
    .await
    .unwrap();
    let sub = read_json(&mut ws).await;
    assert_eq!(sub["type"], "subscribed");
    let epoch = sub["position"]["epoch"].as_str().unwrap().to_owned();

    // Publish until the server gives up on the client (bounded: the socket buffers are small).
    let metrics = server.metrics();
    let data = Value::String("y".repeat(16 * 1024));
    let mut published = 0u64;
    while metrics.snapshot().slow_consumer_disconnects == 0 {
        assert!(published < 5_000, "never disconnected");
        let p = Publication {
            encoding: None,
            channel: "firehose".parse().unwrap(),
            event: "e".into(),
            data: data.clone(),
            sender: None,
            exclude: None,
            retain: false,
        };
        server.publish(p).await.unwrap();
        published += 1;
        tokio::task::yield_now().await;
    }
    let m = metrics.snapshot();
    assert!(
        m.queue_high_water <= queue as u64,
        "queue exceeded its bound: {m:?}"
    );
    assert!(m.drops >= 1);
    // Keep publishing: nothing more is queued for the kicked client.
    for _ in 0..20 {
        let p = Publication {
            encoding: None,
            channel: "firehose".parse().unwrap(),
            event: "e".into(),
            data: json!(published),
            sender: None,
            exclude: None,
            retain: false,
        };
        server.publish(p).await.unwrap();
        published += 1;
    }
    assert!(metrics.snapshot().queue_high_water <= queue as u64);

    // Now read: whatever was in flight, then the close frame with SLOW_CONSUMER.
    let mut last_seq = 0;
    let close_code = loop {
        match within("the slow-consumer close", ws.next()).await {
            Some(Ok(Message::Text(t))) => {
                let m: Value = serde_json::from_str(t.as_str()).unwrap();
                let seq = m["seq"].as_u64().unwrap();
                assert_eq!(seq, last_seq + 1, "gapless until the cut");
                last_seq = seq;
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("expected the close frame, got {other:?}"),
        }
    };
    assert_eq!(close_code, Some(close::SLOW_CONSUMER));
    assert!(last_seq < published, "the client fell behind");
    let m = metrics
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("the connection is gone");
    assert_eq!(m.disconnects.get(&close::SLOW_CONSUMER), Some(&1));
    let text = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("realtime_slow_consumer_disconnects_total 1"),
        "{text}"
    );

    // Reconnect and recover the rest from history: nothing lost, nothing duplicated.
    let mut c = WsClient::connect(addr).await;
    c.send(json!({"type": "subscribe", "channel": "firehose", "since": {"epoch": epoch, "sequence": last_seq}}))
        .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["recovered"], true);
    let seqs: Vec<u64> = sub["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, ((last_seq + 1)..=published).collect::<Vec<_>>());
    server.shutdown().await;
}
