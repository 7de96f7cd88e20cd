//! Inbound group envelopes and invitations.
//!
//! ```text
//!  recipient_id = a known GroupAddress (or to us in a group's session: receipts)
//!     ─▶ the signing device must hold a leaf of the sender's UID ─▶ MLS process
//!     ─▶ commit applied: roster → members (added / removed events; removed: we are out)
//!     ─▶ text: stored once per (sender UID, message_id); GroupControl{leave}: admins note
//!        the removal to make
//!     ─▶ receipt: the member device's delivery rows (read k/n)
//!  Welcome from a contact ─▶ more members than us and them? ─▶ join (auto-join) or hold
//!  Welcome from a stranger naming a group ─▶ a group request (the KeyPackage is kept)
//! ```

use prost::Message as _;
use rhizo_core::{
    envelope::{DeliveryReceipt, ErrorCode, MessageType, ReceiptStatus, SecureMessage},
    group::GroupAddress,
    proto::ChatContent,
};
use rhizo_e2e::{Conversation, Processed};
use rhizo_store::{
    Reader, StoreError, Tx,
    groups::{
        DeliveryState, GroupRole, GroupRow, GroupStatus, IntentKind, NewGroup, NewGroupRequest,
    },
    messaging::{Contact, NewMessage},
};
use tracing::debug;

use super::{RosterMember, default_group_name, group_id_hex, member_rows, prune_intents, roster};
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
    if message.msg_type == MessageType::Welcome {
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
    if group.status != GroupStatus::Active {
        return Err(Reject::Code(ErrorCode::SessionClosed));
    }
    match message.msg_type {
        MessageType::Application | MessageType::Commit => group_mls(tx, parts, group, message, now),
        MessageType::DeliveryReceipt | MessageType::ReadReceipt => {
            group_receipt(tx, parts.0, group, message, now)
        }
        _ => Err(Reject::Code(ErrorCode::Malformed)),
    }
}

/// An application message or commit of a group.
fn group_mls(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, _): Parts<'_>,
    group: &GroupRow,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let mls = tx.mls().map_err(Reject::internal)?;
    let mut conversation = conversations
        .load(&mls, &group.group_id)
        .map_err(Reject::internal)?
        .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
    let before = roster(&conversation);
    // The signing device must hold a leaf of the UID the envelope names.
    let sender_uid = *message.sender_id.as_bytes();
    let device = *message.sender_device.as_bytes();
    if !before
        .iter()
        .any(|m| m.uid == sender_uid && m.devices.contains(&device))
    {
        return Err(Reject::Code(ErrorCode::UnknownSender));
    }
    let processed = conversation
        .process(&mls, mls_device, &message.payload, crate::secs(now))
        .map_err(|e| {
            debug!(error = %e, "a group message could not be processed");
            Reject::Code(ErrorCode::DecryptionFailed)
        })?;
    let mut events = Vec::new();
    let mut applied = false;
    for p in processed {
        match p {
            // Retried by the sender once the commit that opens that epoch is applied here.
            Processed::Deferred => return Err(Reject::Code(ErrorCode::SequenceError)),
            Processed::CommitRejected { .. } => {
                return Err(Reject::Code(ErrorCode::SessionExpired));
            }
            Processed::CommitApplied { .. } => applied = true,
            Processed::Application { plaintext, sender } => {
                if sender.device() != message.sender_device {
                    return Err(Reject::Code(ErrorCode::UnknownSender));
                }
                events.extend(group_content(tx, me, group, message, &plaintext, now)?);
            }
        }
    }
    if applied {
        events.extend(after_commit(tx, me, group, &conversation, &before, now)?);
    }
    conversations.stage(conversation);
    Ok(events)
}

/// After a commit: the members follow the roster (events for who came and went); a roster
/// without this device means an admin removed us.
fn after_commit(
    tx: &mut Tx<'_>,
    me: &Me,
    group: &GroupRow,
    conversation: &Conversation,
    before: &[RosterMember],
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let after = roster(conversation);
    let id = group_id_hex(&group.session_id);
    let mine = *me.device.public().as_bytes();
    if !after.iter().any(|m| m.devices.contains(&mine)) {
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
    }
    let stored = tx.group_members(&group.session_id)?;
    let changed = tx
        .set_group_members(&group.session_id, &member_rows(&after, &stored, &[], now))
        .map_err(Reject::from)?;
    prune_intents(tx, &group.session_id, conversation.epoch()).map_err(Reject::internal)?;
    let _ = before;
    let mut events: Vec<Event> = changed
        .added
        .iter()
        .map(|uid| Event::GroupMemberAdded {
            group: id.clone(),
            uid: hex::encode(uid),
        })
        .collect();
    events.extend(changed.removed.iter().map(|uid| Event::GroupMemberRemoved {
        group: id.clone(),
        uid: hex::encode(uid),
    }));
    Ok(events)
}

/// A decrypted group message: a text stored once per (sender UID, message id), or a leave.
fn group_content(
    tx: &mut Tx<'_>,
    me: &Me,
    group: &GroupRow,
    message: &SecureMessage,
    plaintext: &[u8],
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let content = ChatContent::decode(plaintext).map_err(|_| Reject::Code(ErrorCode::Malformed))?;
    let sender_uid = *message.sender_id.as_bytes();
    if content.group_control.is_some_and(|c| c.leave) {
        // An admin removes the leaver's leaves (the commit is made by the admin's node; the
        // intent keeps it until done).
        if group.my_role == GroupRole::Admin && sender_uid != *me.uid.as_bytes() {
            match tx.add_group_intent(&group.session_id, IntentKind::Remove, &sender_uid, now) {
                Ok(_) | Err(StoreError::LimitReached { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(Vec::new());
    }
    if content.agent.is_some() || content.text.is_empty() {
        return Ok(Vec::new());
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
            kind: "text",
            body: Some(&content.text),
            sent_at,
        },
        &message.digest(),
        &sender_uid,
        message_id.as_ref(),
        now,
    )?;
    Ok(id
        .map(|id| Event::GroupMessageReceived {
            id,
            group: group_id_hex(&group.session_id),
            from: hex::encode(sender_uid),
            text: content.text,
            sent_at,
        })
        .into_iter()
        .collect())
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
            let row_state = tx.message(id)?.map(|m| m.state);
            events.push(Event::GroupMessageState {
                id,
                group: group_id_hex(&group.session_id),
                state: row_state.unwrap_or(rhizo_store::messaging::MessageState::Sent),
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
    /// A 1:1 conversation's (only us and the contact in it): joined, for the caller to check
    /// and persist as before.
    Direct(Box<Conversation>),
    /// A group's: joined (auto-join) or held as a group request; the events.
    Group(Vec<Event>),
}

/// Why a join in a savepoint was undone.
enum Undo {
    Reject(Reject),
    /// A group invitation to hold instead (auto-join is off): how many member UIDs.
    Hold(u32),
}

/// A Welcome from a contact: joined; a group's (members beyond us and the contact) becomes a
/// group when auto-join is on, a held group request (the join undone, the KeyPackage kept)
/// when it is off.
pub(crate) fn contact_welcome(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations, _): Parts<'_>,
    contact: &Contact,
    message: &SecureMessage,
    now: i64,
) -> Result<WelcomeKind, Reject> {
    let auto_join = tx.get_meta(super::META_GROUPS_AUTO_JOIN)?.as_deref() != Some("0");
    let joined = tx.in_savepoint(|tx| -> Result<_, Undo> {
        let mls = tx.mls().map_err(|e| Undo::Reject(Reject::internal(e)))?;
        let conversation = Conversation::join(&mls, mls_device, &message.payload, crate::secs(now))
            .map_err(|e| {
                debug!(error = %e, "a Welcome could not be joined");
                Undo::Reject(Reject::Code(ErrorCode::DecryptionFailed))
            })?;
        let members = roster(&conversation);
        if members
            .iter()
            .all(|m| m.uid == *me.uid.as_bytes() || m.uid == contact.uid)
        {
            return Ok((conversation, None));
        }
        if !auto_join {
            return Err(Undo::Hold(u32::try_from(members.len()).unwrap_or(u32::MAX)));
        }
        Ok((conversation, Some(members)))
    })?;
    match joined {
        Ok((conversation, None)) => Ok(WelcomeKind::Direct(Box::new(conversation))),
        Ok((conversation, Some(members))) => {
            let events = persist_join(
                tx,
                conversations,
                conversation,
                &members,
                message,
                true,
                now,
            )?;
            Ok(WelcomeKind::Group(events))
        }
        Err(Undo::Reject(r)) => Err(r),
        Err(Undo::Hold(members)) => Ok(WelcomeKind::Group(
            hold(tx, message, members, now)?.1.into_iter().collect(),
        )),
    }
}

/// A Welcome from someone who is not a contact: `Some` (held as a group request) when it is
/// a group's (more member UIDs than us and the sender), `None` when it is a 1:1 conversation's
/// (the caller holds it as a message request). The join made to look is undone.
pub(crate) fn stranger_welcome(
    tx: &mut Tx<'_>,
    me: &Me,
    mls_device: &rhizo_e2e::Device,
    message: &SecureMessage,
    now: i64,
) -> Result<Option<(ReceiptStatus, Option<Event>)>, StoreError> {
    if message.msg_type != MessageType::Welcome {
        return Ok(None);
    }
    let looked = tx.in_savepoint(|tx| -> Result<(), Option<u32>> {
        let mls = tx.mls().map_err(|_| None)?;
        let conversation = Conversation::join(&mls, mls_device, &message.payload, crate::secs(now))
            .map_err(|_| None)?;
        let members = roster(&conversation);
        let sender = *message.sender_id.as_bytes();
        if members
            .iter()
            .all(|m| m.uid == *me.uid.as_bytes() || m.uid == sender)
        {
            return Err(None);
        }
        Err(Some(u32::try_from(members.len()).unwrap_or(u32::MAX)))
    })?;
    match looked {
        Err(Some(members)) => match hold(tx, message, members, now) {
            Ok(held) => Ok(Some(held)),
            Err(Reject::Store(e)) => Err(e),
            Err(Reject::Code(code)) => Ok(Some((ReceiptStatus::Rejected(code), None))),
        },
        _ => Ok(None),
    }
}

/// Holds a group invitation; the status to answer and the event for a new one.
fn hold(
    tx: &mut Tx<'_>,
    message: &SecureMessage,
    members: u32,
    now: i64,
) -> Result<(ReceiptStatus, Option<Event>), Reject> {
    let session_id = *message.session_id.as_bytes();
    let name = default_group_name(&session_id);
    let held = tx.hold_group_request(
        &NewGroupRequest {
            session_id,
            inviter_uid: *message.sender_id.as_bytes(),
            name: &name,
            members,
            envelope: &message.encode(),
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

/// Persists a joined group: its row (we are a member, the inviter an admin), its members, a
/// fresh KeyPackage bundle to publish (a one-time one was used).
fn persist_join(
    tx: &mut Tx<'_>,
    conversations: &crate::ConversationCache,
    conversation: Conversation,
    members: &[RosterMember],
    message: &SecureMessage,
    auto_join: bool,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let session_id = *message.session_id.as_bytes();
    let inviter = *message.sender_id.as_bytes();
    let name = default_group_name(&session_id);
    let inserted = tx.insert_group(
        &NewGroup {
            session_id,
            group_id: conversation.id(),
            address: *GroupAddress::from_group_id(conversation.id()).as_bytes(),
            name: &name,
            my_role: GroupRole::Member,
            invited_by: Some(inviter),
            auto_join,
        },
        now,
    );
    match inserted {
        Ok(()) => {}
        Err(StoreError::LimitReached { .. }) => return Err(Reject::Code(ErrorCode::QuotaExceeded)),
        Err(e) => return Err(e.into()),
    }
    tx.set_group_members(&session_id, &member_rows(members, &[], &[inviter], now))?;
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
            let mls = tx.mls()?;
            let conversation =
                Conversation::join(&mls, &self.mls_device, &message.payload, crate::secs(now))?;
            let members = roster(&conversation);
            let events = persist_join(
                tx,
                &self.conversations,
                conversation,
                &members,
                &message,
                false,
                now,
            )
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
