//! [`FirebaseConfig`]: where the database is, under which root the channels live, and how the
//! provider authenticates.

use std::sync::Arc;
use std::time::Duration;

use relayport_core::transport::LinkConfig;
use relayport_core::{RealtimeError, Result};
use url::Url;

use crate::token::{AccessToken, StaticToken, TokenSource};

/// The default root under which channels live.
pub const DEFAULT_ROOT: &str = "realtime";

/// The default bound on stream silence: Firebase sends `keep-alive` about every 30 seconds.
pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(90);

/// The default age after which a presence member that has not refreshed counts as gone.
pub const DEFAULT_PRESENCE_STALE_AFTER: Duration = Duration::from_secs(90);

/// The default margin before a token's expiry at which the provider asks for the next one.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The Firebase provider's configuration; build with [`FirebaseConfig::new`] and the
/// `with_*` methods.
#[derive(Clone)]
pub struct FirebaseConfig {
    pub(crate) database_url: Url,
    pub(crate) root: String,
    pub(crate) tokens: Option<Arc<dyn TokenSource>>,
    pub(crate) client_id: String,
    pub(crate) keep_alive_timeout: Duration,
    pub(crate) presence_stale_after: Duration,
    pub(crate) refresh_margin: Duration,
    pub(crate) link: Option<LinkConfig>,
}

impl std::fmt::Debug for FirebaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirebaseConfig")
            .field("database_url", &self.database_url.as_str())
            .field("root", &self.root)
            .field("authenticated", &self.tokens.is_some())
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl FirebaseConfig {
    /// The database at `database_url` (`https://<db>.firebaseio.com` or
    /// `https://<db>.<region>.firebasedatabase.app`), channels under [`DEFAULT_ROOT`], no
    /// credential, a random client id.
    pub fn new(database_url: &str) -> Result<Self> {
        let database_url = Url::parse(database_url)
            .map_err(|e| RealtimeError::Config(format!("FIREBASE_DATABASE_URL: {e}")))?;
        if !matches!(database_url.scheme(), "http" | "https") || database_url.query().is_some() {
            return Err(RealtimeError::Config(
                "FIREBASE_DATABASE_URL must be an http(s) URL without a query".into(),
            ));
        }
        Ok(Self {
            database_url,
            root: DEFAULT_ROOT.into(),
            tokens: None,
            client_id: format!("client-{:016x}", fastrand::u64(..)),
            keep_alive_timeout: DEFAULT_KEEP_ALIVE_TIMEOUT,
            presence_stale_after: DEFAULT_PRESENCE_STALE_AFTER,
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            link: None,
        })
    }

    /// The path under which channels live (`realtime`, `apps/chat/realtime`): slash-separated
    /// database keys, none of them empty or containing `. $ # [ ]`.
    pub fn with_root(mut self, root: &str) -> Result<Self> {
        let trimmed = root.trim_matches('/');
        let bad = trimmed.split('/').any(|k| {
            k.is_empty() || k.contains(['.', '$', '#', '[', ']']) || k.chars().any(char::is_control)
        });
        if bad {
            return Err(RealtimeError::Config(format!(
                "root path `{root}` is not a database path (keys may not be empty or contain . $ # [ ])"
            )));
        }
        self.root = trimmed.to_owned();
        Ok(self)
    }

    /// A fixed ID token (`auth=`), e.g. `FIREBASE_AUTH_TOKEN`.
    pub fn with_token(self, token: impl Into<String>) -> Self {
        self.with_token_source(StaticToken(AccessToken::id_token(token, None)))
    }

    /// A source of refreshed tokens.
    pub fn with_token_source(mut self, source: impl TokenSource) -> Self {
        self.tokens = Some(Arc::new(source));
        self
    }

    /// The client id: the sender of published messages and the presence member id.
    pub fn with_client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = id.into();
        self
    }

    /// The longest silence (no event, not even `keep-alive`) before a stream counts as stale
    /// and the link is dropped for a reconnect.
    pub fn with_keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.keep_alive_timeout = timeout;
        self
    }

    /// The age after which a member that has not refreshed its record counts as gone.
    pub fn with_presence_stale_after(mut self, age: Duration) -> Self {
        self.presence_stale_after = age;
        self
    }

    /// How long before a token's expiry the provider asks its source for the next one.
    pub fn with_refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// The link configuration (TLS roots, an injected `reqwest::Client`).
    pub fn with_link(mut self, link: LinkConfig) -> Self {
        self.link = Some(link);
        self
    }

    /// The database URL.
    pub fn database_url(&self) -> &Url {
        &self.database_url
    }

    /// The root path.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}
