//! The official `@supabase/realtime-js` (pinned in `js/package-lock.json`, installed by
//! `.ci/setup.d/realtime-js.sh`) against the peer binary: `js/scenarios.mjs` runs every
//! scenario over vsn 1.0.0 and 2.0.0 (broadcast self/ack, presence, private channels with
//! good/missing/forged tokens, setAuth refresh, token expiry, postgres_changes, REST, binary
//! broadcasts (kind 3 in, kind 4 out, never to vsn 1), phx_error rejoin). Skipped with a
//! message when node or node_modules is missing, except under `CI=true`, where that is a
//! failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SECRET: &str = "official-sdk-secret-official-sdk-secret";

fn js_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// `Some(reason)` when the scenarios cannot run here.
fn missing() -> Option<String> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        return Some("node is not installed".into());
    }
    let pkg = js_dir().join("node_modules/@supabase/realtime-js/package.json");
    if !pkg.exists() {
        return Some(format!(
            "{} is missing (run .ci/setup.d/realtime-js.sh)",
            pkg.display()
        ));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_js_passes_every_scenario_against_the_peer() {
    if let Some(why) = missing() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true and the official SDK cannot run: {why}"
        );
        println!("SKIP realtime_js_passes_every_scenario_against_the_peer: {why}");
        return;
    }
    let mut peer = Command::new(env!("CARGO_BIN_EXE_relayport-supabase-peer"))
        .args([
            "--port",
            "0",
            "--secret",
            SECRET,
            "--error-backoff-ms",
            "100",
        ])
        .arg("--exit-with-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the peer binary starts");
    let stdout = peer.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the peer announces its address in time")
        .expect("the peer's stdout is readable")
        .expect("the peer printed a line");
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    let node = Command::new("node")
        .arg("scenarios.mjs")
        .current_dir(js_dir())
        .env("PEER_URL", &url)
        .env("PEER_SECRET", SECRET)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(180), node)
        .await
        .expect("the scenarios finish within 3 minutes")
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let summary = text
        .lines()
        .rev()
        .find(|l| l.ends_with(" failed"))
        .expect("a closing summary line");
    let passed: usize = summary
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a passed count");
    assert!(
        out.status.success(),
        "realtime-js scenarios failed: {summary}"
    );
    assert!(summary.ends_with(", 0 failed"), "{summary}");
    assert!(passed >= 15, "only {passed} scenarios ran");
    drop(peer);
}
