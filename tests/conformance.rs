//! One conformance suite for every provider: the same scenarios, written once against
//! `RealtimeClient` + `Publisher` + `ChannelAuthorizer` (built from a `ProviderConfig` by the
//! facade), run against each provider that has a loopback peer:
//!
//! - `selfhosted`: the server in this process;
//! - `pusher`: a real sockudo on 127.0.0.1 (skipped with a message when sockudo is not
//!   installed; under `CI=true` that is a failure), and our own server's Pusher-protocol mode;
//! - `ably`: relayport-peer-ably in this process, a behavioural Ably server that enforces
//!   Ably's rules (its official-SDK proof is in `peers/ably/tests/official_sdk.rs`);
//! - `supabase`: relayport-peer-supabase in this process, a behavioural Supabase Realtime
//!   server (JWT verification and expiry, an RLS-style policy for private channels, presence,
//!   REST; its official-SDK proof is in `peers/supabase/tests/official_sdk.rs`);
//! - `socketio`: a real socket.io 4.x server from npm with the relayport adapter, run by node
//!   on 127.0.0.1 (skipped the same way when node or its npm packages are missing);
//! - `firebase`: relayport-peer-firebase, the behavioural RTDB REST server, in this process
//!   (`private_needs_auth` is skipped: the database's rules check the client's own token).
//!
//! Scenarios a provider cannot run by its `capabilities()` are skipped by name, printing why.
//! Every wait is bounded; nothing sleeps to wait for an event.

#[path = "conformance/peers.rs"]
mod peers;
#[path = "conformance/scenarios.rs"]
mod scenarios;

use peers::{Ably, Firebase, Peer, SelfHosted, SelfHostedPusher, SocketIo, Sockudo, Supabase};

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

/// The Pusher provider against our own server's Pusher-protocol mode (issue 18), as against
/// sockudo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_conforms_against_the_servers_pusher_mode() {
    let mut peer = SelfHostedPusher::start().await;
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pusher_conforms_against_sockudo() {
    let Some(mut peer) = Sockudo::start().await else {
        return;
    };
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ably_conforms_against_the_behavioural_peer() {
    let mut peer = Ably::start().await;
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_conforms_against_the_behavioural_peer() {
    let mut peer = Supabase::start().await;
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_conforms_against_socket_io_with_the_adapter() {
    let Some(mut peer) = SocketIo::start().await else {
        return;
    };
    conform(&mut peer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_conforms_against_the_behavioural_peer() {
    let mut peer = Firebase::start().await;
    conform(&mut peer).await;
}
