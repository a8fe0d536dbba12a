//! The channel auth endpoint, as a reusable axum router (feature `auth-endpoint`).
//!
//! `POST /api/realtime/auth` signs a private or presence subscription for whichever provider
//! is configured:
//!
//! - it accepts what the browser SDKs send: form-encoded `socket_id` + `channel_name` as
//!   pusher-js does (with Pusher configured, Pusher names such as `private-room-1` are mapped
//!   back to neutral ones, `private:room-1`, by relayport-pusher's rule), and JSON otherwise
//!   (`{"socket_id": …, "channel_name": "private:room:1", "user": {"info": …}}`, what
//!   `HttpAuthorizer` posts);
//! - it asks the application who the user is and whether they may use the channel
//!   ([`AccessPolicy`]: `user(headers)` and `can_access_channel(user, channel)`);
//! - it answers 200 with the provider's body ([`ChannelAuth`]), 401 when there is no user,
//!   403 with a JSON error when access is refused, and 400 on malformed input.
//!
//! `POST /api/realtime/signin` is the user sign-in endpoint where the provider has one
//! (Pusher's `pusher:signin`: form `socket_id` → `{"auth": …, "user_data": …}`); elsewhere it
//! answers 404 with a JSON error.
//!
//! The presence user's id always comes from the policy, never from the request; the member
//! info is the policy's, or the client's own `user.info` when the policy gives none.
//!
//! ```no_run
//! use relayport::auth_endpoint::{AuthEndpoint, policy};
//! use relayport::{Channel, PresenceUser, ProviderConfig};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = ProviderConfig::from_env(&relayport::config::ProcessEnv)?;
//! let access = policy(
//!     |headers: &axum::http::HeaderMap| {
//!         let id = headers.get("x-user-id")?.to_str().ok()?;
//!         Some(PresenceUser { id: id.to_owned(), info: serde_json::Value::Null })
//!     },
//!     |user: &PresenceUser, channel: &Channel| channel.name().starts_with(&user.id),
//! );
//! let app = AuthEndpoint::from_config(&cfg, access)?.router();
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```

mod policy;
mod request;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use relayport_core::{
    AuthRequest, ChannelAuthorizer, ErrorKind, PresenceUser, RealtimeError, Result,
};
use serde_json::{Value, json};

pub use policy::{AccessPolicy, FnPolicy, policy};
use request::{Names, parse_auth, parse_signin};

use crate::config::ProviderConfig;

/// The path of the channel auth endpoint.
pub const AUTH_PATH: &str = "/api/realtime/auth";
/// The path of the user sign-in endpoint.
pub const SIGNIN_PATH: &str = "/api/realtime/signin";
/// The largest request body accepted, in bytes.
pub const MAX_BODY: usize = 16 * 1024;

/// The endpoint: the configured provider's authorizer plus the application's policy.
#[derive(Clone)]
pub struct AuthEndpoint {
    authorizer: Arc<dyn ChannelAuthorizer>,
    policy: Arc<dyn AccessPolicy>,
    names: Names,
    #[cfg(feature = "pusher")]
    user_signer: Option<relayport_pusher::PusherAuthorizer>,
}

impl std::fmt::Debug for AuthEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthEndpoint")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

/// An endpoint's answer: a status and a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The JSON body: the provider's auth body on 200, `{"error": …}` otherwise.
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Self {
        Self {
            status: StatusCode::OK,
            body,
        }
    }

    fn error(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
        }
    }

    fn from_error(e: &RealtimeError) -> Self {
        match e.kind() {
            ErrorKind::InvalidChannel | ErrorKind::Protocol | ErrorKind::Unsupported => {
                Self::error(StatusCode::BAD_REQUEST, e.to_string())
            }
            ErrorKind::Forbidden => Self::error(StatusCode::FORBIDDEN, e.to_string()),
            ErrorKind::Unauthorized => Self::error(StatusCode::UNAUTHORIZED, e.to_string()),
            _ => Self::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the auth endpoint could not sign this request",
            ),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl AuthEndpoint {
    /// An endpoint signing with `authorizer`, for neutral channel names.
    pub fn new(authorizer: Arc<dyn ChannelAuthorizer>, policy: impl AccessPolicy) -> Self {
        Self {
            authorizer,
            policy: Arc::new(policy),
            names: Names::Neutral,
            #[cfg(feature = "pusher")]
            user_signer: None,
        }
    }

    /// The endpoint for the configured provider (needs its server secret). With Pusher,
    /// form-encoded channel names are Pusher names and user sign-in is available.
    pub fn from_config(cfg: &ProviderConfig, policy: impl AccessPolicy) -> Result<Self> {
        let endpoint = Self::new(Arc::from(crate::authorizer(cfg)?), policy);
        match cfg {
            #[cfg(feature = "pusher")]
            ProviderConfig::Pusher(p) => {
                Ok(endpoint.with_pusher_sign_in(crate::factory::pusher::authorizer(p)?))
            }
            _ => Ok(endpoint),
        }
    }

    /// Reads form-encoded channel names as Pusher names and serves user sign-in with
    /// `signer`.
    #[cfg(feature = "pusher")]
    pub fn with_pusher_sign_in(mut self, signer: relayport_pusher::PusherAuthorizer) -> Self {
        self.names = Names::Pusher;
        self.user_signer = Some(signer);
        self
    }

    /// The router: `POST` [`AUTH_PATH`] and [`SIGNIN_PATH`], bodies up to [`MAX_BODY`].
    pub fn router(self) -> Router {
        Router::new()
            .route(AUTH_PATH, post(auth_handler))
            .route(SIGNIN_PATH, post(signin_handler))
            .layer(DefaultBodyLimit::max(MAX_BODY))
            .with_state(self)
    }

    /// Handles one channel auth request (the router's handler, without axum).
    pub async fn authorize(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        let parsed = match parse_auth(headers, body, self.names) {
            Ok(p) => p,
            Err(msg) => return Answer::error(StatusCode::BAD_REQUEST, msg),
        };
        let Some(user) = self.policy.user(headers).await else {
            return Answer::error(StatusCode::UNAUTHORIZED, "not signed in");
        };
        if !parsed.channel.kind().requires_auth() {
            return Answer::error(
                StatusCode::BAD_REQUEST,
                format!("`{}` is public and needs no authorization", parsed.channel),
            );
        }
        if !self.policy.can_access_channel(&user, &parsed.channel).await {
            return Answer::error(
                StatusCode::FORBIDDEN,
                format!("access to `{}` refused", parsed.channel),
            );
        }
        let presence_user =
            (parsed.channel.kind() == relayport_core::ChannelKind::Presence).then(|| {
                PresenceUser {
                    info: if user.info.is_null() {
                        parsed.client_info.clone().unwrap_or(Value::Null)
                    } else {
                        user.info.clone()
                    },
                    id: user.id.clone(),
                }
            });
        let request = AuthRequest {
            socket_id: parsed.socket_id,
            channel: parsed.channel,
            user: presence_user,
        };
        match self.authorizer.authorize(&request).await {
            Ok(body) => Answer::ok(body.0),
            Err(e) => Answer::from_error(&e),
        }
    }

    /// Handles one user sign-in request (Pusher only; 404 elsewhere).
    pub async fn sign_in(&self, headers: &HeaderMap, body: &[u8]) -> Answer {
        #[cfg(feature = "pusher")]
        if let Some(signer) = &self.user_signer {
            let socket_id = match parse_signin(headers, body) {
                Ok(s) => s,
                Err(msg) => return Answer::error(StatusCode::BAD_REQUEST, msg),
            };
            let Some(user) = self.policy.user(headers).await else {
                return Answer::error(StatusCode::UNAUTHORIZED, "not signed in");
            };
            #[derive(serde::Serialize)]
            struct UserData<'a> {
                id: &'a str,
                #[serde(skip_serializing_if = "Value::is_null")]
                user_info: &'a Value,
            }
            let data = UserData {
                id: &user.id,
                user_info: &user.info,
            };
            return match signer.authenticate_user(&socket_id, &data) {
                Ok(body) => Answer::ok(body.0),
                Err(e) => Answer::from_error(&e),
            };
        }
        let _ = (headers, body, parse_signin);
        Answer::error(
            StatusCode::NOT_FOUND,
            "user sign-in is not supported by the configured provider",
        )
    }
}

async fn auth_handler(
    State(endpoint): State<AuthEndpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    endpoint.authorize(&headers, &body).await
}

async fn signin_handler(
    State(endpoint): State<AuthEndpoint>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    endpoint.sign_in(&headers, &body).await
}
