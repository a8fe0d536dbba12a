//! What a handle asks of the runtime's actor.

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::channel::Channel;
use crate::error::Result;
use crate::message::OutboundMessage;
use crate::policy::outbox::Queued;
use crate::presence::{PresenceEvent, PresenceMember};

pub(crate) type Reply<T = ()> = oneshot::Sender<Result<T>>;

/// Where a listener's deliveries go.
#[derive(Debug)]
pub(crate) enum ListenerSink {
    Messages(crate::client::subscription::MessageTx),
    Presence(mpsc::Sender<PresenceEvent>),
}

/// A publish waiting to be sent, and whom to tell.
#[derive(Debug)]
pub(crate) struct PendingPublish {
    pub(crate) message: OutboundMessage,
    pub(crate) reply: Option<Reply>,
}

impl Queued for PendingPublish {
    fn channel(&self) -> &Channel {
        &self.message.channel
    }
}

#[derive(Debug)]
pub(crate) enum Command {
    Connect(Reply),
    Disconnect(oneshot::Sender<()>),
    Close(oneshot::Sender<()>),
    Listen {
        channel: Channel,
        id: u64,
        sink: ListenerSink,
        /// `subscribe_with`'s options; `None` for a plain subscribe (shares what is there).
        options: Option<crate::options::SubscriptionOptions>,
        reply: Reply,
    },
    Unlisten {
        channel: Channel,
        id: u64,
        /// Answered once the listener is gone (and the provider unsubscribed, if it was the
        /// channel's last use); `None` for a dropped handle.
        reply: Option<Reply>,
    },
    UnsubscribeAll(oneshot::Sender<()>),
    Publish(PendingPublish),
    PresenceEnter {
        channel: Channel,
        data: Value,
        reply: Reply,
    },
    PresenceUpdate {
        channel: Channel,
        data: Value,
        reply: Reply,
    },
    PresenceLeave {
        channel: Channel,
        reply: Reply,
    },
    PresenceMembers {
        channel: Channel,
        reply: Reply<Vec<PresenceMember>>,
    },
    PresenceHere {
        channel: Channel,
        reply: Reply<Vec<PresenceMember>>,
    },
    StartTyping(Channel),
    StopTyping(Channel),
}
