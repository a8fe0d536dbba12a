//! The loopback peers: a server per provider the suite can start, restart and configure.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use realtime::ProviderConfig;
use realtime::config::MapEnv;
use realtime::selfhosted::server::{Server, ServerHandle};

/// A server the scenarios run against.
#[realtime::async_trait]
pub trait Peer: Send {
    /// The provider's name.
    fn name(&self) -> &'static str;
    /// The full configuration (with the server secret) for this peer.
    fn config(&self) -> ProviderConfig;
    /// The same configuration with a wrong server secret.
    fn config_with_wrong_secret(&self) -> ProviderConfig;
    /// Drops every connection and comes back on the same address.
    async fn restart(&mut self);
}

// ---- self-hosted ------------------------------------------------------------------------

const SELFHOSTED_SECRET: &str = "conformance-secret";

/// The self-hosted server, in this process.
pub struct SelfHosted {
    handle: Option<ServerHandle>,
    url: String,
}

impl SelfHosted {
    pub async fn start() -> Self {
        let handle = Server::builder()
            .secret(SELFHOSTED_SECRET)
            .bind("127.0.0.1:0")
            .await
            .expect("server binds");
        let url = format!("http://{}", handle.local_addr());
        Self {
            handle: Some(handle),
            url,
        }
    }

    fn config_with(&self, secret: &str) -> ProviderConfig {
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "selfhosted"),
            ("REALTIME_URL", self.url.as_str()),
            ("REALTIME_SECRET", secret),
        ]))
        .expect("config")
    }
}

#[realtime::async_trait]
impl Peer for SelfHosted {
    fn name(&self) -> &'static str {
        "selfhosted"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(SELFHOSTED_SECRET)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-secret")
    }

    async fn restart(&mut self) {
        let handle = self.handle.take().expect("running");
        self.handle = Some(handle.restart().await.expect("restarts"));
    }
}

// ---- sockudo (Pusher) --------------------------------------------------------------------

const APP_ID: &str = "7654321";
const KEY: &str = "conformance-key";
const SECRET: &str = "conformance-secret-0123456789";

/// A sockudo process on a free loopback port; killed on drop.
pub struct Sockudo {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn sockudo_binary() -> Option<PathBuf> {
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

fn sockudo_config(port: u16) -> String {
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

fn without_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
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

impl Sockudo {
    /// Starts sockudo, or returns `None` (printing why) when it is not installed; under
    /// `CI=true` a missing sockudo fails the test.
    pub async fn start() -> Option<Self> {
        let Some(binary) = sockudo_binary() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "sockudo is not installed; .ci/setup.d/sockudo.sh installs it"
            );
            println!(
                "SKIP pusher: sockudo is not installed (run .ci/setup.d/sockudo.sh to install it)"
            );
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!("realtime-conformance-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = Self {
            binary,
            dir,
            port,
            child: None,
        };
        s.launch().await;
        Some(s)
    }

    async fn launch(&mut self) {
        let path = self.dir.join("sockudo.toml");
        std::fs::write(&path, sockudo_config(self.port)).expect("config written");
        let mut child = Command::new(&self.binary)
            .arg("--config")
            .arg(&path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sockudo spawns");
        let stdout = child.stdout.take().expect("stdout");
        self.child = Some(child);
        let needle = format!("listen_addr=127.0.0.1:{}", self.port);
        let (ready, listening) = tokio::sync::oneshot::channel();
        // Drain stdout for the process's life (a full pipe would stall it).
        std::thread::spawn(move || {
            let mut ready = Some(ready);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if without_ansi(&line).contains(&needle)
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(());
                }
            }
        });
        let waited = tokio::time::timeout(Duration::from_secs(30), listening).await;
        assert!(
            matches!(waited, Ok(Ok(()))),
            "sockudo did not report listening on {}",
            self.port
        );
        // It logs just before its socket accepts and says nothing later: probe the port,
        // bounded (5 s), every 10 ms.
        let addr = format!("127.0.0.1:{}", self.port);
        let mut probe = tokio::time::interval(Duration::from_millis(10));
        for _ in 0..500 {
            probe.tick().await;
            if tokio::net::TcpStream::connect(&addr).await.is_ok() {
                return;
            }
        }
        panic!("sockudo logged listening but {addr} refuses connections");
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config_with(&self, secret: &str) -> ProviderConfig {
        let port = self.port.to_string();
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "pusher"),
            ("PUSHER_APP_ID", APP_ID),
            ("PUSHER_KEY", KEY),
            ("PUSHER_SECRET", secret),
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", port.as_str()),
            ("PUSHER_TLS", "false"),
        ]))
        .expect("config")
    }
}

impl Drop for Sockudo {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[realtime::async_trait]
impl Peer for Sockudo {
    fn name(&self) -> &'static str {
        "pusher"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(SECRET)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-secret-0123456789")
    }

    async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }
}
