//! SCALE (issue 19): N real rhizo-net nodes in one process on libp2p's memory transport, under
//! churn and Sybil nodes. `rhizo-bench --only scale [--scale-nodes 100,300] [--json]`.
//!
//! **Real code:** rhizo-net's whole stack per node (Noise, Yamux, the connection guard with a
//! node's default limits, identify, ping, Kademlia on `/rhizo/kad/1.0.0` with rhizo's
//! timeouts and store bounds, gossipsub with rhizo's configuration and scoring, the event
//! loop, the `Client`), rhizo-node's `CoreRecordValidator` on every honest node, real signed
//! identity records (rhizo-core), checked again by the reader with `validate_record`, and
//! rhizo-node's `Mailbox` (replica and client) on an in-memory SQLite database per honest node:
//! messages to offline recipients are stored on the replicas of the recipient's mailbox key,
//! re-replicated once per churn step, and fetched by the recipient (see [`mailbox`]).
//!
//! **Not real / not covered:** the transport (memory instead of TCP; no per-link latency, so
//! lookup times are CPU-bound, not network-bound); a node that leaves closes its connections
//! at once (a real node that vanishes leaves peers waiting for timeouts); the owners do not
//! republish (the node's publisher does every few hours); Sybil nodes acknowledge every DHT and
//! mailbox store and keep nothing, but they do not yet answer lookups with each other or aim
//! at a key; gossipsub hands the application each message once, so duplicates per node are not
//! measured here.
//!
//! [`breakdown`] says where the lookups' time went (requests, rounds, RTTs per round, the
//! caller's overhead, the CPU cost of a record check).
//!
//! ```text
//!  run_scale ─▶ per scenario: Lab::grow(N) ─▶ bootstrap ─▶ publish R records
//!            ─▶ M messages to offline recipients (mailbox stores)
//!            ─▶ churn steps (stop k, start k fresh, bootstrap them, re-replicate mailboxes)
//!            ─▶ recipients fetch ─▶ R lookups
//!            ─▶ gossip: subscribe all, mesh formed, M publishes ─▶ coverage
//! ```

pub mod breakdown;
pub mod lab;
pub mod mailbox;

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::{Row, Target};
use crate::{Summary, ms, percentile};
use lab::{Lab, Latency};

/// Network sizes of a full run.
pub const SIZES: [usize; 2] = [100, 300];
/// Network size of the quick case (the test suite).
pub const QUICK_NODES: usize = 30;
/// Churn and Sybil fraction of a full run's churn and Sybil scenarios (the issue's 20 %).
pub const FRACTION: f64 = 0.2;
/// Churn and Sybil fraction of the quick case.
pub const QUICK_FRACTION: f64 = 0.1;
/// The default seed.
pub const SEED: u64 = 19;
/// The default link RTTs (`--scale-rtt-ms 20,100`): each link's RTT lies between them.
pub const RTT_MS: (u64, u64) = (20, 100);
/// Jitter bound per direction of every link.
pub const JITTER: Duration = Duration::from_millis(2);

/// The lab's link latency for RTTs between `min_ms` and `max_ms` (`None` when both are 0: the
/// bare memory transport).
pub fn latency(min_ms: u64, max_ms: u64) -> Option<Latency> {
    (max_ms > 0).then(|| Latency {
        rtt_min: Duration::from_millis(min_ms.min(max_ms)),
        rtt_max: Duration::from_millis(max_ms),
        jitter: JITTER,
    })
}
/// Records published (and looked up) per scenario.
const RECORDS: usize = 100;
/// Records of the quick case.
const QUICK_RECORDS: usize = 20;
/// Churn steps ("minutes") per scenario: the churn fraction is spread over them.
const CHURN_STEPS: usize = 3;
/// Offline recipients per scenario, and the messages sent to them.
const MAIL: (usize, usize) = (100, 1000);
/// Recipients and messages of the quick case.
const QUICK_MAIL: (usize, usize) = (6, 24);
/// Gossip messages per scenario.
const GOSSIP_MESSAGES: usize = 5;
/// Gossip messages of the quick case.
const QUICK_GOSSIP_MESSAGES: usize = 3;
/// How long the lab waits for the gossip mesh to form after subscribing.
const MESH_TIMEOUT: Duration = Duration::from_secs(15);

/// What one scenario runs.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioSpec {
    /// `steady`, `churn`, `sybil` or `churn+sybil`.
    pub name: String,
    /// Nodes.
    pub nodes: usize,
    /// Fraction of nodes replaced over the churn steps.
    pub churn: f64,
    /// Fraction of Sybil nodes (drop every store).
    pub sybil: f64,
    /// The Sybils' ids are ground close to the first recipient's mailbox key (an eclipse).
    #[serde(default)]
    pub eclipse: bool,
    /// The Sybils answer lookups with each other only (their routing tables hold Sybils only).
    #[serde(default)]
    pub collude: bool,
}

/// How a run goes, beyond its scenarios.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// The quick case's sizes (records, messages, gossip).
    pub quick: bool,
    /// The seed.
    pub seed: u64,
    /// The links' latency (`None`: the bare memory transport).
    pub latency: Option<Latency>,
    /// Only the mailbox part: no records, lookups or gossip.
    pub mail_only: bool,
    /// Offline recipients and messages (`None`: the defaults).
    pub mail: Option<(usize, usize)>,
    /// Kademlia lookups over disjoint paths on every node (rhizo-net's default).
    pub disjoint: bool,
}

/// One scenario's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// What ran.
    pub spec: ScenarioSpec,
    /// The seed.
    pub seed: u64,
    /// Records published (accepted by at least one peer).
    pub records: usize,
    /// Lookups made.
    pub lookups: usize,
    /// Fraction of lookups that returned the valid record.
    pub lookup_success: f64,
    /// Lookup time to the end of the query, ms.
    pub lookup_ms: Summary,
    /// The 80th percentile of the lookup time, ms (IPFS Amino's figure).
    pub lookup_p80_ms: f64,
    /// The links' latency (`None`: no added latency).
    pub latency: Option<Latency>,
    /// The mean link RTT, ms (0 without added latency).
    pub rtt_ms: f64,
    /// Lookup p50, p80 and p99 in mean link RTTs (0 without added latency).
    pub lookup_rtts: [f64; 3],
    /// Mailbox store and fetch p50 in mean link RTTs (0 without added latency).
    pub mailbox_rtts: [f64; 2],
    /// Where the lookups' time went.
    pub breakdown: breakdown::Breakdown,
    /// Mean fraction of the other live nodes each gossip message reached.
    pub gossip_coverage: f64,
    /// Gossip messages sent.
    pub gossip_messages: usize,
    /// Fraction of the messages to offline recipients that their recipient fetched.
    pub mailbox_delivered: f64,
    /// The mailbox figures in full.
    pub mailbox: mailbox::MailFigures,
    /// Nodes whose first Kademlia bootstrap finished in time.
    pub bootstrapped: usize,
    /// Connected peers per node (a sample).
    pub connections_per_node: f64,
    /// Process RSS growth while the N nodes started and bootstrapped, KiB per node.
    pub rss_kib_per_node: f64,
    /// Process RSS at the end of the scenario, MiB.
    pub rss_mib: f64,
    /// Wall time of the scenario, s.
    pub wall_s: f64,
}

/// The whole SCALE run.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleResult {
    /// Every scenario, in run order.
    pub scenarios: Vec<Scenario>,
    /// Peak process RSS, MiB.
    pub peak_rss_mib: f64,
}

/// The scenarios of a run: for each size, steady, churn, Sybil, both, an eclipse, Sybils that
/// answer lookups with each other only (`collude`), and both of those; only
/// those named in `names` when it is not empty (the quick case, by default: steady and both).
pub fn scenarios(
    quick: bool,
    sizes: &[usize],
    fraction: f64,
    names: &[String],
) -> Vec<ScenarioSpec> {
    let spec = |name: &str, nodes, churn, sybil| ScenarioSpec {
        name: name.into(),
        nodes,
        churn,
        sybil,
        eclipse: name.contains("eclipse"),
        collude: name.contains("collude"),
    };
    let mut out = Vec::new();
    for &n in sizes {
        out.push(spec("steady", n, 0.0, 0.0));
        out.push(spec("churn", n, fraction, 0.0));
        out.push(spec("sybil", n, 0.0, fraction));
        out.push(spec("churn+sybil", n, fraction, fraction));
        out.push(spec("eclipse", n, 0.0, fraction));
        out.push(spec("collude", n, 0.0, fraction));
        out.push(spec("eclipse+collude", n, 0.0, fraction));
    }
    let quick_default = ["steady".to_string(), "churn+sybil".to_string()];
    let names = if quick && names.is_empty() {
        &quick_default[..]
    } else {
        names
    };
    out.retain(|s| names.is_empty() || names.contains(&s.name));
    out
}

/// Runs `specs` one after the other, each on a fresh lab.
pub async fn run_scale(specs: &[ScenarioSpec], run: &RunOptions) -> anyhow::Result<ScaleResult> {
    let mut scenarios = Vec::with_capacity(specs.len());
    for spec in specs {
        crate::progress(&format!(
            "SCALE: {} N = {}, churn {}, Sybil {}",
            spec.name, spec.nodes, spec.churn, spec.sybil
        ));
        let scenario = run_scenario(spec, run).await?;
        crate::progress(&format!(
            "SCALE: lookup_success {:.4}, p50 {:.0} ms ({:.1} RTT), p99 {:.0} ms, mailbox {:.4}, gossip {:.4}, {:.0} KiB/node, {:.0} s",
            scenario.lookup_success,
            scenario.lookup_ms.p50,
            scenario.lookup_rtts[0],
            scenario.lookup_ms.p99,
            scenario.mailbox_delivered,
            scenario.gossip_coverage,
            scenario.rss_kib_per_node,
            scenario.wall_s
        ));
        if spec.eclipse {
            crate::progress(&format!(
                "SCALE: the eclipsed recipient got {:.4} of its messages",
                scenario.mailbox.first_recipient_delivered
            ));
        }
        scenarios.push(scenario);
    }
    Ok(ScaleResult {
        scenarios,
        peak_rss_mib: proc_status_kib("VmHWM:") / 1024.0,
    })
}

/// What the lookups of a scenario measured.
#[derive(Debug, Default)]
struct LookupFigures {
    lookups: usize,
    found: usize,
    /// Lookup times, ms, sorted.
    sorted: Vec<f64>,
    times: Vec<f64>,
    counters: (breakdown::GetCounters, breakdown::GetCounters),
}

/// Looks every record up once (see [`Lab::lookups`]), with the GET counters around it.
async fn run_lookups(lab: &mut Lab, records: &[lab::Published]) -> LookupFigures {
    let before = lab.get_counters().await;
    let lookups = lab.lookups(records).await;
    let after = lab.get_counters().await;
    let times: Vec<f64> = lookups.iter().map(|l| ms(l.elapsed)).collect();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    LookupFigures {
        lookups: lookups.len(),
        found: lookups.iter().filter(|l| l.found).count(),
        sorted,
        times,
        counters: (before, after),
    }
}

/// Every live node joins the topic; `messages` publishes; the mean coverage.
async fn run_gossip(lab: &mut Lab, messages: usize) -> anyhow::Result<f64> {
    lab.subscribe_all().await;
    wait_for_mesh(lab).await;
    let mut coverage = Vec::with_capacity(messages);
    for _ in 0..messages {
        coverage.push(lab.gossip_once().await?);
    }
    Ok(coverage.iter().sum::<f64>() / coverage.len().max(1) as f64)
}

/// Replaces `churn` of the nodes over [`CHURN_STEPS`], a re-replication pass after each.
async fn run_churn(lab: &mut Lab, spec: &ScenarioSpec) -> anyhow::Result<()> {
    let per_step = (spec.nodes as f64 * spec.churn / CHURN_STEPS as f64).round() as usize;
    if per_step == 0 {
        return Ok(());
    }
    for _ in 0..CHURN_STEPS {
        for index in lab.draw_live(per_step) {
            lab.stop(index).await;
        }
        let fresh = lab.grow(per_step, spec.sybil).await?;
        lab.bootstrap(&fresh).await;
        lab.replicate_mailboxes().await;
    }
    Ok(())
}

async fn run_scenario(spec: &ScenarioSpec, run: &RunOptions) -> anyhow::Result<Scenario> {
    let (quick, seed, latency) = (run.quick, run.seed, run.latency);
    let started = Instant::now();
    let phase = |name: &str| {
        crate::progress(&format!(
            "SCALE:   {name} done at {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    };
    let mut lab = Lab::new(seed ^ spec.nodes as u64, latency, run.disjoint);
    if spec.eclipse {
        lab.eclipse(mailbox::eclipse_target(seed).to_vec());
    }
    lab.collude(spec.collude);
    let rss_before = proc_status_kib("VmRSS:");
    let all = lab.grow(spec.nodes, spec.sybil).await?;
    let bootstrapped = lab.bootstrap(&all).await;
    let rss_kib_per_node = (proc_status_kib("VmRSS:") - rss_before) / spec.nodes.max(1) as f64;
    phase("start and bootstrap");
    let records = match (run.mail_only, quick) {
        (true, _) => Vec::new(),
        (false, true) => lab.publish(QUICK_RECORDS).await,
        (false, false) => lab.publish(RECORDS).await,
    };
    phase("publish");
    let (recipients, messages) = run.mail.unwrap_or(if quick { QUICK_MAIL } else { MAIL });
    let mail = mailbox::send_all(&mut lab, seed, recipients, messages).await;
    phase("mailbox stores");
    run_churn(&mut lab, spec).await?;
    phase("churn");
    let mail = mailbox::fetch_all(&mut lab, &mail).await;
    phase("mailbox fetches");
    let looked = run_lookups(&mut lab, &records).await;
    phase("lookups");
    let gossip_messages = match (run.mail_only, quick) {
        (true, _) => 0,
        (false, true) => QUICK_GOSSIP_MESSAGES,
        (false, false) => GOSSIP_MESSAGES,
    };
    let gossip_coverage = if gossip_messages > 0 {
        run_gossip(&mut lab, gossip_messages).await?
    } else {
        0.0
    };
    phase("gossip");
    let connections_per_node = lab.mean_connections().await;
    lab.stop_all().await;
    let rtt_ms = latency.map_or(0.0, |l| ms(l.mean_rtt()));
    let in_rtts = |t: f64| if rtt_ms > 0.0 { t / rtt_ms } else { 0.0 };
    let sorted = &looked.sorted;
    let lookup_p80_ms = percentile(sorted, 80.0);
    let lookup_ms = Summary::of(&looked.times);
    let (before, after) = looked.counters;
    let breakdown = breakdown::Breakdown::new(before, after, lookup_ms.mean, rtt_ms);
    crate::progress(&format!("SCALE:   lookup breakdown {breakdown:?}"));
    Ok(Scenario {
        spec: spec.clone(),
        seed,
        records: records.len(),
        lookups: looked.lookups,
        lookup_success: looked.found as f64 / looked.lookups.max(1) as f64,
        lookup_ms,
        breakdown,
        lookup_p80_ms,
        latency,
        rtt_ms,
        lookup_rtts: [
            in_rtts(percentile(sorted, 50.0)),
            in_rtts(lookup_p80_ms),
            in_rtts(percentile(sorted, 99.0)),
        ],
        mailbox_rtts: [in_rtts(mail.store_ms.0), in_rtts(mail.fetch_ms.0)],
        gossip_coverage,
        gossip_messages,
        mailbox_delivered: mail.delivered,
        mailbox: mail,
        bootstrapped,
        connections_per_node,
        rss_kib_per_node,
        rss_mib: proc_status_kib("VmRSS:") / 1024.0,
        wall_s: started.elapsed().as_secs_f64(),
    })
}

/// Waits (bounded by [`MESH_TIMEOUT`]) until a sample of live nodes all have gossip mesh peers.
async fn wait_for_mesh(lab: &mut Lab) {
    let deadline = Instant::now() + MESH_TIMEOUT;
    let sample = lab.draw_live(16);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    while Instant::now() < deadline {
        tick.tick().await;
        if lab.all_meshed(&sample).await {
            return;
        }
    }
}

/// A `/proc/self/status` field in KiB (0 when unreadable).
fn proc_status_kib(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
}

impl ScaleResult {
    /// The report rows: per scenario, lookup success and times, gossip coverage, memory.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for s in &self.scenarios {
            let label = format!(
                "{} N={} churn {:.0}% Sybil {:.0}%",
                s.spec.name,
                s.spec.nodes,
                s.spec.churn * 100.0,
                s.spec.sybil * 100.0
            );
            if s.lookups > 0 {
                let success_target = if s.spec.churn > 0.0 { 0.999 } else { 1.0 };
                rows.push(
                    Row::new(
                        "SCALE",
                        format!("{label}: lookup_success"),
                        s.lookup_success,
                        "fraction",
                    )
                    .target(Target::value_at_least(success_target))
                    .note(format!("{} lookups of real signed records", s.lookups)),
                );
                rows.push(Row::new(
                    "SCALE",
                    format!("{label}: lookup p50"),
                    s.lookup_ms.p50,
                    "ms",
                ));
                rows.push(
                    Row::new(
                        "SCALE",
                        format!("{label}: lookup p80"),
                        s.lookup_p80_ms,
                        "ms",
                    )
                    .note(if s.rtt_ms > 0.0 {
                        format!(
                            "{:.1} mean link RTTs of {:.0} ms",
                            s.lookup_rtts[1], s.rtt_ms
                        )
                    } else {
                        "memory transport, no link latency: CPU-bound".into()
                    }),
                );
                rows.push(Row::new(
                    "SCALE",
                    format!("{label}: lookup p99"),
                    s.lookup_ms.p99,
                    "ms",
                ));
            }
            if s.gossip_messages > 0 {
                rows.push(
                    Row::new(
                        "SCALE",
                        format!("{label}: gossip_coverage"),
                        s.gossip_coverage,
                        "fraction",
                    )
                    .target(Target::value_at_least(1.0)),
                );
            }
            rows.push(
                Row::new(
                    "SCALE",
                    format!("{label}: mailbox_delivered"),
                    s.mailbox_delivered,
                    "fraction",
                )
                .target(Target::value_at_least(0.999))
                .note(format!(
                    "{} messages to offline recipients; real replica and client code",
                    s.mailbox.messages
                )),
            );
            if s.spec.eclipse {
                rows.push(
                    Row::new(
                        "SCALE",
                        format!("{label}: eclipsed recipient's mailbox_delivered"),
                        s.mailbox.first_recipient_delivered,
                        "fraction",
                    )
                    .target(Target::value_at_least(0.99))
                    .note("every Sybil's id ground next to this recipient's mailbox key"),
                );
            }
            rows.push(Row::new(
                "SCALE",
                format!("{label}: RSS per node"),
                s.rss_kib_per_node,
                "KiB",
            ));
        }
        rows
    }
}
