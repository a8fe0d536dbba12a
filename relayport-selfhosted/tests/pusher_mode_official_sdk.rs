//! The official `pusher-js` client (its node build) and the official `pusher` server SDK run
//! `tests/pusher-js/scenario.js` against relayport-server's Pusher mode: public, private,
//! presence and encrypted channels, client events, sign-in and server-to-user events,
//! terminate, REST publish, batch and queries, webhooks checked by the SDK's own verifier.
//!
//! Needs `node` and `tests/pusher-js/node_modules` (`.ci/setup.d/pusher-js.sh` installs them).
//! Without them the test prints SKIP and passes, except with `CI=true`, where it fails.

mod pusher_mode_common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pusher_mode_common::{builder, start_with};
use relayport_selfhosted::server::pusher::PusherApp;

const MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn scenario_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pusher-js")
}

/// `Some(reason)` when the scenario cannot run here.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    for m in ["pusher-js", "pusher", "ws"] {
        if !scenario_dir().join("node_modules").join(m).is_dir() {
            return Some(format!(
                "tests/pusher-js/node_modules/{m} is missing (run .ci/setup.d/pusher-js.sh)"
            ));
        }
    }
    None
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_mode_official_sdks_run_the_scenario() {
    if let Some(why) = missing() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and the official SDK scenario cannot run: {why}");
        }
        eprintln!("SKIP pusher_mode_official_sdks_run_the_scenario: {why}");
        return;
    }
    let hook_port = free_port();
    let mut app = PusherApp::new("app-1", "key-1", "secret-1");
    app.webhooks = vec![format!("http://127.0.0.1:{hook_port}/pusher/webhooks")];
    let h = start_with(builder().pusher_apps(vec![app])).await;
    let port = h.local_addr().port();
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("scenario.js")
            .current_dir(scenario_dir())
            .env("RP_PORT", port.to_string())
            .env("RP_APP_ID", "app-1")
            .env("RP_KEY", "key-1")
            .env("RP_SECRET", "secret-1")
            .env("RP_MASTER_KEY", MASTER_KEY)
            .env("RP_HOOK_PORT", hook_port.to_string())
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the scenario ends within 90 s")
        .expect("join")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SCENARIO OK"),
        "scenario failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "raw connection_established",
        "public + trigger info",
        "private + client events",
        "presence + REST queries",
        "batch",
        "encrypted",
        "signin + watchlist + sendToUser + terminate",
    ] {
        assert!(
            stdout.contains(&format!("ok {step}")),
            "step {step} missing:\n{stdout}"
        );
    }
    h.shutdown().await;
}
