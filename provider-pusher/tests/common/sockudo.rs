//! Starts a real sockudo (Pusher-protocol server) on a free loopback port with a generated
//! config, waits for its "listening" log line, and kills it on drop.
//!
//! When sockudo is not installed: under `CI=true` the test fails; otherwise it prints why and
//! the test returns early (`.ci/setup.d/sockudo.sh` installs it).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use provider_pusher::Credentials;

/// The app the generated config declares.
pub const APP_ID: &str = "1234567";
/// Its key.
pub const KEY: &str = "e2e-key";
/// Its secret.
pub const SECRET: &str = "e2e-secret-0123456789";

/// A running sockudo; killed (and its config removed) on drop.
pub struct Sockudo {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

fn find_binary() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("sockudo")];
    if let Ok(home) = std::env::var("HOME") {
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

fn config(port: u16) -> String {
    format!(
        r#"debug = false
host = "127.0.0.1"
port = {port}
activity_timeout = 120
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
    /// Starts sockudo on a free port, or returns `None` (outside CI) when it is not installed.
    pub async fn start() -> Option<Sockudo> {
        let Some(binary) = find_binary() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("sockudo is not installed; .ci/setup.d/sockudo.sh installs it");
            }
            eprintln!(
                "skipping: sockudo is not installed (run .ci/setup.d/sockudo.sh to install it)"
            );
            return None;
        };
        static RUN: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "provider-pusher-sockudo-{}-{}",
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

    /// (Re)starts the process on the same port and waits until it listens.
    pub async fn launch(&mut self) {
        let path = self.dir.join("config.toml");
        std::fs::write(&path, config(self.port)).expect("write config");
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
        let needle = format!("listening listen_addr=127.0.0.1:{}", self.port);
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        // Drain both pipes until the process ends (a full pipe would stall sockudo); signal
        // readiness on the "listening" line.
        std::thread::spawn(move || {
            let mut ready = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let plain: String = strip_ansi(&line);
                if plain.contains(&needle)
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
        // sockudo logs "listening" just before its socket accepts; there is no later signal,
        // so probe the port (bounded: at most 5 s, 10 ms apart).
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
