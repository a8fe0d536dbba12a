//! The client against a loopback peer that replays `pusher-js-transcript.json` (official
//! pusher-js 8.6.0) and asserts that every frame our client sends is the official client's,
//! byte for byte; plus scripted peers for refusals, timeouts, encryption and client events.

mod common;

use std::time::Duration;

use common::OrderedJson;
use common::peer::{Peer, Step, established};
use relayport_core::{
    AuthRequest, ChannelAuthorizer, EventSink, OutboundMessage, PresenceChange, PresenceMember,
    PresenceUser, ProviderEvent, RealtimeProvider, Reconnect, SubscribeOptions,
};
use relayport_pusher::names::{from_wire, to_wire};
use relayport_pusher::{Credentials, PusherAuthorizer, PusherConfig, PusherProvider, UserEvent};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

const WAIT: Duration = Duration::from_secs(10);

fn transcript() -> Value {
    common::vector("pusher-js-transcript.json")
}

fn rtk() -> Credentials {
    let v = common::vector("pusher.json");
    let c = &v["credentials"]["rtk"];
    Credentials::new(
        c["appId"].as_str().unwrap(),
        c["key"].as_str().unwrap(),
        c["secret"].as_str().unwrap(),
    )
    .with_encryption_master_key_base64(c["encryptionMasterKeyBase64"].as_str().unwrap())
    .unwrap()
}

fn config(port: u16) -> PusherConfig {
    let mut c = PusherConfig::host(rtk().key, "127.0.0.1", port, false);
    // Speak as the client the transcript recorded, so the URL can be compared byte for byte.
    c.client_name = "js".into();
    c.client_version = "8.6.0".into();
    c
}

/// The (socket id, activity timeout) the transcript's recording peer announced
/// (`gen/pusher-js-transcript.js`: `established(ws, '123.456', 120)`); the signatures in the
/// recorded frames are bound to this socket id, so a wrong value fails the comparison.
const TRANSCRIPT_SOCKET_ID: &str = "123.456";

/// pusher-js's client-side events in its own shape, for comparison.
fn observed(event: &ProviderEvent, me: Option<&str>) -> Option<Value> {
    match event {
        ProviderEvent::Message(m) => {
            let mut v =
                json!({"channel": to_wire(&m.channel).unwrap(), "event": m.event, "data": m.data});
            if let Some(s) = &m.sender {
                v["metadata"] = json!({"user_id": s});
            }
            Some(v)
        }
        ProviderEvent::Presence { channel, change } => {
            let ch = to_wire(channel).unwrap();
            let member = |m: &PresenceMember| json!({"id": m.id, "info": m.data});
            Some(match change {
                PresenceChange::Snapshot(ms) => {
                    let me = ms.iter().find(|m| Some(m.id.as_str()) == me).map(member);
                    json!({"channel": ch, "event": "pusher:subscription_succeeded", "members_count": ms.len(), "me": me})
                }
                PresenceChange::Joined(m) => {
                    json!({"channel": ch, "event": "pusher:member_added", "member": member(m)})
                }
                PresenceChange::Left(m) => {
                    json!({"channel": ch, "event": "pusher:member_removed", "member": member(m)})
                }
                PresenceChange::Updated(m) => {
                    json!({"channel": ch, "event": "updated", "member": member(m)})
                }
            })
        }
        _ => None,
    }
}

/// Checks that `expected` is a subsequence of `seen`; returns the index reached.
fn matched(expected: &[Value], seen: &[Value]) -> usize {
    let mut i = 0;
    for v in seen {
        if i < expected.len() && *v == expected[i] {
            i += 1;
        }
    }
    i
}

#[tokio::test]
async fn happy_path_matches_pusher_js_frame_for_frame() {
    let t = transcript();
    let hp = &t["happy_path"];
    let frames = hp["frames"].as_array().unwrap();
    let mut script = vec![Step::Send(established(TRANSCRIPT_SOCKET_ID, 120))];
    for f in frames {
        let raw = f["raw"].as_str().unwrap().to_owned();
        script.push(match f["dir"].as_str().unwrap() {
            "client->server" => Step::Expect(raw),
            _ => Step::Send(raw),
        });
    }
    script.push(Step::AwaitClose);
    let peer = Peer::start(script).await;

    let provider = PusherProvider::new(config(peer.port));
    let mut user_events = provider.user_events();
    let (sink, mut rx) = EventSink::channel();
    let session = provider.connect(sink).await.unwrap();
    assert_eq!(session.connection_id, TRANSCRIPT_SOCKET_ID);
    assert_eq!(session.heartbeat_interval, Some(Duration::from_secs(120)));
    let authorizer = PusherAuthorizer::new(rtk());
    let mut presence_user = None;

    // Drive the client through what the official client did, read from its own frames.
    for f in frames.iter().filter(|f| f["dir"] == "client->server") {
        let sent: Value = serde_json::from_str(f["raw"].as_str().unwrap()).unwrap();
        let event = sent["event"].as_str().unwrap();
        let data = &sent["data"];
        match event {
            "pusher:subscribe" => {
                let wire = data["channel"].as_str().unwrap();
                if wire.starts_with("#server-to-user-") {
                    continue; // sent by the client itself after signin_success
                }
                let channel = from_wire(wire).unwrap();
                let user = data["channel_data"].as_str().map(|cd| {
                    let cd: Value = serde_json::from_str(cd).unwrap();
                    PresenceUser {
                        id: cd["user_id"].as_str().unwrap().to_owned(),
                        info: cd["user_info"].clone(),
                    }
                });
                if let Some(u) = &user {
                    presence_user = Some(u.id.clone());
                }
                let auth = if channel.kind().requires_auth() {
                    let request = AuthRequest {
                        socket_id: session.connection_id.clone(),
                        channel: channel.clone(),
                        user: user.clone(),
                    };
                    Some(authorizer.authorize(&request).await.unwrap())
                } else {
                    None
                };
                let options = SubscribeOptions {
                    auth,
                    presence_data: user.map(|u| u.info),
                    ..Default::default()
                };
                provider.subscribe(&channel, &options).await.unwrap();
            }
            "pusher:unsubscribe" => {
                let channel = from_wire(data["channel"].as_str().unwrap()).unwrap();
                provider.unsubscribe(&channel).await.unwrap();
            }
            "pusher:signin" => {
                let user_data: OrderedJson =
                    serde_json::from_str(data["user_data"].as_str().unwrap()).unwrap();
                let body = authorizer
                    .authenticate_user(&session.connection_id, &user_data)
                    .unwrap();
                let id = provider.signin(&body).await.unwrap();
                assert_eq!(id, "user-42");
            }
            e if e.starts_with("client-") => {
                let channel = from_wire(sent["channel"].as_str().unwrap()).unwrap();
                let msg = OutboundMessage::new(channel, e, data.clone());
                provider.publish(&msg).await.unwrap();
            }
            other => panic!("no driver action for a client frame `{other}`: add one"),
        }
    }

    // What pusher-js reported to the application arrives here too, in order.
    let expected = hp["client_side_events"].as_array().unwrap();
    let (on_channels, on_user): (Vec<Value>, Vec<Value>) = expected
        .iter()
        .cloned()
        .partition(|e| e.get("channel").is_some());
    let me = presence_user.clone();
    let mut seen = Vec::new();
    while matched(&on_channels, &seen) < on_channels.len() {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some((_, ev))) => seen.extend(observed(&ev, me.as_deref())),
            _ => panic!("expected {on_channels:#?}\nseen {seen:#?}"),
        }
    }
    let mut seen_user = Vec::new();
    while matched(&on_user, &seen_user) < on_user.len() {
        match tokio::time::timeout(WAIT, user_events.recv()).await {
            Ok(Ok(UserEvent::Watchlist { name, user_ids })) => seen_user.push(
                json!({"event": format!("watchlist {name}"), "data": {"name": name, "user_ids": user_ids}}),
            ),
            Ok(Ok(_)) => {}
            _ => panic!("expected {on_user:#?}\nseen {seen_user:#?}"),
        }
    }

    // The presence roster as the server left it: user-7 removed, user-8 added.
    let room = from_wire("presence-room").unwrap();
    let mut ids: Vec<String> = provider
        .presence_members(&room)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["user-42", "user-8"]);

    provider.disconnect().await.unwrap();
    let report = peer
        .finish()
        .await
        .expect("every client frame matched pusher-js");
    assert_eq!(
        report.path_and_query,
        hp["ws_path_and_query"].as_str().unwrap()
    );
}

/// The peer is not a rubber stamp: a client frame that differs from the script fails it.
#[tokio::test]
async fn the_peer_rejects_a_frame_that_differs() {
    let peer = Peer::start(vec![
        Step::Send(established("1.1", 120)),
        Step::Expect(r#"{"event":"pusher:subscribe","data":{"auth":"","channel":"other"}}"#.into()),
    ])
    .await;
    let provider = PusherProvider::new(config(peer.port));
    let (sink, _rx) = EventSink::channel();
    provider.connect(sink).await.unwrap();
    let _ = provider
        .subscribe(
            &from_wire("my-channel").unwrap(),
            &SubscribeOptions::default(),
        )
        .await;
    let err = peer.finish().await.unwrap_err();
    assert!(err.contains("expected"), "{err}");
    provider.disconnect().await.unwrap();
}

async fn next_closed(
    rx: &mut UnboundedReceiver<(u64, ProviderEvent)>,
) -> relayport_core::CloseReason {
    loop {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some((_, ProviderEvent::Closed(r)))) => return r,
            Ok(Some(_)) => continue,
            other => panic!("no Closed event: {other:?}"),
        }
    }
}

/// For each close code pusher-js was measured against, the server closes right after the
/// handshake and our client reports the same decision (no reconnect / at once / backoff).
#[tokio::test]
async fn close_codes_drive_the_reconnect_decision_like_pusher_js() {
    let t = transcript();
    for case in t["close_codes"].as_array().unwrap() {
        let code = case["close_code"].as_u64().unwrap() as u16;
        let reason = format!("test close {code}");
        let peer = Peer::start(vec![
            Step::Send(established("1.1", 120)),
            Step::Close(code, reason.clone()),
            Step::AwaitClose,
        ])
        .await;
        let provider = PusherProvider::new(config(peer.port));
        let (sink, mut rx) = EventSink::channel();
        provider.connect(sink).await.unwrap();
        let closed = next_closed(&mut rx).await;
        assert_eq!(closed.code, Some(i64::from(code)));
        assert!(closed.message.contains(&reason), "{closed:?}");
        let expected = match case["reconnect_delay_after_close_ms"].as_u64() {
            None => "never",
            Some(ms) if ms < 100 => "now",
            Some(_) => "backoff",
        };
        let got = match &closed.reconnect {
            Reconnect::Never(_) => "never",
            Reconnect::Immediately => "now",
            Reconnect::Backoff => "backoff",
        };
        assert_eq!(got, expected, "close code {code}");
        provider.disconnect().await.unwrap();
        peer.finish().await.unwrap();
    }
}

/// The transcript's ping scenario: the server asks for a 1 s activity timeout, so the
/// heartbeat interval is min(client 120 s, server 1 s); the ping frame is pusher-js's; with
/// no pong, the ping fails after exactly the pong timeout (700 ms there; paused clock).
#[tokio::test(start_paused = true)]
async fn ping_pong_and_activity_timeout() {
    let t = transcript();
    let p = &t["ping"];
    let ping_frame = p["events"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|e| e["what"].as_str()?.strip_prefix("recv ").map(str::to_owned))
        .unwrap();
    let peer = Peer::start(vec![
        Step::Send(established(
            "1.9",
            p["server_activity_timeout_s"].as_u64().unwrap(),
        )),
        // the server pings: the client answers with a pong
        Step::Send(r#"{"event":"pusher:ping","data":{}}"#.into()),
        Step::Expect(r#"{"event":"pusher:pong","data":{}}"#.into()),
        // a marker frame, so the test knows the exchange is over
        Step::Send(r#"{"event":"pusher:error","data":{"code":4200,"message":"marker"}}"#.into()),
        // no pong for the first client ping
        Step::Expect(ping_frame.clone()),
        Step::Expect(ping_frame.clone()),
        Step::Send(r#"{"event":"pusher:pong"}"#.into()),
        Step::AwaitClose,
    ])
    .await;
    let mut c = config(peer.port);
    c.activity_timeout = Duration::from_millis(p["client_activityTimeout_ms"].as_u64().unwrap());
    // The provider has no pong timeout of its own: the caller's (the core's heartbeat
    // timeout) bounds the wait for a pong.
    let pong_timeout = Duration::from_millis(p["client_pongTimeout_ms"].as_u64().unwrap());
    let provider = PusherProvider::new(c);
    let (sink, mut rx) = EventSink::channel();
    let session = provider.connect(sink).await.unwrap();
    assert_eq!(session.heartbeat_interval, Some(Duration::from_secs(1)));
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some((_, ProviderEvent::Error { error, .. }))) => {
            assert!(error.to_string().contains("marker"), "{error}")
        }
        other => panic!("expected the marker error, got {other:?}"),
    }
    let started = tokio::time::Instant::now();
    let unanswered = tokio::time::timeout(pong_timeout, provider.ping()).await;
    assert!(unanswered.is_err(), "{unanswered:?}");
    assert_eq!(started.elapsed(), pong_timeout);
    assert!(provider.ping().await.is_ok());
    provider.disconnect().await.unwrap();
    peer.finish().await.unwrap();
}
