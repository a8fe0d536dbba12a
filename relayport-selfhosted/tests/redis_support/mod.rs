//! A throwaway local redis-server for the Redis-engine tests: started on a free loopback port,
//! without persistence, killed on drop. Without `redis-server` installed the tests say why and
//! pass, except with `CI=true`, where they fail.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long redis-server may take to say it is ready.
const WAIT: Duration = Duration::from_secs(20);

/// A running redis-server, killed on drop.
pub struct RedisServer {
    child: Child,
    /// `redis://127.0.0.1:<port>`.
    pub url: String,
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Starts redis-server, or returns `None` (outside CI) when it is not installed.
/// redis-server on a free port, or `None` (having said why) when it is not installed.
pub async fn redis_server() -> Option<RedisServer> {
    redis_server_on(free_port()).await
}

/// Starts redis-server on `port`, or returns `None` (outside CI) when it is not installed.
/// redis-server on `port` (to restart one on the same address).
pub async fn redis_server_on(port: u16) -> Option<RedisServer> {
    let installed = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("redis-server is not installed: .ci/setup.d/redis.sh should have installed it");
        }
        eprintln!(
            "skipping the Redis engine test: redis-server is not installed (run .ci/setup.d/redis.sh)"
        );
        return None;
    }
    let mut child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-server");
    let stdout = child.stdout.take().expect("stdout");
    let server = RedisServer {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("Ready to accept connections") {
                let _ = tx.send(());
            }
        }
    });
    tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT))
        .await
        .unwrap()
        .expect("redis-server became ready");
    Some(server)
}
