//! `rhizo-bench`: runs rhizo's benchmarks, each with its reference measured in the same run,
//! and prints the ratios next to the issue's targets (a table, or JSON with `--json`).
//!
//! ```text
//! rhizo-bench                  # everything, full sizes (minutes)
//! rhizo-bench --quick          # tiny sizes (seconds; what the test suite runs)
//! rhizo-bench --only B1,B3     # a selection
//! rhizo-bench --only scale --scale-nodes 100,300   # issue 19's lab
//! rhizo-bench --json           # machine-readable report on stdout
//! ```

use clap::Parser;
use rhizo_bench::{Options, memory, report::Meta};

/// rhizo's benchmarks: every figure with its reference from the same run, as a ratio.
#[derive(Debug, Parser)]
#[command(name = "rhizo-bench", version)]
struct Cli {
    /// Tiny sizes (seconds instead of minutes; for tests).
    #[arg(long)]
    quick: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (the table still goes to stdout).
    #[arg(long, value_name = "PATH")]
    json_out: Option<std::path::PathBuf>,
    /// Run only these benchmarks, e.g. `B1,B3`.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// B5 network sizes (default 100,500; 20 with --quick).
    #[arg(long, value_delimiter = ',')]
    b5_nodes: Vec<usize>,
    /// B6 network sizes (default 1000; 50 with --quick).
    #[arg(long, value_delimiter = ',')]
    b6_nodes: Vec<usize>,
    /// B9 group sizes (default 10,100,1000; 4,10 with --quick).
    #[arg(long, value_delimiter = ',')]
    b9_members: Vec<usize>,
    /// Timed sequential messages of B2 (default 200; 20 with --quick).
    #[arg(long)]
    b2_messages: Option<usize>,
    /// Light clients of B17 (default 1000; 50 with --quick).
    #[arg(long)]
    b17_clients: Option<usize>,
    /// SCALE network sizes (default 100,300; 50 with --quick).
    #[arg(long, value_delimiter = ',')]
    scale_nodes: Vec<usize>,
    /// SCALE's churn and Sybil fraction (default 0.2; 0.1 with --quick).
    #[arg(long)]
    scale_fraction: Option<f64>,
    /// SCALE's seed (nodes' keys, bootstrap peers, churn, Sybils, lookups).
    #[arg(long)]
    scale_seed: Option<u64>,
    /// SCALE's link RTTs in ms, shortest,longest (default 20,100; 0 for no added latency).
    #[arg(long, value_delimiter = ',')]
    scale_rtt_ms: Vec<u64>,
    /// SCALE's scenarios to run (steady, churn, sybil, churn+sybil, eclipse, collude; default
    /// all).
    #[arg(long, value_delimiter = ',')]
    scale_scenarios: Vec<String>,
    /// SCALE: run only the mailbox part of each scenario (no records, lookups or gossip).
    #[arg(long)]
    scale_mail_only: bool,
    /// SCALE's offline recipients and messages, recipients,messages (default 100,1000; 6,24
    /// with --quick).
    #[arg(long, value_delimiter = ',')]
    scale_mail: Vec<usize>,
    /// SCALE: Kademlia lookups without disjoint paths (the baseline of rhizo-net's default).
    #[arg(long)]
    scale_no_disjoint: bool,
    /// Fraction of B6's nodes gone in its churn setting.
    #[arg(long, default_value_t = 0.2)]
    b6_churn: f64,
    /// B2/B3 (and every benchmark on real nodes) with encrypted stores (issue 20): each node's
    /// data dir gets a vault with the passphrase in the file named by RHIZO_PASSPHRASE_FILE
    /// (required), so its database is SQLCipher and its key files are sealed.
    #[arg(long)]
    encrypted_store: bool,
    /// Internal: run a B7 server (`rhizo` or `libp2p`) speaking the stdin/stdout protocol.
    #[arg(long = "b7-server", hide = true)]
    b7_server: Option<String>,
    /// Internal: run a B17 server (`gateway` or `bare`) speaking the same protocol.
    #[arg(long = "b17-server", hide = true)]
    b17_server: Option<String>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(kind) = &cli.b7_server {
        let outcome = memory::ServerKind::parse(kind).and_then(memory::serve);
        return match outcome {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rhizo-bench B7 server: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Some(kind) = &cli.b17_server {
        let outcome = rhizo_bench::messaging::capacity::ServerKind::parse(kind)
            .and_then(rhizo_bench::messaging::capacity::serve);
        return match outcome {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("rhizo-bench B17 server: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let mut options = Options::new(cli.quick);
    for id in &cli.only {
        let id = id.trim().to_ascii_uppercase();
        if !rhizo_bench::BENCHMARKS.contains(&id.as_str()) {
            eprintln!(
                "rhizo-bench: unknown benchmark {id:?}; choose from {}",
                rhizo_bench::BENCHMARKS.join(",")
            );
            return std::process::ExitCode::from(2);
        }
        options.only.push(id);
    }
    if !cli.b5_nodes.is_empty() {
        options.b5_nodes = cli.b5_nodes.clone();
    }
    if !cli.b6_nodes.is_empty() {
        options.b6_nodes = cli.b6_nodes.clone();
    }
    if !cli.b9_members.is_empty() {
        options.b9_members = cli.b9_members.clone();
    }
    options.b6_churn = cli.b6_churn;
    if !cli.scale_nodes.is_empty() {
        options.scale_nodes = cli.scale_nodes.clone();
    }
    if let Some(f) = cli.scale_fraction {
        options.scale_fraction = f.clamp(0.0, 0.9);
    }
    if let Some(seed) = cli.scale_seed {
        options.scale_seed = seed;
    }
    options.scale_scenarios = cli.scale_scenarios.clone();
    options.scale_mail_only = cli.scale_mail_only;
    options.scale_disjoint = !cli.scale_no_disjoint;
    if let [recipients, messages] = cli.scale_mail[..] {
        options.scale_mail = Some((recipients.max(1), messages));
    } else if !cli.scale_mail.is_empty() {
        eprintln!("rhizo-bench: --scale-mail takes recipients,messages");
        return std::process::ExitCode::from(2);
    }
    match cli.scale_rtt_ms[..] {
        [] => {}
        [rtt] => options.scale_rtt_ms = (rtt, rtt),
        [min, max, ..] => options.scale_rtt_ms = (min, max),
    }
    if let Some(n) = cli.b2_messages {
        options.b2_messages = n;
    }
    if let Some(n) = cli.b17_clients {
        options.b17_clients = n;
    }
    if cli.encrypted_store {
        if std::env::var_os(rhizo_node::vault::PASSPHRASE_FILE_ENV).is_none() {
            eprintln!(
                "rhizo-bench: --encrypted-store needs {}=FILE (a file holding the passphrase)",
                rhizo_node::vault::PASSPHRASE_FILE_ENV
            );
            return std::process::ExitCode::from(2);
        }
        rhizo_bench::messaging::ENCRYPTED_STORE.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    rhizo_bench::messaging::install_tracing();
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let report = rhizo_bench::run(&options, Meta::collect(command, cli.quick));
    if let Some(path) = &cli.json_out {
        let written = serde_json::to_string_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("rhizo-bench: cannot write {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
    }
    if cli.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("rhizo-bench: cannot render JSON: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.errors.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}
