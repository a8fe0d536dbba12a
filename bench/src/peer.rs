//! The peers: the bare baseline, our server and sockudo; how each is started, reached,
//! published to and stopped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use relayport_pusher::auth::Credentials;
use relayport_pusher::rest::{PusherRest, TriggerOptions};
use relayport_selfhosted::protocol::Limits;
use relayport_selfhosted::server::{Server, ServerHandle};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use crate::sys;
use crate::wsclient::{Proto, Target, WsConn};

/// The app secret every peer is started with.
pub const SECRET: &str = "bench-secret-0123456789";
/// sockudo's app id, key and secret: those of relayport-pusher's shared sockudo config.
pub const PUSHER_APP: (&str, &str, &str) = (
    relayport_pusher::testing::APP_ID,
    relayport_pusher::testing::KEY,
    relayport_pusher::testing::SECRET,
);

/// The default Pusher app of `relayport-server` (id and key; signed with its secret).
const OURS_PUSHER_APP: &str = "relayport";

/// A peer of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    /// The bare tokio-tungstenite broadcast server (the limit).
    Baseline,
    /// Our `relayport-server`.
    Ours,
    /// sockudo, through the Pusher protocol.
    Sockudo,
    /// Our `relayport-server` through its Pusher-protocol mode (`/app/relayport`, the Pusher
    /// HTTP API): the same protocol and client code as sockudo, apples to apples.
    #[value(name = "ours-pusher")]
    #[serde(rename = "ours-pusher")]
    OursPusher,
}

impl PeerKind {
    /// A short display name.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Baseline => "baseline",
            PeerKind::Ours => "ours",
            PeerKind::Sockudo => "sockudo",
            PeerKind::OursPusher => "ours-pusher",
        }
    }
}

/// How servers are started.
#[derive(Debug, Clone)]
pub enum Launch {
    /// The baseline and our server inside this process (smoke tests); sockudo is always a
    /// separate process.
    InProcess,
    /// Every server in its own process, so its RSS and CPU are its own.
    Process {
        /// This harness's executable (runs the baseline with `baseline-server`).
        self_exe: PathBuf,
        /// The `relayport-server` executable (release build).
        server_bin: PathBuf,
        /// Prefix servers with `taskset -c <cpus>` when set.
        server_cpus: Option<String>,
        /// Run our server through this harness (`ours-server`, the same library as
        /// `relayport-server`) with these WebSocket buffer sizes instead of the binary's
        /// defaults: an experiment knob for "what would this setting change".
        ours_buffers: Option<(usize, usize)>,
    },
}

/// Settings of our server that a scenario may need.
#[derive(Debug, Clone, Copy)]
pub struct PeerOptions {
    /// Frames queued per connection before a slow-consumer close.
    pub send_queue: usize,
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self {
            send_queue: Limits::default().send_queue,
        }
    }
}

enum Inner {
    Child(Box<Child>, Option<PathBuf>),
    Baseline(CancellationToken),
    Ours(Box<ServerHandle>),
}

/// A running peer.
pub struct Peer {
    /// Which peer.
    pub kind: PeerKind,
    /// Where it listens (WebSocket and HTTP).
    pub addr: SocketAddr,
    inner: Inner,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// relayport-pusher's shared sockudo config, with sockudo's rate limiter off (it would cap the
/// load generator, not measure the server).
fn sockudo_config(port: u16) -> String {
    let mut config = relayport_pusher::testing::config(port);
    config.push_str("[rate_limiter]\nenabled = false\n");
    config
}

fn command(program: &PathBuf, cpus: &Option<String>) -> Command {
    let mut cmd = match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(program);
            cmd
        }
        None => Command::new(program),
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Finds `sockudo` on the `PATH` (or `~/.cargo/bin`).
pub fn sockudo_bin() -> Option<PathBuf> {
    relayport_pusher::testing::find_binary()
}

impl Peer {
    /// Starts a peer and waits until it accepts connections.
    pub async fn start(kind: PeerKind, launch: &Launch, opts: PeerOptions) -> Result<Peer> {
        // `ours-pusher` is our server, started the same way; only the protocol spoken to it
        // differs.
        let server = match kind {
            PeerKind::OursPusher => PeerKind::Ours,
            other => other,
        };
        let mut peer = Self::start_server(server, launch, opts).await?;
        peer.kind = kind;
        Ok(peer)
    }

    async fn start_server(kind: PeerKind, launch: &Launch, opts: PeerOptions) -> Result<Peer> {
        match (kind, launch) {
            (PeerKind::Baseline, Launch::InProcess) => {
                let (addr, stop) = crate::baseline::spawn("127.0.0.1:0").await?;
                Ok(Peer {
                    kind,
                    addr,
                    inner: Inner::Baseline(stop),
                })
            }
            (PeerKind::Ours, Launch::InProcess) => {
                let limits = Limits {
                    send_queue: opts.send_queue,
                    ..Limits::default()
                };
                let handle = Server::builder()
                    .secret(SECRET)
                    .limits(limits)
                    .bind("127.0.0.1:0")
                    .await
                    .context("starting our server in-process")?;
                Ok(Peer {
                    kind,
                    addr: handle.local_addr(),
                    inner: Inner::Ours(Box::new(handle)),
                })
            }
            (PeerKind::OursPusher, _) => bail!("ours-pusher starts as ours"),
            (PeerKind::Sockudo, _) => {
                let bin = sockudo_bin().ok_or_else(|| anyhow!("sockudo is not installed"))?;
                let port = sys::free_port()?;
                let path =
                    std::env::temp_dir().join(format!("relayport-bench-sockudo-{port}.toml"));
                std::fs::write(&path, sockudo_config(port))?;
                let cpus = match launch {
                    Launch::Process { server_cpus, .. } => server_cpus.clone(),
                    Launch::InProcess => None,
                };
                let child = command(&bin, &cpus)
                    .arg("--config")
                    .arg(&path)
                    .spawn()
                    .context("starting sockudo")?;
                Self::wait(kind, port, Inner::Child(Box::new(child), Some(path))).await
            }
            (
                PeerKind::Baseline,
                Launch::Process {
                    self_exe,
                    server_cpus,
                    ..
                },
            ) => {
                let port = sys::free_port()?;
                let child = command(self_exe, server_cpus)
                    .args(["baseline-server", "--port", &port.to_string()])
                    .spawn()
                    .context("starting the baseline server")?;
                Self::wait(kind, port, Inner::Child(Box::new(child), None)).await
            }
            (
                PeerKind::Ours,
                Launch::Process {
                    self_exe,
                    server_cpus,
                    ours_buffers: Some((read, write)),
                    ..
                },
            ) => {
                let port = sys::free_port()?;
                let child = command(self_exe, server_cpus)
                    .args(["ours-server", "--port", &port.to_string()])
                    .args(["--send-queue", &opts.send_queue.to_string()])
                    .args(["--read-buffer", &read.to_string()])
                    .args(["--write-buffer", &write.to_string()])
                    .spawn()
                    .context("starting ours-server")?;
                Self::wait(kind, port, Inner::Child(Box::new(child), None)).await
            }
            (
                PeerKind::Ours,
                Launch::Process {
                    server_bin,
                    server_cpus,
                    ..
                },
            ) => {
                let port = sys::free_port()?;
                let child = command(server_bin, server_cpus)
                    .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--send-queue", &opts.send_queue.to_string()])
                    .env("REALTIME_SECRET", SECRET)
                    // The default cap (10,000 connections, 503 past it) is below the idle
                    // scenario's 10,000 subscribers plus the harness's own connections.
                    .env("REALTIME_MAX_CONNECTIONS", "50000")
                    .env("RUST_LOG", "warn")
                    .spawn()
                    .with_context(|| format!("starting {}", server_bin.display()))?;
                Self::wait(kind, port, Inner::Child(Box::new(child), None)).await
            }
        }
    }

    async fn wait(kind: PeerKind, port: u16, inner: Inner) -> Result<Peer> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if !sys::wait_for_port(addr, Duration::from_secs(20)).await {
            bail!("{} did not open {addr} within 20 s", kind.name());
        }
        Ok(Peer { kind, addr, inner })
    }

    /// The process whose memory and CPU are the server's (this process when in-process).
    pub fn pid(&self) -> u32 {
        match &self.inner {
            Inner::Child(c, _) => c.id().unwrap_or(0),
            _ => std::process::id(),
        }
    }

    /// Whether the server runs in its own process.
    pub fn is_process(&self) -> bool {
        matches!(self.inner, Inner::Child(..))
    }

    /// Where subscribers connect.
    pub fn target(&self) -> Target {
        let (path, proto) = match self.kind {
            PeerKind::Baseline => ("/".to_owned(), Proto::Raw),
            PeerKind::Ours => ("/ws?v=1".to_owned(), Proto::Native),
            PeerKind::Sockudo => (
                format!(
                    "/app/{}?protocol=7&client=relayport-bench&version=1.0",
                    PUSHER_APP.1
                ),
                Proto::Pusher,
            ),
            PeerKind::OursPusher => (
                format!("/app/{OURS_PUSHER_APP}?protocol=7&client=relayport-bench&version=1.0"),
                Proto::Pusher,
            ),
        };
        Target {
            addr: self.addr,
            path,
            proto,
        }
    }

    /// A publisher for this peer: the baseline's `/pub` socket, our `POST /publish`, or
    /// sockudo's Pusher HTTP API.
    pub async fn publisher(&self) -> Result<Publisher> {
        Publisher::connect(self.kind, self.addr).await
    }

    /// The in-process server handle (our server started with [`Launch::InProcess`]).
    pub fn handle(&self) -> Option<&ServerHandle> {
        match &self.inner {
            Inner::Ours(h) => Some(h),
            _ => None,
        }
    }

    /// Stops the peer.
    pub async fn stop(self) {
        match self.inner {
            Inner::Child(mut child, config) => {
                let _ = child.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                if let Some(path) = config {
                    let _ = std::fs::remove_file(path);
                }
            }
            Inner::Baseline(stop) => stop.cancel(),
            Inner::Ours(handle) => handle.shutdown().await,
        }
    }
}

/// Publishes marked messages to a peer.
pub enum Publisher {
    /// The baseline's publisher socket.
    Baseline(WsConn),
    /// Our HTTP API.
    Ours {
        /// Keep-alive HTTP client.
        http: reqwest::Client,
        /// `http://addr/publish`.
        url: String,
    },
    /// sockudo's Pusher HTTP API.
    Sockudo(PusherRest),
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Publisher::Baseline(_) => "Publisher::Baseline",
            Publisher::Ours { .. } => "Publisher::Ours",
            Publisher::Sockudo(_) => "Publisher::Sockudo",
        })
    }
}

impl Publisher {
    /// A publisher for the peer `kind` at `addr`: the baseline's `/pub` socket, our
    /// `POST /publish`, or sockudo's Pusher HTTP API.
    pub async fn connect(kind: PeerKind, addr: SocketAddr) -> Result<Publisher> {
        Ok(match kind {
            PeerKind::Baseline => Publisher::Baseline(WsConn::connect(addr, "/pub", None).await?),
            PeerKind::Ours => Publisher::Ours {
                http: reqwest::Client::builder()
                    .pool_max_idle_per_host(64)
                    .build()?,
                url: format!("http://{}/publish", addr),
            },
            PeerKind::Sockudo | PeerKind::OursPusher => {
                let credentials = match kind {
                    PeerKind::Sockudo => Credentials {
                        app_id: PUSHER_APP.0.into(),
                        key: PUSHER_APP.1.into(),
                        secret: PUSHER_APP.2.into(),
                        encryption_master_key: None,
                    },
                    // The server's default app: id and key `relayport`, its own secret.
                    _ => Credentials {
                        app_id: OURS_PUSHER_APP.into(),
                        key: OURS_PUSHER_APP.into(),
                        secret: SECRET.into(),
                        encryption_master_key: None,
                    },
                };
                Publisher::Sockudo(PusherRest::host(
                    credentials,
                    "127.0.0.1",
                    addr.port(),
                    false,
                ))
            }
        })
    }

    /// Publishes one message whose data is `data` (a string without quotes or escapes).
    pub async fn publish(&mut self, channel: &str, data: &str) -> Result<()> {
        match self {
            Publisher::Baseline(conn) => {
                let frame = format!(r#"{{"event":"e","channel":"{channel}","data":"{data}"}}"#);
                conn.send_text(&frame).await?;
                Ok(())
            }
            Publisher::Ours { http, url } => {
                let body = format!(r#"{{"channel":"{channel}","event":"e","data":"{data}"}}"#);
                post(http, url, body).await
            }
            Publisher::Sockudo(rest) => {
                rest.trigger(
                    &[channel],
                    "e",
                    &serde_json::Value::String(data.to_owned()),
                    &TriggerOptions::default(),
                )
                .await
                .map_err(|e| anyhow!("sockudo publish: {e}"))?;
                Ok(())
            }
        }
    }

    /// Publishes several messages on one channel in one request where the peer allows it
    /// (our `{"batch": [...]}`, at most 100), one by one otherwise.
    pub async fn publish_batch(&mut self, channel: &str, data: &[String]) -> Result<()> {
        match self {
            Publisher::Ours { http, url } => {
                let events: Vec<String> = data
                    .iter()
                    .map(|d| format!(r#"{{"channel":"{channel}","event":"e","data":"{d}"}}"#))
                    .collect();
                let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
                post(http, url, body).await
            }
            _ => {
                for d in data {
                    self.publish(channel, d).await?;
                }
                Ok(())
            }
        }
    }
}

async fn post(http: &reqwest::Client, url: &str, body: String) -> Result<()> {
    let resp = http
        .post(url)
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let text = resp.text().await.unwrap_or_default();
        bail!("POST /publish: {status}: {text}");
    }
    // Read the body so the connection goes back to the pool.
    let _ = resp.bytes().await;
    Ok(())
}
