//! `HttpAuthorizer` against a local axum auth endpoint that signs with the server's
//! authorizer, then end to end: a `RealtimeClient` subscribing private and presence channels
//! of the real server through that endpoint.
#![cfg(all(feature = "client", feature = "server"))]

mod client_support;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use client_support::within;
use relayport_core::{
    AuthRequest, Channel, ChannelAuthorizer, ErrorKind, PresenceUser, RealtimeClient,
};
use relayport_selfhosted::client::{HttpAuthorizer, SelfHostedProvider};
use relayport_selfhosted::server::{SelfHostedAuthorizer, Server};
use serde_json::{Value, json};

const SECRET: &str = "auth-secret";
const USER_TOKEN: &str = "Bearer alice-session";

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Value>>>);

impl Seen {
    fn all(&self) -> Vec<Value> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The app's auth endpoint: checks the user's session header, then signs with the secret —
/// or refuses, depending on the channel, to exercise every answer.
async fn auth(State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    seen.0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(body.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(USER_TOKEN) {
        return (StatusCode::UNAUTHORIZED, "who are you?").into_response();
    }
    let channel = body["channel_name"].as_str().unwrap_or_default().to_owned();
    match channel.as_str() {
        "private:forbidden" => return (StatusCode::FORBIDDEN, "not your room").into_response(),
        "private:boom" => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        "private:garbage" => return (StatusCode::OK, "<html>").into_response(),
        "private:teapot" => return StatusCode::IM_A_TEAPOT.into_response(),
        _ => {}
    }
    let Ok(channel) = Channel::parse(&channel) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let user = body.get("user").and_then(|u| {
        Some(PresenceUser {
            id: u.get("id")?.as_str()?.to_owned(),
            info: u.get("info").cloned().unwrap_or(Value::Null),
        })
    });
    let request = AuthRequest {
        socket_id: body["socket_id"].as_str().unwrap_or_default().to_owned(),
        channel,
        user,
    };
    match SelfHostedAuthorizer::new(SECRET).sign(&request) {
        Ok(signed) => Json(signed.0).into_response(),
        Err(e) => (StatusCode::FORBIDDEN, e.to_string()).into_response(),
    }
}

async fn auth_endpoint() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/realtime/auth", post(auth))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/realtime/auth",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

fn request(channel: &str, user: Option<PresenceUser>) -> AuthRequest {
    AuthRequest {
        socket_id: "n.42".into(),
        channel: Channel::parse(channel).expect("channel"),
        user,
    }
}

#[tokio::test]
async fn posts_the_request_and_returns_the_body_unchanged() {
    let (url, seen) = auth_endpoint().await;
    let authorizer = HttpAuthorizer::new(&url)
        .expect("authorizer")
        .with_header("authorization", USER_TOKEN)
        .expect("header");

    let private = within(
        "private",
        authorizer.authorize(&request("private:room:1", None)),
    )
    .await
    .expect("private");
    let expected = SelfHostedAuthorizer::new(SECRET)
        .sign(&request("private:room:1", None))
        .expect("sign");
    assert_eq!(private, expected);

    let alice = PresenceUser {
        id: "alice".into(),
        info: json!({"name": "Alice"}),
    };
    let presence = within(
        "presence",
        authorizer.authorize(&request("presence:room", Some(alice.clone()))),
    )
    .await
    .expect("presence");
    assert!(presence.str_field("auth").is_some());
    assert_eq!(
        presence.str_field("channel_data"),
        Some(r#"{"user_id":"alice","user_info":{"name":"Alice"}}"#)
    );

    assert_eq!(
        seen.all(),
        vec![
            json!({"socket_id": "n.42", "channel_name": "private:room:1"}),
            json!({
                "socket_id": "n.42",
                "channel_name": "presence:room",
                "user": {"id": "alice", "info": {"name": "Alice"}}
            }),
        ]
    );
}

#[tokio::test]
async fn refusals_and_failures_map_to_error_kinds() {
    let (url, _seen) = auth_endpoint().await;
    let authorizer = HttpAuthorizer::new(&url)
        .expect("authorizer")
        .with_header("authorization", USER_TOKEN)
        .expect("header");
    let cases = [
        ("private:forbidden", ErrorKind::Forbidden),
        ("private:boom", ErrorKind::Connection),
        ("private:garbage", ErrorKind::Protocol),
        ("private:teapot", ErrorKind::Unauthorized),
    ];
    for (channel, kind) in cases {
        let err = within(channel, authorizer.authorize(&request(channel, None)))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{channel}: {err}");
    }
    let forbidden = authorizer
        .authorize(&request("private:forbidden", None))
        .await
        .unwrap_err();
    assert!(
        forbidden.to_string().contains("not your room"),
        "{forbidden}"
    );

    // Without the session header the endpoint says 401.
    let anonymous = HttpAuthorizer::new(&url).expect("authorizer");
    let err = within(
        "anonymous",
        anonymous.authorize(&request("private:a", None)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);

    // Nobody listening: a retryable connection error.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let dead = format!("http://{}/auth", listener.local_addr().expect("addr"));
    drop(listener);
    let err = within(
        "dead endpoint",
        HttpAuthorizer::new(&dead)
            .expect("authorizer")
            .authorize(&request("private:a", None)),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connection);

    for bad in ["nope", "ftp://x/auth"] {
        assert_eq!(
            HttpAuthorizer::new(bad).unwrap_err().kind(),
            ErrorKind::Config
        );
    }
    let err = HttpAuthorizer::new(&url)
        .expect("authorizer")
        .with_header("bad header", "x")
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
}

#[tokio::test]
async fn a_client_subscribes_private_and_presence_channels_through_the_endpoint() {
    let server = Server::builder()
        .secret(SECRET)
        .bind("127.0.0.1:0")
        .await
        .expect("server");
    let (url, seen) = auth_endpoint().await;
    let authorizer = HttpAuthorizer::new(&url)
        .expect("authorizer")
        .with_header("authorization", USER_TOKEN)
        .expect("header");
    let provider =
        SelfHostedProvider::new(&format!("http://{}", server.local_addr())).expect("provider");
    let alice = RealtimeClient::builder(provider)
        .authorizer(Arc::new(authorizer))
        .client_id("alice")
        .build();

    let mut room = within("private subscribe", alice.subscribe("private:room:1"))
        .await
        .expect("private subscribe");
    within(
        "publish",
        alice.publish("private:room:1", "chat", json!({"text": "hi"})),
    )
    .await
    .expect("publish");
    let echo = within("echo", room.recv()).await.expect("echo");
    assert_eq!(echo.data, json!({"text": "hi"}));

    within(
        "presence enter",
        alice.presence_enter("presence:lobby", json!({"name": "Alice"})),
    )
    .await
    .expect("presence");
    let members = within("members", alice.presence_members("presence:lobby"))
        .await
        .expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, "alice");
    assert_eq!(members[0].data, json!({"name": "Alice"}));

    // A refused channel fails that subscription only.
    let err = within("forbidden", alice.subscribe("private:forbidden"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    // The endpoint saw the real socket id of the connection.
    let asked = seen.all();
    let socket_ids: Vec<&str> = asked
        .iter()
        .filter_map(|b| b["socket_id"].as_str())
        .collect();
    assert_eq!(socket_ids.len(), 3);
    assert!(
        socket_ids
            .iter()
            .all(|s| *s == socket_ids[0] && !s.is_empty()),
        "{socket_ids:?}"
    );
    alice.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn form_encoding_for_pusher_style_endpoints() {
    use std::collections::BTreeMap;

    use axum::Form;
    use relayport_selfhosted::client::AuthBody;

    let seen: Arc<Mutex<Vec<BTreeMap<String, String>>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new().route(
        "/auth",
        post(move |Form(form): Form<BTreeMap<String, String>>| {
            let record = record.clone();
            async move {
                record.lock().unwrap_or_else(|p| p.into_inner()).push(form);
                Json(json!({"auth": "signed"}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/auth", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let authorizer = HttpAuthorizer::new(&url)
        .expect("authorizer")
        .with_body(AuthBody::Form);
    let alice = PresenceUser {
        id: "alice".into(),
        info: json!({"name": "Alice"}),
    };
    let got = within(
        "form auth",
        authorizer.authorize(&request("presence:room", Some(alice))),
    )
    .await
    .expect("auth");
    assert_eq!(got.str_field("auth"), Some("signed"));
    let forms = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let expected: BTreeMap<String, String> = [
        ("socket_id", "n.42"),
        ("channel_name", "presence:room"),
        ("user_id", "alice"),
        ("user_info", r#"{"name":"Alice"}"#),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(forms, vec![expected]);
}
