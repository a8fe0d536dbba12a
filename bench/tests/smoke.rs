//! CI smoke run: every scenario at a tiny size, in-process (sockudo too when it is
//! installed), so that the harness never rots. Asserts that the harness produced sane
//! results — everything delivered exactly once, nobody disconnected — and never a time.

use std::path::PathBuf;

use relayport_bench::scenarios::{channels, fanout, idle, runtime, storm};
use relayport_bench::{Launch, PeerKind, plot, report};

fn peers() -> Vec<PeerKind> {
    let mut p = vec![PeerKind::Baseline, PeerKind::Ours];
    if relayport_bench::peer::sockudo_bin().is_some() {
        p.push(PeerKind::Sockudo);
    }
    p
}

fn out_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "relayport-bench-smoke-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::create_dir_all(&d);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_everything_once_to_every_peer() {
    let cfg = fanout::FanoutConfig {
        subscribers: vec![5],
        steps: vec![100, 250],
        step_secs: 0.4,
        warmup_secs: 0.1,
        drain_secs: 5.0,
        peers: peers(),
        ..Default::default()
    };
    let r = fanout::run(&cfg, &Launch::InProcess)
        .await
        .expect("fanout runs");
    assert!(r.skipped.is_empty(), "skipped: {:?}", r.skipped);
    for p in &cfg.peers {
        let rows: Vec<_> = r.rows.iter().filter(|x| x.peer == *p).collect();
        assert_eq!(rows.len(), 2, "{p:?} ran every step");
        for row in rows {
            assert!(row.published > 0, "{row:?}");
            assert_eq!(row.received, row.expected, "{row:?}");
            assert_eq!(row.delivery_ratio, 1.0, "{row:?}");
            assert_eq!(row.duplicates, 0, "{row:?}");
            assert_eq!(row.disconnected, 0, "{row:?}");
            assert_eq!(row.latency.count, row.received, "{row:?}");
        }
    }
    assert_eq!(r.best.len(), cfg.peers.len());
    let dir = out_dir("fanout");
    report::write(&dir, "fanout", &r, &report::fanout_md(&r)).expect("report");
    let plots = plot::fanout(&r, &dir).expect("plot");
    assert_eq!(plots, vec!["fanout-5.svg".to_owned()]);
    let svg = std::fs::read_to_string(dir.join("fanout-5.svg")).expect("svg written");
    assert!(svg.contains("<svg"));
    let json = std::fs::read_to_string(dir.join("fanout.json")).expect("json written");
    let back: fanout::FanoutResult = serde_json::from_str(&json).expect("json parses back");
    assert_eq!(back.rows.len(), r.rows.len());
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_counted_for_every_peer() {
    let cfg = idle::IdleConfig {
        connections: 20,
        peers: peers(),
        settle_secs: 0.2,
        cpu_secs: 0.2,
        connect_concurrency: 8,
    };
    let r = idle::run(&cfg, &Launch::InProcess)
        .await
        .expect("idle runs");
    assert!(r.skipped.is_empty(), "skipped: {:?}", r.skipped);
    assert_eq!(r.rows.len(), cfg.peers.len());
    for row in &r.rows {
        assert_eq!(row.connections, 20);
        assert!(row.rss_before > 0 && row.rss_after > 0, "{row:?}");
    }
    let dir = out_dir("idle");
    report::write(&dir, "idle", &r, &report::idle_md(&r)).expect("report");
    assert_eq!(plot::idle(&r, &dir).expect("plot").len(), 1);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_channels_deliver_each_publish_once() {
    let cfg = channels::ChannelsConfig {
        channels: 10,
        rates: vec![200.0, 0.0],
        unpaced_messages: 200,
        step_secs: 0.4,
        warmup_secs: 0.1,
        drain_secs: 5.0,
        publishers: 4,
        peers: peers(),
        connect_concurrency: 8,
        ..Default::default()
    };
    let r = channels::run(&cfg, &Launch::InProcess)
        .await
        .expect("channels runs");
    let ran: Vec<_> = cfg
        .peers
        .iter()
        .filter(|p| **p != PeerKind::Baseline)
        .collect();
    assert_eq!(r.rows.len(), ran.len() * 2, "{:?}", r.skipped);
    for row in &r.rows {
        assert_eq!(row.publish_errors, 0, "{row:?}");
        assert_eq!(row.received, row.published, "{row:?}");
        assert_eq!(row.delivery_ratio, 1.0, "{row:?}");
    }
    assert!(!report::channels_md(&r).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_paths_lose_and_duplicate_nothing() {
    let cfg = runtime::RuntimeConfig {
        burst: 300,
        rate: 200.0,
        latency_secs: 0.4,
        rounds: 1,
        payload: 64,
        drain_secs: 10.0,
    };
    let r = runtime::run(&cfg, &Launch::InProcess)
        .await
        .expect("runtime runs");
    assert_eq!(r.rows.len(), 3);
    for row in &r.rows {
        assert_eq!(row.lost, 0, "{row:?}");
        assert_eq!(row.duplicates, 0, "{row:?}");
        assert!(row.msgs_per_sec > 0.0, "{row:?}");
    }
    assert!(report::runtime_md(&r).contains("RealtimeClient"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_storm_recovers_every_client_without_loss_or_duplicates() {
    let cfg = storm::StormConfig {
        clients: 10,
        rate: 50.0,
        before_secs: 0.3,
        after_secs: 0.5,
        history_size: 1_000,
        settle_secs: 30.0,
        connect_concurrency: 10,
    };
    let r = storm::run(&cfg).await.expect("storm runs");
    assert!(r.published > 0);
    assert_eq!(r.lost, 0, "{r:?}");
    assert_eq!(r.duplicates, 0, "{r:?}");
    assert_eq!(r.complete_clients, 10, "{r:?}");
    assert!(r.all_recovered_ms.is_some(), "{r:?}");
    assert!(report::storm_md(&r).contains("10 / 10"));
}
