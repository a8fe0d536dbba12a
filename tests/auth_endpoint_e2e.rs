//! The auth endpoint serving real clients: a client built by `relayport::client` from public
//! settings plus `REALTIME_AUTH_ENDPOINT` signs its private and presence subscriptions through
//! the endpoint, against the self-hosted server on loopback.

use std::time::Duration;

use axum::http::HeaderMap;
use relayport::auth_endpoint::{AUTH_PATH, AuthEndpoint, policy};
use relayport::config::MapEnv;
use relayport::selfhosted::server::Server;
use relayport::{Channel, ChannelKind, ErrorKind, OutboundMessage, PresenceUser, ProviderConfig};
use serde_json::json;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sign_through_the_endpoint_and_refusals_reach_them() {
    let server = Server::builder()
        .secret("e2e-secret")
        .bind("127.0.0.1:0")
        .await
        .expect("server");
    let url = format!("http://{}", server.local_addr());
    let backend = ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "selfhosted"),
        ("REALTIME_URL", url.as_str()),
        ("REALTIME_SECRET", "e2e-secret"),
    ]))
    .expect("backend config");
    // The app: everyone is "alice" (a real app reads its session); she may use her own
    // private channel and the lobby.
    let access = policy(
        |_: &HeaderMap| {
            Some(PresenceUser {
                id: "alice".into(),
                info: json!({"name": "Alice"}),
            })
        },
        |user: &PresenceUser, channel: &Channel| match channel.kind() {
            ChannelKind::Private => channel.name() == format!("user:{}", user.id),
            _ => channel.name() == "lobby",
        },
    );
    let app = AuthEndpoint::from_config(&backend, access)
        .expect("endpoint")
        .router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let endpoint = format!("http://{}{AUTH_PATH}", listener.local_addr().expect("addr"));
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });

    // The client side: public settings only, plus the endpoint.
    let client_cfg = ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "selfhosted"),
        ("REALTIME_URL", url.as_str()),
        ("REALTIME_AUTH_ENDPOINT", endpoint.as_str()),
        ("REALTIME_CLIENT_ID", "whoever-the-client-claims"),
    ]))
    .expect("client config");
    assert!(!client_cfg.has_server_secret());
    let client = relayport::client(&client_cfg).expect("client");

    let mut mine = timeout(WAIT, client.subscribe("private:user:alice"))
        .await
        .expect("in time")
        .expect("signed by the endpoint");
    let publisher = relayport::publisher(&backend).expect("publisher");
    publisher
        .publish(&OutboundMessage::new(
            Channel::private("user:alice"),
            "note",
            json!("for alice"),
        ))
        .await
        .expect("published");
    let got = timeout(WAIT, mine.recv())
        .await
        .expect("in time")
        .expect("open");
    assert_eq!(got.data, json!("for alice"));

    let refused = timeout(WAIT, client.subscribe("private:user:bob"))
        .await
        .expect("in time");
    let err = refused.expect_err("the endpoint refuses bob's channel");
    assert_eq!(err.kind(), ErrorKind::Forbidden, "{err}");

    // Presence: the member id is the policy's user, not what the client claimed.
    timeout(WAIT, client.presence_enter("presence:lobby", json!(null)))
        .await
        .expect("in time")
        .expect("entered");
    let members = timeout(WAIT, client.presence_members("presence:lobby"))
        .await
        .expect("in time")
        .expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].id, "alice");
    assert_eq!(members[0].data, json!({"name": "Alice"}));

    client.close().await;
    serving.abort();
    server.shutdown().await;
}
