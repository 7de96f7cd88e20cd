//! Running commands with a bound, and the `ip netns` plumbing of the tests that build their own
//! network namespaces (LAN discovery, relays and hole punching). Everything here either finishes
//! or is killed within its timeout.

use std::{
    io::Read,
    process::{Child, Command, ExitStatus, Stdio},
    thread,
    time::{Duration, Instant},
};

/// Bound on one helper command (`ip …`, `kill`, a probe).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Output of a command run with [`run_bounded`]; `status` is `None` if it timed out (and was
/// killed).
#[derive(Debug)]
pub struct Output {
    /// The exit status, `None` if the command was killed at its timeout.
    pub status: Option<ExitStatus>,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Output {
    /// Whether it ran to completion and exited with 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The status and both outputs, for an error message.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => s.to_string(),
            None => "timed out (killed)".to_string(),
        };
        format!(
            "{status}; stdout: {:?}; stderr: {:?}",
            self.stdout.trim(),
            self.stderr.trim()
        )
    }
}

/// Runs `cmd` to completion, but kills it if it takes longer than `timeout`.
///
/// # Errors
///
/// The command could not be started.
pub fn run_bounded(cmd: &mut Command, timeout: Duration) -> std::io::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Drain both pipes on threads so a chatty command cannot block on a full pipe.
    let out_reader = child.stdout.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    });
    let err_reader = child.stderr.take().map(|mut pipe| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    });
    let status = wait_bounded(&mut child, timeout)?;
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let collect = |reader: Option<thread::JoinHandle<String>>| {
        reader.and_then(|r| r.join().ok()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: collect(out_reader),
        stderr: collect(err_reader),
    })
}

/// Waits up to `timeout` for `child` to exit; `None` if it is still running.
///
/// # Errors
///
/// Waiting on the child failed.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `PROGRAM ARGS…` within [`COMMAND_TIMEOUT`].
///
/// # Errors
///
/// A description of what went wrong: it could not run, failed or timed out.
pub fn run_ok(program: &str, args: &[&str]) -> Result<Output, String> {
    let out = run_bounded(Command::new(program).args(args), COMMAND_TIMEOUT)
        .map_err(|e| format!("`{program} {}` could not run: {e}", args.join(" ")))?;
    if out.success() {
        Ok(out)
    } else {
        Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            out.describe()
        ))
    }
}

/// Runs `ip ARGS…`.
///
/// # Errors
///
/// As [`run_ok`].
pub fn ip(args: &[&str]) -> Result<(), String> {
    run_ok("ip", args).map(drop)
}

/// Like [`ip`], for setup steps that must not fail once namespaces work at all.
///
/// # Panics
///
/// When the command fails, with its description.
pub fn ip_ok(args: &[&str]) {
    if let Err(e) = ip(args) {
        panic!("{e}");
    }
}

/// Runs `ARGS…` inside network namespace `ns`.
///
/// # Errors
///
/// As [`run_ok`].
pub fn in_ns(ns: &str, args: &[&str]) -> Result<Output, String> {
    let mut full = vec!["netns", "exec", ns];
    full.extend_from_slice(args);
    run_ok("ip", &full)
}

/// Whether the effective uid is 0 (read from /proc, so no libc/unsafe is needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            // Uid: real effective saved filesystem
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// Whether `program` can be run at all (found on PATH).
pub fn have(program: &str, version_arg: &str) -> bool {
    Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Sends SIGTERM (graceful shutdown) to a process via the `kill` command.
///
/// # Panics
///
/// When `kill` fails.
pub fn sigterm(child: &Child) {
    if let Err(e) = run_ok("kill", &["-TERM", &child.id().to_string()]) {
        panic!("{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_commands_finish_or_are_killed() {
        let out = run_bounded(
            Command::new("sh").args(["-c", "echo hi; echo err >&2"]),
            COMMAND_TIMEOUT,
        )
        .expect("sh runs");
        assert!(out.success());
        assert_eq!(out.stdout.trim(), "hi");
        assert_eq!(out.stderr.trim(), "err");
        let out = run_bounded(Command::new("sleep").arg("5"), Duration::from_millis(200))
            .expect("sleep runs");
        assert!(out.status.is_none(), "killed at its timeout");
        assert!(out.describe().contains("timed out"));
        assert!(run_ok("false", &[]).is_err());
        assert!(run_ok("/nonexistent/program", &[]).is_err());
    }
}
