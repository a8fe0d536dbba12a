//! End-to-end tests of `/ws` over loopback: every frame type, auth, presence, wildcards,
//! snapshot, malformed input and version negotiation.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use relayport_selfhosted::protocol::{Limits, close, code};
use serde_json::json;
use server_common::*;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn connected_is_first_and_ping_gets_pong() {
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    assert_eq!(c.connected["protocol"], 1);
    assert_eq!(c.connected["heartbeat_ms"], 25_000);
    let limits: Limits = serde_json::from_value(c.connected["limits"].clone()).unwrap();
    assert_eq!(limits, Limits::default());
    assert!(!c.socket_id.is_empty());
    c.send(json!({"type": "ping", "ref": "p1"})).await;
    let pong = c.expect("pong").await;
    assert_eq!(pong["ref"], "p1");
    // An explicit v=1 is the same protocol.
    let c2 = WsClient::connect_query(server.local_addr(), "?v=1").await;
    assert_ne!(c2.socket_id, c.socket_id);
    server.shutdown().await;
}

#[tokio::test]
async fn unsupported_version_gets_an_error_and_a_close() {
    let server = start().await;
    let mut c = WsClient::connect_raw(server.local_addr(), "?v=2").await;
    let err = c.expect_error(code::UNSUPPORTED_VERSION).await;
    assert!(
        err["message"].as_str().unwrap_or("").contains("v=1"),
        "{err}"
    );
    let (code, _) = c.until_close().await;
    assert_eq!(code, Some(close::UNSUPPORTED_VERSION));
    let mut c = WsClient::connect_raw(server.local_addr(), "?v=abc").await;
    c.expect_error(code::UNSUPPORTED_VERSION).await;
    assert_eq!(c.until_close().await.0, Some(close::UNSUPPORTED_VERSION));
    server.shutdown().await;
}

#[tokio::test]
async fn subscribe_receive_unsubscribe() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    c.send(json!({"type": "subscribe", "ref": "s1", "channel": "room"}))
        .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["ref"], "s1");
    assert_eq!(sub["channel"], "room");
    assert_eq!(sub["position"]["sequence"], 0);
    let epoch = sub["position"]["epoch"].as_str().unwrap().to_owned();
    assert!(sub.get("recovered").is_none());

    let (status, body) = publish(
        addr,
        json!({"channel": "room", "event": "hello", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let m = c.expect("message").await;
    assert_eq!(m["channel"], "room");
    assert_eq!(m["event"], "hello");
    assert_eq!(m["data"], json!({"n": 1}));
    assert_eq!(m["seq"], 1);
    assert_eq!(m["epoch"], epoch.as_str());
    assert_eq!(m["id"], body["published"][0]["id"]);
    assert!(m["ts"].as_u64().unwrap_or(0) > 1_600_000_000_000);
    assert!(m.get("sender").is_none());

    c.send(json!({"type": "unsubscribe", "ref": "u1", "channel": "room"}))
        .await;
    let u = c.expect("unsubscribed").await;
    assert_eq!(
        (u["ref"].as_str(), u["channel"].as_str()),
        (Some("u1"), Some("room"))
    );
    publish(
        addr,
        json!({"channel": "room", "event": "hello", "data": 2}),
    )
    .await;
    assert!(c.sync().await.is_empty(), "nothing after unsubscribe");
    c.send(json!({"type": "unsubscribe", "ref": "u2", "channel": "room"}))
        .await;
    let e = c.expect_error(code::NOT_SUBSCRIBED).await;
    assert_eq!(e["ref"], "u2");
    server.shutdown().await;
}

#[tokio::test]
async fn private_channels_need_a_valid_signature_for_this_socket() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    let ch = "private:room:1";
    // Missing.
    a.send(json!({"type": "subscribe", "ref": "1", "channel": ch}))
        .await;
    let e = a.expect_error(code::UNAUTHORIZED).await;
    assert_eq!(
        (e["ref"].as_str(), e["channel"].as_str()),
        (Some("1"), Some(ch))
    );
    // Wrong.
    a.send(json!({"type": "subscribe", "channel": ch, "auth": "00".repeat(32)}))
        .await;
    a.expect_error(code::UNAUTHORIZED).await;
    a.send(json!({"type": "subscribe", "channel": ch, "auth": "not hex"}))
        .await;
    a.expect_error(code::UNAUTHORIZED).await;
    // Another socket's signature.
    let others = sign_private(&b.socket_id, ch);
    a.send(json!({"type": "subscribe", "channel": ch, "auth": others}))
        .await;
    a.expect_error(code::UNAUTHORIZED).await;
    // Signed for another channel.
    let wrong_channel = sign_private(&a.socket_id, "private:room:2");
    a.send(json!({"type": "subscribe", "channel": ch, "auth": wrong_channel}))
        .await;
    a.expect_error(code::UNAUTHORIZED).await;
    // Never joined: publishing reaches nobody on a.
    publish(addr, json!({"channel": ch, "event": "e", "data": 1})).await;
    assert!(a.sync().await.is_empty());
    let info = get_json(addr, "/channels/private:room:1").await.1;
    assert_eq!(info["occupancy"], 0);
    // The right one.
    b.subscribe_private(ch).await;
    publish(addr, json!({"channel": ch, "event": "e", "data": 2})).await;
    assert_eq!(b.expect("message").await["data"], 2);
    server.shutdown().await;
}

#[tokio::test]
async fn client_publish_on_private_is_acked_and_echoed_with_sender() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    let ch = "private:chat";
    a.subscribe_private(ch).await;
    b.subscribe_private(ch).await;
    a.send(json!({"type": "publish", "ref": "p", "channel": ch, "event": "say", "data": "hi"}))
        .await;
    let frames = a.sync().await;
    assert_eq!(frames.len(), 2, "{frames:?}");
    let ack = frames.iter().find(|f| f["type"] == "ack").expect("ack");
    assert_eq!(ack["ref"], "p");
    let echo = frames
        .iter()
        .find(|f| f["type"] == "message")
        .expect("echo");
    assert_eq!(echo["sender"], a.socket_id.as_str());
    let m = b.expect("message").await;
    assert_eq!(
        (m["data"].as_str(), m["sender"].as_str()),
        (Some("hi"), Some(a.socket_id.as_str()))
    );
    // Not subscribed to another private channel: refused.
    a.send(
        json!({"type": "publish", "ref": "q", "channel": "private:other", "event": "x", "data": 1}),
    )
    .await;
    assert_eq!(a.expect_error(code::NOT_SUBSCRIBED).await["ref"], "q");
    // Public: forbidden by default.
    a.send(json!({"type": "publish", "channel": "room", "event": "x", "data": 1}))
        .await;
    a.expect_error(code::FORBIDDEN).await;
    // Wildcard: never.
    a.send(json!({"type": "publish", "channel": "room.*", "event": "x", "data": 1}))
        .await;
    a.expect_error(code::INVALID_CHANNEL).await;
    server.shutdown().await;
}

#[tokio::test]
async fn public_client_publish_when_allowed() {
    let server = start_with(builder().allow_public_publish(true)).await;
    let mut a = WsClient::connect(server.local_addr()).await;
    let mut b = WsClient::connect(server.local_addr()).await;
    b.subscribe("lobby").await;
    a.send(json!({"type": "publish", "ref": "p", "channel": "lobby", "event": "x", "data": 1}))
        .await;
    assert_eq!(a.expect("ack").await["ref"], "p");
    assert_eq!(b.expect("message").await["sender"], a.socket_id.as_str());
    server.shutdown().await;
}

#[tokio::test]
async fn presence_two_connections_of_one_user_are_one_member() {
    let server = start().await;
    let addr = server.local_addr();
    let ch = "presence:room:1";
    let mut watcher = WsClient::connect(addr).await;
    let sub = watcher
        .subscribe_presence(ch, "w", json!({"name": "Watcher"}))
        .await;
    assert_eq!(
        sub["members"],
        json!([{"id": "w", "data": {"name": "Watcher"}}])
    );

    let mut one = WsClient::connect(addr).await;
    let sub = one
        .subscribe_presence(ch, "ada", json!({"name": "Ada"}))
        .await;
    assert_eq!(sub["members"].as_array().map(Vec::len), Some(2));
    let join = watcher.expect("presence").await;
    assert_eq!(join["action"], "join");
    assert_eq!(
        join["member"],
        json!({"id": "ada", "data": {"name": "Ada"}})
    );

    let mut two = WsClient::connect(addr).await;
    two.subscribe_presence(ch, "ada", json!({"name": "Ada"}))
        .await;
    assert!(
        watcher.sync().await.is_empty(),
        "a second connection is not a second join"
    );
    let members = get_json(addr, "/channels/presence:room:1/presence").await.1;
    assert_eq!(members["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        get_json(addr, "/channels/presence:room:1").await.1["presence_members"],
        2
    );

    // Update.
    one.send(
        json!({"type": "presence_update", "ref": "u", "channel": ch, "data": {"name": "Ada L."}}),
    )
    .await;
    assert_eq!(one.expect("ack").await["ref"], "u");
    let up = watcher.expect("presence").await;
    assert_eq!(
        (up["action"].as_str(), up["member"]["data"]["name"].as_str()),
        (Some("update"), Some("Ada L."))
    );

    // The first connection goes: still a member.
    drop(one);
    two.sync().await;
    let gone = within("the first connection to be removed", async {
        server
            .metrics()
            .wait_for(WAIT, |m| m.connections == 2)
            .await
    })
    .await;
    assert!(gone.is_some());
    assert!(
        watcher.sync().await.is_empty(),
        "no leave while a connection remains"
    );
    // The last one leaves explicitly, then enters again.
    two.send(json!({"type": "presence_leave", "ref": "l", "channel": ch}))
        .await;
    two.expect("ack").await;
    let leave = watcher.expect("presence").await;
    assert_eq!(
        (leave["action"].as_str(), leave["member"]["id"].as_str()),
        (Some("leave"), Some("ada"))
    );
    two.send(json!({"type": "presence_enter", "channel": ch, "data": {"name": "Back"}}))
        .await;
    two.expect("ack").await;
    let back = watcher.expect("presence").await;
    assert_eq!(
        (
            back["action"].as_str(),
            back["member"]["data"]["name"].as_str()
        ),
        (Some("join"), Some("Back"))
    );
    drop(two);
    let leave = watcher.expect("presence").await;
    assert_eq!(leave["action"], "leave");
    server.shutdown().await;
}

#[tokio::test]
async fn presence_signature_covers_the_user() {
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let ch = "presence:room";
    let data = channel_data("alice", json!(null));
    let auth = sign_presence(&c.socket_id, ch, &data);
    let forged = channel_data("admin", json!(null));
    c.send(json!({"type": "subscribe", "channel": ch, "auth": auth, "channel_data": forged}))
        .await;
    c.expect_error(code::UNAUTHORIZED).await;
    c.send(json!({"type": "subscribe", "channel": ch, "auth": auth}))
        .await;
    c.expect_error(code::UNAUTHORIZED).await;
    // A private signature is not a presence signature.
    let private_sig = sign_private(&c.socket_id, ch);
    c.send(json!({"type": "subscribe", "channel": ch, "auth": private_sig, "channel_data": data}))
        .await;
    c.expect_error(code::UNAUTHORIZED).await;
    // Presence frames on a non-member connection.
    c.send(json!({"type": "presence_enter", "channel": ch, "data": 1}))
        .await;
    c.expect_error(code::NOT_SUBSCRIBED).await;
    assert_eq!(
        server
            .broker()
            .members(&"presence:room".parse().unwrap())
            .len(),
        0
    );
    server.shutdown().await;
}

#[tokio::test]
async fn wildcards_match_public_channels_and_never_private_ones() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    let s = c.subscribe("agent.*.status").await;
    assert!(s.get("position").is_none());
    c.subscribe("agent.#").await;
    for (ch, n) in [
        ("agent.7.status", 1),
        ("agent.7.x.status", 2),
        ("private:agent.7.status", 3),
        ("presence:agent.7.status", 4),
        ("other.7.status", 5),
        ("agent", 6),
    ] {
        let (status, _) = publish(addr, json!({"channel": ch, "event": "e", "data": n})).await;
        assert_eq!(status, 200);
    }
    let got: Vec<(String, i64)> = c
        .sync()
        .await
        .iter()
        .map(|m| {
            (
                m["channel"].as_str().unwrap_or("").to_owned(),
                m["data"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("agent.7.status".into(), 1),
            ("agent.7.x.status".into(), 2),
            ("agent".into(), 6)
        ],
        "delivered once per message, never private/presence"
    );
    // Wildcards on private channels are invalid names.
    c.send(json!({"type": "subscribe", "channel": "private:agent.*"}))
        .await;
    c.expect_error(code::INVALID_CHANNEL).await;
    server.shutdown().await;
}

#[tokio::test]
async fn snapshot_is_delivered_first_on_subscribe() {
    let server = start().await;
    let addr = server.local_addr();
    let (s, _) = publish(
        addr,
        json!({"channel": "scores", "event": "state", "data": {"home": 1}, "retain": true}),
    )
    .await;
    assert_eq!(s, 200);
    publish(
        addr,
        json!({"channel": "scores", "event": "goal", "data": 2}),
    )
    .await;
    let mut c = WsClient::connect(addr).await;
    let sub = c.subscribe("scores").await;
    assert_eq!(sub["snapshot"]["data"], json!({"home": 1}));
    assert_eq!(sub["snapshot"]["seq"], 1);
    assert_eq!(sub["position"]["sequence"], 2);
    publish(
        addr,
        json!({"channel": "scores", "event": "goal", "data": 3}),
    )
    .await;
    assert_eq!(c.expect("message").await["seq"], 3);
    // PUT replaces it without publishing.
    let resp = http()
        .put(format!("http://{addr}/channels/scores/snapshot"))
        .bearer_auth(SECRET)
        .json(&json!({"event": "state", "data": {"home": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(c.sync().await.is_empty(), "a PUT snapshot is not broadcast");
    let mut d = WsClient::connect(addr).await;
    let sub = d.subscribe("scores").await;
    assert_eq!(sub["snapshot"]["data"], json!({"home": 2}));
    assert_eq!(sub["snapshot"]["seq"], 3);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_input_of_each_kind_gets_an_error_frame() {
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    c.send_raw(Message::text("{not json")).await;
    c.expect_error(code::MALFORMED).await;
    c.send_raw(Message::text("[1,2]")).await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"channel": "x"})).await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": 7})).await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": "teleport", "ref": "t"})).await;
    let e = c.expect_error(code::UNKNOWN_TYPE).await;
    assert_eq!(e["ref"], "t");
    c.send(json!({"type": "subscribe", "ref": "w", "channel": 5}))
        .await;
    assert_eq!(c.expect_error(code::MALFORMED).await["ref"], "w");
    c.send(json!({"type": "subscribe"})).await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": "subscribe", "channel": "a", "since": "yesterday"}))
        .await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": "publish", "channel": "private:a", "event": 1, "data": 1}))
        .await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": "ping", "surprise": true})).await;
    c.expect_error(code::MALFORMED).await;
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    c.expect_error(code::MALFORMED).await;
    c.send(json!({"type": "subscribe", "channel": "bad name!"}))
        .await;
    c.expect_error(code::INVALID_CHANNEL).await;
    // Still alive and well.
    c.subscribe("fine").await;
    let m = server.metrics().snapshot();
    assert_eq!(m.errors_sent, 12);
    server.shutdown().await;
}

#[tokio::test]
async fn frames_over_the_frame_limit_are_refused() {
    let server = start_with(builder().max_frame_size(1024)).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let big = json!({"type": "ping", "ref": "x".repeat(2000)});
    c.send(big).await;
    c.expect_error(code::FRAME_TOO_LARGE).await;
    c.send(json!({"type": "ping", "ref": "ok"})).await;
    assert_eq!(c.expect("pong").await["ref"], "ok");
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_with_idle_timeout() {
    let server = start_with(builder().idle_timeout(std::time::Duration::from_millis(200))).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let (code, _) = c.until_close().await;
    assert_eq!(code, Some(close::IDLE_TIMEOUT));
    let m = server.metrics().snapshot();
    assert_eq!(m.disconnects.get(&close::IDLE_TIMEOUT), Some(&1));
    server.shutdown().await;
}

#[tokio::test]
async fn self_hosted_authorizer_signatures_are_accepted() {
    use relayport_core::{AuthRequest, ChannelAuthorizer, PresenceUser};
    use relayport_selfhosted::server::SelfHostedAuthorizer;
    let server = start().await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let authorizer = SelfHostedAuthorizer::new(SECRET);
    let private = authorizer
        .authorize(&AuthRequest {
            socket_id: c.socket_id.clone(),
            channel: "private:room:1".parse().unwrap(),
            user: None,
        })
        .await
        .unwrap();
    c.send(json!({"type": "subscribe", "channel": "private:room:1", "auth": private.str_field("auth")}))
        .await;
    c.expect("subscribed").await;
    let presence = authorizer
        .authorize(&AuthRequest {
            socket_id: c.socket_id.clone(),
            channel: "presence:room:1".parse().unwrap(),
            user: Some(PresenceUser {
                id: "u1".into(),
                info: json!({"name": "Ada"}),
            }),
        })
        .await
        .unwrap();
    c.send(json!({
        "type": "subscribe",
        "channel": "presence:room:1",
        "auth": presence.str_field("auth"),
        "channel_data": presence.str_field("channel_data"),
    }))
    .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(
        sub["members"],
        json!([{"id": "u1", "data": {"name": "Ada"}}])
    );
    // A signature for this socket does not work on another one.
    let mut other = WsClient::connect(server.local_addr()).await;
    other
        .send(json!({"type": "subscribe", "channel": "private:room:1", "auth": private.str_field("auth")}))
        .await;
    other.expect_error(code::UNAUTHORIZED).await;
    server.shutdown().await;
}
