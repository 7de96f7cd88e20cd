//! Encryption at rest (issue 20): the passphrase, the data dir's `vault` file, and the sealing
//! of key files.
//!
//! A data dir with a passphrase has a `vault` file. It holds a random 256-bit **vault key**,
//! wrapped (ChaCha20-Poly1305) under a key derived from the passphrase with **Argon2id**
//! (parameters and salt in the file: [`KdfParams::DEFAULT`] is 64 MiB, 3 passes, 1 lane).
//! Two keys are derived from the vault key with HKDF-SHA256: the database's SQLCipher key
//! (`rhizo/vault/db/v1`) and the key that seals the key files (`rhizo/vault/keyfile/v1`).
//! A wrong passphrase fails the `vault` file's authentication tag: nothing else is read or
//! touched.
//!
//! ```text
//!  passphrase ─Argon2id(salt, m, t, p)─▶ KEK ─AEAD open─▶ vault key ─HKDF─┬▶ DbKey (SQLCipher)
//!   (RHIZO_PASSPHRASE_FILE or a prompt)     (`vault`)                     └▶ key-file key
//!  root.key / device.key / link.secret = "rhzkeyf1" ‖ nonce ‖ AEAD(key-file key, secret,
//!                                                               aad = magic ‖ file name)
//! ```
//!
//! Without a `vault` file a data dir is plaintext, as before (the default). `migrate` turns a
//! plaintext data dir into an encrypted one, and changes the passphrase (a new vault key:
//! everything is encrypted again), in steps that an interruption never loses.

use std::path::Path;

use chacha20poly1305::{
    ChaCha20Poly1305, KeyInit,
    aead::{Aead, Payload},
};
use rhizo_store::{DB_KEY_BYTES, DbKey};
use zeroize::Zeroizing;

pub mod backup;
pub(crate) mod migrate;

/// The vault file's name in the data dir.
pub const VAULT_FILE: &str = "vault";
/// Environment variable naming a file that holds the passphrase (unattended nodes).
pub const PASSPHRASE_FILE_ENV: &str = "RHIZO_PASSPHRASE_FILE";
/// Environment variable naming a file that holds the new passphrase (`rhizo passphrase change`
/// without a terminal).
pub const NEW_PASSPHRASE_FILE_ENV: &str = "RHIZO_NEW_PASSPHRASE_FILE";
/// Environment variable naming a file that holds a backup's passphrase (`rhizo backup` and
/// `rhizo restore` without a terminal).
pub const BACKUP_PASSPHRASE_FILE_ENV: &str = "RHIZO_BACKUP_PASSPHRASE_FILE";
/// Longest passphrase accepted (a passphrase file is read with this cap).
pub const MAX_PASSPHRASE_BYTES: usize = 1024;

const VAULT_MAGIC: &[u8; 8] = b"rhzvault";
const VAULT_VERSION: u8 = 1;
const SALT_BYTES: usize = 16;
const NONCE_BYTES: usize = 12;
const TAG_BYTES: usize = 16;
/// Header of the vault file: magic, version, m (KiB), t, p (u32 BE each), salt, nonce.
const VAULT_HEADER_BYTES: usize = 8 + 1 + 12 + SALT_BYTES + NONCE_BYTES;
/// The whole vault file: the header, then the wrapped vault key and its tag.
const VAULT_FILE_BYTES: usize = VAULT_HEADER_BYTES + DB_KEY_BYTES + TAG_BYTES;
/// The first bytes of a sealed key file (a plain one is raw key bytes).
pub(crate) const SEALED_FILE_MAGIC: &[u8; 8] = b"rhzkeyf1";
/// Bytes a sealed file adds to its secret: magic, nonce, tag.
pub(crate) const SEALED_FILE_OVERHEAD: usize = 8 + NONCE_BYTES + TAG_BYTES;

/// Argon2id parameters of a passphrase's key derivation (stored in the vault file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory, KiB.
    pub m_kib: u32,
    /// Passes.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106 §4's second recommendation, one lane): about a
    /// quarter second on a laptop core, once per start.
    pub const DEFAULT: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };
    /// Largest memory cost read from a vault file (1 GiB): a damaged or hostile file cannot
    /// make a start allocate more.
    const MAX_M_KIB: u32 = 1 << 20;
    /// Most passes read from a vault file.
    const MAX_T: u32 = 16;
    /// Most lanes read from a vault file.
    const MAX_P: u32 = 16;

    fn check(self) -> Result<Self, VaultError> {
        if self.m_kib > Self::MAX_M_KIB
            || self.t == 0
            || self.t > Self::MAX_T
            || self.p == 0
            || self.p > Self::MAX_P
        {
            return Err(VaultError::Damaged(
                "its Argon2id parameters are out of range".into(),
            ));
        }
        Ok(self)
    }
}

/// Errors of the encrypted store, each saying what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The passphrase does not open the vault file.
    #[error("wrong passphrase for this data dir: nothing was changed; try again")]
    WrongPassphrase,
    /// The data dir is encrypted and no passphrase could be asked for.
    #[error(
        "this data dir is encrypted: run in a terminal to type its passphrase, or set \
         {PASSPHRASE_FILE_ENV}=FILE (a file holding the passphrase) for an unattended node"
    )]
    NoPassphrase,
    /// A passphrase given is not usable.
    #[error("{0}")]
    BadPassphrase(String),
    /// The vault file or a sealed file is damaged.
    #[error("the encrypted store is damaged: {0}; restore it from a backup")]
    Damaged(String),
    /// A filesystem operation failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] rhizo_store::StoreError),
    /// A restore (or `init --passphrase`) into a data dir that is not new.
    #[error(
        "{} already holds a rhizo identity or database: use a new, empty data dir (`rhizo \
         passphrase change` encrypts an existing one in place)",
        .0.display()
    )]
    NotFresh(std::path::PathBuf),
    /// A file is larger than a backup may hold.
    #[error("{} is {len} bytes, more than the {max} a backup holds", path.display())]
    TooLarge {
        /// The file.
        path: std::path::PathBuf,
        /// Its size.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A node runs on this data dir.
    #[error(transparent)]
    DataDir(#[from] Box<crate::data_dir::DataDirError>),
    /// No randomness from the OS, or the key derivation failed.
    #[error("{0}")]
    Crypto(String),
    /// A failure injected by a test between two steps of a migration.
    #[cfg(test)]
    #[error("injected failure at {0}")]
    Injected(&'static str),
}

/// A passphrase (zeroized on drop; its `Debug` shows nothing).
pub struct Passphrase(Zeroizing<String>);

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(…)")
    }
}

impl Passphrase {
    /// A passphrase from text: not empty, at most [`MAX_PASSPHRASE_BYTES`]; one trailing line
    /// end is dropped (as a file written by `echo` has).
    ///
    /// # Errors
    ///
    /// [`VaultError::BadPassphrase`] if it is empty or too long.
    pub fn new(text: String) -> Result<Self, VaultError> {
        let mut text = Zeroizing::new(text);
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        if text.is_empty() {
            return Err(VaultError::BadPassphrase("the passphrase is empty".into()));
        }
        if text.len() > MAX_PASSPHRASE_BYTES {
            return Err(VaultError::BadPassphrase(format!(
                "the passphrase is longer than {MAX_PASSPHRASE_BYTES} bytes"
            )));
        }
        Ok(Self(text))
    }

    /// The passphrase in the file `path` (bounded read).
    ///
    /// # Errors
    ///
    /// If the file cannot be read, is not text, or holds no usable passphrase.
    pub fn from_file(path: &Path) -> Result<Self, VaultError> {
        use std::io::Read;
        let io = |source| VaultError::Io {
            action: "cannot read the passphrase file",
            path: path.to_owned(),
            source,
        };
        let mut bytes = Zeroizing::new(Vec::new());
        std::fs::File::open(path)
            .map_err(io)?
            .take(MAX_PASSPHRASE_BYTES as u64 + 3)
            .read_to_end(&mut bytes)
            .map_err(io)?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| {
            VaultError::BadPassphrase(format!("{} is not UTF-8 text", path.display()))
        })?;
        Self::new(text)
    }

    /// The passphrase from the file named by `env` if it is set, or else typed at the
    /// terminal after `prompt` (no echo).
    ///
    /// # Errors
    ///
    /// [`VaultError::NoPassphrase`] without the variable and without a terminal.
    pub fn from_env_or_prompt(env: &str, prompt: &str) -> Result<Self, VaultError> {
        if let Some(path) = std::env::var_os(env) {
            return Self::from_file(Path::new(&path));
        }
        let typed = rpassword::prompt_password(prompt).map_err(|_| VaultError::NoPassphrase)?;
        Self::new(typed)
    }

    /// A new passphrase: from the file named by `env`, or typed twice at the terminal.
    ///
    /// # Errors
    ///
    /// As [`from_env_or_prompt`](Self::from_env_or_prompt); the two typed differ.
    pub fn new_from_env_or_prompt(env: &str) -> Result<Self, VaultError> {
        if std::env::var_os(env).is_some() {
            return Self::from_env_or_prompt(env, "");
        }
        let first = Self::from_env_or_prompt(env, "New passphrase: ")?;
        let again = Self::from_env_or_prompt(env, "Type the new passphrase again: ")?;
        if *first.0 != *again.0 {
            return Err(VaultError::BadPassphrase(
                "the two passphrases typed differ: nothing was changed".into(),
            ));
        }
        Ok(first)
    }

    fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// The vault key: the root of the data dir's encryption keys (zeroized on drop; `Debug`
/// shows nothing).
pub struct VaultKey(Zeroizing<[u8; DB_KEY_BYTES]>);

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(…)")
    }
}

impl VaultKey {
    /// A fresh random vault key.
    pub(crate) fn generate() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; DB_KEY_BYTES]);
        getrandom::fill(&mut key[..]).map_err(|e| VaultError::Crypto(e.to_string()))?;
        Ok(Self(key))
    }

    /// A fresh random key's bytes (a backup's one-off database key).
    pub(crate) fn db_key_bytes(&self) -> Zeroizing<[u8; DB_KEY_BYTES]> {
        self.0.clone()
    }

    fn derive(&self, info: &[u8]) -> Zeroizing<[u8; DB_KEY_BYTES]> {
        let mut out = Zeroizing::new([0u8; DB_KEY_BYTES]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, &self.0[..])
            .expand(info, &mut out[..])
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        out
    }

    /// The database's SQLCipher key.
    pub fn db_key(&self) -> DbKey {
        DbKey::from_bytes(*self.derive(b"rhizo/vault/db/v1"))
    }

    fn file_cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new((&*self.derive(b"rhizo/vault/keyfile/v1")).into())
    }

    /// `secret` sealed as the file `name` (`name` is authenticated: a sealed `root.key` does
    /// not open as `device.key`).
    pub(crate) fn seal_file(&self, name: &str, secret: &[u8]) -> Result<Vec<u8>, VaultError> {
        let nonce = random_nonce()?;
        let aad = [&SEALED_FILE_MAGIC[..], name.as_bytes()].concat();
        let sealed = self
            .file_cipher()
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Crypto("sealing a key file failed".into()))?;
        Ok([&SEALED_FILE_MAGIC[..], &nonce, &sealed].concat())
    }

    /// The secret of the sealed file `name`.
    pub(crate) fn open_file(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        let damaged = || VaultError::Damaged(format!("{name} does not open with the vault key"));
        let rest = bytes
            .strip_prefix(&SEALED_FILE_MAGIC[..])
            .ok_or_else(damaged)?;
        let (nonce, sealed) = rest.split_at_checked(NONCE_BYTES).ok_or_else(damaged)?;
        let aad = [&SEALED_FILE_MAGIC[..], name.as_bytes()].concat();
        self.file_cipher()
            .decrypt(
                nonce.into(),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| damaged())
    }
}

fn random_nonce() -> Result<[u8; NONCE_BYTES], VaultError> {
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom::fill(&mut nonce).map_err(|e| VaultError::Crypto(e.to_string()))?;
    Ok(nonce)
}

/// The 32-byte key Argon2id derives from `passphrase`.
pub(crate) fn derive_kek(
    passphrase: &Passphrase,
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; DB_KEY_BYTES]>, VaultError> {
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(DB_KEY_BYTES))
        .map_err(|e| VaultError::Crypto(format!("Argon2id parameters: {e}")))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = Zeroizing::new([0u8; DB_KEY_BYTES]);
    argon
        .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
        .map_err(|e| VaultError::Crypto(format!("Argon2id: {e}")))?;
    Ok(out)
}

/// The vault file's bytes: `key` wrapped under `passphrase` (fresh salt and nonce).
pub(crate) fn encode_vault(
    key: &VaultKey,
    passphrase: &Passphrase,
    params: KdfParams,
) -> Result<Vec<u8>, VaultError> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| VaultError::Crypto(e.to_string()))?;
    let nonce = random_nonce()?;
    let mut header = Vec::with_capacity(VAULT_FILE_BYTES);
    header.extend_from_slice(VAULT_MAGIC);
    header.push(VAULT_VERSION);
    for value in [params.m_kib, params.t, params.p] {
        header.extend_from_slice(&value.to_be_bytes());
    }
    header.extend_from_slice(&salt);
    header.extend_from_slice(&nonce);
    let kek = derive_kek(passphrase, &salt, params.check()?)?;
    let wrapped = ChaCha20Poly1305::new((&*kek).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &key.0[..],
                aad: &header,
            },
        )
        .map_err(|_| VaultError::Crypto("wrapping the vault key failed".into()))?;
    header.extend_from_slice(&wrapped);
    Ok(header)
}

/// The vault key in the vault file `bytes`, unwrapped with `passphrase`.
///
/// # Errors
///
/// [`VaultError::WrongPassphrase`] if the tag does not verify; [`VaultError::Damaged`] for a
/// file of the wrong size, version or parameters (checked before any key derivation).
pub(crate) fn decode_vault(bytes: &[u8], passphrase: &Passphrase) -> Result<VaultKey, VaultError> {
    if bytes.len() != VAULT_FILE_BYTES || !bytes.starts_with(VAULT_MAGIC) {
        return Err(VaultError::Damaged(format!(
            "{VAULT_FILE} is not a rhizo vault file"
        )));
    }
    if bytes[8] != VAULT_VERSION {
        return Err(VaultError::Damaged(format!(
            "{VAULT_FILE} has version {}, this rhizo knows {VAULT_VERSION}: upgrade rhizo",
            bytes[8]
        )));
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_be_bytes(b)
    };
    let params = KdfParams {
        m_kib: word(9),
        t: word(13),
        p: word(17),
    }
    .check()?;
    let salt = &bytes[21..21 + SALT_BYTES];
    let nonce = &bytes[21 + SALT_BYTES..VAULT_HEADER_BYTES];
    let kek = derive_kek(passphrase, salt, params)?;
    let plain = ChaCha20Poly1305::new((&*kek).into())
        .decrypt(
            nonce.into(),
            Payload {
                msg: &bytes[VAULT_HEADER_BYTES..],
                aad: &bytes[..VAULT_HEADER_BYTES],
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| VaultError::WrongPassphrase)?;
    let mut key = Zeroizing::new([0u8; DB_KEY_BYTES]);
    key.copy_from_slice(&plain);
    Ok(VaultKey(key))
}

/// Reads the vault file of `dir` (bounded).
pub(crate) fn read_vault_file(dir: &Path) -> Result<Vec<u8>, VaultError> {
    let path = dir.join(VAULT_FILE);
    let io = |source| VaultError::Io {
        action: "cannot read",
        path: path.clone(),
        source,
    };
    let len = std::fs::metadata(&path).map_err(io)?.len();
    if len != VAULT_FILE_BYTES as u64 {
        return Err(VaultError::Damaged(format!(
            "{VAULT_FILE} is {len} bytes, not {VAULT_FILE_BYTES}"
        )));
    }
    std::fs::read(&path).map_err(io)
}

#[cfg(test)]
mod tests;
