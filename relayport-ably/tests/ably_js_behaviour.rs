//! Issue 14: behave like ably-js against a server that enforces Ably's rules. Each test is a
//! scenario the defect broke; the peer is the scripted loopback peer of `support`, told what a
//! rule-enforcing server answers (a 40102 to an AUTH, a 40160 channel ERROR, a new connection
//! id with a RESUMED re-attach). Every scenario builds its client with [`client`] from the
//! peer's port only, so it can be pointed at the behavioural peer (`relayport-peer-ably`) once
//! that lands.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use relayport_ably::token::{ApiKey, AuthResponse};
use relayport_ably::{AblyAuthorizer, AblyConfig, AblyRealtime, Credentials};
use relayport_core::{
    AuthRequest, Backoff, Channel, ChannelAuth, ChannelAuthorizer, ClientBuilder, ClientEvent,
    ConnectionState, RealtimeClient, async_trait,
};
use serde_json::{Value, json};
use support::{SLEEP, Script, Tail, WsPeer, bounded};
use tokio::sync::broadcast;

const CONNECTED: &str = r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","maxMessageSize":65536,"maxIdleInterval":15000,"connectionStateTtl":120000}}"#;

fn key() -> ApiKey {
    ApiKey::parse("appId.keyId:keySecret").unwrap()
}

/// The provider configuration for a peer on `port` (REST unused).
fn config(port: u16, credentials: Credentials) -> AblyConfig {
    let mut c = AblyConfig::new(credentials).local(port, 1);
    c.realtime_request_timeout = Duration::from_secs(3);
    c
}

/// A client on the core runtime with a fast backoff.
fn client(cfg: AblyConfig) -> ClientBuilder {
    RealtimeClient::builder(AblyRealtime::new(cfg)).backoff(Backoff {
        initial: Duration::from_millis(10),
        jitter: Duration::from_millis(1),
        ..Backoff::default()
    })
}

/// A channel authorizer like an auth endpoint handing out a fresh token per request.
struct FreshTokens(AtomicUsize);

#[async_trait]
impl ChannelAuthorizer for FreshTokens {
    async fn authorize(&self, _request: &AuthRequest) -> relayport_core::Result<ChannelAuth> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(ChannelAuth(json!(format!("CHAN-{n}"))))
    }
}

fn base_token() -> Credentials {
    Credentials::callback(|_p| async { Ok(AuthResponse::Token("BASE".into())) })
}

async fn wait_for<T>(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pick: impl FnMut(ClientEvent) -> Option<T>,
) -> T {
    bounded(what, async {
        loop {
            if let Some(t) = pick(events.recv().await.expect("events")) {
                return t;
            }
        }
    })
    .await
}

/// Defect 1: a trusted client holding the key (basic auth) subscribes to a public, a private
/// and a presence channel on one connection. The key's capability covers them all: no
/// per-channel token, no in-band AUTH (which would replace the capability and get the other
/// channels failed with 40160). The peer fails on any AUTH frame.
#[tokio::test]
async fn a_key_holding_client_never_narrows_its_capability_with_auth() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"key": "appId.keyId:keySecret", "clientId": "u1"}),
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"room"}"#),
            (true, r#"{"action":11,"channel":"room","flags":0}"#),
            (false, r#"{"action":10,"channel":"private:orders"}"#),
            (true, r#"{"action":11,"channel":"private:orders","flags":0}"#),
            (false, r#"{"action":10,"channel":"presence:lobby"}"#),
            (true, r#"{"action":11,"channel":"presence:lobby","flags":0}"#),
            (
                true,
                r#"{"action":15,"channel":"room","id":"X:0","messages":[{"name":"still","data":"here"}]}"#,
            ),
        ],
        Tail::ExpectGoodbye,
    )])
    .await;
    // What `trusted_client_builder` sets up: the server-side authorizer signs channel tokens.
    let c = client(config(peer.port, Credentials::Key(key())).client_id("u1"))
        .client_id("u1")
        .authorizer(Arc::new(AblyAuthorizer::new(key())))
        .build();
    let mut room = bounded("room", c.subscribe("room")).await.unwrap();
    let _orders = bounded("orders", c.subscribe("private:orders"))
        .await
        .unwrap();
    let _lobby = bounded("lobby", c.subscribe("presence:lobby"))
        .await
        .unwrap();
    let m = bounded("a message on the public channel", room.recv())
        .await
        .expect("the public channel is still subscribed");
    assert_eq!(m.event, "still");
    bounded("close", c.close()).await;
    peer.finished(0).await;
    peer.assert_clean();
}

/// Defect 1: a channel ERROR (a server failing a channel the token no longer covers, 40160)
/// reaches the application: the subscription fails with the reason and its stream ends.
#[tokio::test]
async fn a_channel_error_reaches_the_application_as_a_lost_subscription() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"room"}"#),
            (true, r#"{"action":11,"channel":"room","flags":0}"#),
            (
                true,
                r#"{"action":9,"channel":"room","error":{"code":40160,"statusCode":401,"message":"Channel denied access based on given capability"}}"#,
            ),
        ],
        Tail::AcceptClose,
    )])
    .await;
    let c = client(config(peer.port, Credentials::Key(key()))).build();
    let mut events = c.events();
    let mut room = bounded("room", c.subscribe("room")).await.unwrap();
    let (channel, error) = wait_for(&mut events, "SubscriptionFailed", |e| match e {
        ClientEvent::SubscriptionFailed { channel, error } => Some((channel, error)),
        _ => None,
    })
    .await;
    assert_eq!(channel, Channel::public("room"));
    assert!(error.to_string().contains("40160"), "{error}");
    assert!(
        bounded("the stream ends", room.recv()).await.is_none(),
        "the lost subscription's stream ends"
    );
    c.close().await;
    peer.finished(0).await;
    peer.assert_clean();
}

/// Defect 2: the server refuses an in-band AUTH for good (40102, incompatible credentials,
/// in an ERROR or a DISCONNECTED): the client reaches `Failed` with that reason and does not
/// reconnect (the peer fails on any further connection).
#[tokio::test]
async fn a_refused_auth_fails_the_client_instead_of_looping() {
    for (frame, label) in [
        (
            r#"{"action":9,"error":{"code":40102,"statusCode":401,"message":"Incompatible clientId"}}"#,
            "ERROR",
        ),
        (
            r#"{"action":6,"error":{"code":40102,"statusCode":401,"message":"Incompatible clientId"}}"#,
            "DISCONNECTED",
        ),
    ] {
        let peer = WsPeer::start(vec![Script::synthetic(
            json!({"access_token": "BASE"}),
            &[
                (true, CONNECTED),
                (false, r#"{"action":17,"auth":{"accessToken":"CHAN-1"}}"#),
                (true, frame),
            ],
            Tail::AcceptClose,
        )])
        .await;
        let c = client(config(peer.port, base_token()))
            .authorizer(Arc::new(FreshTokens(AtomicUsize::new(0))))
            .build();
        let mut states = c.state_changes();
        let err = bounded("subscribe", c.subscribe("private:orders"))
            .await
            .unwrap_err();
        // The AUTH's caller learns the refusal, not a retryable "link lost during AUTH".
        assert!(err.to_string().contains("40102"), "{label}: {err}");
        let state = bounded("Failed", async {
            loop {
                let s = states.borrow_and_update().clone();
                if matches!(s, ConnectionState::Failed(_)) {
                    return s;
                }
                states.changed().await.unwrap();
            }
        })
        .await;
        let ConnectionState::Failed(e) = state else {
            unreachable!()
        };
        assert!(e.to_string().contains("40102"), "{label}: {e}");
        // Time for a retry loop to show itself: none may come.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            matches!(c.state(), ConnectionState::Failed(_)),
            "{label}: {:?}",
            c.state()
        );
        peer.assert_clean();
        c.close().await;
    }
}

/// Defect 2: a channel token bound to another clientId than the connection's would get the
/// whole connection failed (40102); it is refused locally for that channel only, and the
/// connection goes on.
#[tokio::test]
async fn a_channel_token_for_another_client_id_is_refused_locally() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "BASE", "clientId": "u1"}),
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"room"}"#),
            (true, r#"{"action":11,"channel":"room","flags":0}"#),
        ],
        Tail::ExpectGoodbye,
    )])
    .await;
    let signer = AblyAuthorizer::new(key()).client_id("someone-else");
    let c = client(config(peer.port, base_token()).client_id("u1"))
        .client_id("u1")
        .authorizer(Arc::new(signer))
        .build();
    let err = bounded("subscribe", c.subscribe("private:orders"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), relayport_core::ErrorKind::Forbidden, "{err}");
    assert!(err.to_string().contains("someone-else"), "{err}");
    let _room = bounded("room", c.subscribe("room")).await.unwrap();
    assert_eq!(c.state(), ConnectionState::Connected);
    bounded("close", c.close()).await;
    peer.finished(0).await;
    peer.assert_clean();
}

/// Defect 3 (RTP17i): the resume failed (a new connection id) although the server's re-attach
/// says RESUMED: the member this client entered is gone on the server, so it is re-entered.
#[tokio::test]
async fn presence_is_reentered_when_the_connection_id_changed_despite_resumed() {
    let enter = r#"{"action":14,"channel":"presence:room","presence":[{"data":"{\"a\":1}","action":2,"encoding":"json"}],"msgSerial":0}"#;
    let connected = |id: &str, key: &str| {
        format!(
            r#"{{"action":4,"connectionId":"{id}","connectionDetails":{{"clientId":"u1","connectionKey":"{key}","maxIdleInterval":15000}}}}"#
        )
    };
    let (c1, c2) = (connected("C1", "K1"), connected("C2", "K2"));
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            json!({"clientId": "u1"}),
            &[
                (true, &c1),
                (false, r#"{"action":10,"channel":"presence:room"}"#),
                (
                    true,
                    r#"{"action":11,"channel":"presence:room","flags":0,"channelSerial":"a1"}"#,
                ),
                (false, enter),
                (true, r#"{"action":1,"msgSerial":0,"count":1}"#),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"resume": "K1", "clientId": "u1"}),
            &[
                (true, &c2),
                (
                    false,
                    r#"{"action":10,"channel":"presence:room","channelSerial":"a1"}"#,
                ),
                (
                    true,
                    r#"{"action":11,"channel":"presence:room","flags":4,"channelSerial":"a2"}"#,
                ),
                (false, enter),
                (true, r#"{"action":1,"msgSerial":0,"count":1}"#),
            ],
            Tail::AcceptClose,
        ),
    ])
    .await;
    let c = client(config(peer.port, Credentials::Key(key())).client_id("u1"))
        .client_id("u1")
        .authorizer(Arc::new(relayport_ably::ConnectionCapability))
        .build();
    let mut events = c.events();
    bounded("enter", c.presence_enter("presence:room", json!({"a": 1})))
        .await
        .unwrap();
    peer.finished(0).await;
    wait_for(&mut events, "Resubscribed", |e| {
        matches!(e, ClientEvent::Resubscribed { .. }).then_some(())
    })
    .await;
    // The re-entry is part of re-establishing the channel: the peer has acknowledged the
    // ENTER (without it, the CLOSE below arrives where the script expects the ENTER).
    c.close().await;
    peer.finished(1).await;
    peer.assert_clean();
}

/// Defect 5: after a successful resume (same connection id) the token is still valid and the
/// server kept the channel's authorization: no new token request, no AUTH.
#[tokio::test]
async fn no_auth_after_a_successful_resume() {
    let mut peer = WsPeer::start(vec![
        Script::synthetic(
            json!({"access_token": "BASE"}),
            &[
                (true, CONNECTED),
                (false, r#"{"action":17,"auth":{"accessToken":"CHAN-1"}}"#),
                (true, CONNECTED),
                (false, r#"{"action":10,"channel":"private:orders"}"#),
                (
                    true,
                    r#"{"action":11,"channel":"private:orders","flags":0,"channelSerial":"s1"}"#,
                ),
            ],
            Tail::Drop,
        ),
        Script::synthetic(
            json!({"access_token": "CHAN-1", "resume": "K1"}),
            &[
                (true, CONNECTED),
                (
                    false,
                    r#"{"action":10,"channel":"private:orders","channelSerial":"s1"}"#,
                ),
                (
                    true,
                    r#"{"action":11,"channel":"private:orders","flags":4,"channelSerial":"s2"}"#,
                ),
            ],
            Tail::ExpectGoodbye,
        ),
    ])
    .await;
    let tokens = Arc::new(FreshTokens(AtomicUsize::new(0)));
    let c = client(config(peer.port, base_token()))
        .authorizer(tokens.clone())
        .build();
    let mut events = c.events();
    let _orders = bounded("orders", c.subscribe("private:orders"))
        .await
        .unwrap();
    peer.finished(0).await;
    wait_for(&mut events, "Resubscribed", |e| {
        matches!(e, ClientEvent::Resubscribed { .. }).then_some(())
    })
    .await;
    bounded("close", c.close()).await;
    peer.finished(1).await;
    peer.assert_clean();
}

/// Defect 5 (RTN23a): no client HEARTBEAT, ever (the peer fails on any frame but CLOSE);
/// while the server sends its HEARTBEATs the link stays up; once it falls silent the core's
/// liveness check drops the link after maxIdleInterval + realtimeRequestTimeout.
#[tokio::test(start_paused = true)]
async fn no_client_heartbeats_and_the_core_drops_an_idle_link() {
    let connected = r#"{"action":4,"connectionId":"C1","connectionDetails":{"connectionKey":"K1","maxIdleInterval":2000}}"#;
    let beat = r#"{"action":0}"#;
    let sleep = format!("{SLEEP}1500");
    let peer = WsPeer::start(vec![
        Script::synthetic(
            json!({"heartbeats": "true"}),
            &[
                (true, connected),
                (true, &sleep),
                (true, beat),
                (true, &sleep),
                (true, beat),
                (true, &sleep),
                (true, beat),
            ],
            Tail::Hold,
        ),
        Script::synthetic(json!({"resume": "K1"}), &[(true, connected)], Tail::Hold),
    ])
    .await;
    let mut cfg = config(peer.port, Credentials::Key(key()));
    cfg.realtime_request_timeout = Duration::from_secs(3);
    let c = client(cfg).build();
    let mut events = c.events();
    bounded("connect", c.connect()).await.unwrap();
    let start = tokio::time::Instant::now();
    let message = wait_for(&mut events, "LinkLost", |e| match e {
        ClientEvent::LinkLost { message, .. } => Some(message),
        _ => None,
    })
    .await;
    let idle = start.elapsed();
    // The last HEARTBEAT came at 4.5 s; idle = 2 s + 3 s after it.
    assert!(idle >= Duration::from_millis(9400), "{idle:?}: {message}");
    assert!(idle <= Duration::from_millis(10600), "{idle:?}: {message}");
    assert!(message.contains("no activity"), "{message}");
    c.close().await;
    peer.assert_clean();
}

/// Defect 5: the agent names the library, the compiler and the OS, like ably-js's
/// `ably-js/2.28.0 nodejs/20.20.2`.
#[test]
fn the_agent_names_library_runtime_and_os() {
    let agent = relayport_ably::agent();
    let parts: Vec<&str> = agent.split(' ').collect();
    assert_eq!(parts.len(), 3, "{agent}");
    assert_eq!(
        parts[0],
        concat!("relayport-ably/", env!("CARGO_PKG_VERSION"))
    );
    assert!(parts[1].starts_with("rust/1."), "{agent}");
    assert_eq!(parts[2], std::env::consts::OS);
}

/// Defects 1 and 2 with the key kept off the wire (`Credentials::TokenFromKey`, what
/// `trusted_client_builder` uses with only `ABLY_API_KEY`): one token, signed here with the
/// key's capability (none named) and the connection's clientId, covers a private and a
/// presence channel; the channel tokens the core's authorizer signs are not applied.
#[tokio::test]
async fn a_client_signing_its_own_tokens_uses_the_key_capability() {
    let http = support::HttpPeer::start(
        vec![json!({
            "method": "POST", "path": "/keys/appId.keyId/requestToken", "query": {},
            "headers": {"accept": "application/json", "content-type": "application/json", "x-ably-version": "6"},
            "body": r#"{"keyName":"appId.keyId","clientId":"u1","timestamp":1800000000000,"nonce":"1234567890123456","mac":"m"}"#,
            "response": {"status": 200, "headers": {}, "body": {"token": "KEY-TOKEN", "expires": 1, "clientId": "u1"}}
        })],
        Some("appId.keyId:keySecret".into()),
    )
    .await;
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "KEY-TOKEN", "clientId": "u1"}),
        &[
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"private:orders"}"#),
            (
                true,
                r#"{"action":11,"channel":"private:orders","flags":0}"#,
            ),
            (false, r#"{"action":10,"channel":"presence:lobby"}"#),
            (
                true,
                r#"{"action":11,"channel":"presence:lobby","flags":0}"#,
            ),
        ],
        Tail::ExpectGoodbye,
    )])
    .await;
    let mut cfg = config(peer.port, Credentials::TokenFromKey(key())).client_id("u1");
    cfg.rest_port = Some(http.port);
    let c = client(cfg)
        .client_id("u1")
        .authorizer(Arc::new(AblyAuthorizer::new(key())))
        .build();
    let _orders = bounded("orders", c.subscribe("private:orders"))
        .await
        .unwrap();
    let _lobby = bounded("lobby", c.subscribe("presence:lobby"))
        .await
        .unwrap();
    bounded("close", c.close()).await;
    peer.finished(0).await;
    peer.assert_clean();
    http.assert_clean();
}

/// Defect 1 with tokens from the application: the second private channel's token covers the
/// first one too (capability = union of the connection's channels; an Ably token replaces
/// the connection's capability), and carries the connection's clientId. The REST peer asserts
/// each exchanged TokenRequest's capability and clientId.
#[tokio::test]
async fn a_new_channel_token_covers_every_channel_of_the_connection() {
    let token_request = |capability: &str| {
        json!({
            "keyName": "appId.keyId", "ttl": 3600000, "capability": capability, "clientId": "u1",
            "timestamp": 1800000000000u64, "nonce": "1234567890123456", "mac": "m"
        })
        .to_string()
    };
    let exchange = |capability: &str, token: &str| {
        json!({
            "method": "POST", "path": "/keys/appId.keyId/requestToken", "query": {},
            "headers": {"accept": "application/json", "content-type": "application/json", "x-ably-version": "6"},
            "body": token_request(capability),
            "response": {"status": 200, "headers": {}, "body": {"token": token, "expires": 1, "clientId": "u1"}}
        })
    };
    let http = support::HttpPeer::start(
        vec![
            exchange(r#"{"private:a":["history","publish","subscribe"]}"#, "T1"),
            exchange(
                r#"{"private:a":["history","publish","subscribe"],"private:b":["history","publish","subscribe"]}"#,
                "T2",
            ),
        ],
        Some("appId.keyId:keySecret".into()),
    )
    .await;
    let mut peer = WsPeer::start(vec![Script::synthetic(
        json!({"access_token": "BASE", "clientId": "u1"}),
        &[
            (true, CONNECTED),
            (false, r#"{"action":17,"auth":{"accessToken":"T1"}}"#),
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"private:a"}"#),
            (true, r#"{"action":11,"channel":"private:a","flags":0}"#),
            (false, r#"{"action":17,"auth":{"accessToken":"T2"}}"#),
            (true, CONNECTED),
            (false, r#"{"action":10,"channel":"private:b"}"#),
            (true, r#"{"action":11,"channel":"private:b","flags":0}"#),
        ],
        Tail::ExpectGoodbye,
    )])
    .await;
    let mut cfg = config(peer.port, base_token()).client_id("u1");
    cfg.rest_port = Some(http.port);
    let c = client(cfg)
        .client_id("u1")
        .authorizer(Arc::new(AblyAuthorizer::new(key()).client_id("u1")))
        .build();
    let _a = bounded("a", c.subscribe("private:a")).await.unwrap();
    let _b = bounded("b", c.subscribe("private:b")).await.unwrap();
    bounded("close", c.close()).await;
    peer.finished(0).await;
    peer.assert_clean();
    http.assert_clean();
}

/// Defect 4, the goodbye's bound: `close()` sends CLOSE and, when the server never answers
/// with CLOSED, gives up after `CLOSED_WAIT` (the only provider timer of the goodbye), then
/// closes the socket.
#[tokio::test(start_paused = true)]
async fn close_sends_close_and_waits_briefly_for_closed() {
    let mut peer = WsPeer::start(vec![Script::synthetic(
        Value::Null,
        &[(true, CONNECTED)],
        Tail::Unanswered,
    )])
    .await;
    let mut cfg = config(peer.port, Credentials::Key(key()));
    cfg.realtime_request_timeout = Duration::from_secs(10);
    let c = client(cfg).build();
    bounded("connect", c.connect()).await.unwrap();
    let start = tokio::time::Instant::now();
    bounded("close", c.close()).await;
    let waited = start.elapsed();
    assert!(
        waited >= relayport_ably::client::CLOSED_WAIT,
        "gave up before CLOSED_WAIT: {waited:?}"
    );
    assert!(
        waited <= relayport_ably::client::CLOSED_WAIT + Duration::from_millis(1100),
        "the goodbye is brief: {waited:?}"
    );
    assert_eq!(c.state(), ConnectionState::Closed);
    peer.finished(0).await;
    peer.assert_clean();
}
