//! Inbound group envelopes and invitations.
//!
//! ```text
//!  recipient_id = a known GroupAddress (or to us in a group's session: receipts)
//!     ─▶ the signing device must hold a leaf of the sender's UID (or, removed since, a text
//!        sealed before its removal, in a past epoch) ─▶ MLS process
//!     ─▶ commit applied: roster → members (added / removed events; removed: we are out)
//!     ─▶ text: stored once per (sender UID, message_id); GroupControl{leave}: admins note
//!        the removal to make
//!     ─▶ receipt: the member device's delivery rows (read k/n)
//!  Welcome from a contact ─▶ a group's (extension 0xF7A1)? ─▶ join (auto-join) or hold
//!  Welcome from a stranger to a group ─▶ a group request (read without joining: the
//!     KeyPackage is kept until accepted or declined)
//! ```

use prost::Message as _;
use rhizo_core::{
    envelope::{DeliveryReceipt, ErrorCode, MessageType, ReceiptStatus, SecureMessage},
    group::GroupAddress,
    proto::ChatContent,
};
use rhizo_e2e::{CommitRejectReason, Conversation, E2eError, Processed, WelcomeInfo};
use rhizo_store::{
    Reader, StoreError, Tx,
    groups::{DeliveryState, GroupRow, GroupStatus, NewGroup, NewGroupRequest},
    messaging::NewMessage,
};
use tracing::debug;

use super::{RosterMember, Signer, group_id_hex, member_rows, prune_intents, roster};
use crate::{
    Engine, EngineError, Event, Me, inbound::Parts, inbound::Reject,
    publish::META_KEY_PACKAGE_BUNDLE,
};

/// The group an envelope is for: the group whose address is its recipient, or (addressed to
/// us, not a Welcome) the group whose session it names. `None`: not a group envelope.
pub(crate) fn group_of(
    reader: &Reader<'_>,
    me: &Me,
    message: &SecureMessage,
) -> Result<Option<GroupRow>, StoreError> {
    if message.recipient_id != me.uid {
        return reader.group_by_address(message.recipient_id.as_bytes());
    }
    if matches!(
        message.msg_type,
        MessageType::Welcome | MessageType::WelcomePart
    ) {
        return Ok(None);
    }
    reader.group_by_session(message.session_id.as_bytes())
}

/// Applies one group envelope (its seen row is written) inside `tx`.
pub(crate) fn apply_group(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    // A group we left: its commits are still applied while our leaf is in it (until an admin
    // removes it), so that a hand-over of ours that lost the ordering is made again
    // (protocol.md §29).
    let left_commit = group.status == GroupStatus::Left && message.msg_type == MessageType::Commit;
    if group.status != GroupStatus::Active && !left_commit {
        return Err(Reject::Code(ErrorCode::SessionClosed));
    }
    match message.msg_type {
        MessageType::Application | MessageType::Commit => group_mls(tx, parts, group, message, now),
        MessageType::KeyPackage => super::rejoin::on_rejoin(tx, parts, group, message, now),
        MessageType::DeliveryReceipt | MessageType::ReadReceipt => {
            group_receipt(tx, parts.0, group, message, now)
        }
        _ => Err(Reject::Code(ErrorCode::Malformed)),
    }
}

/// An application message or commit of a group.
fn group_mls(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, health, rng): Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let mls = tx.mls().map_err(Reject::internal)?;
    let mut conversation = conversations
        .load(&mls, &group.group_id)
        .map_err(Reject::internal)?
        .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
    let before = roster(&conversation).map_err(Reject::internal)?;
    let removed_sender = check_sender(&mls, &conversation, &before, message)?;
    let mut processed = conversation
        .process(&mls, mls_device, &message.payload, crate::secs(now))
        .map_err(refusal)?;
    if crate::devices::is_device_not_listed(&processed) {
        // The committer adds a device of its own: give the rule its device list, try again.
        let uid = message.sender_id;
        let mut listed =
            crate::devices::listed_devices_of(tx, me, uid.as_bytes()).map_err(Reject::internal)?;
        listed.extend(conversations.device_lists.known(uid.as_bytes()));
        conversation.set_listed_devices(uid, listed);
        processed = conversation
            .process(&mls, mls_device, &message.payload, crate::secs(now))
            .map_err(refusal)?;
        if crate::devices::is_device_not_listed(&processed) {
            // Not in the list we know: the driver fetches the newest one from the DHT, and the
            // committer retries; not in a list fetched just now either: refused for good.
            if conversations.device_lists.fresh(uid.as_bytes(), now) {
                return Err(Reject::Code(ErrorCode::SessionExpired));
            }
            conversations.device_lists.want(uid.as_bytes());
            return Err(Reject::Code(ErrorCode::SequenceError));
        }
    }
    let mut seen = Seen::default();
    for p in processed {
        match p {
            // Retried by the sender once the commit that opens that epoch is applied here (or
            // after its own rollback, re-encrypted).
            Processed::Deferred => return Err(Reject::Code(ErrorCode::SequenceError)),
            // Already applied here: delivered, nothing changes.
            Processed::CommitRejected {
                reason: CommitRejectReason::Duplicate,
            } => {}
            // Refused (not an admin, lost the epoch, too old): final; nothing changed.
            Processed::CommitRejected { reason } => {
                debug!(?reason, "a group commit was refused");
                return Err(Reject::Code(ErrorCode::SessionExpired));
            }
            Processed::RolledBack { to_epoch, .. } => {
                seen.rolled_back = Some(seen.rolled_back.map_or(to_epoch, |e| e.min(to_epoch)));
            }
            Processed::CommitApplied { .. } => seen.applied = true,
            Processed::Application { plaintext, sender } => {
                let sender_uid = *sender.root().uid().as_bytes();
                let envelope = (
                    message.sender_id.as_bytes(),
                    message.sender_device.as_bytes(),
                );
                if removed_sender && (&sender_uid, sender.device().as_bytes()) != envelope {
                    return Err(Reject::Code(ErrorCode::UnknownSender));
                }
                let from = ((me, mls_device, conversations), health, sender_uid);
                let (events, leaver) = group_content(tx, group, message, from, &plaintext, now)?;
                seen.events.extend(events);
                seen.leavers.extend(leaver);
            }
        }
    }
    let signer = Signer {
        me,
        device: mls_device,
        rng,
    };
    if let Some(to_epoch) = seen.rolled_back {
        let undone =
            super::admin::after_rollback(tx, signer, group, &mut conversation, to_epoch, now)
                .map_err(Reject::internal)?;
        seen.events.extend(undone);
    }
    for uid in &seen.leavers {
        super::admin::remove_leaver(tx, signer, group, &mut conversation, uid, now)
            .map_err(Reject::internal)?;
    }
    if seen.applied || !seen.leavers.is_empty() {
        seen.events
            .extend(after_commit(tx, me, group, &conversation, &before, now)?);
    }
    conversations.stage(conversation);
    Ok(seen.events)
}

/// The signing device must hold a leaf of the UID the envelope names; or, removed since, the
/// envelope is a text it sealed before its removal or a commit made in an earlier epoch
/// (protocol.md §29). Returns whether the
/// sender was removed (MLS's sender must then be the envelope's device).
fn check_sender(
    mls: &rhizo_e2e::E2eStore<'_>,
    conversation: &Conversation,
    before: &[RosterMember],
    message: &SecureMessage,
) -> Result<bool, Reject> {
    let sender_uid = *message.sender_id.as_bytes();
    let device = *message.sender_device.as_bytes();
    let removed = !before
        .iter()
        .any(|m| m.uid == sender_uid && m.devices.contains(&device));
    if removed
        && !sealed_before_removal(mls, conversation, message)?
        && !committed_before_removal(conversation, message)
    {
        return Err(Reject::Code(ErrorCode::UnknownSender));
    }
    Ok(removed)
}

/// Whether a commit from a device no longer in the roster was made in an earlier epoch: it
/// competes in the commit ordering of that epoch, in which MLS checks its sender against the
/// tree of that epoch (the commit that removed its sender may lose to it: protocol.md §29).
fn committed_before_removal(conversation: &Conversation, message: &SecureMessage) -> bool {
    message.msg_type == MessageType::Commit
        && rhizo_e2e::message_epoch(&message.payload).is_some_and(|e| e < conversation.epoch())
}

/// Whether an application message from a device no longer in the roster was sealed in an
/// epoch before its removal and no later than the latest commit made since that epoch (the one
/// that removed it is among them; the sender may have sealed it while behind, after earlier
/// ones it had not seen): its envelope's signed timestamp against the commits' `made_at`.
/// MLS then decrypts it with the past epoch's secrets, or the refusal stays.
fn sealed_before_removal(
    mls: &rhizo_e2e::E2eStore<'_>,
    conversation: &Conversation,
    message: &SecureMessage,
) -> Result<bool, Reject> {
    if message.msg_type != MessageType::Application {
        return Ok(false);
    }
    let Some(epoch) = rhizo_e2e::message_epoch(&message.payload) else {
        return Ok(false);
    };
    let latest = conversation
        .latest_commit_since(mls, epoch)
        .map_err(Reject::internal)?;
    Ok(latest.is_some_and(|made_at| message.timestamp / 1000 <= made_at))
}

/// The refusal for a group message MLS could not process: one more than `MAX_FUTURE_EPOCHS`
/// ahead means we are behind, and the sender retries it after we caught up (refused for good,
/// a commit would never come again: group_sim seed 82 stayed one epoch behind); anything else
/// does not decrypt here.
fn refusal(error: E2eError) -> Reject {
    debug!(%error, "a group message could not be processed");
    match error {
        E2eError::WrongEpoch {
            message_epoch,
            group_epoch,
        } if message_epoch > group_epoch => Reject::Code(ErrorCode::SequenceError),
        _ => Reject::Code(ErrorCode::DecryptionFailed),
    }
}

/// What processing one group envelope gave.
#[derive(Default)]
struct Seen {
    events: Vec<Event>,
    applied: bool,
    rolled_back: Option<u64>,
    leavers: Vec<[u8; 32]>,
}

/// After a commit: the members, our role and the name follow the group's MLS state (events
/// for who came and went, a rename); a roster without this device means an admin removed us.
/// Nothing for a group we left.
fn after_commit(
    tx: &mut Tx<'_>,
    me: &Me,
    group: &GroupRow,
    conversation: &Conversation,
    before: &[RosterMember],
    now: i64,
) -> Result<Vec<Event>, Reject> {
    if group.status == GroupStatus::Left {
        // We left: the commits are applied only so that a hand-over of ours that lost the
        // ordering is made again; our removal is the end we asked for, shown nowhere.
        return Ok(Vec::new());
    }
    let after = roster(conversation).map_err(Reject::internal)?;
    let id = group_id_hex(&group.session_id);
    let mine = *me.device.public().as_bytes();
    let Some(my_entry) = after.iter().find(|m| m.devices.contains(&mine)) else {
        tx.update_group(
            &group.session_id,
            &group.name,
            group.my_role,
            GroupStatus::Removed,
            now,
        )?;
        return Ok(vec![Event::GroupLeft {
            group: id,
            removed: true,
        }]);
    };
    let name = conversation
        .group_state()
        .map_err(Reject::internal)?
        .profile()
        .name
        .clone();
    tx.update_group(&group.session_id, &name, my_entry.role, group.status, now)?;
    let stored = tx.group_members(&group.session_id)?;
    let changed = tx.set_group_members(&group.session_id, &member_rows(&after, &stored, now))?;
    prune_intents(tx, &group.session_id, conversation.epoch()).map_err(Reject::internal)?;
    let mut events: Vec<Event> = changed
        .added
        .iter()
        .filter(|uid| !before.iter().any(|b| b.uid == **uid))
        .map(|uid| Event::GroupMemberAdded {
            group: id.clone(),
            uid: hex::encode(uid),
        })
        .collect();
    events.extend(changed.removed.iter().map(|uid| Event::GroupMemberRemoved {
        group: id.clone(),
        uid: hex::encode(uid),
    }));
    if name != group.name {
        events.push(Event::GroupRenamed { group: id, name });
    }
    Ok(events)
}

/// What applying a sync message needs: us, our MLS device, the conversation cache.
type SyncParts<'a> = (
    &'a Me,
    &'a rhizo_e2e::Device,
    &'a crate::cache::ConversationCache,
);

/// A decrypted group message: a text stored once per (sender UID, message id); a leave
/// (returned: an admin removes the leaver).
fn group_content(
    tx: &mut Tx<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    (sync_parts, health, sender_uid): (
        SyncParts<'_>,
        &crate::agents::health::AgentHealth,
        [u8; 32],
    ),
    plaintext: &[u8],
    now: i64,
) -> Result<(Vec<Event>, Option<[u8; 32]>), Reject> {
    let content = ChatContent::decode(plaintext).map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    if content.group_control.is_some_and(|c| c.leave) {
        return Ok((Vec::new(), Some(sender_uid)));
    }
    if let Some(sync) = content.sync {
        return Ok((
            crate::sync::apply_sync(tx, sync_parts, group, sender_uid, sync, now)?,
            None,
        ));
    }
    let me = sync_parts.0;
    if let Some(agent) = content.agent {
        let ctx = crate::agents::group::GroupAgentCtx {
            me,
            health,
            group,
            sender: sender_uid,
            sender_device: *message.sender_device.as_bytes(),
        };
        let events = crate::agents::group::apply_group_agent(tx, &ctx, agent, now)?;
        return Ok((events, None));
    }
    if let Some(request) = &content.delete {
        let events = crate::manage::apply_group_delete(tx, group, sender_uid, request)?;
        return Ok((events, None));
    }
    // "Is typing": shown unless ours or from a blocked member, never stored.
    if content.typing.is_some() {
        if sender_uid == *me.uid.as_bytes() || crate::manage::blocked(tx, &sender_uid)? {
            return Ok((Vec::new(), None));
        }
        let id = crate::groups::group_id_hex(&group.session_id);
        let events = crate::typing::on_typing(message, content.sent_at_ms, id, &sender_uid, now);
        return Ok((events, None));
    }
    // A file message: its reference is checked before anything is stored.
    let file = crate::files::file_of(&content)?;
    // A blocked member's text: decrypted (the group's MLS state moves on), never stored.
    if (content.text.is_empty() && file.is_none()) || crate::manage::blocked(tx, &sender_uid)? {
        return Ok((Vec::new(), None));
    }
    let message_id: Option<[u8; 16]> = content.message_id.as_ref().try_into().ok();
    let sent_at = i64::try_from(rhizo_core::seen::bounded_sent_at(
        content.sent_at_ms,
        message.timestamp,
        crate::ms(now),
    ))
    .unwrap_or(i64::MAX);
    let id = tx.insert_group_incoming(
        &NewMessage {
            session_id: group.session_id,
            sender_device: *message.sender_device.as_bytes(),
            seq: message.sequence_num,
            kind: if file.is_some() { "file" } else { "text" },
            body: Some(&content.text),
            sent_at,
        },
        &message.digest(),
        &sender_uid,
        message_id.as_ref(),
        now,
    )?;
    if let (Some(id), Some(file)) = (id, &file) {
        crate::files::insert_file_row(tx, id, file, false, now)?;
    }
    let muted = tx.conversation_settings(&group.address)?.muted;
    let events = id
        .map(|id| Event::GroupMessageReceived {
            id,
            group: group_id_hex(&group.session_id),
            from: hex::encode(sender_uid),
            text: content.text,
            sent_at,
            muted,
        })
        .into_iter()
        .collect();
    Ok((events, None))
}

/// A member device's receipt for our group envelopes: its delivery rows move on.
fn group_receipt(
    tx: &mut Tx<'_>,
    me: &Me,
    group: &GroupRow,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let receipt = DeliveryReceipt::decode(&message.payload)
        .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    if receipt.recipient_device != message.sender_device {
        return Err(Reject::Code(ErrorCode::InvalidSignature));
    }
    receipt
        .verify(&message.sender_device)
        .map_err(|_| Reject::Code(ErrorCode::InvalidSignature))?;
    let ours = me.device.public();
    let device = *message.sender_device.as_bytes();
    let mut events = Vec::new();
    for entry in receipt
        .entries
        .iter()
        .filter(|e| e.envelope.session_id == message.session_id && e.envelope.sender_device == ours)
    {
        let state = match entry.status {
            ReceiptStatus::Read => DeliveryState::Read,
            ReceiptStatus::Delivered | ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
                DeliveryState::Delivered
            }
            ReceiptStatus::Rejected(code) if !code.is_transient() => DeliveryState::Failed,
            _ => continue,
        };
        let Some(id) = tx.outgoing_message_id(
            &group.session_id,
            ours.as_bytes(),
            entry.envelope.sequence_num,
        )?
        else {
            continue;
        };
        if tx.set_delivery(id, &device, state, now)? {
            let counts = tx.delivery_counts(id)?;
            // Only texts are in the group's message list (not commits, controls, agent rows).
            let Some(row) = tx.message(id)?.filter(|m| m.kind == "text") else {
                continue;
            };
            events.push(Event::GroupMessageState {
                id,
                group: group_id_hex(&group.session_id),
                state: row.state,
                delivered: counts.delivered,
                read: counts.read,
                total: counts.total,
            });
        }
    }
    Ok(events)
}

/// What a contact's Welcome is.
pub(crate) enum WelcomeKind {
    /// A 1:1 conversation's: the caller joins, checks and persists it as before.
    Direct,
    /// A group's (the Welcome carries the group extension): joined (auto-join) or held as a
    /// group request; the events.
    Group(Vec<Event>),
}

/// A Welcome as received: the signed envelope it came in (for a Welcome in parts, the last
/// part's) and the whole Welcome (that envelope's payload, or the parts joined).
#[derive(Clone, Copy)]
pub(crate) struct WelcomeIn<'a> {
    pub(crate) envelope: &'a SecureMessage,
    pub(crate) welcome: &'a [u8],
}

impl WelcomeIn<'_> {
    /// The whole Welcome to keep beside the envelope: `Some` when it came in parts.
    fn in_parts(&self) -> Option<&[u8]> {
        (self.envelope.msg_type == MessageType::WelcomePart).then_some(self.welcome)
    }
}

/// A Welcome from a contact: a group's (it carries the group extension) is joined when
/// auto-join is on and held as a group request (the KeyPackage kept) when it is off.
pub(crate) fn contact_welcome(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, _, rng): Parts<'_>,
    welcome: WelcomeIn<'_>,
    now: i64,
) -> Result<WelcomeKind, Reject> {
    let mls = tx.mls().map_err(Reject::internal)?;
    let info = match rhizo_e2e::inspect_welcome(&mls, welcome.welcome) {
        Ok(info) => info,
        Err(E2eError::NotAGroup) => return Ok(WelcomeKind::Direct),
        Err(e) => {
            debug!(error = %e, "a Welcome could not be read");
            return Err(Reject::Code(ErrorCode::DecryptionFailed));
        }
    };
    let auto_join = tx.get_meta(super::META_GROUPS_AUTO_JOIN)?.as_deref() != Some("0");
    let rejoined = super::rejoin::awaited(tx, welcome.envelope)?;
    if !auto_join && !rejoined {
        let (_, event) = hold(tx, welcome, &info, now)?;
        return Ok(WelcomeKind::Group(event.into_iter().collect()));
    }
    let mut conversation = Conversation::join(&mls, mls_device, welcome.welcome, crate::secs(now))
        .map_err(|e| {
            debug!(error = %e, "a group Welcome could not be joined");
            Reject::Code(ErrorCode::DecryptionFailed)
        })?;
    if rejoined {
        let signer = super::Signer {
            me,
            device: mls_device,
            rng,
        };
        super::rejoin::resend_after_rejoin(tx, signer, welcome.envelope, &mut conversation, now)
            .map_err(Reject::internal)?;
    }
    let events = persist_join(tx, conversations, conversation, welcome.envelope, true, now)?;
    Ok(WelcomeKind::Group(events))
}

/// A Welcome (whole, or a piece of one) from someone who is not a contact: `Some` (held as a
/// group request, a piece kept, or the answer that refuses it) when it is a group's, `None`
/// otherwise (the caller holds it as a message request). Reading it uses nothing up.
pub(crate) fn stranger_welcome(
    tx: &mut Tx<'_>,
    parts: Parts<'_>,
    message: &SecureMessage,
    now: i64,
) -> Result<Option<(ReceiptStatus, Vec<Event>)>, StoreError> {
    let whole;
    let welcome = match message.msg_type {
        MessageType::Welcome => &message.payload[..],
        MessageType::WelcomePart => match super::parts::keep_part(tx, message, now) {
            Ok(Some(joined)) => {
                whole = joined;
                &whole[..]
            }
            Ok(None) => return Ok(Some((ReceiptStatus::Held, Vec::new()))),
            Err(Reject::Store(e)) => return Err(e),
            Err(Reject::Code(code)) => {
                return Ok(Some((ReceiptStatus::Rejected(code), Vec::new())));
            }
        },
        _ => return Ok(None),
    };
    let Ok(mls) = tx.mls() else {
        return Ok(None);
    };
    let Ok(info) = rhizo_e2e::inspect_welcome(&mls, welcome) else {
        // A 1:1 Welcome never comes in parts: a piece of something else is refused.
        return Ok((message.msg_type == MessageType::WelcomePart)
            .then_some((ReceiptStatus::Rejected(ErrorCode::Malformed), Vec::new())));
    };
    let welcome = WelcomeIn {
        envelope: message,
        welcome,
    };
    // Our own devices' sync group first (issue 15): it must not be joined as an ordinary group.
    match crate::sync::sync_welcome(tx, parts, welcome, &info, now) {
        Ok(Some(events)) => return Ok(Some((ReceiptStatus::Delivered, events))),
        Ok(None) => {}
        Err(Reject::Store(e)) => return Err(e),
        Err(Reject::Code(code)) => return Ok(Some((ReceiptStatus::Rejected(code), Vec::new()))),
    }
    // The Welcome that re-adds us after we asked (the admin need not be a contact), or one from
    // another device of our own (precheck found it in our device list: issue 15, a new device
    // joining our groups): joined (unless auto-join is off).
    if message.sender_id == parts.0.uid || super::rejoin::awaited(tx, message)? {
        return match contact_welcome(tx, parts, welcome, now) {
            Ok(WelcomeKind::Group(events)) => Ok(Some((ReceiptStatus::Delivered, events))),
            Ok(WelcomeKind::Direct) => Ok(None),
            Err(Reject::Store(e)) => Err(e),
            Err(Reject::Code(code)) => Ok(Some((ReceiptStatus::Rejected(code), Vec::new()))),
        };
    }
    match hold(tx, welcome, &info, now) {
        Ok((status, event)) => Ok(Some((status, event.into_iter().collect()))),
        Err(Reject::Store(e)) => Err(e),
        Err(Reject::Code(code)) => Ok(Some((ReceiptStatus::Rejected(code), Vec::new()))),
    }
}

/// Holds a group invitation; the status to answer and the event for a new one.
fn hold(
    tx: &mut Tx<'_>,
    welcome: WelcomeIn<'_>,
    info: &WelcomeInfo,
    now: i64,
) -> Result<(ReceiptStatus, Option<Event>), Reject> {
    let message = welcome.envelope;
    let session_id = *message.session_id.as_bytes();
    let name = info.state.profile().name.clone();
    let mut uids: Vec<[u8; 32]> = info
        .members
        .iter()
        .map(|c| *c.root().uid().as_bytes())
        .collect();
    uids.sort_unstable();
    uids.dedup();
    let members = u32::try_from(uids.len()).unwrap_or(u32::MAX);
    let held = tx.hold_group_request(
        &NewGroupRequest {
            session_id,
            inviter_uid: *message.sender_id.as_bytes(),
            name: &name,
            members,
            envelope: &message.encode(),
            welcome: welcome.in_parts(),
        },
        now,
    );
    match held {
        Ok(Some(id)) => Ok((
            ReceiptStatus::Held,
            Some(Event::GroupRequest {
                id,
                from: hex::encode(message.sender_id.as_bytes()),
                name,
            }),
        )),
        Ok(None) => Ok((ReceiptStatus::Held, None)),
        // Full: the inviter retries later (after the user decided some).
        Err(StoreError::LimitReached { .. }) => Err(Reject::Code(ErrorCode::QuotaExceeded)),
        Err(e) => Err(e.into()),
    }
}

/// Persists a joined group: its row (our role, name from the group's extension), its
/// members, a fresh KeyPackage bundle to publish (a one-time one was used).
pub(crate) fn persist_join(
    tx: &mut Tx<'_>,
    conversations: &crate::ConversationCache,
    conversation: Conversation,
    message: &SecureMessage,
    auto_join: bool,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let session_id = *message.session_id.as_bytes();
    let members = roster(&conversation).map_err(Reject::internal)?;
    let state = conversation.group_state().map_err(Reject::internal)?;
    let name = state.profile().name.clone();
    let inserted = tx.insert_group(
        &NewGroup {
            session_id,
            group_id: conversation.id(),
            address: *GroupAddress::from_group_id(conversation.id()).as_bytes(),
            name: &name,
            my_role: super::store_role(state.role_of(&message.recipient_id)),
            invited_by: Some(*message.sender_id.as_bytes()),
            auto_join,
        },
        now,
    );
    match inserted {
        Ok(()) => {}
        Err(StoreError::LimitReached { .. }) => {
            return Err(Reject::Code(ErrorCode::QuotaExceeded));
        }
        Err(e) => return Err(e.into()),
    }
    tx.set_group_members(&session_id, &member_rows(&members, &[], now))?;
    // Joined (again): no longer behind, nothing asked for.
    tx.clear_group_rejoin(&session_id)?;
    tx.set_meta(META_KEY_PACKAGE_BUNDLE, "")?;
    conversations.stage(conversation);
    Ok(vec![Event::GroupCreated {
        group: group_id_hex(&session_id),
        name,
    }])
}

impl Engine {
    /// Accepts a held group invitation: joins the group from the kept Welcome.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`] when no such request is held; MLS (e.g. the KeyPackage
    /// it used was deleted meanwhile) or the database.
    pub fn accept_group_request(
        &self,
        tx: &mut Tx<'_>,
        id: i64,
        now: i64,
    ) -> Result<(GroupRow, Vec<Event>), EngineError> {
        self.group_job(tx, |tx| {
            let request = tx
                .take_group_request(id)?
                .ok_or(EngineError::UnknownGroup)?;
            let message = SecureMessage::decode(&request.envelope)?;
            message.verify(&message.sender_device)?;
            // A Welcome that came in parts is kept whole beside its last part's envelope.
            let welcome = request.welcome.as_deref().unwrap_or(&message.payload);
            let mls = tx.mls()?;
            let conversation =
                Conversation::join(&mls, &self.mls_device, welcome, crate::secs(now))?;
            let events = persist_join(tx, &self.conversations, conversation, &message, false, now)
                .map_err(|r| match r {
                    Reject::Store(e) => EngineError::Store(e),
                    Reject::Code(_) => EngineError::Store(StoreError::LimitReached {
                        what: "groups per node",
                        max: rhizo_store::groups::MAX_GROUPS,
                    }),
                })?;
            let group = tx
                .group_by_session(message.session_id.as_bytes())?
                .ok_or(EngineError::Internal("group vanished"))?;
            Ok((group, events))
        })
    }

    /// Declines a held group invitation (dropped); whether it was held.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn decline_group_request(&self, tx: &mut Tx<'_>, id: i64) -> Result<bool, EngineError> {
        Ok(tx.take_group_request(id)?.is_some())
    }
}
