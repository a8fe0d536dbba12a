//! The loopback peers: a server per provider the suite can start, restart and configure.

use relayport::ProviderConfig;
use relayport::config::MapEnv;
use relayport::selfhosted::server::{Server, ServerHandle};

/// A server the scenarios run against.
#[relayport::async_trait]
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

#[relayport::async_trait]
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

/// sockudo on a free loopback port (relayport-pusher's shared launcher); killed on drop.
pub struct Sockudo(relayport_pusher::testing::Sockudo);

impl Sockudo {
    /// Starts sockudo, or returns `None` (printing why) when it is not installed; under
    /// `CI=true` a missing sockudo fails the test.
    pub async fn start() -> Option<Self> {
        relayport_pusher::testing::Sockudo::start().await.map(Self)
    }

    fn config_with(&self, secret: &str) -> ProviderConfig {
        use relayport_pusher::testing::{APP_ID, KEY};
        let port = self.0.port.to_string();
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

#[relayport::async_trait]
impl Peer for Sockudo {
    fn name(&self) -> &'static str {
        "pusher"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(relayport_pusher::testing::SECRET)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-secret-0123456789")
    }

    async fn restart(&mut self) {
        self.0.restart().await;
    }
}

// ---- Firebase (the behavioural RTDB peer) -------------------------------------------------

const FIREBASE_TOKEN: &str = "conformance-token";

/// relayport-peer-firebase in this process: rules require a token under `/realtime`.
pub struct Firebase(relayport_peer_firebase::FirebasePeer);

impl Firebase {
    pub async fn start() -> Self {
        let peer =
            relayport_peer_firebase::FirebasePeer::start(relayport_peer_firebase::PeerConfig {
                auth_prefix: Some("/realtime".into()),
                ..Default::default()
            })
            .await
            .expect("peer starts");
        peer.add_token(FIREBASE_TOKEN, None);
        Self(peer)
    }

    fn config_with(&self, token: &str) -> ProviderConfig {
        let url = self.0.url();
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "firebase"),
            ("FIREBASE_DATABASE_URL", url.as_str()),
            ("FIREBASE_AUTH_TOKEN", token),
        ]))
        .expect("config")
    }
}

#[relayport::async_trait]
impl Peer for Firebase {
    fn name(&self) -> &'static str {
        "firebase"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(FIREBASE_TOKEN)
    }

    /// Firebase has no server secret; the nearest thing is the token the rules check.
    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-token")
    }

    /// A database keeps its data: a restart drops every stream.
    async fn restart(&mut self) {
        self.0.drop_streams();
    }
}
