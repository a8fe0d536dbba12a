//! Echo: whether a client receives its own publishes, the same on every provider
//! ([`ClientConfig::echo`](crate::ClientConfig::echo)). The server decides where it can
//! ([`Echo::Configurable`]); otherwise the runtime drops the server's echoes
//! ([`Echo::ServerEchoes`]) or delivers a local copy of an accepted publish
//! ([`Echo::ServerSkips`]).

use std::collections::VecDeque;

use crate::client::driver::Actor;
use crate::message::{Message, OutboundMessage};
use crate::provider::Echo;

/// How many of this client's past connection ids are remembered: a message this client
/// published on an earlier connection can still arrive (a replay after a reconnect).
const REMEMBERED_IDS: usize = 8;

/// This client's connection ids, newest last, bounded.
#[derive(Debug, Default)]
pub(super) struct OwnIds(VecDeque<String>);

impl OwnIds {
    /// Remembers the id of a new connection.
    pub(super) fn push(&mut self, id: &str) {
        if self.0.iter().any(|known| known == id) {
            return;
        }
        if self.0.len() == REMEMBERED_IDS {
            self.0.pop_front();
        }
        self.0.push_back(id.to_owned());
    }

    fn contains(&self, id: &str) -> bool {
        self.0.iter().any(|known| known == id)
    }
}

impl Actor {
    /// Whether `message` is this client's own publish coming back from a server that always
    /// echoes, while this client asked for no echo: it is then not delivered.
    pub(super) fn is_unwanted_echo(&self, message: &Message) -> bool {
        !self.cfg.echo
            && self.caps.echo == Echo::ServerEchoes
            && message
                .sender
                .as_deref()
                .is_some_and(|sender| self.own_ids.contains(sender))
    }

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
        self.deliver(copy);
    }
}
