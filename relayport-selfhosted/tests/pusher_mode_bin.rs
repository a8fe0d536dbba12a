//! The `relayport-server` binary's Pusher mode configuration: apps from a JSON file, the
//! default app's id and key from flags, bad files refused, secrets never printed.
#![cfg(all(feature = "server", feature = "client"))]

mod pusher_mode_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pusher_mode_common::{PusherWs, WAIT};

const BIN: &str = env!("CARGO_BIN_EXE_relayport-server");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "REALTIME_SECRET",
        "REALTIME_SECRET_FILE",
        "REALTIME_PUSHER_APPS_FILE",
        "REALTIME_PUSHER_APP_ID",
        "REALTIME_PUSHER_KEY",
        "PORT",
        "REDIS_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn")
        .env("REALTIME_SECRET", "bin-secret");
    cmd
}

struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary with `args` and returns it with the lines it printed at start.
async fn start(args: &[&str]) -> (Reap, Vec<String>) {
    let mut child = Reap(
        command()
            .args(["--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("run relayport-server"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let lines = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(WAIT) {
            let done = line.starts_with("pusher protocol");
            lines.push(line);
            if done {
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    (child, lines)
}

fn addr_of(lines: &[String]) -> std::net::SocketAddr {
    lines
        .iter()
        .find_map(|l| {
            l.rsplit("http://")
                .next()
                .and_then(|a| a.trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no address in {lines:?}"))
}

#[tokio::test]
async fn pusher_mode_apps_come_from_a_file_or_flags() {
    let dir = std::env::temp_dir().join(format!("rp-pusher-apps-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("apps.json");
    std::fs::write(
        &file,
        r#"{"apps": [{"id": "7", "key": "file-key", "secret": "file-secret-xyz"}]}"#,
    )
    .unwrap();
    let (_child, lines) = start(&["--pusher-apps-file", file.to_str().unwrap()]).await;
    let text = lines.join("\n");
    assert!(text.contains("/app/file-key (app id 7)"), "{text}");
    assert!(
        !text.contains("file-secret-xyz") && !text.contains("bin-secret"),
        "{text}"
    );
    let c = PusherWs::connect_key(addr_of(&lines), "file-key").await;
    assert!(!c.socket_id.is_empty());

    let (_child2, lines) = start(&["--pusher-key", "flag-key"]).await;
    assert!(
        lines
            .join("\n")
            .contains("/app/flag-key (app id relayport)"),
        "{lines:?}"
    );
    PusherWs::connect_key(addr_of(&lines), "flag-key").await;

    // A bad file stops the start with exit code 2 and a reason.
    std::fs::write(
        &file,
        r#"{"apps": [{"id": "7", "key": "k", "secret": ""}]}"#,
    )
    .unwrap();
    let out = command()
        .args(["--port", "0", "--pusher-apps-file", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("secret is empty"));
    let _ = std::fs::remove_dir_all(&dir);
}
