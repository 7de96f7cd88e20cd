//! The checks that need only the data dir: permissions, the database, free disk space.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rhizo_node::DataDir;
use rhizo_store::{SCHEMA_VERSION, StoreError, check_integrity_keyed};

use super::Verdict;

/// Files that hold secrets or private data: mode 0600 (data_dir.rs's table), owned by the user
/// the node runs as. Public files (device.cert, identity.pub, api.addr) may be world-readable.
const PRIVATE_FILES: &[&str] = &[
    "root.key",
    "device.key",
    "pending-link",
    "link.secret",
    "api.token",
    "rhizo.db",
    "rhizo.db-wal",
    "rhizo.db-shm",
];

/// Below this much free space the node can fail to commit (SQLite needs room for its WAL).
pub(super) const MIN_FREE_BYTES: u64 = 100 << 20;
/// Below this much free space it is time to make room (files and mailboxes grow).
pub(super) const LOW_FREE_BYTES: u64 = 1 << 30;

/// A file's mode bits and owner, as the checks need them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owned {
    pub(super) mode: u32,
    pub(super) uid: u32,
}

/// The data dir's and its private files' modes and owners, checked against `me` (our effective
/// user id).
pub(super) fn permissions_verdict(
    dir: &Path,
    dir_meta: Owned,
    files: &[(String, Owned)],
    me: u32,
) -> Verdict {
    const CHECK: &str = "data dir permissions";
    let shown = dir.display();
    let foreign: Vec<&str> = files
        .iter()
        .filter(|(_, o)| o.uid != me)
        .map(|(n, _)| n.as_str())
        .collect();
    if dir_meta.uid != me || !foreign.is_empty() {
        let what = if dir_meta.uid != me {
            format!("{shown} is owned by uid {}", dir_meta.uid)
        } else {
            format!("{} in {shown} owned by another user", foreign.join(", "))
        };
        return Verdict::problem(
            CHECK,
            format!("{what}, not by you (uid {me}): the node cannot use its files"),
            format!(
                "run rhizo as the data dir's owner, or `chown -R {me} {shown}` (as root, node stopped)"
            ),
        );
    }
    if dir_meta.mode & 0o700 != 0o700 {
        return Verdict::problem(
            CHECK,
            format!(
                "{shown} is mode {:04o}: you cannot read or write it",
                dir_meta.mode & 0o7777
            ),
            format!("chmod 700 {shown}"),
        );
    }
    if dir_meta.mode & 0o077 != 0 {
        return Verdict::problem(
            CHECK,
            format!(
                "{shown} is mode {:04o}: other users can reach the keys and the database",
                dir_meta.mode & 0o7777
            ),
            format!("chmod 700 {shown}"),
        );
    }
    let open: Vec<&(String, Owned)> = files.iter().filter(|(_, o)| o.mode & 0o077 != 0).collect();
    if let Some((first, o)) = open.first() {
        let names: Vec<&str> = open.iter().map(|(n, _)| n.as_str()).collect();
        return Verdict::problem(
            CHECK,
            format!(
                "{} readable by other users ({first} is {:04o}; secrets must be 0600)",
                names.join(", "),
                o.mode & 0o7777
            ),
            format!("cd {shown} && chmod 600 {}", names.join(" ")),
        );
    }
    Verdict::ok(
        CHECK,
        format!(
            "{shown} is 0700 and yours; {} private file(s) are 0600",
            files.len()
        ),
    )
}

pub(super) fn permissions(dir: &DataDir) -> Verdict {
    const CHECK: &str = "data dir permissions";
    let shown = dir.path().display();
    let dir_meta = match std::fs::metadata(dir.path()) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            return Verdict::problem(
                CHECK,
                format!("{shown} is not a directory"),
                "pass the data dir with --data-dir DIR (or RHIZO_DATA_DIR)",
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Verdict::problem(
                CHECK,
                format!("{shown} does not exist"),
                "run `rhizo init`, or pass the data dir with --data-dir DIR",
            );
        }
        Err(e) => {
            return Verdict::problem(
                CHECK,
                format!("cannot read {shown}: {e}"),
                "run rhizo as the data dir's owner",
            );
        }
    };
    if !dir.is_initialised() {
        return Verdict::problem(
            CHECK,
            format!("{shown} holds no identity"),
            "run `rhizo init` (or pass the data dir of your node with --data-dir DIR)",
        );
    }
    let files: Vec<(String, Owned)> = PRIVATE_FILES
        .iter()
        .filter_map(|name| {
            let meta = std::fs::symlink_metadata(dir.path().join(name)).ok()?;
            Some((name.to_string(), owned(&meta)))
        })
        .collect();
    permissions_verdict(
        dir.path(),
        owned(&dir_meta),
        &files,
        rustix::process::geteuid().as_raw(),
    )
}

fn owned(meta: &std::fs::Metadata) -> Owned {
    Owned {
        mode: meta.mode(),
        uid: meta.uid(),
    }
}

/// The database's verdict from its integrity check.
pub(super) fn database_verdict(
    path: &Path,
    checked: Result<rhizo_store::IntegrityReport, StoreError>,
) -> Verdict {
    const CHECK: &str = "database";
    let shown = path.display();
    let restore = "stop the node, move it aside (`mv rhizo.db rhizo.db.damaged`) and restore a \
                   backup, or start fresh with an empty database (contacts and history are lost)";
    match checked {
        Ok(r) if !r.is_ok() => Verdict::problem(
            CHECK,
            format!("{shown} is damaged: {}", r.problems.join("; ")),
            restore,
        ),
        Ok(r) if r.schema_version > SCHEMA_VERSION => Verdict::problem(
            CHECK,
            format!(
                "{shown} has schema version {}, newer than this rhizo knows ({SCHEMA_VERSION})",
                r.schema_version
            ),
            "upgrade rhizo to the version that wrote it",
        ),
        Ok(r) if r.schema_version < SCHEMA_VERSION => Verdict::ok(
            CHECK,
            format!(
                "integrity ok; schema version {} (upgraded to {SCHEMA_VERSION} at the next start)",
                r.schema_version
            ),
        ),
        Ok(_) => Verdict::ok(
            CHECK,
            format!("integrity ok; schema version {SCHEMA_VERSION}"),
        ),
        Err(e @ StoreError::NotADatabase { .. }) => Verdict::problem(
            CHECK,
            format!(
                "{shown} is not a readable SQLite database ({})",
                source_of(&e)
            ),
            restore,
        ),
        Err(e) => Verdict::problem(
            CHECK,
            format!("cannot check {shown}: {}", source_of(&e)),
            "check the file's owner and mode (see the permissions check)",
        ),
    }
}

/// The database verdict; `key` is the key of an encrypted data dir that was unlocked.
pub(super) fn database(path: &Path, key: Option<&rhizo_store::DbKey>) -> Verdict {
    if !path.exists() {
        return Verdict::ok(
            "database",
            format!(
                "{} not created yet (the first `rhizo run` does)",
                path.display()
            ),
        );
    }
    database_verdict(path, check_integrity_keyed(path, key))
}

/// The verdict for an encrypted data dir that could not be unlocked (no passphrase file given,
/// or a wrong passphrase): nothing is checked, nothing is changed.
pub(super) fn locked_database(why: Option<String>) -> Verdict {
    match why {
        None => Verdict::unknown("database", "encrypted (a passphrase is needed to check it)"),
        Some(e) => Verdict::problem(
            "database",
            format!("encrypted, and it could not be unlocked: {e}"),
            "check the passphrase in the file RHIZO_PASSPHRASE_FILE names",
        ),
    }
}

/// The innermost cause of `e`, in one line (what SQLite said).
fn source_of(e: &(dyn std::error::Error + 'static)) -> String {
    let mut inner = e;
    while let Some(next) = inner.source() {
        inner = next;
    }
    inner.to_string()
}

/// The disk-space verdict for `free` bytes available of `total`.
pub(super) fn disk_verdict(dir: &Path, free: u64, total: u64) -> Verdict {
    const CHECK: &str = "disk space";
    let detail = format!(
        "{} free of {} on the file system of {}",
        human(free),
        human(total),
        dir.display()
    );
    let fix = "free some space there, or move the data dir to a larger disk (--data-dir)";
    if free < MIN_FREE_BYTES {
        Verdict::problem(CHECK, format!("{detail}: writes may fail"), fix)
    } else if free < LOW_FREE_BYTES {
        Verdict::warn(CHECK, format!("{detail}: running low"), fix)
    } else {
        Verdict::ok(CHECK, detail)
    }
}

pub(super) fn disk_space(dir: &Path) -> Verdict {
    match rustix::fs::statvfs(dir) {
        Ok(s) => disk_verdict(
            dir,
            s.f_bavail.saturating_mul(s.f_frsize),
            s.f_blocks.saturating_mul(s.f_frsize),
        ),
        Err(e) => Verdict::unknown(
            "disk space",
            format!("cannot read the file system of {}: {e}", dir.display()),
        ),
    }
}

/// Bytes for people: `512 MiB`, `3.2 GiB`.
pub(super) fn human(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    if bytes >= GIB {
        format!("{:.1} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
