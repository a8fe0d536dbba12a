//! What the end-to-end tests against the real `socket.io` server share: bounded waits and
//! clients, a publisher and channels for a started [`NodeServer`].
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use relayport_core::{Channel, ClientBuilder, Message, RealtimeClient, Subscription};
use relayport_socketio::testing::{NodeServer, SECRET};
use relayport_socketio::{SocketIoAuthorizer, SocketIoConfig, SocketIoProvider, SocketIoPublisher};

/// How long any one thing may take.
pub const WAIT: Duration = Duration::from_secs(15);

/// `f`, or a panic naming `what` after [`WAIT`].
pub async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// A provider on `server`'s `namespace`.
pub fn provider(server: &NodeServer, namespace: &str) -> SocketIoProvider {
    SocketIoProvider::new(
        SocketIoConfig::new(&server.url())
            .and_then(|c| c.with_namespace(namespace))
            .expect("config"),
    )
    .expect("provider")
}

/// A client builder for `provider` with client id `id`, signing with the server's secret.
pub fn builder(provider: SocketIoProvider, id: &str) -> ClientBuilder {
    RealtimeClient::builder(provider)
        .client_id(id)
        .authorizer(Arc::new(SocketIoAuthorizer::new(SECRET)))
}

/// A client on the default namespace.
pub fn client(server: &NodeServer, id: &str) -> RealtimeClient {
    builder(provider(server, "/"), id).build()
}

/// The server-side publisher, with the right secret.
pub fn publisher(server: &NodeServer) -> SocketIoPublisher {
    SocketIoPublisher::new(&server.url(), SECRET).expect("publisher")
}

/// The subscription's next message, bounded.
pub async fn next(sub: &mut Subscription) -> Message {
    within("a message", sub.recv())
        .await
        .expect("the subscription ended")
}

/// A parsed channel name.
pub fn ch(name: &str) -> Channel {
    Channel::parse(name).expect("channel")
}
