//! The one error type of this crate.

use std::path::PathBuf;

use crate::peer_book::MAX_PEER_ID_BYTES;

/// Why a [`Store`](crate::Store) operation failed.
///
/// Each message says what happened and, where the user can do something
/// about it, what to do. The underlying SQLite or I/O error is kept as the
/// [`source`](std::error::Error::source) (print the chain, e.g. with
/// `anyhow`'s `{:#}`, to see it).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be created or opened for writing.
    #[error("could not create or open database file {}", path.display())]
    CreateFile {
        /// The database file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// SQLite could not open the database file.
    #[error("could not open database {}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: SqliteError,
    },

    /// The file exists but is not an SQLite database, or is damaged.
    #[error(
        "{} is not a rhizo database or is corrupt: move it away to start fresh, or restore a backup",
        path.display()
    )]
    NotADatabase {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: SqliteError,
    },

    /// The database was written by a newer rhizo than this one.
    #[error(
        "database schema version {found} is newer than this rhizo (knows {known}): upgrade rhizo"
    )]
    SchemaTooNew {
        /// The schema version found in the file.
        found: u32,
        /// The newest schema version this build knows ([`SCHEMA_VERSION`](crate::SCHEMA_VERSION)).
        known: u32,
    },

    /// Applying a schema migration failed; the database was left at the
    /// previous version.
    #[error("could not upgrade the database to schema version {version}")]
    Migration {
        /// The version the failed migration would have produced.
        version: u32,
        /// What SQLite said.
        #[source]
        source: SqliteError,
    },

    /// A peer id was empty or longer than [`MAX_PEER_ID_BYTES`].
    #[error("invalid peer id of {len} bytes (expected 1 to {MAX_PEER_ID_BYTES} bytes)")]
    InvalidPeerId {
        /// Length of the rejected peer id, in bytes.
        len: usize,
    },

    /// Any other SQLite failure, with what we were doing at the time.
    #[error("database error while {context}")]
    Sqlite {
        /// What the store was doing, e.g. "reading the peer book".
        context: &'static str,
        /// What SQLite said.
        #[source]
        source: SqliteError,
    },
    /// A contact name is already used for another UID.
    #[error(
        "the name '{0}' already belongs to another contact with a DIFFERENT key: this may be an \
         impersonation or a reinstall; compare safety numbers, then pick another name"
    )]
    NameTaken(String),
    /// A device key is already listed for another contact: one device key belongs to at most
    /// one contact.
    #[error(
        "device {device} is already listed for your contact '{contact}': a device belongs to \
         one person only, so this ticket or device list claims someone else's device; do not \
         add it (compare safety numbers with '{contact}' and with the sender)"
    )]
    DeviceKeyTaken {
        /// The device public key, hex.
        device: String,
        /// The local name of the contact that already has it.
        contact: String,
    },
    /// A mailbox quota is full; nothing already stored was touched.
    #[error("mailbox quota: {0}")]
    QuotaExceeded(String),
    /// An argument is out of range.
    #[error("{0}")]
    InvalidInput(String),
    /// A bounded table (the ban list, the joined channels) is full and nothing in it may be
    /// dropped to make room; nothing was changed. The message says what to remove.
    #[error("{0}")]
    TableFull(String),
    /// A group bound (groups per node, members per group, pending changes, held group
    /// requests) would be exceeded; nothing was changed.
    #[error("too many {what}: at most {max}; remove one first")]
    LimitReached {
        /// What is bounded.
        what: &'static str,
        /// The bound.
        max: usize,
    },
}

/// Attaches "while doing X" to a raw SQLite result.
pub(crate) trait SqliteContext<T> {
    /// Wraps an error as [`StoreError::Sqlite`] with `context`.
    fn context(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> SqliteContext<T> for rusqlite::Result<T> {
    fn context(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite {
            context,
            source: source.into(),
        })
    }
}

/// What SQLite said, kept as the [`source`](std::error::Error::source) of a [`StoreError`]
/// (its text is SQLite's message; the SQLite types stay inside this crate).
#[derive(Debug)]
pub struct SqliteError(rusqlite::Error);

impl SqliteError {
    /// Whether SQLite said the database is busy or locked (another connection holds the lock
    /// longer than the busy timeout).
    pub fn is_busy(&self) -> bool {
        matches!(
            self.0.sqlite_error_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        )
    }
}

impl std::fmt::Display for SqliteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SqliteError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<rusqlite::Error> for SqliteError {
    fn from(e: rusqlite::Error) -> Self {
        Self(e)
    }
}
