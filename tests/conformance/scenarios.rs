//! The scenarios, written once against the facade's `client`/`publisher`/`authorizer`.
//! Published payloads are JSON objects: Supabase's REST broadcast accepts nothing else.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use relayport::{
    Channel, ClientEvent, ConnectionState, EventSink, Message, OutboundMessage, PresenceAction,
    PresenceStream, ProviderEvent, Publisher, RealtimeClient, SubscribeOptions, Subscription,
};
use serde_json::{Value, json};

use super::peers::Peer;

/// How long any one step may take (a sockudo restart plus the first backoff fits easily).
const WAIT: Duration = Duration::from_secs(30);

type Outcome = Result<Verdict, String>;

/// What a scenario concluded.
pub enum Verdict {
    Passed,
    Skipped(String),
}

/// What a provider's run concluded.
pub struct Report {
    pub provider: &'static str,
    pub passed: usize,
    pub skipped: Vec<(&'static str, String)>,
    pub failures: Vec<(&'static str, String)>,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "conformance of `{}`: {} passed",
            self.provider, self.passed
        )?;
        for (name, why) in &self.skipped {
            writeln!(f, "  SKIP {}/{name}: {why}", self.provider)?;
        }
        for (name, why) in &self.failures {
            writeln!(f, "  FAIL {}/{name}: {why}", self.provider)?;
        }
        Ok(())
    }
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> Result<T, String> {
    tokio::time::timeout(WAIT, f)
        .await
        .map_err(|_| format!("{what}: nothing within {WAIT:?}"))
}

async fn next(what: &str, sub: &mut Subscription) -> Result<Message, String> {
    within(what, sub.recv())
        .await?
        .ok_or_else(|| format!("{what}: the subscription ended"))
}

/// The next presence event for `id` with `action`, skipping others (own join, snapshots).
async fn presence(
    stream: &mut PresenceStream,
    action: PresenceAction,
    id: &str,
) -> Result<Value, String> {
    let what = format!("{action:?} of {id}");
    within(&what, async {
        while let Some(e) = stream.recv().await {
            if e.action == action && e.member.id == id {
                return Ok(e.member.data);
            }
        }
        Err(format!("{what}: the presence stream ended"))
    })
    .await?
}

fn ch(name: &str) -> Channel {
    Channel::parse(name).expect("a valid channel name")
}

fn e<E: fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

fn trusted(peer: &dyn Peer, client_id: &str) -> Result<RealtimeClient, String> {
    trusted_with(peer, client_id, |b| b)
}

/// [`trusted`], with the builder adjusted by `configure`.
fn trusted_with(
    peer: &dyn Peer,
    client_id: &str,
    configure: impl FnOnce(relayport::ClientBuilder) -> relayport::ClientBuilder,
) -> Result<RealtimeClient, String> {
    let cfg = peer.config().with_client_id(client_id);
    Ok(configure(relayport::trusted_client_builder(&cfg).map_err(e("client"))?).build())
}

/// A channel this provider's clients may publish on: public where allowed, else private.
fn client_channel(client: &RealtimeClient, name: &str) -> Option<String> {
    let caps = client.capabilities();
    if !caps.client_publish {
        None
    } else if caps.client_publish_on(relayport::ChannelKind::Public) {
        Some(name.to_owned())
    } else {
        Some(format!("private:{name}"))
    }
}

/// Collects messages until one named `last` arrives; their event names, in order.
async fn events_until(sub: &mut Subscription, last: &str) -> Result<Vec<String>, String> {
    let mut events = Vec::new();
    loop {
        let m = next(&format!("the events up to `{last}`"), sub).await?;
        let done = m.event == last;
        events.push(m.event);
        if done {
            return Ok(events);
        }
    }
}

fn publisher(peer: &dyn Peer) -> Result<Box<dyn Publisher>, String> {
    relayport::publisher(&peer.config()).map_err(e("publisher"))
}

async fn publish(p: &dyn Publisher, channel: &str, event: &str, data: Value) -> Result<(), String> {
    p.publish(&OutboundMessage::new(ch(channel), event, data))
        .await
        .map_err(e("publish"))
}

// ---- the scenarios ----------------------------------------------------------------------

async fn subscribe_receive(peer: &mut dyn Peer) -> Outcome {
    let client = trusted(peer, "reader")?;
    let mut sub = client
        .subscribe("conf-news")
        .await
        .map_err(e("subscribe"))?;
    publish(
        &*publisher(peer)?,
        "conf-news",
        "headline",
        json!({"text": "hi"}),
    )
    .await?;
    let m = next("the message", &mut sub).await?;
    client.close().await;
    if m.channel != ch("conf-news") || m.event != "headline" || m.data != json!({"text": "hi"}) {
        return Err(format!("received {m:?}"));
    }
    Ok(Verdict::Passed)
}

async fn publish_order(peer: &mut dyn Peer) -> Outcome {
    let client = trusted(peer, "reader")?;
    let mut sub = client
        .subscribe("conf-order")
        .await
        .map_err(e("subscribe"))?;
    let p = publisher(peer)?;
    for n in 0..10 {
        publish(&*p, "conf-order", "tick", json!({"n": n})).await?;
    }
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(next("the next tick", &mut sub).await?.data);
    }
    client.close().await;
    let expected: Vec<Value> = (0..10).map(|n| json!({"n": n})).collect();
    if got != expected {
        return Err(format!("order {got:?}"));
    }
    Ok(Verdict::Passed)
}

async fn private_needs_auth(peer: &mut dyn Peer) -> Outcome {
    const PRIVATE: &str = "private:conf-secret";
    if let Some(why) = peer.no_channel_signatures() {
        return Ok(Verdict::Skipped(why.into()));
    }
    // No authorizer at all: the client (public settings only) cannot subscribe.
    let bare = relayport::client(&peer.config()).map_err(e("client"))?;
    let refused = within("the unsigned subscribe", bare.subscribe(PRIVATE)).await?;
    bare.close().await;
    if refused.is_ok() {
        return Err("subscribed to a private channel without any authorization".into());
    }
    // Signed with the wrong secret: the server refuses.
    let wrong = relayport::authorizer(&peer.config_with_wrong_secret()).map_err(e("authorizer"))?;
    let forged = relayport::client_builder(&peer.config())
        .map_err(e("client"))?
        .authorizer(Arc::from(wrong))
        .build();
    let refused = within("the forged subscribe", forged.subscribe(PRIVATE)).await?;
    forged.close().await;
    match refused {
        Ok(_) => return Err("the server accepted a signature made with the wrong secret".into()),
        Err(err)
            if !matches!(
                err.kind(),
                relayport::ErrorKind::Unauthorized
                    | relayport::ErrorKind::Forbidden
                    | relayport::ErrorKind::Provider
            ) =>
        {
            return Err(format!(
                "the forged subscribe failed, but not as a refusal: {err}"
            ));
        }
        Err(_) => {}
    }
    // Signed by the configured authorizer: accepted, and messages arrive.
    let client = trusted(peer, "insider")?;
    let mut sub = client
        .subscribe(PRIVATE)
        .await
        .map_err(e("signed subscribe"))?;
    publish(&*publisher(peer)?, PRIVATE, "secret", json!({"n": 42})).await?;
    let m = next("the private message", &mut sub).await?;
    client.close().await;
    if m.data != json!({"n": 42}) {
        return Err(format!("received {m:?}"));
    }
    Ok(Verdict::Passed)
}

/// Alice and Bob in one presence room: each sees the other arrive, and Alice sees Bob leave.
async fn presence_join_leave(peer: &mut dyn Peer) -> Outcome {
    const ROOM: &str = "presence:conf-room";
    let alice = trusted(peer, "alice")?;
    if !alice.capabilities().presence {
        alice.close().await;
        return Ok(Verdict::Skipped("capabilities().presence is false".into()));
    }
    alice
        .presence_enter(ROOM, json!({"v": 1}))
        .await
        .map_err(e("alice enters"))?;
    let mut events = alice
        .presence_events(ROOM)
        .await
        .map_err(e("presence events"))?;
    let bob = trusted(peer, "bob")?;
    bob.presence_enter(ROOM, json!({"v": 1}))
        .await
        .map_err(e("bob enters"))?;
    let joined = presence(&mut events, PresenceAction::Joined, "bob").await?;
    if joined != json!({"v": 1}) {
        return Err(format!("bob joined with {joined}"));
    }
    let members = bob.presence_members(ROOM).await.map_err(e("members"))?;
    let mut ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    if ids != ["alice", "bob"] {
        return Err(format!("bob sees the members {ids:?}"));
    }
    bob.presence_leave(ROOM).await.map_err(e("bob leaves"))?;
    presence(&mut events, PresenceAction::Left, "bob").await?;
    bob.close().await;
    alice.close().await;
    Ok(Verdict::Passed)
}

/// Bob changes his member data without leaving; Alice sees the update.
async fn presence_update(peer: &mut dyn Peer) -> Outcome {
    const ROOM: &str = "presence:conf-update";
    let alice = trusted(peer, "alice")?;
    let caps = alice.capabilities().clone();
    if !caps.presence || !caps.presence_update {
        alice.close().await;
        return Ok(Verdict::Skipped(format!(
            "capabilities() say presence: {}, presence_update: {}",
            caps.presence, caps.presence_update
        )));
    }
    alice
        .presence_enter(ROOM, json!({"v": 1}))
        .await
        .map_err(e("alice enters"))?;
    let mut events = alice
        .presence_events(ROOM)
        .await
        .map_err(e("presence events"))?;
    let bob = trusted(peer, "bob")?;
    bob.presence_enter(ROOM, json!({"v": 1}))
        .await
        .map_err(e("bob enters"))?;
    presence(&mut events, PresenceAction::Joined, "bob").await?;
    bob.presence_update(ROOM, json!({"v": 2}))
        .await
        .map_err(e("bob updates"))?;
    let updated = presence(&mut events, PresenceAction::Updated, "bob").await?;
    bob.close().await;
    alice.close().await;
    if updated != json!({"v": 2}) {
        return Err(format!("bob updated to {updated}"));
    }
    Ok(Verdict::Passed)
}

async fn reconnect_resubscribes(peer: &mut dyn Peer) -> Outcome {
    let client = trusted(peer, "survivor")?;
    let mut sub = client
        .subscribe("conf-reconnect")
        .await
        .map_err(e("subscribe"))?;
    let mut events = client.events();
    peer.restart().await;
    let mut reconnecting = false;
    within("the resubscribe", async {
        loop {
            match events.recv().await {
                Ok(ClientEvent::StateChanged(ConnectionState::Reconnecting { .. })) => {
                    reconnecting = true
                }
                Ok(ClientEvent::Resubscribed { channel, .. })
                    if channel == ch("conf-reconnect") =>
                {
                    return Ok(());
                }
                Ok(_) => {}
                Err(err) => return Err(format!("events: {err}")),
            }
        }
    })
    .await??;
    if !reconnecting {
        return Err("resubscribed without passing through Reconnecting".into());
    }
    publish(
        &*publisher(peer)?,
        "conf-reconnect",
        "after",
        json!({"after": "restart"}),
    )
    .await?;
    let m = next("the message after the restart", &mut sub).await?;
    client.close().await;
    if m.data != json!({"after": "restart"}) {
        return Err(format!("received {m:?}"));
    }
    Ok(Verdict::Passed)
}

async fn offline_queue_flushes(peer: &mut dyn Peer) -> Outcome {
    // Client publishes need a private channel and a `client-` event on Pusher; the other
    // providers accept both, so the scenario uses them everywhere.
    const QUEUE: &str = "private:conf-queue";
    let reader = trusted(peer, "reader")?;
    if !reader.capabilities().client_publish {
        reader.close().await;
        return Ok(Verdict::Skipped(
            "capabilities().client_publish is false".into(),
        ));
    }
    let mut sub = reader
        .subscribe(QUEUE)
        .await
        .map_err(e("reader subscribes"))?;
    let writer = trusted(peer, "writer")?;
    let _held = writer
        .subscribe(QUEUE)
        .await
        .map_err(e("writer subscribes"))?;
    writer.disconnect().await;
    if writer.state() != ConnectionState::Disconnected {
        return Err(format!(
            "after disconnect() the state is {:?}",
            writer.state()
        ));
    }
    for n in 1..=3 {
        writer
            .publish_nowait(QUEUE, "client-note", json!({"n": n}))
            .map_err(e("queue a publish"))?;
    }
    writer.connect().await.map_err(e("reconnect"))?;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(next("a flushed publish", &mut sub).await?.data);
    }
    writer.close().await;
    reader.close().await;
    if got != [json!({"n": 1}), json!({"n": 2}), json!({"n": 3})] {
        return Err(format!("flushed {got:?}"));
    }
    Ok(Verdict::Passed)
}

/// At the provider level, where delivery can be observed after unsubscribing: a message on
/// the left channel must not arrive before a later marker on a channel still subscribed.
async fn unsubscribe_stops_delivery(peer: &mut dyn Peer) -> Outcome {
    let provider = relayport::provider(&peer.config()).map_err(e("provider"))?;
    let (sink, mut events) = EventSink::channel();
    within("connect", provider.connect(sink))
        .await?
        .map_err(e("connect"))?;
    let plain = SubscribeOptions::default();
    let (gone, kept) = (ch("conf-unsub"), ch("conf-unsub-marker"));
    within("subscribe", provider.subscribe(&gone, &plain))
        .await?
        .map_err(e("subscribe"))?;
    within("subscribe", provider.subscribe(&kept, &plain))
        .await?
        .map_err(e("subscribe"))?;
    let p = publisher(peer)?;
    let mut wait_for = async |channel: &Channel, data: Value| -> Result<Vec<Message>, String> {
        within("a message", async {
            let mut before = Vec::new();
            while let Some((_, event)) = events.recv().await {
                if let ProviderEvent::Message(m) = event {
                    if &m.channel == channel && m.data == data {
                        return Ok(before);
                    }
                    before.push(m);
                }
            }
            Err("the provider's sink closed".to_owned())
        })
        .await?
    };
    publish(&*p, "conf-unsub", "x", json!({"at": "before"})).await?;
    wait_for(&gone, json!({"at": "before"})).await?;
    within("unsubscribe", provider.unsubscribe(&gone))
        .await?
        .map_err(e("unsubscribe"))?;
    publish(&*p, "conf-unsub", "x", json!({"at": "after"})).await?;
    publish(&*p, "conf-unsub-marker", "x", json!({"at": "marker"})).await?;
    let leaked = wait_for(&kept, json!({"at": "marker"})).await?;
    let _ = provider.disconnect().await;
    if let Some(m) = leaked.iter().find(|m| m.channel == gone) {
        return Err(format!("delivered after unsubscribing: {m:?}"));
    }
    Ok(Verdict::Passed)
}

/// Runs every scenario against `peer`.
/// `Subscription::event` yields only the named event from one wire subscription.
async fn event_filters(peer: &mut dyn Peer) -> Outcome {
    const CH: &str = "conf-filter";
    let client = trusted(peer, "reader")?;
    let mut chat = client
        .subscribe(CH)
        .await
        .map_err(e("subscribe"))?
        .event("chat");
    let p = publisher(peer)?;
    publish(&*p, CH, "typing", json!({"n": 1})).await?;
    publish(&*p, CH, "chat", json!({"n": 2})).await?;
    let m = next("the chat message", &mut chat).await?;
    client.close().await;
    if m.event != "chat" || m.data != json!({"n": 2}) {
        return Err(format!("the filtered subscription yielded {m:?}"));
    }
    Ok(Verdict::Passed)
}

/// `RealtimeClient::history` pages newest first; skipped where the provider keeps none.
async fn history_pages(peer: &mut dyn Peer) -> Outcome {
    const CH: &str = "conf-history";
    let client = trusted(peer, "reader")?;
    if !client.capabilities().history_pages {
        let err = client
            .history(CH, relayport::HistoryQuery::new())
            .await
            .err()
            .map(|e| e.kind());
        client.close().await;
        if err != Some(relayport::ErrorKind::Unsupported) {
            return Err(format!("history without the capability answered {err:?}"));
        }
        return Ok(Verdict::Skipped(
            "capabilities().history_pages is false (history answers Unsupported)".into(),
        ));
    }
    // Subscribed first, so that every publish is known to have landed before reading.
    let mut sub = client.subscribe(CH).await.map_err(e("subscribe"))?;
    let p = publisher(peer)?;
    for n in 1..=3 {
        publish(&*p, CH, "h", json!({"n": n})).await?;
        next("the published message", &mut sub).await?;
    }
    let query = relayport::HistoryQuery::new().limit(2);
    let first = within("history", client.history(CH, query))
        .await?
        .map_err(e("history"))?;
    let mut seen: Vec<relayport::Payload> =
        first.messages().iter().map(|m| m.data.clone()).collect();
    if let Some(second) = within("the next page", first.next())
        .await?
        .map_err(e("next page"))?
    {
        seen.extend(second.messages().iter().map(|m| m.data.clone()));
    }
    client.close().await;
    let want = [json!({"n": 3}), json!({"n": 2}), json!({"n": 1})];
    if seen.len() < 3 || seen[..3] != want[..] {
        return Err(format!("history pages gave {seen:?}"));
    }
    Ok(Verdict::Passed)
}

/// `PresenceStream::here()` answers with the whole member list, present members included.
async fn presence_here(peer: &mut dyn Peer) -> Outcome {
    const ROOM: &str = "presence:conf-here";
    let alice = trusted(peer, "alice")?;
    if !alice.capabilities().presence {
        alice.close().await;
        return Ok(Verdict::Skipped("capabilities().presence is false".into()));
    }
    alice
        .presence_enter(ROOM, json!({"v": 1}))
        .await
        .map_err(e("alice enters"))?;
    let bob = trusted(peer, "bob")?;
    let stream = bob
        .presence_events(ROOM)
        .await
        .map_err(e("presence events"))?;
    let here = within("here()", stream.here()).await?.map_err(e("here"))?;
    bob.close().await;
    alice.close().await;
    if !here.iter().any(|m| m.id == "alice") {
        return Err(format!("here() without alice: {here:?}"));
    }
    Ok(Verdict::Passed)
}

/// `subscribe_with`: options a provider does not know are carried and ignored (the
/// subscription works), and other options on the same channel are refused, not merged.
async fn subscribe_with_options(peer: &mut dyn Peer) -> Outcome {
    const CH: &str = "conf-options";
    /// Options of no provider (each provider ignores what it does not know).
    struct AppOption;
    struct OtherOption;
    let client = trusted(peer, "reader")?;
    let mut sub = client
        .subscribe_with(CH, relayport::SubscriptionOptions::new().with(AppOption))
        .await
        .map_err(e("subscribe_with"))?;
    let other = client
        .subscribe_with(CH, relayport::SubscriptionOptions::new().with(OtherOption))
        .await;
    if !matches!(&other, Err(err) if err.kind() == relayport::ErrorKind::Config) {
        client.close().await;
        return Err(format!("other options on the same channel gave {other:?}"));
    }
    publish(&*publisher(peer)?, CH, "o", json!({"n": 1})).await?;
    let m = next("the message", &mut sub).await?;
    client.close().await;
    if m.data != json!({"n": 1}) {
        return Err(format!("received {m:?}"));
    }
    Ok(Verdict::Passed)
}

/// Echo, the same on every provider: a client with `echo(false)` never receives its own
/// publishes, one with `echo(true)` (the default) receives them exactly once, whatever the
/// server does by itself. Event names start with `client-`, as Pusher requires of client
/// events.
async fn echo(peer: &mut dyn Peer) -> Outcome {
    let quiet = trusted_with(peer, "quiet", |b| b.echo(false))?;
    let Some(channel) = client_channel(&quiet, "conf-echo") else {
        quiet.close().await;
        return Ok(Verdict::Skipped(
            "capabilities().client_publish is false: clients cannot publish".into(),
        ));
    };
    let loud = trusted_with(peer, "loud", |b| b.echo(true))?;
    let run = async {
        // Loud first: on sockudo a subscription confirmed a moment ago may not see a client
        // event yet, and loud's must see quiet's, which comes first.
        let mut on_loud = loud
            .subscribe(channel.as_str())
            .await
            .map_err(e("subscribe"))?;
        let mut on_quiet = quiet
            .subscribe(channel.as_str())
            .await
            .map_err(e("subscribe"))?;
        let publish = |c: &RealtimeClient, event: &'static str, n: u32| {
            let c = c.clone();
            let channel = channel.clone();
            async move {
                within(event, c.publish(channel.as_str(), event, json!({"n": n})))
                    .await?
                    .map_err(e(event))
            }
        };
        // Both subscriptions are live end to end before the real publishes: each client has
        // heard one message on the channel.
        publish(&loud, "client-ready", 0).await?;
        events_until(&mut on_quiet, "client-ready").await?;
        events_until(&mut on_loud, "client-ready").await?;
        publish(&quiet, "client-from-quiet", 1).await?;
        publish(&loud, "client-from-loud", 2).await?;
        publish(&loud, "client-end", 3).await?;
        let quiet_saw = events_until(&mut on_quiet, "client-end").await?;
        if quiet_saw != ["client-from-loud", "client-end"] {
            return Err(format!("echo(false) client received {quiet_saw:?}"));
        }
        // Loud's own copies may come before quiet's message (Pusher: a local copy as soon as
        // the client event is written): collect until all three are in, then no repeats.
        let want = ["client-end", "client-from-loud", "client-from-quiet"];
        let mut loud_saw: Vec<String> = Vec::new();
        while !want.iter().all(|w| loud_saw.iter().any(|s| s == w)) {
            loud_saw.push(next("loud's messages", &mut on_loud).await?.event);
        }
        loud_saw.sort();
        if loud_saw != want {
            return Err(format!("echo(true) client received {loud_saw:?}"));
        }
        Ok(Verdict::Passed)
    };
    let outcome = run.await;
    quiet.close().await;
    loud.close().await;
    outcome
}

/// Bytes arrive as bytes (`Payload::Binary`) from a client and from the server-side publisher
/// where the provider carries them; elsewhere the client refuses them at once.
async fn binary_payloads(peer: &mut dyn Peer) -> Outcome {
    let writer = trusted(peer, "writer")?;
    let bytes = vec![0u8, 1, 127, 128, 254, 255];
    if !writer.capabilities().binary_payloads {
        let refused = writer.publish("conf-bytes", "b", bytes).await;
        writer.close().await;
        return match refused {
            Err(err) if err.kind() == relayport::ErrorKind::Unsupported => Ok(Verdict::Skipped(
                "capabilities().binary_payloads is false (a binary publish is refused with \
                 Unsupported, checked)"
                    .into(),
            )),
            other => Err(format!(
                "a binary publish without the capability gave {other:?}"
            )),
        };
    }
    let channel = client_channel(&writer, "conf-bytes").unwrap_or_else(|| "conf-bytes".into());
    let reader = trusted(peer, "reader")?;
    let run = async {
        let mut sub = reader
            .subscribe(channel.as_str())
            .await
            .map_err(e("subscribe"))?;
        if writer.capabilities().client_publish {
            // Private channels take client publishes from subscribers only.
            let _joined = writer
                .subscribe(channel.as_str())
                .await
                .map_err(e("subscribe"))?;
            within(
                "publish",
                writer.publish(channel.as_str(), "from-client", bytes.clone()),
            )
            .await?
            .map_err(e("binary publish"))?;
            let m = next("the client's bytes", &mut sub).await?;
            if m.event != "from-client" || m.data.as_bytes() != Some(&bytes[..]) {
                return Err(format!("received {m:?}"));
            }
        }
        let server_side = OutboundMessage::new(ch(&channel), "from-server", bytes.clone());
        within("publish", publisher(peer)?.publish(&server_side))
            .await?
            .map_err(e("server-side binary publish"))?;
        let m = next("the server-side publisher's bytes", &mut sub).await?;
        if m.event != "from-server" || m.data.as_bytes() != Some(&bytes[..]) {
            return Err(format!("received {m:?}"));
        }
        Ok(Verdict::Passed)
    };
    let outcome = run.await;
    writer.close().await;
    reader.close().await;
    outcome
}

pub async fn run_all(peer: &mut dyn Peer) -> Report {
    let mut report = Report {
        provider: peer.name(),
        passed: 0,
        skipped: Vec::new(),
        failures: Vec::new(),
    };
    macro_rules! scenario {
        ($name:ident) => {{
            let outcome = $name(peer).await;
            let name = stringify!($name);
            match outcome {
                Ok(Verdict::Passed) => report.passed += 1,
                Ok(Verdict::Skipped(why)) => {
                    println!("SKIP {}/{name}: {why}", report.provider);
                    report.skipped.push((name, why));
                }
                Err(why) => report.failures.push((name, why)),
            }
        }};
    }
    scenario!(subscribe_receive);
    scenario!(publish_order);
    scenario!(private_needs_auth);
    scenario!(presence_join_leave);
    scenario!(presence_update);
    scenario!(offline_queue_flushes);
    scenario!(unsubscribe_stops_delivery);
    scenario!(reconnect_resubscribes);
    scenario!(event_filters);
    scenario!(history_pages);
    scenario!(presence_here);
    scenario!(subscribe_with_options);
    scenario!(echo);
    scenario!(binary_payloads);
    report
}
