//! `relayport-supabase-peer --port N [--secret S] [--error-backoff-ms MS]`: the behavioural
//! Supabase Realtime test server on 127.0.0.1, for tests in other languages. Prints
//! `listening on http://127.0.0.1:<port>` once it accepts connections; stops on ctrl-c, or when
//! its standard input closes if `--exit-with-stdin` is given (so a test that spawned it cannot
//! leave it behind).

use std::time::Duration;

use relayport_peer_supabase::{Policy, SupabasePeer};

const USAGE: &str = "usage: relayport-supabase-peer [--port N] [--secret S] \
                     [--error-backoff-ms MS] [--policy authenticated|allow-all|claim:<name>] \
                     [--exit-with-stdin]";

fn main() {
    if let Err(e) = run() {
        eprintln!("relayport-supabase-peer: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut port = 0u16;
    let mut secret = None;
    let mut backoff = None;
    let mut policy = Policy::default();
    let mut exit_with_stdin = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--port" => port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--secret" => secret = Some(value()?),
            "--error-backoff-ms" => {
                let ms: u64 = value()?
                    .parse()
                    .map_err(|e| format!("--error-backoff-ms: {e}"))?;
                backoff = Some(Duration::from_millis(ms));
            }
            "--policy" => {
                let v = value()?;
                policy = match v.as_str() {
                    "authenticated" => Policy::authenticated(),
                    "allow-all" => Policy::allow_all(),
                    other => match other.strip_prefix("claim:") {
                        Some(claim) => Policy::claim_names_topic(claim),
                        None => return Err(format!("unknown --policy {other}")),
                    },
                };
            }
            "--exit-with-stdin" => exit_with_stdin = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let mut b = SupabasePeer::builder().policy(policy);
        if let Some(s) = secret {
            b = b.secret(s);
        }
        if let Some(d) = backoff {
            b = b.join_error_backoff(d).connect_error_backoff(d);
        }
        let peer = b
            .bind(&format!("127.0.0.1:{port}"))
            .await
            .map_err(|e| format!("bind 127.0.0.1:{port}: {e}"))?;
        println!("listening on {}", peer.project_url());
        let stdin_closed = async move {
            if !exit_with_stdin {
                return std::future::pending().await;
            }
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = stdin_closed => {}
        }
        drop(peer);
        Ok(())
    })
}
