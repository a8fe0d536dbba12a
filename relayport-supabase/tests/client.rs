//! The provider's timers, limits and error paths against hand-written server scripts, and the
//! provider driven by the core's `RealtimeClient`. The clock is paused and the transport is an
//! in-memory pipe, so the 10 s and 25 s timeouts are exact and instant.

mod common;
mod peer;

use std::sync::Arc;
use std::time::Duration;

use relayport_core::{
    Channel, ClientEvent, ConnectionState, ErrorKind, EventSink, OutboundMessage, PresenceAction,
    ProviderEvent, RealtimeClient, RealtimeError, RealtimeProvider, SubscribeOptions,
};
use relayport_supabase::frame::decode_user_broadcast_push;
use relayport_supabase::{
    BroadcastOptions, ChannelOptions, SupabaseAuthorizer, SupabaseConfig, SupabaseProvider,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const JOIN_OK: &str = r#"{"status":"ok","response":{"postgres_changes":[]}}"#;

fn provider(connector: relayport_supabase::client::Connector) -> SupabaseProvider {
    SupabaseProvider::new(SupabaseConfig::new("http://127.0.0.1:4000", "anon"))
        .with_connector(connector)
}

fn acked() -> ChannelOptions {
    ChannelOptions {
        broadcast: Some(BroadcastOptions {
            self_broadcast: None,
            ack: Some(true),
            replay: None,
        }),
        ..Default::default()
    }
}

fn array(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .expect("JSON")
        .as_array()
        .expect("array")
        .clone()
}

async fn next_event(events: &mut UnboundedReceiver<(u64, ProviderEvent)>) -> ProviderEvent {
    timeout(Duration::from_secs(60), events.recv())
        .await
        .expect("an event in time")
        .expect("sink open")
        .1
}

/// Accepts, answers the first join with ok, returns the socket and the join frame.
async fn joined(
    incoming: &mut peer::Incoming,
) -> (
    tokio_tungstenite::WebSocketStream<Box<dyn relayport_supabase::client::Io>>,
    Vec<Value>,
) {
    let mut ws = peer::accept_ws(incoming).await;
    let join = array(&peer::recv_text(&mut ws).await);
    assert_eq!(join[3], "phx_join");
    let reply = json!([
        join[0],
        join[1],
        join[2],
        "phx_reply",
        serde_json::from_str::<Value>(JOIN_OK).unwrap()
    ]);
    peer::send_text(&mut ws, &reply.to_string()).await;
    (ws, join)
}

#[tokio::test(start_paused = true)]
async fn join_times_out_after_exactly_ten_seconds_and_leaves() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let mut ws = peer::accept_ws(&mut incoming).await;
        let join = array(&peer::recv_text(&mut ws).await);
        let leave = peer::recv_text(&mut ws).await;
        (join, leave, ws)
    });
    let p = provider(connector);
    let (sink, _events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    let start = Instant::now();
    let err = p
        .subscribe(&Channel::public("slow"), &SubscribeOptions::default())
        .await
        .expect_err("timeout");
    assert_eq!(start.elapsed(), Duration::from_secs(10));
    assert_eq!(
        err,
        RealtimeError::timeout("join reply", Duration::from_secs(10))
    );
    let (join, leave, _ws) = server.await.expect("server");
    assert_eq!(
        leave,
        format!(r#"[{0},"2","realtime:slow","phx_leave",{{}}]"#, join[0])
    );
}

#[tokio::test(start_paused = true)]
async fn ack_timeouts_are_forbidden_on_private_channels_and_timeouts_on_public_ones() {
    for (channel, kind) in [
        (Channel::private("secret"), ErrorKind::Forbidden),
        (Channel::public("open"), ErrorKind::Timeout),
    ] {
        let (mut incoming, connector) = peer::memory();
        let server = tokio::spawn(async move {
            let (mut ws, _) = joined(&mut incoming).await;
            let frame = peer::recv(&mut ws).await;
            (frame, ws)
        });
        let p = provider(connector).with_channel_options(channel.clone(), acked());
        let (sink, _events) = EventSink::channel();
        p.connect(sink).await.expect("connect");
        p.subscribe(&channel, &SubscribeOptions::default())
            .await
            .expect("join");
        let start = Instant::now();
        let err = p
            .publish(&OutboundMessage::new(channel.clone(), "e", json!({"a": 1})))
            .await
            .expect_err("no ack");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(err.kind(), kind, "{channel}: {err}");
        let (frame, _ws) = server.await.expect("server");
        let WsMessage::Binary(b) = frame else {
            panic!("kind 3 expected")
        };
        assert_eq!(
            decode_user_broadcast_push(&b).expect("kind 3").user_event,
            "e"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn ack_error_reply_is_a_bare_string() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, _) = joined(&mut incoming).await;
        let WsMessage::Binary(b) = peer::recv(&mut ws).await else {
            panic!("binary")
        };
        let push = decode_user_broadcast_push(&b).expect("kind 3");
        let reply = json!([push.join_ref, push.ref_, push.topic, "phx_reply", {"status": "error", "response": "payload_size_exceeded"}]);
        peer::send_text(&mut ws, &reply.to_string()).await;
        ws
    });
    let ch = Channel::public("room");
    let p = provider(connector).with_channel_options(ch.clone(), acked());
    let (sink, _events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .expect("join");
    let err = p
        .publish(&OutboundMessage::new(ch.clone(), "e", json!({"a": 1})))
        .await
        .expect_err("refused");
    assert_eq!(
        err,
        RealtimeError::PayloadTooLarge {
            size: 7,
            limit: 256 * 1024
        }
    );
    let _ws = server.await.expect("server");
}

/// Issue 13: the heartbeat reply timeout is the core's (the provider has none of its own): an
/// unanswered heartbeat ends the link `heartbeat_timeout` after it was sent, through the
/// provider's `disconnect` (a close frame), and the core reconnects.
#[tokio::test(start_paused = true)]
async fn unanswered_heartbeat_is_the_cores_timeout() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let start = Instant::now();
        let mut ws = peer::accept_ws(&mut incoming).await;
        let hb = peer::recv_text(&mut ws).await;
        let sent = start.elapsed();
        let close = peer::recv(&mut ws).await;
        (hb, sent, start.elapsed(), close, incoming)
    });
    let client = RealtimeClient::builder(provider(connector))
        .lazy_connect(false)
        .heartbeat(Duration::from_secs(30), Duration::from_secs(25))
        .build();
    let mut events = client.events();
    client.connect().await.expect("connect");
    let lost = loop {
        match timeout(Duration::from_secs(120), events.recv()).await {
            Ok(Ok(ClientEvent::LinkLost { message, .. })) => break message,
            Ok(Ok(_)) => continue,
            other => panic!("no LinkLost: {other:?}"),
        }
    };
    assert!(lost.contains("heartbeat timeout"), "{lost}");
    let (hb, sent, closed, close, _incoming) = server.await.expect("server");
    assert_eq!(hb, r#"[null,"1","phoenix","heartbeat",{}]"#);
    assert_eq!(sent, Duration::from_secs(25), "the announced 25 s interval");
    assert_eq!(closed, Duration::from_secs(50), "25 s without a reply");
    assert!(matches!(close, WsMessage::Close(_)), "{close:?}");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn heartbeat_reply_gives_the_round_trip() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let mut ws = peer::accept_ws(&mut incoming).await;
        let hb = array(&peer::recv_text(&mut ws).await);
        tokio::time::sleep(Duration::from_millis(30)).await; // the server's think time
        peer::send_text(
            &mut ws,
            &json!([null, hb[1], "phoenix", "phx_reply", {"status": "ok", "response": {}}])
                .to_string(),
        )
        .await;
        ws
    });
    let p = provider(connector);
    let (sink, _events) = EventSink::channel();
    let session = p.connect(sink).await.expect("connect");
    assert_eq!(session.heartbeat_interval, Some(Duration::from_secs(25)));
    assert_eq!(p.ping().await.expect("pong"), Duration::from_millis(30));
    let _ws = server.await.expect("server");
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_are_protocol_errors_and_the_link_stays_up() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, join) = joined(&mut incoming).await;
        peer::send_text(&mut ws, "not json").await;
        peer::send_text(&mut ws, "[null,null,\"realtime:room\"]").await;
        for bad in [
            vec![4u8, 14, 6],
            vec![4, 1, 1, 0, 9, b't', b'e'],
            vec![7, 0, 0],
            vec![],
        ] {
            ws.send_bin(bad).await;
        }
        let stale =
            json!(["999", null, join[2], "presence_state", {"x": {"metas": [{"phx_ref": "r"}]}}]);
        peer::send_text(&mut ws, &stale.to_string()).await;
        peer::send_text(&mut ws, &json!([null, null, join[2], "broadcast", {"type": "broadcast", "event": "ok", "payload": {}}]).to_string()).await;
        ws
    });
    let ch = Channel::public("room");
    let p = provider(connector);
    let (sink, mut events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .expect("join");
    let mut protocol_errors = 0;
    loop {
        match next_event(&mut events).await {
            ProviderEvent::Error { error, .. } => {
                assert_eq!(error.kind(), ErrorKind::Protocol, "{error}");
                protocol_errors += 1;
            }
            ProviderEvent::Message(m) => {
                assert_eq!(m.event, "ok");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(protocol_errors, 6);
    assert!(
        p.presence_members(&ch).await.expect("members").is_empty(),
        "the stale presence_state was dropped"
    );
    let _ws = server.await.expect("server");
}

trait SendBin {
    async fn send_bin(&mut self, b: Vec<u8>);
}

impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> SendBin
    for tokio_tungstenite::WebSocketStream<S>
{
    async fn send_bin(&mut self, b: Vec<u8>) {
        use futures_util::SinkExt;
        self.send(WsMessage::Binary(b.into())).await.expect("send");
    }
}

#[tokio::test(start_paused = true)]
async fn payload_and_header_limits_at_and_past() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, _) = joined(&mut incoming).await;
        let mut frames = Vec::new();
        for _ in 0..2 {
            let WsMessage::Binary(b) = peer::recv(&mut ws).await else {
                panic!("binary")
            };
            frames.push(decode_user_broadcast_push(&b).expect("kind 3"));
        }
        frames
    });
    let ch = Channel::public("room");
    let mut config = SupabaseConfig::new("http://127.0.0.1:4000", "anon");
    config.max_payload = 20;
    let p = SupabaseProvider::new(config).with_connector(connector);
    let (sink, _events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .expect("join");
    // {"k":"…"} is 8 bytes around the string.
    let at = OutboundMessage::new(ch.clone(), "e", json!({"k": "x".repeat(12)}));
    p.publish(&at).await.expect("at the payload limit");
    let past = OutboundMessage::new(ch.clone(), "e", json!({"k": "x".repeat(13)}));
    assert_eq!(
        p.publish(&past).await,
        Err(RealtimeError::PayloadTooLarge {
            size: 21,
            limit: 20
        })
    );
    let event_at = OutboundMessage::new(ch.clone(), "v".repeat(255), json!({}));
    p.publish(&event_at).await.expect("a 255-byte event name");
    let event_past = OutboundMessage::new(ch.clone(), "v".repeat(256), json!({}));
    let err = p
        .publish(&event_past)
        .await
        .expect_err("256-byte event name");
    assert_eq!(err.kind(), ErrorKind::Protocol);
    assert!(err.to_string().contains("user_event"), "{err}");
    let frames = server.await.expect("server");
    assert_eq!(
        frames[0].payload,
        relayport_supabase::frame::UserPayload::Json(at.data.into_json().unwrap())
    );
    assert_eq!(frames[1].user_event.len(), 255);
}

#[tokio::test(start_paused = true)]
async fn server_close_after_a_system_error_loses_the_channel_for_good() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, join) = joined(&mut incoming).await;
        let sys = json!([join[0], null, join[2], "system", {"extension": "system", "status": "error", "message": "You no longer have permission to read from this Channel topic: room", "channel": "room"}]);
        peer::send_text(&mut ws, &sys.to_string()).await;
        peer::send_text(
            &mut ws,
            &json!([join[0], join[0], join[2], "phx_close", {}]).to_string(),
        )
        .await;
        ws
    });
    let ch = Channel::public("room");
    let p = provider(connector);
    let (sink, mut events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&ch, &SubscribeOptions::default())
        .await
        .expect("join");
    let mut lost = None;
    while lost.is_none() {
        if let ProviderEvent::SubscriptionLost { channel, error } = next_event(&mut events).await {
            lost = Some((channel, error));
        }
    }
    let (channel, error) = lost.expect("lost");
    assert_eq!(channel, ch);
    assert_eq!(error.kind(), ErrorKind::Forbidden);
    assert!(
        p.presence_members(&ch).await.is_err(),
        "the channel is gone"
    );
    let _ws = server.await.expect("server");
}

/// The core's client over this provider: a presence channel authorized with a minted JWT,
/// presence folded into member events, messages delivered.
#[tokio::test(start_paused = true)]
async fn realtime_client_end_to_end_presence_and_messages() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let mut ws = peer::accept_ws(&mut incoming).await;
        let join = array(&peer::recv_text(&mut ws).await);
        let reply = json!([join[0], join[1], join[2], "phx_reply", {"status": "ok", "response": {"postgres_changes": []}}]);
        peer::send_text(&mut ws, &reply.to_string()).await;
        let state = json!([join[0], null, join[2], "presence_state", {"u2": {"metas": [{"phx_ref": "a", "name": "bob"}]}}]);
        peer::send_text(&mut ws, &state.to_string()).await;
        let track = array(&peer::recv_text(&mut ws).await);
        peer::send_text(
            &mut ws,
            &json!([join[0], track[1], join[2], "phx_reply", {"status": "ok", "response": {}}])
                .to_string(),
        )
        .await;
        let diff = json!([null, null, join[2], "presence_diff", {"joins": {"u1": {"metas": [{"phx_ref": "b", "name": "me"}]}}, "leaves": {"u2": {"metas": [{"phx_ref": "a", "name": "bob"}]}}}]);
        peer::send_text(&mut ws, &diff.to_string()).await;
        let msg = json!([null, null, join[2], "broadcast", {"type": "broadcast", "event": "chat", "payload": {"text": "hi"}, "meta": {"id": "m1"}}]);
        peer::send_text(&mut ws, &msg.to_string()).await;
        (join, track, ws)
    });
    let secret = "a-test-jwt-secret-that-is-long-enough-for-hs256";
    let client = RealtimeClient::builder(provider(connector))
        .client_id("u1")
        .authorizer(Arc::new(SupabaseAuthorizer::new(secret)))
        .build();
    let ch = Channel::presence("room");
    let mut presence = client
        .presence_events(ch.clone())
        .await
        .expect("presence stream");
    let mut sub = client.subscribe(ch.clone()).await.expect("subscribe");
    client
        .presence_enter(ch.clone(), json!({"name": "me"}))
        .await
        .expect("track");
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = timeout(Duration::from_secs(60), presence.recv())
            .await
            .expect("presence in time")
            .expect("event");
        seen.push((e.action, e.member.id.clone()));
    }
    assert_eq!(
        seen,
        vec![
            (PresenceAction::Joined, "u2".into()),
            (PresenceAction::Joined, "u1".into()),
            (PresenceAction::Left, "u2".into())
        ]
    );
    let m = timeout(Duration::from_secs(60), sub.recv())
        .await
        .expect("message in time")
        .expect("message");
    assert_eq!(
        (
            m.event.as_str(),
            m.data.as_json().cloned().unwrap(),
            m.id.as_deref()
        ),
        ("chat", json!({"text": "hi"}), Some("m1"))
    );
    let (join, track, mut ws) = server.await.expect("server");
    // Issue 15 item 8: closing the client (what the CLI does on ctrl-c) leaves the presence
    // channel with `phx_leave` before the close frame.
    let closing = tokio::spawn(async move { client.close().await });
    let leave = array(&peer::recv_text(&mut ws).await);
    assert_eq!(
        (&leave[0], &leave[2], &leave[3]),
        (&join[0], &join[2], &json!("phx_leave"))
    );
    assert!(matches!(peer::recv(&mut ws).await, WsMessage::Close(_)));
    drop(ws);
    closing.await.expect("closed");
    let config = &join[4]["config"];
    assert_eq!(config["presence"], json!({"key": "u1", "enabled": true}));
    assert_eq!(
        config["private"], false,
        "presence is not privacy (issue 15 item 3)"
    );
    assert!(
        join[4]["access_token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3),
        "minted JWT sent"
    );
    assert_eq!(
        track[4],
        json!({"type": "presence", "event": "track", "payload": {"name": "me"}})
    );
}

/// A dropped socket: the core reconnects on its own schedule, and the rejoin carries the
/// token the application set meanwhile.
#[tokio::test(start_paused = true)]
async fn realtime_client_reconnects_and_rejoins_with_the_current_token() {
    let (mut incoming, connector) = peer::memory();
    let p = provider(connector);
    let token = p.access_token_handle();
    let client = RealtimeClient::builder(p).jitter_seed(7).build();
    let mut states = client.state_changes();
    let ch = Channel::public("room");
    let subscribing = tokio::spawn({
        let client = client.clone();
        let ch = ch.clone();
        async move { client.subscribe(ch).await }
    });
    let (mut ws, first) = joined(&mut incoming).await;
    let _sub = subscribing.await.expect("task").expect("subscribe");
    assert!(first[4].get("access_token").is_none());
    assert_eq!(token.set("jwt-2"), 1);
    let pushed = array(&peer::recv_text(&mut ws).await);
    assert_eq!(
        (pushed[3].as_str(), &pushed[4]),
        (Some("access_token"), &json!({"access_token": "jwt-2"}))
    );
    drop(ws); // the server goes away without a close frame
    let dropped = Instant::now();
    let reconnecting = timeout(Duration::from_secs(60), async {
        loop {
            states.changed().await.expect("state");
            if let ConnectionState::Reconnecting { retry_in, .. } = *states.borrow() {
                return retry_in;
            }
        }
    })
    .await
    .expect("reconnecting");
    assert!(
        reconnecting >= Duration::from_secs(1) && reconnecting <= Duration::from_secs(2),
        "{reconnecting:?}"
    );
    let (mut ws, rejoin) = joined(&mut incoming).await;
    assert!(dropped.elapsed() >= Duration::from_secs(1));
    assert_eq!(rejoin[4]["access_token"], "jwt-2");
    assert_ne!(rejoin[0], first[0], "a new join_ref");
    let mut events = client.events();
    client.close().await;
    let _ = peer::recv(&mut ws).await;
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, ClientEvent::SubscriptionFailed { .. }),
            "{e:?}"
        );
    }
}

/// Refused handshakes: the core's backoff schedule (1 s, 2 s, … plus jitter) replaces
/// realtime-js's 1/2/5/10 s; a transient refusal (503) is retried.
#[tokio::test(start_paused = true)]
async fn realtime_client_retries_refused_handshakes_on_the_core_schedule() {
    let (mut incoming, connector) = peer::memory();
    let client = RealtimeClient::builder(provider(connector))
        .jitter_seed(3)
        .build();
    let mut states = client.state_changes();
    let connecting = tokio::spawn({
        let client = client.clone();
        async move { client.connect().await }
    });
    let server = tokio::spawn(async move {
        peer::refuse(&mut incoming, 503).await;
        peer::refuse(&mut incoming, 503).await;
        peer::accept_ws(&mut incoming).await
    });
    let mut delays = Vec::new();
    timeout(Duration::from_secs(120), async {
        loop {
            states.changed().await.expect("state");
            let state = states.borrow().clone();
            match state {
                ConnectionState::Reconnecting { retry_in, .. } => delays.push(retry_in),
                ConnectionState::Connected => break,
                _ => {}
            }
        }
    })
    .await
    .expect("connected in time");
    assert_eq!(delays.len(), 2, "{delays:?}");
    assert!(
        delays[0] >= Duration::from_secs(1) && delays[0] <= Duration::from_secs(2),
        "{delays:?}"
    );
    assert!(
        delays[1] >= Duration::from_secs(2) && delays[1] <= Duration::from_secs(3),
        "{delays:?}"
    );
    // connect() reports the first attempt; the core kept retrying on its own.
    let first = connecting
        .await
        .expect("task")
        .expect_err("first attempt refused");
    assert!(first.is_retryable(), "{first}");
    assert_eq!(client.state(), ConnectionState::Connected);
    let _ws = server.await.expect("server");
    client.close().await;
}

/// A refused API key (HTTP 401 at the handshake) is fatal: realtime-js cannot see the status
/// and retries forever; we can, and stop.
#[tokio::test(start_paused = true)]
async fn refused_api_key_is_fatal_for_the_core() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move { peer::refuse(&mut incoming, 401).await });
    let client = RealtimeClient::builder(provider(connector)).build();
    let err = client.connect().await.expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert!(
        matches!(client.state(), ConnectionState::Failed(_)),
        "{:?}",
        client.state()
    );
    server.await.expect("server");
}

/// The TLS stack (rustls with ring) initializes: a `wss` attempt against a loopback socket
/// that is not TLS fails with a connection error, not a panic.
#[tokio::test]
async fn tls_connect_fails_cleanly_against_a_plain_socket() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.expect("accept");
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    });
    let p = SupabaseProvider::new(SupabaseConfig::new(
        &format!("https://127.0.0.1:{port}"),
        "anon",
    ));
    let (sink, _events) = EventSink::channel();
    let err = p.connect(sink).await.expect_err("not TLS");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(
        !err.to_string().contains("apikey"),
        "the key stays out of errors: {err}"
    );
    server.await.expect("server");
}

/// Against a real project: `SUPABASE_URL=https://<ref>.supabase.co SUPABASE_ANON_KEY=… cargo
/// test -p relayport-supabase --test client -- --ignored`.
#[tokio::test]
#[ignore = "needs SUPABASE_URL and SUPABASE_ANON_KEY and network access"]
async fn live_supabase_broadcast_round_trip() {
    let (Ok(url), Ok(key)) = (
        std::env::var("SUPABASE_URL"),
        std::env::var("SUPABASE_ANON_KEY"),
    ) else {
        panic!("set SUPABASE_URL and SUPABASE_ANON_KEY");
    };
    let ch = Channel::public("realtime-rs-live-test");
    let p = SupabaseProvider::new(SupabaseConfig::new(&url, key)).with_channel_options(
        ch.clone(),
        ChannelOptions {
            broadcast: Some(BroadcastOptions {
                self_broadcast: Some(true),
                ack: Some(true),
                replay: None,
            }),
            ..Default::default()
        },
    );
    let client = RealtimeClient::builder(p).build();
    let mut sub = client.subscribe(ch.clone()).await.expect("subscribe");
    client
        .publish(ch.clone(), "ping", json!({"n": 1}))
        .await
        .expect("acked publish");
    let m = timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("in time")
        .expect("message");
    assert_eq!(m.event, "ping");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn goodbye_leaves_every_joined_channel_then_closes() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, join) = joined(&mut incoming).await;
        let leave = array(&peer::recv_text(&mut ws).await);
        let close = peer::recv(&mut ws).await;
        (join, leave, close)
    });
    let p = provider(connector);
    let (sink, _events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&Channel::public("room"), &SubscribeOptions::default())
        .await
        .expect("join");
    p.goodbye().await.expect("goodbye");
    let (join, leave, close) = server.await.expect("server");
    // The leave carries the join's ref as its join ref, on the joined topic.
    assert_eq!(leave[0], join[0]);
    assert_eq!(leave[2], "realtime:room");
    assert_eq!(leave[3], "phx_leave");
    assert!(
        matches!(close, WsMessage::Close(_)),
        "the close frame follows the leaves, got {close:?}"
    );
}

/// A lost link's teardown (`disconnect`) sends no `phx_leave`: the core rejoins on the next
/// link, and the others never see this client's presence flap.
#[tokio::test(start_paused = true)]
async fn a_lost_links_disconnect_sends_no_leave() {
    let (mut incoming, connector) = peer::memory();
    let server = tokio::spawn(async move {
        let (mut ws, _join) = joined(&mut incoming).await;
        peer::recv(&mut ws).await
    });
    let p = provider(connector);
    let (sink, _events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&Channel::public("room"), &SubscribeOptions::default())
        .await
        .expect("join");
    p.disconnect().await.expect("disconnect");
    let first = server.await.expect("server");
    assert!(matches!(first, WsMessage::Close(_)), "{first:?}");
}
