//! Channel policies: resubscribe order with re-authorization, presence re-enter with the last
//! state, history recovery without loss or duplicates, gaps and `SyncRequired`, unsubscribe on
//! drop, refusals, presence streams, wildcards and typed events.

mod common;

use std::sync::Arc;

use common::*;
use relayport_core::testing::{Call, RecoveryMode};
use relayport_core::{
    Capabilities, Channel, ClientEvent, CloseReason, ConnectionState, ErrorKind, EventType,
    Message, PresenceAction, PresenceChange, PresenceMember, RealtimeClient, RealtimeError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn ch(s: &str) -> Channel {
    Channel::parse(s).unwrap()
}

fn subscribe_calls(calls: &[Call]) -> Vec<(String, Option<u64>)> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Subscribe { channel, since, .. } => {
                Some((channel.to_string(), since.as_ref().map(|p| p.sequence)))
            }
            _ => None,
        })
        .collect()
}

fn seqs(msgs: &[Message]) -> Vec<u64> {
    msgs.iter()
        .map(|m| m.position.as_ref().unwrap().sequence)
        .collect()
}

#[tokio::test(start_paused = true)]
async fn resubscribes_in_order_reauthorizes_and_reenters_presence_with_last_state() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    let auth = Arc::new(TestAuthorizer::default());
    let client = RealtimeClient::builder(provider)
        .client_id("alice")
        .authorizer(auth.clone())
        .build();
    let _a = client.subscribe("news").await.unwrap();
    let _b = client.subscribe("private:inbox").await.unwrap();
    client
        .presence_enter("presence:room", json!({"mood": "ok"}))
        .await
        .unwrap();
    let _c = client.subscribe("agent.*.status").await.unwrap();
    client
        .presence_update("presence:room", json!({"mood": "great"}))
        .await
        .unwrap();
    script.take_calls();

    script.drop_link(CloseReason::retry(None, "wifi lost"));
    // Updated while offline: the last state is what gets restored.
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    client
        .presence_update("presence:room", json!({"mood": "away"}))
        .await
        .unwrap();
    wait_state(&client, ConnectionState::is_connected).await;
    wait_until("all restored", || {
        script
            .calls()
            .iter()
            .any(|c| matches!(c, Call::PresenceEnter(..)))
    })
    .await;

    let calls = script.calls();
    let order: Vec<String> = subscribe_calls(&calls)
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(
        order,
        ["news", "private:inbox", "presence:room", "agent.*.status"]
    );
    assert!(calls.contains(&Call::PresenceEnter(
        ch("presence:room"),
        json!({"mood": "away"})
    )));
    // Private and presence channels were signed again, for the new connection id.
    let requests = auth.requests.lock().unwrap().clone();
    let second: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r.socket_id == "conn-2")
        .map(|r| (r.channel.to_string(), r.socket_id.clone()))
        .collect();
    assert_eq!(
        second,
        [
            ("private:inbox".to_string(), "conn-2".to_string()),
            ("presence:room".to_string(), "conn-2".to_string())
        ]
    );
    let presence_req = requests
        .iter()
        .rfind(|r| r.channel == ch("presence:room"))
        .unwrap();
    let user = presence_req.user.as_ref().unwrap();
    assert_eq!(user.id, "alice");
    assert_eq!(user.info, json!({"mood": "away"}));
}

#[tokio::test(start_paused = true)]
async fn recovers_missed_messages_at_subscribe_in_order_without_duplicates() {
    let (client, script) = client(|b| b);
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    let mut events = client.events();
    for i in 1..=3 {
        script.server_publish(&news, "post", json!(i));
    }
    assert_eq!(seqs(&recv_n(&mut sub, 3).await), [1, 2, 3]);

    script.drop_link(CloseReason::retry(None, "gone"));
    for i in 4..=6 {
        script.server_publish(&news, "post", json!(i));
    }
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::Resubscribed {
            channel: news.clone(),
            recovered: true
        }
    );
    // The server re-sends 6 (a duplicate) and then goes on live.
    let mut dup = Message::new(news.clone(), "post", json!(6));
    dup.position = Some(relayport_core::Position::new(6));
    script.emit_message(dup);
    script.server_publish(&news, "post", json!(7));
    let got = recv_n(&mut sub, 4).await;
    assert_eq!(seqs(&got), [4, 5, 6, 7]);
    assert_eq!(got[0].data, json!(4));
    let subs = subscribe_calls(&script.calls());
    assert_eq!(subs, [("news".into(), None), ("news".into(), Some(3))]);
    settle().await;
    assert!(sub.rx_is_empty_for_test());
}

trait Drained {
    fn rx_is_empty_for_test(&mut self) -> bool;
}
impl Drained for relayport_core::Subscription {
    fn rx_is_empty_for_test(&mut self) -> bool {
        use futures::FutureExt;
        self.recv().now_or_never().is_none()
    }
}

#[tokio::test(start_paused = true)]
async fn recovers_through_history_when_subscribe_cannot_replay() {
    let (client, script) = client(|b| b);
    script.set_recovery(RecoveryMode::History);
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    script.server_publish(&news, "post", json!(1));
    recv_n(&mut sub, 1).await;
    script.drop_link(CloseReason::retry(None, "gone"));
    script.server_publish(&news, "post", json!(2));
    script.server_publish(&news, "post", json!(3));
    let got = recv_n(&mut sub, 2).await;
    assert_eq!(seqs(&got), [2, 3]);
    assert!(script.calls().contains(&Call::History(
        news.clone(),
        relayport_core::Position::new(1)
    )));
}

#[tokio::test(start_paused = true)]
async fn a_gap_raises_sync_required() {
    let (client, script) = client(|b| b);
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    let mut events = client.events();
    script.server_publish(&news, "post", json!(1));
    recv_n(&mut sub, 1).await;
    script.drop_link(CloseReason::retry(None, "gone"));
    for i in 2..=5 {
        script.server_publish(&news, "post", json!(i));
    }
    script.truncate_history(&news, 3);
    wait_event(&mut events, |e| {
        *e == ClientEvent::SyncRequired {
            channel: news.clone(),
        }
    })
    .await;
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::Resubscribed {
            channel: news.clone(),
            recovered: false
        }
    );
    // Live delivery resumes from the new baseline.
    script.server_publish(&news, "post", json!(6));
    assert_eq!(seqs(&recv_n(&mut sub, 1).await), [6]);
}

#[tokio::test(start_paused = true)]
async fn a_provider_without_history_raises_sync_required() {
    // Capabilities are read when the client is built, so script them first.
    let (provider, script2) = relayport_core::testing::ScriptedProvider::new();
    script2.set_recovery(RecoveryMode::None);
    let client = RealtimeClient::builder(provider).build();
    let mut events = client.events();
    let _sub = client.subscribe("news").await.unwrap();
    script2.server_publish(&ch("news"), "post", json!(1));
    script2.drop_link(CloseReason::retry(None, "gone"));
    wait_event(&mut events, |e| {
        *e == ClientEvent::SyncRequired {
            channel: ch("news"),
        }
    })
    .await;
    assert!(
        !script2
            .calls()
            .iter()
            .any(|c| matches!(c, Call::History(..)))
    );
}

#[tokio::test(start_paused = true)]
async fn a_resumed_session_needs_no_recovery() {
    let (client, script) = client(|b| b);
    let mut events = client.events();
    let _sub = client.subscribe("news").await.unwrap();
    script.server_publish(&ch("news"), "post", json!(1));
    script.set_session_hints(None, None, true);
    script.drop_link(CloseReason::retry(None, "blip"));
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::Resubscribed {
            channel: ch("news"),
            recovered: true
        }
    );
    assert_eq!(subscribe_calls(&script.calls())[1], ("news".into(), None));
}

#[tokio::test(start_paused = true)]
async fn dropping_the_last_handle_unsubscribes() {
    let (client, script) = client(|b| b);
    let first = client.subscribe("news").await.unwrap();
    let second = client.subscribe("news").await.unwrap();
    assert_eq!(
        subscribe_calls(&script.calls()).len(),
        1,
        "one subscription for two handles"
    );
    drop(first);
    settle().await;
    assert!(!script.calls().contains(&Call::Unsubscribe(ch("news"))));
    drop(second);
    wait_until("unsubscribed", || {
        script.calls().contains(&Call::Unsubscribe(ch("news")))
    })
    .await;
    // Resubscribing later works and delivers again.
    let mut again = client.subscribe("news").await.unwrap();
    script.server_publish(&ch("news"), "post", json!("x"));
    assert_eq!(recv_n(&mut again, 1).await[0].data, json!("x"));
}

#[tokio::test(start_paused = true)]
async fn every_handle_gets_every_message() {
    let (client, script) = client(|b| b);
    let mut a = client.subscribe("news").await.unwrap();
    let mut b = client.subscribe("news").await.unwrap();
    script.server_publish(&ch("news"), "post", json!(1));
    assert_eq!(recv_n(&mut a, 1).await[0].data, json!(1));
    assert_eq!(recv_n(&mut b, 1).await[0].data, json!(1));
}

#[tokio::test(start_paused = true)]
async fn unsubscribe_all_ends_every_stream_and_leaves_presence() {
    let (client, script) = client(|b| b);
    let mut a = client.subscribe("news").await.unwrap();
    let mut p = client.presence_events("presence:room").await.unwrap();
    client
        .presence_enter("presence:room", json!({}))
        .await
        .unwrap();
    client.unsubscribe_all().await;
    assert!(a.recv().await.is_none());
    assert!(p.recv().await.is_none());
    let calls = script.calls();
    assert!(calls.contains(&Call::PresenceLeave(ch("presence:room"))));
    assert!(calls.contains(&Call::Unsubscribe(ch("news"))));
    assert!(calls.contains(&Call::Unsubscribe(ch("presence:room"))));
    // Nothing is restored after a reconnect.
    script.take_calls();
    script.drop_link(CloseReason::retry(None, "x"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    wait_state(&client, ConnectionState::is_connected).await;
    settle().await;
    assert!(subscribe_calls(&script.calls()).is_empty());
}

#[tokio::test(start_paused = true)]
async fn refusals_surface_as_typed_errors() {
    let (client, script) = client(|b| b);
    // The authorizer refuses.
    let err = client.subscribe("private:denied-room").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    // The provider refuses.
    script.refuse_subscribe(
        &ch("private:vault"),
        RealtimeError::Unauthorized("bad signature".into()),
    );
    let err = client.subscribe("private:vault").await.unwrap_err();
    assert_eq!(err, RealtimeError::Unauthorized("bad signature".into()));
    // Bad names never reach the provider.
    let err = client.subscribe("bad name").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidChannel);
    // Presence operations need a presence channel.
    let err = client.presence_enter("news", json!({})).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidChannel);
    // The connection is unaffected.
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[tokio::test(start_paused = true)]
async fn private_channels_need_an_authorizer() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    let client = RealtimeClient::new(provider);
    let err = client.subscribe("private:inbox").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert!(err.to_string().contains("no authorizer"), "{err}");
    assert!(
        subscribe_calls(&script.calls()).is_empty(),
        "never sent unsigned"
    );
}

#[tokio::test(start_paused = true)]
async fn a_subscription_refused_after_reconnect_ends_its_stream() {
    let (client, script) = client(|b| b);
    let mut events = client.events();
    let mut vault = client.subscribe("private:vault").await.unwrap();
    script.refuse_subscribe(
        &ch("private:vault"),
        RealtimeError::Forbidden {
            channel: "private:vault".into(),
            reason: "revoked".into(),
        },
    );
    script.drop_link(CloseReason::retry(None, "x"));
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::SubscriptionFailed { .. })
    })
    .await;
    assert!(matches!(
        e,
        ClientEvent::SubscriptionFailed {
            error: RealtimeError::Forbidden { .. },
            ..
        }
    ));
    assert!(vault.recv().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn presence_streams_fold_snapshots_and_changes() {
    let (client, script) = client(|b| b);
    let room = ch("presence:room");
    let mut p = client.presence_events("presence:room").await.unwrap();
    let bob = PresenceMember::new("bob", json!({"n": 1}));
    let carol = PresenceMember::new("carol", json!(null));
    script.emit_presence(&room, PresenceChange::Snapshot(vec![bob.clone()]));
    script.emit_presence(&room, PresenceChange::Joined(carol.clone()));
    script.emit_presence(&room, PresenceChange::Joined(carol.clone()));
    script.emit_presence(
        &room,
        PresenceChange::Updated(PresenceMember::new("bob", json!({"n": 2}))),
    );
    script.emit_presence(&room, PresenceChange::Left(carol.clone()));
    let mut got = Vec::new();
    for _ in 0..4 {
        let e = tokio::time::timeout(BOUND, p.recv())
            .await
            .unwrap()
            .unwrap();
        got.push((e.action, e.member.id));
    }
    assert_eq!(
        got,
        [
            (PresenceAction::Joined, "bob".to_string()),
            (PresenceAction::Joined, "carol".to_string()),
            (PresenceAction::Updated, "bob".to_string()),
            (PresenceAction::Left, "carol".to_string()),
        ]
    );
    // Without a server list, the members are the folded roster; with one, the server's.
    let members = client.presence_members("presence:room").await.unwrap();
    assert_eq!(members, vec![PresenceMember::new("bob", json!({"n": 2}))]);
    script.set_members(&room, vec![carol.clone()]);
    assert_eq!(
        client.presence_members("presence:room").await.unwrap(),
        vec![carol]
    );
}

#[tokio::test(start_paused = true)]
async fn presence_leave_stops_reentering() {
    let (client, script) = client(|b| b);
    let _p = client.presence_events("presence:room").await.unwrap();
    client
        .presence_enter("presence:room", json!({"a": 1}))
        .await
        .unwrap();
    client.presence_leave("presence:room").await.unwrap();
    assert!(
        script
            .calls()
            .contains(&Call::PresenceLeave(ch("presence:room")))
    );
    script.take_calls();
    script.drop_link(CloseReason::retry(None, "x"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    wait_state(&client, ConnectionState::is_connected).await;
    wait_until("resubscribed", || {
        !subscribe_calls(&script.calls()).is_empty()
    })
    .await;
    settle().await;
    assert!(
        !script
            .calls()
            .iter()
            .any(|c| matches!(c, Call::PresenceEnter(..)))
    );
}

#[tokio::test(start_paused = true)]
async fn wildcards_deliver_matching_public_channels_only() {
    let (client, script) = client(|b| b);
    let mut all = client.subscribe("agent.#").await.unwrap();
    let _private = client.subscribe("private:agent.1").await.unwrap();
    script.server_publish(&ch("agent.1.status"), "up", json!(1));
    script.server_publish(&ch("private:agent.1"), "secret", json!(2));
    script.server_publish(&ch("agent.2"), "up", json!(3));
    let got = recv_n(&mut all, 2).await;
    let names: Vec<String> = got.iter().map(|m| m.channel.to_string()).collect();
    assert_eq!(names, ["agent.1.status", "agent.2"]);
}

#[tokio::test(start_paused = true)]
async fn wildcards_are_refused_when_the_provider_lacks_them() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    script.set_capabilities({
        let mut caps = Capabilities::default();
        caps.wildcards = false;
        caps
    });
    let client = RealtimeClient::new(provider);
    let err = client.subscribe("agent.*").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    let err = client
        .presence_enter("presence:x", Value::Null)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        ErrorKind::Unsupported,
        "presence unsupported too"
    );
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ChatMessage {
    text: String,
}
impl EventType for ChatMessage {
    const NAME: &'static str = "chat:message";
}

#[tokio::test(start_paused = true)]
async fn typed_events_round_trip_and_mismatches_are_errors() {
    let (client, script) = client(|b| b);
    script.echo_publishes(true);
    let mut chat = client.subscribe_typed::<ChatMessage>("room").await.unwrap();
    client
        .publish_typed("room", &ChatMessage { text: "hi".into() })
        .await
        .unwrap();
    script.server_publish(&ch("room"), "other:event", json!({"ignored": true}));
    script.server_publish(&ch("room"), "chat:message", json!({"txt": 1}));
    let first = tokio::time::timeout(BOUND, chat.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.data, ChatMessage { text: "hi".into() });
    assert_eq!(first.position.unwrap().sequence, 1);
    let bad = tokio::time::timeout(BOUND, chat.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bad.unwrap_err().kind(), ErrorKind::Protocol);
    assert_eq!(script.published()[0].event, "chat:message");
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscriber_is_reported_not_silently_skipped() {
    let (client, script) = client(|b| {
        let mut config = relayport_core::ClientConfig::default();
        config.subscriber_buffer = 2;
        config.client_id = Some("alice".into());
        b.config(config)
    });
    let mut events = client.events();
    let mut sub = client.subscribe("news").await.unwrap();
    for i in 1..=3 {
        script.server_publish(&ch("news"), "post", json!(i));
    }
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::SubscriberLagged { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::SubscriberLagged {
            channel: ch("news"),
            missed: 1
        }
    );
    assert_eq!(seqs(&recv_n(&mut sub, 2).await), [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_late_presence_listener_first_gets_the_current_members() {
    let (client, script) = client(|b| b);
    let room = ch("presence:room");
    client
        .presence_enter("presence:room", json!({"me": true}))
        .await
        .unwrap();
    script.emit_presence(
        &room,
        PresenceChange::Snapshot(vec![
            PresenceMember::new("alice", json!({"me": true})),
            PresenceMember::new("bob", json!(null)),
        ]),
    );
    settle().await;
    let mut late = client.presence_events("presence:room").await.unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        let e = tokio::time::timeout(BOUND, late.recv())
            .await
            .unwrap()
            .unwrap();
        got.push((e.action, e.member.id));
    }
    assert_eq!(
        got,
        [
            (PresenceAction::Joined, "alice".to_string()),
            (PresenceAction::Joined, "bob".to_string())
        ]
    );
    script.emit_presence(
        &room,
        PresenceChange::Left(PresenceMember::new("bob", json!(null))),
    );
    let e = tokio::time::timeout(BOUND, late.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.action, e.member.id.as_str()),
        (PresenceAction::Left, "bob")
    );
}

#[tokio::test(start_paused = true)]
async fn continuity_lost_on_a_live_channel_is_recovered_or_resynced() {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    script.set_recovery(RecoveryMode::History);
    let client = RealtimeClient::new(provider);
    let mut events = client.events();
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    script.server_publish(&news, "post", json!(1));
    recv_n(&mut sub, 1).await;

    // 2 and 3 are published while the link is down; the next connection claims a resume, so
    // the core skips recovery…
    script.drop_link(CloseReason::retry(None, "blip"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    script.server_publish(&news, "post", json!(2));
    script.server_publish(&news, "post", json!(3));
    script.set_session_hints(None, None, true);
    wait_state(&client, ConnectionState::is_connected).await;
    wait_until("resubscribed", || {
        subscribe_calls(&script.calls()).len() == 2
    })
    .await;
    settle().await;
    assert!(
        sub.rx_is_empty_for_test(),
        "nothing recovered on a claimed resume"
    );

    // …until the provider reports that this channel's stream has a gap.
    script.emit(relayport_core::ProviderEvent::ContinuityLost {
        channel: news.clone(),
        reason: RealtimeError::Protocol("attached without RESUMED".into()),
    });
    assert_eq!(seqs(&recv_n(&mut sub, 2).await), [2, 3]);
    assert!(script.calls().contains(&Call::History(
        news.clone(),
        relayport_core::Position::new(1)
    )));

    // A gap beyond the history window asks the application to resync.
    script.truncate_history(&news, 10);
    script.emit(relayport_core::ProviderEvent::ContinuityLost {
        channel: news.clone(),
        reason: RealtimeError::Protocol("gap".into()),
    });
    wait_event(&mut events, |e| {
        *e == ClientEvent::SyncRequired {
            channel: news.clone(),
        }
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn unsubscribe_is_confirmed_after_the_provider_unsubscribed() {
    let (client, script) = client(|b| b);
    let first = client.subscribe("news").await.unwrap();
    let second = client.subscribe("news").await.unwrap();
    // Another handle still listens: confirmed at once, nothing on the wire.
    first.unsubscribe().await.expect("unsubscribe");
    assert!(!script.calls().contains(&Call::Unsubscribe(ch("news"))));
    // The last one: when it returns, the provider has been asked (no waiting needed).
    second.unsubscribe().await.expect("unsubscribe");
    assert!(script.calls().contains(&Call::Unsubscribe(ch("news"))));
}

#[tokio::test(start_paused = true)]
async fn event_filters_yield_only_the_named_events_on_one_wire_subscription() {
    let (client, script) = client(|b| b);
    let mut chat = client.subscribe("room").await.unwrap().event("chat");
    let mut both = client
        .subscribe("room")
        .await
        .unwrap()
        .events(["chat", "typing"]);
    let mut all = client.subscribe("room").await.unwrap();
    assert_eq!(
        subscribe_calls(&script.calls()).len(),
        1,
        "one wire subscription"
    );
    for (event, n) in [
        ("typing", 1),
        ("join", 2),
        ("chat", 3),
        ("typing", 4),
        ("chat", 5),
    ] {
        script.server_publish(&ch("room"), event, json!(n));
    }
    let data = |ms: Vec<Message>| ms.into_iter().map(|m| m.data).collect::<Vec<_>>();
    assert_eq!(data(recv_n(&mut chat, 2).await), vec![json!(3), json!(5)]);
    assert_eq!(
        data(recv_n(&mut both, 4).await),
        vec![json!(1), json!(3), json!(4), json!(5)]
    );
    assert_eq!(data(recv_n(&mut all, 5).await).len(), 5);
    // The filter applies to the `Stream` impl too.
    use futures::StreamExt;
    script.server_publish(&ch("room"), "join", json!(6));
    script.server_publish(&ch("room"), "chat", json!(7));
    let next = tokio::time::timeout(BOUND, chat.next())
        .await
        .expect("bounded");
    assert_eq!(next.map(|m| m.data), Some(json!(7).into()));
}

#[tokio::test(start_paused = true)]
async fn here_waits_for_the_full_member_list_and_again_after_a_reconnect() {
    let (client, script) = client(|b| b);
    let room = ch("presence:room");
    let p = client.presence_events("presence:room").await.unwrap();
    let bob = PresenceMember::new("bob", json!(1));
    let carol = PresenceMember::new("carol", json!(2));
    // A join alone does not make the list whole.
    script.emit_presence(&room, PresenceChange::Joined(carol.clone()));
    let early = tokio::time::timeout(std::time::Duration::from_secs(5), p.here()).await;
    assert!(
        early.is_err(),
        "here() answered before the list was complete"
    );
    script.emit_presence(
        &room,
        PresenceChange::Snapshot(vec![bob.clone(), carol.clone()]),
    );
    let here = tokio::time::timeout(BOUND, p.here())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(here, vec![bob.clone(), carol.clone()]);

    // After the link drops the list is stale until the re-sync arrives.
    script.drop_link(CloseReason::retry(None, "gone"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    let pending = tokio::spawn(async move { (p.here().await, p) });
    wait_state(&client, ConnectionState::is_connected).await;
    settle().await;
    assert!(!pending.is_finished(), "here() answered from a stale list");
    script.emit_presence(&room, PresenceChange::Snapshot(vec![bob.clone()]));
    let (after, _p) = tokio::time::timeout(BOUND, pending).await.unwrap().unwrap();
    assert_eq!(after.unwrap(), vec![bob]);
}

#[tokio::test(start_paused = true)]
async fn state_and_event_streams_yield_changes_and_say_when_a_reader_lagged() {
    use futures::StreamExt;
    let (client, script) = client(|b| b.lazy_connect(true));
    let mut states = client.state_stream();
    let first = tokio::time::timeout(BOUND, states.next()).await.unwrap();
    assert_eq!(first, Some(ConnectionState::Initialized));
    let mut events = client.event_stream();
    client.connect().await.unwrap();
    let next = tokio::time::timeout(BOUND, states.next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            next,
            ConnectionState::Connecting | ConnectionState::Connected
        ),
        "{next:?}"
    );
    // 300 errors into a 256-event buffer, unread: the reader learns how many it missed.
    for i in 0..300 {
        script.emit(relayport_core::ProviderEvent::Error {
            channel: None,
            error: RealtimeError::Protocol(format!("#{i}")),
        });
    }
    settle().await;
    let mut lagged = None;
    while let Ok(Some(event)) =
        tokio::time::timeout(std::time::Duration::from_millis(10), events.next()).await
    {
        if let ClientEvent::EventsLagged { missed } = event {
            lagged = Some(missed);
            break;
        }
    }
    let missed = lagged.expect("no EventsLagged");
    assert!(missed >= 44, "missed {missed}");
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn history_reads_page_by_page_and_is_unsupported_where_the_provider_keeps_none() {
    use relayport_core::HistoryQuery;
    let (client, script) = client(|b| b);
    for n in 1..=5 {
        script.server_publish(&ch("news"), "post", json!(n));
    }
    let mut page = client
        .history("news", HistoryQuery::new().limit(2))
        .await
        .unwrap();
    let mut pages = Vec::new();
    loop {
        pages.push(
            page.messages()
                .iter()
                .map(|m| m.data.clone())
                .collect::<Vec<_>>(),
        );
        match page.next().await.unwrap() {
            Some(next) => page = next,
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![
            vec![json!(5), json!(4)],
            vec![json!(3), json!(2)],
            vec![json!(1)]
        ]
    );

    let (client, script) = client_without_history_pages();
    script.server_publish(&ch("news"), "post", json!(1));
    let err = client
        .history("news", HistoryQuery::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(
        !script
            .calls()
            .iter()
            .any(|c| matches!(c, Call::HistoryPage(..))),
        "the provider was asked anyway"
    );
}

fn client_without_history_pages() -> (RealtimeClient, relayport_core::testing::Script) {
    let (provider, script) = relayport_core::testing::ScriptedProvider::new();
    let mut caps = Capabilities::default();
    caps.presence = true;
    script.set_capabilities(caps);
    (RealtimeClient::builder(provider).build(), script)
}

#[tokio::test(start_paused = true)]
async fn subscribe_with_options_go_with_every_resubscribe_and_cannot_differ_per_handle() {
    use relayport_core::SubscriptionOptions;
    #[derive(Debug, PartialEq)]
    struct Rewind(u32);
    let (client, script) = client(|b| b);
    let options = SubscriptionOptions::new().with(Rewind(10));
    let _a = client.subscribe_with("db", options.clone()).await.unwrap();
    // A plain subscribe shares the channel; other options are refused.
    let _b = client.subscribe("db").await.unwrap();
    let other = client
        .subscribe_with("db", SubscriptionOptions::new().with(Rewind(99)))
        .await
        .unwrap_err();
    assert_eq!(other.kind(), ErrorKind::Config, "{other}");
    script.drop_link(CloseReason::retry(None, "gone"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    wait_state(&client, ConnectionState::is_connected).await;
    settle().await;
    let rewinds: Vec<Option<u32>> = script
        .calls()
        .iter()
        .filter_map(|c| match c {
            Call::Subscribe {
                channel,
                extensions,
                ..
            } if channel.to_string() == "db" => Some(extensions.get::<Rewind>().map(|r| r.0)),
            _ => None,
        })
        .collect();
    assert_eq!(
        rewinds,
        vec![Some(10), Some(10)],
        "subscribe, then the resubscribe"
    );
}
