//! The client's events on stderr: every reconnect's reason, errors (a payload that failed to
//! decrypt, say), `SyncRequired`, dropped and undelivered messages, and the subscriptions the
//! server ended, which end the command with their error.

use std::time::Duration;

use relayport::{Channel, ClientEvent, RealtimeError};
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;

use crate::output::note;
use crate::status::{self, Countdown};

/// How long a command whose streams all ended waits for the event that says why before it
/// fails with a generic reason (the event follows the end of the streams at once).
pub(crate) const GRACE: Duration = Duration::from_secs(2);

/// Prints every event from `events`, connection states included (with the reconnect
/// countdown); resolves with the error when the client fails or gives up, or when the server
/// ends the subscription of one of `channels`.
pub(crate) async fn watch(
    events: &mut Receiver<ClientEvent>,
    channels: &[Channel],
) -> RealtimeError {
    let mut countdown = Countdown::default();
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            () = countdown.tick() => continue,
        };
        match received {
            Ok(ClientEvent::StateChanged(state)) => {
                countdown.follow(&state);
                if let Some(error) = status::report(&state) {
                    return error;
                }
            }
            Ok(event) => {
                if let Some(text) = describe(&event) {
                    note(&text);
                }
                if let Some(error) = ends_command(event, channels) {
                    return error;
                }
            }
            Err(RecvError::Lagged(missed)) => note(&format!(
                "{missed} client events were missed (stderr could not keep up)"
            )),
            Err(RecvError::Closed) => return RealtimeError::Closed("the client stopped".into()),
        }
    }
}

/// The error `event` ends a command on `channels` with: a subscription of one of them ended.
fn ends_command(event: ClientEvent, channels: &[Channel]) -> Option<RealtimeError> {
    match event {
        ClientEvent::SubscriptionFailed { channel, error } if channels.contains(&channel) => {
            Some(error)
        }
        _ => None,
    }
}

/// `event` as one line for stderr; `None` for state changes (`status::report` prints those).
pub(crate) fn describe(event: &ClientEvent) -> Option<String> {
    Some(match event {
        ClientEvent::StateChanged(_) => return None,
        ClientEvent::LinkLost {
            code: Some(code),
            message,
        } => format!("disconnected: code {code}: {message}"),
        ClientEvent::LinkLost {
            code: None,
            message,
        } => format!("disconnected: {message}"),
        ClientEvent::ConnectionDegraded { rtt } => format!(
            "connection degraded: heartbeat round trip {} ms",
            rtt.as_millis()
        ),
        ClientEvent::MessagesDropped {
            channel,
            count,
            total,
        } => format!(
            "dropped {count} queued publish(es) to {channel}: the offline queue was full \
             ({total} dropped so far)"
        ),
        ClientEvent::SyncRequired { channel } => format!(
            "sync required on {channel}: messages may have been missed and could not be \
             recovered"
        ),
        ClientEvent::Resubscribed { channel, recovered } => format!(
            "resubscribed to {channel} ({})",
            match recovered {
                true => "missed messages recovered",
                false => "missed messages not recovered",
            }
        ),
        ClientEvent::SubscriptionFailed { channel, error } => {
            format!("subscription to {channel} ended: {error}")
        }
        ClientEvent::SubscriberLagged { channel, missed } => format!(
            "fell behind on {channel}: {missed} messages were not delivered to this process"
        ),
        ClientEvent::Error {
            channel: Some(channel),
            error,
        } => format!("error on {channel}: {error}"),
        ClientEvent::Error {
            channel: None,
            error,
        } => format!("error: {error}"),
        other => format!("event: {other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport::ConnectionState;

    fn room() -> Channel {
        Channel::private("room")
    }

    #[test]
    fn every_event_that_matters_has_a_line() {
        let cases = [
            (
                ClientEvent::LinkLost {
                    code: Some(4008),
                    message: "slow consumer".into(),
                },
                "disconnected: code 4008: slow consumer",
            ),
            (
                ClientEvent::LinkLost {
                    code: None,
                    message: "connection reset".into(),
                },
                "disconnected: connection reset",
            ),
            (
                ClientEvent::SyncRequired { channel: room() },
                "sync required on private:room",
            ),
            (
                ClientEvent::MessagesDropped {
                    channel: room(),
                    count: 1,
                    total: 3,
                },
                "dropped 1 queued publish(es) to private:room",
            ),
            (
                ClientEvent::SubscriberLagged {
                    channel: room(),
                    missed: 9,
                },
                "9 messages were not delivered",
            ),
            (
                ClientEvent::Error {
                    channel: Some(room()),
                    error: RealtimeError::Protocol("cannot decrypt".into()),
                },
                "error on private:room: ",
            ),
            (
                ClientEvent::Resubscribed {
                    channel: room(),
                    recovered: true,
                },
                "resubscribed to private:room (missed messages recovered)",
            ),
            (
                ClientEvent::ConnectionDegraded {
                    rtt: Duration::from_millis(1500),
                },
                "1500 ms",
            ),
        ];
        for (event, needle) in cases {
            let line = describe(&event).expect("a line");
            assert!(line.contains(needle), "{line:?} lacks {needle:?}");
        }
        let error = ClientEvent::Error {
            channel: None,
            error: RealtimeError::Protocol("cannot decrypt".into()),
        };
        assert!(describe(&error).unwrap().contains("cannot decrypt"));
        assert_eq!(
            describe(&ClientEvent::StateChanged(ConnectionState::Connected)),
            None
        );
    }

    #[test]
    fn only_a_failed_subscription_of_the_commands_channels_ends_it() {
        let failed = |channel: Channel| ClientEvent::SubscriptionFailed {
            channel,
            error: RealtimeError::Unauthorized("token expired".into()),
        };
        let mine = [room()];
        assert_eq!(
            ends_command(failed(room()), &mine),
            Some(RealtimeError::Unauthorized("token expired".into()))
        );
        assert_eq!(ends_command(failed(Channel::public("other")), &mine), None);
        let sync = ClientEvent::SyncRequired { channel: room() };
        assert_eq!(ends_command(sync, &mine), None);
    }
}
