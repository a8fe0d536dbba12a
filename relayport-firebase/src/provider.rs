//! [`FirebaseProvider`]: the [`RealtimeProvider`] over the Realtime Database REST API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use relayport_core::transport::{LinkConfig, lock};
use relayport_core::{
    Capabilities, Channel, ChannelKind, EventSink, HistoryPage, OutboundMessage, Position,
    PresenceChange, PresenceMember, RealtimeError, RealtimeProvider, Recovery, Result, Session,
    SubscribeOptions, Subscribed,
};
use reqwest::Method;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use crate::config::FirebaseConfig;
use crate::key::encode_key;
use crate::position::{history_start, position_of};
use crate::records::{decode_member, decode_message, member_record, message_record};
use crate::rest::{connection, json_answer, location_url, with_token};
use crate::state::Shared;
use crate::stream::Reader;
use crate::token::Tokens;

/// The page size of history queries (`limitToFirst`).
pub const HISTORY_PAGE: usize = 500;

/// The most history pages one recovery reads; past it the page is reported incomplete.
pub const HISTORY_MAX_PAGES: usize = 20;

#[derive(Default)]
struct Conn {
    sink: Option<EventSink>,
    streams: HashMap<Channel, JoinHandle<()>>,
    entered: HashMap<Channel, Value>,
}

impl Conn {
    fn stop(&mut self) {
        for (_, task) in self.streams.drain() {
            task.abort();
        }
        self.sink = None;
    }
}

/// Firebase Realtime Database as a realtime provider: one SSE stream per channel, `POST` for
/// publishing, key queries for history, presence records refreshed on the heartbeat. See the
/// crate documentation for the data layout and the limits.
pub struct FirebaseProvider {
    cfg: FirebaseConfig,
    http: reqwest::Client,
    shared: Arc<Shared>,
    conn: Mutex<Conn>,
}

impl std::fmt::Debug for FirebaseProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirebaseProvider")
            .field("config", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Drop for FirebaseProvider {
    fn drop(&mut self) {
        lock(&self.conn).stop();
    }
}

impl FirebaseProvider {
    /// A provider for `cfg` (its link configuration, or the shared default).
    pub fn new(cfg: FirebaseConfig) -> Result<Self> {
        let link = match &cfg.link {
            Some(link) => link.clone(),
            None => LinkConfig::shared_default()?,
        };
        let tokens = Tokens::new(cfg.tokens.clone(), cfg.refresh_margin);
        Ok(Self {
            http: link.http().clone(),
            shared: Arc::new(Shared::new(tokens, cfg.presence_stale_after)),
            conn: Mutex::new(Conn::default()),
            cfg,
        })
    }

    /// The database keys of `channel`'s node (and below it, `tail`).
    fn segments(&self, channel: &Channel, tail: &[&str]) -> Vec<String> {
        let mut segs: Vec<String> = self.cfg.root.split('/').map(str::to_owned).collect();
        segs.push(encode_key(&channel.to_string()));
        segs.extend(tail.iter().map(|s| (*s).to_owned()));
        segs
    }

    fn member_key(&self) -> String {
        encode_key(&self.cfg.client_id)
    }

    /// One REST call on a channel's location.
    async fn call(
        &self,
        method: Method,
        channel: &Channel,
        tail: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value> {
        let segs = self.segments(channel, tail);
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let url = location_url(&self.cfg.database_url, &refs, query)?;
        let token = self.shared.tokens.get().await?;
        let mut request = with_token(self.http.request(method, url), token.as_ref());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(connection)?;
        let answer = json_answer(response, Some(channel)).await;
        if matches!(answer, Err(RealtimeError::Unauthorized(_))) {
            // A refused credential is not asked about twice: the next call gets a fresh one.
            self.shared.tokens.invalidate().await;
        }
        answer
    }

    fn sink(&self) -> Result<EventSink> {
        lock(&self.conn)
            .sink
            .clone()
            .ok_or_else(|| RealtimeError::Connection("firebase: not connected".into()))
    }

    /// Writes this client's presence record.
    async fn write_member(&self, channel: &Channel, data: Value) -> Result<()> {
        let key = self.member_key();
        let record = member_record(&self.cfg.client_id, &data);
        let answer = self
            .call(
                Method::PUT,
                channel,
                &["presence", &key],
                &[],
                Some(&record),
            )
            .await?;
        let ts = answer.get("ts").and_then(Value::as_u64);
        if let Some(ts) = ts {
            self.shared.observe_clock(ts);
        }
        // Read your own writes: `presence_members` includes this client before its own
        // stream reports the record.
        if lock(&self.conn).streams.contains_key(channel) {
            let member = PresenceMember::new(self.cfg.client_id.clone(), data.clone());
            self.shared
                .put_member(channel, &key, crate::records::StoredMember { member, ts });
        }
        lock(&self.conn).entered.insert(channel.clone(), data);
        Ok(())
    }

    /// The heartbeat's presence work: refresh this client's records, prune stale members.
    async fn presence_heartbeat(&self) -> Result<()> {
        // A full rewrite, not a `ts`-only patch: a record another client pruned as stale (a
        // long pause, say) comes back whole.
        let entered: Vec<(Channel, Value)> = lock(&self.conn)
            .entered
            .iter()
            .map(|(c, d)| (c.clone(), d.clone()))
            .collect();
        for (channel, data) in entered {
            self.write_member(&channel, data).await?;
        }
        let (sink, watched) = {
            let conn = lock(&self.conn);
            let watched: Vec<Channel> = conn
                .streams
                .keys()
                .filter(|c| c.kind() == ChannelKind::Presence)
                .cloned()
                .collect();
            (conn.sink.clone(), watched)
        };
        let Some(sink) = sink else { return Ok(()) };
        for channel in watched {
            for (member_key, stale) in self.shared.prune(&channel) {
                sink.presence(channel.clone(), PresenceChange::Left(stale.member));
                // Best effort: the rules may not let this client delete others' records.
                if let Err(e) = self
                    .call(
                        Method::DELETE,
                        &channel,
                        &["presence", &member_key],
                        &[],
                        None,
                    )
                    .await
                {
                    debug!(%channel, error = %e, "stale member not deleted");
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl RealtimeProvider for FirebaseProvider {
    fn name(&self) -> &'static str {
        "firebase"
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.presence = true;
        caps.presence_update = true;
        caps.history = true;
        // Listeners see the client's own writes. With echo off each write carries `origin` =
        // this instance's id, and the streams and the recovery read skip those.
        caps.echo = relayport_core::Echo::Configurable;
        caps
    }

    fn set_echo(&self, echo: bool) {
        self.shared.set_echo(echo);
    }

    async fn connect(&self, sink: EventSink) -> Result<Session> {
        // The credential first: a source that fails is the connect's failure.
        self.shared.tokens.get().await?;
        self.ping().await?;
        let mut conn = lock(&self.conn);
        conn.stop();
        conn.sink = Some(sink);
        Ok(Session::new(self.cfg.client_id.clone()))
    }

    async fn disconnect(&self) -> Result<()> {
        let mut conn = lock(&self.conn);
        conn.stop();
        conn.entered.clear();
        Ok(())
    }

    async fn subscribe(&self, channel: &Channel, options: &SubscribeOptions) -> Result<Subscribed> {
        if channel.is_wildcard() {
            return Err(RealtimeError::Unsupported(
                "wildcard subscriptions; subscribe to each channel".into(),
            ));
        }
        let sink = self.sink()?;
        let segs = self.segments(channel, &[]);
        let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
        let url = location_url(&self.cfg.database_url, &refs, &[])?;
        let token = self.shared.tokens.get().await?;
        let request = with_token(
            self.http.get(url).header("accept", "text/event-stream"),
            token.as_ref(),
        );
        let response = request.send().await.map_err(connection)?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let body = crate::rest::read_body(response).await.unwrap_or_default();
            return Err(crate::rest::status_error(status, &body, Some(channel)));
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let reader = Reader {
            channel: channel.clone(),
            sink,
            shared: self.shared.clone(),
            silence: self.cfg.keep_alive_timeout,
            ready: Some(ready_tx),
        };
        let task = tokio::spawn(reader.run(response));
        if let Some(old) = lock(&self.conn).streams.insert(channel.clone(), task) {
            old.abort();
        }
        let baseline = ready_rx.await.map_err(|_| {
            RealtimeError::Connection(format!(
                "the stream of `{channel}` ended before its first event"
            ))
        })??;
        // The baseline a later recovery starts from: the newest message, or the beginning.
        let position = baseline
            .last_key
            .as_deref()
            .and_then(position_of)
            .unwrap_or(Position::new(0));
        // A presence join is the core's separate `presence_enter` call; replay is `history`.
        let _ = &options.presence_data;
        Ok(Subscribed {
            recovery: Recovery::NotAttempted,
            position: Some(position),
        })
    }

    async fn unsubscribe(&self, channel: &Channel) -> Result<()> {
        let (task, entered) = {
            let mut conn = lock(&self.conn);
            (
                conn.streams.remove(channel),
                conn.entered.contains_key(channel),
            )
        };
        if let Some(task) = task {
            task.abort();
        }
        self.shared.forget(channel);
        if entered {
            self.presence_leave(channel).await?;
        }
        Ok(())
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<()> {
        let record = message_record(message, &self.cfg.client_id, self.shared.origin())?;
        let answer = self
            .call(
                Method::POST,
                &message.channel,
                &["messages"],
                &[],
                Some(&record),
            )
            .await?;
        match answer.get("name").and_then(Value::as_str) {
            Some(_) => Ok(()),
            None => Err(RealtimeError::Protocol(
                "a push answered without the new key's `name`".into(),
            )),
        }
    }

    async fn presence_enter(&self, channel: &Channel, data: Value) -> Result<()> {
        self.write_member(channel, data).await
    }

    async fn presence_update(&self, channel: &Channel, data: Value) -> Result<()> {
        self.write_member(channel, data).await
    }

    async fn presence_leave(&self, channel: &Channel) -> Result<()> {
        let key = self.member_key();
        self.call(Method::DELETE, channel, &["presence", &key], &[], None)
            .await?;
        // The stream's deletion event removes the record locally and reports the leave.
        lock(&self.conn).entered.remove(channel);
        Ok(())
    }

    async fn presence_members(&self, channel: &Channel) -> Result<Vec<PresenceMember>> {
        if lock(&self.conn).streams.contains_key(channel) {
            return Ok(self.shared.live_members(channel));
        }
        let value = self
            .call(Method::GET, channel, &["presence"], &[], None)
            .await?;
        let now = self.shared.server_now();
        let stale_ms = self.cfg.presence_stale_after.as_millis() as u64;
        let mut out = Vec::new();
        if let Value::Object(map) = value {
            for (key, record) in map {
                let m = decode_member(&key, &record)?;
                let stale = matches!((m.ts, now), (Some(ts), Some(now)) if ts + stale_ms < now);
                if !stale {
                    out.push(m.member);
                }
            }
        }
        Ok(out)
    }

    async fn ping(&self) -> Result<Duration> {
        let started = Instant::now();
        let url = location_url(&self.cfg.database_url, &[], &[("shallow", "true")])?;
        // Any HTTP answer proves the round trip (the rules may refuse reading the root).
        let response = self.http.get(url).send().await.map_err(connection)?;
        let _ = crate::rest::read_body(response).await?;
        let latency = started.elapsed();
        // Refresh the credential before it expires, and presence on the heartbeat.
        self.shared.tokens.get().await?;
        self.presence_heartbeat().await?;
        Ok(latency)
    }

    async fn goodbye(&self) -> Result<()> {
        let entered: Vec<Channel> = lock(&self.conn).entered.keys().cloned().collect();
        for channel in entered {
            if let Err(e) = self.presence_leave(&channel).await {
                debug!(%channel, error = %e, "presence record not removed on goodbye");
            }
        }
        self.disconnect().await
    }

    async fn history(&self, channel: &Channel, since: &Position) -> Result<HistoryPage> {
        let mut start = (since.sequence != 0).then(|| history_start(since));
        let mut messages = Vec::new();
        let mut previous: Option<String> = None;
        let page = HISTORY_PAGE.to_string();
        for _ in 0..HISTORY_MAX_PAGES {
            let start_json = start.as_ref().map(|s| Value::from(s.as_str()).to_string());
            let mut query = vec![("orderBy", "\"$key\""), ("limitToFirst", page.as_str())];
            if let Some(s) = &start_json {
                query.push(("startAt", s.as_str()));
            }
            let value = self
                .call(Method::GET, channel, &["messages"], &query, None)
                .await?;
            let mut children: Vec<(String, Value)> = match value {
                Value::Object(map) => map.into_iter().collect(),
                Value::Null => Vec::new(),
                _ => {
                    return Err(RealtimeError::Protocol(
                        "a history query answered something other than an object".into(),
                    ));
                }
            };
            children.sort_by(|a, b| a.0.cmp(&b.0));
            let full = children.len() >= HISTORY_PAGE;
            let last = children.last().map(|(k, _)| k.clone());
            for (key, record) in children {
                if previous.as_deref() == Some(key.as_str()) {
                    continue;
                }
                let after = match position_of(&key) {
                    Some(p) => since.sequence == 0 || p.sequence > since.sequence,
                    None => false,
                };
                if !after || self.shared.is_unwanted(&record) {
                    continue;
                }
                messages.push(decode_message(channel, &key, &record)?);
            }
            if !full {
                return Ok(HistoryPage {
                    messages,
                    complete: true,
                });
            }
            previous = last.clone();
            start = last;
        }
        Ok(HistoryPage {
            messages,
            complete: false,
        })
    }
}
