//! Configuration of the realtime client: credentials, hosts, TLS, timeouts, channel options.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use relayport_core::Result;

use crate::DEFAULT_HOST;
use crate::token::{ApiKey, AuthResponse, TokenParams};

/// An application-supplied token source (ably-js `authCallback`): called with the token
/// params (with the client's `clientId`), returns a token, TokenDetails or a signed
/// TokenRequest (which the client exchanges itself).
pub type AuthCallback =
    Arc<dyn Fn(TokenParams) -> BoxFuture<'static, Result<AuthResponse>> + Send + Sync>;

/// How the client authenticates.
#[derive(Clone)]
pub enum Credentials {
    /// Basic auth with the full key (`key=` query parameter). Only for trusted clients: the
    /// key's secret travels to Ably (over TLS). The key's capability covers every channel:
    /// channel authorizations are not applied (no in-band `AUTH`).
    Key(ApiKey),
    /// Token auth with tokens this process signs with the key (ably-js `key` with
    /// `useTokenAuth`): the secret never travels; every token has the key's own capability
    /// and the configured clientId. For a trusted process that holds the key (a backend, a
    /// CLI); like [`Credentials::Key`], channel authorizations are not applied.
    TokenFromKey(ApiKey),
    /// A literal token or JWT. It cannot be renewed: a token error is fatal (40171).
    Token(String),
    /// A callback returning tokens or signed TokenRequests.
    Callback(AuthCallback),
    /// An auth URL (GET with `clientId` in the query): `text/plain` or `application/jwt` body
    /// = token, `application/json` = TokenDetails or TokenRequest.
    AuthUrl(String),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Key(k) => write!(f, "Key({})", k.key_name()),
            Self::TokenFromKey(k) => write!(f, "TokenFromKey({})", k.key_name()),
            Self::Token(_) => f.write_str("Token(<redacted>)"),
            Self::Callback(_) => f.write_str("Callback"),
            Self::AuthUrl(u) => write!(f, "AuthUrl({u})"),
        }
    }
}

impl Credentials {
    /// A callback credential from an async closure.
    pub fn callback<F, Fut>(f: F) -> Self
    where
        F: Fn(TokenParams) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<AuthResponse>> + Send + 'static,
    {
        Self::Callback(Arc::new(move |p| Box::pin(f(p))))
    }

    /// Whether a rejected token can be replaced by a new one.
    pub fn renewable(&self) -> bool {
        !matches!(self, Self::Token(_))
    }

    /// Whether this process holds the key ([`Credentials::Key`], [`Credentials::TokenFromKey`]):
    /// the connection then has the key's capability, and per-channel tokens are never needed.
    pub fn holds_key(&self) -> bool {
        matches!(self, Self::Key(_) | Self::TokenFromKey(_))
    }
}

/// Channel modes (`ChannelOptions.modes`), OR-ed into the ATTACH flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelMode {
    /// Presence.
    Presence,
    /// Publish.
    Publish,
    /// Subscribe.
    Subscribe,
    /// Presence subscribe.
    PresenceSubscribe,
}

impl ChannelMode {
    /// The flag bit.
    pub fn flag(self) -> u64 {
        use crate::protocol::flags::*;
        match self {
            Self::Presence => MODE_PRESENCE,
            Self::Publish => MODE_PUBLISH,
            Self::Subscribe => MODE_SUBSCRIBE,
            Self::PresenceSubscribe => MODE_PRESENCE_SUBSCRIBE,
        }
    }
}

/// Per-channel attach options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelOptions {
    /// Channel params (`rewind`, `delta`, …) sent in ATTACH.
    pub params: BTreeMap<String, String>,
    /// Requested modes (empty: the server's default).
    pub modes: Vec<ChannelMode>,
}

/// Settings of [`AblyRealtime`](crate::AblyRealtime).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AblyConfig {
    /// Credentials.
    pub credentials: Credentials,
    /// This client's id (`clientId=`), required for presence.
    pub client_id: Option<String>,
    /// Realtime host (default `main.realtime.ably.net`).
    pub realtime_host: String,
    /// REST host, for token requests and history (default `main.realtime.ably.net`).
    pub rest_host: String,
    /// Realtime port (default 443 with TLS, 80 without).
    pub realtime_port: Option<u16>,
    /// REST port (default 443 with TLS, 80 without).
    pub rest_port: Option<u16>,
    /// TLS for both (default true).
    pub tls: bool,
    /// Receive this connection's own publishes (default true; `false` sends `echo=false`).
    /// Under a `RealtimeClient` the client's own setting (`ClientBuilder::echo`,
    /// `REALTIME_ECHO`) replaces it, so that echo is the same on every provider.
    pub echo: bool,
    /// A recovery key from [`AblyRealtime::recovery_key`](crate::AblyRealtime::recovery_key)
    /// of an earlier process: used on the first connect only.
    pub recover: Option<String>,
    /// The protocol's own waits (default 10 s): CLOSED after CLOSE (at most
    /// [`CLOSED_WAIT`](crate::client::CLOSED_WAIT)), the auth callback and auth URL,
    /// [`AblyRealtime::ping_server`](crate::AblyRealtime::ping_server) and
    /// [`AblyRealtime::reauthorize`](crate::AblyRealtime::reauthorize); also added to
    /// `maxIdleInterval` for idle detection. Connect, attach and publish are bounded by the
    /// core's `connect_timeout` and `request_timeout`.
    pub realtime_request_timeout: Duration,
    /// Options per Ably channel name.
    pub channel_options: HashMap<String, ChannelOptions>,
    /// Extra query parameters for the connection (`transportParams`).
    pub transport_params: Vec<(String, String)>,
    /// A token error within this long after a renewal is a persistent failure: fatal instead
    /// of another renewal (default 30 s).
    pub min_renewal_interval: Duration,
    /// History pages (of up to 1000 messages) fetched to recover a gap (default 10); more
    /// remaining means the gap cannot be filled (`HistoryPage::complete` false).
    pub history_max_pages: usize,
}

impl AblyConfig {
    /// Production hosts with TLS and these credentials.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            credentials,
            client_id: None,
            realtime_host: DEFAULT_HOST.into(),
            rest_host: DEFAULT_HOST.into(),
            realtime_port: None,
            rest_port: None,
            tls: true,
            echo: true,
            recover: None,
            realtime_request_timeout: Duration::from_secs(10),
            channel_options: HashMap::new(),
            transport_params: Vec::new(),
            min_renewal_interval: Duration::from_secs(30),
            history_max_pages: 10,
        }
    }

    /// Points realtime and REST at a local peer over plain TCP (tests, development).
    pub fn local(mut self, realtime_port: u16, rest_port: u16) -> Self {
        self.realtime_host = "127.0.0.1".into();
        self.rest_host = "127.0.0.1".into();
        self.realtime_port = Some(realtime_port);
        self.rest_port = Some(rest_port);
        self.tls = false;
        self
    }

    /// Sets the client id.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }
}
