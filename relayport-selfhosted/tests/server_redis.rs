//! The Redis engine: two in-process nodes on one throwaway local redis-server (started here on
//! a free loopback port, without persistence). Publishes fan out between nodes with one
//! sequence per channel, and a client can recover on the other node.
//!
//! Needs `redis-server` (installed by `.ci/setup.d/redis.sh`). Without it the test fails when
//! `CI=true` and otherwise says why and passes.
#![cfg(all(feature = "server", feature = "client"))]

mod redis_support;
mod server_common;

use redis_support::{free_port, redis_server, redis_server_on};
use relayport_selfhosted::server::ServerHandle;
use serde_json::json;
use server_common::*;

async fn node(url: &str) -> ServerHandle {
    start_with(builder().redis_url(url)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_fan_out_between_two_nodes_with_one_sequence() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let a = node(&redis.url).await;
    let b = node(&redis.url).await;
    let mut on_a = WsClient::connect(a.local_addr()).await;
    let mut on_b = WsClient::connect(b.local_addr()).await;
    on_a.subscribe("room").await;
    on_b.subscribe("room").await;

    // HTTP publish on node A reaches the client on node B, and A's own client.
    let (s, body) = publish(
        a.local_addr(),
        json!({"channel": "room", "event": "e", "data": 1}),
    )
    .await;
    assert_eq!(s, 200, "{body}");
    let ma = on_a.expect("message").await;
    let mb = on_b.expect("message").await;
    assert_eq!((ma["seq"].as_u64(), mb["seq"].as_u64()), (Some(1), Some(1)));
    assert_eq!(ma["epoch"], mb["epoch"]);
    assert_eq!(ma["id"], body["published"][0]["id"]);

    // Publishing on node B continues the same sequence.
    publish(
        b.local_addr(),
        json!({"channel": "room", "event": "e", "data": 2}),
    )
    .await;
    assert_eq!(on_a.expect("message").await["seq"], 2);
    assert_eq!(on_b.expect("message").await["seq"], 2);

    // A client publish on a private channel crosses nodes too, with its sender.
    on_a.subscribe_private("private:team").await;
    on_b.subscribe_private("private:team").await;
    on_b.send(json!({"type": "publish", "ref": "p", "channel": "private:team", "event": "say", "data": "hi"}))
        .await;
    let m = on_a.expect("message").await;
    assert_eq!(
        (m["data"].as_str(), m["sender"].as_str()),
        (Some("hi"), Some(on_b.socket_id.as_str()))
    );

    // socket_id exclusion works across nodes.
    publish(
        a.local_addr(),
        json!({"channel": "room", "event": "e", "data": 3, "socket_id": on_b.socket_id}),
    )
    .await;
    assert_eq!(on_a.expect("message").await["data"], 3);
    b.metrics()
        .wait_for(WAIT, |m| m.messages_in >= 4)
        .await
        .expect("node B applied message 3");
    let rest = on_b.sync().await;
    assert!(
        rest.iter().all(|f| f["data"] != 3),
        "the excluded socket on the other node gets nothing: {rest:?}"
    );

    // A client that saw seq 1..3 on node A recovers the rest on node B.
    let epoch = ma["epoch"].as_str().unwrap().to_owned();
    drop(on_a);
    publish(
        a.local_addr(),
        json!({"channel": "room", "event": "e", "data": 4}),
    )
    .await;
    publish(
        b.local_addr(),
        json!({"channel": "room", "event": "e", "data": 5}),
    )
    .await;
    b.metrics()
        .wait_for(WAIT, |m| m.messages_in >= 6)
        .await
        .expect("node B applied every message");
    let mut moved = WsClient::connect(b.local_addr()).await;
    moved
        .send(json!({"type": "subscribe", "channel": "room", "since": {"epoch": epoch, "sequence": 3}}))
        .await;
    let sub = moved.expect("subscribed").await;
    assert_eq!(sub["recovered"], true, "{sub}");
    let data: Vec<i64> = sub["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_i64().unwrap())
        .collect();
    assert_eq!(data, vec![4, 5]);

    // Retained state is applied on every node.
    publish(
        a.local_addr(),
        json!({"channel": "state", "event": "s", "data": {"v": 1}, "retain": true}),
    )
    .await;
    b.metrics()
        .wait_for(WAIT, |m| m.messages_in >= 7)
        .await
        .expect("node B applied the retained message");
    let sub = moved.subscribe("state").await;
    assert_eq!(sub["snapshot"]["data"], json!({"v": 1}));

    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_startup_error() {
    let port = free_port();
    let err = builder()
        .redis_url(format!("redis://127.0.0.1:{port}"))
        .bind("127.0.0.1:0")
        .await
        .expect_err("no redis there");
    assert!(err.to_string().contains("redis"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_resubscribe_when_redis_comes_back() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let port: u16 = redis
        .url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap();
    let a = node(&redis.url).await;
    let b = node(&redis.url).await;
    let mut on_b = WsClient::connect(b.local_addr()).await;
    on_b.subscribe("room").await;
    assert_eq!(b.metrics().snapshot().engine_connects, 1);

    // Redis goes away and comes back (empty) on the same port.
    drop(redis);
    let _redis = redis_server_on(port).await.expect("redis-server again");
    for node in [&a, &b] {
        node.metrics()
            .wait_for(WAIT, |m| m.engine_connects >= 2)
            .await
            .expect("the node re-subscribed");
    }
    // The publishing connection reconnects on its own; its first command may still fail.
    let mut published = false;
    for _ in 0..20 {
        let (s, _) = publish(
            a.local_addr(),
            json!({"channel": "room", "event": "e", "data": "back"}),
        )
        .await;
        if s == 200 {
            published = true;
            break;
        }
        assert_eq!(s, 503, "a failed engine publish is 503 unavailable");
    }
    assert!(published, "publishing works again");
    let m = on_b.expect("message").await;
    assert_eq!(m["data"], "back");
    let text = http()
        .get(format!("http://{}/metrics", b.local_addr()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("realtime_engine_connects_total 2"), "{text}");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_recovers_from_the_history_in_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let a = node(&redis.url).await;
    let mut on_a = WsClient::connect(a.local_addr()).await;
    let sub = on_a.subscribe("feed").await;
    let epoch = sub["position"]["epoch"].as_str().unwrap().to_owned();
    assert_eq!(sub["position"]["sequence"], 0);
    for n in 1..=5 {
        publish(
            a.local_addr(),
            json!({"channel": "feed", "event": "e", "data": n}),
        )
        .await;
    }
    for n in 1..=5 {
        let m = on_a.expect("message").await;
        assert_eq!(
            (m["seq"].as_u64(), m["epoch"].as_str()),
            (Some(n), Some(epoch.as_str()))
        );
    }

    // Node B starts after all that: its history comes from Redis.
    let b = node(&redis.url).await;
    let mut on_b = WsClient::connect(b.local_addr()).await;
    on_b.send(
        json!({"type": "subscribe", "channel": "feed", "since": {"epoch": epoch, "sequence": 2}}),
    )
    .await;
    let sub = on_b.expect("subscribed").await;
    assert_eq!(sub["recovered"], true, "{sub}");
    assert_eq!(sub["position"], json!({"epoch": epoch, "sequence": 5}));
    let data: Vec<i64> = sub["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"].as_i64().unwrap())
        .collect();
    assert_eq!(data, vec![3, 4, 5]);
    // Live from there, once.
    publish(
        a.local_addr(),
        json!({"channel": "feed", "event": "e", "data": 6}),
    )
    .await;
    let m = on_b.expect("message").await;
    assert_eq!((m["seq"].as_u64(), m["data"].as_i64()), (Some(6), Some(6)));
    assert!(on_b.sync().await.is_empty(), "no duplicate");
    assert_eq!(on_a.expect("message").await["seq"], 6);
    let (_, h) = get_json(b.local_addr(), "/channels/feed/history").await;
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(6));

    // A channel nobody published on yet: both nodes report the same epoch.
    let ea = on_a.subscribe("quiet").await["position"].clone();
    let eb = on_b.subscribe("quiet").await["position"].clone();
    assert_eq!(ea, eb);
    assert_eq!(ea["sequence"], 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_are_shared_between_nodes() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let a = node(&redis.url).await;
    let (s, _) = publish(
        a.local_addr(),
        json!({"channel": "state", "event": "s", "data": {"v": 1}, "retain": true}),
    )
    .await;
    assert_eq!(s, 200);
    // A node started afterwards has it.
    let b = node(&redis.url).await;
    let mut on_b = WsClient::connect(b.local_addr()).await;
    let sub = on_b.subscribe("state").await;
    assert_eq!(sub["snapshot"]["data"], json!({"v": 1}));
    assert_eq!(sub["snapshot"]["seq"], 1);
    // PUT on node B is seen on node A, and is not delivered as a message.
    let resp = http()
        .put(format!("http://{}/channels/state/snapshot", b.local_addr()))
        .bearer_auth(SECRET)
        .json(&json!({"event": "s", "data": {"v": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut on_a = WsClient::connect(a.local_addr()).await;
    let sub = on_a.subscribe("state").await;
    assert_eq!(sub["snapshot"]["data"], json!({"v": 2}));
    assert!(on_b.sync().await.is_empty(), "a snapshot is not a message");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_and_a_user_on_two_nodes_is_one_member() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let a = node(&redis.url).await;
    let b = node(&redis.url).await;
    let room = "presence:room:x";
    let mut watcher = WsClient::connect(a.local_addr()).await;
    watcher.subscribe_presence(room, "w", json!(null)).await;

    let mut u_on_b = WsClient::connect(b.local_addr()).await;
    let sub = u_on_b.subscribe_presence(room, "u", json!({"n": 1})).await;
    let ids: Vec<&str> = sub["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["u", "w"], "node B sees node A's member");
    let join = watcher.expect("presence").await;
    assert_eq!(
        (join["action"].as_str(), join["member"]["id"].as_str()),
        (Some("join"), Some("u"))
    );

    // The same user on node A as well: still one member, no second join.
    let mut u_on_a = WsClient::connect(a.local_addr()).await;
    let sub = u_on_a.subscribe_presence(room, "u", json!({"n": 1})).await;
    assert_eq!(sub["members"].as_array().map(Vec::len), Some(2));
    // An update on node B reaches node A.
    u_on_b
        .send(json!({"type": "presence_update", "channel": room, "data": {"n": 2}}))
        .await;
    u_on_b.expect("ack").await;
    let up = watcher.expect("presence").await;
    assert_eq!(
        (up["action"].as_str(), up["member"]["data"]["n"].as_i64()),
        (Some("update"), Some(2))
    );
    // Node B's connection goes: u stays (its node A connection remains).
    drop(u_on_b);
    b.metrics()
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("node B saw the disconnect");
    // A later change from node B arrives after that leave (one ordered stream): the watcher's
    // next presence frame is v's join, not a leave of u.
    let mut v_on_b = WsClient::connect(b.local_addr()).await;
    v_on_b.subscribe_presence(room, "v", json!(null)).await;
    let next = watcher.expect("presence").await;
    assert_eq!(
        (next["action"].as_str(), next["member"]["id"].as_str()),
        (Some("join"), Some("v"))
    );
    let members = a.broker().members(&room.parse().unwrap());
    assert_eq!(members.len(), 3, "w, u (on node A) and v: {members:?}");
    // u's last connection goes: now u leaves, on both nodes.
    drop(u_on_a);
    let leave = watcher.expect("presence").await;
    assert_eq!(
        (leave["action"].as_str(), leave["member"]["id"].as_str()),
        (Some("leave"), Some("u"))
    );
    let leave_on_b = v_on_b.expect("presence").await;
    assert_eq!(
        (
            leave_on_b["action"].as_str(),
            leave_on_b["member"]["id"].as_str()
        ),
        (Some("leave"), Some("u"))
    );
    let (_, p) = get_json(b.local_addr(), &format!("/channels/{room}/presence")).await;
    let ids: Vec<&str> = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["v", "w"]);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_nodes_members_leave_when_its_liveness_expires() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let liveness = |b: relayport_selfhosted::server::ServerBuilder| {
        b.redis_url(&redis.url).node_liveness(
            std::time::Duration::from_millis(100),
            std::time::Duration::from_millis(1500),
        )
    };
    let a = start_with(liveness(builder())).await;
    let b = start_with(liveness(builder())).await;
    let room = "presence:room:y";
    let mut watcher = WsClient::connect(a.local_addr()).await;
    watcher.subscribe_presence(room, "w", json!(null)).await;
    let mut on_b = WsClient::connect(b.local_addr()).await;
    on_b.subscribe_presence(room, "ghost", json!(null)).await;
    let join = watcher.expect("presence").await;
    assert_eq!(join["member"]["id"], "ghost");

    // Node B dies without telling anyone: node A removes its member once B's key expires.
    b.abort().await;
    let leave = watcher.expect("presence").await;
    assert_eq!(
        (leave["action"].as_str(), leave["member"]["id"].as_str()),
        (Some("leave"), Some("ghost"))
    );
    let members = a.broker().members(&room.parse().unwrap());
    assert_eq!(members.len(), 1);
    // And a node subscribing now does not see the ghost.
    let c = start_with(liveness(builder())).await;
    let mut on_c = WsClient::connect(c.local_addr()).await;
    let sub = on_c.subscribe_presence(room, "z", json!(null)).await;
    let ids: Vec<&str> = sub["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["w", "z"]);
    a.shutdown().await;
    c.shutdown().await;
}

/// Issue 11, item 6: every subscribe used to leave a permanent `realtime:{ch}:epoch` key.
/// Now an epoch created by a read expires after `idle_channel_ttl`, and becomes permanent
/// only when the channel is published to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_churn_leaves_no_permanent_keys_in_redis() {
    let Some(redis) = redis_server().await else {
        return;
    };
    let ttl = std::time::Duration::from_secs(60);
    let a = start_with(builder().redis_url(&redis.url).idle_channel_ttl(ttl)).await;
    let mut c = WsClient::connect(a.local_addr()).await;
    for i in 0..20 {
        let ch = format!("churn{i}");
        c.subscribe(&ch).await;
        c.send(json!({"type": "unsubscribe", "channel": ch})).await;
        c.expect("unsubscribed").await;
    }
    let client = redis::Client::open(redis.url.as_str()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..20 {
        let pttl: i64 = redis::cmd("PTTL")
            .arg(format!("realtime:{{churn{i}}}:epoch"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            pttl > 0 && pttl <= 60_000,
            "churn{i}: PTTL {pttl} (-1: permanent)"
        );
    }
    // Published to: the epoch is kept like the sequence.
    let (s, _) = publish(
        a.local_addr(),
        json!({"channel": "churn0", "event": "e", "data": 1}),
    )
    .await;
    assert_eq!(s, 200);
    let pttl: i64 = redis::cmd("PTTL")
        .arg("realtime:{churn0}:epoch")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(pttl, -1);
    // The published message reaches this node back through Redis: the channel exists once it
    // has (polled, bounded: there is no event to wait on).
    let mut count = a.broker().channel_count();
    for _ in 0..200 {
        if count == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        count = a.broker().channel_count();
    }
    assert_eq!(count, 1, "only the published channel");
    a.shutdown().await;
}
