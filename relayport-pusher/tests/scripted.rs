//! The client against scripted loopback peers: subscription refusals (with and without a
//! channel), no subscribe timer of the provider's own, encrypted channels, client-event rules, malformed
//! frames. Each peer asserts every frame the client sends.

mod common;

use std::time::Duration;

use common::peer::{Peer, Step, established};
use relayport_core::{
    ChannelAuth, ErrorKind, EventSink, OutboundMessage, ProviderEvent, RealtimeProvider,
    SubscribeOptions,
};
use relayport_pusher::names::from_wire;
use relayport_pusher::protocol;
use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherProvider};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(10);

fn rtk() -> Credentials {
    let v = common::vector("pusher.json");
    let c = &v["credentials"]["rtk"];
    Credentials::new(
        c["appId"].as_str().unwrap(),
        c["key"].as_str().unwrap(),
        c["secret"].as_str().unwrap(),
    )
    .with_encryption_master_key_base64(c["encryptionMasterKeyBase64"].as_str().unwrap())
    .unwrap()
}

fn provider(port: u16) -> PusherProvider {
    PusherProvider::new(PusherConfig::host(rtk().key, "127.0.0.1", port, false))
}

fn auth(socket: &str, wire: &str) -> ChannelAuth {
    PusherAuthorizer::new(rtk())
        .authorize_channel(socket, wire, None::<&()>)
        .unwrap()
}

fn opts(a: ChannelAuth) -> SubscribeOptions {
    SubscribeOptions {
        auth: Some(a),
        ..Default::default()
    }
}

fn succeeded(wire: &str) -> String {
    json!({"event": "pusher_internal:subscription_succeeded", "channel": wire, "data": "{}"})
        .to_string()
}

async fn next_event(rx: &mut UnboundedReceiver<(u64, ProviderEvent)>) -> ProviderEvent {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some((_, e))) => e,
        other => panic!("no event: {other:?}"),
    }
}

/// sockudo refuses a bad signature with a channel-less `pusher:error` 4009 (live vector);
/// soketi with `pusher:subscription_error` on the channel: both fail the subscribe as
/// `Unauthorized`, and the connection stays usable.
#[tokio::test]
async fn subscription_refusals_with_and_without_channel() {
    let live = common::vector("pusher-sockudo-live.json");
    let sockudo_refusal = live["client_A"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["raw"].as_str().unwrap_or_default())
        .find(|r| r.contains("pusher:error") && r.contains("4009"))
        .unwrap()
        .to_owned();
    let soketi = common::vector("pusher-soketi-live.json");
    let soketi_refusal = soketi["client_A"]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["raw"].as_str().unwrap_or_default())
        .find(|r| r.contains("pusher:subscription_error"))
        .unwrap()
        .to_owned();
    let bad = ChannelAuth(json!({"auth": "rtk-test-key:deadbeef"}));
    let frame = protocol::subscribe("private-chat", Some("rtk-test-key:deadbeef"), None);
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(frame.clone()),
        Step::Send(sockudo_refusal),
        Step::Expect(frame.clone()),
        Step::Send(soketi_refusal),
        Step::Expect(protocol::subscribe("my-channel", None, None)),
        Step::Send(succeeded("my-channel")),
        Step::AwaitClose,
    ])
    .await;
    let p = provider(peer.port);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let chat = from_wire("private-chat").unwrap();
    for _ in 0..2 {
        let err = p.subscribe(&chat, &opts(bad.clone())).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    }
    p.subscribe(
        &from_wire("my-channel").unwrap(),
        &SubscribeOptions::default(),
    )
    .await
    .unwrap();
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// A subscribe the server never answers fails with `Timeout` after the configured 10 s (on
/// the paused clock) instead of hanging; a private subscribe without authorization is refused
/// before anything is sent.
#[tokio::test(start_paused = true)]
async fn subscribe_times_out_and_needs_auth() {
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(protocol::subscribe("quiet", None, None)),
        Step::Serve,
    ])
    .await;
    let p = PusherProvider::new(PusherConfig::host(rtk().key, "127.0.0.1", peer.port, false));
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let err = p
        .subscribe(
            &from_wire("private-x").unwrap(),
            &SubscribeOptions::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // The provider has no subscribe timer of its own (issue 13): the caller's bound (the
    // runtime's request timeout) is the only one, however long it is.
    let waited = tokio::time::timeout(
        Duration::from_secs(1800),
        p.subscribe(&from_wire("quiet").unwrap(), &SubscribeOptions::default()),
    )
    .await;
    assert!(
        waited.is_err(),
        "still waiting after 30 minutes: {waited:?}"
    );
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// Encrypted channels: the official SDK's encrypted event (pusher.json) decrypts to its
/// plaintext; a payload under another key and a plaintext payload are reported as errors and
/// never delivered.
#[tokio::test]
async fn encrypted_channel_decrypts_and_refuses_bad_payloads() {
    let v = common::vector("pusher.json");
    let enc = &v["encrypted_channel"];
    let wire = enc["authorization"]["channel"].as_str().unwrap();
    let body: Value =
        serde_json::from_str(enc["trigger"]["request"]["body"].as_str().unwrap()).unwrap();
    let good = json!({"event": enc["trigger"]["event"], "channel": wire, "data": body["data"]})
        .to_string();
    let other_key_payload =
        relayport_pusher::encryption::encrypt(b"{\"x\":1}", &[9u8; 32], &[1u8; 24])
            .unwrap()
            .to_json();
    let wrong = json!({"event": "e", "channel": wire, "data": other_key_payload}).to_string();
    let plain = json!({"event": "e", "channel": wire, "data": "{\"x\":1}"}).to_string();
    let a = auth("1.1", wire);
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(protocol::subscribe(wire, a.str_field("auth"), None)),
        Step::Send(succeeded(wire)),
        Step::Send(good),
        Step::Send(wrong),
        Step::Send(plain),
        Step::AwaitClose,
    ])
    .await;
    let p = provider(peer.port);
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let channel = from_wire(wire).unwrap();
    p.subscribe(&channel, &opts(a.clone())).await.unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::Message(m) => {
            assert_eq!(m.channel, channel);
            assert_eq!(m.event, enc["trigger"]["event"].as_str().unwrap());
            assert_eq!(m.data, enc["trigger"]["data_object"]);
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..2 {
        match next_event(&mut rx).await {
            ProviderEvent::Error { channel: c, error } => {
                assert_eq!(c, Some(channel.clone()));
                assert_eq!(error.kind(), ErrorKind::Protocol);
            }
            other => panic!("undecryptable payload must be an error, got {other:?}"),
        }
    }
    // Encrypted channels carry no client events.
    let err = p
        .publish(&OutboundMessage::new(channel.clone(), "client-x", json!(1)))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    // An auth without shared_secret cannot subscribe an encrypted channel.
    let no_secret = ChannelAuth(json!({"auth": a.str_field("auth")}));
    let err = p
        .subscribe(
            &from_wire("private-encrypted-other").unwrap(),
            &opts(no_secret),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// Client events: sent as pusher-js writes them, at most 10 per second (the 11th is refused
/// before sending), only on subscribed private/presence channels.
#[tokio::test]
async fn client_events_rules_and_rate() {
    let a = auth("1.1", "private-chat");
    let mut script = vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(protocol::subscribe(
            "private-chat",
            a.str_field("auth"),
            None,
        )),
        Step::Send(succeeded("private-chat")),
    ];
    for i in 0..10 {
        script.push(Step::Expect(format!(
            r#"{{"event":"client-typing","data":{{"n":{i}}},"channel":"private-chat"}}"#
        )));
    }
    script.push(Step::AwaitClose);
    let peer = Peer::start(script).await;
    let p = provider(peer.port);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let chat = from_wire("private-chat").unwrap();
    // Not yet subscribed: refused.
    let early = OutboundMessage::new(chat.clone(), "client-typing", json!({"n": 0}));
    assert_eq!(
        p.publish(&early).await.unwrap_err().kind(),
        ErrorKind::Protocol
    );
    p.subscribe(&chat, &opts(a)).await.unwrap();
    for (ch, ev, kind) in [
        ("public-feed", "client-x", ErrorKind::InvalidChannel),
        ("private-chat", "typing", ErrorKind::Unsupported),
        ("private-other", "client-x", ErrorKind::Protocol),
    ] {
        let m = OutboundMessage::new(from_wire(ch).unwrap(), ev, json!(1));
        assert_eq!(p.publish(&m).await.unwrap_err().kind(), kind, "{ch} {ev}");
    }
    for i in 0..10 {
        let m = OutboundMessage::new(chat.clone(), "client-typing", json!({"n": i}));
        p.publish(&m).await.unwrap();
    }
    let m = OutboundMessage::new(chat.clone(), "client-typing", json!({"n": 10}));
    assert_eq!(
        p.publish(&m).await.unwrap_err().kind(),
        ErrorKind::RateLimited
    );
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// Garbage from the server is an error event, never a panic and never a message; a frame for
/// a channel the client did not subscribe is reported, not silently dropped.
#[tokio::test]
async fn malformed_frames_are_reported() {
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Send("this is not json".into()),
        Step::Send(r#"{"event":"e","channel":"nobody-here","data":"{}"}"#.into()),
        Step::Send(r#"{"no":"event"}"#.into()),
        Step::AwaitClose,
    ])
    .await;
    let p = provider(peer.port);
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    for _ in 0..3 {
        match next_event(&mut rx).await {
            ProviderEvent::Error { error, .. } => assert_eq!(error.kind(), ErrorKind::Protocol),
            other => panic!("{other:?}"),
        }
    }
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// An error before `connection_established` (soketi's unknown app key: 4001) fails the
/// connect with a non-retryable error.
#[tokio::test]
async fn connect_refused_by_the_server() {
    let peer = Peer::start(vec![
        Step::Send(r#"{"event":"pusher:error","data":{"code":4001,"message":"App key unknown-key does not exist."}}"#.into()),
        Step::Close(4001, "App key unknown-key does not exist.".into()),
    ])
    .await;
    let p = provider(peer.port);
    let (sink, _rx) = EventSink::channel();
    let err = p.connect(sink).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(!err.is_retryable());
    let _ = peer.finish().await;
}

/// `disconnect` (and dropping the provider) stops every task it spawned: the reader's event
/// sink is released (the receiver ends) and the peer sees the socket close; no `Closed` event
/// is reported for a disconnect the caller asked for.
#[tokio::test]
async fn disconnect_and_drop_stop_every_task() {
    for drop_it in [false, true] {
        let peer = Peer::start(vec![Step::Send(established("1.1", 120)), Step::AwaitClose]).await;
        let p = provider(peer.port);
        let (sink, mut rx) = EventSink::channel();
        p.connect(sink).await.unwrap();
        if drop_it {
            drop(p);
        } else {
            p.disconnect().await.unwrap();
            p.disconnect().await.unwrap(); // idempotent
        }
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(None) => {}
            other => panic!("the sink should be released without events, got {other:?}"),
        }
        peer.finish().await.unwrap();
    }
}

#[tokio::test]
async fn disconnect_says_goodbye_with_a_normal_close_frame() {
    let peer = Peer::start(vec![
        Step::Send(established("1.7", 120)),
        Step::Expect(protocol::subscribe("my-channel", None, None)),
        Step::Send(succeeded("my-channel")),
        Step::AwaitGoodbye(1000),
    ])
    .await;
    let p = provider(peer.port);
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.subscribe(
        &relayport_core::Channel::public("my-channel"),
        &SubscribeOptions::default(),
    )
    .await
    .unwrap();
    p.disconnect().await.unwrap();
    // The peer saw a 1000 close frame, not a dropped socket.
    peer.finish().await.unwrap();
    assert!(
        rx.try_recv().is_err(),
        "a goodbye is not reported as a close"
    );
    assert_eq!(p.socket_id(), None);
}
