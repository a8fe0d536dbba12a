//! End to end against a real sockudo on loopback: our client, our authorizer and our
//! publisher against an independent Pusher-protocol server.

mod common;

use std::sync::Arc;
use std::time::Duration;

use relayport_core::{
    AuthRequest, Backoff, Channel, ChannelAuth, ChannelAuthorizer, ClientEvent, ConnectionState,
    ErrorKind, EventSink, Message, OutboundMessage, PresenceAction, ProviderEvent, Publisher,
    RealtimeClient, RealtimeProvider, Result, SubscribeOptions, Subscription,
};
use relayport_pusher::testing::{APP_ID, KEY, Sockudo};
use relayport_pusher::{
    Credentials, PusherAuthorizer, PusherConfig, PusherProvider, PusherRest, TriggerOptions,
    UserEvent,
};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(15);

fn provider(server: &Sockudo) -> PusherProvider {
    PusherProvider::new(PusherConfig::host(KEY, "127.0.0.1", server.port, false))
}

fn rest(server: &Sockudo) -> PusherRest {
    PusherRest::host(server.credentials(), "127.0.0.1", server.port, false)
}

fn client(server: &Sockudo, user: &str) -> RealtimeClient {
    RealtimeClient::builder(provider(server))
        .authorizer(Arc::new(PusherAuthorizer::new(server.credentials())))
        .client_id(user)
        .build()
}

async fn recv(sub: &mut Subscription) -> Message {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("a message in time")
        .expect("subscription open")
}

fn ch(s: &str) -> Channel {
    s.parse().unwrap()
}

#[tokio::test]
async fn subscribe_public_private_presence_and_publish_through_rest() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let rest = rest(&server);
    let c = client(&server, "u1");
    let mut public = c.subscribe("feed").await.unwrap();
    let mut private = c.subscribe("private:room:1").await.unwrap();
    c.presence_enter("presence:lobby", json!({"name": "A"}))
        .await
        .unwrap();
    let mut presence = c.subscribe("presence:lobby").await.unwrap();

    for (sub, channel) in [
        (&mut public, "feed"),
        (&mut private, "private:room:1"),
        (&mut presence, "presence:lobby"),
    ] {
        let data = json!({"to": channel, "n": 1});
        rest.publish(&OutboundMessage::new(ch(channel), "news", data.clone()))
            .await
            .unwrap();
        let m = recv(sub).await;
        assert_eq!(
            (m.channel, m.event.as_str(), m.data.into_json().unwrap()),
            (ch(channel), "news", data)
        );
    }

    // Batch: two events, in order.
    rest.publish_batch(&[
        OutboundMessage::new(ch("feed"), "b1", json!({"n": 1})),
        OutboundMessage::new(ch("feed"), "b2", json!("plain")),
    ])
    .await
    .unwrap();
    assert_eq!(recv(&mut public).await.event, "b1");
    let m = recv(&mut public).await;
    assert_eq!(
        (m.event.as_str(), m.data.into_json().unwrap()),
        ("b2", json!("plain"))
    );

    // Queries.
    let list = rest
        .channels(Some("presence-"), Some("user_count"))
        .await
        .unwrap();
    assert_eq!(
        list["channels"]["presence-lobby"]["user_count"], 1,
        "{list}"
    );
    let all = rest.channels(None, None).await.unwrap();
    for name in ["feed", "private-room-1", "presence-lobby"] {
        assert!(all["channels"].get(name).is_some(), "{name} in {all}");
    }
    let info = rest
        .channel_info("private-room-1", Some("subscription_count"))
        .await
        .unwrap();
    assert_eq!(info["occupied"], true, "{info}");
    assert_eq!(rest.presence_users("presence-lobby").await.unwrap(), ["u1"]);
    let members = c.presence_members("presence:lobby").await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (members[0].id.as_str(), &members[0].data),
        ("u1", &json!({"name": "A"}))
    );
    c.close().await;
}

#[tokio::test]
async fn presence_join_and_leave_between_two_clients() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let a = client(&server, "u1");
    let b = client(&server, "u2");
    a.presence_enter("presence:lobby", json!({"name": "A"}))
        .await
        .unwrap();
    let mut events = a.presence_events("presence:lobby").await.unwrap();
    // A presence stream starts with the members already there: u1 itself.
    let present = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (present.action, present.member.id.as_str()),
        (PresenceAction::Joined, "u1")
    );
    b.presence_enter("presence:lobby", json!({"name": "B"}))
        .await
        .unwrap();
    let joined = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(joined.action, PresenceAction::Joined);
    assert_eq!(
        (joined.member.id.as_str(), &joined.member.data),
        ("u2", &json!({"name": "B"}))
    );
    let mut ids: Vec<String> = b
        .presence_members("presence:lobby")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"]);
    b.presence_leave("presence:lobby").await.unwrap();
    let left = tokio::time::timeout(WAIT, events.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(left.action, PresenceAction::Left);
    assert_eq!(left.member.id, "u2");
    a.close().await;
    b.close().await;
}

async fn next_message(rx: &mut UnboundedReceiver<(u64, ProviderEvent)>) -> Message {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some((_, ProviderEvent::Message(m)))) => return m,
            Ok(Some((_, ProviderEvent::Error { error, .. }))) => panic!("error event: {error}"),
            Ok(Some(_)) => continue,
            other => panic!("no message: {other:?}"),
        }
    }
}

async fn raw_subscribe(
    p: &mut PusherProvider,
    auth: &PusherAuthorizer,
    channel: &Channel,
) -> Result<()> {
    let request = AuthRequest {
        socket_id: p.socket_id().unwrap().to_owned(),
        channel: channel.clone(),
        user: None,
    };
    let options = SubscribeOptions {
        auth: Some(auth.authorize(&request).await?),
        ..Default::default()
    };
    p.subscribe(channel, &options).await.map(|_| ())
}

/// Client events go from A to B and not back to A; a REST trigger with A's socket id
/// reaches B only.
#[tokio::test]
async fn client_events_between_two_clients_and_socket_exclusion() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let auth = PusherAuthorizer::new(server.credentials());
    let rest = rest(&server);
    let chat = ch("private:chat");
    let (mut a, mut b) = (provider(&server), provider(&server));
    let (sa, mut ra) = EventSink::channel();
    let (sb, mut rb) = EventSink::channel();
    a.connect(sa).await.unwrap();
    b.connect(sb).await.unwrap();
    raw_subscribe(&mut a, &auth, &chat).await.unwrap();
    raw_subscribe(&mut b, &auth, &chat).await.unwrap();

    a.publish(&OutboundMessage::new(
        chat.clone(),
        "client-typing",
        json!({"typing": true}),
    ))
    .await
    .unwrap();
    let m = next_message(&mut rb).await;
    assert_eq!(
        (m.event.as_str(), m.data.into_json().unwrap()),
        ("client-typing", json!({"typing": true}))
    );

    let excluded = TriggerOptions {
        socket_id: a.socket_id(),
        info: None,
    };
    rest.trigger(&["private-chat"], "not-for-a", &json!({}), &excluded)
        .await
        .unwrap();
    rest.trigger(
        &["private-chat"],
        "marker",
        &json!({}),
        &TriggerOptions::default(),
    )
    .await
    .unwrap();
    // A got neither its own client event nor the excluded trigger: the marker comes first.
    assert_eq!(next_message(&mut ra).await.event, "marker");
    assert_eq!(next_message(&mut rb).await.event, "not-for-a");
    assert_eq!(next_message(&mut rb).await.event, "marker");
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
}

async fn next_user_event(rx: &mut tokio::sync::broadcast::Receiver<UserEvent>) -> UserEvent {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a user event in time")
        .expect("user events open")
}

async fn wait_state(
    c: &RealtimeClient,
    pred: impl Fn(&ConnectionState) -> bool,
) -> ConnectionState {
    let mut states = c.state_changes();
    tokio::time::timeout(WAIT, async {
        loop {
            let s = states.borrow_and_update().clone();
            if pred(&s) {
                return s;
            }
            if states.changed().await.is_err() {
                panic!("client gone");
            }
        }
    })
    .await
    .expect("state in time")
}

/// Sign-in on connect, an event sent to the user through the HTTP API, then the user's
/// connections terminated (close 4009: fatal, no reconnect).
#[tokio::test]
async fn signin_send_to_user_and_terminate() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let auth = PusherAuthorizer::new(server.credentials());
    let config = PusherConfig::host(KEY, "127.0.0.1", server.port, false).with_user_authenticator(
        auth.user_authenticator(json!({"id": "user-b", "user_info": {"name": "B"}})),
    );
    let p = PusherProvider::new(config);
    let mut users = p.user_events();
    let c = RealtimeClient::builder(p)
        .authorizer(Arc::new(auth))
        .build();
    c.connect().await.unwrap();
    match next_user_event(&mut users).await {
        UserEvent::SignedIn { user_id, user_data } => {
            assert_eq!(user_id, "user-b");
            assert_eq!(user_data["user_info"], json!({"name": "B"}));
        }
        other => panic!("{other:?}"),
    }
    let rest = rest(&server);
    rest.send_to_user("user-b", "direct", &json!({"m": 1}))
        .await
        .unwrap();
    loop {
        match next_user_event(&mut users).await {
            UserEvent::Event { event, data } => {
                assert_eq!((event.as_str(), data), ("direct", json!({"m": 1})));
                break;
            }
            UserEvent::Watchlist { .. } => continue,
            other => panic!("{other:?}"),
        }
    }
    rest.terminate_user_connections("user-b").await.unwrap();
    let state = wait_state(&c, |s| matches!(s, ConnectionState::Failed(_))).await;
    match state {
        ConnectionState::Failed(e) => assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}"),
        _ => unreachable!(),
    }
    c.close().await;
}

/// The server dies and comes back on the same port: the client reconnects, resubscribes
/// (re-authorized for the new socket id) and is a presence member again.
#[tokio::test]
async fn server_restart_reconnects_and_resubscribes() {
    let Some(mut server) = Sockudo::start().await else {
        return;
    };
    let c = RealtimeClient::builder(provider(&server))
        .authorizer(Arc::new(PusherAuthorizer::new(server.credentials())))
        .client_id("u1")
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            factor: 2,
            max: Duration::from_secs(1),
            jitter: Duration::from_millis(50),
            max_attempts: 100,
        })
        .build();
    let mut events = c.events();
    let mut feed = c.subscribe("feed").await.unwrap();
    c.presence_enter("presence:lobby", json!({"name": "A"}))
        .await
        .unwrap();
    let mut private = c.subscribe("private:room:1").await.unwrap();

    server.kill();
    server.launch().await;

    let mut pending: Vec<Channel> = vec![ch("feed"), ch("presence:lobby"), ch("private:room:1")];
    tokio::time::timeout(Duration::from_secs(30), async {
        while !pending.is_empty() {
            match events.recv().await {
                Ok(ClientEvent::Resubscribed { channel, .. }) => pending.retain(|c| c != &channel),
                Ok(ClientEvent::SubscriptionFailed { channel, error }) => {
                    panic!("{channel}: {error}")
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("every channel resubscribed");
    assert_eq!(c.state(), ConnectionState::Connected);

    let rest = rest(&server);
    rest.publish(&OutboundMessage::new(ch("feed"), "after", json!({"n": 2})))
        .await
        .unwrap();
    assert_eq!(recv(&mut feed).await.event, "after");
    rest.publish(&OutboundMessage::new(
        ch("private:room:1"),
        "after",
        json!({}),
    ))
    .await
    .unwrap();
    assert_eq!(recv(&mut private).await.event, "after");
    assert_eq!(rest.presence_users("presence-lobby").await.unwrap(), ["u1"]);
    c.close().await;
}

/// An authorizer that signs with a tampered signature.
struct Tampered(PusherAuthorizer);

#[relayport_core::async_trait]
impl ChannelAuthorizer for Tampered {
    async fn authorize(&self, request: &AuthRequest) -> Result<ChannelAuth> {
        let mut body = self.0.authorize(request).await?;
        if let Some(Value::String(auth)) = body.0.get_mut("auth") {
            let last = if auth.ends_with('0') { '1' } else { '0' };
            auth.pop();
            auth.push(last);
        }
        Ok(body)
    }
}

#[tokio::test]
async fn wrong_secret_and_wrong_signature_are_refused() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let wrong = Credentials::new(APP_ID, KEY, "not-the-secret");
    let bad_rest = PusherRest::host(wrong.clone(), "127.0.0.1", server.port, false);
    let err = bad_rest
        .trigger(&["feed"], "e", &json!({}), &TriggerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");

    for authorizer in [
        Arc::new(PusherAuthorizer::new(wrong)) as Arc<dyn ChannelAuthorizer>,
        Arc::new(Tampered(PusherAuthorizer::new(server.credentials()))),
    ] {
        let c = RealtimeClient::builder(provider(&server))
            .authorizer(authorizer)
            .client_id("u1")
            .build();
        let err = c.subscribe("private:room:1").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        // The connection stays usable.
        c.subscribe("feed").await.unwrap();
        c.close().await;
    }
}

/// End-to-end encryption through a real server: our publisher encrypts with the master key,
/// the server relays ciphertext, our client decrypts with the shared secret from our
/// authorizer.
#[tokio::test]
async fn encrypted_channel_round_trip() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let creds = server
        .credentials()
        .with_encryption_master_key_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    let c = RealtimeClient::builder(provider(&server))
        .authorizer(Arc::new(PusherAuthorizer::new(creds.clone())))
        .client_id("u1")
        .build();
    let mut sub = c.subscribe("private:encrypted-secrets").await.unwrap();
    let rest = PusherRest::host(creds, "127.0.0.1", server.port, false);
    let data = json!({"message": "top secret", "n": 1});
    rest.publish(&OutboundMessage::new(
        ch("private:encrypted-secrets"),
        "secret-event",
        data.clone(),
    ))
    .await
    .unwrap();
    let m = recv(&mut sub).await;
    assert_eq!(
        (m.event.as_str(), m.data.into_json().unwrap()),
        ("secret-event", data)
    );
    c.close().await;
}

/// Issue 16, in real time (bounded, ~36 s): sockudo with user authentication enabled closes a
/// connection that has not signed in within 30 s (4009). The unsigned client fails once,
/// with the server's text, and never reconnects; the signed-in client stays connected past
/// the window and receives an event sent to its user on `server-to-user`.
#[tokio::test]
async fn signed_in_client_outlives_the_30s_window_and_unsigned_fails_with_the_reason() {
    let Some(server) = Sockudo::start().await else {
        return;
    };
    let auth = PusherAuthorizer::new(server.credentials());
    let config = PusherConfig::host(KEY, "127.0.0.1", server.port, false)
        .with_user_authenticator(auth.user_authenticator(json!({"id": "user-w"})));
    let signed = RealtimeClient::new(PusherProvider::new(config));
    let unsigned = RealtimeClient::new(provider(&server));
    let mut signed_events = signed.events();
    let mut unsigned_events = unsigned.events();
    signed.connect().await.unwrap();
    unsigned.connect().await.unwrap();
    let mut user = signed
        .subscribe(relayport_pusher::USER_CHANNEL)
        .await
        .unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(45), async {
        loop {
            match unsigned_events.recv().await {
                Ok(ClientEvent::StateChanged(ConnectionState::Failed(e))) => return e,
                Ok(ClientEvent::StateChanged(s @ ConnectionState::Reconnecting { .. })) => {
                    panic!("the unsigned client reconnects after 4009: {s:?}")
                }
                Ok(_) => continue,
                Err(e) => panic!("events ended: {e}"),
            }
        }
    })
    .await
    .expect("the unsigned connection is closed within 45 s");
    assert_eq!(failed.kind(), ErrorKind::Unauthorized, "{failed}");
    assert!(
        failed.to_string().contains("not authorized within timeout"),
        "the server's text reaches the user: {failed}"
    );
    // The window has passed for the signed-in client too: still connected, never lost.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(signed.state(), ConnectionState::Connected);
    while let Ok(e) = signed_events.try_recv() {
        assert!(!matches!(e, ClientEvent::LinkLost { .. }), "{e:?}");
    }
    rest(&server)
        .send_to_user("user-w", "after-window", &json!({"ok": true}))
        .await
        .unwrap();
    let m = loop {
        let m = recv(&mut user).await;
        if m.event == "after-window" {
            break m;
        }
    };
    assert_eq!(m.data, json!({"ok": true}));
    signed.close().await;
    unsigned.close().await;
}
