//! The server against this crate's own client (`SelfHostedProvider` under `RealtimeClient`),
//! over WebSocket and over the SSE fallback: messages flow, and after a server restart the
//! client reconnects and recovers what was published meanwhile, nothing lost or duplicated.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::sync::Arc;
use std::time::Duration;

use relayport_core::{Backoff, Message, OutboundMessage, Publisher, RealtimeClient, Subscription};
use relayport_selfhosted::client::TransportPreference;
use relayport_selfhosted::client::{SelfHostedProvider, SelfHostedPublisher};
use relayport_selfhosted::server::{Publication, SelfHostedAuthorizer, ServerHandle};
use serde_json::{Value, json};
use server_common::*;

fn client(addr: std::net::SocketAddr, transport: TransportPreference) -> RealtimeClient {
    let provider = SelfHostedProvider::new(&format!("http://{addr}"))
        .unwrap_or_else(|e| panic!("{e}"))
        .with_transport(transport);
    RealtimeClient::builder(provider)
        .authorizer(Arc::new(SelfHostedAuthorizer::new(SECRET)))
        .client_id("ada")
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            factor: 2,
            max: Duration::from_millis(200),
            jitter: Duration::ZERO,
            max_attempts: 50,
        })
        .build()
}

async fn recv(sub: &mut Subscription) -> Message {
    within("a message", sub.recv())
        .await
        .expect("the subscription is open")
}

fn publication(channel: &str, n: i64) -> Publication {
    Publication {
        encoding: None,
        channel: channel.parse().unwrap(),
        event: "n".into(),
        data: json!(n),
        sender: None,
        exclude: None,
        retain: false,
    }
}

/// Publishes 1..=3, restarts the server while publishing 4..=5 into its broker, publishes 6:
/// the client must see 1..=6 exactly once, in order.
async fn restart_scenario(transport: TransportPreference, channel: &str) {
    let server = start().await;
    let addr = server.local_addr();
    let c = client(addr, transport);
    within("connect", c.connect()).await.unwrap();
    let mut sub = within("subscribe", c.subscribe(channel)).await.unwrap();
    let publisher = SelfHostedPublisher::new(&format!("http://{addr}"), SECRET).unwrap();
    for n in 1..=3 {
        let m = OutboundMessage::new(channel.parse().unwrap(), "n", json!(n));
        within("publish", publisher.publish(&m)).await.unwrap();
    }
    let mut seen: Vec<Value> = Vec::new();
    for _ in 1..=3 {
        seen.push(recv(&mut sub).await.data.into_json().unwrap());
    }
    let broker = server.broker();
    let config = server.config().clone();
    server.shutdown().await;
    for n in 4..=5 {
        broker.publish(publication(channel, n));
    }
    let server: ServerHandle = match builder().config(config).broker(broker).bind(addr).await {
        Ok(h) => h,
        Err(e) => panic!("restart: {e}"),
    };
    for _ in 4..=5 {
        seen.push(recv(&mut sub).await.data.into_json().unwrap());
    }
    server.publish(publication(channel, 6)).await.unwrap();
    seen.push(recv(&mut sub).await.data.into_json().unwrap());
    assert_eq!(seen, (1..=6).map(|n| json!(n)).collect::<Vec<_>>());
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_client_recovers_across_a_restart() {
    restart_scenario(TransportPreference::WebSocketOnly, "private:orders").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_client_recovers_across_a_restart() {
    restart_scenario(TransportPreference::SseOnly, "ticker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_through_the_client() {
    let server = start().await;
    let addr = server.local_addr();
    let a = client(addr, TransportPreference::WebSocketOnly);
    within("connect", a.connect()).await.unwrap();
    let room = "presence:room:9";
    let _sub = within("subscribe", a.subscribe(room)).await.unwrap();
    within("enter", a.presence_enter(room, json!({"name": "Ada"})))
        .await
        .unwrap();
    let members = server.broker().members(&room.parse().unwrap());
    assert_eq!(members.len(), 1, "{members:?}");
    assert_eq!(members[0].data, json!({"name": "Ada"}));
    a.close().await;
    server.shutdown().await;
}

/// `RealtimeClient::history` over the native WebSocket: pages newest first with a cursor,
/// forwards on request; a private channel's history is read only once subscribed (signed).
#[tokio::test]
async fn history_is_read_page_by_page_and_private_history_needs_a_subscription() {
    use relayport_core::{ErrorKind, HistoryQuery};
    let server = start().await;
    let broker = server.broker();
    for n in 1..=5 {
        broker.publish(publication("news", n));
        broker.publish(publication("private:vault", n * 10));
    }
    let c = client(server.local_addr(), TransportPreference::WebSocketOnly);
    // Not connected yet: history connects first.
    let mut page = within("history", c.history("news", HistoryQuery::new().limit(2)))
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
        match within("next page", page.next()).await.unwrap() {
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
    let forwards = within("history", c.history("news", HistoryQuery::new().forwards()))
        .await
        .unwrap();
    let seqs: Vec<u64> = forwards
        .messages()
        .iter()
        .map(|m| m.position.as_ref().unwrap().sequence)
        .collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);

    let refused = within("history", c.history("private:vault", HistoryQuery::new()))
        .await
        .unwrap_err();
    assert_ne!(refused.kind(), ErrorKind::Unsupported, "{refused:?}");
    let _vault = within("subscribe", c.subscribe("private:vault"))
        .await
        .unwrap();
    let vault = within(
        "history",
        c.history("private:vault", HistoryQuery::new().limit(1)),
    )
    .await
    .unwrap();
    assert_eq!(vault.messages()[0].data, json!(50));
    assert!(vault.has_next());
    c.close().await;
    server.shutdown().await;
}
