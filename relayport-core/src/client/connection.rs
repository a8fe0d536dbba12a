//! Connection lifecycle: connect (lazily or on demand), the backoff schedule, a lost link and
//! its teardown, disconnect and close. A lost link's `disconnect` and every `connect` run off
//! the loop; a retry starts only once the teardown is done, so the two never overlap on the
//! provider.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::{Instant, timeout};
use tracing::warn;

use crate::client::command::Reply;
use crate::client::driver::{Actor, closed_error};
use crate::client::ops::{Done, Pending};
use crate::error::{RealtimeError, Result};
use crate::provider::{CloseReason, EventSink, Reconnect, Session};
use crate::state::{ClientEvent, ConnectionState};

impl Actor {
    pub(super) fn maybe_lazy_connect(&mut self) {
        if self.cfg.lazy_connect
            && self.state() == ConnectionState::Initialized
            && self.retry_at.is_none()
        {
            self.retry_at = Some(Instant::now());
        }
    }

    pub(super) fn on_connect(&mut self, reply: Reply) {
        match self.state() {
            ConnectionState::Connected => {
                let _ = reply.send(Ok(()));
            }
            ConnectionState::Closed => {
                let _ = reply.send(Err(closed_error()));
            }
            state => {
                self.connect_waiters.push(reply);
                if self.retry_at.is_none() && !self.connecting {
                    if state.is_terminal() {
                        self.failed = 0;
                        self.retry = 0;
                    }
                    self.retry_at = Some(Instant::now());
                }
            }
        }
    }

    /// Starts one connection attempt off the loop.
    pub(super) fn start_connect(&mut self) {
        if self.connecting || self.session.is_some() {
            return;
        }
        self.set_state(ConnectionState::Connecting);
        self.generation += 1;
        self.connecting = true;
        self.early_close = None;
        let sink = EventSink::routed(
            self.events_in_tx.clone(),
            self.generation,
            self.router.clone(),
        );
        let limit = self.cfg.connect_timeout;
        let provider = self.provider.clone();
        self.spawn_call(Pending::Connect, async move {
            Done::Connect(match timeout(limit, provider.connect(sink)).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = provider.disconnect().await;
                    Err(RealtimeError::timeout("connect", limit))
                }
            })
        });
    }

    pub(super) fn on_connect_done(&mut self, result: Result<Session>) {
        self.connecting = false;
        match result {
            Ok(session) => {
                self.on_connected(session);
                if let Some(reason) = self.early_close.take() {
                    self.link_lost(reason);
                }
            }
            Err(e) => self.on_connect_failed(e),
        }
    }

    fn on_connect_failed(&mut self, error: RealtimeError) {
        warn!(%error, "connection attempt failed");
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Err(error.clone()));
        }
        if !error.is_retryable() {
            self.fail(error);
            return;
        }
        self.failed += 1;
        if self.failed >= self.cfg.backoff.max_attempts {
            self.give_up();
            return;
        }
        self.schedule_retry(Reconnect::Backoff);
    }

    fn schedule_retry(&mut self, how: Reconnect) {
        // An immediate attempt does not use up a step of the backoff schedule: if the server
        // that asked for it is not back yet, the next retry waits the first step, not the second.
        let (attempt, delay) = match how {
            Reconnect::Immediately => (self.retry + 1, Duration::ZERO),
            _ => {
                self.retry += 1;
                (
                    self.retry,
                    self.cfg.backoff.delay(self.retry, &mut self.rng),
                )
            }
        };
        self.retry_at = Some(Instant::now() + delay);
        self.set_state(ConnectionState::Reconnecting {
            attempt,
            retry_in: delay,
        });
    }

    fn on_connected(&mut self, session: Session) {
        self.failed = 0;
        self.retry = 0;
        let limit = [
            self.cfg.max_payload,
            Some(self.caps.max_payload),
            session.max_payload,
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(self.caps.max_payload);
        self.max_payload.store(limit, Ordering::Relaxed);
        let interval = session
            .heartbeat_interval
            .unwrap_or(self.cfg.heartbeat_interval);
        self.next_ping = Some(Instant::now() + interval);
        self.router.table().echo.connected(&session.connection_id);
        self.session = Some(session);
        self.set_state(ConnectionState::Connected);
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Ok(()));
        }
        self.resubscribe_all();
        self.flush_outbox();
    }

    /// A link event arrived for the current generation: a close before `connect` returned is
    /// applied once it has.
    pub(super) fn on_closed(&mut self, reason: CloseReason) {
        if self.session.is_none() && self.connecting {
            self.early_close = Some(reason);
            return;
        }
        // Calls that completed before the close count; one of them may itself have found the
        // link broken, in which case a fatal close still ends the retries.
        self.reap_completed();
        if self.session.is_none() {
            if let Reconnect::Never(error) = reason.reconnect {
                self.fail(error);
            }
            return;
        }
        self.link_lost(reason);
    }

    /// The link is gone: cancel its calls, tear it down off the loop, and reconnect as the
    /// reason says.
    pub(super) fn link_lost(&mut self, reason: CloseReason) {
        if self.session.take().is_none() {
            return;
        }
        warn!(code = ?reason.code, message = %reason.message, "link lost");
        self.emit(ClientEvent::LinkLost {
            code: reason.code,
            message: reason.message.clone(),
        });
        // Whatever still completes from this link is stale from now on.
        self.generation += 1;
        self.cancel_calls(None);
        let provider = self.provider.clone();
        self.tearing_down = true;
        self.spawn_call(Pending::Teardown, async move {
            let _ = provider.disconnect().await;
            Done::Teardown
        });
        self.next_ping = None;
        self.typing.clear();
        for entry in self.channels.values_mut() {
            entry.established = false;
            entry.synced = false;
        }
        self.failed = 0;
        self.retry = 0;
        match reason.reconnect {
            Reconnect::Never(error) => self.fail(error),
            how => self.schedule_retry(how),
        }
    }

    /// Fails every pending operation with `error`.
    pub(super) fn fail_pending(&mut self, error: &RealtimeError) {
        for w in self.connect_waiters.drain(..) {
            let _ = w.send(Err(error.clone()));
        }
        for entry in self.channels.values_mut() {
            for w in entry.waiters.drain(..) {
                let _ = w.send(Err(error.clone()));
            }
        }
        for p in self.outbox.drain() {
            if let Some(reply) = p.reply {
                let _ = reply.send(Err(error.clone()));
            }
        }
    }

    fn fail(&mut self, error: RealtimeError) {
        self.retry_at = None;
        self.fail_pending(&error);
        self.set_state(ConnectionState::Failed(error));
    }

    fn give_up(&mut self) {
        self.retry_at = None;
        self.set_state(ConnectionState::PermanentlyDisconnected);
        if let Some(e) = self.terminal_error() {
            self.fail_pending(&e);
        }
    }

    /// Closes the link at the application's request and waits until the provider stopped.
    pub(super) async fn drop_link(&mut self) {
        self.drop_link_with(None).await;
    }

    async fn drop_link_with(&mut self, terminal: Option<&RealtimeError>) {
        self.reap_completed();
        self.session = None;
        self.retry_at = None;
        self.next_ping = None;
        self.early_close = None;
        self.typing.clear();
        self.cancel_calls(terminal);
        // The application ends the session: the protocol's goodbye.
        let _ = self.provider.goodbye().await;
        // Anything still in flight from this link is stale from now on.
        self.generation += 1;
        for entry in self.channels.values_mut() {
            entry.established = false;
            entry.synced = false;
        }
    }

    pub(super) async fn shut_down(&mut self, error: RealtimeError) {
        self.drop_link_with(Some(&error)).await;
        self.fail_pending(&error);
        self.channels.clear();
        self.router.table().clear();
        self.set_state(ConnectionState::Closed);
    }
}
