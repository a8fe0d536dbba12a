use super::*;

fn env(pairs: &[(&str, &str)]) -> MapEnv {
    pairs
        .iter()
        .fold(MapEnv::default(), |e, (k, v)| e.set(*k, *v))
}

fn config_error(r: Result<ProviderConfig>) -> String {
    match r {
        Err(RealtimeError::Config(m)) => m,
        other => panic!("expected a Config error, got {other:?}"),
    }
}

#[test]
fn pusher_from_env_with_host_overrides() {
    let cfg = ProviderConfig::from_env(&env(&[
        ("REALTIME_PROVIDER", "pusher"),
        ("PUSHER_APP_ID", "1234567"),
        ("PUSHER_KEY", "test-key"),
        ("PUSHER_SECRET", "test-secret"),
        ("PUSHER_HOST", "127.0.0.1"),
        ("PUSHER_PORT", "6001"),
        ("PUSHER_TLS", "false"),
    ]))
    .unwrap();
    let ProviderConfig::Pusher(p) = &cfg else {
        panic!("{cfg:?}")
    };
    assert_eq!(p.key, "test-key");
    assert_eq!(p.app_id.as_deref(), Some("1234567"));
    assert_eq!(p.host.as_deref(), Some("127.0.0.1"));
    assert_eq!(p.port, Some(6001));
    assert_eq!(p.tls, Some(false));
    assert_eq!(p.secret.as_ref().map(Secret::expose), Some("test-secret"));
    assert!(cfg.has_server_secret());
}

#[test]
fn every_provider_loads_from_its_variables() {
    let all = env(&[
        ("PUSHER_KEY", "k"),
        ("PUSHER_CLUSTER", "eu"),
        ("ABLY_API_KEY", "app.key:secret"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon"),
        ("REALTIME_URL", "http://127.0.0.1:8080"),
        ("SOCKETIO_URL", "http://127.0.0.1:3000"),
        ("FIREBASE_DATABASE_URL", "https://db.firebaseio.example"),
    ]);
    for name in PROVIDERS {
        let cfg = ProviderConfig::from_env(&all.clone().set("REALTIME_PROVIDER", name)).unwrap();
        assert_eq!(cfg.provider_name(), name);
    }
    let cfg = ProviderConfig::from_env_for("ably", &all).unwrap();
    assert_eq!(cfg.provider_name(), "ably");
}

#[test]
fn missing_settings_name_the_variable() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[], "REALTIME_PROVIDER"),
        (&[("REALTIME_PROVIDER", "pusher")], "PUSHER_KEY"),
        (
            &[("REALTIME_PROVIDER", "pusher"), ("PUSHER_KEY", "k")],
            "PUSHER_CLUSTER",
        ),
        (&[("REALTIME_PROVIDER", "supabase")], "SUPABASE_URL"),
        (&[("REALTIME_PROVIDER", "selfhosted")], "REALTIME_URL"),
        (
            &[("REALTIME_PROVIDER", "selfhosted"), ("REALTIME_URL", "   ")],
            "REALTIME_URL",
        ),
    ];
    for (vars, name) in cases {
        let msg = config_error(ProviderConfig::from_env(&env(vars)));
        assert!(msg.contains(name), "{msg:?} should name {name}");
    }
}

#[test]
fn malformed_settings_name_the_variable() {
    let base = [
        ("REALTIME_PROVIDER", "pusher"),
        ("PUSHER_KEY", "k"),
        ("PUSHER_HOST", "localhost"),
    ];
    let cases = [
        ("PUSHER_PORT", "sixty", "PUSHER_PORT"),
        ("PUSHER_PORT", "70000", "PUSHER_PORT"),
        ("PUSHER_PORT", "0", "PUSHER_PORT"),
        ("PUSHER_TLS", "maybe", "PUSHER_TLS"),
        (
            "REALTIME_AUTH_ENDPOINT",
            "not a url",
            "REALTIME_AUTH_ENDPOINT",
        ),
    ];
    for (var, value, named) in cases {
        let e = env(&base).set(var, value);
        let msg = config_error(ProviderConfig::from_env(&e));
        assert!(msg.contains(named), "{msg:?} should name {named}");
    }
    let msg = config_error(ProviderConfig::from_env(&env(&[(
        "REALTIME_PROVIDER",
        "soketi",
    )])));
    assert!(
        msg.contains("REALTIME_PROVIDER") && msg.contains("soketi"),
        "{msg}"
    );
    let msg = config_error(ProviderConfig::from_env(&env(&[
        ("REALTIME_PROVIDER", "selfhosted"),
        ("REALTIME_URL", "localhost:8080"),
    ])));
    assert!(msg.contains("REALTIME_URL"), "{msg}");
}

#[test]
fn toml_and_json_files_parse_the_same_settings() {
    let toml = ProviderConfig::from_toml_str(
        r#"
        provider = "selfhosted"
        url = "http://127.0.0.1:8080"
        secret = "s3cret"
        client_id = "alice"
        "#,
    )
    .unwrap();
    let json = ProviderConfig::from_json_str(
        r#"{"provider":"selfhosted","url":"http://127.0.0.1:8080","secret":"s3cret","client_id":"alice"}"#,
    )
    .unwrap();
    assert_eq!(toml, json);
    assert_eq!(toml.client_id(), Some("alice"));
    let dir = std::env::temp_dir().join(format!("realtime-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("c.json");
    std::fs::write(
        &path,
        r#"{"provider":"selfhosted","url":"http://127.0.0.1:8080","secret":"s3cret","client_id":"alice"}"#,
    )
    .unwrap();
    assert_eq!(ProviderConfig::from_file(&path).unwrap(), json);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_files_are_config_errors_naming_the_field() {
    let unknown = config_error(ProviderConfig::from_toml_str(
        "provider = \"pusher\"\nkey = \"k\"\nsecert = \"typo\"\n",
    ));
    assert!(unknown.contains("secert"), "{unknown}");
    let bad_port = config_error(ProviderConfig::from_toml_str(
        "provider = \"pusher\"\nkey = \"k\"\nport = \"x\"\n",
    ));
    assert!(
        bad_port.contains("port") || bad_port.contains("u16"),
        "{bad_port}"
    );
    let missing = config_error(ProviderConfig::from_json_str(r#"{"provider":"pusher"}"#));
    assert!(missing.contains("key"), "{missing}");
    let tag = config_error(ProviderConfig::from_json_str(r#"{"provider":"nope"}"#));
    assert!(tag.contains("nope"), "{tag}");
    let file = config_error(ProviderConfig::from_file("/nonexistent/relayport.toml"));
    assert!(file.contains("/nonexistent/relayport.toml"), "{file}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let cfg = ProviderConfig::from_env(&env(&[
        ("REALTIME_PROVIDER", "supabase"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon-key-value"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service-role-value"),
        ("SUPABASE_JWT_SECRET", "jwt-secret-value"),
    ]))
    .unwrap();
    let shown = format!("{cfg:?}");
    for secret in ["anon-key-value", "service-role-value", "jwt-secret-value"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("https://abc.supabase.co"), "{shown}");
}

#[test]
fn client_side_drops_every_server_secret() {
    let full = env(&[
        ("PUSHER_APP_ID", "1"),
        ("PUSHER_KEY", "k"),
        ("PUSHER_SECRET", "pusher-secret"),
        ("PUSHER_CLUSTER", "eu"),
        (
            "PUSHER_ENCRYPTION_MASTER_KEY_BASE64",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("ABLY_API_KEY", "app.key:ably-secret"),
        ("ABLY_CLIENT_KEY", "app.client:restricted"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon"),
        ("SUPABASE_SERVICE_ROLE_KEY", "service"),
        ("SUPABASE_JWT_SECRET", "jwt"),
        ("REALTIME_URL", "http://127.0.0.1:8080"),
        ("REALTIME_SECRET", "selfhosted-secret"),
        ("SOCKETIO_URL", "http://127.0.0.1:3000"),
        ("SOCKETIO_SECRET", "socketio-secret"),
        ("FIREBASE_DATABASE_URL", "https://db.firebaseio.example"),
        ("FIREBASE_AUTH_TOKEN", "client-id-token"),
    ]);
    for name in PROVIDERS {
        let cfg = ProviderConfig::from_env_for(name, &full).unwrap();
        // Firebase has no server secret: the database's rules decide, the token is the client's.
        assert!(cfg.has_server_secret() || name == "firebase", "{name}");
        let public = cfg.client_side();
        assert!(!public.has_server_secret(), "{name}: {public:?}");
        assert_eq!(public.provider_name(), name);
    }
    let ProviderConfig::Ably(a) = ProviderConfig::from_env_for("ably", &full)
        .unwrap()
        .client_side()
    else {
        panic!("ably")
    };
    assert!(a.api_key.is_none());
    assert_eq!(
        a.client_key.as_ref().map(Secret::expose),
        Some("app.client:restricted")
    );
}

/// Issue 16: the Pusher sign-in, payload-limit and client-event settings, from the
/// environment and from a file, and their malformed values naming the variable.
#[test]
fn pusher_signin_limit_and_prefix_settings() {
    let base = [
        ("REALTIME_PROVIDER", "pusher"),
        ("PUSHER_KEY", "k"),
        ("PUSHER_HOST", "127.0.0.1"),
    ];
    let mut pairs = base.to_vec();
    pairs.extend([
        ("PUSHER_MAX_PAYLOAD", "102400"),
        ("PUSHER_CLIENT_EVENT_PREFIX", "true"),
        (
            "PUSHER_USER_AUTH_ENDPOINT",
            "https://app.example/pusher/user-auth",
        ),
        (
            "PUSHER_USER_DATA",
            r#"{"id":"alice","user_info":{"name":"Alice"}}"#,
        ),
    ]);
    let cfg = ProviderConfig::from_env(&env(&pairs)).unwrap();
    let ProviderConfig::Pusher(p) = &cfg else {
        panic!("{cfg:?}")
    };
    assert_eq!(p.max_payload, Some(102_400));
    assert_eq!(p.client_event_prefix, Some(true));
    assert_eq!(
        p.user_auth_endpoint.as_deref(),
        Some("https://app.example/pusher/user-auth")
    );
    assert_eq!(
        p.user_data,
        Some(serde_json::json!({"id": "alice", "user_info": {"name": "Alice"}}))
    );
    // Public settings: a client keeps them.
    assert_eq!(cfg.client_side(), cfg);
    let file = ProviderConfig::from_toml_str(
        "provider = \"pusher\"\nkey = \"k\"\nhost = \"127.0.0.1\"\nmax_payload = 102400\n\
         client_event_prefix = true\n\
         user_auth_endpoint = \"https://app.example/pusher/user-auth\"\n\
         [user_data]\nid = \"alice\"\nuser_info = { name = \"Alice\" }\n",
    )
    .unwrap();
    assert_eq!(file, cfg);
    for (var, value) in [
        ("PUSHER_MAX_PAYLOAD", "0"),
        ("PUSHER_MAX_PAYLOAD", "10kb"),
        ("PUSHER_CLIENT_EVENT_PREFIX", "maybe"),
        ("PUSHER_USER_AUTH_ENDPOINT", "/pusher/user-auth"),
        ("PUSHER_USER_DATA", "alice"),
        ("PUSHER_USER_DATA", "[1]"),
    ] {
        let mut pairs = base.to_vec();
        pairs.push((var, value));
        let m = config_error(ProviderConfig::from_env(&env(&pairs)));
        assert!(m.contains(var), "{var}={value}: {m}");
    }
}

/// Issue 15 items 2, 3, 5 and 7: the Supabase settings reach the provider and the authorizer,
/// from the environment and from a file.
#[cfg(feature = "supabase")]
#[test]
fn supabase_claims_postgres_changes_presence_and_limit_are_configurable() {
    use relayport_supabase::jwt::{TOPIC_CLAIM, hs256};
    let cfg = ProviderConfig::from_env(&env(&[
        ("REALTIME_PROVIDER", "supabase"),
        ("SUPABASE_URL", "https://abc.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon"),
        (
            "SUPABASE_JWT_SECRET",
            "a-jwt-secret-that-is-long-enough-for-hs256",
        ),
        ("SUPABASE_JWT_ROLE", "member"),
        ("SUPABASE_JWT_CLAIMS", r#"{"org":"acme"}"#),
        (
            "SUPABASE_POSTGRES_CHANGES",
            "db=public:messages:INSERT db=public:todos;audit=private:log:*:actor=eq.1",
        ),
        ("SUPABASE_PRESENCE_PRIVATE", "true"),
        ("SUPABASE_MAX_PAYLOAD", "3000000"),
    ]))
    .unwrap();
    let ProviderConfig::Supabase(s) = &cfg else {
        panic!("{cfg:?}")
    };
    let pg = crate::factory::supabase::postgres_changes(s).unwrap();
    assert_eq!(pg.len(), 2);
    assert_eq!(pg[0].0, relayport_core::Channel::public("db"));
    assert_eq!(pg[0].1.len(), 2);
    assert_eq!(pg[0].1[0].table.as_deref(), Some("messages"));
    assert_eq!(pg[1].1[0].filter.as_deref(), Some("actor=eq.1"));
    let client = crate::factory::supabase::client_config(s).unwrap();
    assert!(client.presence_private);
    assert_eq!(client.max_payload, 3_000_000);
    assert_eq!(
        crate::provider(&cfg).unwrap().capabilities().max_payload,
        3_000_000
    );
    let auth = crate::factory::supabase::authorizer(s).unwrap();
    let body = auth
        .authorize_at(
            &relayport_core::AuthRequest {
                socket_id: "s".into(),
                channel: relayport_core::Channel::private("room"),
                user: None,
            },
            1_700_000_000,
        )
        .unwrap();
    let claims = hs256::verify(
        body.str_field("access_token").unwrap(),
        b"a-jwt-secret-that-is-long-enough-for-hs256",
        1_700_000_000,
    )
    .unwrap();
    assert_eq!(claims["role"], "member");
    assert_eq!(claims["org"], "acme");
    assert_eq!(claims[TOPIC_CLAIM], "room");

    let file = ProviderConfig::from_toml_str(
        r#"
        provider = "supabase"
        url = "https://abc.supabase.co"
        anon_key = "anon"
        jwt_role = "member"
        postgres_changes = ["db=public:messages:INSERT"]
        [jwt_claims]
        org = "acme"
        "#,
    )
    .unwrap();
    let ProviderConfig::Supabase(f) = &file else {
        panic!("{file:?}")
    };
    assert_eq!(f.jwt_claims.as_ref().unwrap()["org"], "acme");
    assert_eq!(
        crate::factory::supabase::postgres_changes(f).unwrap()[0].1[0].event,
        relayport_supabase::PostgresEvent::Insert
    );

    let bad = |k: &str, v: &str| {
        let cfg = ProviderConfig::from_env(&env(&[
            ("REALTIME_PROVIDER", "supabase"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_ANON_KEY", "anon"),
            (k, v),
        ]));
        match cfg {
            Ok(ProviderConfig::Supabase(s)) => crate::factory::supabase::postgres_changes(&s)
                .map(|_| ())
                .unwrap_err()
                .to_string(),
            other => config_error(other),
        }
    };
    assert!(bad("SUPABASE_JWT_CLAIMS", "[1]").contains("SUPABASE_JWT_CLAIMS"));
    assert!(bad("SUPABASE_MAX_PAYLOAD", "big").contains("SUPABASE_MAX_PAYLOAD"));
    assert!(bad("SUPABASE_POSTGRES_CHANGES", "no-equals").contains("no-equals"));
    assert!(bad("SUPABASE_POSTGRES_CHANGES", "db=public:t:TRUNCATE").contains("unknown event"));
}

#[test]
fn socketio_reads_its_variables() {
    let env = env(&[
        ("REALTIME_PROVIDER", "socket.io"),
        ("SOCKETIO_URL", "http://127.0.0.1:3000"),
        ("SOCKETIO_NAMESPACE", "/chat"),
        ("SOCKETIO_AUTH", r#"{"token":"t"}"#),
    ]);
    let cfg = ProviderConfig::from_env(&env).unwrap();
    assert_eq!(cfg.provider_name(), "socketio");
    assert!(
        !format!("{cfg:?}").contains(r#""t""#),
        "the auth payload is redacted"
    );
    let e = ProviderConfig::from_env(&env.clone().set("SOCKETIO_AUTH", "token")).unwrap_err();
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("SOCKETIO_AUTH")),
        "{e}"
    );
    let e = ProviderConfig::from_env(&env.set("SOCKETIO_URL", "")).unwrap_err();
    assert!(
        matches!(&e, RealtimeError::Config(m) if m.contains("SOCKETIO_URL")),
        "{e}"
    );
}

#[test]
fn firebase_from_env_and_file_with_the_token_redacted() {
    let cfg = ProviderConfig::from_env(&env(&[
        ("REALTIME_PROVIDER", "firebase"),
        ("FIREBASE_DATABASE_URL", "https://db.firebaseio.example"),
        ("FIREBASE_AUTH_TOKEN", "id-token-value"),
        ("FIREBASE_ROOT", "apps/chat"),
    ]))
    .unwrap();
    let ProviderConfig::Firebase(f) = &cfg else {
        panic!("{cfg:?}")
    };
    assert_eq!(f.database_url, "https://db.firebaseio.example");
    assert_eq!(f.root.as_deref(), Some("apps/chat"));
    assert_eq!(
        f.auth_token.as_ref().map(Secret::expose),
        Some("id-token-value")
    );
    assert!(!format!("{cfg:?}").contains("id-token-value"));
    assert_eq!(cfg.provider_name(), "firebase");
    let file = ProviderConfig::from_toml_str(
        r#"
        provider = "firebase"
        database_url = "https://db.firebaseio.example"
        auth_token = "id-token-value"
        root = "apps/chat"
        "#,
    )
    .unwrap();
    assert_eq!(file, cfg);
    let missing = config_error(ProviderConfig::from_env(&env(&[(
        "REALTIME_PROVIDER",
        "firebase",
    )])));
    assert!(missing.contains("FIREBASE_DATABASE_URL"), "{missing}");
}
