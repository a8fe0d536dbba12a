//! Credentials: an ID token (`auth=`) or an OAuth access token (`access_token=`), from a
//! [`TokenSource`] the provider asks again before the current one expires.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::Result;
use tokio::time::Instant;

/// Which query parameter a token travels in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A Firebase Auth ID token (or a database secret): `auth=`.
    IdToken,
    /// A Google OAuth2 access token (a service account's): `access_token=`.
    AccessToken,
}

impl TokenKind {
    /// The query parameter's name.
    pub fn param(self) -> &'static str {
        match self {
            Self::IdToken => "auth",
            Self::AccessToken => "access_token",
        }
    }
}

/// One credential and how long it lasts.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// The token itself (never logged: `Debug` redacts it).
    pub token: String,
    /// Its kind.
    pub kind: TokenKind,
    /// How long it stays valid from now (`None`: until the server says otherwise).
    pub expires_in: Option<Duration>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("kind", &self.kind)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl AccessToken {
    /// An ID token (`auth=`) valid for `expires_in`.
    pub fn id_token(token: impl Into<String>, expires_in: Option<Duration>) -> Self {
        Self {
            token: token.into(),
            kind: TokenKind::IdToken,
            expires_in,
        }
    }
}

/// Where the provider gets its credential: called at connect, before the current token
/// expires (see [`crate::FirebaseConfig::with_refresh_margin`]) and after the server revoked it
/// (`auth_revoked`). An implementation typically refreshes a Firebase Auth session or asks the
/// application's backend.
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A currently valid token.
    async fn token(&self) -> Result<AccessToken>;
}

/// A fixed token (`FIREBASE_AUTH_TOKEN`): never refreshed, so an expiring one ends the
/// session when it expires.
#[derive(Debug, Clone)]
pub struct StaticToken(pub AccessToken);

#[async_trait]
impl TokenSource for StaticToken {
    async fn token(&self) -> Result<AccessToken> {
        Ok(self.0.clone())
    }
}

/// The token in use and when to ask for the next one.
#[derive(Debug, Clone)]
pub(crate) struct Cached {
    pub(crate) token: AccessToken,
    pub(crate) refresh_at: Option<Instant>,
}

/// Holds the current token; asks the source again when it is due or was revoked.
pub(crate) struct Tokens {
    source: Option<Arc<dyn TokenSource>>,
    margin: Duration,
    current: tokio::sync::Mutex<Option<Cached>>,
}

impl Tokens {
    pub(crate) fn new(source: Option<Arc<dyn TokenSource>>, margin: Duration) -> Self {
        Self {
            source,
            margin,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// The token to use now (`None` without a source), refreshed when due.
    pub(crate) async fn get(&self) -> Result<Option<AccessToken>> {
        let Some(source) = &self.source else {
            return Ok(None);
        };
        let mut current = self.current.lock().await;
        let due = match &*current {
            None => true,
            Some(c) => c.refresh_at.is_some_and(|at| Instant::now() >= at),
        };
        if due {
            let token = source.token().await?;
            let refresh_at = token
                .expires_in
                .map(|d| Instant::now() + d.saturating_sub(self.margin));
            *current = Some(Cached { token, refresh_at });
        }
        Ok(current.as_ref().map(|c| c.token.clone()))
    }

    /// Forgets the current token (the server revoked it): the next [`Tokens::get`] asks again.
    pub(crate) async fn invalidate(&self) {
        *self.current.lock().await = None;
    }
}
