//! The WebSocket client against a scripted peer that asserts every frame the client sends.
#![cfg(feature = "client")]

mod client_support;

use std::time::Duration;

use client_support::{Events, PeerServer, connected, reference, within};
use relayport_core::{
    Channel, ChannelAuth, ErrorKind, Message, OutboundMessage, Position, PresenceChange,
    PresenceMember, ProviderEvent, RealtimeError, RealtimeProvider, Reconnect, Recovery,
    SubscribeOptions,
};
use relayport_selfhosted::client::{SelfHostedProvider, Transport};
use relayport_selfhosted::protocol::{
    ClientFrame, Limits, MessageFrame, PresenceAction, ServerFrame,
};
use serde_json::json;

fn msg(channel: &str, seq: u64, text: &str) -> MessageFrame {
    MessageFrame {
        encoding: None,
        channel: channel.into(),
        event: "chat".into(),
        data: json!({ "text": text }),
        id: format!("e1-{seq}"),
        seq,
        epoch: "e1".into(),
        ts: 1_700_000_000_000 + seq,
        sender: None,
    }
}

fn pos(seq: u64) -> Position {
    Position {
        epoch: Some("e1".into()),
        sequence: seq,
    }
}

fn message_event(e: ProviderEvent) -> Message {
    match e {
        ProviderEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn connected_provider(
    server: &PeerServer,
) -> (SelfHostedProvider, client_support::Peer, Events) {
    let provider = SelfHostedProvider::new(&server.url).expect("provider");
    let (sink, events) = client_support::sink();
    let (session, peer) = tokio::join!(provider.connect(sink), server.accept_connected("n.1"));
    let session = session.expect("connect");
    assert_eq!(session.connection_id, "n.1");
    (provider, peer, events)
}

#[tokio::test]
async fn connect_reports_the_session_and_the_transport() {
    let server = PeerServer::bind().await;
    let provider = SelfHostedProvider::new(&server.url).expect("provider");
    assert_eq!(provider.transport(), None);
    let (sink, _events) = client_support::sink();
    let accept = async {
        let mut peer = server.accept().await;
        peer.send(&ServerFrame::Connected {
            socket_id: "n.7".into(),
            protocol: 1,
            heartbeat_ms: 25_000,
            limits: Limits {
                max_payload: 1000,
                ..Limits::default()
            },
        })
        .await;
        peer
    };
    let (session, peer) = tokio::join!(provider.connect(sink), accept);
    let session = session.expect("connect");
    assert_eq!(peer.uri, "/ws?v=1");
    assert_eq!(session.connection_id, "n.7");
    assert_eq!(session.heartbeat_interval, Some(Duration::from_secs(25)));
    assert_eq!(session.max_payload, Some(1000));
    assert!(!session.resumed);
    assert_eq!(provider.transport(), Some(Transport::WebSocket));
    assert_eq!(provider.limits().max_payload, 1000);

    // The announced limit is enforced before sending.
    let big = OutboundMessage::new(Channel::private("a"), "e", json!("x".repeat(1000)));
    let err = provider.publish(&big).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
}

#[tokio::test]
async fn a_base_path_is_kept_and_bad_urls_are_config_errors() {
    let server = PeerServer::bind().await;
    let provider = SelfHostedProvider::new(&format!("{}/realtime", server.url)).expect("p");
    let (sink, _events) = client_support::sink();
    let (session, peer) = tokio::join!(provider.connect(sink), server.accept_connected("n.1"));
    session.expect("connect");
    assert_eq!(peer.uri, "/realtime/ws?v=1");
    for bad in ["not a url", "ftp://host", "mailto:x@y"] {
        let err = SelfHostedProvider::new(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config, "{bad}");
    }
}

#[tokio::test]
async fn subscribe_delivers_snapshot_then_replay_before_returning_then_live() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;
    let room = Channel::public("room");
    let options = SubscribeOptions {
        since: Some(pos(2)),
        ..SubscribeOptions::default()
    };
    let script = async {
        let frame = peer.recv().await;
        let r = reference(&frame);
        assert!(r.is_some(), "subscribe carries a ref");
        assert_eq!(
            frame,
            ClientFrame::Subscribe {
                reference: r.clone(),
                channel: "room".into(),
                auth: None,
                channel_data: None,
                since: Some(pos(2)),
            }
        );
        peer.send(&ServerFrame::Subscribed {
            reference: r,
            channel: "room".into(),
            snapshot: Some(msg("room", 1, "state")),
            members: None,
            recovered: Some(true),
            messages: vec![msg("room", 3, "missed a"), msg("room", 4, "missed b")],
            position: Some(pos(4)),
        })
        .await;
        // A live message right behind the answer.
        peer.send(&ServerFrame::Message(msg("room", 5, "live")))
            .await;
    };
    let (subscribed, ()) = tokio::join!(provider.subscribe(&room, &options), script);
    let subscribed = subscribed.expect("subscribe");
    assert_eq!(subscribed.recovery, Recovery::Recovered);
    assert_eq!(subscribed.position, Some(pos(4)));

    let snapshot = message_event(events.next().await);
    assert_eq!(snapshot.data, json!({"text": "state"}));
    assert_eq!(
        snapshot.position, None,
        "a snapshot is state, not part of the stream"
    );
    let texts: Vec<(u64, serde_json::Value)> = [
        message_event(events.next().await),
        message_event(events.next().await),
        message_event(events.next().await),
    ]
    .into_iter()
    .map(|m| {
        (
            m.position.map(|p| p.sequence).unwrap_or(0),
            m.data.into_json().unwrap(),
        )
    })
    .collect();
    assert_eq!(
        texts,
        vec![
            (3, json!({"text": "missed a"})),
            (4, json!({"text": "missed b"})),
            (5, json!({"text": "live"})),
        ]
    );
}

#[tokio::test]
async fn recovery_outcomes_follow_the_answer() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, _events) = connected_provider(&server).await;
    let cases = [
        (None, None, Recovery::NotAttempted),
        (Some(pos(1)), Some(true), Recovery::Recovered),
        (Some(pos(1)), Some(false), Recovery::Gap),
        (Some(pos(1)), None, Recovery::Gap),
    ];
    for (since, recovered, expected) in cases {
        let room = Channel::public("room");
        let options = SubscribeOptions {
            since: since.clone(),
            ..SubscribeOptions::default()
        };
        let script = async {
            let frame = peer.recv().await;
            assert!(matches!(&frame, ClientFrame::Subscribe { since: s, .. } if *s == since));
            peer.send(&ServerFrame::Subscribed {
                reference: reference(&frame),
                channel: "room".into(),
                snapshot: None,
                members: None,
                recovered,
                messages: vec![],
                position: None,
            })
            .await;
        };
        let (got, ()) = tokio::join!(provider.subscribe(&room, &options), script);
        assert_eq!(
            got.expect("subscribe").recovery,
            expected,
            "{since:?} {recovered:?}"
        );
    }
}

#[tokio::test]
async fn private_and_presence_subscriptions_carry_the_signature() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;

    // Private: `auth` only.
    let private = Channel::private("room:1");
    let options = SubscribeOptions {
        auth: Some(ChannelAuth(json!({"auth": "abc123"}))),
        ..SubscribeOptions::default()
    };
    let script = async {
        let frame = peer.recv().await;
        assert_eq!(
            frame,
            ClientFrame::Subscribe {
                reference: reference(&frame),
                channel: "private:room:1".into(),
                auth: Some("abc123".into()),
                channel_data: None,
                since: None,
            }
        );
        peer.send(&ServerFrame::Subscribed {
            reference: reference(&frame),
            channel: "private:room:1".into(),
            snapshot: None,
            members: None,
            recovered: None,
            messages: vec![],
            position: Some(pos(0)),
        })
        .await;
    };
    let (got, ()) = tokio::join!(provider.subscribe(&private, &options), script);
    assert_eq!(got.expect("private").position, Some(pos(0)));

    // Presence: `auth` and the exact `channel_data` string; the members arrive as a snapshot.
    let presence = Channel::presence("room:1");
    let data = r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#;
    let options = SubscribeOptions {
        auth: Some(ChannelAuth(json!({"auth": "def456", "channel_data": data}))),
        presence_data: Some(json!({"name": "Alice"})),
        ..SubscribeOptions::default()
    };
    let alice = PresenceMember::new("alice", json!({"name": "Alice"}));
    let script = async {
        let frame = peer.recv().await;
        assert_eq!(
            frame,
            ClientFrame::Subscribe {
                reference: reference(&frame),
                channel: "presence:room:1".into(),
                auth: Some("def456".into()),
                channel_data: Some(data.into()),
                since: None,
            }
        );
        peer.send(&ServerFrame::Subscribed {
            reference: reference(&frame),
            channel: "presence:room:1".into(),
            snapshot: None,
            members: Some(vec![alice.clone()]),
            recovered: None,
            messages: vec![],
            position: None,
        })
        .await;
    };
    let (got, ()) = tokio::join!(provider.subscribe(&presence, &options), script);
    got.expect("presence");
    assert_eq!(
        events.next().await,
        ProviderEvent::Presence {
            channel: presence.clone(),
            change: PresenceChange::Snapshot(vec![alice]),
        }
    );

    // Without a usable authorization nothing is sent: the next frame the peer sees is a ping.
    for auth in [None, Some(json!({"sig": "x"})), Some(json!({"auth": "x"}))] {
        let options = SubscribeOptions {
            auth: auth.clone().map(ChannelAuth),
            ..SubscribeOptions::default()
        };
        let err = provider.subscribe(&presence, &options).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{auth:?}");
    }
    let script = async {
        let frame = peer.recv().await;
        assert!(matches!(frame, ClientFrame::Ping { .. }), "{frame:?}");
        peer.send(&ServerFrame::Pong {
            reference: reference(&frame),
        })
        .await;
    };
    let (rtt, ()) = tokio::join!(provider.ping(), script);
    rtt.expect("ping");
}

#[tokio::test]
async fn refusals_map_to_error_kinds() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, _events) = connected_provider(&server).await;
    let private = Channel::private("secret");
    let options = SubscribeOptions {
        auth: Some(ChannelAuth(json!({"auth": "bad"}))),
        ..SubscribeOptions::default()
    };
    let script = async {
        let frame = peer.recv().await;
        peer.send(&ServerFrame::Error {
            reference: reference(&frame),
            code: "unauthorized".into(),
            message: "invalid signature".into(),
            channel: Some("private:secret".into()),
        })
        .await;
    };
    let (got, ()) = tokio::join!(provider.subscribe(&private, &options), script);
    assert_eq!(
        got.unwrap_err(),
        RealtimeError::Unauthorized("invalid signature".into())
    );

    let out = OutboundMessage::new(Channel::public("news"), "e", json!(1));
    let script = async {
        let frame = peer.recv().await;
        assert_eq!(
            frame,
            ClientFrame::Publish {
                encoding: None,
                reference: reference(&frame),
                channel: "news".into(),
                event: "e".into(),
                data: json!(1),
            }
        );
        peer.send(&ServerFrame::Error {
            reference: reference(&frame),
            code: "forbidden".into(),
            message: "clients may not publish on public channels".into(),
            channel: Some("news".into()),
        })
        .await;
    };
    let (got, ()) = tokio::join!(provider.publish(&out), script);
    assert_eq!(
        got.unwrap_err(),
        RealtimeError::Forbidden {
            channel: "news".into(),
            reason: "clients may not publish on public channels".into()
        }
    );
}

#[tokio::test]
async fn publish_and_presence_requests_await_their_ack() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, _events) = connected_provider(&server).await;
    let room = Channel::presence("room");
    let out = OutboundMessage::new(room.clone(), "chat", json!({"text": "hi"}));
    let script = async {
        let frame = peer.recv().await;
        assert_eq!(
            frame,
            ClientFrame::Publish {
                encoding: None,
                reference: reference(&frame),
                channel: "presence:room".into(),
                event: "chat".into(),
                data: json!({"text": "hi"}),
            }
        );
        // An unrelated ack first: a request only takes the answer with its own ref.
        peer.send(&ServerFrame::Ack {
            reference: Some("other".into()),
        })
        .await;
        peer.send(&ServerFrame::Ack {
            reference: reference(&frame),
        })
        .await;
    };
    let (got, ()) = tokio::join!(provider.publish(&out), script);
    got.expect("publish");

    let expected = [
        ClientFrame::PresenceEnter {
            reference: None,
            channel: "presence:room".into(),
            data: json!({"mood": "happy"}),
        },
        ClientFrame::PresenceUpdate {
            reference: None,
            channel: "presence:room".into(),
            data: json!({"mood": "busy"}),
        },
        ClientFrame::PresenceLeave {
            reference: None,
            channel: "presence:room".into(),
        },
    ];
    for (i, want) in expected.into_iter().enumerate() {
        let script = async {
            let mut frame = peer.recv().await;
            let r = reference(&frame);
            assert!(r.is_some());
            match &mut frame {
                ClientFrame::PresenceEnter { reference, .. }
                | ClientFrame::PresenceUpdate { reference, .. }
                | ClientFrame::PresenceLeave { reference, .. } => *reference = None,
                other => panic!("unexpected {other:?}"),
            }
            assert_eq!(frame, want);
            peer.send(&ServerFrame::Ack { reference: r }).await;
        };
        let call = async {
            match i {
                0 => {
                    provider
                        .presence_enter(&room, json!({"mood": "happy"}))
                        .await
                }
                1 => {
                    provider
                        .presence_update(&room, json!({"mood": "busy"}))
                        .await
                }
                _ => provider.presence_leave(&room).await,
            }
        };
        let (got, ()) = tokio::join!(call, script);
        got.expect("presence request");
    }
}

#[tokio::test]
async fn ping_measures_a_round_trip() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, _events) = connected_provider(&server).await;
    let script = async {
        let frame = peer.recv().await;
        assert!(matches!(&frame, ClientFrame::Ping { reference: Some(_) }));
        peer.send(&ServerFrame::Pong {
            reference: reference(&frame),
        })
        .await;
    };
    let (rtt, ()) = tokio::join!(provider.ping(), script);
    let rtt = rtt.expect("ping");
    assert!(rtt < client_support::WAIT, "{rtt:?}");
}

#[tokio::test]
async fn an_unanswered_request_times_out_on_the_paused_clock() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, _events) = connected_provider(&server).await;
    let provider = provider.with_request_timeout(Duration::from_secs(30));
    tokio::time::pause();
    let script = async {
        let frame = peer.recv().await;
        assert!(matches!(frame, ClientFrame::Ping { .. }));
        peer
    };
    let (got, _peer) = tokio::join!(provider.ping(), script);
    let err = got.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
}

#[tokio::test]
async fn a_pending_request_fails_at_once_when_the_link_drops() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;
    let script = async {
        let frame = peer.recv().await;
        assert!(matches!(frame, ClientFrame::Subscribe { .. }));
        peer.drop_tcp();
    };
    let room = Channel::public("room");
    let options = SubscribeOptions::default();
    let (got, ()) = tokio::join!(provider.subscribe(&room, &options), script);
    assert_eq!(got.unwrap_err().kind(), ErrorKind::Connection);
    match events.next().await {
        ProviderEvent::Closed(reason) => {
            assert_eq!(reason.code, None);
            assert_eq!(reason.reconnect, Reconnect::Backoff);
        }
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn close_codes_tell_the_core_what_to_do() {
    type Check = fn(&Reconnect) -> bool;
    let cases: [(u16, Check); 5] = [
        (1012, |r| *r == Reconnect::Immediately),
        (
            4000,
            |r| matches!(r, Reconnect::Never(e) if e.kind() == ErrorKind::Protocol),
        ),
        (4008, |r| *r == Reconnect::Backoff),
        (4009, |r| *r == Reconnect::Backoff),
        (1001, |r| *r == Reconnect::Backoff),
    ];
    for (code, check) in cases {
        let server = PeerServer::bind().await;
        let (_provider, peer, mut events) = connected_provider(&server).await;
        peer.close(code, "bye").await;
        match events.next().await {
            ProviderEvent::Closed(reason) => {
                assert_eq!(reason.code, Some(i64::from(code)));
                assert!(check(&reason.reconnect), "{code}: {reason:?}");
            }
            other => panic!("{code}: expected Closed, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_unsupported_version_at_connect_is_fatal() {
    // As an error frame instead of `connected`…
    let server = PeerServer::bind().await;
    let provider = SelfHostedProvider::new(&server.url).expect("provider");
    let (sink, _events) = client_support::sink();
    let accept = async {
        let mut peer = server.accept().await;
        peer.send(&ServerFrame::Error {
            reference: None,
            code: "unsupported_version".into(),
            message: "v=1 only".into(),
            channel: None,
        })
        .await;
        peer
    };
    let (got, _peer) = tokio::join!(provider.connect(sink), accept);
    let err = got.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(!err.is_retryable());

    // …or as a close with 4000.
    let (sink, _events) = client_support::sink();
    let accept = async {
        server
            .accept()
            .await
            .close(4000, "unsupported version")
            .await
    };
    let (got, ()) = tokio::join!(provider.connect(sink), accept);
    let err = got.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(!err.is_retryable());

    // A first frame that is not `connected` is a protocol error too.
    let (sink, _events) = client_support::sink();
    let accept = async {
        let mut peer = server.accept().await;
        peer.send(&ServerFrame::Pong { reference: None }).await;
        peer
    };
    let (got, _peer) = tokio::join!(provider.connect(sink), accept);
    assert_eq!(got.unwrap_err().kind(), ErrorKind::Protocol);
}

#[tokio::test]
async fn malformed_frames_are_protocol_error_events_and_the_link_survives() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;
    peer.send_raw("this is not json").await;
    peer.send_raw(r#"{"type":"bogus"}"#).await;
    peer.send_raw(r#"{"type":"message","channel":"room"}"#)
        .await;
    peer.send_binary(&[1, 2, 3]).await;
    let mut bad = msg("room", 1, "x");
    bad.channel = "a b".into();
    peer.send(&ServerFrame::Message(bad)).await;
    peer.send(&connected("n.2")).await;
    peer.send_raw(r#"{"type":"presence","channel":"no way","action":"join","member":{"id":"x"}}"#)
        .await;
    for i in 0..7 {
        match events.next().await {
            ProviderEvent::Error { error, .. } => {
                assert_eq!(error.kind(), ErrorKind::Protocol, "#{i}: {error}")
            }
            other => panic!("#{i}: expected a protocol error, got {other:?}"),
        }
    }
    // A malformed answer fails its request at once instead of leaving it to time out.
    let script = async {
        let frame = peer.recv().await;
        let r = reference(&frame).expect("ref");
        peer.send_raw(&format!(r#"{{"type":"pong","ref":"{r}","extra":}}"#))
            .await;
        peer.send_raw(&format!(r#"{{"type":"subscribed","ref":"{r}"}}"#))
            .await;
    };
    let room = Channel::public("room");
    let options = SubscribeOptions::default();
    let (got, ()) = tokio::join!(provider.subscribe(&room, &options), script);
    assert_eq!(got.unwrap_err().kind(), ErrorKind::Protocol);
    // Still usable.
    let script = async {
        let frame = peer.recv().await;
        peer.send(&ServerFrame::Pong {
            reference: reference(&frame),
        })
        .await;
    };
    let (rtt, ()) = tokio::join!(provider.ping(), script);
    rtt.expect("ping after garbage");
}

#[tokio::test]
async fn live_messages_presence_and_refless_errors_reach_the_sink() {
    let server = PeerServer::bind().await;
    let (_provider, mut peer, mut events) = connected_provider(&server).await;
    let room = Channel::presence("room");
    peer.send(&ServerFrame::Message(MessageFrame {
        sender: Some("n.9".into()),
        ..msg("presence:room", 7, "hello")
    }))
    .await;
    let m = message_event(events.next().await);
    assert_eq!(m.channel, room);
    assert_eq!(m.event, "chat");
    assert_eq!(m.id.as_deref(), Some("e1-7"));
    assert_eq!(m.position, Some(pos(7)));
    assert_eq!(m.timestamp, Some(1_700_000_000_007));
    assert_eq!(m.sender.as_deref(), Some("n.9"));

    let bob = PresenceMember::new("bob", json!({"name": "Bob"}));
    for (action, change) in [
        (PresenceAction::Join, PresenceChange::Joined(bob.clone())),
        (PresenceAction::Update, PresenceChange::Updated(bob.clone())),
        (PresenceAction::Leave, PresenceChange::Left(bob.clone())),
    ] {
        peer.send(&ServerFrame::Presence {
            channel: "presence:room".into(),
            action,
            member: bob.clone(),
        })
        .await;
        assert_eq!(
            events.next().await,
            ProviderEvent::Presence {
                channel: room.clone(),
                change
            }
        );
    }
    peer.send(&ServerFrame::Error {
        reference: None,
        code: "rate_limited".into(),
        message: "slow down".into(),
        channel: Some("presence:room".into()),
    })
    .await;
    assert_eq!(
        events.next().await,
        ProviderEvent::Error {
            channel: Some(room),
            error: RealtimeError::RateLimited("slow down".into())
        }
    );
}

#[tokio::test]
async fn disconnect_closes_the_socket_and_stops_reporting() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;
    within("disconnect", provider.disconnect())
        .await
        .expect("disconnect");
    assert_eq!(provider.transport(), None);
    peer.expect_closed().await;
    assert!(
        events.drain().is_empty(),
        "a local disconnect reports nothing"
    );
    // Idempotent, and calls after it say "not connected".
    provider.disconnect().await.expect("again");
    assert_eq!(
        provider.ping().await.unwrap_err().kind(),
        ErrorKind::Connection
    );
}

#[tokio::test]
async fn disconnect_says_goodbye_with_a_normal_close_frame() {
    let server = PeerServer::bind().await;
    let (provider, mut peer, mut events) = connected_provider(&server).await;
    let goodbye = tokio::spawn(async move {
        provider.disconnect().await.expect("disconnect");
        provider
    });
    assert_eq!(
        peer.expect_close_frame().await,
        (1000, "client disconnect".to_owned())
    );
    // The peer answers the close (tungstenite does so while reading on): the goodbye ends
    // without waiting out its grace period.
    peer.expect_closed().await;
    let provider = within("the goodbye", goodbye).await.expect("no panic");
    assert_eq!(provider.transport(), None);
    assert!(events.drain().is_empty(), "a goodbye is not reported");
}

#[tokio::test]
async fn connection_refused_is_a_retryable_connection_error() {
    let server = PeerServer::bind().await;
    let url = server.url.clone();
    drop(server);
    let provider = SelfHostedProvider::new(&url).expect("provider");
    let (sink, _events) = client_support::sink();
    let err = within("connect", provider.connect(sink)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.is_retryable());
}

/// The provider keeps no timer of its own under the runtime's: without `with_connect_timeout`
/// a silent server is waited for as long as the caller (the core runtime's `connect_timeout`)
/// decides, here an hour of paused time.
#[tokio::test(start_paused = true)]
async fn the_provider_sets_no_connect_timer_of_its_own_by_default() {
    let server = PeerServer::bind().await;
    let provider = SelfHostedProvider::new(&server.url).expect("provider");
    let peer = tokio::spawn(async move {
        let peer = server.accept().await;
        std::future::pending::<()>().await;
        drop(peer);
    });
    let (sink, _events) = client_support::sink();
    let waited = tokio::time::timeout(Duration::from_secs(3600), provider.connect(sink)).await;
    assert!(
        waited.is_err(),
        "the provider gave up by itself: {waited:?}"
    );
    peer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_server_that_never_says_connected_times_out_on_the_paused_clock() {
    let server = PeerServer::bind().await;
    let provider = SelfHostedProvider::new(&server.url)
        .expect("provider")
        .with_connect_timeout(Duration::from_secs(5));
    // The peer accepts the WebSocket and then says nothing.
    let peer = tokio::spawn(async move {
        let peer = server.accept().await;
        std::future::pending::<()>().await;
        drop(peer);
    });
    let (sink, _events) = client_support::sink();
    let err = provider.connect(sink).await.unwrap_err();
    assert_eq!(
        err,
        RealtimeError::timeout("the `connected` frame", Duration::from_secs(5))
    );
    assert!(err.is_retryable());
    assert_eq!(provider.transport(), None);
    peer.abort();
}
