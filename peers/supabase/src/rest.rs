//! REST broadcast: `POST /realtime/v1/api/broadcast` (batch) and
//! `POST /realtime/v1/api/broadcast/<topic>/events/<event>[?private=true]` (single event, JSON
//! or `application/octet-stream`). Auth: `Authorization: Bearer <jwt>`, else the `apikey`
//! header; private messages pass the policy's broadcast **write** check (as the RLS insert).

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::frame::{Broadcast, UserPayload};
use crate::hub::Hub;

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "Unauthorized"})),
    )
        .into_response()
}

fn unprocessable(msg: String) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        axum::Json(json!({"errors": {"messages": [msg]}})),
    )
        .into_response()
}

fn caller(hub: &Hub, headers: &HeaderMap) -> Option<Map<String, Value>> {
    let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let token = h("authorization")
        .and_then(|a| {
            a.strip_prefix("Bearer ")
                .or_else(|| a.strip_prefix("bearer "))
        })
        .or_else(|| h("apikey"))?;
    hub.verify(token.trim()).ok()
}

struct Item {
    topic: String,
    private: bool,
    b: Broadcast,
}

fn parse_batch(body: &[u8], max: usize) -> Result<Vec<Item>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("body is not JSON: {e}"))?;
    let Some(Value::Array(messages)) = v.get("messages") else {
        return Err("`messages` must be a list".into());
    };
    messages
        .iter()
        .map(|m| {
            let topic = m.get("topic").and_then(Value::as_str).unwrap_or_default();
            let event = m.get("event").and_then(Value::as_str);
            let payload = m.get("payload");
            let (Some(event), Some(payload @ Value::Object(_))) = (event, payload) else {
                return Err("each message needs a string `event` and an object `payload`".into());
            };
            if topic.is_empty() {
                return Err("`topic` can't be blank".into());
            }
            if payload.to_string().len() > max {
                return Err("Payload size exceeds tenant limit".into());
            }
            let private = match m.get("private") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err("`private` must be a boolean".into()),
            };
            let meta = m
                .get("id")
                .and_then(Value::as_str)
                .map(|id| json!({"id": id}));
            Ok(Item {
                topic: topic.to_owned(),
                private,
                b: Broadcast {
                    event: event.to_owned(),
                    payload: UserPayload::Json(payload.clone()),
                    meta,
                    binary_frame: false,
                },
            })
        })
        .collect()
}

/// The batch endpoint.
pub(crate) async fn batch(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(claims) = caller(&hub, &headers) else {
        return unauthorized();
    };
    let items = match parse_batch(&body, hub.cfg.max_payload) {
        Ok(items) => items,
        Err(e) => return unprocessable(e),
    };
    for item in items {
        hub.rest_broadcast(&item.topic, item.private, &claims, item.b);
    }
    StatusCode::ACCEPTED.into_response()
}

/// The single-event endpoint.
pub(crate) async fn single(
    State(hub): State<Arc<Hub>>,
    Path((topic, event)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(claims) = caller(&hub, &headers) else {
        return unauthorized();
    };
    if body.len() > hub.cfg.max_payload {
        return unprocessable("Payload size exceeds tenant limit".into());
    }
    let binary = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/octet-stream"));
    let payload = if binary {
        UserPayload::Binary(body.to_vec())
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => UserPayload::Json(v),
            Err(e) => return unprocessable(format!("body is not JSON: {e}")),
        }
    };
    let private = q.get("private").is_some_and(|p| p == "true");
    let b = Broadcast {
        event,
        payload,
        meta: None,
        binary_frame: binary,
    };
    hub.rest_broadcast(&topic, private, &claims, b);
    StatusCode::ACCEPTED.into_response()
}

/// The control API over HTTP, for tests in other languages (`/_peer/...`, loopback only).
pub(crate) mod control {
    use super::*;
    use crate::postgres::Change;

    fn name_of(v: &Value) -> Result<String, String> {
        v.get("channel")
            .and_then(Value::as_str)
            .map(|s| s.strip_prefix("realtime:").unwrap_or(s).to_owned())
            .ok_or_else(|| "`channel` must be a string".into())
    }

    fn body(b: &[u8]) -> Result<Value, String> {
        serde_json::from_slice(b).map_err(|e| format!("body is not JSON: {e}"))
    }

    /// `POST /_peer/postgres` `{schema, table, type, record, old_record?, columns?}`.
    pub(crate) async fn postgres(State(hub): State<Arc<Hub>>, b: Bytes) -> Response {
        let change = match body(&b).and_then(|v| Change::from_json(&v)) {
            Ok(c) => c,
            Err(e) => return unprocessable(e),
        };
        axum::Json(json!({"delivered": hub.inject_change(&change)})).into_response()
    }

    /// `POST /_peer/fail` `{channel}`: `phx_error` on every channel with that name.
    pub(crate) async fn fail(State(hub): State<Arc<Hub>>, b: Bytes) -> Response {
        match body(&b).and_then(|v| name_of(&v)) {
            Ok(name) => {
                axum::Json(json!({"errored": hub.fail_channel(&name, None)})).into_response()
            }
            Err(e) => unprocessable(e),
        }
    }

    /// `POST /_peer/close` `{channel, message}`: `system` error + `phx_close`.
    pub(crate) async fn close(State(hub): State<Arc<Hub>>, b: Bytes) -> Response {
        let v = match body(&b) {
            Ok(v) => v,
            Err(e) => return unprocessable(e),
        };
        let msg = v
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("closed by the test");
        match name_of(&v) {
            Ok(name) => {
                axum::Json(json!({"closed": hub.close_channel(&name, msg)})).into_response()
            }
            Err(e) => unprocessable(e),
        }
    }

    /// `POST /_peer/drop`: drops every socket.
    pub(crate) async fn drop_all(State(hub): State<Arc<Hub>>) -> Response {
        axum::Json(json!({"dropped": hub.drop_sockets()})).into_response()
    }

    /// `GET /_peer/presence?channel=..&private=..`: the presence state.
    pub(crate) async fn presence(
        State(hub): State<Arc<Hub>>,
        Query(q): Query<HashMap<String, String>>,
    ) -> Response {
        let name = q.get("channel").cloned().unwrap_or_default();
        let private = q.get("private").is_some_and(|p| p == "true");
        axum::Json(hub.presence_of(&name, private)).into_response()
    }

    /// `GET /_peer/stats`.
    pub(crate) async fn stats(State(hub): State<Arc<Hub>>) -> Response {
        let s = hub.stats();
        axum::Json(json!({
            "connections": s.connections, "joins": s.joins, "joins_refused": s.joins_refused,
            "broadcasts": s.broadcasts, "rest_broadcasts": s.rest_broadcasts,
            "access_tokens": s.access_tokens, "channels_closed": s.channels_closed,
            "denied_writes": s.denied_writes, "malformed": s.malformed,
        }))
        .into_response()
    }
}
