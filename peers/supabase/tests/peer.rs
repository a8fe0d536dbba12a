//! The peer's own behaviour, frame by frame, over a raw WebSocket client.

mod common;

use std::time::Duration;

use common::{In, connect, connect_with, quick_peer};
use relayport_peer_supabase::{Change, PeerEvent, Policy, SupabasePeer, Vsn};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn cfg(extra: Value) -> Value {
    let mut c = json!({"broadcast": {"ack": false, "self": false},
                       "presence": {"key": "", "enabled": false},
                       "postgres_changes": [], "private": false});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            c.insert(k.clone(), v.clone());
        }
    }
    json!({"config": c})
}

#[tokio::test]
async fn handshake_refuses_bad_keys_and_versions() {
    let peer = quick_peer().await;
    for (key, vsn) in [("not-a-jwt", "2.0.0"), ("", "2.0.0")] {
        let url = format!("{}/websocket?apikey={key}&vsn={vsn}", peer.endpoint());
        let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
        let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
            panic!("expected an HTTP refusal, got {err}");
        };
        assert_eq!(resp.status(), 401);
    }
    let expired = peer.token("anon", None, Duration::ZERO, json!({}));
    let url = common::url(&peer, &expired, Vsn::V2);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    let url = format!(
        "{}/websocket?apikey={}&vsn=3.0.0",
        peer.endpoint(),
        peer.anon_key()
    );
    let err = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(peer.connections(), 0);
}

#[tokio::test]
async fn heartbeat_join_reply_and_unmatched_topics() {
    let peer = quick_peer().await;
    for vsn in [Vsn::V1, Vsn::V2] {
        let mut ws = connect(&peer, vsn).await;
        ws.push(None, "9", "phoenix", "heartbeat", json!({})).await;
        let In::Msg {
            msg_ref,
            topic,
            event,
            payload,
            ..
        } = ws.recv().await
        else {
            panic!("a reply")
        };
        assert_eq!((msg_ref.as_deref(), topic.as_str()), (Some("9"), "phoenix"));
        assert_eq!(event, "phx_reply");
        assert_eq!(payload, json!({"status": "ok", "response": {}}));
        // Only realtime:* is routed.
        let _ = ws.join("room1", cfg(json!({}))).await;
        assert_eq!(
            ws.recv().await.payload()["response"]["reason"],
            "unmatched topic"
        );
        // A message to a topic that is not joined.
        ws.push(Some("1"), "77", "realtime:nowhere", "broadcast", json!({}))
            .await;
        assert_eq!(
            ws.recv().await.payload()["response"]["reason"],
            "unmatched topic"
        );
        let jr = ws.join("realtime:room1", cfg(json!({}))).await;
        let reply = ws.recv().await;
        let In::Msg {
            join_ref, payload, ..
        } = &reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(
            payload,
            &json!({"status": "ok", "response": {"postgres_changes": []}})
        );
        let expected_jr = (vsn == Vsn::V2).then(|| jr.clone());
        assert_eq!(join_ref, &expected_jr);
    }
}

#[tokio::test]
async fn broadcast_self_ack_and_binary_frames_across_versions() {
    let peer = quick_peer().await;
    let mut a = connect(&peer, Vsn::V2).await;
    let mut b = connect(&peer, Vsn::V2).await;
    let mut old = connect(&peer, Vsn::V1).await;
    let t = "realtime:room";
    let ja = a
        .join_ok(t, cfg(json!({"broadcast": {"self": true, "ack": true}})))
        .await;
    b.join_ok(t, cfg(json!({}))).await;
    old.join_ok(t, cfg(json!({}))).await;

    // Text broadcast with ack and self.
    let body = json!({"type": "broadcast", "event": "cursor", "payload": {"x": 1}});
    a.push(Some(&ja), "5", t, "broadcast", body.clone()).await;
    let mut got = [a.recv().await, a.recv().await];
    got.sort_by_key(|m| m.event().to_owned());
    assert_eq!(got[0].payload(), &body, "own message with self");
    assert_eq!(got[1].payload(), &json!({"status": "ok", "response": {}}));
    for s in [&mut b, &mut old] {
        let m = s.recv().await;
        assert_eq!((m.event(), m.payload()), ("broadcast", &body));
    }

    // Kind 3 (JSON) in: kind 4 to vsn 2, JSON text to vsn 1.
    let mut f = vec![3, ja.len() as u8, 1, t.len() as u8, 3, 0, 1];
    f.extend_from_slice(format!("{ja}6{t}pos").as_bytes());
    f.extend_from_slice(br#"{"y":2}"#);
    a.raw(Message::Binary(f.into())).await;
    let mut want = vec![4, t.len() as u8, 3, 0, 1];
    want.extend_from_slice(format!("{t}pos").as_bytes());
    want.extend_from_slice(br#"{"y":2}"#);
    assert_eq!(b.recv().await, In::Binary(want));
    assert_eq!(
        old.recv().await.payload(),
        &json!({"type": "broadcast", "event": "pos", "payload": {"y": 2}})
    );
    // A binary user payload cannot reach vsn 1: the next thing there is the marker.
    let mut f = vec![3, ja.len() as u8, 1, t.len() as u8, 3, 0, 0];
    f.extend_from_slice(format!("{ja}7{t}bin").as_bytes());
    f.extend_from_slice(&[1, 2, 255]);
    a.raw(Message::Binary(f.into())).await;
    let In::Binary(kind4) = b.recv().await else {
        panic!("binary to vsn 2")
    };
    assert_eq!(&kind4[kind4.len() - 3..], &[1, 2, 255]);
    assert_eq!(kind4[4], 0, "encoding 0 = binary");
    let marker = json!({"type": "broadcast", "event": "marker", "payload": {}});
    a.push(Some(&ja), "8", t, "broadcast", marker.clone()).await;
    assert_eq!(old.recv().await.payload(), &marker);
    // Oversize with ack: the bare-string error.
    drop((a, b, old));
    let small = SupabasePeer::builder()
        .max_payload(10)
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut a = connect(&small, Vsn::V2).await;
    let ja = a.join_ok(t, cfg(json!({"broadcast": {"ack": true}}))).await;
    let big = json!({"type": "broadcast", "event": "e", "payload": {"k": "0123456789"}});
    a.push(Some(&ja), "3", t, "broadcast", big).await;
    assert_eq!(
        a.recv().await.payload(),
        &json!({"status": "error", "response": "payload_size_exceeded"})
    );
    assert_eq!(small.stats().oversize, 1);
}

#[tokio::test(start_paused = true)]
async fn join_errors_come_after_the_backoff_with_the_servers_reasons() {
    let peer = SupabasePeer::builder()
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut ws = connect(&peer, Vsn::V2).await;
    let private = |token: Option<String>| {
        let mut p = cfg(json!({"private": true}));
        if let Some(t) = token {
            p["access_token"] = json!(t);
        }
        p
    };
    let cases = [
        (
            None,
            "Unauthorized: You do not have permissions to read from this Channel topic: vault",
        ),
        (
            Some(peer.token("authenticated", None, Duration::ZERO, json!({}))),
            "InvalidJWTToken: Token has expired ",
        ),
        (
            Some("a.b.c".to_owned()),
            "MalformedJWT: The token provided is not a valid JWT",
        ),
        (
            Some(
                SupabasePeer::builder()
                    .secret("another-secret-another-secret-another")
                    .bind("127.0.0.1:0")
                    .await
                    .unwrap()
                    .token("authenticated", None, Duration::from_secs(60), json!({})),
            ),
            "JwtSignatureError: Failed to validate JWT signature",
        ),
    ];
    for (token, reason) in cases {
        let start = tokio::time::Instant::now();
        ws.join("realtime:vault", private(token)).await;
        let m = ws.recv().await;
        assert!(
            start.elapsed() >= Duration::from_secs(5),
            "before the backoff"
        );
        assert_eq!(m.payload()["status"], "error");
        let got = m.payload()["response"]["reason"]
            .as_str()
            .unwrap_or_default();
        assert!(got.starts_with(reason), "{got} is not {reason}");
    }
    // An authenticated token passes the default policy; the same token on a `deny_all` peer
    // does not.
    let ok = peer.token(
        "authenticated",
        Some("u1"),
        Duration::from_secs(60),
        json!({}),
    );
    ws.join_ok("realtime:vault", private(Some(ok))).await;
    assert_eq!(peer.joined("vault", true), 1);
    assert_eq!(peer.stats().joins_refused, 4);
}

#[tokio::test(start_paused = true)]
async fn tokens_expire_per_channel_on_tokio_time_and_access_token_extends_them() {
    let peer = SupabasePeer::builder()
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let mut ws = connect(&peer, Vsn::V2).await;
    let tok = |ttl| {
        peer.token(
            "authenticated",
            Some("u1"),
            Duration::from_secs(ttl),
            json!({}),
        )
    };
    let mut p = cfg(json!({"private": true}));
    p["access_token"] = json!(tok(60));
    let jr = ws.join_ok("realtime:a", p.clone()).await;
    let mut p2 = p.clone();
    p2["access_token"] = json!(tok(600));
    let jr_b = ws.join_ok("realtime:b", p2).await;
    // 50 s later the first channel gets a fresh 120 s token (a token's life is timed from
    // its arrival: the wall clock stands still on the paused clock).
    tokio::time::sleep(Duration::from_secs(50)).await;
    ws.push(
        Some(&jr),
        "10",
        "realtime:a",
        "access_token",
        json!({"access_token": tok(120)}),
    )
    .await;
    // Past the first token's expiry: nothing (the access_token push is never answered).
    ws.silent_for(Duration::from_secs(119)).await;
    // Past the second: system + phx_close on `a` only.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sys = ws.recv().await;
    let In::Msg {
        join_ref,
        topic,
        event,
        payload,
        ..
    } = &sys
    else {
        panic!("{sys:?}")
    };
    assert_eq!((topic.as_str(), event.as_str()), ("realtime:a", "system"));
    assert_eq!(join_ref.as_deref(), Some(jr.as_str()));
    assert_eq!(payload["status"], "error");
    assert_eq!(payload["extension"], "system");
    assert_eq!(payload["channel"], "a");
    assert!(
        payload["message"]
            .as_str()
            .unwrap()
            .starts_with("Token has expired"),
        "{payload}"
    );
    let close = ws.recv().await;
    assert_eq!(close.event(), "phx_close");
    assert_eq!(peer.joined("a", true), 0);
    assert_eq!(peer.joined("b", true), 1);
    // A bad access_token closes the channel at once.
    ws.push(
        Some(&jr_b),
        "11",
        "realtime:b",
        "access_token",
        json!({"access_token": "garbage"}),
    )
    .await;
    assert_eq!(ws.recv().await.event(), "system");
    assert_eq!(ws.recv().await.event(), "phx_close");
    assert_eq!(peer.stats().access_tokens, 2);
}

#[tokio::test(start_paused = true)]
async fn a_policy_over_claims_scopes_private_channels_and_reevaluates_on_refresh() {
    let peer = SupabasePeer::builder()
        .policy(Policy::claim_names_topic("channel"))
        .join_error_backoff(Duration::ZERO)
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let scoped = |name: &str| {
        peer.token(
            "authenticated",
            Some("u1"),
            Duration::from_secs(600),
            json!({"channel": name}),
        )
    };
    let mut ws = connect(&peer, Vsn::V2).await;
    let join = |token: String| {
        let mut p = cfg(json!({"private": true}));
        p["access_token"] = json!(token);
        p
    };
    ws.join("realtime:room-2", join(scoped("room-1"))).await;
    let m = ws.recv().await;
    assert_eq!(
        m.payload()["status"],
        "error",
        "a room-1 token opened room-2"
    );
    let jr = ws.join_ok("realtime:room-1", join(scoped("room-1"))).await;
    // Public channels need no policy.
    ws.join_ok("realtime:room-2", cfg(json!({}))).await;
    // A refreshed token for another room revokes read access.
    ws.push(
        Some(&jr),
        "20",
        "realtime:room-1",
        "access_token",
        json!({"access_token": scoped("room-9")}),
    )
    .await;
    let sys = ws.recv().await;
    assert_eq!(
        sys.payload()["message"],
        "You no longer have permission to read from this Channel topic: room-1"
    );
    assert_eq!(ws.recv().await.event(), "phx_close");
    // Service role bypasses the policy.
    let service = peer.service_role_key();
    ws.join_ok("realtime:room-7", join(service)).await;
}

#[tokio::test]
async fn private_writes_need_write_access_and_are_dropped_silently_otherwise() {
    let peer = SupabasePeer::builder()
        .policy(Policy::new(|a| {
            a.action == relayport_peer_supabase::Action::Read || a.claim("sub") == Some("writer")
        }))
        .idle_timeout(None)
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    let join = |sub: &str| {
        let mut p = cfg(json!({"private": true, "broadcast": {"ack": true, "self": true}}));
        p["access_token"] = json!(peer.token(
            "authenticated",
            Some(sub),
            Duration::from_secs(600),
            json!({})
        ));
        p
    };
    let mut reader = connect(&peer, Vsn::V2).await;
    let mut writer = connect(&peer, Vsn::V2).await;
    let jr = reader.join_ok("realtime:feed", join("reader")).await;
    let jw = writer.join_ok("realtime:feed", join("writer")).await;
    let body = |n: u32| json!({"type": "broadcast", "event": "e", "payload": {"n": n}});
    reader
        .push(Some(&jr), "5", "realtime:feed", "broadcast", body(1))
        .await;
    writer
        .push(Some(&jw), "6", "realtime:feed", "broadcast", body(2))
        .await;
    // The reader's own write is dropped (no ack, no echo); the writer's arrives.
    assert_eq!(reader.recv().await.payload()["payload"]["n"], 2);
    assert_eq!(peer.stats().denied_writes, 1);
    // REST: private messages need write access too.
    let http = reqwest::Client::new();
    let post = |token: String, n: u32| {
        http.post(format!("{}/realtime/v1/api/broadcast", peer.project_url()))
            .header("apikey", peer.anon_key())
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(
                json!({"messages": [{"topic": "feed", "event": "r", "payload": {"n": n},
                                     "private": true}]})
                .to_string(),
            )
            .send()
    };
    let tok = |sub: &str| {
        peer.token(
            "authenticated",
            Some(sub),
            Duration::from_secs(60),
            json!({}),
        )
    };
    assert_eq!(post(tok("reader"), 3).await.unwrap().status(), 202);
    assert_eq!(post(tok("writer"), 4).await.unwrap().status(), 202);
    assert_eq!(reader.recv().await.payload()["payload"]["n"], 4);
    assert_eq!(peer.stats().denied_writes, 2);
}

#[tokio::test]
async fn rest_broadcast_auth_validation_and_delivery() {
    let peer = quick_peer().await;
    let mut ws = connect(&peer, Vsn::V2).await;
    ws.join_ok("realtime:news", cfg(json!({}))).await;
    let http = reqwest::Client::new();
    let send = |key: Option<String>, body: String| {
        let mut r = http
            .post(format!("{}/realtime/v1/api/broadcast", peer.project_url()))
            .header("content-type", "application/json")
            .body(body);
        if let Some(k) = key {
            r = r.header("apikey", k);
        }
        r.send()
    };
    let ok =
        json!({"messages": [{"topic": "news", "event": "h", "payload": {"a": 1}, "id": "m1"}]});
    assert_eq!(send(None, ok.to_string()).await.unwrap().status(), 401);
    assert_eq!(
        send(Some("bad".into()), ok.to_string())
            .await
            .unwrap()
            .status(),
        401
    );
    let not_object = json!({"messages": [{"topic": "news", "event": "h", "payload": 1}]});
    assert_eq!(
        send(Some(peer.anon_key()), not_object.to_string())
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        send(Some(peer.anon_key()), "{".into())
            .await
            .unwrap()
            .status(),
        422
    );
    assert_eq!(
        send(Some(peer.anon_key()), ok.to_string())
            .await
            .unwrap()
            .status(),
        202
    );
    let m = ws.recv().await;
    assert_eq!(
        m.payload(),
        &json!({"type": "broadcast", "event": "h", "payload": {"a": 1}, "meta": {"id": "m1"}})
    );
    // The single-event endpoint, binary body: a kind-4 frame with encoding 0.
    let r = http
        .post(format!(
            "{}/realtime/v1/api/broadcast/news/events/blob",
            peer.project_url()
        ))
        .header("apikey", peer.anon_key())
        .header("content-type", "application/octet-stream")
        .body(vec![9u8, 8, 7])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let In::Binary(f) = ws.recv().await else {
        panic!("kind 4")
    };
    assert_eq!((f[0], f[4]), (4, 0));
    assert_eq!(&f[f.len() - 3..], &[9, 8, 7]);
}

#[tokio::test]
async fn presence_state_diffs_updates_and_leaves_on_drop() {
    let peer = quick_peer().await;
    let t = "realtime:lobby";
    let mut a = connect(&peer, Vsn::V2).await;
    let mut b = connect(&peer, Vsn::V1).await;
    let pres = |key: &str| cfg(json!({"presence": {"key": key, "enabled": true}}));
    let ja = a.join_ok(t, pres("alice")).await;
    assert_eq!(a.recv().await.event(), "presence_state");
    let track = |v: Value| json!({"type": "presence", "event": "track", "payload": v});
    a.push(Some(&ja), "3", t, "presence", track(json!({"v": 1})))
        .await;
    let mut two = [a.recv().await, a.recv().await];
    two.sort_by_key(|m| m.event().to_owned());
    assert_eq!(two[0].payload()["status"], "ok");
    let diff = two[1].payload();
    assert_eq!(diff["joins"]["alice"]["metas"][0]["v"], 1);
    let first_ref = diff["joins"]["alice"]["metas"][0]["phx_ref"].clone();
    assert!(first_ref.is_string());
    // Bob joins and sees alice in presence_state.
    b.join_ok(t, pres("bob")).await;
    let state = b.recv().await;
    assert_eq!(state.event(), "presence_state");
    assert_eq!(state.payload()["alice"]["metas"][0]["v"], 1);
    // Alice updates: a leave of the old meta and a join with phx_ref_prev.
    a.push(Some(&ja), "4", t, "presence", track(json!({"v": 2})))
        .await;
    let d = b.recv().await;
    assert_eq!(d.event(), "presence_diff");
    assert_eq!(d.payload()["leaves"]["alice"]["metas"][0]["v"], 1);
    assert_eq!(d.payload()["joins"]["alice"]["metas"][0]["v"], 2);
    assert_eq!(
        d.payload()["joins"]["alice"]["metas"][0]["phx_ref_prev"],
        first_ref
    );
    // The same payload again changes nothing (bob hears nothing more before the next step).
    a.push(Some(&ja), "5", t, "presence", track(json!({"v": 2})))
        .await;
    assert_eq!(peer.presence("lobby", false)["alice"]["metas"][0]["v"], 2);
    // A bad track payload is an error reply.
    a.push(Some(&ja), "6", t, "presence", track(json!(5))).await;
    // Alice's socket drops: bob sees her leave.
    assert_eq!(peer.connections(), 2);
    drop(a);
    let d = b.recv().await;
    assert_eq!(d.event(), "presence_diff", "{d:?}");
    assert_eq!(d.payload()["leaves"]["alice"]["metas"][0]["v"], 2);
    assert_eq!(peer.presence("lobby", false), json!({}));
}

#[tokio::test]
async fn postgres_changes_reply_ids_system_message_and_filtered_delivery() {
    let peer = quick_peer().await;
    let mut ws = connect(&peer, Vsn::V2).await;
    let filters = json!([
        {"event": "INSERT", "schema": "public", "table": "todos"},
        {"event": "*", "schema": "public", "table": "todos", "filter": "owner=eq.ann"},
    ]);
    let jr = ws
        .join("realtime:db", cfg(json!({"postgres_changes": filters})))
        .await;
    let reply = ws.recv().await;
    let echoed = reply.payload()["response"]["postgres_changes"].clone();
    assert_eq!(echoed[0]["event"], "INSERT");
    assert_eq!(echoed[1]["filter"], "owner=eq.ann");
    let (id0, id1) = (echoed[0]["id"].clone(), echoed[1]["id"].clone());
    assert!(id0.is_u64() && id1.is_u64() && id0 != id1);
    let sys = ws.recv().await;
    let In::Msg {
        join_ref, payload, ..
    } = &sys
    else {
        panic!()
    };
    assert_eq!(join_ref.as_deref(), Some(jr.as_str()));
    assert_eq!(
        payload,
        &json!({"extension": "postgres_changes", "status": "ok",
                "message": "Subscribed to PostgreSQL", "channel": "db"})
    );
    let bob = Change::insert("public", "todos", json!({"owner": "bob"}));
    assert_eq!(peer.inject_change(&bob), 1);
    let m = ws.recv().await;
    assert_eq!(m.event(), "postgres_changes");
    assert_eq!(m.payload()["ids"], json!([id0]));
    assert_eq!(m.payload()["data"]["record"]["owner"], "bob");
    assert_eq!(m.payload()["data"]["type"], "INSERT");
    let ann = Change::insert("public", "todos", json!({"owner": "ann"}));
    peer.inject_change(&ann);
    assert_eq!(ws.recv().await.payload()["ids"], json!([id0, id1]));
    assert_eq!(
        peer.inject_change(&Change::insert("public", "other", json!({}))),
        0
    );
}

#[tokio::test]
async fn phx_error_hits_one_channel_and_leave_closes_with_the_join_ref() {
    let peer = quick_peer().await;
    let mut events = peer.events();
    let mut ws = connect(&peer, Vsn::V2).await;
    let j1 = ws.join_ok("realtime:one", cfg(json!({}))).await;
    let j2 = ws.join_ok("realtime:two", cfg(json!({}))).await;
    assert_eq!(peer.fail_channel("one"), 1);
    let In::Msg {
        join_ref,
        msg_ref,
        event,
        ..
    } = ws.recv().await
    else {
        panic!()
    };
    assert_eq!(event, "phx_error");
    assert_eq!(
        (join_ref.as_deref(), msg_ref.as_deref()),
        (Some(&*j1), Some(&*j1))
    );
    // The sibling still gets messages.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/realtime/v1/api/broadcast", peer.project_url()))
        .header("apikey", peer.service_role_key())
        .body(json!({"messages": [{"topic": "two", "event": "e", "payload": {}}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(ws.recv().await.event(), "broadcast");
    // Leave: ok reply, then phx_close with ref = join_ref.
    ws.push(Some(&j2), "30", "realtime:two", "phx_leave", json!({}))
        .await;
    let reply = ws.recv().await;
    assert_eq!(reply.payload()["status"], "ok");
    let In::Msg { msg_ref, event, .. } = ws.recv().await else {
        panic!()
    };
    assert_eq!(
        (event.as_str(), msg_ref.as_deref()),
        ("phx_close", Some(&*j2))
    );
    assert_eq!(peer.joined("two", false), 0);
    // Failing one socket's channel only: two sockets join `one` again.
    let mut other = connect(&peer, Vsn::V2).await;
    ws.join_ok("realtime:one", cfg(json!({}))).await;
    other.join_ok("realtime:one", cfg(json!({}))).await;
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let other_id = seen
        .iter()
        .rev()
        .find_map(|e| match e {
            PeerEvent::Joined { socket, name, .. } if name == "one" => Some(*socket),
            _ => None,
        })
        .expect("the second join of `one`");
    assert_eq!(peer.fail_channel_on(other_id, "one"), 1);
    assert_eq!(other.recv().await.event(), "phx_error");
    assert_eq!(
        peer.joined("one", false),
        1,
        "only the other socket's channel failed"
    );
    assert!(peer.drop_socket(other_id));
    assert_eq!(other.recv().await, In::Closed);
    assert!(!peer.drop_socket(9_999));
    assert!(
        seen.iter()
            .any(|e| matches!(e, PeerEvent::ChannelErrored { name, .. } if name == "one"))
    );
    assert!(
        seen.iter()
            .any(|e| matches!(e, PeerEvent::Left { name, .. } if name == "two"))
    );
}

#[tokio::test]
async fn malformed_frames_are_reported_and_the_socket_stays() {
    let peer = quick_peer().await;
    let mut events = peer.events();
    let mut ws = connect(&peer, Vsn::V2).await;
    for bad in ["not json", r#"{"topic":"x"}"#, r#"["1","2","t"]"#] {
        ws.raw(Message::Text(bad.into())).await;
    }
    ws.raw(Message::Binary(vec![3, 200].into())).await;
    ws.push(None, "1", "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.recv().await.payload()["status"], "ok");
    assert_eq!(peer.stats().malformed, 4);
    let mut n = 0;
    while let Ok(e) = events.try_recv() {
        n += usize::from(matches!(e, PeerEvent::Malformed { .. }));
    }
    assert_eq!(n, 4);
}

#[tokio::test(start_paused = true)]
async fn a_silent_socket_is_closed_after_the_idle_timeout_and_drop_sockets_drops() {
    let peer = SupabasePeer::builder().bind("127.0.0.1:0").await.unwrap();
    let mut quiet = connect(&peer, Vsn::V2).await;
    let mut chatty = connect(&peer, Vsn::V2).await;
    for n in 0..3 {
        tokio::time::sleep(Duration::from_secs(25)).await;
        chatty
            .push(None, &n.to_string(), "phoenix", "heartbeat", json!({}))
            .await;
        assert_eq!(chatty.recv().await.event(), "phx_reply");
    }
    assert_eq!(quiet.recv().await, In::Closed, "75 s without a frame");
    assert_eq!(peer.drop_sockets(), 1);
    assert_eq!(chatty.recv().await, In::Closed);
    // The server is still there.
    let mut again = connect_with(&peer, Vsn::V1, &peer.anon_key()).await;
    again
        .push(None, "1", "phoenix", "heartbeat", json!({}))
        .await;
    assert_eq!(again.recv().await.event(), "phx_reply");
}
