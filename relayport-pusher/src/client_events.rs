//! Client events (`client-…`): the rules Pusher enforces, checked before anything is sent.
//!
//! - the name starts with `client-` (and is at most 200 characters);
//! - only on private and presence channels, never on `private-encrypted-…`;
//! - the payload is at most the payload limit (10 KB);
//! - at most 10 per second per connection ([`ClientEventLimiter`]);
//! - (the server does not echo them to the sender; the client adds nothing locally either).

use std::collections::VecDeque;
use std::time::Duration;

use relayport_core::{ChannelKind, OutboundMessage, RealtimeError, Result};
use tokio::time::Instant;

use crate::names::{is_encrypted, to_wire, validate_event_name};

/// Checks a client event against the rules that do not depend on time; returns the Pusher
/// channel name.
pub fn check_client_event(message: &OutboundMessage, max_payload: usize) -> Result<String> {
    let wire = to_wire(&message.channel)?;
    if !message.event.starts_with("client-") {
        return Err(RealtimeError::Unsupported(format!(
            "publishing `{}` from a Pusher connection; client events must be named `client-…`, and other events are published with the server-side `PusherRest`",
            message.event
        )));
    }
    validate_event_name(&message.event)?;
    if message.channel.kind() == ChannelKind::Public {
        return Err(RealtimeError::invalid_channel(
            message.channel.to_string(),
            "client events are only allowed on private and presence channels",
        ));
    }
    if is_encrypted(&wire) {
        return Err(RealtimeError::Unsupported(
            "client events on encrypted channels".into(),
        ));
    }
    let size = message.payload_size();
    if size > max_payload {
        return Err(RealtimeError::PayloadTooLarge {
            size,
            limit: max_payload,
        });
    }
    Ok(wire)
}

/// A sliding one-second window: at most `per_second` client events in any second.
#[derive(Debug, Clone)]
pub struct ClientEventLimiter {
    per_second: usize,
    sent: VecDeque<Instant>,
}

impl ClientEventLimiter {
    /// A limiter allowing `per_second` events in any one-second window.
    pub fn new(per_second: usize) -> Self {
        Self {
            per_second,
            sent: VecDeque::new(),
        }
    }

    /// Records an event at `now` if the window has room; otherwise `RateLimited`.
    pub fn try_acquire(&mut self, now: Instant) -> Result<()> {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.sent.pop_front();
        }
        if self.sent.len() >= self.per_second {
            return Err(RealtimeError::RateLimited(format!(
                "at most {} client events per second",
                self.per_second
            )));
        }
        self.sent.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::{Channel, ErrorKind};
    use serde_json::json;

    #[tokio::test(start_paused = true)]
    async fn ten_per_second_at_and_past_the_limit() {
        let mut l = ClientEventLimiter::new(10);
        for _ in 0..5 {
            l.try_acquire(Instant::now()).unwrap();
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        for _ in 0..5 {
            l.try_acquire(Instant::now()).unwrap();
        }
        // The 11th within one second is refused.
        assert_eq!(
            l.try_acquire(Instant::now()).unwrap_err().kind(),
            ErrorKind::RateLimited
        );
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(l.try_acquire(Instant::now()).is_err());
        // One second after the first five, their slots are free again, and only theirs.
        tokio::time::advance(Duration::from_millis(1)).await;
        for _ in 0..5 {
            l.try_acquire(Instant::now()).unwrap();
        }
        assert!(l.try_acquire(Instant::now()).is_err());
    }

    fn msg(ch: &str, event: &str, data: serde_json::Value) -> OutboundMessage {
        OutboundMessage::new(ch.parse::<Channel>().unwrap(), event, data)
    }

    #[test]
    fn rules() {
        let ok = msg("private:chat", "client-typing", json!({"typing": true}));
        assert_eq!(check_client_event(&ok, 10240).unwrap(), "private-chat");
        assert!(check_client_event(&msg("presence:room", "client-x", json!(1)), 10240).is_ok());
        for (m, kind) in [
            (msg("chat", "client-x", json!(1)), ErrorKind::InvalidChannel),
            (
                msg("private:chat", "typing", json!(1)),
                ErrorKind::Unsupported,
            ),
            (
                msg("private:encrypted-x", "client-x", json!(1)),
                ErrorKind::Unsupported,
            ),
            (
                msg(
                    "private:chat",
                    &format!("client-{}", "e".repeat(194)),
                    json!(1),
                ),
                ErrorKind::Protocol,
            ),
        ] {
            assert_eq!(
                check_client_event(&m, 10240).unwrap_err().kind(),
                kind,
                "{m:?}"
            );
        }
        assert!(
            check_client_event(
                &msg(
                    "private:chat",
                    &format!("client-{}", "e".repeat(193)),
                    json!(1)
                ),
                10240
            )
            .is_ok()
        );
    }

    #[test]
    fn payload_at_and_past_10_kb() {
        // A JSON string of n chars serializes to n + 2 bytes.
        let at = msg("private:c", "client-x", json!("x".repeat(10240 - 2)));
        assert!(check_client_event(&at, 10240).is_ok());
        let past = msg("private:c", "client-x", json!("x".repeat(10240 - 1)));
        assert_eq!(
            check_client_event(&past, 10240).unwrap_err(),
            RealtimeError::PayloadTooLarge {
                size: 10241,
                limit: 10240
            }
        );
    }
}
