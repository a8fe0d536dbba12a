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
    /// Why private channels are not opened by a server-side signature here, if they are not
    /// (the `private_needs_auth` scenario is then skipped with this reason).
    fn no_channel_signatures(&self) -> Option<&'static str> {
        None
    }
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

// ---- our server in its Pusher-protocol mode ----------------------------------------------

/// The self-hosted server in this process, driven by the Pusher provider over its Pusher
/// protocol mode (`GET /app/{key}`, the Pusher HTTP API): the default app, id and key
/// `relayport`, signed with the server secret.
pub struct SelfHostedPusher(SelfHosted);

impl SelfHostedPusher {
    pub async fn start() -> Self {
        Self(SelfHosted::start().await)
    }

    fn config_with(&self, secret: &str) -> ProviderConfig {
        let addr = self
            .0
            .url
            .trim_start_matches("http://")
            .rsplit_once(':')
            .map(|(host, port)| (host.to_owned(), port.to_owned()))
            .expect("host:port");
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "pusher"),
            ("PUSHER_APP_ID", "relayport"),
            ("PUSHER_KEY", "relayport"),
            ("PUSHER_SECRET", secret),
            ("PUSHER_HOST", addr.0.as_str()),
            ("PUSHER_PORT", addr.1.as_str()),
            ("PUSHER_TLS", "false"),
        ]))
        .expect("config")
    }
}

#[relayport::async_trait]
impl Peer for SelfHostedPusher {
    fn name(&self) -> &'static str {
        "pusher"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(SELFHOSTED_SECRET)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-secret")
    }

    async fn restart(&mut self) {
        self.0.restart().await;
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
            // The app enforces user authentication (a connection that neither signs in nor
            // joins a private channel is closed after 30 s): trusted clients sign in.
            ("PUSHER_USER_DATA", r#"{"id":"conformance"}"#),
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

// ---- Ably: the behavioural peer (relayport-peer-ably) -----------------------------------

/// The server key: everything on every channel.
const ABLY_SERVER_KEY: &str = "confapp.server:conformance-ably-secret";
/// The client key an app would ship: public and presence channels, never `private:*` (those
/// need a token from the authorizer, signed with the server key).
const ABLY_CLIENT_KEY: &str = "confapp.client:conformance-client-secret";

/// relayport-peer-ably in this process: an Ably-protocol server that enforces Ably's rules
/// (capabilities, client ids, presence, resume); `restart` drops every connection and forgets
/// all state, like a server restart.
pub struct Ably {
    peer: Option<relayport_peer_ably::AblyPeer>,
    port: u16,
}

impl Ably {
    fn peer_config(port: u16) -> relayport_peer_ably::PeerConfig {
        use relayport_peer_ably::{Capability, KeyConfig, PeerConfig};
        PeerConfig {
            port,
            keys: vec![
                KeyConfig::new(ABLY_SERVER_KEY, Capability::all()),
                KeyConfig::new(
                    ABLY_CLIENT_KEY,
                    Capability::from_pairs([("conf-*", &["*"][..]), ("presence:*", &["*"][..])]),
                ),
            ],
            ..PeerConfig::default()
        }
    }

    pub async fn start() -> Self {
        let peer = relayport_peer_ably::AblyPeer::start(Self::peer_config(0))
            .await
            .expect("the Ably peer binds");
        let port = peer.port();
        Self {
            peer: Some(peer),
            port,
        }
    }

    fn config_with(&self, server_key: &str) -> ProviderConfig {
        let port = self.port.to_string();
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "ably"),
            ("ABLY_API_KEY", server_key),
            ("ABLY_CLIENT_KEY", ABLY_CLIENT_KEY),
            ("ABLY_HOST", "127.0.0.1"),
            ("ABLY_PORT", port.as_str()),
            ("ABLY_TLS", "false"),
        ]))
        .expect("config")
    }
}

#[relayport::async_trait]
impl Peer for Ably {
    fn name(&self) -> &'static str {
        "ably"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(ABLY_SERVER_KEY)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("confapp.server:not-the-secret")
    }

    async fn restart(&mut self) {
        if let Some(peer) = self.peer.take() {
            peer.shutdown().await;
        }
        let peer = relayport_peer_ably::AblyPeer::start(Self::peer_config(self.port))
            .await
            .expect("the Ably peer binds its port again");
        self.peer = Some(peer);
    }
}

// ---- Supabase ------------------------------------------------------------------------------

/// The behavioural Supabase Realtime peer (`peers/supabase`), in this process: JWTs, the
/// `authenticated` channel policy for private channels, presence, REST broadcast.
pub struct Supabase {
    peer: relayport_peer_supabase::PeerHandle,
}

impl Supabase {
    pub async fn start() -> Self {
        let peer = relayport_peer_supabase::SupabasePeer::builder()
            // The real server waits 5 s before a join error; the refusals here need not.
            .join_error_backoff(std::time::Duration::from_millis(200))
            .connect_error_backoff(std::time::Duration::from_millis(200))
            .bind("127.0.0.1:0")
            .await
            .expect("the Supabase peer binds");
        Self { peer }
    }

    fn config_with(&self, jwt_secret: &str, service_role_key: &str) -> ProviderConfig {
        let url = self.peer.project_url();
        let anon = self.peer.anon_key();
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "supabase"),
            ("SUPABASE_URL", url.as_str()),
            ("SUPABASE_ANON_KEY", anon.as_str()),
            ("SUPABASE_SERVICE_ROLE_KEY", service_role_key),
            ("SUPABASE_JWT_SECRET", jwt_secret),
        ]))
        .expect("config")
    }
}

#[relayport::async_trait]
impl Peer for Supabase {
    fn name(&self) -> &'static str {
        "supabase"
    }

    fn config(&self) -> ProviderConfig {
        let secret = String::from_utf8_lossy(self.peer.secret()).into_owned();
        self.config_with(&secret, &self.peer.service_role_key())
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        // Both server-side credentials are wrong: the JWT secret the authorizer signs with,
        // and a service-role key signed with that wrong secret.
        let wrong = "not-the-project-jwt-secret-not-the-secret";
        let forged = relayport_peer_supabase::jwt::sign(
            &serde_json::Map::from_iter([
                ("role".to_owned(), serde_json::json!("service_role")),
                ("exp".to_owned(), serde_json::json!(self.peer.now() + 3600)),
            ]),
            wrong.as_bytes(),
        );
        self.config_with(wrong, &forged)
    }

    async fn restart(&mut self) {
        // Every socket drops (the clients see 1006); the server stays on its address.
        self.peer.drop_sockets();
    }
}

// ---- Socket.IO -----------------------------------------------------------------------------

/// A real socket.io 4.x server with the relayport adapter (node, started on a free loopback
/// port by relayport-socketio's launcher); killed on drop.
pub struct SocketIo(relayport_socketio::testing::NodeServer);

impl SocketIo {
    /// Starts the server, or returns `None` (printing SKIP) when node or its npm packages are
    /// missing; under `CI=true` that fails the test.
    pub async fn start() -> Option<Self> {
        relayport_socketio::testing::NodeServer::start("socketio conformance")
            .await
            .map(Self)
    }

    fn config_with(&self, secret: &str) -> ProviderConfig {
        let url = self.0.url();
        ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "socketio"),
            ("SOCKETIO_URL", url.as_str()),
            ("SOCKETIO_SECRET", secret),
        ]))
        .expect("config")
    }
}

#[relayport::async_trait]
impl Peer for SocketIo {
    fn name(&self) -> &'static str {
        "socketio"
    }

    fn config(&self) -> ProviderConfig {
        self.config_with(relayport_socketio::testing::SECRET)
    }

    fn config_with_wrong_secret(&self) -> ProviderConfig {
        self.config_with("not-the-secret")
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

    fn no_channel_signatures(&self) -> Option<&'static str> {
        Some(
            "Firebase has no channel signatures: the database's security rules check the \
             client's own token on every request (its equivalent, a reader without a valid \
             token refused by the rules, is in relayport-firebase's tests/loopback.rs)",
        )
    }
}
