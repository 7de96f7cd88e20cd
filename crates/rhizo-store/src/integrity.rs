//! `PRAGMA integrity_check` on a database file, without changing it (`rhizo doctor`).
//!
//! The file is opened read-only, is not migrated and gets no connection settings, so a damaged
//! file stays as it was and a running node (WAL) keeps writing while the check reads. (An
//! encrypted store would need its key applied on this connection before the first read.)

use std::path::Path;

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{SqliteContext, StoreError};

/// Lines of `integrity_check` output kept: the first few say what is wrong, the rest would
/// only repeat it (SQLite stops after this many).
pub const MAX_INTEGRITY_LINES: usize = 10;

/// What [`check_integrity`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    /// The file's schema version (`PRAGMA user_version`).
    pub schema_version: u32,
    /// The problems SQLite reported (at most [`MAX_INTEGRITY_LINES`]); empty when it said `ok`.
    pub problems: Vec<String>,
}

impl IntegrityReport {
    /// Whether SQLite found nothing wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Runs `PRAGMA integrity_check` on the database at `path`, read-only.
///
/// # Errors
///
/// [`StoreError::NotADatabase`] if the file is not an SQLite database or its header is damaged,
/// [`StoreError::Open`] if it cannot be opened (missing, unreadable), [`StoreError::Sqlite`] if
/// the check itself fails.
pub fn check_integrity(path: &Path) -> Result<IntegrityReport, StoreError> {
    check_integrity_keyed(path, None)
}

/// [`check_integrity`] of an encrypted (SQLCipher) database, keyed with `key`; plain SQLite
/// when `key` is `None`.
///
/// # Errors
///
/// As [`check_integrity`]; a wrong key shows as [`StoreError::NotADatabase`].
pub fn check_integrity_keyed(
    path: &Path,
    key: Option<&crate::DbKey>,
) -> Result<IntegrityReport, StoreError> {
    let opened = |source: rusqlite::Error| match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotADatabase {
            path: path.to_owned(),
            source: source.into(),
        },
        _ => StoreError::Open {
            path: path.to_owned(),
            source: source.into(),
        },
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(opened)?;
    if let Some(key) = key {
        crate::cipher::apply_key(&conn, key)?;
    }
    conn.busy_timeout(crate::BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    // The first read of the file: where a file that is not SQLite at all shows up.
    let schema_version = conn
        .pragma_query_value(None, "user_version", |row| row.get::<_, u32>(0))
        .map_err(opened)?;
    let sql = format!("PRAGMA integrity_check({MAX_INTEGRITY_LINES})");
    let mut stmt = conn.prepare(&sql).map_err(opened)?;
    let lines = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(opened)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(opened)?;
    let problems = lines
        .into_iter()
        .filter(|line| line != "ok")
        .take(MAX_INTEGRITY_LINES)
        .collect();
    Ok(IntegrityReport {
        schema_version,
        problems,
    })
}

#[cfg(test)]
mod tests;
