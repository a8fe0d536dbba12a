//! Echo (a client's own publishes, the same on every provider) and binary payloads, through the
//! runtime: the server's echo dropped when echo is off, a local copy when the server never
//! echoes, the choice handed to a provider that can ask its server, and bytes refused on a
//! provider that carries only JSON.

mod common;

use std::time::Duration;

use common::*;
use relayport_core::testing::ScriptedProvider;
use relayport_core::{Capabilities, Echo, ErrorKind, Payload, RealtimeClient, Subscription};
use serde_json::json;

fn ch(s: &str) -> relayport_core::Channel {
    relayport_core::Channel::parse(s).unwrap()
}

async fn next(sub: &mut Subscription) -> Option<relayport_core::Message> {
    tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .ok()
        .flatten()
}

fn with_echo(caps_echo: Echo, binary: bool) -> Capabilities {
    let mut caps = Capabilities::default();
    caps.presence = true;
    caps.history = true;
    caps.echo = caps_echo;
    caps.binary_payloads = binary;
    caps
}

/// A client on a scripted server whose capabilities are `caps`.
fn client_with(
    caps: Capabilities,
    echo: bool,
) -> (RealtimeClient, relayport_core::testing::Script) {
    let (provider, script) = ScriptedProvider::new();
    script.set_capabilities(caps);
    let client = RealtimeClient::builder(provider)
        .jitter_seed(1)
        .echo(echo)
        .build();
    (client, script)
}

#[tokio::test(start_paused = true)]
async fn echo_off_drops_the_servers_echo_of_own_publishes_only() {
    let (client, script) = client_with(with_echo(Echo::ServerEchoes, true), false);
    script.echo_publishes(true);
    let mut sub = client.subscribe("room").await.unwrap();
    client.publish("room", "mine", json!(1)).await.unwrap();
    // Someone else's message (another sender) after it.
    script.server_publish(&ch("room"), "theirs", json!(2));
    let m = next(&mut sub).await.expect("the other sender's message");
    assert_eq!(
        (m.event.as_str(), &m.data),
        ("theirs", &Payload::from(json!(2)))
    );
    assert!(next(&mut sub).await.is_none(), "own publish not delivered");
    assert_eq!(
        script.echo_requested(),
        None,
        "not configurable: never asked"
    );
}

#[tokio::test(start_paused = true)]
async fn echo_on_delivers_the_servers_echo_once() {
    let (client, script) = client_with(with_echo(Echo::ServerEchoes, true), true);
    script.echo_publishes(true);
    let mut sub = client.subscribe("room").await.unwrap();
    client.publish("room", "mine", json!(1)).await.unwrap();
    let m = next(&mut sub).await.expect("own publish");
    assert_eq!(m.event, "mine");
    assert_eq!(m.sender.as_deref(), Some("conn-1"));
    assert!(next(&mut sub).await.is_none(), "exactly once");
}

#[tokio::test(start_paused = true)]
async fn echo_off_still_drops_an_own_publish_from_an_earlier_connection() {
    let (client, script) = client_with(with_echo(Echo::ServerEchoes, true), false);
    let mut sub = client.subscribe("room").await.unwrap();
    // A message this client published on its first connection, replayed after a reconnect.
    script.drop_link(relayport_core::CloseReason::retry(None, "test"));
    wait_until("reconnected", || script.connections() == 2).await;
    let mut replayed = relayport_core::Message::new(ch("room"), "old", json!(0));
    replayed.sender = Some("conn-1".into());
    script.emit_message(replayed);
    let mut theirs = relayport_core::Message::new(ch("room"), "theirs", json!(1));
    theirs.sender = Some("conn-9".into());
    script.emit_message(theirs);
    let m = next(&mut sub).await.expect("the other sender's message");
    assert_eq!(m.event, "theirs");
}

#[tokio::test(start_paused = true)]
async fn echo_on_loops_back_when_the_server_never_echoes() {
    let (client, script) = client_with(with_echo(Echo::ServerSkips, true), true);
    let mut sub = client.subscribe("room").await.unwrap();
    client
        .publish("room", "mine", json!({"n": 1}))
        .await
        .unwrap();
    let m = next(&mut sub).await.expect("a local copy");
    assert_eq!(
        (m.event.as_str(), &m.data),
        ("mine", &Payload::from(json!({"n": 1})))
    );
    assert_eq!(m.sender.as_deref(), Some("conn-1"));
    assert_eq!(script.published().len(), 1, "published once on the wire");
    assert!(next(&mut sub).await.is_none(), "exactly once");
}

#[tokio::test(start_paused = true)]
async fn no_local_copy_of_a_publish_the_provider_refused() {
    let (client, script) = client_with(with_echo(Echo::ServerSkips, true), true);
    let mut sub = client.subscribe("room").await.unwrap();
    script.fail_next_publish(relayport_core::RealtimeError::provider(
        "scripted", 4301, "refused", false,
    ));
    assert!(client.publish("room", "mine", json!(1)).await.is_err());
    assert!(next(&mut sub).await.is_none(), "nothing was published");
}

#[tokio::test(start_paused = true)]
async fn echo_off_and_a_server_that_never_echoes_delivers_nothing_of_ones_own() {
    let (client, _script) = client_with(with_echo(Echo::ServerSkips, true), false);
    let mut sub = client.subscribe("room").await.unwrap();
    client.publish("room", "mine", json!(1)).await.unwrap();
    assert!(next(&mut sub).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_configurable_provider_is_told_the_choice_before_it_connects() {
    for echo in [true, false] {
        let (client, script) = client_with(with_echo(Echo::Configurable, true), echo);
        assert_eq!(script.echo_requested(), Some(echo));
        assert_eq!(script.connections(), 0);
        assert_eq!(client.echo(), echo);
    }
}

#[tokio::test(start_paused = true)]
async fn bytes_travel_as_bytes_where_the_provider_carries_them() {
    let (client, script) = client_with(with_echo(Echo::ServerEchoes, true), true);
    script.echo_publishes(true);
    let mut sub = client.subscribe("files").await.unwrap();
    let bytes = vec![0u8, 159, 146, 150, 255];
    client
        .publish("files", "blob", bytes.clone())
        .await
        .unwrap();
    assert_eq!(script.published()[0].data, Payload::from(bytes.clone()));
    let m = next(&mut sub).await.expect("the bytes back");
    assert_eq!(m.data.as_bytes(), Some(&bytes[..]));
}

#[tokio::test(start_paused = true)]
async fn bytes_are_refused_at_once_where_the_provider_carries_only_json() {
    let (client, script) = client_with(with_echo(Echo::ServerEchoes, false), true);
    let err = client
        .publish("files", "blob", vec![1u8, 2, 3])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.to_string().contains("binary payloads"), "{err}");
    let err = client.publish_nowait("files", "blob", &[1u8]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    settle().await;
    assert!(script.published().is_empty(), "nothing left the client");
    assert_eq!(script.connections(), 0, "not even a connection");
}

#[tokio::test(start_paused = true)]
async fn the_payload_limit_counts_bytes_for_binary() {
    let (client, _script) = client_with(with_echo(Echo::ServerEchoes, true), true);
    let client = {
        drop(client);
        let (provider, script) = ScriptedProvider::new();
        script.set_capabilities(with_echo(Echo::ServerEchoes, true));
        RealtimeClient::builder(provider).max_payload(4).build()
    };
    assert!(client.publish_nowait("f", "b", vec![0u8; 4]).is_ok());
    let err = client.publish_nowait("f", "b", vec![0u8; 5]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PayloadTooLarge);
}
