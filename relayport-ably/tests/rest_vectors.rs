//! Every recorded REST request of `ably.json` reproduced against a loopback HTTP peer that
//! asserts method, path, query, the meaningful headers and the body. The call to make is
//! derived from the recorded request itself, so a new vector needs no new code.

mod support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use relayport_ably::encoding::{Payload, decode};
use relayport_ably::rest::{AblyRest, HistoryQuery, RestAuth, RestConfig, RestMessage};
use relayport_ably::token::{ApiKey, TokenParams, TokenRequest};
use relayport_core::{ErrorKind, RealtimeError};
use serde_json::{Value, json};
use support::{HttpPeer, bounded, vectors};

fn key() -> ApiKey {
    ApiKey::parse(vectors()["meta"]["fakeKey"].as_str().unwrap()).unwrap()
}

/// The client the recorded request implies: its Authorization and X-Ably-ClientId headers.
fn client_for(requests: &[Value], port: u16) -> AblyRest {
    let first_authed = requests
        .iter()
        .find_map(|r| r["headers"]["authorization"].as_str());
    let token_first = requests
        .first()
        .is_some_and(|r| r["path"].as_str().unwrap().ends_with("/requestToken"))
        && requests.len() > 1;
    let auth = if token_first {
        let body: Value = serde_json::from_str(requests[0]["body"].as_str().unwrap()).unwrap();
        RestAuth::TokenFromKey(
            key(),
            TokenParams {
                ttl: body["ttl"].as_u64(),
                ..TokenParams::default()
            },
        )
    } else {
        match first_authed {
            Some(a) if a.starts_with("Bearer ") => {
                RestAuth::Token(support::b64_decode(&a["Bearer ".len()..]))
            }
            _ => RestAuth::Basic(key()),
        }
    };
    let client_id = requests
        .iter()
        .find_map(|r| r["headers"]["x-ably-clientid"].as_str())
        .map(support::b64_decode);
    AblyRest::new(RestConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        tls: false,
        auth,
        client_id,
        max_message_size: 65536,
    })
    .unwrap()
}

fn channel_of(path: &str) -> String {
    let seg = path.split('/').nth(2).unwrap();
    url::form_urlencoded::parse(format!("x={}", seg.replace('+', "%2B")).as_bytes())
        .next()
        .unwrap()
        .1
        .into_owned()
}

/// A recorded wire message back to what the application passed (random ids dropped).
fn rest_message(m: &Value) -> RestMessage {
    let data = decode(Some(m["data"].clone()), m["encoding"].as_str()).unwrap();
    RestMessage {
        id: m["id"]
            .as_str()
            .filter(|id| support::random_id_index(id).is_none())
            .map(str::to_owned),
        name: m["name"].as_str().map(str::to_owned),
        data,
        extras: m.get("extras").cloned(),
        client_id: m["clientId"].as_str().map(str::to_owned),
    }
}

/// Our decoded item compared with what ably-js handed its caller (binary as `{hex}`).
fn same_data(ours: &Value, sdk: &Value) -> bool {
    match (ours.get("base64"), sdk.get("hex")) {
        (Some(Value::String(b)), Some(Value::String(h))) => {
            let bytes = B64.decode(b).unwrap();
            bytes.iter().map(|x| format!("{x:02x}")).collect::<String>() == *h
        }
        _ => ours == sdk,
    }
}

fn decoded_items(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|i| {
            decode(Some(i["data"].clone()), i["encoding"].as_str())
                .unwrap()
                .into_value()
        })
        .collect()
}

async fn run(scenario: &Value) -> Result<(), String> {
    let name = scenario["name"].as_str().unwrap();
    let requests: Vec<Value> = scenario["requests"].as_array().unwrap().clone();
    let peer = HttpPeer::start(requests.clone(), Some(key().full())).await;
    let rest = client_for(&requests, peer.port);
    let sdk = &scenario["sdkResult"];

    if requests.is_empty() {
        // A local refusal: nothing may reach the server.
        let err = &scenario["sdkError"];
        assert_eq!(
            err["code"], 40009,
            "{name}: only local 40009 refusals have no request"
        );
        let msg = err["message"].as_str().unwrap();
        let nums: Vec<usize> = msg
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect();
        let (size, limit) = (nums[0], nums[1]);
        let m = RestMessage::new("", Payload::Text("x".repeat(size)));
        let got = rest
            .publish_messages("test-chan", &[m], &[])
            .await
            .unwrap_err();
        assert_eq!(
            got,
            RealtimeError::PayloadTooLarge { size, limit },
            "{name}"
        );
        // The limit itself is accepted by the size check (no request: the peer would fail).
        assert!(relayport_ably::encoding::check_size(limit, limit).is_ok());
        peer.assert_clean();
        return Ok(());
    }

    let first = &requests[0];
    if first.get("bodyBase64").is_some() {
        // The msgpack (binary protocol) request: this client speaks JSON only.
        assert_eq!(first["headers"]["content-type"], "application/x-msgpack");
        return Err("binary protocol".into());
    }
    let method = first["method"].as_str().unwrap();
    let path = first["path"].as_str().unwrap();
    let query = &first["query"];
    let q_u64 = |k: &str| query[k].as_str().and_then(|v| v.parse::<u64>().ok());
    let history_query = HistoryQuery {
        start: q_u64("start"),
        end: q_u64("end"),
        direction: query["direction"].as_str().map(str::to_owned),
        limit: q_u64("limit").map(|l| l as u32),
    };
    let target = if path.ends_with("/requestToken") && requests.len() > 1 {
        &requests[1]
    } else {
        first
    };
    let t_path = target["path"].as_str().unwrap();
    match (method, t_path) {
        ("GET", "/time") => {
            let t = bounded(name, rest.time()).await.unwrap();
            assert_eq!(json!(t), *sdk, "{name}");
        }
        ("POST", p) if p.ends_with("/requestToken") => {
            let body: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
            let params = TokenParams {
                ttl: body["ttl"].as_u64(),
                capability: body.get("capability").cloned(),
                client_id: body["clientId"].as_str().map(str::to_owned),
                timestamp: body["timestamp"].as_u64(),
                nonce: body["nonce"].as_str().map(str::to_owned),
            };
            let tr: TokenRequest = key().create_token_request(&params).unwrap();
            let details = bounded(name, rest.request_token(&tr)).await.unwrap();
            assert_eq!(serde_json::to_value(&details).unwrap(), *sdk, "{name}");
        }
        ("POST", "/messages") => {
            let body: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
            let got = bounded(name, rest.batch_publish(body.as_array().unwrap()))
                .await
                .unwrap();
            assert_eq!(got, *sdk, "{name}");
        }
        ("POST", p) if p.ends_with("/messages") => {
            let body: Value = serde_json::from_str(target["body"].as_str().unwrap()).unwrap();
            let messages: Vec<RestMessage> =
                body.as_array().unwrap().iter().map(rest_message).collect();
            let params: Vec<(String, String)> = target["query"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let got = bounded(
                name,
                rest.publish_messages(&channel_of(t_path), &messages, &params),
            )
            .await
            .unwrap();
            assert_eq!(json!({"serials": got.serials}), *sdk, "{name}");
        }
        ("GET", p) if p.ends_with("/presence/history") => {
            let page = bounded(name, rest.presence_history(&channel_of(p), &history_query))
                .await
                .unwrap();
            let data = decoded_items(&page.items);
            for (i, s) in sdk.as_array().unwrap().iter().enumerate() {
                assert!(same_data(&data[i], &s["data"]), "{name}");
                assert_eq!(page.items[i]["clientId"], s["clientId"], "{name}");
            }
        }
        ("GET", p) if p.ends_with("/presence") && p.starts_with("/channels/") => {
            let page = bounded(
                name,
                rest.presence_get(
                    &channel_of(p),
                    q_u64("limit").map(|l| l as u32),
                    query["clientId"].as_str(),
                ),
            )
            .await
            .unwrap();
            let data = decoded_items(&page.items);
            for (i, s) in sdk.as_array().unwrap().iter().enumerate() {
                assert!(same_data(&data[i], &s["data"]), "{name}");
            }
        }
        ("GET", p) if p.ends_with("/messages") => {
            let channel = channel_of(p);
            let page = bounded(name, rest.history(&channel, &history_query))
                .await
                .unwrap();
            let data = decoded_items(&page.items);
            for (i, s) in sdk["page1"].as_array().unwrap().iter().enumerate() {
                assert!(
                    same_data(&data[i], &s["data"]),
                    "{name}: {} vs {}",
                    data[i],
                    s["data"]
                );
                assert_eq!(page.items[i]["id"], s["id"], "{name}");
            }
            assert_eq!(
                page.next.is_some(),
                sdk["hasNext"].as_bool().unwrap(),
                "{name}"
            );
            if let Some(next) = page.next {
                let page2 = bounded(name, rest.next_page(p, &next)).await.unwrap();
                let data2 = decoded_items(&page2.items);
                for (i, s) in sdk["page2"].as_array().unwrap().iter().enumerate() {
                    assert!(same_data(&data2[i], &s["data"]), "{name}");
                }
                assert_eq!(
                    page2.next.is_none(),
                    sdk["isLast2"].as_bool().unwrap(),
                    "{name}"
                );
            }
        }
        ("GET", "/presence") => {
            let channels: Vec<&str> = query["channels"].as_str().unwrap().split(',').collect();
            let got = bounded(name, rest.batch_presence(&channels)).await.unwrap();
            assert_eq!(got, *sdk, "{name}");
        }
        ("GET", "/stats") => {
            let page = bounded(
                name,
                rest.stats(query["unit"].as_str(), q_u64("limit").map(|l| l as u32)),
            )
            .await
            .unwrap();
            assert_eq!(Value::Array(page.items), *sdk, "{name}");
        }
        ("GET", p) if p.starts_with("/channels/") && query["envelope"] == "json" => {
            let got = bounded(name, rest.channel_status(&channel_of(p)))
                .await
                .unwrap();
            assert_eq!(got, *sdk, "{name}");
        }
        other => panic!("{name}: no driver for recorded request {other:?}"),
    }
    peer.assert_clean();
    Ok(())
}

#[tokio::test]
async fn every_recorded_rest_request_is_reproduced() {
    let v = vectors();
    let scenarios = v["rest"]["requests"].as_array().unwrap();
    assert!(scenarios.len() >= 19);
    let mut skipped = Vec::new();
    for s in scenarios {
        if let Err(why) = run(s).await {
            skipped.push(format!("{}: {why}", s["name"]));
        }
    }
    // Only the msgpack request is out of scope (JSON protocol only).
    assert_eq!(skipped.len(), 1, "{skipped:?}");
}

#[tokio::test]
async fn rest_errors_map_to_typed_errors() {
    let recorded = json!({
        "method": "POST", "path": "/channels/c/messages", "query": {},
        "headers": {"authorization": "Basic YXBwSWQua2V5SWQ6a2V5U2VjcmV0", "accept": "application/json",
                    "content-type": "application/json", "x-ably-version": "6"},
        "body": "[{\"id\":\"i\",\"name\":\"n\",\"data\":\"d\",\"action\":0}]",
        "response": {"status": 401, "headers": {}, "body": {"error": {"code": 40160, "statusCode": 401, "message": "denied"}}}
    });
    let peer = HttpPeer::start(vec![recorded], None).await;
    let rest = client_for(&[], peer.port);
    let mut m = RestMessage::new("n", Payload::Text("d".into()));
    m.id = Some("i".into());
    let err = rest.publish_messages("c", &[m], &[]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Forbidden);
    peer.assert_clean();
}

#[tokio::test]
async fn publisher_refuses_bare_numbers_before_sending() {
    use relayport_core::{Channel, OutboundMessage, Publisher};
    let peer = HttpPeer::start(vec![], None).await;
    let rest = client_for(&[], peer.port);
    for data in [json!(1), json!(true)] {
        let err = rest
            .publish(&OutboundMessage::new(Channel::public("c"), "e", data))
            .await
            .unwrap_err();
        assert!(
            matches!(err, RealtimeError::Provider { code: 40013, .. }),
            "{err:?}"
        );
    }
    peer.assert_clean();
}

/// Token auth with a key: a token error renews the token once and retries (`RSC10`).
#[tokio::test]
async fn a_rest_token_error_renews_once() {
    let token_request = |token: &str| {
        json!({
            "method": "POST", "path": "/keys/appId.keyId/requestToken", "query": {},
            "headers": {"accept": "application/json", "content-type": "application/json", "x-ably-version": "6"},
            "body": "{\"keyName\":\"appId.keyId\",\"timestamp\":1800000000000,\"nonce\":\"1234567890123456\",\"mac\":\"x\"}",
            "response": {"status": 200, "headers": {}, "body": {"token": token}}
        })
    };
    let publish = |token: &str, status: u16| {
        let body = if status == 201 {
            json!({"serials": ["s"]})
        } else {
            json!({"error": {"code": 40142, "statusCode": 401, "message": "expired"}})
        };
        json!({
            "method": "POST", "path": "/channels/c/messages", "query": {},
            "headers": {"authorization": format!("Bearer {}", B64.encode(token)), "accept": "application/json",
                        "content-type": "application/json", "x-ably-version": "6"},
            "body": "[{\"id\":\"i\",\"name\":\"n\",\"data\":\"d\",\"action\":0}]",
            "response": {"status": status, "headers": {}, "body": body}
        })
    };
    let peer = HttpPeer::start(
        vec![
            token_request("A"),
            publish("A", 401),
            token_request("B"),
            publish("B", 201),
        ],
        Some(key().full()),
    )
    .await;
    let rest = AblyRest::new(RestConfig {
        host: "127.0.0.1".into(),
        port: Some(peer.port),
        tls: false,
        auth: RestAuth::TokenFromKey(key(), TokenParams::default()),
        client_id: None,
        max_message_size: 65536,
    })
    .unwrap();
    let mut m = RestMessage::new("n", Payload::Text("d".into()));
    m.id = Some("i".into());
    let r = bounded("publish", rest.publish_messages("c", &[m], &[]))
        .await
        .unwrap();
    assert_eq!(r.serials, vec![Some("s".to_owned())]);
    peer.assert_clean();
}
