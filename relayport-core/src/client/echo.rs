//! Echo: whether a client receives its own publishes, the same on every provider
//! ([`ClientConfig::echo`](crate::ClientConfig::echo)). The server decides where it can
//! ([`Echo::Configurable`]); otherwise the runtime drops the server's echoes
//! ([`Echo::ServerEchoes`], in the delivery table, through which every message passes) or
//! delivers a local copy of an accepted publish ([`Echo::ServerSkips`]).

use std::collections::VecDeque;

use crate::client::config::ClientConfig;
use crate::client::driver::Actor;
use crate::message::{Message, OutboundMessage};
use crate::provider::{Capabilities, Echo};

/// How many of this client's past connection ids are remembered: a message this client
/// published on an earlier connection can still arrive (a replay after a reconnect).
const REMEMBERED_IDS: usize = 8;

/// Drops this client's own publishes coming back from a server that always echoes, when the
/// client asked for no echo.
#[derive(Debug, Default)]
pub(crate) struct EchoFilter {
    /// Whether anything is dropped at all (echo off on an `Echo::ServerEchoes` provider).
    active: bool,
    /// This client's connection ids, newest last, bounded.
    own: VecDeque<String>,
}

impl EchoFilter {
    /// The filter for a client with `cfg` on a provider with `caps`.
    pub(crate) fn new(cfg: &ClientConfig, caps: &Capabilities) -> Self {
        Self {
            active: !cfg.echo && caps.echo == Echo::ServerEchoes,
            own: VecDeque::new(),
        }
    }

    /// Remembers the id of a new connection (the `sender` its publishes will carry).
    pub(crate) fn connected(&mut self, id: &str) {
        if !self.active || self.own.iter().any(|known| known == id) {
            return;
        }
        if self.own.len() == REMEMBERED_IDS {
            self.own.pop_front();
        }
        self.own.push_back(id.to_owned());
    }

    /// Whether `message` is one of this client's own publishes that it does not want back.
    pub(crate) fn is_unwanted(&self, message: &Message) -> bool {
        self.active
            && message
                .sender
                .as_deref()
                .is_some_and(|sender| self.own.iter().any(|known| known == sender))
    }
}

impl Actor {
    /// After the provider accepted `published`: a local copy for this client's own
    /// subscribers when it wants echo and the server never sends one.
    pub(super) fn loop_back(&mut self, published: &OutboundMessage) {
        if !self.cfg.echo || self.caps.echo != Echo::ServerSkips {
            return;
        }
        let mut copy = Message::new(
            published.channel.clone(),
            published.event.clone(),
            published.data.clone(),
        );
        copy.id = published.id.clone();
        copy.sender = self.session.as_ref().map(|s| s.connection_id.clone());
        // Held back like a live message while the channel recovers, so it keeps its place.
        self.router.table().deliver(copy, true);
    }
}
