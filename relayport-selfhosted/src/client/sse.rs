//! The fallback transport: Server-Sent Events (`GET /sse?channel=…`, one stream per channel)
//! for receiving, `POST /publish` for publishing, `GET /health` for the heartbeat.
//!
//! Its limits, by construction of the transport:
//! - public channels only: an SSE stream has no socket id to sign a private or presence
//!   subscription with, so those are refused with `Unsupported`;
//! - no presence (enter, update, leave, members);
//! - publishing needs a publish token ([`crate::client::SelfHostedProvider::with_publish_token`]),
//!   otherwise it is `Unsupported`;
//! - recovery is by `Last-Event-ID`: the server replays what is still in history after it.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::StreamExt;
use relayport_core::{
    Channel, ChannelKind, CloseReason, EventSink, OutboundMessage, Position, RealtimeError,
    Recovery, Result, SubscribeOptions, Subscribed,
};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::debug;
use url::Url;

use crate::client::bounded;
use crate::client::errors::{CodeContext, close_reason, error_for_code};
use crate::client::provider::endpoint;
use crate::client::publisher::check_response;
use crate::protocol::{MessageFrame, ServerFrame};

pub use relayport_core::transport::sse::{SseError, SseEvent, SseParser};

/// The `Last-Event-ID` that resumes `channel` after `position`: the server's cursor format,
/// `channel~epoch~seq`. `None` when the position has no epoch (nothing to resume from).
pub fn last_event_id(channel: &Channel, position: &Position) -> Option<String> {
    let epoch = position.epoch.as_ref()?;
    Some(format!("{channel}~{epoch}~{}", position.sequence))
}

/// The SSE "link": the streams of the subscribed channels.
pub(crate) struct SseLink {
    http: reqwest::Client,
    base: Url,
    token: Option<String>,
    sink: EventSink,
    connection_id: String,
    streams: HashMap<Channel, JoinHandle<()>>,
}

impl SseLink {
    /// Checks that the server answers (`GET /health`) and starts an empty link.
    pub(crate) async fn open(
        http: reqwest::Client,
        base: Url,
        token: Option<String>,
        sink: EventSink,
        wait: Option<Duration>,
    ) -> Result<Self> {
        let link = Self {
            http,
            base,
            token,
            sink,
            connection_id: format!("sse-{:016x}", fastrand::u64(..)),
            streams: HashMap::new(),
        };
        link.ping(wait).await?;
        Ok(link)
    }

    /// A local id for this link (SSE has no server socket id).
    pub(crate) fn connection_id(&self) -> String {
        self.connection_id.clone()
    }

    /// One round trip to `GET /health`; any HTTP answer counts as alive.
    pub(crate) async fn ping(&self, wait: Option<Duration>) -> Result<()> {
        let url = endpoint(&self.base, "health")?;
        let send = self.http.get(url).send();
        bounded("health check", wait, async {
            send.await.map_err(connection)
        })
        .await
        .map(|_| ())
    }

    /// Opens the channel's stream and waits for the server to accept it. With `since`, the
    /// stream resumes after it (`Last-Event-ID`): the answer says whether it recovered.
    pub(crate) async fn subscribe(
        &mut self,
        channel: &Channel,
        options: &SubscribeOptions,
        wait: Option<Duration>,
    ) -> Result<Subscribed> {
        if channel.kind() != ChannelKind::Public {
            return Err(RealtimeError::Unsupported(format!(
                "`{channel}` over the SSE fallback: only public channels can be received \
                 without a WebSocket"
            )));
        }
        let name = channel.to_string();
        let mut url = endpoint(&self.base, "sse")?;
        url.query_pairs_mut().append_pair("channel", &name);
        let mut request = self.http.get(url).header("accept", "text/event-stream");
        let resume = options
            .since
            .as_ref()
            .and_then(|since| last_event_id(channel, since));
        let asked = resume.is_some();
        let since = options.since.as_ref().filter(|_| asked).map(|p| p.sequence);
        if let Some(id) = resume {
            request = request.header("last-event-id", id);
        }
        let send = request.send();
        let response = bounded("SSE subscribe", wait, async {
            send.await.map_err(connection)
        })
        .await?;
        let ctx = CodeContext {
            channel: Some(&name),
            ..CodeContext::default()
        };
        let response = check_response(response, ctx).await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(read_stream(
            response,
            self.sink.clone(),
            channel.clone(),
            since,
            ready_tx,
        ));
        if let Some(old) = self.streams.insert(channel.clone(), task) {
            old.abort();
        }
        let answer = bounded("SSE `subscribed` event", wait, async {
            ready_rx.await.unwrap_or_else(|_| {
                Err(RealtimeError::Connection(
                    "the SSE stream ended before `subscribed`".into(),
                ))
            })
        })
        .await;
        // A `since` without an epoch could not be resumed: the application must resync.
        match answer {
            Ok(mut subscribed) if options.since.is_some() && !asked => {
                subscribed.recovery = Recovery::Gap;
                Ok(subscribed)
            }
            other => other,
        }
    }

    /// Stops the channel's stream.
    pub(crate) fn unsubscribe(&mut self, channel: &Channel) {
        if let Some(task) = self.streams.remove(channel) {
            task.abort();
        }
    }

    /// Publishes over `POST /publish` with the configured token.
    pub(crate) async fn publish(
        &self,
        message: &OutboundMessage,
        wait: Option<Duration>,
    ) -> Result<()> {
        let Some(token) = &self.token else {
            return Err(RealtimeError::Unsupported(
                "publishing over the SSE fallback without a publish token".into(),
            ));
        };
        let url = endpoint(&self.base, "publish")?;
        let name = message.channel.to_string();
        let body = crate::protocol::publish_body(message);
        let send = self.http.post(url).bearer_auth(token).json(&body).send();
        let response = bounded("publish", wait, async { send.await.map_err(connection) }).await?;
        let ctx = CodeContext {
            channel: Some(&name),
            payload_size: Some(message.payload_size()),
            limit: None,
        };
        check_response(response, ctx).await.map(|_| ())
    }

    /// Stops every stream.
    pub(crate) fn close(self) {
        drop(self);
    }
}

impl Drop for SseLink {
    fn drop(&mut self) {
        for task in self.streams.values() {
            task.abort();
        }
    }
}

/// Reads one channel's stream and answers its `subscribe`.
struct StreamReader {
    sink: EventSink,
    channel: Channel,
    /// The sequence resumed after, when resuming.
    since: Option<u64>,
    ready: Option<oneshot::Sender<Result<Subscribed>>>,
    /// An answer held until the replay up to this sequence has reached the sink.
    held: Option<(Subscribed, u64)>,
}

/// Reads one channel's stream until it ends; reports why through the sink.
async fn read_stream(
    response: reqwest::Response,
    sink: EventSink,
    channel: Channel,
    since: Option<u64>,
    ready: oneshot::Sender<Result<Subscribed>>,
) {
    let mut reader = StreamReader {
        sink,
        channel,
        since,
        ready: Some(ready),
        held: None,
    };
    let mut parser = SseParser::default();
    let mut body = response.bytes_stream();
    let channel = reader.channel.clone();
    let reason = 'read: loop {
        let chunk = match body.next().await {
            None => {
                break CloseReason::retry(None, format!("the SSE stream of `{channel}` ended"));
            }
            Some(Err(e)) => break CloseReason::retry(None, format!("SSE stream: {e}")),
            Some(Ok(chunk)) => chunk,
        };
        let events = match parser.feed(&chunk) {
            Ok(events) => events,
            // A server that sends an endless line or event is broken or hostile: drop the
            // stream and let the runtime reconnect (with backoff) rather than buffer it.
            Err(e) => break CloseReason::retry(None, format!("SSE stream of `{channel}`: {e}")),
        };
        for event in events {
            match reader.on_event(event) {
                Step::Continue => {}
                Step::Stop => return,
                Step::Closed(reason) => break 'read reason,
            }
        }
    };
    debug!(%channel, message = %reason.message, "SSE stream closed");
    if let Some(ready) = reader.ready.take() {
        let _ = ready.send(Err(RealtimeError::Connection(reason.message.clone())));
        return;
    }
    reader.sink.closed(reason);
}

/// What one SSE event means.
enum Step {
    /// Go on reading.
    Continue,
    /// Nobody listens to the sink any more: stop quietly.
    Stop,
    /// The server ended the stream with this reason.
    Closed(CloseReason),
}

fn step(alive: bool) -> Step {
    if alive { Step::Continue } else { Step::Stop }
}

impl StreamReader {
    fn answer(&mut self, result: Result<Subscribed>) {
        if let Some(tx) = self.ready.take() {
            let _ = tx.send(result);
        }
    }

    fn protocol_error(&self, what: String) -> bool {
        self.sink
            .error(Some(self.channel.clone()), RealtimeError::Protocol(what))
    }

    /// Handles one SSE event. The server sends `connected`, `subscribed`, `presence`, `error`
    /// and `frame` events as [`ServerFrame`] JSON, `message` events as [`MessageFrame`] JSON,
    /// and a last `close` event `{"code": …}` when it ends the stream.
    fn on_event(&mut self, event: SseEvent) -> Step {
        let frame = match event.event.as_str() {
            "message" => {
                serde_json::from_str::<MessageFrame>(&event.data).map(ServerFrame::Message)
            }
            "close" => {
                let code = serde_json::from_str::<Value>(&event.data)
                    .ok()
                    .and_then(|v| v.get("code").and_then(Value::as_u64))
                    .and_then(|c| u16::try_from(c).ok());
                return Step::Closed(close_reason(code, "the server closed the SSE stream"));
            }
            _ => serde_json::from_str::<ServerFrame>(&event.data),
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return step(
                    self.protocol_error(format!("malformed SSE event `{}`: {e}", event.event)),
                );
            }
        };
        let alive = match frame {
            ServerFrame::Message(m) => self.on_message(&m),
            ServerFrame::Subscribed {
                snapshot,
                recovered,
                messages,
                position,
                ..
            } => {
                match snapshot.as_ref().map(MessageFrame::to_message) {
                    Some(Ok(mut m)) => {
                        m.position = None;
                        self.sink.message(m);
                    }
                    Some(Err(e)) => {
                        self.sink.error(Some(self.channel.clone()), e);
                    }
                    None => {}
                }
                let recovery = match (self.since, recovered) {
                    (None, _) => Recovery::NotAttempted,
                    (Some(_), Some(true)) => Recovery::Recovered,
                    (Some(_), _) => Recovery::Gap,
                };
                let target = position.as_ref().map(|p| p.sequence);
                let subscribed = Subscribed { recovery, position };
                match (recovery, self.since, target) {
                    // The replay follows as `message` events: answer once it is through.
                    (Recovery::Recovered, Some(since), Some(target)) if since < target => {
                        self.held = Some((subscribed, target));
                    }
                    _ => self.answer(Ok(subscribed)),
                }
                let mut alive = !self.sink.is_closed();
                for m in &messages {
                    alive = self.on_message(m);
                }
                alive
            }
            ServerFrame::Error {
                code,
                message,
                channel,
                ..
            } => {
                let name = self.channel.to_string();
                let ctx = CodeContext {
                    channel: Some(&name),
                    ..CodeContext::default()
                };
                let error = error_for_code(&code, &message, channel.as_deref(), ctx);
                if self.ready.is_some() {
                    self.answer(Err(error));
                    !self.sink.is_closed()
                } else {
                    self.sink.error(Some(self.channel.clone()), error)
                }
            }
            ServerFrame::Presence { .. } => {
                self.protocol_error("a presence event on an SSE stream".into())
            }
            other => {
                debug!(?other, "SSE event ignored");
                !self.sink.is_closed()
            }
        };
        step(alive)
    }

    fn on_message(&mut self, m: &MessageFrame) -> bool {
        let message = match m.to_message() {
            Ok(message) => message,
            Err(e) => return self.protocol_error(e.to_string()),
        };
        let alive = self.sink.message(message);
        if let Some((_, target)) = &self.held
            && m.channel == self.channel.to_string()
            && m.seq >= *target
            && let Some((subscribed, _)) = self.held.take()
        {
            self.answer(Ok(subscribed));
        }
        alive
    }
}

/// A request that failed before any answer: the link is down.
fn connection(e: reqwest::Error) -> RealtimeError {
    RealtimeError::Connection(e.to_string())
}
