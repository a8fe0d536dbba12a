//! The client against the real server, in process, over loopback: the provider on its own,
//! and `RealtimeClient` on top of it (presence between two clients, reconnect with recovery,
//! gaps, latency).
#![cfg(all(feature = "client", feature = "server"))]

mod client_support;

use std::sync::Arc;
use std::time::Duration;

use client_support::{WAIT, within};
use relayport_core::{
    AuthRequest, Backoff, Channel, ClientEvent, ConnectionState, ErrorKind, Message,
    OutboundMessage, PresenceAction, PresenceMember, ProviderEvent, Publisher, RealtimeClient,
    RealtimeProvider, Recovery, SubscribeOptions,
};
use relayport_selfhosted::client::{SelfHostedProvider, SelfHostedPublisher, Transport};
use relayport_selfhosted::server::{Publication, SelfHostedAuthorizer, Server, ServerHandle};
use serde_json::{Value, json};
use tokio::sync::broadcast;

const SECRET: &str = "e2e-secret";

async fn start(history: usize) -> ServerHandle {
    Server::builder()
        .secret(SECRET)
        .history_size(history)
        .bind("127.0.0.1:0")
        .await
        .expect("server")
}

fn url(server: &ServerHandle) -> String {
    format!("http://{}", server.local_addr())
}

fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        factor: 2,
        max: Duration::from_millis(200),
        jitter: Duration::ZERO,
        max_attempts: 200,
    }
}

fn client(server: &ServerHandle, user: &str) -> RealtimeClient {
    let provider = SelfHostedProvider::new(&url(server)).expect("provider");
    RealtimeClient::builder(provider)
        .authorizer(Arc::new(SelfHostedAuthorizer::new(SECRET)))
        .client_id(user)
        .backoff(fast_backoff())
        .build()
}

fn publication(channel: &str, n: u64) -> Publication {
    Publication {
        encoding: None,
        channel: Channel::parse(channel).expect("channel"),
        event: "chat".into(),
        data: json!({ "n": n }),
        sender: None,
        exclude: None,
        retain: false,
    }
}

async fn next_message(sub: &mut relayport_core::Subscription) -> Message {
    within("a message", sub.recv())
        .await
        .expect("the subscription ended")
}

async fn wait_event(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(e) if pick(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn provider_connects_subscribes_publishes_and_receives() {
    let server = start(100).await;
    let provider = SelfHostedProvider::new(&url(&server)).expect("provider");
    let (sink, mut events) = client_support::sink();
    let session = within("connect", provider.connect(sink))
        .await
        .expect("connect");
    assert!(!session.connection_id.is_empty());
    assert!(session.heartbeat_interval.is_some());
    assert_eq!(provider.transport(), Some(Transport::WebSocket));

    // A private channel, signed for this socket by the server's authorizer.
    let room = Channel::private("room:1");
    let auth = SelfHostedAuthorizer::new(SECRET)
        .sign(&AuthRequest {
            socket_id: session.connection_id.clone(),
            channel: room.clone(),
            user: None,
        })
        .expect("sign");
    let options = SubscribeOptions {
        auth: Some(auth),
        ..SubscribeOptions::default()
    };
    let subscribed = within("subscribe", provider.subscribe(&room, &options))
        .await
        .expect("subscribe");
    assert_eq!(subscribed.recovery, Recovery::NotAttempted);
    let start = subscribed.position.expect("a position").sequence;

    // A wrong signature is refused with Unauthorized.
    let bad = SubscribeOptions {
        auth: Some(relayport_core::ChannelAuth(
            json!({"auth": "00".repeat(32)}),
        )),
        ..SubscribeOptions::default()
    };
    let err = within(
        "bad subscribe",
        provider.subscribe(&Channel::private("other"), &bad),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);

    // Publish from the connection: acked, and echoed to the sender with server metadata.
    let out = OutboundMessage::new(room.clone(), "chat", json!({"text": "hi"}));
    within("publish", provider.publish(&out))
        .await
        .expect("publish");
    let got = match events.next().await {
        ProviderEvent::Message(m) => m,
        other => panic!("expected the echo, got {other:?}"),
    };
    assert_eq!(
        (got.channel.clone(), got.event.as_str()),
        (room.clone(), "chat")
    );
    assert_eq!(got.data, json!({"text": "hi"}));
    assert_eq!(got.sender.as_deref(), Some(session.connection_id.as_str()));
    assert_eq!(got.position.as_ref().map(|p| p.sequence), Some(start + 1));
    assert!(got.timestamp.is_some() && got.id.is_some());

    // Public client publishes are refused by default.
    let public = OutboundMessage::new(Channel::public("news"), "e", json!(1));
    let err = within("public publish", provider.publish(&public))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);

    // Ping is a round trip.
    within("ping", provider.ping()).await.expect("ping");

    // Unsubscribe: a later publish there no longer arrives; the next event is from a channel
    // still subscribed.
    within("unsubscribe", provider.unsubscribe(&room))
        .await
        .expect("unsubscribe");
    server
        .publish(publication("private:room:1", 99))
        .await
        .expect("publish");
    let feed = Channel::public("feed");
    within(
        "subscribe feed",
        provider.subscribe(&feed, &SubscribeOptions::default()),
    )
    .await
    .expect("feed");
    server
        .publish(publication("feed", 1))
        .await
        .expect("publish");
    match events.next().await {
        ProviderEvent::Message(m) => assert_eq!(m.channel, feed, "nothing from the left room"),
        other => panic!("unexpected {other:?}"),
    }
    within("disconnect", provider.disconnect())
        .await
        .expect("disconnect");
    server.shutdown().await;
}

#[tokio::test]
async fn publisher_single_batch_and_wrong_secret() {
    let server = start(100).await;
    let provider = SelfHostedProvider::new(&url(&server)).expect("provider");
    let (sink, mut events) = client_support::sink();
    within("connect", provider.connect(sink))
        .await
        .expect("connect");
    let news = Channel::public("news");
    within(
        "subscribe",
        provider.subscribe(&news, &SubscribeOptions::default()),
    )
    .await
    .expect("subscribe");

    let publisher = SelfHostedPublisher::new(&url(&server), SECRET).expect("publisher");
    assert!(
        !format!("{publisher:?}").contains(SECRET),
        "Debug hides the secret"
    );
    let one = OutboundMessage::new(news.clone(), "headline", json!({"n": 1}));
    within("publish", publisher.publish(&one))
        .await
        .expect("publish");
    let batch: Vec<OutboundMessage> = (2..=4)
        .map(|n| OutboundMessage::new(news.clone(), "headline", json!({ "n": n })))
        .collect();
    within("batch", publisher.publish_batch(&batch))
        .await
        .expect("batch");
    let mut seen = Vec::new();
    while seen.len() < 4 {
        match events.next().await {
            ProviderEvent::Message(m) => seen.push(m.data["n"].as_u64().unwrap_or(0)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec![1, 2, 3, 4], "in order, once each");

    let wrong = SelfHostedPublisher::new(&url(&server), "not-the-secret").expect("publisher");
    let err = within("wrong secret", wrong.publish(&one))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let err = within("wrong secret batch", wrong.publish_batch(&batch))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    // Refused before sending: too large for the configured limit, or a wildcard.
    let small = SelfHostedPublisher::new(&url(&server), SECRET)
        .expect("publisher")
        .with_max_payload(10);
    let big = OutboundMessage::new(news.clone(), "e", json!("x".repeat(20)));
    assert_eq!(
        small.publish(&big).await.unwrap_err().kind(),
        ErrorKind::PayloadTooLarge
    );
    let wild = OutboundMessage::new("news.*".parse().expect("pattern"), "e", json!(1));
    assert_eq!(
        publisher.publish(&wild).await.unwrap_err().kind(),
        ErrorKind::InvalidChannel
    );
    // A server that is not there is a retryable connection error.
    let addr = server.local_addr();
    server.shutdown().await;
    let gone = SelfHostedPublisher::new(&format!("http://{addr}"), SECRET).expect("publisher");
    let err = within("no server", gone.publish(&one)).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn presence_join_update_leave_between_two_clients() {
    let server = start(100).await;
    let alice = client(&server, "alice");
    let bob = client(&server, "bob");
    let room = "presence:room";

    within(
        "alice enters",
        alice.presence_enter(room, json!({"name": "Alice"})),
    )
    .await
    .expect("alice enters");
    let mut alice_sees = within("alice listens", alice.presence_events(room))
        .await
        .expect("alice listens");
    // A presence stream starts with the members already there: alice herself.
    let present = within("alice's own join", alice_sees.recv())
        .await
        .expect("event");
    assert_eq!(present.action, PresenceAction::Joined);
    assert_eq!(
        present.member,
        PresenceMember::new("alice", json!({"name": "Alice"}))
    );
    within(
        "bob enters",
        bob.presence_enter(room, json!({"name": "Bob"})),
    )
    .await
    .expect("bob enters");

    let joined = within("bob's join", alice_sees.recv())
        .await
        .expect("event");
    assert_eq!(joined.action, PresenceAction::Joined);
    assert_eq!(
        joined.member,
        PresenceMember::new("bob", json!({"name": "Bob"}))
    );

    let mut members = within("members", bob.presence_members(room))
        .await
        .expect("members");
    members.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        members,
        vec![
            PresenceMember::new("alice", json!({"name": "Alice"})),
            PresenceMember::new("bob", json!({"name": "Bob"})),
        ]
    );

    within(
        "update",
        bob.presence_update(room, json!({"name": "Bob", "away": true})),
    )
    .await
    .expect("update");
    let updated = within("bob's update", alice_sees.recv())
        .await
        .expect("event");
    assert_eq!(updated.action, PresenceAction::Updated);
    assert_eq!(updated.member.data, json!({"name": "Bob", "away": true}));

    within("leave", bob.presence_leave(room))
        .await
        .expect("leave");
    let left = within("bob's leave", alice_sees.recv())
        .await
        .expect("event");
    assert_eq!(left.action, PresenceAction::Left);
    assert_eq!(left.member.id, "bob");

    alice.close().await;
    bob.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_after_restart_recovers_missed_messages_exactly_once() {
    let server = start(100).await;
    let bob = client(&server, "bob");
    let mut events = bob.events();
    let mut sub = within("subscribe", bob.subscribe("private:room"))
        .await
        .expect("subscribe");
    for n in 1..=3 {
        server
            .publish(publication("private:room", n))
            .await
            .expect("publish");
    }
    let mut seen: Vec<u64> = Vec::new();
    for _ in 1..=3 {
        seen.push(next_message(&mut sub).await.data["n"].as_u64().unwrap_or(0));
    }

    // The server goes away; while it is down the backend publishes 4..=6.
    let addr = server.local_addr();
    let config = server.config().clone();
    let broker = server.broker();
    server.shutdown().await;
    wait_event(&mut events, "the link to drop", |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    for n in 4..=6 {
        broker.publish(publication("private:room", n));
    }
    let server = Server::builder()
        .config(config)
        .broker(broker)
        .bind(addr)
        .await
        .expect("restart");

    let resubscribed = wait_event(&mut events, "resubscribed", |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        resubscribed,
        ClientEvent::Resubscribed {
            channel: Channel::private("room"),
            recovered: true
        }
    );
    server
        .publish(publication("private:room", 7))
        .await
        .expect("publish");
    while seen.last() != Some(&7) {
        seen.push(next_message(&mut sub).await.data["n"].as_u64().unwrap_or(0));
    }
    assert_eq!(
        seen,
        vec![1, 2, 3, 4, 5, 6, 7],
        "zero lost, zero duplicated"
    );
    bob.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_gap_beyond_history_asks_the_app_to_resync() {
    let server = start(2).await;
    let bob = client(&server, "bob");
    let mut events = bob.events();
    let mut sub = within("subscribe", bob.subscribe("feed"))
        .await
        .expect("subscribe");
    server
        .publish(publication("feed", 1))
        .await
        .expect("publish");
    assert_eq!(next_message(&mut sub).await.data, json!({"n": 1}));

    // The server goes away; while it is down the backend publishes past the history.
    let addr = server.local_addr();
    let config = server.config().clone();
    let broker = server.broker();
    server.shutdown().await;
    wait_event(&mut events, "the link to drop", |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    for n in 2..=6 {
        broker.publish(publication("feed", n));
    }
    let server = Server::builder()
        .config(config)
        .broker(broker)
        .bind(addr)
        .await
        .expect("restart");
    wait_event(&mut events, "sync required", |e| {
        matches!(e, ClientEvent::SyncRequired { channel } if *channel == Channel::public("feed"))
    })
    .await;
    let resubscribed = wait_event(&mut events, "resubscribed", |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        resubscribed,
        ClientEvent::Resubscribed {
            channel: Channel::public("feed"),
            recovered: false
        }
    );
    // Live messages flow again after the gap.
    server
        .publish(publication("feed", 7))
        .await
        .expect("publish");
    let mut last = Value::Null;
    while last != json!({"n": 7}) {
        last = next_message(&mut sub).await.data.into_json().unwrap();
    }
    bob.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn heartbeats_measure_latency() {
    let server = Server::builder()
        .secret(SECRET)
        .heartbeat(Duration::from_millis(50))
        .bind("127.0.0.1:0")
        .await
        .expect("server");
    let provider = SelfHostedProvider::new(&url(&server)).expect("provider");
    // Every round trip is "degraded" above zero, so each heartbeat reports its rtt.
    let c = RealtimeClient::builder(provider)
        .degraded_threshold(Duration::ZERO)
        .build();
    let mut events = c.events();
    within("connect", c.connect()).await.expect("connect");
    let rtt = match wait_event(&mut events, "a heartbeat", |e| {
        matches!(e, ClientEvent::ConnectionDegraded { .. })
    })
    .await
    {
        ClientEvent::ConnectionDegraded { rtt } => rtt,
        _ => unreachable!(),
    };
    assert!(rtt < WAIT);
    assert!(c.latency().is_some());
    c.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_hands_over_snapshot_and_replay_before_returning() {
    let server = start(100).await;
    // Three messages, the last one retained as the channel's snapshot.
    for n in 1..=3 {
        let mut p = publication("scores", n);
        p.retain = n == 3;
        server.publish(p).await.expect("publish");
    }
    let provider = SelfHostedProvider::new(&url(&server)).expect("provider");
    let (sink, mut events) = client_support::sink();
    within("connect", provider.connect(sink))
        .await
        .expect("connect");
    let scores = Channel::public("scores");
    let first = within(
        "subscribe",
        provider.subscribe(&scores, &SubscribeOptions::default()),
    )
    .await
    .expect("subscribe");
    let epoch = first.position.as_ref().and_then(|p| p.epoch.clone());
    assert_eq!(first.position.as_ref().map(|p| p.sequence), Some(3));
    // Already in the sink when `subscribe` returned: the snapshot, without a position.
    match events.try_next() {
        Some(ProviderEvent::Message(m)) => {
            assert_eq!(m.data, json!({"n": 3}));
            assert_eq!(m.position, None);
        }
        other => panic!("expected the snapshot, got {other:?}"),
    }
    assert!(events.try_next().is_none(), "no replay without `since`");

    // Resubscribing from seq 1 replays 2 and 3 (after the snapshot), before returning.
    within("unsubscribe", provider.unsubscribe(&scores))
        .await
        .expect("unsubscribe");
    let since = relayport_core::Position { epoch, sequence: 1 };
    let options = SubscribeOptions {
        since: Some(since),
        ..SubscribeOptions::default()
    };
    let again = within("resubscribe", provider.subscribe(&scores, &options))
        .await
        .expect("resubscribe");
    assert_eq!(again.recovery, Recovery::Recovered);
    let got: Vec<(Option<u64>, Value)> = events
        .drain()
        .into_iter()
        .map(|e| match e {
            ProviderEvent::Message(m) => {
                (m.position.map(|p| p.sequence), m.data.into_json().unwrap())
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (None, json!({"n": 3})),
            (Some(2), json!({"n": 2})),
            (Some(3), json!({"n": 3})),
        ]
    );
    server.shutdown().await;
}
