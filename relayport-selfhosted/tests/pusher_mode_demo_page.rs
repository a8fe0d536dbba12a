//! The demo page (`examples/web/index.html`, the official pusher-js from npm) against
//! relayport-server's Pusher mode, in headless Chromium: it connects, subscribes, shows a
//! message published through the Pusher HTTP API, and shows presence members join and leave.
//! `tests/pusher-js/demo.mjs` serves the page and drives the browser (playwright-core).
//!
//! Needs node, `tests/pusher-js/node_modules` (`.ci/setup.d/pusher-js.sh`) and Chromium
//! (`.ci/setup.d/chromium.sh`). Without them the test prints SKIP and passes, except with
//! `CI=true`, where it fails.

mod pusher_mode_common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pusher_mode_common::{builder, start_with};
use relayport_selfhosted::server::pusher::PusherApp;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/pusher-js")
}

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// `Some(reason)` when the demo cannot run here.
fn missing() -> Option<String> {
    let node = Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    for m in ["pusher-js", "pusher", "playwright-core"] {
        if !dir().join("node_modules").join(m).is_dir() {
            return Some(format!(
                "tests/pusher-js/node_modules/{m} is missing (run .ci/setup.d/pusher-js.sh)"
            ));
        }
    }
    if chromium().is_none() {
        return Some("chromium is not installed (run .ci/setup.d/chromium.sh)".into());
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_works_in_headless_chromium() {
    if let Some(why) = missing() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true and the demo page cannot run: {why}");
        }
        eprintln!("SKIP the_demo_page_works_in_headless_chromium: {why}");
        return;
    }
    let app = PusherApp::new("demo-app", "demo-key", "demo-secret");
    let h = start_with(builder().pusher_apps(vec![app])).await;
    let port = h.local_addr().port();
    let chromium = chromium().expect("checked");
    let run = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("demo.mjs")
            .current_dir(dir())
            .env("RELAYPORT_PORT", port.to_string())
            .env("PUSHER_APP_ID", "demo-app")
            .env("PUSHER_KEY", "demo-key")
            .env("PUSHER_SECRET", "demo-secret")
            .env("CHROMIUM", chromium)
            .output()
    });
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the demo ends within 90 s")
        .expect("join")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("demo ok"),
        "the demo failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for step in [
        "page connected and subscribed",
        "page received the published message",
        "page sees presence: ada, grace",
        "page sees grace leave",
    ] {
        assert!(stdout.contains(step), "step `{step}` missing:\n{stdout}");
    }
    h.shutdown().await;
}
