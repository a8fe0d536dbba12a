//! Our own Pusher provider (`relayport-pusher`: client, authorizer, REST publisher) against
//! relayport-server's Pusher protocol mode, as it runs against sockudo; and the bridge to the
//! native protocol on the same broker.

mod pusher_mode_common;
mod server_common;

use std::sync::Arc;

use pusher_mode_common::{APP, PusherWs, builder, credentials, data_of, start_with, within};
use relayport_core::{
    AuthRequest, Channel, ChannelAuthorizer, ConnectionState, ErrorKind, EventSink, Message,
    OutboundMessage, PresenceAction, ProviderEvent, Publisher, RealtimeClient, RealtimeProvider,
    Result, SubscribeOptions, Subscription,
};
use relayport_pusher::{
    Credentials, PusherAuthorizer, PusherConfig, PusherProvider, PusherRest, TriggerOptions,
    UserEvent,
};
use relayport_selfhosted::server::{Publication, ServerHandle};
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

fn provider(h: &ServerHandle) -> PusherProvider {
    PusherProvider::new(PusherConfig::host(
        APP,
        "127.0.0.1",
        h.local_addr().port(),
        false,
    ))
}

fn rest_with(h: &ServerHandle, c: Credentials) -> PusherRest {
    PusherRest::host(c, "127.0.0.1", h.local_addr().port(), false)
}

fn rest(h: &ServerHandle) -> PusherRest {
    rest_with(h, credentials())
}

fn client(h: &ServerHandle, user: &str) -> RealtimeClient {
    RealtimeClient::builder(provider(h))
        .authorizer(Arc::new(PusherAuthorizer::new(credentials())))
        .client_id(user)
        .build()
}

async fn recv(sub: &mut Subscription) -> Message {
    within("a message", sub.recv())
        .await
        .expect("subscription open")
}

fn ch(s: &str) -> Channel {
    s.parse().unwrap()
}

async fn start() -> ServerHandle {
    start_with(builder()).await
}

#[tokio::test]
async fn pusher_mode_public_private_presence_rest_publish_and_queries() {
    let h = start().await;
    let rest = rest(&h);
    let c = client(&h, "u1");
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

    let list = rest
        .channels(Some("presence-"), Some("user_count"))
        .await
        .unwrap();
    assert_eq!(
        list["channels"]["presence-lobby"]["user_count"], 1,
        "{list}"
    );
    assert_eq!(list["channels"].as_object().unwrap().len(), 1, "{list}");
    let all = rest.channels(None, None).await.unwrap();
    for name in ["feed", "private-room-1", "presence-lobby"] {
        assert!(all["channels"].get(name).is_some(), "{name} in {all}");
    }
    let info = rest
        .channel_info("private-room-1", Some("subscription_count"))
        .await
        .unwrap();
    assert_eq!(
        (info["occupied"].clone(), info["subscription_count"].clone()),
        (json!(true), json!(1)),
        "{info}"
    );
    let empty = rest.channel_info("nobody-here", None).await.unwrap();
    assert_eq!(empty["occupied"], false, "{empty}");
    assert!(rest.channel_info("feed", Some("user_count")).await.is_err());
    assert_eq!(rest.presence_users("presence-lobby").await.unwrap(), ["u1"]);
    assert!(rest.presence_users("feed").await.is_err());
    // Trigger with info answers per channel.
    let with_info = TriggerOptions {
        socket_id: None,
        info: Some("subscription_count".into()),
    };
    let answer = rest
        .trigger(&["feed"], "counted", &json!({}), &with_info)
        .await
        .unwrap();
    assert_eq!(
        answer["channels"]["feed"]["subscription_count"], 1,
        "{answer}"
    );
    assert_eq!(recv(&mut public).await.event, "counted");
    c.close().await;
}

#[tokio::test]
async fn pusher_mode_presence_join_and_leave_between_two_clients() {
    let h = start().await;
    let a = client(&h, "u1");
    let b = client(&h, "u2");
    a.presence_enter("presence:lobby", json!({"name": "A"}))
        .await
        .unwrap();
    let mut events = a.presence_events("presence:lobby").await.unwrap();
    let present = within("u1", events.recv()).await.unwrap();
    assert_eq!(
        (present.action, present.member.id.as_str()),
        (PresenceAction::Joined, "u1")
    );
    b.presence_enter("presence:lobby", json!({"name": "B"}))
        .await
        .unwrap();
    let joined = within("u2 joins", events.recv()).await.unwrap();
    assert_eq!(
        (
            joined.action,
            joined.member.id.as_str(),
            &joined.member.data
        ),
        (PresenceAction::Joined, "u2", &json!({"name": "B"}))
    );
    b.presence_leave("presence:lobby").await.unwrap();
    let left = within("u2 leaves", events.recv()).await.unwrap();
    assert_eq!(
        (left.action, left.member.id.as_str()),
        (PresenceAction::Left, "u2")
    );
    a.close().await;
    b.close().await;
}

async fn next_message(rx: &mut UnboundedReceiver<(u64, ProviderEvent)>) -> Message {
    loop {
        match within("a message", rx.recv()).await {
            Some((_, ProviderEvent::Message(m))) => return m,
            Some((_, ProviderEvent::Error { error, .. })) => panic!("error event: {error}"),
            Some(_) => continue,
            None => panic!("events closed"),
        }
    }
}

async fn raw_subscribe(p: &mut PusherProvider, channel: &Channel) -> Result<()> {
    let request = AuthRequest {
        socket_id: p.socket_id().unwrap().to_owned(),
        channel: channel.clone(),
        user: None,
    };
    let options = SubscribeOptions {
        auth: Some(
            PusherAuthorizer::new(credentials())
                .authorize(&request)
                .await?,
        ),
        ..Default::default()
    };
    p.subscribe(channel, &options).await.map(|_| ())
}

/// Client events go from A to B and never back to A; a trigger excluding A's socket id
/// reaches B only.
#[tokio::test]
async fn pusher_mode_client_events_and_socket_exclusion() {
    let h = start().await;
    let rest = rest(&h);
    let chat = ch("private:chat");
    let (mut a, mut b) = (provider(&h), provider(&h));
    let (sa, mut ra) = EventSink::channel();
    let (sb, mut rb) = EventSink::channel();
    a.connect(sa).await.unwrap();
    b.connect(sb).await.unwrap();
    raw_subscribe(&mut a, &chat).await.unwrap();
    raw_subscribe(&mut b, &chat).await.unwrap();
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
    assert_eq!(next_message(&mut ra).await.event, "marker");
    assert_eq!(next_message(&mut rb).await.event, "not-for-a");
    assert_eq!(next_message(&mut rb).await.event, "marker");
    a.disconnect().await.unwrap();
    b.disconnect().await.unwrap();
}

async fn next_user_event(rx: &mut tokio::sync::broadcast::Receiver<UserEvent>) -> UserEvent {
    within("a user event", rx.recv())
        .await
        .expect("user events open")
}

/// Sign-in on connect, a server-to-user event, then terminate (close 4009: no reconnect).
#[tokio::test]
async fn pusher_mode_signin_send_to_user_and_terminate() {
    let h = start().await;
    let auth = PusherAuthorizer::new(credentials());
    let config = PusherConfig::host(APP, "127.0.0.1", h.local_addr().port(), false)
        .with_user_authenticator(
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
    let rest = rest(&h);
    // The client subscribes to its server-to-user channel after signing in; wait for the
    // event to arrive (it is delivered to the signed-in connection either way).
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
    let mut states = c.state_changes();
    let state = within("failed", async {
        loop {
            let s = states.borrow_and_update().clone();
            if matches!(s, ConnectionState::Failed(_)) {
                return s;
            }
            states.changed().await.expect("client alive");
        }
    })
    .await;
    match state {
        ConnectionState::Failed(e) => assert_eq!(e.kind(), ErrorKind::Unauthorized, "{e}"),
        _ => unreachable!(),
    }
    c.close().await;
}

#[tokio::test]
async fn pusher_mode_wrong_secret_and_wrong_signature_are_refused() {
    let h = start().await;
    let wrong = Credentials::new(APP, APP, "not-the-secret");
    let err = rest_with(&h, wrong.clone())
        .trigger(&["feed"], "e", &json!({}), &TriggerOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    let c = RealtimeClient::builder(provider(&h))
        .authorizer(Arc::new(PusherAuthorizer::new(wrong)))
        .client_id("u1")
        .build();
    let err = c.subscribe("private:room:1").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    c.subscribe("feed").await.unwrap();
    c.close().await;
}

/// End-to-end encryption: the server relays ciphertext it cannot read.
#[tokio::test]
async fn pusher_mode_encrypted_channel_round_trip() {
    let h = start().await;
    let creds = credentials()
        .with_encryption_master_key_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        .unwrap();
    let c = RealtimeClient::builder(provider(&h))
        .authorizer(Arc::new(PusherAuthorizer::new(creds.clone())))
        .client_id("u1")
        .build();
    let mut sub = c.subscribe("private:encrypted-secrets").await.unwrap();
    // A raw Pusher subscriber on the same channel sees only ciphertext.
    let mut raw = PusherWs::connect(h.local_addr()).await;
    raw.subscribe("private-encrypted-secrets", None).await;
    let data = json!({"message": "top secret", "n": 1});
    rest_with(&h, creds)
        .publish(&OutboundMessage::new(
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
    let f = raw.expect("secret-event").await;
    let sealed = data_of(&f);
    assert!(
        sealed["ciphertext"].is_string() && sealed["nonce"].is_string(),
        "{f}"
    );
    assert!(!f.to_string().contains("top secret"));
    c.close().await;
}

/// Native and Pusher protocols share the broker: a native publish reaches Pusher clients
/// under the mapped name, a Pusher trigger and a client event reach native clients, and a
/// presence channel has one member set.
#[tokio::test]
async fn pusher_mode_bridges_to_the_native_protocol() {
    let h = start().await;
    let addr = h.local_addr();
    let mut native = server_common::WsClient::connect(addr).await;
    native.subscribe_private("private:room:1").await;
    native
        .subscribe_presence("presence:lobby", "native-user", json!({"via": "native"}))
        .await;
    let mut pusher = PusherWs::connect(addr).await;
    pusher.subscribe("private-room-1", None).await;
    let cd = json!({"user_id": "pusher-user", "user_info": {"via": "pusher"}}).to_string();
    let ok = pusher.subscribe("presence-lobby", Some(&cd)).await;
    // The Pusher client sees the native member already there (and itself).
    let presence = data_of(&ok)["presence"].clone();
    assert_eq!(presence["count"], 2, "{presence}");
    assert_eq!(presence["hash"]["native-user"], json!({"via": "native"}));
    // ...and the native client sees the Pusher member join.
    let joined = native.expect("presence").await;
    assert_eq!(joined["member"]["id"], "pusher-user", "{joined}");

    // Native publish → Pusher subscriber.
    h.publish(Publication {
        encoding: None,
        channel: ch("private:room:1"),
        event: "from-native".into(),
        data: json!({"n": 1}),
        sender: None,
        exclude: None,
        retain: false,
    })
    .await
    .unwrap();
    let f = pusher.expect("from-native").await;
    assert_eq!(
        (f["channel"].clone(), data_of(&f)),
        (json!("private-room-1"), json!({"n": 1}))
    );
    assert_eq!(native.expect("message").await["event"], "from-native");

    // Pusher REST trigger → native subscriber, payload decoded.
    rest(&h)
        .trigger(
            &["private-room-1"],
            "from-pusher",
            &json!({"n": 2}),
            &TriggerOptions::default(),
        )
        .await
        .unwrap();
    let m = native.expect("message").await;
    assert_eq!(
        (m["channel"].clone(), m["event"].clone(), m["data"].clone()),
        (
            json!("private:room:1"),
            json!("from-pusher"),
            json!({"n": 2})
        )
    );
    assert_eq!(
        pusher.expect("from-pusher").await["channel"],
        "private-room-1"
    );

    // Client event → native subscriber (not echoed to the Pusher sender).
    pusher
        .send(json!({"event": "client-typing", "channel": "presence-lobby", "data": {"t": true}}))
        .await;
    let m = native.expect("message").await;
    assert_eq!(
        (m["event"].clone(), m["data"].clone()),
        (json!("client-typing"), json!({"t": true}))
    );
    assert!(
        pusher.sync().await.is_empty(),
        "the sender got its own client event"
    );

    // One presence set, seen from both APIs.
    let users = rest(&h).presence_users("presence-lobby").await.unwrap();
    let mut users = users.clone();
    users.sort();
    assert_eq!(users, ["native-user", "pusher-user"]);
    let (_, members) = server_common::get_json(addr, "/channels/presence:lobby/presence").await;
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(2),
        "{members}"
    );
    drop(native);
    let left = pusher.expect("pusher_internal:member_removed").await;
    assert_eq!(data_of(&left)["user_id"], "native-user");
}

/// A presence client event carries the sender's user id; Pusher names with no native
/// counterpart are refused and native names with `-` never leak to Pusher clients.
#[tokio::test]
async fn pusher_mode_presence_client_events_carry_user_id_and_names_do_not_alias() {
    let h = start().await;
    let addr = h.local_addr();
    let mut a = PusherWs::connect(addr).await;
    let mut b = PusherWs::connect(addr).await;
    let cd = |u: &str| json!({"user_id": u, "user_info": {}}).to_string();
    a.subscribe("presence-room", Some(&cd("alice"))).await;
    b.subscribe("presence-room", Some(&cd("bob"))).await;
    a.expect("pusher_internal:member_added").await;
    b.send(json!({"event": "client-hi", "channel": "presence-room", "data": {"x": 1}}))
        .await;
    let f = a.expect("client-hi").await;
    assert_eq!(
        (f["user_id"].clone(), f["data"].clone()),
        (json!("bob"), json!({"x": 1}))
    );
    // `public-x` would be the native public channel `x`: refused, not aliased.
    a.subscribe_with("public-x", None, None).await;
    let e = a.expect("pusher:subscription_error").await;
    assert_eq!(
        (e["channel"].clone(), e["data"]["status"].clone()),
        (json!("public-x"), json!(400))
    );
    // A native publish on `room-1` (no Pusher name) does not reach the Pusher `room-1`
    // (= native `room:1`).
    a.subscribe("room-1", None).await;
    for (channel, event) in [("room-1", "wrong"), ("room:1", "right")] {
        h.publish(Publication {
            encoding: None,
            channel: ch(channel),
            event: event.into(),
            data: json!(null),
            sender: None,
            exclude: None,
            retain: false,
        })
        .await
        .unwrap();
    }
    assert_eq!(a.next().await["event"], "right");
}

/// Sign in over the raw protocol, with a watchlist: the watcher learns who is online at
/// sign-in, then when a watched user comes online and goes offline (last connection).
#[tokio::test]
async fn pusher_mode_watchlists_follow_sign_ins() {
    let h = start().await;
    let addr = h.local_addr();
    async fn signin(c: &mut PusherWs, user_data: &str) {
        let auth = pusher_mode_common::token(
            APP,
            pusher_mode_common::SECRET,
            &format!("{}::user::{user_data}", c.socket_id),
        );
        c.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
            .await;
        let ok = c.expect("pusher:signin_success").await;
        assert_eq!(ok["data"]["user_data"], user_data);
    }
    let mut carol = PusherWs::connect(addr).await;
    signin(&mut carol, r#"{"id":"carol"}"#).await;
    let mut watcher = PusherWs::connect(addr).await;
    signin(&mut watcher, r#"{"id":"w","watchlist":["carol","dave"]}"#).await;
    let initial = data_of(&watcher.expect("pusher_internal:watchlist_events").await);
    assert_eq!(
        initial["events"],
        json!([{"name": "online", "user_ids": ["carol"]}, {"name": "offline", "user_ids": ["dave"]}])
    );
    let mut dave = PusherWs::connect(addr).await;
    signin(&mut dave, r#"{"id":"dave"}"#).await;
    let online = data_of(&watcher.expect("pusher_internal:watchlist_events").await);
    assert_eq!(
        online["events"],
        json!([{"name": "online", "user_ids": ["dave"]}])
    );
    // A second connection of dave changes nothing; closing the last one is `offline`.
    let mut dave2 = PusherWs::connect(addr).await;
    signin(&mut dave2, r#"{"id":"dave"}"#).await;
    drop(dave);
    assert!(watcher.sync().await.is_empty(), "dave is still online");
    drop(dave2);
    let offline = data_of(&watcher.expect("pusher_internal:watchlist_events").await);
    assert_eq!(
        offline["events"],
        json!([{"name": "offline", "user_ids": ["dave"]}])
    );
    // Over 100 watched users: 4302, the first 100 kept.
    let many: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let data = json!({"id": "big", "watchlist": many}).to_string();
    let mut big = PusherWs::connect(addr).await;
    signin(&mut big, &data).await;
    let e = big.expect("pusher:error").await;
    assert_eq!(e["data"]["code"], 4302);
    let events = data_of(&big.expect("pusher_internal:watchlist_events").await);
    assert_eq!(
        events["events"][0]["user_ids"].as_array().map(Vec::len),
        Some(100)
    );
    drop(carol);
}

/// A channel's retained snapshot (native `retain`/`PUT …/snapshot`) reaches a Pusher
/// subscriber right after `subscription_succeeded`, before any later message.
#[tokio::test]
async fn pusher_mode_subscribers_get_the_retained_snapshot_first() {
    let h = start().await;
    h.broker()
        .set_snapshot(&ch("scores:live"), "score".into(), json!({"home": 2}));
    let mut c = PusherWs::connect(h.local_addr()).await;
    c.subscribe("scores-live", None).await;
    let snap = c.expect("score").await;
    assert_eq!(
        (snap["channel"].clone(), data_of(&snap)),
        (json!("scores-live"), json!({"home": 2}))
    );
    // Without a snapshot: nothing but the acknowledgement.
    c.subscribe("scores-other", None).await;
    assert!(c.sync().await.is_empty());
}
