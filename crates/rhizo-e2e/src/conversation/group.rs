//! Groups: a [`Conversation`] whose GroupContext carries the rhizo extension
//! [`GROUP_STATE_EXTENSION_TYPE`] (admins and profile, required of every member). Creation,
//! membership changes by commit (admins only, see `roles`), the roster, the safety
//! fingerprint, and Welcome inspection without joining.
//!
//! Own group commits are merged as soon as they are made (no pending state, unlike 1:1); the
//! ordering rule (`group_commit`) rolls them back if a commit for the same epoch with a
//! smaller ordering key turns up. Each carries its time in its authenticated data.

use std::collections::BTreeMap;

use openmls::group::Initial;
use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::{
    CommitBuilder, ExtensionType, GroupId, KeyPackage, LeafNodeIndex, MlsGroup, MlsMessageBodyIn,
    Sender, StagedWelcome,
};
use openmls_traits::OpenMlsProvider as _;
use openmls_traits::random::OpenMlsRand as _;
use rhizo_core::group::{GROUP_STATE_EXTENSION_TYPE, GroupRole, GroupState};
use rhizo_core::{DeviceCertificate, DevicePublicKey, Uid};

use super::state::ConversationState;
use super::{
    Conversation, GROUP_ID_LEN, MAX_GROUP_DEVICES, commit_id, decode_message_within, join_config,
    member_certificate, ordering, roles, welcome_error,
};
use crate::device::certificate_of_leaf;
use crate::key_package::{capabilities, validate_with_store};
use crate::{CIPHERSUITE, Device, E2eError, E2eStore};

/// What an own group commit produced. It is already applied here (the group is at `epoch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommit {
    /// The serialized commit, for every other member device (one envelope to the group).
    pub commit: Vec<u8>,
    /// The serialized Welcome for the added devices, if the commit added any.
    pub welcome: Option<Vec<u8>>,
    /// The epoch the group is in now.
    pub epoch: u64,
}

/// Which leaves a removal targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberRef {
    /// Every device (leaf) of this user.
    Uid(Uid),
    /// The one leaf of this device.
    Device(DevicePublicKey),
}

/// One user of a group's [`roster`](Conversation::roster).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    /// The user.
    pub uid: Uid,
    /// Its role in the current epoch.
    pub role: GroupRole,
    /// Its devices in the group (certificates checked on entry), in leaf order.
    pub devices: Vec<DeviceCertificate>,
}

/// What a group Welcome says, read without joining ([`inspect_welcome`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WelcomeInfo {
    /// The MLS group id ([`GROUP_ID_LEN`] bytes).
    pub group_id: Vec<u8>,
    /// The epoch the joiner would start in.
    pub epoch: u64,
    /// Admins and profile.
    pub state: GroupState,
    /// Every member device's certificate (each verified), in leaf order.
    pub members: Vec<DeviceCertificate>,
    /// The device that made the commit the Welcome belongs to.
    pub inviter: DeviceCertificate,
}

/// Reads a group Welcome addressed to one of this device's KeyPackages without joining: group
/// id, epoch, [`GroupState`], members and inviter. The KeyPackage stays usable (everything
/// runs in a transaction that is rolled back), so the Welcome can be kept and joined later
/// with [`Conversation::join`].
///
/// # Errors
///
/// As [`Conversation::join`]; [`E2eError::NotAGroup`] for a Welcome without the group
/// extension; [`E2eError::GroupState`] if its state does not decode;
/// [`E2eError::Refused`] (`NotAdmin`) if its sender is not an admin of the group.
pub fn inspect_welcome(store: &E2eStore, welcome: &[u8]) -> Result<WelcomeInfo, E2eError> {
    let MlsMessageBodyIn::Welcome(welcome) =
        decode_message_within(welcome, "Welcome", super::MAX_WELCOME_BYTES)?
    else {
        return Err(E2eError::Malformed("Welcome"));
    };
    if welcome.ciphersuite() != CIPHERSUITE {
        return Err(E2eError::WrongCiphersuite(welcome.ciphersuite() as u16));
    }
    let provider = store.provider();
    // Never committed: reading the Welcome must not use up the KeyPackage.
    let _rollback = store.atomic()?;
    let staged = StagedWelcome::new_from_welcome(&provider, &join_config(), welcome, None)
        .map_err(welcome_error)?;
    let context = staged.group_context();
    let state = check_welcome(&staged)?.ok_or(E2eError::NotAGroup)?;
    let mut members = Vec::new();
    let mut inviter = None;
    for member in staged.members() {
        let certificate = certificate_of_leaf(&member.credential, &member.signature_key)?;
        if member.index == staged.welcome_sender_index() {
            inviter = Some(certificate);
        }
        members.push(certificate);
    }
    if members.len() > MAX_GROUP_DEVICES {
        return Err(E2eError::TooManyDevices {
            count: members.len(),
            max: MAX_GROUP_DEVICES,
        });
    }
    Ok(WelcomeInfo {
        group_id: context.group_id().as_slice().to_vec(),
        epoch: context.epoch().as_u64(),
        state,
        members,
        inviter: inviter.ok_or(E2eError::Malformed("Welcome without its sender's leaf"))?,
    })
}

impl Conversation {
    /// Creates a group with `state` (this device's user must be one of its admins) and the
    /// devices of `key_packages` (may be empty). Returns the group and, if devices were added,
    /// the Welcome for them.
    ///
    /// # Errors
    ///
    /// [`E2eError::Refused`] (`NotAdmin`) if this device's user is not an admin of `state`,
    /// [`E2eError::TooManyDevices`], KeyPackage errors (a KeyPackage must support the group
    /// extension), [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn create_group(
        store: &E2eStore,
        device: &Device,
        state: &GroupState,
        key_packages: &[Vec<u8>],
        now: u64,
    ) -> Result<(Self, Option<Vec<u8>>), E2eError> {
        if !state.is_admin(&device.certificate().root().uid()) {
            return Err(E2eError::Refused(super::CommitRejectReason::NotAdmin));
        }
        check_device_count(key_packages.len().saturating_add(1))?;
        let key_packages = key_packages
            .iter()
            .map(|bytes| group_key_package(store, bytes))
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
            .with_group_context_extensions(roles::extensions_for(state)?)
            .with_wire_format_policy(openmls::prelude::PURE_CIPHERTEXT_WIRE_FORMAT_POLICY)
            .padding_size(super::PADDING_BLOCK)
            .max_past_epochs(super::MAX_PAST_EPOCHS)
            .sender_ratchet_configuration(openmls::prelude::SenderRatchetConfiguration::new(
                super::OUT_OF_ORDER_TOLERANCE,
                super::MAX_SKIPPED_GENERATIONS,
            ))
            .use_ratchet_tree_extension(true)
            .build(&provider, device, device.credential_with_key())
            .map_err(E2eError::mls)?;
        let mut welcome = None;
        if !key_packages.is_empty() {
            // Nobody else is in the group yet: merge at once, the others start from the Welcome.
            let (_commit, message, _info) = group
                .add_members(&provider, device, &key_packages)
                .map_err(E2eError::mls)?;
            group
                .merge_pending_commit(&provider)
                .map_err(E2eError::mls)?;
            welcome = Some(message.tls_serialize_detached().map_err(E2eError::mls)?);
        }
        let conversation_state = ConversationState::new(group_id, now);
        conversation_state.save(store.conn())?;
        let mut conversation = Self {
            group,
            state: conversation_state,
            listed: super::ListedDevices::default(),
        };
        conversation.fit_past_epochs(&provider)?;
        atomic.commit()?;
        Ok((conversation, welcome))
    }

    /// Gives the role rule `uid`'s newest device list (its devices' keys): a member who is no
    /// admin may add a device of its own UID only if it is listed here (kept in memory, at most
    /// [`MAX_LISTED_USERS`](super::MAX_LISTED_USERS) users).
    pub fn set_listed_devices(
        &mut self,
        uid: rhizo_core::Uid,
        devices: impl IntoIterator<Item = rhizo_core::DevicePublicKey>,
    ) {
        self.listed.set(uid, devices);
    }

    /// Whether this conversation is a group (its GroupContext has the group extension).
    pub fn is_group(&self) -> bool {
        self.group
            .extensions()
            .unknown(GROUP_STATE_EXTENSION_TYPE)
            .is_some()
    }

    /// Whether this device is still a member: `false` once a commit removed it (it can then
    /// only be brought back by a rollback of that commit, or re-added).
    pub fn is_active(&self) -> bool {
        self.group.is_active()
    }

    /// The group's admins and profile in the current epoch.
    ///
    /// # Errors
    ///
    /// [`E2eError::NotAGroup`] for a 1:1 conversation.
    pub fn group_state(&self) -> Result<GroupState, E2eError> {
        match roles::state_of(self.group.extensions()) {
            Some(state) => Ok(state?),
            None => Err(E2eError::NotAGroup),
        }
    }

    /// The members by user: UID → role and devices, ordered by UID.
    ///
    /// # Errors
    ///
    /// [`E2eError::NotAGroup`] for a 1:1 conversation.
    pub fn roster(&self) -> Result<Vec<RosterEntry>, E2eError> {
        let state = self.group_state()?;
        let mut users: BTreeMap<Uid, Vec<DeviceCertificate>> = BTreeMap::new();
        for certificate in self.members() {
            users
                .entry(certificate.root().uid())
                .or_default()
                .push(certificate);
        }
        Ok(users
            .into_iter()
            .map(|(uid, devices)| RosterEntry {
                uid,
                role: state.role_of(&uid),
                devices,
            })
            .collect())
    }

    /// The MLS epoch authenticator of the current epoch: equal on every member in the same
    /// state, so its first 16 bytes (hex) serve as the group's safety fingerprint.
    pub fn epoch_authenticator(&self) -> Vec<u8> {
        self.group.epoch_authenticator().as_slice().to_vec()
    }

    /// The latest time (unix seconds, from their authenticated data) among the commits this
    /// member applied since `epoch` (those of `epoch` up to the current one): the commit that
    /// removed a member is one of them, so a text sealed in `epoch` by a member removed since
    /// was sealed while it could still be a member if it was sealed no later (it may have been
    /// behind: sealed after an earlier of them that it had not seen yet). `None` when `epoch`
    /// is not in the past or any of those commits is no longer recorded (outside the ordering
    /// window) or carries no time.
    pub fn latest_commit_since(
        &self,
        store: &E2eStore,
        epoch: u64,
    ) -> Result<Option<u64>, E2eError> {
        let current = self.epoch();
        if epoch >= current || current - epoch > self.past_epochs() as u64 {
            return Ok(None);
        }
        let group_id = self.group.group_id().as_slice();
        let mut latest = 0;
        for e in epoch..current {
            match ordering::applied(store.conn(), group_id, e)?.and_then(|c| c.made_at) {
                Some(made_at) => latest = latest.max(made_at),
                None => return Ok(None),
            }
        }
        Ok(Some(latest))
    }

    /// How many past epochs this member keeps for late application messages: in a group,
    /// [`past_epochs_for`](super::past_epochs_for) its member devices; in a 1:1 conversation
    /// [`MAX_PAST_EPOCHS`](super::MAX_PAST_EPOCHS).
    pub fn past_epochs(&self) -> usize {
        if self.is_group() {
            super::past_epochs_for(self.device_count())
        } else {
            super::MAX_PAST_EPOCHS
        }
    }

    /// The member devices (leaves) of the current epoch (without copying them, as
    /// `members()` does).
    pub(super) fn device_count(&self) -> usize {
        self.group.public_group().treesync().full_leaves().count()
    }

    /// Makes openmls keep [`past_epochs`](Self::past_epochs) past epochs (after a commit
    /// changed the members, or a join): a group that grew past
    /// [`LARGE_GROUP_DEVICES`](super::LARGE_GROUP_DEVICES) drops its older past epochs, one
    /// that shrank keeps more from now on. A restored snapshot brings its own setting back;
    /// the commit merged on it fits it again.
    pub(super) fn fit_past_epochs(
        &mut self,
        provider: &crate::store::MlsProvider<'_>,
    ) -> Result<(), E2eError> {
        let config = super::join_config_keeping(self.past_epochs());
        if self.group.configuration() != &config {
            self.group
                .set_configuration(provider.storage(), &config)
                .map_err(E2eError::Storage)?;
        }
        Ok(())
    }

    /// The ratchet tree hash of the current epoch (the same on every member in the same state).
    pub fn tree_hash(&self) -> Vec<u8> {
        self.group
            .public_group()
            .group_context()
            .tree_hash()
            .to_vec()
    }

    /// Parent nodes of the ratchet tree that are blank although members sit below both of
    /// their children (a blank node with one empty side resolves to its other child alone,
    /// which costs no more than a filled node; no path ever fills it). A commit encrypts its path secret to every node of a
    /// blank node's resolution (down to the leaves), so a tree whose members were added in one
    /// commit and never committed themselves makes large commits; each member's own commit
    /// with a path ([`self_update`]) fills its filtered direct path. Diagnostics and tests: 0
    /// once every member committed.
    ///
    /// [`self_update`]: Self::self_update
    pub fn blank_paths(&self) -> usize {
        let tree = self.group.public_group().treesync();
        let members: Vec<u32> = tree.full_leaves().map(|(index, _)| index.u32()).collect();
        tree.blank_parents()
            .filter(|parent| {
                // Parent p is tree node x = 2p + 1 at level k (x's trailing ones); it spans the
                // 2^k leaves from (x + 1 - 2^k) / 2, half under each child.
                let x = parent.u32().saturating_mul(2).saturating_add(1);
                let level = x.trailing_ones();
                let first = (x + 1 - (1u32 << level)) / 2;
                let half = 1u32 << level.saturating_sub(1);
                let left = first..first.saturating_add(half);
                let right = left.end..left.end.saturating_add(half);
                members.iter().any(|leaf| left.contains(leaf))
                    && members.iter().any(|leaf| right.contains(leaf))
            })
            .count()
    }

    /// Whether this device's leaf is still the one its KeyPackage brought: it has made no
    /// commit with a path since it joined (or since a rollback undid the one it made).
    pub fn never_committed(&self) -> bool {
        self.group.own_leaf_node().is_some_and(|leaf| {
            matches!(
                leaf.leaf_node_source(),
                openmls::treesync::LeafNodeSource::KeyPackage(_)
            )
        })
    }

    /// Adds the devices of `key_packages` and applies the commit at once: admins add anyone, a
    /// member only its own user's devices listed in [`set_listed_devices`](Self::set_listed_devices).
    ///
    /// # Errors
    ///
    /// [`E2eError::NotAGroup`], [`E2eError::NoPeers`], [`E2eError::TooManyDevices`], KeyPackage
    /// errors, [`E2eError::Refused`] (`NotAdmin`), [`E2eError::WrongDevice`],
    /// [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn add_members(
        &mut self,
        store: &E2eStore,
        device: &Device,
        key_packages: &[Vec<u8>],
        now: u64,
    ) -> Result<GroupCommit, E2eError> {
        self.group_state()?;
        if key_packages.is_empty() {
            return Err(E2eError::NoPeers);
        }
        check_device_count(self.device_count().saturating_add(key_packages.len()))?;
        let key_packages = key_packages
            .iter()
            .map(|bytes| group_key_package(store, bytes))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit_own(store, device, now, |builder| {
            Ok(builder.propose_adds(key_packages))
        })
    }

    /// Removes members: every leaf of a [`MemberRef::Uid`], the leaf of a
    /// [`MemberRef::Device`]. A member may remove its own other devices; removing anyone else
    /// needs an admin. Applied at once.
    ///
    /// # Errors
    ///
    /// [`E2eError::NotAGroup`], [`E2eError::NoSuchMember`], [`E2eError::Unsupported`] for this
    /// device's own leaf (leave instead), [`E2eError::Refused`] (`NotAdmin`, `NoAdminLeft`),
    /// [`E2eError::WrongDevice`], [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn remove_members(
        &mut self,
        store: &E2eStore,
        device: &Device,
        targets: &[MemberRef],
        now: u64,
    ) -> Result<GroupCommit, E2eError> {
        let state = self.group_state()?;
        let leaves = self.leaves_of(targets)?;
        let extensions = match self.admins_after_removing(&state, &leaves)? {
            Some(admins) => Some(roles::extensions_for(&GroupState::new(
                admins,
                state.profile().clone(),
            )?)?),
            None => None,
        };
        self.commit_own(store, device, now, |builder| {
            let builder = builder.propose_removals(leaves);
            match extensions {
                Some(extensions) => builder
                    .propose_group_context_extensions(extensions)
                    .map_err(E2eError::mls),
                None => Ok(builder),
            }
        })
    }

    /// In a 1:1 conversation: removes the leaf of `device` (our own revoked device, issue 15)
    /// with a commit that stays **pending** until the peer acknowledges it, like
    /// [`self_update`](Self::self_update)'s. Returns the serialized commit.
    ///
    /// # Errors
    ///
    /// [`E2eError::Unsupported`] in a group (use [`remove_members`](Self::remove_members)) or
    /// for this device's own leaf, [`E2eError::NoSuchMember`], [`E2eError::CommitPending`],
    /// [`E2eError::WrongDevice`], [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn remove_device(
        &mut self,
        store: &E2eStore,
        device: &Device,
        removed: &DevicePublicKey,
        now: u64,
    ) -> Result<Vec<u8>, E2eError> {
        if self.is_group() {
            return Err(E2eError::Unsupported(
                "remove_device is for 1:1 conversations",
            ));
        }
        if self.state.pending.is_some() {
            return Err(E2eError::CommitPending);
        }
        let leaves = self.leaves_of(&[MemberRef::Device(*removed)])?;
        self.check_device(device)?;
        self.atomically(store, |this, provider| {
            let (commit, _, _) = this
                .group
                .remove_members(provider, device, &leaves)
                .map_err(E2eError::mls)?;
            let message = commit.tls_serialize_detached().map_err(E2eError::mls)?;
            this.state.pending = Some(super::state::PendingCommit {
                id: commit_id(&message),
                message: message.clone(),
                epoch: this.epoch(),
                created_at: now,
            });
            this.state.save(store.conn())?;
            Ok(message)
        })
    }

    /// The admins once `leaves` are gone, when that drops an admin who has no device left (so a
    /// removed admin who is added again later is a plain member); `None` when no admin goes, or
    /// when every admin would go (the role rule refuses that commit with `NoAdminLeft`).
    fn admins_after_removing(
        &self,
        state: &GroupState,
        leaves: &[LeafNodeIndex],
    ) -> Result<Option<Vec<Uid>>, E2eError> {
        let mut staying: Vec<Uid> = Vec::new();
        let mut going: Vec<Uid> = Vec::new();
        for member in self.group.members() {
            let Some(certificate) = member_certificate(&member.credential) else {
                continue;
            };
            let uid = certificate.root().uid();
            if leaves.contains(&member.index) {
                going.push(uid);
            } else {
                staying.push(uid);
            }
        }
        let dropped: Vec<Uid> = going
            .into_iter()
            .filter(|uid| state.is_admin(uid) && !staying.contains(uid))
            .collect();
        let admins: Vec<Uid> = state
            .admins()
            .iter()
            .filter(|uid| !dropped.contains(uid))
            .copied()
            .collect();
        Ok((!dropped.is_empty() && !admins.is_empty()).then_some(admins))
    }

    /// Replaces the group's admins and profile with `state` (admins only; at least one admin
    /// must have a device in the group). Applied at once.
    ///
    /// # Errors
    ///
    /// [`E2eError::NotAGroup`], [`E2eError::Refused`] (`NotAdmin`, `NoAdminLeft`),
    /// [`E2eError::WrongDevice`], [`E2eError::Storage`], [`E2eError::Mls`].
    pub fn set_state(
        &mut self,
        store: &E2eStore,
        device: &Device,
        state: &GroupState,
        now: u64,
    ) -> Result<GroupCommit, E2eError> {
        self.group_state()?;
        let extensions = roles::extensions_for(state)?;
        self.commit_own(store, device, now, |builder| {
            builder
                .propose_group_context_extensions(extensions)
                .map_err(E2eError::mls)
        })
    }

    /// Recovery: removes the old leaves of `target` and adds the device of `key_package` in one
    /// commit (admins only), e.g. for a member that lost or forked its state and sent a
    /// `GroupRejoin`. The KeyPackage must be from the same user (root) as `target`. Applied at
    /// once; the Welcome goes to the re-added device.
    ///
    /// # Errors
    ///
    /// As [`remove_members`](Self::remove_members) and [`add_members`](Self::add_members);
    /// [`E2eError::InvalidKeyPackage`] for a KeyPackage of another user.
    pub fn readd(
        &mut self,
        store: &E2eStore,
        device: &Device,
        target: MemberRef,
        key_package: &[u8],
        now: u64,
    ) -> Result<GroupCommit, E2eError> {
        self.group_state()?;
        let leaves = self.leaves_of(&[target])?;
        let key_package = group_key_package(store, key_package)?;
        let owner = member_certificate(key_package.leaf_node().credential())
            .map(|certificate| certificate.root().uid());
        let target_uid = match target {
            MemberRef::Uid(uid) => Some(uid),
            MemberRef::Device(key) => self
                .members()
                .into_iter()
                .find(|certificate| certificate.device() == key)
                .map(|certificate| certificate.root().uid()),
        };
        if owner.is_none() || owner != target_uid {
            return Err(E2eError::InvalidKeyPackage(
                "the KeyPackage is not from the user being re-added".into(),
            ));
        }
        self.commit_own(store, device, now, |builder| {
            Ok(builder.propose_removals(leaves).propose_adds([key_package]))
        })
    }

    /// Forgets the conversation: deletes its MLS state, snapshots and buffered messages (after
    /// leaving a group, or before re-joining it from a new Welcome).
    ///
    /// # Errors
    ///
    /// [`E2eError::Storage`].
    pub fn delete(mut self, store: &E2eStore) -> Result<(), E2eError> {
        let provider = store.provider();
        let atomic = store.atomic()?;
        self.group.delete(provider.storage())?;
        ordering::forget(store.conn(), self.id())?;
        self.state.delete(store.conn())?;
        atomic.commit()
    }

    /// The leaf indexes `targets` name (never our own).
    fn leaves_of(&self, targets: &[MemberRef]) -> Result<Vec<LeafNodeIndex>, E2eError> {
        let own = self.group.own_leaf_index();
        let mut leaves = Vec::new();
        for target in targets {
            let before = leaves.len();
            for member in self.group.members() {
                let Some(certificate) = member_certificate(&member.credential) else {
                    continue;
                };
                let hit = match target {
                    MemberRef::Uid(uid) => certificate.root().uid() == *uid,
                    MemberRef::Device(key) => certificate.device() == *key,
                };
                if hit && member.index == own {
                    return Err(E2eError::Unsupported(
                        "removing this device's own leaf (leave the group instead)",
                    ));
                }
                if hit && !leaves.contains(&member.index) {
                    leaves.push(member.index);
                }
            }
            if leaves.len() == before {
                return Err(E2eError::NoSuchMember);
            }
        }
        Ok(leaves)
    }

    /// Makes, checks and applies one own group commit: snapshot of the current epoch, build,
    /// role rule on the staged commit, merge, record it as applied in the old epoch.
    pub(super) fn commit_own(
        &mut self,
        store: &E2eStore,
        device: &Device,
        now: u64,
        build: impl FnOnce(CommitBuilder<'_, Initial>) -> Result<CommitBuilder<'_, Initial>, E2eError>,
    ) -> Result<GroupCommit, E2eError> {
        self.check_device(device)?;
        self.atomically(store, |this, provider| {
            let epoch = this.epoch();
            let mls_key = ordering::storage_key(this.group.group_id())?;
            ordering::snapshot(store.conn(), this.id(), &mls_key, epoch)?;
            this.group.set_aad(ordering::commit_aad(now));
            let bundle = build(this.group.commit_builder())?
                .load_psks(provider.storage())
                .map_err(E2eError::mls)?
                .build(provider.rand(), provider.crypto(), device, |_| true)
                .map_err(E2eError::mls)?
                .stage_commit(provider)
                .map_err(E2eError::mls)?;
            let sender = Sender::Member(this.group.own_leaf_index());
            let staged = this
                .group
                .pending_commit()
                .ok_or(E2eError::Mls("staged commit missing".into()))?;
            this.validate_commit(staged, sender.clone())?;
            if let Some(reason) = roles::check(&this.group, staged, &sender, &this.listed)? {
                return Err(E2eError::Refused(reason));
            }
            let commit = bundle
                .commit()
                .tls_serialize_detached()
                .map_err(E2eError::mls)?;
            let welcome = bundle
                .to_welcome_msg()
                .map(|w| w.tls_serialize_detached())
                .transpose()
                .map_err(E2eError::mls)?;
            this.group
                .merge_pending_commit(provider)
                .map_err(E2eError::mls)?;
            this.fit_past_epochs(provider)?;
            let own = ordering::Competitor {
                id: commit_id(&commit),
                made_at: Some(now),
                sender: Some(*device.certificate().root().uid().as_bytes()),
            };
            ordering::record_applied(store.conn(), this.id(), epoch, &own)?;
            this.state.sent_since_commit = 0;
            this.state.last_commit_at = now;
            this.state.save(store.conn())?;
            Ok(GroupCommit {
                commit,
                welcome,
                epoch: this.epoch(),
            })
        })
    }
}

/// For a group Welcome (`Some(state)`; `None` for a 1:1 one): the state must decode and the
/// Welcome's sender — whose commit added us — must be an admin in it.
pub(super) fn check_welcome(staged: &StagedWelcome) -> Result<Option<GroupState>, E2eError> {
    let Some(state) = roles::state_of(staged.group_context().extensions()) else {
        return Ok(None);
    };
    let state = state?;
    let inviter = staged
        .members()
        .find(|member| member.index == staged.welcome_sender_index())
        .and_then(|member| member_certificate(&member.credential))
        .map(|certificate| certificate.root().uid());
    let joiner = staged
        .members()
        .find(|member| member.index == staged.own_leaf_index())
        .and_then(|member| member_certificate(&member.credential))
        .map(|certificate| certificate.root().uid());
    // An admin invites anyone; a member only its own user's new device (the role rule).
    if !inviter.is_some_and(|uid| state.is_admin(&uid) || Some(uid) == joiner) {
        return Err(E2eError::Refused(super::CommitRejectReason::NotAdmin));
    }
    Ok(Some(state))
}

/// A KeyPackage checked as for 1:1, whose leaf must also support the group extension (builds
/// from before groups do not).
fn group_key_package(store: &E2eStore, bytes: &[u8]) -> Result<KeyPackage, E2eError> {
    let key_package = validate_with_store(store, bytes)?;
    let supported = key_package
        .leaf_node()
        .capabilities()
        .extensions()
        .contains(&ExtensionType::Unknown(GROUP_STATE_EXTENSION_TYPE));
    if !supported {
        return Err(E2eError::InvalidKeyPackage(
            "its device does not support groups (rhizo too old)".into(),
        ));
    }
    Ok(key_package)
}

/// Errors beyond [`MAX_GROUP_DEVICES`].
fn check_device_count(count: usize) -> Result<(), E2eError> {
    if count > MAX_GROUP_DEVICES {
        return Err(E2eError::TooManyDevices {
            count,
            max: MAX_GROUP_DEVICES,
        });
    }
    Ok(())
}
