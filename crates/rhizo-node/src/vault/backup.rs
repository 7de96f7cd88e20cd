//! `rhizo backup` / `rhizo restore` (issue 20): one passphrase-protected file holding the
//! identity, the settings and the database (contacts, profile, history, MLS state).
//!
//! ```text
//!  file = "rhzbkup1" ‖ m ‖ t ‖ p (u32 BE) ‖ salt(16) ‖ nonce(12)
//!         ‖ ChaCha20-Poly1305(Argon2id(passphrase, salt; m, t, p), nonce, entries, aad = header)
//!  entries = (name_len u16 BE ‖ name ‖ len u64 BE ‖ bytes)*   names: ENTRY_NAMES
//!  rhizo.db = an sqlcipher_export of the database under a one-off key (entry rhizo.db.key),
//!             so no plaintext copy of the database is ever written to disk
//! ```
//!
//! A restore writes the files into a fresh data dir (sealed, and the database exported under
//! the vault key, when that data dir has a passphrase). The MLS state comes back as it was at
//! the backup, but is not used as it was: the database carries a run token and the restored
//! data dir no `run.token`, so the node's start finds it restored ([`crate::restored`]) and
//! every conversation gets a fresh epoch of ours before our next message in it.

use std::path::Path;

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use rhizo_store::{DB_KEY_BYTES, DbKey};
use zeroize::Zeroizing;

use super::{KdfParams, Passphrase, VaultError, derive_kek};
use crate::data_dir::{DataDir, LINK_SECRET_FILE_BYTES, sync_dir, write_new_file};

const BACKUP_MAGIC: &[u8; 8] = b"rhzbkup1";
const HEADER_BYTES: usize = 8 + 12 + 16 + 12;
/// Largest database a backup holds (the archive is sealed in memory, in one piece).
pub const MAX_BACKUP_DB_BYTES: u64 = 512 * 1024 * 1024;
/// Largest backup file read: the database, the small files, the framing and the tag.
const MAX_BACKUP_FILE_BYTES: u64 = MAX_BACKUP_DB_BYTES + 1024 * 1024;
/// Largest small file (keys, certificate, settings) in a backup.
const MAX_SMALL_ENTRY_BYTES: u64 = 64 * 1024;
/// The files a backup holds (when the data dir has them), and their secrecy.
const FILES: [(&str, bool); 5] = [
    ("root.key", true),
    ("device.key", true),
    ("device.cert", false),
    ("identity.pub", false),
    ("config.toml", false),
];
const DB_ENTRY: &str = "rhizo.db";
const DB_KEY_ENTRY: &str = "rhizo.db.key";

/// What a backup held, as restored.
#[derive(Debug)]
pub struct RestoreOutcome {
    /// The files written, by name.
    pub files: Vec<String>,
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> VaultError {
    let path = path.to_owned();
    move |source| VaultError::Io {
        action,
        path,
        source,
    }
}

fn dd(e: crate::data_dir::DataDirError) -> VaultError {
    VaultError::DataDir(Box::new(e))
}

fn push_entry(out: &mut Vec<u8>, name: &str, bytes: &[u8]) {
    out.extend_from_slice(&(name.len() as u16).to_be_bytes());
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Writes a backup of `dir` (unlocked if encrypted) to the new file `dest`, sealed with
/// `passphrase`. A running node may keep running: the database copy is one read transaction.
///
/// # Errors
///
/// `dest` exists; the database is larger than [`MAX_BACKUP_DB_BYTES`]; I/O and database
/// failures.
pub fn write_backup(
    dir: &DataDir,
    dest: &Path,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<(), VaultError> {
    let mut entries = Zeroizing::new(Vec::new());
    for (name, secret) in FILES {
        let file = dir.path().join(name);
        if !file.exists() {
            continue;
        }
        let bytes = if secret {
            dir.read_secret_file(&file, LINK_SECRET_FILE_BYTES.max(32))
                .map_err(dd)?
        } else {
            Zeroizing::new(read_capped(&file, MAX_SMALL_ENTRY_BYTES)?)
        };
        push_entry(&mut entries, name, &bytes);
    }
    let one_off = super::VaultKey::generate()?.db_key_bytes();
    let copy = tempfile::Builder::new()
        .prefix(".backup-")
        .tempdir_in(dir.path())
        .map_err(io("cannot create a temporary directory in", dir.path()))?;
    let copy_file = copy.path().join(DB_ENTRY);
    let store = dir.open_store()?;
    store.export_to(&copy_file, Some(&DbKey::from_bytes(*one_off)))?;
    drop(store);
    let db = read_capped(&copy_file, MAX_BACKUP_DB_BYTES)?;
    push_entry(&mut entries, DB_KEY_ENTRY, &one_off[..]);
    push_entry(&mut entries, DB_ENTRY, &db);
    let sealed = seal(&entries, passphrase, params)?;
    write_new_file(dest, &sealed, 0o600).map_err(dd)
}

/// Reads the backup `archive` into the fresh data dir `dir` (created if missing; with a
/// `vault` already when it is to be encrypted, then unlocked).
///
/// # Errors
///
/// [`VaultError::WrongPassphrase`] (nothing written); `dir` already holds an identity or a
/// database; a damaged archive; I/O and database failures.
pub fn restore_backup(
    dir: &DataDir,
    archive: &Path,
    passphrase: &Passphrase,
) -> Result<RestoreOutcome, VaultError> {
    let bytes = read_capped(archive, MAX_BACKUP_FILE_BYTES)?;
    let entries = open(&bytes, passphrase)?;
    if dir.is_initialised() || dir.database().exists() {
        return Err(VaultError::NotFresh(dir.path().to_owned()));
    }
    dir.create().map_err(dd)?;
    let mut files = Vec::new();
    let mut db: Option<&[u8]> = None;
    let mut db_key: Option<DbKey> = None;
    for (name, data) in parse_entries(&entries)? {
        match name {
            DB_ENTRY => db = Some(data),
            DB_KEY_ENTRY => {
                let key = <[u8; DB_KEY_BYTES]>::try_from(data)
                    .map_err(|_| VaultError::Damaged("the backup's database key".into()))?;
                db_key = Some(DbKey::from_bytes(key));
            }
            _ => {
                let Some((_, secret)) = FILES.iter().find(|(n, _)| *n == name) else {
                    return Err(VaultError::Damaged(format!("unknown backup entry {name}")));
                };
                let file = dir.path().join(name);
                if *secret {
                    dir.write_secret_file(&file, data).map_err(dd)?;
                } else {
                    write_new_file(&file, data, 0o644).map_err(dd)?;
                }
                files.push(name.to_owned());
            }
        }
    }
    let (Some(db), Some(db_key)) = (db, db_key) else {
        return Err(VaultError::Damaged("the backup holds no database".into()));
    };
    restore_database(dir, db, &db_key)?;
    files.push(DB_ENTRY.to_owned());
    sync_dir(dir.path()).map_err(dd)?;
    Ok(RestoreOutcome { files })
}

/// The database copy, exported from its one-off key to the data dir's key (or none).
fn restore_database(dir: &DataDir, db: &[u8], one_off: &DbKey) -> Result<(), VaultError> {
    let temp = tempfile::Builder::new()
        .prefix(".restore-")
        .tempdir_in(dir.path())
        .map_err(io("cannot create a temporary directory in", dir.path()))?;
    let copy_file = temp.path().join(DB_ENTRY);
    write_new_file(&copy_file, db, 0o600).map_err(dd)?;
    let copy = rhizo_store::Store::open_keyed(&copy_file, Some(one_off))?;
    let key = dir.vault().map(super::VaultKey::db_key);
    copy.export_to(&dir.database(), key.as_ref())?;
    Ok(())
}

fn read_capped(path: &Path, max: u64) -> Result<Vec<u8>, VaultError> {
    let len = std::fs::metadata(path)
        .map_err(io("cannot read", path))?
        .len();
    if len > max {
        return Err(VaultError::TooLarge {
            path: path.to_owned(),
            len,
            max,
        });
    }
    std::fs::read(path).map_err(io("cannot read", path))
}

fn seal(entries: &[u8], passphrase: &Passphrase, params: KdfParams) -> Result<Vec<u8>, VaultError> {
    let mut salt = [0u8; 16];
    let mut nonce = [0u8; 12];
    getrandom::fill(&mut salt).map_err(|e| VaultError::Crypto(e.to_string()))?;
    getrandom::fill(&mut nonce).map_err(|e| VaultError::Crypto(e.to_string()))?;
    let mut out = Vec::with_capacity(HEADER_BYTES + entries.len() + 16);
    out.extend_from_slice(BACKUP_MAGIC);
    for value in [params.m_kib, params.t, params.p] {
        out.extend_from_slice(&value.to_be_bytes());
    }
    out.extend_from_slice(&salt);
    out.extend_from_slice(&nonce);
    let kek = derive_kek(passphrase, &salt, params.check()?)?;
    let sealed = ChaCha20Poly1305::new((&*kek).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: entries,
                aad: &out,
            },
        )
        .map_err(|_| VaultError::Crypto("sealing the backup failed".into()))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open(bytes: &[u8], passphrase: &Passphrase) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if bytes.len() < HEADER_BYTES + 16 || !bytes.starts_with(BACKUP_MAGIC) {
        return Err(VaultError::Damaged("the file is not a rhizo backup".into()));
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_be_bytes(b)
    };
    let params = KdfParams {
        m_kib: word(8),
        t: word(12),
        p: word(16),
    }
    .check()?;
    let kek = derive_kek(passphrase, &bytes[20..36], params)?;
    ChaCha20Poly1305::new((&*kek).into())
        .decrypt(
            bytes[36..HEADER_BYTES].into(),
            Payload {
                msg: &bytes[HEADER_BYTES..],
                aad: &bytes[..HEADER_BYTES],
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::WrongPassphrase)
}

/// The entries of an opened backup; every length is checked against what is left.
fn parse_entries(mut rest: &[u8]) -> Result<Vec<(&str, &[u8])>, VaultError> {
    let damaged = || VaultError::Damaged("the backup's contents are cut short".into());
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(2).ok_or_else(damaged)?;
        let name_len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let (name, tail) = tail.split_at_checked(name_len).ok_or_else(damaged)?;
        let (len, tail) = tail.split_at_checked(8).ok_or_else(damaged)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(len);
        let data_len = usize::try_from(u64::from_be_bytes(word)).map_err(|_| damaged())?;
        let (data, tail) = tail.split_at_checked(data_len).ok_or_else(damaged)?;
        let name = std::str::from_utf8(name).map_err(|_| damaged())?;
        out.push((name, data));
        rest = tail;
    }
    Ok(out)
}
