//! The peer's rules, frame by frame over a raw WebSocket: what it accepts, what it refuses
//! and with which error, as Ably does. Time-dependent rules (leave grace, token expiry) run
//! on tokio's paused clock once the sockets are set up.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use relayport_peer_ably::{AblyPeer, Capability, PeerConfig, TokenSpec, keys};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(5);

struct Ws(WebSocketStream<MaybeTlsStream<TcpStream>>);

impl Ws {
    async fn open(peer: &AblyPeer, query: &str) -> Ws {
        let url = format!("ws://{}/?v=6&format=json&{query}", peer.addr());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("the upgrade succeeds");
        Ws(ws)
    }

    /// Opens and expects CONNECTED; returns it.
    async fn connected(peer: &AblyPeer, query: &str) -> (Ws, Value) {
        let mut ws = Ws::open(peer, query).await;
        let c = ws.next().await;
        assert_eq!(c["action"], 4, "CONNECTED expected: {c}");
        (ws, c)
    }

    async fn send(&mut self, v: Value) {
        self.0
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// The next frame other than a server HEARTBEAT (real time, bounded).
    async fn next(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.next_unbounded())
            .await
            .expect("a frame in time")
    }

    /// The next frame other than a server HEARTBEAT (no timer: for the paused clock).
    async fn next_unbounded(&mut self) -> Value {
        loop {
            match self.0.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    if v["action"] == 0 && v.get("id").is_none() {
                        continue;
                    }
                    return v;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a frame, got {other:?}"),
            }
        }
    }

    /// The socket ends (close frame or EOF) before any other frame.
    async fn ends(&mut self) {
        let end = tokio::time::timeout(WAIT, async {
            loop {
                match self.0.next().await {
                    Some(Ok(Message::Text(t))) if t.as_str() == r#"{"action":0}"# => continue,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(other)) => return Some(other),
                }
            }
        })
        .await
        .expect("the socket ends in time");
        assert!(end.is_none(), "a frame after the end: {end:?}");
    }
}

async fn start() -> AblyPeer {
    AblyPeer::start(PeerConfig::default()).await.expect("binds")
}

fn token(peer: &AblyPeer, cap: Value, client_id: Option<&str>) -> String {
    peer.issue_token(
        "peerapp.full",
        TokenSpec {
            capability: Some(Capability::parse(&cap).expect("capability")),
            client_id: client_id.map(str::to_owned),
            ttl_ms: None,
        },
    )
    .expect("token")
    .token
}

fn key_query(key: &str, client_id: Option<&str>) -> String {
    let mut q = format!("key={key}");
    if let Some(c) = client_id {
        q.push_str(&format!("&clientId={c}"));
    }
    q
}

#[tokio::test]
async fn a_bad_key_gets_a_fatal_40101_and_the_socket_closes() {
    let peer = start().await;
    let mut ws = Ws::open(&peer, "key=peerapp.full:wrong").await;
    let e = ws.next().await;
    assert_eq!(e["action"], 9);
    assert!(e.get("channel").is_none(), "connection-level: {e}");
    assert_eq!(e["error"]["code"], 40101);
    assert_eq!(e["error"]["statusCode"], 401);
    ws.ends().await;
    assert!(peer.connections().is_empty());
}

#[tokio::test]
async fn connected_carries_the_connection_details() {
    let peer = start().await;
    let (_ws, c) = Ws::connected(&peer, &key_query(keys::FULL, Some("ann"))).await;
    let d = &c["connectionDetails"];
    assert_eq!(d["clientId"], "ann");
    assert!(d["connectionKey"].as_str().is_some_and(|k| !k.is_empty()));
    assert_eq!(d["connectionStateTtl"], 120_000);
    assert_eq!(d["maxIdleInterval"], 15_000);
    assert_eq!(d["maxMessageSize"], 65_536);
    assert_eq!(
        peer.connections()[0].id,
        c["connectionId"].as_str().unwrap()
    );
}

#[tokio::test]
async fn old_protocol_versions_and_missing_credentials_are_refused() {
    let peer = start().await;
    let url = format!("ws://{}/?v=1.2&key={}", peer.addr(), keys::FULL);
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let mut ws = Ws(ws);
    assert_eq!(ws.next().await["error"]["code"], 40000);
    let mut ws = Ws::open(&peer, "clientId=x").await;
    assert_eq!(ws.next().await["error"]["code"], 40101);
}

#[tokio::test]
async fn a_token_client_id_must_match_the_connection_s() {
    let peer = start().await;
    let t = token(&peer, json!({"*": ["*"]}), Some("tom"));
    let mut ws = Ws::open(&peer, &format!("access_token={t}&clientId=jerry")).await;
    let e = ws.next().await;
    assert_eq!(e["action"], 9);
    assert_eq!(e["error"]["code"], 40102);
    // Without clientId the connection takes the token's.
    let (_ws, c) = Ws::connected(&peer, &format!("access_token={t}")).await;
    assert_eq!(c["connectionDetails"]["clientId"], "tom");
    // An unknown token is a token error (renewable), not a fatal one.
    let mut ws = Ws::open(&peer, "access_token=nope").await;
    assert_eq!(ws.next().await["error"]["code"], 40143);
}

#[tokio::test]
async fn capabilities_decide_attach_publish_and_presence() {
    let peer = start().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::LIMITED, Some("lim"))).await;
    ws.send(json!({"action": 10, "channel": "forbidden"})).await;
    let e = ws.next().await;
    assert_eq!(
        (e["action"].clone(), e["channel"].clone()),
        (json!(9), json!("forbidden"))
    );
    assert_eq!(e["error"]["code"], 40160);
    ws.send(json!({"action": 10, "channel": "readonly"})).await;
    let a = ws.next().await;
    assert_eq!(a["action"], 11);
    let flags = a["flags"].as_u64().unwrap();
    assert_ne!(flags & (1 << 18), 0, "subscribe mode granted");
    assert_eq!(flags & (1 << 17), 0, "publish mode not granted");
    ws.send(json!({"action": 15, "channel": "readonly", "msgSerial": 0, "messages": [{"name": "x", "data": "y"}]}))
        .await;
    let n = ws.next().await;
    assert_eq!(
        (n["action"].clone(), n["msgSerial"].clone()),
        (json!(2), json!(0))
    );
    assert_eq!(n["error"]["code"], 40160);
    ws.send(
        json!({"action": 14, "channel": "readonly", "msgSerial": 1, "presence": [{"action": 2}]}),
    )
    .await;
    assert_eq!(ws.next().await["error"]["code"], 40160);
    // Allowed: ACKed with timeserials, and echoed (echo defaults to on).
    ws.send(json!({"action": 10, "channel": "allowed:x"})).await;
    assert_eq!(ws.next().await["action"], 11);
    ws.send(json!({"action": 15, "channel": "allowed:x", "msgSerial": 2, "messages": [{"name": "a", "data": "b"}]}))
        .await;
    let mut frames = [ws.next().await, ws.next().await];
    frames.sort_by_key(|f| f["action"].as_u64());
    let (ack, echo) = (&frames[0], &frames[1]);
    assert_eq!(
        (ack["action"].clone(), ack["msgSerial"].clone()),
        (json!(1), json!(2))
    );
    let serial = ack["res"][0]["serials"][0]
        .as_str()
        .expect("a serial")
        .to_owned();
    assert_eq!(echo["messages"][0]["serial"], json!(serial));
    assert_eq!(echo["messages"][0]["clientId"], "lim");
}

#[tokio::test]
async fn client_ids_on_messages_and_presence_are_checked() {
    let peer = start().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("me"))).await;
    ws.send(json!({"action": 15, "channel": "c", "msgSerial": 0, "messages": [{"clientId": "other", "data": "x"}]}))
        .await;
    assert_eq!(ws.next().await["error"]["code"], 40012);
    let t = token(&peer, json!({"*": ["*"]}), None);
    let (mut anon, _) = Ws::connected(&peer, &format!("access_token={t}")).await;
    anon.send(
        json!({"action": 14, "channel": "room", "msgSerial": 0, "presence": [{"action": 2}]}),
    )
    .await;
    let n = anon.next().await;
    assert_eq!(
        (n["action"].clone(), n["error"]["code"].clone()),
        (json!(2), json!(91000))
    );
    // Bare numbers are not valid data.
    ws.send(json!({"action": 15, "channel": "c", "msgSerial": 1, "messages": [{"data": 5}]}))
        .await;
    assert_eq!(ws.next().await["error"]["code"], 40013);
}

#[tokio::test]
async fn a_repeated_msg_serial_is_acked_but_not_published_twice() {
    let peer = start().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("dup"))).await;
    let publish =
        json!({"action": 15, "channel": "d", "msgSerial": 0, "messages": [{"data": "once"}]});
    ws.send(publish.clone()).await;
    assert_eq!(ws.next().await["action"], 1);
    ws.send(publish).await;
    let again = ws.next().await;
    assert_eq!(
        (again["action"].clone(), again["msgSerial"].clone()),
        (json!(1), json!(0))
    );
    assert_eq!(peer.history("d").len(), 1);
}

#[tokio::test]
async fn in_band_auth_replaces_the_capability_and_fails_uncovered_channels() {
    let peer = start().await;
    let wide = token(&peer, json!({"a:*": ["*"], "b": ["*"]}), Some("u"));
    let (mut ws, c) = Ws::connected(&peer, &format!("access_token={wide}")).await;
    let id = c["connectionId"].clone();
    for ch in ["a:1", "b"] {
        ws.send(json!({"action": 10, "channel": ch})).await;
        assert_eq!(ws.next().await["action"], 11);
    }
    let narrow = token(&peer, json!({"a:*": ["*"]}), Some("u"));
    ws.send(json!({"action": 17, "auth": {"accessToken": narrow}}))
        .await;
    let e = ws.next().await;
    assert_eq!(
        (e["action"].clone(), e["channel"].clone()),
        (json!(9), json!("b"))
    );
    assert_eq!(e["error"]["code"], 40160);
    let again = ws.next().await;
    assert_eq!(again["action"], 4);
    assert_eq!(again["connectionId"], id, "same connection");
    assert_eq!(peer.connections()[0].attached, ["a:1"]);
    // b no longer receives; a does.
    peer.publish("b", "x", json!("lost")).unwrap();
    peer.publish("a:1", "x", json!("kept")).unwrap();
    assert_eq!(ws.next().await["messages"][0]["data"], "kept");
    // A token for another client id is fatal (40102).
    let other = token(&peer, json!({"*": ["*"]}), Some("someone-else"));
    ws.send(json!({"action": 17, "auth": {"accessToken": other}}))
        .await;
    let f = ws.next().await;
    assert_eq!(
        (f["action"].clone(), f["error"]["code"].clone()),
        (json!(9), json!(40102))
    );
    assert!(f.get("channel").is_none());
    ws.ends().await;
}

#[tokio::test]
async fn a_late_joiner_gets_has_presence_and_a_sync() {
    let peer = start().await;
    let (mut a, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("alice"))).await;
    a.send(json!({"action": 10, "channel": "room"})).await;
    assert_eq!(
        a.next().await["flags"].as_u64().unwrap() & 1,
        0,
        "no members yet"
    );
    a.send(json!({"action": 14, "channel": "room", "msgSerial": 0, "presence": [{"action": 2, "data": "hi"}]}))
        .await;
    let mut got = [a.next().await, a.next().await];
    got.sort_by_key(|f| f["action"].as_u64());
    assert_eq!(got[1]["presence"][0]["action"], 2, "ENTER echoed");
    let (mut b, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("bob"))).await;
    b.send(json!({"action": 10, "channel": "room"})).await;
    let attached = b.next().await;
    assert_eq!(attached["flags"].as_u64().unwrap() & 1, 1, "HAS_PRESENCE");
    let sync = b.next().await;
    assert_eq!(sync["action"], 16);
    assert!(
        sync["channelSerial"].as_str().unwrap().ends_with(':'),
        "one page"
    );
    assert_eq!(sync["presence"][0]["clientId"], "alice");
    assert_eq!(sync["presence"][0]["action"], 1);
    assert_eq!(sync["presence"][0]["data"], "hi");
}

#[tokio::test]
async fn close_leaves_at_once_and_answers_closed() {
    let peer = start().await;
    let (mut a, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("watch"))).await;
    a.send(json!({"action": 10, "channel": "room"})).await;
    a.next().await;
    let (mut b, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("gone"))).await;
    b.send(json!({"action": 14, "channel": "room", "msgSerial": 0, "presence": [{"action": 2}]}))
        .await;
    assert_eq!(b.next().await["action"], 1);
    assert_eq!(a.next().await["presence"][0]["action"], 2);
    b.send(json!({"action": 7})).await;
    assert_eq!(b.next().await["action"], 8);
    let leave = a.next().await;
    assert_eq!(leave["presence"][0]["action"], 3);
    assert_eq!(leave["presence"][0]["clientId"], "gone");
    assert!(peer.members("room").is_empty());
    assert!(peer.connections_of("gone").is_empty());
}

/// A dropped connection's member stays for the 15 s grace, then leaves (paused clock).
#[tokio::test]
async fn a_dropped_member_leaves_after_the_grace() {
    let peer = start().await;
    let (mut a, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("watch"))).await;
    a.send(json!({"action": 10, "channel": "room"})).await;
    a.next().await;
    let (mut b, c) = Ws::connected(&peer, &key_query(keys::FULL, Some("flaky"))).await;
    b.send(json!({"action": 14, "channel": "room", "msgSerial": 0, "presence": [{"action": 2}]}))
        .await;
    b.next().await;
    a.next().await;
    assert!(peer.drop_connection(c["connectionId"].as_str().unwrap()));
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(14)).await;
    settle().await;
    assert_eq!(peer.members("room").len(), 1, "still within the grace");
    tokio::time::advance(Duration::from_secs(2)).await;
    let leave = a.next_unbounded().await;
    assert_eq!(leave["presence"][0]["action"], 3);
    assert_eq!(leave["presence"][0]["clientId"], "flaky");
    assert!(peer.members("room").is_empty());
}

/// A resume within the grace keeps the member, the connection id and replays what was
/// published meanwhile (RESUMED); a resume of a forgotten connection gets a new id and 80008.
#[tokio::test]
async fn resume_keeps_the_connection_and_replays_missed_messages() {
    let peer = start().await;
    let (mut b, c) = Ws::connected(&peer, &key_query(keys::FULL, Some("r"))).await;
    let id = c["connectionId"].as_str().unwrap().to_owned();
    let key = c["connectionDetails"]["connectionKey"]
        .as_str()
        .unwrap()
        .to_owned();
    b.send(json!({"action": 10, "channel": "feed"})).await;
    let serial = b.next().await["channelSerial"].as_str().unwrap().to_owned();
    b.send(json!({"action": 14, "channel": "feed", "msgSerial": 0, "presence": [{"action": 2}]}))
        .await;
    let _ = (b.next().await, b.next().await);
    assert!(peer.drop_connection(&id));
    for n in 0..3 {
        peer.publish("feed", "m", json!(format!("missed-{n}")))
            .unwrap();
    }
    let (mut b2, c2) = Ws::connected(
        &peer,
        &format!("key={}&clientId=r&resume={key}", keys::FULL),
    )
    .await;
    assert_eq!(c2["connectionId"], id.as_str());
    assert!(c2.get("error").is_none());
    b2.send(json!({"action": 10, "channel": "feed", "channelSerial": serial}))
        .await;
    let attached = b2.next().await;
    assert_eq!(attached["flags"].as_u64().unwrap() & 4, 4, "RESUMED");
    for n in 0..3 {
        assert_eq!(
            b2.next().await["messages"][0]["data"],
            format!("missed-{n}")
        );
    }
    assert_eq!(b2.next().await["action"], 16, "then the SYNC");
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(16)).await;
    settle().await;
    assert_eq!(
        peer.members("feed").len(),
        1,
        "the resume cancelled the leave"
    );
    // A forgotten connection cannot be resumed.
    tokio::time::resume();
    assert!(peer.expire_connection(&id));
    let (_b3, c3) = Ws::connected(
        &peer,
        &format!("key={}&clientId=r&resume={key}", keys::FULL),
    )
    .await;
    assert_ne!(c3["connectionId"], id.as_str());
    assert_eq!(c3["error"]["code"], 80008);
    assert!(
        peer.members("feed").is_empty(),
        "expiry made the member leave"
    );
}

#[tokio::test]
async fn an_expired_token_disconnects_with_40142() {
    let peer = start().await;
    let t = token(&peer, json!({"*": ["*"]}), Some("exp"));
    let (mut ws, _) = Ws::connected(&peer, &format!("access_token={t}")).await;
    peer.advance_clock(Duration::from_secs(3601));
    let d = ws.next().await;
    assert_eq!(
        (d["action"].clone(), d["error"]["code"].clone()),
        (json!(6), json!(40142))
    );
    ws.ends().await;
    // Connecting with it again is a token error.
    let mut again = Ws::open(&peer, &format!("access_token={t}")).await;
    assert_eq!(again.next().await["error"]["code"], 40142);
}

/// Lets spawned tasks woken by an `advance` run.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

// ---- REST ---------------------------------------------------------------------------------

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

#[tokio::test]
async fn rest_request_token_checks_mac_timestamp_and_nonce() {
    let peer = start().await;
    let base = format!("http://{}", peer.addr());
    let now: i64 = http()
        .get(format!("{base}/time"))
        .send()
        .await
        .unwrap()
        .json::<Vec<i64>>()
        .await
        .unwrap()[0];
    let sign = |ts: i64, nonce: &str, cap: &str, client: &str| {
        let text = format!("peerapp.full\n\n{cap}\n{client}\n{ts}\n{nonce}\n");
        relayport_peer_ably::token::sign("full-secret-0123456789", &text)
    };
    let body = |ts: i64, nonce: &str, mac: String| {
        json!({"keyName": "peerapp.full", "capability": r#"{"x":["subscribe"]}"#, "clientId": "c",
               "timestamp": ts, "nonce": nonce, "mac": mac})
    };
    let cap = r#"{"x":["subscribe"]}"#;
    let url = format!("{base}/keys/peerapp.full/requestToken");
    let ok = http()
        .post(&url)
        .json(&body(
            now,
            "1234567890123456",
            sign(now, "1234567890123456", cap, "c"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let details: Value = ok.json().await.unwrap();
    assert_eq!(details["clientId"], "c");
    assert_eq!(details["capability"], cap);
    let code = |r: Value| r["error"]["code"].clone();
    // The same nonce again: replayed.
    let replay = http()
        .post(&url)
        .json(&body(
            now,
            "1234567890123456",
            sign(now, "1234567890123456", cap, "c"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(code(replay.json().await.unwrap()), 40105);
    // A wrong mac.
    let bad = http()
        .post(&url)
        .json(&body(
            now,
            "6543210987654321",
            sign(now, "other-nonce-12345", cap, "c"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(code(bad.json().await.unwrap()), 40101);
    // A stale timestamp.
    let old = now - 10 * 60 * 1000;
    let stale = http()
        .post(&url)
        .json(&body(
            old,
            "1111222233334444",
            sign(old, "1111222233334444", cap, "c"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(code(stale.json().await.unwrap()), 40104);
    // The issued token works on the socket, with its capability.
    let token = details["token"].as_str().unwrap();
    let (mut ws, c) = Ws::connected(&peer, &format!("access_token={token}")).await;
    assert_eq!(c["connectionDetails"]["clientId"], "c");
    ws.send(json!({"action": 10, "channel": "y"})).await;
    assert_eq!(ws.next().await["error"]["code"], 40160);
}

#[tokio::test]
async fn rest_publish_history_paging_and_presence() {
    let peer = start().await;
    let base = format!("http://{}", peer.addr());
    for n in 0..5 {
        let r = http()
            .post(format!("{base}/channels/ns%3Alog/messages"))
            .header("authorization", basic(keys::FULL))
            .json(&json!({"name": "e", "data": format!("d{n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Idempotent: a message id already published is not stored twice.
    for _ in 0..2 {
        http()
            .post(format!("{base}/channels/ns%3Alog/messages"))
            .header("authorization", basic(keys::FULL))
            .json(&json!([{"id": "fixed:0", "data": "once"}]))
            .send()
            .await
            .unwrap();
    }
    assert_eq!(peer.history("ns:log").len(), 6);
    let r = http()
        .get(format!("{base}/channels/ns%3Alog/messages?limit=4"))
        .header("authorization", basic(keys::FULL))
        .send()
        .await
        .unwrap();
    let links: Vec<String> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let page: Vec<Value> = r.json().await.unwrap();
    let data: Vec<&str> = page.iter().map(|m| m["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["once", "d4", "d3", "d2"], "backwards by default");
    let next = links
        .iter()
        .find(|l| l.ends_with("rel=\"next\""))
        .expect("a next link");
    let path = next
        .trim_start_matches("<./")
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let r = http()
        .get(format!("{base}/channels/ns%3Alog/{path}"))
        .header("authorization", basic(keys::FULL))
        .send()
        .await
        .unwrap();
    assert!(
        !r.headers()
            .get_all("link")
            .iter()
            .any(|l| l.to_str().unwrap().contains("next")),
        "the last page"
    );
    let page: Vec<Value> = r.json().await.unwrap();
    let data: Vec<&str> = page.iter().map(|m| m["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["d1", "d0"]);
    // Without credentials, or with the limited key on a channel it does not cover: refused.
    let r = http()
        .get(format!("{base}/channels/ns%3Alog/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = http()
        .post(format!("{base}/channels/ns%3Alog/messages"))
        .header("authorization", basic(keys::LIMITED))
        .json(&json!({"data": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], 40160);
    // Presence over REST.
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, Some("p1"))).await;
    ws.send(json!({"action": 14, "channel": "lobby", "msgSerial": 0, "presence": [{"action": 2, "data": "x"}]}))
        .await;
    assert_eq!(ws.next().await["action"], 1);
    let members: Vec<Value> = http()
        .get(format!("{base}/channels/lobby/presence"))
        .header("authorization", basic(keys::FULL))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["clientId"], "p1");
    assert_eq!(members[0]["action"], 1);
}

// ---- heartbeats, echo, recover, detach -------------------------------------------------------

#[tokio::test]
async fn server_heartbeats_every_max_idle_interval_and_pings_are_answered() {
    let peer = start().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, None)).await;
    ws.send(json!({"action": 0, "id": "ping-1"})).await;
    let pong = ws.next().await;
    assert_eq!(
        (pong["action"].clone(), pong["id"].clone()),
        (json!(0), json!("ping-1"))
    );
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(14_900)).await;
    settle().await;
    use futures_util::FutureExt;
    assert!(
        ws.0.next().now_or_never().is_none(),
        "nothing before maxIdleInterval"
    );
    tokio::time::advance(Duration::from_millis(200)).await;
    let beat = loop {
        match ws.0.next().await {
            Some(Ok(Message::Text(t))) => break t.as_str().to_owned(),
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(beat, r#"{"action":0}"#);
}

#[tokio::test]
async fn echo_false_suppresses_own_messages_only() {
    let peer = start().await;
    let (mut quiet, _) =
        Ws::connected(&peer, &format!("key={}&clientId=q&echo=false", keys::FULL)).await;
    quiet.send(json!({"action": 10, "channel": "e"})).await;
    quiet.next().await;
    quiet
        .send(json!({"action": 15, "channel": "e", "msgSerial": 0, "messages": [{"data": "mine"}]}))
        .await;
    assert_eq!(quiet.next().await["action"], 1, "the ACK, no echo");
    peer.publish("e", "x", json!("theirs")).unwrap();
    assert_eq!(quiet.next().await["messages"][0]["data"], "theirs");
}

#[tokio::test]
async fn recover_continues_the_connection_and_detach_leaves_presence() {
    let peer = start().await;
    let (mut a, c) = Ws::connected(&peer, &key_query(keys::FULL, Some("rec"))).await;
    let key = c["connectionDetails"]["connectionKey"]
        .as_str()
        .unwrap()
        .to_owned();
    a.send(json!({"action": 14, "channel": "r", "msgSerial": 0, "presence": [{"action": 2}]}))
        .await;
    a.next().await;
    assert!(peer.drop_connection(c["connectionId"].as_str().unwrap()));
    let (mut b, c2) = Ws::connected(
        &peer,
        &format!("key={}&clientId=rec&recover={key}", keys::FULL),
    )
    .await;
    assert_eq!(c2["connectionId"], c["connectionId"]);
    // The msgSerial continues: 0 was seen, so a resent 0 is only acknowledged.
    b.send(json!({"action": 15, "channel": "r", "msgSerial": 0, "messages": [{"data": "dup"}]}))
        .await;
    assert_eq!(b.next().await["action"], 1);
    assert!(peer.history("r").is_empty());
    b.send(json!({"action": 10, "channel": "r"})).await;
    assert_eq!(b.next().await["action"], 11);
    assert_eq!(b.next().await["action"], 16);
    b.send(json!({"action": 12, "channel": "r"})).await;
    let frames = [b.next().await, b.next().await];
    assert!(
        frames.iter().any(|f| f["action"] == 13),
        "DETACHED: {frames:?}"
    );
    assert!(peer.members("r").is_empty(), "detaching left presence");
}

#[tokio::test]
async fn malformed_frames_get_a_protocol_error_not_a_panic() {
    let peer = start().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, None)).await;
    ws.0.send(Message::Text("{not json".into())).await.unwrap();
    let e = ws.next().await;
    assert_eq!(
        (e["action"].clone(), e["error"]["code"].clone()),
        (json!(9), json!(40000))
    );
    ws.ends().await;
    let (mut ws, _) = Ws::connected(&peer, &key_query(keys::FULL, None)).await;
    ws.send(json!({"action": 15, "channel": "x", "messages": []}))
        .await;
    assert_eq!(ws.next().await["error"]["code"], 40000, "msgSerial missing");
    // The peer still serves.
    let (_ok, c) = Ws::connected(&peer, &key_query(keys::FULL, None)).await;
    assert_eq!(c["action"], 4);
}

#[tokio::test]
async fn after_lost_continuity_a_re_attach_is_not_resumed_and_replays_nothing() {
    let peer = start().await;
    let (mut ws, c) = Ws::connected(&peer, &key_query(keys::FULL, Some("k"))).await;
    let key = c["connectionDetails"]["connectionKey"]
        .as_str()
        .unwrap()
        .to_owned();
    ws.send(json!({"action": 10, "channel": "j"})).await;
    let serial = ws.next().await["channelSerial"].clone();
    assert!(peer.drop_connection(c["connectionId"].as_str().unwrap()));
    peer.publish("j", "x", json!("gap")).unwrap();
    peer.break_continuity("j");
    let (mut ws, c2) = Ws::connected(
        &peer,
        &format!("key={}&clientId=k&resume={key}", keys::FULL),
    )
    .await;
    assert_eq!(
        c2["connectionId"], c["connectionId"],
        "the connection itself resumed"
    );
    ws.send(json!({"action": 10, "channel": "j", "channelSerial": serial}))
        .await;
    let attached = ws.next().await;
    assert_eq!(attached["flags"].as_u64().unwrap() & 4, 0, "not RESUMED");
    peer.publish("j", "x", json!("live")).unwrap();
    assert_eq!(
        ws.next().await["messages"][0]["data"],
        "live",
        "no replay of the gap"
    );
    // History still has it.
    assert_eq!(peer.history("j").len(), 2);
}
