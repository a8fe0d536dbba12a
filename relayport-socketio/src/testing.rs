//! Test support (feature `testing`): the adapter's test server, a real `socket.io` 4.x server
//! from npm run by node, on loopback.
//!
//! [`NodeServer::start`] runs `adapter/test-server.mjs` (the adapter attached to `/` and
//! `/chat`, connection state recovery on, a few raw test events) on a free 127.0.0.1 port and
//! kills it on drop. When node or the adapter's `node_modules` are missing, `start` prints
//! `SKIP` and returns `None`; under `CI=true` it panics instead, since CI installs them
//! (`.ci/setup.d/socketio.sh`). It runs from a source checkout (the adapter is not part of the
//! published crate), which is where the tests that use it run.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The secret the test server's adapter signs with.
pub const SECRET: &str = "socketio-test-secret";

/// The adapter's directory in this crate's source tree.
pub fn adapter_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("adapter")
}

/// Whether node answers `node --version`.
pub fn node_available() -> bool {
    Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `None` when node and the adapter's npm packages are installed, otherwise why not.
pub fn missing() -> Option<String> {
    if !node_available() {
        return Some("node is not installed".into());
    }
    for package in ["socket.io", "socket.io-client"] {
        if !adapter_dir()
            .join("node_modules")
            .join(package)
            .join("package.json")
            .exists()
        {
            return Some(format!(
                "{package} is not installed in {} (run .ci/setup.d/socketio.sh)",
                adapter_dir().display()
            ));
        }
    }
    None
}

/// Returns `true` when the node peer can run; otherwise prints `SKIP` (or panics under
/// `CI=true`, where a missing tool is a broken setup).
pub fn require_node(test: &str) -> bool {
    match missing() {
        None => true,
        Some(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{test}: {why}; .ci/setup.d/socketio.sh installs it")
        }
        Some(why) => {
            eprintln!("SKIP {test}: {why}");
            false
        }
    }
}

/// A running test server; killed on drop.
#[derive(Debug)]
pub struct NodeServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1 (kept across restarts).
    pub port: u16,
    env: Vec<(String, String)>,
}

impl NodeServer {
    /// Starts the server on a free port (connection state recovery on); `None` after printing
    /// `SKIP` when node or the npm packages are missing (outside CI).
    ///
    /// # Panics
    /// Under `CI=true` when they are missing, and when the server does not come up in 20 s.
    pub async fn start(test: &str) -> Option<Self> {
        Self::start_with(test, &[]).await
    }

    /// [`NodeServer::start`] with extra environment for `test-server.mjs` (`RECOVERY=0`,
    /// `PING_INTERVAL`, `PING_TIMEOUT`).
    pub async fn start_with(test: &str, env: &[(&str, &str)]) -> Option<Self> {
        if !require_node(test) {
            return None;
        }
        let mut server = Self {
            child: None,
            port: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.launch().await;
        Some(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// (Re)starts the process (on the same port once it has one) and waits for it to listen.
    ///
    /// # Panics
    /// When node cannot be spawned or the server does not report listening within 20 s.
    pub async fn launch(&mut self) {
        let mut command = Command::new("node");
        command
            .arg("test-server.mjs")
            .current_dir(adapter_dir())
            .env("PORT", self.port.to_string())
            .env("SECRET", SECRET)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn node test-server.mjs");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = tokio::sync::oneshot::channel::<u16>();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .strip_prefix("listening ")
                    .and_then(|p| p.trim().parse().ok())
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(port);
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("socket.io test server: {line}");
            }
        });
        self.child = Some(child);
        // A restart may find the port still in TIME_WAIT for a moment: node then exits and
        // the wait below fails with the reason on stderr.
        match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(port)) => self.port = port,
            other => panic!("the socket.io test server did not start: {other:?}"),
        }
    }

    /// Kills the process at once (a crash, from the clients' point of view).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills and starts the server again on the same port.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        self.kill();
    }
}
