//! The offline queue: publishes waiting for a connection or for the rate limit.
//!
//! One FIFO of bounded capacity (100 by default) holds every unsent publish; when it is full the
//! oldest is evicted, and the caller reports the eviction. Messages leave in order per channel;
//! a channel held back by its rate limit does not hold back other channels.

use std::collections::VecDeque;

use crate::channel::Channel;

/// An item that belongs to a channel.
pub trait Queued {
    /// The channel the item is for.
    fn channel(&self) -> &Channel;
}

/// A bounded FIFO of unsent publishes.
#[derive(Debug)]
pub struct Outbox<T> {
    items: VecDeque<(u64, T)>,
    capacity: usize,
    next_seq: u64,
}

impl<T: Queued> Outbox<T> {
    /// An empty queue holding at most `capacity` items (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            next_seq: 0,
        }
    }

    /// The number of waiting items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Appends an item; returns the evicted oldest item when the queue was full.
    pub fn push(&mut self, item: T) -> Option<T> {
        let evicted = if self.items.len() >= self.capacity {
            self.items.pop_front().map(|(_, t)| t)
        } else {
            None
        };
        self.items.push_back((self.next_seq, item));
        self.next_seq += 1;
        evicted
    }

    /// Removes and returns the oldest item whose channel is ready, considering only the oldest
    /// item of each channel (so each channel stays in order). The returned ticket puts it back.
    pub fn pop_ready(&mut self, mut is_ready: impl FnMut(&Channel) -> bool) -> Option<(u64, T)> {
        let mut blocked: Vec<&Channel> = Vec::new();
        let mut found = None;
        for (i, (_, item)) in self.items.iter().enumerate() {
            let ch = item.channel();
            if blocked.contains(&ch) {
                continue;
            }
            if is_ready(ch) {
                found = Some(i);
                break;
            }
            blocked.push(ch);
        }
        found.and_then(|i| self.items.remove(i))
    }

    /// Puts back an item taken with [`Outbox::pop_ready`] at its original place (a send that
    /// failed because the link went down). It may exceed the capacity by this one item.
    pub fn restore(&mut self, ticket: (u64, T)) {
        let at = self.items.partition_point(|(seq, _)| *seq < ticket.0);
        self.items.insert(at, ticket);
    }

    /// The oldest item of each channel, in queue order.
    pub fn heads(&self) -> Vec<&Channel> {
        let mut heads: Vec<&Channel> = Vec::new();
        for (_, item) in &self.items {
            if !heads.contains(&item.channel()) {
                heads.push(item.channel());
            }
        }
        heads
    }

    /// Removes everything, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.items.drain(..).map(|(_, t)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    struct Item(Channel, u32);
    impl Queued for Item {
        fn channel(&self) -> &Channel {
            &self.0
        }
    }

    fn a(n: u32) -> Item {
        Item(Channel::public("a"), n)
    }
    fn b(n: u32) -> Item {
        Item(Channel::public("b"), n)
    }

    #[test]
    fn capacity_at_and_past() {
        let mut q = Outbox::new(100);
        for n in 0..100 {
            assert!(q.push(a(n)).is_none(), "item {n} fits");
        }
        assert_eq!(q.len(), 100);
        assert_eq!(q.push(a(100)), Some(a(0)), "the 101st evicts the oldest");
        assert_eq!(q.len(), 100);
        let order: Vec<u32> = q.drain().map(|i| i.1).collect();
        assert_eq!(order, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn a_blocked_channel_does_not_block_others_and_order_holds() {
        let mut q = Outbox::new(10);
        q.push(a(1));
        q.push(b(1));
        q.push(a(2));
        q.push(b(2));
        let ready_b = |c: &Channel| c.name() == "b";
        assert_eq!(q.pop_ready(ready_b).map(|t| t.1), Some(b(1)));
        assert_eq!(q.pop_ready(ready_b).map(|t| t.1), Some(b(2)));
        assert!(q.pop_ready(ready_b).is_none(), "a(2) never overtakes a(1)");
        let t = q.pop_ready(|_| true).unwrap();
        assert_eq!(t.1, a(1));
        q.restore(t);
        assert_eq!(q.heads(), vec![&Channel::public("a")]);
        assert_eq!(q.pop_ready(|_| true).map(|t| t.1), Some(a(1)));
        assert_eq!(q.pop_ready(|_| true).map(|t| t.1), Some(a(2)));
        assert!(q.is_empty());
    }
}
