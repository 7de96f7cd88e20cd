//! The encrypted store and backups (issue 20), with real `rhizo` processes on 127.0.0.1:
//! - a node initialised with `--passphrase` keeps contact names, texts and keys out of its
//!   files; a wrong passphrase stops it at start with one clear line and changes nothing;
//! - backup → wipe → restore: the identity is the same, the history is back, and the contact
//!   receives our messages again (and we theirs);
//! - `rhizo passphrase change` killed (`SIGKILL`) at random points, again and again, from a
//!   plaintext dir and then between passphrases: each time one of the two passphrases unlocks
//!   it, and in the end nothing is lost.

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// The first message waits for the contact's KeyPackages in the DHT.
const KEY_PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for messages to be delivered (normally a few seconds).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of each node's log a failure prints.
const LOG_TAIL_BYTES: usize = 64 * 1024;

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// A passphrase file beside the test's data dirs (not in them).
fn passphrase_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("passphrase file");
    path.to_string_lossy().into_owned()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until `sender`'s texts to `to` are all delivered (or read).
fn wait_delivered(sender: &TestNode, to: &str, texts: &[&str]) -> anyhow::Result<()> {
    sender.wait_delivered(to, texts, DELIVERY_TIMEOUT)
}

/// Waits until `node` has received every text of `texts` from `from`.
fn wait_received(node: &TestNode, from: &str, texts: &[&str]) -> anyhow::Result<Vec<Value>> {
    node.wait_received(from, texts, DELIVERY_TIMEOUT)
}

#[test]
fn an_encrypted_node_keeps_names_texts_and_keys_out_of_its_files() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let right = passphrase_file(&secrets, "right", "a long passphrase for alice\n");
    let wrong = passphrase_file(&secrets, "wrong", "not alice's passphrase\n");
    let mut alice = TestNode::init_with_env(
        bin(),
        "alice",
        &["init", "--name", "alice", "--passphrase"],
        &[("RHIZO_PASSPHRASE_FILE", right.as_str())],
    )
    .expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let contact = "Bartholomew-Contact";
    let (to_bob, to_alice) = ("the eagle lands at midnight", "reply from the harbour");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, contact)?;
        alice.send_when_ready(contact, to_bob, KEY_PACKAGES_TIMEOUT)?;
        wait_delivered(&alice, contact, &[to_bob])?;
        bob.send_when_ready("alice", to_alice, KEY_PACKAGES_TIMEOUT)?;
        wait_received(&alice, contact, &[to_alice])?;
        alice.stop()?;
        let mut stored = Vec::new();
        for name in [
            "rhizo.db",
            "rhizo.db-wal",
            "root.key",
            "device.key",
            "vault",
        ] {
            stored.extend(std::fs::read(alice.data_dir().join(name)).unwrap_or_default());
        }
        ensure!(stored.len() > 4096, "the files were read");
        for needle in [contact, to_bob, to_alice, "SQLite format 3"] {
            ensure!(
                !contains(&stored, needle.as_bytes()),
                "{needle:?} in the clear"
            );
        }
        // A wrong passphrase: one clear line, no start, nothing changed.
        let db_before = std::fs::read(alice.data_dir().join("rhizo.db"))?;
        alice.set_env("RHIZO_PASSPHRASE_FILE", &wrong);
        let out = alice.cli(&["id"])?;
        let err = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success() && err.contains("wrong passphrase"),
            "{err}"
        );
        ensure!(
            err.trim().lines().count() == 1,
            "one line, what to do in it: {err}"
        );
        ensure!(std::fs::read(alice.data_dir().join("rhizo.db"))? == db_before);
        alice.set_env("RHIZO_PASSPHRASE_FILE", &right);
        alice.start(&[])?;
        let list = alice.history(contact)?;
        ensure!(
            list.iter().any(|m| m["text"] == to_alice),
            "the history is readable with the right passphrase"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

#[test]
fn backup_wipe_restore_then_contacts_receive_messages_again() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let backup_pass = passphrase_file(&secrets, "backup", "backup passphrase\n");
    let store_pass = passphrase_file(&secrets, "store", "new store passphrase\n");
    let archive = secrets.path().join("alice.rhzbackup");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let bob_args = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start(&bob_args)?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "before the backup", KEY_PACKAGES_TIMEOUT)?;
        wait_delivered(&alice, "bob", &["before the backup"])?;
        bob.send_when_ready("alice", "bob before", KEY_PACKAGES_TIMEOUT)?;
        wait_received(&alice, "bob", &["bob before"])?;
        alice.stop()?;
        let uid = alice.uid().to_string();

        alice.set_env("RHIZO_BACKUP_PASSPHRASE_FILE", &backup_pass);
        let out = alice.cli(&["backup", &archive.to_string_lossy()])?;
        ensure!(
            out.status.success(),
            "backup: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Wipe: nothing of alice's data dir is left.
        for entry in std::fs::read_dir(alice.data_dir())? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        // Restore, encrypted with a new passphrase this time.
        alice.set_env("RHIZO_PASSPHRASE_FILE", &store_pass);
        let out = alice.cli(&["restore", &archive.to_string_lossy(), "--passphrase"])?;
        ensure!(
            out.status.success(),
            "restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let id: Value = serde_json::from_slice(&alice.cli(&["id", "--json"])?.stdout)?;
        ensure!(id["uid"] == uid.as_str(), "the same identity: {id}");

        alice.start(&[])?;
        let bob_peer = bob.peer_id().to_string();
        wait_for(KEY_PACKAGES_TIMEOUT, "alice to reconnect to bob", || {
            alice.connected_peers().contains(&bob_peer).then_some(())
        })?;
        let list = alice.history("bob")?;
        ensure!(
            list.iter().any(|m| m["text"] == "bob before"),
            "the history came back: {list:?}"
        );
        alice.send_when_ready("bob", "after the restore", KEY_PACKAGES_TIMEOUT)?;
        wait_delivered(&alice, "bob", &["after the restore"])?;
        wait_received(&bob, "alice", &["before the backup", "after the restore"])?;
        bob.send_when_ready("alice", "bob after", KEY_PACKAGES_TIMEOUT)?;
        wait_received(&alice, "bob", &["bob after"])?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

/// How many times `rhizo passphrase change` is killed.
const KILLS: usize = 8;

/// `rhizo --data-dir DIR passphrase change` as a child process, with the current passphrase
/// (none: a plaintext dir) and the new one in files.
fn spawn_change(
    dir: &Path,
    current: Option<&str>,
    new: &str,
) -> anyhow::Result<std::process::Child> {
    let mut command = std::process::Command::new(bin());
    command
        .arg("--data-dir")
        .arg(dir)
        .args(["passphrase", "change"])
        .env_remove("RUST_LOG")
        .env_remove("RHIZO_PASSPHRASE_FILE")
        .env("RHIZO_MDNS", "false")
        .env("XDG_CONFIG_HOME", dir.join("no-config"))
        .env("RHIZO_NEW_PASSPHRASE_FILE", new)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(current) = current {
        command.env("RHIZO_PASSPHRASE_FILE", current);
    }
    command
        .spawn()
        .context("cannot run rhizo passphrase change")
}

/// Whether `rhizo id` succeeds on `node` with this passphrase file (none: without one).
fn unlocks(node: &mut TestNode, passphrase: Option<&str>) -> anyhow::Result<bool> {
    node.set_env("RHIZO_PASSPHRASE_FILE", passphrase.unwrap_or(""));
    Ok(node.cli(&["id", "--json"])?.status.success())
}

/// Copies the files of a stopped node's data dir (one level of subdirectories).
fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        let target = to.join(path.file_name().context("a file name")?);
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)?;
        }
    }
    Ok(())
}

#[test]
fn a_passphrase_change_killed_at_random_points_loses_nothing() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let first = passphrase_file(&secrets, "first", "the first passphrase\n");
    let second = passphrase_file(&secrets, "second", "the second passphrase\n");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, "bob")?;
        alice.send_when_ready("bob", "kept through the kills", KEY_PACKAGES_TIMEOUT)?;
        bob.send_when_ready("alice", "and this one too", KEY_PACKAGES_TIMEOUT)?;
        wait_received(&alice, "bob", &["and this one too"])?;
        alice.stop()?;

        // How long a whole change takes here (on a copy): the kills fall within 1.2 times that.
        let scratch = tempfile::tempdir()?;
        copy_dir(alice.data_dir(), scratch.path())?;
        let started = std::time::Instant::now();
        let status = spawn_change(scratch.path(), None, &first)?.wait()?;
        ensure!(status.success(), "a whole change on the copy failed");
        let whole = u64::try_from(started.elapsed().as_millis())
            .unwrap_or(u64::MAX / 2)
            .max(1);
        let seed = u64::from(std::process::id()) ^ whole;
        eprintln!("whole change: {whole} ms; kill seed {seed}");
        let mut rng = seed | 1;

        let mut current: Option<&str> = None;
        for kill in 0..KILLS {
            let new = if current == Some(first.as_str()) {
                second.as_str()
            } else {
                first.as_str()
            };
            // xorshift64: a delay in [0, 1.2 × whole) ms.
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let delay = rng % (whole * 6 / 5 + 1);
            let mut child = spawn_change(alice.data_dir(), current, new)?;
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill();
            let status = child.wait()?;
            // The next unlock recovers first: the new passphrase (the change got past its
            // commit point) or the current one (it did not); never neither.
            if unlocks(&mut alice, Some(new))? && alice.data_dir().join("vault").exists() {
                current = Some(new);
            } else {
                ensure!(
                    unlocks(&mut alice, current)?,
                    "kill {kill} after {delay} ms ({status}): neither passphrase unlocks"
                );
            }
            eprintln!(
                "kill {kill} after {delay} ms ({status}): encrypted: {}",
                current.is_some()
            );
        }
        // A last change runs to its end from wherever the kills left it.
        let new = if current == Some(first.as_str()) {
            second.as_str()
        } else {
            first.as_str()
        };
        let status = spawn_change(alice.data_dir(), current, new)?.wait()?;
        ensure!(status.success(), "the last change failed");
        if let Some(old) = current {
            ensure!(
                !unlocks(&mut alice, Some(old))?,
                "the old passphrase still unlocks"
            );
        }
        alice.set_env("RHIZO_PASSPHRASE_FILE", new);
        alice.start(&[])?;
        let list = alice.history("bob")?;
        for text in ["kept through the kills", "and this one too"] {
            ensure!(
                list.iter().any(|m| m["text"] == text),
                "{text:?} lost: {list:?}"
            );
        }
        let bytes = std::fs::read(alice.data_dir().join("rhizo.db"))?;
        ensure!(
            !contains(&bytes, b"SQLite format 3"),
            "the database is encrypted"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}
