//! `relayport-ably-peer --port N [--config file.json]`: the behavioural Ably peer on
//! 127.0.0.1, for clients in other languages (the official ably npm SDK). Prints
//! `listening on 127.0.0.1:PORT` once it accepts connections.

use std::path::PathBuf;

use clap::Parser;
use relayport_peer_ably::config::ConfigFile;
use relayport_peer_ably::{AblyPeer, PeerConfig};

/// A behavioural Ably test server on loopback.
#[derive(Parser)]
#[command(name = "relayport-ably-peer", version)]
struct Args {
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A JSON file: keys with capabilities and timings (see the crate README).
    #[arg(long)]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut cfg = PeerConfig {
        port: args.port,
        ..PeerConfig::default()
    };
    if let Some(path) = args.config {
        let file: ConfigFile = serde_json::from_slice(&std::fs::read(&path)?)?;
        cfg = file.apply(cfg)?;
    }
    let peer = AblyPeer::start(cfg).await?;
    println!("listening on {}", peer.addr());
    tokio::signal::ctrl_c().await?;
    peer.shutdown().await;
    Ok(())
}
