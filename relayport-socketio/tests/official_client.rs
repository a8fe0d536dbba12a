//! The adapter's scenarios driven by the official `socket.io-client` (node's test runner over
//! `adapter/test/`): the adapter is proven by an official client too, not only by ours.
//! Prints SKIP when node or the npm packages are missing, except under `CI=true`.

use std::process::Command;
use std::time::{Duration, Instant};

use relayport_socketio::testing::{adapter_dir, require_node};

#[test]
fn the_official_socket_io_client_passes_the_adapter_scenarios() {
    if !require_node("official socket.io-client scenarios") {
        return;
    }
    let started = Instant::now();
    let output = Command::new("node")
        .args(["--test", "test/adapter.test.mjs"])
        .current_dir(adapter_dir())
        .output()
        .expect("run node --test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test failed ({:?}):\n{stdout}\n{stderr}",
        output.status
    );
    // The runner's summary: every scenario ran and passed.
    let count = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {key} ")))
            .and_then(|n| n.trim().parse::<u32>().ok())
    };
    assert_eq!(count("fail"), Some(0), "{stdout}");
    assert!(count("pass").is_some_and(|n| n >= 5), "{stdout}");
    assert!(started.elapsed() < Duration::from_secs(60));
}
