//! SSE tickets: how a stream gets a server-assigned socket id and private channels without
//! any signature in a URL.
//!
//! 1. `POST /sse/tickets` → `{"ticket", "socket_id", "expires_in_ms"}`: the server picks the
//!    socket id (never the client), and the ticket is valid for `sse_ticket_ttl`.
//! 2. The client has its backend sign `socket_id:private:channel` as for a WebSocket, then
//!    `POST /sse/auth` with `{"ticket", "auth": {"private:x": "<hex>"}}` (signatures travel
//!    in the body only); they are checked at once.
//! 3. `GET /sse?ticket=…&channel=private:x` opens the stream; the ticket is consumed (single
//!    use), so a ticket or signature seen later (in a proxy log, after the stream closed)
//!    opens nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use relayport_core::{Channel, ChannelKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::auth::verify_subscription;
use super::broker::Refusal;
use super::clock::Clock;
use super::http::error_response;
use crate::protocol::code;

/// A ticket not yet used.
#[derive(Debug, Clone)]
pub struct Ticket {
    /// The socket id the server assigned; private signatures are bound to it.
    pub socket_id: String,
    /// The private channels whose signatures were checked (canonical names).
    pub authorized: BTreeSet<String>,
    expires_at: Duration,
}

/// The pending tickets, bounded in number and in time.
#[derive(Debug)]
pub struct Tickets {
    pending: Mutex<HashMap<String, Ticket>>,
    ttl: Duration,
    max: usize,
    clock: Clock,
}

impl Tickets {
    /// A store whose tickets live `ttl`, at most `max` at once.
    pub fn new(ttl: Duration, max: usize, clock: Clock) -> Self {
        Self {
            pending: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ticket>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Issues a ticket for a fresh socket id on `node`; `None` when too many are pending.
    pub fn issue(&self, node: &str) -> Option<(String, Ticket)> {
        let now = self.clock.now();
        let mut pending = self.lock();
        pending.retain(|_, t| t.expires_at > now);
        if pending.len() >= self.max {
            return None;
        }
        let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let ticket = Ticket {
            socket_id: format!("{node}.s{:016x}", fastrand::u64(..)),
            authorized: BTreeSet::new(),
            expires_at: now + self.ttl,
        };
        pending.insert(id.clone(), ticket.clone());
        Some((id, ticket))
    }

    /// Runs `f` on a live ticket.
    fn with<T>(&self, id: &str, f: impl FnOnce(&mut Ticket) -> T) -> Option<T> {
        let now = self.clock.now();
        let mut pending = self.lock();
        match pending.get_mut(id) {
            Some(t) if t.expires_at > now => Some(f(t)),
            Some(_) => {
                pending.remove(id);
                None
            }
            None => None,
        }
    }

    /// Takes a live ticket out (single use).
    pub fn redeem(&self, id: &str) -> Option<Ticket> {
        let now = self.clock.now();
        self.lock().remove(id).filter(|t| t.expires_at > now)
    }

    /// How long tickets live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

fn no_ticket() -> Response {
    error_response(
        StatusCode::UNAUTHORIZED,
        code::UNAUTHORIZED,
        "unknown, used or expired ticket: POST /sse/tickets for a new one",
    )
}

/// `POST /sse/tickets`.
pub(crate) async fn issue(State(app): State<Arc<AppState>>) -> Response {
    match app.tickets.issue(app.broker.node_id()) {
        Some((ticket, t)) => Json(json!({
            "ticket": ticket,
            "socket_id": t.socket_id,
            "expires_in_ms": u64::try_from(app.tickets.ttl().as_millis()).unwrap_or(u64::MAX),
        }))
        .into_response(),
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            code::UNAVAILABLE,
            "too many SSE tickets pending; retry later",
        ),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthRequest {
    ticket: String,
    auth: HashMap<String, String>,
}

/// `POST /sse/auth`: checks private-channel signatures for a ticket's socket id.
pub(crate) async fn authorize(
    State(app): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match super::http::read_body(&app, &headers, body, 64 * 1024).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let req: AuthRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, code::MALFORMED, &e.to_string()),
    };
    let max = app.config.limits.max_subscriptions;
    if req.auth.len() > max {
        let msg = format!("limit max_subscriptions: at most {max} channels");
        return error_response(StatusCode::BAD_REQUEST, code::TOO_MANY_SUBSCRIPTIONS, &msg);
    }
    let secret = app.config.secret.clone();
    let checked = app.tickets.with(&req.ticket, |ticket| {
        let mut ok = Vec::new();
        for (name, sig) in &req.auth {
            let channel = Channel::parse(name)
                .map_err(|e| Refusal::new(code::INVALID_CHANNEL, e.to_string()))?;
            if channel.kind() != ChannelKind::Private {
                return Err(Refusal::new(
                    code::FORBIDDEN,
                    format!("{name}: only private channels are signed for SSE"),
                ));
            }
            verify_subscription(&secret, &ticket.socket_id, &channel, Some(sig), None)?;
            ok.push(channel.to_string());
        }
        ticket.authorized.extend(ok.iter().cloned());
        Ok::<Value, Refusal>(json!({"authorized": ok}))
    });
    match checked {
        None => no_ticket(),
        Some(Ok(v)) => Json(v).into_response(),
        Some(Err(r)) => {
            let status = if r.code == code::UNAUTHORIZED {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            error_response(status, r.code, &r.message)
        }
    }
}

/// The response for a ticket that cannot be redeemed.
pub(crate) fn refused() -> Response {
    no_ticket()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_are_single_use_expire_and_are_bounded() {
        let clock = Clock::manual();
        let t = Tickets::new(Duration::from_secs(30), 2, clock.clone());
        let (a, ta) = t.issue("n").unwrap();
        let (b, tb) = t.issue("n").unwrap();
        assert_ne!(ta.socket_id, tb.socket_id);
        assert!(t.issue("n").is_none(), "at most 2 pending");
        assert_eq!(t.redeem(&a).unwrap().socket_id, ta.socket_id);
        assert!(t.redeem(&a).is_none(), "single use");
        clock.advance(Duration::from_secs(30));
        assert!(t.redeem(&b).is_none(), "expired");
        assert!(t.issue("n").is_some(), "expired tickets free their slot");
    }
}
