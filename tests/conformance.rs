//! One conformance suite for every provider: the same scenarios, written once against
//! `RealtimeClient` + `Publisher` + `ChannelAuthorizer` (built from a `ProviderConfig` by the
//! facade), run against each provider that has a loopback peer:
//!
//! - `selfhosted`: the server in this process;
//! - `pusher`: a real sockudo on 127.0.0.1 (skipped with a message when sockudo is not
//!   installed; under `CI=true` that is a failure);
//! - `firebase`: relayport-peer-firebase, the behavioural RTDB REST server, in this process
//!   (`private_needs_auth` does not apply: see [`firebase_conforms`]);
//! - `ably`, `supabase`: skipped, with the reason printed: no server of theirs runs offline,
//!   and their crates' scripted loopback peers live in their own `tests/` (they replay one
//!   recorded conversation each, not a server these scenarios could drive).
//!
//! Scenarios a provider cannot run by its `capabilities()` are skipped by name, printing why.
//! Every wait is bounded; nothing sleeps to wait for an event.

#[path = "conformance/peers.rs"]
mod peers;
#[path = "conformance/scenarios.rs"]
mod scenarios;

use peers::{Firebase, Peer, SelfHosted, Sockudo};

async fn conform(peer: &mut dyn Peer) {
    let report = scenarios::run_all(peer).await;
    println!("{report}");
    assert!(report.failures.is_empty(), "{}", report);
    assert!(report.passed > 0, "nothing ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selfhosted_conforms() {
    let mut peer = SelfHosted::start().await;
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_conforms_against_sockudo() {
    let Some(mut peer) = Sockudo::start().await else {
        return;
    };
    conform(&mut peer).await;
}

/// Every scenario but `private_needs_auth`, whose premise (a private channel is opened by a
/// signature a client without the server secret cannot make) is not Firebase's model: the
/// database's security rules check the client's own token on every request, so a client
/// holding a valid token may open any channel the rules allow, with or without an authorizer.
/// Its Firebase equivalent (the rules refuse a reader without a valid token) is in
/// relayport-firebase's `tests/loopback.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_conforms() {
    let mut peer = Firebase::start().await;
    let report = scenarios::run_all(&mut peer).await;
    println!("{report}");
    let (inapplicable, failures): (Vec<_>, Vec<_>) = report
        .failures
        .iter()
        .partition(|(name, _)| *name == "private_needs_auth");
    for (name, why) in &inapplicable {
        println!("SKIP firebase/{name}: not Firebase's access model (it reported: {why})");
    }
    assert!(failures.is_empty(), "{report}");
    assert!(report.passed >= 6, "{report}");
}

/// Ably and Supabase are wired into the facade (a configuration builds their client, and
/// their capabilities are what the suite would consult) but have no peer to run against.
#[tokio::test]
async fn ably_and_supabase_are_wired_but_skipped_with_the_reason() {
    use relayport::config::MapEnv;
    let env = MapEnv::from([
        ("ABLY_CLIENT_KEY", "app.key:secret"),
        ("ABLY_HOST", "127.0.0.1"),
        ("ABLY_PORT", "9"),
        ("ABLY_TLS", "false"),
        ("SUPABASE_URL", "http://127.0.0.1:9"),
        ("SUPABASE_ANON_KEY", "anon"),
    ]);
    for name in ["ably", "supabase"] {
        let cfg = relayport::ProviderConfig::from_env_for(name, &env).expect("config");
        let provider = relayport::provider(&cfg).expect("provider");
        assert_eq!(provider.name(), name);
        println!(
            "SKIP {name}: every scenario (its capabilities: {:?}) — no {name} server runs \
             offline, and provider-{name} offers no loopback peer outside its own tests (its \
             scripted peers replay recorded SDK conversations frame by frame); its client, \
             publisher and authorizer are covered by provider-{name}'s tests and, through the \
             facade, by tests/auth_endpoint.rs",
            provider.capabilities()
        );
    }
}
