//! The client runtime: [`RealtimeClient`], a cheap cloneable handle over one actor task that
//! owns the provider and applies every policy (reconnect, offline queue, resubscribe, throttle,
//! heartbeat, presence, typing).

mod channels;
pub(crate) mod command;
mod config;
mod connection;
pub(crate) mod delivery;
mod driver;
mod echo;
mod heartbeat;
mod ops;
mod presence;
mod publish;
mod streams;
mod subscription;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

pub use config::{ClientConfig, DEFAULT_MAX_PAYLOAD};
pub use streams::{ClientEvents, StateStream};
pub use subscription::{PresenceStream, Subscription, TypedSubscription};

use crate::auth::ChannelAuthorizer;
use crate::channel::{ChannelKind, IntoChannel};
use crate::error::{RealtimeError, Result};
use crate::history::{History, HistoryQuery};
use crate::message::{EventType, OutboundMessage};
use crate::payload::Payload;
use crate::policy::backoff::Backoff;
use crate::policy::throttle::RateLimit;
use crate::policy::typing::TypingPolicy;
use crate::presence::PresenceMember;
use crate::provider::{Capabilities, RealtimeProvider};
use crate::state::{ClientEvent, ConnectionState};
use command::{Command, ListenerSink, PendingPublish};
use subscription::ListenerGuard;

/// Builds a [`RealtimeClient`] over a provider.
pub struct ClientBuilder {
    provider: Arc<dyn RealtimeProvider>,
    config: ClientConfig,
    authorizer: Option<Arc<dyn ChannelAuthorizer>>,
}

impl ClientBuilder {
    /// Replaces every setting at once.
    pub fn config(mut self, config: ClientConfig) -> Self {
        self.config = config;
        self
    }

    /// The authorizer asked to sign private and presence subscriptions (usually one that calls
    /// the application's auth endpoint). Without one, those channels are refused with
    /// `Unauthorized`.
    pub fn authorizer(mut self, authorizer: Arc<dyn ChannelAuthorizer>) -> Self {
        self.authorizer = Some(authorizer);
        self
    }

    /// The reconnect schedule.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.config.backoff = backoff;
        self
    }

    /// Whether the first subscribe or publish connects by itself (default `true`).
    pub fn lazy_connect(mut self, lazy: bool) -> Self {
        self.config.lazy_connect = lazy;
        self
    }

    /// The capacity of the offline queue (default 100).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }

    /// The per-channel publish rate (default 10 per second).
    pub fn publish_rate(mut self, rate: RateLimit) -> Self {
        self.config.publish_rate = rate;
        self
    }

    /// Typing-indicator timing.
    pub fn typing(mut self, typing: TypingPolicy) -> Self {
        self.config.typing = typing;
        self
    }

    /// Heartbeat interval and timeout (defaults 30 s and 10 s).
    pub fn heartbeat(mut self, interval: Duration, timeout: Duration) -> Self {
        self.config.heartbeat_interval = interval;
        self.config.heartbeat_timeout = timeout;
        self
    }

    /// The round trip above which `ConnectionDegraded` fires (default 2000 ms).
    pub fn degraded_threshold(mut self, threshold: Duration) -> Self {
        self.config.degraded_threshold = threshold;
        self
    }

    /// Caps the payload size in bytes (default: no cap of the application's own; the
    /// provider's announced limit applies, 64 KiB for a provider that announces none). The
    /// provider's smaller limit still wins.
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.max_payload = Some(bytes);
        self
    }

    /// This client's user id, for presence.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.config.client_id = Some(id.into());
        self
    }

    /// Whether this client receives its own publishes (default `true`, the same on every
    /// provider). With `false` a subscriber sees only what others publish, as Pusher's client
    /// events and Supabase's default broadcast behave; with `true` it sees its own too, as Ably
    /// and the self-hosted server behave. Where the server cannot be told, the runtime filters
    /// (by [`Message::sender`](crate::Message::sender)) or delivers a local copy once the
    /// publish is accepted ([`Echo`](crate::Echo)).
    ///
    /// ```
    /// # use relayport_core::testing::ScriptedProvider;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// # let (provider, _script) = ScriptedProvider::new();
    /// let client = relayport_core::RealtimeClient::builder(provider).echo(false).build();
    /// assert!(!client.echo());
    /// # }
    /// ```
    pub fn echo(mut self, echo: bool) -> Self {
        self.config.echo = echo;
        self
    }

    /// A fixed seed for the reconnect jitter (repeatable schedules in tests).
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.config.jitter_seed = Some(seed);
        self
    }

    /// Starts the runtime's actor on the current tokio runtime and returns the handle.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn build(self) -> RealtimeClient {
        let capabilities = self.provider.capabilities();
        if capabilities.echo == crate::provider::Echo::Configurable {
            self.provider.set_echo(self.config.echo);
        }
        let provider_name = self.provider.name();
        let max_payload = Arc::new(AtomicUsize::new(
            self.config
                .max_payload
                .map_or(capabilities.max_payload, |cap| {
                    cap.min(capabilities.max_payload)
                }),
        ));
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (state_tx, state_rx) = watch::channel(ConnectionState::Initialized);
        let (latency_tx, latency_rx) = watch::channel(None);
        let (events_tx, _) = broadcast::channel(256);
        let history_provider = self.provider.clone();
        let actor = driver::Actor::new(driver::Parts {
            provider: self.provider,
            capabilities: capabilities.clone(),
            config: self.config.clone(),
            authorizer: self.authorizer,
            commands: cmd_rx,
            state: state_tx,
            latency: latency_tx,
            events: events_tx.clone(),
            max_payload: max_payload.clone(),
        });
        tokio::spawn(actor.run());
        RealtimeClient {
            shared: Arc::new(Shared {
                commands: cmd_tx,
                state: state_rx,
                latency: latency_rx,
                events: events_tx.downgrade(),
                next_listener: AtomicU64::new(1),
                max_payload,
                subscriber_buffer: self.config.subscriber_buffer.max(1),
                echo: self.config.echo,
                request_timeout: self.config.request_timeout,
                capabilities,
                provider_name,
                provider: history_provider,
            }),
        }
    }
}

struct Shared {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnectionState>,
    latency: watch::Receiver<Option<Duration>>,
    /// Weak, so that the event streams end when the runtime stops.
    events: broadcast::WeakSender<ClientEvent>,
    next_listener: AtomicU64,
    max_payload: Arc<AtomicUsize>,
    subscriber_buffer: usize,
    echo: bool,
    request_timeout: Duration,
    capabilities: Capabilities,
    provider_name: &'static str,
    /// For calls that need no runtime policy (history).
    provider: Arc<dyn RealtimeProvider>,
}

/// A realtime client over any provider: cheap to clone, all clones share one connection.
///
/// ```
/// # use relayport_core::testing::ScriptedProvider;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), relayport_core::RealtimeError> {
/// use relayport_core::RealtimeClient;
/// use serde_json::json;
/// # let (provider, _script) = ScriptedProvider::new();
/// let client = RealtimeClient::builder(provider).client_id("alice").build();
/// let mut room = client.subscribe("chat:lobby").await?; // connects lazily
/// client.publish("chat:lobby", "chat:message", json!({"text": "hi"})).await?;
/// # _script.echo_publishes(true);
/// # client.publish("chat:lobby", "chat:message", json!({"text": "hi"})).await?;
/// let msg = room.recv().await.expect("a message");
/// assert_eq!(msg.data["text"], "hi");
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RealtimeClient {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RealtimeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeClient")
            .field("provider", &self.shared.provider_name)
            .field("state", &*self.shared.state.borrow())
            .finish()
    }
}

impl RealtimeClient {
    /// A builder over `provider` with the default policies.
    pub fn builder(provider: impl RealtimeProvider) -> ClientBuilder {
        Self::builder_boxed(Box::new(provider))
    }

    /// A builder over a provider chosen at run time.
    pub fn builder_boxed(provider: Box<dyn RealtimeProvider>) -> ClientBuilder {
        Self::builder_shared(Arc::from(provider))
    }

    /// A builder over a shared provider. The client keeps calls in flight together on it, so
    /// the application may keep its own `Arc` to reach provider-specific extras.
    pub fn builder_shared(provider: Arc<dyn RealtimeProvider>) -> ClientBuilder {
        ClientBuilder {
            provider,
            config: ClientConfig::default(),
            authorizer: None,
        }
    }

    /// A client over `provider` with the default policies.
    pub fn new(provider: impl RealtimeProvider) -> Self {
        Self::builder(provider).build()
    }

    fn send(&self, cmd: Command) -> Result<()> {
        self.shared
            .commands
            .send(cmd)
            .map_err(|_| RealtimeError::Closed("the client's runtime has stopped".into()))
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        rx.await
            .map_err(|_| RealtimeError::Closed("the client's runtime has stopped".into()))?
    }

    /// The provider's name.
    pub fn provider_name(&self) -> &'static str {
        self.shared.provider_name
    }

    /// What the provider can do.
    pub fn capabilities(&self) -> &Capabilities {
        &self.shared.capabilities
    }

    /// Whether this client receives its own publishes ([`ClientBuilder::echo`]).
    pub fn echo(&self) -> bool {
        self.shared.echo
    }

    /// Connects, or waits for the connection under way. Resolves with the outcome of the next
    /// attempt (the runtime keeps retrying retryable failures in the background). Calling it
    /// twice, or while connected, never opens a second connection.
    pub async fn connect(&self) -> Result<()> {
        self.ask(Command::Connect).await
    }

    /// Closes the link and stops reconnecting; subscriptions, presence memberships and queued
    /// publishes are kept and restored by the next `connect()`. No provider task keeps running.
    pub async fn disconnect(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Disconnect(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Closes the client for good: every stream ends, pending operations fail with `Closed`,
    /// and the runtime's task exits.
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::Close(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.shared.state.borrow().clone()
    }

    /// A receiver that sees every connection state change.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared.state.clone()
    }

    /// The connection state as a [`Stream`](futures_core::Stream): the current state, then the
    /// latest after each change (coalesced when they come faster than they are read).
    pub fn state_stream(&self) -> StateStream {
        StateStream::new(self.state_changes())
    }

    /// The client's events as a [`Stream`](futures_core::Stream), from now on; a reader that
    /// falls behind gets [`ClientEvent::EventsLagged`] instead of an error.
    pub fn event_stream(&self) -> ClientEvents {
        ClientEvents::new(self.events())
    }

    /// The last heartbeat round trip, if one was measured.
    pub fn latency(&self) -> Option<Duration> {
        *self.shared.latency.borrow()
    }

    /// A receiver of client events (state changes, degraded latency, drops, resyncs, …).
    /// Events sent before this call are not seen; the stream ends when the runtime stops
    /// (after `close()`, or once every handle is dropped).
    pub fn events(&self) -> broadcast::Receiver<ClientEvent> {
        match self.shared.events.upgrade() {
            Some(sender) => sender.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    fn new_guard(&self, channel: &crate::Channel) -> (u64, ListenerGuard) {
        let id = self.shared.next_listener.fetch_add(1, Ordering::Relaxed);
        let guard = ListenerGuard {
            commands: self.shared.commands.clone(),
            channel: channel.clone(),
            id,
            released: false,
        };
        (id, guard)
    }

    /// Subscribes to a channel (or a wildcard pattern, where the provider supports them).
    ///
    /// Resolves once the subscription is live: at once when connected, after the connection
    /// when not (connecting lazily). Private and presence channels are signed by the
    /// configured authorizer. Errors: `InvalidChannel`, `Unauthorized`/`Forbidden` when refused,
    /// `Unsupported` for wildcards without support, `Closed` after `close()`, and the terminal
    /// error when the client failed or gave up.
    pub async fn subscribe(&self, channel: impl IntoChannel) -> Result<Subscription> {
        self.listen(channel.into_channel()?, None).await
    }

    /// Subscribes with per-subscription options for the provider (Supabase postgres_changes
    /// filters and broadcast self/ack, Ably channel params such as `rewind`): the options stay
    /// with the channel and go with every resubscribe after a reconnect. The channel has one
    /// wire subscription, so its options are the same for every handle: asking for a channel
    /// already subscribed with different options is a `Config` error (a plain `subscribe`
    /// shares the existing one).
    ///
    /// ```no_run
    /// # async fn demo(client: relayport_core::RealtimeClient) -> relayport_core::Result<()> {
    /// use relayport_core::SubscriptionOptions;
    /// #[derive(Debug, Clone)]
    /// struct MyProviderOption(u32); // a provider crate's option type, e.g. its ChannelOptions
    /// let options = SubscriptionOptions::new().with(MyProviderOption(10));
    /// let mut db = client.subscribe_with("db-changes", options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe_with(
        &self,
        channel: impl IntoChannel,
        options: crate::options::SubscriptionOptions,
    ) -> Result<Subscription> {
        self.listen(channel.into_channel()?, Some(options)).await
    }

    async fn listen(
        &self,
        channel: crate::Channel,
        options: Option<crate::options::SubscriptionOptions>,
    ) -> Result<Subscription> {
        let (tx, rx) = subscription::queue(self.shared.subscriber_buffer);
        let (id, guard) = self.new_guard(&channel);
        self.ask(|reply| Command::Listen {
            channel,
            id,
            sink: ListenerSink::Messages(tx),
            options,
            reply,
        })
        .await?;
        Ok(Subscription::new(rx, guard))
    }

    /// Subscribes and yields only the messages of event type `T`, decoded.
    pub async fn subscribe_typed<T: EventType>(
        &self,
        channel: impl IntoChannel,
    ) -> Result<TypedSubscription<T>> {
        Ok(self.subscribe(channel).await?.typed())
    }

    /// A stream of joins, updates and leaves on a presence channel (subscribing it if needed).
    pub async fn presence_events(&self, channel: impl IntoChannel) -> Result<PresenceStream> {
        let channel = channel.into_channel()?;
        let (tx, rx) = mpsc::channel(self.shared.subscriber_buffer);
        let (id, guard) = self.new_guard(&channel);
        self.ask(|reply| Command::Listen {
            channel,
            id,
            sink: ListenerSink::Presence(tx),
            options: None,
            reply,
        })
        .await?;
        Ok(PresenceStream { rx, guard })
    }

    /// One page of `channel`'s history (ably-js's `channel.history(params)`); the page's
    /// [`History::next`] reads the one after it.
    ///
    /// Where the provider reads history over its realtime connection (self-hosted), a client
    /// that never connected connects first. Bounded by the request timeout. Providers without
    /// history answer `Unsupported` (`capabilities().history_pages` says which).
    ///
    /// ```no_run
    /// # async fn demo(client: relayport_core::RealtimeClient) -> relayport_core::Result<()> {
    /// use relayport_core::HistoryQuery;
    /// let mut page = client.history("news", HistoryQuery::new().limit(20)).await?;
    /// loop {
    ///     for m in page.messages() {
    ///         println!("{} {}", m.event, m.data);
    ///     }
    ///     match page.next().await? {
    ///         Some(next) => page = next,
    ///         None => break,
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(&self, channel: impl IntoChannel, query: HistoryQuery) -> Result<History> {
        let channel = channel.into_channel()?;
        if !self.shared.capabilities.history_pages {
            return Err(RealtimeError::Unsupported(format!(
                "{} keeps no history to read page by page",
                self.shared.provider_name
            )));
        }
        if matches!(
            self.state(),
            ConnectionState::Initialized | ConnectionState::Disconnected
        ) {
            self.connect().await?;
        }
        let limit = self.shared.request_timeout;
        History::fetch(self.shared.provider.clone(), channel, &query, limit).await
    }

    /// Leaves every channel and presence membership; every stream ends.
    pub async fn unsubscribe_all(&self) {
        let (tx, rx) = oneshot::channel();
        if self.send(Command::UnsubscribeAll(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    fn checked(
        &self,
        channel: impl IntoChannel,
        event: &str,
        data: impl Into<Payload>,
    ) -> Result<OutboundMessage> {
        let message = OutboundMessage::new(channel.into_channel()?, event, data);
        self.admit(&message)?;
        Ok(message)
    }

    /// Refuses at once what could never be sent: an oversized payload, a bad event name, bytes
    /// on a provider that carries only JSON.
    fn admit(&self, message: &OutboundMessage) -> Result<()> {
        message.validate(self.shared.max_payload.load(Ordering::Relaxed))?;
        if message.data.is_binary() && !self.shared.capabilities.binary_payloads {
            return Err(RealtimeError::Unsupported(format!(
                "binary payloads ({} carries JSON only)",
                self.shared.provider_name
            )));
        }
        Ok(())
    }

    /// Publishes an event; resolves when the provider accepted it.
    ///
    /// While the link is down the publish waits in the offline queue (FIFO, 100 by default);
    /// if newer publishes evict it, this resolves with `Evicted`. Publishes per channel are
    /// throttled (10/s by default) and wait their turn in order. A payload over the limit is
    /// refused at once with `PayloadTooLarge`.
    pub async fn publish(
        &self,
        channel: impl IntoChannel,
        event: &str,
        data: impl Into<Payload>,
    ) -> Result<()> {
        let message = self.checked(channel, event, data)?;
        self.publish_message(message).await
    }

    /// Publishes a prepared message; see [`RealtimeClient::publish`].
    pub async fn publish_message(&self, message: OutboundMessage) -> Result<()> {
        self.admit(&message)?;
        self.ask(|reply| {
            Command::Publish(PendingPublish {
                message,
                reply: Some(reply),
            })
        })
        .await
    }

    /// Publishes a typed event under its `T::NAME`.
    pub async fn publish_typed<T: EventType>(
        &self,
        channel: impl IntoChannel,
        event: &T,
    ) -> Result<()> {
        let message = OutboundMessage::typed(channel.into_channel()?, event)?;
        self.publish_message(message).await
    }

    /// Queues a publish without waiting for it to be sent. Validation errors are returned at
    /// once; a later failure or eviction is reported through [`RealtimeClient::events`].
    pub fn publish_nowait(
        &self,
        channel: impl IntoChannel,
        event: &str,
        data: impl Into<Payload>,
    ) -> Result<()> {
        let message = self.checked(channel, event, data)?;
        self.send(Command::Publish(PendingPublish {
            message,
            reply: None,
        }))
    }

    /// Enters a presence channel with `data` (subscribing it if needed). The membership, with
    /// its last data, is restored after every reconnect until `presence_leave`.
    pub async fn presence_enter(&self, channel: impl IntoChannel, data: Value) -> Result<()> {
        let channel = presence_channel(channel)?;
        self.ask(|reply| Command::PresenceEnter {
            channel,
            data,
            reply,
        })
        .await
    }

    /// Changes this client's member data (entering if it had not).
    pub async fn presence_update(&self, channel: impl IntoChannel, data: Value) -> Result<()> {
        let channel = presence_channel(channel)?;
        self.ask(|reply| Command::PresenceUpdate {
            channel,
            data,
            reply,
        })
        .await
    }

    /// Leaves a presence channel's member set.
    pub async fn presence_leave(&self, channel: impl IntoChannel) -> Result<()> {
        let channel = presence_channel(channel)?;
        self.ask(|reply| Command::PresenceLeave { channel, reply })
            .await
    }

    /// The members of a presence channel: the server's list when connected, otherwise the
    /// last one known.
    pub async fn presence_members(&self, channel: impl IntoChannel) -> Result<Vec<PresenceMember>> {
        let channel = presence_channel(channel)?;
        self.ask(|reply| Command::PresenceMembers { channel, reply })
            .await
    }

    /// Signals that this user is typing on `channel`: at most one signal per second, and a
    /// "stopped" signal by itself 5 s after the last call. Signals are not queued offline.
    pub fn start_typing(&self, channel: impl IntoChannel) -> Result<()> {
        self.send(Command::StartTyping(channel.into_channel()?))
    }

    /// Signals at once that this user stopped typing.
    pub fn stop_typing(&self, channel: impl IntoChannel) -> Result<()> {
        self.send(Command::StopTyping(channel.into_channel()?))
    }
}

fn presence_channel(channel: impl IntoChannel) -> Result<crate::Channel> {
    let channel = channel.into_channel()?;
    if channel.kind() != ChannelKind::Presence {
        return Err(RealtimeError::invalid_channel(
            channel.to_string(),
            "presence operations need a presence channel (`presence:` prefix)",
        ));
    }
    Ok(channel)
}
