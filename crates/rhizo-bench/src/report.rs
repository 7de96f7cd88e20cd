//! The report: one [`Row`] per figure, each with the reference it is compared to (measured in
//! the same run), the ratio `value / reference`, and the issue's target with pass/fail.
//!
//! ```text
//!  benchmark ──rows()──▶ Vec<Row> ──▶ Report ──┬─▶ table (stdout)
//!                                              └─▶ JSON (--json): meta, rows, errors, details
//! ```
//!
//! Build a row with [`Row::new`], then add what applies:
//!
//! ```
//! use rhizo_bench::report::{Row, Target};
//!
//! let row = Row::new("B1", "1 stream, 64 KiB writes", 512.0, "MiB/s")
//!     .reference("raw loopback TCP", 2048.0)
//!     .target(Target::ratio_at_least(0.45))
//!     .note("rhizo-net's transport config equals libp2p's defaults");
//! assert_eq!(row.ratio, Some(0.25));
//! assert_eq!(row.pass, Some(false));
//! ```

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// What a [`Target`] constrains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    /// The ratio `value / reference`.
    Ratio,
    /// The value itself.
    Value,
    /// The difference `value − reference`.
    Difference,
}

/// Which side of the threshold passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// Passes when the subject is at least the threshold.
    AtLeast,
    /// Passes when the subject is at most the threshold.
    AtMost,
}

/// A target from the issue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The ratio or the value.
    pub subject: Subject,
    /// `≥` or `≤`.
    pub comparison: Comparison,
    /// The threshold.
    pub threshold: f64,
}

impl Target {
    /// `value / reference ≥ threshold`.
    pub fn ratio_at_least(threshold: f64) -> Self {
        Self {
            subject: Subject::Ratio,
            comparison: Comparison::AtLeast,
            threshold,
        }
    }

    /// `value / reference ≤ threshold`.
    pub fn ratio_at_most(threshold: f64) -> Self {
        Self {
            subject: Subject::Ratio,
            comparison: Comparison::AtMost,
            threshold,
        }
    }

    /// `value ≥ threshold`.
    pub fn value_at_least(threshold: f64) -> Self {
        Self {
            subject: Subject::Value,
            comparison: Comparison::AtLeast,
            threshold,
        }
    }

    /// `value ≤ threshold`.
    pub fn value_at_most(threshold: f64) -> Self {
        Self {
            subject: Subject::Value,
            comparison: Comparison::AtMost,
            threshold,
        }
    }

    /// `value − reference ≤ threshold` (a cost above a reference's, in the row's unit).
    pub fn difference_at_most(threshold: f64) -> Self {
        Self {
            subject: Subject::Difference,
            comparison: Comparison::AtMost,
            threshold,
        }
    }

    /// Whether `subject` meets the target.
    pub fn met_by(&self, subject: f64) -> bool {
        match self.comparison {
            Comparison::AtLeast => subject >= self.threshold,
            Comparison::AtMost => subject <= self.threshold,
        }
    }

    /// `ratio ≥ 0.45`, `value ≤ 32`, …
    pub fn describe(&self) -> String {
        let subject = match self.subject {
            Subject::Ratio => "ratio",
            Subject::Value => "value",
            Subject::Difference => "value − reference",
        };
        let op = match self.comparison {
            Comparison::AtLeast => "≥",
            Comparison::AtMost => "≤",
        };
        format!("{subject} {op} {}", fmt_num(self.threshold))
    }
}

/// The reference a figure is compared to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// What it is.
    pub name: String,
    /// Its figure, in the row's unit.
    pub value: f64,
}

/// One figure of one benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The benchmark, `"B1"` … `"B8"`.
    pub bench: String,
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`MiB/s`, `ms`, `msg/s`, `KiB`, …).
    pub unit: String,
    /// The reference measured in the same run, in the same unit.
    pub reference: Option<Reference>,
    /// `value / reference.value`.
    pub ratio: Option<f64>,
    /// The issue's target, if this row has one.
    pub target: Option<Target>,
    /// Whether the target is met (`None` without a target).
    pub pass: Option<bool>,
    /// A remark shown under the table (method, caveat).
    pub note: Option<String>,
}

impl Row {
    /// A row without reference, target or note.
    pub fn new(
        bench: impl Into<String>,
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
    ) -> Self {
        Self {
            bench: bench.into(),
            name: name.into(),
            value,
            unit: unit.into(),
            reference: None,
            ratio: None,
            target: None,
            pass: None,
            note: None,
        }
    }

    /// Adds the reference (same unit); the ratio becomes `value / reference`.
    pub fn reference(mut self, name: impl Into<String>, value: f64) -> Self {
        self.reference = Some(Reference {
            name: name.into(),
            value,
        });
        self.ratio = Some(self.value / value);
        self.evaluate();
        self
    }

    /// Adds the target and evaluates it.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self.evaluate();
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    fn evaluate(&mut self) {
        self.pass = self.target.and_then(|t| {
            let subject = match t.subject {
                Subject::Ratio => self.ratio?,
                Subject::Value => self.value,
                Subject::Difference => self.value - self.reference.as_ref()?.value,
            };
            Some(subject.is_finite() && t.met_by(subject))
        });
    }
}

/// A benchmark that failed to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchError {
    /// The benchmark.
    pub bench: String,
    /// The error chain.
    pub error: String,
}

/// Where and how the run happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The command line.
    pub command: String,
    /// Start, UTC, RFC 3339.
    pub started_utc: String,
    /// Whether `--quick` sizes were used.
    pub quick: bool,
    /// CPUs online (`nproc`).
    pub cpus: usize,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Memory from /proc/meminfo, MiB.
    pub mem_total_mib: u64,
    /// Kernel release.
    pub kernel: String,
    /// `debug` or `release`.
    pub profile: String,
}

impl Meta {
    /// Reads the machine description for `command`.
    pub fn collect(command: String, quick: bool) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let mem_total_mib = std::fs::read_to_string("/proc/meminfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        Self {
            command,
            started_utc: utc_now(),
            quick,
            cpus: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            cpu_model,
            mem_total_mib,
            kernel,
            profile: if cfg!(debug_assertions) {
                "debug".into()
            } else {
                "release".into()
            },
        }
    }
}

/// Everything one run produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The machine and command.
    pub meta: Meta,
    /// Every figure, in benchmark order.
    pub rows: Vec<Row>,
    /// Benchmarks that failed.
    pub errors: Vec<BenchError>,
    /// Each benchmark's full result (its own JSON), by benchmark id.
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    /// An empty report.
    pub fn new(meta: Meta) -> Self {
        Self {
            meta,
            rows: Vec::new(),
            errors: Vec::new(),
            details: serde_json::Map::new(),
        }
    }

    /// Adds one benchmark's outcome: its rows and its detail JSON, or its error.
    pub fn add<T: Serialize>(
        &mut self,
        bench: &str,
        outcome: anyhow::Result<T>,
        rows: impl FnOnce(&T) -> Vec<Row>,
    ) {
        match outcome {
            Ok(result) => {
                self.rows.extend(rows(&result));
                let detail = serde_json::to_value(&result)
                    .unwrap_or_else(|e| serde_json::Value::String(format!("unserialisable: {e}")));
                match self.details.get_mut(bench) {
                    Some(serde_json::Value::Array(list)) => list.push(detail),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = serde_json::Value::Array(vec![first, detail]);
                    }
                    None => {
                        self.details.insert(bench.to_string(), detail);
                    }
                }
            }
            Err(e) => self.errors.push(BenchError {
                bench: bench.to_string(),
                error: format!("{e:#}"),
            }),
        }
    }

    /// Checks the figures are usable: no benchmark failed, every benchmark in `benches` has a
    /// row, every value is finite and not negative, and every value with a reference or target
    /// (and the reference and ratio) is finite and positive. No timing is judged.
    pub fn check_figures(&self, benches: &[&str]) -> Result<(), String> {
        let mut problems = Vec::new();
        for e in &self.errors {
            problems.push(format!("{} failed: {}", e.bench, e.error));
        }
        for bench in benches {
            if !self.rows.iter().any(|r| r.bench == *bench) {
                problems.push(format!("{bench} produced no figure"));
            }
        }
        for r in &self.rows {
            let label = format!("{} {:?}", r.bench, r.name);
            if !r.value.is_finite() || r.value < 0.0 {
                problems.push(format!("{label}: value {}", r.value));
            }
            if r.reference.is_some() || r.target.is_some() {
                if r.value <= 0.0 {
                    problems.push(format!(
                        "{label}: compared value {} is not positive",
                        r.value
                    ));
                }
                if let Some(reference) = &r.reference
                    && !(reference.value.is_finite() && reference.value > 0.0)
                {
                    problems.push(format!("{label}: reference {}", reference.value));
                }
                if let Some(ratio) = r.ratio
                    && !(ratio.is_finite() && ratio > 0.0)
                {
                    problems.push(format!("{label}: ratio {ratio}"));
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("\n"))
        }
    }

    /// The human-readable table, with the notes and errors under it.
    pub fn table(&self) -> String {
        let header = [
            "bench",
            "measurement",
            "value",
            "reference (same run)",
            "ratio",
            "target",
            "result",
        ];
        let mut lines: Vec<[String; 7]> = Vec::with_capacity(self.rows.len());
        let mut notes: Vec<String> = Vec::new();
        for r in &self.rows {
            let mut name = r.name.clone();
            if let Some(note) = &r.note {
                let index = match notes.iter().position(|n| n == note) {
                    Some(i) => i,
                    None => {
                        notes.push(note.clone());
                        notes.len() - 1
                    }
                };
                let _ = write!(name, " [{}]", index + 1);
            }
            lines.push([
                r.bench.clone(),
                name,
                format!("{} {}", fmt_num(r.value), r.unit),
                r.reference
                    .as_ref()
                    .map(|x| format!("{}: {} {}", x.name, fmt_num(x.value), r.unit))
                    .unwrap_or_default(),
                r.ratio.map(fmt_num).unwrap_or_default(),
                r.target.map(|t| t.describe()).unwrap_or_default(),
                match r.pass {
                    Some(true) => "PASS".into(),
                    Some(false) => "FAIL".into(),
                    None => String::new(),
                },
            ]);
        }
        let mut widths = header.map(|h| h.chars().count());
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let m = &self.meta;
        let _ = writeln!(
            out,
            "rhizo-bench ({} build{}) on {} × {}, {} MiB RAM, Linux {}, started {}",
            m.profile,
            if m.quick { ", --quick sizes" } else { "" },
            m.cpus,
            m.cpu_model,
            m.mem_total_mib,
            m.kernel,
            m.started_utc
        );
        let _ = writeln!(out, "command: {}", m.command);
        let render = |out: &mut String, cells: &[String]| {
            let mut line = String::from("|");
            for (cell, w) in cells.iter().zip(widths) {
                let pad = w.saturating_sub(cell.chars().count());
                let _ = write!(line, " {cell}{} |", " ".repeat(pad));
            }
            let _ = writeln!(out, "{line}");
        };
        render(&mut out, &header.map(String::from));
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        render(&mut out, &rule);
        for line in &lines {
            render(&mut out, line);
        }
        for (i, note) in notes.iter().enumerate() {
            let _ = writeln!(out, "[{}] {note}", i + 1);
        }
        for e in &self.errors {
            let _ = writeln!(out, "ERROR {}: {}", e.bench, e.error);
        }
        out
    }
}

/// Three significant digits, no exponent for everyday magnitudes.
pub fn fmt_num(x: f64) -> String {
    if !x.is_finite() {
        return x.to_string();
    }
    let a = x.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.001 {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

/// The current time, RFC 3339 UTC with milliseconds.
fn utc_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    rhizo_node::clock::rfc3339_utc(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_and_targets() {
        let r = Row::new("B2", "p50", 3.0, "ms")
            .reference("raw", 1.0)
            .target(Target::ratio_at_most(2.0));
        assert_eq!(r.ratio, Some(3.0));
        assert_eq!(r.pass, Some(false));
        let r = Row::new("B7", "per connection", 20.0, "KiB").target(Target::value_at_most(32.0));
        assert_eq!(r.pass, Some(true));
        assert_eq!(r.ratio, None);
        let r = Row::new("B17", "per client", 30.0, "KiB")
            .reference("bare", 20.0)
            .target(Target::difference_at_most(16.0));
        assert_eq!(r.pass, Some(true));
        let r = Row::new("B17", "per client", 40.0, "KiB")
            .reference("bare", 20.0)
            .target(Target::difference_at_most(16.0));
        assert_eq!(r.pass, Some(false));
    }

    #[test]
    fn numbers_and_dates_format() {
        assert_eq!(fmt_num(1234.5), "1234");
        assert_eq!(fmt_num(0.4567), "0.457");
        assert_eq!(fmt_num(12.345), "12.3");
        assert_eq!(utc_now().len(), 24);
    }

    #[test]
    fn check_flags_bad_figures() {
        let mut report = Report::new(Meta::collect("x".into(), true));
        report.rows.push(Row::new("B1", "a", f64::NAN, "x"));
        assert!(report.check_figures(&["B1", "B2"]).is_err());
        report.rows[0].value = 1.0;
        assert!(report.check_figures(&["B1"]).is_ok());
    }
}
