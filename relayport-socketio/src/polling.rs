//! Engine.IO v4 HTTP long-polling: the fallback when the WebSocket upgrade is refused (a proxy
//! that does not pass WebSockets), as socket.io-client falls back.
//!
//! One GET at a time receives what the server queued (packets separated by `\x1e`, binary ones
//! as `b<base64>`); one writer task POSTs what the connection sends, in order, batching what
//! queued up meanwhile. The frames reach the connection through a channel, as the WebSocket's
//! reach its dispatcher; HTTP comes from the core's `LinkConfig` (reqwest over rustls).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use relayport_core::transport::{PeerClose, Received};
use relayport_core::{RealtimeError, Result};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;
use url::Url;

use crate::packet::{EnginePacket, OpenPacket};

/// The record separator between packets of one HTTP payload.
const SEPARATOR: char = '\u{1e}';

/// What the reader hands to the connection.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One Engine.IO packet, as the WebSocket would have carried it.
    Frame(Received),
    /// The session ended (an HTTP error, a lost connection).
    Closed(PeerClose),
}

/// An open polling session: its reader and writer tasks.
#[derive(Debug)]
pub(crate) struct PollingLink {
    http: reqwest::Client,
    url: Url,
    pub(crate) tx: mpsc::UnboundedSender<Received>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

impl Drop for PollingLink {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

/// Splits one HTTP payload into packets.
pub(crate) fn decode_payload(body: &str) -> Result<Vec<Received>> {
    body.split(SEPARATOR)
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('b') {
            Some(b64) => STANDARD
                .decode(b64)
                .map(Received::Binary)
                .map_err(|e| RealtimeError::Protocol(format!("a malformed binary packet: {e}"))),
            None => Ok(Received::Text(p.to_owned())),
        })
        .collect()
}

/// Joins packets into one HTTP payload.
pub(crate) fn encode_payload(packets: &[Received]) -> String {
    let mut out = String::new();
    for (i, p) in packets.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match p {
            Received::Text(t) => out.push_str(t),
            Received::Binary(b) => {
                out.push('b');
                out.push_str(&STANDARD.encode(b));
            }
        }
    }
    out
}

fn polling_url(base: &str) -> Result<Url> {
    let mut url =
        Url::parse(base).map_err(|e| RealtimeError::Config(format!("polling URL: {e}")))?;
    let scheme = if matches!(url.scheme(), "wss" | "https") {
        "https"
    } else {
        "http"
    };
    let _ = url.set_scheme(scheme);
    url.set_query(Some("EIO=4&transport=polling"));
    Ok(url)
}

/// Opens a polling session at the Engine.IO endpoint `ws_url` (its WebSocket URL): the
/// handshake GET, then the reader and writer. Returns the session, the handshake and the
/// channel the frames arrive on.
pub(crate) async fn open(
    http: reqwest::Client,
    ws_url: &str,
) -> Result<(PollingLink, OpenPacket, mpsc::UnboundedReceiver<Inbound>)> {
    let mut url = polling_url(ws_url)?;
    let body = get(&http, &url, None).await?;
    let mut packets = decode_payload(&body)?.into_iter();
    let open = match packets.next() {
        Some(Received::Text(t)) => match EnginePacket::decode(&t) {
            Ok(EnginePacket::Open(json)) => {
                OpenPacket::parse(json).map_err(|e| RealtimeError::Protocol(e.to_string()))?
            }
            _ => {
                return Err(RealtimeError::Protocol(
                    "the polling handshake did not start with an open packet".into(),
                ));
            }
        },
        _ => {
            return Err(RealtimeError::Protocol(
                "an empty or binary polling handshake".into(),
            ));
        }
    };
    url.query_pairs_mut().append_pair("sid", &open.sid);
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    for p in packets {
        let _ = in_tx.send(Inbound::Frame(p));
    }
    // A GET is answered at the latest after one ping interval; give it the ping timeout on top.
    let poll_limit =
        Duration::from_millis(open.ping_interval + open.ping_timeout) + Duration::from_secs(5);
    let reader = tokio::spawn(read_loop(http.clone(), url.clone(), in_tx, poll_limit));
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(http.clone(), url.clone(), out_rx));
    Ok((
        PollingLink {
            http,
            url,
            tx: out_tx,
            reader,
            writer,
        },
        open,
        in_rx,
    ))
}

async fn get(http: &reqwest::Client, url: &Url, limit: Option<Duration>) -> Result<String> {
    let mut request = http.get(url.clone());
    if let Some(limit) = limit {
        request = request.timeout(limit);
    }
    let response = request
        .send()
        .await
        .map_err(|e| RealtimeError::Connection(format!("polling GET: {e}")))?;
    let status = response.status();
    if !status.is_success() {
        return Err(RealtimeError::Connection(format!(
            "polling GET answered HTTP {status}"
        )));
    }
    response
        .text()
        .await
        .map_err(|e| RealtimeError::Connection(format!("polling GET body: {e}")))
}

async fn post(http: &reqwest::Client, url: &Url, body: String) -> Result<()> {
    let response = http
        .post(url.clone())
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body)
        .send()
        .await
        .map_err(|e| RealtimeError::Connection(format!("polling POST: {e}")))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(RealtimeError::Connection(format!(
            "polling POST answered HTTP {}",
            response.status()
        )))
    }
}

async fn read_loop(
    http: reqwest::Client,
    url: Url,
    tx: mpsc::UnboundedSender<Inbound>,
    limit: Duration,
) {
    loop {
        let packets = match get(&http, &url, Some(limit))
            .await
            .and_then(|b| decode_payload(&b))
        {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Inbound::Closed(PeerClose::lost(e.to_string())));
                return;
            }
        };
        for p in packets {
            let close = matches!(&p, Received::Text(t) if t == "1");
            if tx.send(Inbound::Frame(p)).is_err() || close {
                return;
            }
        }
    }
}

async fn write_loop(http: reqwest::Client, url: Url, mut rx: mpsc::UnboundedReceiver<Received>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        if let Err(e) = post(&http, &url, encode_payload(&batch)).await {
            debug!(error = %e, "the polling writer stopped");
            return;
        }
    }
}

impl PollingLink {
    /// Ends the session: stops the reader, then POSTs `last` (a DISCONNECT, say) and the
    /// Engine.IO close packet, waiting at most `grace`.
    pub(crate) async fn close(&self, last: Vec<Received>, grace: Duration) {
        self.reader.abort();
        self.writer.abort();
        let mut packets = last;
        packets.push(Received::Text("1".into()));
        let _ = tokio::time::timeout(grace, post(&self.http, &self.url, encode_payload(&packets)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip() {
        let packets = vec![
            Received::Text("2".into()),
            Received::Text(r#"451-["e",{"_placeholder":true,"num":0}]"#.into()),
            Received::Binary(vec![0, 1, 255]),
        ];
        let body = encode_payload(&packets);
        assert_eq!(
            body,
            "2\u{1e}451-[\"e\",{\"_placeholder\":true,\"num\":0}]\u{1e}bAAH/"
        );
        assert_eq!(decode_payload(&body).unwrap(), packets);
        assert!(decode_payload("b!!!").is_err());
        assert_eq!(decode_payload("").unwrap(), vec![]);
    }

    #[test]
    fn the_polling_url_keeps_host_and_path() {
        let url = polling_url("wss://h:8443/socket.io/?EIO=4&transport=websocket").unwrap();
        assert_eq!(
            url.as_str(),
            "https://h:8443/socket.io/?EIO=4&transport=polling"
        );
    }
}
