//! Connection policies: backoff schedule and jitter, give-up limit, fatal errors, lazy and
//! idempotent connect, connect timeout, heartbeat, latency, degraded events, task hygiene.

mod common;

use std::time::Duration;

use common::*;
use relayport_core::testing::{Call, PingBehavior};
use relayport_core::{
    Backoff, ClientEvent, CloseReason, ConnectionState, ErrorKind, RealtimeError,
};
use tokio::time::Instant;

fn conn_err() -> RealtimeError {
    RealtimeError::Connection("refused".into())
}

fn connects(script: &relayport_core::testing::Script) -> usize {
    script
        .calls()
        .iter()
        .filter(|c| **c == Call::Connect)
        .count()
}

#[tokio::test(start_paused = true)]
async fn backoff_follows_the_exact_schedule_with_bounded_jitter() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.fail_connects(7, conn_err());
    let mut events = client.events();
    client.connect().await.unwrap_err();

    // The same seed reproduces the runtime's jitter draws.
    let policy = Backoff::default();
    let mut rng = fastrand::Rng::with_seed(42);
    let mut schedule = Vec::new();
    loop {
        match wait_event(&mut events, |_| true).await {
            ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt, retry_in }) => {
                let expected = policy.delay(attempt, &mut rng);
                assert_eq!(retry_in, expected, "retry {attempt}");
                let base = policy.base_delay(attempt);
                assert!(retry_in >= base && retry_in <= base + Duration::from_secs(1));
                schedule.push((attempt, retry_in, Instant::now()));
            }
            ClientEvent::StateChanged(ConnectionState::Connecting) => {
                if let Some((_, retry_in, at)) = schedule.last() {
                    // tokio's timers have millisecond resolution: a deadline rounds up.
                    let waited = Instant::now() - *at;
                    assert!(
                        waited >= *retry_in && waited < *retry_in + Duration::from_millis(1),
                        "retry started on time: waited {waited:?} for {retry_in:?}"
                    );
                }
            }
            ClientEvent::StateChanged(ConnectionState::Connected) => break,
            _ => {}
        }
    }
    let bases: Vec<u64> = schedule
        .iter()
        .map(|(n, _, _)| policy.base_delay(*n).as_secs())
        .collect();
    assert_eq!(bases, [1, 2, 4, 8, 16, 30, 30]);
    assert_eq!(connects(&script), 8);
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_exactly_20_failed_attempts() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.fail_connects(20, conn_err());
    let mut events = client.events();
    client.connect().await.unwrap_err();
    wait_event(&mut events, |e| {
        *e == ClientEvent::StateChanged(ConnectionState::PermanentlyDisconnected)
    })
    .await;
    assert_eq!(connects(&script), 20);
    // Nothing more happens by itself…
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(connects(&script), 20);
    // …new operations say why…
    let err = client.subscribe("news").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.to_string().contains("gave up after 20"), "{err}");
    // …and connect() starts afresh.
    client.connect().await.unwrap();
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[tokio::test(start_paused = true)]
async fn nineteen_failures_still_connect_on_the_twentieth_attempt() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.fail_connects(19, conn_err());
    client.connect().await.unwrap_err();
    wait_state(&client, |s| *s == ConnectionState::Connected).await;
    assert_eq!(connects(&script), 20);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_error_fails_at_once_without_retry() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.fail_connects(1, RealtimeError::Unauthorized("app key refused".into()));
    let err = client.connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        client.state(),
        ConnectionState::Failed(RealtimeError::Unauthorized("app key refused".into()))
    );
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(connects(&script), 1, "no retry after a fatal error");
    let err = client
        .publish("news", "e", serde_json::json!(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

#[tokio::test(start_paused = true)]
async fn a_fatal_close_fails_and_a_retryable_one_reconnects() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    script.drop_link(CloseReason::retry(Some(4100), "over capacity"));
    wait_state(&client, |s| {
        matches!(s, ConnectionState::Reconnecting { attempt: 1, .. })
    })
    .await;
    wait_state(&client, ConnectionState::is_connected).await;
    assert_eq!(script.connections(), 2);

    script.drop_link(CloseReason::fatal(
        Some(4001),
        RealtimeError::Provider {
            provider: "scripted",
            code: 4001,
            message: "app disabled".into(),
            retryable: false,
            source: None,
        },
    ));
    let state = wait_state(&client, |s| matches!(s, ConnectionState::Failed(_))).await;
    assert!(matches!(
        state,
        ConnectionState::Failed(RealtimeError::Provider { code: 4001, .. })
    ));
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(script.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_immediate_reconnect_waits_for_nothing() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    let mut events = client.events();
    script.drop_link(CloseReason::retry_now(Some(4200), "reconnect now"));
    let e = wait_event(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::StateChanged(ConnectionState::Reconnecting {
            attempt: 1,
            retry_in: Duration::ZERO
        })
    );
    let before = Instant::now();
    wait_state(&client, ConnectionState::is_connected).await;
    assert_eq!(Instant::now(), before);
}

#[tokio::test(start_paused = true)]
async fn a_successful_connection_resets_the_attempt_count() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.fail_connects(3, conn_err());
    client.connect().await.unwrap_err();
    wait_state(&client, ConnectionState::is_connected).await;
    let mut events = client.events();
    script.drop_link(CloseReason::retry(None, "network changed"));
    let e = wait_event(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    let ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt, retry_in }) = e else {
        unreachable!()
    };
    assert_eq!(attempt, 1);
    assert!(retry_in >= Duration::from_secs(1) && retry_in <= Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn connect_is_lazy_by_default_and_idempotent() {
    let (client, script) = client(|b| b);
    settle().await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(connects(&script), 0, "nothing connects before it is needed");
    assert_eq!(client.state(), ConnectionState::Initialized);
    let _sub = client.subscribe("news").await.unwrap();
    assert_eq!(connects(&script), 1);
    let (a, b) = tokio::join!(client.connect(), client.connect());
    a.unwrap();
    b.unwrap();
    client.connect().await.unwrap();
    assert_eq!(
        connects(&script),
        1,
        "connect() never opens a second connection"
    );
}

#[tokio::test(start_paused = true)]
async fn concurrent_connects_before_the_first_open_one_connection() {
    let (client, script) = client(|b| b.lazy_connect(false));
    let (a, b, c) = tokio::join!(client.connect(), client.connect(), client.connect());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(connects(&script), 1);
}

#[tokio::test(start_paused = true)]
async fn without_lazy_connect_operations_wait_for_connect() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client
        .publish_nowait("news", "e", serde_json::json!(1))
        .unwrap();
    let c2 = client.clone();
    let sub = tokio::spawn(async move { c2.subscribe("news").await.map(|_| ()) });
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(connects(&script), 0);
    assert!(!sub.is_finished());
    client.connect().await.unwrap();
    sub.await.unwrap().unwrap();
    wait_until("queued publish sent", || script.published().len() == 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_hanging_connect_times_out_and_is_retried() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.hang_connects(1);
    let started = Instant::now();
    let err = client.connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(Instant::now() - started, Duration::from_secs(20));
    wait_state(&client, ConnectionState::is_connected).await;
    assert_eq!(connects(&script), 2);
}

#[tokio::test(start_paused = true)]
async fn heartbeat_measures_latency_on_schedule() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.set_ping(PingBehavior::Rtt(Duration::from_millis(120)));
    client.connect().await.unwrap();
    assert_eq!(client.latency(), None);
    tokio::time::sleep(Duration::from_millis(29_999)).await;
    assert!(!script.calls().contains(&Call::Ping), "no ping before 30 s");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(client.latency(), Some(Duration::from_millis(120)));
    let pings = || script.calls().iter().filter(|c| **c == Call::Ping).count();
    assert_eq!(pings(), 1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(pings(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_providers_heartbeat_interval_wins() {
    let (client, script) = client(|b| b.lazy_connect(false));
    script.set_session_hints(Some(Duration::from_secs(5)), None, false);
    client.connect().await.unwrap();
    tokio::time::sleep(Duration::from_millis(5_100)).await;
    assert!(script.calls().contains(&Call::Ping));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_heartbeat_reconnects() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    script.set_ping(PingBehavior::Hang);
    let start = Instant::now();
    let mut events = client.events();
    wait_event(&mut events, |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    assert_eq!(
        Instant::now() - start,
        Duration::from_secs(40),
        "30 s interval + 10 s timeout"
    );
    assert!(script.calls().contains(&Call::Disconnect));
    wait_state(&client, ConnectionState::is_connected).await;
    assert_eq!(script.connections(), 2);
}

#[tokio::test(start_paused = true)]
async fn degraded_fires_past_2000_ms_and_not_at_it() {
    let (client, script) = client(|b| {
        b.lazy_connect(false)
            .heartbeat(Duration::from_secs(30), Duration::from_secs(10))
    });
    let mut events = client.events();
    script.set_ping(PingBehavior::Rtt(Duration::from_millis(2000)));
    client.connect().await.unwrap();
    tokio::time::sleep(Duration::from_secs(33)).await;
    assert_eq!(client.latency(), Some(Duration::from_millis(2000)));
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e, ClientEvent::ConnectionDegraded { .. }),
            "2000 ms is not degraded"
        );
    }
    script.set_ping(PingBehavior::Rtt(Duration::from_millis(2001)));
    let e = wait_event(&mut events, |e| {
        matches!(e, ClientEvent::ConnectionDegraded { .. })
    })
    .await;
    assert_eq!(
        e,
        ClientEvent::ConnectionDegraded {
            rtt: Duration::from_millis(2001)
        }
    );
    assert_eq!(client.latency(), Some(Duration::from_millis(2001)));
}

#[tokio::test(start_paused = true)]
async fn disconnect_and_close_leave_no_task_running() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    let _sub = client.subscribe("news").await.unwrap();
    assert_eq!(script.live_tasks(), 1, "the provider's reader task");
    assert_eq!(metrics.num_alive_tasks(), 2, "the actor and the reader");

    client.disconnect().await;
    settle().await;
    assert_eq!(client.state(), ConnectionState::Disconnected);
    assert_eq!(script.live_tasks(), 0);
    assert_eq!(metrics.num_alive_tasks(), 1, "only the idle actor");
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(script.connections(), 1, "no reconnect after disconnect()");

    client.connect().await.unwrap();
    assert_eq!(script.live_tasks(), 1);
    let mut events = client.events();
    client.close().await;
    settle().await;
    assert_eq!(
        events.recv().await,
        Ok(ClientEvent::StateChanged(ConnectionState::Closed))
    );
    assert!(
        events.recv().await.is_err(),
        "the event stream ends with the runtime"
    );
    assert!(client.events().recv().await.is_err());
    assert_eq!(client.state(), ConnectionState::Closed);
    assert_eq!(script.live_tasks(), 0);
    assert_eq!(metrics.num_alive_tasks(), 0, "the actor exited");
    let err = client.connect().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Closed);
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_stops_the_runtime() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    let sub = client.subscribe("news").await.unwrap();
    drop(client);
    settle().await;
    assert_eq!(
        metrics.num_alive_tasks(),
        2,
        "a live subscription keeps it running"
    );
    drop(sub);
    settle().await;
    assert_eq!(metrics.num_alive_tasks(), 0);
    assert_eq!(script.live_tasks(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_refused_immediate_reconnect_continues_at_the_first_backoff_step() {
    let (client, script) = client(|b| b.lazy_connect(false));
    client.connect().await.unwrap();
    let mut events = client.events();
    // The server restarts: it asks for an immediate reconnect but is not listening yet.
    script.fail_connects(1, conn_err());
    script.drop_link(CloseReason::retry_now(Some(1012), "restarting"));
    let mut waits = Vec::new();
    while waits.len() < 2 {
        if let ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt, retry_in }) =
            wait_event(&mut events, |_| true).await
        {
            waits.push((attempt, retry_in));
        }
    }
    assert_eq!(waits[0], (1, Duration::ZERO));
    let (attempt, retry_in) = waits[1];
    assert_eq!(
        attempt, 1,
        "the refused immediate attempt used up no backoff step"
    );
    assert!(retry_in >= Duration::from_secs(1) && retry_in <= Duration::from_secs(2));
    wait_state(&client, ConnectionState::is_connected).await;
}
