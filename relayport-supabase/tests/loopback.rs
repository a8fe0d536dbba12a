//! Every scenario of the vector file, replayed by a scripted peer on loopback against our
//! provider. The driver reads the client frames of the scenario to know what to do (join →
//! `subscribe`, kind-3 frame → `publish`, track → `presence_enter`, heartbeat → `ping`, …), so
//! a new scenario needs no new code; the peer checks every frame the provider sends.
//!
//! Time is paused: the 10 s join timeout and the 25 s heartbeat timeout elapse instantly.

mod common;
mod peer;

use std::collections::HashMap;
use std::time::Duration;

use common::{ClientFrame, channel_and_options, client_frame, vectors};
use relayport_core::{
    Channel, ErrorKind, EventSink, OutboundMessage, ProviderEvent, RealtimeError, RealtimeProvider,
    Reconnect, SubscribeOptions,
};
use relayport_supabase::errors::{ErrorContext, to_error};
use relayport_supabase::frame::UserPayload;
use relayport_supabase::join::Reply;
use relayport_supabase::push::ClientPush;
use relayport_supabase::rest::Persist;
use relayport_supabase::{SupabaseConfig, SupabaseProvider};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::timeout;

fn strip_port(path: &str) -> String {
    path.to_owned()
}

/// Server replies of one connection's frames, by ref.
fn replies(frames: &[Value]) -> HashMap<String, Reply> {
    let mut out = HashMap::new();
    for f in frames {
        let Some(t) = f["text"].as_str() else {
            continue;
        };
        if f["dir"] != "server->client" || !t.contains("\"phx_reply\"") {
            continue;
        }
        let frame = relayport_supabase::frame::decode_text(t).expect("reply");
        if let (Some(r), relayport_supabase::frame::Body::Json(p)) = (frame.ref_, frame.body) {
            out.insert(r, Reply::from_payload(&p).expect("reply payload"));
        }
    }
    out
}

async fn next_closed(
    events: &mut UnboundedReceiver<(u64, ProviderEvent)>,
    seen: &mut Vec<ProviderEvent>,
) -> relayport_core::CloseReason {
    loop {
        let (_, e) = timeout(Duration::from_secs(120), events.recv())
            .await
            .expect("a Closed event in time")
            .expect("sink open");
        if let ProviderEvent::Closed(r) = e {
            return r;
        }
        seen.push(e);
    }
}

/// How the replay reaches the peer.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// TCP on 127.0.0.1 in real time, with 2 s join and heartbeat timeouts.
    Tcp,
    /// An in-memory pipe with the clock paused and the default timeouts (10 s, 25 s).
    Memory,
}

async fn replay(name: &str, mode: Mode) -> Vec<ProviderEvent> {
    let v = vectors();
    let scenario = &v["scenarios"][name];
    let attempts = peer::attempts(scenario, strip_port);
    let (incoming, port, connector) = match mode {
        Mode::Tcp => {
            let (incoming, port) = peer::tcp().await;
            (incoming, port, None)
        }
        Mode::Memory => {
            let (incoming, connector) = peer::memory();
            (incoming, 4000, Some(connector))
        }
    };
    let peer_task = peer::start(incoming, attempts.clone());

    let all_frames = scenario["frames"].as_array().expect("frames");
    let client: Vec<(usize, ClientFrame)> = all_frames
        .iter()
        .filter(|f| f["dir"] == "client->server")
        .map(|f| (f["conn"].as_u64().unwrap_or(0) as usize, client_frame(f)))
        .collect();
    let vsn = client[0].1.vsn;
    let mut config = SupabaseConfig::new(
        &format!("http://127.0.0.1:{port}"),
        v["tokens"]["apikey"].as_str().unwrap(),
    );
    config.vsn = vsn;
    // Joins of this scenario that carry a token before any `access_token` push: the app's JWT.
    config.access_token = client
        .iter()
        .find_map(|(_, c)| match &c.push {
            ClientPush::Join(p) => Some(p.access_token.clone()),
            _ => None,
        })
        .flatten();
    if mode == Mode::Tcp {
        config.join_timeout = Duration::from_secs(2);
    }
    // What the core's heartbeat timeout would be: one interval, as realtime-js.
    let heartbeat_timeout = match mode {
        Mode::Tcp => Duration::from_secs(2),
        Mode::Memory => config.heartbeat_interval,
    };
    let mut provider = SupabaseProvider::new(config);
    if let Some(c) = connector {
        provider = provider.with_connector(c);
    }
    let mut channels: HashMap<String, Channel> = HashMap::new();
    for (_, c) in &client {
        if let ClientPush::Join(p) = &c.push {
            let (channel, options) = channel_and_options(&c.topic, p);
            channels.insert(c.topic.clone(), channel.clone());
            provider = provider.with_channel_options(channel, options);
        }
    }
    let token = provider.access_token_handle();
    let (sink, mut events) = EventSink::channel();
    let mut seen = Vec::new();

    for (n, attempt) in attempts.iter().enumerate() {
        let script = match attempt {
            peer::Attempt::Refuse { status, .. } => {
                let err = provider
                    .connect(sink.clone())
                    .await
                    .expect_err("refused handshake");
                assert_eq!(*status, 401);
                assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
                continue;
            }
            peer::Attempt::Accept(s) => s,
        };
        provider
            .connect(sink.clone())
            .await
            .unwrap_or_else(|e| panic!("{name}: connect {n}: {e}"));
        let replies = replies(&script.frames);
        let mut skip_leave_of: Option<String> = None;
        let mut joined_here: Vec<String> = Vec::new();
        for f in script
            .frames
            .iter()
            .filter(|f| f["dir"] == "client->server")
        {
            let mut f = f.clone();
            if let Some(t) = f["text"].as_str() {
                f["text"] = Value::String(t.replace(peer::VERSION_FIELD, ""));
            }
            let c = client_frame(&f);
            let channel = channels.get(&c.topic).cloned();
            match c.push {
                ClientPush::Join(_) if joined_here.contains(&c.topic) => {
                    // A rejoin after `phx_error`: the provider sends it by itself on the channel
                    // schedule (1 s later, on the same socket, as realtime-js) and reports the
                    // gap with `ContinuityLost` once the server accepted it.
                    let channel = channel.expect("joined channel");
                    loop {
                        let (_, e) = timeout(Duration::from_secs(120), events.recv())
                            .await
                            .expect("the rejoin in time")
                            .expect("sink open");
                        let done = matches!(&e, ProviderEvent::ContinuityLost { channel: c, .. } if *c == channel);
                        seen.push(e);
                        if done {
                            break;
                        }
                    }
                }
                ClientPush::Join(_) => {
                    let channel = channel.expect("joined channel");
                    let result = provider
                        .subscribe(&channel, &SubscribeOptions::default())
                        .await;
                    match replies.get(&c.ref_) {
                        Some(r) if r.is_ok() => {
                            result.unwrap_or_else(|e| panic!("{name}: join {channel}: {e}"));
                            joined_here.push(c.topic.clone());
                        }
                        Some(r) => {
                            let want = to_error(
                                &r.reason(),
                                ErrorContext {
                                    channel: Some(&channel),
                                    ..Default::default()
                                },
                            );
                            assert_eq!(result.expect_err("join error"), want, "{name}");
                        }
                        None => {
                            let err = result.expect_err("join timeout");
                            assert_eq!(err.kind(), ErrorKind::Timeout, "{name}: {err}");
                            skip_leave_of = Some(c.ref_.clone());
                        }
                    }
                }
                ClientPush::Leave if skip_leave_of.as_deref() == c.join_ref.as_deref() => {
                    skip_leave_of = None;
                }
                ClientPush::Leave => {
                    joined_here.retain(|t| *t != c.topic);
                    provider
                        .unsubscribe(&channel.expect("channel"))
                        .await
                        .expect("leave")
                }
                ClientPush::Broadcast {
                    event,
                    payload,
                    metadata,
                } => {
                    let data = match payload {
                        UserPayload::Json(v) => relayport_core::Payload::Json(v),
                        UserPayload::Binary(b) => relayport_core::Payload::from(b),
                    };
                    let persist = metadata.map(|m| match &m["persist"] {
                        Value::Bool(true) => Persist::Forever,
                        p => Persist::Ttl(p["ttl"].as_u64().expect("ttl")),
                    });
                    let msg = OutboundMessage::new(channel.expect("channel"), event, data);
                    provider
                        .publish_with(&msg, persist)
                        .await
                        .unwrap_or_else(|e| panic!("{name}: publish: {e}"));
                }
                ClientPush::Track(data) => provider
                    .presence_enter(&channel.expect("channel"), data)
                    .await
                    .expect("track"),
                ClientPush::Untrack => provider
                    .presence_leave(&channel.expect("channel"))
                    .await
                    .expect("untrack"),
                ClientPush::AccessToken(t) => assert!(token.set(t) >= 1, "{name}: token pushed"),
                ClientPush::Heartbeat => {
                    let result = timeout(heartbeat_timeout, provider.ping()).await;
                    if replies.contains_key(&c.ref_) {
                        result
                            .expect("a heartbeat reply in time")
                            .unwrap_or_else(|e| panic!("{name}: ping: {e}"));
                    } else {
                        // The core's heartbeat timeout: it disconnects the provider.
                        assert!(result.is_err(), "{name}: no heartbeat reply expected");
                        provider.disconnect().await.expect("disconnect");
                    }
                }
            }
        }
        match &script.end {
            peer::End::ClientCloses(None) => provider.disconnect().await.expect("disconnect"),
            peer::End::ClientCloses(Some(_)) => {}
            peer::End::ServerDrops => {
                let closed = next_closed(&mut events, &mut seen).await;
                assert_eq!(closed.reconnect, Reconnect::Backoff, "{name}");
                assert_eq!(closed.code, Some(1006), "{name}");
            }
            peer::End::ClientClosesAny => {}
        }
    }
    timeout(Duration::from_secs(120), peer_task)
        .await
        .expect("peer finished")
        .expect("peer task")
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    provider.disconnect().await.expect("disconnect");
    while let Ok((_, e)) = events.try_recv() {
        seen.push(e);
    }
    for e in &seen {
        if let ProviderEvent::Error {
            error: RealtimeError::Protocol(p),
            ..
        } = e
        {
            panic!("{name}: protocol error reported: {p}");
        }
    }
    seen
}

fn messages(events: &[ProviderEvent]) -> Vec<&relayport_core::Message> {
    events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::Message(m) => Some(m),
            _ => None,
        })
        .collect()
}

macro_rules! replay_tests {
    ($($name:ident => $check:expr;)*) => {
        /// Over TCP on loopback, in real time.
        mod tcp {
            use super::*;
            $(#[tokio::test]
            async fn $name() {
                let events = replay(stringify!($name), Mode::Tcp).await;
                ($check)(&events);
            })*
        }
        /// Over an in-memory pipe with the clock paused: the real 10 s join and 25 s
        /// heartbeat timeouts elapse deterministically.
        mod paused {
            use super::*;
            $(#[tokio::test(start_paused = true)]
            async fn $name() {
                let events = replay(stringify!($name), Mode::Memory).await;
                ($check)(&events);
            })*
        }
    };
}

fn none(_: &[ProviderEvent]) {}

fn count(events: &[ProviderEvent], f: impl Fn(&str) -> bool) -> usize {
    messages(events).iter().filter(|m| f(&m.event)).count()
}

replay_tests! {
    latest_v2_basic => |e: &[ProviderEvent]| {
        assert_eq!(count(e, |n| n == "cursor"), 4);
        assert_eq!(count(e, |n| n == "bin"), 1);
        assert_eq!(count(e, |n| n == "system"), 0, "system frames are not messages");
        assert!(e.iter().any(|e| matches!(e, ProviderEvent::Presence { .. })));
    };
    latest_v1_basic => |e: &[ProviderEvent]| assert_eq!(count(e, |n| n == "cursor"), 2);
    legacy_2_15_v1_basic => |e: &[ProviderEvent]| assert_eq!(count(e, |n| n == "cursor"), 2);
    latest_v2_postgres_changes => |e: &[ProviderEvent]| {
        assert_eq!(count(e, |n| n.starts_with("postgres_changes:")), 4);
    };
    latest_v2_join_error_rejoin => none;
    latest_v2_join_timeout => none;
    latest_v2_heartbeat_token_refresh_and_timeout => none;
    latest_v2_reconnect_schedule => none;
    latest_v2_server_closes_or_errors_channel => |events: &[ProviderEvent]| {
        let lost: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ProviderEvent::SubscriptionLost { channel, error } => Some((channel.clone(), error.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(lost.len(), 1, "{events:?}");
        assert_eq!(lost[0].0, Channel::public("closed-by-server"));
        assert_eq!(lost[0].1.kind(), ErrorKind::RateLimited);
        // The crashed channel rejoined on the same socket (realtime-js's behaviour).
        assert!(events.iter().any(|e| matches!(e, ProviderEvent::ContinuityLost { channel, .. } if *channel == Channel::public("crashed-on-server"))));
    };
    latest_v2_private_persist_replay => none;
}

#[test]
fn every_scenario_with_frames_has_a_replay_test() {
    let v = vectors();
    let src = include_str!("loopback.rs");
    for (name, s) in v["scenarios"].as_object().unwrap() {
        if s["frames"].is_array() {
            assert!(
                src.contains(&format!("    {name} => ")),
                "no replay test for {name}"
            );
        }
    }
}
