//! `relayport-bench`: the benchmark harness. One command per scenario; results as JSON and
//! Markdown (and SVG plots) in the results folder. See `BENCHMARKS.md`.
//!
//! ```text
//! cargo build --release -p relayport-selfhosted --bin relayport-server -p relayport-bench
//! target/release/relayport-bench fanout
//! target/release/relayport-bench all
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use relayport_bench::scenarios::{channels, fanout, idle, runtime, storm};
use relayport_bench::{Launch, PeerKind, plot, report, sys};

/// Benchmarks of the self-hosted server and the client runtime, against a bare
/// tokio-tungstenite broadcast server (the limit) and sockudo.
#[derive(Debug, Parser)]
#[command(name = "relayport-bench")]
struct Args {
    /// Where results go (JSON, Markdown, SVG).
    #[arg(long, global = true, default_value = "bench/results")]
    out: PathBuf,
    /// The `relayport-server` executable (default: next to this one).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Pin the servers to these CPUs (`taskset -c`), e.g. `0`.
    #[arg(long, global = true)]
    server_cpus: Option<String>,
    /// Worker threads of the load generator.
    #[arg(long, global = true, default_value_t = 1)]
    client_threads: usize,
    /// Run the baseline and our server inside this process (sockudo stays a process).
    #[arg(long, global = true)]
    in_process: bool,
    /// Experiment: run our server through `ours-server` with this WebSocket read buffer
    /// (bytes) instead of the `relayport-server` binary's default (1024).
    #[arg(long, global = true)]
    ours_read_buffer: Option<usize>,
    /// Experiment: with `--ours-read-buffer`, the WebSocket write buffer (bytes).
    #[arg(long, global = true, default_value_t = 16 * 1024)]
    ours_write_buffer: usize,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Scenario 1: one channel × N subscribers, stepped offered load.
    Fanout {
        /// Subscriber counts.
        #[arg(long, value_delimiter = ',', default_value = "100,1000,10000")]
        subs: Vec<usize>,
        /// Offered deliveries/s to step through (default: a ladder per subscriber count).
        #[arg(long, value_delimiter = ',')]
        steps: Vec<u64>,
        /// Measured seconds per step.
        #[arg(long, default_value_t = 4.0)]
        step_secs: f64,
        /// The peers.
        #[arg(long, value_delimiter = ',', default_value = "baseline,ours,sockudo")]
        peers: Vec<PeerKind>,
    },
    /// Scenario 2: idle connections, server RSS per connection.
    Idle {
        /// Connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// The peers.
        #[arg(long, value_delimiter = ',', default_value = "baseline,ours,sockudo")]
        peers: Vec<PeerKind>,
    },
    /// Scenario 3: many channels × 1 subscriber, HTTP publishes.
    Channels {
        /// Channels.
        #[arg(long, default_value_t = 1_000)]
        channels: usize,
        /// Offered publishes/s (0 = unpaced).
        #[arg(long, value_delimiter = ',', default_value = "1000,2000,5000,10000,0")]
        rates: Vec<f64>,
        /// The peers.
        #[arg(long, value_delimiter = ',', default_value = "ours,sockudo")]
        peers: Vec<PeerKind>,
    },
    /// Scenario 4: RealtimeClient vs the provider directly vs a raw socket.
    Runtime {
        /// Burst size.
        #[arg(long, default_value_t = 100_000)]
        burst: u64,
        /// Paced messages/s of the latency run.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Interleaved rounds.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Scenario 5: reconnect storm through a server restart.
    Storm {
        /// Clients.
        #[arg(long, default_value_t = 1_000)]
        clients: usize,
        /// Messages/s published throughout.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
    },
    /// Every scenario at its default size.
    All,
    /// Rewrites the Markdown tables and redraws the plots from the JSON results (after
    /// merging runs by hand, for instance).
    Plot,
    /// (internal) our server library with explicit WebSocket buffers, as its own process.
    #[command(hide = true)]
    OursServer {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
        /// Send queue (frames).
        #[arg(long, default_value_t = 1000)]
        send_queue: usize,
        /// WebSocket read buffer (bytes).
        #[arg(long, default_value_t = 4096)]
        read_buffer: usize,
        /// WebSocket write buffer (bytes).
        #[arg(long, default_value_t = 16 * 1024)]
        write_buffer: usize,
    },
    /// (internal) the bare broadcast baseline as its own process.
    #[command(hide = true)]
    BaselineServer {
        /// Port on 127.0.0.1.
        #[arg(long)]
        port: u16,
    },
}

fn launch(args: &Args) -> Result<Launch> {
    if args.in_process {
        return Ok(Launch::InProcess);
    }
    let self_exe = std::env::current_exe().context("locating this executable")?;
    let server_bin = match &args.server_bin {
        Some(p) => p.clone(),
        None => self_exe.with_file_name("relayport-server"),
    };
    if !server_bin.is_file() {
        bail!(
            "{} not found: build it with `cargo build --release -p relayport-selfhosted --bin relayport-server` or pass --server-bin",
            server_bin.display()
        );
    }
    Ok(Launch::Process {
        self_exe,
        server_bin,
        server_cpus: args.server_cpus.clone(),
        ours_buffers: args.ours_read_buffer.map(|r| (r, args.ours_write_buffer)),
    })
}

async fn run_fanout(args: &Args, cfg: fanout::FanoutConfig) -> Result<()> {
    let r = fanout::run(&cfg, &launch(args)?).await?;
    report::write(&args.out, "fanout", &r, &report::fanout_md(&r))?;
    let plots = plot::fanout(&r, &args.out)?;
    println!("{}", report::fanout_md(&r));
    eprintln!("wrote fanout.json, fanout.md, {}", plots.join(", "));
    Ok(())
}

async fn run_idle(args: &Args, cfg: idle::IdleConfig) -> Result<()> {
    let r = idle::run(&cfg, &launch(args)?).await?;
    report::write(&args.out, "idle", &r, &report::idle_md(&r))?;
    plot::idle(&r, &args.out)?;
    println!("{}", report::idle_md(&r));
    Ok(())
}

async fn run_channels(args: &Args, cfg: channels::ChannelsConfig) -> Result<()> {
    let r = channels::run(&cfg, &launch(args)?).await?;
    report::write(&args.out, "channels", &r, &report::channels_md(&r))?;
    println!("{}", report::channels_md(&r));
    Ok(())
}

async fn run_runtime(args: &Args, cfg: runtime::RuntimeConfig) -> Result<()> {
    let r = runtime::run(&cfg, &launch(args)?).await?;
    report::write(&args.out, "runtime", &r, &report::runtime_md(&r))?;
    println!("{}", report::runtime_md(&r));
    Ok(())
}

async fn run_storm(args: &Args, cfg: storm::StormConfig) -> Result<()> {
    let r = storm::run(&cfg).await?;
    report::write(&args.out, "storm", &r, &report::storm_md(&r))?;
    println!("{}", report::storm_md(&r));
    Ok(())
}

fn replot(args: &Args) -> Result<()> {
    let f = std::fs::read_to_string(args.out.join("fanout.json"));
    if let Ok(text) = f {
        let mut r: fanout::FanoutResult = serde_json::from_str(&text)?;
        r.best = fanout::best_rows(&r.rows, r.slo_p99_ms);
        report::write(&args.out, "fanout", &r, &report::fanout_md(&r))?;
        plot::fanout(&r, &args.out)?;
    }
    if let Ok(text) = std::fs::read_to_string(args.out.join("idle.json")) {
        let r: idle::IdleResult = serde_json::from_str(&text)?;
        report::write(&args.out, "idle", &r, &report::idle_md(&r))?;
        plot::idle(&r, &args.out)?;
    }
    Ok(())
}

async fn dispatch(args: Args) -> Result<()> {
    match &args.command {
        Cmd::Fanout {
            subs,
            steps,
            step_secs,
            peers,
        } => {
            let cfg = fanout::FanoutConfig {
                subscribers: subs.clone(),
                steps: steps.clone(),
                step_secs: *step_secs,
                peers: peers.clone(),
                ..Default::default()
            };
            run_fanout(&args, cfg).await
        }
        Cmd::Idle { connections, peers } => {
            let cfg = idle::IdleConfig {
                connections: *connections,
                peers: peers.clone(),
                ..Default::default()
            };
            run_idle(&args, cfg).await
        }
        Cmd::Channels {
            channels: n,
            rates,
            peers,
        } => {
            let cfg = channels::ChannelsConfig {
                channels: *n,
                rates: rates.clone(),
                peers: peers.clone(),
                ..Default::default()
            };
            run_channels(&args, cfg).await
        }
        Cmd::Runtime {
            burst,
            rate,
            rounds,
        } => {
            let cfg = runtime::RuntimeConfig {
                burst: *burst,
                rate: *rate,
                rounds: *rounds,
                ..Default::default()
            };
            run_runtime(&args, cfg).await
        }
        Cmd::Storm { clients, rate } => {
            let cfg = storm::StormConfig {
                clients: *clients,
                rate: *rate,
                ..Default::default()
            };
            run_storm(&args, cfg).await
        }
        Cmd::All => {
            run_fanout(&args, fanout::FanoutConfig::default()).await?;
            run_idle(&args, idle::IdleConfig::default()).await?;
            run_channels(&args, channels::ChannelsConfig::default()).await?;
            run_runtime(&args, runtime::RuntimeConfig::default()).await?;
            run_storm(&args, storm::StormConfig::default()).await
        }
        Cmd::Plot => replot(&args),
        Cmd::BaselineServer { .. } | Cmd::OursServer { .. } => Ok(()),
    }
}

fn ours_server(port: u16, send_queue: usize, read: usize, write: usize) -> ExitCode {
    use relayport_selfhosted::protocol::Limits;
    use relayport_selfhosted::server::Server;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relayport-bench ours-server: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let limits = Limits {
            send_queue,
            ..Limits::default()
        };
        let handle = match Server::builder()
            .secret(relayport_bench::peer::SECRET)
            .limits(limits)
            .ws_buffers(read, write, usize::MAX)
            .bind(("127.0.0.1", port))
            .await
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("relayport-bench ours-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        let _ = tokio::signal::ctrl_c().await;
        handle.shutdown().await;
        ExitCode::SUCCESS
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    let nofile = sys::raise_fd_limit();
    if let Cmd::BaselineServer { port } = args.command {
        let rt = match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("relayport-bench baseline-server: {e}");
                return ExitCode::FAILURE;
            }
        };
        return rt.block_on(async move {
            let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("relayport-bench baseline-server: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let stop = tokio_util::sync::CancellationToken::new();
            let s = stop.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                s.cancel();
            });
            relayport_bench::baseline::serve(listener, stop).await;
            ExitCode::SUCCESS
        });
    }
    if let Cmd::OursServer {
        port,
        send_queue,
        read_buffer,
        write_buffer,
    } = args.command
    {
        return ours_server(port, send_queue, read_buffer, write_buffer);
    }
    let load = sys::load_average();
    eprintln!(
        "relayport-bench: load average {:.2} {:.2} {:.2}, nofile {nofile}",
        load[0], load[1], load[2]
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.client_threads.max(1))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("relayport-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("relayport-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
