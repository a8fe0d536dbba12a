//! The `relayport` binary as a process, against a self-hosted server running in this test's
//! process on loopback. Every wait is bounded; nothing sleeps. (Time-based behaviour, the
//! backoff and the countdown, is the runtime's and is tested there on the paused clock; here
//! the clock is real because the binary runs in its own process.)

use std::process::Stdio;
use std::time::Duration;

use relayport::Channel;
use relayport_selfhosted::server::{Server, ServerHandle, auth::verify_subscription};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_relayport");
const SECRET: &str = "cli-test-secret";
const WAIT: Duration = Duration::from_secs(30);

async fn server() -> ServerHandle {
    Server::builder()
        .secret(SECRET)
        .allow_public_publish(true)
        .bind("127.0.0.1:0")
        .await
        .expect("server binds")
}

fn command(server: &ServerHandle, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("REALTIME_PROVIDER", "selfhosted")
        .env("REALTIME_URL", format!("http://{}", server.local_addr()))
        .env("REALTIME_SECRET", SECRET)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// A running `relayport` process with its output read line by line.
struct Running {
    child: Child,
    out: Lines<BufReader<ChildStdout>>,
    err: Lines<BufReader<ChildStderr>>,
}

impl Running {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd.spawn().expect("spawns");
        let out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let err = BufReader::new(child.stderr.take().expect("stderr")).lines();
        Self { child, out, err }
    }

    /// The next stdout line, as JSON.
    async fn json(&mut self) -> Value {
        let line = timeout(WAIT, self.out.next_line())
            .await
            .expect("a line in time")
            .expect("readable")
            .expect("stdout still open");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line:?}: {e}"))
    }

    /// Reads stderr until a line contains `needle`; returns the lines read.
    async fn stderr_until(&mut self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let found = timeout(WAIT, async {
            while let Some(line) = self.err.next_line().await.expect("readable") {
                let hit = line.contains(needle);
                seen.push(line);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(found, Ok(true), "no `{needle}` on stderr; saw {seen:?}");
        seen
    }

    /// Sends `signal` (`INT`, `TERM`) with `kill`.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its status code (`None`: killed by a signal).
    async fn exit_code(&mut self) -> Option<i32> {
        timeout(WAIT, self.child.wait())
            .await
            .expect("exits in time")
            .expect("waitable")
            .code()
    }

    /// Sends SIGINT (ctrl-c) and waits for a clean exit.
    async fn interrupt(mut self) {
        self.signal("INT");
        assert_eq!(
            self.exit_code().await,
            Some(0),
            "ctrl-c should leave cleanly"
        );
    }
}

/// Runs a command to completion: (status code, stdout, stderr).
async fn run(cmd: Command) -> (Option<i32>, String, String) {
    let mut cmd = cmd;
    let out = timeout(WAIT, cmd.output())
        .await
        .expect("finishes in time")
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_prints_what_publish_sends_then_ctrl_c_leaves_cleanly() {
    let srv = server().await;
    let mut listen = Running::spawn(command(&srv, &["listen", "news", "private:orders"]));
    let states = listen.stderr_until("subscribed to private:orders").await;
    assert!(states.iter().any(|l| l == "state: connected"), "{states:?}");

    let (code, _, err) = run(command(&srv, &["publish", "news", "greet", r#"{"a":1}"#])).await;
    assert_eq!(code, Some(0), "{err}");
    let m = listen.json().await;
    assert_eq!(
        (&m["channel"], &m["event"], &m["data"]),
        (&json!("news"), &json!("greet"), &json!({"a": 1}))
    );

    let args = [
        "publish",
        "private:orders",
        "created",
        r#"{"id":7}"#,
        "--client",
    ];
    let (code, _, err) = run(command(&srv, &args)).await;
    assert_eq!(code, Some(0), "{err}");
    let m = listen.json().await;
    assert_eq!(m["channel"], "private:orders");
    assert_eq!(m["data"], json!({"id": 7}));
    listen.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_base64_sends_bytes_and_listen_prints_them_with_their_encoding() {
    let srv = server().await;
    let mut listen = Running::spawn(command(&srv, &["listen", "files"]));
    listen.stderr_until("subscribed to files").await;
    let (code, _, err) = run(command(
        &srv,
        &["publish", "files", "blob", "--base64", "AP8="],
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let m = listen.json().await;
    assert_eq!(
        (&m["event"], &m["data"], &m["encoding"]),
        (&json!("blob"), &json!("AP8="), &json!("base64"))
    );
    listen.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_reports_the_reconnect_on_stderr_and_resubscribes() {
    let srv = server().await;
    let mut listen = Running::spawn(command(&srv, &["listen", "ticker"]));
    listen.stderr_until("subscribed to ticker").await;
    let srv = srv.restart().await.expect("restarts");
    let seen = listen.stderr_until("state: connected").await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with("state: reconnecting (attempt 1) in")),
        "{seen:?}"
    );
    // The reason of the reconnect: the close code and the server's text.
    assert!(
        seen.iter()
            .any(|l| l.starts_with("disconnected: code 1012: the server is restarting")),
        "{seen:?}"
    );
    let (code, _, err) = run(command(&srv, &["publish", "ticker", "tick", "1"])).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listen.json().await["data"], json!(1));
    listen.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_counts_down_while_the_server_is_gone() {
    let srv = server().await;
    let addr = srv.local_addr();
    let mut listen = Running::spawn(command(&srv, &["listen", "ticker"]));
    listen.stderr_until("subscribed to ticker").await;
    srv.shutdown().await;
    // Attempts fail while nothing listens, so the backoff grows past a second and the
    // countdown shows.
    listen.stderr_until("reconnecting in ").await;
    let srv = Server::builder()
        .secret(SECRET)
        .allow_public_publish(true)
        .bind(addr)
        .await
        .expect("binds the same address again");
    listen.stderr_until("state: connected").await;
    let (code, _, err) = run(command(&srv, &["publish", "ticker", "tick", "2"])).await;
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(listen.json().await["data"], json!(2));
    listen.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_prints_the_signature_the_server_accepts() {
    let srv = server().await;
    let (code, out, err) = run(command(&srv, &["auth", "n.42", "private:orders"])).await;
    assert_eq!(code, Some(0), "{err}");
    let body: Value = serde_json::from_str(out.trim()).expect("JSON");
    let ch = Channel::private("orders");
    assert!(verify_subscription(SECRET, "n.42", &ch, body["auth"].as_str(), None).is_ok());
    assert!(verify_subscription(SECRET, "n.43", &ch, body["auth"].as_str(), None).is_err());

    let args = [
        "auth",
        "n.42",
        "presence:room",
        "--user-data",
        r#"{"id":"alice","info":{"name":"Alice"}}"#,
    ];
    let (code, out, err) = run(command(&srv, &args)).await;
    assert_eq!(code, Some(0), "{err}");
    let body: Value = serde_json::from_str(out.trim()).expect("JSON");
    let ch = Channel::presence("room");
    let member = verify_subscription(
        SECRET,
        "n.42",
        &ch,
        body["auth"].as_str(),
        body["channel_data"].as_str(),
    )
    .expect("verifies");
    assert_eq!(member, Some(("alice".into(), json!({"name": "Alice"}))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_prints_members_joins_and_leaves() {
    let srv = server().await;
    let data = r#"{"name":"Alice"}"#;
    let args = [
        "--client-id",
        "alice",
        "presence",
        "presence:room",
        "--data",
        data,
    ];
    let mut alice = Running::spawn(command(&srv, &args));
    let me = alice.json().await;
    assert_eq!(me["action"], "member");
    assert_eq!(me["member"]["id"], "alice");
    let args = ["--client-id", "bob", "presence", "presence:room"];
    let mut bob = Running::spawn(command(&srv, &args));
    bob.stderr_until("joined presence:room").await;
    let joined = alice.json().await;
    assert_eq!(
        (&joined["action"], &joined["member"]["id"]),
        (&json!("joined"), &json!("bob"))
    );
    bob.interrupt().await;
    let left = alice.json().await;
    assert_eq!(
        (&left["action"], &left["member"]["id"]),
        (&json!("left"), &json!("bob"))
    );
    alice.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_prints_the_retained_messages_in_order() {
    let srv = server().await;
    for n in 1..=3 {
        let (code, _, err) = run(command(&srv, &["publish", "log", "line", &n.to_string()])).await;
        assert_eq!(code, Some(0), "{err}");
    }
    let (code, out, err) = run(command(&srv, &["history", "log"])).await;
    assert_eq!(code, Some(0), "{err}");
    let data: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["data"].clone())
        .collect();
    assert_eq!(data, [json!(1), json!(2), json!(3)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_errors_exit_1_with_one_line() {
    let srv = server().await;
    let mut no_url = command(&srv, &["listen", "news"]);
    no_url.env_remove("REALTIME_URL");
    let mut no_provider = command(&srv, &["listen", "news"]);
    no_provider.env_remove("REALTIME_PROVIDER");
    let no_file = command(
        &srv,
        &["--config", "/nonexistent/relayport.toml", "listen", "x"],
    );
    let cases = [
        (no_url, "REALTIME_URL"),
        (no_provider, "REALTIME_PROVIDER"),
        (no_file, "/nonexistent/relayport.toml"),
    ];
    for (cmd, needle) in cases {
        let (code, out, err) = run(cmd).await;
        assert_eq!(code, Some(1), "{err}");
        assert!(out.is_empty(), "{out}");
        assert_eq!(err.lines().count(), 1, "{err:?}");
        assert!(
            err.starts_with("relayport: ") && err.contains(needle),
            "{err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_before_connecting() {
    let srv = server().await;
    let mut bad_provider = command(&srv, &["--provider", "soketi", "listen", "news"]);
    bad_provider.env_remove("REALTIME_PROVIDER");
    let mut bad_env_provider = command(&srv, &["listen", "news"]);
    bad_env_provider.env("REALTIME_PROVIDER", "soketi");
    let cases = [
        (
            bad_provider,
            "possible values: pusher, ably, supabase, selfhosted",
        ),
        (bad_env_provider, "soketi"),
        (
            command(&srv, &["publish", "news", "e", "{not json"]),
            "not valid JSON",
        ),
        (
            command(&srv, &["publish", "news", "e", "--base64", "%%%"]),
            "not valid base64",
        ),
        (
            command(&srv, &["publish", "news", "e", "{}", "--base64", "AQI="]),
            "cannot be used with",
        ),
        (command(&srv, &["publish", "news", "e"]), "required"),
        (
            command(&srv, &["presence", "presence:room", "--data", "[1,"]),
            "not valid JSON",
        ),
        (
            command(&srv, &["auth", "n.1", "presence:room", "--user-data", "x"]),
            "not valid JSON",
        ),
        (
            command(&srv, &["auth", "n.1", "presence:room"]),
            "--user-data",
        ),
        (command(&srv, &["listen", "bad channel"]), "bad channel"),
        (command(&srv, &["presence", "news"]), "presence channel"),
        (command(&srv, &["listen"]), "<CHANNELS>"),
        (command(&srv, &["subscribe", "news"]), "subscribe"),
    ];
    for (cmd, needle) in cases {
        let (code, out, err) = run(cmd).await;
        assert_eq!(code, Some(2), "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{err:?}"
        );
    }
    // Nothing connected: the server saw no connection at all.
    assert_eq!(
        srv.metrics().snapshot().connections_total,
        0,
        "a usage error must not connect"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_the_environment_and_examples_but_never_a_secret() {
    let srv = server().await;
    let secrets = [
        ("REALTIME_SECRET", "hunter2-selfhosted-secret"),
        ("PUSHER_SECRET", "hunter2-pusher-secret"),
        ("ABLY_API_KEY", "app.key:hunter2-ably"),
        ("SUPABASE_JWT_SECRET", "hunter2-jwt-secret"),
        ("SUPABASE_SERVICE_ROLE_KEY", "hunter2-service-role"),
    ];
    for args in [
        &["--help"][..],
        &["listen", "--help"],
        &["publish", "--help"],
    ] {
        let mut cmd = command(&srv, args);
        cmd.envs(secrets);
        let (code, out, err) = run(cmd).await;
        assert_eq!(code, Some(0), "{err}");
        for (_, value) in secrets {
            assert!(!out.contains(value), "{args:?} leaks {value}: {out}");
        }
        assert!(out.contains("[env: REALTIME_PROVIDER="), "{out}");
        assert!(out.contains("[env: REALTIME_CLIENT_ID"), "{out}");
        assert!(out.contains("Example"), "{out}");
    }
    let (_, out, _) = run(command(&srv, &["--help"])).await;
    for name in ["REALTIME_SECRET*", "PUSHER_SECRET*", "Exit status"] {
        assert!(out.contains(name), "{name}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_cleanly_like_ctrl_c() {
    let srv = server().await;
    let args = ["--client-id", "alice", "presence", "presence:room"];
    let mut alice = Running::spawn(command(&srv, &args));
    assert_eq!(alice.json().await["member"]["id"], "alice");
    let args = ["--client-id", "bob", "presence", "presence:room"];
    let mut bob = Running::spawn(command(&srv, &args));
    bob.stderr_until("joined presence:room").await;
    assert_eq!(alice.json().await["action"], "joined");

    bob.signal("TERM");
    // Handled (a default SIGTERM would kill it: no exit code), and said goodbye.
    assert_eq!(
        bob.exit_code().await,
        Some(0),
        "SIGTERM should leave cleanly"
    );
    bob.stderr_until("terminated: leaving").await;
    let left = alice.json().await;
    assert_eq!(
        (&left["action"], &left["member"]["id"]),
        (&json!("left"), &json!("bob"))
    );
    alice.interrupt().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_the_server_ends_exits_1_with_the_reason() {
    let srv = server().await;
    let addr = srv.local_addr();
    let mut listen = Running::spawn(command(&srv, &["listen", "news", "private:orders"]));
    listen.stderr_until("subscribed to private:orders").await;
    // The server comes back with another secret: the resubscribe of the private channel,
    // signed with the old one, is refused; the public channel is restored.
    let (config, broker) = (srv.config().clone(), srv.broker());
    srv.shutdown().await;
    let _srv = Server::builder()
        .config(config)
        .secret("a-rotated-secret")
        .broker(broker)
        .bind(addr)
        .await
        .expect("binds the same address again");
    let seen = listen
        .stderr_until("subscription to private:orders ended")
        .await;
    assert!(
        seen.iter()
            .any(|l| l.starts_with("disconnected: code 1012")),
        "{seen:?}"
    );
    assert_eq!(listen.exit_code().await, Some(1));
    let rest = listen.stderr_until("relayport: ").await;
    let last = rest.last().expect("a reason");
    assert!(last.contains("unauthorized"), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_newest_first_with_a_limit() {
    let srv = server().await;
    for n in 1..=5 {
        let (code, _, err) = run(command(&srv, &["publish", "log2", "line", &n.to_string()])).await;
        assert_eq!(code, Some(0), "{err}");
    }
    let (code, out, err) = run(command(
        &srv,
        &["history", "log2", "--newest-first", "--limit", "2"],
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let data: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("JSON")["data"].clone())
        .collect();
    assert_eq!(data, [json!(5), json!(4), json!(3), json!(2), json!(1)]);
}

// ---- Pusher (sockudo) -----------------------------------------------------------------------

/// Base64 of 32 bytes: the master key the CLI holds, and another one.
const MASTER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const OTHER_MASTER_KEY: &str = "enl4d3Z1dHNycXBvbm1sa2ppaGdmZWRjYmEwMTIzNDU=";

fn pusher_command(server: &relayport_pusher::testing::Sockudo, args: &[&str]) -> Command {
    use relayport_pusher::testing::{APP_ID, KEY, SECRET};
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("REALTIME_PROVIDER", "pusher")
        .env("PUSHER_APP_ID", APP_ID)
        .env("PUSHER_KEY", KEY)
        .env("PUSHER_SECRET", SECRET)
        .env("PUSHER_HOST", "127.0.0.1")
        .env("PUSHER_PORT", server.port.to_string())
        .env("PUSHER_TLS", "false")
        .env("PUSHER_ENCRYPTION_MASTER_KEY_BASE64", MASTER_KEY)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn pusher_rest(
    server: &relayport_pusher::testing::Sockudo,
    master_key: &str,
) -> relayport_pusher::PusherRest {
    let creds = server
        .credentials()
        .with_encryption_master_key_base64(master_key)
        .expect("a 32-byte key");
    relayport_pusher::PusherRest::host(creds, "127.0.0.1", server.port, false)
}

/// Issue 16 defect 5: a message on an encrypted channel that does not decrypt (sent under
/// another master key) is reported on stderr with the channel, never printed on stdout, and
/// the listener keeps going: the next good message is printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecryptable_message_is_reported_on_stderr() {
    let Some(server) = relayport_pusher::testing::Sockudo::start().await else {
        return;
    };
    let mut listen = Running::spawn(pusher_command(
        &server,
        &["listen", "private:encrypted-vault"],
    ));
    listen
        .stderr_until("subscribed to private:encrypted-vault")
        .await;
    let wire = ["private-encrypted-vault"];
    let options = relayport_pusher::TriggerOptions::default();
    pusher_rest(&server, OTHER_MASTER_KEY)
        .trigger(&wire, "secret", &json!({"n": 1}), &options)
        .await
        .expect("sockudo accepts it");
    let seen = listen
        .stderr_until("error on private:encrypted-vault")
        .await;
    let line = seen.last().expect("the error line");
    assert!(line.to_lowercase().contains("decrypt"), "{line}");
    pusher_rest(&server, MASTER_KEY)
        .trigger(&wire, "secret", &json!({"n": 2}), &options)
        .await
        .expect("sockudo accepts it");
    let m = listen.json().await;
    assert_eq!(
        m["data"],
        json!({"n": 2}),
        "only the good message is printed"
    );
    listen.interrupt().await;
}

/// Issue 16 defect 1: `--user-id` signs the CLI in (the app enforces user authentication),
/// and `listen server-to-user` prints what the backend sends to that user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_signs_in_and_listen_prints_the_users_events() {
    let Some(server) = relayport_pusher::testing::Sockudo::start().await else {
        return;
    };
    let mut listen = Running::spawn(pusher_command(
        &server,
        &["--user-id", "cli-user", "listen", "server-to-user"],
    ));
    listen.stderr_until("subscribed to server-to-user").await;
    pusher_rest(&server, MASTER_KEY)
        .send_to_user("cli-user", "invoice-paid", &json!({"id": 9}))
        .await
        .expect("sockudo accepts it");
    let m = listen.json().await;
    assert_eq!(
        (&m["channel"], &m["event"], &m["data"]),
        (
            &json!("server-to-user"),
            &json!("invoice-paid"),
            &json!({"id": 9})
        )
    );
    listen.interrupt().await;
}

/// Issue 16 defect 4: `publish --client` with a plain name is refused with one clear
/// sentence (exit 1), is prefixed with `--client-event-prefix` (the listener, also with the
/// prefix, prints the plain name), and a public channel is refused as the capabilities say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_events_are_named_clearly_and_prefixed_on_request() {
    let Some(server) = relayport_pusher::testing::Sockudo::start().await else {
        return;
    };
    let room = "private:whispers";
    let publish = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["publish", room, "typing", r#"{"on":true}"#, "--client"]);
        pusher_command(&server, &args)
    };
    let (code, _, err) = run(publish(&[])).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("publish `client-typing` instead of `typing`"),
        "{err}"
    );
    let mut listen = Running::spawn(pusher_command(
        &server,
        &["--client-event-prefix", "listen", room],
    ));
    listen.stderr_until("subscribed to private:whispers").await;
    let (code, _, err) = run(publish(&["--client-event-prefix"])).await;
    assert_eq!(code, Some(0), "{err}");
    let m = listen.json().await;
    assert_eq!(
        (&m["event"], &m["data"]),
        (&json!("typing"), &json!({"on": true}))
    );
    let args = ["publish", "news", "client-x", "1", "--client"];
    let (code, _, err) = run(pusher_command(&server, &args)).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not relay client publishes on public channels"),
        "{err}"
    );
    listen.interrupt().await;
}

/// Issue 16: a fatal close is printed with the server's reason and ends the command with
/// status 1 (sockudo terminates the signed-in user's connections: 4009).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_user_sees_the_servers_reason_and_exits_1() {
    let Some(server) = relayport_pusher::testing::Sockudo::start().await else {
        return;
    };
    let mut listen = Running::spawn(pusher_command(
        &server,
        &["--user-id", "doomed", "listen", "server-to-user"],
    ));
    listen.stderr_until("subscribed to server-to-user").await;
    pusher_rest(&server, MASTER_KEY)
        .terminate_user_connections("doomed")
        .await
        .expect("sockudo accepts it");
    let seen = listen.stderr_until("disconnected by the app").await;
    assert!(
        !seen.iter().any(|l| l.starts_with("state: reconnecting")),
        "{seen:?}"
    );
    assert_eq!(listen.exit_code().await, Some(1));
}
