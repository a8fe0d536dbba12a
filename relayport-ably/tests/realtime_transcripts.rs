//! The realtime transcripts of `ably.json` replayed by a scripted loopback peer that asserts
//! every frame our client sends matches the one ably-js 2.28.0 sent (modulo the random ping
//! id and ably-js's leaked `size` field), and every connection URL matches the recorded one
//! (modulo `agent`). The drivers below perform the same calls as the generator script.

mod support;

use std::collections::BTreeMap;

use relayport_ably::encoding::Payload;
use relayport_ably::token::{ApiKey, AuthResponse, TokenParams};
use relayport_ably::{
    AblyConfig, AblyMessage, AblyRealtime, ChannelMode, ChannelOptions, Credentials,
};
use relayport_core::{
    Channel, CloseReason, ErrorKind, EventSink, OutboundMessage, PresenceChange, PresenceMember,
    ProviderEvent, RealtimeError, RealtimeProvider, Reconnect, Recovery, SubscribeOptions,
};
use serde_json::{Value, json};
use support::{HttpPeer, Script, WsPeer, bounded, vectors};
use tokio::sync::mpsc::UnboundedReceiver;

type Events = UnboundedReceiver<(u64, ProviderEvent)>;

fn key() -> ApiKey {
    ApiKey::parse(vectors()["meta"]["fakeKey"].as_str().unwrap()).unwrap()
}

/// Waits for the first event matching `pick`, keeping the others in `seen`.
async fn wait_for<T>(
    rx: &mut Events,
    seen: &mut Vec<ProviderEvent>,
    what: &str,
    mut pick: impl FnMut(&ProviderEvent) -> Option<T>,
) -> T {
    loop {
        let (_, e) = bounded(what, rx.recv()).await.expect("sink open");
        if let Some(t) = pick(&e) {
            return t;
        }
        seen.push(e);
    }
}

async fn closed(rx: &mut Events, seen: &mut Vec<ProviderEvent>) -> CloseReason {
    wait_for(rx, seen, "the link to close", |e| match e {
        ProviderEvent::Closed(r) => Some(r.clone()),
        _ => None,
    })
    .await
}

fn hex_of(p: &relayport_core::Payload) -> Option<String> {
    Some(p.as_bytes()?.iter().map(|x| format!("{x:02x}")).collect())
}

/// Binary data arrives as bytes (`Payload::Binary`), compared with the SDK's hex.
fn same_data(ours: &relayport_core::Payload, sdk: &Value) -> bool {
    match sdk.get("hex") {
        Some(h) => hex_of(ours).as_deref() == h.as_str(),
        None => ours == sdk,
    }
}

fn serials(v: &Value) -> Vec<Option<String>> {
    serde_json::from_value(v["serials"].clone()).unwrap()
}

fn local(cfg: AblyConfig, ws: u16, http: u16) -> AblyConfig {
    let mut cfg = cfg.local(ws, http);
    cfg.realtime_request_timeout = std::time::Duration::from_secs(5);
    cfg
}

#[tokio::test]
async fn main_transcript() {
    let v = vectors();
    let main = &v["realtime"]["main"];
    let opts = &main["clientOptions"];
    let mut peer = WsPeer::start(Script::scenario(main)).await;
    let mut cfg = local(
        AblyConfig::new(Credentials::Key(key())).client_id(opts["clientId"].as_str().unwrap()),
        peer.port,
        1,
    );
    let ch2 = &main["ch2Info"];
    let modes = ch2["modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| match m.as_str().unwrap() {
            "publish" => ChannelMode::Publish,
            "subscribe" => ChannelMode::Subscribe,
            "presence_subscribe" => ChannelMode::PresenceSubscribe,
            _ => ChannelMode::Presence,
        })
        .collect();
    cfg.channel_options.insert(
        "feed".into(),
        ChannelOptions {
            params: serde_json::from_value(ch2["params"].clone()).unwrap(),
            modes,
        },
    );
    let p = AblyRealtime::new(cfg);
    let room = Channel::public("room");
    let feed = Channel::public("feed");
    let mut seen = Vec::new();

    // --- connection 0 ---
    let (sink, mut rx) = EventSink::channel();
    let session = bounded("connect", p.connect(sink)).await.unwrap();
    assert_eq!(session.connection_id, main["afterConnect"]["id"]);
    assert_eq!(p.connection_key().unwrap(), main["afterConnect"]["key"]);
    assert!(!session.resumed);
    assert_eq!(session.max_payload, Some(65536));
    let sub = bounded("attach", p.subscribe(&room, &SubscribeOptions::default()))
        .await
        .unwrap();
    assert_eq!(sub.recovery, Recovery::NotAttempted);
    let snapshot = wait_for(&mut rx, &mut seen, "the presence sync", |e| match e {
        ProviderEvent::Presence {
            change: PresenceChange::Snapshot(m),
            ..
        } => Some(m.clone()),
        _ => None,
    })
    .await;
    let expected: Vec<PresenceMember> = main["presenceAfterSync"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| PresenceMember::new(m["clientId"].as_str().unwrap(), m["data"].clone()))
        .collect();
    assert_eq!(snapshot, expected);
    assert_eq!(p.presence_members(&room).await.unwrap(), expected);

    p.presence_enter(&room, json!({"status": "online"}))
        .await
        .unwrap();
    p.presence_update(&room, json!("busy")).await.unwrap();
    let results = &main["publishResults"];
    let h = p
        .publish_messages(
            &room,
            &[AblyMessage::new("greeting", Payload::Text("hello".into()))],
        )
        .unwrap();
    assert_eq!(
        bounded("an ACK", h.outcome()).await.unwrap(),
        serials(&results["pub1"])
    );
    let mut ext = AblyMessage::new("ext", Payload::Text("x".into()));
    ext.extras = Some(json!({"headers": {"h": "v"}}));
    let h = p
        .publish_messages(
            &room,
            &[
                AblyMessage::new("obj", Payload::Json(json!({"a": 1}))),
                AblyMessage::new("bin", Payload::Binary(vec![1, 2, 3])),
                ext,
            ],
        )
        .unwrap();
    assert_eq!(
        bounded("an ACK", h.outcome()).await.unwrap(),
        serials(&results["pub2"])
    );
    let nack = p
        .publish(&OutboundMessage::new(
            room.clone(),
            "nack-me",
            json!("data"),
        ))
        .await
        .unwrap_err();
    let code = results["nackErr"]["code"].as_i64().unwrap();
    assert_eq!(
        nack.kind(),
        ErrorKind::Forbidden,
        "{code} is a capability refusal"
    );
    assert!(nack.to_string().contains(&code.to_string()), "{nack}");
    // ably-js `connection.ping()`: the HEARTBEAT round trip (the core's liveness check,
    // `RealtimeProvider::ping`, sends nothing).
    p.ping_server().await.unwrap();

    // Server MESSAGE (json, base64, utf-8/base64, explicit id) and PRESENCE leave.
    let received = main["received"].as_array().unwrap();
    for want in received {
        let m = wait_for(&mut rx, &mut seen, "a message", |e| match e {
            ProviderEvent::Message(m) => Some(m.clone()),
            _ => None,
        })
        .await;
        assert_eq!(m.channel, room);
        assert_eq!(json!(m.id), want["id"]);
        assert_eq!(json!(m.event), want["name"]);
        assert!(
            same_data(&m.data, &want["data"]),
            "{} vs {}",
            m.data,
            want["data"]
        );
        assert_eq!(json!(m.timestamp), want["timestamp"]);
        let sender = want["clientId"].as_str().or(want["connectionId"].as_str());
        assert_eq!(m.sender.as_deref(), sender);
    }
    let left = wait_for(&mut rx, &mut seen, "bob leaving", |e| match e {
        ProviderEvent::Presence {
            change: PresenceChange::Left(m),
            ..
        } => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!(left.id, "bob");
    let after: Vec<Value> = p
        .presence_members(&room)
        .await
        .unwrap()
        .iter()
        .map(|m| json!({"clientId": m.id, "data": m.data}))
        .collect();
    let want_after: Vec<Value> = main["presenceAfterLeave"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| json!({"clientId": m["clientId"], "data": m["data"]}))
        .collect();
    assert_eq!(after, want_after);

    // A second channel with params and modes, then detach; presence leave.
    p.subscribe(&feed, &SubscribeOptions::default())
        .await
        .unwrap();
    p.unsubscribe(&feed).await.unwrap();
    p.presence_leave(&room).await.unwrap();
    let rk: Value = serde_json::from_str(&p.recovery_key().unwrap()).unwrap();
    let want_rk: Value =
        serde_json::from_str(main["beforeDropRecoveryKey"].as_str().unwrap()).unwrap();
    assert_eq!(rk, want_rk);
    peer.finished(0).await;
    let reason = closed(&mut rx, &mut seen).await;
    assert_ne!(
        std::mem::discriminant(&reason.reconnect),
        std::mem::discriminant(&Reconnect::Never(RealtimeError::Closed(String::new())))
    );
    p.disconnect().await.unwrap();

    // --- connection 1: resume succeeds ---
    let (sink, mut rx) = EventSink::channel();
    let session = bounded("resume", p.connect(sink)).await.unwrap();
    assert!(session.resumed);
    assert_eq!(session.connection_id, main["afterResume"]["id"]);
    assert_eq!(p.connection_key().unwrap(), main["afterResume"]["key"]);
    let since = SubscribeOptions {
        since: Some(relayport_core::Position::new(1)),
        ..SubscribeOptions::default()
    };
    let sub = p.subscribe(&room, &since).await.unwrap();
    assert_eq!(
        sub.recovery,
        Recovery::Recovered,
        "RESUMED flag: continuity held"
    );
    let err = p
        .publish(&OutboundMessage::new(room.clone(), "number-data", json!(1)))
        .await
        .unwrap_err();
    let want = results["numberDataErr"]["code"].as_i64().unwrap();
    assert!(
        matches!(err, RealtimeError::Provider { code, .. } if code == want),
        "{err:?}"
    );
    let h = p
        .publish_messages(
            &room,
            &[AblyMessage::new(
                "after-resume",
                Payload::Text("one".into()),
            )],
        )
        .unwrap();
    assert_eq!(
        bounded("an ACK", h.outcome()).await.unwrap(),
        serials(&results["pubAfterResume"])
    );
    peer.finished(1).await;
    closed(&mut rx, &mut seen).await;
    p.disconnect().await.unwrap();

    // --- connection 2: resume fails (new id + 80008): msgSerial restarts at 0 ---
    let (sink, mut rx) = EventSink::channel();
    let session = bounded("failed resume", p.connect(sink)).await.unwrap();
    assert!(!session.resumed);
    assert_eq!(session.connection_id, main["afterFailedResume"]["id"]);
    let code = main["afterFailedResume"]["errorReason"]["code"]
        .as_i64()
        .unwrap();
    let reported = wait_for(&mut rx, &mut seen, "the resume failure", |e| match e {
        ProviderEvent::Error { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(
        reported.to_string().contains(&code.to_string()),
        "{reported}"
    );
    let sub = p.subscribe(&room, &since).await.unwrap();
    assert_eq!(
        sub.recovery,
        Recovery::NotAttempted,
        "no RESUMED: history recovery"
    );
    let h = p
        .publish_messages(
            &room,
            &[AblyMessage::new(
                "after-failed-resume",
                Payload::Text("two".into()),
            )],
        )
        .unwrap();
    assert_eq!(
        bounded("an ACK", h.outcome()).await.unwrap(),
        serials(&results["pubAfterFailedResume"])
    );
    let reason = closed(&mut rx, &mut seen).await;
    assert_eq!(reason.code, Some(80003));
    assert_eq!(
        reason.reconnect,
        Reconnect::Immediately,
        "DISCONNECTED: resume at once"
    );
    p.disconnect().await.unwrap();

    // --- connection 3: resumed again; then close ---
    let (sink, _rx) = EventSink::channel();
    let session = bounded("resume", p.connect(sink)).await.unwrap();
    assert!(session.resumed);
    p.subscribe(&room, &SubscribeOptions::default())
        .await
        .unwrap();
    let rk: Value = serde_json::from_str(&p.recovery_key().unwrap()).unwrap();
    let want_rk: Value = serde_json::from_str(main["recoveryKeyAtEnd"].as_str().unwrap()).unwrap();
    assert_eq!(rk, want_rk);
    p.close().await.unwrap();
    peer.finished(3).await;
    peer.assert_clean();
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, ProviderEvent::Error { .. })),
        "unexpected errors: {seen:?}"
    );
}

#[tokio::test]
async fn recover_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["recover"];
    let opts = &sc["clientOptions"];
    let mut peer = WsPeer::start(Script::scenario(sc)).await;
    let mut cfg = local(
        AblyConfig::new(Credentials::Token(opts["token"].as_str().unwrap().into())),
        peer.port,
        1,
    );
    cfg.echo = opts["echoMessages"].as_bool().unwrap();
    cfg.recover = opts["recover"].as_str().map(str::to_owned);
    let p = AblyRealtime::new(cfg);
    let (sink, _rx) = EventSink::channel();
    let session = bounded("connect", p.connect(sink)).await.unwrap();
    assert!(!session.resumed);
    let room = Channel::public("room");
    p.subscribe(&room, &SubscribeOptions::default())
        .await
        .unwrap();
    let h = p
        .publish_messages(
            &room,
            &[AblyMessage::new("after-recover", Payload::Text("x".into()))],
        )
        .unwrap();
    assert_eq!(
        bounded("an ACK", h.outcome()).await.unwrap(),
        serials(&sc["publishResult"])
    );
    p.close().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn token_flow_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["tokenFlow"];
    let http: Vec<Value> = sc["httpRequests"].as_array().unwrap().clone();
    let rest = HttpPeer::start(http.clone(), None).await;
    let mut peer = WsPeer::start(Script::scenario(sc)).await;
    // The auth callback signs the same TokenRequests the generator's callback returned.
    let bodies: Vec<Value> = http
        .iter()
        .map(|r| serde_json::from_str(r["body"].as_str().unwrap()).unwrap())
        .collect();
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::<TokenParams>::new()));
    let c = calls.clone();
    let creds = Credentials::callback(move |params: TokenParams| {
        let mut calls = c.lock().unwrap();
        let body = bodies[calls.len().min(bodies.len() - 1)].clone();
        calls.push(params);
        async move {
            let tr = key()
                .create_token_request(&TokenParams {
                    ttl: body["ttl"].as_u64(),
                    capability: None,
                    client_id: body["clientId"].as_str().map(str::to_owned),
                    timestamp: body["timestamp"].as_u64(),
                    nonce: body["nonce"].as_str().map(str::to_owned),
                })
                .unwrap();
            Ok(AuthResponse::Request(tr))
        }
    });
    let client_id = sc["authCallbackTokenParams"][0]["clientId"]
        .as_str()
        .unwrap();
    let cfg = local(
        AblyConfig::new(creds).client_id(client_id),
        peer.port,
        rest.port,
    );
    let p = AblyRealtime::new(cfg);
    let mut seen = Vec::new();
    let (sink, mut rx) = EventSink::channel();
    bounded("connect", p.connect(sink)).await.unwrap();
    let reason = closed(&mut rx, &mut seen).await;
    assert_eq!(reason.code, Some(40142));
    assert_eq!(
        reason.reconnect,
        Reconnect::Immediately,
        "renewed: reconnect at once"
    );
    p.disconnect().await.unwrap();
    let mut updates = p.connection_updates();
    let (sink, _rx) = EventSink::channel();
    let session = bounded("reconnect", p.connect(sink)).await.unwrap();
    assert!(session.resumed);
    peer.finished(0).await;
    // The server's AUTH is answered in-band (the peer checks the AUTH frame); its CONNECTED
    // reply updates the connection.
    let before = *updates.borrow_and_update();
    bounded("the in-band re-auth", updates.wait_for(|n| *n > before))
        .await
        .unwrap();
    let last = sc["connections"][1]["frames"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let last: Value = serde_json::from_str(last["raw"].as_str().unwrap()).unwrap();
    assert_eq!(
        json!(p.connection_key()),
        last["connectionDetails"]["connectionKey"]
    );
    assert_eq!(
        calls.lock().unwrap().len() as u64,
        sc["authCallbackCalls"].as_u64().unwrap()
    );
    p.close().await.unwrap();
    peer.finished(1).await;
    peer.assert_clean();
    rest.assert_clean();
    let calls = calls.lock().unwrap();
    let want: Vec<TokenParams> =
        serde_json::from_value(sc["authCallbackTokenParams"].clone()).unwrap();
    assert_eq!(*calls, want);
}

#[tokio::test]
async fn fatal_error_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["fatalError"];
    let mut peer = WsPeer::start(Script::scenario(sc)).await;
    let p = AblyRealtime::new(local(
        AblyConfig::new(Credentials::Key(key())),
        peer.port,
        1,
    ));
    let (sink, _rx) = EventSink::channel();
    let err = bounded("connect", p.connect(sink)).await.unwrap_err();
    let code = sc["errorReason"]["code"].as_i64().unwrap();
    assert!(!err.is_retryable(), "{err}: ERROR without channel is fatal");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains(&code.to_string()));
    p.disconnect().await.unwrap();
    peer.finished(0).await;
    peer.assert_clean();
}

#[tokio::test]
async fn inflight_resend_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["inflightResend"];
    let mut peer = WsPeer::start(Script::scenario(sc)).await;
    let p = AblyRealtime::new(local(
        AblyConfig::new(Credentials::Key(key())),
        peer.port,
        1,
    ));
    let ch = Channel::public("inflight");
    let msg = |n: &str, d: &str| [AblyMessage::new(n, Payload::Text(d.into()))];
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    bounded(
        "an ACK",
        p.publish_messages(&ch, &msg("acked-first", "a"))
            .unwrap()
            .outcome(),
    )
    .await
    .unwrap();
    let h1 = p.publish_messages(&ch, &msg("held-1", "b")).unwrap();
    let h2 = p.publish_messages(&ch, &msg("held-2", "c")).unwrap();
    peer.finished(0).await;
    p.disconnect().await.unwrap();
    // Resumed: resent with their msgSerials, before the re-attach.
    let (sink, _rx) = EventSink::channel();
    assert!(p.connect(sink).await.unwrap().resumed);
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    let held12 = sc["results"]["held12"].as_array().unwrap();
    assert_eq!(
        bounded("an ACK", h1.outcome()).await.unwrap(),
        serials(&held12[0])
    );
    assert_eq!(
        bounded("an ACK", h2.outcome()).await.unwrap(),
        serials(&held12[1])
    );
    let h3 = p.publish_messages(&ch, &msg("held-3", "d")).unwrap();
    peer.finished(1).await;
    p.disconnect().await.unwrap();
    // Failed resume: renumbered from 0.
    let (sink, _rx) = EventSink::channel();
    assert!(!p.connect(sink).await.unwrap().resumed);
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    assert_eq!(
        bounded("an ACK", h3.outcome()).await.unwrap(),
        serials(&sc["results"]["held3"])
    );
    p.close().await.unwrap();
    peer.finished(2).await;
    peer.assert_clean();
}

#[tokio::test]
async fn suspend_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["suspend"];
    let scripts = Script::scenario(sc);
    let n = scripts.len();
    let mut peer = WsPeer::start(scripts).await;
    let p = AblyRealtime::new(local(
        AblyConfig::new(Credentials::Key(key())),
        peer.port,
        1,
    ));
    let ch = Channel::public("sus");
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    peer.finished(0).await;
    p.disconnect().await.unwrap();
    // Refused attempts (socket closed at once): each is one retryable failure.
    for i in 1..n - 1 {
        let (sink, _rx) = EventSink::channel();
        let err = bounded("a refused attempt", p.connect(sink))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
        peer.finished(i).await;
    }
    // Accepted again with a new connection id: a fresh connection, the channel re-attached
    // with its serial.
    let (sink, _rx) = EventSink::channel();
    let session = p.connect(sink).await.unwrap();
    assert!(!session.resumed);
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .unwrap();
    p.close().await.unwrap();
    peer.finished(n - 1).await;
    peer.assert_clean();
    let urls: Vec<String> = serde_json::from_value(sc["upgradeUrls"].clone()).unwrap();
    assert!(urls[1..].iter().all(|u| u.contains("resume=")));
}

#[tokio::test]
async fn connect_timeout_transcript() {
    let v = vectors();
    let sc = &v["realtime"]["connectTimeout"];
    let urls: Vec<String> = serde_json::from_value(sc["upgradeUrls"].clone()).unwrap();
    // The server accepts the WebSocket and never sends CONNECTED.
    let scripts: Vec<Script> = urls
        .iter()
        .map(|u| {
            let (path, qs) = u.split_once('?').unwrap();
            let query: BTreeMap<String, String> = support::parse_query(qs);
            Script {
                upgrade: json!({"path": path, "query": query}),
                frames: vec![],
                tail: support::Tail::AcceptClose,
            }
        })
        .collect();
    let mut peer = WsPeer::start(scripts).await;
    let mut cfg = local(AblyConfig::new(Credentials::Key(key())), peer.port, 1);
    let timeout_ms = sc["clientOptions"]["realtimeRequestTimeout"]
        .as_u64()
        .unwrap();
    cfg.realtime_request_timeout = std::time::Duration::from_millis(timeout_ms);
    let limit = cfg.realtime_request_timeout;
    let p = AblyRealtime::new(cfg);
    for i in 0..urls.len() {
        let (sink, _rx) = EventSink::channel();
        // The provider has no connect timer: the core's connect timeout ends the attempt
        // (emulated here with the scenario's realtimeRequestTimeout).
        let attempt = tokio::time::timeout(limit, p.connect(sink)).await;
        assert!(
            attempt.is_err(),
            "no CONNECTED, yet the attempt ended: {attempt:?}"
        );
        p.disconnect().await.unwrap();
        peer.finished(i).await;
    }
    peer.assert_clean();
}
