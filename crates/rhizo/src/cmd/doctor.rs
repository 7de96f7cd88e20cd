//! `rhizo doctor`: checks this node and says, for each check, one line of verdict and the fix.
//!
//! ```text
//!  data dir ──► permissions (0700 dir, 0600 secrets, owned by us)   ─┐
//!  rhizo.db ──► PRAGMA integrity_check (read-only), schema version   │
//!  its file system ──► free space                                    ├─► one line each:
//!  running node? GET /v1/stats, /v1/peers ──► clock skew (receipts), │   ok | warn | PROBLEM | unknown
//!                                          reachability (AutoNAT)    │   + "fix: …" for each
//!  config bootstrap peers ──► connected? else a TCP connect probe   ─┘     warning and problem
//! ```
//!
//! The exit status is non-zero when any check found a problem. Checks that need the running node
//! say `unknown` when it is not running, rather than guessing.

mod live;
mod local;

use rhizo_node::{Config, DataDir};
use serde::Serialize;

use crate::cli::DoctorArgs;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Nothing to do.
    Ok,
    /// Works, but worth fixing.
    Warn,
    /// Broken: the exit status is non-zero.
    Problem,
    /// Could not be checked (said why).
    Unknown,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Problem => "PROBLEM",
            Self::Unknown => "unknown",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Verdict {
    /// Which check.
    pub(crate) check: &'static str,
    /// How it came out.
    pub(crate) status: Status,
    /// What was found, in one line.
    pub(crate) detail: String,
    /// What to do (for a warning or a problem).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) fix: Option<String>,
}

impl Verdict {
    pub(crate) fn ok(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Ok, detail, None)
    }

    pub(crate) fn unknown(check: &'static str, detail: impl Into<String>) -> Self {
        Self::new(check, Status::Unknown, detail, None)
    }

    pub(crate) fn warn(
        check: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, Status::Warn, detail, Some(fix.into()))
    }

    pub(crate) fn problem(
        check: &'static str,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self::new(check, Status::Problem, detail, Some(fix.into()))
    }

    fn new(
        check: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            check,
            status,
            detail: detail.into(),
            fix,
        }
    }
}

/// The database check; an encrypted data dir is unlocked for it only when
/// `RHIZO_PASSPHRASE_FILE` names the passphrase (doctor never prompts).
fn database_check(dir: DataDir, db: &std::path::Path) -> Verdict {
    if !dir.is_encrypted() {
        return local::database(db, None);
    }
    if std::env::var_os(rhizo_node::vault::PASSPHRASE_FILE_ENV).is_none() {
        return local::locked_database(None);
    }
    match dir.unlocked() {
        Ok(dir) => local::database(db, dir.db_key().as_ref()),
        Err(e) => local::locked_database(Some(e.to_string())),
    }
}

pub(crate) async fn run(config: &Config, args: &DoctorArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(config.data_dir.clone());
    let mut verdicts = vec![local::permissions(&dir)];
    let dir_for_db = DataDir::new(config.data_dir.clone());
    let db = dir.database();
    verdicts.push(
        tokio::task::spawn_blocking(move || database_check(dir_for_db, &db))
            .await
            .unwrap_or_else(|e| {
                Verdict::problem(
                    "database",
                    format!("the integrity check failed: {e}"),
                    "run `rhizo doctor` again; if it fails the same way, report it",
                )
            }),
    );
    verdicts.push(local::disk_space(dir.path()));
    let node = live::Node::find(config).await;
    verdicts.push(live::running(node.as_ref(), &dir));
    verdicts.push(live::clock_skew(node.as_ref()));
    verdicts.push(live::reachability(node.as_ref(), config));
    verdicts.push(live::bootstrap(node.as_ref(), config, args.offline).await);
    report(&verdicts, args.json)
}

/// Prints the verdicts; an error (the exit status) when any is a problem.
fn report(verdicts: &[Verdict], json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(verdicts)?);
    } else {
        for v in verdicts {
            println!("{:<8} {}: {}", v.status.label(), v.check, v.detail);
            if let Some(fix) = &v.fix {
                println!("{:<8} fix: {fix}", "");
            }
        }
    }
    let problems = verdicts
        .iter()
        .filter(|v| v.status == Status::Problem)
        .count();
    match problems {
        0 => Ok(()),
        1 => anyhow::bail!("1 problem found: apply its fix, then run `rhizo doctor` again"),
        n => anyhow::bail!("{n} problems found: apply their fixes, then run `rhizo doctor` again"),
    }
}

#[cfg(test)]
mod tests;
