use super::*;
use crate::config::{MapEnv, PROVIDERS};

fn full_env() -> MapEnv {
    MapEnv::from([
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_KEY", "pusher-key"),
        ("PUSHER_SECRET", "pusher-secret-value"),
        ("PUSHER_HOST", "127.0.0.1"),
        ("PUSHER_PORT", "6001"),
        ("PUSHER_TLS", "false"),
        ("ABLY_API_KEY", "app.server:ably-server-secret"),
        ("ABLY_CLIENT_KEY", "app.client:ably-client-secret"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon-key-value"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service-role-value"),
        ("SUPABASE_JWT_SECRET", "jwt-secret-value"),
        ("REALTIME_URL", "http://127.0.0.1:8080"),
        ("REALTIME_SECRET", "selfhosted-secret-value"),
        ("SOCKETIO_URL", "http://127.0.0.1:3000"),
        ("SOCKETIO_SECRET", "socketio-secret-value"),
        ("FIREBASE_DATABASE_URL", "https://db.firebaseio.example"),
        ("FIREBASE_AUTH_TOKEN", "firebase-id-token-value"),
    ])
}

fn cfg(name: &str, env: &MapEnv) -> ProviderConfig {
    ProviderConfig::from_env_for(name, env).unwrap()
}

fn err<T>(r: Result<T>) -> RealtimeError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn every_provider_builds_client_publisher_and_authorizer() {
    let env = full_env();
    for name in PROVIDERS {
        let c = cfg(name, &env);
        assert_eq!(provider(&c).unwrap().name(), name);
        let client = client(&c).unwrap();
        assert_eq!(client.provider_name(), name);
        client.close().await;
        publisher(&c).unwrap();
        authorizer(&c).unwrap();
        trusted_client_builder(&c).unwrap().build().close().await;
    }
}

#[test]
fn clients_are_built_from_public_settings_only() {
    let env = full_env();
    // Pusher: the client configuration has no secret field at all; its key and host are kept.
    let c = cfg("pusher", &env);
    let ProviderConfig::Pusher(p) = c.client_side() else {
        panic!()
    };
    let pc = pusher::client_config(&p, None).unwrap();
    assert_eq!(
        pc.url(),
        format!("ws://127.0.0.1:6001{}", pc.path_and_query())
    );
    assert!(!format!("{pc:?}").contains("pusher-secret-value"));
    // Ably: the restricted client key, never the server key.
    let ProviderConfig::Ably(a) = cfg("ably", &env).client_side() else {
        panic!()
    };
    let ac = ably::client_config(&a, None).unwrap();
    match &ac.credentials {
        relayport_ably::Credentials::Key(k) => {
            assert_eq!(k.full(), "app.client:ably-client-secret")
        }
        other => panic!("{other:?}"),
    }
    // Supabase: the anon key, never the service-role key or the JWT secret.
    let ProviderConfig::Supabase(s) = cfg("supabase", &env).client_side() else {
        panic!()
    };
    let sc = supabase::client_config(&s).unwrap();
    assert_eq!(sc.api_key, "anon-key-value");
    // Self-hosted: no publish token (it would be the secret).
    let ProviderConfig::SelfHosted(s) = cfg("selfhosted", &env).client_side() else {
        panic!()
    };
    let shown = format!("{:?}", selfhosted::provider(&s).unwrap());
    assert!(shown.contains("publish_token: None"), "{shown}");
}

#[test]
fn a_client_without_public_credentials_is_a_config_error() {
    let env = MapEnv::from([("ABLY_API_KEY", "app.server:secret")]);
    let e = err(client(&cfg("ably", &env)));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("ABLY_CLIENT_KEY")),
        "{e}"
    );
    // A trusted process may still connect: token requests are signed locally.
    let trusted = trusted_client_builder(&cfg("ably", &env));
    assert!(trusted.is_ok());
    let env = MapEnv::from([("SUPABASE_URL", "https://abc.supabase.co")]);
    let e = err(client(&cfg("supabase", &env)));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("SUPABASE_ANON_KEY")),
        "{e}"
    );
}

#[test]
fn server_pieces_without_secrets_name_the_missing_variable() {
    let env = MapEnv::from([
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_KEY", "k"),
        ("PUSHER_CLUSTER", "eu"),
        ("ABLY_CLIENT_KEY", "app.client:x"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon"),
        ("REALTIME_URL", "http://127.0.0.1:8080"),
    ]);
    let expected = [
        ("pusher", "PUSHER_SECRET", "PUSHER_SECRET"),
        ("ably", "ABLY_API_KEY", "ABLY_API_KEY"),
        (
            "supabase",
            "SUPABASE_SERVICE_ROLE_KEY",
            "SUPABASE_JWT_SECRET",
        ),
        ("selfhosted", "REALTIME_SECRET", "REALTIME_SECRET"),
    ];
    for (name, for_publisher, for_authorizer) in expected {
        let c = cfg(name, &env);
        let e = err(publisher(&c));
        assert!(
            matches!(&e, RealtimeError::Config(m) if m.contains(for_publisher)),
            "{name}: {e}"
        );
        let e = err(authorizer(&c));
        assert!(
            matches!(&e, RealtimeError::Config(m) if m.contains(for_authorizer)),
            "{name}: {e}"
        );
    }
}

#[test]
fn malformed_values_are_config_errors() {
    let e = err(publisher(&cfg(
        "ably",
        &MapEnv::from([("ABLY_API_KEY", "no-colon")]),
    )));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("ABLY_API_KEY")),
        "{e}"
    );
    let e = err(client(&cfg(
        "ably",
        &MapEnv::from([("ABLY_CLIENT_KEY", "no-colon")]),
    )));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("ABLY_CLIENT_KEY")),
        "{e}"
    );
    let e = err(authorizer(&cfg(
        "pusher",
        &MapEnv::from([
            ("PUSHER_KEY", "k"),
            ("PUSHER_CLUSTER", "eu"),
            ("PUSHER_SECRET", "s"),
            ("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", "too-short"),
        ]),
    )));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("PUSHER_ENCRYPTION_MASTER_KEY_BASE64")),
        "{e}"
    );
    let e = err(client(&cfg(
        "pusher",
        &MapEnv::from([
            ("PUSHER_KEY", "k"),
            ("PUSHER_CLUSTER", "eu"),
            ("PUSHER_PORT", "1"),
        ]),
    )));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("PUSHER_HOST")),
        "{e}"
    );
    let e = err(client(&cfg(
        "selfhosted",
        &MapEnv::from([("REALTIME_URL", "ftp://x")]),
    )));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("REALTIME_URL")),
        "{e}"
    );
}

#[tokio::test]
async fn the_auth_endpoint_and_client_id_reach_the_client() {
    let env = full_env()
        .set(
            "REALTIME_AUTH_ENDPOINT",
            "http://127.0.0.1:1/api/realtime/auth",
        )
        .set("REALTIME_CLIENT_ID", "alice");
    let c = cfg("selfhosted", &env);
    assert_eq!(c.client_id(), Some("alice"));
    client(&c).unwrap().close().await;
}

#[tokio::test]
async fn realtime_echo_reaches_every_providers_client() {
    for name in PROVIDERS {
        let default = client(&cfg(name, &full_env())).unwrap();
        assert!(default.echo(), "{name}: echo is on by default");
        default.close().await;
        let off = client(&cfg(name, &full_env().set("REALTIME_ECHO", "false"))).unwrap();
        assert!(!off.echo(), "{name}: REALTIME_ECHO=false");
        off.close().await;
    }
    let bad = ProviderConfig::from_env(
        &full_env()
            .set("REALTIME_PROVIDER", "selfhosted")
            .set("REALTIME_ECHO", "sometimes"),
    )
    .unwrap_err();
    assert!(bad.to_string().contains("REALTIME_ECHO"), "{bad}");
}

#[test]
fn socketio_settings_reach_its_client_publisher_and_authorizer() {
    let env = MapEnv::from([
        ("SOCKETIO_URL", "https://io.example.com"),
        ("SOCKETIO_NAMESPACE", "chat"),
        ("SOCKETIO_PATH", "/rt/"),
        ("SOCKETIO_AUTH", r#"{"token":"client-token-value"}"#),
        ("SOCKETIO_SECRET", "socketio-secret-value"),
    ]);
    let c = cfg("socketio", &env);
    let ProviderConfig::SocketIo(s) = c.client_side() else {
        panic!("socketio")
    };
    assert!(s.secret.is_none());
    let sc = socketio::client_config(&s).unwrap();
    assert_eq!(sc.namespace, "/chat");
    assert_eq!(
        sc.websocket_url(),
        "wss://io.example.com/rt/?EIO=4&transport=websocket"
    );
    assert_eq!(
        sc.auth,
        Some(serde_json::json!({"token": "client-token-value"}))
    );
    let shown = format!("{:?} {:?}", provider(&c).unwrap().name(), sc);
    assert!(!shown.contains("client-token-value"), "{shown}");
    assert!(!format!("{c:?}").contains("socketio-secret-value"));
    publisher(&c).unwrap();
    authorizer(&c).unwrap();
    // Without the secret, the server pieces name the variable.
    let public = cfg(
        "socketio",
        &MapEnv::from([("SOCKETIO_URL", "http://127.0.0.1:3000")]),
    );
    let e = err(publisher(&public));
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("SOCKETIO_SECRET")),
        "{e}"
    );
    // Event names from a file; a misspelt one is a configuration error.
    let file = ProviderConfig::from_toml_str(
        "provider = \"socketio\"\nurl = \"http://127.0.0.1:3000\"\n[events]\nsubscribe = \"chat:join\"\n",
    )
    .unwrap();
    let ProviderConfig::SocketIo(s) = &file else {
        panic!("socketio")
    };
    assert_eq!(
        socketio::client_config(s).unwrap().events.subscribe,
        "chat:join"
    );
    let bad = ProviderConfig::from_toml_str(
        "provider = \"socketio\"\nurl = \"http://127.0.0.1:3000\"\n[events]\nsubscrib = \"x\"\n",
    )
    .unwrap();
    assert!(matches!(err(client(&bad)), RealtimeError::Config(_)));
}
