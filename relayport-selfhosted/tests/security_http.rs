//! Attacks on the HTTP side of the real server (issue 11, item 5): bodies buffered before the
//! bearer check, no header-read or body timeouts, no connection cap. Raw TCP on loopback, so
//! that requests can be sent half-way; timeouts run on tokio's paused clock.
#![cfg(all(feature = "server", feature = "client"))]

mod server_common;

use std::net::SocketAddr;
use std::time::Duration;

use relayport_selfhosted::protocol::code;
use serde_json::Value;
use server_common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `head` (and nothing more) on a fresh connection.
async fn half_request(addr: SocketAddr, head: &str) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp
}

/// Reads one response's status and JSON body (the server closes or sends a Content-Length).
async fn read_response(tcp: &mut TcpStream) -> (u16, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = within("a response", tcp.read(&mut chunk))
            .await
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Whether the server closed the connection (EOF or reset) without a response.
async fn closed_without_response(tcp: &mut TcpStream) -> bool {
    let mut chunk = [0u8; 1024];
    matches!(
        within("the close", tcp.read(&mut chunk)).await,
        Ok(0) | Err(_)
    )
}

/// Before the fix, the 6 MB body was awaited (and buffered) before the bearer check: this
/// request, whose body never comes, hung.
#[tokio::test]
async fn unauthenticated_bodies_are_refused_before_they_are_read() {
    let server = start().await;
    let addr = server.local_addr();
    for (method, path) in [("POST", "/publish"), ("PUT", "/channels/room/snapshot")] {
        let mut tcp = half_request(
            addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\n\
                 Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n"
            ),
        )
        .await;
        let (status, body) = read_response(&mut tcp).await;
        assert_eq!(status, 401, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], code::UNAUTHORIZED);
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_declared_body_past_the_limit_is_refused_before_it_is_read() {
    let server = start().await;
    let addr = server.local_addr();
    // The snapshot body limit: one maximal payload plus 16 KiB of envelope.
    let past = 64 * 1024 + 16 * 1024 + 1;
    let mut tcp = half_request(
        addr,
        &format!(
            "PUT /channels/room/snapshot HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: {past}\r\n\r\n"
        ),
    )
    .await;
    let (status, body) = read_response(&mut tcp).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], code::PAYLOAD_TOO_LARGE);
    server.shutdown().await;
}

/// An authorized request whose body stalls is answered 408 once `request_timeout` passes,
/// and not before.
#[tokio::test(start_paused = true)]
async fn a_stalled_body_times_out_with_408() {
    let timeout = Duration::from_secs(3);
    let server = start_with(builder().request_timeout(timeout)).await;
    let started = tokio::time::Instant::now();
    let mut tcp = half_request(
        server.local_addr(),
        &format!(
            "POST /publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"chan"
        ),
    )
    .await;
    let (status, body) = read_response(&mut tcp).await;
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], code::TIMEOUT);
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < timeout * 2, "{waited:?}");
    server.shutdown().await;
}

/// Half-sent headers used to hold their socket forever; now the connection is closed once
/// `header_read_timeout` passes, and not before.
#[tokio::test(start_paused = true)]
async fn half_sent_headers_are_dropped_after_the_header_timeout() {
    let timeout = Duration::from_secs(4);
    let server = start_with(builder().header_read_timeout(timeout)).await;
    let started = tokio::time::Instant::now();
    let mut tcp = half_request(server.local_addr(), "GET /health HTTP/1.1\r\nHost: x\r\n").await;
    assert!(closed_without_response(&mut tcp).await);
    let waited = started.elapsed();
    assert!(waited >= timeout && waited < timeout * 2, "{waited:?}");
    server.shutdown().await;
}

/// At `max_connections`, further clients wait (in the backlog) instead of exhausting file
/// descriptors; they are served once a connection closes. Upgraded WebSockets count too.
#[tokio::test(start_paused = true)]
async fn connections_past_the_cap_wait_until_one_closes() {
    let server = start_with(builder().max_connections(3)).await;
    let addr = server.local_addr();
    let ws = WsClient::connect(addr).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(half_request(addr, "GET /health HTTP/1.1\r\n").await);
    }
    let waited = async {
        let mut c = half_request(addr, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
        read_response(&mut c).await
    };
    tokio::pin!(waited);
    // Paused clock: the runtime idles and a second passes; the fourth client is not served.
    assert!(
        tokio::time::timeout(Duration::from_secs(1), &mut waited)
            .await
            .is_err(),
        "served past the cap"
    );
    assert_eq!(server.open_connections(), 3);
    drop(held.pop());
    let (status, body) = waited.await;
    assert_eq!(status, 200, "{body}");
    drop(ws);
    server.shutdown().await;
}

/// A WebSocket upgrade at the cap is refused with 503 rather than left waiting.
#[tokio::test(start_paused = true)]
async fn a_websocket_upgrade_at_the_cap_is_refused() {
    let server = start_with(builder().max_connections(1)).await;
    let url = format!("ws://{}/ws", server.local_addr());
    match tokio_tungstenite::connect_async(url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    server.shutdown().await;
}
