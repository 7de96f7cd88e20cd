//! Encryption at rest (issue 20): the database is an SQLCipher file when the node has a
//! passphrase, keyed with a raw 256-bit key ([`DbKey`]; the passphrase's Argon2id derivation
//! is the caller's, SQLCipher's own PBKDF2 is skipped). Without a key the file is plain
//! SQLite, exactly as before.
//!
//! ```text
//!  Store::open_keyed(path, Some(key)) ─▶ PRAGMA key = "x'…'" (first statement) ─▶ WAL, migrate
//!  Store::export_to(dest, key)        ─▶ ATTACH dest KEY …; sqlcipher_export; user_version
//!                                        (a whole copy under another key, or none: how a
//!                                        plaintext dir is encrypted and a passphrase changed)
//! ```

use std::path::Path;

use rusqlite::Connection;
use zeroize::Zeroizing;

use crate::error::SqliteContext;
use crate::{Store, StoreError};

/// Bytes of a database key.
pub const DB_KEY_BYTES: usize = 32;

/// The raw key of an encrypted database. Zeroized on drop; its `Debug` shows nothing.
#[derive(Clone)]
pub struct DbKey(Zeroizing<[u8; DB_KEY_BYTES]>);

impl std::fmt::Debug for DbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DbKey(…)")
    }
}

impl DbKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; DB_KEY_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// SQLCipher's raw-key literal, `x'<64 hex digits>'` (zeroized on drop).
    fn literal(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("x'{}'", hex::encode(*self.0)))
    }
}

/// Keys a fresh connection: must run before any statement reads the file.
pub(crate) fn apply_key(conn: &Connection, key: &DbKey) -> Result<(), StoreError> {
    let version: Option<String> = conn
        .query_row("PRAGMA cipher_version", [], |row| row.get(0))
        .ok();
    if version.is_none_or(|v| v.is_empty()) {
        return Err(StoreError::InvalidInput(
            "this rhizo was built without SQLCipher and cannot open an encrypted database".into(),
        ));
    }
    conn.pragma_update(None, "key", &*key.literal())
        .context("setting the database key")
}

impl Store {
    /// Opens the database at `path` like [`open`](Self::open), decrypting it with `key` (an
    /// SQLCipher file), or as plain SQLite when `key` is `None`. A new file is created
    /// encrypted when a key is given.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open); a wrong key shows as [`StoreError::NotADatabase`].
    pub fn open_keyed(path: &Path, key: Option<&DbKey>) -> Result<Self, StoreError> {
        crate::create_private_file(path)?;
        let conn = Connection::open(path).map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source: source.into(),
        })?;
        if let Some(key) = key {
            apply_key(&conn, key)?;
        }
        let mut store = Self::init(conn, path)?;
        store.key = key.cloned();
        Ok(store)
    }

    /// Whether this database is opened with a key (an SQLCipher file).
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// Writes a complete copy of this database to the new file `dest`, encrypted with `key`
    /// (or plain SQLite with `None`), schema version included; the MLS tables are copied too.
    /// The write-ahead log is checkpointed first. `dest` must not exist; it is fsynced
    /// before this returns.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] if `dest` exists; SQLite or I/O failures.
    pub fn export_to(&self, dest: &Path, key: Option<&DbKey>) -> Result<(), StoreError> {
        if dest.exists() {
            return Err(StoreError::InvalidInput(format!(
                "{} exists already",
                dest.display()
            )));
        }
        crate::create_private_file(dest)?;
        let version = crate::migrations::user_version(&self.conn)?;
        let literal = key.map_or_else(|| Zeroizing::new(String::new()), DbKey::literal);
        let dest_text = dest.to_string_lossy();
        self.conn
            .execute(
                "ATTACH DATABASE ?1 AS export KEY ?2",
                [&*dest_text, literal.as_str()],
            )
            .context("attaching the export file")?;
        let exported = self
            .conn
            .query_row("SELECT sqlcipher_export('export')", [], |_| Ok(()))
            .context("exporting the database")
            .and_then(|()| {
                self.conn
                    .pragma_update(Some("export"), "user_version", version)
                    .context("writing the export's schema version")
            });
        let detached = self
            .conn
            .execute_batch("DETACH DATABASE export")
            .context("detaching the export file");
        exported.and(detached)?;
        std::fs::File::open(dest)
            .and_then(|f| f.sync_all())
            .map_err(|source| StoreError::CreateFile {
                path: dest.to_owned(),
                source,
            })
    }

    /// Creates or upgrades the MLS tables (openmls' storage, `rhizo-e2e`) in this database,
    /// on this connection (so an encrypted database needs no second key).
    ///
    /// # Errors
    ///
    /// If a migration of the MLS tables fails.
    pub fn migrate_mls(&mut self) -> Result<(), StoreError> {
        rhizo_e2e::E2eStore::migrate_connection(&mut self.conn)
            .map_err(|e| StoreError::InvalidInput(format!("creating the MLS tables: {e}")))
    }
}

#[cfg(test)]
mod tests;
