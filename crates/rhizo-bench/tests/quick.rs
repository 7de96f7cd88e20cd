//! Runs `rhizo-bench --quick --json` (every benchmark at tiny sizes) and checks that each one
//! produced finite, positive figures. No timing is judged: the run only proves the harness,
//! the nodes and the references all work. SCALE has its own test (`tests/scale.rs`).

use std::process::Command;

use rhizo_bench::{BENCHMARKS, report::Report};

#[test]
fn every_benchmark_produces_finite_positive_figures() {
    let benches: Vec<&str> = BENCHMARKS
        .iter()
        .copied()
        .filter(|b| *b != "SCALE")
        .collect();
    // ENCSTORE's encrypted nodes unlock with a passphrase from a file.
    let passphrase = tempfile::NamedTempFile::new().expect("passphrase file");
    std::fs::write(passphrase.path(), "quick benchmark passphrase").expect("write passphrase");
    let output = Command::new(env!("CARGO_BIN_EXE_rhizo-bench"))
        .args(["--quick", "--json", "--only", &benches.join(",")])
        .env(rhizo_node::vault::PASSPHRASE_FILE_ENV, passphrase.path())
        .output()
        .expect("run rhizo-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Non-finite floats serialise as `null`, so they fail here already.
    let report: Report = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("the report is not valid JSON with finite figures ({e}):\n{stdout}\n{stderr}")
    });
    if let Err(problems) = report.check_figures(&benches) {
        panic!("{problems}\n\n{}\n{stderr}", report.table());
    }
    assert!(
        output.status.success(),
        "rhizo-bench exited with {}\n{stderr}",
        output.status
    );
    assert!(report.meta.quick);
    for bench in benches {
        assert!(
            report.details.contains_key(bench),
            "{bench} left no detail in the JSON"
        );
    }
}
