//! Encrypting a data dir in place, and changing its passphrase: the same migration, from the
//! current state (plaintext, or the old vault key) to a new vault key.
//!
//! Nothing is overwritten until everything new is on disk; the rename of `vault.next` to
//! `vault` is the one commit point. An interrupted migration is finished or undone by
//! [`recover`], which every unlock runs first:
//!
//! ```text
//!  1 vault.next        the new vault key, wrapped under the new passphrase      (fsync)
//!  2 rhizo.db.next     sqlcipher_export of the database under the new key      (fsync)
//!  3 *.key.next, link.secret.next   the secret files sealed with the new key  (fsync, dir)
//!  4 rename vault.next ─▶ vault                                         commit (dir fsync)
//!  5 rename rhizo.db.next ─▶ rhizo.db (its old -wal/-shm removed), *.next ─▶ *    (dir fsync)
//!  recover: vault.next exists ─▶ before the commit: remove every *.next (the old state is
//!           whole); otherwise a *.next left ─▶ after it: do step 5 again
//! ```

use std::path::{Path, PathBuf};

use super::{
    KdfParams, PASSPHRASE_FILE_ENV, Passphrase, VAULT_FILE, VaultError, VaultKey, decode_vault,
    encode_vault, read_vault_file,
};
use crate::data_dir::{DataDir, LINK_SECRET_FILE_BYTES, sync_dir, write_new_file};

/// The suffix of a file written by a migration before its commit.
const NEXT: &str = ".next";
/// The secret files a migration seals again, with their largest secret size.
const SECRET_FILES: [(&str, usize); 3] = [
    ("root.key", 32),
    ("device.key", 32),
    ("link.secret", LINK_SECRET_FILE_BYTES),
];
/// The database and its side files.
const DATABASE: &str = "rhizo.db";

/// The points between the steps of a migration (where a test injects a failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// `vault.next` is written.
    VaultWritten,
    /// `rhizo.db.next` is written.
    DatabaseExported,
    /// The sealed `*.next` secret files are written.
    SecretsWritten,
    /// `vault.next` was renamed to `vault` (committed), nothing else moved yet.
    Committed,
}

impl Step {
    /// The step's name (in an injected failure).
    #[cfg(test)]
    fn name(self) -> &'static str {
        match self {
            Self::VaultWritten => "vault written",
            Self::DatabaseExported => "database exported",
            Self::SecretsWritten => "secrets written",
            Self::Committed => "committed",
        }
    }

    /// Every step, in order.
    #[cfg(test)]
    pub(crate) const ALL: [Self; 4] = [
        Self::VaultWritten,
        Self::DatabaseExported,
        Self::SecretsWritten,
        Self::Committed,
    ];
}

fn next(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{NEXT}"))
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VaultError {
    let path = path.to_owned();
    move |source| VaultError::Io {
        action,
        path,
        source,
    }
}

fn remove_if_present(path: &Path) -> Result<(), VaultError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("cannot remove", path)(e)),
        _ => Ok(()),
    }
}

fn rename_if_present(from: &Path, to: &Path) -> Result<(), VaultError> {
    if from.exists() {
        std::fs::rename(from, to).map_err(io("cannot rename", from))?;
    }
    Ok(())
}

fn sync(dir: &Path) -> Result<(), VaultError> {
    sync_dir(dir).map_err(|e| VaultError::DataDir(Box::new(e)))
}

/// Finishes (after its commit) or undoes (before it) a migration of `dir` that was
/// interrupted; does nothing when none was.
///
/// # Errors
///
/// If a file cannot be removed or renamed.
pub(crate) fn recover(dir: &Path) -> Result<(), VaultError> {
    let vault_next = next(dir, VAULT_FILE);
    if vault_next.exists() {
        remove_if_present(&next(dir, DATABASE))?;
        for (name, _) in SECRET_FILES {
            remove_if_present(&next(dir, name))?;
        }
        remove_if_present(&vault_next)?;
        tracing::info!("an interrupted passphrase change was undone; nothing was lost");
        return sync(dir);
    }
    roll_forward(dir)
}

/// Step 5: the committed new files take their places (idempotent).
fn roll_forward(dir: &Path) -> Result<(), VaultError> {
    let db_next = next(dir, DATABASE);
    let mut moved = false;
    if db_next.exists() {
        // The old database's write-ahead log and index must not be read with the new file.
        for side in ["-wal", "-shm"] {
            remove_if_present(&dir.join(format!("{DATABASE}{side}")))?;
        }
        rename_if_present(&db_next, &dir.join(DATABASE))?;
        moved = true;
    }
    for (name, _) in SECRET_FILES {
        let file = next(dir, name);
        moved |= file.exists();
        rename_if_present(&file, &dir.join(name))?;
    }
    if moved {
        sync(dir)?;
    }
    Ok(())
}

impl DataDir {
    /// This data dir unlocked with `passphrase` (an interrupted migration is recovered
    /// first). A plaintext data dir is returned as it is.
    ///
    /// # Errors
    ///
    /// [`VaultError::WrongPassphrase`] (nothing is changed), a damaged vault file, I/O.
    pub fn unlock(self, passphrase: &Passphrase) -> Result<Self, VaultError> {
        recover(self.path())?;
        if !self.is_encrypted() {
            return Ok(self);
        }
        let key = decode_vault(&read_vault_file(self.path())?, passphrase)?;
        Ok(self.with_vault(key))
    }

    /// This data dir, unlocked if it is encrypted: the passphrase comes from the file named
    /// by `RHIZO_PASSPHRASE_FILE`, or is typed at the terminal.
    ///
    /// # Errors
    ///
    /// As [`unlock`](Self::unlock); [`VaultError::NoPassphrase`] without either source.
    pub fn unlocked(self) -> Result<Self, VaultError> {
        recover(self.path())?;
        if !self.is_encrypted() || self.vault().is_some() {
            return Ok(self);
        }
        let prompt = format!("Passphrase of {}: ", self.path().display());
        let passphrase = Passphrase::from_env_or_prompt(PASSPHRASE_FILE_ENV, &prompt)?;
        self.unlock(&passphrase)
    }

    /// Makes this new data dir (no identity, no database yet; created if missing) an
    /// encrypted one: writes its `vault` file. Returns it unlocked. A data dir that has a
    /// vault already is unlocked with `passphrase` instead.
    ///
    /// # Errors
    ///
    /// [`VaultError::NotFresh`] if it holds an identity or a database already (`rhizo
    /// passphrase change` encrypts that in place); I/O.
    pub fn create_vault(
        self,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, VaultError> {
        if self.is_encrypted() {
            return self.unlock(passphrase);
        }
        if self.is_initialised() || self.database().exists() {
            return Err(VaultError::NotFresh(self.path().to_owned()));
        }
        self.create()
            .map_err(|e| VaultError::DataDir(Box::new(e)))?;
        let key = VaultKey::generate()?;
        let bytes = encode_vault(&key, passphrase, params)?;
        write_new_file(&self.path().join(VAULT_FILE), &bytes, 0o600)
            .map_err(|e| VaultError::DataDir(Box::new(e)))?;
        sync(self.path())?;
        Ok(self.with_vault(key))
    }

    /// Encrypts this plaintext data dir in place with `passphrase`, or, when it is encrypted
    /// (and unlocked), changes its passphrase: a new vault key, the database exported under
    /// it, the key files sealed again. The node must not be running. Returns the data dir
    /// unlocked with the new key.
    ///
    /// # Errors
    ///
    /// [`VaultError::NoPassphrase`] for an encrypted data dir not unlocked; the data dir's
    /// lock held by a running node; I/O and database failures (then nothing has changed, or
    /// the next unlock finishes the change).
    pub fn set_passphrase(
        &self,
        passphrase: &Passphrase,
        params: KdfParams,
    ) -> Result<Self, VaultError> {
        self.migrate(passphrase, params, None)
    }

    /// [`set_passphrase`](Self::set_passphrase), stopping with [`VaultError::Injected`] after
    /// the step `fail_at` (tests).
    pub(crate) fn migrate(
        &self,
        passphrase: &Passphrase,
        params: KdfParams,
        fail_at: Option<Step>,
    ) -> Result<Self, VaultError> {
        if self.is_encrypted() && self.vault().is_none() {
            return Err(VaultError::NoPassphrase);
        }
        let _lock = self.lock().map_err(|e| VaultError::DataDir(Box::new(e)))?;
        let dir = self.path();
        recover(dir)?;
        let stop = |step: Step| check_injected(fail_at, step);
        let key = VaultKey::generate()?;
        let vault_bytes = encode_vault(&key, passphrase, params)?;
        let db_key = key.db_key();
        let new_dir = Self::new(dir).with_vault(key);
        write_new_file(&next(dir, VAULT_FILE), &vault_bytes, 0o600)
            .map_err(|e| VaultError::DataDir(Box::new(e)))?;
        sync(dir)?;
        stop(Step::VaultWritten)?;
        if self.database().exists() {
            let store = self.open_store()?;
            store.checkpoint()?;
            store.export_to(&next(dir, DATABASE), Some(&db_key))?;
        }
        stop(Step::DatabaseExported)?;
        for (name, max) in SECRET_FILES {
            let file = dir.join(name);
            if file.exists() {
                let secret = self
                    .read_secret_file(&file, max)
                    .map_err(|e| VaultError::DataDir(Box::new(e)))?;
                new_dir
                    .write_secret_file(&next(dir, name), &secret)
                    .map_err(|e| VaultError::DataDir(Box::new(e)))?;
            }
        }
        sync(dir)?;
        stop(Step::SecretsWritten)?;
        std::fs::rename(next(dir, VAULT_FILE), dir.join(VAULT_FILE))
            .map_err(io("cannot rename", &next(dir, VAULT_FILE)))?;
        sync(dir)?;
        stop(Step::Committed)?;
        roll_forward(dir)?;
        Ok(new_dir)
    }
}

#[cfg(test)]
fn check_injected(fail_at: Option<Step>, step: Step) -> Result<(), VaultError> {
    if fail_at == Some(step) {
        return Err(VaultError::Injected(step.name()));
    }
    Ok(())
}

#[cfg(not(test))]
fn check_injected(fail_at: Option<Step>, step: Step) -> Result<(), VaultError> {
    let _ = (fail_at, step);
    Ok(())
}
