//! rhizo's benchmark harness. Every benchmark measures rhizo and, in the same run and process,
//! the reference it is judged against, so the figure that matters is the **ratio** (machine
//! speed and background load cancel out to first order).
//!
//! | id | what                                        | reference (same run)                        |
//! |----|---------------------------------------------|---------------------------------------------|
//! | B1 | one stream over rhizo's TCP+Noise+Yamux     | raw loopback TCP; libp2p defaults           |
//! | B2 | 1:1 message latency, send → delivered       | raw TCP ping-pong; libp2p request-response  |
//! | B3 | 1:1 pipelined throughput (64 B, 1 KiB)      | Ed25519 sign+verify pairs/s (one core)      |
//! | B4 | new contact: ticket → first delivered       | in-process MLS setup (no network, no disk)  |
//! | B5 | gossip propagation (simulation, [`sim`])    | —                                           |
//! | B6 | DHT lookups under churn (simulation)        | —                                           |
//! | B7 | memory per idle connection (child process)  | a bare libp2p server with the same clients  |
//! | B8 | durable mailbox ingest (group commit)       | raw SQLite, same groups of 64 per txn       |
//! | B9 | MLS group commit: size, create, process     | ⌈log₂ N⌉ × one path node / one HPKE op      |
//! | B10 | group fan-out: direct, gossipsub, relay    | one 1:1 send on the same nodes             |
//! | B11 | link a device: `device add` → it holds every conversation (50 contacts, 10 groups) | the same MLS add commits in process |
//! | B12 | history transfer to a new device, 10,000 texts | B1's rhizo-net link (same run) |
//! | B13 | file transfer, alice → bob fetch; peak RSS  | B1's rhizo-net link and raw TCP (same run) |
//! | B14 | agent task round trip, delegate → completed | B2's message p50 on the same pair         |
//! | B15 | agent tasks/s, 8 in flight                  | B3's 64 B msg/s on the same pair           |
//! | PUSH | send → shown through mailbox replicas, recipient online but unreachable | the default poll interval (target p50 ≤ 2 s) |
//! | ENCSTORE | B2 p50 and B3 64 B on an encrypted store (SQLCipher), interleaved rounds | the same on a plaintext store, same rounds (target: within 10 %) |
//! | B16 | light client send → delivered, direct (/v1/ws) and through a gateway node | B2's message p50 on the same pair |
//! | B17 | gateway RSS per idle, paired light client (child process) | a bare axum WebSocket server with the same clients (target: ≤ 16 KiB above it) |
//! | SCALE | 100–1,000 real rhizo-net nodes in one process: DHT lookups, gossip, churn, Sybil | issue 19's targets |
//!
//! ```text
//!  main ── Options ──▶ run() ──▶ transport::run_b1 ─┐
//!                               messaging::run_pair (B2, B3), run_b4 ──┤ (each on a fresh tokio
//!                               memory::run_b7 ── child process ───────┤  runtime)
//!                               store::run_b8, sim::run_b5 / run_b6 ───┴──▶ report::Report
//! ```
//!
//! # Layout
//! - [`report`]: rows, targets, the table and the JSON.
//! - [`transport`] (B1, and the ping-pong references of B2).
//! - [`messaging`] (B2, B3, B4; B14, B15 in `messaging::agents`; B13 in `messaging::files`;
//!   PUSH in `messaging::push`; ENCSTORE in `messaging::encstore`; B16 in `messaging::light`;
//!   B17 in `messaging::capacity`, whose gateway and bare WebSocket server run in child
//!   processes, `--b17-server KIND`; B11, B12 in `messaging::devices`): real in-process rhizo
//!   nodes and their local API.
//! - [`memory`] (B7): a server in a child process (`rhizo-bench --b7-server KIND`).
//! - [`store`] (B8): durable mailbox ingest.
//! - [`fanout`] (B10): 50 rhizo-net nodes, direct fan-out against a gossipsub topic and member
//!   relays.
//! - [`groups`] (B9): MLS group commits at 10, 100 and 1,000 members, in-process.
//! - [`sim`] (B5, B6): discrete-event simulations.
//! - [`scale`] (SCALE, issue 19): N real rhizo-net nodes on the memory transport, under churn
//!   and Sybil nodes (`scale::lab`: the nodes; `scale::mailbox`: the mailbox replicas and
//!   offline recipients).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fanout;
pub mod groups;
pub mod memory;
pub mod messaging;
pub mod report;
pub mod scale;
pub mod sim;
pub mod store;
pub mod transport;

use std::time::Duration;

use serde::Serialize;

use crate::report::{Meta, Report};

/// Every benchmark, in the order they run.
pub const BENCHMARKS: [&str; 20] = [
    "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B13", "B14", "B15",
    "PUSH", "ENCSTORE", "B16", "B17", "SCALE",
];

/// What to run and how big.
#[derive(Debug, Clone)]
pub struct Options {
    /// Tiny sizes (for the test suite): seconds, not minutes.
    pub quick: bool,
    /// The benchmarks to run (upper case ids); all when empty.
    pub only: Vec<String>,
    /// Network sizes of B5 (default 100 and 500; 20 when quick).
    pub b5_nodes: Vec<usize>,
    /// Network sizes of B6 (default 1000; 50 when quick).
    pub b6_nodes: Vec<usize>,
    /// Fraction of nodes gone in B6's churn setting (default 0.2).
    pub b6_churn: f64,
    /// Timed sequential messages of B2 (default 200; 20 when quick).
    pub b2_messages: usize,
    /// Light clients of B17 (default 1,000; 50 when quick).
    pub b17_clients: usize,
    /// Group sizes of B9 (default 10, 100 and 1,000; 4 and 10 when quick).
    pub b9_members: Vec<usize>,
    /// Network sizes of SCALE (default 100 and 300; 50 when quick).
    pub scale_nodes: Vec<usize>,
    /// Churn and Sybil fraction of SCALE's scenarios (default 0.2; 0.1 when quick).
    pub scale_fraction: f64,
    /// SCALE's seed.
    pub scale_seed: u64,
    /// SCALE's link RTTs, shortest and longest, ms (default 20 and 100; 0: no added latency).
    pub scale_rtt_ms: (u64, u64),
    /// SCALE's scenarios by name (`steady`, `churn`, `sybil`, `churn+sybil`, `eclipse`,
    /// `collude`); empty: all.
    pub scale_scenarios: Vec<String>,
    /// SCALE: only the mailbox part of each scenario (no records, lookups or gossip).
    pub scale_mail_only: bool,
    /// SCALE's offline recipients and messages (default 100 and 1,000; 6 and 24 when quick).
    pub scale_mail: Option<(usize, usize)>,
    /// SCALE: Kademlia lookups over disjoint paths on every node (rhizo-net's default; off
    /// for a baseline).
    pub scale_disjoint: bool,
}

impl Options {
    /// Defaults for `quick`.
    pub fn new(quick: bool) -> Self {
        Self {
            quick,
            only: Vec::new(),
            b5_nodes: if quick { vec![20] } else { vec![100, 500] },
            b6_nodes: if quick { vec![50] } else { vec![1000] },
            b6_churn: 0.2,
            b2_messages: if quick { 20 } else { 200 },
            b17_clients: if quick {
                messaging::capacity::QUICK_CLIENTS
            } else {
                messaging::capacity::CLIENTS
            },
            b9_members: if quick {
                groups::QUICK_SIZES.to_vec()
            } else {
                groups::SIZES.to_vec()
            },
            scale_nodes: if quick {
                vec![scale::QUICK_NODES]
            } else {
                scale::SIZES.to_vec()
            },
            scale_fraction: if quick {
                scale::QUICK_FRACTION
            } else {
                scale::FRACTION
            },
            scale_seed: scale::SEED,
            scale_rtt_ms: scale::RTT_MS,
            scale_scenarios: Vec::new(),
            scale_mail_only: false,
            scale_mail: None,
            scale_disjoint: true,
        }
    }

    /// Whether `bench` is selected.
    pub fn selected(&self, bench: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|b| b.eq_ignore_ascii_case(bench))
    }

    /// The selected benchmarks, in run order.
    pub fn benches(&self) -> Vec<&'static str> {
        BENCHMARKS
            .iter()
            .copied()
            .filter(|b| self.selected(b))
            .collect()
    }
}

/// Runs the selected benchmarks one after the other (each network benchmark on its own tokio
/// runtime, dropped before the next starts) and collects the report. Progress goes to stderr.
pub fn run(options: &Options, meta: Meta) -> Report {
    let mut report = Report::new(meta);
    let quick = options.quick;
    // B13 takes B1's figures as its references when B1 ran in this process.
    let mut b1 = None;
    if options.selected("B1") {
        progress("B1: encrypted link throughput");
        let outcome = with_runtime(transport::run_b1(quick));
        if let Ok(r) = &outcome {
            b1 = Some(r.clone());
        }
        report.add("B1", outcome, |r| r.rows());
    }
    let (b2, b3) = (options.selected("B2"), options.selected("B3"));
    if b2 || b3 {
        progress("B2/B3: 1:1 messaging between two in-process rhizo nodes");
        let b2_n = b2.then_some(options.b2_messages.max(1));
        match with_runtime(messaging::run_pair(quick, b2_n, b3)) {
            Ok(pair) => {
                if let Some(b2) = pair.b2 {
                    report.add("B2", b2, |r| r.rows());
                }
                if let Some(b3) = pair.b3 {
                    report.add("B3", b3, |r| r.rows());
                }
            }
            Err(e) => {
                for (bench, on) in [("B2", b2), ("B3", b3)] {
                    if on {
                        report.add::<()>(bench, Err(anyhow::anyhow!("{e:#}")), |()| Vec::new());
                    }
                }
            }
        }
    }
    if options.selected("B4") {
        progress("B4: new-contact setup");
        report.add("B4", with_runtime(messaging::run_b4(quick)), |r| r.rows());
    }
    if options.selected("B5") {
        for &n in &options.b5_nodes {
            progress(&format!("B5: gossip simulation, N = {n}"));
            report.add("B5", sim::run_b5(n, quick), |r| r.rows());
        }
    }
    if options.selected("B6") {
        for &n in &options.b6_nodes {
            progress(&format!(
                "B6: DHT simulation, N = {n}, churn {}",
                options.b6_churn
            ));
            report.add("B6", sim::run_b6(n, options.b6_churn, quick), |r| r.rows());
        }
    }
    if options.selected("B7") {
        progress("B7: memory per idle connection");
        report.add("B7", with_runtime(memory::run_b7(quick)), |r| r.rows());
    }
    if options.selected("B8") {
        progress("B8: durable mailbox ingest");
        report.add("B8", store::run_b8(quick), |r| r.rows());
    }
    if options.selected("B9") {
        progress("B9: MLS group commits");
        let outcome = groups::run_b9(quick, &options.b9_members);
        let refused = outcome
            .as_ref()
            .map(|r| r.refused.clone())
            .unwrap_or_default();
        report.add("B9", outcome, |r| r.rows());
        for (members, error) in refused {
            let error = anyhow::anyhow!("{members} members: {error}");
            report.add::<()>("B9", Err(error), |()| Vec::new());
        }
    }
    if options.selected("B10") {
        progress("B10: group fan-out, direct against gossipsub and member relays");
        report.add("B10", with_runtime(fanout::run_fanout(quick)), |r| r.rows());
    }
    let (b11, b12) = (options.selected("B11"), options.selected("B12"));
    if b11 || b12 {
        progress("B11/B12: linking a second device (in-process nodes)");
        let outcome =
            with_runtime(messaging::devices::run_devices(quick)).map_err(|e| format!("{e:#}"));
        for (bench, on) in [("B11", b11), ("B12", b12)] {
            if on {
                let result = outcome.clone().map_err(|e| anyhow::anyhow!(e));
                report.add(bench, result, |r| r.rows(bench));
            }
        }
    }
    if options.selected("B13") {
        progress("B13: file transfer between two in-process rhizo nodes");
        let outcome = with_runtime(messaging::files::run_b13(quick, b1.take()));
        report.add("B13", outcome, |r| r.rows());
    }
    let (b14, b15) = (options.selected("B14"), options.selected("B15"));
    if b14 || b15 {
        progress("B14/B15: agent tasks between two in-process rhizo nodes");
        let outcome =
            with_runtime(messaging::agents::run_agents(quick)).map_err(|e| format!("{e:#}"));
        for (bench, on) in [("B14", b14), ("B15", b15)] {
            if on {
                let result = outcome.clone().map_err(|e| anyhow::anyhow!(e));
                report.add(bench, result, |r| r.rows(bench));
            }
        }
    }
    if options.selected("PUSH") {
        progress("PUSH: mailbox push to an online recipient the sender cannot reach");
        let outcome = with_runtime(messaging::push::run_push(quick));
        report.add("PUSH", outcome, |r| r.rows());
    }
    if options.selected("ENCSTORE") {
        run_encstore(options, &mut report);
    }
    if options.selected("B16") {
        progress(
            "B16: a light client's round trip, direct and through a gateway (in-process nodes)",
        );
        let outcome = with_runtime(messaging::light::run_light(quick));
        report.add("B16", outcome, |r| r.rows());
    }
    if options.selected("B17") {
        progress("B17: gateway memory per idle light client (child processes)");
        let outcome = with_runtime(messaging::capacity::run_b17(
            quick,
            options.b17_clients.max(1),
        ));
        report.add("B17", outcome, |r| r.rows());
    }
    if options.selected("SCALE") {
        progress("SCALE: real rhizo-net nodes on the memory transport");
        let specs = scale::scenarios(
            quick,
            &options.scale_nodes,
            options.scale_fraction,
            &options.scale_scenarios,
        );
        let (min, max) = options.scale_rtt_ms;
        let latency = scale::latency(min, max);
        let run = scale::RunOptions {
            quick,
            seed: options.scale_seed,
            latency,
            mail_only: options.scale_mail_only,
            mail: options.scale_mail,
            disjoint: options.scale_disjoint,
        };
        let outcome = with_runtime(scale::run_scale(&specs, &run));
        report.add("SCALE", outcome, |r| r.rows());
    }
    report
}

/// ENCSTORE needs the passphrase file its encrypted nodes unlock with: without one it is an
/// error when asked for by name (`--only`), and skipped when everything runs.
fn run_encstore(options: &Options, report: &mut Report) {
    let env = rhizo_node::vault::PASSPHRASE_FILE_ENV;
    if std::env::var_os(env).is_none() {
        if options.only.is_empty() {
            progress(&format!(
                "ENCSTORE skipped: it needs {env}=FILE (a passphrase)"
            ));
        } else {
            let error = anyhow::anyhow!("ENCSTORE needs {env}=FILE (a file holding a passphrase)");
            report.add::<()>("ENCSTORE", Err(error), |()| Vec::new());
        }
        return;
    }
    progress("ENCSTORE: B2/B3 on a plaintext and an encrypted store, interleaved rounds");
    let outcome = with_runtime(messaging::encstore::run_encstore(options.quick));
    report.add("ENCSTORE", outcome, |r| r.rows());
}

/// One line of progress on stderr.
pub fn progress(what: &str) {
    eprintln!("rhizo-bench: {what}");
}

/// Runs `future` to completion on a fresh multi-threaded runtime (one worker per CPU), then
/// drops the runtime, so nothing a benchmark left running competes with the next one.
pub fn with_runtime<T>(future: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(future);
    runtime.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Summary statistics of a sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Samples.
    pub n: usize,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Mean.
    pub mean: f64,
    /// Smallest.
    pub min: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// Summarises `samples` (any order); all zero when empty.
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return Self {
                n: 0,
                p50: 0.0,
                p99: 0.0,
                mean: 0.0,
                min: 0.0,
                max: 0.0,
            };
        }
        Self {
            n: sorted.len(),
            p50: percentile(&sorted, 50.0),
            p99: percentile(&sorted, 99.0),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        }
    }
}

/// Nearest-rank percentile of an ascending, non-empty slice.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The median of a few repeated measurements.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// Milliseconds of a duration, as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p99, 5.0);
        assert_eq!(s.min, 1.0);
        assert_eq!(median(&[1.0, 4.0]), 2.5);
    }

    #[test]
    fn selection_is_case_insensitive() {
        let mut o = Options::new(true);
        o.only = vec!["b1".into(), "B3".into()];
        assert_eq!(o.benches(), vec!["B1", "B3"]);
    }
}
