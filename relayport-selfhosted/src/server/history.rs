//! A channel's message stream: per-channel gapless sequence numbers within a random epoch, and
//! a bounded ring buffer of recent messages (size and TTL) for recovery.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use relayport_core::Position;

use crate::protocol::MessageFrame;

/// A fresh random epoch: 16 lowercase hex digits.
pub fn new_epoch() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// What a `since` position recovers.
#[derive(Debug, Clone, PartialEq)]
pub enum Recovery {
    /// Every message after the position, oldest first (possibly none).
    Recovered(Vec<MessageFrame>),
    /// The gap is no longer in history, the epoch differs, or the position is ahead.
    NotRecovered,
}

/// What [`Stream::adopt`] made of a message sequenced elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adopted {
    /// The next message: store and deliver it.
    Next,
    /// It does not follow (another epoch, or a gap): history restarts from it.
    Reset,
    /// Already known (seeded from the engine's history): neither store nor deliver it to
    /// exact subscribers again.
    Duplicate,
}

/// The stream of one channel.
#[derive(Debug)]
pub struct Stream {
    epoch: String,
    last_seq: u64,
    /// Whether the stream follows the scale-out engine's (adopted or seeded at least once).
    synced: bool,
    entries: VecDeque<(Duration, Arc<MessageFrame>)>,
    capacity: usize,
    ttl: Duration,
}

impl Stream {
    /// An empty stream with a random epoch.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            epoch: new_epoch(),
            last_seq: 0,
            synced: false,
            entries: VecDeque::with_capacity(capacity.min(16)),
            capacity,
            ttl,
        }
    }

    /// The stream's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last sequence assigned (0 before the first message).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The current position.
    pub fn position(&self) -> Position {
        Position {
            epoch: Some(self.epoch.clone()),
            sequence: self.last_seq,
        }
    }

    /// The next sequence number, reserved.
    pub fn next_seq(&mut self) -> u64 {
        self.last_seq += 1;
        self.last_seq
    }

    /// Adopts a position assigned elsewhere (another node through the scale-out engine). A
    /// different epoch, or a sequence that does not follow, starts the local history afresh so
    /// that a replay never has a hole; a sequence already passed in the same epoch is a
    /// duplicate.
    pub fn adopt(&mut self, epoch: &str, seq: u64) -> Adopted {
        let was_synced = std::mem::replace(&mut self.synced, true);
        if was_synced && self.epoch == epoch && seq <= self.last_seq {
            return Adopted::Duplicate;
        }
        let outcome = if self.epoch != epoch || seq != self.last_seq + 1 {
            self.entries.clear();
            self.epoch = epoch.to_owned();
            Adopted::Reset
        } else {
            Adopted::Next
        };
        self.last_seq = seq;
        outcome
    }

    /// Seeds the stream from the scale-out engine's copy (`epoch`, last sequence, retained
    /// messages oldest first, each with its wall-clock `ts`; `now_unix_ms` dates them).
    ///
    /// A stream that never followed the engine takes it over whole. A stream that does keeps
    /// its position (later messages reach it through the engine's fan-out) and only gains the
    /// older messages it lacks, when they join up with its own without a hole.
    pub fn seed(
        &mut self,
        now: Duration,
        now_unix_ms: u64,
        epoch: &str,
        last_seq: u64,
        messages: Vec<MessageFrame>,
    ) {
        let dated = |m: MessageFrame| {
            let age = Duration::from_millis(now_unix_ms.saturating_sub(m.ts));
            (now.saturating_sub(age), Arc::new(m))
        };
        if !std::mem::replace(&mut self.synced, true) {
            self.epoch = epoch.to_owned();
            self.last_seq = last_seq;
            self.entries = messages
                .into_iter()
                .filter(|m| m.epoch == epoch && m.seq <= last_seq)
                .map(dated)
                .collect();
        } else if self.epoch == epoch {
            let first_local = self
                .entries
                .front()
                .map_or(self.last_seq + 1, |(_, m)| m.seq);
            let older: Vec<MessageFrame> = messages
                .into_iter()
                .filter(|m| m.epoch == epoch && m.seq < first_local)
                .collect();
            let joins_up = older.last().is_some_and(|m| m.seq + 1 == first_local)
                && older.windows(2).all(|w| w[0].seq + 1 == w[1].seq);
            if joins_up {
                for m in older.into_iter().rev() {
                    self.entries.push_front(dated(m));
                }
            }
        }
        while self.entries.len() > self.capacity {
            self.entries.pop_front();
        }
        self.prune(now);
    }

    /// Stores a message (whose sequence was just assigned) at time `now`.
    pub fn push(&mut self, now: Duration, frame: Arc<MessageFrame>) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back((now, frame));
        self.prune(now);
    }

    /// Drops messages older than the TTL.
    pub fn prune(&mut self, now: Duration) {
        while let Some((at, _)) = self.entries.front() {
            if now.saturating_sub(*at) > self.ttl {
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    /// Whether history holds nothing (after pruning at `now`).
    pub fn is_empty_at(&mut self, now: Duration) -> bool {
        self.prune(now);
        self.entries.is_empty()
    }

    /// The messages after `since`, all of them or nothing.
    pub fn recover(&mut self, now: Duration, since: &Position) -> Recovery {
        self.prune(now);
        if since.epoch.as_deref() != Some(self.epoch.as_str()) || since.sequence > self.last_seq {
            return Recovery::NotRecovered;
        }
        if since.sequence == self.last_seq {
            return Recovery::Recovered(Vec::new());
        }
        let first_needed = since.sequence + 1;
        match self.entries.front() {
            Some((_, oldest)) if oldest.seq <= first_needed => Recovery::Recovered(
                self.entries
                    .iter()
                    .filter(|(_, m)| m.seq >= first_needed)
                    .map(|(_, m)| (**m).clone())
                    .collect(),
            ),
            _ => Recovery::NotRecovered,
        }
    }

    /// Up to `limit` retained messages with a sequence greater than `since`, oldest first.
    pub fn range(&mut self, now: Duration, since: u64, limit: usize) -> Vec<MessageFrame> {
        self.prune(now);
        self.entries
            .iter()
            .filter(|(_, m)| m.seq > since)
            .take(limit)
            .map(|(_, m)| (**m).clone())
            .collect()
    }

    /// One page of the retained messages (pruned at `now`) as `query` asks, with the query of
    /// the next page; see [`relayport_core::page_log`].
    pub fn page(
        &mut self,
        now: Duration,
        query: &relayport_core::HistoryQuery,
        max_limit: usize,
    ) -> relayport_core::Result<(Vec<MessageFrame>, Option<relayport_core::HistoryQuery>)> {
        self.prune(now);
        let epoch = self.epoch.clone();
        let entries = self.entries.make_contiguous();
        let (page, next) =
            relayport_core::page_log(entries, query, max_limit, Some(&epoch), |(_, m)| {
                (m.seq, Some(m.ts))
            })?;
        Ok((page.into_iter().map(|(_, m)| (**m).clone()).collect(), next))
    }

    /// How many messages are retained.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is retained (without pruning).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn frame(stream: &mut Stream) -> Arc<MessageFrame> {
        let seq = stream.next_seq();
        Arc::new(MessageFrame {
            encoding: None,
            channel: "c".into(),
            event: "e".into(),
            data: json!(seq),
            id: format!("id{seq}"),
            seq,
            epoch: stream.epoch().to_owned(),
            ts: 0,
            sender: None,
        })
    }

    fn pos(s: &Stream, seq: u64) -> Position {
        Position {
            epoch: Some(s.epoch().to_owned()),
            sequence: seq,
        }
    }

    #[test]
    fn sequences_are_gapless_and_ring_is_bounded() {
        let mut s = Stream::new(3, Duration::from_secs(120));
        for _ in 0..5 {
            let f = frame(&mut s);
            s.push(Duration::ZERO, f);
        }
        assert_eq!(s.last_seq(), 5);
        assert_eq!(s.len(), 3);
        let seqs: Vec<u64> = s
            .range(Duration::ZERO, 0, 10)
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(seqs, vec![3, 4, 5]);
    }

    #[test]
    fn recovery_is_all_or_nothing() {
        let mut s = Stream::new(3, Duration::from_secs(120));
        for _ in 0..5 {
            let f = frame(&mut s);
            s.push(Duration::ZERO, f);
        }
        let now = Duration::ZERO;
        match s.recover(now, &pos(&s, 2)) {
            Recovery::Recovered(m) => {
                assert_eq!(m.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4, 5])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.recover(now, &pos(&s, 5)), Recovery::Recovered(vec![]));
        assert_eq!(
            s.recover(now, &pos(&s, 1)),
            Recovery::NotRecovered,
            "seq 2 is gone"
        );
        assert_eq!(s.recover(now, &pos(&s, 6)), Recovery::NotRecovered, "ahead");
        let other = Position {
            epoch: Some("other".into()),
            sequence: 4,
        };
        assert_eq!(s.recover(now, &other), Recovery::NotRecovered, "epoch");
    }

    #[test]
    fn ttl_expires_history() {
        let mut s = Stream::new(100, Duration::from_secs(120));
        let f = frame(&mut s);
        s.push(Duration::ZERO, f);
        let f = frame(&mut s);
        s.push(Duration::from_secs(60), f);
        assert_eq!(s.range(Duration::from_secs(121), 0, 10).len(), 1);
        assert_eq!(
            s.recover(Duration::from_secs(121), &pos(&s, 0)),
            Recovery::NotRecovered
        );
        assert!(s.is_empty_at(Duration::from_secs(181)));
    }

    #[test]
    fn adopt_resets_on_gap_or_epoch_change_and_spots_duplicates() {
        let mut s = Stream::new(10, Duration::from_secs(120));
        assert_eq!(s.adopt("e1", 7), Adopted::Reset);
        assert_eq!(s.epoch(), "e1");
        assert_eq!(s.last_seq(), 7);
        assert_eq!(s.adopt("e1", 8), Adopted::Next);
        assert_eq!(s.last_seq(), 8);
        assert_eq!(s.adopt("e1", 8), Adopted::Duplicate);
        assert_eq!(s.adopt("e1", 3), Adopted::Duplicate);
        assert_eq!(s.adopt("e1", 10), Adopted::Reset, "a gap");
        assert_eq!(s.adopt("e2", 1), Adopted::Reset);
        assert_eq!(s.epoch(), "e2");
    }

    fn remote(epoch: &str, seq: u64) -> MessageFrame {
        MessageFrame {
            encoding: None,
            channel: "c".into(),
            event: "e".into(),
            data: json!(seq),
            id: format!("{epoch}-{seq}"),
            seq,
            epoch: epoch.into(),
            ts: 1_000_000,
            sender: None,
        }
    }

    #[test]
    fn seeding_takes_over_a_fresh_stream_and_backfills_a_followed_one() {
        let now = Duration::from_secs(1);
        let mut fresh = Stream::new(10, Duration::from_secs(120));
        let msgs: Vec<MessageFrame> = (3..=5).map(|n| remote("R", n)).collect();
        fresh.seed(now, 1_000_000, "R", 5, msgs.clone());
        assert_eq!((fresh.epoch(), fresh.last_seq()), ("R", 5));
        let pos = Position {
            epoch: Some("R".into()),
            sequence: 2,
        };
        match fresh.recover(now, &pos) {
            Recovery::Recovered(m) => assert_eq!(m.len(), 3),
            other => panic!("{other:?}"),
        }
        // In flight when it was seeded: a duplicate now.
        assert_eq!(fresh.adopt("R", 5), Adopted::Duplicate);
        assert_eq!(fresh.adopt("R", 6), Adopted::Next);

        // A followed stream keeps its position and gains only older, joining messages.
        let mut followed = Stream::new(10, Duration::from_secs(120));
        followed.adopt("R", 4);
        followed.push(now, Arc::new(remote("R", 4)));
        followed.adopt("R", 5);
        followed.push(now, Arc::new(remote("R", 5)));
        let all: Vec<MessageFrame> = (1..=7).map(|n| remote("R", n)).collect();
        followed.seed(now, 1_000_000, "R", 7, all);
        assert_eq!(followed.last_seq(), 5, "6 and 7 arrive through the fan-out");
        let seqs: Vec<u64> = followed.range(now, 0, 10).iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        // Messages that do not join up are not used.
        let mut gap = Stream::new(10, Duration::from_secs(120));
        gap.adopt("R", 5);
        gap.push(now, Arc::new(remote("R", 5)));
        gap.seed(now, 1_000_000, "R", 5, vec![remote("R", 2), remote("R", 3)]);
        assert_eq!(gap.len(), 1);
        // Another epoch is ignored once followed.
        gap.seed(now, 1_000_000, "Q", 9, vec![remote("Q", 9)]);
        assert_eq!((gap.epoch(), gap.last_seq()), ("R", 5));
    }
}
