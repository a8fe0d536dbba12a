//! The test-control HTTP API under `/_peer/` (for scripts in other languages; Rust tests use
//! [`AblyPeer`](crate::AblyPeer)'s methods). Loopback only, like the whole peer.
//!
//! | request | effect |
//! |---|---|
//! | `GET /_peer/connections` | `[{id, clientId, live, attached, capability}]` |
//! | `POST /_peer/connections/{id}/drop` | drop the socket without a close (resumable) |
//! | `POST /_peer/connections/{id}/expire` | forget the connection now (members leave, resume fails) |
//! | `POST /_peer/connections/{id}/auth` | send AUTH (ask the client to re-authenticate) |
//! | `POST /_peer/tokens/expire` | every token expires now (live token links get 40142) |
//! | `POST /_peer/clock/advance?ms=N` | move the peer's clock forward |
//! | `GET /_peer/channels/{name}/members` | `[{clientId, connectionId, data}]` |
//! | `POST /_peer/channels/{name}/publish` | body `{name, data}`: publish as the server |

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::state::Shared;

fn done(ok: bool) -> Response {
    if ok {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

pub(crate) async fn connections(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(Value::Array(
        s.connections()
            .into_iter()
            .map(|c| {
                json!({"id": c.id, "clientId": c.client_id, "live": c.live,
                       "attached": c.attached, "capability": c.capability})
            })
            .collect(),
    ))
}

pub(crate) async fn drop_connection(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    done(s.drop_link(&id))
}

pub(crate) async fn expire_connection(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Response {
    done(s.expire_connection(&id))
}

pub(crate) async fn request_auth(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    done(s.request_auth(&id))
}

pub(crate) async fn expire_tokens(State(s): State<Arc<Shared>>) -> Response {
    s.expire_tokens();
    done(true)
}

pub(crate) async fn advance_clock(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match q.get("ms").and_then(|v| v.parse::<u64>().ok()) {
        Some(ms) => {
            s.advance(Duration::from_millis(ms));
            done(true)
        }
        None => StatusCode::BAD_REQUEST.into_response(),
    }
}

pub(crate) async fn members(State(s): State<Arc<Shared>>, Path(ch): Path<String>) -> Json<Value> {
    Json(Value::Array(
        s.members(&ch)
            .into_iter()
            .map(|m| json!({"clientId": m.client_id, "connectionId": m.connection_id, "data": m.data}))
            .collect(),
    ))
}

pub(crate) async fn publish(
    State(s): State<Arc<Shared>>,
    Path(ch): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    match s.publish_rest(&ch, (None, true), vec![body]) {
        Ok(_) => StatusCode::CREATED.into_response(),
        Err(e) => crate::rest::RestError(e).into_response(),
    }
}
