//! A subscription's message queue: bounded, one sender (the delivery table), one receiver
//! (the [`Subscription`](super::Subscription)).
//!
//! Cheaper than a general channel for this one job: the sender pushes under a short lock and
//! wakes the reader only when it is waiting; the reader takes everything queued in one swap
//! and works through it without touching the lock or any atomic read-modify-write. A burst
//! thus costs the reader one lock per batch and one wake-up, not one per message.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::message::Message;

/// A queue holding at most `capacity` messages not yet read.
pub(crate) fn queue(capacity: usize) -> (MessageTx, MessageRx) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
        in_hand: AtomicUsize::new(0),
        capacity: capacity.max(1),
    });
    (
        MessageTx(shared.clone()),
        MessageRx {
            shared,
            local: VecDeque::new(),
        },
    )
}

struct Shared {
    state: Mutex<State>,
    /// Messages the reader has taken but not yet read (they still count against the capacity).
    in_hand: AtomicUsize,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A queue of plain values: nothing is left inconsistent by a panicking holder.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

struct State {
    items: VecDeque<Message>,
    /// The reader, when it found nothing and waits.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

/// What became of a message handed to [`MessageTx::try_send`].
#[derive(Debug)]
pub(crate) enum Pushed {
    /// Queued for the reader.
    Queued,
    /// The reader is this far behind: the message is handed back, not queued.
    Full(Message),
    /// The reader is gone.
    Closed,
}

/// The sending half, held by the delivery table.
pub(crate) struct MessageTx(Arc<Shared>);

impl std::fmt::Debug for MessageTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageTx")
    }
}

impl MessageTx {
    /// Queues `message` unless the queue is full or the reader is gone; never waits.
    pub(crate) fn try_send(&self, message: Message) -> Pushed {
        let mut state = self.0.lock();
        if state.receiver_gone {
            return Pushed::Closed;
        }
        let in_hand = self.0.in_hand.load(Ordering::Relaxed);
        if state.items.len() + in_hand >= self.0.capacity {
            return Pushed::Full(message);
        }
        state.items.push_back(message);
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
        Pushed::Queued
    }

    /// Whether the reader is gone.
    #[cfg(test)]
    pub(crate) fn is_closed(&self) -> bool {
        self.0.lock().receiver_gone
    }
}

impl Drop for MessageTx {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.sender_gone = true;
        let waker = state.waker.take();
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The receiving half, inside a [`Subscription`](super::Subscription).
pub(crate) struct MessageRx {
    shared: Arc<Shared>,
    /// Taken from the queue, not yet read.
    local: VecDeque<Message>,
}

impl std::fmt::Debug for MessageRx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageRx")
            .field("in_hand", &self.local.len())
            .finish()
    }
}

impl MessageRx {
    /// The next message; `None` once the sender is gone and everything was read.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        // Cooperate with tokio's scheduler: a reader that always finds a message still yields
        // now and then.
        let coop = std::task::ready!(tokio::task::coop::poll_proceed(cx));
        if self.local.is_empty() {
            let mut state = self.shared.lock();
            if state.items.is_empty() {
                if state.sender_gone {
                    return Poll::Ready(None);
                }
                match &state.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => state.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            std::mem::swap(&mut state.items, &mut self.local);
        }
        let message = self.local.pop_front();
        self.shared
            .in_hand
            .store(self.local.len(), Ordering::Relaxed);
        coop.made_progress();
        Poll::Ready(message)
    }

    /// [`MessageRx::poll_recv`] as a future.
    pub(crate) async fn recv(&mut self) -> Option<Message> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl Drop for MessageRx {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.receiver_gone = true;
        state.items.clear();
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;
    use serde_json::json;

    use super::*;
    use crate::channel::Channel;

    fn msg(n: u64) -> Message {
        Message::new(Channel::parse("q").unwrap(), "e", json!(n))
    }

    fn data(m: Option<Message>) -> Option<u64> {
        m.and_then(|m| m.data.as_json().and_then(serde_json::Value::as_u64))
    }

    #[tokio::test]
    async fn in_order_bounded_and_ends_when_the_sender_goes() {
        let (tx, mut rx) = queue(2);
        assert!(matches!(tx.try_send(msg(1)), Pushed::Queued));
        assert!(matches!(tx.try_send(msg(2)), Pushed::Queued));
        assert!(matches!(tx.try_send(msg(3)), Pushed::Full(m) if m == msg(3)));
        assert_eq!(data(rx.recv().await), Some(1));
        // 2 was taken with 1 and is still unread: it counts against the capacity.
        assert!(matches!(tx.try_send(msg(4)), Pushed::Queued));
        assert!(matches!(tx.try_send(msg(5)), Pushed::Full(_)));
        assert_eq!(data(rx.recv().await), Some(2));
        assert_eq!(data(rx.recv().await), Some(4));
        assert!(rx.recv().now_or_never().is_none(), "empty: waits");
        assert!(matches!(tx.try_send(msg(6)), Pushed::Queued));
        drop(tx);
        assert_eq!(data(rx.recv().await), Some(6), "read before the end");
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_reader_is_woken() {
        let (tx, mut rx) = queue(4);
        let reader = tokio::spawn(async move { data(rx.recv().await) });
        tokio::task::yield_now().await;
        assert!(matches!(tx.try_send(msg(7)), Pushed::Queued));
        assert_eq!(reader.await.unwrap(), Some(7));
    }

    #[test]
    fn a_gone_reader_closes_the_queue() {
        let (tx, rx) = queue(4);
        drop(rx);
        assert!(tx.is_closed());
        assert!(matches!(tx.try_send(msg(1)), Pushed::Closed));
    }
}
