//! Connection states and the reconnect countdown on stderr, and fatal states as errors.
//! The states come from the client's event stream (`events.rs`), in order with every other
//! event, so a short `reconnecting` is never missed and never printed after what followed it.

use std::time::Duration;

use relayport::{ConnectionState, RealtimeError};
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
        other => format!("state: {other:?}"),
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

/// The reconnect countdown: while the client waits to reconnect, one line a second.
#[derive(Default)]
pub(crate) struct Countdown {
    deadline: Option<Instant>,
}

impl Countdown {
    /// Follows `state`: a countdown to the retry while reconnecting, nothing otherwise.
    pub(crate) fn follow(&mut self, state: &ConnectionState) {
        self.deadline = match state {
            ConnectionState::Reconnecting { retry_in, .. } => Some(Instant::now() + *retry_in),
            _ => None,
        };
    }

    /// Waits for the next second of the countdown and prints how long is left; pending while
    /// there is no countdown.
    pub(crate) async fn tick(&mut self) {
        match self.deadline {
            Some(d) if d > Instant::now() => {
                let step = (d - Instant::now()).min(Duration::from_secs(1));
                tokio::time::sleep(step).await;
                let left = d.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    note(&format!("reconnecting in {}s…", left.as_secs_f64().ceil()));
                }
            }
            _ => std::future::pending().await,
        }
    }
}

/// Prints `state`; the error it ends the command with, when it is fatal.
pub(crate) fn report(state: &ConnectionState) -> Option<RealtimeError> {
    note(&describe(state));
    fatal(state)
}
