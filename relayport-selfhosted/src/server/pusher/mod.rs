//! The Pusher protocol mode: Pusher Channels clients (pusher-js, Laravel Echo, our
//! `relayport-pusher`) and server SDKs talk to this server as they would to Pusher.
//!
//! - `GET /app/{key}?protocol=7` — the WebSocket protocol ([`ws`]);
//! - `/apps/{id}/…` — the HTTP API with Pusher request signing ([`http`]);
//! - webhooks signed as Pusher signs them ([`webhooks`]).
//!
//! The first app (by default the one derived from the server secret, see [`apps`]) shares
//! the native broker: a message published over the native API reaches Pusher-protocol
//! subscribers and the reverse, and presence is one set, with channel names mapped by the
//! rule in [`names`]. Every further app has a broker of its own, so apps never see each
//! other's channels. History and recovery stay native-only.

pub mod apps;
pub mod frames;
pub mod http;
pub mod names;
pub mod signing;
pub mod users;
pub mod webhooks;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use apps::PusherApp;

use super::broker::{Broker, BrokerConfig};
use super::{Engine, ServerConfig};

/// One app at run time: its settings, broker, signed-in users and connection count.
pub(crate) struct AppRuntime {
    pub(crate) app: PusherApp,
    pub(crate) broker: Broker,
    /// Whether this app shares the native broker (publishes go through the engine).
    pub(crate) native: bool,
    pub(crate) users: users::Users,
    pub(crate) connections: AtomicUsize,
    pub(crate) webhooks: webhooks::Webhooks,
}

impl AppRuntime {
    /// Takes a connection slot; `false` when the app is at `max_connections`.
    pub(crate) fn try_connect(&self) -> bool {
        let max = self.app.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Gives a connection slot back.
    pub(crate) fn disconnect(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// Publishes through the engine (native app) or straight into the app's own broker.
    pub(crate) async fn publish(
        &self,
        engine: &Engine,
        p: super::Publication,
    ) -> Result<crate::protocol::MessageFrame, String> {
        if self.native {
            engine.publish(&self.broker, p).await
        } else {
            Ok(self.broker.publish(p))
        }
    }
}

/// Every app of the Pusher mode.
#[derive(Clone, Default)]
pub(crate) struct PusherState {
    apps: Arc<Vec<Arc<AppRuntime>>>,
}

impl PusherState {
    /// The apps from the configuration (or the one derived from the secret); the first
    /// shares `native`.
    pub(crate) fn new(config: &ServerConfig, native: &Broker) -> Self {
        let list = if config.pusher_apps.is_empty() {
            vec![PusherApp::derived(&config.secret)]
        } else {
            config.pusher_apps.clone()
        };
        let apps = list
            .into_iter()
            .enumerate()
            .map(|(i, app)| {
                let broker = if i == 0 {
                    native.clone()
                } else {
                    Broker::new(BrokerConfig {
                        history_size: 0,
                        history_ttl: config.history_ttl,
                        max_subscriptions: config.limits.max_subscriptions,
                        send_queue: config.limits.send_queue,
                        send_queue_bytes: config.send_queue_bytes,
                        clock: config.clock.clone(),
                    })
                };
                Arc::new(AppRuntime {
                    webhooks: webhooks::Webhooks::new(&app),
                    app,
                    broker,
                    native: i == 0,
                    users: users::Users::default(),
                    connections: AtomicUsize::new(0),
                })
            })
            .collect();
        Self {
            apps: Arc::new(apps),
        }
    }

    /// The app with this key.
    pub(crate) fn by_key(&self, key: &str) -> Option<Arc<AppRuntime>> {
        self.apps.iter().find(|a| a.app.key == key).cloned()
    }

    /// The app with this id.
    pub(crate) fn by_id(&self, id: &str) -> Option<Arc<AppRuntime>> {
        self.apps.iter().find(|a| a.app.id == id).cloned()
    }

    /// Forgets unused channels in the apps with their own broker (the native broker is
    /// swept by the server).
    pub(crate) fn sweep(&self) -> usize {
        self.apps
            .iter()
            .filter(|a| !a.native)
            .map(|a| a.broker.sweep())
            .sum()
    }

    /// Asks every connection of the apps with their own broker to close with `code`.
    pub(crate) fn kick_all(&self, code: u16) {
        for a in self.apps.iter().filter(|a| !a.native) {
            a.broker.kick_all(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::Channel;
    use serde_json::json;

    #[test]
    fn the_first_app_shares_the_native_broker_and_others_are_swept() {
        let mut config = ServerConfig {
            pusher_apps: vec![
                PusherApp::new("1", "k1", "s1"),
                PusherApp::new("2", "k2", "s2"),
            ],
            ..ServerConfig::default()
        };
        let native = Broker::default();
        let state = PusherState::new(&config, &native);
        let one = state.by_key("k1").expect("app 1");
        let two = state.by_id("2").expect("app 2");
        assert!(one.native && !two.native);
        // A publish into app 2 lands in its own broker, never in the native one.
        two.broker.publish(super::super::Publication {
            encoding: None,
            channel: Channel::parse("nobody").unwrap(),
            event: "e".into(),
            data: json!(1),
            sender: None,
            exclude: None,
            retain: false,
        });
        assert_eq!((native.channel_count(), two.broker.channel_count()), (0, 1));
        assert_eq!(state.sweep(), 1);
        assert_eq!(two.broker.channel_count(), 0);
        assert!(state.by_key("k3").is_none());
        // Without configured apps: the one derived from the secret.
        config.pusher_apps.clear();
        config.secret = "s".into();
        let derived = PusherState::new(&config, &native);
        assert_eq!(
            derived.by_key("relayport").map(|a| a.app.secret.clone()),
            Some("s".into())
        );
    }
}
