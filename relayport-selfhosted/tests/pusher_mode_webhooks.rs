//! Webhooks of the Pusher mode, received by a loopback HTTP endpoint and verified with our
//! own `relayport_pusher::WebhookVerifier` (the official SDK's verifier checks them in
//! `pusher_mode_official_sdk.rs` when node is installed).

mod pusher_mode_common;

use pusher_mode_common::{APP, PusherWs, SECRET, builder, start_with, within};
use relayport_pusher::WebhookVerifier;
use relayport_selfhosted::server::pusher::PusherApp;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// A received request: (header lines lowercased, body).
type Received = (Vec<(String, String)>, Vec<u8>);

/// Accepts webhook POSTs and answers 200; each request goes to the channel.
async fn receiver() -> (u16, mpsc::UnboundedReceiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head_end, len) = loop {
                let n = tcp.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    break (i + 4, len);
                }
            };
            while buf.len() < head_end + len {
                let n = tcp.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            let headers = String::from_utf8_lossy(&buf[..head_end])
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_owned()))
                .collect();
            let body = buf[head_end..].to_vec();
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await;
            if tx.send((headers, body)).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn pusher_mode_webhooks_are_signed_as_pusher_signs_them() {
    let (port, mut hooks) = receiver().await;
    let mut app = PusherApp::new(APP, APP, SECRET);
    app.webhooks = vec![format!("http://127.0.0.1:{port}/hooks")];
    let h = start_with(builder().pusher_apps(vec![app])).await;
    let mut a = PusherWs::connect(h.local_addr()).await;
    let cd = json!({"user_id": "u1", "user_info": {}}).to_string();
    a.subscribe("presence-room", Some(&cd)).await;
    a.send(json!({"event": "client-hi", "channel": "presence-room", "data": {"x": 1}}))
        .await;
    a.sync().await;
    drop(a);

    let verifier = WebhookVerifier::new(APP, SECRET).strict_content_type(true);
    let wrong = WebhookVerifier::new(APP, "another-secret");
    let mut names = Vec::new();
    while names.len() < 5 {
        let (headers, body) = within("a webhook", hooks.recv()).await.expect("receiver");
        let (key, sig, ct) = (
            header(&headers, "x-pusher-key"),
            header(&headers, "x-pusher-signature"),
            header(&headers, "content-type"),
        );
        let hook = verifier
            .verify(key, sig, ct, &body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        assert!(wrong.verify(key, sig, ct, &body).is_err());
        assert!(hook.time_ms > 0);
        for e in hook.events {
            assert_eq!(e.channel.as_deref(), Some("presence-room"));
            if e.name == "client_event" {
                assert_eq!(
                    (e.event.as_deref(), e.user_id.as_deref()),
                    (Some("client-hi"), Some("u1"))
                );
                assert_eq!(e.data, Some(json!("{\"x\":1}")));
            }
            names.push(e.name);
        }
    }
    assert_eq!(
        names,
        [
            "channel_occupied",
            "member_added",
            "client_event",
            "member_removed",
            "channel_vacated"
        ]
    );
}
