//! Subscription handles: streams of messages or presence events that unsubscribe when the last
//! handle of a channel is dropped.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::channel::Channel;
use crate::client::command::Command;
use crate::error::Result;
use crate::message::{EventType, Message, Typed};
use crate::presence::PresenceEvent;

/// Tells the runtime when a handle goes away.
#[derive(Debug)]
pub(crate) struct ListenerGuard {
    pub(crate) commands: mpsc::UnboundedSender<Command>,
    pub(crate) channel: Channel,
    pub(crate) id: u64,
}

impl Drop for ListenerGuard {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Unlisten {
            channel: self.channel.clone(),
            id: self.id,
        });
    }
}

/// A stream of the messages on one channel (or on every channel a wildcard matches).
///
/// Each handle receives every message. Dropping the last handle of a channel unsubscribes it.
/// The stream ends when the subscription is refused after a reconnect, on
/// `unsubscribe_all()`, or when the client closes.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) rx: mpsc::Receiver<Message>,
    pub(crate) guard: ListenerGuard,
}

impl Subscription {
    /// The channel (or pattern) subscribed to.
    pub fn channel(&self) -> &Channel {
        &self.guard.channel
    }

    /// The next message, or `None` when the stream ended.
    pub async fn recv(&mut self) -> Option<Message> {
        self.rx.recv().await
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
        self.rx.poll_recv(cx)
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
            let msg = self.inner.recv().await?;
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
