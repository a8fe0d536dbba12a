//! The provider under the core's `RealtimeClient`, against scripted loopback peers: the
//! close code decides whether the core reconnects, and the core's heartbeat follows the
//! server's activity timeout.

mod common;

use std::time::Duration;

use common::peer::{Peer, Step, established};
use relayport_core::{Backoff, ClientEvent, ConnectionState, ErrorKind, RealtimeClient};
use relayport_pusher::{PusherConfig, PusherProvider};
use tokio::time::Instant;

const WAIT: Duration = Duration::from_secs(10);

fn client(port: u16) -> RealtimeClient {
    RealtimeClient::builder(PusherProvider::new(PusherConfig::host(
        "key",
        "127.0.0.1",
        port,
        false,
    )))
    .backoff(Backoff {
        initial: Duration::from_millis(50),
        factor: 2,
        max: Duration::from_millis(200),
        jitter: Duration::from_millis(10),
        max_attempts: 5,
    })
    .build()
}

/// Waits (bounded) for `n` `Connected` states; returns when each happened.
async fn connected_at(
    events: &mut tokio::sync::broadcast::Receiver<ClientEvent>,
    n: usize,
) -> Vec<Instant> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        while seen.len() < n {
            if let Ok(ClientEvent::StateChanged(ConnectionState::Connected)) = events.recv().await {
                seen.push(Instant::now());
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("connected {} times, expected {n}", seen.len()));
    seen
}

/// After a 42xx close the core reconnects at once; after 41xx and other codes it waits for
/// its backoff (50 ms here), on the paused clock. Each new connection is served by the peer's
/// next script.
#[tokio::test(start_paused = true)]
async fn core_reconnects_after_retryable_close_codes() {
    for (code, immediately) in [(4200u16, true), (4201, true), (4100, false), (1011, false)] {
        let peer = Peer::start_many(vec![
            vec![
                Step::Send(established("1.1", 120)),
                Step::Close(code, format!("close {code}")),
                Step::AwaitClose,
            ],
            vec![Step::Send(established("2.1", 120)), Step::AwaitClose],
        ])
        .await;
        let c = client(peer.port);
        let mut events = c.events();
        c.connect().await.unwrap();
        let at = connected_at(&mut events, 2).await;
        let gap = at[1] - at[0];
        if immediately {
            assert_eq!(gap, Duration::ZERO, "{code}");
        } else {
            assert!(gap >= Duration::from_millis(50), "{code}: {gap:?}");
        }
        c.close().await;
        peer.finish().await.unwrap();
    }
}

/// 4001 / 4009 closes are fatal: the client ends `Failed` with the mapped error.
#[tokio::test(start_paused = true)]
async fn core_fails_after_fatal_close_codes() {
    for (code, kind) in [
        (4001u16, ErrorKind::Config),
        (4009, ErrorKind::Unauthorized),
    ] {
        let peer = Peer::start(vec![
            Step::Send(established("1.1", 120)),
            Step::Close(code, format!("close {code}")),
            Step::AwaitClose,
        ])
        .await;
        let c = client(peer.port);
        let mut states = c.state_changes();
        c.connect().await.unwrap();
        let state = tokio::time::timeout(WAIT, async {
            loop {
                let s = states.borrow_and_update().clone();
                if let ConnectionState::Failed(_) = s {
                    return s;
                }
                states.changed().await.unwrap();
            }
        })
        .await
        .expect("Failed in time");
        match state {
            ConnectionState::Failed(e) => assert_eq!(e.kind(), kind, "{code}: {e}"),
            _ => unreachable!(),
        }
        c.close().await;
        peer.finish().await.unwrap();
    }
}

/// The server's activity timeout (1 s) sets the core's heartbeat: on the paused clock the core
/// sends pusher-js's ping frame after 1 s (the peer asserts the frame) and measures the pong.
#[tokio::test(start_paused = true)]
async fn core_heartbeat_follows_the_activity_timeout() {
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 1)),
        Step::Expect(r#"{"event":"pusher:ping","data":{}}"#.into()),
        Step::Send(r#"{"event":"pusher:pong"}"#.into()),
        Step::AwaitClose,
    ])
    .await;
    let c = RealtimeClient::builder(PusherProvider::new(PusherConfig::host(
        "key",
        "127.0.0.1",
        peer.port,
        false,
    )))
    .build();
    c.connect().await.unwrap();
    assert_eq!(c.latency(), None);
    let started = tokio::time::Instant::now();
    tokio::time::timeout(WAIT, async {
        while c.latency().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a heartbeat round trip");
    assert!(
        tokio::time::Instant::now() - started >= Duration::from_secs(1),
        "the ping waits for the 1 s activity timeout"
    );
    c.close().await;
    peer.finish().await.unwrap();
}
