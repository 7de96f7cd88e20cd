//! The role rule of groups, checked on every commit a member processes and on our own before
//! it is sent (spec: "Roles and profile"): a commit with an Add, a Remove of a leaf that is not
//! the committer's own UID's, or a GroupContextExtensions proposal needs a committer who is an
//! admin in the *current* epoch's [`GroupState`]; the new state must decode, keep the
//! extension required, and leave at least one admin with a device in the group.

use std::collections::BTreeSet;

use openmls::prelude::{
    Extension, ExtensionType, Extensions, GroupContext, LeafNodeIndex, MlsGroup, Proposal, Sender,
    StagedCommit,
};
use rhizo_core::Uid;
use rhizo_core::group::{GROUP_STATE_EXTENSION_TYPE, GroupState};

use super::{CommitRejectReason, member_certificate};
use crate::E2eError;

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

/// Checks the role rule for `staged`, a commit by `sender` on `group`'s current epoch.
/// `Ok(None)`: allowed; `Ok(Some(reason))`: refused.
pub(super) fn check(
    group: &MlsGroup,
    staged: &StagedCommit,
    sender: &Sender,
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
    let mut removed = BTreeSet::new();
    let mut added = BTreeSet::new();
    // Whether the admins or the leaves of an admin change: only then is "an admin is left"
    // checked again (it reads every member's certificate: O(N) key decodings per commit).
    let mut admins_touched = false;
    for queued in staged.queued_proposals() {
        match queued.proposal() {
            Proposal::Add(add) => {
                needs_admin = true;
                if let Some(c) = member_certificate(add.key_package().leaf_node().credential()) {
                    added.insert(c.root().uid());
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
    if needs_admin && !current.is_admin(&committer) {
        return Ok(Some(CommitRejectReason::NotAdmin));
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
