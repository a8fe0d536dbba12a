//! Connection states and the reconnect countdown on stderr, and fatal states as errors.

use std::time::Duration;

use relayport::{ConnectionState, RealtimeClient, RealtimeError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::output::note;

fn describe(state: &ConnectionState) -> String {
    match state {
        ConnectionState::Initialized => "state: initialized".into(),
        ConnectionState::Connecting => "state: connecting".into(),
        ConnectionState::Connected => "state: connected".into(),
        ConnectionState::Reconnecting { attempt, retry_in } => format!(
            "state: reconnecting (attempt {attempt}) in {}s",
            retry_in.as_secs_f64().ceil()
        ),
        ConnectionState::Disconnected => "state: disconnected".into(),
        ConnectionState::PermanentlyDisconnected => "state: permanently disconnected".into(),
        ConnectionState::Failed(e) => format!("state: failed: {e}"),
        ConnectionState::Closed => "state: closed".into(),
    }
}

/// The error a state ends the command with, if it is fatal.
fn fatal(state: &ConnectionState) -> Option<RealtimeError> {
    match state {
        ConnectionState::Failed(e) => Some(e.clone()),
        ConnectionState::PermanentlyDisconnected => Some(RealtimeError::Connection(
            "gave up reconnecting (permanently disconnected)".into(),
        )),
        _ => None,
    }
}

/// Prints every state change, and a countdown each second while reconnecting; resolves with
/// the error when the client fails or gives up (never otherwise).
pub(crate) async fn watch_states(client: &RealtimeClient) -> RealtimeError {
    let mut states: watch::Receiver<ConnectionState> = client.state_changes();
    let mut current = states.borrow_and_update().clone();
    note(&describe(&current));
    loop {
        if let Some(e) = fatal(&current) {
            return e;
        }
        let deadline = match &current {
            ConnectionState::Reconnecting { retry_in, .. } => Some(Instant::now() + *retry_in),
            _ => None,
        };
        loop {
            let tick = async {
                match deadline {
                    Some(d) if d > Instant::now() => {
                        let left = d - Instant::now();
                        let step = left.min(Duration::from_secs(1));
                        tokio::time::sleep(step).await;
                        Some(d.saturating_duration_since(Instant::now()))
                    }
                    _ => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = states.changed() => {
                    if changed.is_err() {
                        return RealtimeError::Closed("the client stopped".into());
                    }
                    current = states.borrow_and_update().clone();
                    note(&describe(&current));
                    break;
                }
                Some(left) = tick => {
                    if !left.is_zero() {
                        note(&format!("reconnecting in {}s…", left.as_secs_f64().ceil()));
                    }
                }
            }
        }
    }
}
