//! Custom tokens: RS256 signatures that verify with the account's public key, and Firebase's claims.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use relayport_core::{AuthRequest, Channel, ChannelAuthorizer, ErrorKind, PresenceUser};
use relayport_firebase::custom_token::CUSTOM_TOKEN_AUDIENCE;
use relayport_firebase::{CustomTokenAuthorizer, ServiceAccount};
use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use serde_json::{Value, json};

const EMAIL: &str = "relayport@test-project.iam.gserviceaccount.example";

/// A throwaway 2048-bit key generated for this test (`openssl genpkey -algorithm RSA`).
const TEST_KEY: &str = "
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDNdEndQAhfdEe8
C+hBfjb4J5Nef0Mp7PsNBq/6+OTjY5q8lQAhD8S3Dz5rABC4i/9F0iQaNZOJKJvg
yTrPr4gM/X7T4TEL1pdVCFaGDStnRKtJOFMPFiXbPCMzYdUpX8ADmG7vhFmt3vyy
vo23egwPQKL80GjI4Q4wm9Xl7lr/FbjVAfyQVTVYFIxenMddaobTZPF2MxrVIY3z
Q99fgDK7/F+mGMAakTGCHpCugHUPDEdcRN4r4P6WPE+ymGRuLUQ1Ic333MxCsAT8
dYR6Gly6XhEQ2/m99n52SUiX0B8CY6WkHJnkNRNAZ9UW+rawbZE55szzaNVqZRUx
c9Mpvo67AgMBAAECggEAE+qO8nyvkxlBjvAUjqy+hWXIumNZzmmjmIqqaojQH17b
dCZ5gbr2lcxLf7Hc7RbdIxaQ212QNL6UBcFcCx/371JvhfiReZVOzDZntMz4BSW5
+PoVyyOZfdwhiWyVblJS2cZgEqXgz6MLGgSw1jVlj+DzK9DEJ5zxdDLXFFf7yDhV
IgXIJCFagTRnnfUhWOGlMimIhY5WZzgg2i1fCngX/D/OH18lTkl1BYMVQRmAMCbi
f3JefmqSiNSVaCE0GqC8UstgvAfDtGwL/lVDs4QyICEAI0egR8/Gu8sk0IdfMuur
Wci7R+G24srE+sOY7QBoIVqSTUHYGUIr4poTKNbC2QKBgQD+uWezo46ieic9gjUq
oJXm1MDoyYlDeXSMLG0KSfCAe4q4HsdrF18t4nTG9As80bN7qSHH1qBX68srTEaX
Ky73u8WbKWPi3+qkATi7D8PplVno4pUznE4XDuPCHFv7OdqZ+kBficvVWdGmJjb9
zNoE/4LY/oX1WFNKkS3HB1aPNQKBgQDOe7Y+XvRTBAKhvC2dOH/CNrQLSkQ3cQLf
6nOnwftt5WI0wjgzTsKAvmehqrZJN90Z8OqDn8weAY6WxWSw8MF+gA+yC2uA+Lje
z2zmExnmQchOh/wVQUmvwJ3f889hdvD/hCPUyGD9kWo6zmi/HFcEmgZRsRpEkIHZ
Qztg66W0LwKBgAhKVoK1Pw4wtZg95acWhOp3YDPzY0FL8awiQgZEs8wquTAW6Fym
7RUcOrrC9J6tII9UyOGtLZjO9tTY7a8725J6jQroxPR8XzGpTIRiFflDQCLhRQPi
AXSkqmsF60R49JFwYKn7XSP7gWRL+Bw4j5v8CPExD4EVt9hEc1338ixFAoGBAMa6
wrhc44JSxcWsO6qqCix+QeLr46QInN+t4wp+5OLsdwyYMUcQcps+prcueqsVnTOu
b8enMOlgTkBGU5cI4PJDhtexrhI/UI8BzKnTkIXQol0S/EfowmbpWAmHuvzvYRxL
rcDJ6q+iGT/oEWB+gjHnnFVbwxBilNbqomex5ZX5AoGAY2vOhXSJODcRwiEx1iQ6
WQwAzRVojYJQtkBq3D4sEkSgRMS/kORs+Pk41um78Uh5zRNaiX2e3xGhIA3k9gkO
k/4LWpw1xXew0WN4dLUYywez1e/Eg2U4ehHa9vYHJjzZx3Wm59apC5Jdpabe8HGj
0l3pNRlzwas04hukEMC6O2k=
-----END PRIVATE KEY-----
";

fn account() -> ServiceAccount {
    ServiceAccount::from_pem(EMAIL, TEST_KEY).expect("the test key")
}

/// Checks the signature and returns the header and the payload.
fn verify(account: &ServiceAccount, token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    let signed = format!("{}.{}", parts[0], parts[1]);
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key_der())
        .verify(signed.as_bytes(), &signature)
        .expect("the signature verifies");
    let decode = |p: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("base64url")).expect("JSON")
    };
    (decode(parts[0]), decode(parts[1]))
}

#[test]
fn a_minted_token_verifies_and_carries_firebase_claims() {
    let account = account();
    let token = account
        .mint(
            "alice",
            Some(&json!({"role": "admin"})),
            1_700_000_000,
            Duration::from_secs(3600),
        )
        .expect("minted");
    let (header, payload) = verify(&account, &token);
    assert_eq!(header, json!({"alg": "RS256", "typ": "JWT"}));
    assert_eq!(payload["iss"], EMAIL);
    assert_eq!(payload["sub"], EMAIL);
    assert_eq!(payload["aud"], CUSTOM_TOKEN_AUDIENCE);
    assert_eq!(payload["uid"], "alice");
    assert_eq!(payload["iat"], 1_700_000_000u64);
    assert_eq!(payload["exp"], 1_700_003_600u64);
    assert_eq!(payload["claims"], json!({"role": "admin"}));
    // A token altered after signing does not verify.
    let mut forged = token.clone().into_bytes();
    let at = token.find('.').expect("dot") + 3;
    forged[at] = if forged[at] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let parts: Vec<&str> = forged.split('.').collect();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    assert!(
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, account.public_key_der())
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .is_err()
    );
}

#[test]
fn bad_inputs_are_config_errors() {
    let account = account();
    for (uid, ttl) in [("", 60), (&*"u".repeat(129), 60), ("a", 3601), ("a", 0)] {
        let e = account
            .mint(uid, None, 0, Duration::from_secs(ttl))
            .expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::Config);
    }
    assert!(
        account
            .mint("a", Some(&json!([1])), 0, Duration::from_secs(1))
            .is_err()
    );
    for pem in [
        "",
        "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
    ] {
        assert_eq!(
            ServiceAccount::from_pem(EMAIL, pem)
                .expect_err("refused")
                .kind(),
            ErrorKind::Config
        );
    }
    let json = serde_json::to_string(&json!({"client_email": EMAIL, "private_key": TEST_KEY}))
        .expect("json");
    assert_eq!(
        ServiceAccount::from_json(&json)
            .expect("parsed")
            .client_email(),
        EMAIL
    );
    assert!(!format!("{account:?}").contains("PRIVATE"));
}

#[tokio::test]
async fn the_authorizer_mints_per_user_tokens_naming_the_channel() {
    let account = account();
    let public = account.public_key_der().to_vec();
    let authorizer = CustomTokenAuthorizer::new(account).with_ttl(Duration::from_secs(600));
    let auth = authorizer
        .authorize(&AuthRequest {
            socket_id: "conn-1".into(),
            channel: Channel::presence("room"),
            user: Some(PresenceUser {
                id: "bob".into(),
                info: json!({}),
            }),
        })
        .await
        .expect("authorized");
    let token = auth.str_field("custom_token").expect("a token");
    assert_eq!(auth.str_field("uid"), Some("bob"));
    assert_eq!(auth.0["expires_in"], 600);
    let parts: Vec<&str> = token.split('.').collect();
    let signature = URL_SAFE_NO_PAD.decode(parts[2]).expect("base64url");
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
        .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
        .expect("verifies");
    let payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
    assert_eq!(payload["claims"], json!({"channel": "presence:room"}));
    assert_eq!(
        payload["exp"].as_u64().expect("exp") - payload["iat"].as_u64().expect("iat"),
        600
    );
}
