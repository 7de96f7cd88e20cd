//! Operating a node, with the real `rhizo` binary: `rhizo doctor` on real data dirs (healthy,
//! with a permission problem and a corrupt database, and beside a running node that measured
//! its peer's clock), `rhizo completions` parsed by the shells themselves, and `rhizo man`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rhizo_test_utils::{TestNode, befriend, wait_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// The first message waits for the contact's KeyPackages in the DHT.
const KEY_PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for the receipt that gives the first clock-skew sample.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);
/// Subcommands the completions and the man page must name (a sample across the CLI).
const SUBCOMMANDS: &[&str] = &[
    "init",
    "run",
    "status",
    "doctor",
    "completions",
    "man",
    "send",
    "group",
    "device",
    "task",
];

fn bin() -> &'static Path {
    Path::new(BIN)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The verdict line of `check` in `rhizo doctor`'s output.
fn line<'a>(stdout: &'a str, check: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| {
            l.get(9..)
                .is_some_and(|rest| rest.starts_with(&format!("{check}:")))
        })
        .unwrap_or_else(|| panic!("no `{check}` verdict in:\n{stdout}"))
}

fn assert_no_panic(out: &Output) {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "rhizo panicked:\n{stderr}");
}

#[test]
fn doctor_passes_a_fresh_data_dir_and_says_what_it_could_not_check() {
    let node = TestNode::init(bin(), "doc-fresh").expect("init");
    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    let stdout = text(&out.stdout);
    assert_no_panic(&out);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(
        line(&stdout, "data dir permissions").starts_with("ok "),
        "{stdout}"
    );
    assert!(line(&stdout, "database").starts_with("ok "), "{stdout}");
    assert!(
        line(&stdout, "database").contains("integrity ok"),
        "{stdout}"
    );
    assert!(line(&stdout, "node").starts_with("unknown "), "{stdout}");
    assert!(
        line(&stdout, "clock skew").starts_with("unknown "),
        "{stdout}"
    );
    // No bootstrap peer and no peer book: a warning with its fix, not a failure.
    assert!(
        line(&stdout, "bootstrap peers").starts_with("warn "),
        "{stdout}"
    );
    assert!(
        stdout.contains("fix: add a node you know with --bootstrap"),
        "{stdout}"
    );

    let json = node
        .cli(&["doctor", "--offline", "--json"])
        .expect("doctor --json");
    let verdicts: Vec<Value> = serde_json::from_slice(&json.stdout).expect("JSON verdicts");
    assert!(verdicts.iter().any(|v| v["check"] == "disk space"));
    assert!(
        verdicts.iter().all(|v| v["status"] != "problem"),
        "{verdicts:?}"
    );
}

/// An encrypted data dir (`init --passphrase`): doctor checks its database with the key from
/// `RHIZO_PASSPHRASE_FILE`, and a wrong passphrase is one clear problem, nothing changed.
#[test]
fn doctor_checks_an_encrypted_database_with_its_passphrase() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let (right, wrong) = (secrets.path().join("right"), secrets.path().join("wrong"));
    std::fs::write(&right, "a passphrase for the doctor\n").expect("passphrase file");
    std::fs::write(&wrong, "not the passphrase\n").expect("passphrase file");
    let right = right.to_string_lossy().into_owned();
    let mut node = TestNode::init_with_env(
        bin(),
        "doc-enc",
        &["init", "--name", "doc-enc", "--passphrase"],
        &[("RHIZO_PASSPHRASE_FILE", right.as_str())],
    )
    .expect("init --passphrase");
    let before = std::fs::read(node.data_dir().join("rhizo.db")).expect("the database");

    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    let stdout = text(&out.stdout);
    assert_no_panic(&out);
    assert!(line(&stdout, "database").starts_with("ok "), "{stdout}");

    node.set_env("RHIZO_PASSPHRASE_FILE", &wrong.to_string_lossy());
    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    let stdout = text(&out.stdout);
    assert_no_panic(&out);
    let database = line(&stdout, "database");
    assert!(database.starts_with("PROBLEM "), "{stdout}");
    assert!(database.contains("could not be unlocked"), "{stdout}");
    let after = std::fs::read(node.data_dir().join("rhizo.db")).expect("the database");
    assert_eq!(before, after, "a wrong passphrase changes nothing");
}

#[test]
fn doctor_names_a_permission_problem_and_a_corrupt_database_with_their_fixes() {
    let node = TestNode::init(bin(), "doc-broken").expect("init");
    let dir = node.data_dir();
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let key = dir.join("device.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod key");
    // Damage every page of the database after the first (header and schema stay readable).
    let db = dir.join("rhizo.db");
    let mut bytes = std::fs::read(&db).expect("read db");
    assert!(bytes.len() > 4096, "the database has more than one page");
    for b in bytes.iter_mut().skip(4096) {
        *b = 0xa5;
    }
    std::fs::write(&db, &bytes).expect("corrupt db");

    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert_no_panic(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("problems found"), "{stderr}");
    let perms = line(&stdout, "data dir permissions");
    assert!(perms.starts_with("PROBLEM "), "{stdout}");
    assert!(perms.contains("0755"), "{stdout}");
    assert!(
        stdout.contains(&format!("fix: chmod 700 {}", dir.display())),
        "{stdout}"
    );
    let database = line(&stdout, "database");
    assert!(database.starts_with("PROBLEM "), "{stdout}");
    assert!(stdout.contains("restore a backup"), "{stdout}");

    // The directory fixed, the open key file is the next thing named.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).expect("chmod dir");
    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    let stdout = text(&out.stdout);
    assert!(
        line(&stdout, "data dir permissions").contains("device.key"),
        "{stdout}"
    );
    assert!(stdout.contains("chmod 600 device.key"), "{stdout}");

    // A database that is not SQLite at all.
    std::fs::write(&db, vec![0x5a; 8192]).expect("garbage db");
    let out = node.cli(&["doctor", "--offline"]).expect("doctor");
    assert_no_panic(&out);
    let stdout = text(&out.stdout);
    assert!(
        line(&stdout, "database").contains("not a readable SQLite database"),
        "{stdout}"
    );
}

#[test]
fn doctor_beside_a_running_node_reads_the_clock_skew_and_the_bootstrap_connection() {
    let mut bob = TestNode::init(bin(), "doc-bob").expect("init bob");
    bob.start(&[]).expect("start bob");
    let bob_addr = bob.listen_addr().expect("bob's address");
    let mut alice = TestNode::init(bin(), "doc-alice").expect("init alice");
    alice
        .start(&["--bootstrap".into(), bob_addr.clone()])
        .expect("start alice");
    befriend(&alice, "alice", &bob, "bob").expect("befriend");
    alice
        .send_when_ready("bob", "what time is it?", KEY_PACKAGES_TIMEOUT)
        .expect("send");
    wait_for(
        RECEIPT_TIMEOUT,
        "a clock-skew sample from bob's receipt",
        || {
            let stats = alice.api_get("/v1/stats").ok()?;
            stats["clock_skew"]["median_ms"].as_i64()
        },
    )
    .unwrap_or_else(|e| panic!("{e:#}\n{}", alice.logs_tail(64 * 1024)));

    // The bootstrap peer as the service would configure it (environment).
    let out = Command::new(bin())
        .arg("--data-dir")
        .arg(alice.data_dir())
        .arg("doctor")
        .env_remove("RUST_LOG")
        .env("RHIZO_BOOTSTRAP", &bob_addr)
        .env("XDG_CONFIG_HOME", alice.data_dir().join("no-config"))
        .stdin(Stdio::null())
        .output()
        .expect("doctor");
    let stdout = text(&out.stdout);
    assert_no_panic(&out);
    assert!(line(&stdout, "node").starts_with("ok "), "{stdout}");
    // The integrity check reads beside the running node's writer.
    assert!(line(&stdout, "database").starts_with("ok "), "{stdout}");
    // Both clocks are this machine's: well within the bound.
    let clock = line(&stdout, "clock skew");
    assert!(
        clock.starts_with("ok ") && clock.contains("of 1 peer"),
        "{stdout}"
    );
    assert!(
        line(&stdout, "bootstrap peers").starts_with("ok "),
        "{stdout}"
    );
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
}

/// Runs `rhizo ARGS` to completion (no data dir needed).
fn rhizo(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rhizo")
}

/// Whether `program` can be run here.
fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn completions_parse_in_their_shells_and_name_the_subcommands() {
    let dir = tempfile::tempdir().expect("tempdir");
    // (shell, file, the shell's syntax-only check)
    let shells: [(&str, &str, &[&str]); 3] = [
        ("bash", "rhizo.bash", &["-n"]),
        ("zsh", "_rhizo", &["-n"]),
        ("fish", "rhizo.fish", &["--no-execute"]),
    ];
    for (shell, file, check) in shells {
        let out = rhizo(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "{shell} completions lack `{sub}`");
        }
        if !have(shell) {
            eprintln!("SKIPPED: {shell} is not installed; its completion script was not parsed");
            continue;
        }
        let path = dir.path().join(file);
        std::fs::write(&path, &script).expect("write script");
        let parsed = Command::new(shell)
            .args(check)
            .arg(&path)
            .output()
            .expect("run the shell");
        assert!(
            parsed.status.success(),
            "{shell} rejects its completion script: {}",
            text(&parsed.stderr)
        );
    }
    let bad = rhizo(&["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn the_man_page_is_roff_naming_every_subcommand_and_renders() {
    let out = rhizo(&["man"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let page = text(&out.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH rhizo"),
        "{page}"
    );
    assert!(page.contains(".TH rhizo 1"), "no title header:\n{page}");
    assert!(
        page.contains("rhizo \\- decentralized"),
        "NAME line:\n{page}"
    );
    for sub in SUBCOMMANDS {
        assert!(
            page.contains(&format!("rhizo\\-{sub}")) || page.contains(sub),
            "no `{sub}`"
        );
    }
    if have("groff") {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.1");
        std::fs::write(&path, &page).expect("write page");
        // -ww: every warning; -z: parse and format, print nothing; -k: UTF-8 input (preconv).
        let rendered = Command::new("groff")
            .args(["-man", "-ww", "-z", "-k"])
            .arg(&path)
            .output()
            .expect("groff");
        assert!(rendered.status.success(), "{}", text(&rendered.stderr));
        assert_eq!(text(&rendered.stderr), "", "groff warnings");
    } else {
        eprintln!("SKIPPED: groff is not installed; the man page was not rendered");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let written = rhizo(&["man", "--dir", &dir.path().display().to_string()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    for page in ["rhizo.1", "rhizo-doctor.1", "rhizo-send.1"] {
        assert!(dir.path().join(page).exists(), "{page} not written");
    }
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    if !have("systemd-analyze") {
        eprintln!("SKIPPED: systemd-analyze is not installed; the unit was not verified");
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let unit = std::fs::read_to_string(root.join("contrib/systemd/rhizo.service")).expect("unit");
    assert!(unit.contains("ProtectSystem=strict") && unit.contains("NoNewPrivileges=yes"));
    // verify wants the binary the unit names to exist, and its man page (Documentation=).
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit.replace("/usr/local/bin/rhizo", BIN);
    let path = dir.path().join("rhizo.service");
    std::fs::write(&path, unit).expect("write unit");
    let man = dir.path().join("man/man1");
    let written = rhizo(&["man", "--dir", &man.display().to_string()]);
    assert!(written.status.success(), "{}", text(&written.stderr));
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("MANPATH", dir.path().join("man"))
        .output()
        .expect("systemd-analyze");
    // It exits 0 on an unknown key or a bad value, and says so on stderr: any output fails.
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );
}
