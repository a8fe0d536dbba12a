//! The embedded chat demo: `cargo run --example chat`.
//!
//! Starts the self-hosted server inside this process on a free loopback port, connects two
//! clients (alice and bob) through `RealtimeClient`, and walks through a chat: presence
//! (members, joins), typing, messages both ways, then kills and restarts the server to show
//! the reconnect with recovered messages (what the backend published while everyone was
//! offline arrives exactly once after the reconnect).
//!
//! It needs nothing installed and exits by itself in a few seconds: status 0 when every step
//! worked, 1 with a one-line reason when one did not. `RUST_LOG=info` shows the library's logs
//! (on stderr) as well.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use relayport::selfhosted::client::SelfHostedProvider;
use relayport::selfhosted::server::{Publication, SelfHostedAuthorizer, Server};
use relayport::{
    Backoff, Channel, ChannelAuthorizer, ClientEvent, ConnectionState, Message, PresenceAction,
    RealtimeClient, Subscription,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The app secret of this demo's server. It stays in this process: the server checks with it,
/// the in-process authorizer (standing in for the app's auth endpoint) signs with it, and the
/// clients never see it.
const SECRET: &str = "chat-demo-secret";
/// The chat room: a presence channel, so members and joins are visible.
const ROOM: &str = "presence:room:lobby";
/// How long any one step may take before the demo gives up.
const STEP: Duration = Duration::from_secs(5);
/// How long the whole demo may take.
const ALL: Duration = Duration::from_secs(30);

type Demo<T> = Result<T, String>;

fn say(who: &str, what: impl std::fmt::Display) {
    println!("{who:>8} | {what}");
}

/// Awaits one step, bounded by [`STEP`]; a failure or a timeout becomes the demo's reason.
async fn step<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Demo<T> {
    match tokio::time::timeout(STEP, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {STEP:?}")),
    }
}

fn client(url: &str, user: &str, authorizer: Arc<dyn ChannelAuthorizer>) -> Demo<RealtimeClient> {
    let provider = SelfHostedProvider::new(url).map_err(|e| e.to_string())?;
    Ok(RealtimeClient::builder(provider)
        .authorizer(authorizer)
        .client_id(user)
        // Reconnect quickly: the demo restarts its server within milliseconds.
        .backoff(Backoff {
            initial: Duration::from_millis(100),
            factor: 2,
            max: Duration::from_secs(1),
            jitter: Duration::from_millis(100),
            max_attempts: 20,
        })
        .build())
}

/// What a client's watcher tells the demo, after printing it.
enum Note {
    /// The link dropped; the client is reconnecting.
    Reconnecting,
    /// A channel was resubscribed after a reconnect.
    Resubscribed(Channel, bool),
}

/// Prints a client's connection events as they happen, and passes the ones the demo waits for
/// on (so the output stays in order).
fn watch(user: &'static str, c: &RealtimeClient) -> mpsc::UnboundedReceiver<Note> {
    let mut events = c.events();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            match event {
                ClientEvent::StateChanged(ConnectionState::Connected) => say(user, "connected"),
                ClientEvent::StateChanged(ConnectionState::Reconnecting { attempt, retry_in }) => {
                    let when = if retry_in.is_zero() {
                        "at once".to_owned()
                    } else {
                        format!("in {} ms", retry_in.as_millis())
                    };
                    say(
                        user,
                        format!("connection lost: reconnecting {when} (attempt {attempt})"),
                    );
                    let _ = tx.send(Note::Reconnecting);
                }
                ClientEvent::Resubscribed { channel, recovered } => {
                    say(
                        user,
                        format!("resubscribed to {channel} (recovered: {recovered})"),
                    );
                    let _ = tx.send(Note::Resubscribed(channel, recovered));
                }
                ClientEvent::SyncRequired { channel } => say(
                    user,
                    format!("missed messages on {channel} are gone: must resync"),
                ),
                _ => {}
            }
        }
    });
    rx
}

/// Waits until `notes` passes one that `pick` accepts.
async fn note<T>(
    what: &str,
    notes: &mut mpsc::UnboundedReceiver<Note>,
    pick: impl Fn(Note) -> Option<T>,
) -> Demo<T> {
    step(what, async {
        while let Some(n) = notes.recv().await {
            if let Some(v) = pick(n) {
                return Ok(v);
            }
        }
        Err("the client's events ended".to_owned())
    })
    .await
}

fn text(m: &Message) -> String {
    m.data["text"].as_str().unwrap_or_default().to_owned()
}

fn author(m: &Message) -> String {
    m.data["from"]
        .as_str()
        .or_else(|| m.data["client_id"].as_str())
        .unwrap_or("?")
        .to_owned()
}

/// Reads `me`'s subscription until `want` matches, printing what others do on the way (own
/// echoes are skipped).
async fn until(
    me: &str,
    sub: &mut Subscription,
    what: &str,
    want: impl Fn(&Message) -> bool,
) -> Demo<Message> {
    let read = async {
        loop {
            let Some(m) = sub.recv().await else {
                return Err("the subscription ended".to_owned());
            };
            if author(&m) == me {
                continue;
            }
            if m.event == "typing" {
                let typing = m.data["typing"].as_bool().unwrap_or(false);
                let action = if typing {
                    "is typing…"
                } else {
                    "stopped typing"
                };
                say(me, format!("sees {} {action}", author(&m)));
            } else {
                let seq = m.position.as_ref().map_or(0, |p| p.sequence);
                say(
                    me,
                    format!("got from {}: {:?} (#{seq})", author(&m), text(&m)),
                );
            }
            if want(&m) {
                return Ok(m);
            }
        }
    };
    step(what, read).await
}

fn chat(from: &str, text: &str) -> Value {
    json!({"from": from, "text": text})
}

async fn run() -> Demo<()> {
    let server = step(
        "start the server",
        Server::builder().secret(SECRET).bind("127.0.0.1:0"),
    )
    .await?;
    let addr = server.local_addr();
    let url = format!("http://{addr}");
    say(
        "server",
        format!("listening on {addr} (inside this process)"),
    );

    // Stands in for the app's auth endpoint: signs private and presence subscriptions.
    let authorizer: Arc<dyn ChannelAuthorizer> = Arc::new(SelfHostedAuthorizer::new(SECRET));
    let alice = client(&url, "alice", authorizer.clone())?;
    let bob = client(&url, "bob", authorizer)?;
    let mut alice_notes = watch("alice", &alice);
    let mut bob_notes = watch("bob", &bob);

    // Presence: alice joins, then bob; each sees the other.
    step(
        "alice joins",
        alice.presence_enter(ROOM, json!({"name": "Alice"})),
    )
    .await?;
    let mut alice_room = step("alice subscribes", alice.subscribe(ROOM)).await?;
    let mut alice_presence = step("alice watches presence", alice.presence_events(ROOM)).await?;
    say("alice", format!("joined {ROOM}"));

    step(
        "bob joins",
        bob.presence_enter(ROOM, json!({"name": "Bob"})),
    )
    .await?;
    let mut bob_room = step("bob subscribes", bob.subscribe(ROOM)).await?;
    let members = step("bob lists the members", bob.presence_members(ROOM)).await?;
    let names: Vec<String> = members
        .iter()
        .map(|m| format!("{} ({})", m.id, m.data["name"].as_str().unwrap_or("?")))
        .collect();
    say(
        "bob",
        format!("joined {ROOM}; members: {}", names.join(", ")),
    );
    if members.len() != 2 {
        return Err(format!("expected 2 members, saw {}", members.len()));
    }
    // A presence stream starts with the members already there (alice herself), as joins.
    let joined = step("alice sees bob join", async {
        loop {
            let event = alice_presence
                .recv()
                .await
                .ok_or_else(|| "the presence stream ended".to_owned())?;
            if event.member.id != "alice" {
                return Ok::<_, String>(event);
            }
        }
    })
    .await?;
    if joined.action != PresenceAction::Joined || joined.member.id != "bob" {
        return Err(format!("alice expected bob's join, saw {joined:?}"));
    }
    say("alice", format!("sees {} join", joined.member.id));

    // Typing, then messages both ways.
    alice.start_typing(ROOM).map_err(|e| e.to_string())?;
    until("bob", &mut bob_room, "bob sees alice typing", |m| {
        m.event == "typing"
    })
    .await?;
    say("alice", "says \"Hi Bob!\"");
    step(
        "alice publishes",
        alice.publish(ROOM, "chat:message", chat("alice", "Hi Bob!")),
    )
    .await?;
    alice.stop_typing(ROOM).map_err(|e| e.to_string())?;
    let mut bob_got = vec![
        until("bob", &mut bob_room, "bob receives", |m| {
            m.event == "chat:message"
        })
        .await?,
    ];
    until("bob", &mut bob_room, "bob sees alice stop typing", |m| {
        m.event == "typing" && m.data["typing"] == json!(false)
    })
    .await?;
    say("bob", "says \"Hey Alice, how are you?\"");
    step(
        "bob publishes",
        bob.publish(ROOM, "chat:message", chat("bob", "Hey Alice, how are you?")),
    )
    .await?;
    until("alice", &mut alice_room, "alice receives", |m| {
        m.event == "chat:message"
    })
    .await?;

    // Kill the server. While it is down, the backend publishes; then it comes back.
    let config = server.config().clone();
    let broker = server.broker();
    say("server", "killed (clients are told to reconnect)");
    server.shutdown().await;
    let lost = |n: Note| matches!(n, Note::Reconnecting).then_some(());
    note("alice notices", &mut alice_notes, lost).await?;
    note("bob notices", &mut bob_notes, lost).await?;
    let offline = [
        "Server restarted for maintenance.",
        "Welcome back, everyone!",
    ];
    for line in offline {
        let channel = Channel::parse(ROOM).map_err(|e| e.to_string())?;
        let m = broker.publish(Publication {
            encoding: None,
            channel,
            event: "chat:message".into(),
            data: chat("backend", line),
            sender: None,
            exclude: None,
            retain: false,
        });
        say(
            "backend",
            format!("publishes {line:?} while the server is down (#{})", m.seq),
        );
    }
    say("server", format!("restarting on {addr} with its history"));
    let server = step(
        "restart the server",
        Server::builder().config(config).broker(broker).bind(addr),
    )
    .await?;

    let (channel, recovered) = note("bob resubscribes", &mut bob_notes, |n| match n {
        Note::Resubscribed(channel, recovered) => Some((channel, recovered)),
        Note::Reconnecting => None,
    })
    .await?;
    if channel.to_string() != ROOM || !recovered {
        return Err(format!(
            "bob resubscribed to {channel} with recovered: {recovered}"
        ));
    }
    for _ in offline {
        bob_got.push(
            until("bob", &mut bob_room, "bob recovers", |m| {
                m.event == "chat:message"
            })
            .await?,
        );
    }
    say("alice", "says \"Glad that was painless.\"");
    step(
        "alice publishes again",
        alice.publish(
            ROOM,
            "chat:message",
            chat("alice", "Glad that was painless."),
        ),
    )
    .await?;
    bob_got.push(
        until(
            "bob",
            &mut bob_room,
            "bob receives after the restart",
            |m| m.event == "chat:message",
        )
        .await?,
    );

    // Bob saw every message once, in order, the offline ones included.
    let texts: Vec<String> = bob_got.iter().map(text).collect();
    let expected = ["Hi Bob!", offline[0], offline[1], "Glad that was painless."];
    if texts != expected {
        return Err(format!("bob saw {texts:?}, expected {expected:?}"));
    }
    let ids: HashSet<Option<&String>> = bob_got.iter().map(|m| m.id.as_ref()).collect();
    if ids.len() != bob_got.len() {
        return Err("bob saw a message twice".into());
    }
    say(
        "demo",
        format!(
            "done: bob got {} messages from others, 0 lost, 0 duplicated",
            bob_got.len()
        ),
    );
    alice.close().await;
    bob.close().await;
    server.shutdown().await;
    Ok(())
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match tokio::time::timeout(ALL, run()).await {
        Ok(Ok(())) => {}
        Ok(Err(reason)) => {
            eprintln!("chat demo failed: {reason}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!("chat demo failed: it took longer than {ALL:?}");
            std::process::exit(1);
        }
    }
}
