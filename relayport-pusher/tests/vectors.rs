//! Every entry of `testdata/vectors/pusher.json` (official `pusher` 5.3.4 server SDK),
//! reproduced byte for byte by iterating the file: a new entry needs no new code.

mod common;

use std::collections::BTreeMap;

use common::{OrderedJson, vector, vector_text};
use relayport_core::auth::hmac_sha256_hex;
use relayport_core::{ErrorKind, RealtimeError};
use relayport_pusher::encryption::{decrypt, shared_secret};
use relayport_pusher::rest::{BatchEvent, RestRequest, TriggerOptions};
use relayport_pusher::signing::sign;
use relayport_pusher::webhooks::WebhookVerifier;
use relayport_pusher::{Credentials, PusherAuthorizer, PusherRest};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Creds {
    #[serde(rename = "appId")]
    app_id: String,
    key: String,
    secret: String,
    #[serde(rename = "encryptionMasterKeyBase64")]
    master_key: Option<String>,
}

#[derive(Deserialize)]
struct ChannelAuthVector {
    name: String,
    credentials: String,
    socket_id: String,
    channel: String,
    presence_data_object: Option<OrderedJson>,
    string_to_sign: String,
    expected_response: Value,
}

#[derive(Deserialize)]
struct UserAuthVector {
    name: String,
    credentials: String,
    socket_id: String,
    user_data_object: OrderedJson,
    string_to_sign: String,
    expected_response: Value,
}

#[derive(Deserialize)]
struct File {
    credentials: BTreeMap<String, Creds>,
    channel_authorization: Vec<ChannelAuthVector>,
    user_authentication: Vec<UserAuthVector>,
}

fn file() -> File {
    serde_json::from_str(&vector_text("pusher.json")).expect("pusher.json parses")
}

fn credentials(all: &BTreeMap<String, Creds>, name: &str) -> Credentials {
    let c = &all[name];
    let creds = Credentials::new(&c.app_id, &c.key, &c.secret);
    match &c.master_key {
        Some(k) => creds
            .with_encryption_master_key_base64(k)
            .expect("master key"),
        None => creds,
    }
}

fn creds_from_value(v: &Value, name: &str) -> Credentials {
    let all: BTreeMap<String, Creds> =
        serde_json::from_value(v["credentials"].clone()).expect("credentials");
    credentials(&all, name)
}

/// The token's hex part must be the HMAC of the vector's `string_to_sign` (so the string we
/// sign is the SDK's, not just the result).
fn assert_signs(creds: &Credentials, string_to_sign: &str, token: &str, name: &str) {
    let expected = format!(
        "{}:{}",
        creds.key,
        hmac_sha256_hex(creds.secret.as_bytes(), string_to_sign.as_bytes())
    );
    assert_eq!(token, expected, "{name}: string_to_sign");
}

#[test]
fn channel_authorization_vectors() {
    let f = file();
    assert!(!f.channel_authorization.is_empty());
    for v in &f.channel_authorization {
        let creds = credentials(&f.credentials, &v.credentials);
        let a = PusherAuthorizer::new(creds.clone());
        let body = a
            .authorize_channel(&v.socket_id, &v.channel, v.presence_data_object.as_ref())
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(body.0, v.expected_response, "{}", v.name);
        assert_signs(
            &creds,
            &v.string_to_sign,
            body.str_field("auth").unwrap(),
            &v.name,
        );
    }
}

#[test]
fn user_authentication_vectors() {
    let f = file();
    assert!(!f.user_authentication.is_empty());
    for v in &f.user_authentication {
        let creds = credentials(&f.credentials, &v.credentials);
        let a = PusherAuthorizer::new(creds.clone());
        let body = a
            .authenticate_user(&v.socket_id, &v.user_data_object)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(body.0, v.expected_response, "{}", v.name);
        assert_signs(
            &creds,
            &v.string_to_sign,
            body.str_field("auth").unwrap(),
            &v.name,
        );
    }
}

#[test]
fn encrypted_channel_authorization_vector() {
    let all = vector("pusher.json");
    let v = &all["encrypted_channel"]["authorization"];
    let creds = creds_from_value(&all, "rtk")
        .with_encryption_master_key_base64(v["encryption_master_key_base64"].as_str().unwrap())
        .unwrap();
    let channel = v["channel"].as_str().unwrap();
    let secret = shared_secret(channel, &creds.encryption_master_key.unwrap());
    assert_eq!(
        hex::encode(secret),
        v["shared_secret_hex"].as_str().unwrap()
    );
    let a = PusherAuthorizer::new(creds.clone());
    let body = a
        .authorize_channel(v["socket_id"].as_str().unwrap(), channel, None::<&()>)
        .unwrap();
    assert_eq!(body.0, v["expected_response"]);
    assert_signs(
        &creds,
        v["string_to_sign"].as_str().unwrap(),
        body.str_field("auth").unwrap(),
        "encrypted",
    );
}

#[test]
fn encrypted_trigger_vector() {
    let all = vector("pusher.json");
    let v = &all["encrypted_channel"]["trigger"];
    let channel = all["encrypted_channel"]["authorization"]["channel"]
        .as_str()
        .unwrap();
    let creds = creds_from_value(&all, "rtk");
    let nonce: [u8; 24] = hex::decode(v["nonce_hex"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let req = &v["request"];
    let ts: u64 = req["query_params"]["auth_timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let rest = PusherRest::cluster(
        creds.clone(),
        all["credentials"]["rtk"]["cluster"].as_str().unwrap(),
    )
    .with_fixed_timestamp(ts)
    .with_fixed_nonce(nonce);
    let built = rest
        .trigger_request(
            &[channel],
            v["event"].as_str().unwrap(),
            &v["data_object"],
            &TriggerOptions::default(),
        )
        .unwrap();
    assert_request(&built, req, "encrypted trigger");
    // The ciphertext decrypts back to the plaintext with the channel's shared secret.
    let body: Value = serde_json::from_str(built.body.as_deref().unwrap()).unwrap();
    let secret = shared_secret(channel, &creds.encryption_master_key.unwrap());
    let plain = decrypt(&body["data"], &secret).unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        v["plaintext"].as_str().unwrap()
    );
    let payload: Value = serde_json::from_str(body["data"].as_str().unwrap()).unwrap();
    assert_eq!(payload["nonce"], v["nonce_base64"]);
    assert_eq!(payload["ciphertext"], v["ciphertext_base64"]);
}

fn header<'a>(v: &'a Value, name: &str) -> Option<&'a str> {
    v["headers"][name].as_str()
}

#[test]
fn webhook_vectors_strict_match_the_sdk() {
    let all = vector("pusher.json");
    let hooks = all["webhooks"].as_array().unwrap();
    assert!(!hooks.is_empty());
    for v in hooks {
        let name = v["name"].as_str().unwrap();
        let creds = creds_from_value(&all, v["credentials"].as_str().unwrap());
        let verifier = WebhookVerifier::new(&creds.key, &creds.secret).strict_content_type(true);
        let got = verifier.verify(
            header(v, "x-pusher-key"),
            header(v, "x-pusher-signature"),
            header(v, "content-type"),
            v["raw_body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(
            got.is_ok(),
            v["sdk_is_valid"].as_bool().unwrap(),
            "{name}: {got:?}"
        );
        match got {
            Ok(hook) => assert_eq!(
                serde_json::to_value(&hook.events).unwrap(),
                v["sdk_events"],
                "{name}"
            ),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::Unauthorized | ErrorKind::Protocol),
                "{name}: {e}"
            ),
        }
    }
}

#[test]
fn webhook_vectors_lenient_accepts_only_a_charset_suffix_more() {
    let all = vector("pusher.json");
    for v in all["webhooks"].as_array().unwrap() {
        let name = v["name"].as_str().unwrap();
        let creds = creds_from_value(&all, v["credentials"].as_str().unwrap());
        let verifier = WebhookVerifier::new(&creds.key, &creds.secret);
        let ct = header(v, "content-type").unwrap();
        let got = verifier.verify(
            header(v, "x-pusher-key"),
            header(v, "x-pusher-signature"),
            Some(ct),
            v["raw_body"].as_str().unwrap().as_bytes(),
        );
        // The default verifier differs from the SDK only by accepting parameters after
        // `application/json` (the protocol checklist's advice).
        let only_charset_differs = ct.starts_with("application/json;");
        let expected = v["sdk_is_valid"].as_bool().unwrap() || only_charset_differs;
        assert_eq!(got.is_ok(), expected, "{name}");
    }
}

#[test]
fn webhook_garbage_never_panics() {
    let v = WebhookVerifier::new("k", "s");
    let body = b"{\"time_ms\":1,\"events\":[]}";
    let good = hmac_sha256_hex(b"s", body);
    for sig in [
        "",
        "zz",
        "\u{1F680}",
        &good[..63],
        &good.to_uppercase(),
        "0x00",
    ] {
        assert!(
            v.verify(Some("k"), Some(sig), Some("application/json"), body)
                .is_err(),
            "{sig}"
        );
    }
    assert!(
        v.verify(Some("k"), None, Some("application/json"), body)
            .is_err()
    );
    assert!(
        v.verify(None, Some(&good), Some("application/json"), body)
            .is_err()
    );
    assert!(v.verify(Some("k"), Some(&good), None, body).is_err());
    // A validly signed body that is not a webhook is an error too.
    let junk = b"not json";
    let sig = hmac_sha256_hex(b"s", junk);
    assert_eq!(
        v.verify(Some("k"), Some(&sig), Some("application/json"), junk)
            .unwrap_err()
            .kind(),
        ErrorKind::Protocol
    );
    assert!(
        v.verify(Some("k"), Some(&good), Some("application/json"), body)
            .is_ok()
    );
}

#[test]
fn http_signing_vectors() {
    let all = vector("pusher.json");
    let entries = all["http_signing"].as_array().unwrap();
    assert!(!entries.is_empty());
    for v in entries {
        let name = v["name"].as_str().unwrap();
        let creds = creds_from_value(&all, v["credentials"].as_str().unwrap());
        let params: Vec<(String, String)> = v["params"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, x)| (k.clone(), x.as_str().unwrap().to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, x)| (k.as_str(), x.as_str()))
            .collect();
        let signed = sign(
            &creds.key,
            &creds.secret,
            v["method"].as_str().unwrap(),
            v["path"].as_str().unwrap(),
            v["auth_timestamp"].as_u64().unwrap(),
            &params,
            v["body"].as_str().map(str::as_bytes),
        )
        .unwrap();
        assert_eq!(
            signed.string_to_sign,
            v["string_to_sign"].as_str().unwrap(),
            "{name}"
        );
        assert_eq!(
            signed.unescaped(),
            v["signed_query_string"].as_str().unwrap(),
            "{name}"
        );
        if let Some(md5) = v["body_md5"].as_str() {
            assert!(
                signed.params.contains(&("body_md5".into(), md5.into())),
                "{name}"
            );
        }
        if let Some(sig) = v["docs_stated_signature"].as_str() {
            assert_eq!(signed.signature, sig, "{name}");
        }
    }
}

fn assert_request(built: &RestRequest, v: &Value, name: &str) {
    assert_eq!(
        built.method,
        v["method"].as_str().unwrap(),
        "{name}: method"
    );
    assert_eq!(built.path, v["path"].as_str().unwrap(), "{name}: path");
    assert_eq!(
        built.query.unescaped(),
        v["query_string"].as_str().unwrap(),
        "{name}: query"
    );
    assert_eq!(built.url, v["url"].as_str().unwrap(), "{name}: url");
    assert_eq!(built.body.as_deref(), v["body"].as_str(), "{name}: body");
    assert_eq!(
        built.query.string_to_sign,
        v["string_to_sign"].as_str().unwrap(),
        "{name}: string_to_sign"
    );
    assert_eq!(
        built.query.signature,
        v["auth_signature"].as_str().unwrap(),
        "{name}: signature"
    );
    let params: Value = built
        .query
        .params
        .iter()
        .map(|(k, x)| (k.clone(), Value::String(x.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into();
    assert_eq!(params, v["query_params"], "{name}: params");
    let ours: Option<&str> = built
        .headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, x)| x.as_str());
    assert_eq!(
        ours,
        v["headers"]["content-type"].as_str(),
        "{name}: content-type"
    );
    let mut names: Vec<&str> = built.headers.iter().map(|(k, _)| k.as_str()).collect();
    names.sort();
    let mut theirs: Vec<&str> = v["headers"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    theirs.sort();
    assert_eq!(names, theirs, "{name}: header names");
}

/// The SDK call behind a recorded request, read back from the request itself: the data goes
/// in as the object it was (a string holding a JSON object) or verbatim.
fn sdk_data(s: &str) -> Value {
    match serde_json::from_str::<Value>(s) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::String(s.to_owned()),
    }
}

fn rebuild(rest: &PusherRest, v: &Value) -> RestRequest {
    let method = v["method"].as_str().unwrap();
    let path = v["path"].as_str().unwrap();
    let rest_path: Vec<&str> = path.split('/').skip(3).collect();
    let q = &v["query_params"];
    match (method, rest_path.as_slice()) {
        ("POST", ["events"]) => {
            let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            let channels: Vec<&str> = body["channels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let data = sdk_data(body["data"].as_str().unwrap());
            let event = body["name"].as_str().unwrap();
            if let [one] = channels.as_slice()
                && let Some(user) = one.strip_prefix("#server-to-user-")
            {
                return rest.send_to_user_request(user, event, &data).unwrap();
            }
            let options = TriggerOptions {
                socket_id: body["socket_id"].as_str().map(str::to_owned),
                info: body["info"].as_str().map(str::to_owned),
            };
            rest.trigger_request(&channels, event, &data, &options)
                .unwrap()
        }
        ("POST", ["batch_events"]) => {
            let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
            let events: Vec<BatchEvent> = body["batch"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| BatchEvent {
                    channel: e["channel"].as_str().unwrap().to_owned(),
                    name: e["name"].as_str().unwrap().to_owned(),
                    data: sdk_data(e["data"].as_str().unwrap()),
                    socket_id: e["socket_id"].as_str().map(str::to_owned),
                    info: e["info"].as_str().map(str::to_owned),
                })
                .collect();
            rest.batch_request(&events).unwrap()
        }
        ("POST", ["users", user, "terminate_connections"]) => {
            rest.terminate_user_connections_request(user).unwrap()
        }
        ("GET", ["channels"]) => rest
            .channels_request(q["filter_by_prefix"].as_str(), q["info"].as_str())
            .unwrap(),
        ("GET", ["channels", channel]) => rest
            .channel_info_request(channel, q["info"].as_str())
            .unwrap(),
        ("GET", ["channels", channel, "users"]) => rest.presence_users_request(channel).unwrap(),
        other => panic!("no builder for a recorded request of shape {other:?}: add one"),
    }
}

#[test]
fn http_request_vectors() {
    let all = vector("pusher.json");
    let entries = all["http_requests"].as_array().unwrap();
    assert!(!entries.is_empty());
    for v in entries {
        let name = v["name"].as_str().unwrap();
        let creds = creds_from_value(&all, v["credentials"].as_str().unwrap());
        let cluster = all["credentials"][v["credentials"].as_str().unwrap()]["cluster"]
            .as_str()
            .unwrap();
        let rest = PusherRest::cluster(creds, cluster)
            .with_fixed_timestamp(v["auth_timestamp"].as_u64().unwrap());
        let built = rebuild(&rest, v);
        assert_request(&built, v, name);
        if let Some(md5) = v["body_md5"].as_str() {
            assert_eq!(
                relayport_pusher::signing::body_md5(built.body.as_deref().unwrap().as_bytes()),
                md5
            );
        }
    }
}

/// What our API returns for each SDK validation case. The SDK's inputs are not in the file,
/// only its messages; every entry must have a row here, so a new one fails until it has.
fn sdk_case(
    name: &str,
    rest: &PusherRest,
    auth: &PusherAuthorizer,
) -> Option<(RealtimeError, ErrorKind)> {
    let no = TriggerOptions::default();
    let d = Value::String("{}".into());
    let r = match name {
        "trigger_101_channels" => {
            let names: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            (
                rest.trigger_request(&refs, "e", &d, &no).err()?,
                ErrorKind::Protocol,
            )
        }
        "trigger_event_name_201_chars" => (
            rest.trigger_request(&["c"], &"e".repeat(201), &d, &no)
                .err()?,
            ErrorKind::Protocol,
        ),
        "trigger_channel_name_201_chars" => (
            rest.trigger_request(&[&"c".repeat(201)], "e", &d, &no)
                .err()?,
            ErrorKind::InvalidChannel,
        ),
        "trigger_channel_name_bad_char" => (
            rest.trigger_request(&["bad channel"], "e", &d, &no).err()?,
            ErrorKind::InvalidChannel,
        ),
        "trigger_channel_name_hash_char" => (
            rest.trigger_request(&["#server-to-user-1"], "e", &d, &no)
                .err()?,
            ErrorKind::InvalidChannel,
        ),
        "trigger_encrypted_plus_other_channel" => (
            rest.trigger_request(&["private-encrypted-a", "b"], "e", &d, &no)
                .err()?,
            ErrorKind::Protocol,
        ),
        "trigger_bad_socket_id" => (
            rest.trigger_request(
                &["c"],
                "e",
                &d,
                &TriggerOptions {
                    socket_id: Some("abc".into()),
                    info: None,
                },
            )
            .err()?,
            ErrorKind::Protocol,
        ),
        "authorize_bad_socket_id" => (
            auth.authorize_channel("123", "private-a", None::<&()>)
                .err()?,
            ErrorKind::Protocol,
        ),
        "authenticate_user_without_id" => (
            auth.authenticate_user("1.1", &serde_json::json!({"name": "x"}))
                .err()?,
            ErrorKind::Protocol,
        ),
        "authenticate_user_numeric_id" => (
            auth.authenticate_user("1.1", &serde_json::json!({"id": 42}))
                .err()?,
            ErrorKind::Protocol,
        ),
        "signed_query_reserved_param" => (
            rest.channels_request(None, None)
                .and_then(|_| sign("k", "s", "GET", "/p", 1, &[("auth_key", "x")], None))
                .err()?,
            ErrorKind::Config,
        ),
        other => panic!("sdk_validation_errors entry `{other}` has no case in this test: add one"),
    };
    Some(r)
}

#[test]
fn sdk_validation_error_vectors() {
    let all = vector("pusher.json");
    let creds = creds_from_value(&all, "rtk");
    let rest = PusherRest::cluster(creds.clone(), "eu").with_fixed_timestamp(1_700_000_000);
    let auth = PusherAuthorizer::new(creds);
    let entries = all["sdk_validation_errors"].as_array().unwrap();
    assert!(!entries.is_empty());
    for v in entries {
        let name = v["name"].as_str().unwrap();
        assert!(v["throws"].as_bool().unwrap());
        // `request_sent: false`: our builders refuse before any request exists.
        let (err, kind) = sdk_case(name, &rest, &auth)
            .unwrap_or_else(|| panic!("{name}: our API accepted what the SDK refuses"));
        assert_eq!(err.kind(), kind, "{name}: {err}");
        let message = v["message"].as_str().unwrap();
        assert!(
            err.to_string().contains(message),
            "{name}: `{err}` lacks `{message}`"
        );
    }
}
