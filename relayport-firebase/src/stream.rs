//! One channel's stream: `GET {root}/{channel}.json` with `Accept: text/event-stream`, read
//! through the link layer's bounded SSE parser, with a silence bound (no event, not even a
//! `keep-alive`, for [`crate::FirebaseConfig::with_keep_alive_timeout`] = a stale link).

use std::time::Duration;

use futures_util::StreamExt;
use relayport_core::transport::sse::{SseEvent, SseParser};
use relayport_core::{
    Channel, ChannelKind, CloseReason, EventSink, PresenceChange, PresenceMember, ProviderEvent,
    RealtimeError, Result,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tracing::debug;

use crate::event::{Change, StreamEvent, changes, decode_event};
use crate::position::position_of;
use crate::records::{decode_member, decode_message};
use crate::state::{Shared, Touched};
use std::sync::Arc;

/// What the first `put` (the channel node's current value) tells `subscribe`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Baseline {
    /// The newest message's key, if any.
    pub(crate) last_key: Option<String>,
}

/// Everything a stream task needs.
pub(crate) struct Reader {
    pub(crate) channel: Channel,
    pub(crate) sink: EventSink,
    pub(crate) shared: Arc<Shared>,
    pub(crate) silence: Duration,
    pub(crate) ready: Option<oneshot::Sender<Result<Baseline>>>,
}

impl Reader {
    /// Reads the stream until it ends, reporting what arrives.
    pub(crate) async fn run(mut self, response: reqwest::Response) {
        let mut body = response.bytes_stream();
        let mut parser = SseParser::default();
        let reason = loop {
            let chunk = match tokio::time::timeout(self.silence, body.next()).await {
                Err(_) => {
                    break CloseReason::retry(
                        None,
                        format!(
                            "firebase stream of `{}` silent for {:?} (no keep-alive): stale link",
                            self.channel, self.silence
                        ),
                    );
                }
                Ok(None) => {
                    break CloseReason::retry(
                        None,
                        format!("firebase stream of `{}` ended", self.channel),
                    );
                }
                Ok(Some(Err(e))) => {
                    break CloseReason::retry(None, crate::rest::connection(e).to_string());
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            let events = match parser.feed(&chunk) {
                Ok(events) => events,
                Err(e) => break CloseReason::retry(None, format!("firebase stream: {e}")),
            };
            let mut end = None;
            for event in events {
                if let Some(reason) = self.on_event(&event).await {
                    end = Some(reason);
                    break;
                }
            }
            if let Some(reason) = end {
                match reason {
                    Some(r) => break r,
                    None => return,
                }
            }
        };
        self.fail_ready(RealtimeError::Connection(reason.message.clone()));
        self.sink.closed(reason);
    }

    fn fail_ready(&mut self, error: RealtimeError) {
        if let Some(ready) = self.ready.take() {
            let _ = ready.send(Err(error));
        }
    }

    /// Handles one event; `Some(Some(reason))` closes the link, `Some(None)` ends this stream
    /// only.
    async fn on_event(&mut self, event: &SseEvent) -> Option<Option<CloseReason>> {
        let decoded = match decode_event(event) {
            Ok(d) => d,
            Err(error) => {
                self.sink.error(Some(self.channel.clone()), error);
                return None;
            }
        };
        match decoded {
            StreamEvent::KeepAlive => None,
            StreamEvent::Cancel => {
                let error = relayport_core::auth::forbidden(
                    &self.channel,
                    "the database's security rules no longer allow reading it (cancel)",
                );
                if self.ready.is_some() {
                    self.fail_ready(error);
                } else {
                    self.sink.emit(ProviderEvent::SubscriptionLost {
                        channel: self.channel.clone(),
                        error,
                    });
                }
                Some(None)
            }
            StreamEvent::AuthRevoked(why) => {
                self.shared.tokens.invalidate().await;
                Some(Some(CloseReason::retry_now(
                    None,
                    format!("firebase credential revoked ({why}): reconnecting with a fresh one"),
                )))
            }
            other => {
                for change in changes(other) {
                    self.apply(change);
                }
                None
            }
        }
    }

    fn presence(&self) -> bool {
        self.channel.kind() == ChannelKind::Presence
    }

    fn deliver(&self, id: &str, record: &Value) {
        if self.shared.is_unwanted(record) {
            return;
        }
        match decode_message(&self.channel, id, record) {
            Ok(message) => {
                if let Some(ts) = message.timestamp {
                    self.shared.observe_clock(ts);
                }
                self.sink.message(message);
            }
            Err(error) => {
                self.sink.error(Some(self.channel.clone()), error);
            }
        }
    }

    fn members(&self, list: Vec<(String, Value)>) -> Vec<PresenceMember> {
        let mut table = std::collections::BTreeMap::new();
        for (key, record) in list {
            match decode_member(&key, &record) {
                Ok(m) => {
                    table.insert(key, m);
                }
                Err(error) => {
                    self.sink.error(Some(self.channel.clone()), error);
                }
            }
        }
        let live = self.shared.set_members(&self.channel, table);
        live.into_iter().map(|m| m.member).collect()
    }

    fn apply(&mut self, change: Change) {
        match change {
            Change::Snapshot { messages, presence } => {
                let last_key = messages
                    .iter()
                    .filter(|(k, _)| position_of(k).is_some())
                    .map(|(k, _)| k.clone())
                    .next_back();
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(Baseline { last_key }));
                } else {
                    // The whole node was rewritten: anything new is delivered (the core skips
                    // what it already had, by position).
                    for (id, record) in &messages {
                        self.deliver(id, record);
                    }
                }
                if self.presence() {
                    let members = self.members(presence);
                    self.sink
                        .presence(self.channel.clone(), PresenceChange::Snapshot(members));
                }
            }
            Change::Messages(list) => {
                for (id, record) in &list {
                    self.deliver(id, record);
                }
            }
            Change::Message(id, record) => self.deliver(&id, &record),
            Change::Presence(list) => {
                if self.presence() {
                    let members = self.members(list);
                    self.sink
                        .presence(self.channel.clone(), PresenceChange::Snapshot(members));
                }
            }
            Change::Member(key, record) => {
                if !self.presence() {
                    return;
                }
                match record {
                    None => {
                        if let Some(gone) = self.shared.remove_member(&self.channel, &key) {
                            self.sink
                                .presence(self.channel.clone(), PresenceChange::Left(gone.member));
                        }
                    }
                    Some(record) => match decode_member(&key, &record) {
                        Ok(m) => {
                            if let Some(ts) = m.ts {
                                self.shared.observe_clock(ts);
                            }
                            self.shared.put_member(&self.channel, &key, m.clone());
                            self.sink
                                .presence(self.channel.clone(), PresenceChange::Joined(m.member));
                        }
                        Err(error) => {
                            self.sink.error(Some(self.channel.clone()), error);
                        }
                    },
                }
            }
            Change::MemberFields(key, fields) => {
                if !self.presence() {
                    return;
                }
                if let Some(ts) = fields.get("ts").and_then(Value::as_u64) {
                    self.shared.observe_clock(ts);
                }
                match self.shared.touch_member(&self.channel, &key, &fields) {
                    Touched::DataChanged(member) => {
                        self.sink
                            .presence(self.channel.clone(), PresenceChange::Updated(member));
                    }
                    Touched::Refreshed => {}
                    Touched::Unknown => {
                        debug!(channel = %self.channel, "refresh of an unknown member")
                    }
                }
            }
        }
    }
}
