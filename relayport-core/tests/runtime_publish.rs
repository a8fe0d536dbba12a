//! Publishing policies: the offline queue at and past its capacity, FIFO flush after
//! reconnect, throttle order and rate, payload limits, typing debounce and auto-stop.

mod common;

use std::time::Duration;

use common::*;
use relayport_core::testing::Call;
use relayport_core::{
    Capabilities, Channel, ClientEvent, CloseReason, ConnectionState, ErrorKind, RateLimit,
    RealtimeClient, RealtimeError,
};
use serde_json::{Value, json};

fn ch(s: &str) -> Channel {
    Channel::parse(s).unwrap()
}

fn published_data(script: &relayport_core::testing::Script) -> Vec<relayport_core::Payload> {
    script.published().into_iter().map(|m| m.data).collect()
}

#[tokio::test(start_paused = true)]
async fn the_offline_queue_holds_100_and_the_101st_evicts_the_oldest() {
    let (client, script) = client(|b| {
        b.lazy_connect(false)
            .publish_rate(RateLimit::per_second(1000))
    });
    let mut events = client.events();
    // The first publish is awaited elsewhere, to see its eviction.
    let c = client.clone();
    let first = tokio::spawn(async move { c.publish("news", "n", json!(0)).await });
    settle().await;
    for i in 1..100 {
        client.publish_nowait("news", "n", json!(i)).unwrap();
    }
    settle().await;
    assert!(events.try_recv().is_err(), "100 fit: nothing dropped");
    assert!(!first.is_finished());

    client.publish_nowait("news", "n", json!(100)).unwrap();
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::MessagesDropped { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::MessagesDropped {
            channel: ch("news"),
            count: 1,
            total: 1
        }
    );
    assert_eq!(
        first.await.unwrap(),
        Err(RealtimeError::Evicted { capacity: 100 })
    );

    client.connect().await.unwrap();
    wait_until("flushed", || script.published().len() == 100).await;
    let expected: Vec<Value> = (1..=100).map(|i| json!(i)).collect();
    assert_eq!(
        published_data(&script),
        expected,
        "FIFO flush, oldest dropped"
    );
}

#[tokio::test(start_paused = true)]
async fn publishes_during_an_outage_flush_in_order_after_reconnect() {
    let (client, script) = client(|b| {
        b.lazy_connect(false)
            .publish_rate(RateLimit::per_second(1000))
    });
    client.connect().await.unwrap();
    client.publish("a", "n", json!(1)).await.unwrap();
    script.drop_link(CloseReason::retry(None, "tunnel"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let c = client.clone();
    let awaited = tokio::spawn(async move { c.publish("b", "n", json!(2)).await });
    settle().await;
    client.publish_nowait("a", "n", json!(3)).unwrap();
    client.publish_nowait("b", "n", json!(4)).unwrap();
    awaited.await.unwrap().unwrap();
    wait_until("flushed", || script.published().len() == 4).await;
    assert_eq!(
        published_data(&script),
        vec![json!(1), json!(2), json!(3), json!(4)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_publish_interrupted_by_a_broken_link_is_resent_not_lost() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    script.fail_next_publish(RealtimeError::Connection("broken pipe".into()));
    client.publish("news", "n", json!("once")).await.unwrap();
    assert_eq!(script.connections(), 2, "the link was rebuilt");
    assert_eq!(published_data(&script), vec![json!("once"), json!("once")]);
}

#[tokio::test(start_paused = true)]
async fn a_refused_publish_fails_alone() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    script.fail_next_publish(RealtimeError::Forbidden {
        channel: "news".into(),
        reason: "client publishes need a private channel".into(),
    });
    let err = client.publish("news", "n", json!(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    client.publish("news", "n", json!(2)).await.unwrap();
    assert_eq!(script.connections(), 1);
}

#[tokio::test(start_paused = true)]
async fn throttle_keeps_order_and_drains_at_10_per_second() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    for i in 0..25 {
        client.publish_nowait("news", "n", json!(i)).unwrap();
    }
    client.publish_nowait("other", "n", json!("other")).unwrap();
    settle().await;
    let on_news = || {
        script
            .published()
            .iter()
            .filter(|m| m.channel == ch("news"))
            .count()
    };
    assert_eq!(on_news(), 10, "the first 10 go at once");
    assert!(
        script.published().iter().any(|m| m.channel == ch("other")),
        "another channel is not held back"
    );
    tokio::time::sleep(Duration::from_millis(999)).await;
    assert_eq!(on_news(), 10);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(on_news(), 20);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(on_news(), 25);
    let order: Vec<relayport_core::Payload> = script
        .published()
        .into_iter()
        .filter(|m| m.channel == ch("news"))
        .map(|m| m.data)
        .collect();
    assert_eq!(order, (0..25).map(|i| json!(i)).collect::<Vec<_>>());
}

#[tokio::test(start_paused = true)]
async fn payload_limit_at_and_past_64_kib() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    let at = json!("x".repeat(64 * 1024 - 2));
    client.publish("news", "n", at).await.unwrap();
    let past = json!("x".repeat(64 * 1024 - 1));
    let err = client.publish("news", "n", past.clone()).await.unwrap_err();
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: 65537,
            limit: 65536
        }
    );
    assert_eq!(
        client.publish_nowait("news", "n", past).unwrap_err().kind(),
        ErrorKind::PayloadTooLarge
    );
    assert_eq!(script.published().len(), 1, "refused before sending");
}

#[tokio::test(start_paused = true)]
async fn the_providers_smaller_limit_wins() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    script.set_session_hints(None, Some(1000), false);
    let client = RealtimeClient::builder(provider)
        .lazy_connect(false)
        .build();
    client.connect().await.unwrap();
    client
        .publish("news", "n", json!("x".repeat(998)))
        .await
        .unwrap();
    let err = client
        .publish("news", "n", json!("x".repeat(999)))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: 1001,
            limit: 1000
        }
    );

    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    script.set_capabilities({
        let mut caps = Capabilities::default();
        caps.max_payload = 10 * 1024;
        caps
    });
    let client = RealtimeClient::new(provider);
    let err = client
        .publish("news", "n", json!("x".repeat(10 * 1024)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
}

/// Issue 15 item 5: a provider's announced limit above the core's 64 KiB applies when the
/// application sets no cap of its own; an application cap still lowers it.
#[tokio::test(start_paused = true)]
async fn a_providers_larger_announced_limit_applies_unless_the_application_caps_it() {
    let announced = || {
        let (provider, script) = relayport_core::testing::ScriptedProvider::new();
        script.set_capabilities({
            let mut caps = Capabilities::default();
            caps.max_payload = 256 * 1000;
            caps
        });
        (provider, script)
    };
    let (provider, script) = announced();
    let client = RealtimeClient::new(provider);
    let big = json!("x".repeat(200 * 1000));
    client.publish("news", "n", big.clone()).await.unwrap();
    assert_eq!(script.published().len(), 1);
    let err = client
        .publish("news", "n", json!("x".repeat(256 * 1000)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);

    let (provider, _script) = announced();
    let capped = RealtimeClient::builder(provider)
        .max_payload(64 * 1024)
        .build();
    let err = capped.publish("news", "n", big).await.unwrap_err();
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: 200 * 1000 + 2,
            limit: 64 * 1024
        }
    );
}

#[tokio::test(start_paused = true)]
async fn publishing_is_refused_when_the_provider_cannot() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    script.set_capabilities({
        let mut caps = Capabilities::default();
        caps.client_publish = false;
        caps
    });
    let client = RealtimeClient::new(provider);
    let err = client.publish("news", "n", json!(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let err = client.publish("a.*", "n", json!(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidChannel, "never to a pattern");
}

#[tokio::test(start_paused = true)]
async fn close_fails_pending_publishes() {
    let (client, _script) = client(|b| b.lazy_connect(false));
    let c = client.clone();
    let pending = tokio::spawn(async move { c.publish("news", "n", json!(1)).await });
    settle().await;
    client.close().await;
    assert_eq!(
        pending.await.unwrap().unwrap_err().kind(),
        ErrorKind::Closed
    );
    assert_eq!(
        client
            .publish("news", "n", json!(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Closed
    );
}

fn typing_signals(script: &relayport_core::testing::Script) -> Vec<bool> {
    script
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Publish(m) if m.event == "typing" => m.data["typing"].as_bool(),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn typing_sends_at_most_one_signal_per_second_and_stops_by_itself() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    for _ in 0..10 {
        client.start_typing("room").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        typing_signals(&script),
        [true],
        "10 keystrokes in 0.5 s: one signal"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.start_typing("room").unwrap();
    settle().await;
    assert_eq!(
        typing_signals(&script),
        [true, true],
        "a second signal after 1 s"
    );
    let last_keystroke = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(4_999)).await;
    assert_eq!(typing_signals(&script), [true, true]);
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        typing_signals(&script),
        [true, true, false],
        "auto-stop 5 s after the last"
    );
    assert!(tokio::time::Instant::now() - last_keystroke >= Duration::from_secs(5));
    let signal = script.published().pop().unwrap();
    assert_eq!(signal.data, json!({"typing": false, "client_id": "alice"}));
}

#[tokio::test(start_paused = true)]
async fn stop_typing_stops_at_once_and_only_once() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    client.start_typing("room").unwrap();
    client.stop_typing("room").unwrap();
    client.stop_typing("room").unwrap();
    settle().await;
    assert_eq!(typing_signals(&script), [true, false]);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        typing_signals(&script),
        [true, false],
        "no auto-stop after a stop"
    );
}

#[tokio::test(start_paused = true)]
async fn typing_is_not_queued_while_offline() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.start_typing("room").unwrap();
    settle().await;
    client.connect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(typing_signals(&script).is_empty());
}
