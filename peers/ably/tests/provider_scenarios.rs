//! relayport's Ably provider, through the facade, against the behavioural peer: scenarios
//! that mix features the way applications do (each of issue 14's defects, and a core defect
//! this peer found, has one that failed before its fix).
//!
//! Every wait is bounded; nothing sleeps to wait for an event.

use std::future::Future;
use std::time::Duration;

use relayport::config::MapEnv;
use relayport::{
    ClientEvent, Message, OutboundMessage, PresenceAction, PresenceStream, ProviderConfig,
    Publisher, RealtimeClient, Subscription,
};
use relayport_peer_ably::{AblyPeer, PeerConfig, keys};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {WAIT:?}"))
}

async fn start() -> AblyPeer {
    AblyPeer::start(PeerConfig::default())
        .await
        .expect("the peer binds")
}

/// The configuration of a trusted process holding the key (`ABLY_API_KEY`): the client signs
/// its own token requests, the publisher uses the key.
fn config(peer: &AblyPeer) -> ProviderConfig {
    let port = peer.port().to_string();
    ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "ably"),
        ("ABLY_API_KEY", keys::FULL),
        ("ABLY_HOST", "127.0.0.1"),
        ("ABLY_PORT", port.as_str()),
        ("ABLY_TLS", "false"),
    ]))
    .expect("config")
}

fn client(peer: &AblyPeer, client_id: Option<&str>) -> RealtimeClient {
    let mut cfg = config(peer);
    if let Some(id) = client_id {
        cfg = cfg.with_client_id(id);
    }
    relayport::trusted_client_builder(&cfg)
        .expect("client builder")
        .build()
}

fn publisher(peer: &AblyPeer) -> Box<dyn Publisher> {
    relayport::publisher(&config(peer)).expect("publisher")
}

async fn publish(p: &dyn Publisher, channel: &str, event: &str, data: Value) {
    let ch = relayport::Channel::parse(channel).expect("channel");
    within("publish", p.publish(&OutboundMessage::new(ch, event, data)))
        .await
        .expect("published");
}

async fn next(what: &str, sub: &mut Subscription) -> Message {
    within(what, sub.recv())
        .await
        .unwrap_or_else(|| panic!("{what}: the subscription ended"))
}

/// The next presence event for `id` with `action`, skipping others.
async fn presence(stream: &mut PresenceStream, action: PresenceAction, id: &str) -> Value {
    let what = format!("{action:?} of {id}");
    within(&what, async {
        while let Some(e) = stream.recv().await {
            if e.action == action && e.member.id == id {
                return e.member.data;
            }
        }
        panic!("{what}: the presence stream ended")
    })
    .await
}

/// No further message arrives within a short while (exactly-once checks).
async fn nothing_more(sub: &mut Subscription) {
    if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(500), sub.recv()).await {
        panic!("an extra message arrived: {m:?}");
    }
}

/// A public and a private channel on one connection, no client id: subscribing to the
/// private one must not cost the public one (issue 14 defect 1: a per-channel token replaced
/// the connection's capability and the peer failed the other channel with 40160).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_channel_keeps_the_public_one() {
    let peer = start().await;
    let c = client(&peer, None);
    let mut events = c.events();
    let mut news = within("subscribe news", c.subscribe("news"))
        .await
        .expect("news");
    let mut ops = within("subscribe private", c.subscribe("private:ops"))
        .await
        .expect("private:ops");
    let p = publisher(&peer);
    publish(&*p, "private:ops", "o", json!("private")).await;
    assert_eq!(next("private", &mut ops).await.data, json!("private"));
    publish(&*p, "news", "n", json!("public")).await;
    assert_eq!(next("news", &mut news).await.data, json!("public"));
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, ClientEvent::SubscriptionFailed { .. }),
            "{e:?}"
        );
    }
    c.close().await;
}

/// A public, a private and a presence channel on one connection with a client id, as a chat
/// app has them (issue 14 defects 1 and 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_private_and_presence_on_one_connection() {
    let peer = start().await;
    let c = client(&peer, Some("dana"));
    let mut news = within("subscribe news", c.subscribe("news"))
        .await
        .expect("news");
    let mut ops = within("subscribe private", c.subscribe("private:ops"))
        .await
        .expect("private:ops");
    within("enter", c.presence_enter("presence:lobby", json!({"v": 1})))
        .await
        .expect("enter");
    let p = publisher(&peer);
    publish(&*p, "news", "n", json!("public")).await;
    publish(&*p, "private:ops", "o", json!("private")).await;
    assert_eq!(next("news", &mut news).await.data, json!("public"));
    assert_eq!(next("private", &mut ops).await.data, json!("private"));
    let members = peer.members("presence:lobby");
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].client_id, "dana");
    let conns = peer.connections_of("dana");
    assert_eq!(conns.len(), 1, "one connection: {conns:?}");
    let mut attached = conns[0].attached.clone();
    attached.sort();
    assert_eq!(attached, ["news", "presence:lobby", "private:ops"]);
    c.close().await;
}

/// A client id with a private channel: the token must carry the connection's client id
/// (issue 14 defect 2: the peer answers 40102 and the provider reconnected forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_with_private_channels() {
    let peer = start().await;
    let c = client(&peer, Some("erin"));
    let mut events = c.events();
    let mut a = within("subscribe private:a", c.subscribe("private:a"))
        .await
        .expect("private:a");
    let mut b = within("subscribe private:b", c.subscribe("private:b"))
        .await
        .expect("private:b");
    let p = publisher(&peer);
    publish(&*p, "private:a", "x", json!("one")).await;
    publish(&*p, "private:b", "x", json!("two")).await;
    assert_eq!(next("private:a", &mut a).await.data, json!("one"));
    assert_eq!(next("private:b", &mut b).await.data, json!("two"));
    let conns = peer.connections_of("erin");
    assert_eq!(conns.len(), 1, "{conns:?}");
    // The connection stayed up: no link was lost on the way.
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ClientEvent::LinkLost { .. }), "{e:?}");
    }
    c.close().await;
}

/// Presence across a failed resume: the server forgot the connection (its members left), the
/// re-attach still says RESUMED (channelSerial continuity), and the member must come back on
/// the new connection (ably-js RTP17i; issue 14 defect 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_a_failed_resume() {
    let peer = start().await;
    let alice = client(&peer, Some("alice"));
    within(
        "alice enters",
        alice.presence_enter("presence:room", json!({"v": 1})),
    )
    .await
    .expect("enter");
    let bob = client(&peer, Some("bob"));
    let mut events = within("presence events", bob.presence_events("presence:room"))
        .await
        .expect("events");
    let old = peer.connections_of("alice")[0].id.clone();
    assert!(peer.expire_connection(&old));
    presence(&mut events, PresenceAction::Left, "alice").await;
    let back = presence(&mut events, PresenceAction::Joined, "alice").await;
    assert_eq!(back, json!({"v": 1}));
    let members = peer.members("presence:room");
    let a = members
        .iter()
        .find(|m| m.client_id == "alice")
        .expect("alice is a member again");
    assert_ne!(a.connection_id, old, "on the new connection");
    alice.close().await;
    bob.close().await;
}

/// Close: the provider sends CLOSE, so members leave at once rather than after the server's
/// 15 s leave grace (issue 14 defect 4).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_makes_members_leave_at_once() {
    let peer = start().await;
    let bob = client(&peer, Some("bob"));
    let mut events = within("presence events", bob.presence_events("presence:exit"))
        .await
        .expect("events");
    let alice = client(&peer, Some("alice"));
    within(
        "alice enters",
        alice.presence_enter("presence:exit", json!("in")),
    )
    .await
    .expect("enter");
    presence(&mut events, PresenceAction::Joined, "alice").await;
    let started = std::time::Instant::now();
    alice.close().await;
    presence(&mut events, PresenceAction::Left, "alice").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "left after {:?} (the grace is 15 s: no CLOSE was sent)",
        started.elapsed()
    );
    assert!(
        peer.connections_of("alice").is_empty(),
        "the peer forgot alice's connection"
    );
    bob.close().await;
}

/// History over REST with paging, as an app reads a channel's backlog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_everything_published() {
    use relayport::ably::rest::HistoryQuery;
    use relayport::ably::{AblyRest, ApiKey, RestConfig};
    let peer = start().await;
    let p = publisher(&peer);
    for n in 0..7 {
        publish(&*p, "ledger", "entry", json!({"n": n})).await;
    }
    let mut cfg = RestConfig::with_key(ApiKey::parse(keys::FULL).expect("key"));
    cfg.host = "127.0.0.1".into();
    cfg.tls = false;
    cfg.port = Some(peer.port());
    let rest = AblyRest::new(cfg).expect("rest");
    for (direction, expected) in [
        ("forwards", (0..7).collect::<Vec<i64>>()),
        ("backwards", (0..7).rev().collect()),
    ] {
        let q = HistoryQuery {
            direction: Some(direction.into()),
            limit: Some(3),
            ..HistoryQuery::default()
        };
        let mut page = within("history", rest.history("ledger", &q))
            .await
            .expect("history");
        let mut got = Vec::new();
        let mut pages = 1;
        loop {
            // The wire form: objects travel as JSON text with `encoding: "json"`.
            got.extend(page.items.iter().map(|m| {
                assert_eq!(m["encoding"], json!("json"), "{m}");
                let text = m["data"].as_str().expect("JSON text");
                serde_json::from_str::<Value>(text).expect("JSON")
            }));
            let Some(next) = page.next.clone() else { break };
            page = within(
                "next page",
                rest.next_page("/channels/ledger/messages", &next),
            )
            .await
            .expect("next page");
            pages += 1;
        }
        let expected: Vec<Value> = expected.into_iter().map(|n| json!({"n": n})).collect();
        assert_eq!(got, expected, "{direction}");
        assert_eq!(pages, 3, "{direction}: 3 + 3 + 1");
    }
}

/// A dropped link with messages published meanwhile: after the resume every message arrives
/// exactly once, in order, and the connection id is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_loses_nothing_and_duplicates_nothing() {
    let peer = start().await;
    let c = client(&peer, Some("reader"));
    let mut feed = within("subscribe", c.subscribe("feed"))
        .await
        .expect("feed");
    let p = publisher(&peer);
    publish(&*p, "feed", "m", json!("m0")).await;
    assert_eq!(next("m0", &mut feed).await.data, json!("m0"));
    let before = peer.connections_of("reader");
    assert_eq!(before.len(), 1);
    assert!(peer.drop_connection(&before[0].id));
    for n in 1..=3 {
        peer.publish("feed", "m", json!(format!("m{n}")))
            .expect("server publish");
    }
    for n in 1..=3 {
        assert_eq!(
            next("a message sent meanwhile", &mut feed).await.data,
            json!(format!("m{n}"))
        );
    }
    publish(&*p, "feed", "m", json!("m4")).await;
    assert_eq!(next("m4", &mut feed).await.data, json!("m4"));
    nothing_more(&mut feed).await;
    let after = peer.connections_of("reader");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before[0].id, "the connection was resumed");
    assert!(after[0].live);
    c.close().await;
}

/// Presence and messages on one connection across a dropped link: the member stays (the
/// resume comes well within the leave grace) and is not entered twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_survives_a_resumed_drop() {
    let peer = start().await;
    let watcher = client(&peer, Some("watcher"));
    let mut events = within("presence events", watcher.presence_events("presence:stay"))
        .await
        .expect("events");
    let c = client(&peer, Some("stayer"));
    within("enter", c.presence_enter("presence:stay", json!("here")))
        .await
        .expect("enter");
    presence(&mut events, PresenceAction::Joined, "stayer").await;
    let id = peer.connections_of("stayer")[0].id.clone();
    assert!(peer.drop_connection(&id));
    within("resumed", async {
        loop {
            if peer
                .connections_of("stayer")
                .first()
                .is_some_and(|c| c.live)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(peer.connections_of("stayer")[0].id, id);
    let members = peer.members("presence:stay");
    assert_eq!(
        members.iter().filter(|m| m.client_id == "stayer").count(),
        1,
        "{members:?}"
    );
    // Nothing but the resume happened: no leave, no second join.
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
        panic!("unexpected presence event {e:?}");
    }
    c.close().await;
    watcher.close().await;
}

/// Continuity lost during a drop (the re-attach is not RESUMED): the core catches up from
/// REST history, so the messages published meanwhile still arrive exactly once, in order.
///
/// The peer answers the re-attach without RESUMED while the core is resubscribing the
/// channel: the `ContinuityLost` that arrives then is applied when the resubscribe settles
/// (it used to be dropped, reporting `recovered: true` and losing the three messages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_continuity_is_recovered_from_history() {
    let peer = start().await;
    let c = client(&peer, Some("catcher"));
    let mut events = c.events();
    let mut journal = within("subscribe", c.subscribe("journal"))
        .await
        .expect("journal");
    let p = publisher(&peer);
    publish(&*p, "journal", "j", json!("j0")).await;
    assert_eq!(next("j0", &mut journal).await.data, json!("j0"));
    let id = peer.connections_of("catcher")[0].id.clone();
    assert!(peer.drop_connection(&id));
    for n in 1..=3 {
        peer.publish("journal", "j", json!(format!("j{n}")))
            .expect("server publish");
    }
    peer.break_continuity("journal");
    for n in 1..=3 {
        assert_eq!(
            next("a message from history", &mut journal).await.data,
            json!(format!("j{n}"))
        );
    }
    publish(&*p, "journal", "j", json!("j4")).await;
    assert_eq!(next("j4", &mut journal).await.data, json!("j4"));
    nothing_more(&mut journal).await;
    let mut sync_required = false;
    while let Ok(e) = events.try_recv() {
        sync_required |= matches!(e, ClientEvent::SyncRequired { .. });
    }
    assert!(!sync_required, "history covered the gap");
    c.close().await;
}
