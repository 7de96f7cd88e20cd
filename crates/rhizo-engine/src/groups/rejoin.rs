//! Recovery by re-add: a member whose group state forked beyond the rollback window (or is
//! lost) forgets it and sends a `GroupRejoin` (its group id and a fresh KeyPackage) to every
//! admin; an admin whose roster has that member commits the removal of the device's old leaf
//! plus the add of the new KeyPackage (`readd`), and sends the Welcome to that device.
//!
//! ```text
//!  member: request_group_rejoin ─▶ MLS state deleted ─▶ KEY_PACKAGE envelope to each admin
//!  admin: on_rejoin ─▶ sender a roster member? once per (group, UID) per 60 s ─▶ readd
//!     ─▶ commit to everyone, Welcome to the device ─▶ the member joins again
//! ```

use rhizo_core::{
    envelope::{ErrorCode, MessageType, SecureMessage},
    group::{GROUP_REJOIN_INTERVAL_SECS, GroupRejoin},
};
use rhizo_e2e::{E2eError, MemberRef};
use rhizo_store::{
    Tx,
    groups::{GroupRow, IntentKind, MemberDevice},
};
use tracing::debug;

use super::{
    GroupEnvelope, RosterMember, Signer, active_group, admin::send_commit, queue_group_envelope,
    roster,
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
        // Sent to every admin; the others re-add.
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

impl Engine {
    /// Recovery: forgets this device's MLS state of the group (forked beyond the rollback
    /// window, or broken) and asks every admin to re-add it with `key_package` (a fresh
    /// KeyPackage of this device, from the driver). The admins' Welcome then joins the group
    /// again. How many admins it was sent to.
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
            let members: Vec<RosterMember> = roster(&conversation)?;
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
            conversation.delete(&tx.mls()?)?;
            let mut sent = 0;
            for admin in members
                .iter()
                .filter(|m| m.role == rhizo_store::groups::GroupRole::Admin)
                .filter(|m| m.uid != *self.me.uid.as_bytes())
            {
                let devices: Vec<MemberDevice> =
                    admin.devices.iter().map(|d| (*d, admin.uid)).collect();
                let out = GroupEnvelope {
                    msg_type: MessageType::KeyPackage,
                    kind: "rejoin",
                    body: None,
                    payload: payload.clone(),
                    recipient: Some(admin.uid),
                    message_id: None,
                    epoch: None,
                };
                queue_group_envelope(tx, self.signer(), &group, out, &devices, now)?;
                sent += 1;
            }
            Ok(sent)
        })
    }
}
