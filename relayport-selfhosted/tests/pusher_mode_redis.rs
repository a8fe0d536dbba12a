//! The Pusher mode over the Redis engine: Pusher-protocol clients on two nodes share channels,
//! presence and client events, and a trigger on one node reaches subscribers on the other.
//!
//! Needs `redis-server` (`.ci/setup.d/redis.sh`); without it the test fails when `CI=true`
//! and otherwise says why and passes.
#![cfg(all(feature = "server", feature = "client"))]

mod pusher_mode_common;
mod redis_support;

use pusher_mode_common::{PusherWs, builder, credentials, data_of, start_with};
use redis_support::redis_server;
use relayport_pusher::{PusherRest, TriggerOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_mode_works_across_redis_nodes() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let a = start_with(builder().redis_url(redis.url.clone())).await;
    let b = start_with(builder().redis_url(redis.url.clone())).await;
    let mut on_a = PusherWs::connect(a.local_addr()).await;
    let mut on_b = PusherWs::connect(b.local_addr()).await;
    let cd = |u: &str| json!({"user_id": u, "user_info": {"node": u}}).to_string();
    on_a.subscribe("presence-lobby", Some(&cd("on-a"))).await;
    let ok = on_b.subscribe("presence-lobby", Some(&cd("on-b"))).await;
    // B sees A's member (from Redis), and A sees B join.
    assert_eq!(data_of(&ok)["presence"]["count"], 2, "{ok}");
    let joined = on_a.expect("pusher_internal:member_added").await;
    assert_eq!(data_of(&joined)["user_id"], "on-b");
    // A trigger on node B reaches the subscriber on node A.
    let rest_b = PusherRest::host(credentials(), "127.0.0.1", b.local_addr().port(), false);
    rest_b
        .trigger(
            &["presence-lobby"],
            "across",
            &json!({"n": 1}),
            &TriggerOptions::default(),
        )
        .await
        .unwrap();
    let f = on_a.expect("across").await;
    assert_eq!(data_of(&f), json!({"n": 1}));
    assert_eq!(on_b.expect("across").await["channel"], "presence-lobby");
    // A client event from node B reaches node A, and not its sender.
    on_b.send(json!({"event": "client-wave", "channel": "presence-lobby", "data": {"w": 1}}))
        .await;
    let f = on_a.expect("client-wave").await;
    assert_eq!(
        (f["data"].clone(), f["user_id"].clone()),
        (json!({"w": 1}), json!("on-b"))
    );
    assert!(on_b.sync().await.is_empty());
    // B leaves: A sees it.
    drop(on_b);
    let left = on_a.expect("pusher_internal:member_removed").await;
    assert_eq!(data_of(&left)["user_id"], "on-b");
    a.shutdown().await;
    b.shutdown().await;
}
