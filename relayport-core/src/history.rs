//! Reading a channel's history page by page: [`HistoryQuery`] says what to read,
//! [`MessagePage`] is what a provider answers, and [`History`] is the page a
//! [`RealtimeClient::history`](crate::RealtimeClient::history) call returns, with
//! [`History::next`] for the page after it.

use std::sync::Arc;
use std::time::Duration;

use crate::channel::Channel;
use crate::error::Result;
use crate::message::{Message, Position};
use crate::provider::RealtimeProvider;

/// The order a history query reads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HistoryDirection {
    /// Newest first (ably-js's default).
    #[default]
    Backwards,
    /// Oldest first.
    Forwards,
}

/// What to read from a channel's history; built with [`HistoryQuery::new`] and the setters.
///
/// ```
/// use relayport_core::HistoryQuery;
/// let query = HistoryQuery::new().limit(50).forwards().between(1_700_000_000_000, u64::MAX);
/// assert_eq!(query.limit, Some(50));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HistoryQuery {
    /// At most this many messages per page (the provider's own cap applies too).
    pub limit: Option<usize>,
    /// The order of the messages.
    pub direction: HistoryDirection,
    /// Only messages after this position (the position of the last message an application
    /// has seen); its epoch must match the channel's current one.
    pub since: Option<Position>,
    /// Only messages published at or after this time (server time, ms since the Unix epoch).
    pub start: Option<u64>,
    /// Only messages published at or before this time (server time, ms since the Unix epoch).
    pub end: Option<u64>,
    /// Where the next page starts: set by the provider in [`MessagePage::next`]; opaque.
    pub cursor: Option<String>,
}

impl HistoryQuery {
    /// The newest messages first, with the provider's default page size.
    pub fn new() -> Self {
        Self::default()
    }

    /// At most `limit` messages per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Oldest first.
    pub fn forwards(mut self) -> Self {
        self.direction = HistoryDirection::Forwards;
        self
    }

    /// Newest first (the default).
    pub fn backwards(mut self) -> Self {
        self.direction = HistoryDirection::Backwards;
        self
    }

    /// Only messages after `position`.
    pub fn since(mut self, position: Position) -> Self {
        self.since = Some(position);
        self
    }

    /// Only messages published between `start` and `end` (inclusive, server time in ms since
    /// the Unix epoch).
    pub fn between(mut self, start: u64, end: u64) -> Self {
        self.start = Some(start);
        self.end = Some(end);
        self
    }
}

/// One page of history as a provider answers it.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct MessagePage {
    /// The messages, in the query's direction.
    pub messages: Vec<Message>,
    /// The query for the next page, if there is one.
    pub next: Option<HistoryQuery>,
}

impl MessagePage {
    /// A page of `messages`, with `next` the query for the page after it.
    pub fn new(messages: Vec<Message>, next: Option<HistoryQuery>) -> Self {
        Self { messages, next }
    }
}

/// A page of a channel's history, from [`RealtimeClient::history`](crate::RealtimeClient::history).
pub struct History {
    provider: Arc<dyn RealtimeProvider>,
    channel: Channel,
    page: MessagePage,
    /// The bound on each page's request (the client's request timeout).
    limit: Duration,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("channel", &self.channel)
            .field("page", &self.page)
            .finish()
    }
}

impl History {
    /// Fetches one page, bounded by `limit`.
    pub(crate) async fn fetch(
        provider: Arc<dyn RealtimeProvider>,
        channel: Channel,
        query: &HistoryQuery,
        limit: Duration,
    ) -> Result<Self> {
        let page = match tokio::time::timeout(limit, provider.history_page(&channel, query)).await {
            Ok(page) => page?,
            Err(_) => return Err(crate::error::RealtimeError::timeout("history", limit)),
        };
        Ok(Self {
            provider,
            channel,
            page,
            limit,
        })
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The messages of this page, in the query's direction.
    pub fn messages(&self) -> &[Message] {
        &self.page.messages
    }

    /// The messages of this page, owned.
    pub fn into_messages(self) -> Vec<Message> {
        self.page.messages
    }

    /// Whether there is a page after this one.
    pub fn has_next(&self) -> bool {
        self.page.next.is_some()
    }

    /// The page after this one, or `None` at the end; bounded by the client's request timeout
    /// like the first.
    pub async fn next(&self) -> Result<Option<History>> {
        match &self.page.next {
            None => Ok(None),
            Some(query) => History::fetch(
                self.provider.clone(),
                self.channel.clone(),
                query,
                self.limit,
            )
            .await
            .map(Some),
        }
    }
}

/// Pages a channel's log as `query` asks: the one paging rule for every log kept in order
/// (the self-hosted server's ring buffer, the scripted provider's log).
///
/// `log` is oldest first; `key` gives an entry's sequence and timestamp (ms); `epoch` is the
/// log's current epoch. A page holds at most `query.limit` entries, capped at `max_limit`
/// (at least one). The cursor of the next page is the last sequence of this one: `next` reads
/// older entries when going backwards, newer ones going forwards. `since` applies when its
/// epoch is the log's (a position from an older epoch precedes everything in the log).
///
/// Errors: a cursor that is not a sequence number is `Protocol` (cursors are opaque and only
/// come from a previous page).
pub fn page_log<'a, T>(
    log: &'a [T],
    query: &HistoryQuery,
    max_limit: usize,
    epoch: Option<&str>,
    key: impl Fn(&T) -> (u64, Option<u64>),
) -> Result<(Vec<&'a T>, Option<HistoryQuery>)> {
    let limit = query.limit.unwrap_or(max_limit).clamp(1, max_limit.max(1));
    let cursor = match query.cursor.as_deref() {
        None => None,
        Some(c) => Some(c.parse::<u64>().map_err(|_| {
            crate::error::RealtimeError::Protocol(format!("`{c}` is not a history cursor"))
        })?),
    };
    let since = query
        .since
        .as_ref()
        .filter(|p| p.epoch.is_none() || p.epoch.as_deref() == epoch)
        .map(|p| p.sequence);
    let wanted = |entry: &&T| {
        let (seq, ts) = key(entry);
        let after_since = since.is_none_or(|s| seq > s);
        let after_start = query.start.is_none_or(|s| ts.is_some_and(|t| t >= s));
        let before_end = query.end.is_none_or(|e| ts.is_some_and(|t| t <= e));
        let past_cursor = match (cursor, query.direction) {
            (None, _) => true,
            (Some(c), HistoryDirection::Forwards) => seq > c,
            (Some(c), HistoryDirection::Backwards) => seq < c,
        };
        after_since && after_start && before_end && past_cursor
    };
    let mut page: Vec<&T> = match query.direction {
        HistoryDirection::Forwards => log.iter().filter(wanted).take(limit + 1).collect(),
        HistoryDirection::Backwards => log.iter().rev().filter(wanted).take(limit + 1).collect(),
    };
    let next = if page.len() > limit {
        page.truncate(limit);
        page.last().map(|last| HistoryQuery {
            cursor: Some(key(last).0.to_string()),
            ..query.clone()
        })
    } else {
        None
    };
    Ok((page, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log() -> Vec<(u64, u64)> {
        (1..=7).map(|s| (s, 1000 + s)).collect()
    }

    fn seqs(page: &[&(u64, u64)]) -> Vec<u64> {
        page.iter().map(|e| e.0).collect()
    }

    fn read_all(query: HistoryQuery) -> Vec<Vec<u64>> {
        let log = log();
        let mut pages = Vec::new();
        let mut next = Some(query);
        while let Some(q) = next {
            let (page, n) = page_log(&log, &q, 100, Some("e"), |e| (e.0, Some(e.1))).unwrap();
            pages.push(seqs(&page));
            next = n;
        }
        pages
    }

    #[test]
    fn pages_backwards_by_default_and_forwards_on_request() {
        assert_eq!(
            read_all(HistoryQuery::new().limit(3)),
            vec![vec![7, 6, 5], vec![4, 3, 2], vec![1]]
        );
        assert_eq!(
            read_all(HistoryQuery::new().limit(3).forwards()),
            vec![vec![1, 2, 3], vec![4, 5, 6], vec![7]]
        );
        // Exactly a page: no empty page after it.
        assert_eq!(
            read_all(HistoryQuery::new().limit(7)),
            vec![vec![7, 6, 5, 4, 3, 2, 1]]
        );
    }

    #[test]
    fn since_start_and_end_bound_every_page() {
        let since = Position {
            epoch: Some("e".into()),
            sequence: 2,
        };
        assert_eq!(
            read_all(HistoryQuery::new().limit(2).forwards().since(since.clone())),
            vec![vec![3, 4], vec![5, 6], vec![7]]
        );
        assert_eq!(
            read_all(HistoryQuery::new().between(1003, 1005)),
            vec![vec![5, 4, 3]]
        );
        // A position from another epoch precedes the whole log.
        let old = Position {
            epoch: Some("old".into()),
            sequence: 6,
        };
        assert_eq!(
            read_all(HistoryQuery::new().forwards().since(old))
                .concat()
                .len(),
            7
        );
    }

    #[test]
    fn the_limit_is_capped_and_a_bad_cursor_is_an_error() {
        let log = log();
        let (page, next) = page_log(&log, &HistoryQuery::new().limit(1000), 4, None, |e| {
            (e.0, None)
        })
        .unwrap();
        assert_eq!(seqs(&page), vec![7, 6, 5, 4]);
        assert!(next.is_some());
        let bad = HistoryQuery {
            cursor: Some("x".into()),
            ..HistoryQuery::new()
        };
        assert!(page_log(&log, &bad, 4, None, |e| (e.0, None)).is_err());
    }
}
