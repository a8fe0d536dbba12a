//! The [`RealtimeProvider`] trait that each provider crate implements, and what passes between
//! a provider and the core: the [`EventSink`], the [`Session`], subscribe options and outcomes.
//!
//! Providers speak protocols; the core owns policy. A provider makes one attempt per call,
//! reports what arrives and why its link closed through the sink, and never retries on its own.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::auth::ChannelAuth;
use crate::channel::Channel;
use crate::client::delivery::Router;
use crate::error::{RealtimeError, Result};
use crate::message::{Message, OutboundMessage, Position};
use crate::presence::{PresenceChange, PresenceMember};

/// What a provider can do; the core and the conformance suite consult it before calling.
///
/// `#[non_exhaustive]`: start from [`Capabilities::default`] and set the fields that differ.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Presence channels (enter, leave, members).
    pub presence: bool,
    /// Changing a member's data without leaving.
    pub presence_update: bool,
    /// Replaying missed messages (through `subscribe` with `since`, or `history`).
    pub history: bool,
    /// Publishing from a client connection (on some channel kind; see
    /// [`Capabilities::client_publish_on`]).
    pub client_publish: bool,
    /// Whether client publishing includes public channels (Pusher relays client events only on
    /// private and presence channels). Default `true`.
    pub client_publish_public: bool,
    /// Wildcard subscriptions.
    pub wildcards: bool,
    /// Reading history page by page ([`RealtimeProvider::history_page`],
    /// [`RealtimeClient::history`](crate::RealtimeClient::history)).
    pub history_pages: bool,
    /// The largest payload the provider accepts, in bytes: the limit each provider announces
    /// (Supabase 256 KB, Ably 64 KiB, …); [`DEFAULT_MAX_PAYLOAD`](crate::DEFAULT_MAX_PAYLOAD)
    /// (64 KiB) for a provider that knows none. The client applies it unless the application
    /// caps it lower ([`ClientBuilder::max_payload`](crate::ClientBuilder::max_payload)).
    pub max_payload: usize,
    /// Whether the provider carries binary payloads ([`Payload::Binary`](crate::Payload)).
    /// The client refuses a binary publish with `Unsupported` when it does not. Default
    /// `false`.
    pub binary_payloads: bool,
    /// What the provider's server does with a client's own publishes, so the client can make
    /// echo the same everywhere ([`ClientBuilder::echo`](crate::ClientBuilder::echo)). Default
    /// [`Echo::ServerEchoes`].
    pub echo: Echo,
}

/// What a provider's server does with a client's own publishes; the client runtime uses it to
/// honour [`ClientConfig::echo`](crate::ClientConfig::echo) the same way on every provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Echo {
    /// The server always sends a client its own publishes, with [`Message::sender`] equal to
    /// the [`Session::connection_id`] of the connection that published; the client drops them
    /// when echo is off.
    ServerEchoes,
    /// The server never sends a client its own publishes (Pusher's client events); the client
    /// delivers a local copy to its own subscribers once the publish is accepted, when echo is
    /// on.
    ServerSkips,
    /// The provider honours the client's choice itself ([`RealtimeProvider::set_echo`]):
    /// Ably's `echo` connection parameter, Supabase's `broadcast.self`, Socket.IO's
    /// per-publish `echo`, Firebase's `origin` mark on its own writes.
    Configurable,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            presence: false,
            presence_update: false,
            history: false,
            client_publish: true,
            client_publish_public: true,
            wildcards: false,
            history_pages: false,
            max_payload: crate::client::DEFAULT_MAX_PAYLOAD,
            binary_payloads: false,
            echo: Echo::ServerEchoes,
        }
    }
}

impl Capabilities {
    /// Whether a client connection may publish on a channel of this kind.
    ///
    /// ```
    /// use relayport_core::{Capabilities, ChannelKind};
    /// let mut caps = Capabilities::default();
    /// caps.client_publish_public = false;
    /// assert!(!caps.client_publish_on(ChannelKind::Public));
    /// assert!(caps.client_publish_on(ChannelKind::Private));
    /// ```
    pub fn client_publish_on(&self, kind: crate::channel::ChannelKind) -> bool {
        self.client_publish
            && (kind != crate::channel::ChannelKind::Public || self.client_publish_public)
    }
}

/// What a successful `connect` returns; built with [`Session::new`] and the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Session {
    /// The connection's id (Pusher's socket id, Ably's connection id, …), used to sign
    /// private and presence subscriptions.
    pub connection_id: String,
    /// The heartbeat interval the server asks for, if any; otherwise the client's default.
    pub heartbeat_interval: Option<Duration>,
    /// A payload limit the server announced, if smaller than the provider's default.
    pub max_payload: Option<usize>,
    /// Whether the provider resumed the previous connection with continuity (nothing missed).
    pub resumed: bool,
}

impl Session {
    /// A fresh session with this id and no server-side hints.
    pub fn new(connection_id: impl Into<String>) -> Self {
        Self {
            connection_id: connection_id.into(),
            heartbeat_interval: None,
            max_payload: None,
            resumed: false,
        }
    }

    /// The heartbeat interval the server asks for (`None`: the client's default).
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Option<Duration>) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// A payload limit the server announced (`None`: the provider's default).
    #[must_use]
    pub fn with_max_payload(mut self, max_payload: Option<usize>) -> Self {
        self.max_payload = max_payload;
        self
    }

    /// Whether the previous connection was resumed with continuity.
    #[must_use]
    pub fn with_resumed(mut self, resumed: bool) -> Self {
        self.resumed = resumed;
        self
    }
}

/// How to subscribe.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscribeOptions {
    /// The authorization for a private or presence channel, signed for this session.
    pub auth: Option<ChannelAuth>,
    /// Replay what was published after this position (a resubscribe after a reconnect).
    pub since: Option<Position>,
    /// For presence channels: the member data to join with, when joining is part of subscribing.
    pub presence_data: Option<Value>,
    /// The application's per-subscription options
    /// ([`RealtimeClient::subscribe_with`](crate::RealtimeClient::subscribe_with)), the same on
    /// every resubscribe; a provider reads the types it documents.
    pub extensions: crate::options::SubscriptionOptions,
}

/// What a provider did with a subscribe's `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recovery {
    /// No replay attempted (no `since` given, or the provider cannot replay at subscribe time;
    /// the core then tries [`RealtimeProvider::history`]).
    #[default]
    NotAttempted,
    /// Every missed message was replayed through the sink, in order, before `subscribe` returned.
    Recovered,
    /// Missed messages are gone; the application must resynchronize.
    Gap,
}

/// What a successful subscribe reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Subscribed {
    /// What became of the requested replay.
    pub recovery: Recovery,
    /// The channel's current position at subscribe time, where the provider knows it: the
    /// baseline from which a later reconnect recovers even if no message arrived meanwhile.
    pub position: Option<Position>,
}

impl Subscribed {
    /// A subscribe with no replay and no position.
    pub fn plain() -> Self {
        Self::default()
    }
}

/// A page of history: the messages after a position, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether these are all the messages after the position (false: some are gone).
    pub complete: bool,
}

/// What the core should do after a link closed.
#[derive(Debug, Clone, PartialEq)]
pub enum Reconnect {
    /// Reconnect following the backoff schedule.
    Backoff,
    /// Reconnect at once (the server asked for it).
    Immediately,
    /// Do not reconnect: the error is fatal.
    Never(RealtimeError),
}

/// Why a link closed, as the provider understood it.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseReason {
    /// The provider's close or error code, if any.
    pub code: Option<i64>,
    /// A human-readable reason.
    pub message: String,
    /// What to do next.
    pub reconnect: Reconnect,
}

impl CloseReason {
    /// A retryable loss: reconnect with backoff.
    pub fn retry(code: Option<i64>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reconnect: Reconnect::Backoff,
        }
    }

    /// The server asked for an immediate reconnect.
    pub fn retry_now(code: Option<i64>, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            reconnect: Reconnect::Immediately,
        }
    }

    /// A fatal close: no reconnect.
    pub fn fatal(code: Option<i64>, error: RealtimeError) -> Self {
        Self {
            code,
            message: error.to_string(),
            reconnect: Reconnect::Never(error),
        }
    }
}

/// What a provider reports through its [`EventSink`].
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// A message arrived.
    Message(Message),
    /// A presence change on a channel.
    Presence {
        /// The channel.
        channel: Channel,
        /// The change.
        change: PresenceChange,
    },
    /// The server ended a subscription on its own (revoked access, say).
    SubscriptionLost {
        /// The channel.
        channel: Channel,
        /// Why.
        error: RealtimeError,
    },
    /// A channel stayed attached but its stream has a gap: messages may have been missed
    /// (Ably's re-attach without RESUMED on a resumed connection, say). The core recovers the
    /// channel from history since the last position it saw, or raises `SyncRequired`.
    ContinuityLost {
        /// The channel.
        channel: Channel,
        /// What the provider saw.
        reason: RealtimeError,
    },
    /// An error outside any call (a payload that failed to decrypt, an unknown frame).
    Error {
        /// The channel concerned, if any.
        channel: Option<Channel>,
        /// The error.
        error: RealtimeError,
    },
    /// The link closed.
    Closed(CloseReason),
}

/// Where a provider reports what arrives. The core hands a fresh sink to every `connect`, so
/// events from an old connection can never be mistaken for the current one's.
///
/// The sink never blocks: a provider's reader task can always hand over a frame, even while the
/// core is waiting on one of the provider's calls.
///
/// The sinks a [`RealtimeClient`](crate::RealtimeClient) hands out deliver a message straight
/// into the subscribers' queues, on the caller's task, when nothing else is queued before it
/// (the runtime's fast path); a provider sees no difference.
#[derive(Debug, Clone)]
pub struct EventSink {
    tx: mpsc::UnboundedSender<(u64, ProviderEvent)>,
    /// Behind one pointer, so that a sink stays two words (providers keep it in their link
    /// state).
    tag: Arc<Tag>,
}

/// Which connection a sink belongs to, and where its messages go.
#[derive(Debug)]
struct Tag {
    generation: u64,
    router: Option<Arc<Router>>,
}

impl EventSink {
    /// A sink tagging events with `generation`; the receiver gets `(generation, event)`.
    pub fn new(tx: mpsc::UnboundedSender<(u64, ProviderEvent)>, generation: u64) -> Self {
        Self {
            tx,
            tag: Arc::new(Tag {
                generation,
                router: None,
            }),
        }
    }

    /// The runtime's sink: messages go through `router` (the fast path), the rest to `tx`.
    pub(crate) fn routed(
        tx: mpsc::UnboundedSender<(u64, ProviderEvent)>,
        generation: u64,
        router: Arc<Router>,
    ) -> Self {
        Self {
            tx,
            tag: Arc::new(Tag {
                generation,
                router: Some(router),
            }),
        }
    }

    /// A sink whose events go to a fresh receiver (for testing a provider on its own).
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<(u64, ProviderEvent)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self::new(tx, 0), rx)
    }

    /// Reports an event. Returns `false` when nobody listens any more (the client is gone), so
    /// the provider's reader can stop.
    pub fn emit(&self, event: ProviderEvent) -> bool {
        let Tag { generation, router } = &*self.tag;
        match router {
            Some(router) => router.route(&self.tx, *generation, event),
            None => self.tx.send((*generation, event)).is_ok(),
        }
    }

    /// Reports a message.
    pub fn message(&self, message: Message) -> bool {
        self.emit(ProviderEvent::Message(message))
    }

    /// Reports a presence change.
    pub fn presence(&self, channel: Channel, change: PresenceChange) -> bool {
        self.emit(ProviderEvent::Presence { channel, change })
    }

    /// Reports that the link closed.
    pub fn closed(&self, reason: CloseReason) -> bool {
        self.emit(ProviderEvent::Closed(reason))
    }

    /// Reports an error outside any call.
    pub fn error(&self, channel: Option<Channel>, error: RealtimeError) -> bool {
        self.emit(ProviderEvent::Error { channel, error })
    }

    /// Whether the receiving side is gone.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// One provider's protocol: the client side of a realtime connection.
///
/// Object-safe, so a `Box<dyn RealtimeProvider>` can be chosen from configuration at run time.
/// Every method is one attempt; timeouts, retries and ordering are the core's business.
///
/// Every method takes `&self`: the runtime holds the provider as an `Arc<dyn RealtimeProvider>`
/// and keeps several calls in flight together (subscribes of many channels, a publish while a
/// subscribe waits for its confirmation, a heartbeat while both wait). A provider keeps its
/// per-connection state behind interior mutability; it serializes only what its protocol needs
/// serialized. The runtime never calls `connect` while another `connect` or a `disconnect` is
/// in flight, and drops (cancels) the calls of a link it has given up on.
#[async_trait]
pub trait RealtimeProvider: Send + Sync + 'static {
    /// The provider's short name (`pusher`, `ably`, `supabase`, `selfhosted`).
    fn name(&self) -> &'static str;

    /// What this provider can do.
    fn capabilities(&self) -> Capabilities;

    /// Whether this client wants its own publishes back. Called once by
    /// [`ClientBuilder::build`](crate::ClientBuilder::build), before the first connect, on a
    /// provider whose [`Capabilities::echo`] is [`Echo::Configurable`]; the provider applies it
    /// on every connection and subscription from then on. The default does nothing.
    fn set_echo(&self, echo: bool) {
        let _ = echo;
    }

    /// Opens one connection. Incoming events go to `sink` until the link closes.
    async fn connect(&self, sink: EventSink) -> Result<Session>;

    /// Closes the connection and stops every task the provider runs. Idempotent.
    async fn disconnect(&self) -> Result<()>;

    /// Subscribes to a channel; returns once the server confirmed it.
    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed>;

    /// Leaves a channel.
    async fn unsubscribe(&self, channel: &Channel) -> Result<()>;

    /// Publishes from this connection.
    async fn publish(&self, message: &OutboundMessage) -> Result<()>;

    /// Enters a presence channel's member set with `data`.
    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        let _ = (channel, data);
        Err(RealtimeError::Unsupported("presence".into()))
    }

    /// Changes this connection's member data.
    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        let _ = (channel, data);
        Err(RealtimeError::Unsupported("presence update".into()))
    }

    /// Leaves a presence channel's member set (staying subscribed where the provider allows).
    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        let _ = channel;
        Err(RealtimeError::Unsupported("presence".into()))
    }

    /// The channel's current members, as the server knows them.
    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        let _ = channel;
        Err(RealtimeError::Unsupported("presence".into()))
    }

    /// One heartbeat round trip; the duration is the latency.
    async fn ping(&self) -> Result<Duration>;

    /// Ends the session the way the protocol says, then disconnects: what
    /// `RealtimeClient::close()` and `disconnect()` call (a lost link is torn down with
    /// [`RealtimeProvider::disconnect`] instead, so that a provider can still resume it). Ably
    /// sends `CLOSE` and waits briefly for `CLOSED`; the default is `disconnect`, which for the
    /// other providers already says goodbye (a close frame, Supabase's `phx_leave`s).
    async fn goodbye(&self) -> Result<()> {
        self.disconnect().await
    }

    /// The messages published on `channel` after `since`, oldest first.
    async fn history(&self, channel: &Channel, since: &Position) -> Result<HistoryPage> {
        let _ = (channel, since);
        Err(RealtimeError::Unsupported("history".into()))
    }

    /// One page of `channel`'s history as `query` asks (set `Capabilities::history_pages`
    /// when implemented); the page's `next` is the query for the page after it.
    async fn history_page(
        &self,
        channel: &Channel,
        query: &crate::history::HistoryQuery,
    ) -> Result<crate::history::MessagePage> {
        let _ = (channel, query);
        Err(RealtimeError::Unsupported(format!(
            "{} keeps no history to read page by page",
            self.name()
        )))
    }
}
