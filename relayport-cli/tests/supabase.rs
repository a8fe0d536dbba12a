//! The `relayport` binary with the Supabase provider against loopback HTTP peers (issue 15
//! items 7 and 8): a public `publish --client` is one REST request and no WebSocket, a wrong
//! `SUPABASE_URL` fails at once with a hint, `--postgres` is refused for other providers.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_relayport");
const WAIT: Duration = Duration::from_secs(30);

/// A loopback HTTP peer answering every request with `status`; reports each request line.
async fn http_peer(status: &'static str) -> (u16, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                let _ = tx.send(head.lines().next().unwrap_or_default().to_owned());
                let reply =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = tcp.write_all(reply.as_bytes()).await;
                let _ = tcp.shutdown().await;
            });
        }
    });
    (port, rx)
}

fn supabase(url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_clear()
        .env("REALTIME_PROVIDER", "supabase")
        .env("SUPABASE_URL", url)
        .env("SUPABASE_ANON_KEY", "anon-key")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn run(mut cmd: Command) -> (Option<i32>, String) {
    let out = timeout(WAIT, cmd.output())
        .await
        .expect("finishes in time, without minutes of retries")
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_publish_is_one_rest_request_and_no_websocket() {
    let (port, mut requests) = http_peer("202 Accepted").await;
    let url = format!("http://127.0.0.1:{port}");
    let (code, err) = run(supabase(
        &url,
        &["publish", "news", "headline", r#"{"t":1}"#, "--client"],
    ))
    .await;
    assert_eq!(code, Some(0), "{err}");
    let first = requests.recv().await.expect("a request");
    assert_eq!(first, "POST /realtime/v1/api/broadcast HTTP/1.1");
    assert!(
        requests.try_recv().is_err(),
        "nothing else, no WebSocket upgrade"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_supabase_url_fails_at_once_with_a_hint() {
    let (port, _requests) = http_peer("404 Not Found").await;
    let (code, err) = run(supabase(
        &format!("http://127.0.0.1:{port}"),
        &["listen", "news"],
    ))
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("check SUPABASE_URL"), "{err}");

    // A host that cannot resolve (`.invalid` never does, RFC 2606).
    let (code, err) = run(supabase(
        "http://relayport-test.invalid",
        &["listen", "news"],
    ))
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("does not resolve") && err.contains("SUPABASE_URL"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_filters_are_checked_and_only_for_supabase() {
    let mut pusher = Command::new(BIN);
    pusher
        .env_clear()
        .env("REALTIME_PROVIDER", "pusher")
        .env("PUSHER_KEY", "k")
        .env("PUSHER_CLUSTER", "eu")
        .args(["listen", "news", "--postgres", "public:messages:INSERT"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (code, err) = run(pusher).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--postgres is for Supabase"), "{err}");
    let (code, err) = run(supabase(
        "http://127.0.0.1:9",
        &["listen", "db", "--postgres", "public:messages:TRUNCATE"],
    ))
    .await;
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("unknown event"), "{err}");
}

/// Issue 15 item 8: `presence` leaves its channel with `phx_leave` on ctrl-c, before the close
/// frame, against a loopback Supabase Realtime WebSocket peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_leaves_with_phx_leave_on_ctrl_c() {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio_tungstenite::tungstenite::Message;

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (frames_tx, mut frames) = mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("a connection");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        while let Some(Ok(msg)) = ws.next().await {
            let text = match msg {
                Message::Text(t) => t.as_str().to_owned(),
                Message::Close(_) => {
                    let _ = frames_tx.send(json!("close"));
                    return;
                }
                _ => continue,
            };
            let f: Value = serde_json::from_str(&text).expect("JSON");
            let _ = frames_tx.send(f.clone());
            let event = f[3].as_str().unwrap_or_default();
            if matches!(event, "phx_join" | "presence" | "heartbeat" | "phx_leave") {
                let response = if event == "phx_join" {
                    json!({"postgres_changes": []})
                } else {
                    json!({})
                };
                let reply =
                    json!([f[0], f[1], f[2], "phx_reply", {"status": "ok", "response": response}]);
                let _ = ws.send(Message::Text(reply.to_string().into())).await;
            }
        }
    });
    let mut cmd = supabase(
        "https://unused.example",
        &["--client-id", "alice", "presence", "presence:lobby"],
    );
    cmd.env(
        "SUPABASE_REALTIME_URL",
        format!("ws://127.0.0.1:{port}/socket"),
    )
    .env(
        "SUPABASE_JWT_SECRET",
        "a-cli-test-jwt-secret-long-enough-for-hs256",
    );
    let mut child = cmd.spawn().expect("spawns");
    let mut err = BufReader::new(child.stderr.take().expect("stderr")).lines();
    timeout(WAIT, async {
        while let Some(line) = err.next_line().await.expect("readable") {
            if line.contains("joined presence:lobby") {
                return;
            }
        }
        panic!("stderr ended before the join");
    })
    .await
    .expect("joined in time");
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let code = timeout(WAIT, child.wait())
        .await
        .expect("exits in time")
        .expect("waitable")
        .code();
    assert_eq!(code, Some(0), "ctrl-c leaves cleanly");
    let mut seen = Vec::new();
    while let Ok(Some(f)) = timeout(Duration::from_secs(5), frames.recv()).await {
        let done = f == json!("close");
        seen.push(f);
        if done {
            break;
        }
    }
    let leave = seen
        .iter()
        .position(|f| f[3] == "phx_leave" && f[2] == "realtime:lobby");
    let close = seen.iter().position(|f| *f == json!("close"));
    assert!(
        matches!((leave, close), (Some(l), Some(c)) if l < c),
        "phx_leave then close expected, saw {seen:?}"
    );
}
