//! Client events (`client-…`): the rules Pusher enforces, checked before anything is sent.
//!
//! - the name starts with `client-` (and is at most 200 characters); with the opt-in
//!   [`ClientEventNames::Prefixed`] (Laravel Echo's `whisper` convention) the prefix is added on
//!   send ([`ClientEventNames::wire_name`]) and stripped on receive
//!   ([`ClientEventNames::received_name`]);
//! - only on private and presence channels, never on `private-encrypted-…`;
//! - the payload is at most the payload limit (10 KB);
//! - at most 10 per second per connection ([`ClientEventLimiter`]);
//! - (the server does not echo them to the sender; the client adds nothing locally either).

use std::collections::VecDeque;
use std::time::Duration;

use relayport_core::{ChannelKind, OutboundMessage, RealtimeError, Result};
use tokio::time::Instant;

use crate::names::{is_encrypted, to_wire, validate_event_name};

/// The prefix Pusher requires on client events.
pub const CLIENT_PREFIX: &str = "client-";

/// How client-event names map between the application and the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientEventNames {
    /// Names are sent and delivered as they are; a name without `client-` is refused.
    #[default]
    Verbatim,
    /// Laravel Echo's `whisper` convention: `typing` is sent as `client-typing` (a name that
    /// already has the prefix is sent unchanged), and a received `client-typing` is delivered
    /// as `typing`.
    Prefixed,
}

impl ClientEventNames {
    /// The mode for [`PusherConfig::client_event_prefix`](crate::PusherConfig::client_event_prefix).
    pub fn from_flag(prefixed: bool) -> Self {
        if prefixed {
            Self::Prefixed
        } else {
            Self::Verbatim
        }
    }

    /// The name sent on the wire for `event`, or `Unsupported` (one sentence) when a
    /// verbatim name lacks the prefix.
    ///
    /// ```
    /// use relayport_pusher::client_events::ClientEventNames;
    /// assert_eq!(ClientEventNames::Prefixed.wire_name("typing").unwrap(), "client-typing");
    /// assert_eq!(ClientEventNames::Prefixed.wire_name("client-typing").unwrap(), "client-typing");
    /// assert!(ClientEventNames::Verbatim.wire_name("typing").is_err());
    /// ```
    pub fn wire_name(self, event: &str) -> Result<String> {
        match self {
            _ if event.starts_with(CLIENT_PREFIX) => Ok(event.to_owned()),
            Self::Prefixed => Ok(format!("{CLIENT_PREFIX}{event}")),
            Self::Verbatim => Err(RealtimeError::Unsupported(format!(
                "Pusher relays client events only under names starting with `client-`, so                  publish `client-{event}` instead of `{event}` (or turn on the client-event                  prefix: PUSHER_CLIENT_EVENT_PREFIX=true, CLI --client-event-prefix)."
            ))),
        }
    }

    /// The name a received event is delivered under.
    ///
    /// ```
    /// use relayport_pusher::client_events::ClientEventNames;
    /// assert_eq!(ClientEventNames::Prefixed.received_name("client-typing"), "typing");
    /// assert_eq!(ClientEventNames::Prefixed.received_name("order-created"), "order-created");
    /// assert_eq!(ClientEventNames::Verbatim.received_name("client-typing"), "client-typing");
    /// ```
    pub fn received_name(self, event: &str) -> &str {
        match self {
            Self::Prefixed => event.strip_prefix(CLIENT_PREFIX).unwrap_or(event),
            Self::Verbatim => event,
        }
    }
}

/// Checks a client event against the rules that do not depend on time; returns the Pusher
/// channel name and the event name to send (see [`ClientEventNames`]).
pub fn check_client_event(
    message: &OutboundMessage,
    max_payload: usize,
    names: ClientEventNames,
) -> Result<(String, String)> {
    let wire = to_wire(&message.channel)?;
    let event = names.wire_name(&message.event)?;
    validate_event_name(&event)?;
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
    Ok((wire, event))
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
        let v = ClientEventNames::Verbatim;
        assert_eq!(
            check_client_event(&ok, 10240, v).unwrap(),
            ("private-chat".to_owned(), "client-typing".to_owned())
        );
        assert!(check_client_event(&msg("presence:room", "client-x", json!(1)), 10240, v).is_ok());
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
                check_client_event(&m, 10240, v).unwrap_err().kind(),
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
                10240,
                v
            )
            .is_ok()
        );
    }

    /// Issue 16 defect 4: a plain name is refused with one clear sentence, or prefixed when
    /// the application opted in; the prefix is never doubled.
    #[test]
    fn plain_names_are_refused_clearly_or_prefixed_on_request() {
        let plain = msg("private:chat", "typing", json!({}));
        let err = check_client_event(&plain, 10240, ClientEventNames::Verbatim).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("publish `client-typing` instead of `typing`"),
            "{text}"
        );
        assert_eq!(text.matches(". ").count(), 0, "one sentence: {text}");
        assert_eq!(
            check_client_event(&plain, 10240, ClientEventNames::Prefixed).unwrap(),
            ("private-chat".to_owned(), "client-typing".to_owned())
        );
        let already = msg("private:chat", "client-typing", json!({}));
        assert_eq!(
            check_client_event(&already, 10240, ClientEventNames::Prefixed)
                .unwrap()
                .1,
            "client-typing"
        );
        // The prefix counts toward the 200-character limit.
        let long = msg("private:chat", &"e".repeat(194), json!(1));
        assert!(check_client_event(&long, 10240, ClientEventNames::Prefixed).is_err());
    }

    #[test]
    fn payload_at_and_past_10_kb() {
        // A JSON string of n chars serializes to n + 2 bytes.
        let at = msg("private:c", "client-x", json!("x".repeat(10240 - 2)));
        let v = ClientEventNames::Verbatim;
        assert!(check_client_event(&at, 10240, v).is_ok());
        let past = msg("private:c", "client-x", json!("x".repeat(10240 - 1)));
        assert_eq!(
            check_client_event(&past, 10240, v).unwrap_err(),
            RealtimeError::PayloadTooLarge {
                size: 10241,
                limit: 10240
            }
        );
    }
}
