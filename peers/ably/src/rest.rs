//! The REST API: publish, history, presence, requestToken, time.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::capability::Op;
use crate::error::AblyError;
use crate::state::{Auth, Shared};

/// An error as Ably's REST API answers it.
pub(crate) struct RestError(pub AblyError);

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut resp = (status, Json(json!({"error": e.to_json()}))).into_response();
        if let Ok(v) = HeaderValue::from_str(&e.code.to_string()) {
            resp.headers_mut().insert("x-ably-errorcode", v);
        }
        resp
    }
}

impl From<AblyError> for RestError {
    fn from(e: AblyError) -> Self {
        Self(e)
    }
}

type RestResult = Result<Response, RestError>;

/// Basic (`base64(key)`) or Bearer (`base64(token)`, or the raw token) authorization.
fn authorize(shared: &Shared, headers: &HeaderMap) -> Result<Auth, AblyError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| AblyError::new(40101, 401, "no authorization header"))?;
    let decode = |s: &str| {
        STANDARD
            .decode(s.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    };
    if let Some(b) = value.strip_prefix("Basic ") {
        let key = decode(b).ok_or_else(|| AblyError::new(40101, 401, "malformed basic auth"))?;
        return shared.auth_key(&key);
    }
    if let Some(b) = value.strip_prefix("Bearer ") {
        let token = decode(b)
            .filter(|t| shared.lock().tokens.get(t).is_some())
            .unwrap_or_else(|| b.trim().to_owned());
        return shared.auth_token(&token);
    }
    Err(AblyError::new(
        40101,
        401,
        "unsupported authorization scheme",
    ))
}

/// `GET /time`.
pub(crate) async fn time(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!([shared.now_ms()]))
}

/// `POST /channels/{name}/messages`: one message object or an array.
pub(crate) async fn publish(
    State(shared): State<Arc<Shared>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> RestResult {
    let auth = authorize(&shared, &headers)?;
    if !auth.capability.allows(&channel, Op::Publish) {
        return Err(AblyError::not_permitted(format!(
            "unable to perform channel operation (publish); channel = {channel}"
        ))
        .into());
    }
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| AblyError::bad_request(format!("body is not JSON: {e}")))?;
    let items = match body {
        Value::Array(a) => a,
        one @ Value::Object(_) => vec![one],
        _ => return Err(AblyError::bad_request("body must be a message or an array").into()),
    };
    let header_client = headers
        .get("x-ably-clientid")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let identity = match (&auth.token_client_id, auth.is_key) {
        (_, true) => (header_client, true),
        (Some(c), false) if c == "*" => (header_client, true),
        (Some(c), false) => (Some(c.clone()), false),
        (None, false) => (None, false),
    };
    let (id, serials) = shared.publish_rest(&channel, identity, items)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"channel": channel, "messageId": id, "serials": serials})),
    )
        .into_response())
}

fn num(q: &HashMap<String, String>, name: &str) -> Result<Option<i64>, AblyError> {
    q.get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| AblyError::bad_request(format!("`{name}` is not a number")))
        })
        .transpose()
}

/// `GET /channels/{name}/messages?limit&direction&start&end` (+ `cursor` from `Link`).
pub(crate) async fn history(
    State(shared): State<Arc<Shared>>,
    Path(channel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> RestResult {
    let auth = authorize(&shared, &headers)?;
    if !auth.capability.allows(&channel, Op::History) {
        return Err(AblyError::not_permitted(format!(
            "unable to perform channel operation (history); channel = {channel}"
        ))
        .into());
    }
    let limit = num(&q, "limit")?.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(AblyError::bad_request("limit must be 1..=1000").into());
    }
    let forwards = match q.get("direction").map(String::as_str) {
        None | Some("backwards") => false,
        Some("forwards") => true,
        Some(_) => return Err(AblyError::bad_request("direction is forwards|backwards").into()),
    };
    let (start, end) = (num(&q, "start")?, num(&q, "end")?);
    let cursor = num(&q, "cursor")?;
    let mut items: Vec<(i64, Value)> = shared
        .history(&channel)
        .into_iter()
        .scan((0u64, 0i64), |(last, i), (seq, m)| {
            *i = if seq == *last { *i + 1 } else { 0 };
            *last = seq;
            Some((seq as i64 * 1000 + *i, m))
        })
        .filter(|(_, m)| {
            let ts = m.get("timestamp").and_then(Value::as_i64).unwrap_or(0);
            start.is_none_or(|s| ts >= s) && end.is_none_or(|e| ts <= e)
        })
        .filter(|(k, _)| match cursor {
            Some(c) if forwards => *k > c,
            Some(c) => *k < c,
            None => true,
        })
        .collect();
    if !forwards {
        items.reverse();
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let mut base = vec![
        format!("limit={limit}"),
        format!(
            "direction={}",
            if forwards { "forwards" } else { "backwards" }
        ),
    ];
    if let Some(s) = start {
        base.push(format!("start={s}"));
    }
    if let Some(e) = end {
        base.push(format!("end={e}"));
    }
    let mut links = vec![format!("<./messages?{}>; rel=\"first\"", base.join("&"))];
    if more && let Some((k, _)) = items.last() {
        links.push(format!(
            "<./messages?{}&cursor={k}>; rel=\"next\"",
            base.join("&")
        ));
    }
    let body: Vec<Value> = items.into_iter().map(|(_, m)| m).collect();
    let mut resp = Json(body).into_response();
    for l in links {
        if let Ok(v) = HeaderValue::from_str(&l) {
            resp.headers_mut().append(header::LINK, v);
        }
    }
    Ok(resp)
}

/// `GET /channels/{name}/presence?clientId&connectionId&limit`.
pub(crate) async fn presence(
    State(shared): State<Arc<Shared>>,
    Path(channel): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> RestResult {
    let auth = authorize(&shared, &headers)?;
    if !auth.capability.allows(&channel, Op::Subscribe)
        && !auth.capability.allows(&channel, Op::Presence)
    {
        return Err(AblyError::not_permitted(format!(
            "unable to read presence; channel = {channel}"
        ))
        .into());
    }
    let limit = num(&q, "limit")?.unwrap_or(100).clamp(1, 1000) as usize;
    let body: Vec<Value> = shared
        .members(&channel)
        .into_iter()
        .filter(|m| q.get("clientId").is_none_or(|c| *c == m.client_id))
        .filter(|m| q.get("connectionId").is_none_or(|c| *c == m.connection_id))
        .take(limit)
        .map(|m| {
            let mut v = json!({
                "action": 1, "clientId": m.client_id, "connectionId": m.connection_id,
                "id": m.id, "timestamp": m.timestamp,
            });
            if let Some(d) = m.data {
                v["data"] = d;
            }
            if let Some(e) = m.encoding {
                v["encoding"] = json!(e);
            }
            v
        })
        .collect();
    Ok(Json(body).into_response())
}

/// `POST /keys/{keyName}/requestToken`: a signed TokenRequest (or an unsigned one with the
/// key's basic auth) for TokenDetails.
pub(crate) async fn request_token(
    State(shared): State<Arc<Shared>>,
    Path(key_name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> RestResult {
    let key = shared
        .key(&key_name)
        .cloned()
        .ok_or_else(|| AblyError::new(40400, 404, format!("no key `{key_name}`")))?;
    let basic_ok = headers.contains_key(header::AUTHORIZATION)
        && authorize(&shared, &headers).is_ok_and(|a| a.is_key)
        && headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| STANDARD.decode(b.trim()).ok())
            .is_some_and(|k| k.starts_with(format!("{key_name}:").as_bytes()));
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| AblyError::bad_request(format!("body is not JSON: {e}")))?;
    let now = shared.now_ms();
    let token = shared
        .lock()
        .tokens
        .exchange(&shared.cfg, &key, &body, basic_ok, now)?;
    Ok(Json(token.details()).into_response())
}
