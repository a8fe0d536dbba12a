//! The auth endpoint (`relayport::auth_endpoint`) through its axum router: each provider's body
//! against its vectors (`tests/vectors/`), and the status codes.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use http_body_util::BodyExt;
use relayport::auth_endpoint::{AUTH_PATH, AuthEndpoint, SIGNIN_PATH, policy};
use relayport::config::MapEnv;
use relayport::{Channel, PresenceUser, ProviderConfig};
use serde_json::{Value, json};
use tower::ServiceExt;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

fn vectors(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/");
    let text = std::fs::read_to_string(format!("{path}{name}")).expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

/// A router whose policy knows one user (given by the `x-user` header as base64url JSON
/// `{"id":…, "info":…}`) and refuses channels whose name contains `forbidden`.
fn router(cfg: &ProviderConfig) -> Router {
    let access = policy(
        |headers: &HeaderMap| {
            let raw = B64URL.decode(headers.get("x-user")?.as_bytes()).ok()?;
            serde_json::from_slice::<PresenceUser>(&raw).ok()
        },
        |_user: &PresenceUser, channel: &Channel| !channel.name().contains("forbidden"),
    );
    AuthEndpoint::from_config(cfg, access)
        .expect("endpoint")
        .router()
}

async fn call(
    app: &Router,
    path: &str,
    content_type: &str,
    body: String,
    user: Option<&Value>,
) -> (StatusCode, Value) {
    let mut req = Request::post(path).header("content-type", content_type);
    if let Some(u) = user {
        req = req.header("x-user", B64URL.encode(u.to_string()));
    }
    let response = app
        .clone()
        .oneshot(req.body(Body::from(body)).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, value)
}

fn form(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("form")
}

fn pusher_config(creds: &Value) -> ProviderConfig {
    ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "pusher"),
        ("PUSHER_APP_ID", creds["appId"].as_str().expect("appId")),
        ("PUSHER_KEY", creds["key"].as_str().expect("key")),
        ("PUSHER_SECRET", creds["secret"].as_str().expect("secret")),
        ("PUSHER_CLUSTER", "eu"),
    ]))
    .expect("pusher config")
}

/// pusher-js posts `socket_id` + `channel_name` (a Pusher name) form-encoded; the body must
/// be the official SDK's, byte for byte. Vectors with a numeric `user_id` are skipped: neutral
/// user ids are strings.
#[tokio::test]
async fn pusher_form_requests_match_the_channel_authorization_vectors() {
    let v = vectors("pusher.json");
    let mut exact = 0;
    for case in v["channel_authorization"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        let presence = &case["presence_data_object"];
        let user = match presence.get("user_id") {
            None => json!({"id": "someone", "info": null}),
            Some(Value::String(id)) => json!({"id": id, "info": presence.get("user_info")}),
            Some(_) => {
                println!("{name}: skipped (numeric user_id; neutral user ids are strings)");
                continue;
            }
        };
        let app = router(&pusher_config(
            &v["credentials"][case["credentials"].as_str().expect("creds")],
        ));
        let body = form(&[
            ("socket_id", case["socket_id"].as_str().expect("socket")),
            ("channel_name", case["channel"].as_str().expect("channel")),
        ]);
        let (status, got) = call(&app, AUTH_PATH, FORM, body, Some(&user)).await;
        assert_eq!(status, StatusCode::OK, "{name}: {got}");
        let expected = &case["expected_response"];
        // serde_json without `preserve_order` sorts the keys of `user_info`; where that
        // changes the SDK's string, compare the data and check the signature over ours.
        let same_order = presence.is_null()
            || serde_json::to_string(presence).ok().as_deref() == expected["channel_data"].as_str();
        if same_order {
            assert_eq!(&got, expected, "{name}");
            exact += 1;
        } else {
            let ours: Value =
                serde_json::from_str(got["channel_data"].as_str().expect("channel_data"))
                    .expect("channel_data JSON");
            assert_eq!(&ours, presence, "{name}");
            let creds = &v["credentials"][case["credentials"].as_str().expect("creds")];
            let signed = format!(
                "{}:{}:{}",
                case["socket_id"].as_str().expect("socket"),
                case["channel"].as_str().expect("channel"),
                got["channel_data"].as_str().expect("channel_data")
            );
            let mac = relayport::auth::hmac_sha256_hex(
                creds["secret"].as_str().expect("secret").as_bytes(),
                signed.as_bytes(),
            );
            assert_eq!(
                got["auth"],
                json!(format!("{}:{mac}", creds["key"].as_str().expect("key"))),
                "{name}"
            );
        }
    }
    assert!(exact >= 4, "only {exact} vectors compared byte for byte");
}

/// `POST /api/realtime/signin` (pusher-js user authentication) against the vectors without a
/// watchlist (the policy gives an id and info, not a watchlist).
#[tokio::test]
async fn pusher_sign_in_matches_the_user_authentication_vectors() {
    let v = vectors("pusher.json");
    let mut compared = 0;
    for case in v["user_authentication"].as_array().expect("cases") {
        let data = &case["user_data_object"];
        if data.get("watchlist").is_some() {
            continue;
        }
        let app = router(&pusher_config(
            &v["credentials"][case["credentials"].as_str().expect("creds")],
        ));
        let user = json!({"id": data["id"], "info": data.get("user_info")});
        let body = form(&[("socket_id", case["socket_id"].as_str().expect("socket"))]);
        let (status, got) = call(&app, SIGNIN_PATH, FORM, body, Some(&user)).await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got, case["expected_response"], "{}", case["name"]);
        compared += 1;
    }
    assert!(compared >= 1);
}

fn selfhosted_config() -> ProviderConfig {
    ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "selfhosted"),
        ("REALTIME_URL", "http://127.0.0.1:9"),
        ("REALTIME_SECRET", "s3cret"),
    ]))
    .expect("config")
}

/// JSON requests (what `HttpAuthorizer` posts) for the self-hosted server: the signature
/// verifies as the server checks it, and the member id is the policy's user, not the client's.
#[tokio::test]
async fn selfhosted_json_bodies_verify_as_the_server_checks_them() {
    use relayport::selfhosted::server::auth::verify_subscription;
    let app = router(&selfhosted_config());
    let user = json!({"id": "alice", "info": null});
    let body = json!({"socket_id": "n.7", "channel_name": "private:orders"}).to_string();
    let (status, got) = call(&app, AUTH_PATH, JSON, body, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let ch = Channel::private("orders");
    assert!(verify_subscription("s3cret", "n.7", &ch, got["auth"].as_str(), None).is_ok());
    assert!(verify_subscription("s3cret", "n.8", &ch, got["auth"].as_str(), None).is_err());

    let body = json!({
        "socket_id": "n.7",
        "channel_name": "presence:room:1",
        "user": {"id": "mallory", "info": {"name": "Alice"}},
    })
    .to_string();
    let (status, got) = call(&app, AUTH_PATH, JSON, body, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let ch = Channel::presence("room:1");
    let member = verify_subscription(
        "s3cret",
        "n.7",
        &ch,
        got["auth"].as_str(),
        got["channel_data"].as_str(),
    )
    .expect("verifies");
    assert_eq!(member, Some(("alice".to_owned(), json!({"name": "Alice"}))));
}

/// Ably: the body is a TokenRequest signed with the configured key, with the vectors' fields
/// (the timestamp and nonce are fresh, so the MAC is checked with the key, not compared).
#[tokio::test]
async fn ably_bodies_are_token_requests_signed_with_the_key() {
    use relayport::ably::token::{ApiKey, TokenRequest};
    let v = vectors("ably.json");
    let case = &v["tokenRequests"][0];
    let key_text = case["key"].as_str().expect("key");
    let cfg = ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "ably"),
        ("ABLY_API_KEY", key_text),
    ]))
    .expect("config");
    let app = router(&cfg);
    let user = json!({"id": "user-1", "info": null});
    let body = json!({"socket_id": "conn-1", "channel_name": "presence:room"}).to_string();
    let (status, got) = call(&app, AUTH_PATH, JSON, body, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    let allowed: Vec<&String> = case["output"].as_object().expect("output").keys().collect();
    for field in got.as_object().expect("object").keys() {
        assert!(allowed.contains(&field), "unexpected field {field}");
    }
    let request: TokenRequest = serde_json::from_value(got).expect("a TokenRequest");
    let key = ApiKey::parse(key_text).expect("key");
    assert!(key.verify(&request));
    assert_eq!(
        request.key_name,
        case["output"]["keyName"].as_str().expect("keyName")
    );
    assert_eq!(request.client_id.as_deref(), Some("user-1"));
    assert!(request.capability.expect("capability").contains("presence"));
}

/// Supabase: an HS256 JWT signed with the project's JWT secret, `sub` the policy's user.
#[tokio::test]
async fn supabase_bodies_are_jwts_signed_with_the_jwt_secret() {
    let cfg = ProviderConfig::from_env(&MapEnv::from([
        ("REALTIME_PROVIDER", "supabase"),
        ("SUPABASE_URL", "http://127.0.0.1:9"),
        ("SUPABASE_JWT_SECRET", "jwt-secret"),
    ]))
    .expect("config");
    let app = router(&cfg);
    let user = json!({"id": "user-1", "info": null});
    let body = form(&[("socket_id", "s-1"), ("channel_name", "presence:room")]);
    let (status, got) = call(&app, AUTH_PATH, FORM, body, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["presence_key"], "user-1");
    let token = got["access_token"].as_str().expect("token");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let mac = relayport::auth::hmac_sha256(
        b"jwt-secret",
        format!("{}.{}", parts[0], parts[1]).as_bytes(),
    );
    assert_eq!(B64URL.encode(mac), parts[2]);
    let claims: Value =
        serde_json::from_slice(&B64URL.decode(parts[1]).expect("b64")).expect("claims");
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["role"], "authenticated");
    assert!(claims["exp"].as_u64() > claims["iat"].as_u64());
}

#[tokio::test]
async fn refusals_and_malformed_input_get_their_status_and_a_json_error() {
    let app = router(&selfhosted_config());
    let user = json!({"id": "alice", "info": null});
    let ok = json!({"socket_id": "n.1", "channel_name": "private:a"}).to_string();
    let cases: Vec<(&str, String, Option<&Value>, StatusCode)> = vec![
        (JSON, ok.clone(), None, StatusCode::UNAUTHORIZED),
        (
            JSON,
            json!({"socket_id": "n.1", "channel_name": "private:forbidden"}).to_string(),
            Some(&user),
            StatusCode::FORBIDDEN,
        ),
        (
            JSON,
            "{not json".into(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            JSON,
            json!({"socket_id": "n.1"}).to_string(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            JSON,
            json!({"socket_id": "", "channel_name": "private:a"}).to_string(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            JSON,
            json!({"socket_id": "n.1", "channel_name": "private:bad name"}).to_string(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            JSON,
            json!({"socket_id": "n.1", "channel_name": "news"}).to_string(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            FORM,
            "socket_id=n.1".into(),
            Some(&user),
            StatusCode::BAD_REQUEST,
        ),
        (
            JSON,
            "x".repeat(64 * 1024),
            Some(&user),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (ct, body, u, expected) in cases {
        let (status, got) = call(&app, AUTH_PATH, ct, body, u).await;
        assert_eq!(status, expected, "{got}");
        if status != StatusCode::PAYLOAD_TOO_LARGE {
            assert!(got["error"].is_string(), "{got}");
        }
    }
    let (status, got) = call(&app, AUTH_PATH, JSON, ok, Some(&user)).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    // No user sign-in on the self-hosted server.
    let (status, got) = call(&app, SIGNIN_PATH, FORM, "socket_id=n.1".into(), Some(&user)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(got["error"].is_string());
    // Pusher: a presence user without an id is malformed input to the signer, never a panic.
    let v = vectors("pusher.json");
    let app = router(&pusher_config(&v["credentials"]["docs"]));
    let (status, _) = call(
        &app,
        AUTH_PATH,
        FORM,
        form(&[("socket_id", "1.2 3"), ("channel_name", "private-a")]),
        Some(&user),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
