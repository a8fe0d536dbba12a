//! Attacks on the Pusher protocol mode: forged or replayed HTTP signatures, tampered bodies,
//! oversized bodies and frames, alias attempts between channel kinds and between the two
//! protocols, client-event abuse, and refused connections with Pusher's close codes.

mod pusher_mode_common;

use std::time::Duration;

use pusher_mode_common::{APP, PusherWs, SECRET, builder, start_with, token, within};
use relayport_pusher::signing::sign;
use relayport_selfhosted::server::pusher::PusherApp;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a signed request (`secret`, `timestamp`), optionally with a different body than
/// the one signed. Returns (status, body).
#[allow(clippy::too_many_arguments)]
async fn signed(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    params: &[(&str, &str)],
    signed_body: Option<&[u8]>,
    sent_body: Option<&[u8]>,
    secret: &str,
    timestamp: u64,
) -> (u16, Value) {
    let q = sign(APP, secret, method, path, timestamp, params, signed_body).expect("sign");
    let url = format!("http://{addr}{path}?{}", q.encoded());
    let http = reqwest::Client::new();
    let req = match method {
        "POST" => http
            .post(url)
            .header("content-type", "application/json")
            .body(sent_body.unwrap_or_default().to_vec()),
        _ => http.get(url),
    };
    let resp = within("http", req.send()).await.expect("response");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn event_body(data: &str) -> Vec<u8> {
    json!({"name": "e", "channels": ["feed"], "data": data})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn pusher_mode_http_signatures_are_checked_before_anything_happens() {
    let h = start_with(builder()).await;
    let addr = h.local_addr();
    let mut sub = PusherWs::connect(addr).await;
    sub.subscribe("feed", None).await;
    let body = event_body("hi");
    let path = "/apps/relayport/events";
    let ok = |s: u16| s == 200;
    // Valid: accepted and delivered.
    let (s, b) = signed(
        addr,
        "POST",
        path,
        &[],
        Some(&body),
        Some(&body),
        SECRET,
        now(),
    )
    .await;
    assert!(ok(s), "{s} {b}");
    assert_eq!(sub.expect("e").await["data"], "hi");
    // Wrong secret, replayed timestamp (11 minutes old, or from the future), tampered body,
    // the body of another signed request: 401, nothing published.
    let other = event_body("tampered");
    for (secret, ts, sent) in [
        ("wrong-secret", now(), &body),
        (SECRET, now() - 660, &body),
        (SECRET, now() + 660, &body),
        (SECRET, now(), &other),
    ] {
        let (s, b) = signed(addr, "POST", path, &[], Some(&body), Some(sent), secret, ts).await;
        assert_eq!(s, 401, "{b}");
        assert!(!b.to_string().contains(SECRET));
    }
    // A body without body_md5.
    let (s, _) = signed(addr, "POST", path, &[], None, Some(&body), SECRET, now()).await;
    assert_eq!(s, 401);
    // A request signed for one app id replayed against another path.
    let q = sign(
        APP,
        SECRET,
        "GET",
        "/apps/relayport/channels",
        now(),
        &[],
        None,
    )
    .unwrap();
    let url = format!("http://{addr}/apps/relayport/channels/feed?{}", q.encoded());
    assert_eq!(reqwest::get(url).await.unwrap().status().as_u16(), 401);
    // Unsigned, unknown app.
    let url = format!("http://{addr}/apps/relayport/channels");
    assert_eq!(reqwest::get(url).await.unwrap().status().as_u16(), 401);
    let (s, _) = signed(
        addr,
        "GET",
        "/apps/nope/channels",
        &[],
        None,
        None,
        SECRET,
        now(),
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        sub.sync().await.is_empty(),
        "a refused request published something"
    );
}

#[tokio::test]
async fn pusher_mode_oversized_bodies_and_events_are_refused() {
    let mut app = PusherApp::new(APP, APP, SECRET);
    app.max_payload = 1000;
    app.max_batch = 2;
    let h = start_with(builder().pusher_apps(vec![app])).await;
    let addr = h.local_addr();
    let path = "/apps/relayport/events";
    let at = event_body(&"x".repeat(1000));
    let (s, b) = signed(addr, "POST", path, &[], Some(&at), Some(&at), SECRET, now()).await;
    assert_eq!(s, 200, "{b}");
    let past = event_body(&"x".repeat(1001));
    let (s, _) = signed(
        addr,
        "POST",
        path,
        &[],
        Some(&past),
        Some(&past),
        SECRET,
        now(),
    )
    .await;
    assert_eq!(s, 413);
    // A body far past any limit is refused from its Content-Length, unread.
    let huge = vec![b' '; 200_000];
    let (s, _) = signed(
        addr,
        "POST",
        path,
        &[],
        Some(&huge),
        Some(&huge),
        SECRET,
        now(),
    )
    .await;
    assert_eq!(s, 413);
    // 101 channels, a 3-event batch with max_batch 2.
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let many = json!({"name": "e", "channels": channels, "data": "x"}).to_string();
    let (s, _) = signed(
        addr,
        "POST",
        path,
        &[],
        Some(many.as_bytes()),
        Some(many.as_bytes()),
        SECRET,
        now(),
    )
    .await;
    assert_eq!(s, 400);
    let batch = json!({"batch": [
        {"channel": "a", "name": "e", "data": "1"},
        {"channel": "b", "name": "e", "data": "2"},
        {"channel": "c", "name": "e", "data": "3"}]})
    .to_string();
    let bpath = "/apps/relayport/batch_events";
    let (s, _) = signed(
        addr,
        "POST",
        bpath,
        &[],
        Some(batch.as_bytes()),
        Some(batch.as_bytes()),
        SECRET,
        now(),
    )
    .await;
    assert_eq!(s, 400);
    // Bad names and socket ids in the body are 400, never a panic.
    for body in [
        json!({"name": "e", "channels": ["a:b"], "data": "x"}),
        json!({"name": "e", "channels": ["public-x"], "data": "x"}),
        json!({"name": "", "channels": ["a"], "data": "x"}),
        json!({"name": "e", "channels": ["a"], "data": "x", "socket_id": "abc"}),
        json!({"name": "e", "channels": [], "data": "x"}),
        json!([1, 2]),
    ] {
        let b = body.to_string();
        let (s, r) = signed(
            addr,
            "POST",
            path,
            &[],
            Some(b.as_bytes()),
            Some(b.as_bytes()),
            SECRET,
            now(),
        )
        .await;
        assert_eq!(s, 400, "{body} → {r}");
    }
}

#[tokio::test]
async fn pusher_mode_subscription_signatures_cannot_be_moved_or_aliased() {
    let h = start_with(builder()).await;
    let addr = h.local_addr();
    let mut a = PusherWs::connect(addr).await;
    let mut b = PusherWs::connect(addr).await;
    let refused = |f: &Value, channel: &str| {
        assert_eq!(f["event"], "pusher:subscription_error", "{f}");
        assert_eq!(f["channel"], channel, "{f}");
    };
    // A's signature used by B (another socket).
    let for_a = token(APP, SECRET, &format!("{}:private-room-1", a.socket_id));
    b.subscribe_with("private-room-1", Some(&for_a), None).await;
    refused(&b.next().await, "private-room-1");
    // A private signature used for the presence channel of the same name.
    let private = token(APP, SECRET, &format!("{}:private-room-1", b.socket_id));
    let cd = json!({"user_id": "admin"}).to_string();
    b.subscribe_with("presence-room-1", Some(&private), Some(&cd))
        .await;
    refused(&b.next().await, "presence-room-1");
    // A presence signature over other channel_data (a forged user id).
    let signed_cd = json!({"user_id": "guest"}).to_string();
    let sig = token(
        APP,
        SECRET,
        &format!("{}:presence-room-1:{signed_cd}", b.socket_id),
    );
    b.subscribe_with("presence-room-1", Some(&sig), Some(&cd))
        .await;
    refused(&b.next().await, "presence-room-1");
    // A native-protocol signature (over the native name, without the key) is no Pusher auth.
    let native = relayport_core::auth::hmac_sha256_hex(
        SECRET.as_bytes(),
        format!("{}:private:room:1", b.socket_id).as_bytes(),
    );
    b.subscribe_with("private-room-1", Some(&native), None)
        .await;
    refused(&b.next().await, "private-room-1");
    // The right signature with another app's key.
    let other_key = token("other", SECRET, &format!("{}:private-room-1", b.socket_id));
    b.subscribe_with("private-room-1", Some(&other_key), None)
        .await;
    refused(&b.next().await, "private-room-1");
    // Names that would alias another kind or protocol, and reserved names.
    for name in [
        "public-room",
        "private-",
        "a:b",
        "private-a:b",
        "#server-to-user-a",
        "x*",
        &"a".repeat(201),
    ] {
        b.subscribe_with(name, None, None).await;
        refused(&b.next().await, name);
    }
    // Nothing leaked into a subscription.
    a.subscribe("private-room-1", None).await;
    b.send(json!({"event": "client-x", "channel": "private-room-1", "data": {}}))
        .await;
    let e = b.expect("pusher:error").await;
    assert_eq!(e["data"]["code"], 4301);
    assert!(a.sync().await.is_empty());
}

#[tokio::test]
async fn pusher_mode_client_events_are_limited() {
    let h = start_with(builder()).await;
    let addr = h.local_addr();
    let mut a = PusherWs::connect(addr).await;
    let mut b = PusherWs::connect(addr).await;
    a.subscribe("private-chat", None).await;
    b.subscribe("private-chat", None).await;
    a.subscribe("feed", None).await;
    a.subscribe("private-encrypted-x", None).await;
    let rejected = |f: Value| {
        assert_eq!(
            (f["event"].clone(), f["data"]["code"].clone()),
            (json!("pusher:error"), json!(4301)),
            "{f}"
        );
    };
    // Public, encrypted, not subscribed, too large.
    for (channel, data) in [
        ("feed", json!({})),
        ("private-encrypted-x", json!({})),
        ("private-other", json!({})),
        ("private-chat", json!("x".repeat(11 * 1024))),
    ] {
        a.send(json!({"event": "client-e", "channel": channel, "data": data}))
            .await;
        rejected(a.next().await);
    }
    // 10 per second pass, the 11th is refused (the clock does not move in between: the
    // limiter's window is one second).
    for i in 0..11 {
        a.send(json!({"event": "client-n", "channel": "private-chat", "data": {"i": i}}))
            .await;
    }
    rejected(a.next().await);
    let got = b.sync().await;
    assert_eq!(got.len(), 10, "{got:?}");
    assert!(got.iter().all(|f| f["event"] == "client-n"));
    // The app can turn client events off.
    let mut app = PusherApp::new(APP, APP, SECRET);
    app.client_events = false;
    let h2 = start_with(builder().pusher_apps(vec![app])).await;
    let mut c = PusherWs::connect(h2.local_addr()).await;
    c.subscribe("private-chat", None).await;
    c.send(json!({"event": "client-e", "channel": "private-chat", "data": {}}))
        .await;
    rejected(c.next().await);
}

#[tokio::test]
async fn pusher_mode_frames_bad_and_oversized() {
    let h = start_with(builder().max_frame_size(4096)).await;
    let addr = h.local_addr();
    let mut c = PusherWs::connect(addr).await;
    for bad in [
        "not json",
        "[]",
        "{\"event\": 5}",
        "{\"event\":\"pusher:subscribe\",\"data\":7}",
    ] {
        c.send_raw(Message::text(bad)).await;
        assert_eq!(c.next().await["event"], "pusher:error", "{bad}");
    }
    c.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(c.next().await["event"], "pusher:error");
    // Over the frame limit: an error; far over it: closed with 1009.
    c.send(json!({"event": "pusher:ping", "data": {"pad": "x".repeat(5000)}}))
        .await;
    assert_eq!(c.next().await["event"], "pusher:error");
    c.send(json!({"event": "pusher:ping", "data": {"pad": "x".repeat(20_000)}}))
        .await;
    let (code, _) = c.until_close().await;
    assert_eq!(code, Some(1009));
}

async fn refused_with(addr: std::net::SocketAddr, path: &str) -> (Option<u16>, Vec<Value>) {
    PusherWs::from_stream(PusherWs::open(addr, path).await)
        .until_close()
        .await
}

#[tokio::test]
async fn pusher_mode_refused_connections_use_pushers_close_codes() {
    let mut disabled = PusherApp::new("2", "off", "s2");
    disabled.enabled = false;
    let mut one = PusherApp::new("3", "one", "s3");
    one.max_connections = 1;
    let apps = vec![PusherApp::new(APP, APP, SECRET), disabled, one];
    let h = start_with(builder().pusher_apps(apps)).await;
    let addr = h.local_addr();
    for (path, want) in [
        ("/app/unknown?protocol=7", 4001),
        ("/app/off?protocol=7", 4003),
        ("/app/relayport?protocol=6", 4007),
        ("/app/relayport", 4008),
    ] {
        let (code, frames) = refused_with(addr, path).await;
        assert_eq!(code, Some(want), "{path}");
        assert_eq!(frames[0]["data"]["code"], want, "{path}: {frames:?}");
    }
    let _first = PusherWs::connect_key(addr, "one").await;
    let (code, _) = refused_with(addr, "/app/one?protocol=7").await;
    assert_eq!(code, Some(4004));
}

/// Apps never see each other's channels, and an app's key cannot sign for another.
#[tokio::test]
async fn pusher_mode_apps_are_isolated() {
    let apps = vec![
        PusherApp::new(APP, APP, SECRET),
        PusherApp::new("2", "k2", "s2"),
    ];
    let h = start_with(builder().pusher_apps(apps)).await;
    let addr = h.local_addr();
    let mut one = PusherWs::connect(addr).await;
    one.subscribe("feed", None).await;
    let mut two = PusherWs::connect_key(addr, "k2").await;
    two.subscribe_with("feed", None, None).await;
    two.expect("pusher_internal:subscription_succeeded").await;
    // App 1's secret cannot sign app 2's private channel.
    let sig = token("k2", SECRET, &format!("{}:private-x", two.socket_id));
    two.subscribe_with("private-x", Some(&sig), None).await;
    assert_eq!(two.next().await["event"], "pusher:subscription_error");
    let q = sign(
        "k2",
        "s2",
        "POST",
        "/apps/2/events",
        now(),
        &[],
        Some(&event_body("for-two")),
    )
    .unwrap();
    let url = format!("http://{addr}/apps/2/events?{}", q.encoded());
    let resp = reqwest::Client::new()
        .post(url)
        .body(event_body("for-two"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(two.expect("e").await["data"], "for-two");
    assert!(one.sync().await.is_empty(), "app 1 saw app 2's event");
}

/// A silent connection is closed with 4201 after the idle timeout (paused clock), and a
/// `pusher:ping` keeps it open.
#[tokio::test(start_paused = true)]
async fn pusher_mode_a_silent_connection_is_closed_with_4201() {
    let idle = Duration::from_secs(5);
    let h = start_with(builder().idle_timeout(idle)).await;
    let mut c = PusherWs::connect(h.local_addr()).await;
    let started = tokio::time::Instant::now();
    let (code, frames) = c.until_close().await;
    assert_eq!(code, Some(4201), "{frames:?}");
    assert_eq!(frames[0]["data"]["code"], 4201);
    let waited = started.elapsed();
    assert!(waited >= idle && waited < idle * 2, "{waited:?}");
}

/// Damaged and arbitrary frames (seeded, reproducible) never panic the session or close the
/// connection: it still answers a ping afterwards, and every answer is a Pusher frame.
#[tokio::test]
async fn pusher_mode_damaged_frames_never_break_the_connection() {
    let h = start_with(builder()).await;
    let mut c = PusherWs::connect(h.local_addr()).await;
    let seeds = [
        json!({"event": "pusher:subscribe", "data": {"channel": "private-x", "auth": "relayport:00"}}),
        json!({"event": "pusher:subscribe", "data": {"channel": "presence-x", "auth": "a:b", "channel_data": "{\"user_id\":1}"}}),
        json!({"event": "pusher:signin", "data": {"auth": "relayport:ff", "user_data": "{\"id\":\"u\"}"}}),
        json!({"event": "client-x", "channel": "private-x", "data": {"a": [1, 2]}}),
        json!({"event": "pusher:unsubscribe", "data": {"channel": "feed"}}),
        json!({"event": "pusher:ping", "data": "{}"}),
    ];
    let mut rng = fastrand::Rng::with_seed(18);
    for i in 0..400 {
        let base = seeds[i % seeds.len()].to_string().into_bytes();
        let mut bytes = base.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..bytes.len());
            match rng.u8(..3) {
                0 => bytes[at] = rng.u8(32..127),
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, *b"{}[]\":,\\0".get(rng.usize(..10)).unwrap_or(&b'x')),
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        c.send_raw(Message::text(text)).await;
    }
    // A marker no damaged frame can produce: every answer before it is a Pusher frame, and
    // the connection still works.
    c.subscribe_with("zz-marker", None, None).await;
    let mut answers = 0;
    loop {
        let f = c.next().await;
        assert!(f["event"].is_string(), "{f}");
        if f["event"] == "pusher_internal:subscription_succeeded" && f["channel"] == "zz-marker" {
            break;
        }
        answers += 1;
    }
    assert!(answers > 0, "damaged frames were answered");
}

/// A presence channel holds at most `max_presence_members` users; another connection of a
/// member is no new member; user_info over `max_user_info` is refused.
#[tokio::test]
async fn pusher_mode_presence_channels_are_bounded() {
    let mut app = PusherApp::new(APP, APP, SECRET);
    app.max_presence_members = 2;
    app.max_user_info = 64;
    let h = start_with(builder().pusher_apps(vec![app])).await;
    let addr = h.local_addr();
    let cd = |u: &str| json!({"user_id": u, "user_info": {}}).to_string();
    let mut conns = Vec::new();
    for u in ["a", "b", "a"] {
        let mut c = PusherWs::connect(addr).await;
        c.subscribe("presence-room", Some(&cd(u))).await;
        conns.push(c);
    }
    let mut third = PusherWs::connect(addr).await;
    let data = cd("c");
    let sig = token(
        APP,
        SECRET,
        &format!("{}:presence-room:{data}", third.socket_id),
    );
    third
        .subscribe_with("presence-room", Some(&sig), Some(&data))
        .await;
    let e = third.expect("pusher:subscription_error").await;
    assert_eq!(e["data"]["status"], 403, "{e}");
    let big = json!({"user_id": "d", "user_info": {"pad": "x".repeat(100)}}).to_string();
    let sig = token(
        APP,
        SECRET,
        &format!("{}:presence-other:{big}", third.socket_id),
    );
    third
        .subscribe_with("presence-other", Some(&sig), Some(&big))
        .await;
    let e = third.expect("pusher:subscription_error").await;
    assert_eq!(e["data"]["status"], 400, "{e}");
}

/// A shutdown tells Pusher clients to reconnect at once (4200, after a `pusher:error`).
#[tokio::test]
async fn pusher_mode_shutdown_closes_with_4200() {
    let h = start_with(builder()).await;
    let mut c = PusherWs::connect(h.local_addr()).await;
    c.subscribe("feed", None).await;
    let stop = tokio::spawn(h.shutdown());
    let (code, frames) = c.until_close().await;
    assert_eq!(code, Some(4200), "{frames:?}");
    assert_eq!(
        frames.last().map(|f| f["data"]["code"].clone()),
        Some(json!(4200))
    );
    stop.await.unwrap();
}
