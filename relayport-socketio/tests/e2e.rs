//! End to end against the real `socket.io` 4.x server from npm with the adapter
//! (`adapter/test-server.mjs`, started by each test on a free loopback port). Each test prints
//! SKIP and returns when node or the npm packages are missing, except under `CI=true`.
//!
//! Every wait is bounded; nothing sleeps to wait for an event.

use std::sync::Arc;
use std::time::Duration;

mod common;

use common::*;
use relayport_core::{
    ClientEvent, ConnectionState, EventSink, OutboundMessage, PresenceAction, Publisher,
    RealtimeClient, RealtimeError, RealtimeProvider,
};
use relayport_socketio::testing::{NodeServer, SECRET};
use relayport_socketio::{
    Arg, SocketIoAuthorizer, SocketIoConfig, SocketIoProvider, SocketIoPublisher,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connects_and_acks_on_a_namespace_with_auth() {
    let Some(server) = NodeServer::start("connects_and_acks").await else {
        return;
    };
    let config = SocketIoConfig::new(&server.url())
        .unwrap()
        .with_namespace("/chat")
        .unwrap()
        .with_auth(json!({"token": "abc"}))
        .unwrap();
    let p = SocketIoProvider::new(config).unwrap();
    let (sink, _rx) = EventSink::channel();
    let session = within("connect", p.connect(sink)).await.expect("connects");
    assert!(!session.connection_id.is_empty());
    assert!(!session.resumed);
    assert_eq!(session.heartbeat_interval, Some(Duration::from_secs(25)));
    let who = within("whoami", p.emit_with_ack("whoami", vec![]))
        .await
        .expect("ack");
    let who = who[0].as_json().expect("json").clone();
    assert_eq!(who["nsp"], "/chat");
    assert_eq!(who["id"], session.connection_id.as_str());
    assert_eq!(who["auth"], json!({"token": "abc"}));
    let echoed = within(
        "echo",
        p.emit_with_ack(
            "echo",
            vec![Arg::Json(json!({"n": 1})), Arg::Json(json!("two"))],
        ),
    )
    .await
    .expect("ack");
    assert_eq!(
        echoed,
        vec![Arg::Json(json!({"n": 1})), Arg::Json(json!("two"))]
    );
    p.goodbye().await.unwrap();
    assert!(p.emit("echo", vec![]).is_err(), "emit after goodbye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_refuse_bad_auth_and_unknown_names() {
    let Some(server) = NodeServer::start("namespaces").await else {
        return;
    };
    let (sink, _rx) = EventSink::channel();
    let err = provider(&server, "/nowhere")
        .connect(sink.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RealtimeError::Config(_)), "{err}");
    assert!(!err.is_retryable());
    let err = provider(&server, "/guarded")
        .connect(sink.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, RealtimeError::Unauthorized(ref m) if m.contains("not authorized")),
        "{err}"
    );
    let ok = SocketIoProvider::new(
        SocketIoConfig::new(&server.url())
            .unwrap()
            .with_namespace("/guarded")
            .unwrap()
            .with_auth(json!({"token": "letmein"}))
            .unwrap(),
    )
    .unwrap();
    within("connect", ok.connect(sink)).await.expect("admitted");
    let who = ok.emit_with_ack("whoami", vec![]).await.unwrap();
    assert_eq!(who[0].as_json().unwrap()["nsp"], "/guarded");
    ok.goodbye().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_travels_both_ways() {
    let Some(server) = NodeServer::start("binary").await else {
        return;
    };
    let p = provider(&server, "/");
    let (sink, _rx) = EventSink::channel();
    within("connect", p.connect(sink)).await.unwrap();
    // Client → server → ack: the attachments come back as bytes, in order.
    let blob: Vec<u8> = (0..=255).collect();
    let back = within(
        "echo",
        p.emit_with_ack(
            "echo",
            vec![
                Arg::Binary(blob.clone()),
                Arg::Json(json!({"name": "f"})),
                Arg::Binary(vec![7]),
            ],
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        back,
        vec![
            Arg::Binary(blob.clone()),
            Arg::Json(json!({"name": "f"})),
            Arg::Binary(vec![7])
        ]
    );
    // Server → client with an ack: the client answers (binary included) through the responder.
    let mut questions = p.on("question");
    let asking = {
        let p = p.clone();
        tokio::spawn(async move {
            p.emit_with_ack("ask", vec![Arg::Json(json!("size?"))])
                .await
        })
    };
    let question = within("the server's question", questions.recv())
        .await
        .unwrap();
    assert_eq!(question.args, vec![Arg::Json(json!("size?"))]);
    question
        .ack
        .expect("the server wants an ack")
        .send(vec![Arg::Binary(vec![4, 5])])
        .unwrap();
    let answered = within("the answer", asking).await.unwrap().unwrap();
    // The server got the bytes as a Buffer (and acked its JSON form back).
    let answer = answered[0].as_json().unwrap()["answer"].clone();
    assert_eq!(answer, json!({"type": "Buffer", "data": [4, 5]}));
    // Server → client: a binary event to a raw listener.
    let mut pushed = p.on("pushed");
    p.emit(
        "push",
        vec![
            Arg::Json(json!("pushed")),
            Arg::Binary(vec![1, 2, 3]),
            Arg::Json(json!(5)),
        ],
    )
    .unwrap();
    let event = within("the pushed event", pushed.recv()).await.unwrap();
    assert_eq!(event.name, "pushed");
    assert_eq!(
        event.args,
        vec![Arg::Binary(vec![1, 2, 3]), Arg::Json(json!(5))]
    );
    p.goodbye().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_and_publish_from_backend_and_client() {
    let Some(server) = NodeServer::start("subscribe_publish").await else {
        return;
    };
    let alice = client(&server, "alice");
    let mut news = within("subscribe", alice.subscribe("news")).await.unwrap();
    publisher(&server)
        .publish(&OutboundMessage::new(
            ch("news"),
            "headline",
            json!({"text": "hi"}),
        ))
        .await
        .unwrap();
    let m = next(&mut news).await;
    assert_eq!(
        (
            m.channel.clone(),
            m.event.as_str(),
            m.data.as_json().unwrap()
        ),
        (ch("news"), "headline", &json!({"text": "hi"}))
    );
    assert!(m.position.is_some(), "the adapter numbers messages");
    alice
        .publish("news", "chat:message", json!("from alice"))
        .await
        .unwrap();
    let m = next(&mut news).await;
    assert_eq!(m.data, json!("from alice"));
    assert!(m.sender.is_some());
    // A batch arrives in order.
    let batch: Vec<_> = (0..5)
        .map(|n| OutboundMessage::new(ch("news"), "tick", json!(n)))
        .collect();
    publisher(&server).publish_batch(&batch).await.unwrap();
    for n in 0..5 {
        assert_eq!(next(&mut news).await.data, json!(n));
    }
    // A publisher with the wrong secret is refused.
    let forged = SocketIoPublisher::new(&server.url(), "wrong").unwrap();
    let err = forged
        .publish(&OutboundMessage::new(ch("news"), "x", json!(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, RealtimeError::Unauthorized(_)), "{err}");
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_channels_need_a_valid_signature() {
    let Some(server) = NodeServer::start("private").await else {
        return;
    };
    // Without an authorizer the core refuses before asking the server.
    let bare = RealtimeClient::new(provider(&server, "/"));
    assert!(bare.subscribe("private:vault").await.is_err());
    bare.close().await;
    // The provider itself, without a signature: the adapter refuses (unauthorized).
    let p = provider(&server, "/");
    let (sink, _rx) = EventSink::channel();
    p.connect(sink).await.unwrap();
    let err = p
        .subscribe(&ch("private:vault"), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(err, RealtimeError::Unauthorized(_)), "{err}");
    let forged = relayport_core::SubscribeOptions {
        auth: Some(relayport_core::ChannelAuth(
            json!({"auth": "00".repeat(32)}),
        )),
        ..Default::default()
    };
    let err = p
        .subscribe(&ch("private:vault"), &forged)
        .await
        .unwrap_err();
    assert!(matches!(err, RealtimeError::Forbidden { .. }), "{err}");
    p.goodbye().await.unwrap();
    // Signed with the wrong secret: forbidden.
    let wrong = RealtimeClient::builder(provider(&server, "/"))
        .authorizer(Arc::new(SocketIoAuthorizer::new("not-the-secret")))
        .build();
    let err = within("forged subscribe", wrong.subscribe("private:vault"))
        .await
        .unwrap_err();
    assert!(matches!(err, RealtimeError::Forbidden { .. }), "{err}");
    wrong.close().await;
    // Signed: accepted, and messages arrive.
    let insider = client(&server, "insider");
    let mut vault = within("signed subscribe", insider.subscribe("private:vault"))
        .await
        .unwrap();
    publisher(&server)
        .publish(&OutboundMessage::new(
            ch("private:vault"),
            "secret",
            json!(42),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut vault).await.data, json!(42));
    insider.close().await;
}

async fn wait_for(
    events: &mut relayport_core::PresenceStream,
    action: PresenceAction,
    id: &str,
) -> Value {
    within("a presence event", async {
        loop {
            let e = events.recv().await.expect("presence stream");
            if e.action == action && e.member.id == id {
                return e.member.data;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_join_update_leave_between_two_clients() {
    let Some(server) = NodeServer::start("presence").await else {
        return;
    };
    const ROOM: &str = "presence:lobby";
    let alice = client(&server, "alice");
    alice
        .presence_enter(ROOM, json!({"name": "Alice"}))
        .await
        .unwrap();
    let mut events = alice.presence_events(ROOM).await.unwrap();
    let bob = client(&server, "bob");
    bob.presence_enter(ROOM, json!({"name": "Bob"}))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&mut events, PresenceAction::Joined, "bob").await,
        json!({"name": "Bob"})
    );
    let mut ids: Vec<String> = bob
        .presence_members(ROOM)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["alice", "bob"]);
    bob.presence_update(ROOM, json!({"name": "Bob", "typing": true}))
        .await
        .unwrap();
    assert_eq!(
        wait_for(&mut events, PresenceAction::Updated, "bob").await,
        json!({"name": "Bob", "typing": true})
    );
    // Bob's connection goes away: the adapter reports him gone.
    bob.close().await;
    wait_for(&mut events, PresenceAction::Left, "bob").await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_reconnects_and_resubscribes() {
    let Some(mut server) = NodeServer::start("restart").await else {
        return;
    };
    let alice = client(&server, "alice");
    let mut sub = within("subscribe", alice.subscribe("private:feed"))
        .await
        .unwrap();
    let mut events = alice.events();
    server.restart().await;
    let mut reconnecting = false;
    let recovered = within("the resubscribe", async {
        loop {
            match events.recv().await.expect("events") {
                ClientEvent::StateChanged(ConnectionState::Reconnecting { .. }) => {
                    reconnecting = true
                }
                ClientEvent::Resubscribed { channel, recovered }
                    if channel == ch("private:feed") =>
                {
                    return recovered;
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        reconnecting,
        "resubscribed without passing through Reconnecting"
    );
    assert!(
        !recovered,
        "a restarted server has lost the session: not a recovery"
    );
    publisher(&server)
        .publish(&OutboundMessage::new(
            ch("private:feed"),
            "after",
            json!("restart"),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.data, json!("restart"));
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_state_recovery_resumes_and_replays_what_was_missed() {
    let Some(server) = NodeServer::start("recovery").await else {
        return;
    };
    let p = provider(&server, "/");
    let alice = RealtimeClient::builder(p.clone())
        .client_id("alice")
        .authorizer(Arc::new(SocketIoAuthorizer::new(SECRET)))
        .build();
    let mut sub = within("subscribe", alice.subscribe("news")).await.unwrap();
    let publisher = publisher(&server);
    // One broadcast first: its offset is what the session resumes from.
    publisher
        .publish(&OutboundMessage::new(ch("news"), "n", json!(1)))
        .await
        .unwrap();
    assert_eq!(next(&mut sub).await.data, json!(1));
    let before = p.socket_id().expect("connected");
    let mut events = alice.events();
    // The server drops the transport (a recoverable loss, like a network blip)…
    p.emit("drop", vec![]).unwrap();
    within("the loss", async {
        loop {
            if let ClientEvent::StateChanged(ConnectionState::Reconnecting { .. }) =
                events.recv().await.expect("events")
            {
                return;
            }
        }
    })
    .await;
    // …messages are published while the client is away (bytes too)…
    publisher
        .publish(&OutboundMessage::new(ch("news"), "n", json!(2)))
        .await
        .unwrap();
    publisher
        .publish(&OutboundMessage::new(ch("news"), "n", vec![0u8, 0xff]))
        .await
        .unwrap();
    // …and the resumed session replays it, without a resync.
    let recovered = within("the resubscribe", async {
        loop {
            match events.recv().await.expect("events") {
                ClientEvent::SyncRequired { channel } => panic!("sync required on {channel}"),
                ClientEvent::Resubscribed { recovered, .. } => return recovered,
                _ => {}
            }
        }
    })
    .await;
    assert!(recovered, "the session was not resumed");
    assert_eq!(next(&mut sub).await.data, json!(2));
    assert_eq!(
        next(&mut sub).await.data,
        relayport_core::Payload::from(vec![0u8, 0xff]),
        "the replayed attachment"
    );
    assert_eq!(
        p.socket_id().as_deref(),
        Some(before.as_str()),
        "same socket id"
    );
    let who = p.emit_with_ack("whoami", vec![]).await.unwrap();
    assert_eq!(who[0].as_json().unwrap()["recovered"], json!(true));
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_servers_pings() {
    // The server pings every 200 ms and drops a client that does not pong within 200 ms.
    let Some(server) = NodeServer::start_with(
        "pings",
        &[("PING_INTERVAL", "200"), ("PING_TIMEOUT", "200")],
    )
    .await
    else {
        return;
    };
    let p = provider(&server, "/");
    let (sink, mut rx) = EventSink::channel();
    let session = p.connect(sink).await.unwrap();
    assert_eq!(session.heartbeat_interval, Some(Duration::from_millis(200)));
    let mut beats = p.on("heartbeat");
    p.emit("watch-heartbeats", vec![]).unwrap();
    // Five pongs in a row reached the server, and the link is still up.
    for n in 1..=5 {
        let beat = within("a pong reaching the server", beats.recv())
            .await
            .unwrap();
        assert_eq!(beat.args, vec![Arg::Json(json!(n))]);
    }
    assert!(rx.try_recv().is_err(), "the link closed");
    let who = p.emit_with_ack("whoami", vec![]).await.unwrap();
    assert_eq!(
        who[0].as_json().unwrap()["id"],
        Value::from(session.connection_id.clone())
    );
    assert!(p.ping().await.is_ok());
    p.goodbye().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_signals_reach_the_other_client() {
    let Some(server) = NodeServer::start("typing").await else {
        return;
    };
    const ROOM: &str = "presence:typing-room";
    let alice = client(&server, "alice");
    let mut room = within("subscribe", alice.subscribe(ROOM)).await.unwrap();
    let bob = client(&server, "bob");
    bob.presence_enter(ROOM, json!({})).await.unwrap();
    bob.start_typing(ROOM).unwrap();
    let m = within("bob's typing signal", async {
        loop {
            let m = next(&mut room).await;
            if m.event == "typing" {
                return m;
            }
        }
    })
    .await;
    assert_eq!(m.data, json!({"typing": true, "client_id": "bob"}));
    bob.stop_typing(ROOM).unwrap();
    let m = next(&mut room).await;
    assert_eq!(
        (m.event.as_str(), m.data.as_json().unwrap()),
        ("typing", &json!({"typing": false, "client_id": "bob"}))
    );
    bob.close().await;
    alice.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_long_polling_when_the_websocket_is_refused() {
    // The server refuses the WebSocket upgrade (HTTP 400) and pings every 300 ms.
    let Some(server) = NodeServer::start_with(
        "polling",
        &[
            ("TRANSPORTS", "polling"),
            ("PING_INTERVAL", "300"),
            ("PING_TIMEOUT", "300"),
        ],
    )
    .await
    else {
        return;
    };
    let p = provider(&server, "/");
    let alice = RealtimeClient::builder(p.clone())
        .client_id("alice")
        .authorizer(Arc::new(SocketIoAuthorizer::new(SECRET)))
        .build();
    let mut vault = within("subscribe", alice.subscribe("private:vault"))
        .await
        .unwrap();
    assert_eq!(p.transport(), Some(relayport_socketio::Transport::Polling));
    publisher(&server)
        .publish(&OutboundMessage::new(ch("private:vault"), "e", json!(1)))
        .await
        .unwrap();
    assert_eq!(next(&mut vault).await.data, json!(1));
    alice.publish("private:vault", "e", json!(2)).await.unwrap();
    assert_eq!(next(&mut vault).await.data, json!(2));
    // Binary both ways over base64 payloads.
    let back = within(
        "echo",
        p.emit_with_ack("echo", vec![Arg::Binary(vec![0, 1, 254, 255])]),
    )
    .await
    .unwrap();
    assert_eq!(back, vec![Arg::Binary(vec![0, 1, 254, 255])]);
    let mut pushed = p.on("pushed");
    p.emit(
        "push",
        vec![Arg::Json(json!("pushed")), Arg::Binary(vec![9, 8])],
    )
    .unwrap();
    let event = within("the pushed event", pushed.recv()).await.unwrap();
    assert_eq!(event.args, vec![Arg::Binary(vec![9, 8])]);
    // Pongs go out over POSTs: the server sees them and keeps the session.
    let mut beats = p.on("heartbeat");
    p.emit("watch-heartbeats", vec![]).unwrap();
    for n in 1..=3 {
        let beat = within("a pong reaching the server", beats.recv())
            .await
            .unwrap();
        assert_eq!(beat.args, vec![Arg::Json(json!(n))]);
    }
    // WebSocket only: the refused upgrade is a connection error.
    let ws_only = SocketIoProvider::new(
        SocketIoConfig::new(&server.url())
            .unwrap()
            .with_transports(relayport_socketio::Transports::WebSocketOnly),
    )
    .unwrap();
    let (sink, _rx) = EventSink::channel();
    let err = ws_only.connect(sink).await.unwrap_err();
    assert!(
        matches!(err, RealtimeError::Connection(ref m) if m.contains("400")),
        "{err}"
    );
    alice.close().await;
}
