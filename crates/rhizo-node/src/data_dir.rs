//! The data directory: key files, the database, the API token and address.
//!
//! ```text
//! <data_dir>/            0700
//!   root.key             0600  user root Ed25519 secret (32 bytes)
//!   device.key           0600  device Ed25519 secret (32 bytes) = libp2p identity
//!   device.cert          0644  device certificate signed by the root key
//!   identity.pub         0644  the root public key, on a linked (companion) device only
//!   pending-link         0600  marker: `rhizo init --link` made a device key, not linked yet
//!   link.secret          0600  the open link ticket's one-time secret and creation time
//!   vault                0600  with a passphrase only: the wrapped vault key (see `vault`);
//!                              then rhizo.db is SQLCipher and the three files above are sealed
//!   rhizo.db             0600  SQLite (WAL): peer book, settings, …
//!   api.token            0600  bearer token of the local API (created by `rhizo run`)
//!   api.addr             0644  address the running node's API is bound to (removed at exit)
//! ```

use std::{
    fs::{self, OpenOptions},
    io::Write,
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

use rhizo_core::{DeviceCertificate, DeviceKey, RootKey, RootPublicKey, Uid};
use zeroize::Zeroizing;

use crate::vault::{SEALED_FILE_MAGIC, SEALED_FILE_OVERHEAD, VaultError, VaultKey};

mod companion;

pub(crate) use companion::LINK_SECRET_FILE_BYTES;
pub use companion::{CompanionIdentity, DeviceIdentity, InitLinkOutcome};

/// Size of a key file: one Ed25519 secret seed.
const KEY_FILE_BYTES: usize = 32;
/// Largest certificate file read (certificates are 137 bytes today).
const MAX_CERT_FILE_BYTES: u64 = 4096;
/// Largest API token file read.
const MAX_TOKEN_FILE_BYTES: u64 = 256;

/// Errors about the data directory, each saying what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataDirError {
    /// No identity has been created in this directory yet.
    #[error("rhizo is not initialised in {0}: run `rhizo init` first (or pass --data-dir DIR)")]
    NotInitialised(PathBuf),
    /// Some identity files exist and others are missing.
    #[error(
        "the identity in {dir} is incomplete ({missing} is missing): restore it from a backup, \
         or move the directory away and run `rhizo init`"
    )]
    Incomplete {
        /// The data dir.
        dir: PathBuf,
        /// The missing file.
        missing: &'static str,
    },
    /// A key or certificate file is damaged.
    #[error("{path} is damaged: {reason}; restore it from a backup")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// No node runs on this data dir (no `api.addr`, or one left behind by a node that died).
    #[error(
        "the rhizo node is not running for data dir {0} (no API address written by a running \
         node): start it with `rhizo run`"
    )]
    NotRunning(PathBuf),
    /// Another node already runs on this data dir.
    #[error(
        "another rhizo node is already running with data dir {0}: stop it first, or give this \
         one its own --data-dir"
    )]
    Locked(PathBuf),
    /// The device is linked to an identity but does not hold its root key.
    #[error(
        "this device does not hold the root key (it is a linked device of the identity with \
         fingerprint {fingerprint}): run this on the device that does"
    )]
    NoRootKey {
        /// The identity's fingerprint.
        fingerprint: String,
    },
    /// `rhizo init --link` made a device key; no identity is linked yet.
    #[error(
        "this device is waiting to be linked ({0}): start it with `rhizo run`, print a ticket \
         with `rhizo device link`, and run `rhizo device add TICKET` on your device with the \
         root key"
    )]
    PendingLink(PathBuf),
    /// Generating a key failed (no OS randomness).
    #[error("cannot generate a key: {0}")]
    Keygen(String),
    /// The encrypted store: no passphrase given, a wrong one, a sealed file that does not open.
    #[error(transparent)]
    Vault(Box<VaultError>),
}

impl From<VaultError> for DataDirError {
    fn from(e: VaultError) -> Self {
        Self::Vault(Box::new(e))
    }
}

/// The loaded identity of this node.
pub struct LocalIdentity {
    /// The user root key.
    pub root: RootKey,
    /// This device's key.
    pub device: DeviceKey,
    /// The root's certificate for the device key.
    pub certificate: DeviceCertificate,
}

impl std::fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIdentity")
            .field("uid", &self.uid())
            .finish_non_exhaustive()
    }
}

impl LocalIdentity {
    /// The user id.
    pub fn uid(&self) -> Uid {
        self.root.public().uid()
    }

    /// The root public key.
    pub fn root_public(&self) -> RootPublicKey {
        self.root.public()
    }

    /// The device key as a libp2p keypair (its PeerId is the device's network identity).
    pub fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        device_keypair(&self.device)
    }

    /// This device's PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.libp2p_keypair().public().to_peer_id()
    }
}

/// The data directory of one node.
#[derive(Debug, Clone)]
pub struct DataDir {
    path: PathBuf,
    /// The vault key of an encrypted data dir, once unlocked (see [`crate::vault`]).
    vault: Option<std::sync::Arc<VaultKey>>,
}

/// What `init` did.
#[derive(Debug)]
pub enum InitOutcome {
    /// A new identity was created.
    Created(LocalIdentity),
    /// An identity existed already; nothing was changed.
    AlreadyInitialised(LocalIdentity),
}

impl DataDir {
    /// A data dir at `path` (nothing is touched yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            vault: None,
        }
    }

    /// This data dir with its vault key (the key of an encrypted data dir).
    pub(crate) fn with_vault(mut self, key: VaultKey) -> Self {
        self.vault = Some(std::sync::Arc::new(key));
        self
    }

    /// The vault key, once unlocked.
    pub(crate) fn vault(&self) -> Option<&VaultKey> {
        self.vault.as_deref()
    }

    /// The database's key once an encrypted data dir is unlocked; `None` otherwise.
    pub fn db_key(&self) -> Option<rhizo_store::DbKey> {
        self.vault().map(crate::vault::VaultKey::db_key)
    }

    /// Whether this data dir is encrypted (it has a `vault` file).
    pub fn is_encrypted(&self) -> bool {
        self.path.join(crate::vault::VAULT_FILE).exists()
    }

    /// Opens the database: SQLCipher with the vault key of an unlocked encrypted data dir,
    /// plain SQLite otherwise.
    ///
    /// # Errors
    ///
    /// As [`rhizo_store::Store::open_keyed`]; an encrypted data dir that was not unlocked
    /// gives [`rhizo_store::StoreError::InvalidInput`] saying so.
    pub fn open_store(&self) -> Result<rhizo_store::Store, rhizo_store::StoreError> {
        if self.vault.is_none() && self.is_encrypted() {
            return Err(rhizo_store::StoreError::InvalidInput(
                VaultError::NoPassphrase.to_string(),
            ));
        }
        let key = self.vault.as_ref().map(|v| v.db_key());
        rhizo_store::Store::open_keyed(&self.database(), key.as_ref())
    }

    /// A secret file (`root.key`, `device.key`, `link.secret`): opened with the vault key when
    /// sealed, as it is when plain. `max` is the secret's largest size.
    pub(crate) fn read_secret_file(
        &self,
        path: &Path,
        max: usize,
    ) -> Result<Zeroizing<Vec<u8>>, DataDirError> {
        let bytes = Zeroizing::new(read_bounded(path, (max + SEALED_FILE_OVERHEAD) as u64)?);
        if !bytes.starts_with(SEALED_FILE_MAGIC) {
            if bytes.len() > max {
                return Err(DataDirError::Damaged {
                    path: path.to_path_buf(),
                    reason: format!("it is {} bytes, more than the {max} expected", bytes.len()),
                });
            }
            return Ok(bytes);
        }
        let vault = self.vault.as_deref().ok_or(VaultError::NoPassphrase)?;
        Ok(vault.open_file(&file_name(path), &bytes)?)
    }

    /// Writes a new secret file (0600), sealed with the vault key of an encrypted data dir.
    pub(crate) fn write_secret_file(&self, path: &Path, secret: &[u8]) -> Result<(), DataDirError> {
        match self.vault.as_deref() {
            Some(vault) => write_new_file(path, &vault.seal_file(&file_name(path), secret)?, 0o600),
            None => write_new_file(path, secret, 0o600),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.path.join("rhizo.db")
    }

    /// The API token file.
    pub fn api_token_file(&self) -> PathBuf {
        self.path.join("api.token")
    }

    /// The file holding the running node's API address.
    pub fn api_addr_file(&self) -> PathBuf {
        self.path.join("api.addr")
    }

    fn root_key_file(&self) -> PathBuf {
        self.path.join("root.key")
    }

    fn device_key_file(&self) -> PathBuf {
        self.path.join("device.key")
    }

    fn device_cert_file(&self) -> PathBuf {
        self.path.join("device.cert")
    }

    /// Whether an identity (or a device waiting to be linked) has been created here.
    pub fn is_initialised(&self) -> bool {
        self.root_key_file().exists() || self.device_key_file().exists()
    }

    /// Creates the directory (0700) if missing.
    pub fn create(&self) -> Result<(), DataDirError> {
        fs::create_dir_all(&self.path).map_err(|source| DataDirError::Io {
            action: "cannot create data directory",
            path: self.path.clone(),
            source,
        })?;
        fs::set_permissions(&self.path, fs::Permissions::from_mode(0o700)).map_err(|source| {
            DataDirError::Io {
                action: "cannot set permissions of",
                path: self.path.clone(),
                source,
            }
        })
    }

    /// Creates a root key, a device key and the device certificate — unless any key file
    /// exists, in which case nothing is written (existing keys are never overwritten).
    pub fn init(&self, now_unix: u64) -> Result<InitOutcome, DataDirError> {
        let root = RootKey::generate().map_err(|e| DataDirError::Keygen(e.to_string()))?;
        self.init_with_root(root, now_unix)
    }

    /// Like [`init`](Self::init), with a given root key: `rhizo init --recover` recreates an
    /// identity from its recovery phrase, with a new device key.
    pub fn init_with_root(
        &self,
        root: RootKey,
        now_unix: u64,
    ) -> Result<InitOutcome, DataDirError> {
        if self.root_key_file().exists()
            || self.device_key_file().exists()
            || self.device_cert_file().exists()
        {
            return self.load().map(InitOutcome::AlreadyInitialised);
        }
        self.create()?;
        let device = DeviceKey::generate().map_err(|e| DataDirError::Keygen(e.to_string()))?;
        let certificate = root.certify_device(&device.public(), now_unix);
        // The root key is written last: its presence marks a complete identity.
        self.write_secret_file(&self.device_key_file(), &device.to_bytes()[..])?;
        write_new_file(&self.device_cert_file(), &certificate.encode(), 0o644)?;
        self.write_secret_file(&self.root_key_file(), &root.to_bytes()[..])?;
        sync_dir(&self.path)?;
        Ok(InitOutcome::Created(LocalIdentity {
            root,
            device,
            certificate,
        }))
    }

    /// Loads and checks the identity: the certificate must bind this device key to this root.
    /// A linked (companion) device or one waiting to be linked is refused with
    /// [`DataDirError::NoRootKey`] or [`DataDirError::PendingLink`]: see
    /// [`load_device`](Self::load_device) for one that accepts every kind.
    pub fn load(&self) -> Result<LocalIdentity, DataDirError> {
        let root_file = self.root_key_file();
        if !root_file.exists() {
            self.refuse_without_root()?;
            if self.device_key_file().exists() {
                return Err(DataDirError::Incomplete {
                    dir: self.path.clone(),
                    missing: "root.key",
                });
            }
            return Err(DataDirError::NotInitialised(self.path.clone()));
        }
        for (file, name) in [
            (self.device_key_file(), "device.key"),
            (self.device_cert_file(), "device.cert"),
        ] {
            if !file.exists() {
                return Err(DataDirError::Incomplete {
                    dir: self.path.clone(),
                    missing: name,
                });
            }
        }
        let root = RootKey::from_bytes(&self.read_key_file(&root_file)?);
        let device = DeviceKey::from_bytes(&self.read_key_file(&self.device_key_file())?);
        let cert_file = self.device_cert_file();
        let cert_bytes = read_bounded(&cert_file, MAX_CERT_FILE_BYTES)?;
        let damaged = |reason: String| DataDirError::Damaged {
            path: cert_file.clone(),
            reason,
        };
        let certificate =
            DeviceCertificate::decode(&cert_bytes).map_err(|e| damaged(e.to_string()))?;
        certificate
            .verify_for(&root.public())
            .map_err(|e| damaged(e.to_string()))?;
        if certificate.device() != device.public() {
            return Err(damaged("it certifies a different device key".into()));
        }
        Ok(LocalIdentity {
            root,
            device,
            certificate,
        })
    }

    /// Takes the data dir's lock for the life of a node: two nodes on one data dir would share
    /// one identity and one database. The lock is released when the returned file is dropped
    /// (also when the process dies).
    pub fn lock(&self) -> Result<fs::File, DataDirError> {
        let path = self.path.join("rhizo.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|source| DataDirError::Io {
                action: "cannot open",
                path: path.clone(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(fs::TryLockError::WouldBlock) => Err(DataDirError::Locked(self.path.clone())),
            Err(fs::TryLockError::Error(source)) => Err(DataDirError::Io {
                action: "cannot lock",
                path,
                source,
            }),
        }
    }

    /// Reads the API token, creating a fresh random one (0600) if there is none.
    pub fn load_or_create_api_token(&self) -> Result<String, DataDirError> {
        let file = self.api_token_file();
        if file.exists() {
            return self.read_api_token();
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| DataDirError::Keygen(e.to_string()))?;
        let token = data_encoding::BASE32_NOPAD
            .encode(&bytes)
            .to_ascii_lowercase();
        write_new_file(&file, token.as_bytes(), 0o600)?;
        Ok(token)
    }

    /// Reads the API token written by a running node.
    pub fn read_api_token(&self) -> Result<String, DataDirError> {
        let file = self.api_token_file();
        let bytes = read_bounded(&file, MAX_TOKEN_FILE_BYTES)?;
        let token = String::from_utf8(bytes)
            .map_err(|_| DataDirError::Damaged {
                path: file.clone(),
                reason: "not text".into(),
            })?
            .trim()
            .to_string();
        if token.is_empty() {
            return Err(DataDirError::Damaged {
                path: file,
                reason: "empty; delete it and restart the node to make a new one".into(),
            });
        }
        Ok(token)
    }

    /// Records the address the API is bound to (replacing an older one).
    pub fn write_api_addr(&self, addr: std::net::SocketAddr) -> Result<(), DataDirError> {
        let file = self.api_addr_file();
        let tmp = self.path.join("api.addr.tmp");
        let _ = fs::remove_file(&tmp);
        write_new_file(&tmp, addr.to_string().as_bytes(), 0o644)?;
        fs::rename(&tmp, &file).map_err(|source| DataDirError::Io {
            action: "cannot write",
            path: file,
            source,
        })
    }

    /// The address in `api.addr`, if a node wrote one.
    pub fn read_api_addr(&self) -> Option<std::net::SocketAddr> {
        let text = read_bounded(&self.api_addr_file(), 128).ok()?;
        String::from_utf8(text).ok()?.trim().parse().ok()
    }

    /// The address of the API of the node running on this data dir: the one it wrote to
    /// `api.addr`, and only while that node still holds the data dir's lock. This is the only
    /// address the CLI may send the API token to: never a configured or default port, where
    /// any other local process could be listening.
    ///
    /// # Errors
    ///
    /// [`DataDirError::NotRunning`] if there is no (readable) `api.addr`, or if no process holds
    /// the lock (the file was left behind by a node that was killed: its port may belong to
    /// someone else by now).
    pub fn running_api_addr(&self) -> Result<std::net::SocketAddr, DataDirError> {
        let not_running = || DataDirError::NotRunning(self.path.clone());
        let addr = self.read_api_addr().ok_or_else(not_running)?;
        if !self.is_locked_by_a_node() {
            return Err(not_running());
        }
        Ok(addr)
    }

    /// Whether some process holds the lock taken by [`lock`](Self::lock). Probed with a shared
    /// lock that is released at once; it never creates the lock file.
    fn is_locked_by_a_node(&self) -> bool {
        let Ok(file) = OpenOptions::new()
            .read(true)
            .open(self.path.join("rhizo.lock"))
        else {
            return false;
        };
        match file.try_lock_shared() {
            Ok(()) => false,
            Err(fs::TryLockError::WouldBlock) => true,
            // Cannot tell: treat it as not running rather than send the token blindly.
            Err(fs::TryLockError::Error(_)) => false,
        }
    }

    /// Removes `api.addr` at shutdown.
    pub fn remove_api_addr(&self) {
        let _ = fs::remove_file(self.api_addr_file());
    }
}

/// The device key as a libp2p keypair.
pub(crate) fn device_keypair(device: &DeviceKey) -> libp2p::identity::Keypair {
    let mut seed = *device.to_bytes();
    // `ed25519_from_bytes` zeroizes the buffer it is given.
    libp2p::identity::Keypair::ed25519_from_bytes(&mut seed)
        .expect("a 32-byte seed is always a valid Ed25519 secret key")
}

pub(crate) fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), DataDirError> {
    let io_err = |source| DataDirError::Io {
        action: "cannot write",
        path: path.to_path_buf(),
        source,
    };
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_err)?;
    f.write_all(bytes).map_err(io_err)?;
    f.sync_all().map_err(io_err)
}

pub(crate) fn sync_dir(path: &Path) -> Result<(), DataDirError> {
    fs::File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|source| DataDirError::Io {
            action: "cannot sync",
            path: path.to_path_buf(),
            source,
        })
}

fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, DataDirError> {
    let io_err = |source| DataDirError::Io {
        action: "cannot read",
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io_err)?;
    if meta.len() > max {
        return Err(DataDirError::Damaged {
            path: path.to_path_buf(),
            reason: format!("it is {} bytes, more than the {max} expected", meta.len()),
        });
    }
    fs::read(path).map_err(io_err)
}

/// The name a sealed file authenticates: its file name, without the `.tmp` or `.next` of a
/// file that is renamed into place once written.
fn file_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".tmp")
        .or_else(|| name.strip_suffix(".next"))
        .map_or_else(|| name.clone(), str::to_owned)
}

impl DataDir {
    /// A 32-byte key file (sealed or plain); warns if it is readable by other users.
    fn read_key_file(&self, path: &Path) -> Result<[u8; KEY_FILE_BYTES], DataDirError> {
        if let Ok(meta) = fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "key file is readable by other users; run: chmod 600 {}",
                path.display()
            );
        }
        let bytes = self.read_secret_file(path, KEY_FILE_BYTES)?;
        <[u8; KEY_FILE_BYTES]>::try_from(bytes.as_slice()).map_err(|_| DataDirError::Damaged {
            path: path.to_path_buf(),
            reason: format!(
                "a key file holds {KEY_FILE_BYTES} bytes, this one {}",
                bytes.len()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_creates_private_files_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path().join("data"));
        assert!(matches!(dir.load(), Err(DataDirError::NotInitialised(_))));
        let InitOutcome::Created(first) = dir.init(1_700_000_000).unwrap() else {
            panic!("expected a new identity");
        };
        let mode = |p: PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path().to_path_buf()), 0o700);
        assert_eq!(mode(dir.root_key_file()), 0o600);
        assert_eq!(mode(dir.device_key_file()), 0o600);
        let InitOutcome::AlreadyInitialised(again) = dir.init(1_700_000_001).unwrap() else {
            panic!("second init must not create a new identity");
        };
        assert_eq!(first.uid(), again.uid());
        assert_eq!(first.peer_id(), again.peer_id());
        assert_eq!(dir.load().unwrap().uid(), first.uid());
    }

    #[test]
    fn damaged_and_incomplete_identities_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        dir.init(1).unwrap();
        fs::write(dir.device_cert_file(), b"garbage").unwrap();
        let err = dir.load().unwrap_err();
        assert!(err.to_string().contains("device.cert is damaged"), "{err}");
        fs::remove_file(dir.root_key_file()).unwrap();
        let err = dir.load().unwrap_err();
        assert!(
            matches!(
                err,
                DataDirError::Incomplete {
                    missing: "root.key",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_data_dir_is_locked_by_one_node_at_a_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let held = dir.lock().unwrap();
        assert!(matches!(dir.lock(), Err(DataDirError::Locked(_))));
        drop(held);
        dir.lock().unwrap();
    }

    #[test]
    fn api_token_is_created_once_with_mode_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        let t1 = dir.load_or_create_api_token().unwrap();
        let t2 = dir.load_or_create_api_token().unwrap();
        assert_eq!(t1, t2);
        assert!(t1.len() >= 50);
        let mode = fs::metadata(dir.api_token_file())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn the_api_address_counts_only_while_a_node_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::new(tmp.path());
        // Nothing written: not running.
        assert!(matches!(
            dir.running_api_addr(),
            Err(DataDirError::NotRunning(_))
        ));
        let addr: std::net::SocketAddr = "127.0.0.1:4711".parse().unwrap();
        dir.write_api_addr(addr).unwrap();
        // Left behind by a node that died (no lock held): not running.
        assert!(matches!(
            dir.running_api_addr(),
            Err(DataDirError::NotRunning(_))
        ));
        let held = dir.lock().unwrap();
        assert_eq!(dir.running_api_addr().unwrap(), addr);
        // The probe did not take the lock from the node.
        assert!(matches!(dir.lock(), Err(DataDirError::Locked(_))));
        drop(held);
        assert!(dir.running_api_addr().is_err());
        let err = DataDirError::NotRunning(dir.path().into()).to_string();
        assert!(
            err.contains("not running") && err.contains("rhizo run"),
            "{err}"
        );
    }
}
