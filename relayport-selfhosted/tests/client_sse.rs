//! The SSE fallback: a proxy in front of the real server refuses the WebSocket upgrade (426 or
//! 403) but passes `/sse`, `/health` and `/publish` through; the provider falls back, says so,
//! receives, publishes with a token, and recovers through `Last-Event-ID` after a restart.
#![cfg(all(feature = "client", feature = "server"))]

mod client_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use client_support::within;
use relayport_core::{
    Backoff, Channel, ClientEvent, ConnectionState, ErrorKind, OutboundMessage, Position,
    ProviderEvent, RealtimeClient, RealtimeProvider, Reconnect, SubscribeOptions,
};
use relayport_selfhosted::client::sse::{SseEvent, SseParser, last_event_id};
use relayport_selfhosted::client::{SelfHostedProvider, Transport, TransportPreference};
use relayport_selfhosted::server::{Publication, Server, ServerHandle};
use serde_json::json;
use tokio::sync::broadcast;

const SECRET: &str = "sse-secret";

#[derive(Clone)]
struct Proxy {
    upstream: Arc<Mutex<String>>,
    refuse: StatusCode,
    last_event_ids: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

impl Proxy {
    fn upstream(&self) -> String {
        self.upstream
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

async fn refuse(State(p): State<Proxy>) -> Response {
    (p.refuse, "this proxy does not pass WebSockets").into_response()
}

async fn forward(
    p: &Proxy,
    method: reqwest::Method,
    path: &str,
    query: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let mut url = format!("{}{path}", p.upstream());
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    let mut req = p.http.request(method, url).body(body.to_vec());
    for name in ["authorization", "content-type", "last-event-id", "accept"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            req = req.header(name, v);
        }
    }
    match req.send().await {
        Ok(resp) => {
            let status =
                StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let content_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned();
            let body = Body::from_stream(resp.bytes_stream());
            (status, [("content-type", content_type)], body).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}

async fn sse(State(p): State<Proxy>, RawQuery(q): RawQuery, headers: HeaderMap) -> Response {
    if let Some(id) = headers.get("last-event-id").and_then(|v| v.to_str().ok()) {
        p.last_event_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(id.to_owned());
    }
    forward(&p, reqwest::Method::GET, "/sse", q, &headers, Bytes::new()).await
}

async fn health(State(p): State<Proxy>, headers: HeaderMap) -> Response {
    forward(
        &p,
        reqwest::Method::GET,
        "/health",
        None,
        &headers,
        Bytes::new(),
    )
    .await
}

async fn publish(State(p): State<Proxy>, headers: HeaderMap, body: Bytes) -> Response {
    forward(&p, reqwest::Method::POST, "/publish", None, &headers, body).await
}

/// A proxy in front of `server` that answers `refuse_with` to the WebSocket upgrade.
async fn proxy(server: &ServerHandle, refuse_with: StatusCode) -> (String, Proxy) {
    let state = Proxy {
        upstream: Arc::new(Mutex::new(format!("http://{}", server.local_addr()))),
        refuse: refuse_with,
        last_event_ids: Arc::default(),
        http: reqwest::Client::new(),
    };
    let app = Router::new()
        .route("/ws", get(refuse))
        .route("/sse", get(sse))
        .route("/health", get(health))
        .route("/publish", post(publish))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, state)
}

async fn start() -> ServerHandle {
    Server::builder()
        .secret(SECRET)
        .bind("127.0.0.1:0")
        .await
        .expect("server")
}

fn publication(channel: &str, n: u64) -> Publication {
    Publication {
        encoding: None,
        channel: Channel::parse(channel).expect("channel"),
        event: "news".into(),
        data: json!({ "n": n }),
        sender: None,
        exclude: None,
        retain: false,
    }
}

#[tokio::test]
async fn a_refused_upgrade_falls_back_to_sse_with_its_documented_limits() {
    for status in [StatusCode::UPGRADE_REQUIRED, StatusCode::FORBIDDEN] {
        let server = start().await;
        let (url, _proxy) = proxy(&server, status).await;
        let provider = SelfHostedProvider::new(&url).expect("provider");
        let (sink, mut events) = client_support::sink();
        let session = within("connect", provider.connect(sink))
            .await
            .expect("connect");
        assert_eq!(provider.transport(), Some(Transport::Sse), "{status}");
        assert!(session.connection_id.starts_with("sse-"));

        let news = Channel::public("news");
        within(
            "subscribe",
            provider.subscribe(&news, &SubscribeOptions::default()),
        )
        .await
        .expect("subscribe");
        server
            .publish(publication("news", 1))
            .await
            .expect("publish");
        match events.next().await {
            ProviderEvent::Message(m) => {
                assert_eq!(
                    (m.channel, m.data.into_json().unwrap()),
                    (news.clone(), json!({"n": 1}))
                );
                assert!(m.position.is_some());
            }
            other => panic!("expected the message, got {other:?}"),
        }
        within("ping", provider.ping())
            .await
            .expect("ping over /health");

        // The limits of the fallback.
        let private = provider
            .subscribe(&Channel::private("a"), &SubscribeOptions::default())
            .await
            .unwrap_err();
        assert_eq!(private.kind(), ErrorKind::Unsupported);
        let presence = provider
            .presence_enter(&Channel::presence("a"), json!({}))
            .await
            .unwrap_err();
        assert_eq!(presence.kind(), ErrorKind::Unsupported);
        let out = OutboundMessage::new(news.clone(), "e", json!(1));
        let publish = provider.publish(&out).await.unwrap_err();
        assert_eq!(
            publish.kind(),
            ErrorKind::Unsupported,
            "no token, no publish"
        );

        within("disconnect", provider.disconnect())
            .await
            .expect("disconnect");
        assert_eq!(provider.transport(), None);
        server.shutdown().await;
    }
}

#[tokio::test]
async fn websocket_only_does_not_fall_back() {
    let server = start().await;
    let (url, _proxy) = proxy(&server, StatusCode::UPGRADE_REQUIRED).await;
    let provider = SelfHostedProvider::new(&url)
        .expect("provider")
        .with_transport(TransportPreference::WebSocketOnly);
    let (sink, _events) = client_support::sink();
    let err = within("connect", provider.connect(sink)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);
    assert!(err.to_string().contains("426"), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn sse_publishes_with_a_token_and_maps_refusals() {
    let server = start().await;
    let (url, _proxy) = proxy(&server, StatusCode::UPGRADE_REQUIRED).await;
    let provider = SelfHostedProvider::new(&url)
        .expect("provider")
        .with_publish_token(SECRET);
    assert!(!format!("{provider:?}").contains(SECRET));
    let (sink, mut events) = client_support::sink();
    within("connect", provider.connect(sink))
        .await
        .expect("connect");
    let news = Channel::public("news");
    within(
        "subscribe",
        provider.subscribe(&news, &SubscribeOptions::default()),
    )
    .await
    .expect("subscribe");
    let out = OutboundMessage::new(news.clone(), "headline", json!({"n": 1}));
    within("publish", provider.publish(&out))
        .await
        .expect("publish");
    match events.next().await {
        ProviderEvent::Message(m) => assert_eq!(m.data, json!({"n": 1})),
        other => panic!("unexpected {other:?}"),
    }
    let wrong = SelfHostedProvider::new(&url)
        .expect("provider")
        .with_publish_token("wrong")
        .with_transport(TransportPreference::SseOnly);
    let (sink, _events) = client_support::sink();
    within("connect", wrong.connect(sink))
        .await
        .expect("connect");
    let err = within("publish", wrong.publish(&out)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    server.shutdown().await;
}

async fn wait_event(
    events: &mut broadcast::Receiver<ClientEvent>,
    what: &str,
    mut pick: impl FnMut(&ClientEvent) -> bool,
) -> ClientEvent {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(e) if pick(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => panic!("events closed"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn sse_recovers_missed_messages_through_last_event_id_after_a_restart() {
    let server = start().await;
    let (url, proxy_state) = proxy(&server, StatusCode::UPGRADE_REQUIRED).await;
    let provider = SelfHostedProvider::new(&url).expect("provider");
    let bob = RealtimeClient::builder(provider)
        .backoff(Backoff {
            initial: Duration::from_millis(20),
            factor: 2,
            max: Duration::from_millis(200),
            jitter: Duration::ZERO,
            max_attempts: 200,
        })
        .build();
    let mut events = bob.events();
    let mut sub = within("subscribe", bob.subscribe("news"))
        .await
        .expect("subscribe");
    let mut seen = Vec::new();
    for n in 1..=2 {
        server
            .publish(publication("news", n))
            .await
            .expect("publish");
        let m = within("message", sub.recv()).await.expect("message");
        seen.push(m.data["n"].as_u64().unwrap_or(0));
    }

    let addr = server.local_addr();
    let config = server.config().clone();
    let broker = server.broker();
    server.shutdown().await;
    wait_event(&mut events, "the stream to drop", |e| {
        matches!(
            e,
            ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })
        )
    })
    .await;
    for n in 3..=4 {
        broker.publish(publication("news", n));
    }
    let server = Server::builder()
        .config(config)
        .broker(broker)
        .bind(addr)
        .await
        .expect("restart");
    let resubscribed = wait_event(&mut events, "resubscribed", |e| {
        matches!(e, ClientEvent::Resubscribed { .. })
    })
    .await;
    assert_eq!(
        resubscribed,
        ClientEvent::Resubscribed {
            channel: Channel::public("news"),
            recovered: true
        }
    );
    server
        .publish(publication("news", 5))
        .await
        .expect("publish");
    while seen.last() != Some(&5) {
        let m = within("message", sub.recv()).await.expect("message");
        seen.push(m.data["n"].as_u64().unwrap_or(0));
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5], "zero lost, zero duplicated");
    let ids = proxy_state
        .last_event_ids
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    assert!(
        ids.iter()
            .any(|id| id.starts_with("news~") && id.ends_with("~2")),
        "resumed after the last message seen: {ids:?}"
    );
    bob.close().await;
    server.shutdown().await;
}

/// A scripted `/sse` answer (and 426 on `/ws`), for exact bytes.
async fn scripted(body: &'static str) -> String {
    let app =
        Router::new()
            .route(
                "/ws",
                get(|| async { StatusCode::UPGRADE_REQUIRED.into_response() }),
            )
            .route("/health", get(|| async { "ok" }))
            .route(
                "/sse",
                get(move || async move {
                    ([("content-type", "text/event-stream")], body).into_response()
                }),
            );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

#[tokio::test]
async fn malformed_sse_events_are_protocol_errors_and_close_codes_map() {
    let url = scripted(concat!(
        ": a comment\n\n",
        "event: connected\ndata: {\"type\":\"connected\",\"socket_id\":\"x\",\"protocol\":1,",
        "\"heartbeat_ms\":1000,\"limits\":{\"max_payload\":65536,\"max_subscriptions\":50,",
        "\"publishes_per_minute\":100,\"send_queue\":1000}}\n\n",
        "event: subscribed\ndata: {\"type\":\"subscribed\",\"channel\":\"news\"}\n\n",
        "event: message\ndata: not json\n\n",
        "event: message\ndata: {\"channel\":\"a b\",\"event\":\"e\",\"data\":1,\"id\":\"x\",",
        "\"seq\":1,\"epoch\":\"e\",\"ts\":1}\n\n",
        "event: message\r\ndata: {\"channel\":\"news\",\"event\":\"e\",\"data\":2,\r\n",
        "data: \"id\":\"e-2\",\"seq\":2,\"epoch\":\"e\",\"ts\":1}\r\n\r\n",
        "event: close\ndata: {\"code\":1012}\n\n",
    ))
    .await;
    let provider = SelfHostedProvider::new(&url).expect("provider");
    let (sink, mut events) = client_support::sink();
    within("connect", provider.connect(sink))
        .await
        .expect("connect");
    let news = Channel::public("news");
    within(
        "subscribe",
        provider.subscribe(&news, &SubscribeOptions::default()),
    )
    .await
    .expect("subscribe");
    for i in 0..2 {
        match events.next().await {
            ProviderEvent::Error { error, .. } => {
                assert_eq!(error.kind(), ErrorKind::Protocol, "#{i}")
            }
            other => panic!("#{i}: expected a protocol error, got {other:?}"),
        }
    }
    match events.next().await {
        ProviderEvent::Message(m) => {
            assert_eq!(m.data, json!(2));
            assert_eq!(
                m.position,
                Some(Position {
                    epoch: Some("e".into()),
                    sequence: 2
                })
            );
        }
        other => panic!("expected the message, got {other:?}"),
    }
    match events.next().await {
        ProviderEvent::Closed(reason) => {
            assert_eq!(reason.code, Some(1012));
            assert_eq!(reason.reconnect, Reconnect::Immediately);
        }
        other => panic!("expected the close, got {other:?}"),
    }
}

/// A hostile server sending an endless line (no line end, past the parser's 1 MiB bound) gets
/// the stream dropped with the reason, not a client buffering it forever.
#[tokio::test]
async fn an_endless_sse_line_from_the_server_drops_the_stream_with_the_reason() {
    let body: &'static str = Box::leak(
        format!(
            "{}{}",
            concat!(
                "event: connected\ndata: {\"type\":\"connected\",\"socket_id\":\"x\",\"protocol\":1,",
                "\"heartbeat_ms\":1000,\"limits\":{\"max_payload\":65536,\"max_subscriptions\":50,",
                "\"publishes_per_minute\":100,\"send_queue\":1000}}\n\n",
                "event: subscribed\ndata: {\"type\":\"subscribed\",\"channel\":\"news\"}\n\n",
                "data: ",
            ),
            "a".repeat((1 << 20) + 1)
        )
        .into_boxed_str(),
    );
    let url = scripted(body).await;
    let provider = SelfHostedProvider::new(&url).expect("provider");
    let (sink, mut events) = client_support::sink();
    within("connect", provider.connect(sink))
        .await
        .expect("connect");
    within(
        "subscribe",
        provider.subscribe(&Channel::public("news"), &SubscribeOptions::default()),
    )
    .await
    .expect("subscribe");
    match within("the close", events.next()).await {
        ProviderEvent::Closed(reason) => {
            assert!(
                reason.message.contains("longer than 1048576 bytes"),
                "{reason:?}"
            );
            assert_eq!(reason.reconnect, Reconnect::Backoff);
        }
        other => panic!("expected the stream to close, got {other:?}"),
    }
}

#[test]
fn the_sse_parser_follows_the_line_rules_across_chunk_boundaries() {
    let stream = b"id: 1\nevent: a\ndata: x\ndata:y\n\n: comment\n\nretry: 5\ndata: z\r\n\r\nevent: b\rdata: w\r\r\n";
    let expected = vec![
        SseEvent {
            event: "a".into(),
            data: "x\ny".into(),
            id: Some("1".into()),
        },
        SseEvent {
            event: "message".into(),
            data: "z".into(),
            id: Some("1".into()),
        },
        SseEvent {
            event: "b".into(),
            data: "w".into(),
            id: Some("1".into()),
        },
    ];
    // Whole, and cut at every position.
    for cut in 0..stream.len() {
        let mut parser = SseParser::default();
        let mut got = parser.feed(&stream[..cut]).expect("valid");
        got.extend(parser.feed(&stream[cut..]).expect("valid"));
        assert_eq!(got, expected, "cut at {cut}");
    }
    let p = Position {
        epoch: Some("e1".into()),
        sequence: 7,
    };
    assert_eq!(
        last_event_id(&Channel::public("news"), &p).as_deref(),
        Some("news~e1~7")
    );
    assert_eq!(
        last_event_id(&Channel::public("news"), &Position::new(7)),
        None
    );
}
