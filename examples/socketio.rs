//! A Socket.IO v4 server with relayport: a `RealtimeClient` subscribes to a private channel
//! (signed by `SocketIoAuthorizer`), the adapter's HTTP endpoint (`SocketIoPublisher`, the
//! backend's `Publisher`) publishes, the client receives; then a raw event with an ack.
//!
//! ```sh
//! .ci/setup.d/socketio.sh     # node + the adapter's npm packages
//! (cd relayport-socketio/adapter && PORT=3000 SECRET=s3cret node test-server.mjs) &
//! SOCKETIO_URL=http://127.0.0.1:3000 SOCKETIO_SECRET=s3cret cargo run --example socketio
//! ```
//!
//! Without `SOCKETIO_URL` and `SOCKETIO_SECRET` it says so and exits with status 2.

use std::sync::Arc;
use std::time::Duration;

use relayport::socketio::{
    Arg, SocketIoAuthorizer, SocketIoConfig, SocketIoProvider, SocketIoPublisher,
};
use relayport::{Channel, OutboundMessage, Publisher, RealtimeClient, RealtimeError};
use serde_json::json;

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (Some(url), Some(secret)) = (var("SOCKETIO_URL"), var("SOCKETIO_SECRET")) else {
        eprintln!("set SOCKETIO_URL and SOCKETIO_SECRET to run this example");
        std::process::exit(2);
    };
    if let Err(e) = run(&url, &secret).await {
        eprintln!("socketio example: {e}");
        std::process::exit(1);
    }
}

async fn run(url: &str, secret: &str) -> relayport::Result<()> {
    let provider = SocketIoProvider::new(SocketIoConfig::new(url)?)?;
    let rest = SocketIoPublisher::new(url, secret)?;
    let client = RealtimeClient::builder(provider.clone())
        .authorizer(Arc::new(SocketIoAuthorizer::new(secret)))
        .client_id("example")
        .build();
    let channel = Channel::parse("private:relayport-example")?;
    let mut orders = client.subscribe(channel.clone()).await?;
    let message =
        OutboundMessage::new(channel, "greeting", json!({"text": "hello from relayport"}));
    rest.publish(&message).await?;
    let wait = Duration::from_secs(10);
    match tokio::time::timeout(wait, orders.recv()).await {
        Ok(Some(got)) => println!("received {} {}", got.event, got.data),
        Ok(None) => return Err(RealtimeError::Closed("subscription ended".into())),
        Err(_) => return Err(RealtimeError::timeout("the published message", wait)),
    }
    // A raw event outside the convention (the test server acks "echo" with its arguments).
    let echoed = provider
        .emit_with_ack(
            "echo",
            vec![Arg::Json(json!("ping")), Arg::Binary(vec![1, 2, 3])],
        )
        .await?;
    println!("echo acked with {echoed:?}");
    client.close().await;
    Ok(())
}
