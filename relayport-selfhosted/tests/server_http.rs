//! The HTTP API: publish (single, batch, auth, errors, exclusion), channel info, presence,
//! history, snapshot, health, metrics and CORS.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use relayport_selfhosted::protocol::code;
use serde_json::{Value, json};
use server_common::*;

async fn post_raw(
    addr: std::net::SocketAddr,
    auth: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, Value) {
    let mut req = http()
        .post(format!("http://{addr}/publish"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = within("POST /publish", req.send()).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn publish_needs_the_bearer_secret() {
    let server = start().await;
    let addr = server.local_addr();
    let body = json!({"channel": "a", "event": "e", "data": 1}).to_string();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some(SECRET),
        Some("Basic x"),
        Some("Bearer "),
    ] {
        let (s, b) = post_raw(addr, auth, body.clone()).await;
        assert_eq!(s, 401, "{auth:?}");
        assert_eq!(b["error"]["code"], code::UNAUTHORIZED);
        assert!(
            !b.to_string().contains(SECRET),
            "the secret is never echoed"
        );
    }
    let (s, b) = post_raw(addr, Some(&format!("Bearer {SECRET}")), body).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(server.metrics().snapshot().messages_in, 1);
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_publishes_get_400_with_a_json_error() {
    let server = start().await;
    let addr = server.local_addr();
    let auth = format!("Bearer {SECRET}");
    let cases: Vec<(&str, String, &str)> = vec![
        ("not json", "{oops".into(), code::MALFORMED),
        ("array", "[1]".into(), code::MALFORMED),
        (
            "missing data",
            json!({"channel": "a", "event": "e"}).to_string(),
            code::MALFORMED,
        ),
        (
            "wrong type",
            json!({"channel": 1, "event": "e", "data": 1}).to_string(),
            code::MALFORMED,
        ),
        (
            "unknown field",
            json!({"channel": "a", "event": "e", "data": 1, "x": 1}).to_string(),
            code::MALFORMED,
        ),
        (
            "empty event",
            json!({"channel": "a", "event": "", "data": 1}).to_string(),
            code::MALFORMED,
        ),
        (
            "bad channel",
            json!({"channel": "a b", "event": "e", "data": 1}).to_string(),
            code::INVALID_CHANNEL,
        ),
        (
            "wildcard",
            json!({"channel": "a.*", "event": "e", "data": 1}).to_string(),
            code::INVALID_CHANNEL,
        ),
        (
            "batch not array",
            json!({"batch": 1}).to_string(),
            code::MALFORMED,
        ),
        (
            "empty batch",
            json!({"batch": []}).to_string(),
            code::BATCH_TOO_LARGE,
        ),
        (
            "bad item in batch",
            json!({"batch": [{"channel": "a", "event": "e", "data": 1}, {"channel": "a"}]})
                .to_string(),
            code::MALFORMED,
        ),
    ];
    for (what, body, expected) in cases {
        let (s, b) = post_raw(addr, Some(&auth), body).await;
        assert_eq!(s, 400, "{what}: {b}");
        assert_eq!(b["error"]["code"], expected, "{what}: {b}");
        assert!(b["error"]["message"].is_string(), "{what}");
    }
    assert_eq!(
        server.metrics().snapshot().messages_in,
        0,
        "nothing published"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn socket_id_excludes_the_sender() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    a.subscribe("room").await;
    b.subscribe("room").await;
    let (s, _) = publish(
        addr,
        json!({"channel": "room", "event": "e", "data": 1, "socket_id": a.socket_id}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        a.sync().await.is_empty(),
        "the excluded socket gets nothing"
    );
    assert_eq!(b.expect("message").await["data"], 1);
    server.shutdown().await;
}

#[tokio::test]
async fn channel_info_presence_and_history_endpoints() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    a.subscribe("news").await;
    b.subscribe("news").await;
    b.subscribe("news.#").await;
    let (s, info) = get_json(addr, "/channels/news").await;
    assert_eq!(s, 200);
    assert_eq!(info["occupancy"], 2);
    assert_eq!(info["subscription_count"], 3);
    assert_eq!(info["presence_members"], 0);

    a.subscribe_presence("presence:lobby", "u1", json!({"n": 1}))
        .await;
    let (s, p) = get_json(addr, "/channels/presence:lobby/presence").await;
    assert_eq!(s, 200);
    assert_eq!(p["members"], json!([{"id": "u1", "data": {"n": 1}}]));

    for n in 1..=5 {
        publish(addr, json!({"channel": "news", "event": "e", "data": n})).await;
    }
    let (s, h) = get_json(addr, "/channels/news/history").await;
    assert_eq!(s, 200);
    assert_eq!(h["messages"].as_array().map(Vec::len), Some(5));
    assert_eq!(h["position"]["sequence"], 5);
    let (_, h) = get_json(addr, "/channels/news/history?since=2&limit=2").await;
    let seqs: Vec<u64> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    let (s, e) = get_json(addr, "/channels/news/history?since=minus").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some(code::MALFORMED))
    );
    let (s, e) = get_json(addr, "/channels/bad%20name").await;
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (400, Some(code::INVALID_CHANNEL))
    );

    // Every /channels endpoint needs the secret.
    for path in [
        "/channels/news",
        "/channels/news/history",
        "/channels/presence:lobby/presence",
    ] {
        let resp = http()
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{path}");
    }
    let resp = http()
        .put(format!("http://{addr}/channels/news/snapshot"))
        .json(&json!({"data": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    server.shutdown().await;
}

#[tokio::test]
async fn health_and_metrics() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    c.subscribe("m").await;
    publish(addr, json!({"channel": "m", "event": "e", "data": 1})).await;
    c.expect("message").await;
    let health: Value = http()
        .get(format!("http://{addr}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["connections"], 1);
    let resp = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for line in [
        "realtime_connections 1",
        "realtime_subscriptions 1",
        "realtime_messages_in_total 1",
        "# TYPE realtime_messages_out_total counter",
        "realtime_drops_total 0",
        "realtime_slow_consumer_disconnects_total 0",
        "# TYPE realtime_disconnects_total counter",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn cors_origin_is_announced_when_configured() {
    let server = start_with(builder().cors_origin("https://app.example")).await;
    let addr = server.local_addr();
    let resp = http()
        .get(format!("http://{addr}/health"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    server.shutdown().await;
    let plain = start().await;
    let resp = http()
        .get(format!("http://{}/health", plain.local_addr()))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    plain.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_413_and_unknown_paths_404() {
    let limits = relayport_selfhosted::protocol::Limits {
        max_payload: 1024,
        ..Default::default()
    };
    let server = start_with(builder().limits(limits)).await;
    let addr = server.local_addr();
    let huge = format!(
        r#"{{"channel":"a","event":"e","data":"{}"}}"#,
        "z".repeat(512 * 1024)
    );
    let (s, b) = post_raw(addr, Some(&format!("Bearer {SECRET}")), huge).await;
    assert_eq!(s, 413);
    assert_eq!(b["error"]["code"], code::PAYLOAD_TOO_LARGE);
    let (s, b) = publish(
        addr,
        json!({"channel": "a", "event": "e", "data": "z".repeat(1023)}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (413, Some(code::PAYLOAD_TOO_LARGE))
    );
    let (s, _) = publish(
        addr,
        json!({"channel": "a", "event": "e", "data": "z".repeat(1022)}),
    )
    .await;
    assert_eq!(s, 200);
    let resp = http()
        .get(format!("http://{addr}/nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], code::NOT_FOUND);
    server.shutdown().await;
}
