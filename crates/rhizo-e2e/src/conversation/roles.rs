//! The role rule of groups, checked on every commit a member processes and on our own before
//! it is sent (spec: "Roles and profile"): a commit with an Add, a Remove of a leaf that is not
//! the committer's own UID's, or a GroupContextExtensions proposal needs a committer who is an
//! admin in the *current* epoch's [`GroupState`]; the new state must decode, keep the
//! extension required, and leave at least one admin with a device in the group. The one
//! exception (issue 15, a user's new device): any member may add a device of its **own** UID
//! whose certificate (signed by the same root: the UID is the root's hash) is listed in that
//! UID's newest device list as the driver last gave it ([`ListedDevices`]); an own device not
//! listed there is refused with [`CommitRejectReason::DeviceNotListed`] (the driver fetches the
//! newest list and processes the commit again).

use std::collections::{BTreeMap, BTreeSet};

use openmls::prelude::{
    Extension, ExtensionType, Extensions, GroupContext, LeafNodeIndex, MlsGroup, Proposal, Sender,
    StagedCommit,
};
use rhizo_core::group::{GROUP_STATE_EXTENSION_TYPE, GroupState};

use rhizo_core::{DeviceCertificate, DevicePublicKey, Uid};

use super::{CommitRejectReason, member_certificate};
use crate::E2eError;

/// Users whose device lists a conversation keeps at most (bounded memory; beyond it, the
/// oldest-inserted UID's list is dropped and would be fetched again).
pub const MAX_LISTED_USERS: usize = 256;
/// Devices per user kept (a device list names at most 16).
pub const MAX_LISTED_DEVICES: usize = 16;

/// The devices each user's newest device list names, as the driver last fetched them: what
/// the role rule checks a non-admin's Add of its own device against. In memory only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListedDevices {
    lists: BTreeMap<Uid, BTreeSet<[u8; 32]>>,
    /// Insertion order, for dropping the oldest list beyond [`MAX_LISTED_USERS`].
    order: Vec<Uid>,
}

impl ListedDevices {
    /// Replaces `uid`'s listed devices (the first [`MAX_LISTED_DEVICES`] of `devices`).
    pub fn set(&mut self, uid: Uid, devices: impl IntoIterator<Item = DevicePublicKey>) {
        let keys = devices
            .into_iter()
            .take(MAX_LISTED_DEVICES)
            .map(|key| *key.as_bytes())
            .collect();
        if self.lists.insert(uid, keys).is_none() {
            self.order.push(uid);
            if self.order.len() > MAX_LISTED_USERS {
                let oldest = self.order.remove(0);
                self.lists.remove(&oldest);
            }
        }
    }

    /// Whether `certificate`'s device is listed for its UID.
    pub fn is_listed(&self, certificate: &DeviceCertificate) -> bool {
        self.lists
            .get(&certificate.root().uid())
            .is_some_and(|keys| keys.contains(certificate.device().as_bytes()))
    }
}

/// The [`GroupState`] in a GroupContext's extensions: `None` when it has none (a 1:1
/// conversation), an error when it is there but invalid.
pub(super) fn state_of(
    extensions: &Extensions<GroupContext>,
) -> Option<Result<GroupState, rhizo_core::group::GroupError>> {
    extensions
        .unknown(GROUP_STATE_EXTENSION_TYPE)
        .map(|ext| GroupState::decode(&ext.0))
}

/// The GroupContext extensions of a group with this state: the state itself, required by
/// every member's capabilities.
pub(super) fn extensions_for(state: &GroupState) -> Result<Extensions<GroupContext>, E2eError> {
    let required = openmls::prelude::RequiredCapabilitiesExtension::new(
        &[ExtensionType::Unknown(GROUP_STATE_EXTENSION_TYPE)],
        &[],
        &[],
    );
    Extensions::from_vec(vec![
        Extension::RequiredCapabilities(required),
        Extension::Unknown(
            GROUP_STATE_EXTENSION_TYPE,
            openmls::prelude::UnknownExtension(state.encode()),
        ),
    ])
    .map_err(E2eError::mls)
}

/// The UID of the member at `index`.
fn uid_at(group: &MlsGroup, index: LeafNodeIndex) -> Option<Uid> {
    group
        .member_at(index)
        .and_then(|member| member_certificate(&member.credential))
        .map(|certificate| certificate.root().uid())
}

/// Checks the role rule for `staged`, a commit by `sender` on `group`'s current epoch, with
/// `listed` for the committer's own new devices. `Ok(None)`: allowed; `Ok(Some(reason))`:
/// refused.
pub(super) fn check(
    group: &MlsGroup,
    staged: &StagedCommit,
    sender: &Sender,
    listed: &ListedDevices,
) -> Result<Option<CommitRejectReason>, E2eError> {
    let Some(Ok(current)) = state_of(group.extensions()) else {
        return Err(E2eError::NotAGroup);
    };
    let Sender::Member(committer_index) = sender else {
        return Err(E2eError::Unsupported("commits from non-members"));
    };
    let committer = uid_at(group, *committer_index)
        .ok_or(E2eError::InvalidCredential("commit from an unknown leaf"))?;
    let mut needs_admin = false;
    // An Add of the committer's own device that its device list does not (yet) name.
    let mut unlisted_own = false;
    let mut removed = BTreeSet::new();
    let mut added = BTreeSet::new();
    // Whether the admins or the leaves of an admin change: only then is "an admin is left"
    // checked again (it reads every member's certificate: O(N) key decodings per commit).
    let mut admins_touched = false;
    for queued in staged.queued_proposals() {
        match queued.proposal() {
            Proposal::Add(add) => {
                match member_certificate(add.key_package().leaf_node().credential()) {
                    Some(c) if c.root().uid() == committer => {
                        unlisted_own |= !listed.is_listed(&c);
                        added.insert(committer);
                    }
                    Some(c) => {
                        needs_admin = true;
                        added.insert(c.root().uid());
                    }
                    None => needs_admin = true,
                }
            }
            Proposal::Remove(remove) => {
                removed.insert(remove.removed());
                let owner = uid_at(group, remove.removed());
                if owner != Some(committer) {
                    needs_admin = true;
                }
                admins_touched |= owner.is_none_or(|uid| current.is_admin(&uid));
            }
            Proposal::GroupContextExtensions(_) => {
                needs_admin = true;
                admins_touched = true;
            }
            _ => {}
        }
    }
    if !current.is_admin(&committer) {
        if needs_admin {
            return Ok(Some(CommitRejectReason::NotAdmin));
        }
        if unlisted_own {
            return Ok(Some(CommitRejectReason::DeviceNotListed));
        }
    }
    let new_extensions = staged.group_context().extensions();
    let Some(Ok(next)) = state_of(new_extensions) else {
        return Ok(Some(CommitRejectReason::InvalidGroupState));
    };
    let still_required = new_extensions.required_capabilities().is_some_and(|r| {
        r.extension_types()
            .contains(&ExtensionType::Unknown(GROUP_STATE_EXTENSION_TYPE))
    });
    if !still_required {
        return Ok(Some(CommitRejectReason::InvalidGroupState));
    }
    if !admins_touched && next == current {
        // Same admins, none of their leaves removed: an admin still has a device here (the
        // current epoch passed this check).
        return Ok(None);
    }
    let remaining: BTreeSet<Uid> = group
        .members()
        .filter(|member| !removed.contains(&member.index))
        .filter_map(|member| member_certificate(&member.credential))
        .map(|certificate| certificate.root().uid())
        .chain(added)
        .collect();
    if !next.admins().iter().any(|admin| remaining.contains(admin)) {
        return Ok(Some(CommitRejectReason::NoAdminLeft));
    }
    Ok(None)
}
