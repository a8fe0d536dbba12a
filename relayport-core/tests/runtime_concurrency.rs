//! The runtime never stalls on one slow call: authorizations and provider calls run off the
//! actor's loop, in flight together where the protocol allows, with ordering kept (FIFO per
//! channel, resubscribe order, presence after subscribe). All on tokio's paused clock.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use relayport_core::testing::{Call, ScriptedProvider};
use relayport_core::{
    AuthRequest, Channel, ChannelAuth, ChannelAuthorizer, ClientEvent, CloseReason,
    ConnectionState, RateLimit, RealtimeClient, RealtimeError, async_trait,
};
use serde_json::json;
use tokio::time::Instant;

fn ch(s: &str) -> Channel {
    Channel::parse(s).unwrap()
}

/// An authorizer that takes its time (an auth endpoint on a slow network).
struct SlowAuthorizer(Duration);

#[async_trait]
impl ChannelAuthorizer for SlowAuthorizer {
    async fn authorize(&self, _request: &AuthRequest) -> Result<ChannelAuth, RealtimeError> {
        tokio::time::sleep(self.0).await;
        Ok(ChannelAuth(json!({"auth": "signed"})))
    }
}

fn subscribes_of(calls: &[Call], channel: &Channel) -> usize {
    calls
        .iter()
        .filter(|c| matches!(c, Call::Subscribe { channel: c, .. } if c == channel))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_slow_authorizer_does_not_delay_an_unrelated_public_publish() {
    let (provider, script) = ScriptedProvider::new();
    let client = RealtimeClient::builder(provider)
        .client_id("alice")
        .authorizer(Arc::new(SlowAuthorizer(Duration::from_secs(3))))
        .build();
    client.connect().await.unwrap();

    let other = client.clone();
    let private = tokio::spawn(async move {
        let start = Instant::now();
        let sub = other.subscribe("private:inbox").await?;
        Ok::<_, RealtimeError>((sub, start.elapsed()))
    });
    settle().await;

    let start = Instant::now();
    client
        .publish("news", "headline", json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "the publish waited for the authorizer"
    );
    assert_eq!(script.published().len(), 1);
    assert!(
        !private.is_finished(),
        "the authorizer has not answered yet"
    );

    let (_sub, took) = private.await.unwrap().unwrap();
    assert_eq!(took, Duration::from_secs(3));
}

#[tokio::test(start_paused = true)]
async fn a_slow_subscribe_delays_no_publish_ping_or_other_channel() {
    let (client, script) = client(|b| b.heartbeat(Duration::from_secs(1), Duration::from_secs(10)));
    client.connect().await.unwrap();
    script.delay_subscribe(&ch("slow"), Duration::from_secs(5));

    let other = client.clone();
    let slow = tokio::spawn(async move {
        let start = Instant::now();
        let sub = other.subscribe("slow").await?;
        Ok::<_, RealtimeError>((sub, start.elapsed()))
    });
    settle().await;

    let start = Instant::now();
    let _fast = client.subscribe("fast").await.unwrap();
    client.publish("news", "e", json!({})).await.unwrap();
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "waited behind the slow subscribe"
    );

    // A heartbeat falls due during the slow subscribe and is answered on time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        script.calls().contains(&Call::Ping),
        "no heartbeat was sent"
    );
    assert_eq!(client.latency(), Some(Duration::from_millis(10)));
    assert!(client.state().is_connected());
    assert!(
        !slow.is_finished(),
        "the slow subscribe has not answered yet"
    );

    let (_sub, took) = slow.await.unwrap().unwrap();
    assert_eq!(took, Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn fifty_channels_resubscribe_together_in_about_one_round_trip_and_in_order() {
    let (client, script) = client(|b| b);
    let names: Vec<String> = (0..50).map(|i| format!("room:{i}")).collect();
    let mut subs = Vec::new();
    for name in &names {
        subs.push(client.subscribe(name.as_str()).await.unwrap());
    }
    let rtt = Duration::from_millis(200);
    script.delay_subscribes(rtt);
    let mut events = client.events();

    script.drop_link(CloseReason::retry_now(None, "server restart"));
    wait_until("reconnected", || script.connections() == 2).await;
    wait_state(&client, ConnectionState::is_connected).await;
    // Observed up to a millisecond late (polling).
    let connected = Instant::now();
    let mut order = Vec::new();
    while order.len() < names.len() {
        if let ClientEvent::Resubscribed { channel, .. } = wait_event(&mut events, |e| {
            matches!(e, ClientEvent::Resubscribed { .. })
        })
        .await
        {
            order.push(channel.to_string());
        }
    }
    let took = connected.elapsed();

    assert_eq!(
        script.peak_calls_in_flight(),
        50,
        "every subscribe started before the first answered"
    );
    assert!(
        took >= rtt - Duration::from_millis(2) && took < rtt * 2,
        "50 resubscribes took {took:?}, not about one round trip ({rtt:?})"
    );
    assert_eq!(order, names, "resubscribe confirmations out of order");
}

#[tokio::test(start_paused = true)]
async fn publishes_stay_fifo_per_channel_while_channels_publish_together() {
    let (client, script) = client(|b| b.publish_rate(RateLimit::per_second(1000)));
    client.connect().await.unwrap();
    let rtt = Duration::from_millis(100);
    script.delay_publishes(rtt);

    let start = Instant::now();
    for n in 0..5 {
        for channel in ["a", "b"] {
            client
                .publish_nowait(channel, "e", json!({"n": n}))
                .unwrap();
        }
    }
    wait_until("all ten answered", || {
        script.published().len() == 10 && script.calls_in_flight() == 0
    })
    .await;
    let took = start.elapsed();

    for channel in ["a", "b"] {
        let order: Vec<i64> = script
            .published()
            .into_iter()
            .filter(|m| m.channel == ch(channel))
            .filter_map(|m| m.data["n"].as_i64())
            .collect();
        assert_eq!(order, [0, 1, 2, 3, 4], "channel {channel} out of order");
    }
    assert_eq!(
        script.peak_calls_in_flight(),
        2,
        "one publish in flight per channel, both channels at once"
    );
    assert!(
        took >= rtt * 5 && took < rtt * 6,
        "ten publishes on two channels took {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn presence_is_entered_only_after_its_subscribe_answered() {
    let (client, script) = client(|b| b);
    client.connect().await.unwrap();
    let room = ch("presence:room");
    script.delay_subscribe(&room, Duration::from_secs(2));

    let start = Instant::now();
    client
        .presence_enter("presence:room", json!({"mood": "ok"}))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));

    let calls = script.calls();
    let subscribed = calls
        .iter()
        .position(|c| matches!(c, Call::Subscribe { channel, .. } if *channel == room))
        .expect("subscribed");
    let entered = calls
        .iter()
        .position(|c| matches!(c, Call::PresenceEnter(c, _) if *c == room))
        .expect("entered");
    assert!(
        subscribed < entered,
        "entered before subscribing: {calls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_call_in_flight_on_a_dead_link_is_cancelled_and_redone_on_the_new_one() {
    let (client, script) = client(|b| b);
    client.connect().await.unwrap();
    let slow = ch("slow");
    script.delay_subscribe(&slow, Duration::from_secs(5));

    let other = client.clone();
    let pending =
        tokio::spawn(async move { other.subscribe("slow").await.map(|_sub| Instant::now()) });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(script.calls_in_flight(), 1);

    script.drop_link(CloseReason::retry_now(None, "gone"));
    wait_until("reconnected", || script.connections() == 2).await;
    wait_state(&client, ConnectionState::is_connected).await;
    assert_eq!(
        subscribes_of(&script.calls(), &slow),
        2,
        "not subscribed again on the new link"
    );
    assert_eq!(
        script.calls_in_flight(),
        1,
        "only the new link's subscribe runs: the dead link's was cancelled"
    );
    let reconnected = Instant::now();

    let answered = pending.await.unwrap().unwrap();
    // `reconnected` is observed up to a millisecond late (polling). The dead link's call would
    // have answered 4 s after the reconnect.
    let after = answered - reconnected;
    assert!(
        after > Duration::from_millis(4990) && after <= Duration::from_secs(5),
        "answered {after:?} after the reconnect: by the dead link's call, not the new link's"
    );
    assert_eq!(subscribes_of(&script.calls(), &slow), 2);
}

#[tokio::test(start_paused = true)]
async fn a_queued_publish_waits_for_its_channel_to_be_resubscribed_and_no_longer() {
    let (client, script) = client(|b| b);
    let _room = client.subscribe("room").await.unwrap();
    let rtt = Duration::from_secs(1);
    script.delay_subscribes(rtt);
    script.drop_link(CloseReason::retry(None, "wifi lost"));
    wait_state(&client, |s| !s.is_connected()).await;
    client.publish_nowait("room", "e", json!({"n": 1})).unwrap();
    client
        .publish_nowait("elsewhere", "e", json!({"n": 2}))
        .unwrap();

    wait_until("reconnected", || script.connections() == 2).await;
    settle().await;
    let channels = |script: &relayport_core::testing::Script| -> Vec<String> {
        script
            .published()
            .iter()
            .map(|m| m.channel.to_string())
            .collect()
    };
    assert_eq!(
        channels(&script),
        ["elsewhere"],
        "`room` must wait for its resubscribe, `elsewhere` must not"
    );
    tokio::time::sleep(rtt).await;
    settle().await;
    assert_eq!(channels(&script), ["elsewhere", "room"]);
}

#[tokio::test(start_paused = true)]
async fn the_request_timeout_still_applies_to_each_call() {
    let (client, script) = client(|b| b);
    client.connect().await.unwrap();
    script.delay_subscribe(&ch("stuck"), Duration::from_secs(3600));
    let other = client.clone();
    let _stuck = tokio::spawn(async move { other.subscribe("stuck").await.map(|_sub| ()) });
    settle().await;

    let start = Instant::now();
    wait_until("link reconnected", || script.connections() == 2).await;
    let took = start.elapsed();
    // The default 15 s request timeout, then the first backoff step (at most a few seconds).
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(20),
        "reconnected after {took:?}"
    );
    let _fine = client.subscribe("fine").await.unwrap();
}
