//! Recovery by re-add: a member whose group state forked beyond the rollback window (or is
//! lost) forgets it and sends a `GroupRejoin` (its group id and a fresh KeyPackage) to one
//! admin (another one at each retry); that admin, if its roster has that member, commits the
//! removal of the device's old leaf plus the add of the new KeyPackage (`readd`), and sends the
//! Welcome to that device.
//!
//! The member side also runs by itself ([`after_refusal`]): a group envelope refused here with
//! `UNKNOWN_SESSION` (our MLS state of an active group is gone), or signs from a majority of
//! the members that they are on another chain than ours (behind for good, or on a losing
//! branch: restored from an old state, forked beyond the rollback window) for
//! [`REJOIN_AFTER_BEHIND_MS`] and still [`REJOIN_GRACE_MS`] later in local time (commits
//! merely late catch us up meanwhile), sends the request, once per group per
//! [`REJOIN_RETRY_MS`]. A minority on a losing branch never makes the others ask. Until the admin's Welcome, which is
//! joined even from a non-contact ([`awaited`]), the group is *rejoining*: its MLS state is
//! gone, `EngineError::Rejoining` for anything that needs it, [`rejoining_info`] for its info.
//!
//! ```text
//!  member: request_group_rejoin ─▶ MLS state deleted ─▶ KEY_PACKAGE envelope to one admin
//!  admin: on_rejoin ─▶ sender a roster member? once per (group, UID) per 60 s ─▶ readd
//!     ─▶ commit to everyone, Welcome to the device ─▶ the member joins again
//! ```

use rhizo_core::{
    envelope::{ErrorCode, MessageType, SecureMessage},
    group::{GROUP_REJOIN_INTERVAL_SECS, GroupProfile, GroupRejoin},
};
use rhizo_e2e::{Conversation, E2eError, MemberRef};
use rhizo_store::{
    StoreError, Tx,
    groups::{
        GroupMember, GroupRole, GroupRow, GroupStatus, IntentKind, MAX_BEHIND_SENDERS, MemberDevice,
    },
};
use tracing::debug;

use super::{
    GroupEnvelope, GroupInfo, GroupMemberInfo, Signer, active_group, admin::send_commit,
    queue_group_envelope, roster,
};
use crate::{Engine, EngineError, Event, inbound::Parts, inbound::Reject, secs};

/// An admin's answer to a member's `GroupRejoin`: the member's device re-added (removed and
/// added again from the new KeyPackage), at most once per (group, UID) per 60 s.
pub(crate) fn on_rejoin(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, _, rng): Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let rejoin =
        GroupRejoin::decode(&message.payload).map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    if rejoin.group_id.as_slice() != group.group_id.as_slice() {
        return Err(Reject::Code(ErrorCode::Malformed));
    }
    let mls = tx.mls().map_err(Reject::internal)?;
    let mut conversation = conversations
        .load(&mls, &group.group_id)
        .map_err(Reject::internal)?
        .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
    let before = roster(&conversation).map_err(Reject::internal)?;
    let uid = *message.sender_id.as_bytes();
    let device = *message.sender_device.as_bytes();
    if !before
        .iter()
        .any(|m| m.uid == uid && m.devices.contains(&device))
    {
        return Err(Reject::Code(ErrorCode::UnknownSender));
    }
    let admin = conversation
        .group_state()
        .map_err(Reject::internal)?
        .is_admin(&me.uid);
    if !admin {
        // Sent to an admin (we were demoted meanwhile): the member asks another one later.
        conversations.stage(conversation);
        return Ok(Vec::new());
    }
    if readded_lately(tx, group, &uid, now)? {
        return Err(Reject::Code(ErrorCode::RateLimited));
    }
    let target = MemberRef::Device(message.sender_device);
    let done = match conversation.readd(&mls, mls_device, target, &rejoin.key_package, secs(now)) {
        Ok(done) => done,
        Err(E2eError::InvalidKeyPackage(_)) => return Err(Reject::Code(ErrorCode::Malformed)),
        Err(e) => {
            debug!(error = %e, "a rejoin could not be done");
            return Err(Reject::Code(ErrorCode::Malformed));
        }
    };
    let signer = Signer {
        me,
        device: mls_device,
        rng,
    };
    send_commit(
        tx,
        signer,
        group,
        &conversation,
        &before,
        &done,
        (IntentKind::Add, &uid),
        now,
    )
    .map_err(Reject::internal)?;
    if let Some(welcome) = done.welcome {
        // Whole, or in parts when larger than one envelope (a large group's tree).
        for (msg_type, payload) in super::welcome_payloads(&welcome).map_err(Reject::internal)? {
            let out = GroupEnvelope {
                msg_type,
                kind: "welcome",
                body: None,
                payload,
                recipient: Some(uid),
                message_id: None,
                epoch: None,
            };
            queue_group_envelope(tx, signer, group, out, &[(device, uid)], now)
                .map_err(Reject::internal)?;
        }
    }
    conversations.stage(conversation);
    Ok(Vec::new())
}

/// Whether `uid` was (re-)added to the group in the last [`GROUP_REJOIN_INTERVAL_SECS`].
fn readded_lately(tx: &Tx<'_>, group: &GroupRow, uid: &[u8; 32], now: i64) -> Result<bool, Reject> {
    let since = now.saturating_sub(GROUP_REJOIN_INTERVAL_SECS as i64 * 1000);
    Ok(tx.group_intents(&group.session_id)?.iter().any(|i| {
        i.kind == IntentKind::Add && i.body.as_slice() == uid.as_slice() && i.created_at > since
    }))
}

/// How long the signs that the group is on another chain must last, while we stay at the same
/// epoch, before we ask to be re-added: from when the first one reached us, in local time
/// (their senders keep retrying them) or in the seal time of an envelope made in a later
/// epoch (the group kept talking: a member back from a mailbox gets it all at once). Six
/// times the longest retry backoff: a commit that is merely late (retried, or in a mailbox)
/// arrives first.
pub const REJOIN_AFTER_BEHIND_MS: i64 = 30 * 60 * 1000;

/// How long, in *local* time, we keep waiting once the seal times say the group moved on for
/// good without us ([`REJOIN_AFTER_BEHIND_MS`]) before we ask: while it runs, commits that are
/// merely late (an offline member fetching its mailbox gets everything at once, in any order;
/// a commit may sit in its sender's retry backoff) still catch us up, and catching up by one
/// epoch starts everything again. Three times the longest retry backoff, so the senders'
/// retries of what we refused re-check it after the grace.
pub const REJOIN_GRACE_MS: i64 = 15 * 60 * 1000;

/// At most one automatic `GroupRejoin` per group this often (each costs the admins a commit
/// and a Welcome, and us a fresh KeyPackage).
pub const REJOIN_RETRY_MS: i64 = 60 * 60 * 1000;

/// Automatic rejoin detection, after an application message or commit of `group` from
/// `message.sender_id` was refused (in its own savepoint of `tx`; failures are logged, never
/// fail the frame). We are stuck when:
///
/// - `UNKNOWN_SESSION`: the group is active here but its MLS state is gone (lost with a
///   restore, or deleted by an earlier request) ─▶ ask at once;
/// - behind or on a losing branch for good (see `behind_for_good`): signs from a strict
///   majority of the other members that the group is on another chain, which kept coming
///   [`REJOIN_AFTER_BEHIND_MS`] (or were sealed that much later), still at this epoch of ours
///   after [`REJOIN_GRACE_MS`] of local time ─▶ ask (restored from an old state, forked beyond
///   the rollback window, or joined from a Welcome whose commit lost the ordering).
///
/// Only for an envelope whose sender UID is a stored member of the group, only when another
/// admin exists to answer, and at most once per group per [`REJOIN_RETRY_MS`]. Asking: our
/// state of the group is deleted and a `GroupRejoin` with a fresh KeyPackage goes to one other
/// admin ([`send_rejoin`]); the Welcome that answers is joined ([`awaited`]).
pub(crate) fn after_refusal(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    code: ErrorCode,
    now: i64,
) {
    if !matches!(
        code,
        ErrorCode::UnknownSession
            | ErrorCode::SequenceError
            | ErrorCode::SessionExpired
            | ErrorCode::DecryptionFailed
    ) || !matches!(
        message.msg_type,
        MessageType::Application | MessageType::Commit
    ) || group.status != GroupStatus::Active
    {
        return;
    }
    let conversations = parts.2;
    let asked = tx
        .in_savepoint(|tx| rejoin_if_stuck(tx, parts, group, message, code, now))
        .map_err(EngineError::from)
        .and_then(|r| r);
    match asked {
        Ok(true) => debug!("stuck in a group: asked its admins to re-add this device"),
        Ok(false) => {}
        Err(e) => {
            conversations.discard_staged();
            debug!(error = %e, "automatic rejoin failed");
        }
    }
}

/// See [`after_refusal`]; whether a `GroupRejoin` was sent.
fn rejoin_if_stuck(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, _, rng): Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    code: ErrorCode,
    now: i64,
) -> Result<bool, EngineError> {
    let members = tx.group_members(&group.session_id)?;
    if !members
        .iter()
        .any(|m| m.uid == *message.sender_id.as_bytes())
    {
        return Ok(false);
    }
    let mls = tx.mls()?;
    let conversation = conversations.load(&mls, &group.group_id)?;
    let epoch = conversation.as_ref().map_or(0, Conversation::epoch);
    let stuck = match &conversation {
        None => true,
        Some(_) => {
            let seen = (group, &members[..], me.uid.as_bytes());
            behind_for_good(tx, seen, message, code, epoch, now)?
        }
    };
    let asked_lately = tx
        .group_rejoin(&group.session_id)?
        .and_then(|r| r.requested_at)
        .is_some_and(|at| now.saturating_sub(at) < REJOIN_RETRY_MS);
    let admins: Vec<AdminDevices> = match &conversation {
        Some(c) => roster(c)?
            .into_iter()
            .filter(|m| m.role == GroupRole::Admin)
            .map(|m| (m.uid, m.devices))
            .collect(),
        None => stored_admins(tx, &members, message)?,
    };
    let answerable = admins.iter().any(|(uid, _)| uid != me.uid.as_bytes());
    if !stuck || asked_lately || !answerable {
        if let Some(c) = conversation {
            conversations.stage(c);
        }
        return Ok(false);
    }
    let key_package = rhizo_e2e::create_key_packages(&mls, mls_device, 1, false)?
        .pop()
        .ok_or(EngineError::Internal("no KeyPackage made"))?;
    if let Some(c) = conversation {
        c.delete(&mls)?;
    }
    let signer = Signer {
        me,
        device: mls_device,
        rng,
    };
    let sent = send_rejoin(tx, signer, group, &admins, &key_package, now)?;
    tx.set_group_rejoin_requested(&group.session_id, epoch, now)?;
    Ok(sent > 0)
}

/// Whether `message`, refused here with `code` at our `epoch`, shows we are behind or on a
/// losing branch for good. Signs: deferred (`SEQUENCE_ERROR`: made in a later epoch, or in
/// ours or a recent one on another branch); a commit made in an earlier epoch we cannot take
/// (`SESSION_EXPIRED`: beyond the rollback window, or it lost the ordering here); a message of
/// an earlier epoch that does not decrypt (`DECRYPTION_FAILED`: another branch). For good when
///
/// - the signs came from a strict majority of the other members (UIDs, this epoch of ours):
///   a minority on a losing branch (which sends exactly these signs to the winners) never
///   makes the others ask, and
/// - the group moved on: a later epoch's envelope sealed [`REJOIN_AFTER_BEHIND_MS`] after the
///   first sign reached us, or signs still coming [`REJOIN_AFTER_BEHIND_MS`] of local time
///   after it (their senders retry them), and
/// - [`REJOIN_GRACE_MS`] of local time passed since that was first seen (noted now if it is
///   the first): commits that are merely late catch us up meanwhile, and any move of our
///   epoch starts everything again.
fn behind_for_good(
    tx: &mut Tx<'_>,
    (group, members, me): (&GroupRow, &[GroupMember], &[u8; 32]),
    message: &SecureMessage,
    code: ErrorCode,
    epoch: u64,
    now: i64,
) -> Result<bool, EngineError> {
    let Some(made_in) = rhizo_e2e::message_epoch(&message.payload) else {
        return Ok(false);
    };
    let sign = match code {
        ErrorCode::SequenceError => true,
        ErrorCode::SessionExpired => message.msg_type == MessageType::Commit && made_in < epoch,
        ErrorCode::DecryptionFailed => made_in < epoch,
        _ => false,
    };
    if !sign {
        return Ok(false);
    }
    let row = tx.note_group_behind(&group.session_id, epoch, now)?;
    let senders = tx.note_group_behind_sender(&group.session_id, message.sender_id.as_bytes())?;
    let others = members.iter().filter(|m| m.uid != *me).count();
    let majority = (others / 2 + 1).min(MAX_BEHIND_SENDERS);
    let sealed = i64::try_from(message.timestamp).unwrap_or(i64::MAX);
    let moved_on = (made_in > epoch
        && sealed.saturating_sub(row.behind_since) >= REJOIN_AFTER_BEHIND_MS)
        || now.saturating_sub(row.behind_since) >= REJOIN_AFTER_BEHIND_MS;
    if senders < majority || !moved_on {
        return Ok(false);
    }
    let stuck_at = tx.note_group_stuck(&group.session_id, now)?;
    Ok(now.saturating_sub(stuck_at) >= REJOIN_GRACE_MS)
}

/// What [`Engine::group_info`] shows when our state of the group is gone: while we wait to be
/// re-added (an active group), or after we left it or were removed: the stored members and
/// name, the epoch we were stuck at (0 if unknown), no fingerprint.
pub(crate) fn rejoining_info(tx: &Tx<'_>, group: GroupRow) -> Result<GroupInfo, EngineError> {
    let epoch = tx.group_rejoin(&group.session_id)?.map_or(0, |r| r.epoch);
    let members = tx
        .group_members(&group.session_id)?
        .into_iter()
        .map(|m| GroupMemberInfo {
            uid: m.uid,
            role: m.role,
            devices: Vec::new(),
        })
        .collect();
    let profile = GroupProfile::named(&group.name).unwrap_or_default();
    // A group we left or were removed from is that, not rejoining.
    let rejoining = group.status == GroupStatus::Active;
    Ok(GroupInfo {
        group,
        members,
        epoch,
        fingerprint: String::new(),
        profile,
        rejoining,
    })
}

/// An admin's UID and the devices of it a `GroupRejoin` goes to.
type AdminDevices = ([u8; 32], Vec<[u8; 32]>);

/// The admins (stored roles) with the devices we know of them while the group's MLS state
/// is gone: a contact's listed devices, and the device that sent `message`.
fn stored_admins(
    tx: &Tx<'_>,
    members: &[rhizo_store::groups::GroupMember],
    message: &SecureMessage,
) -> Result<Vec<AdminDevices>, EngineError> {
    let mut admins = Vec::new();
    for m in members.iter().filter(|m| m.role == GroupRole::Admin) {
        let mut devices: Vec<[u8; 32]> = tx
            .contact_by_uid(&m.uid)?
            .map(|c| c.devices.iter().map(|d| d.device_pk).collect())
            .unwrap_or_default();
        if m.uid == *message.sender_id.as_bytes() {
            devices.push(*message.sender_device.as_bytes());
        }
        devices.sort_unstable();
        devices.dedup();
        if !devices.is_empty() {
            admins.push((m.uid, devices));
        }
    }
    Ok(admins)
}

/// Queues a `GroupRejoin` (the group id and `key_package`) to ONE admin other than us (to
/// each of its `devices`): two admins answering would make two re-add commits in the same
/// epoch, and the one that loses the ordering leaves us joined from its Welcome on a branch
/// nobody else is on. The admin is the next one (by UID) each [`REJOIN_RETRY_MS`], so a
/// request nobody answered goes to another admin the next time. How many admins (0 or 1).
fn send_rejoin(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    admins: &[AdminDevices],
    key_package: &[u8],
    now: i64,
) -> Result<usize, EngineError> {
    let group_id: [u8; 32] = group
        .group_id
        .as_slice()
        .try_into()
        .map_err(|_| EngineError::Internal("group id is not 32 bytes"))?;
    let payload = GroupRejoin {
        group_id,
        key_package: key_package.to_vec(),
    }
    .encode();
    let mut others: Vec<&AdminDevices> = admins
        .iter()
        .filter(|(uid, _)| *uid != *signer.me.uid.as_bytes())
        .collect();
    others.sort_by_key(|(uid, _)| *uid);
    let turn = usize::try_from(now.max(0) / REJOIN_RETRY_MS).unwrap_or(0);
    let chosen = others.get(turn.checked_rem(others.len()).unwrap_or(0));
    let mut sent = 0;
    for (uid, devices) in chosen.into_iter().copied() {
        let devices: Vec<MemberDevice> = devices.iter().map(|d| (*d, *uid)).collect();
        let out = GroupEnvelope {
            msg_type: MessageType::KeyPackage,
            kind: "rejoin",
            body: None,
            payload: payload.clone(),
            recipient: Some(*uid),
            message_id: None,
            epoch: None,
        };
        queue_group_envelope(tx, signer, group, out, &devices, now)?;
        sent += 1;
    }
    Ok(sent)
}

/// Whether `welcome` (a Welcome or its last part) is the one that re-adds us to a group we
/// asked to rejoin: the group is active here with a request of ours on record, and the
/// inviter is one of its stored admins. Such a Welcome is joined even from a non-contact, and
/// with auto-join off.
pub(crate) fn awaited(tx: &Tx<'_>, welcome: &SecureMessage) -> Result<bool, StoreError> {
    let session_id = welcome.session_id.as_bytes();
    let Some(group) = tx.group_by_session(session_id)? else {
        return Ok(false);
    };
    let asked = tx
        .group_rejoin(session_id)?
        .is_some_and(|r| r.requested_at.is_some());
    if group.status != GroupStatus::Active || !asked {
        return Ok(false);
    }
    let inviter = welcome.sender_id.as_bytes();
    Ok(tx
        .group_members(session_id)?
        .iter()
        .any(|m| m.uid == *inviter && m.role == GroupRole::Admin))
}

/// Once we joined again from the Welcome that answers our request: our commits still queued
/// were made in the state we left (nobody can apply them: dropped, or they would block what
/// follows them), and our texts and controls some member device still lacks were encrypted
/// there (nobody can read them any more: a state lost, behind, or on a losing branch), so
/// they are encrypted again in the joined epoch (same `message_id`: shown once where they did
/// arrive).
pub(crate) fn resend_after_rejoin(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    welcome: &SecureMessage,
    conversation: &mut Conversation,
    now: i64,
) -> Result<(), EngineError> {
    let Some(group) = tx.group_by_session(welcome.session_id.as_bytes())? else {
        return Ok(());
    };
    tx.drop_group_commits(&group.session_id, 0)?;
    for row in tx.group_resends(&group.session_id, 0)? {
        super::admin::reseal(tx, signer, &group, conversation, &row, now)?;
    }
    Ok(())
}

impl Engine {
    /// Recovery: forgets this device's MLS state of the group (forked beyond the rollback
    /// window, or broken) and asks an admin to re-add it with `key_package` (a fresh
    /// KeyPackage of this device, from the driver; one admin: see `send_rejoin`). The admin's
    /// Welcome then joins the group again. How many admins it was sent to (0 or 1). (The engine also does this by itself when it
    /// finds itself stuck: see `after_refusal`.)
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], MLS or the database.
    pub fn request_group_rejoin(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        key_package: &[u8],
        now: i64,
    ) -> Result<usize, EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let conversation = self.load_group(tx, &group)?;
            let epoch = conversation.epoch();
            let admins: Vec<AdminDevices> = roster(&conversation)?
                .into_iter()
                .filter(|m| m.role == GroupRole::Admin)
                .map(|m| (m.uid, m.devices))
                .collect();
            conversation.delete(&tx.mls()?)?;
            let sent = send_rejoin(tx, self.signer(), &group, &admins, key_package, now)?;
            tx.set_group_rejoin_requested(session_id, epoch, now)?;
            Ok(sent)
        })
    }
}
