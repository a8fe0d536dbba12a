//! The Pusher HTTP API under `/apps/{app_id}`, every request signed as Pusher signs them
//! (see [`super::signing`]); the signature is checked before a byte of the body is read.
//!
//! - `POST /events` — `{name, data, channels | channel, socket_id?, info?}`: 1 to 100
//!   channels, `data` at most the app's `max_payload` (413), `socket_id` excluded,
//!   `info` = `user_count` and/or `subscription_count` answered per channel;
//!   `#server-to-user-{id}` channels reach the user's signed-in connections;
//! - `POST /batch_events` — `{batch: [{channel, name, data, socket_id?, info?}]}`, 1 to the
//!   app's `max_batch` events, all validated before any is published;
//! - `GET /channels` — occupied channels, `filter_by_prefix`, `info=user_count` (with a
//!   `presence-` prefix only);
//! - `GET /channels/{name}` — `occupied`, `info=user_count` (presence) / `subscription_count`;
//! - `GET /channels/{name}/users` — presence members;
//! - `POST /users/{id}/terminate_connections` — closes the user's connections (4009).
//!
//! Errors: `{"error": message}` with 400, 401 (signature), 403 (app disabled), 404 (unknown
//! app), 413 (too large).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use relayport_core::{Channel, ChannelKind};
use serde_json::{Map, Value, json};

use super::super::AppState;
use super::super::broker::Publication;
use super::super::connection::Encoded;
use super::AppRuntime;
use super::frames;
use super::names::{self, SERVER_TO_USER_PREFIX};
use super::signing::{SignedRequest, verify_body, verify_request};
use super::ws::TERMINATED;

/// Channels per event at most.
pub const MAX_CHANNELS: usize = 100;

type Params = Result<Query<Vec<(String, String)>>, axum::extract::rejection::QueryRejection>;

/// An error answer: `{"error": message}` with a status.
pub(crate) struct Fail(StatusCode, String);

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn fail(status: StatusCode, message: impl Into<String>) -> Fail {
    Fail(status, message.into())
}

/// An authenticated request: the app, the checked signature, the query parameters.
type Authenticated = (Arc<AppRuntime>, SignedRequest, Vec<(String, String)>);

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Finds the app and checks the request's signature.
fn authenticate(
    state: &AppState,
    id: &str,
    method: &Method,
    uri: &OriginalUri,
    params: Params,
) -> Result<Authenticated, Fail> {
    let Some(app) = state.pusher.by_id(id) else {
        return Err(fail(StatusCode::NOT_FOUND, "Unknown app"));
    };
    let Ok(Query(params)) = params else {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            "The query string is not valid",
        ));
    };
    let signed = verify_request(&app.app, method.as_str(), uri.path(), &params, now_secs())
        .map_err(|r| fail(StatusCode::UNAUTHORIZED, r.0))?;
    if !app.app.enabled {
        return Err(fail(StatusCode::FORBIDDEN, "The app is disabled"));
    }
    Ok((app, signed, params))
}

async fn body_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    signed: &SignedRequest,
) -> Result<Value, Response> {
    let bytes = super::super::http::read_body(state, headers, body, limit).await?;
    verify_body(signed, &bytes).map_err(|r| fail(StatusCode::UNAUTHORIZED, r.0).into_response())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        fail(
            StatusCode::BAD_REQUEST,
            format!("The body is not JSON: {e}"),
        )
        .into_response()
    })
}

/// A destination of an event.
enum Target {
    Channel { wire: String, native: Channel },
    User(String),
}

/// One validated event.
struct Event {
    name: String,
    data: Value,
    targets: Vec<Target>,
    exclude: Option<String>,
    info: Vec<String>,
}

fn validate(app: &AppRuntime, v: Value, batch: bool) -> Result<Event, Fail> {
    let bad = |m: String| fail(StatusCode::BAD_REQUEST, m);
    let Value::Object(mut o) = v else {
        return Err(bad("An event is a JSON object".into()));
    };
    let allowed = ["name", "data", "channels", "channel", "socket_id", "info"];
    if let Some(k) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!("Unknown field {k:?}")));
    }
    let name = match o.remove("name") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= names::MAX_EVENT_LEN => s,
        _ => return Err(bad("name is a string of 1 to 200 characters".into())),
    };
    let data = o.remove("data").unwrap_or(Value::String(String::new()));
    let size = match &data {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    };
    let max = app.app.max_payload;
    if size > max {
        return Err(fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("data is at most {max} bytes (got {size})"),
        ));
    }
    let channels: Vec<String> = match (o.remove("channels"), o.remove("channel")) {
        (Some(Value::Array(list)), None) if !batch => list
            .into_iter()
            .map(|c| match c {
                Value::String(s) => Ok(s),
                _ => Err(bad("channels holds strings".into())),
            })
            .collect::<Result<_, _>>()?,
        (None, Some(Value::String(c))) => vec![c],
        _ => {
            return Err(bad(if batch {
                "each batch event has one channel".into()
            } else {
                "give channels (an array) or channel (a string)".into()
            }));
        }
    };
    if channels.is_empty() || channels.len() > MAX_CHANNELS {
        return Err(bad(format!(
            "An event goes to 1 to {MAX_CHANNELS} channels (got {})",
            channels.len()
        )));
    }
    let mut targets = Vec::with_capacity(channels.len());
    for wire in channels {
        if let Some(user) = wire.strip_prefix(SERVER_TO_USER_PREFIX) {
            names::validate_user_id(user).map_err(bad)?;
            targets.push(Target::User(user.to_owned()));
        } else {
            let native = names::to_native(&wire).map_err(bad)?;
            targets.push(Target::Channel { wire, native });
        }
    }
    let exclude = match o.remove("socket_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if names::is_socket_id(&s) => Some(s),
        _ => return Err(bad("socket_id is digits.digits".into())),
    };
    let info = match o.remove("info") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => parse_info(&s, &["user_count", "subscription_count"])?,
        _ => return Err(bad("info is a comma-separated string".into())),
    };
    Ok(Event {
        name,
        data,
        targets,
        exclude,
        info,
    })
}

fn parse_info(s: &str, allowed: &[&str]) -> Result<Vec<String>, Fail> {
    let attrs: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if let Some(a) = attrs.iter().find(|a| !allowed.contains(&a.as_str())) {
        return Err(fail(
            StatusCode::BAD_REQUEST,
            format!("info attribute {a:?} is not supported here"),
        ));
    }
    Ok(attrs)
}

/// The requested attributes of one channel.
fn channel_attributes(app: &AppRuntime, native: &Channel, info: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    if info.is_empty() {
        return out;
    }
    let ci = app.broker.channel_info(native);
    let presence = native.kind() == ChannelKind::Presence;
    for a in info {
        match a.as_str() {
            "user_count" if presence => {
                out.insert(a.clone(), json!(ci.presence_members));
            }
            "subscription_count" if !presence => {
                out.insert(a.clone(), json!(ci.subscription_count));
            }
            _ => {}
        }
    }
    out
}

/// Publishes one validated event; returns its per-channel attributes.
async fn publish(state: &AppState, app: &AppRuntime, e: Event) -> Result<Map<String, Value>, Fail> {
    let payload = frames::payload_from_wire(e.data.clone());
    let mut attrs = Map::new();
    for t in e.targets {
        match t {
            Target::Channel { wire, native } => {
                let p = Publication {
                    channel: native.clone(),
                    event: e.name.clone(),
                    data: payload.clone(),
                    encoding: None,
                    sender: None,
                    exclude: e.exclude.clone(),
                    retain: false,
                };
                app.publish(&state.engine, p)
                    .await
                    .map_err(|m| fail(StatusCode::SERVICE_UNAVAILABLE, m))?;
                if !e.info.is_empty() {
                    let a = channel_attributes(app, &native, &e.info);
                    attrs.insert(wire, Value::Object(a));
                }
            }
            Target::User(user) => {
                let wire = format!("{SERVER_TO_USER_PREFIX}{user}");
                let frame = Encoded::raw(frames::event(&wire, &e.name, &e.data, None));
                for (conn, _) in app.users.connections(&user) {
                    app.broker.send_encoded(conn, &frame);
                }
            }
        }
    }
    Ok(attrs)
}

/// `POST /apps/{id}/events`.
pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, signed, _) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let limit = app.app.max_payload.saturating_add(64 * 1024);
    let value = match body_json(&state, &headers, body, limit, &signed).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let event = match validate(&app, value, false) {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    let with_info = !event.info.is_empty();
    match publish(&state, &app, event).await {
        Ok(attrs) if with_info => Json(json!({"channels": attrs})).into_response(),
        Ok(_) => Json(json!({})).into_response(),
        Err(r) => r.into_response(),
    }
}

/// `POST /apps/{id}/batch_events`.
pub(crate) async fn batch_events(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, signed, _) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let max = app.app.max_batch;
    let limit = app
        .app
        .max_payload
        .saturating_add(4 * 1024)
        .saturating_mul(max.max(1))
        .saturating_add(16 * 1024);
    let value = match body_json(&state, &headers, body, limit, &signed).await {
        Ok(v) => v,
        Err(r) => return r.into_response(),
    };
    let items = match value {
        Value::Object(mut o) if o.len() == 1 => match o.remove("batch") {
            Some(Value::Array(items)) => items,
            _ => {
                return fail(StatusCode::BAD_REQUEST, "The body is {\"batch\": [events]}")
                    .into_response();
            }
        },
        _ => {
            return fail(StatusCode::BAD_REQUEST, "The body is {\"batch\": [events]}")
                .into_response();
        }
    };
    if items.is_empty() || items.len() > max {
        let msg = format!("A batch holds 1 to {max} events (got {})", items.len());
        return fail(StatusCode::BAD_REQUEST, msg).into_response();
    }
    let mut events = Vec::with_capacity(items.len());
    for v in items {
        match validate(&app, v, true) {
            Ok(e) => events.push(e),
            Err(r) => return r.into_response(),
        }
    }
    let with_info = events.iter().any(|e| !e.info.is_empty());
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        match publish(&state, &app, e).await {
            // One channel per batch event: its attributes, flattened.
            Ok(attrs) => out.push(attrs.into_iter().next().map_or(json!({}), |(_, a)| a)),
            Err(r) => return r.into_response(),
        }
    }
    if with_info {
        Json(json!({"batch": out})).into_response()
    } else {
        Json(json!({})).into_response()
    }
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `GET /apps/{id}/channels`.
pub(crate) async fn channels(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    method: Method,
    uri: OriginalUri,
    params: Params,
) -> Response {
    let (app, _, params) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let prefix = param(&params, "filter_by_prefix").unwrap_or("");
    let info = match parse_info(param(&params, "info").unwrap_or(""), &["user_count"]) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    if !info.is_empty() && !prefix.starts_with("presence-") {
        return fail(
            StatusCode::BAD_REQUEST,
            "info=user_count needs filter_by_prefix=presence-",
        )
        .into_response();
    }
    let mut out = BTreeMap::new();
    for ci in app.broker.occupied_channels() {
        let Some(wire) = names::key_to_wire(&ci.channel) else {
            continue;
        };
        if !wire.starts_with(prefix) {
            continue;
        }
        let mut attrs = Map::new();
        if !info.is_empty() {
            attrs.insert("user_count".into(), json!(ci.presence_members));
        }
        out.insert(wire, Value::Object(attrs));
    }
    Json(json!({"channels": out})).into_response()
}

/// `GET /apps/{id}/channels/{name}`.
pub(crate) async fn channel(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
    method: Method,
    uri: OriginalUri,
    params: Params,
) -> Response {
    let (app, _, params) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let native = match names::to_native(&name) {
        Ok(c) => c,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e).into_response(),
    };
    let info = match parse_info(
        param(&params, "info").unwrap_or(""),
        &["user_count", "subscription_count"],
    ) {
        Ok(i) => i,
        Err(r) => return r.into_response(),
    };
    let presence = native.kind() == ChannelKind::Presence;
    if info.iter().any(|a| (a == "user_count") != presence) {
        return fail(
            StatusCode::BAD_REQUEST,
            "user_count is for presence channels, subscription_count for the others",
        )
        .into_response();
    }
    let ci = app.broker.channel_info(&native);
    let mut out = channel_attributes(&app, &native, &info);
    out.insert("occupied".into(), json!(ci.occupancy > 0));
    Json(Value::Object(out)).into_response()
}

/// `GET /apps/{id}/channels/{name}/users`.
pub(crate) async fn users(
    State(state): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
    method: Method,
    uri: OriginalUri,
    params: Params,
) -> Response {
    let (app, _, _) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let native = match names::to_native(&name) {
        Ok(c) if c.kind() == ChannelKind::Presence => c,
        Ok(_) => {
            return fail(StatusCode::BAD_REQUEST, "Only presence channels have users")
                .into_response();
        }
        Err(e) => return fail(StatusCode::BAD_REQUEST, e).into_response(),
    };
    let users: Vec<Value> = app
        .broker
        .members(&native)
        .into_iter()
        .map(|m| json!({"id": m.id}))
        .collect();
    Json(json!({"users": users})).into_response()
}

/// `POST /apps/{id}/users/{user}/terminate_connections`.
pub(crate) async fn terminate(
    State(state): State<Arc<AppState>>,
    Path((id, user)): Path<(String, String)>,
    method: Method,
    uri: OriginalUri,
    params: Params,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (app, signed, _) = match authenticate(&state, &id, &method, &uri, params) {
        Ok(x) => x,
        Err(r) => return r.into_response(),
    };
    let bytes = match super::super::http::read_body(&state, &headers, body, 4096).await {
        Ok(b) => b,
        Err(r) => return r.into_response(),
    };
    if let Err(r) = verify_body(&signed, &bytes) {
        return fail(StatusCode::UNAUTHORIZED, r.0).into_response();
    }
    if let Err(e) = names::validate_user_id(&user) {
        return fail(StatusCode::BAD_REQUEST, e).into_response();
    }
    for (_, kick) in app.users.connections(&user) {
        kick.kick(TERMINATED);
    }
    Json(json!({})).into_response()
}
