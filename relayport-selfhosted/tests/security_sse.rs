//! Attacks on SSE (issue 11, item 4): SSE let the client choose its socket id and never
//! expired signatures, so any signature ever issued (seen in a proxy log: it travelled in the
//! URL) opened a stream on its private channel after its WebSocket closed.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::net::SocketAddr;
use std::time::Duration;

use relayport_selfhosted::protocol::code;
use relayport_selfhosted::server::Clock;
use serde_json::{Value, json};
use server_common::*;

async fn get_sse(addr: SocketAddr, query: &str) -> (u16, Value) {
    let resp = within(
        "GET /sse",
        http().get(format!("http://{addr}/sse{query}")).send(),
    )
    .await
    .unwrap();
    let status = resp.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn post_json(addr: SocketAddr, path: &str, body: Value) -> (u16, Value) {
    let resp = within(
        "POST",
        http()
            .post(format!("http://{addr}{path}"))
            .json(&body)
            .send(),
    )
    .await
    .unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_signature_from_a_closed_websocket_opens_no_sse_stream() {
    let server = start().await;
    let addr = server.local_addr();
    let ch = "private:secret";
    // The victim's WebSocket subscribes with a signature from its backend, then leaves.
    let mut victim = WsClient::connect(addr).await;
    let stolen = sign_private(&victim.socket_id, ch);
    victim
        .send(json!({"type": "subscribe", "channel": ch, "auth": stolen}))
        .await;
    victim.expect("subscribed").await;
    let victim_id = victim.socket_id.clone();
    drop(victim);
    server
        .metrics()
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("the victim left");

    // Replaying it with a chosen socket id (what used to work) is refused outright.
    let (s, b) = get_sse(
        addr,
        &format!("?channel={ch}&socket_id={victim_id}&auth={stolen}"),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (400, Some(code::MALFORMED))
    );
    // Through a ticket, the socket id is the server's, so the stolen signature does not fit.
    let (_, t) = post_json(addr, "/sse/tickets", json!({})).await;
    assert_ne!(t["socket_id"], victim_id.as_str());
    let (s, b) = post_json(
        addr,
        "/sse/auth",
        json!({"ticket": t["ticket"], "auth": {ch: stolen}}),
    )
    .await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some(code::UNAUTHORIZED))
    );
    let (s, _) = get_sse(
        addr,
        &format!("?channel={ch}&ticket={}", t["ticket"].as_str().unwrap()),
    )
    .await;
    assert_eq!(s, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn tickets_expire_and_are_single_use() {
    let clock = Clock::manual();
    let ttl = Duration::from_secs(30);
    let server = start_with(builder().clock(clock.clone()).sse_ticket_ttl(ttl)).await;
    let addr = server.local_addr();
    let ch = "private:inbox";
    let issue = async || {
        let (s, t) = post_json(addr, "/sse/tickets", json!({})).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(t["expires_in_ms"], 30_000);
        let auth = sign_private(t["socket_id"].as_str().unwrap(), ch);
        let (s, b) = post_json(
            addr,
            "/sse/auth",
            json!({"ticket": t["ticket"], "auth": {ch: auth}}),
        )
        .await;
        assert_eq!(s, 200, "{b}");
        t["ticket"].as_str().unwrap().to_owned()
    };
    // Just before the expiry it works, once.
    let t = issue().await;
    clock.advance(ttl - Duration::from_millis(1));
    let (s, _) = get_sse(addr, &format!("?channel={ch}&ticket={t}")).await;
    assert_eq!(s, 200);
    let (s, _) = get_sse(addr, &format!("?channel={ch}&ticket={t}")).await;
    assert_eq!(s, 401, "a used ticket opens nothing");
    // At the expiry it does not.
    let t = issue().await;
    clock.advance(ttl);
    let (s, b) = get_sse(addr, &format!("?channel={ch}&ticket={t}")).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (401, Some(code::UNAUTHORIZED))
    );
    server.shutdown().await;
}
