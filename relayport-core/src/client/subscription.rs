//! Subscription handles: streams of messages or presence events that unsubscribe when the last
//! handle of a channel is dropped.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::{mpsc, oneshot};

use crate::channel::Channel;
use crate::client::command::Command;
use crate::error::Result;
use crate::message::{EventType, Message, Typed};
use crate::presence::PresenceEvent;

mod queue;
pub(crate) use queue::{MessageRx, MessageTx, Pushed, queue};

/// Tells the runtime when a handle goes away.
#[derive(Debug)]
pub(crate) struct ListenerGuard {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) channel: Channel,
    pub(crate) id: u64,
    /// Already told (by an explicit, confirmed unsubscribe).
    pub(crate) released: bool,
}

impl ListenerGuard {
    /// Tells the runtime now, and waits until it is done: the listener is gone and, if it was
    /// the channel's last use, the provider has unsubscribed.
    async fn release(mut self) -> Result<()> {
        self.released = true;
        let (tx, rx) = oneshot::channel();
        let asked = self.commands.send(Command::Unlisten {
            channel: self.channel.clone(),
            id: self.id,
            reply: Some(tx),
        });
        if asked.is_err() {
            // The runtime has stopped: nothing is subscribed any more.
            return Ok(());
        }
        rx.await.unwrap_or(Ok(()))
    }
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let _ = self.commands.send(Command::Unlisten {
            channel: self.channel.clone(),
            id: self.id,
            reply: None,
        });
    }
}

/// Which event names a [`Subscription`] yields (all when empty).
#[derive(Debug, Clone, Default)]
struct EventFilter(Vec<String>);

impl EventFilter {
    fn accepts(&self, message: &Message) -> bool {
        self.0.is_empty() || self.0.contains(&message.event)
    }
}

/// A stream of the messages on one channel (or on every channel a wildcard matches).
///
/// Each handle receives every message (or, after [`Subscription::event`] /
/// [`Subscription::events`], the messages of those events). Dropping the last handle of a
/// channel unsubscribes it; [`Subscription::unsubscribe`] does the same and waits for it. The
/// stream ends when the subscription is refused after a reconnect, on `unsubscribe_all()`, or
/// when the client closes.
#[derive(Debug)]
pub struct Subscription {
    rx: MessageRx,
    pub(crate) guard: ListenerGuard,
    filter: EventFilter,
}

impl Subscription {
    pub(crate) fn new(rx: MessageRx, guard: ListenerGuard) -> Self {
        Self {
            rx,
            guard,
            filter: EventFilter::default(),
        }
    }

    /// The channel (or pattern) subscribed to.
    pub fn channel(&self) -> &Channel {
        &self.guard.channel
    }

    /// Only the messages of event `name` (pusher-js's `channel.bind(name)`, Laravel Echo's
    /// `listen('.name')`, ably-js's `subscribe(name, …)`). The filter runs in the client: the
    /// wire subscription is the channel's one, shared with every other handle. Chained calls
    /// add names: `sub.event("a").event("b")` yields both.
    ///
    /// ```no_run
    /// # async fn demo(client: relayport_core::RealtimeClient) -> relayport_core::Result<()> {
    /// let mut messages = client.subscribe("room:1").await?.event("chat:message");
    /// while let Some(m) = messages.recv().await {
    ///     println!("{}", m.data);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn event(mut self, name: impl Into<String>) -> Self {
        self.filter.0.push(name.into());
        self
    }

    /// Only the messages of these events; see [`Subscription::event`].
    pub fn events<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filter.0.extend(names.into_iter().map(Into::into));
        self
    }

    /// The next message (that passes the event filter, if any), or `None` when the stream
    /// ended.
    pub async fn recv(&mut self) -> Option<Message> {
        loop {
            let message = self.rx.recv().await?;
            if self.filter.accepts(&message) {
                return Some(message);
            }
        }
    }

    /// Unsubscribes this handle and waits until the runtime is done: when it was the channel's
    /// last use (no other handle, no presence membership), the provider has unsubscribed by
    /// the time this returns, and its error, if any, is returned. Dropping the handle does the
    /// same without waiting.
    pub async fn unsubscribe(self) -> Result<()> {
        self.guard.release().await
    }

    /// Only the messages of event type `T`, decoded.
    pub fn typed<T: EventType>(self) -> TypedSubscription<T> {
        TypedSubscription {
            inner: self,
            _type: PhantomData,
        }
    }
}

impl Stream for Subscription {
    type Item = Message;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(m)) if !self.filter.accepts(&m) => continue,
                other => return other,
            }
        }
    }
}

/// A stream of the messages of one event type on a channel, decoded; a payload that does not
/// decode is yielded as an `Err` (never skipped silently).
#[derive(Debug)]
pub struct TypedSubscription<T> {
    inner: Subscription,
    _type: PhantomData<fn() -> T>,
}

impl<T: EventType> TypedSubscription<T> {
    /// The channel subscribed to.
    pub fn channel(&self) -> &Channel {
        self.inner.channel()
    }

    /// The next message of type `T`, or `None` when the stream ended.
    pub async fn recv(&mut self) -> Option<Result<Typed<T>>> {
        loop {
            let msg = self.inner.rx.recv().await?;
            if msg.event == T::NAME {
                return Some(Typed::from_message(msg));
            }
        }
    }
}

impl<T: EventType> Stream for TypedSubscription<T> {
    type Item = Result<Typed<T>>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match self.inner.rx.poll_recv(cx) {
                Poll::Ready(Some(msg)) if msg.event == T::NAME => {
                    return Poll::Ready(Some(Typed::from_message(msg)));
                }
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A stream of presence events (joins, updates, leaves) on a presence channel. It keeps the
/// channel subscribed while it lives.
#[derive(Debug)]
pub struct PresenceStream {
    pub(crate) rx: mpsc::Receiver<PresenceEvent>,
    pub(crate) guard: ListenerGuard,
}

impl PresenceStream {
    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.guard.channel
    }

    /// The members once the list is complete (pusher-js's `subscription_succeeded`, Laravel
    /// Echo's `here()`, ably-js's `presence.get()` after SYNC): at once when the provider's
    /// full member list has arrived on the current connection, otherwise when it does (after a
    /// reconnect, when the re-sync has arrived). The events this stream yields are the changes
    /// that led there; a late listener receives the members already present as `Joined`
    /// events first, and `here()` says when that list is whole.
    ///
    /// Errors with the channel's error if its subscription fails, or `Closed` if it ends.
    pub async fn here(&self) -> Result<Vec<crate::presence::PresenceMember>> {
        let (tx, rx) = oneshot::channel();
        self.guard
            .commands
            .send(Command::PresenceHere {
                channel: self.guard.channel.clone(),
                reply: tx,
            })
            .map_err(|_| crate::error::RealtimeError::Closed("the client has closed".into()))?;
        rx.await.unwrap_or_else(|_| {
            Err(crate::error::RealtimeError::Closed(
                "the client has closed".into(),
            ))
        })
    }

    /// Stops this stream and waits for the runtime; see [`Subscription::unsubscribe`].
    pub async fn unsubscribe(self) -> Result<()> {
        self.guard.release().await
    }

    /// The next presence event, or `None` when the stream ended.
    pub async fn recv(&mut self) -> Option<PresenceEvent> {
        self.rx.recv().await
    }
}

impl Stream for PresenceStream {
    type Item = PresenceEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PresenceEvent>> {
        self.rx.poll_recv(cx)
    }
}
