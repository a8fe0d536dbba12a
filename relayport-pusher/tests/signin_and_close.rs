//! Issue 16 against scripted loopback peers (each peer asserts every frame the client sends):
//! user sign-in kept past the 30 s window with the user's events on `server-to-user`, the
//! last `pusher:error` deciding a close without a close frame, and client-event names.
//! Time runs on tokio's paused clock.

mod common;

use std::time::Duration;

use common::peer::{Peer, Step, established};
use relayport_core::{
    ChannelKind, ClientEvent, ConnectionState, ErrorKind, EventSink, ProviderEvent, RealtimeClient,
    RealtimeError, RealtimeProvider, Reconnect, SubscribeOptions,
};
use relayport_pusher::names::from_wire;
use relayport_pusher::protocol;
use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherProvider};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const KEY: &str = "app-key";
const WAIT: Duration = Duration::from_secs(10);
const NOT_SIGNED_IN: &str = "Connection not authorized within timeout.";

fn authorizer() -> PusherAuthorizer {
    PusherAuthorizer::new(Credentials::new("1", KEY, "app-secret"))
}

fn config(port: u16) -> PusherConfig {
    PusherConfig::host(KEY, "127.0.0.1", port, false)
}

fn error_frame(code: i64, message: &str) -> String {
    json!({"event": "pusher:error", "data": {"code": code, "message": message}}).to_string()
}

async fn next_closed(
    rx: &mut UnboundedReceiver<(u64, ProviderEvent)>,
) -> relayport_core::CloseReason {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some((_, ProviderEvent::Closed(r)))) => return r,
            Ok(Some(_)) => continue,
            other => panic!("no Closed event: {other:?}"),
        }
    }
}

/// Defect 2: a server that sends `pusher:error` and drops TCP without a close frame. The
/// error's code decides (fatal / backoff / at once), and its text is the reason; a frame
/// after the error shows the connection outlived it, so it no longer decides.
#[tokio::test(start_paused = true)]
async fn the_last_pusher_error_decides_a_close_without_close_frame() {
    let cases: [(&[Step], Option<i64>, &str); 5] = [
        // A close frame without a reason: the error's text fills it.
        (
            &[
                Step::Send(error_frame(4009, NOT_SIGNED_IN)),
                Step::Close(4009, String::new()),
                Step::AwaitClose,
            ],
            Some(4009),
            "never",
        ),
        (
            &[Step::Send(error_frame(4009, NOT_SIGNED_IN)), Step::Drop],
            Some(4009),
            "never",
        ),
        (
            &[Step::Send(error_frame(4100, "Over capacity")), Step::Drop],
            Some(4100),
            "backoff",
        ),
        (
            &[
                Step::Send(error_frame(4201, "Pong reply not received")),
                Step::Drop,
            ],
            Some(4201),
            "immediately",
        ),
        (
            &[
                Step::Send(error_frame(4009, NOT_SIGNED_IN)),
                Step::Send(protocol::ping()),
                Step::Expect(protocol::pong()),
                Step::Drop,
            ],
            None,
            "backoff",
        ),
    ];
    for (steps, code, action) in cases {
        let mut script = vec![Step::Send(established("1.1", 120))];
        script.extend(steps.iter().cloned());
        let peer = Peer::start(script).await;
        let p = PusherProvider::new(config(peer.port));
        let (sink, mut rx) = EventSink::channel();
        p.connect(sink).await.unwrap();
        let reason = next_closed(&mut rx).await;
        assert_eq!(reason.code, code, "{action}: {reason:?}");
        match (action, &reason.reconnect) {
            ("never", Reconnect::Never(e)) => {
                assert_eq!(e.kind(), ErrorKind::Unauthorized);
                assert!(e.to_string().contains(NOT_SIGNED_IN), "{e}");
                assert!(reason.message.contains(NOT_SIGNED_IN), "{reason:?}");
            }
            ("backoff", Reconnect::Backoff) | ("immediately", Reconnect::Immediately) => {}
            _ => panic!("{action}: {reason:?}"),
        }
        p.disconnect().await.unwrap();
        peer.finish().await.unwrap();
    }
}

/// Defect 2 through the runtime: without sign-in, the app closes the connection after 30 s
/// (4009, no close frame read); the client fails at once, every time, with the server's
/// text, and never reconnects. The user channel needs a signed-in connection.
#[tokio::test(start_paused = true)]
async fn an_unsigned_connection_fails_with_the_servers_reason() {
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Quiet(Duration::from_secs(30)),
        Step::Send(error_frame(4009, NOT_SIGNED_IN)),
        Step::Drop,
    ])
    .await;
    let client = RealtimeClient::new(PusherProvider::new(config(peer.port)));
    let mut events = client.events();
    client.connect().await.unwrap();
    let err = client
        .subscribe(relayport_pusher::USER_CHANNEL)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("not signed in"), "{err}");
    let failed = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            match events.recv().await {
                Ok(ClientEvent::StateChanged(ConnectionState::Failed(e))) => return e,
                Ok(ClientEvent::StateChanged(s @ ConnectionState::Reconnecting { .. })) => {
                    panic!("reconnects after 4009: {s:?}")
                }
                Ok(_) => continue,
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("fails");
    assert_eq!(failed.kind(), ErrorKind::Unauthorized);
    assert!(failed.to_string().contains(NOT_SIGNED_IN), "{failed}");
    peer.finish().await.unwrap();
    client.close().await;
}

/// Defect 1: a client configured with a user authenticator signs in after connecting (the
/// exact `pusher:signin` frame), subscribes the user's server-to-user channel, stays
/// connected past the 30 s window, and delivers the user's events and watchlist changes on
/// `server-to-user`.
#[tokio::test(start_paused = true)]
async fn signed_in_client_stays_past_the_window_and_gets_user_events() {
    let user = json!({"id": "alice", "user_info": {"name": "Alice"}, "watchlist": ["bob"]});
    let signed = authorizer().authenticate_user("1.1", &user).unwrap();
    let user_data = signed.str_field("user_data").unwrap().to_owned();
    let signin = protocol::signin(signed.str_field("auth").unwrap(), &user_data);
    let success =
        json!({"event": "pusher:signin_success", "data": json!({"user_data": user_data}).to_string()})
            .to_string();
    let wire = "#server-to-user-alice";
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(signin),
        Step::Send(success),
        Step::Expect(protocol::subscribe(wire, None, None)),
        Step::Send(
            json!({"event": "pusher_internal:subscription_succeeded", "channel": wire, "data": "{}"})
                .to_string(),
        ),
        Step::Quiet(Duration::from_secs(45)),
        Step::Send(
            json!({"event": "invoice-paid", "channel": wire, "data": "{\"n\":1}"}).to_string(),
        ),
        Step::Send(
            json!({"event": "pusher_internal:watchlist_events",
                   "data": "{\"events\":[{\"name\":\"online\",\"user_ids\":[\"bob\"]}]}"})
            .to_string(),
        ),
        Step::Serve,
    ])
    .await;
    let provider = PusherProvider::new(
        config(peer.port).with_user_authenticator(authorizer().user_authenticator(user.clone())),
    );
    let mut signed_in = provider.user_events();
    let client = RealtimeClient::new(provider);
    let mut events = client.events();
    let started = tokio::time::Instant::now();
    client.connect().await.unwrap();
    let mut sub = client
        .subscribe(relayport_pusher::USER_CHANNEL)
        .await
        .unwrap();
    // Long bounds: on the paused clock every wait for I/O jumps to the next timer.
    let first = tokio::time::timeout(Duration::from_secs(3000), sub.recv())
        .await
        .expect("a user event")
        .expect("stream open");
    assert!(started.elapsed() >= Duration::from_secs(45));
    assert_eq!(first.channel.to_string(), "server-to-user");
    assert_eq!(
        (first.event.as_str(), first.data.as_json().unwrap()),
        ("invoice-paid", &json!({"n": 1}))
    );
    let second = tokio::time::timeout(WAIT, sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (second.event.as_str(), second.data.as_json().unwrap()),
        ("online", &json!({"user_ids": ["bob"]}))
    );
    assert_eq!(client.state(), ConnectionState::Connected);
    match signed_in.try_recv() {
        Ok(relayport_pusher::UserEvent::SignedIn { user_id, .. }) => assert_eq!(user_id, "alice"),
        other => panic!("{other:?}"),
    }
    // Connected once, never lost.
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ClientEvent::LinkLost { .. }), "{e:?}");
    }
    client.close().await;
    peer.finish().await.unwrap();
}

/// Defect 4: with the client-event prefix on, `typing` goes out as `client-typing` and a
/// received `client-typing` comes back as `typing`; public channels refuse client events,
/// and the capabilities say so per channel kind.
#[tokio::test(start_paused = true)]
async fn client_event_prefix_is_added_and_stripped() {
    let wire = "private-chat";
    let auth = authorizer()
        .authorize_channel("1.1", wire, None::<&()>)
        .unwrap();
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(protocol::subscribe(wire, auth.str_field("auth"), None)),
        Step::Send(
            json!({"event": "pusher_internal:subscription_succeeded", "channel": wire, "data": "{}"})
                .to_string(),
        ),
        Step::Expect(protocol::client_event("client-typing", wire, &json!({"on": true}))),
        Step::Send(
            json!({"event": "client-typing", "channel": wire, "data": "{\"on\":false}"}).to_string(),
        ),
        Step::AwaitGoodbye(1000),
    ])
    .await;
    let p = PusherProvider::new(config(peer.port).with_client_event_prefix(true));
    let caps = p.capabilities();
    assert!(!caps.client_publish_on(ChannelKind::Public));
    assert!(caps.client_publish_on(ChannelKind::Private));
    assert!(caps.client_publish_on(ChannelKind::Presence));
    let (sink, mut rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let channel = from_wire(wire).unwrap();
    let options = SubscribeOptions {
        auth: Some(auth),
        ..Default::default()
    };
    p.subscribe(&channel, &options).await.unwrap();
    let message =
        relayport_core::OutboundMessage::new(channel.clone(), "typing", json!({"on": true}));
    p.publish(&message).await.unwrap();
    let public =
        relayport_core::OutboundMessage::new(from_wire("news").unwrap(), "typing", json!(1));
    assert_eq!(
        p.publish(&public).await.unwrap_err().kind(),
        ErrorKind::InvalidChannel
    );
    let received = loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some((_, ProviderEvent::Message(m)))) => break m,
            Ok(Some(_)) => continue,
            other => panic!("no message: {other:?}"),
        }
    };
    assert_eq!(received.event, "typing");
    assert_eq!(received.data, json!({"on": false}));
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}

/// Without the prefix, a plain name is refused before anything is sent, in one sentence.
#[tokio::test]
async fn a_plain_client_event_name_is_refused_clearly() {
    let p = PusherProvider::new(config(1));
    let message = relayport_core::OutboundMessage::new(
        from_wire("private-chat").unwrap(),
        "typing",
        Value::Null,
    );
    let err: RealtimeError = p.publish(&message).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        err.to_string()
            .contains("publish `client-typing` instead of `typing`"),
        "{err}"
    );
}

/// A one-request HTTP server on loopback: returns the request it read (head and body) and
/// answers with `status` and `body`.
async fn http_once(status: &'static str, body: String) -> (u16, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if seen.len() >= end + 4 + length || n == 0 {
                    break;
                }
            }
        }
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&seen).to_string()
    });
    (port, task)
}

/// Defect 1, the endpoint path: `EndpointUserAuthenticator` posts `socket_id` as a form (as
/// pusher-js's `userAuthentication` does) with the configured headers and returns the
/// endpoint's body; a refusal is `Unauthorized`, a body without `auth`/`user_data` a
/// `Protocol` error.
#[tokio::test]
async fn the_user_auth_endpoint_is_asked_as_pusher_js_asks_it() {
    use relayport_pusher::{EndpointUserAuthenticator, UserAuthenticator};
    let signed = authorizer()
        .authenticate_user("123.456", &json!({"id": "alice"}))
        .unwrap();
    let (port, request) = http_once("200 OK", signed.0.to_string()).await;
    let endpoint =
        EndpointUserAuthenticator::new(format!("http://127.0.0.1:{port}/pusher/user-auth"))
            .unwrap()
            .with_header("authorization", "Bearer session-token");
    assert!(!format!("{endpoint:?}").contains("session-token"));
    let body = endpoint.authenticate("123.456").await.unwrap();
    assert_eq!(body, signed);
    let request = request.await.unwrap().to_ascii_lowercase();
    assert!(
        request.starts_with("post /pusher/user-auth http/1.1"),
        "{request}"
    );
    assert!(
        request.contains("content-type: application/x-www-form-urlencoded"),
        "{request}"
    );
    assert!(
        request.contains("authorization: bearer session-token"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nsocket_id=123.456"), "{request}");

    let (port, _) = http_once("403 Forbidden", "{}".into()).await;
    let refused = EndpointUserAuthenticator::new(format!("http://127.0.0.1:{port}/"))
        .unwrap()
        .authenticate("1.1")
        .await
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized, "{refused}");
    let (port, _) = http_once("200 OK", r#"{"auth":"k:x"}"#.into()).await;
    let partial = EndpointUserAuthenticator::new(format!("http://127.0.0.1:{port}/"))
        .unwrap()
        .authenticate("1.1")
        .await
        .unwrap_err();
    assert_eq!(partial.kind(), ErrorKind::Protocol, "{partial}");
    assert!(EndpointUserAuthenticator::new("/pusher/user-auth").is_err());
}

/// A subscribe the caller stopped waiting for (the runtime's timeout) is forgotten, so a later
/// channel-less refusal (sockudo's 4009) fails the subscribe it answers instead of vanishing.
#[tokio::test(start_paused = true)]
async fn an_abandoned_subscribe_does_not_absorb_a_later_refusal() {
    let auth = authorizer()
        .authorize_channel("1.1", "private-x", None::<&()>)
        .unwrap();
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(protocol::subscribe("quiet", None, None)),
        Step::Expect(protocol::subscribe(
            "private-x",
            auth.str_field("auth"),
            None,
        )),
        Step::Send(error_frame(
            4009,
            "Authentication error: Channel requires authentication",
        )),
        Step::Serve,
    ])
    .await;
    let p = PusherProvider::new(config(peer.port));
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let abandoned = tokio::time::timeout(
        Duration::from_secs(1),
        p.subscribe(&from_wire("quiet").unwrap(), &SubscribeOptions::default()),
    )
    .await;
    assert!(abandoned.is_err());
    let options = SubscribeOptions {
        auth: Some(auth),
        ..Default::default()
    };
    let refused = tokio::time::timeout(
        Duration::from_secs(1800),
        p.subscribe(&from_wire("private-x").unwrap(), &options),
    )
    .await
    .expect("answered, not left hanging")
    .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Unauthorized, "{refused}");
    p.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}
