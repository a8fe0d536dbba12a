//! Channel-level behaviour against a small behavioural peer (issue 15): tokens that expire on
//! the server's own timer and are refreshed ahead of time, channel-scoped tokens enforced by a
//! claims policy, one channel's `phx_error` rejoining that channel alone, `system` frames as
//! typed events. Everything runs on the paused clock over an in-memory pipe.

mod common;
mod peer;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_core::{
    Channel, ClientEvent, EventSink, ProviderEvent, RealtimeClient, RealtimeProvider,
    SubscribeOptions,
};
use relayport_supabase::jwt::{TOPIC_CLAIM, hs256};
use relayport_supabase::rejoin::unix_now;
use relayport_supabase::system::SystemKind;
use relayport_supabase::{SupabaseAuthorizer, SupabaseConfig, SupabaseProvider};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const SECRET: &str = "a-test-jwt-secret-that-is-long-enough-for-hs256";

/// What the peer saw, for the test to assert on.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Joined {
        topic: String,
        join_ref: String,
        token: Option<String>,
        postgres: Value,
    },
    JoinRefused {
        topic: String,
        reason: String,
    },
    TokenPushed {
        topic: String,
    },
    Expired {
        topic: String,
    },
}

/// What the test asks the peer to do.
#[derive(Debug)]
enum Cmd {
    Broadcast {
        topic: String,
        event: String,
    },
    Error {
        topic: String,
    },
    /// Expire the channel's token now (the server's token check).
    Expire {
        topic: String,
    },
    /// Any server push on a joined channel.
    Raw {
        topic: String,
        event: String,
        payload: Value,
    },
    System {
        topic: String,
        payload: Value,
    },
}

struct Joined {
    join_ref: String,
    expires: Option<Instant>,
}

/// A behavioural Supabase Realtime peer for one socket: verifies every token (HS256, `exp`),
/// enforces a claims policy on private channels (the token's `topic` claim must name the
/// channel, standing in for an RLS policy on `realtime.messages`), expires tokens on its own
/// timer the way the server does (`system` "Token has expired" then `phx_close`), takes
/// `access_token` refreshes, answers heartbeats and leaves.
async fn behave(
    mut ws: tokio_tungstenite::WebSocketStream<Box<dyn relayport_supabase::client::Io>>,
    seen: mpsc::UnboundedSender<Seen>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let mut channels: HashMap<String, Joined> = HashMap::new();
    loop {
        let next_expiry = channels
            .iter()
            .filter_map(|(t, c)| c.expires.map(|e| (e, t.clone())))
            .min();
        let expiry = async {
            match &next_expiry {
                Some((at, _)) => sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            frame = ws.next() => {
                let Some(Ok(frame)) = frame else { return };
                let WsMessage::Text(text) = frame else { continue };
                let f: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
                let (join_ref, r, topic, event, payload) =
                    (f[0].clone(), f[1].clone(), f[2].as_str().unwrap_or_default().to_owned(), f[3].as_str().unwrap_or_default().to_owned(), f[4].clone());
                let reply = |status: &str, response: Value| {
                    json!([join_ref, r, topic, "phx_reply", {"status": status, "response": response}]).to_string()
                };
                match event.as_str() {
                    "heartbeat" => send(&mut ws, reply("ok", json!({}))).await,
                    "phx_join" => {
                        let private = payload["config"]["private"] == true;
                        match check_token(&topic, payload["access_token"].as_str(), private) {
                            Ok(left) => {
                                let jr = join_ref.as_str().unwrap_or_default().to_owned();
                                channels.insert(topic.clone(), Joined { join_ref: jr.clone(), expires: left.map(|l| Instant::now() + l) });
                                // The server answers each filter with its id, in order.
                                let ids: Vec<Value> = payload["config"]["postgres_changes"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .enumerate()
                                    .map(|(i, f)| {
                                        let mut f = f.clone();
                                        f["id"] = json!(1000 + i);
                                        f
                                    })
                                    .collect();
                                send(&mut ws, reply("ok", json!({"postgres_changes": ids}))).await;
                                let token = payload["access_token"].as_str().map(str::to_owned);
                                let postgres = payload["config"]["postgres_changes"].clone();
                                let _ = seen.send(Seen::Joined { topic, join_ref: jr, token, postgres });
                            }
                            Err(reason) => {
                                send(&mut ws, reply("error", json!({"reason": reason}))).await;
                                let _ = seen.send(Seen::JoinRefused { topic, reason });
                            }
                        }
                    }
                    "access_token" => {
                        let Some(c) = channels.get_mut(&topic) else { continue };
                        match check_token(&topic, payload["access_token"].as_str(), true) {
                            Ok(left) => {
                                c.expires = left.map(|l| Instant::now() + l);
                                let _ = seen.send(Seen::TokenPushed { topic });
                            }
                            Err(_) => c.expires = Some(Instant::now()),
                        }
                    }
                    "presence" if channels.contains_key(&topic) => {
                        send(&mut ws, reply("ok", json!({}))).await;
                    }
                    "phx_leave" => {
                        send(&mut ws, reply("ok", json!({}))).await;
                        if let Some(c) = channels.remove(&topic) {
                            send(&mut ws, json!([c.join_ref, c.join_ref, topic, "phx_close", {}]).to_string()).await;
                        }
                    }
                    _ => {}
                }
            }
            () = expiry => {
                let Some((_, topic)) = next_expiry else { continue };
                expire(&mut ws, &mut channels, &topic, &seen).await;
            }
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Cmd::Expire { topic } => expire(&mut ws, &mut channels, &topic, &seen).await,
                    other => command(&mut ws, &channels, other).await,
                }
            }
        }
    }
}

async fn expire(
    ws: &mut tokio_tungstenite::WebSocketStream<Box<dyn relayport_supabase::client::Io>>,
    channels: &mut HashMap<String, Joined>,
    topic: &str,
    seen: &mpsc::UnboundedSender<Seen>,
) {
    {
        {
            {
                let topic = topic.to_owned();
                let ws = &mut *ws;
                let Some(c) = channels.remove(&topic) else {
                    return;
                };
                let name = topic.trim_start_matches("realtime:");
                send(ws, json!([c.join_ref, null, topic, "system", {"extension": "system", "status": "error", "message": "Token has expired 0 seconds ago", "channel": name}]).to_string()).await;
                send(
                    ws,
                    json!([c.join_ref, c.join_ref, topic, "phx_close", {}]).to_string(),
                )
                .await;
                let _ = seen.send(Seen::Expired { topic });
            }
        }
    }
}

async fn command(
    ws: &mut tokio_tungstenite::WebSocketStream<Box<dyn relayport_supabase::client::Io>>,
    channels: &HashMap<String, Joined>,
    cmd: Cmd,
) {
    {
        {
            {
                match cmd {
                    Cmd::Expire { .. } => {}
                    Cmd::Raw {
                        topic,
                        event,
                        payload,
                    } => {
                        if let Some(c) = channels.get(&topic) {
                            send(
                                ws,
                                json!([c.join_ref, null, topic, event, payload]).to_string(),
                            )
                            .await;
                        }
                    }
                    Cmd::Broadcast { topic, event } => {
                        if channels.contains_key(&topic) {
                            send(ws, json!([null, null, topic, "broadcast", {"type": "broadcast", "event": event, "payload": {"at": event}}]).to_string()).await;
                        }
                    }
                    Cmd::Error { topic } => {
                        if let Some(c) = channels.get(&topic) {
                            send(
                                ws,
                                json!([c.join_ref, c.join_ref, topic, "phx_error", {}]).to_string(),
                            )
                            .await;
                        }
                    }
                    Cmd::System { topic, payload } => {
                        if let Some(c) = channels.get(&topic) {
                            send(
                                ws,
                                json!([c.join_ref, null, topic, "system", payload]).to_string(),
                            )
                            .await;
                        }
                    }
                }
            }
        }
    }
}

async fn send(
    ws: &mut tokio_tungstenite::WebSocketStream<Box<dyn relayport_supabase::client::Io>>,
    text: String,
) {
    let _ = ws.send(WsMessage::Text(text.into())).await;
}

/// The server's checks: a valid HS256 token whose `exp` is in the future (its time left is
/// returned), and on a private channel a `topic` claim naming this channel.
fn check_token(
    topic: &str,
    token: Option<&str>,
    private: bool,
) -> Result<Option<Duration>, String> {
    let Some(token) = token else {
        return if private {
            Err("Unauthorized: You do not have permissions to read from this Channel topic".into())
        } else {
            Ok(None)
        };
    };
    let now = unix_now();
    let claims = hs256::verify(token, SECRET.as_bytes(), now)
        .map_err(|e| format!("InvalidJWTToken: {e}"))?;
    let exp = claims["exp"].as_u64().ok_or("InvalidJWTToken: no exp")?;
    if exp <= now {
        return Err(format!(
            "InvalidJWTToken: Token has expired {} seconds ago",
            now - exp
        ));
    }
    let name = topic.trim_start_matches("realtime:");
    if private && claims.get(TOPIC_CLAIM).and_then(Value::as_str) != Some(name) {
        return Err(format!(
            "Unauthorized: You do not have permissions to read from this Channel topic: {name}"
        ));
    }
    Ok(Some(Duration::from_secs(exp - now)))
}

/// Starts the peer on one in-memory connection; returns the provider's connector side.
fn start_peer() -> (
    relayport_supabase::client::Connector,
    mpsc::UnboundedReceiver<Seen>,
    mpsc::UnboundedSender<Cmd>,
) {
    let (mut incoming, connector) = peer::memory();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let ws = peer::accept_ws(&mut incoming).await;
        behave(ws, seen_tx, cmd_rx).await;
    });
    (connector, seen_rx, cmd_tx)
}

fn provider(connector: relayport_supabase::client::Connector) -> SupabaseProvider {
    SupabaseProvider::new(SupabaseConfig::new("http://127.0.0.1:4000", "anon"))
        .with_connector(connector)
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    timeout(Duration::from_secs(3600), seen.recv())
        .await
        .expect("the peer in time")
        .expect("peer running")
}

/// Issue 15 item 1: a private channel's listener survives three token lifetimes. Tokens live
/// 120 s on the peer's own timer; the provider re-authorizes 24 s before each `exp` (a fifth of
/// the lifetime, under the 60 s margin) and pushes `access_token`, so the peer never expires
/// the channel and a broadcast every 50 s keeps arriving for 400 s.
#[tokio::test(start_paused = true)]
async fn a_private_listener_survives_three_token_lifetimes() {
    let (connector, mut seen, cmds) = start_peer();
    let auth = Arc::new(SupabaseAuthorizer::new(SECRET).ttl(Duration::from_secs(120)));
    let client = RealtimeClient::builder(provider(connector).with_authorizer(auth.clone()))
        .authorizer(auth)
        .build();
    let mut events = client.events();
    let ch = Channel::private("room");
    let mut sub = client.subscribe(ch.clone()).await.expect("subscribe");
    assert!(matches!(next_seen(&mut seen).await, Seen::Joined { .. }));
    let start = Instant::now();
    let mut received = 0;
    let mut pushes = 0;
    for n in 1..=8u64 {
        tokio::time::sleep_until(start + Duration::from_secs(50 * n)).await;
        cmds.send(Cmd::Broadcast {
            topic: "realtime:room".into(),
            event: format!("tick-{n}"),
        })
        .expect("peer");
        let m = timeout(Duration::from_secs(5), sub.recv())
            .await
            .unwrap_or_else(|_| panic!("tick {n} not delivered"))
            .expect("stream open");
        assert_eq!(m.event, format!("tick-{n}"));
        received += 1;
        while let Ok(s) = seen.try_recv() {
            match s {
                Seen::TokenPushed { .. } => pushes += 1,
                other => panic!("unexpected on the peer: {other:?}"),
            }
        }
    }
    assert_eq!(received, 8);
    assert!(
        pushes >= 3,
        "{pushes} token refreshes in 400 s of 120 s tokens"
    );
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, ClientEvent::SubscriptionFailed { .. }),
            "{e:?}"
        );
    }
    client.close().await;
}

/// Issue 15 item 1, the other half: a channel the server closed for an expired token
/// (`system` "Token has expired" + `phx_close`, here from the peer's token check ahead of
/// `exp`) rejoins on the same socket with a fresh token from the authorizer and keeps
/// delivering; the core hears `ContinuityLost`, never `SubscriptionLost`.
#[tokio::test(start_paused = true)]
async fn a_channel_closed_for_an_expired_token_rejoins_with_a_fresh_one() {
    let (connector, mut seen, cmds) = start_peer();
    let auth = Arc::new(SupabaseAuthorizer::new(SECRET).claim("generation", json!(1)));
    let refresher = Arc::new(SupabaseAuthorizer::new(SECRET).claim("generation", json!(2)));
    let p = provider(connector).with_authorizer(refresher);
    let mut system = p.system_events();
    let (sink, mut events) = EventSink::channel();
    let session = p.connect(sink).await.expect("connect");
    let ch = Channel::private("room");
    let request = relayport_core::AuthRequest {
        socket_id: session.connection_id.clone(),
        channel: ch.clone(),
        user: None,
    };
    let first = relayport_core::ChannelAuthorizer::authorize(auth.as_ref(), &request)
        .await
        .expect("token");
    p.subscribe(
        &ch,
        &SubscribeOptions {
            auth: Some(first),
            ..Default::default()
        },
    )
    .await
    .expect("join");
    let Seen::Joined {
        join_ref: first_ref,
        token: first_token,
        ..
    } = next_seen(&mut seen).await
    else {
        panic!("joined expected")
    };
    let expired_at = Instant::now();
    cmds.send(Cmd::Expire {
        topic: "realtime:room".into(),
    })
    .expect("peer");
    assert!(matches!(next_seen(&mut seen).await, Seen::Expired { .. }));
    let Seen::Joined {
        join_ref, token, ..
    } = next_seen(&mut seen).await
    else {
        panic!("rejoin expected")
    };
    assert_eq!(
        expired_at.elapsed(),
        Duration::from_secs(1),
        "the channel's 1 s rejoin"
    );
    assert_ne!(join_ref, first_ref, "a new join on the same socket");
    let generation = |t: &Option<String>| {
        hs256::verify(
            t.as_deref().expect("a token"),
            SECRET.as_bytes(),
            unix_now(),
        )
        .expect("valid")["generation"]
            .clone()
    };
    assert_eq!(
        (generation(&first_token), generation(&token)),
        (json!(1), json!(2)),
        "the rejoin carries a fresh token from the provider's authorizer"
    );
    cmds.send(Cmd::Broadcast {
        topic: "realtime:room".into(),
        event: "after".into(),
    })
    .expect("peer");
    let mut continuity = false;
    loop {
        match timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event")
            .expect("sink")
            .1
        {
            ProviderEvent::ContinuityLost { channel, .. } if channel == ch => continuity = true,
            ProviderEvent::Message(m) if m.event == "after" => break,
            ProviderEvent::SubscriptionLost { channel, error } => {
                panic!("{channel} lost: {error}")
            }
            ProviderEvent::Closed(r) => panic!("the link closed: {r:?}"),
            _ => {}
        }
    }
    assert!(continuity, "the gap is reported for that channel");
    let e = system.try_recv().expect("a typed system event");
    assert_eq!(e.kind, SystemKind::TokenExpired);
}

/// Issue 15 item 2 end to end: the peer's claims policy accepts a channel's own token and
/// refuses it on another private channel.
#[tokio::test(start_paused = true)]
async fn one_channels_token_does_not_open_another() {
    let (connector, mut seen, _cmds) = start_peer();
    let auth = SupabaseAuthorizer::new(SECRET);
    let p = provider(connector);
    let (sink, _events) = EventSink::channel();
    let session = p.connect(sink).await.expect("connect");
    let token_for = |name: &str| {
        auth.authorize_at(
            &relayport_core::AuthRequest {
                socket_id: session.connection_id.clone(),
                channel: Channel::private(name),
                user: None,
            },
            unix_now(),
        )
        .expect("token")
    };
    let with = |a| SubscribeOptions {
        auth: Some(a),
        ..Default::default()
    };
    p.subscribe(&Channel::private("a"), &with(token_for("a")))
        .await
        .expect("its own token opens it");
    let err = p
        .subscribe(&Channel::private("b"), &with(token_for("a")))
        .await
        .expect_err("another channel's token");
    assert_eq!(err.kind(), relayport_core::ErrorKind::Forbidden, "{err}");
    assert!(matches!(next_seen(&mut seen).await, Seen::Joined { .. }));
    assert!(matches!(
        next_seen(&mut seen).await,
        Seen::JoinRefused { .. }
    ));
}

/// Issue 15 item 4: one channel's `phx_error` rejoins that channel alone, 1 s later on the
/// same socket; a broadcast on a sibling channel right after the error is delivered, the link
/// never closes. Item 6: a `system` frame is a typed event, not a message.
#[tokio::test(start_paused = true)]
async fn a_channel_error_rejoins_that_channel_alone() {
    let (connector, mut seen, cmds) = start_peer();
    let p = provider(connector);
    let mut system = p.system_events();
    let (sink, mut events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    for name in ["a", "b"] {
        p.subscribe(&Channel::public(name), &SubscribeOptions::default())
            .await
            .expect("join");
        assert!(matches!(next_seen(&mut seen).await, Seen::Joined { .. }));
    }
    cmds.send(Cmd::System {
        topic: "realtime:a".into(),
        payload: json!({"extension": "postgres_changes", "status": "ok", "message": "Subscribed to PostgreSQL", "channel": "a"}),
    })
    .expect("peer");
    let errored_at = Instant::now();
    cmds.send(Cmd::Error {
        topic: "realtime:a".into(),
    })
    .expect("peer");
    cmds.send(Cmd::Broadcast {
        topic: "realtime:b".into(),
        event: "sibling".into(),
    })
    .expect("peer");
    let mut sibling = false;
    let mut rejoined = false;
    while !(sibling && rejoined) {
        let e = timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event")
            .expect("sink")
            .1;
        match e {
            ProviderEvent::Message(m) => {
                assert_ne!(m.event, "system", "system frames are not messages");
                if m.event == "sibling" {
                    assert_eq!(m.channel, Channel::public("b"));
                    assert!(!rejoined, "delivered right away, not after a reconnect");
                    sibling = true;
                }
            }
            ProviderEvent::ContinuityLost { channel, .. } => {
                assert_eq!(channel, Channel::public("a"));
                assert_eq!(
                    errored_at.elapsed(),
                    Duration::from_secs(1),
                    "realtime-js's 1 s"
                );
                rejoined = true;
            }
            ProviderEvent::Closed(r) => panic!("the link closed: {r:?}"),
            ProviderEvent::SubscriptionLost { channel, .. } => panic!("{channel} lost"),
            _ => {}
        }
    }
    match next_seen(&mut seen).await {
        Seen::Joined { topic, .. } => assert_eq!(topic, "realtime:a"),
        other => panic!("{other:?}"),
    }
    let e = system.try_recv().expect("a typed system event");
    assert_eq!(
        (e.kind, e.channel),
        (SystemKind::PostgresSubscribed, Channel::public("a"))
    );
    // The rejoined channel delivers again.
    cmds.send(Cmd::Broadcast {
        topic: "realtime:a".into(),
        event: "again".into(),
    })
    .expect("peer");
    loop {
        if let ProviderEvent::Message(m) = timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event")
            .expect("sink")
            .1
        {
            assert_eq!(
                (m.channel, m.event.as_str()),
                (Channel::public("a"), "again")
            );
            break;
        }
    }
}

/// Issue 15 item 5: Supabase announces its own limit (256 KB by default, configurable), and
/// the core applies it: a 100 KB broadcast passes a `RealtimeClient`, past the limit does not.
#[tokio::test(start_paused = true)]
async fn the_client_applies_supabases_announced_payload_limit() {
    let (connector, mut seen, _cmds) = start_peer();
    let p = provider(connector);
    assert_eq!(
        p.capabilities().max_payload,
        relayport_supabase::rest::DEFAULT_MAX_PAYLOAD
    );
    let client = RealtimeClient::builder(p).build();
    let _sub = client.subscribe("big").await.expect("subscribe");
    assert!(matches!(next_seen(&mut seen).await, Seen::Joined { .. }));
    client
        .publish("big", "blob", json!("x".repeat(100 * 1000)))
        .await
        .expect("100 KB is under Supabase's limit");
    let err = client
        .publish("big", "blob", json!("x".repeat(300 * 1024)))
        .await
        .expect_err("past the limit");
    assert_eq!(err.kind(), relayport_core::ErrorKind::PayloadTooLarge);
    client.close().await;

    let mut config = SupabaseConfig::new("http://127.0.0.1:4000", "anon");
    config.max_payload = 3_000 * 1000;
    assert_eq!(
        SupabaseProvider::new(config).capabilities().max_payload,
        3_000 * 1000,
        "a paid plan's limit is configurable"
    );
}

/// Issue 15 item 7: postgres_changes filters set on the provider (what configuration and
/// `listen --postgres` do) go into every join of the channel: the first one and the rejoin
/// after a channel error; a change on the rejoined channel is delivered.
#[tokio::test(start_paused = true)]
async fn postgres_changes_survive_a_rejoin() {
    let (connector, mut seen, cmds) = start_peer();
    let filter: relayport_supabase::PostgresChangesFilter =
        "public:messages:INSERT".parse().expect("spec");
    let p = provider(connector).with_postgres_changes(Channel::public("db"), [filter]);
    let (sink, mut events) = EventSink::channel();
    p.connect(sink).await.expect("connect");
    p.subscribe(&Channel::public("db"), &SubscribeOptions::default())
        .await
        .expect("join");
    let want = json!([{"event": "INSERT", "schema": "public", "table": "messages"}]);
    let Seen::Joined { postgres, .. } = next_seen(&mut seen).await else {
        panic!("joined expected")
    };
    assert_eq!(postgres, want);
    cmds.send(Cmd::Error {
        topic: "realtime:db".into(),
    })
    .expect("peer");
    let Seen::Joined { postgres, .. } = next_seen(&mut seen).await else {
        panic!("rejoin expected")
    };
    assert_eq!(postgres, want, "the rejoin carries the filters");
    loop {
        let e = timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event")
            .expect("sink")
            .1;
        match e {
            ProviderEvent::ContinuityLost { .. } => break,
            ProviderEvent::SubscriptionLost { error, .. } => panic!("lost: {error}"),
            _ => {}
        }
    }
    cmds.send(Cmd::Raw {
        topic: "realtime:db".into(),
        event: "postgres_changes".into(),
        payload: json!({"ids": [1000], "data": {"schema": "public", "table": "messages", "commit_timestamp": "2024-01-01T00:00:00Z", "type": "INSERT", "columns": [{"name": "id", "type": "int4"}], "record": {"id": 7}, "errors": null}}),
    })
    .expect("peer");
    loop {
        let e = timeout(Duration::from_secs(60), events.recv())
            .await
            .expect("an event")
            .expect("sink")
            .1;
        if let ProviderEvent::Message(m) = e {
            assert_eq!(m.event, "postgres_changes:INSERT");
            assert_eq!(m.data["new"]["id"], 7);
            break;
        }
    }
}

/// Mixed: a private, a presence and a public channel on one socket through the core; the
/// private channel's token is expired by the server mid-stream. The private channel rejoins by
/// itself with a fresh token while broadcasts on the two others keep arriving, and nothing
/// reconnects.
#[tokio::test(start_paused = true)]
async fn private_presence_and_public_share_a_socket_through_a_token_expiry() {
    let (connector, mut seen, cmds) = start_peer();
    let auth = Arc::new(SupabaseAuthorizer::new(SECRET));
    let client = RealtimeClient::builder(provider(connector).with_authorizer(auth.clone()))
        .authorizer(auth)
        .client_id("u1")
        .build();
    let mut events = client.events();
    let mut private = client.subscribe("private:room").await.expect("private");
    let mut public = client.subscribe("news").await.expect("public");
    let mut lobby = client.subscribe("presence:lobby").await.expect("presence");
    client
        .presence_enter("presence:lobby", json!({"name": "u1"}))
        .await
        .expect("track");
    for _ in 0..3 {
        assert!(matches!(next_seen(&mut seen).await, Seen::Joined { .. }));
    }
    cmds.send(Cmd::Expire {
        topic: "realtime:room".into(),
    })
    .expect("peer");
    assert!(matches!(next_seen(&mut seen).await, Seen::Expired { .. }));
    for topic in ["realtime:news", "realtime:lobby"] {
        cmds.send(Cmd::Broadcast {
            topic: topic.into(),
            event: "during".into(),
        })
        .expect("peer");
    }
    for sub in [&mut public, &mut lobby] {
        let m = timeout(Duration::from_millis(500), sub.recv())
            .await
            .expect("delivered while the private channel rejoins")
            .expect("open");
        assert_eq!(m.event, "during");
    }
    match next_seen(&mut seen).await {
        Seen::Joined { topic, .. } => assert_eq!(topic, "realtime:room"),
        other => panic!("{other:?}"),
    }
    cmds.send(Cmd::Broadcast {
        topic: "realtime:room".into(),
        event: "after".into(),
    })
    .expect("peer");
    let m = timeout(Duration::from_secs(5), private.recv())
        .await
        .expect("the private channel delivers again")
        .expect("open");
    assert_eq!(m.event, "after");
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(
                e,
                ClientEvent::SubscriptionFailed { .. } | ClientEvent::LinkLost { .. }
            ),
            "{e:?}"
        );
    }
    client.close().await;
}
