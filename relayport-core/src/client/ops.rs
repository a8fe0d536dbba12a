//! The provider calls the actor runs off its loop: what each one reports when it completes
//! ([`Done`]), what the actor keeps meanwhile to settle it if the call is cancelled
//! ([`Pending`]), and the request timeout every call runs under.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::timeout;

use crate::channel::Channel;
use crate::client::command::{PendingPublish, Reply};
use crate::error::{ErrorKind, RealtimeError, Result};
use crate::message::Position;
use crate::presence::PresenceMember;
use crate::provider::{HistoryPage, Session, Subscribed};

/// Runs one call under `limit`; past it the call fails with `Timeout` (and is dropped).
pub(super) async fn timed<T>(
    what: &str,
    limit: Duration,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(RealtimeError::timeout(what, limit)),
    }
}

/// Whether a failed call means the link itself is broken (so the runtime reconnects).
pub(super) fn breaks_link(e: &RealtimeError) -> bool {
    matches!(e.kind(), ErrorKind::Connection | ErrorKind::Timeout)
        || matches!(
            e,
            RealtimeError::Provider {
                retryable: true,
                ..
            }
        )
}

/// Which step of bringing a channel up failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Step {
    Authorize,
    Subscribe,
    PresenceEnter,
}

impl Step {
    pub(super) fn name(self) -> &'static str {
        match self {
            Step::Authorize => "channel authorization",
            Step::Subscribe => "subscribe",
            Step::PresenceEnter => "presence enter",
        }
    }
}

/// What a completed call reports back to the actor.
#[derive(Debug)]
pub(super) enum Done {
    /// `connect`.
    Connect(Result<Session>),
    /// The lost link's `disconnect`.
    Teardown,
    /// Authorize, subscribe and (for a member) enter, in that order, for one channel.
    Establish {
        channel: Channel,
        /// The member data the channel was entered with, if any.
        presence: Option<Value>,
        /// The replay position asked for.
        since: Option<Position>,
        result: std::result::Result<Subscribed, (Step, RealtimeError)>,
    },
    /// A page of history for a channel being recovered.
    History(Result<HistoryPage>),
    /// One publish (or typing signal).
    Publish(Result<()>),
    /// A heartbeat round trip; `None` when unanswered within the heartbeat timeout.
    Ping(Option<Result<Duration>>),
    /// Presence enter, update or leave.
    Presence(Result<()>),
    /// A presence member list.
    Members(Result<Vec<PresenceMember>>),
    /// An unsubscribe.
    Unsubscribe(Result<()>),
    /// `unsubscribe_all`'s leaves and unsubscribes, in channel order.
    Goodbye(Vec<(Channel, RealtimeError)>),
}

/// A completed call: its generation (the link it ran on) and what it reports.
#[derive(Debug)]
pub(super) struct Completion {
    pub(super) generation: u64,
    pub(super) done: Done,
}

/// What the actor keeps for a call in flight, to finish it or to settle it when the call is
/// cancelled (its link went away) or comes back stale.
#[derive(Debug)]
pub(super) enum Pending {
    Connect,
    /// A lost link's `disconnect`: the next `connect` starts once it is done.
    Teardown,
    Establish(Channel),
    History {
        channel: Channel,
        /// The channel's position at subscribe time (a resubscribe only).
        position: Option<Position>,
        /// A resubscribe (announces `Resubscribed`) or a continuity loss on a live channel.
        resubscribe: bool,
    },
    Publish((u64, PendingPublish)),
    Typing(Channel),
    Ping,
    Presence {
        reply: Option<Reply>,
        /// Released once the call is done (a leave that left the channel unused).
        release: Option<Channel>,
    },
    Members {
        channel: Channel,
        reply: Reply<Vec<PresenceMember>>,
    },
    /// An unsubscribe, and who waits for it (a confirmed `Subscription::unsubscribe`).
    Unsubscribe(Channel, Option<Reply>),
    Goodbye(oneshot::Sender<()>),
}
