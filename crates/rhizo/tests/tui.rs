//! `rhizo tui` in a real terminal: tmux runs it at 80×24 against two real nodes on 127.0.0.1.
//! Alice types a message with `send-keys`, bob's node receives it, bob's reply appears on
//! alice's screen (`capture-pane`), her message shows the delivered tick (✓✓), the screen is
//! redrawn to fit when the window is resized, a file sent from the path prompt shows its line
//! with a full progress bar, and leaving — with Ctrl-Q, and on SIGTERM —
//! gives the terminal back (the alternate screen left, raw mode off: `stty` shows `icanon
//! echo` again).
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

    /// `1` while the pane shows the alternate screen, `0` otherwise.
    fn alternate_screen(&self) -> anyhow::Result<String> {
        Ok(self
            .run(&["display-message", "-p", "-t", "tui", "#{alternate_on}"])?
            .trim()
            .to_string())
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

    let command = tui_command(alice);
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
    assert_eq!(
        tmux.alternate_screen()?,
        "1",
        "the TUI draws on the alternate screen"
    );

    // A resize redraws the whole layout at the new size, and back.
    for (width, height) in [("100", "30"), ("80", "24")] {
        tmux.run(&["resize-window", "-t", "tui", "-x", width, "-y", height])?;
        let cols: usize = width.parse()?;
        tmux.wait_screen(&format!("the layout redrawn at {width}×{height}"), |s| {
            let top = s.lines().next().unwrap_or_default().trim_end();
            top.starts_with("┌Conversations")
                && top.ends_with('┐')
                && top.chars().count() == cols
                && s.contains("me: hello from the tui ✓✓")
                && s.contains("F1 help")
        })?;
    }

    // A file sent from the path prompt (F7): its line with the progress bar at 100 %.
    let file = alice.data_dir().join("report.txt");
    std::fs::write(&file, b"a small report")?;
    tmux.run(&["send-keys", "-t", "tui", "F7"])?;
    tmux.wait_screen("the path prompt", |s| s.contains("› /file"))?;
    tmux.run(&["send-keys", "-t", "tui", "-l", &file.display().to_string()])?;
    tmux.run(&["send-keys", "-t", "tui", "Enter"])?;
    tmux.wait_screen("the sent file's line and its full bar", |s| {
        s.contains("me: file report.txt (14 B)") && s.contains("[██████████] 100 % done")
    })?;

    // Leaving gives the terminal back: the shell's lines after it are on the normal screen,
    // with the terminal out of raw mode.
    tmux.run(&["send-keys", "-t", "tui", "C-q"])?;
    tmux.wait_screen("the TUI to exit cleanly", |s| {
        s.contains("tui exited: 0") && s.contains("modes: icanon echo")
    })?;
    assert_eq!(
        tmux.alternate_screen()?,
        "0",
        "the alternate screen is left"
    );
    drop(tmux);

    // SIGTERM does the same.
    let tmux = Tmux::start(&command)?;
    tmux.wait_screen("the TUI up again", |s| s.contains("▶@bob"))?;
    let shell: u32 = tmux
        .run(&["display-message", "-p", "-t", "tui", "#{pane_pid}"])?
        .trim()
        .parse()?;
    let tui = child_of(shell).context("the rhizo tui process under the pane's shell")?;
    let killed = Command::new("kill")
        .args(["-TERM", &tui.to_string()])
        .status()?;
    assert!(killed.success(), "kill -TERM {tui}");
    tmux.wait_screen("the TUI to exit on SIGTERM", |s| {
        s.contains("tui exited: 0") && s.contains("modes: icanon echo")
    })?;
    assert_eq!(
        tmux.alternate_screen()?,
        "0",
        "the alternate screen is left"
    );
    Ok(())
}

/// Runs `rhizo tui` on alice's node in a shell that, once it exits, prints its exit status and
/// the terminal's line-discipline modes (`icanon echo` unless raw mode was left on).
fn tui_command(alice: &TestNode) -> String {
    format!(
        "env RHIZO_MDNS=false XDG_CONFIG_HOME='{config}' LANG=C.UTF-8 '{BIN}' --data-dir '{dir}' \
         tui; echo \"tui exited: $?\"; \
         echo \"modes: $(stty -a | tr ' ;' '\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo \
         | tr '\\n' ' ')\"; read wait",
        config = alice.data_dir().join("no-config").display(),
        dir = alice.data_dir().display(),
    )
}

/// The first process whose parent is `parent` (from /proc), if any.
fn child_of(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`: comm may hold spaces, so read after the last ')'.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == parent).then_some(pid)
        })
}
