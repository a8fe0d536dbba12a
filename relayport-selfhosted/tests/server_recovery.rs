//! History recovery across disconnects and restarts, `recovered: false` when the gap is gone,
//! and graceful shutdown telling clients to reconnect.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::time::Duration;

use relayport_selfhosted::protocol::close;
use relayport_selfhosted::server::{Broker, Clock, Publication};
use serde_json::{Value, json};
use server_common::*;

fn publication(channel: &str, n: u64) -> Publication {
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

fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().filter_map(|m| m["seq"].as_u64()).collect()
}

#[tokio::test]
async fn graceful_shutdown_sends_service_restart() {
    let server = start().await;
    let addr = server.local_addr();
    let mut a = WsClient::connect(addr).await;
    let mut b = WsClient::connect(addr).await;
    a.subscribe("room").await;
    let metrics = server.metrics();
    server.shutdown().await;
    assert_eq!(a.until_close().await.0, Some(close::SERVICE_RESTART));
    assert_eq!(b.until_close().await.0, Some(close::SERVICE_RESTART));
    let m = metrics.snapshot();
    assert_eq!(m.disconnects.get(&close::SERVICE_RESTART), Some(&2));
    assert_eq!(m.connections, 0);
    // The listener is gone.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn restart_keeps_history_and_clients_recover_with_nothing_lost_or_duplicated() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    let sub = c.subscribe("feed").await;
    let epoch = sub["position"]["epoch"].as_str().unwrap().to_owned();
    for n in 1..=5 {
        server.publish(publication("feed", n)).await.unwrap();
    }
    let mut seen = seqs(&c.sync().await);
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);

    // Stop the listener; the broker lives on and keeps taking publishes.
    let broker: Broker = server.broker();
    let config = server.config().clone();
    server.shutdown().await;
    let (code, tail) = c.until_close().await;
    assert_eq!(code, Some(close::SERVICE_RESTART));
    seen.extend(seqs(&tail));
    for n in 6..=9 {
        broker.publish(publication("feed", n));
    }
    // Start again on the same port with the same broker.
    let server = start_on(addr, builder().config(config).broker(broker)).await;
    let mut c = WsClient::connect(addr).await;
    let last = *seen.last().unwrap();
    c.send(json!({"type": "subscribe", "channel": "feed", "since": {"epoch": epoch, "sequence": last}}))
        .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["recovered"], true);
    assert_eq!(sub["position"]["epoch"], epoch.as_str(), "same stream");
    seen.extend(seqs(sub["messages"].as_array().unwrap()));
    server.publish(publication("feed", 10)).await.unwrap();
    seen.push(c.expect("message").await["seq"].as_u64().unwrap());
    assert_eq!(
        seen,
        (1..=10).collect::<Vec<u64>>(),
        "zero lost, zero duplicated"
    );

    // handle.restart() does the same in one call.
    let server = server.restart().await.unwrap();
    assert_eq!(server.local_addr(), addr);
    assert_eq!(c.until_close().await.0, Some(close::SERVICE_RESTART));
    let mut c = WsClient::connect(addr).await;
    c.send(
        json!({"type": "subscribe", "channel": "feed", "since": {"epoch": epoch, "sequence": 8}}),
    )
    .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["recovered"], true);
    assert_eq!(seqs(sub["messages"].as_array().unwrap()), vec![9, 10]);
    server.shutdown().await;
}

async fn start_on(
    addr: std::net::SocketAddr,
    b: relayport_selfhosted::server::ServerBuilder,
) -> relayport_selfhosted::server::ServerHandle {
    match b.bind(addr).await {
        Ok(h) => h,
        Err(e) => panic!("restart on {addr} failed: {e}"),
    }
}

#[tokio::test]
async fn forced_disconnect_then_resubscribe_recovers_the_gap() {
    let server = start().await;
    let addr = server.local_addr();
    let mut c = WsClient::connect(addr).await;
    let epoch = c.subscribe("ticks").await["position"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=3 {
        server.publish(publication("ticks", n)).await.unwrap();
    }
    let mut seen = seqs(&c.sync().await);
    drop(c); // the network drops
    server
        .metrics()
        .wait_for(WAIT, |m| m.connections == 0)
        .await
        .expect("disconnect noticed");
    for n in 4..=7 {
        server.publish(publication("ticks", n)).await.unwrap();
    }
    let mut c = WsClient::connect(addr).await;
    c.send(
        json!({"type": "subscribe", "channel": "ticks", "since": {"epoch": epoch, "sequence": 3}}),
    )
    .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["recovered"], true);
    seen.extend(seqs(sub["messages"].as_array().unwrap()));
    assert_eq!(seen, (1..=7).collect::<Vec<u64>>());
    // Up to date: recovered with nothing to replay.
    c.send(
        json!({"type": "subscribe", "channel": "ticks", "since": {"epoch": epoch, "sequence": 7}}),
    )
    .await;
    let sub = c.expect("subscribed").await;
    assert_eq!(sub["recovered"], true);
    assert!(sub.get("messages").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn recovered_false_when_the_gap_is_gone_or_the_epoch_differs() {
    let clock = Clock::manual();
    let server = start_with(builder().history_size(5).clock(clock.clone())).await;
    let mut c = WsClient::connect(server.local_addr()).await;
    let epoch = c.subscribe("s").await["position"]["epoch"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 1..=10 {
        server.publish(publication("s", n)).await.unwrap();
    }
    c.sync().await;
    let resub = async |c: &mut WsClient, epoch: &str, seq: u64| {
        c.send(json!({"type": "subscribe", "channel": "s", "since": {"epoch": epoch, "sequence": seq}}))
            .await;
        c.expect("subscribed").await
    };
    // Seq 5 is the oldest kept is 6: from 5 on is complete; from 4 on is not.
    let ok = resub(&mut c, &epoch, 5).await;
    assert_eq!(ok["recovered"], true);
    assert_eq!(
        seqs(ok["messages"].as_array().unwrap()),
        vec![6, 7, 8, 9, 10]
    );
    let gone = resub(&mut c, &epoch, 4).await;
    assert_eq!(gone["recovered"], false);
    assert!(gone.get("messages").is_none(), "never a partial replay");
    let other = resub(&mut c, "another-epoch", 9).await;
    assert_eq!(other["recovered"], false);
    let ahead = resub(&mut c, &epoch, 11).await;
    assert_eq!(ahead["recovered"], false);
    // TTL: two minutes later history is empty.
    clock.advance(Duration::from_secs(121));
    let expired = resub(&mut c, &epoch, 9).await;
    assert_eq!(expired["recovered"], false);
    server.shutdown().await;
}
