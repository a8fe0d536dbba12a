//! Results as JSON and Markdown tables, written next to each other in the results folder.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::peer::PeerKind;
use crate::scenarios::channels::ChannelsResult;
use crate::scenarios::fanout::FanoutResult;
use crate::scenarios::idle::IdleResult;
use crate::scenarios::runtime::RuntimeResult;
use crate::scenarios::storm::StormResult;
use crate::sys::Machine;

/// Writes `<dir>/<name>.json` and `<dir>/<name>.md`.
pub fn write<T: Serialize>(dir: &Path, name: &str, result: &T, markdown: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_string_pretty(result)? + "\n",
    )?;
    std::fs::write(dir.join(format!("{name}.md")), markdown)?;
    Ok(())
}

fn machine_line(m: &Machine) -> String {
    format!(
        "_{} · {} CPUs ({}) · {} GiB · kernel {} · load {:.2} {:.2} {:.2} at start · nofile {}_\n\n",
        m.started_utc,
        m.cpus,
        m.cpu,
        m.mem_gib,
        m.kernel,
        m.load_at_start[0],
        m.load_at_start[1],
        m.load_at_start[2],
        m.nofile
    )
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.1}"))
}

fn skipped(out: &mut String, s: &[(PeerKind, String)]) {
    for (k, why) in s {
        let _ = writeln!(out, "\n- **{}** did not run: {why}", k.name());
    }
}

/// Scenario 1 as Markdown.
pub fn fanout_md(r: &FanoutResult) -> String {
    let mut o = String::from("### Fan-out (one channel)\n\n");
    o += &machine_line(&r.machine);
    let _ = writeln!(
        o,
        "Best clean step (ratio ≥ 0.999, no duplicates, nobody disconnected) with p99 ≤ {} ms, deliveries/s:\n",
        r.slo_p99_ms
    );
    o += "| subscribers | baseline | ours | sockudo | ours / baseline | ours / sockudo |\n|---:|---:|---:|---:|---:|---:|\n";
    let mut subs: Vec<usize> = r.best.iter().map(|b| b.subscribers).collect();
    subs.dedup();
    for s in subs {
        let get = |k: PeerKind| {
            r.best
                .iter()
                .find(|b| b.subscribers == s && b.peer == k)
                .map_or(0.0, |b| b.best_dps_within_slo)
        };
        let (b, u, k) = (
            get(PeerKind::Baseline),
            get(PeerKind::Ours),
            get(PeerKind::Sockudo),
        );
        let _ = writeln!(
            o,
            "| {s} | {b:.0} | {u:.0} | {k:.0} | {} | {} |",
            ratio(u, b),
            ratio(u, k)
        );
    }
    o += "\nHighest clean throughput at any latency (saturation), deliveries/s:\n\n| subscribers | baseline | ours | sockudo | ours / baseline | ours / sockudo |\n|---:|---:|---:|---:|---:|---:|\n";
    let mut subs: Vec<usize> = r.best.iter().map(|b| b.subscribers).collect();
    subs.dedup();
    for s in &subs {
        let get = |k: PeerKind| {
            r.best
                .iter()
                .find(|b| b.subscribers == *s && b.peer == k)
                .map_or(0.0, |b| b.best_dps_clean)
        };
        let (b, u, k) = (
            get(PeerKind::Baseline),
            get(PeerKind::Ours),
            get(PeerKind::Sockudo),
        );
        let _ = writeln!(
            o,
            "| {s} | {b:.0} | {u:.0} | {k:.0} | {} | {} |",
            ratio(u, b),
            ratio(u, k)
        );
    }
    if r.best.iter().any(|b| b.peer == PeerKind::OursPusher) {
        o += "\nOver the same protocol (Pusher protocol 7 + the Pusher HTTP API, the same client code), deliveries/s (within the p99 limit / at saturation):\n\n| subscribers | ours (Pusher mode) | sockudo | ratio within p99 | ratio at saturation |\n|---:|---:|---:|---:|---:|\n";
        for s in &subs {
            let get = |k: PeerKind| {
                r.best
                    .iter()
                    .find(|b| b.subscribers == *s && b.peer == k)
                    .map_or((0.0, 0.0), |b| (b.best_dps_within_slo, b.best_dps_clean))
            };
            let (u, k) = (get(PeerKind::OursPusher), get(PeerKind::Sockudo));
            let _ = writeln!(
                o,
                "| {s} | {:.0} / {:.0} | {:.0} / {:.0} | {} | {} |",
                u.0,
                u.1,
                k.0,
                k.1,
                ratio(u.0, k.0),
                ratio(u.1, k.1)
            );
        }
    }
    o += "\np99 latency at 50,000 offered deliveries/s, ms:\n\n| subscribers | baseline | ours | sockudo |\n|---:|---:|---:|---:|\n";
    for s in &subs {
        let get = |k: PeerKind| {
            r.rows
                .iter()
                .find(|x| x.subscribers == *s && x.peer == k && x.offered_dps == 50_000)
                .map_or("–".to_owned(), |x| format!("{:.1}", x.latency.p99_ms))
        };
        let _ = writeln!(
            o,
            "| {s} | {} | {} | {} |",
            get(PeerKind::Baseline),
            get(PeerKind::Ours),
            get(PeerKind::Sockudo)
        );
    }
    o += "\nEvery step:\n\n| peer | subscribers | offered/s | msgs/s | achieved/s | delivery | p50 ms | p90 ms | p99 ms | max ms | dup | disc | server CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for x in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {:.1} | {:.0} | {:.4} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
            x.peer.name(),
            x.subscribers,
            x.offered_dps,
            x.msg_rate,
            x.achieved_dps,
            x.delivery_ratio,
            x.latency.p50_ms,
            x.latency.p90_ms,
            x.latency.p99_ms,
            x.latency.max_ms,
            x.duplicates,
            x.disconnected,
            opt(x.server_cpu_pct)
        );
    }
    skipped(&mut o, &r.skipped);
    o
}

/// Scenario 2 as Markdown.
pub fn idle_md(r: &IdleResult) -> String {
    let mut o = String::from("### Idle memory\n\n");
    o += &machine_line(&r.machine);
    o += "| peer | connections | RSS before | RSS after | per connection | idle CPU µs/conn/s | connect s | vs baseline |\n|---|---:|---:|---:|---:|---:|---:|---:|\n";
    let base = r
        .rows
        .iter()
        .find(|x| x.peer == PeerKind::Baseline)
        .map_or(0.0, |x| x.bytes_per_connection);
    for x in &r.rows {
        let _ = writeln!(
            o,
            "| {} | {} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {} | {:.1} | {} |{}",
            x.peer.name(),
            x.connections,
            x.rss_before as f64 / 1048576.0,
            x.rss_after as f64 / 1048576.0,
            x.bytes_per_connection / 1024.0,
            x.idle_cpu_us_per_conn_s
                .map_or("–".into(), |v| format!("{v:.2}")),
            x.connect_secs,
            ratio(x.bytes_per_connection, base),
            if x.own_process {
                ""
            } else {
                " (in-process: includes the clients)"
            }
        );
    }
    skipped(&mut o, &r.skipped);
    o
}

/// Scenario 3 as Markdown.
pub fn channels_md(r: &ChannelsResult) -> String {
    let mut o = format!(
        "### Many channels ({} channels × 1 subscriber, HTTP publish)\n\n",
        r.channels
    );
    o += &machine_line(&r.machine);
    o += "| peer | offered publishes/s | HTTP publishes/s | deliveries/s | delivery | p50 ms | p99 ms | max ms | publish errors | server CPU % |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for x in &r.rows {
        let offered = if x.offered_rate > 0.0 {
            format!("{:.0}", x.offered_rate)
        } else {
            "max".into()
        };
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} | {:.0} | {:.4} | {:.2} | {:.2} | {:.2} | {} | {} |",
            x.peer.name(),
            offered,
            x.publish_rate,
            x.achieved_dps,
            x.delivery_ratio,
            x.latency.p50_ms,
            x.latency.p99_ms,
            x.latency.max_ms,
            x.publish_errors,
            opt(x.server_cpu_pct)
        );
    }
    skipped(&mut o, &r.skipped);
    o
}

/// Scenario 4 as Markdown.
pub fn runtime_md(r: &RuntimeResult) -> String {
    let mut o = String::from("### Client runtime overhead (one connection, our server)\n\n");
    o += &machine_line(&r.machine);
    let _ = writeln!(
        o,
        "Median of {} interleaved rounds. Throughput: a scripted native-protocol peer on its own thread writes {} pre-encoded message frames in one go, so the receiving path is the bottleneck; client CPU is every harness thread but the peer's and the publisher's, per message, and the one-core capacity its inverse. Latency: {} msgs/s paced for {} s through our real server (HTTP publish → receive).\n",
        r.rounds, r.burst, r.rate, r.latency_secs
    );
    o += "| path | msgs/s (client-bound) | client CPU µs/msg | one-core capacity msgs/s | capacity vs raw | p50 ms | p99 ms | max ms | added p99 µs | lost | dup |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let raw = r.rows.iter().find(|x| x.path == "raw socket");
    for x in &r.rows {
        let (vs, added) = match raw {
            Some(raw) => (
                format!(
                    "{:.3}",
                    x.capacity_msgs_per_sec / raw.capacity_msgs_per_sec.max(1e-9)
                ),
                format!("{:.0}", (x.p99_ms - raw.p99_ms) * 1000.0),
            ),
            None => ("–".into(), "–".into()),
        };
        let _ = writeln!(
            o,
            "| {} | {:.0} | {:.2} | {:.0} | {} | {:.3} | {:.3} | {:.3} | {} | {} | {} |",
            x.path,
            x.msgs_per_sec,
            x.cpu_us_per_msg,
            x.capacity_msgs_per_sec,
            vs,
            x.p50_ms,
            x.p99_ms,
            x.max_ms,
            added,
            x.lost,
            x.duplicates
        );
    }
    o
}

/// Scenario 5 as Markdown.
pub fn storm_md(r: &StormResult) -> String {
    let mut o =
        String::from("### Reconnect storm (our server restarted under `RealtimeClient`s)\n\n");
    o += &machine_line(&r.machine);
    o += "| clients | msgs/s published | published | restart took | all resubscribed and recovered after | p50 client recovered | lost | duplicates | clients complete |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    let _ = writeln!(
        o,
        "| {} | {} | {} | {:.0} ms | {} | {} | {} | {} | {} / {} |",
        r.clients,
        r.rate,
        r.published,
        r.restart_ms,
        r.all_recovered_ms
            .map_or("not within the bound".into(), |v| format!("{v:.0} ms")),
        r.p50_recovered_ms
            .map_or("–".into(), |v| format!("{v:.0} ms")),
        r.lost,
        r.duplicates,
        r.complete_clients,
        r.clients
    );
    o
}
