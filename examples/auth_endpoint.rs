//! The channel auth endpoint for whichever provider the environment configures.
//!
//! ```sh
//! # with a provider's variables set (REALTIME_PROVIDER=pusher PUSHER_KEY=… PUSHER_SECRET=…):
//! cargo run --example auth_endpoint
//! # without: a self-hosted server starts in-process and the endpoint signs for it
//! cargo run --example auth_endpoint
//!
//! curl -s -X POST localhost:3000/api/realtime/auth -H 'x-user-id: alice' \
//!      -d socket_id=1234.5678 -d channel_name=private-user-alice        # pusher-js style
//! curl -s -X POST localhost:3000/api/realtime/auth -H 'x-user-id: alice' \
//!      -H 'content-type: application/json' \
//!      -d '{"socket_id":"n.1","channel_name":"presence:lobby"}'        # JSON
//! ```
//!
//! The demo "session" is an `x-user-id` header: a real application reads its session cookie
//! or bearer token in the policy's `user` closure. Rules: everyone may join `presence:lobby`;
//! `private:user:<id>` (Pusher: `private-user-<id>`) only for that user; nothing else.

use axum::http::HeaderMap;
use relayport::auth_endpoint::{AUTH_PATH, AuthEndpoint, SIGNIN_PATH, policy};
use relayport::config::{MapEnv, ProcessEnv};
use relayport::{Channel, ChannelKind, PresenceUser, ProviderConfig};
use serde_json::json;

fn user(headers: &HeaderMap) -> Option<PresenceUser> {
    let id = headers.get("x-user-id")?.to_str().ok()?.trim();
    (!id.is_empty()).then(|| PresenceUser {
        id: id.to_owned(),
        info: json!({ "name": id }),
    })
}

fn can_access_channel(user: &PresenceUser, channel: &Channel) -> bool {
    match channel.kind() {
        ChannelKind::Presence => channel.name() == "lobby",
        ChannelKind::Private => {
            let own = format!("user:{}", user.id);
            let own_pusher = format!("user-{}", user.id);
            channel.name() == own || channel.name() == own_pusher
        }
        ChannelKind::Public => false,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut _server = None;
    let cfg = match ProviderConfig::from_env(&ProcessEnv) {
        Ok(cfg) => cfg,
        Err(_) if std::env::var_os("REALTIME_PROVIDER").is_none() => {
            let server = relayport::selfhosted::server::Server::builder()
                .secret("demo-secret")
                .bind("127.0.0.1:0")
                .await?;
            let url = format!("http://{}", server.local_addr());
            eprintln!(
                "REALTIME_PROVIDER is not set: signing for an in-process self-hosted server at {url}"
            );
            _server = Some(server);
            ProviderConfig::from_env(&MapEnv::from([
                ("REALTIME_PROVIDER", "selfhosted"),
                ("REALTIME_URL", url.as_str()),
                ("REALTIME_SECRET", "demo-secret"),
            ]))?
        }
        Err(e) => return Err(e.into()),
    };
    let app = AuthEndpoint::from_config(&cfg, policy(user, can_access_channel))?.router();
    let addr = std::env::var("AUTH_ENDPOINT_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!(
        "signing for `{}` at http://{addr}{AUTH_PATH} (sign-in: {SIGNIN_PATH}); ctrl-c stops",
        cfg.provider_name()
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
