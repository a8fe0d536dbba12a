//! The compiled `relayport-server` binary: refuses to start without a secret, documents its
//! flags, serves `/health`, and shuts down gracefully on SIGTERM.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use relayport_selfhosted::protocol::close;
use serde_json::Value;
use server_common::*;

const BIN: &str = env!("CARGO_BIN_EXE_relayport-server");

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "REALTIME_SECRET",
        "PORT",
        "HOST",
        "CORS_ORIGIN",
        "REDIS_URL",
        "REALTIME_MAX_PAYLOAD",
        "REALTIME_ALLOW_PUBLIC_PUBLISH",
        "REALTIME_SECRET_FILE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Kills the child if the test fails midway.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn refuses_to_start_without_a_secret() {
    let out = command()
        .args(["--port", "0"])
        .output()
        .expect("run relayport-server");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REALTIME_SECRET"), "{stderr}");
    assert!(stderr.contains("--secret"), "{stderr}");
    // An empty secret is no secret.
    let out = command()
        .env("REALTIME_SECRET", "")
        .args(["--port", "0"])
        .output()
        .expect("run relayport-server");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_documents_every_flag() {
    let out = command()
        .arg("--help")
        .output()
        .expect("run relayport-server");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--secret",
        "REALTIME_SECRET",
        "--port",
        "PORT",
        "--host",
        "--cors-origin",
        "CORS_ORIGIN",
        "--max-payload",
        "--max-subscriptions",
        "--publishes-per-minute",
        "--send-queue",
        "--history-size",
        "--history-ttl-secs",
        "--allow-public-publish",
        "--redis-url",
        "--secret-file",
        "--send-queue-bytes",
        "--subscribes-per-minute",
        "--presence-updates-per-minute",
        "--max-connections",
        "--header-read-timeout-secs",
        "--request-timeout-secs",
        "--sse-ticket-ttl-secs",
        "--idle-channel-ttl-secs",
    ] {
        assert!(
            help.contains(flag),
            "--help does not mention {flag}:\n{help}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_stops_gracefully_on_sigterm() {
    let mut child = command()
        .env("REALTIME_SECRET", SECRET)
        .args(["--port", "0", "--host", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn relayport-server");
    let stdout = child.stdout.take().expect("stdout");
    let pid = child.id();
    let mut child = Reap(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("the server prints its address");
    let addr: std::net::SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));

    let health: Value = within("GET /health", async {
        http()
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
    .await;
    assert_eq!(health["status"], "ok");

    let mut c = WsClient::connect(addr).await;
    c.subscribe("room").await;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(c.until_close().await.0, Some(close::SERVICE_RESTART));
    let exit = tokio::time::timeout(
        WAIT,
        tokio::task::spawn_blocking(move || child.0.wait().ok()),
    )
    .await;
    let Ok(Ok(exit)) = exit else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("relayport-server did not exit after SIGTERM");
    };
    assert_eq!(exit.and_then(|s| s.code()), Some(0), "exits cleanly");
}

/// Issue 11, item 8: `--help` printed the environment's Redis URL, password included.
#[test]
fn help_never_prints_secrets_from_the_environment() {
    let out = command()
        .env("REDIS_URL", "redis://:hunter2-redis@127.0.0.1:6379")
        .env("REALTIME_SECRET", "hunter2-secret")
        .arg("--help")
        .output()
        .expect("run relayport-server");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("REDIS_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_can_come_from_a_file() {
    let dir = std::env::temp_dir().join(format!("relayport-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("secret");
    std::fs::write(&path, format!("{SECRET}\n")).unwrap();
    let mut child = Reap(
        command()
            .arg("--secret-file")
            .arg(&path)
            .args(["--port", "0", "--host", "127.0.0.1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn relayport-server"),
    );
    let stdout = child.0.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout).lines().map_while(Result::ok).next()
    })
    .await
    .unwrap()
    .expect("the server prints its address");
    let addr: std::net::SocketAddr = line
        .rsplit("http://")
        .next()
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // The file's secret (without its newline) authorizes the HTTP API.
    let (status, body) = get_json(addr, "/channels/room").await;
    assert_eq!(status, 200, "{body}");
    drop(child);
    let missing = command()
        .arg("--secret-file")
        .arg(dir.join("missing"))
        .output()
        .expect("run relayport-server");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("secret file"));
    let _ = std::fs::remove_dir_all(&dir);
}
