//! The client's connection states and events as [`Stream`]s, for `select!`/`StreamExt` code
//! that would rather not handle `watch` and `broadcast` receivers (and their `Lagged` errors).

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};

use crate::state::{ClientEvent, ConnectionState};

type Boxed<T> = Pin<Box<dyn Stream<Item = T> + Send>>;

/// The client's events as a stream; see
/// [`RealtimeClient::event_stream`](crate::RealtimeClient::event_stream).
///
/// A reader that falls behind by more than the event buffer gets one
/// [`ClientEvent::EventsLagged`] saying how many it missed, then the events that follow; the
/// stream ends when the client's runtime stops.
pub struct ClientEvents(Boxed<ClientEvent>);

impl ClientEvents {
    pub(crate) fn new(rx: broadcast::Receiver<ClientEvent>) -> Self {
        Self(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move {
                match rx.recv().await {
                    Ok(event) => Some((event, rx)),
                    Err(RecvError::Lagged(missed)) => {
                        Some((ClientEvent::EventsLagged { missed }, rx))
                    }
                    Err(RecvError::Closed) => None,
                }
            },
        )))
    }
}

impl Stream for ClientEvents {
    type Item = ClientEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for ClientEvents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientEvents")
    }
}

/// The connection state as a stream; see
/// [`RealtimeClient::state_stream`](crate::RealtimeClient::state_stream).
///
/// It yields the current state first, then the latest state after each change. States that
/// follow each other faster than the reader reads are coalesced to the latest (the `watch`
/// semantics); for every transition, in order, read [`ClientEvent::StateChanged`] from
/// [`ClientEvents`]. The stream ends when the client's runtime stops.
pub struct StateStream(Boxed<ConnectionState>);

impl StateStream {
    pub(crate) fn new(rx: watch::Receiver<ConnectionState>) -> Self {
        Self(Box::pin(futures_util::stream::unfold(
            (rx, true),
            |(mut rx, first)| async move {
                if !first && rx.changed().await.is_err() {
                    return None;
                }
                let state = rx.borrow_and_update().clone();
                Some((state, (rx, false)))
            },
        )))
    }
}

impl Stream for StateStream {
    type Item = ConnectionState;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionState>> {
        self.0.as_mut().poll_next(cx)
    }
}

impl fmt::Debug for StateStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StateStream")
    }
}
