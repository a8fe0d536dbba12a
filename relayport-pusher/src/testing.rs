//! Test support (feature `testing`): a real sockudo, the Pusher-protocol server, on loopback.
//!
//! [`Sockudo::start`] writes a generated config for one app, starts the `sockudo` binary on a
//! free 127.0.0.1 port, waits until it accepts connections, and kills it on drop. Used by this
//! crate's tests, the workspace's conformance suite and the benchmark harness, so that there is
//! one launcher to keep in step with sockudo's releases.
//!
//! When sockudo is not installed, `start` returns `None` after printing why, so a test can
//! return early; under `CI=true` it panics instead, since CI installs sockudo
//! (`.ci/setup.d/sockudo.sh`) and a missing peer there is a broken setup, not a skip.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::Credentials;

/// The app id the generated config declares.
pub const APP_ID: &str = "1234567";
/// The app's key.
pub const KEY: &str = "e2e-key";
/// The app's secret.
pub const SECRET: &str = "e2e-secret-0123456789";
/// How long the server lets a connection stay without signing in (`pusher:signin`) or
/// subscribing to a private or presence channel before it closes it with 4009, in seconds:
/// pusher.com's and soketi's 30 s (sockudo's own default is an hour), so every test that runs
/// that long meets the window.
pub const USER_AUTHENTICATION_TIMEOUT_SECS: u64 = 30;

/// A running sockudo process; killed (and its config removed) on drop.
#[derive(Debug)]
pub struct Sockudo {
    child: Option<Child>,
    /// Its port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

/// The installed sockudo binary: on `PATH`, or in `~/.cargo/bin`.
pub fn find_binary() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("sockudo")];
    if let Some(home) = std::env::var_os("HOME") {
        candidates.push(PathBuf::from(home).join(".cargo/bin/sockudo"));
    }
    candidates.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The config sockudo runs with: loopback only, in-memory everything, one app with client
/// events and user authentication enabled, and the 30 s sign-in window.
pub fn config(port: u16) -> String {
    format!(
        r#"debug = false
host = "127.0.0.1"
port = {port}
activity_timeout = 120
user_authentication_timeout = {USER_AUTHENTICATION_TIMEOUT_SECS}
[adapter]
driver = "local"
[app_manager]
driver = "memory"
[app_manager.array]
[[app_manager.array.apps]]
id = "{APP_ID}"
key = "{KEY}"
secret = "{SECRET}"
enabled = true
[app_manager.array.apps.policy.features]
enable_client_messages = true
enable_user_authentication = true
[cache]
driver = "memory"
[queue]
driver = "memory"
[metrics]
enabled = false
"#
    )
}

impl Sockudo {
    /// Starts sockudo on a free port and waits until it accepts connections; `None` (outside
    /// CI) when it is not installed.
    ///
    /// # Panics
    /// Under `CI=true` when sockudo is missing, and when it does not come up within 35 s.
    pub async fn start() -> Option<Sockudo> {
        let Some(binary) = find_binary() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("sockudo is not installed; .ci/setup.d/sockudo.sh installs it");
            }
            eprintln!("SKIP: sockudo is not installed (run .ci/setup.d/sockudo.sh to install it)");
            return None;
        };
        static RUN: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "realtime-sockudo-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = Sockudo {
            child: None,
            port: free_port(),
            dir,
            binary,
        };
        s.launch().await;
        Some(s)
    }

    /// (Re)starts the process on the same port and waits until it accepts connections.
    ///
    /// # Panics
    /// When sockudo cannot be spawned or does not come up within 35 s.
    pub async fn launch(&mut self) {
        let path = self.dir.join("config.toml");
        std::fs::write(&path, config(self.port)).expect("write sockudo config");
        let mut child = Command::new(&self.binary)
            .arg("--config")
            .arg(&path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sockudo");
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let needle = format!("listen_addr=127.0.0.1:{}", self.port);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        // Drain both pipes for the process's life (a full pipe would stall sockudo); signal
        // readiness on the "listening" line.
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if strip_ansi(&line).contains(&needle)
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("sockudo: {line}");
            }
        });
        self.child = Some(child);
        match tokio::time::timeout(Duration::from_secs(30), ready_rx).await {
            Ok(Ok(())) => {}
            other => panic!(
                "sockudo did not report listening on {}: {other:?}",
                self.port
            ),
        }
        // sockudo logs "listening" just before its socket accepts and says nothing later, so
        // probe the port (bounded: at most 5 s, 10 ms apart).
        let addr = format!("127.0.0.1:{}", self.port);
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("sockudo logged listening but {addr} refuses connections");
    }

    /// Kills the process at once (a crash, from the clients' point of view).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts the process again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// The app's credentials.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(APP_ID, KEY, SECRET)
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Sockudo {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
