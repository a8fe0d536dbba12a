//! Behaviour beyond the recorded transcripts, against synthetic scripts on the same asserting
//! loopback peer: tolerance, malformed frames, limits, token renewal without
//! loops, channel authorization, connectionStateTtl, and the core's runtime end to end.

mod support;

use std::time::Duration;

use relayport_ably::encoding::Payload;
use relayport_ably::token::{ApiKey, AuthResponse, TokenParams};
use relayport_ably::{AblyAuthorizer, AblyConfig, AblyMessage, AblyRealtime, Credentials};
use relayport_core::{
    AuthRequest, Channel, ChannelAuthorizer, ClientEvent, ErrorKind, EventSink, OutboundMessage,
    ProviderEvent, RealtimeClient, RealtimeError, RealtimeProvider, Reconnect, SubscribeOptions,
};
use serde_json::{Value, json};
use support::{HttpPeer, Script, Tail, WsPeer, bounded};
use tokio::sync::mpsc::UnboundedReceiver;

type Events = UnboundedReceiver<(u64, ProviderEvent)>;

const CONNECTED: &str = r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","maxMessageSize":65536,"maxIdleInterval":15000,"connectionStateTtl":120000}}"#;

fn key() -> ApiKey {
    ApiKey::parse("appId.keyId:keySecret").unwrap()
}

fn cfg(port: u16, http: u16) -> AblyConfig {
    let mut c = AblyConfig::new(Credentials::Key(key())).local(port, http);
    c.realtime_request_timeout = Duration::from_secs(5);
    c
}

async fn next_event(rx: &mut Events) -> ProviderEvent {
    bounded("a provider event", rx.recv())
        .await
        .expect("sink")
        .1
}

#[tokio::test]
async fn unknown_actions_and_fields_are_ignored() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, r#"{"action":4,"connectionId":"C1","futureField":{"a":1},"connectionDetails":{"connectionKey":"K1","newThing":true}}"#),
            (false, r#"{"action":10,"channel":"room"}"#),
            (true, r#"{"action":11,"channel":"room","flags":0,"unknown":[1]}"#),
            (true, r#"{"action":99,"channel":"room","whatever":"x"}"#),
            (true, r#"{"action":18}"#),
            (true, r#"{"action":21,"channel":"room","annotations":[]}"#),
            (true, r#"{"action":15,"channel":"room","id":"X:0","timestamp":5,"messages":[{"name":"n","data":"d","newField":1}],"extraTop":null}"#),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.subscribe(&Channel::public("room"), &SubscribeOptions::default())
        .await
        .unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::Message(m) => {
            assert_eq!(m.event, "n");
            assert_eq!(m.id.as_deref(), Some("X:0:0"));
        }
        other => panic!("expected the message first, got {other:?}"),
    }
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
    while let Ok((_, e)) = rx.try_recv() {
        assert!(
            !matches!(e, ProviderEvent::Error { .. }),
            "nothing was wrong: {e:?}"
        );
    }
}

#[tokio::test]
async fn malformed_frames_are_protocol_errors_and_a_reconnect() {
    for bad in [
        "{not json",
        r#"{"channel":"room"}"#,
        r#"{"action":"fifteen"}"#,
        r#"[1,2]"#,
    ] {
        let mut peer = WsPeer::start(vec![Script::synthetic(
            Value::Null,
            &[(true, CONNECTED), (true, bad)],
            Tail::Hold,
        )])
        .await;
        let p = AblyRealtime::new(cfg(peer.port, 1));
        let (sink, mut rx) = EventSink::channel();
        p.connect(sink).await.unwrap();
        match next_event(&mut rx).await {
            ProviderEvent::Error { error, .. } => assert_eq!(error.kind(), ErrorKind::Protocol),
            other => panic!("{bad}: {other:?}"),
        }
        match next_event(&mut rx).await {
            ProviderEvent::Closed(r) => {
                assert!(!matches!(r.reconnect, Reconnect::Never(_)), "{bad}: {r:?}")
            }
            other => panic!("{bad}: {other:?}"),
        }
        p.disconnect().await.unwrap();
        peer.finished(0).await;
        peer.assert_clean();
    }
}

#[tokio::test]
async fn undecodable_payloads_are_delivered_and_reported() {
    let peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (true, r#"{"action":15,"channel":"room","messages":[{"name":"a","data":"!!","encoding":"base64"},{"name":"b","data":"AAEC","encoding":"cipher+aes-128-cbc/base64"}]}"#),
            (true, r#"{"action":1}"#),
        ],
        Tail::Hold,
    )])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let mut messages = Vec::new();
    let mut errors = Vec::new();
    while messages.len() < 2 || errors.len() < 3 {
        match next_event(&mut rx).await {
            ProviderEvent::Message(m) => messages.push(m),
            ProviderEvent::Error { error, .. } => errors.push(error),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(messages[0].data, json!("!!"), "left encoded, not dropped");
    // Still encrypted, but its base64 layer was undone: the cipher bytes, as bytes.
    assert_eq!(
        messages[1].data,
        relayport_core::Payload::from(vec![0u8, 1, 2])
    );
    assert!(errors.iter().all(|e| e.kind() == ErrorKind::Protocol));
    assert!(errors[1].to_string().contains("cipher+aes-128-cbc"));
    p.disconnect().await.unwrap();
    drop(peer);
}

#[tokio::test]
async fn max_message_size_is_enforced_at_and_past_the_limit() {
    // name "n" (1) + data: at the limit of 20 bytes goes out, 21 is refused before sending.
    let at = format!(
        "{{\"action\":15,\"channel\":\"c\",\"messages\":[{{\"name\":\"n\",\"data\":\"{}\",\"action\":0}}],\"msgSerial\":0}}",
        "x".repeat(19)
    );
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","maxMessageSize":20}}"#),
            (false, &at),
            (true, r#"{"action":1,"msgSerial":0,"count":1}"#),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, _rx) = EventSink::channel();
    let session = p.connect(sink).await.unwrap();
    assert_eq!(session.max_payload, Some(20));
    let ch = Channel::public("c");
    p.publish(&OutboundMessage::new(
        ch.clone(),
        "n",
        json!("x".repeat(19)),
    ))
    .await
    .unwrap();
    let err = p
        .publish(&OutboundMessage::new(
            ch.clone(),
            "n",
            json!("x".repeat(20)),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: 21,
            limit: 20
        }
    );
    let err = p
        .publish_messages(&ch, &[AblyMessage::new("n", Payload::Binary(vec![0; 20]))])
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
    for bad in [json!(0), json!(false)] {
        let err = p
            .publish(&OutboundMessage::new(ch.clone(), "n", bad))
            .await
            .unwrap_err();
        assert!(matches!(err, RealtimeError::Provider { code: 40013, .. }));
    }
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn a_persistently_rejected_token_is_not_renewed_in_a_loop() {
    let expired = r#"{"action":6,"error":{"code":40142,"statusCode":401,"message":"expired"}}"#;
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            json!({"access_token": "T1"}),
            &[(true, CONNECTED), (true, expired)],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"access_token": "T2", "resume": "K1"}),
            &[(true, CONNECTED), (true, expired)],
            Tail::Drop,
        ),
    ])
    .await;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let creds = Credentials::callback(move |_p: TokenParams| {
        let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move { Ok(AuthResponse::Token(format!("T{n}"))) }
    });
    let mut conf = cfg(peer.port, 1);
    conf.credentials = creds;
    let p = AblyRealtime::new(conf);
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::Closed(r) => assert_eq!(r.reconnect, Reconnect::Immediately),
        other => panic!("{other:?}"),
    }
    p.disconnect().await.unwrap();
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::Closed(r) => {
            assert!(
                matches!(
                    r.reconnect,
                    Reconnect::Never(RealtimeError::Unauthorized(_))
                ),
                "{r:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 2);
    p.disconnect().await.unwrap();
    peer.finished(1).await;
    peer.assert_clean();
}

#[tokio::test]
async fn a_literal_token_cannot_be_renewed() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "LIT"}),
        &[
            (true, CONNECTED),
            (
                true,
                r#"{"action":6,"error":{"code":40142,"statusCode":401,"message":"expired"}}"#,
            ),
        ],
        Tail::Drop,
    )])
    .await;
    let mut conf = cfg(peer.port, 1);
    conf.credentials = Credentials::Token("LIT".into());
    let p = AblyRealtime::new(conf);
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::Closed(r) => {
            assert_eq!(r.code, Some(40171));
            assert!(matches!(r.reconnect, Reconnect::Never(_)));
        }
        other => panic!("{other:?}"),
    }
    p.disconnect().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn channel_authorization_is_exchanged_and_sent_in_band() {
    // The backend signs a TokenRequest for the channel; the client exchanges it at
    // requestToken, re-authenticates with AUTH, then attaches.
    let authorizer = AblyAuthorizer::new(key());
    let channel = Channel::private("orders");
    let auth = authorizer
        .authorize(&AuthRequest {
            socket_id: "C1".into(),
            channel: channel.clone(),
            user: None,
        })
        .await
        .unwrap();
    let http = HttpPeer::start(
        vec![json!({
            "method": "POST", "path": "/keys/appId.keyId/requestToken", "query": {},
            "headers": {"accept": "application/json", "content-type": "application/json", "x-ably-version": "6"},
            "body": auth.0.to_string(),
            "response": {"status": 200, "headers": {}, "body": {"token": "CHAN-TOKEN", "expires": 1}}
        })],
        None,
    )
    .await;
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "BASE"}),
        &[
            (true, CONNECTED),
            (
                false,
                r#"{"action":17,"auth":{"accessToken":"CHAN-TOKEN"}}"#,
            ),
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"private:orders"}"#),
            (
                true,
                r#"{"action":11,"channel":"private:orders","flags":0}"#,
            ),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let mut conf = cfg(peer.port, http.port);
    conf.credentials = Credentials::callback(|_p| async { Ok(AuthResponse::Token("BASE".into())) });
    let p = AblyRealtime::new(conf);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let options = SubscribeOptions {
        auth: Some(auth),
        ..SubscribeOptions::default()
    };
    bounded("subscribe", p.subscribe(&channel, &options))
        .await
        .unwrap();
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
    http.assert_clean();
}

#[tokio::test]
async fn channel_errors_end_the_subscription() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"a"}"#),
            (true, r#"{"action":9,"channel":"a","error":{"code":40160,"statusCode":401,"message":"denied"}}"#),
            (false, r#"{"action":10,"channel":"b"}"#),
            (true, r#"{"action":11,"channel":"b","flags":0}"#),
            (true, r#"{"action":9,"channel":"b","error":{"code":90001,"statusCode":500,"message":"gone"}}"#),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let err = p
        .subscribe(&Channel::public("a"), &SubscribeOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    p.subscribe(&Channel::public("b"), &SubscribeOptions::default())
        .await
        .unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::SubscriptionLost { channel, error } => {
            assert_eq!(channel, Channel::public("b"));
            assert!(error.to_string().contains("90001"));
        }
        other => panic!("{other:?}"),
    }
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test(start_paused = true)]
async fn publishes_pending_past_connection_state_ttl_fail() {
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            Value::Null,
            &[
                (true, r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","connectionStateTtl":1000}}"#),
                (false, r#"{"action":15,"channel":"c","messages":[{"name":"n","data":"d","action":0}],"msgSerial":0}"#),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1"}),
            &[(true, r#"{"action":4,"connectionId":"C2","error":{"code":80008,"statusCode":400,"message":"expired"},"connectionDetails":{"connectionKey":"K2"}}"#)],
            Tail::AcceptClose,
        ),
    ])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let h = p
        .publish_messages(
            &Channel::public("c"),
            &[AblyMessage::new("n", Payload::Text("d".into()))],
        )
        .unwrap();
    peer.finished(0).await;
    assert!(matches!(
        next_event(&mut rx).await,
        ProviderEvent::Closed(_)
    ));
    p.disconnect().await.unwrap();
    tokio::time::advance(Duration::from_millis(1001)).await;
    let (sink, _rx) = EventSink::channel();
    let session = p.connect(sink).await.unwrap();
    assert!(!session.resumed);
    let err = bounded("the expired publish", h.outcome())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("80002"), "{err}");
    p.close().await.unwrap();
    peer.finished(1).await;
    peer.assert_clean();
}

/// The core's runtime over this provider: a failed resume is filled from REST history and
/// the duplicate is skipped by position.
#[tokio::test]
async fn core_recovers_missed_messages_from_history_after_a_failed_resume() {
    let m0 = r#"{"action":15,"channel":"room","channelSerial":"cs1","messages":[{"id":"m0","name":"e","data":"zero","serial":"01700000000000-000@s:000","timestamp":1700000000000}]}"#;
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            Value::Null,
            &[
                (true, CONNECTED),
                (false, r#"{"action":10,"channel":"room"}"#),
                (true, r#"{"action":11,"channel":"room","flags":0,"channelSerial":"cs0"}"#),
                (true, m0),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1"}),
            &[
                (true, r#"{"action":4,"connectionId":"C2","error":{"code":80008,"statusCode":400,"message":"expired"},"connectionDetails":{"connectionKey":"K2","maxIdleInterval":15000}}"#),
                (false, r#"{"action":10,"channel":"room","channelSerial":"cs1"}"#),
                (true, r#"{"action":11,"channel":"room","flags":0,"channelSerial":"cs2"}"#),
            ],
            Tail::Hold,
        ),
    ])
    .await;
    let history = json!({
        "method": "GET", "path": "/channels/room/messages",
        "query": {"start": "1700000000000", "direction": "forwards", "limit": "1000"},
        "headers": {"authorization": "Basic YXBwSWQua2V5SWQ6a2V5U2VjcmV0", "accept": "application/json", "x-ably-version": "6"},
        "body": null,
        "response": {"status": 200, "headers": {}, "body": [
            {"id": "m0", "name": "e", "data": "zero", "serial": "01700000000000-000@s:000", "timestamp": 1_700_000_000_000_u64},
            {"id": "m1", "name": "e", "data": "{\"n\":1}", "encoding": "json", "serial": "01700000000001-000@s:000", "timestamp": 1_700_000_000_001_u64}
        ]}
    });
    let http = HttpPeer::start(vec![history], None).await;
    let provider = AblyRealtime::new(cfg(peer.port, http.port));
    let client = RealtimeClient::builder(provider)
        .backoff(relayport_core::Backoff {
            initial: Duration::from_millis(10),
            jitter: Duration::from_millis(1),
            ..relayport_core::Backoff::default()
        })
        .build();
    let mut events = client.events();
    let mut sub = client.subscribe("room").await.unwrap();
    let first = bounded("m0", sub.recv()).await.unwrap();
    assert_eq!(first.id.as_deref(), Some("m0"));
    // The peer drops the link after m0; the core reconnects, the resume fails, and the
    // history since m0's position fills the gap.
    peer.finished(0).await;
    let second = bounded("m1 from history", sub.recv()).await.unwrap();
    assert_eq!(second.id.as_deref(), Some("m1"));
    assert_eq!(second.data, json!({"n": 1}));
    let recovered = bounded("resubscribed", async {
        loop {
            if let Ok(ClientEvent::Resubscribed { recovered, .. }) = events.recv().await {
                return recovered;
            }
        }
    })
    .await;
    assert!(recovered);
    client.close().await;
    http.assert_clean();
    peer.assert_clean();
}

/// Presence through the core: entered after the sync; kept (no frame) across a resumed
/// attach; re-entered with msgSerial 0 after a failed resume (`RTP17i`).
#[tokio::test]
async fn core_presence_survives_resume_and_reenters_after_a_failed_one() {
    let connected = r#"{"action":4,"connectionId":"C1","connectionDetails":{"clientId":"u1","connectionKey":"K1","maxIdleInterval":15000}}"#;
    let enter = r#"{"action":14,"channel":"presence:room","presence":[{"data":"{\"a\":1}","action":2,"encoding":"json"}],"msgSerial":0}"#;
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            json!({"clientId": "u1"}),
            &[
                (true, connected),
                (false, r#"{"action":10,"channel":"presence:room"}"#),
                (true, r#"{"action":11,"channel":"presence:room","flags":1,"channelSerial":"a1"}"#),
                (true, r#"{"action":16,"channel":"presence:room","presence":[{"id":"B:0:0","action":1,"clientId":"bob","connectionId":"B","data":"hi"}]}"#),
                (false, enter),
                (true, r#"{"action":1,"msgSerial":0,"count":1}"#),
                (true, r#"{"action":14,"channel":"presence:room","channelSerial":"p1","id":"C1:0","connectionId":"C1","presence":[{"action":2,"clientId":"u1","data":"{\"a\":1}","encoding":"json"}]}"#),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1", "clientId": "u1"}),
            &[
                (true, connected),
                (false, r#"{"action":10,"channel":"presence:room","channelSerial":"p1"}"#),
                (true, r#"{"action":11,"channel":"presence:room","flags":5,"channelSerial":"a2"}"#),
                (false, r#"{"action":15,"channel":"presence:room","messages":[{"name":"after","data":"resume","action":0}],"msgSerial":1}"#),
                (true, r#"{"action":1,"msgSerial":1,"count":1}"#),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1", "clientId": "u1"}),
            &[
                (true, r#"{"action":4,"connectionId":"C2","error":{"code":80008,"statusCode":400,"message":"expired"},"connectionDetails":{"clientId":"u1","connectionKey":"K2","maxIdleInterval":15000}}"#),
                (false, r#"{"action":10,"channel":"presence:room","channelSerial":"a2"}"#),
                (true, r#"{"action":11,"channel":"presence:room","flags":1,"channelSerial":"a3"}"#),
                (true, r#"{"action":16,"channel":"presence:room","presence":[]}"#),
                (false, enter),
                (true, r#"{"action":1,"msgSerial":0,"count":1}"#),
            ],
            Tail::AcceptClose,
        ),
    ])
    .await;
    let provider = AblyRealtime::new(cfg(peer.port, 1).client_id("u1"));
    let client = RealtimeClient::builder(provider)
        .client_id("u1")
        .authorizer(std::sync::Arc::new(relayport_ably::ConnectionCapability))
        .backoff(relayport_core::Backoff {
            initial: Duration::from_millis(10),
            jitter: Duration::from_millis(1),
            ..relayport_core::Backoff::default()
        })
        .build();
    let mut events = client.events();
    let resubscribed = |events: &mut tokio::sync::broadcast::Receiver<ClientEvent>| {
        let mut events = events.resubscribe();
        async move {
            loop {
                if let Ok(ClientEvent::Resubscribed { .. }) = events.recv().await {
                    return;
                }
            }
        }
    };
    let wait1 = resubscribed(&mut events);
    bounded(
        "enter",
        client.presence_enter("presence:room", json!({"a": 1})),
    )
    .await
    .unwrap();
    peer.finished(0).await;
    bounded("resubscribed after the resume", wait1).await;
    let wait2 = resubscribed(&mut events);
    bounded(
        "publish",
        client.publish("presence:room", "after", json!("resume")),
    )
    .await
    .unwrap();
    peer.finished(1).await;
    // The re-entry is part of re-establishing the channel: once the core reports the
    // resubscription, the peer has acknowledged the ENTER.
    bounded("resubscribed after the failed resume", wait2).await;
    client.close().await;
    peer.finished(2).await;
    peer.assert_clean();
}

#[tokio::test]
async fn skipped_serials_are_refused_and_server_detach_reattaches() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"c"}"#),
            (true, r#"{"action":11,"channel":"c","flags":0,"channelSerial":"s1"}"#),
            (false, r#"{"action":15,"channel":"c","messages":[{"name":"a","data":"1","action":0}],"msgSerial":0}"#),
            (false, r#"{"action":15,"channel":"c","messages":[{"name":"b","data":"2","action":0}],"msgSerial":1}"#),
            (true, r#"{"action":1,"msgSerial":1,"count":1,"res":[{"serials":["x"]}]}"#),
            // The server detaches the channel: the client re-attaches at once, with its serial.
            (true, r#"{"action":13,"channel":"c","error":{"code":90198,"statusCode":500,"message":"moved"}}"#),
            (false, r#"{"action":10,"channel":"c","channelSerial":"s1"}"#),
            (true, r#"{"action":11,"channel":"c","flags":0,"channelSerial":"s2"}"#),
            // An unsolicited ATTACHED without RESUMED: continuity lost, reported to the core.
            (true, r#"{"action":11,"channel":"c","flags":0,"channelSerial":"s3"}"#),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let ch = Channel::public("c");
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    let h0 = p
        .publish_messages(&ch, &[AblyMessage::new("a", Payload::Text("1".into()))])
        .unwrap();
    let h1 = p
        .publish_messages(&ch, &[AblyMessage::new("b", Payload::Text("2".into()))])
        .unwrap();
    assert_eq!(
        bounded("h1", h1.outcome()).await.unwrap(),
        vec![Some("x".to_owned())]
    );
    let err = bounded("h0", h0.outcome()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Protocol);
    match next_event(&mut rx).await {
        ProviderEvent::ContinuityLost { channel, reason } => {
            assert_eq!(channel, ch.clone());
            assert!(reason.to_string().contains("90003"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let rk: Value = serde_json::from_str(&p.recovery_key().unwrap()).unwrap();
    assert_eq!(rk["channelSerials"]["c"], "s3");
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn reauthorize_sends_the_new_token_in_band() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "T1"}),
        &[
            (true, CONNECTED),
            (false, r#"{"action":17,"auth":{"accessToken":"T2"}}"#),
            (true, CONNECTED),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let n = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = n.clone();
    let mut conf = cfg(peer.port, 1);
    conf.credentials = Credentials::callback(move |_p| {
        let i = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        async move { Ok(AuthResponse::Token(format!("T{i}"))) }
    });
    let p = AblyRealtime::new(conf);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    bounded("reauthorize", p.reauthorize()).await.unwrap();
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn an_auth_url_token_is_used_for_the_connection() {
    let http = HttpPeer::start(
        vec![json!({
            "method": "GET", "path": "/auth", "query": {"clientId": "u1"}, "foreign": true,
            "headers": {"accept": "*/*"}, "body": null,
            "response": {"status": 200, "headers": {}, "body": {"token": "URL-TOKEN", "expires": 1}}
        })],
        None,
    )
    .await;
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "URL-TOKEN", "clientId": "u1"}),
        &[(true, CONNECTED)],
        Tail::AcceptClose,
    )])
    .await;
    let mut conf = cfg(peer.port, 1).client_id("u1");
    conf.credentials = Credentials::AuthUrl(format!("http://127.0.0.1:{}/auth", http.port));
    let p = AblyRealtime::new(conf);
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
    http.assert_clean();
}

/// A gap longer than the history the client may fetch: the core raises `SyncRequired`.
#[tokio::test]
async fn core_raises_sync_required_when_history_cannot_fill_the_gap() {
    let m0 = r#"{"action":15,"channel":"room","messages":[{"id":"m0","name":"e","data":"zero","serial":"01700000000000-000@s:000"}]}"#;
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            Value::Null,
            &[
                (true, CONNECTED),
                (false, r#"{"action":10,"channel":"room"}"#),
                (true, r#"{"action":11,"channel":"room","flags":0}"#),
                (true, m0),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1"}),
            &[
                (true, r#"{"action":4,"connectionId":"C2","error":{"code":80008,"statusCode":400,"message":"expired"},"connectionDetails":{"connectionKey":"K2"}}"#),
                (false, r#"{"action":10,"channel":"room"}"#),
                (true, r#"{"action":11,"channel":"room","flags":0}"#),
            ],
            Tail::Hold,
        ),
    ])
    .await;
    let history = json!({
        "method": "GET", "path": "/channels/room/messages",
        "query": {"start": "1700000000000", "direction": "forwards", "limit": "1000"},
        "headers": {"authorization": "Basic YXBwSWQua2V5SWQ6a2V5U2VjcmV0", "accept": "application/json", "x-ably-version": "6"},
        "body": null,
        "response": {"status": 200, "headers": {"link": "<./messages?cursor=2>; rel=\"next\""}, "body": [
            {"id": "m1", "name": "e", "data": "one", "serial": "01700000000001-000@s:000"}
        ]}
    });
    let http = HttpPeer::start(vec![history], None).await;
    let mut c = cfg(peer.port, http.port);
    c.history_max_pages = 1;
    let client = RealtimeClient::builder(AblyRealtime::new(c))
        .backoff(relayport_core::Backoff {
            initial: Duration::from_millis(10),
            jitter: Duration::from_millis(1),
            ..relayport_core::Backoff::default()
        })
        .build();
    let mut events = client.events();
    let mut sub = client.subscribe("room").await.unwrap();
    assert_eq!(
        bounded("m0", sub.recv()).await.unwrap().id.as_deref(),
        Some("m0")
    );
    peer.finished(0).await;
    // What history had is still delivered; the rest is declared lost.
    assert_eq!(
        bounded("m1", sub.recv()).await.unwrap().id.as_deref(),
        Some("m1")
    );
    let channel = bounded("SyncRequired", async {
        loop {
            if let Ok(ClientEvent::SyncRequired { channel }) = events.recv().await {
                return channel;
            }
        }
    })
    .await;
    assert_eq!(channel, Channel::public("room"));
    client.close().await;
    http.assert_clean();
    peer.assert_clean();
}

/// The recorded connect-timeout scenario under the core's policy: every attempt times out
/// after the core's connect timeout (set to the scenario's realtimeRequestTimeout; the provider
/// has no timer of its own) and the core schedules the retries with its own backoff (1, 2, 4 s
/// + jitter) instead of ably-js's `disconnectedRetryTimeout` schedule.
#[tokio::test(start_paused = true)]
async fn core_backoff_replaces_ably_js_retry_schedule() {
    let v = support::vectors();
    let sc = &v["realtime"]["connectTimeout"];
    let urls: Vec<String> = serde_json::from_value(sc["upgradeUrls"].clone()).unwrap();
    let scripts: Vec<Script> = urls
        .iter()
        .map(|u| {
            let (path, qs) = u.split_once('?').unwrap();
            Script {
                upgrade: json!({"path": path, "query": support::parse_query(qs)}),
                frames: vec![],
                tail: Tail::AcceptClose,
            }
        })
        .collect();
    let attempts = scripts.len();
    let mut peer = WsPeer::start(scripts).await;
    let c = cfg(peer.port, 1);
    let mut runtime = relayport_core::ClientConfig::default();
    runtime.connect_timeout = Duration::from_millis(
        sc["clientOptions"]["realtimeRequestTimeout"]
            .as_u64()
            .unwrap(),
    );
    let client = RealtimeClient::builder(AblyRealtime::new(c))
        .config(runtime)
        .jitter_seed(7)
        .build();
    let mut states = client.state_changes();
    let connecting = client.clone();
    let connect = tokio::spawn(async move { connecting.connect().await });
    let mut retries = Vec::new();
    while retries.len() < attempts - 1 {
        bounded("a state change", states.changed()).await.unwrap();
        if let relayport_core::ConnectionState::Reconnecting { attempt, retry_in } =
            states.borrow_and_update().clone()
        {
            retries.push((attempt, retry_in));
        }
    }
    for (i, (attempt, retry_in)) in retries.iter().enumerate() {
        assert_eq!(*attempt as usize, i + 1);
        let base = Duration::from_secs(1 << i);
        assert!(
            *retry_in >= base && *retry_in <= base + Duration::from_secs(1),
            "{retry_in:?}"
        );
    }
    peer.finished(attempts - 2).await;
    client.close().await;
    let _ = connect.await;
    peer.assert_clean();
}

/// A resumed connection whose re-attach lacks RESUMED lost messages on that channel even
/// though the connection held: reported as `ContinuityLost` (90003), so the core recovers it.
#[tokio::test]
async fn continuity_loss_on_a_resumed_connection_is_reported() {
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            Value::Null,
            &[
                (true, CONNECTED),
                (false, r#"{"action":10,"channel":"c"}"#),
                (
                    true,
                    r#"{"action":11,"channel":"c","flags":0,"channelSerial":"s1"}"#,
                ),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1"}),
            &[
                (true, CONNECTED),
                (false, r#"{"action":10,"channel":"c","channelSerial":"s1"}"#),
                (
                    true,
                    r#"{"action":11,"channel":"c","flags":0,"channelSerial":"s2"}"#,
                ),
            ],
            Tail::AcceptClose,
        ),
    ])
    .await;
    let p = AblyRealtime::new(cfg(peer.port, 1));
    let ch = Channel::public("c");
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    peer.finished(0).await;
    assert!(matches!(
        next_event(&mut rx).await,
        ProviderEvent::Closed(_)
    ));
    p.disconnect().await.unwrap();
    let (sink, mut rx) = EventSink::channel();
    assert!(p.connect(sink).await.unwrap().resumed);
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    match next_event(&mut rx).await {
        ProviderEvent::ContinuityLost { channel, reason } => {
            assert_eq!(channel, ch);
            assert!(reason.to_string().contains("90003"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    p.close().await.unwrap();
    peer.finished(1).await;
    peer.assert_clean();
}

/// `RealtimeClient::close()` ends the Ably session as the protocol says: CLOSE, the server's
/// CLOSED, then the socket closes (before this goodbye, others saw this client's presence
/// leave only ~15 s later and the server kept its state for 2 minutes).
#[tokio::test]
async fn core_close_sends_close_and_waits_for_closed() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"room"}"#),
            (true, r#"{"action":11,"channel":"room","flags":0}"#),
        ],
        Tail::ExpectGoodbye,
    )])
    .await;
    let client = RealtimeClient::builder(AblyRealtime::new(cfg(peer.port, 1))).build();
    let _sub = client.subscribe("room").await.unwrap();
    bounded("the goodbye", client.close()).await;
    peer.finished(0).await;
    peer.assert_clean();
}
