//! Private groups (issue 14): one MLS group per group conversation, one leaf per member device,
//! every group envelope addressed to the group's [`GroupAddress`].
//!
//! ```text
//!  request_group_rejoin ─▶ GroupRejoin (KEY_PACKAGE envelope) to each admin ─▶ readd + Welcome
//!  create_group(key packages) ─▶ MLS group ─▶ groups row, members (UIDs from the roster)
//!     ─▶ a Welcome per other member UID (addressed to that UID, in the group's session)
//!  queue_group_text ─▶ self-update per RekeyPolicy (merged at once) ─▶ ONE envelope to the
//!     GroupAddress (ChatContent.message_id) ─▶ a delivery row per other member device
//!  poll_group_transmits ─▶ GroupTransmit: the frame + every member device still pending
//!  on_group_transmit_result ─▶ per-device outcomes ─▶ `delivered k/n`; members none of whose
//!     devices answered ─▶ the driver stores the same bytes in each one's mailbox
//!  handle_frame: recipient = a known GroupAddress ─▶ the sender must hold a leaf of its UID
//!     ─▶ commits (roster → members, events) / texts (once per sender UID + message_id)
//!  a Welcome naming more members than us and the inviter ─▶ join (a contact, auto-join on)
//!     or a group request (accept / decline); a Welcome in parts: each part kept in the store
//!     before it is acknowledged ([`parts`]), the whole one takes the same path
//!  a group envelope refused because our state is lost or behind for good ─▶ GroupRejoin by
//!     itself ([`rejoin`]); mailbox-fetched group envelopes ─▶ DELIVERED receipts to senders
//!  more than relay::RELAY_FANOUT other member devices ─▶ ≤ K relays, each with the subtree it
//!     forwards to; the sender sends directly to what a relay did not take ([`relay`])
//!  add_own_device_to_group (any member, issue 15) ─▶ Add of our own device listed in our
//!     device list ─▶ commit to the members, Welcome to that device; a receiver refusing it as
//!     DeviceNotListed gives the conversation the committer's list (contacts) and tries again
//!  run_self_updates (driver timer) ─▶ a group we joined whose leaf never committed ─▶ ONE
//!     self-update commit a random while later: it fills our path ([`selfupdate`])
//! ```
//!
//! Roles and the profile live in the group's MLS GroupContext extension (rhizo-e2e enforces the
//! role rule on every commit, ours included); the store keeps a copy for listing. Our own
//! commits apply at once; when a smaller commit wins the epoch, rhizo-e2e rolls back and the
//! engine encrypts our messages of the dropped epochs again and re-proposes our changes
//! ([`admin`]).

mod admin;
pub(crate) mod fanout;
mod inbound;
mod parts;
mod rejoin;
pub mod relay;
pub mod selfupdate;

pub(crate) use fanout::member_target;
pub use fanout::{GroupTarget, GroupTransmit, GroupTransmitResult};
pub(crate) use inbound::{
    WelcomeIn, WelcomeKind, apply_group, contact_welcome, group_of, persist_join, stranger_welcome,
};
pub(crate) use parts::keep_part;
pub(crate) use rejoin::after_refusal;
pub use rejoin::{REJOIN_AFTER_BEHIND_MS, REJOIN_GRACE_MS, REJOIN_RETRY_MS};
pub use selfupdate::SelfUpdateRun;

use prost::Message as _;
use rhizo_core::{
    Uid,
    envelope::MessageType,
    group::{GroupAddress, GroupProfile, GroupState, ROLLBACK_EPOCHS},
    proto::{ChatContent, GroupControl},
};
use rhizo_e2e::{CommitRejectReason, Conversation, Device, E2eError};
use rhizo_store::{
    Reader, Tx,
    groups::{
        GroupMember, GroupRole, GroupRow, GroupSend, GroupStatus, MAX_GROUP_MEMBERS, MemberDevice,
        NewGroup,
    },
    messaging::{MessageRow, NewMessage},
};

use crate::{Engine, EngineError, Me, conversations::seal_to, rng::EngineRng, secs};

/// Meta key: whether an invitation from a contact joins at once (`1`, the default) or is held
/// as a group request like a stranger's (`0`).
pub const META_GROUPS_AUTO_JOIN: &str = "groups.auto_join";

/// One member UID of a group's MLS roster, with its devices (one leaf each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterMember {
    /// The member's UID.
    pub uid: [u8; 32],
    /// Its root public key.
    pub root_pk: [u8; 32],
    /// Its role (the group's extension).
    pub role: GroupRole,
    /// Its devices in the group.
    pub devices: Vec<[u8; 32]>,
}

/// What [`Engine::group_info`] shows.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    /// The group.
    pub group: GroupRow,
    /// Its members with their role and devices (from the MLS roster).
    pub members: Vec<GroupMemberInfo>,
    /// The MLS epoch.
    pub epoch: u64,
    /// The safety fingerprint: hex of the epoch authenticator's first 16 bytes (the same on
    /// every member in the same state).
    pub fingerprint: String,
    /// The profile (name, description, avatar) from the group's MLS extension.
    pub profile: GroupProfile,
    /// Whether we are waiting to be re-added ([`EngineError::Rejoining`]): the members are
    /// then the stored ones (no devices), the epoch the one we were stuck at, the fingerprint
    /// empty and the profile the stored name.
    pub rejoining: bool,
}

/// One member, as [`GroupInfo`] lists it.
#[derive(Debug, Clone)]
pub struct GroupMemberInfo {
    /// The member's UID.
    pub uid: [u8; 32],
    /// Its role.
    pub role: GroupRole,
    /// Its devices in the group.
    pub devices: Vec<[u8; 32]>,
}

/// A group message queued by [`Engine::queue_group_text`].
#[derive(Debug, Clone)]
pub struct GroupQueued {
    /// Its row.
    pub row: MessageRow,
    /// The member devices it goes to (the `n` of `delivered k/n`).
    pub total: u32,
}

/// The group's id as the API shows it: hex of its session id.
pub fn group_id_hex(session_id: &[u8; 16]) -> String {
    hex::encode(session_id)
}

/// The roster of a group's MLS state, by UID (ascending): role (from the group's extension)
/// and devices.
pub(crate) fn roster(conversation: &Conversation) -> Result<Vec<RosterMember>, E2eError> {
    Ok(conversation
        .roster()?
        .into_iter()
        .map(|entry| RosterMember {
            uid: *entry.uid.as_bytes(),
            root_pk: entry
                .devices
                .first()
                .map(|c| *c.root().as_bytes())
                .unwrap_or_default(),
            role: store_role(entry.role),
            devices: entry
                .devices
                .iter()
                .map(|c| *c.device().as_bytes())
                .collect(),
        })
        .collect())
}

/// rhizo-core's role as the store keeps it.
pub(crate) fn store_role(role: rhizo_core::group::GroupRole) -> GroupRole {
    match role {
        rhizo_core::group::GroupRole::Admin => GroupRole::Admin,
        _ => GroupRole::Member,
    }
}

/// Every member device but this one, with its owner's UID.
pub(crate) fn other_devices(roster: &[RosterMember], me: &Me) -> Vec<MemberDevice> {
    let mine = *me.device.public().as_bytes();
    roster
        .iter()
        .flat_map(|m| m.devices.iter().map(|d| (*d, m.uid)))
        .filter(|(d, _)| *d != mine)
        .collect()
}

/// The member rows for `roster` (roles from the group's extension); a UID already stored
/// keeps its `added_at`.
pub(crate) fn member_rows(
    roster: &[RosterMember],
    stored: &[GroupMember],
    now: i64,
) -> Vec<GroupMember> {
    roster
        .iter()
        .map(|m| GroupMember {
            uid: m.uid,
            root_pk: m.root_pk,
            role: m.role,
            added_at: stored
                .iter()
                .find(|s| s.uid == m.uid)
                .map_or(now, |s| s.added_at),
        })
        .collect()
}

/// Who makes and seals our group envelopes: our identity, our MLS device and the engine's
/// generator (the envelope nonces), for the group paths that run without the [`Engine`]
/// (inbound commits, the ordering driver).
#[derive(Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub(crate) me: &'a Me,
    pub(crate) device: &'a Device,
    pub(crate) rng: &'a EngineRng,
}

/// An envelope to queue in a group.
pub(crate) struct GroupEnvelope<'a> {
    pub(crate) msg_type: MessageType,
    pub(crate) kind: &'a str,
    pub(crate) body: Option<&'a str>,
    pub(crate) payload: Vec<u8>,
    /// One member's UID (a Welcome, a receipt) or None: the group address.
    pub(crate) recipient: Option<[u8; 32]>,
    pub(crate) message_id: Option<[u8; 16]>,
    /// The MLS epoch it was encrypted in (application messages and commits).
    pub(crate) epoch: Option<u64>,
}

impl GroupEnvelope<'_> {
    /// A commit to the group, made in `epoch`.
    pub(crate) fn commit(payload: Vec<u8>, epoch: u64) -> Self {
        Self {
            msg_type: MessageType::Commit,
            kind: "commit",
            body: None,
            payload,
            recipient: None,
            message_id: None,
            epoch: Some(epoch),
        }
    }
}

/// Inside a transaction: takes the group conversation's next sequence number, seals `out`
/// (to the group address, or to one member) and queues it with a delivery row per device of
/// `devices`; its row id.
pub(crate) fn queue_group_envelope(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    out: GroupEnvelope<'_>,
    devices: &[MemberDevice],
    now: i64,
) -> Result<i64, EngineError> {
    let session_id = group.session_id;
    let seq = tx.take_next_seq(&session_id)?;
    let recipient = Uid::from_bytes(out.recipient.as_ref().unwrap_or(&group.address));
    let me = signer.me;
    let envelope = seal_to(
        me,
        signer.rng,
        recipient,
        &session_id,
        seq,
        out.msg_type,
        out.payload,
        now,
    )?;
    let send = GroupSend {
        recipient_uid: out.recipient,
        sender_uid: *me.uid.as_bytes(),
        message_id: out.message_id,
        devices,
        epoch: out.epoch,
    };
    let message = NewMessage {
        session_id,
        sender_device: *me.device.public().as_bytes(),
        seq,
        kind: out.kind,
        body: out.body,
        sent_at: now,
    };
    Ok(tx.insert_group_outgoing(&message, &envelope, &send, now)?)
}

/// Inside a transaction: signs a receipt (`msg_type` DELIVERY or READ) with `entries` and
/// queues it in the group's session to one member device `to` (addressed to its owner's UID,
/// as every group receipt).
pub(crate) fn queue_group_receipt(
    tx: &mut Tx<'_>,
    signer: Signer<'_>,
    group: &GroupRow,
    to: MemberDevice,
    entries: Vec<rhizo_core::envelope::ReceiptEntry>,
    msg_type: MessageType,
    now: i64,
) -> Result<i64, EngineError> {
    let mut receipt = rhizo_core::envelope::DeliveryReceipt {
        recipient_device: signer.me.device.public(),
        timestamp: crate::ms(now),
        entries,
        signature: [0; 64],
    };
    receipt.sign(&signer.me.device)?;
    let out = GroupEnvelope {
        msg_type,
        kind: crate::receipts::receipt_kind(msg_type),
        body: None,
        payload: receipt.encode(),
        recipient: Some(to.1),
        message_id: None,
        epoch: None,
    };
    queue_group_envelope(tx, signer, group, out, &[to], now)
}

/// The group, which must be one we are still in.
pub(crate) fn active_group(
    reader: &Reader<'_>,
    session_id: &[u8; 16],
) -> Result<GroupRow, EngineError> {
    let group = reader
        .group_by_session(session_id)?
        .ok_or(EngineError::UnknownGroup)?;
    if group.status != GroupStatus::Active {
        return Err(EngineError::NotInGroup);
    }
    Ok(group)
}

/// Forgets our intents whose commit has stayed applied for the rollback window.
pub(crate) fn prune_intents(
    tx: &mut Tx<'_>,
    session_id: &[u8; 16],
    epoch: u64,
) -> Result<(), EngineError> {
    for intent in tx.group_intents(session_id)? {
        if intent
            .epoch
            .is_some_and(|e| e.saturating_add(ROLLBACK_EPOCHS) <= epoch)
        {
            tx.delete_group_intent(intent.id)?;
        }
    }
    Ok(())
}

/// An MLS refusal of our own group change as the engine says it.
pub(crate) fn refused(e: E2eError) -> EngineError {
    match e {
        E2eError::Refused(CommitRejectReason::NotAdmin) => EngineError::NotAdmin,
        E2eError::Refused(CommitRejectReason::NoAdminLeft) => EngineError::NoAdminLeft,
        other => EngineError::Mls(other),
    }
}

impl Engine {
    /// What our group envelopes are made with: our identity, MLS device and generator.
    pub(crate) fn signer(&self) -> Signer<'_> {
        Signer {
            me: &self.me,
            device: &self.mls_device,
            rng: &self.rng,
        }
    }

    /// Runs a group operation in `tx`, with the loaded conversations it changed cached only
    /// once `tx` committed (dropped at once if it failed).
    pub(crate) fn group_job<T>(
        &self,
        tx: &mut Tx<'_>,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let out = f(tx);
        if out.is_err() {
            self.conversations.discard_staged();
        }
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        out
    }

    /// The group's loaded MLS state; [`EngineError::Rejoining`] while we wait to be re-added.
    pub(crate) fn load_group(
        &self,
        tx: &Tx<'_>,
        group: &GroupRow,
    ) -> Result<Conversation, EngineError> {
        self.try_load_group(tx, group)?
            .ok_or(EngineError::Rejoining)
    }

    /// The group's loaded MLS state, or `None` when it is gone: we asked its admins to re-add
    /// us (or lost it, and ask at the next envelope of the group that reaches us).
    pub(crate) fn try_load_group(
        &self,
        tx: &Tx<'_>,
        group: &GroupRow,
    ) -> Result<Option<Conversation>, EngineError> {
        let mls = tx.mls()?;
        Ok(self.conversations.load(&mls, &group.group_id)?)
    }

    /// Whether invitations from contacts join at once (the default) or are held as requests.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn groups_auto_join(&self, reader: &Reader<'_>) -> Result<bool, EngineError> {
        Ok(reader.get_meta(META_GROUPS_AUTO_JOIN)?.as_deref() != Some("0"))
    }

    /// Sets [`Engine::groups_auto_join`].
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn set_groups_auto_join(&self, tx: &mut Tx<'_>, on: bool) -> Result<(), EngineError> {
        Ok(tx.set_meta(META_GROUPS_AUTO_JOIN, if on { "1" } else { "0" })?)
    }

    /// Creates a group named `name` with the member devices whose KeyPackages the driver
    /// fetched (each member's listed devices, like [`Engine::send_first`]); we are its admin
    /// (the group's MLS extension says so to every member). A Welcome to each other member UID
    /// is queued in the group's outbox.
    ///
    /// # Errors
    ///
    /// [`EngineError::Group`] for a bad name, [`EngineError::TooManyMembers`], a store limit
    /// (`LimitReached`: groups per node), MLS (a bad KeyPackage, too many devices).
    pub fn create_group(
        &self,
        tx: &mut Tx<'_>,
        name: &str,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<GroupRow, EngineError> {
        self.group_job(tx, |tx| self.create_group_in(tx, name, key_packages, now))
    }

    fn create_group_in(
        &self,
        tx: &mut Tx<'_>,
        name: &str,
        key_packages: &[Vec<u8>],
        now: i64,
    ) -> Result<GroupRow, EngineError> {
        let state = GroupState::new(vec![self.me.uid], GroupProfile::named(name)?)?;
        let session_id: [u8; 16] = self.random();
        let mls = tx.mls()?;
        let (conversation, welcome) =
            Conversation::create_group(&mls, &self.mls_device, &state, key_packages, secs(now))?;
        let members = roster(&conversation)?;
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(EngineError::TooManyMembers {
                count: members.len(),
                max: MAX_GROUP_MEMBERS,
            });
        }
        tx.insert_group(
            &NewGroup {
                session_id,
                group_id: conversation.id(),
                address: *GroupAddress::from_group_id(conversation.id()).as_bytes(),
                name: &state.profile().name,
                my_role: GroupRole::Admin,
                invited_by: None,
                auto_join: false,
            },
            now,
        )?;
        tx.set_group_members(&session_id, &member_rows(&members, &[], now))?;
        let group = tx
            .group_by_session(&session_id)?
            .ok_or(EngineError::Internal("group vanished"))?;
        if let Some(welcome) = welcome {
            let epoch = conversation.epoch().saturating_sub(1);
            self.queue_welcomes(tx, &group, (&members, &[]), &welcome, epoch, now)?;
        }
        self.conversations.stage(conversation);
        Ok(group)
    }

    /// Queues the Welcome to every member of `after` not in `before` (but us); `epoch` is the
    /// one its commit was made in (a rollback past it drops the Welcome with the commit).
    pub(crate) fn queue_welcomes(
        &self,
        tx: &mut Tx<'_>,
        group: &GroupRow,
        (after, before): (&[RosterMember], &[RosterMember]),
        welcome: &[u8],
        epoch: u64,
        now: i64,
    ) -> Result<(), EngineError> {
        let me = *self.me.uid.as_bytes();
        let new = after
            .iter()
            .filter(|m| m.uid != me && !before.iter().any(|b| b.uid == m.uid));
        let payloads = welcome_payloads(welcome)?;
        for member in new {
            let devices: Vec<MemberDevice> =
                member.devices.iter().map(|d| (*d, member.uid)).collect();
            for (msg_type, payload) in &payloads {
                let out = GroupEnvelope {
                    msg_type: *msg_type,
                    kind: "welcome",
                    body: None,
                    payload: payload.clone(),
                    recipient: Some(member.uid),
                    message_id: None,
                    epoch: Some(epoch),
                };
                queue_group_envelope(tx, self.signer(), group, out, &devices, now)?;
            }
        }
        Ok(())
    }

    /// Queues one text in a group: a self-update first when the rekey rule says so (applied at
    /// once, as every group commit), then ONE envelope to the group address carrying the MLS
    /// ciphertext with a fresh `message_id`, with a delivery row per other member device.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], MLS or the database.
    pub fn queue_group_text(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        text: &str,
        now: i64,
    ) -> Result<GroupQueued, EngineError> {
        self.group_job(tx, |tx| {
            let content = ChatContent {
                text: text.to_string(),
                sent_at_ms: crate::ms(now),
                ..ChatContent::default()
            };
            let group = active_group(tx, session_id)?;
            let (id, total) =
                self.queue_group_content(tx, &group, content, "text", Some(text), now)?;
            let row = tx
                .message(id)?
                .ok_or(EngineError::Internal("message vanished"))?;
            Ok(GroupQueued { row, total })
        })
    }

    /// Leaves a group: an admin first hands its role over ([`admin::hand_over`]: drops itself
    /// from the admins and, when it was the last one, promotes the longest-standing member),
    /// then a `GroupControl{leave}` goes to the members (every admin then commits our removal),
    /// and the group is ours no more (state `left`).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], [`EngineError::NotInGroup`], MLS or the database.
    pub fn leave_group(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
        now: i64,
    ) -> Result<(), EngineError> {
        self.group_job(tx, |tx| {
            let group = active_group(tx, session_id)?;
            let mut conversation = self.load_group(tx, &group)?;
            let handed = admin::hand_over(tx, self.signer(), &group, &mut conversation, now)?;
            self.conversations.stage(conversation);
            self.queue_group_content(tx, &group, leave_content(now), "control", None, now)?;
            let role = if handed {
                GroupRole::Member
            } else {
                group.my_role
            };
            tx.update_group(session_id, &group.name, role, GroupStatus::Left, now)?;
            Ok(())
        })
    }

    /// Encrypts `content` (given a fresh message id) in the group, after a self-update when
    /// the rekey rule says so; the row id and how many member devices it goes to.
    pub(crate) fn queue_group_content(
        &self,
        tx: &mut Tx<'_>,
        group: &GroupRow,
        mut content: ChatContent,
        kind: &str,
        body: Option<&str>,
        now: i64,
    ) -> Result<(i64, u32), EngineError> {
        let mut conversation = self.load_group(tx, group)?;
        let mls = tx.mls()?;
        let unix = secs(now);
        let devices = other_devices(&roster(&conversation)?, &self.me);
        self.rekey_group_if_due(tx, group, &mut conversation, &devices, now)?;
        let message_id: [u8; 16] = self.random();
        content.message_id = message_id.to_vec().into();
        let epoch = conversation.epoch();
        let ciphertext =
            conversation.encrypt(&mls, &self.mls_device, &content.encode_to_vec(), unix)?;
        let out = GroupEnvelope {
            msg_type: MessageType::Application,
            kind,
            body,
            payload: ciphertext,
            recipient: None,
            message_id: Some(message_id),
            epoch: Some(epoch),
        };
        let id = queue_group_envelope(tx, self.signer(), group, out, &devices, now)?;
        self.conversations.stage(conversation);
        Ok((id, u32::try_from(devices.len()).unwrap_or(u32::MAX)))
    }

    /// Commits a self-update in the group (applied at once, queued to `devices`) when the rekey
    /// rule says so, or the database was restored since our last own commit in it
    /// ([`crate::restored`]: a fresh epoch before our next application message).
    pub(crate) fn rekey_group_if_due(
        &self,
        tx: &mut Tx<'_>,
        group: &GroupRow,
        conversation: &mut Conversation,
        devices: &[MemberDevice],
        now: i64,
    ) -> Result<(), EngineError> {
        let unix = secs(now);
        if conversation.rekey_due(&self.rekey, unix)
            || crate::restored::fresh_epoch_due(tx, conversation)?
        {
            let mls = tx.mls()?;
            let epoch = conversation.epoch();
            let commit = conversation.self_update(&mls, &self.mls_device, unix)?;
            let commit = GroupEnvelope::commit(commit, epoch);
            queue_group_envelope(tx, self.signer(), group, commit, devices, now)?;
        }
        Ok(())
    }

    /// A group's members (roles from its MLS extension, devices from the roster), epoch and
    /// safety fingerprint. Reads the MLS state, so it runs in a transaction.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownGroup`], MLS or the database.
    pub fn group_info(
        &self,
        tx: &mut Tx<'_>,
        session_id: &[u8; 16],
    ) -> Result<GroupInfo, EngineError> {
        self.group_job(tx, |tx| {
            let group = tx
                .group_by_session(session_id)?
                .ok_or(EngineError::UnknownGroup)?;
            let Some(conversation) = self.try_load_group(tx, &group)? else {
                return rejoin::rejoining_info(tx, group);
            };
            let members = roster(&conversation)?
                .into_iter()
                .map(|m| GroupMemberInfo {
                    role: m.role,
                    uid: m.uid,
                    devices: m.devices,
                })
                .collect();
            let epoch = conversation.epoch();
            let authenticator = conversation.epoch_authenticator();
            let fingerprint = hex::encode(&authenticator[..authenticator.len().min(16)]);
            let profile = conversation.group_state()?.profile().clone();
            self.conversations.stage(conversation);
            Ok(GroupInfo {
                group,
                members,
                epoch,
                fingerprint,
                profile,
                rejoining: false,
            })
        })
    }
}

/// A `GroupControl{leave}` message's content.
pub(crate) fn leave_content(now: i64) -> ChatContent {
    ChatContent {
        sent_at_ms: crate::ms(now),
        group_control: Some(GroupControl { leave: true }),
        ..ChatContent::default()
    }
}

#[cfg(test)]
mod inflight_tests;
#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod roles_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
pub(crate) mod tests;

/// The envelope payloads carrying `welcome`: the Welcome itself when it fits one envelope (as
/// for 1:1), else its parts (`MESSAGE_TYPE_WELCOME_PART`, see `rhizo_core::welcome`).
pub(crate) fn welcome_payloads(welcome: &[u8]) -> Result<Vec<(MessageType, Vec<u8>)>, EngineError> {
    if rhizo_core::welcome::fits_one_envelope(welcome.len()) {
        return Ok(vec![(MessageType::Welcome, welcome.to_vec())]);
    }
    let parts = rhizo_core::welcome::split_welcome(welcome)
        .map_err(|_| EngineError::Internal("a Welcome larger than MAX_WELCOME_BYTES"))?;
    Ok(parts
        .iter()
        .map(|part| (MessageType::WelcomePart, part.encode()))
        .collect())
}
