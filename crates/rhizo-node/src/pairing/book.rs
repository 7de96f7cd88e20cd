//! The node's side of pairing: its channel key, the tickets waiting to be used and the paired
//! clients, kept under `<data_dir>/light/`:
//!
//! ```text
//! light/channel.key   0600  X-Wing secret (32) ‖ public key (1216), made on first use
//! light/paired.json   0600  the paired clients: id, public key, pair key, name, paired_at
//! ```
//!
//! Pending tickets live in memory only (a restart forgets them: run `rhizo pair` again). A
//! paired client is written to `paired.json` (write to a temporary file, then rename) before
//! its session is used. Revoking removes it from the file and from memory; a live session of a
//! revoked client ends at its next frame or presence tick.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use super::channel::{self, ChannelError, Hello, HelloKind, ID_LEN, KemKeyPair, PSK_LEN};
use super::ticket::{MAX_PAIR_URL_BYTES, PAIR_TICKET_TTL_SECS, PairTicket};

/// Most tickets waiting to be used at once: pairing is a rare, manual act.
pub const MAX_PENDING_TICKETS: usize = 8;
/// Most paired clients: a person's browsers, phones and scripts.
pub const MAX_PAIRED_CLIENTS: usize = 64;
/// Longest client name, in characters.
pub const MAX_CLIENT_NAME_CHARS: usize = 64;
/// Largest `paired.json` read (64 clients with their 1216-byte keys in hex fit easily).
const MAX_PAIRED_FILE_BYTES: u64 = 1024 * 1024;

/// Why a pairing operation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PairingError {
    /// Reading or writing the files under `<data_dir>/light/`.
    #[error("cannot use {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file under `<data_dir>/light/` is damaged.
    #[error(
        "{0} is damaged: move it away to start pairing afresh (paired clients must pair again)"
    )]
    Damaged(PathBuf),
    /// Too many tickets are waiting.
    #[error(
        "{MAX_PENDING_TICKETS} pairing tickets are already waiting: use one, or wait 10 minutes"
    )]
    TooManyPending,
    /// Too many clients are paired.
    #[error(
        "{MAX_PAIRED_CLIENTS} clients are already paired: revoke one with `rhizo pair revoke ID`"
    )]
    TooManyClients,
    /// No pending ticket or paired client has this id (never issued, used, expired or revoked).
    #[error("unknown or revoked client: pair it again with `rhizo pair`")]
    UnknownClient,
    /// `rhizo pair revoke` with an id that matches no client, or several.
    #[error("no single paired client matches {0:?}: see `rhizo pair list`")]
    NoSuchClient(String),
    /// A name or URL is not acceptable.
    #[error("{0}")]
    BadInput(String),
    /// The channel key could not be made.
    #[error("cannot make the channel key")]
    Key(#[source] ChannelError),
}

/// A paired client as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct PairedClient {
    /// Its client id (hex of [`channel::client_id`]).
    pub id: String,
    /// Its static X-Wing public key, hex.
    pub client_pk: String,
    /// The pair key, hex (the PSK of its sessions).
    pair_key: String,
    /// A name for people.
    pub name: String,
    /// Unix seconds when it paired.
    pub paired_at: u64,
}

impl std::fmt::Debug for PairedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairedClient")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A paired client as the API shows it (no keys).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PairedClientView {
    /// Client id (32 hex digits).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Unix seconds when it paired.
    pub paired_at: u64,
}

impl From<&PairedClient> for PairedClientView {
    fn from(c: &PairedClient) -> Self {
        Self {
            id: c.id.clone(),
            name: c.name.clone(),
            paired_at: c.paired_at,
        }
    }
}

struct Pending {
    id: [u8; ID_LEN],
    secret: Zeroizing<[u8; PSK_LEN]>,
    name: String,
    created_at: u64,
}

#[derive(Default)]
struct State {
    pending: Vec<Pending>,
    paired: Vec<PairedClient>,
}

/// The node's pairing state; see the [module docs](self).
pub struct PairingBook {
    dir: PathBuf,
    key: KemKeyPair,
    state: Mutex<State>,
}

impl std::fmt::Debug for PairingBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PairingBook")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// The PSK a hello asks for, and what to do once its handshake finishes.
#[derive(Debug)]
pub struct PskChoice {
    /// The PSK.
    pub psk: Zeroizing<[u8; PSK_LEN]>,
    /// For a pairing hello: the name its ticket was made with.
    pub pairing_name: Option<String>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PairingError + '_ {
    move |source| PairingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` 0600 through a temporary file and a rename.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PairingError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

fn read_bounded(path: &Path, max: u64) -> Result<Option<Vec<u8>>, PairingError> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    let mut bytes = Vec::new();
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    if bytes.len() as u64 > max {
        return Err(PairingError::Damaged(path.to_path_buf()));
    }
    Ok(Some(bytes))
}

impl PairingBook {
    /// Opens (and on first use creates) `<data_dir>/light/`.
    ///
    /// # Errors
    ///
    /// [`PairingError::Io`], [`PairingError::Damaged`], [`PairingError::Key`].
    pub fn open(data_dir: &Path) -> Result<Self, PairingError> {
        let dir = data_dir.join("light");
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let key_path = dir.join("channel.key");
        let key = match read_bounded(&key_path, 4096)? {
            Some(bytes)
                if bytes.len() == channel::KEM_SECRET_KEY_LEN + channel::KEM_PUBLIC_KEY_LEN =>
            {
                let (sk, pk) = bytes.split_at(channel::KEM_SECRET_KEY_LEN);
                KemKeyPair::from_bytes(sk, pk)
                    .map_err(|_| PairingError::Damaged(key_path.clone()))?
            }
            Some(_) => return Err(PairingError::Damaged(key_path)),
            None => {
                let key = KemKeyPair::generate().map_err(PairingError::Key)?;
                let bytes = Zeroizing::new([key.secret(), key.public()].concat());
                write_private(&key_path, &bytes)?;
                key
            }
        };
        let paired_path = dir.join("paired.json");
        let paired = match read_bounded(&paired_path, MAX_PAIRED_FILE_BYTES)? {
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|_| PairingError::Damaged(paired_path.clone()))?,
            None => Vec::new(),
        };
        Ok(Self {
            dir,
            key,
            state: Mutex::new(State {
                pending: Vec::new(),
                paired,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The node's channel key pair.
    pub fn key(&self) -> &KemKeyPair {
        &self.key
    }

    /// A new one-time ticket for a client reaching the node at `url`, named `name`.
    ///
    /// # Errors
    ///
    /// [`PairingError::TooManyPending`], [`PairingError::BadInput`], [`PairingError::Key`].
    pub fn new_ticket(&self, url: &str, name: &str, now: u64) -> Result<PairTicket, PairingError> {
        if name.is_empty()
            || name.chars().count() > MAX_CLIENT_NAME_CHARS
            || name.chars().any(char::is_control)
        {
            return Err(PairingError::BadInput(
                "a client name must be 1 to 64 characters without control characters".into(),
            ));
        }
        if url.len() > MAX_PAIR_URL_BYTES
            || !(url.starts_with("ws://") || url.starts_with("wss://"))
            || url.chars().any(char::is_control)
        {
            return Err(PairingError::BadInput(
                "the URL must be a ws:// or wss:// URL of at most 256 bytes".into(),
            ));
        }
        let mut secret = Zeroizing::new([0u8; PSK_LEN]);
        getrandom::fill(secret.as_mut())
            .map_err(|e| PairingError::Key(ChannelError::Crypto(e.to_string())))?;
        let mut state = self.lock();
        state
            .pending
            .retain(|p| now < p.created_at.saturating_add(PAIR_TICKET_TTL_SECS));
        if state.pending.len() >= MAX_PENDING_TICKETS {
            return Err(PairingError::TooManyPending);
        }
        state.pending.push(Pending {
            id: channel::ticket_id(&secret),
            secret: secret.clone(),
            name: name.to_owned(),
            created_at: now,
        });
        Ok(PairTicket {
            node_pk: self.key.public().to_vec(),
            secret,
            created_at: now,
            url: url.to_owned(),
        })
    }

    /// The PSK for `hello`: its pending, unexpired ticket's secret, or its paired client's key.
    ///
    /// # Errors
    ///
    /// [`PairingError::UnknownClient`] (before any KEM work).
    pub fn psk_for(&self, hello: &Hello, now: u64) -> Result<PskChoice, PairingError> {
        let state = self.lock();
        match hello.kind {
            HelloKind::Pair => state
                .pending
                .iter()
                .find(|p| {
                    p.id == hello.id && now < p.created_at.saturating_add(PAIR_TICKET_TTL_SECS)
                })
                .map(|p| PskChoice {
                    psk: p.secret.clone(),
                    pairing_name: Some(p.name.clone()),
                })
                .ok_or(PairingError::UnknownClient),
            HelloKind::Resume => {
                let id = hex::encode(hello.id);
                let client = state
                    .paired
                    .iter()
                    .find(|c| c.id == id && c.client_pk == hex::encode(&hello.client_pk))
                    .ok_or(PairingError::UnknownClient)?;
                let mut psk = Zeroizing::new([0u8; PSK_LEN]);
                hex::decode_to_slice(&client.pair_key, psk.as_mut())
                    .map_err(|_| PairingError::Damaged(self.dir.join("paired.json")))?;
                Ok(PskChoice {
                    psk,
                    pairing_name: None,
                })
            }
        }
    }

    /// Records a finished pairing (the ticket is used up) and persists it before returning.
    ///
    /// # Errors
    ///
    /// [`PairingError::UnknownClient`] if the ticket is gone, [`PairingError::TooManyClients`],
    /// [`PairingError::Io`].
    pub fn complete_pairing(
        &self,
        hello: &Hello,
        pair_key: &[u8; PSK_LEN],
        now: u64,
    ) -> Result<PairedClientView, PairingError> {
        let mut state = self.lock();
        let index = state
            .pending
            .iter()
            .position(|p| p.id == hello.id)
            .ok_or(PairingError::UnknownClient)?;
        let id = hex::encode(channel::client_id(&hello.client_pk));
        let others = state.paired.iter().filter(|c| c.id != id).count();
        if others >= MAX_PAIRED_CLIENTS {
            return Err(PairingError::TooManyClients);
        }
        let pending = state.pending.remove(index);
        let mut paired: Vec<PairedClient> = state
            .paired
            .iter()
            .filter(|c| c.id != id)
            .cloned()
            .collect();
        let client = PairedClient {
            id,
            client_pk: hex::encode(&hello.client_pk),
            pair_key: hex::encode(pair_key),
            name: pending.name,
            paired_at: now,
        };
        paired.push(client.clone());
        self.persist(&paired)?;
        state.paired = paired;
        Ok(PairedClientView::from(&client))
    }

    fn persist(&self, paired: &[PairedClient]) -> Result<(), PairingError> {
        let path = self.dir.join("paired.json");
        let bytes = Zeroizing::new(
            serde_json::to_vec_pretty(paired).map_err(|_| PairingError::Damaged(path.clone()))?,
        );
        write_private(&path, &bytes)
    }

    /// The paired clients.
    pub fn list(&self) -> Vec<PairedClientView> {
        self.lock()
            .paired
            .iter()
            .map(PairedClientView::from)
            .collect()
    }

    /// Whether the client with this id (hex) is still paired.
    pub fn is_paired(&self, id: &str) -> bool {
        self.lock().paired.iter().any(|c| c.id == id)
    }

    /// Revokes the one client whose id starts with `prefix` (or whose name is `prefix`).
    ///
    /// # Errors
    ///
    /// [`PairingError::NoSuchClient`], [`PairingError::Io`].
    pub fn revoke(&self, prefix: &str) -> Result<PairedClientView, PairingError> {
        let mut state = self.lock();
        let prefix = prefix.trim();
        let matches: Vec<usize> = state
            .paired
            .iter()
            .enumerate()
            .filter(|(_, c)| {
                !prefix.is_empty()
                    && (c.id.starts_with(&prefix.to_ascii_lowercase()) || c.name == prefix)
            })
            .map(|(i, _)| i)
            .collect();
        let [index] = matches[..] else {
            return Err(PairingError::NoSuchClient(prefix.to_owned()));
        };
        let mut paired = state.paired.clone();
        let removed = paired.remove(index);
        self.persist(&paired)?;
        state.paired = paired;
        Ok(PairedClientView::from(&removed))
    }
}

#[cfg(test)]
mod tests;
