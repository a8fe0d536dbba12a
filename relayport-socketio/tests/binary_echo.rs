//! Binary payloads and echo end to end against the real `socket.io` 4.x server from npm with
//! the adapter (`adapter/test-server.mjs`, one per test on a free loopback port): bytes travel
//! as Socket.IO binary attachments (and as `b<base64>` over long-polling), JSON alongside,
//! echo off leaves the publisher out, and the official `socket.io-client` publishing a Buffer
//! reaches our client as bytes. Each test prints SKIP and returns when node or the npm
//! packages are missing, except under `CI=true`.
//!
//! Every wait is bounded; nothing sleeps to wait for an event.

use std::process::Stdio;

mod common;

use common::*;
use relayport_core::{Echo, OutboundMessage, Payload, Publisher, RealtimeClient, RealtimeProvider};
use relayport_socketio::testing::{NodeServer, adapter_dir};
use relayport_socketio::{SocketIoConfig, SocketIoProvider};
use serde_json::json;

fn client(server: &NodeServer, id: &str, echo: bool) -> RealtimeClient {
    client_and_provider(server, id, echo).0
}

/// A client and a clone of its provider (for the socket id).
fn client_and_provider(
    server: &NodeServer,
    id: &str,
    echo: bool,
) -> (RealtimeClient, SocketIoProvider) {
    let provider = provider(server, "/");
    (builder(provider.clone(), id).echo(echo).build(), provider)
}

/// Every byte value, zeros and 0xff included.
fn all_bytes() -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..=255).collect();
    bytes.extend([0x00, 0xff, 0x00]);
    bytes
}

/// Bytes from alice reach bob (and alice, echo on, once) as bytes, an empty buffer included,
/// with JSON in between; the HTTP publisher's bytes arrive as bytes too.
async fn bytes_between_clients(server: &NodeServer) {
    let (alice, bob) = (client(server, "alice", true), client(server, "bob", true));
    let mut at_alice = within("subscribe", alice.subscribe("files")).await.unwrap();
    let mut at_bob = within("subscribe", bob.subscribe("files")).await.unwrap();
    let payloads = [
        Payload::from(all_bytes()),
        Payload::from(json!({"text": "between"})),
        Payload::from(Vec::new()),
        Payload::from(vec![0u8]),
        Payload::from(json!("AP8=")),
    ];
    for p in &payloads {
        within("publish", alice.publish("files", "f", p.clone()))
            .await
            .unwrap();
    }
    for p in &payloads {
        let at_b = next(&mut at_bob).await;
        assert_eq!(&at_b.data, p, "bob");
        assert_eq!(at_b.event, "f");
        let own = next(&mut at_alice).await;
        assert_eq!(&own.data, p, "alice's own, once");
    }
    // From the backend over HTTP (base64 with `encoding` on the wire): bytes again.
    let publisher = publisher(server);
    publisher
        .publish(&OutboundMessage::new(ch("files"), "http", vec![0u8, 0xff]))
        .await
        .unwrap();
    publisher
        .publish_batch(&[
            OutboundMessage::new(ch("files"), "http", Vec::new()),
            OutboundMessage::new(ch("files"), "http", json!([1])),
        ])
        .await
        .unwrap();
    for want in [
        Payload::from(vec![0u8, 0xff]),
        Payload::from(Vec::new()),
        Payload::from(json!([1])),
    ] {
        let m = next(&mut at_bob).await;
        assert_eq!((m.event.as_str(), m.data), ("http", want));
        assert_eq!(m.sender, None);
    }
    alice.close().await;
    bob.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_another_client_as_bytes_over_websocket() {
    let Some(server) = NodeServer::start("binary_websocket").await else {
        return;
    };
    bytes_between_clients(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_reach_another_client_as_bytes_over_long_polling() {
    let Some(server) = NodeServer::start_with("binary_polling", &[("TRANSPORTS", "polling")]).await
    else {
        return;
    };
    bytes_between_clients(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_off_leaves_the_publisher_out_and_echo_on_delivers_once() {
    let Some(server) = NodeServer::start("echo").await else {
        return;
    };
    let provider = SocketIoProvider::new(SocketIoConfig::new(&server.url()).unwrap()).unwrap();
    let caps = provider.capabilities();
    assert_eq!(caps.echo, Echo::Configurable);
    assert!(caps.binary_payloads);
    let (quiet, quiet_provider) = client_and_provider(&server, "quiet", false);
    let loud = client(&server, "loud", true);
    let mut at_quiet = within("subscribe", quiet.subscribe("talk")).await.unwrap();
    let mut at_loud = within("subscribe", loud.subscribe("talk")).await.unwrap();
    within("publish", quiet.publish("talk", "q", json!(1)))
        .await
        .unwrap();
    within("publish", quiet.publish("talk", "q", vec![1u8, 2]))
        .await
        .unwrap();
    within("publish", loud.publish("talk", "l", json!(2)))
        .await
        .unwrap();
    // Loud gets quiet's two and its own one, each once, in order.
    let quiet_id = quiet_provider.socket_id();
    assert!(quiet_id.is_some());
    for (event, data) in [
        ("q", Payload::from(json!(1))),
        ("q", Payload::from(vec![1u8, 2])),
        ("l", Payload::from(json!(2))),
    ] {
        let m = next(&mut at_loud).await;
        assert_eq!((m.event.as_str(), m.data), (event, data));
        if event == "q" {
            assert_eq!(
                m.sender, quiet_id,
                "sender is the publisher's connection id"
            );
        }
    }
    // Quiet's first message is loud's: its own two never came.
    let m = next(&mut at_quiet).await;
    assert_eq!((m.event.as_str(), m.data), ("l", Payload::from(json!(2))));
    // And nothing after it: a backend marker is the next thing either sees.
    publisher(&server)
        .publish(&OutboundMessage::new(ch("talk"), "marker", json!(0)))
        .await
        .unwrap();
    assert_eq!(next(&mut at_quiet).await.event, "marker");
    assert_eq!(next(&mut at_loud).await.event, "marker");
    quiet.close().await;
    loud.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_from_the_official_socket_io_client_arrives_as_bytes() {
    let Some(server) = NodeServer::start("official_client_buffer").await else {
        return;
    };
    let ours = client(&server, "ours", true);
    let mut files = within("subscribe", ours.subscribe("files")).await.unwrap();
    // socket.io-client (npm) subscribes and publishes a Buffer, a nested Buffer and JSON.
    let script = r#"
const { io } = require("socket.io-client");
const s = io(process.argv[1], { transports: ["websocket"], reconnection: false });
s.on("connect_error", (e) => { console.error(String(e)); process.exit(2); });
s.on("connect", async () => {
  const call = (event, body) => s.timeout(5000).emitWithAck(event, body);
  const check = (ack) => { if (!ack.ok) { console.error(JSON.stringify(ack)); process.exit(3); } };
  check(await call("rp:subscribe", { channel: "files" }));
  check(await call("rp:publish", { channel: "files", event: "buf", data: Buffer.from([0, 1, 255, 0]) }));
  check(await call("rp:publish", { channel: "files", event: "nested", data: { file: Buffer.from([7]) } }));
  check(await call("rp:publish", { channel: "files", event: "json", data: { n: 1 } }));
  s.disconnect();
  process.exit(0);
});
"#;
    let output = within(
        "the official client",
        tokio::process::Command::new("node")
            .args(["-e", script, &server.url()])
            .current_dir(adapter_dir())
            .stdin(Stdio::null())
            .output(),
    )
    .await
    .expect("run node");
    assert!(
        output.status.success(),
        "socket.io-client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let m = next(&mut files).await;
    assert_eq!(
        (m.event.as_str(), m.data),
        ("buf", Payload::from(vec![0u8, 1, 255, 0]))
    );
    // A Buffer nested below `data` arrives in Node's JSON form of a Buffer.
    let m = next(&mut files).await;
    assert_eq!(
        (m.event.as_str(), m.data),
        (
            "nested",
            Payload::from(json!({"file": {"type": "Buffer", "data": [7]}}))
        )
    );
    let m = next(&mut files).await;
    assert_eq!(
        (m.event.as_str(), m.data),
        ("json", Payload::from(json!({"n": 1})))
    );
    ours.close().await;
}
