//! Linked (companion) devices and devices waiting to be linked: `rhizo init --link`, the link
//! ticket's secret, and the identity files the link writes.
//!
//! ```text
//!  init_link ─▶ device.key + pending-link ─▶ (rhizo run) write_link_secret ─▶ link.secret
//!  /rhizo/link/1 certificate ─▶ complete_link ─▶ device.cert + identity.pub, markers removed
//! ```

use std::{fs, path::PathBuf};

use rhizo_core::{
    DeviceCertificate, DeviceKey, RootPublicKey, Uid,
    link::{LINK_SECRET_LEN, LinkSecret},
};

use super::{
    DataDir, DataDirError, KEY_FILE_BYTES, LocalIdentity, MAX_CERT_FILE_BYTES, device_keypair,
    read_bounded, sync_dir, write_new_file,
};

/// Bytes of `link.secret`: the secret, then its ticket's creation time (u64 BE).
pub(crate) const LINK_SECRET_FILE_BYTES: usize = LINK_SECRET_LEN + 8;

/// A linked device: its own key and certificate, and the root public key, not the root key.
pub struct CompanionIdentity {
    /// This device's key.
    pub device: DeviceKey,
    /// The root's certificate for the device key.
    pub certificate: DeviceCertificate,
}

impl std::fmt::Debug for CompanionIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompanionIdentity")
            .field("uid", &self.certificate.root().uid())
            .finish_non_exhaustive()
    }
}

/// What a data dir holds: a device with the root key, a linked device, or a device key waiting
/// to be linked.
#[derive(Debug)]
pub enum DeviceIdentity {
    /// Root key, device key and certificate (`rhizo init`).
    Primary(Box<LocalIdentity>),
    /// Device key, certificate and root public key (`rhizo init --link`, then linked).
    Companion(CompanionIdentity),
    /// Only a device key (`rhizo init --link`, not linked yet).
    PendingLink(DeviceKey),
}

impl DeviceIdentity {
    /// This device's key.
    pub fn device(&self) -> &DeviceKey {
        match self {
            Self::Primary(identity) => &identity.device,
            Self::Companion(identity) => &identity.device,
            Self::PendingLink(device) => device,
        }
    }

    /// The identity's root public key; `None` while waiting to be linked.
    pub fn root_public(&self) -> Option<RootPublicKey> {
        match self {
            Self::Primary(identity) => Some(identity.root_public()),
            Self::Companion(identity) => Some(identity.certificate.root()),
            Self::PendingLink(_) => None,
        }
    }

    /// The UID; `None` while waiting to be linked.
    pub fn uid(&self) -> Option<Uid> {
        self.root_public().map(|root| root.uid())
    }

    /// The device key as a libp2p keypair.
    pub fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        device_keypair(self.device())
    }

    /// This device's PeerId.
    pub fn peer_id(&self) -> libp2p::PeerId {
        self.libp2p_keypair().public().to_peer_id()
    }
}

/// What `init_link` did.
#[derive(Debug)]
pub enum InitLinkOutcome {
    /// A device key was made; the device waits to be linked.
    Created(Box<DeviceKey>),
    /// Keys existed already; nothing was changed.
    AlreadyInitialised(Box<DeviceIdentity>),
}

impl DataDir {
    fn identity_pub_file(&self) -> PathBuf {
        self.path.join("identity.pub")
    }

    fn pending_link_file(&self) -> PathBuf {
        self.path.join("pending-link")
    }

    fn link_secret_file(&self) -> PathBuf {
        self.path.join("link.secret")
    }

    /// Whether this device waits to be linked.
    pub fn is_pending_link(&self) -> bool {
        self.pending_link_file().exists()
    }

    /// `rhizo init --link`: a device key and the pending-link marker, no root key — unless any
    /// key file exists (then nothing is written).
    pub fn init_link(&self) -> Result<InitLinkOutcome, DataDirError> {
        if self.root_key_file().exists() || self.device_key_file().exists() {
            return self
                .load_device()
                .map(|d| InitLinkOutcome::AlreadyInitialised(Box::new(d)));
        }
        self.create()?;
        let device = DeviceKey::generate().map_err(|e| DataDirError::Keygen(e.to_string()))?;
        // The marker first: a device key without it and without a root key is incomplete.
        write_new_file(&self.pending_link_file(), b"", 0o600)?;
        self.write_secret_file(&self.device_key_file(), &device.to_bytes()[..])?;
        sync_dir(&self.path)?;
        Ok(InitLinkOutcome::Created(Box::new(device)))
    }

    /// Loads whatever this data dir holds: see [`DeviceIdentity`].
    pub fn load_device(&self) -> Result<DeviceIdentity, DataDirError> {
        if self.root_key_file().exists() {
            return self.load().map(|i| DeviceIdentity::Primary(Box::new(i)));
        }
        if !self.device_key_file().exists() {
            return Err(DataDirError::NotInitialised(self.path.clone()));
        }
        let device = DeviceKey::from_bytes(&self.read_key_file(&self.device_key_file())?);
        if self.pending_link_file().exists() {
            return Ok(DeviceIdentity::PendingLink(device));
        }
        self.load_companion(device).map(DeviceIdentity::Companion)
    }

    /// The error `load` gives on a companion or a pending device (nothing on other dirs).
    pub(super) fn refuse_without_root(&self) -> Result<(), DataDirError> {
        if self.pending_link_file().exists() {
            return Err(DataDirError::PendingLink(self.path.clone()));
        }
        if self.identity_pub_file().exists() && self.device_key_file().exists() {
            let root = self.read_identity_pub()?;
            return Err(DataDirError::NoRootKey {
                fingerprint: root.fingerprint().to_string(),
            });
        }
        Ok(())
    }

    fn read_identity_pub(&self) -> Result<RootPublicKey, DataDirError> {
        let file = self.identity_pub_file();
        let bytes = read_bounded(&file, KEY_FILE_BYTES as u64)?;
        <&[u8; KEY_FILE_BYTES]>::try_from(bytes.as_slice())
            .ok()
            .and_then(|b| RootPublicKey::from_bytes(b).ok())
            .ok_or_else(|| DataDirError::Damaged {
                path: file,
                reason: "not a 32-byte root public key".into(),
            })
    }

    fn load_companion(&self, device: DeviceKey) -> Result<CompanionIdentity, DataDirError> {
        for (file, name) in [
            (self.device_cert_file(), "device.cert"),
            (self.identity_pub_file(), "identity.pub"),
        ] {
            if !file.exists() {
                return Err(DataDirError::Incomplete {
                    dir: self.path.clone(),
                    missing: name,
                });
            }
        }
        let root = self.read_identity_pub()?;
        let cert_file = self.device_cert_file();
        let damaged = |reason: String| DataDirError::Damaged {
            path: cert_file.clone(),
            reason,
        };
        let certificate =
            DeviceCertificate::decode(&read_bounded(&cert_file, MAX_CERT_FILE_BYTES)?)
                .map_err(|e| damaged(e.to_string()))?;
        certificate
            .verify_for(&root)
            .map_err(|e| damaged(e.to_string()))?;
        if certificate.device() != device.public() {
            return Err(damaged("it certifies a different device key".into()));
        }
        Ok(CompanionIdentity {
            device,
            certificate,
        })
    }

    /// Stores the open link ticket's secret (0600), replacing an older one.
    pub fn write_link_secret(
        &self,
        secret: &LinkSecret,
        created_at: u64,
    ) -> Result<(), DataDirError> {
        let mut bytes = zeroize::Zeroizing::new([0u8; LINK_SECRET_FILE_BYTES]);
        bytes[..LINK_SECRET_LEN].copy_from_slice(secret.as_bytes());
        bytes[LINK_SECRET_LEN..].copy_from_slice(&created_at.to_be_bytes());
        let tmp = self.path.join("link.secret.tmp");
        let _ = fs::remove_file(&tmp);
        self.write_secret_file(&tmp, &bytes[..])?;
        let file = self.link_secret_file();
        fs::rename(&tmp, &file).map_err(|source| DataDirError::Io {
            action: "cannot write",
            path: file,
            source,
        })
    }

    /// The open link ticket's secret and creation time, if there is one.
    pub fn read_link_secret(&self) -> Option<(LinkSecret, u64)> {
        let bytes = self
            .read_secret_file(&self.link_secret_file(), LINK_SECRET_FILE_BYTES)
            .ok()?;
        let secret = <[u8; LINK_SECRET_LEN]>::try_from(bytes.get(..LINK_SECRET_LEN)?).ok()?;
        let at = <[u8; 8]>::try_from(bytes.get(LINK_SECRET_LEN..)?).ok()?;
        Some((LinkSecret::from_bytes(&secret), u64::from_be_bytes(at)))
    }

    /// Forgets the open link ticket (single use).
    pub fn remove_link_secret(&self) {
        let _ = fs::remove_file(self.link_secret_file());
    }

    /// Makes this pending device a companion: writes its certificate and the root public key,
    /// then removes the ticket's secret and the pending-link marker (the last step: until then
    /// the device still counts as waiting). Refuses a certificate for another device key.
    pub fn complete_link(
        &self,
        device: &DeviceKey,
        certificate: &DeviceCertificate,
    ) -> Result<CompanionIdentity, DataDirError> {
        if !self.is_pending_link() {
            return Err(DataDirError::Damaged {
                path: self.pending_link_file(),
                reason: "this device is not waiting to be linked".into(),
            });
        }
        certificate
            .verify()
            .ok()
            .filter(|()| certificate.device() == device.public())
            .ok_or_else(|| DataDirError::Damaged {
                path: self.device_cert_file(),
                reason: "the certificate received is not for this device".into(),
            })?;
        for file in [self.device_cert_file(), self.identity_pub_file()] {
            let _ = fs::remove_file(file);
        }
        write_new_file(&self.device_cert_file(), &certificate.encode(), 0o644)?;
        write_new_file(
            &self.identity_pub_file(),
            certificate.root().as_bytes(),
            0o644,
        )?;
        self.remove_link_secret();
        fs::remove_file(self.pending_link_file()).map_err(|source| DataDirError::Io {
            action: "cannot remove",
            path: self.pending_link_file(),
            source,
        })?;
        sync_dir(&self.path)?;
        self.load_companion(DeviceKey::from_bytes(&device.to_bytes()))
    }
}

#[cfg(test)]
mod tests;
