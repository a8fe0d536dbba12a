//! The HTTP API and the router: `POST /publish`, `PUT /channels/{name}/snapshot`,
//! `GET /channels/{name}[/presence|/history]`, `GET /health`, `GET /metrics`, plus `/ws` and
//! `/sse`, and the Pusher mode's `/app/{key}` and `/apps/{id}/…` (see [`super::pusher`]).
//! Errors are `{"error": {"code", "message"}}` with a fitting status.
//!
//! Requests with a body are authenticated from their headers before a byte of the body is
//! read, and the body is read within `request_timeout` and its size limit.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::StreamExt;
use relayport_core::Channel;
use relayport_core::message::MAX_EVENT_NAME_LEN;
use serde::Deserialize;
use serde_json::{Value, json};
use tower_http::cors::{Any, CorsLayer};

use super::AppState;
use super::auth::bearer_matches;
use super::broker::{Publication, check_payload};
use crate::protocol::{MessageFrame, code};

/// An error response: `{"error": {"code": …, "message": …}}`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

/// An HTTP error, turned into [`error_response`].
pub(crate) struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.0, self.1, &self.2)
    }
}

/// Builds the router over the shared state.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    let c = &state.config;
    let body_limit = publish_body_limit(c);
    let mut router = Router::new()
        .route("/ws", get(super::ws::handler))
        .route("/sse", get(super::sse::handler))
        .route("/sse/tickets", post(super::sse_tickets::issue))
        .route("/sse/auth", post(super::sse_tickets::authorize))
        .route("/publish", post(publish))
        .route("/channels/{name}", get(channel_info))
        .route("/channels/{name}/presence", get(presence))
        .route("/channels/{name}/history", get(history))
        .route("/channels/{name}/snapshot", put(snapshot))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/app/{key}", get(super::pusher::ws::handler))
        .route("/apps/{id}/events", post(super::pusher::http::events))
        .route(
            "/apps/{id}/batch_events",
            post(super::pusher::http::batch_events),
        )
        .route("/apps/{id}/channels", get(super::pusher::http::channels))
        .route(
            "/apps/{id}/channels/{name}",
            get(super::pusher::http::channel),
        )
        .route(
            "/apps/{id}/channels/{name}/users",
            get(super::pusher::http::users),
        )
        .route(
            "/apps/{id}/users/{user}/terminate_connections",
            post(super::pusher::http::terminate),
        )
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(body_limit));
    if let Some(origin) = &c.cors_origin {
        let cors = CorsLayer::new().allow_methods(Any).allow_headers(Any);
        let cors = if origin == "*" {
            cors.allow_origin(Any)
        } else {
            match HeaderValue::from_str(origin) {
                Ok(v) => cors.allow_origin(v),
                Err(_) => {
                    tracing::warn!("CORS origin {origin:?} is not a valid header value; CORS off");
                    cors
                }
            }
        };
        router = router.layer(cors);
    }
    router.with_state(state)
}

/// The largest `POST /publish` body: a full batch of maximal payloads, plus room for the
/// envelopes.
fn publish_body_limit(c: &super::ServerConfig) -> usize {
    c.limits
        .max_payload
        .saturating_mul(c.max_batch.max(1))
        .saturating_add(256 * 1024)
}

/// Reads a body of at most `limit` bytes within the request timeout; called only once the
/// request is authorized.
pub(crate) async fn read_body(
    app: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, Response> {
    let timeout = app.config.request_timeout;
    let too_large = || {
        error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            code::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                error_response(StatusCode::BAD_REQUEST, code::MALFORMED, &e.to_string())
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result,
        Err(_) => Err(error_response(
            StatusCode::REQUEST_TIMEOUT,
            code::TIMEOUT,
            &format!(
                "limit request_timeout: the body must arrive within {} ms",
                timeout.as_millis()
            ),
        )),
    }
}

fn authorized(app: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if bearer_matches(&app.config.secret, header) {
        Ok(())
    } else {
        Err(ApiError(
            StatusCode::UNAUTHORIZED,
            code::UNAUTHORIZED,
            "send Authorization: Bearer <secret>".into(),
        ))
    }
}

fn parse_channel(name: &str) -> Result<Channel, ApiError> {
    Channel::parse(name).map_err(|e| {
        ApiError(
            StatusCode::BAD_REQUEST,
            code::INVALID_CHANNEL,
            e.to_string(),
        )
    })
}

/// One event of `POST /publish`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    channel: String,
    event: String,
    data: Value,
    /// `base64` for a binary payload.
    #[serde(default)]
    encoding: Option<String>,
    #[serde(default)]
    socket_id: Option<String>,
    #[serde(default)]
    retain: bool,
}

fn published(m: &MessageFrame) -> Value {
    json!({"channel": m.channel, "id": m.id, "seq": m.seq, "epoch": m.epoch})
}

fn validate(app: &AppState, i: usize, v: Value) -> Result<Publication, ApiError> {
    let at = |msg: String| format!("event {i}: {msg}");
    let req: PublishRequest = serde_json::from_value(v)
        .map_err(|e| ApiError(StatusCode::BAD_REQUEST, code::MALFORMED, at(e.to_string())))?;
    let channel = parse_channel(&req.channel)?;
    if channel.is_wildcard() {
        let msg = at("cannot publish to a wildcard pattern".into());
        return Err(ApiError(
            StatusCode::BAD_REQUEST,
            code::INVALID_CHANNEL,
            msg,
        ));
    }
    if req.event.is_empty() || req.event.len() > MAX_EVENT_NAME_LEN {
        let msg = at(format!(
            "event names are 1 to {MAX_EVENT_NAME_LEN} bytes long"
        ));
        return Err(ApiError(StatusCode::BAD_REQUEST, code::MALFORMED, msg));
    }
    let max = app.config.limits.max_payload;
    if let Err((code, msg)) = check_payload(&req.data, req.encoding.as_deref(), max) {
        let status = if code == code::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        return Err(ApiError(status, code, at(msg)));
    }
    Ok(Publication {
        channel,
        event: req.event,
        data: req.data,
        encoding: req.encoding,
        sender: None,
        exclude: req.socket_id,
        retain: req.retain,
    })
}

async fn publish(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    let body = match read_body(&app, &headers, body, publish_body_limit(&app.config)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::MALFORMED,
                &format!("not JSON: {e}"),
            );
        }
    };
    let items = match value {
        Value::Object(mut o) if o.contains_key("batch") => match o.remove("batch") {
            Some(Value::Array(items)) if o.is_empty() => items,
            _ => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    code::MALFORMED,
                    "a batch is {\"batch\": [events…]} and nothing else",
                );
            }
        },
        v @ Value::Object(_) => vec![v],
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::MALFORMED,
                "expected a JSON object",
            );
        }
    };
    let max = app.config.max_batch;
    if items.is_empty() || items.len() > max {
        let msg = format!(
            "limit max_batch: a batch has 1 to {max} events (got {})",
            items.len()
        );
        return error_response(StatusCode::BAD_REQUEST, code::BATCH_TOO_LARGE, &msg);
    }
    // Validate everything before publishing anything.
    let mut pubs = Vec::with_capacity(items.len());
    for (i, v) in items.into_iter().enumerate() {
        match validate(&app, i, v) {
            Ok(p) => pubs.push(p),
            Err(r) => return r.into_response(),
        }
    }
    let mut out = Vec::with_capacity(pubs.len());
    for p in pubs {
        match app.engine.publish(&app.broker, p).await {
            Ok(m) => out.push(published(&m)),
            Err(e) => {
                return error_response(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, &e);
            }
        }
    }
    Json(json!({"published": out})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotRequest {
    #[serde(default)]
    event: Option<String>,
    data: Value,
}

async fn snapshot(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    let channel = match parse_channel(&name) {
        Ok(c) if !c.is_wildcard() => c,
        Ok(_) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                code::INVALID_CHANNEL,
                "not a concrete channel",
            );
        }
        Err(r) => return r.into_response(),
    };
    // One maximal payload plus room for the envelope.
    let limit = app.config.limits.max_payload.saturating_add(16 * 1024);
    let body = match read_body(&app, &headers, body, limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: SnapshotRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, code::MALFORMED, &e.to_string()),
    };
    let size = serde_json::to_vec(&req.data).map_or(usize::MAX, |v| v.len());
    let max = app.config.limits.max_payload;
    if size > max {
        let msg = format!("limit max_payload: payloads are at most {max} bytes (got {size})");
        return error_response(StatusCode::PAYLOAD_TOO_LARGE, code::PAYLOAD_TOO_LARGE, &msg);
    }
    let event = req.event.unwrap_or_else(|| "snapshot".into());
    match app
        .engine
        .set_snapshot(&app.broker, &channel, event, req.data)
        .await
    {
        Ok(frame) => Json(json!({"snapshot": frame})).into_response(),
        Err(e) => error_response(StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE, &e),
    }
}

async fn channel_info(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    match parse_channel(&name) {
        Ok(c) => Json(app.broker.channel_info(&c)).into_response(),
        Err(r) => r.into_response(),
    }
}

async fn presence(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    match parse_channel(&name) {
        Ok(c) => {
            let members = app.broker.members(&c);
            Json(json!({"channel": c.to_string(), "members": members})).into_response()
        }
        Err(r) => r.into_response(),
    }
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    #[serde(default)]
    since: u64,
    #[serde(default)]
    limit: Option<usize>,
}

async fn history(
    State(app): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Err(r) = authorized(&app, &headers) {
        return r.into_response();
    }
    let Ok(Query(q)) = query else {
        return error_response(
            StatusCode::BAD_REQUEST,
            code::MALFORMED,
            "since and limit are non-negative integers",
        );
    };
    let channel = match parse_channel(&name) {
        Ok(c) => c,
        Err(r) => return r.into_response(),
    };
    let limit = q.limit.unwrap_or(usize::MAX);
    let (position, messages) = app.broker.history(&channel, q.since, limit);
    Json(json!({"channel": channel.to_string(), "position": position, "messages": messages}))
        .into_response()
}

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, code::NOT_FOUND, "no such endpoint")
}

async fn health(State(app): State<Arc<AppState>>) -> Response {
    Json(json!({
        "status": if app.shutdown.is_cancelled() { "stopping" } else { "ok" },
        "connections": app.broker.connection_count(),
        "channels": app.broker.channel_count(),
    }))
    .into_response()
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.broker.metrics().render(),
    )
        .into_response()
}
