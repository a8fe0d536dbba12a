//! The limit: a bare tokio-tungstenite broadcast server with no protocol at all.
//!
//! One `tokio::sync::broadcast` channel; one task per subscriber doing
//! `select! { rx.recv() => sink.send(text), stream.next() }`, so one write per delivery;
//! `TCP_NODELAY`, a 4 KiB read buffer and no write buffering (the anchors' setup). A
//! connection to `/pub` is the publisher: each text frame it sends is broadcast verbatim.
//! Every subscriber first receives a `hello` frame once its receiver is registered.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_util::sync::CancellationToken;

/// Capacity of the broadcast channel (messages a slow subscriber may fall behind).
pub const CAPACITY: usize = 4096;

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Serves until `stop` is cancelled.
pub async fn serve(listener: TcpListener, stop: CancellationToken) {
    let (tx, _) = broadcast::channel::<Utf8Bytes>(CAPACITY);
    let tx = Arc::new(tx);
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let tx = tx.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, tx) => {}
            }
        });
    }
}

#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn connection(stream: TcpStream, tx: Arc<broadcast::Sender<Utf8Bytes>>) {
    let _ = stream.set_nodelay(true);
    let mut is_pub = false;
    let callback = |req: &Request, resp: Response| {
        is_pub = req.uri().path() == "/pub";
        Ok(resp)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config())).await
    else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    if is_pub {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(t) => {
                    let _ = tx.send(t);
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
        return;
    }
    let mut rx = tx.subscribe();
    if sink
        .send(Message::Text(Utf8Bytes::from_static("hello")))
        .await
        .is_err()
    {
        return;
    }
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Ok(text) => {
                    if sink.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            m = stream.next() => match m {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// Binds `addr` and serves in a background task; returns the address and the stop token.
pub async fn spawn(addr: &str) -> std::io::Result<(std::net::SocketAddr, CancellationToken)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, stop.clone()));
    Ok((local, stop))
}
