//! Webhooks, signed as Pusher signs them: `POST` of `{"time_ms", "events": [event]}` with
//! `Content-Type: application/json`, `X-Pusher-Key` (the app key) and `X-Pusher-Signature`
//! (hex HMAC-SHA256 of the body with the app secret).
//!
//! Events: `channel_occupied`, `channel_vacated`, `member_added`, `member_removed` and
//! `client_event`, for changes made by Pusher-protocol connections. One event per request,
//! sent in order by one task per app over plain HTTP/1.1 (`http://` URLs: a backend on the
//! same host or network); a failed delivery is logged and retried twice, 1 s apart. The queue
//! holds 1024 events; past that, events are dropped and counted as dropped frames.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::apps::PusherApp;
use super::signing::webhook_signature;

/// How long one delivery may take (connect, write, read the status line).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The sending side of an app's webhook queue (nothing when it has no webhook URL).
#[derive(Debug, Default)]
pub struct Webhooks {
    tx: Option<mpsc::Sender<Value>>,
}

impl Webhooks {
    /// Starts the app's delivery task, if it has webhook URLs (needs a Tokio runtime).
    pub fn new(app: &PusherApp) -> Self {
        if app.webhooks.is_empty() {
            return Self::default();
        }
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(deliver_all(app.clone(), rx));
        Self { tx: Some(tx) }
    }

    /// Whether any webhook is configured.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queues one event (`{"name": …, …}`); `false` when the queue is full or off.
    pub fn send(&self, event: Value) -> bool {
        match &self.tx {
            Some(tx) => match tx.try_send(event) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!("webhook event dropped: {e}");
                    false
                }
            },
            None => false,
        }
    }
}

async fn deliver_all(app: PusherApp, mut rx: mpsc::Receiver<Value>) {
    while let Some(event) = rx.recv().await {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let body = json!({"time_ms": time_ms, "events": [event]}).to_string();
        let signature = webhook_signature(&app, body.as_bytes());
        for url in &app.webhooks {
            for attempt in 0..3 {
                match tokio::time::timeout(DELIVERY_TIMEOUT, post(url, &app.key, &signature, &body))
                    .await
                {
                    Ok(Ok(status)) if (200..300).contains(&status) => break,
                    Ok(Ok(status)) => tracing::warn!("webhook {url}: HTTP {status}"),
                    Ok(Err(e)) => tracing::warn!("webhook {url}: {e}"),
                    Err(_) => tracing::warn!("webhook {url}: timed out"),
                }
                if attempt < 2 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

/// Splits `http://host[:port][/path]`.
fn split_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// webhook URLs are supported".to_owned())?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("a webhook URL needs a host (and no credentials)".into());
    }
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((addr, path.to_owned()))
}

/// One `POST`; returns the status code.
async fn post(url: &str, key: &str, signature: &str, body: &str) -> Result<u16, String> {
    let (addr, path) = split_url(url)?;
    let host = addr.clone();
    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         X-Pusher-Key: {key}\r\nX-Pusher-Signature: {signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let read = stream
            .read(&mut head[n..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if read == 0 {
            break;
        }
        n += read;
    }
    let line = String::from_utf8_lossy(&head[..n]);
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| "not an HTTP response".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_path() {
        assert_eq!(
            split_url("http://127.0.0.1:9000/hooks/pusher"),
            Ok(("127.0.0.1:9000".into(), "/hooks/pusher".into()))
        );
        assert_eq!(
            split_url("http://backend"),
            Ok(("backend:80".into(), "/".into()))
        );
        assert!(split_url("https://x").is_err());
        assert!(split_url("http://user:pw@x/").is_err());
    }
}
