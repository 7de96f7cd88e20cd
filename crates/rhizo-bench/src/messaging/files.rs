//! B13: file transfer between two in-process rhizo nodes, against B1's rhizo-net link and raw
//! TCP measured in the same run.
//!
//! Alice sends a file of `RHIZO_BENCH_B13_MIB` MiB (64 by default, 4 with `--quick`; the
//! issue's figure is 1024) with `POST /v1/files`; bob asks for it (`POST /v1/files/{id}/fetch`)
//! and the clock runs until his `/v1/files/{id}/info` says `done` (every chunk fetched over
//! `/rhizo/file/1`, verified, written, and the whole tree checked again). The process's RSS
//! (both nodes) is sampled every 20 ms during the fetch; the figure is its peak above the RSS
//! just before. Then `messaging/holders.rs` measures the fetch time from 3 holders against 1
//! (a group of four; `RHIZO_BENCH_B13_HOLDERS_MIB` MiB, B13's size by default).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::{Value, json};

use super::{Disk, Pair};
use crate::memory::vm_rss_kib;
use crate::report::{Row, Target};
use crate::transport;

/// The environment variable that sets B13's file size in MiB.
pub const SIZE_ENV: &str = "RHIZO_BENCH_B13_MIB";
/// The environment variable that sets the holders comparison's file size in MiB.
pub const HOLDERS_SIZE_ENV: &str = "RHIZO_BENCH_B13_HOLDERS_MIB";
/// How long the import or the fetch may take.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often bob's file state and the RSS are read.
const POLL: Duration = Duration::from_millis(20);

/// B13's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B13Result {
    /// The file's size (MiB).
    pub mib: u64,
    /// Alice's import (encrypt + tree) rate, MiB/s.
    pub import_mib_s: f64,
    /// Bob's fetch rate, MiB/s of plaintext.
    pub fetch_mib_s: f64,
    /// B1's rhizo-net link in the same run, MiB/s.
    pub rhizo_net_mib_s: f64,
    /// B1's raw TCP in the same run, MiB/s.
    pub raw_tcp_mib_s: f64,
    /// B1's bytes per run (MiB) and runs, the references' size.
    pub b1_mib_runs: (u64, usize),
    /// Peak RSS of the process (both nodes) above the RSS before the fetch, MiB.
    pub rss_above_idle_mib: f64,
    /// A `--quick` run (the RSS figure is then not judged: a tiny file may not move it).
    pub quick: bool,
    /// The holders comparison's file size (MiB).
    pub holders_mib: u64,
    /// Fetch seconds from 1, 2 and 3 holders (a group of four, same run).
    pub holders_s: [f64; 3],
}

impl B13Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let what = format!("{} MiB file, alice → bob fetch", self.mib);
        vec![
            Row::new(
                "B13",
                format!("{what} (vs B1 rhizo-net link)"),
                self.fetch_mib_s,
                "MiB/s",
            )
            .reference(
                format!(
                    "B1 rhizo-net link, same run ({} MiB × {})",
                    self.b1_mib_runs.0, self.b1_mib_runs.1
                ),
                self.rhizo_net_mib_s,
            )
            .target(Target::ratio_at_least(0.8)),
            Row::new(
                "B13",
                format!("{what} (vs raw TCP)"),
                self.fetch_mib_s,
                "MiB/s",
            )
            .reference("B1 raw TCP, same run", self.raw_tcp_mib_s),
            {
                let row = Row::new(
                    "B13",
                    format!("peak RSS above idle while fetching {} MiB", self.mib),
                    self.rss_above_idle_mib,
                    "MiB",
                )
                .note("both in-process nodes together");
                if self.quick {
                    row
                } else {
                    row.target(Target::value_at_most(64.0))
                }
            },
            Row::new(
                "B13",
                format!(
                    "{} MiB fetch from 3 holders vs 1 (group of four)",
                    self.holders_mib
                ),
                self.holders_s[2],
                "s",
            )
            .reference("the same fetch from 1 holder, same run", self.holders_s[0])
            .target(Target::ratio_at_most(0.6))
            .note(format!("2 holders: {:.2} s", self.holders_s[1])),
            Row::new(
                "B13",
                format!("diagnostic: import (encrypt + tree) of {} MiB", self.mib),
                self.import_mib_s,
                "MiB/s",
            ),
        ]
    }
}

/// A size in MiB from the environment variable `var`, else `default`.
fn size_mib(var: &str, default: u64) -> anyhow::Result<u64> {
    match std::env::var(var) {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{var}={v}: give a whole number of MiB above 0")),
        Err(_) => Ok(default),
    }
}

/// Writes `mib` MiB that do not compress or repeat (xorshift) to `path`, 1 MiB at a time.
fn write_content(path: &std::path::Path, mib: u64) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for b in block.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes());
        }
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(())
}

/// Runs B13 against `b1`, B1's figures from earlier in this process (`--only B1,B13`), or a
/// quick B1 run first when B1 did not run.
pub async fn run_b13(quick: bool, b1: Option<transport::B1Result>) -> anyhow::Result<B13Result> {
    let mib = size_mib(SIZE_ENV, if quick { 4 } else { 64 })?;
    let holders_mib = size_mib(HOLDERS_SIZE_ENV, mib)?;
    let b1 = match b1 {
        Some(b1) => b1,
        None => transport::run_b1(true).await?,
    };
    super::install_tracing();
    let dir = tempfile::tempdir()?;
    let input = dir.path().join("b13.bin");
    write_content(&input, mib)?;
    let mut pair = Pair::start(Disk::Tmp).await?;
    let result = transfer(&mut pair, &input, mib).await;
    pair.shutdown().await;
    let (import_mib_s, fetch_mib_s, rss_above_idle_mib) = result?;
    if holders_mib != mib {
        write_content(&input, holders_mib)?;
    }
    let holders = super::holders::run_holders(&input).await?;
    Ok(B13Result {
        holders_mib,
        holders_s: [holders.one, holders.two, holders.three],
        mib,
        import_mib_s,
        fetch_mib_s,
        rhizo_net_mib_s: b1.rhizo_net_mib_s,
        raw_tcp_mib_s: b1.raw_tcp_mib_s,
        b1_mib_runs: (b1.bytes_per_run >> 20, b1.runs),
        rss_above_idle_mib,
        quick,
    })
}

/// Alice sends the file, bob fetches it: (import MiB/s, fetch MiB/s, peak RSS above idle MiB).
async fn transfer(
    pair: &mut Pair,
    input: &std::path::Path,
    mib: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    pair.warm_up(1).await?;
    let started = Instant::now();
    let sent: Value = pair
        .alice
        .api
        .post(
            "/v1/files",
            &json!({"to": "bob", "path": input.display().to_string()}),
        )
        .await?;
    let import_s = started.elapsed().as_secs_f64();
    let hash = sent["file"]["hash"]
        .as_str()
        .context("no hash")?
        .to_string();
    let deadline = Instant::now() + TRANSFER_TIMEOUT;
    let id = loop {
        let files: Vec<Value> = pair.bob.api.get("/v1/files").await?;
        if let Some(id) = files
            .iter()
            .find(|f| f["hash"] == hash.as_str())
            .and_then(|f| f["id"].as_i64())
        {
            break id;
        }
        if Instant::now() > deadline {
            bail!("the file message did not reach bob");
        }
        tokio::time::sleep(POLL).await;
    };
    let idle = vm_rss_kib();
    let mut peak = idle;
    let started = Instant::now();
    let _: Value = pair
        .bob
        .api
        .post(&format!("/v1/files/{id}/fetch"), &Value::Null)
        .await?;
    loop {
        peak = peak.max(vm_rss_kib());
        let info: Value = pair.bob.api.get(&format!("/v1/files/{id}/info")).await?;
        match info["state"].as_str() {
            Some("done") => break,
            Some("failed") => bail!("the fetch failed: {info}"),
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("the fetch did not finish: {info}");
        }
        tokio::time::sleep(POLL).await;
    }
    let fetch_s = started.elapsed().as_secs_f64();
    let mib_f = mib as f64;
    Ok((
        mib_f / import_s,
        mib_f / fetch_s,
        peak.saturating_sub(idle) as f64 / 1024.0,
    ))
}
