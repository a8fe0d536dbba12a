//! The Ably side of one link: the state shared between the provider and the link's reader,
//! and the [`Dispatcher`] that turns server frames into events (`ACK`/`NACK`, `ATTACHED`,
//! `MESSAGE`, `PRESENCE`, `SYNC`, `AUTH`, `DISCONNECTED`, `ERROR`, …) and reports why the link
//! closed. The WebSocket, TLS, writer and reader are `relayport_core::transport`'s.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use relayport_core::transport::{self, Dispatcher, Flow as LinkFlow, Frame, LinkSender, PeerClose};
use relayport_core::{
    Channel, CloseReason, EventSink, Message, Position, ProviderEvent, RealtimeError, Result,
};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::channels::from_ably_name;
use crate::config::AblyConfig;
use crate::encoding::decode;
use crate::errors::{
    Action, Context, classify, not_renewable, refused_authorization, to_realtime_error,
};
use crate::presence::{Entry, PresenceMap};
use crate::protocol::{
    AuthDetails, ConnectionDetails, ErrorInfo, ProtocolMessage, WireMessage, action, flags,
};

/// The outcome of a publish: the serials the ACK reported, or the NACK's error.
pub type PublishOutcome = Result<Vec<Option<String>>>;

/// An unacknowledged protocol message, kept across transports for resending (`RTN19a`).
pub(crate) struct Pending {
    pub channel: String,
    pub frame: ProtocolMessage,
    pub waiter: Option<oneshot::Sender<PublishOutcome>>,
}

/// What the client knows of one channel.
#[derive(Default)]
pub(crate) struct ChannelState {
    /// The last channelSerial seen (MESSAGE, PRESENCE, ATTACHED), sent with ATTACH.
    pub serial: Option<String>,
    pub attach_waiter: Option<oneshot::Sender<Result<u64>>>,
    pub detach_waiter: Option<oneshot::Sender<Result<()>>>,
    pub attached: bool,
    /// Attached at some point on an earlier or the current link (cleared on DETACHED).
    pub ever_attached: bool,
    pub presence: PresenceMap,
    /// The data this connection entered with, while the server still holds it.
    pub entered: Option<Value>,
    /// A channel authorization was applied for this channel on the current connection (kept
    /// across a successful resume, cleared when the connection id changes).
    pub authorized: bool,
}

/// State shared by the provider and its reader task.
#[derive(Default)]
pub(crate) struct Shared {
    pub connection_id: Option<String>,
    pub connection_key: Option<String>,
    pub msg_serial: u64,
    pub pending: BTreeMap<u64, Pending>,
    pub channels: HashMap<String, ChannelState>,
    pub pings: HashMap<String, oneshot::Sender<()>>,
    pub closed_waiter: Option<oneshot::Sender<()>>,
    /// A goodbye (`CLOSE`) is under way: the end of the link is not news to report.
    pub goodbye: bool,
    pub auth_waiter: Option<oneshot::Sender<Result<()>>>,
    /// An AUTH in flight (in-band re-authentication): a connection error that arrives now is
    /// the answer to it, and a fatal one must reach the AUTH's caller as such.
    pub authorizing: bool,
    pub details: ConnectionDetails,
    /// The live link's sender; `None` once the link is down.
    pub writer: Option<LinkSender>,
    /// `true` while the current link is up; a new channel per link.
    pub link_up: Option<watch::Sender<bool>>,
    /// When the last link went down (for `connectionStateTtl`).
    pub disconnected_at: Option<Instant>,
    /// When the token was last renewed because of a token error.
    pub last_renewal: Option<Instant>,
    /// The current token (token auth).
    pub token: Option<String>,
    /// The token was rejected: fetch a new one before the next connect.
    pub token_stale: bool,
    /// A fatal error ended the connection: forget its state.
    pub failed: bool,
    /// The current link resumed the previous connection.
    pub resumed: bool,
    pub aux_tasks: Vec<JoinHandle<()>>,
}

impl Shared {
    /// Sends a frame on the live link.
    pub fn send(&self, frame: &ProtocolMessage) -> Result<()> {
        let writer = self
            .writer
            .as_ref()
            .ok_or_else(|| RealtimeError::Connection("not connected".into()))?;
        writer
            .send_text(frame.to_json())
            .map_err(|_| RealtimeError::Connection("the link is closed".into()))
    }

    /// Marks the link down: waiters of calls in flight are released; publishes stay pending
    /// (with their waiters) for resending on the next link.
    pub fn link_down(&mut self) {
        self.writer = None;
        self.authorizing = false;
        self.disconnected_at = Some(Instant::now());
        if let Some(up) = self.link_up.take() {
            let _ = up.send(false);
        }
        self.pings.clear();
        if let Some(w) = self.closed_waiter.take() {
            let _ = w.send(());
        }
        if let Some(w) = self.auth_waiter.take() {
            let _ = w.send(Err(RealtimeError::Connection(
                "link lost during AUTH".into(),
            )));
        }
        for ch in self.channels.values_mut() {
            ch.attached = false;
            if let Some(w) = ch.attach_waiter.take() {
                let _ = w.send(Err(RealtimeError::Connection(
                    "link lost during ATTACH".into(),
                )));
            }
            if let Some(w) = ch.detach_waiter.take() {
                let _ = w.send(Err(RealtimeError::Connection(
                    "link lost during DETACH".into(),
                )));
            }
        }
    }
}

/// Locks the shared state; a poisoned lock (a panic elsewhere) still yields the data.
pub(crate) fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    transport::lock(shared)
}

/// A position from an Ably timeserial `<ms>-<counter>@<series>:<index>`: sequence =
/// ms × 10⁶ + counter × 10³ + index (counter and index below 1000), or `None`.
pub fn position_from_serial(serial: &str) -> Option<Position> {
    let (time, rest) = serial.split_once('-')?;
    let (counter, rest) = rest.split_once('@')?;
    let index = rest.rsplit_once(':').map_or("0", |(_, i)| i);
    let ms: u64 = time.parse().ok()?;
    let counter: u64 = counter.parse().ok()?;
    let index: u64 = index.parse().ok()?;
    if counter >= 1000 || index >= 1000 || ms > u64::MAX / 1_000_000 - 1 {
        return None;
    }
    Some(Position::new(ms * 1_000_000 + counter * 1000 + index))
}

/// Converts one received message to the core's type (filling id, connectionId and timestamp
/// from the protocol message, `TM2a/c/f`). A payload that does not decode is delivered as far
/// as it decoded, and the failure is returned alongside.
pub(crate) fn to_message(
    channel: &Channel,
    pm_id: Option<&str>,
    pm_conn: Option<&str>,
    pm_ts: Option<i64>,
    index: usize,
    m: WireMessage,
) -> (Message, Option<RealtimeError>) {
    let id = m.id.or_else(|| pm_id.map(|p| format!("{p}:{index}")));
    let connection_id = m.connection_id.or(pm_conn.map(str::to_owned));
    let timestamp = m.timestamp.or(pm_ts).and_then(|t| u64::try_from(t).ok());
    let (data, error) = match decode(m.data, m.encoding.as_deref()) {
        Ok(p) => (p.into_core(), None),
        Err(u) => (
            u.partial.clone().into_core(),
            Some(RealtimeError::Protocol(format!(
                "message {:?} on `{channel}`: {} (left encoded as `{}`)",
                id, u.reason, u.remaining
            ))),
        ),
    };
    let mut message = Message::new(channel.clone(), m.name.unwrap_or_default(), data);
    message.position = m.serial.as_deref().and_then(position_from_serial);
    message.id = id;
    message.timestamp = timestamp;
    message.sender = m.client_id.or(connection_id);
    (message, error)
}

/// Everything the reader needs.
pub(crate) struct Reader {
    pub shared: Arc<Mutex<Shared>>,
    pub cfg: Arc<AblyConfig>,
    pub sink: EventSink,
    pub updates: Arc<watch::Sender<u64>>,
    /// When the server was last heard from (any frame): what the core's liveness check reads.
    pub activity: Arc<watch::Sender<Instant>>,
    pub connected_at: Instant,
    /// For token requests the server asks for (`AUTH`).
    pub link_config: transport::LinkConfig,
}

enum Flow {
    Continue,
    /// The link ends, for this reason.
    Close(CloseReason),
}

impl Dispatcher for Reader {
    fn on_frame(&mut self, frame: Frame<'_>, link: &LinkSender) -> LinkFlow {
        self.activity.send_replace(Instant::now());
        let flow = match frame {
            Frame::Binary(_) => {
                self.sink.error(
                    None,
                    RealtimeError::Protocol("binary frame on a JSON connection".into()),
                );
                Flow::Close(CloseReason::retry(None, "protocol error: binary frame"))
            }
            Frame::Text(text) => match ProtocolMessage::parse(text) {
                Ok(pm) => self.handle(pm),
                Err(e) => {
                    let err = RealtimeError::Protocol(format!("malformed frame: {e}"));
                    self.sink.error(None, err);
                    Flow::Close(CloseReason::retry(
                        None,
                        format!("protocol error: malformed frame: {e}"),
                    ))
                }
            },
        };
        match flow {
            Flow::Continue => LinkFlow::Continue,
            Flow::Close(reason) => {
                lock(&self.shared).link_down();
                // The link ends here: the writer sends the close frame after what is queued.
                let _ = link.send_close(1000, "");
                self.sink.closed(reason);
                LinkFlow::Stop
            }
        }
    }

    fn on_close(&mut self, close: PeerClose) {
        let goodbye = {
            let mut s = lock(&self.shared);
            s.link_down();
            s.goodbye
        };
        if goodbye {
            return; // the server ended the link after our CLOSE: nothing to report
        }
        let why = if close.clean {
            format!("the server closed the transport ({close})")
        } else {
            format!("transport error: {close}")
        };
        let reason = self.dropped(&why);
        self.sink.closed(reason);
    }
}

impl Reader {
    /// An unclean drop: reconnect at once if the link had been up at least a second (ably-js
    /// rate-limits immediate reconnects the same way), otherwise with backoff.
    fn dropped(&self, why: &str) -> CloseReason {
        if self.connected_at.elapsed() >= Duration::from_secs(1) {
            CloseReason::retry_now(Some(80003), why)
        } else {
            CloseReason::retry(Some(80003), why)
        }
    }

    fn channel(&self, name: &str) -> Option<Channel> {
        match from_ably_name(name) {
            Ok(c) => Some(c),
            Err(e) => {
                self.sink.error(None, e);
                None
            }
        }
    }

    fn handle(&self, pm: ProtocolMessage) -> Flow {
        match pm.action {
            action::HEARTBEAT => {
                if let Some(id) = &pm.id
                    && let Some(w) = lock(&self.shared).pings.remove(id)
                {
                    let _ = w.send(());
                }
            }
            action::ACK | action::NACK => self.on_ack(&pm),
            action::CONNECTED => {
                let mut s = lock(&self.shared);
                if let Some(d) = pm.connection_details {
                    if d.connection_key.is_some() {
                        s.connection_key = d.connection_key.clone();
                    }
                    s.details = d;
                }
                s.authorizing = false;
                if let Some(w) = s.auth_waiter.take() {
                    let _ = w.send(Ok(()));
                }
                drop(s);
                self.updates.send_modify(|n| *n += 1);
            }
            action::DISCONNECTED => {
                let error = pm
                    .error
                    .unwrap_or_else(|| ErrorInfo::new(80003, 400, "disconnected"));
                return Flow::Close(self.on_error(Context::DisconnectedWhileConnected, &error));
            }
            action::ERROR => match pm.channel {
                None => {
                    let error = pm
                        .error
                        .unwrap_or_else(|| ErrorInfo::new(80000, 400, "error"));
                    return Flow::Close(self.on_error(Context::ConnectionError, &error));
                }
                Some(name) => self.on_channel_error(&name, pm.error.unwrap_or_default()),
            },
            action::CLOSED => {
                if let Some(w) = lock(&self.shared).closed_waiter.take() {
                    // The answer to our CLOSE: the goodbye (`Link::close`) ends the link.
                    let _ = w.send(());
                    return Flow::Continue;
                }
                return Flow::Close(CloseReason::fatal(
                    Some(80017),
                    RealtimeError::Closed("ably connection closed (80017)".into()),
                ));
            }
            action::ATTACHED => self.on_attached(pm),
            action::DETACHED => self.on_detached(pm),
            action::MESSAGE => self.on_message(pm),
            action::PRESENCE | action::SYNC => self.on_presence(pm),
            action::AUTH => self.on_auth_request(),
            other => debug!(action = other, "ignoring unknown action"),
        }
        Flow::Continue
    }

    fn on_ack(&self, pm: &ProtocolMessage) {
        let (Some(first), count) = (pm.msg_serial, pm.count.unwrap_or(1)) else {
            self.sink.error(
                None,
                RealtimeError::Protocol("ACK/NACK without msgSerial".into()),
            );
            return;
        };
        let mut s = lock(&self.shared);
        // Serials the server skipped are treated as refused (`protocol.md`, ACK protocol).
        let skipped: Vec<u64> = s.pending.range(..first).map(|(k, _)| *k).collect();
        for serial in skipped {
            if let Some(p) = s.pending.remove(&serial) {
                let err = RealtimeError::Protocol(format!(
                    "msgSerial {serial} was skipped by the server's acknowledgement of {first}"
                ));
                let unheard = match p.waiter {
                    Some(w) => w.send(Err(err)).err(),
                    None => Some(Err(err)),
                };
                if let Some(Err(e)) = unheard {
                    self.sink.error(from_ably_name(&p.channel).ok(), e);
                }
            }
        }
        for i in 0..count {
            let Some(p) = s.pending.remove(&(first + i)) else {
                continue; // already acknowledged: ignored
            };
            let outcome = if pm.action == action::ACK {
                let serials = pm
                    .res
                    .as_ref()
                    .and_then(|r| r.get(i as usize))
                    .map(|r| r.serials.clone())
                    .unwrap_or_default();
                Ok(serials)
            } else {
                let info = pm
                    .error
                    .clone()
                    .unwrap_or_else(|| ErrorInfo::new(50000, 500, "NACK"));
                Err(to_realtime_error(&info, Some(&p.channel)))
            };
            // Nobody waits any more (the publish returned when its link dropped): a refusal
            // is reported through the sink instead.
            let unheard = match p.waiter {
                Some(w) => w.send(outcome).err(),
                None => Some(outcome),
            };
            if let Some(Err(e)) = unheard {
                let ch = from_ably_name(&p.channel).ok();
                self.sink.error(ch, e);
            }
        }
    }

    /// A connection-level error: what the link's close reason is.
    fn on_error(&self, context: Context, error: &ErrorInfo) -> CloseReason {
        let reason = self.close_reason(context, error);
        // An AUTH in flight learns the real outcome (a fatal refusal stays fatal), not a
        // retryable "link lost".
        if let Some(w) = lock(&self.shared).auth_waiter.take() {
            let outcome = match &reason.reconnect {
                relayport_core::Reconnect::Never(e) => e.clone(),
                _ => RealtimeError::Connection(reason.message.clone()),
            };
            let _ = w.send(Err(outcome));
        }
        reason
    }

    fn close_reason(&self, context: Context, error: &ErrorInfo) -> CloseReason {
        let code = Some(error.code());
        let message = format!("ably error {}: {}", error.code(), error.text());
        let authorizing = lock(&self.shared).authorizing;
        let action = if authorizing && refused_authorization(error) {
            Action::Fatal
        } else {
            classify(context, error)
        };
        match action {
            Action::RenewToken => {
                let mut s = lock(&self.shared);
                if !self.cfg.credentials.renewable() {
                    s.failed = true;
                    return CloseReason::fatal(Some(40171), not_renewable(error));
                }
                let now = Instant::now();
                if s.last_renewal
                    .is_some_and(|t| now.duration_since(t) < self.cfg.min_renewal_interval)
                {
                    s.failed = true;
                    return CloseReason::fatal(
                        code,
                        RealtimeError::Unauthorized(format!(
                            "{message}: rejected again right after a renewal; not renewing in a loop"
                        )),
                    );
                }
                s.last_renewal = Some(now);
                s.token_stale = true;
                CloseReason::retry_now(code, message)
            }
            Action::ReconnectNow => CloseReason::retry_now(code, message),
            Action::Reconnect | Action::ResumeFailed => CloseReason::retry(code, message),
            Action::Fatal => {
                let mut s = lock(&self.shared);
                s.failed = true;
                CloseReason::fatal(code, to_realtime_error(error, None))
            }
        }
    }

    fn on_channel_error(&self, name: &str, error: ErrorInfo) {
        let err = to_realtime_error(&error, Some(name));
        let mut s = lock(&self.shared);
        let waiter = s
            .channels
            .get_mut(name)
            .and_then(|c| c.attach_waiter.take());
        s.channels.remove(name);
        drop(s);
        match waiter {
            Some(w) => {
                let _ = w.send(Err(err));
            }
            None => {
                if let Some(channel) = self.channel(name) {
                    self.sink.emit(ProviderEvent::SubscriptionLost {
                        channel,
                        error: err,
                    });
                }
            }
        }
    }

    fn on_attached(&self, pm: ProtocolMessage) {
        let Some(name) = pm.channel.clone() else {
            return;
        };
        let Some(channel) = self.channel(&name) else {
            return;
        };
        let flags_value = pm.flags.unwrap_or(0);
        let mut s = lock(&self.shared);
        let resumed_link = s.resumed;
        let ch = s.channels.entry(name.clone()).or_default();
        if pm.channel_serial.is_some() {
            ch.serial = pm.channel_serial.clone();
        }
        let was_attached = ch.attached;
        let attached_before = ch.ever_attached;
        ch.attached = true;
        ch.ever_attached = true;
        if !pm.has_flag(flags::RESUMED) {
            // Continuity lost: the server no longer holds our presence entry (RTP17i).
            ch.entered = None;
        }
        let presence_change = if pm.has_flag(flags::HAS_PRESENCE) {
            None
        } else if channel.kind() == relayport_core::ChannelKind::Presence {
            Some(ch.presence.clear())
        } else {
            None
        };
        let waiter = ch.attach_waiter.take();
        drop(s);
        if let Some(change) = presence_change {
            self.sink.presence(channel.clone(), change);
        }
        // Continuity lost: an unsolicited ATTACHED without RESUMED (RTL12), or a re-attach
        // without RESUMED on a resumed connection, where the core expects no gap.
        let lost = !pm.has_flag(flags::RESUMED)
            && if waiter.is_some() {
                resumed_link && attached_before
            } else {
                was_attached
            };
        if let Some(w) = waiter {
            let _ = w.send(Ok(flags_value));
        }
        if lost {
            // The core recovers the gap from history, or raises `SyncRequired`.
            self.sink.emit(ProviderEvent::ContinuityLost {
                channel,
                reason: RealtimeError::Provider {
                    provider: crate::PROVIDER_NAME,
                    code: pm.error.as_ref().map_or(90003, ErrorInfo::code),
                    message: "channel continuity lost (ATTACHED without RESUMED)".into(),
                    retryable: true,
                    source: None,
                },
            });
        }
    }

    fn on_detached(&self, pm: ProtocolMessage) {
        let Some(name) = pm.channel.clone() else {
            return;
        };
        let mut s = lock(&self.shared);
        let Some(ch) = s.channels.get_mut(&name) else {
            return;
        };
        if let Some(w) = ch.detach_waiter.take() {
            s.channels.remove(&name);
            let _ = w.send(Ok(()));
            return;
        }
        if let Some(w) = ch.attach_waiter.take() {
            let info = pm
                .error
                .unwrap_or_else(|| ErrorInfo::new(90000, 400, "detached"));
            let _ = w.send(Err(to_realtime_error(&info, Some(&name))));
            return;
        }
        // Server-initiated DETACHED: re-attach at once (RTL13a), one attempt.
        ch.attached = false;
        let mut attach = ProtocolMessage::new(action::ATTACH);
        attach.channel = Some(name.clone());
        attach.channel_serial = ch.serial.clone();
        if let Err(e) = s.send(&attach) {
            warn!(%e, "re-attach after DETACHED failed");
        }
    }

    fn on_message(&self, pm: ProtocolMessage) {
        let Some(name) = pm.channel.clone() else {
            return;
        };
        let Some(channel) = self.channel(&name) else {
            return;
        };
        if pm.channel_serial.is_some() {
            let mut s = lock(&self.shared);
            s.channels.entry(name).or_default().serial = pm.channel_serial.clone();
        }
        for (i, m) in pm.messages.unwrap_or_default().into_iter().enumerate() {
            let (message, error) = to_message(
                &channel,
                pm.id.as_deref(),
                pm.connection_id.as_deref(),
                pm.timestamp,
                i,
                m,
            );
            if let Some(e) = error {
                self.sink.error(Some(channel.clone()), e);
            }
            self.sink.message(message);
        }
    }

    fn on_presence(&self, pm: ProtocolMessage) {
        let Some(name) = pm.channel.clone() else {
            return;
        };
        let Some(channel) = self.channel(&name) else {
            return;
        };
        let mut entries = Vec::new();
        for (i, p) in pm.presence.unwrap_or_default().into_iter().enumerate() {
            let Some(client_id) = p.client_id else {
                self.sink.error(
                    Some(channel.clone()),
                    RealtimeError::Protocol("presence message without clientId".into()),
                );
                continue;
            };
            let connection_id = p
                .connection_id
                .or_else(|| pm.connection_id.clone())
                .unwrap_or_default();
            let data = match decode(p.data, p.encoding.as_deref()) {
                Ok(d) => d.into_value(),
                Err(u) => {
                    self.sink.error(
                        Some(channel.clone()),
                        RealtimeError::Protocol(format!(
                            "presence data #{i} of {client_id}: {} (left encoded as `{}`)",
                            u.reason, u.remaining
                        )),
                    );
                    u.partial.into_value()
                }
            };
            entries.push((
                p.action.unwrap_or(-1),
                Entry {
                    client_id,
                    connection_id,
                    data,
                },
            ));
        }
        let mut s = lock(&self.shared);
        let ch = s.channels.entry(name).or_default();
        let changes = if pm.action == action::SYNC {
            ch.presence
                .sync_page(pm.channel_serial.as_deref(), entries)
                .into_iter()
                .collect::<Vec<_>>()
        } else {
            if pm.channel_serial.is_some() {
                ch.serial = pm.channel_serial.clone();
            }
            entries
                .into_iter()
                .filter_map(|(a, e)| ch.presence.apply(a, e))
                .collect()
        };
        drop(s);
        for change in changes {
            self.sink.presence(channel.clone(), change);
        }
    }

    /// The server asks for a new token: fetch one and send it in-band (`RTN22`).
    fn on_auth_request(&self) {
        let shared = self.shared.clone();
        let cfg = self.cfg.clone();
        let sink = self.sink.clone();
        let link_config = self.link_config.clone();
        let task = tokio::spawn(async move {
            match crate::auth::fetch_token(&cfg, &link_config).await {
                Ok(Some(token)) => {
                    let mut s = lock(&shared);
                    s.token = Some(token.clone());
                    let mut frame = ProtocolMessage::new(action::AUTH);
                    frame.auth = Some(AuthDetails {
                        access_token: Some(token),
                    });
                    if let Err(e) = s.send(&frame) {
                        debug!(%e, "AUTH not sent: link down");
                    }
                }
                Ok(None) => debug!("AUTH request on a basic-auth connection ignored"),
                Err(e) => {
                    sink.error(None, e);
                }
            }
        });
        lock(&self.shared).aux_tasks.push(task);
    }
}
