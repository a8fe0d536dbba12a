//! The delivery fast path: a message a provider hands its sink reaches the subscriber on the
//! provider's own task, with every guarantee of the queued path: duplicates skipped by
//! position, live messages held back while their channel recovers, never overtaking an event
//! queued before them.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::FutureExt;
use relayport_core::testing::{Call, RecoveryMode, Script, ScriptedProvider};
use relayport_core::{
    Capabilities, Channel, ConnectionState, EventSink, HistoryPage, Message, OutboundMessage,
    Position, ProviderEvent, RealtimeClient, RealtimeError, RealtimeProvider, Result, Session,
    SubscribeOptions, Subscribed, Subscription, async_trait,
};
use serde_json::json;
use tokio::sync::Semaphore;

fn ch(s: &str) -> Channel {
    Channel::parse(s).unwrap()
}

fn seq(m: &Message) -> u64 {
    m.position.as_ref().map_or(0, |p| p.sequence)
}

async fn recv_seqs(sub: &mut Subscription, n: usize) -> Vec<u64> {
    recv_n(sub, n).await.iter().map(seq).collect()
}

/// Nothing more is waiting for the subscriber.
fn drained(sub: &mut Subscription) -> bool {
    sub.recv().now_or_never().is_none()
}

/// The scripted provider, whose `history` answers only once the test opens the gate: the
/// recovery stays in flight as long as the test needs.
struct GatedHistory {
    inner: ScriptedProvider,
    gate: Arc<Semaphore>,
}

#[async_trait]
impl RealtimeProvider for GatedHistory {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn connect(&self, sink: EventSink) -> Result<Session> {
        self.inner.connect(sink).await
    }
    async fn disconnect(&self) -> Result<()> {
        self.inner.disconnect().await
    }
    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        self.inner.subscribe(channel, options).await
    }
    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        self.inner.unsubscribe(channel).await
    }
    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        self.inner.publish(message).await
    }
    async fn ping(&self) -> Result<Duration> {
        self.inner.ping().await
    }
    async fn history(&self, channel: &Channel, since: &Position) -> Result<HistoryPage> {
        // The page is what the log held when asked; it is handed over when the gate opens.
        let page = self.inner.history(channel, since).await;
        let _permit = self.gate.acquire().await;
        page
    }
}

/// Leaves `script`'s log of `news` at 1..=3 with only 1 delivered: 2 and 3 were published
/// while the link was down, and the new connection claimed a resume (so nothing recovers
/// them until the provider reports lost continuity).
async fn miss_two(client: &RealtimeClient, script: &Script, sub: &mut Subscription) {
    let news = ch("news");
    script.server_publish(&news, "post", json!(1));
    assert_eq!(recv_seqs(sub, 1).await, [1]);
    script.drop_link(relayport_core::CloseReason::retry(None, "blip"));
    wait_state(client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    script.server_publish(&news, "post", json!(2));
    script.server_publish(&news, "post", json!(3));
    script.set_session_hints(None, None, true);
    wait_state(client, ConnectionState::is_connected).await;
    second_subscribe(script).await;
    assert!(drained(sub), "nothing recovered on a claimed resume");
}

/// Waits until the provider was asked to subscribe a second time (the resubscribe).
async fn second_subscribe(script: &Script) {
    wait_until("resubscribing", || {
        script
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::Subscribe { .. }))
            .count()
            == 2
    })
    .await;
    settle().await;
}

fn continuity_lost() -> ProviderEvent {
    ProviderEvent::ContinuityLost {
        channel: ch("news"),
        reason: RealtimeError::Protocol("attached without RESUMED".into()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_message_reaches_the_subscriber_before_the_runtime_task_runs() {
    let (client, script) = client(|b| b);
    let mut sub = client.subscribe("news").await.unwrap();
    settle().await;
    // No await between the provider handing the message over and the subscriber looking:
    // the runtime's task had no chance to run, so this was the fast path.
    script.server_publish(&ch("news"), "post", json!(1));
    let m = sub
        .recv()
        .now_or_never()
        .expect("delivered at once")
        .unwrap();
    assert_eq!((seq(&m), m.data), (1, json!(1).into()));
    // A duplicate position on the fast path is skipped; the next one is not.
    let again = Message::new(ch("news"), "post", json!(1)).with_position(Position::new(1));
    assert!(script.emit_message(again));
    assert!(drained(&mut sub), "duplicate skipped");
    script.server_publish(&ch("news"), "post", json!(2));
    assert_eq!(sub.recv().now_or_never().unwrap().map(|m| seq(&m)), Some(2));
}

#[tokio::test(start_paused = true)]
async fn a_live_message_on_the_fast_path_waits_for_its_channels_recovery() {
    let (provider, script) = ScriptedProvider::new();
    script.set_recovery(RecoveryMode::History);
    let gate = Arc::new(Semaphore::new(0));
    let client = RealtimeClient::new(GatedHistory {
        inner: provider,
        gate: gate.clone(),
    });
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    miss_two(&client, &script, &mut sub).await;

    script.emit(continuity_lost());
    wait_until("history asked", || {
        script
            .calls()
            .contains(&Call::History(news.clone(), Position::new(1)))
    })
    .await;
    settle().await;
    // The recovery is in flight and nothing is queued: 4 takes the fast path, and waits.
    script.server_publish(&news, "post", json!(4));
    assert!(drained(&mut sub), "4 must wait for 2 and 3");
    gate.add_permits(1);
    assert_eq!(recv_seqs(&mut sub, 3).await, [2, 3, 4]);
    settle().await;
    assert!(drained(&mut sub), "each exactly once");
    // Recovered: the fast path delivers at once again.
    script.server_publish(&news, "post", json!(5));
    assert_eq!(sub.recv().now_or_never().unwrap().map(|m| seq(&m)), Some(5));
}

#[tokio::test(start_paused = true)]
async fn a_message_never_overtakes_an_event_queued_before_it() {
    let (provider, script) = ScriptedProvider::new();
    script.set_recovery(RecoveryMode::History);
    let client = RealtimeClient::new(provider);
    let mut sub = client.subscribe("news").await.unwrap();
    miss_two(&client, &script, &mut sub).await;
    // Back to back, before the runtime's task runs: had 4 been delivered at once, 2 and 3
    // would have been skipped as older than it.
    script.emit(continuity_lost());
    script.server_publish(&ch("news"), "post", json!(4));
    assert_eq!(recv_seqs(&mut sub, 3).await, [2, 3, 4]);
    settle().await;
    assert!(drained(&mut sub));
}

#[tokio::test(start_paused = true)]
async fn streams_end_when_the_client_closes_though_the_provider_keeps_its_sink() {
    let (client, script) = client(|b| b);
    let mut sub = client.subscribe("news").await.unwrap();
    client.close().await;
    let end = tokio::time::timeout(BOUND, sub.recv()).await.unwrap();
    assert!(end.is_none(), "the stream ended");
    // A late frame on the old sink goes nowhere (and reports that nobody listens).
    let late = Message::new(ch("news"), "post", json!(9)).with_position(Position::new(9));
    assert!(!script.emit_message(late));
}

/// A provider that cannot resume a channel itself (Ably's `NotAttempted`): a live message that
/// arrives while the resubscribe is still in flight, before the history fetch even starts,
/// waits for the missed messages; had it been delivered first, they would have been skipped
/// as older than it, and lost.
#[tokio::test(start_paused = true)]
async fn a_live_message_during_a_resubscribe_waits_for_the_history_it_needs() {
    let (provider, script) = ScriptedProvider::new();
    script.set_recovery(RecoveryMode::History);
    let client = RealtimeClient::new(provider);
    let news = ch("news");
    let mut sub = client.subscribe("news").await.unwrap();
    script.server_publish(&news, "post", json!(1));
    assert_eq!(recv_seqs(&mut sub, 1).await, [1]);
    script.drop_link(relayport_core::CloseReason::retry(None, "blip"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { .. })
    })
    .await;
    script.server_publish(&news, "post", json!(2));
    script.server_publish(&news, "post", json!(3));
    script.delay_subscribe(&news, Duration::from_secs(10));
    second_subscribe(&script).await;
    // The subscribe is still in flight: 4 arrives live.
    script.server_publish(&news, "post", json!(4));
    let live = Message::new(news.clone(), "post", json!(4)).with_position(Position::new(4));
    script.emit_message(live);
    settle().await;
    assert!(drained(&mut sub), "4 waits for the resubscribe's outcome");
    assert_eq!(recv_seqs(&mut sub, 3).await, [2, 3, 4]);
    settle().await;
    assert!(drained(&mut sub), "each exactly once");
}
