//! Obtaining and renewing the connection's token (`RSA8`): from a callback, an auth URL, a
//! key (token auth) or a TokenRequest handed over by the application's auth endpoint.

use relayport_core::transport::LinkConfig;
use relayport_core::{RealtimeError, Result};
use serde_json::Value;

use crate::config::{AblyConfig, Credentials};
use crate::rest::{AblyRest, RestAuth, RestConfig};
use crate::token::{AuthResponse, TokenParams};

/// The REST client the realtime client uses for token exchange and history, on the link
/// configuration's HTTP client (its TLS, pool and proxy).
pub(crate) fn rest_client(
    cfg: &AblyConfig,
    token: Option<&str>,
    link: &LinkConfig,
) -> Result<AblyRest> {
    let auth = match (&cfg.credentials, token) {
        (Credentials::Key(k), _) => RestAuth::Basic(k.clone()),
        (Credentials::TokenFromKey(k), None) => RestAuth::TokenFromKey(
            k.clone(),
            TokenParams {
                client_id: cfg.client_id.clone(),
                ..TokenParams::default()
            },
        ),
        (_, Some(t)) => RestAuth::Token(t.to_owned()),
        (Credentials::Token(t), None) => RestAuth::Token(t.clone()),
        (_, None) => RestAuth::Token(String::new()),
    };
    Ok(AblyRest::with_http(
        RestConfig {
            host: cfg.rest_host.clone(),
            port: cfg.rest_port,
            tls: cfg.tls,
            auth,
            client_id: cfg.client_id.clone(),
            max_message_size: 65536,
        },
        link.http().clone(),
    ))
}

/// Turns an auth response into a token string, exchanging a TokenRequest at the REST API.
pub(crate) async fn resolve(
    cfg: &AblyConfig,
    response: AuthResponse,
    link: &LinkConfig,
) -> Result<String> {
    match response {
        AuthResponse::Token(t) => Ok(t),
        AuthResponse::Details(d) => Ok(d.token),
        AuthResponse::Request(tr) => {
            let rest = rest_client(cfg, None, link)?;
            Ok(rest.request_token(&tr).await?.token)
        }
    }
}

/// Asks the configured source for a new token. `None` for basic auth (the key is the
/// credential). Every token is requested with the connection's clientId (the configured one),
/// whatever the channels: Ably refuses a token whose clientId contradicts the connection's.
pub(crate) async fn fetch_token(cfg: &AblyConfig, link: &LinkConfig) -> Result<Option<String>> {
    let params = TokenParams {
        client_id: cfg.client_id.clone(),
        ..TokenParams::default()
    };
    let response = match &cfg.credentials {
        Credentials::Key(_) => return Ok(None),
        // No capability asked for: the token has the key's own (every channel the key allows).
        Credentials::TokenFromKey(key) => AuthResponse::Request(key.create_token_request(&params)?),
        Credentials::Token(t) => return Ok(Some(t.clone())),
        Credentials::Callback(cb) => {
            let fut = cb(params);
            match tokio::time::timeout(cfg.realtime_request_timeout, fut).await {
                Ok(r) => r.map_err(|e| auth_failure(&e))?,
                Err(_) => {
                    return Err(RealtimeError::timeout(
                        "ably auth callback (80019)",
                        cfg.realtime_request_timeout,
                    ));
                }
            }
        }
        Credentials::AuthUrl(url) => fetch_url(cfg, url, link).await?,
    };
    resolve(cfg, response, link).await.map(Some)
}

/// An auth source failure (80019): retryable unless the source refused outright.
fn auth_failure(e: &RealtimeError) -> RealtimeError {
    match e {
        RealtimeError::Forbidden { .. } | RealtimeError::Unauthorized(_) => e.clone(),
        other => {
            RealtimeError::Connection(format!("ably error 80019: auth source failed: {other}"))
        }
    }
}

async fn fetch_url(cfg: &AblyConfig, url: &str, link: &LinkConfig) -> Result<AuthResponse> {
    let mut req = link.http().get(url).timeout(cfg.realtime_request_timeout);
    if let Some(c) = &cfg.client_id {
        req = req.query(&[("clientId", c)]);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| RealtimeError::Connection(format!("ably error 80019: auth URL: {e}")))?;
    let status = resp.status().as_u16();
    if status == 403 {
        return Err(RealtimeError::Unauthorized(
            "ably error 80019: auth URL refused (403)".into(),
        ));
    }
    if status >= 400 {
        return Err(RealtimeError::Connection(format!(
            "ably error 80019: auth URL answered {status}"
        )));
    }
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .bytes()
        .await
        .map_err(|e| RealtimeError::Connection(format!("ably error 80019: auth URL body: {e}")))?;
    if body.len() > 128 * 1024 {
        return Err(RealtimeError::Protocol(
            "auth URL response over 128 KiB".into(),
        ));
    }
    if content_type.starts_with("application/json") {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| RealtimeError::Protocol(format!("auth URL JSON: {e}")))?;
        AuthResponse::from_json(&v)
    } else if content_type.starts_with("text/plain") || content_type.starts_with("application/jwt")
    {
        let token = String::from_utf8_lossy(&body).trim().to_owned();
        if token.is_empty() {
            return Err(RealtimeError::Protocol(
                "auth URL returned an empty token".into(),
            ));
        }
        Ok(AuthResponse::Token(token))
    } else {
        Err(RealtimeError::Protocol(format!(
            "auth URL content type `{content_type}` is not a token"
        )))
    }
}
