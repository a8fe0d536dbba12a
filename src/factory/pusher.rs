//! Pusher: `PusherProvider`, `PusherRest`, `PusherAuthorizer` from [`PusherSettings`].
//!
//! User sign-in (`pusher:signin`, needed by apps with user authentication enabled, which
//! close a connection that has not signed in within 30 s): through
//! `PUSHER_USER_AUTH_ENDPOINT` when set, otherwise signed in this process from
//! `PUSHER_USER_DATA` when the trusted configuration holds `PUSHER_SECRET`
//! (`relayport::trusted_client_builder`, the CLI).

use std::sync::Arc;

use relayport_core::{RealtimeError, Result};
use relayport_pusher::rest::DEFAULT_MAX_PAYLOAD;
use relayport_pusher::{
    Credentials, EndpointUserAuthenticator, PusherAuthorizer, PusherConfig, PusherRest,
    UserAuthenticator,
};

use super::build::need;
use crate::config::PusherSettings;

fn key(p: &PusherSettings) -> Result<&str> {
    if p.key.trim().is_empty() {
        return Err(RealtimeError::Config("PUSHER_KEY is empty".into()));
    }
    Ok(&p.key)
}

fn endpoint(p: &PusherSettings) -> Result<Endpoint<'_>> {
    match (&p.host, &p.cluster) {
        (Some(host), _) => {
            let tls = p.tls.unwrap_or(true);
            let port = p.port.unwrap_or(if tls { 443 } else { 80 });
            Ok(Endpoint::Host(host, port, tls))
        }
        (None, Some(cluster)) if p.port.is_none() && p.tls.is_none() => {
            Ok(Endpoint::Cluster(cluster))
        }
        (None, Some(_)) => Err(RealtimeError::Config(
            "PUSHER_PORT and PUSHER_TLS need PUSHER_HOST (a cluster is always TLS on 443)".into(),
        )),
        (None, None) => Err(RealtimeError::Config(
            "PUSHER_CLUSTER is not set (set PUSHER_CLUSTER, or PUSHER_HOST for a Pusher-compatible server)".into(),
        )),
    }
}

enum Endpoint<'a> {
    Cluster(&'a str),
    Host(&'a str, u16, bool),
}

/// The payload limit: 10 KB on the hosted cluster, `PUSHER_MAX_PAYLOAD` on a custom host.
fn max_payload(p: &PusherSettings) -> Result<usize> {
    match (p.max_payload, &p.host) {
        (None, _) => Ok(DEFAULT_MAX_PAYLOAD),
        (Some(0), _) => Err(RealtimeError::Config(
            "PUSHER_MAX_PAYLOAD must be a positive number of bytes".into(),
        )),
        (Some(n), Some(_)) => Ok(n),
        (Some(_), None) => Err(RealtimeError::Config(
            "PUSHER_MAX_PAYLOAD applies to a self-hosted server (PUSHER_HOST); the hosted cluster's limit is 10 KB".into(),
        )),
    }
}

/// The client configuration: key, host, port, TLS, limits and user sign-in. It has no field
/// for a secret; `trusted` (the full settings of a process holding the secret) lets it sign
/// the user in here.
pub(crate) fn client_config(
    p: &PusherSettings,
    trusted: Option<&PusherSettings>,
) -> Result<PusherConfig> {
    let key = key(p)?;
    let config = match endpoint(p)? {
        Endpoint::Cluster(c) => PusherConfig::cluster(key, c),
        Endpoint::Host(h, port, tls) => PusherConfig::host(key, h, port, tls),
    }
    .with_max_payload(max_payload(p)?)
    .with_client_event_prefix(p.client_event_prefix.unwrap_or(false));
    Ok(match user_authenticator(p, trusted)? {
        Some(a) => config.with_user_authenticator(a),
        None => config,
    })
}

/// Who signs the user in, if anyone: the endpoint, or this process with the secret.
fn user_authenticator(
    p: &PusherSettings,
    trusted: Option<&PusherSettings>,
) -> Result<Option<Arc<dyn UserAuthenticator>>> {
    if let Some(url) = &p.user_auth_endpoint {
        let endpoint = EndpointUserAuthenticator::new(url.clone()).map_err(|e| {
            RealtimeError::Config(format!(
                "PUSHER_USER_AUTH_ENDPOINT: {}",
                super::strip_config(&e)
            ))
        })?;
        return Ok(Some(Arc::new(endpoint)));
    }
    let Some(user_data) = &p.user_data else {
        return Ok(None);
    };
    match user_data.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => {}
        _ => {
            return Err(RealtimeError::Config(
                "PUSHER_USER_DATA needs a non-empty string `id`".into(),
            ));
        }
    }
    // Signed with the secret: only a trusted client can. A client built from the public
    // settings alone (`relayport::client`) signs in through PUSHER_USER_AUTH_ENDPOINT, or not
    // at all (the same configuration also serves the backend, which holds the secret).
    match trusted.filter(|full| full.secret.is_some()) {
        Some(full) => Ok(Some(
            authorizer(full)?.user_authenticator(user_data.clone()),
        )),
        None => Ok(None),
    }
}

fn credentials(p: &PusherSettings) -> Result<Credentials> {
    let app_id = p
        .app_id
        .as_deref()
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            RealtimeError::Config("PUSHER_APP_ID is not set (the publisher needs it)".into())
        })?;
    let secret = need(
        p.secret.as_ref(),
        "PUSHER_SECRET",
        "server side only: publishing and signing need it",
    )?;
    let creds = Credentials::new(app_id, key(p)?, secret);
    match &p.encryption_master_key_base64 {
        None => Ok(creds),
        Some(k) => creds
            .with_encryption_master_key_base64(k.expose())
            .map_err(|e| {
                RealtimeError::Config(format!(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is malformed: {}",
                    super::strip_config(&e)
                ))
            }),
    }
}

/// The HTTP API publisher.
pub(crate) fn rest(p: &PusherSettings) -> Result<PusherRest> {
    let creds = credentials(p)?;
    Ok(match endpoint(p)? {
        Endpoint::Cluster(c) => PusherRest::cluster(creds, c),
        Endpoint::Host(h, port, tls) => PusherRest::host(creds, h, port, tls),
    }
    .with_max_payload(max_payload(p)?))
}

/// The channel authorizer (also signs users in).
pub(crate) fn authorizer(p: &PusherSettings) -> Result<PusherAuthorizer> {
    let secret = need(
        p.secret.as_ref(),
        "PUSHER_SECRET",
        "server side only: signing needs it",
    )?;
    let app_id = p.app_id.clone().unwrap_or_default();
    let creds = Credentials::new(app_id, key(p)?, secret);
    let creds = match &p.encryption_master_key_base64 {
        None => creds,
        Some(k) => creds
            .with_encryption_master_key_base64(k.expose())
            .map_err(|e| {
                RealtimeError::Config(format!(
                    "PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is malformed: {}",
                    super::strip_config(&e)
                ))
            })?,
    };
    Ok(PusherAuthorizer::new(creds))
}

#[cfg(test)]
mod tests {
    use relayport_core::ErrorKind;
    use serde_json::json;

    use super::*;
    use crate::config::{MapEnv, ProviderConfig};

    fn settings(pairs: &[(&str, &str)]) -> PusherSettings {
        let env = pairs
            .iter()
            .fold(MapEnv::from([("PUSHER_KEY", "k")]), |e, (k, v)| {
                e.set(*k, *v)
            });
        match ProviderConfig::from_env_for("pusher", &env).unwrap() {
            ProviderConfig::Pusher(p) => p,
            other => panic!("{other:?}"),
        }
    }

    fn host(extra: &[(&str, &str)]) -> PusherSettings {
        let mut pairs = vec![
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_SECRET", "s"),
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_TLS", "false"),
        ];
        pairs.extend_from_slice(extra);
        settings(&pairs)
    }

    /// Issue 16 defect 3: the hosted cluster keeps 10 KB; a custom host takes
    /// PUSHER_MAX_PAYLOAD, checked at and just past the limit before anything is sent.
    #[tokio::test]
    async fn rest_payload_limit_is_10_kb_on_the_cluster_and_configurable_on_a_host() {
        let cluster = settings(&[
            ("PUSHER_APP_ID", "1"),
            ("PUSHER_SECRET", "s"),
            ("PUSHER_CLUSTER", "eu"),
        ]);
        assert_eq!(rest(&cluster).unwrap().max_payload(), 10 * 1024);
        assert_eq!(
            client_config(&cluster, None).unwrap().max_payload,
            10 * 1024
        );
        let mut forced = cluster.clone();
        forced.max_payload = Some(100 * 1024);
        let e = rest(&forced).unwrap_err();
        assert!(e.to_string().contains("PUSHER_MAX_PAYLOAD"), "{e}");
        assert_eq!(host(&[]).max_payload, None);
        assert_eq!(rest(&host(&[])).unwrap().max_payload(), 10 * 1024);

        let limit = 100 * 1024;
        let custom = host(&[("PUSHER_MAX_PAYLOAD", "102400")]);
        assert_eq!(client_config(&custom, None).unwrap().max_payload, limit);
        let api = rest(&custom).unwrap();
        // A string is sent verbatim: its length is the payload size.
        let at = json!("x".repeat(limit));
        assert!(
            api.trigger_request(&["c"], "e", &at, &Default::default())
                .is_ok()
        );
        let past = json!("x".repeat(limit + 1));
        let e = api
            .trigger_request(&["c"], "e", &past, &Default::default())
            .unwrap_err();
        assert_eq!(
            e,
            RealtimeError::PayloadTooLarge {
                size: limit + 1,
                limit
            }
        );
        // Through the facade's publisher too: refused before any request (nothing listens
        // on the port).
        let publisher = crate::publisher(&ProviderConfig::Pusher(custom)).unwrap();
        let big = relayport_core::OutboundMessage::new(
            relayport_core::Channel::public("c"),
            "e",
            json!("x".repeat(limit + 1)),
        );
        assert_eq!(
            publisher.publish(&big).await.unwrap_err().kind(),
            ErrorKind::PayloadTooLarge
        );
    }

    /// Issue 16 defect 1: who signs the user in. The endpoint when set; otherwise the
    /// secret of a trusted configuration; a client from the public settings alone does not
    /// sign in; user data without an `id` is refused.
    #[test]
    fn user_sign_in_is_wired_from_the_settings() {
        let data = [("PUSHER_USER_DATA", r#"{"id":"alice"}"#)];
        let full = host(&data);
        let public = match ProviderConfig::Pusher(full.clone()).client_side() {
            ProviderConfig::Pusher(p) => p,
            other => panic!("{other:?}"),
        };
        assert!(public.secret.is_none());
        let trusted = client_config(&public, Some(&full)).unwrap();
        assert!(trusted.user_authenticator.is_some());
        assert!(
            client_config(&public, None)
                .unwrap()
                .user_authenticator
                .is_none()
        );
        assert!(
            client_config(&host(&[]), Some(&host(&[])))
                .unwrap()
                .user_authenticator
                .is_none()
        );
        let endpoint = host(&[("PUSHER_USER_AUTH_ENDPOINT", "http://127.0.0.1:9/user-auth")]);
        assert!(
            client_config(&endpoint, None)
                .unwrap()
                .user_authenticator
                .is_some()
        );
        let nameless = host(&[("PUSHER_USER_DATA", r#"{"name":"x"}"#)]);
        let e = client_config(&nameless, Some(&nameless)).unwrap_err();
        assert!(e.to_string().contains("PUSHER_USER_DATA"), "{e}");
        let prefixed = host(&[("PUSHER_CLIENT_EVENT_PREFIX", "1")]);
        assert!(client_config(&prefixed, None).unwrap().client_event_prefix);
        assert!(!client_config(&host(&[]), None).unwrap().client_event_prefix);
    }

    /// Issue 16 defect 1 end to end through the facade, against sockudo with user
    /// authentication enabled: a trusted client built from PUSHER_USER_DATA signs in, and an
    /// event sent to the user arrives on `server-to-user`.
    #[tokio::test]
    async fn a_trusted_client_signs_in_from_the_configuration() {
        use relayport_pusher::testing::{APP_ID, KEY, SECRET, Sockudo};
        let Some(server) = Sockudo::start().await else {
            return;
        };
        let port = server.port.to_string();
        let cfg = ProviderConfig::from_env(&MapEnv::from([
            ("REALTIME_PROVIDER", "pusher"),
            ("PUSHER_APP_ID", APP_ID),
            ("PUSHER_KEY", KEY),
            ("PUSHER_SECRET", SECRET),
            ("PUSHER_HOST", "127.0.0.1"),
            ("PUSHER_PORT", port.as_str()),
            ("PUSHER_TLS", "false"),
            ("PUSHER_USER_DATA", r#"{"id":"facade-user"}"#),
        ]))
        .unwrap();
        let client = crate::trusted_client_builder(&cfg).unwrap().build();
        let mut user = client
            .subscribe(relayport_pusher::USER_CHANNEL)
            .await
            .unwrap();
        let ProviderConfig::Pusher(p) = &cfg else {
            unreachable!()
        };
        rest(p)
            .unwrap()
            .send_to_user("facade-user", "hello", &json!({"n": 1}))
            .await
            .unwrap();
        let m = tokio::time::timeout(std::time::Duration::from_secs(15), async {
            loop {
                let m = user.recv().await.expect("open");
                if m.event == "hello" {
                    return m;
                }
            }
        })
        .await
        .expect("the user's event in time");
        assert_eq!(m.data, json!({"n": 1}));
        // An untrusted client from the same configuration is not signed in.
        let bare = crate::client(&cfg).unwrap();
        let e = bare
            .subscribe(relayport_pusher::USER_CHANNEL)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config, "{e}");
        bare.close().await;
        client.close().await;
    }
}
