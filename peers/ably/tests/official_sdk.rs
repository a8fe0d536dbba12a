//! The official ably npm SDK (`js/scenarios.mjs`, version pinned by `js/package-lock.json`)
//! against the `relayport-ably-peer` binary: the peer is only as good as the official
//! client's agreement with it. Skipped (printing SKIP) when node or `js/node_modules` is
//! missing, unless `CI=true` (`.ci/setup.d/ably-js.sh` installs them).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const SCENARIOS: [&str; 12] = [
    "connect_with_key",
    "attach_publish_subscribe",
    "presence_enter_leave_sync",
    "token_auth_with_token_request",
    "capability_refusal",
    "resume_after_drop_loses_nothing",
    "bad_key_fails",
    "close_leaves_at_once",
    "token_expiry_renews_and_resumes",
    "server_requested_reauth",
    "presence_reentry_after_failed_resume",
    "echo_messages_false",
];

fn skip_or_fail(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true and {why}; run .ci/setup.d/ably-js.sh");
    }
    println!("SKIP official_sdk: {why} (run .ci/setup.d/ably-js.sh)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_ably_sdk_agrees_with_the_peer() {
    let js = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("js");
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !node_ok {
        return skip_or_fail("node is not installed");
    }
    if !js.join("node_modules/ably/package.json").exists() {
        return skip_or_fail("peers/ably/js/node_modules has no ably");
    }

    let mut peer = Command::new(env!("CARGO_BIN_EXE_relayport-ably-peer"))
        .args(["--port", "0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the peer binary starts");
    let mut lines = BufReader::new(peer.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("the peer announces its address in time")
        .expect("stdout readable")
        .expect("a line");
    let port = first
        .strip_prefix("listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();

    let out = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new("node")
            .arg("scenarios.mjs")
            .arg(&port)
            .current_dir(&js)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the scenarios finish in time")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    for name in SCENARIOS {
        assert!(
            stdout.lines().any(|l| l == format!("PASS {name}")),
            "scenario {name} did not pass:\n{stdout}"
        );
    }
    assert!(out.status.success(), "node exited with {}", out.status);
    let _ = peer.kill().await;
}
