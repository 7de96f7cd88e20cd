//! [`Conversation`]: one MLS group whose leaves are devices, and the rules
//! rhizo adds on top of openmls (rekey cadence, serverless commit flow,
//! concurrent-commit tie-break, future-epoch buffering).

mod group;
mod group_commit;
#[cfg(test)]
mod group_convergence;
#[cfg(test)]
mod group_scale_tests;
#[cfg(test)]
mod group_tests;
mod ordering;
#[cfg(test)]
mod ordering_tests;
mod receive;
mod roles;
#[cfg(test)]
mod roles_tests;
mod state;
#[cfg(test)]
mod tests;

#[cfg(test)]
use openmls::prelude::LeafNodeIndex;
use openmls::prelude::tls_codec::{DeserializeBytes as _, Serialize as _};
use openmls::prelude::{
    GroupId, LeafNodeParameters, MlsGroup, MlsGroupJoinConfig, MlsMessageBodyIn, MlsMessageIn,
    PURE_CIPHERTEXT_WIRE_FORMAT_POLICY, ProtocolMessage, SenderRatchetConfiguration, StagedWelcome,
};
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::random::OpenMlsRand as _;
use rhizo_core::{DeviceCertificate, DevicePublicKey, RootPublicKey};
use sha2::{Digest, Sha256};

use crate::device::certificate_of_leaf;
use crate::key_package::{
    capabilities, decode_untrusted, keep_used_key_packages, used_key_packages_of,
    validate_with_store,
};
use crate::store::MlsProvider;
use crate::{CIPHERSUITE, Device, E2eError, E2eStore};
use receive::{merge_error, process_error, welcome_error};
use state::{ConversationState, PendingCommit};

pub use group::{GroupCommit, MemberRef, RosterEntry, WelcomeInfo, inspect_welcome};
pub use roles::{ListedDevices, MAX_LISTED_DEVICES, MAX_LISTED_USERS};

/// Past epochs whose message keys are kept, so application messages sent
/// just before a commit still decrypt after it (groups of more than
/// [`LARGE_GROUP_DEVICES`] keep [`LARGE_GROUP_PAST_EPOCHS`]).
pub const MAX_PAST_EPOCHS: usize = 5;

/// Groups with more member devices than this keep only [`LARGE_GROUP_PAST_EPOCHS`] past
/// epochs: openmls stores each past epoch with its whole member list and rewrites them all on
/// every commit (at 1,000 devices, 1 instead of 5 took processing a commit from 127–145 ms to
/// 75 ms).
pub const LARGE_GROUP_DEVICES: usize = 64;

/// Past epochs kept by a group of more than [`LARGE_GROUP_DEVICES`] devices.
pub const LARGE_GROUP_PAST_EPOCHS: usize = 1;

/// The past epochs a group of `devices` member devices keeps.
pub fn past_epochs_for(devices: usize) -> usize {
    if devices > LARGE_GROUP_DEVICES {
        LARGE_GROUP_PAST_EPOCHS
    } else {
        MAX_PAST_EPOCHS
    }
}

/// How far ahead of the next expected generation (per sender, per epoch) a
/// message may be: bounds the keys derived for lost or reordered messages.
pub const MAX_SKIPPED_GENERATIONS: u32 = 1000;

/// How many older generations per sender stay decryptable, for messages
/// delivered out of order.
pub const OUT_OF_ORDER_TOLERANCE: u32 = 64;

/// Future-epoch messages buffered per conversation; beyond it the oldest is
/// dropped (and counted, see [`Conversation::deferred_dropped`]).
pub const MAX_DEFERRED: usize = 256;

/// How many epochs ahead a message may be and still be buffered; further
/// ahead is an error (the sender is confused or malicious).
pub const MAX_FUTURE_EPOCHS: u64 = 8;

/// Largest serialized MLS message accepted by [`Conversation::process`] and
/// [`Conversation::join`], checked before parsing. Fits rhizo's envelope
/// payload (`rhizo_core` `MAX_PAYLOAD_BYTES`, 255 KiB).
pub const MAX_MESSAGE_BYTES: usize = 254 * 1024;

/// Largest plaintext [`Conversation::encrypt`] takes: leaves room for MLS
/// framing, signature, padding and AEAD tag within [`MAX_MESSAGE_BYTES`].
pub const MAX_PLAINTEXT_BYTES: usize = 248 * 1024;

/// Most devices (leaves) in one conversation: a group of
/// [`MAX_GROUP_MEMBERS`](rhizo_core::group::MAX_GROUP_MEMBERS) users with about four devices
/// each. A Welcome to a group this large is larger than one envelope and travels in parts
/// (`rhizo_core::welcome`).
pub const MAX_GROUP_DEVICES: usize = 4096;

/// Largest serialized Welcome accepted by [`Conversation::join`] and
/// [`inspect_welcome`](crate::inspect_welcome), checked before parsing: it carries the whole
/// ratchet tree (about 1.5 KiB per leaf with X-Wing keys). Same bound as the reassembly of a
/// Welcome sent in parts (`rhizo_core::welcome::MAX_WELCOME_BYTES`).
pub const MAX_WELCOME_BYTES: usize = rhizo_core::welcome::MAX_WELCOME_BYTES;

/// Length of a conversation id (the MLS group id), random.
pub const GROUP_ID_LEN: usize = 32;

/// Application ciphertexts are padded to a multiple of this many bytes, so
/// their length says less about the plaintext's.
pub const PADDING_BLOCK: usize = 64;

/// Default of [`RekeyPolicy::max_messages`] (seed 000's rule).
pub const DEFAULT_REKEY_MAX_MESSAGES: u64 = 100;

/// Default of [`RekeyPolicy::max_age_secs`]: 24 h (seed 000's rule).
pub const DEFAULT_REKEY_MAX_AGE_SECS: u64 = 24 * 60 * 60;

/// When a device should refresh its own leaf with a self-update commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Messages this device encrypted since its last own commit.
    pub max_messages: u64,
    /// Seconds since its last own commit (or since it created or joined).
    pub max_age_secs: u64,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        Self {
            max_messages: DEFAULT_REKEY_MAX_MESSAGES,
            max_age_secs: DEFAULT_REKEY_MAX_AGE_SECS,
        }
    }
}

/// One outcome of [`Conversation::process`] (or of
/// [`Conversation::confirm_commit`] delivering buffered messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// A decrypted, authenticated message from a member device.
    Application {
        /// The plaintext.
        plaintext: Vec<u8>,
        /// The sending device's certificate (validated when the device
        /// joined the group). Check its root / UID against your contact.
        sender: DeviceCertificate,
    },
    /// A commit was applied; the conversation is now at `epoch`.
    CommitApplied {
        /// The new epoch.
        epoch: u64,
    },
    /// A commit was valid input but not applied.
    CommitRejected {
        /// Why.
        reason: CommitRejectReason,
    },
    /// The message is from a future epoch (its commit has not arrived yet).
    /// It is buffered and delivered after the commit is applied, in the
    /// `Vec` returned by that later call. In a group, also a message of the
    /// current or a recent epoch that does not decrypt on this branch
    /// ("parked"): it is retried after every rollback and applied commit.
    Deferred,
    /// Groups: a commit with a smaller id arrived for the past epoch
    /// `to_epoch`; the group went back from `from_epoch` to it (dropping the
    /// commits applied since) and applied the new commit: a
    /// [`Processed::CommitApplied`] follows. Our own commits among the dropped
    /// ones are undone; messages we sent on the dropped branch must be
    /// encrypted and sent again.
    RolledBack {
        /// The epoch the group was in.
        from_epoch: u64,
        /// The epoch it went back to.
        to_epoch: u64,
    },
}

/// Why a commit was not applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitRejectReason {
    /// It competes with our pending commit for the same epoch and lost the
    /// tie-break (its SHA-256 is larger than ours). Ours stays pending; the
    /// other side will apply ours.
    LostTieBreak,
    /// It is for an epoch this conversation has already left (e.g. the
    /// loser of a tie-break that arrived after ours was confirmed); in a
    /// group, older than the rollback window.
    StaleEpoch,
    /// Groups: it is the commit already applied in its epoch.
    Duplicate,
    /// Groups: it adds, removes someone else or changes the group state, and
    /// its committer is not an admin in the current epoch.
    NotAdmin,
    /// Groups: after it, no admin would have a device in the group.
    NoAdminLeft,
    /// Groups: its new group state does not decode, or drops the extension
    /// from the required capabilities.
    InvalidGroupState,
    /// Groups: a member who is no admin adds a device of its own UID that the newest device
    /// list the driver gave ([`Conversation::set_listed_devices`]) does not name: fetch the
    /// list and process the commit again.
    DeviceNotListed,
}

/// The epoch a conversation message (an MLS `PrivateMessage`: application or commit) was made
/// in, read from its header without decrypting; `None` if it is not one.
pub fn message_epoch(message: &[u8]) -> Option<u64> {
    decode_private(message).ok().map(|m| m.epoch().as_u64())
}

/// The tie-break key of a commit: SHA-256 of its serialized bytes (the
/// bytes returned by [`Conversation::self_update`]). Also what a delivery
/// receipt should name, so the node can match it with
/// [`Conversation::pending_commit_id`].
pub fn commit_id(commit: &[u8]) -> [u8; 32] {
    Sha256::digest(commit).into()
}

/// A conversation: an MLS group (RFC 9420, [`CIPHERSUITE`]) whose leaves are
/// devices. See the [crate docs](crate) for the rules it follows.
///
/// Every method that changes state takes the [`E2eStore`] and commits its
/// SQLite transaction before returning (see [`E2eStore`]'s persistence
/// contract). On error, nothing changed: the transaction is rolled back and
/// the in-memory group reloaded.
#[derive(Debug)]
pub struct Conversation {
    group: MlsGroup,
    state: ConversationState,
    /// Users' listed devices, for the role rule's own-device exception (in memory).
    listed: ListedDevices,
}

/// The join configuration shared by creator and joiners.
fn join_config() -> MlsGroupJoinConfig {
    join_config_keeping(MAX_PAST_EPOCHS)
}

/// [`join_config`] keeping `past_epochs` past epochs.
fn join_config_keeping(past_epochs: usize) -> MlsGroupJoinConfig {
    MlsGroupJoinConfig::builder()
        .wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
        .padding_size(PADDING_BLOCK)
        .max_past_epochs(past_epochs)
        .sender_ratchet_configuration(SenderRatchetConfiguration::new(
            OUT_OF_ORDER_TOLERANCE,
            MAX_SKIPPED_GENERATIONS,
        ))
        .use_ratchet_tree_extension(true)
        .build()
}

/// Checks the size limit, then decodes an `MLSMessage`.
fn decode_message(bytes: &[u8], what: &'static str) -> Result<MlsMessageBodyIn, E2eError> {
    decode_message_within(bytes, what, MAX_MESSAGE_BYTES)
}

/// Checks the size limit `max`, then decodes an `MLSMessage`.
fn decode_message_within(
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<MlsMessageBodyIn, E2eError> {
    if bytes.len() > max {
        return Err(E2eError::TooLarge {
            what,
            len: bytes.len(),
            max,
        });
    }
    decode_untrusted(|| MlsMessageIn::tls_deserialize_exact_bytes(bytes))
        .map(MlsMessageIn::extract)
        .ok_or(E2eError::Malformed(what))
}

/// Decodes a conversation message (an MLS `PrivateMessage`).
fn decode_private(bytes: &[u8]) -> Result<ProtocolMessage, E2eError> {
    match decode_message(bytes, "MLS message")? {
        MlsMessageBodyIn::PrivateMessage(message) => Ok(message.into()),
        MlsMessageBodyIn::PublicMessage(_) => Err(E2eError::Unsupported(
            "unencrypted (PublicMessage) group messages",
        )),
        _ => Err(E2eError::Malformed("MLS message")),
    }
}

/// The certificate in a credential already validated on entry to the group.
fn member_certificate(credential: &openmls::prelude::Credential) -> Option<DeviceCertificate> {
    let basic = openmls::prelude::BasicCredential::try_from(credential.clone()).ok()?;
    DeviceCertificate::decode(basic.identity()).ok()
}

impl Conversation {
    /// Starts a conversation: a new group (random [`GROUP_ID_LEN`]-byte id)
    /// with this device, adding every device in `peer_key_packages`
    /// (serialized KeyPackages, checked as [`inspect_key_package`]
    /// does). Returns it and the serialized Welcome (an `MLSMessage`
    /// including the ratchet tree, so a joiner needs nothing else) to
    /// deliver to every peer device.
    ///
    /// [`inspect_key_package`]: crate::inspect_key_package
    ///
    /// # Errors
    ///
    /// [`E2eError::NoPeers`], [`E2eError::TooManyDevices`], any
    /// KeyPackage error of [`inspect_key_package`], [`E2eError::Storage`].
    pub fn create(
        store: &E2eStore,
        device: &Device,
        peer_key_packages: &[Vec<u8>],
        now: u64,
    ) -> Result<(Self, Vec<u8>), E2eError> {
        if peer_key_packages.is_empty() {
            return Err(E2eError::NoPeers);
        }
        let count = peer_key_packages.len().saturating_add(1);
        if count > MAX_GROUP_DEVICES {
            return Err(E2eError::TooManyDevices {
                count,
                max: MAX_GROUP_DEVICES,
            });
        }
        let key_packages = peer_key_packages
            .iter()
            .map(|bytes| validate_with_store(store, bytes))
            .collect::<Result<Vec<_>, _>>()?;

        let provider = store.provider();
        let atomic = store.atomic()?;
        let group_id = provider
            .rand()
            .random_vec(GROUP_ID_LEN)
            .map_err(E2eError::mls)?;
        let mut group = MlsGroup::builder()
            .with_group_id(GroupId::from_slice(&group_id))
            .ciphersuite(CIPHERSUITE)
            .with_capabilities(capabilities())
            .with_wire_format_policy(PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .padding_size(PADDING_BLOCK)
            .max_past_epochs(MAX_PAST_EPOCHS)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(
                OUT_OF_ORDER_TOLERANCE,
                MAX_SKIPPED_GENERATIONS,
            ))
            .use_ratchet_tree_extension(true)
            .build(&provider, device, device.credential_with_key())
            .map_err(E2eError::mls)?;
        // Nobody else is in the group yet, so the Add commit goes nowhere:
        // merge it at once; the peers start from the Welcome.
        let (_commit, welcome, _group_info) = group
            .add_members(&provider, device, &key_packages)
            .map_err(E2eError::mls)?;
        group
            .merge_pending_commit(&provider)
            .map_err(E2eError::mls)?;
        let welcome = welcome.tls_serialize_detached().map_err(E2eError::mls)?;
        let state = ConversationState::new(group_id, now);
        state.save(store.conn())?;
        atomic.commit()?;
        Ok((
            Self {
                group,
                state,
                listed: ListedDevices::default(),
            },
            welcome,
        ))
    }

    /// Joins a conversation from a serialized Welcome addressed to one of
    /// this device's KeyPackages (a one-time KeyPackage is used up).
    ///
    /// Every member's credential must be a valid [`DeviceCertificate`] for
    /// its signature key. Check [`members`](Self::members) against the
    /// contact you expect before trusting the conversation.
    ///
    /// # Errors
    ///
    /// [`E2eError::TooLarge`], [`E2eError::Malformed`],
    /// [`E2eError::WrongCiphersuite`], [`E2eError::NoMatchingKeyPackage`],
    /// [`E2eError::AlreadyJoined`], [`E2eError::InvalidCredential`] /
    /// [`E2eError::InvalidCertificate`], [`E2eError::TooManyDevices`],
    /// [`E2eError::WrongDevice`], [`E2eError::Mls`]; for a group Welcome also
    /// [`E2eError::GroupState`] and [`E2eError::Refused`] (`NotAdmin`: its sender is not an
    /// admin of the group).
    pub fn join(
        store: &E2eStore,
        device: &Device,
        welcome: &[u8],
        now: u64,
    ) -> Result<Self, E2eError> {
        let MlsMessageBodyIn::Welcome(welcome) =
            decode_message_within(welcome, "Welcome", MAX_WELCOME_BYTES)?
        else {
            return Err(E2eError::Malformed("Welcome"));
        };
        if welcome.ciphersuite() != CIPHERSUITE {
            return Err(E2eError::WrongCiphersuite(welcome.ciphersuite() as u16));
        }
        let provider = store.provider();
        let atomic = store.atomic()?;
        let used = used_key_packages_of(store, &welcome, now)?;
        let staged = StagedWelcome::new_from_welcome(&provider, &join_config(), welcome, None)
            .map_err(welcome_error)?;
        if staged.group_context().group_id().as_slice().len() != GROUP_ID_LEN {
            return Err(E2eError::Unsupported("group ids that are not 32 bytes"));
        }
        group::check_welcome(&staged)?;
        let mut count = 0usize;
        for member in staged.members() {
            count = count.saturating_add(1);
            certificate_of_leaf(&member.credential, &member.signature_key)?;
        }
        if count > MAX_GROUP_DEVICES {
            return Err(E2eError::TooManyDevices {
                count,
                max: MAX_GROUP_DEVICES,
            });
        }
        let own_key = staged
            .own_leaf_node()
            .map(|leaf| leaf.signature_key().as_slice().to_vec());
        if own_key.as_deref() != Some(device.signature_key().as_slice()) {
            return Err(E2eError::WrongDevice);
        }
        let group = staged.into_group(&provider).map_err(welcome_error)?;
        keep_used_key_packages(store, &used, now)?;
        let state = ConversationState::new(group.group_id().as_slice().to_vec(), now);
        state.save(store.conn())?;
        let mut conversation = Self {
            group,
            state,
            listed: ListedDevices::default(),
        };
        conversation.fit_past_epochs(&provider)?;
        atomic.commit()?;
        Ok(conversation)
    }

    /// Loads a conversation from `store`, or `None` if there is none with
    /// this id.
    ///
    /// # Errors
    ///
    /// [`E2eError::Storage`] if the database cannot be read.
    pub fn load(store: &E2eStore, group_id: &[u8]) -> Result<Option<Self>, E2eError> {
        if group_id.len() != GROUP_ID_LEN {
            return Ok(None);
        }
        let provider = store.provider();
        let Some(group) = MlsGroup::load(provider.storage(), &GroupId::from_slice(group_id))?
        else {
            return Ok(None);
        };
        // A group always gets its row in the same transaction; if it is
        // missing anyway, start the rekey clock at 0 so a rekey is due.
        let state = ConversationState::load(store.conn(), group_id)?
            .unwrap_or_else(|| ConversationState::new(group_id.to_vec(), 0));
        Ok(Some(Self {
            group,
            state,
            listed: ListedDevices::default(),
        }))
    }

    /// The conversation id (the MLS group id, [`GROUP_ID_LEN`] bytes).
    pub fn id(&self) -> &[u8] {
        self.group.group_id().as_slice()
    }

    /// The current MLS epoch (while a commit is pending: the epoch before
    /// it).
    pub fn epoch(&self) -> u64 {
        self.group.epoch().as_u64()
    }

    /// The certificates of all member devices, this one included, in leaf
    /// order. Each was checked on entry (valid certificate bound to the
    /// leaf's signature key); map them to UIDs with
    /// `certificate.root().uid()`.
    pub fn members(&self) -> Vec<DeviceCertificate> {
        self.group
            .members()
            .filter_map(|member| member_certificate(&member.credential))
            .collect()
    }

    /// Checks that every member device is one the caller expects: each
    /// leaf's certificate must name a (root, device) pair in `expected`, and
    /// no device may hold two leaves. Members the caller expects but the
    /// group lacks are fine (a sender may have found no KeyPackage for one
    /// of them); a member it does not expect is a device someone slipped in.
    ///
    /// Call it after [`join`](Self::join) and after a
    /// [`process`](Self::process) that applied a commit, with this device and
    /// the contact's listed devices, and refuse the conversation (roll back)
    /// on error.
    ///
    /// # Errors
    ///
    /// [`E2eError::UnexpectedMember`] naming the first device that is not
    /// expected (or is there twice); [`E2eError::InvalidCredential`] for a
    /// leaf without a device certificate (cannot happen for a group that
    /// passed this crate's checks).
    pub fn check_members(
        &self,
        expected: &[(RootPublicKey, DevicePublicKey)],
    ) -> Result<(), E2eError> {
        let mut seen: Vec<DevicePublicKey> = Vec::new();
        for member in self.group.members() {
            let certificate = member_certificate(&member.credential).ok_or(
                E2eError::InvalidCredential("a member's credential is not a device certificate"),
            )?;
            let device = certificate.device();
            if seen.contains(&device) || !expected.contains(&(certificate.root(), device)) {
                return Err(E2eError::UnexpectedMember {
                    device: device.to_string(),
                });
            }
            seen.push(device);
        }
        Ok(())
    }

    /// Whether this device has a commit waiting for [`confirm_commit`](Self::confirm_commit).
    pub fn has_pending_commit(&self) -> bool {
        self.state.pending.is_some()
    }

    /// The pending commit's bytes (exactly what [`self_update`](Self::self_update)
    /// returned), e.g. to resend it after a restart.
    pub fn pending_commit(&self) -> Option<&[u8]> {
        self.state.pending.as_ref().map(|p| p.message.as_slice())
    }

    /// [`commit_id`] of the pending commit. The node must only call
    /// [`confirm_commit`](Self::confirm_commit) for a delivery receipt of
    /// *this* commit, not of an older one that lost a tie-break.
    pub fn pending_commit_id(&self) -> Option<[u8; 32]> {
        self.state.pending.as_ref().map(|p| p.id)
    }

    /// How many buffered future-epoch messages were dropped (queue full, or
    /// they failed when retried) since the conversation began.
    pub fn deferred_dropped(&self) -> u64 {
        self.state.deferred_dropped
    }

    /// How many future-epoch messages are buffered now.
    ///
    /// # Errors
    ///
    /// [`E2eError::Storage`].
    pub fn deferred_len(&self, store: &E2eStore) -> Result<usize, E2eError> {
        self.state.deferred_len(store.conn())
    }

    /// When this device last made a commit of its own that is applied here (a group's at once,
    /// a 1:1 conversation's once confirmed), or created or joined the conversation (unix
    /// seconds, the `now` it was given then): the start of the newest epoch whose secrets came
    /// from this device's own fresh randomness.
    pub fn last_own_commit_at(&self) -> u64 {
        self.state.last_commit_at
    }

    /// Whether this device should [`self_update`](Self::self_update) now:
    /// it encrypted `policy.max_messages` messages, or `policy.max_age_secs`
    /// passed, since its last own commit (or since it created or joined the
    /// conversation). Never while a commit is pending.
    pub fn rekey_due(&self, policy: &RekeyPolicy, now: u64) -> bool {
        self.state.pending.is_none()
            && (self.state.sent_since_commit >= policy.max_messages
                || now.saturating_sub(self.state.last_commit_at) >= policy.max_age_secs)
    }

    /// Encrypts `plaintext` as an MLS `PrivateMessage` for the current epoch
    /// (also while a commit is pending) and returns it serialized. Counts
    /// toward [`rekey_due`](Self::rekey_due).
    ///
    /// `now` is not used yet (the rekey clock runs from commits); it is
    /// taken so time-based rules can be added without an API change.
    ///
    /// # Errors
    ///
    /// [`E2eError::TooLarge`] beyond [`MAX_PLAINTEXT_BYTES`],
    /// [`E2eError::WrongDevice`], [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn encrypt(
        &mut self,
        store: &E2eStore,
        device: &Device,
        plaintext: &[u8],
        _now: u64,
    ) -> Result<Vec<u8>, E2eError> {
        if plaintext.len() > MAX_PLAINTEXT_BYTES {
            return Err(E2eError::TooLarge {
                what: "plaintext",
                len: plaintext.len(),
                max: MAX_PLAINTEXT_BYTES,
            });
        }
        self.check_device(device)?;
        self.atomically(store, |this, provider| {
            let message = this
                .group
                .create_message(provider, device, plaintext)
                .map_err(E2eError::mls)?;
            let bytes = message.tls_serialize_detached().map_err(E2eError::mls)?;
            this.state.sent_since_commit = this.state.sent_since_commit.saturating_add(1);
            this.state.save(store.conn())?;
            Ok(bytes)
        })
    }

    /// Processes one serialized MLS message from a peer device.
    ///
    /// * Application message → [`Processed::Application`] (current or one of
    ///   the last [`MAX_PAST_EPOCHS`] epochs; [`LARGE_GROUP_PAST_EPOCHS`] in a
    ///   group of more than [`LARGE_GROUP_DEVICES`] devices, older ones are
    ///   [`E2eError::WrongEpoch`]).
    /// * Commit for the current epoch → validated (every new or updated
    ///   leaf must carry a valid certificate for its key, an updated leaf
    ///   must keep its root) and applied: [`Processed::CommitApplied`] —
    ///   unless it competes with our pending commit and loses the tie-break
    ///   ([`Processed::CommitRejected`]). If it wins, our pending commit is
    ///   discarded.
    /// * Any message up to [`MAX_FUTURE_EPOCHS`] ahead → buffered,
    ///   [`Processed::Deferred`].
    ///
    /// After a commit is applied, buffered messages that became processable
    /// are processed too and their results appended, in arrival order.
    ///
    /// # Errors
    ///
    /// [`E2eError::TooLarge`], [`E2eError::Malformed`],
    /// [`E2eError::WrongGroup`], [`E2eError::WrongEpoch`],
    /// [`E2eError::DecryptionFailed`], [`E2eError::Replayed`],
    /// [`E2eError::OwnMessage`], [`E2eError::InvalidCredential`] /
    /// [`E2eError::InvalidCertificate`], [`E2eError::Unsupported`],
    /// [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn process(
        &mut self,
        store: &E2eStore,
        device: &Device,
        message: &[u8],
        now: u64,
    ) -> Result<Vec<Processed>, E2eError> {
        let protocol_message = decode_private(message)?;
        // A group that removed us has no own leaf to compare, but a smaller-id commit for a
        // recent epoch may still roll the removal back.
        if self.group.is_active() || !self.is_group() {
            self.check_device(device)?;
        }
        self.atomically(store, |this, provider| {
            let (mut results, applied) =
                this.process_one(store, provider, message, protocol_message, now)?;
            if applied {
                this.retry_deferred(store, provider, now, &mut results)?;
            }
            this.state.save(store.conn())?;
            Ok(results)
        })
    }

    /// Makes a self-update commit (fresh leaf keys for this device: forward
    /// secrecy and post-compromise security) and keeps it **pending**.
    /// Returns the serialized commit to send to every other member device.
    ///
    /// Messages encrypted while it is pending use the current epoch. Call
    /// [`confirm_commit`](Self::confirm_commit) when a peer's delivery receipt
    /// for it arrives (match it with [`pending_commit_id`](Self::pending_commit_id)).
    ///
    /// # Errors
    ///
    /// [`E2eError::CommitPending`], [`E2eError::WrongDevice`],
    /// [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn self_update(
        &mut self,
        store: &E2eStore,
        device: &Device,
        now: u64,
    ) -> Result<Vec<u8>, E2eError> {
        if self.is_group() {
            return self
                .commit_own(store, device, now, |builder| {
                    Ok(builder.force_self_update(true))
                })
                .map(|commit| commit.commit);
        }
        if self.state.pending.is_some() {
            return Err(E2eError::CommitPending);
        }
        self.check_device(device)?;
        self.atomically(store, |this, provider| {
            let bundle = this
                .group
                .self_update(provider, device, LeafNodeParameters::default())
                .map_err(E2eError::mls)?;
            let message = bundle
                .commit()
                .tls_serialize_detached()
                .map_err(E2eError::mls)?;
            this.state.pending = Some(PendingCommit {
                id: commit_id(&message),
                message: message.clone(),
                epoch: this.epoch(),
                created_at: now,
            });
            this.state.save(store.conn())?;
            Ok(message)
        })
    }

    /// Adds devices (their serialized KeyPackages, checked as
    /// [`create`](Self::create) checks them) with a commit that stays
    /// **pending**, like [`self_update`](Self::self_update)'s. Returns the
    /// serialized commit (for the current members) and the Welcome (for the
    /// new devices). Used for groups; in a 1:1 conversation the peer refuses
    /// a device it does not expect ([`check_members`](Self::check_members)).
    ///
    /// # Errors
    ///
    /// [`E2eError::CommitPending`], [`E2eError::NoPeers`],
    /// [`E2eError::TooManyDevices`], KeyPackage errors,
    /// [`E2eError::WrongDevice`], [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn add_devices(
        &mut self,
        store: &E2eStore,
        device: &Device,
        key_packages: &[Vec<u8>],
        now: u64,
    ) -> Result<(Vec<u8>, Vec<u8>), E2eError> {
        if self.is_group() {
            let commit = self.add_members(store, device, key_packages, now)?;
            return Ok((commit.commit, commit.welcome.unwrap_or_default()));
        }
        if self.state.pending.is_some() {
            return Err(E2eError::CommitPending);
        }
        if key_packages.is_empty() {
            return Err(E2eError::NoPeers);
        }
        let count = self
            .group
            .members()
            .count()
            .saturating_add(key_packages.len());
        if count > MAX_GROUP_DEVICES {
            return Err(E2eError::TooManyDevices {
                count,
                max: MAX_GROUP_DEVICES,
            });
        }
        self.check_device(device)?;
        let key_packages = key_packages
            .iter()
            .map(|bytes| validate_with_store(store, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        self.atomically(store, |this, provider| {
            let (commit, welcome, _group_info) = this
                .group
                .add_members(provider, device, &key_packages)
                .map_err(E2eError::mls)?;
            let message = commit.tls_serialize_detached().map_err(E2eError::mls)?;
            let welcome = welcome.tls_serialize_detached().map_err(E2eError::mls)?;
            this.state.pending = Some(PendingCommit {
                id: commit_id(&message),
                message: message.clone(),
                epoch: this.epoch(),
                created_at: now,
            });
            this.state.save(store.conn())?;
            Ok((message, welcome))
        })
    }

    /// A peer acknowledged our pending commit: apply it. Resets the rekey
    /// counters (the commit's time is the `now` given to `self_update`).
    /// Returns buffered messages that became processable, as
    /// [`process`](Self::process) would.
    ///
    /// # Errors
    ///
    /// [`E2eError::NoPendingCommit`] (e.g. it lost a tie-break and was
    /// discarded), [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn confirm_commit(&mut self, store: &E2eStore) -> Result<Vec<Processed>, E2eError> {
        let Some(pending) = self.state.pending.clone() else {
            return Err(E2eError::NoPendingCommit);
        };
        self.atomically(store, |this, provider| {
            this.group
                .merge_pending_commit(provider)
                .map_err(E2eError::mls)?;
            this.state.pending = None;
            this.state.sent_since_commit = 0;
            this.state.last_commit_at = pending.created_at;
            let mut results = Vec::new();
            this.retry_deferred(store, provider, pending.created_at, &mut results)?;
            this.state.save(store.conn())?;
            Ok(results)
        })
    }

    /// Drops our pending commit without merging it: for a commit the peer refused for good
    /// (so it will never be applied there). The next [`rekey_due`](Self::rekey_due) self-update
    /// makes a new one. Does nothing without a pending commit.
    ///
    /// Never call it for a commit the peer may still apply: this device would then lack the
    /// keys of the epoch that commit opens.
    ///
    /// # Errors
    ///
    /// [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn discard_pending_commit(&mut self, store: &E2eStore) -> Result<(), E2eError> {
        if self.state.pending.is_none() {
            return Ok(());
        }
        self.atomically(store, |this, provider| {
            this.group
                .clear_pending_commit(provider.storage())
                .map_err(E2eError::mls)?;
            this.state.pending = None;
            this.state.save(store.conn())?;
            Ok(())
        })
    }

    /// Errors unless `device` is this conversation's own leaf.
    fn check_device(&self, device: &Device) -> Result<(), E2eError> {
        let own = self
            .group
            .own_leaf_node()
            .map(|leaf| leaf.signature_key().as_slice() == device.signature_key().as_slice());
        if own == Some(true) {
            Ok(())
        } else {
            Err(E2eError::WrongDevice)
        }
    }

    /// Runs `f` in one transaction (or savepoint). On error rolls it back and
    /// reloads the group and our state from the store, so memory matches
    /// disk.
    fn atomically<T>(
        &mut self,
        store: &E2eStore,
        f: impl FnOnce(&mut Self, &MlsProvider<'_>) -> Result<T, E2eError>,
    ) -> Result<T, E2eError> {
        let provider = store.provider();
        let atomic = store.atomic()?;
        let result = f(self, &provider).and_then(|value| atomic.commit().map(|()| value));
        if result.is_err() {
            self.reload(store);
        }
        result
    }

    /// Re-reads the group and our state after a rollback.
    fn reload(&mut self, store: &E2eStore) {
        let group_id = self.group.group_id().clone();
        match MlsGroup::load(store.provider().storage(), &group_id) {
            Ok(Some(group)) => self.group = group,
            Ok(None) => tracing::error!("MLS group vanished from storage during rollback"),
            Err(error) => tracing::error!(%error, "reloading MLS group after rollback failed"),
        }
        match ConversationState::load(store.conn(), group_id.as_slice()) {
            Ok(Some(state)) => self.state = state,
            Ok(None) => {}
            Err(error) => tracing::error!(%error, "reloading conversation state failed"),
        }
    }
}
