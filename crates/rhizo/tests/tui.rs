//! `rhizo tui` in a real terminal: tmux runs it at 80×24 against two real nodes on 127.0.0.1.
//! Alice types a message with `send-keys`, bob's node receives it, bob's reply appears on
//! alice's screen (`capture-pane`), her message shows the delivered tick (✓✓), and leaving
//! gives the terminal back.
//!
//! ```text
//!  tmux ── rhizo tui ──/v1──▶ alice (rhizo run) ◀── /rhizo/msg/1 ──▶ bob (rhizo run) ◀── test
//! ```
//!
//! Without tmux the test prints SKIPPED (`.ci/run` installs it).

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context, bail};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// Bound for the nodes to publish and for a message to arrive (normally seconds).
const TIMEOUT: Duration = Duration::from_secs(90);

/// A tmux server of our own (its socket in a temp dir), killed on drop.
struct Tmux {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmux {
    /// Starts a detached 80×24 session running `command` in a shell.
    fn start(command: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tmux = Self {
            socket: dir.path().join("tmux.sock"),
            _dir: dir,
        };
        tmux.run(&[
            "-f",
            "/dev/null",
            "new-session",
            "-d",
            "-s",
            "tui",
            "-x",
            "80",
            "-y",
            "24",
            command,
        ])?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("tmux")
            .arg("-u")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .env("LANG", "C.UTF-8")
            .output()
            .context("cannot run tmux")?;
        if !out.status.success() {
            bail!("tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What the pane shows now.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "tui"])
            .unwrap_or_default()
    }

    /// Waits until the pane shows something `ok` accepts.
    fn wait_screen(&self, what: &str, ok: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        wait_for(TIMEOUT, what, || Some(self.screen()).filter(|s| ok(s)))
            .with_context(|| format!("the screen:\n{}", self.screen()))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn have_tmux() -> bool {
    Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tui_sends_shows_the_reply_and_the_delivered_tick() {
    if !have_tmux() {
        eprintln!(
            "**** SKIPPED tui_sends_shows_the_reply_and_the_delivered_tick: tmux is not \
             installed (.ci/run installs it) ****"
        );
        return;
    }
    let mut alice = TestNode::init(Path::new(BIN), "alice").unwrap();
    let mut bob = TestNode::init(Path::new(BIN), "bob").unwrap();
    let result = run(&mut alice, &mut bob);
    if let Err(e) = result {
        panic!(
            "{e:#}\n{}\n{}",
            alice.logs_tail(64 * 1024),
            bob.logs_tail(64 * 1024)
        );
    }
}

fn run(alice: &mut TestNode, bob: &mut TestNode) -> anyhow::Result<()> {
    alice.start(&[])?;
    bob.start(&["--bootstrap".into(), alice.listen_addr()?])?;
    befriend(alice, "alice", bob, "bob")?;
    // Bob opens the conversation (his KeyPackage lookup is the slow, retried part).
    bob.send_when_ready("alice", "hi from bob", TIMEOUT)?;

    let command = format!(
        "env RHIZO_MDNS=false XDG_CONFIG_HOME='{config}' LANG=C.UTF-8 '{BIN}' --data-dir '{dir}' \
         tui; echo \"tui exited: $?\"; read wait",
        config = alice.data_dir().join("no-config").display(),
        dir = alice.data_dir().display(),
    );
    let tmux = Tmux::start(&command)?;
    tmux.wait_screen("bob's first message on alice's screen", |s| {
        s.contains("▶@bob") && s.contains("bob: hi from bob")
    })?;

    tmux.run(&["send-keys", "-t", "tui", "-l", "hello from the tui"])?;
    tmux.run(&["send-keys", "-t", "tui", "Enter"])?;
    wait_for(TIMEOUT, "alice's message at bob", || {
        let history = bob.history("alice").ok()?;
        history
            .iter()
            .any(|m| m["text"] == "hello from the tui")
            .then_some(())
    })?;
    bob.api_post(
        "/v1/message",
        &json!({"to": "alice", "text": "reply from bob"}),
    )?;
    let screen = tmux.wait_screen("bob's reply and the delivered tick", |s| {
        s.contains("bob: reply from bob")
            && s.lines().any(|l| l.contains("me: hello from the tui ✓✓"))
    })?;
    assert!(!screen.contains("peers 0"), "{screen}");

    // Leaving gives the terminal back: the shell's line after it is on the normal screen.
    tmux.run(&["send-keys", "-t", "tui", "C-q"])?;
    tmux.wait_screen("the TUI to exit cleanly", |s| s.contains("tui exited: 0"))?;
    Ok(())
}
