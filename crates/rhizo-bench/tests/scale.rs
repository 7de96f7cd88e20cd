//! Issue 19's quick scale case: `rhizo-bench --quick --only scale --json` runs 30 real
//! rhizo-net nodes in one process on the memory transport with 20–100 ms of link RTT (the lab's
//! `Transport::MemoryDelayed` links; steady, then 10 % churn with 10 %
//! Sybil nodes that drop every DHT and mailbox store) and must find the published records,
//! deliver the messages sent to offline recipients through the real mailbox replicas, and
//! cover the live gossip subscribers. Properties only, no timings.

use std::process::Command;

use rhizo_bench::report::Report;

/// The lookups of the steady network that must succeed (every one).
const STEADY_LOOKUP_SUCCESS: f64 = 1.0;
/// Under 10 % churn and 10 % Sybils: at most one lookup of the quick case's 20 may fail.
const CHURN_SYBIL_LOOKUP_SUCCESS: f64 = 0.95;
/// Messages to offline recipients that must be fetched (every one: 24 messages, five
/// replicas each, re-replicated after every churn step).
const MAILBOX_DELIVERED: f64 = 1.0;

#[test]
fn quick_scale_case_finds_records_and_covers_gossip() {
    let output = Command::new(env!("CARGO_BIN_EXE_rhizo-bench"))
        .args(["--quick", "--only", "scale", "--json"])
        .output()
        .expect("run rhizo-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the report is not valid JSON ({e}):\n{stdout}\n{stderr}"));
    assert!(report.errors.is_empty(), "{:?}\n{stderr}", report.errors);
    let scenarios = report.details["SCALE"]["scenarios"]
        .as_array()
        .unwrap_or_else(|| panic!("no SCALE scenarios:\n{stdout}"));
    assert_eq!(scenarios.len(), 2, "{stdout}");
    for s in scenarios {
        let name = s["spec"]["name"].as_str().unwrap_or_default();
        let success = s["lookup_success"].as_f64().unwrap_or(0.0);
        let coverage = s["gossip_coverage"].as_f64().unwrap_or(0.0);
        let lookups = s["lookups"].as_u64().unwrap_or(0);
        let delivered = s["mailbox_delivered"].as_f64().unwrap_or(0.0);
        let messages = s["mailbox"]["messages"].as_u64().unwrap_or(0);
        assert!(
            s["rtt_ms"].as_f64().unwrap_or(0.0) > 0.0 && !s["latency"].is_null(),
            "{name}: the links had no added latency\n{stdout}"
        );
        assert!(
            messages >= 20,
            "{name}: only {messages} messages sent\n{stderr}"
        );
        assert!(
            delivered >= MAILBOX_DELIVERED,
            "{name}: mailbox_delivered {delivered} < {MAILBOX_DELIVERED}\n{stderr}"
        );
        assert!(
            lookups >= 15,
            "{name}: only {lookups} lookups ran\n{stderr}"
        );
        let floor = if name == "steady" {
            STEADY_LOOKUP_SUCCESS
        } else {
            CHURN_SYBIL_LOOKUP_SUCCESS
        };
        assert!(
            success >= floor,
            "{name}: lookup_success {success} < {floor}\n{stderr}"
        );
        assert!(
            coverage >= 1.0,
            "{name}: gossip reached {coverage} of the live nodes\n{stderr}"
        );
    }
    assert!(output.status.success(), "{stderr}");
}

/// Runs `rhizo-bench --quick --only scale --json` with `args`; the SCALE scenarios.
fn scale_scenarios(args: &[&str]) -> Vec<serde_json::Value> {
    let output = Command::new(env!("CARGO_BIN_EXE_rhizo-bench"))
        .args(["--quick", "--only", "scale", "--json"])
        .args(args)
        .output()
        .expect("run rhizo-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the report is not valid JSON ({e}):\n{stdout}\n{stderr}"));
    assert!(report.errors.is_empty(), "{:?}\n{stderr}", report.errors);
    assert!(output.status.success(), "{stderr}");
    report.details["SCALE"]["scenarios"]
        .as_array()
        .unwrap_or_else(|| panic!("no SCALE scenarios:\n{stdout}"))
        .clone()
}

/// Issue 19's eclipse (session 19: 0 of 4 delivered): 20 % of the 30 nodes are Sybils whose
/// ids are ground next to the first recipient's mailbox key, acknowledge every store and keep
/// nothing. The replica plan counts at most two of them, so every message — the eclipsed
/// recipient's included — reaches honest replicas. (With Sybils that also answer lookups with
/// each other only, `eclipse+collude`, 3 of the 4 arrived in session 20: not asserted yet.)
#[test]
fn an_eclipse_of_a_mailbox_key_does_not_stop_delivery() {
    let scenarios = scale_scenarios(&[
        "--scale-scenarios",
        "eclipse",
        "--scale-fraction",
        "0.2",
        "--scale-mail-only",
    ]);
    assert_eq!(scenarios.len(), 1);
    let s = &scenarios[0];
    let messages = s["mailbox"]["messages"].as_u64().unwrap_or(0);
    let eclipsed = s["mailbox"]["first_recipient_delivered"]
        .as_f64()
        .unwrap_or(0.0);
    let delivered = s["mailbox_delivered"].as_f64().unwrap_or(0.0);
    assert!(messages >= 20, "only {messages} messages sent: {s}");
    assert!(s["spec"]["eclipse"].as_bool() == Some(true), "{s}");
    assert!(
        eclipsed >= 1.0,
        "the eclipsed recipient got {eclipsed}: {s}"
    );
    assert!(delivered >= 1.0, "mailbox_delivered {delivered}: {s}");
}
