//! Changing a group (admins: add, remove, rename; any admin: remove a member that left) and
//! the ordering driver: after rhizo-e2e rolled our group back past commits of ours, our
//! messages of the dropped epochs are encrypted again (same `message_id`) and our changes
//! still needed are proposed again on top of the winner.
//!
//! ```text
//!  add / remove / rename ─▶ MLS commit (applied at once) ─▶ ONE envelope to the group
//!     ─▶ intent kept (kind, body, commit id, epoch) until 8 epochs passed
//!  Processed::RolledBack{to_epoch} ─▶ our texts with epoch > to_epoch: encrypt again, new seq
//!     ─▶ our intents made at ≥ to_epoch: remove / profile proposed again if still needed
//! ```

use prost::Message as _;
use rhizo_core::{
    DevicePublicKey, Uid,
    envelope::{EnvelopeId, MAX_RECEIPT_ENTRIES, ReceiptEntry, ReceiptStatus, SessionId},
    group::{GroupProfile, GroupState},
    proto::ChatContent,
};
use rhizo_e2e::{Conversation, E2eError, GroupCommit, MemberRef};
use rhizo_store::{
    StoreError, Tx,
    groups::{GroupRow, IntentKind, MAX_GROUP_MEMBERS, MemberDevice, ResendRow},
};
use tracing::debug;

use super::{
    GroupEnvelope, RosterMember, Signer, active_group, leave_content, member_rows, other_devices,
    prune_intents, queue_group_envelope, refused, roster,
};
use crate::{Engine, EngineError, Event, conversations::seal_to, secs};

/// Sends our own commit to every member device before it but ours, records the
/// intent it carries, updates the member list; the roster after it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_commit(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &Conversation,
    before: &[RosterMember],
    done: &GroupCommit,
    intent: (IntentKind, &[u8]),
    now: i64,
) -> Result<Vec<RosterMember>, EngineError> {
    let me = signer.me;
    let made_in = done.epoch.saturating_sub(1);
    // Removed members get it too: it tells them they are out (a leaver's node refuses it).
    let devices: Vec<MemberDevice> = other_devices(before, me);
    let commit = GroupEnvelope::commit(done.commit.clone(), made_in);
    queue_group_envelope(tx, signer, group, commit, &devices, now)?;
    match tx.add_group_intent(&group.session_id, intent.0, intent.1, now) {
        Ok(id) => {
            tx.set_intent_commit(id, &rhizo_e2e::commit_id(&done.commit), made_in)?;
        }
        // Full: the change stands; it just will not be re-proposed after a rollback.
        Err(StoreError::LimitReached { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let after = roster(conversation)?;
    let stored = tx.group_members(&group.session_id)?;
    tx.set_group_members(&group.session_id, &member_rows(&after, &stored, now))?;
    let role = after
        .iter()
        .find(|m| m.uid == *me.uid.as_bytes())
        .map_or(group.my_role, |m| m.role);
    let name = conversation.group_state()?.profile().name.clone();
    tx.update_group(&group.session_id, &name, role, group.status, now)?;
    prune_intents(tx, &group.session_id, conversation.epoch())?;
    Ok(after)
}

/// Removes every leaf of `uids` (an admin's commit), sent to everyone else.
pub(crate) fn remove_members(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    uids: &[[u8; 32]],
    now: i64,
) -> Result<bool, EngineError> {
    let before = roster(conversation)?;
    let targets: Vec<MemberRef> = uids
        .iter()
        .filter(|u| before.iter().any(|m| m.uid == **u))
        .map(|u| MemberRef::Uid(Uid::from_bytes(u)))
        .collect();
    if targets.is_empty() {
        return Ok(false);
    }
    let mls = tx.mls()?;
    let done = conversation
        .remove_members(&mls, signer.device, &targets, secs(now))
        .map_err(refused)?;
    let body: Vec<u8> = uids.concat();
    send_commit(
        tx,
        signer,
        group,
        conversation,
        &before,
        &done,
        (IntentKind::Remove, &body),
        now,
    )?;
    Ok(true)
}

/// Sets the group's state (admins, profile) with a commit, when it differs.
fn set_state(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    state: &GroupState,
    now: i64,
) -> Result<bool, EngineError> {
    if conversation.group_state()? == *state {
        return Ok(false);
    }
    let before = roster(conversation)?;
    let mls = tx.mls()?;
    let done = conversation
        .set_state(&mls, signer.device, state, secs(now))
        .map_err(refused)?;
    let body = state.encode();
    send_commit(
        tx,
        signer,
        group,
        conversation,
        &before,
        &done,
        (IntentKind::Profile, &body),
        now,
    )?;
    Ok(true)
}

/// After rhizo-e2e rolled `group` back to `to_epoch` (and applied the winner): our commits
/// made there are no longer sent (nobody can apply them); our messages
/// encrypted in the dropped epochs go out again, encrypted now under the same `message_id`; our
/// changes made there are proposed again when still needed. An add needs fresh KeyPackages
/// (the dropped ones were used): it comes back as a [`Event::GroupAddUndone`] for the driver
/// to redo with [`Engine::add_group_members`].
pub(crate) fn after_rollback(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    to_epoch: u64,
    now: i64,
) -> Result<Vec<Event>, EngineError> {
    tx.drop_group_commits(&group.session_id, to_epoch)?;
    if !conversation.is_active() {
        // The winner removed us: what we sealed on the dropped branch cannot be read by
        // anyone, nor sealed again.
        tx.drop_group_sealed_after(&group.session_id, to_epoch)?;
        return Ok(Vec::new());
    }
    let left = group.status == rhizo_store::groups::GroupStatus::Left;
    if left {
        // A group we left: our hand-over is made again first, and our leave goes again to
        // every member (those that had it applied its effects on the dropped branch), after
        // it: the successor is an admin when the leave reaches it, and removes us.
        let undone = repropose(tx, signer, group, conversation, to_epoch, now)?;
        tx.repend_group_controls(&group.session_id, to_epoch, now)?;
        for row in tx.group_resends(&group.session_id, to_epoch)? {
            reseal(tx, signer, group, conversation, &row, now)?;
        }
        return Ok(add_undone(group, &undone));
    }
    for row in tx.group_resends(&group.session_id, to_epoch)? {
        reseal(tx, signer, group, conversation, &row, now)?;
    }
    let undone = repropose(tx, signer, group, conversation, to_epoch, now)?;
    Ok(add_undone(group, &undone))
}

/// The event asking the driver to add again the UIDs whose add a rollback dropped, if any.
fn add_undone(group: &GroupRow, undone: &[[u8; 32]]) -> Vec<Event> {
    if undone.is_empty() {
        return Vec::new();
    }
    vec![Event::GroupAddUndone {
        group: super::group_id_hex(&group.session_id),
        uids: undone.iter().map(hex::encode).collect(),
    }]
}

/// Encrypts one of our group texts (or controls) again in the current epoch, under a new
/// sequence number and the same `message_id` (receivers that have it do not show it twice).
pub(crate) fn reseal(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    row: &ResendRow,
    now: i64,
) -> Result<(), EngineError> {
    let agent = (row.kind == "agent")
        .then(|| crate::agents::group::resend_content(row.body.as_deref(), row.sent_at))
        .flatten();
    let content = if row.kind == "control" {
        leave_content(row.sent_at)
    } else if let Some(agent) = agent {
        agent
    } else {
        ChatContent {
            text: row.body.clone().unwrap_or_default(),
            sent_at_ms: crate::ms(row.sent_at),
            ..ChatContent::default()
        }
    };
    let content = ChatContent {
        message_id: row.message_id.to_vec().into(),
        ..content
    };
    let mls = tx.mls()?;
    if crate::restored::fresh_epoch_due(tx, conversation)? {
        // Restored from an older copy since our last own commit: a fresh epoch first.
        let devices = other_devices(&roster(conversation)?, signer.me);
        let made_in = conversation.epoch();
        let commit = conversation.self_update(&mls, signer.device, secs(now))?;
        let commit = GroupEnvelope::commit(commit, made_in);
        queue_group_envelope(tx, signer, group, commit, &devices, now)?;
    }
    let epoch = conversation.epoch();
    let ciphertext =
        conversation.encrypt(&mls, signer.device, &content.encode_to_vec(), secs(now))?;
    let seq = tx.take_next_seq(&group.session_id)?;
    let envelope = seal_to(
        signer.me,
        signer.rng,
        Uid::from_bytes(&group.address),
        &group.session_id,
        seq,
        rhizo_core::envelope::MessageType::Application,
        ciphertext,
        now,
    )?;
    tx.reseal_group_outgoing(row.id, seq, &envelope, epoch, now)?;
    Ok(())
}

/// Our intents made at or after `to_epoch` whose commit the rollback dropped: proposed again;
/// the UIDs of dropped adds that are still not members (to add again with fresh KeyPackages).
fn repropose(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    to_epoch: u64,
    now: i64,
) -> Result<Vec<[u8; 32]>, EngineError> {
    let mut undone: Vec<[u8; 32]> = Vec::new();
    let dropped: Vec<_> = tx
        .group_intents(&group.session_id)?
        .into_iter()
        .filter(|i| i.epoch.is_some_and(|e| e >= to_epoch))
        .collect();
    // Each state change carries the whole group state: only the last one is made again (one
    // commit, not one per dropped rename; each extra epoch pushes us further from the commits
    // that may still roll us back: group_sim seed 187).
    let last_state = dropped
        .iter()
        .rev()
        .find(|i| matches!(i.kind, IntentKind::Profile | IntentKind::Admins))
        .map(|i| i.id);
    for intent in dropped {
        let still_admin = conversation.group_state()?.is_admin(&signer.me.uid);
        tx.delete_group_intent(intent.id)?;
        let superseded = matches!(intent.kind, IntentKind::Profile | IntentKind::Admins)
            && Some(intent.id) != last_state;
        if !still_admin || superseded {
            continue;
        }
        let redone = match intent.kind {
            IntentKind::Remove => {
                let uids: Vec<[u8; 32]> = intent
                    .body
                    .chunks(32)
                    .filter_map(|c| c.try_into().ok())
                    .collect();
                remove_members(tx, signer, group, conversation, &uids, now)
            }
            IntentKind::Profile | IntentKind::Admins => match GroupState::decode(&intent.body) {
                Ok(state) => set_state(tx, signer, group, conversation, &state, now),
                Err(_) => Ok(false),
            },
            IntentKind::Add => {
                let members = roster(conversation)?;
                undone.extend(
                    intent
                        .body
                        .chunks(32)
                        .filter_map(|c| <[u8; 32]>::try_from(c).ok())
                        .filter(|u| !members.iter().any(|m| m.uid == *u)),
                );
                Ok(false)
            }
        };
        match redone {
            Ok(_) => {}
            // Refused now (e.g. the winner already did it, or made it impossible): dropped.
            Err(EngineError::Mls(e)) => debug!(error = %e, "a group change was not redone"),
            Err(EngineError::NotAdmin) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(undone)
}

impl Engine {
    /// Adds members to a group we administer, from the KeyPackages of their devices the driver
    /// fetched: one commit to the current members (applied here at once), a Welcome to each new
    /// member UID, the change kept as an intent for the rollback window. The added UIDs.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], [`EngineError::NotAdmin`],
    /// [`EngineError::TooManyMembers`], MLS.
    pub fn add_group_members(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<Vec<[u8; 32]>, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            if !conversation.group_state()?.is_admin(&self.me.uid) {
                return Err(EngineError::NotAdmin);
            }
            let before = roster(&conversation)?;
            let mls = tx.mls()?;
            let done = conversation
                .add_members(&mls, &self.mls_device, key_packages, secs(now))
                .map_err(refused)?;
            let after = roster(&conversation)?;
            if after.len() > MAX_GROUP_MEMBERS {
                return Err(EngineError::TooManyMembers {
                    count: after.len(),
                    max: MAX_GROUP_MEMBERS,
                });
            }
            let added: Vec<[u8; 32]> = after
                .iter()
                .filter(|m| !before.iter().any(|b| b.uid == m.uid))
                .map(|m| m.uid)
                .collect();
            let body = added.concat();
            send_commit(
                tx,
                self.signer(),
                &group,
                &conversation,
                &before,
                &done,
                (IntentKind::Add, &body),
                now,
            )?;
            if let Some(welcome) = &done.welcome {
                let made_in = done.epoch.saturating_sub(1);
                self.queue_welcomes(tx, &group, (&after, &before), welcome, made_in, now)?;
            }
            self.conversations.stage(conversation);
            Ok(added)
        })
    }

    /// Removes a member (every device of `uid`) from a group we administer; whether it was in
    /// it.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], [`EngineError::NotAdmin`],
    /// MLS (e.g. no admin would be left).
    pub fn remove_group_member(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        uid: &[u8; 32],
        now: i64,
    ) -> Result<bool, EngineError> {
        if uid == self.me.uid.as_bytes() {
            return Err(EngineError::Mls(E2eError::Unsupported(
                "removing yourself: leave the group instead",
            )));
        }
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            let signer = self.signer();
            let removed = remove_members(tx, signer, &group, &mut conversation, &[*uid], now)?;
            self.conversations.stage(conversation);
            Ok(removed)
        })
    }

    /// Changes a group's name and description (admins only); whether anything changed.
    ///
    /// # Errors
    ///
    /// [`EngineError::Group`] for a bad name or description, [`EngineError::UnknownGroup`],
    /// [`EngineError::NotInGroup`], [`EngineError::NotAdmin`], MLS.
    pub fn update_group_profile(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        name: Option<&str>,
        description: Option<&str>,
        now: i64,
    ) -> Result<bool, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            let current = conversation.group_state()?;
            let mut profile: GroupProfile = current.profile().clone();
            if let Some(name) = name {
                profile.name = name.to_string();
            }
            if let Some(description) = description {
                profile.description = description.to_string();
            }
            let state = current.with_profile(profile)?;
            let changed = set_state(tx, self.signer(), &group, &mut conversation, &state, now)?;
            self.conversations.stage(conversation);
            Ok(changed)
        })
    }

    /// Makes `uid` an admin of a group we administer, or a member again (`admin` false);
    /// whether the roles changed. Carried as a GroupState change in one MLS commit, which every
    /// member checks against the role rule.
    ///
    /// # Errors
    ///
    /// As [`Engine::update_group_profile`]; [`EngineError::NotAMember`] to promote a UID that
    /// is not in the group, [`EngineError::NoAdminLeft`] to demote the last admin who is a
    /// member, [`EngineError::Group`] past 64 admins.
    pub fn set_group_admin(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        uid: &[u8; 32],
        admin: bool,
        now: i64,
    ) -> Result<bool, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            let current = conversation.group_state()?;
            if !current.is_admin(&self.me.uid) {
                return Err(EngineError::NotAdmin);
            }
            let members = roster(&conversation)?;
            let target = Uid::from_bytes(uid);
            if admin && !members.iter().any(|m| m.uid == *uid) {
                return Err(EngineError::NotAMember);
            }
            let mut admins: Vec<Uid> = current
                .admins()
                .iter()
                .copied()
                .filter(|a| *a != target)
                .collect();
            if admin {
                admins.push(target);
            }
            let member_admin = |a: &Uid| members.iter().any(|m| m.uid == *a.as_bytes());
            if !admins.iter().any(member_admin) {
                return Err(EngineError::NoAdminLeft);
            }
            let state = current.with_admins(admins)?;
            let changed = set_state(tx, self.signer(), &group, &mut conversation, &state, now)?;
            self.conversations.stage(conversation);
            Ok(changed)
        })
    }
}

/// Before an admin leaves: one commit that drops it from the admins and, when no other admin
/// would be left among the members, makes the longest-standing other member admin (the
/// earliest `added_at` this node recorded, then the smallest UID), so the group is never left
/// without an admin to commit the leaver's removal. Nothing when we are no admin or alone.
/// Whether a commit was made.
pub(crate) fn hand_over(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    now: i64,
) -> Result<bool, EngineError> {
    let me = signer.me.uid;
    let current = conversation.group_state()?;
    if !current.is_admin(&me) {
        return Ok(false);
    }
    let members = roster(conversation)?;
    let others: Vec<&RosterMember> = members.iter().filter(|m| m.uid != *me.as_bytes()).collect();
    let mut admins: Vec<Uid> = current
        .admins()
        .iter()
        .copied()
        .filter(|a| *a != me)
        .collect();
    let admin_left = others
        .iter()
        .any(|m| admins.contains(&Uid::from_bytes(&m.uid)));
    if !admin_left {
        let stored = tx.group_members(&group.session_id)?;
        let since = |uid: &[u8; 32]| {
            stored
                .iter()
                .find(|s| s.uid == *uid)
                .map_or(i64::MAX, |s| s.added_at)
        };
        let Some(successor) = others.iter().min_by_key(|m| (since(&m.uid), m.uid)) else {
            return Ok(false);
        };
        admins.push(Uid::from_bytes(&successor.uid));
    }
    let state = current.with_admins(admins)?;
    set_state(tx, signer, group, conversation, &state, now)
}

/// An admin's answer to a member's `GroupControl{leave}`: the removal of all its leaves, sent at
/// once (several admins may do it concurrently: the commit ordering keeps one, the others find
/// the member gone).
pub(crate) fn remove_leaver(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    conversation: &mut Conversation,
    uid: &[u8; 32],
    now: i64,
) -> Result<(), EngineError> {
    let me = signer.me;
    if !conversation.group_state()?.is_admin(&me.uid) || uid == me.uid.as_bytes() {
        return Ok(());
    }
    match remove_members(tx, signer, group, conversation, &[*uid], now) {
        Ok(_) | Err(EngineError::Mls(_)) => Ok(()),
        Err(e) => Err(e),
    }
}

impl Engine {
    /// Marks a group's received messages read and queues one signed READ receipt per sending
    /// device (addressed to its owner's UID, in the group's session), so each sender's
    /// `read k/n` moves; whether anything was queued.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], signing, MLS or the database.
    pub fn mark_group_read(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        now: i64,
    ) -> Result<bool, EngineError> {
        self.group_job(tx, |tx| {
            let group = tx
                .group_by_session(session_id)?
                .ok_or(EngineError::UnknownGroup)?;
            let unread = tx.mark_read(session_id, MAX_RECEIPT_ENTRIES)?;
            if unread.is_empty() || group.status != rhizo_store::groups::GroupStatus::Active {
                return Ok(false);
            }
            crate::sync::queue_read_marker(tx, self, &crate::sync::read(session_id, &unread), now)?;
            let conversation = self.load_group(tx, &group)?;
            let members = roster(&conversation)?;
            self.conversations.stage(conversation);
            let mut by_device: Vec<([u8; 32], Vec<ReceiptEntry>)> = Vec::new();
            for m in &unread {
                let Ok(device) = DevicePublicKey::from_bytes(&m.sender_device) else {
                    continue;
                };
                let entry = ReceiptEntry {
                    envelope: EnvelopeId {
                        sender_device: device,
                        session_id: SessionId::from_bytes(*session_id),
                        sequence_num: m.seq,
                    },
                    envelope_digest: m.digest,
                    status: ReceiptStatus::Read,
                };
                match by_device.iter_mut().find(|(d, _)| *d == m.sender_device) {
                    Some((_, entries)) => entries.push(entry),
                    None => by_device.push((m.sender_device, vec![entry])),
                }
            }
            let mut queued = false;
            for (device, entries) in by_device {
                // A device no longer in the group gets nothing.
                let Some(owner) = members.iter().find(|m| m.devices.contains(&device)) else {
                    continue;
                };
                let to = (device, owner.uid);
                let read = rhizo_core::envelope::MessageType::ReadReceipt;
                super::queue_group_receipt(tx, self.signer(), &group, to, entries, read, now)?;
                queued = true;
            }
            Ok(queued)
        })
    }
}

impl Engine {
    /// Adds a new device of our own user (its KeyPackage, from the driver) to a group we are a
    /// member of, admin or not: the role rule lets any member add a device of its own UID that
    /// our device list names (issue 15). One commit to the current members (applied here at
    /// once) and the Welcome to the new device. Welcome routing to our own new device is
    /// queued; that device's side (accepting it) is a later slice.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], [`EngineError::NotAdmin`]
    /// for a KeyPackage of another UID, MLS (e.g. a device our list does not name).
    pub fn add_own_device_to_group(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        key_package: &[u8],
        now: i64,
    ) -> Result<(), EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            let listed = crate::devices::listed_devices_of(tx, &self.me, self.me.uid.as_bytes())?;
            conversation.set_listed_devices(self.me.uid, listed);
            let before = roster(&conversation)?;
            let mls = tx.mls()?;
            let done = conversation
                .add_members(&mls, &self.mls_device, &[key_package.to_vec()], secs(now))
                .map_err(refused)?;
            let after = roster(&conversation)?;
            send_commit(
                tx,
                self.signer(),
                &group,
                &conversation,
                &before,
                &done,
                (IntentKind::Add, &[]),
                now,
            )?;
            if let Some(welcome) = &done.welcome {
                let me = *self.me.uid.as_bytes();
                let old: Vec<[u8; 32]> = before
                    .iter()
                    .filter(|m| m.uid == me)
                    .flat_map(|m| m.devices.clone())
                    .collect();
                let new: Vec<MemberDevice> = after
                    .iter()
                    .filter(|m| m.uid == me)
                    .flat_map(|m| m.devices.clone())
                    .filter(|d| !old.contains(d) && d != self.me.device.public().as_bytes())
                    .map(|d| (d, me))
                    .collect();
                let made_in = done.epoch.saturating_sub(1);
                for (msg_type, payload) in super::welcome_payloads(welcome)? {
                    let out = GroupEnvelope {
                        msg_type,
                        kind: "welcome",
                        body: None,
                        payload,
                        recipient: Some(me),
                        message_id: None,
                        epoch: Some(made_in),
                    };
                    queue_group_envelope(tx, self.signer(), &group, out, &new, now)?;
                }
            }
            self.conversations.stage(conversation);
            Ok(())
        })
    }
}

impl Engine {
    /// Removes a revoked device of our own user from every active group it has a leaf in (one
    /// remove commit per group, applied here at once; the role rule lets any member remove its
    /// own other devices). The number of groups it was removed from.
    ///
    /// # Errors
    ///
    /// The database or MLS.
    pub fn remove_own_device_from_groups(
        &self,
        tx: &mut Tx<'_>,
        device: &DevicePublicKey,
        now: i64,
    ) -> Result<usize, EngineError> {
        if *device == self.me.device.public() {
            return Err(EngineError::Mls(E2eError::Unsupported(
                "removing this device: leave instead",
            )));
        }
        self.group_job(tx, |tx| {
            let mut removed = 0;
            let me = *self.me.uid.as_bytes();
            for group in tx.groups()? {
                if group.status != rhizo_store::groups::GroupStatus::Active {
                    continue;
                }
                let mut conversation = self.load_group(tx, &group)?;
                let before = roster(&conversation)?;
                let has_leaf = before
                    .iter()
                    .any(|m| m.uid == me && m.devices.contains(device.as_bytes()));
                if !has_leaf {
                    self.conversations.stage(conversation);
                    continue;
                }
                let mls = tx.mls()?;
                let done = conversation
                    .remove_members(
                        &mls,
                        &self.mls_device,
                        &[MemberRef::Device(*device)],
                        secs(now),
                    )
                    .map_err(refused)?;
                let intent = (IntentKind::Remove, &[][..]);
                send_commit(
                    tx,
                    self.signer(),
                    &group,
                    &conversation,
                    &before,
                    &done,
                    intent,
                    now,
                )?;
                self.conversations.stage(conversation);
                removed += 1;
            }
            Ok(removed)
        })
    }
}
