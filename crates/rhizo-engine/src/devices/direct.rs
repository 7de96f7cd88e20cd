//! Our own devices in 1:1 conversations (issue 15). A newly linked device is added to every
//! open 1:1 conversation, and a revoked one removed from every one it has a leaf in, each with
//! a commit that stays pending until the contact's device acknowledges it (like a self-update,
//! [`crate::commits`]). Once the contact applied a remove, what it sends is in an epoch the
//! revoked device has no keys for.
//!
//! ```text
//!  add_own_device_to_conversations(device, its KeyPackage) ─▶ per open 1:1 conversation:
//!     Add commit ─▶ 1:1 outbox (the contact's devices; the contact fetches our newest device
//!        list first when it does not know the device: SEQUENCE_ERROR, the outbox retries)
//!     Welcome + the contact ─▶ ConversationJoin in the sync group (only the new device uses it)
//!  new device: ConversationJoin ─▶ contact added ─▶ join under the conversation's session id,
//!     members checked as for any 1:1 conversation (apply_conversation_join)
//! ```

use rhizo_core::{
    DevicePublicKey,
    proto::{ConversationJoin, SyncMessage},
};
use rhizo_e2e::{Conversation, Device};
use rhizo_store::{Tx, messaging::ConversationRow};
use tracing::debug;

use crate::{
    Engine, EngineError, Me,
    cache::ConversationCache,
    conversations::{Outgoing, check_membership, queue_sealed_tx},
    inbound::Reject,
    publish::META_KEY_PACKAGE_BUNDLE,
};

use super::pending::PendingAdd;

/// Largest Welcome a [`ConversationJoin`] carries (bytes).
pub(crate) const MAX_JOIN_WELCOME_BYTES: usize = 64 * 1024;

impl Engine {
    /// Adds our newly linked `device` (its KeyPackage `key_package`, from the DHT; the
    /// last-resort one may be used for every conversation) to every open 1:1 conversation it is
    /// not in yet: a pending Add commit to the contact each, and the Welcome with the contact
    /// to the device over our sync group. How many were sent now. Nothing without a sync group
    /// (the device joins it first). A conversation whose own commit is still pending gets it
    /// once that commit resolved, and a refused add is tried again ([`super::pending`]).
    ///
    /// # Errors
    ///
    /// [`EngineError::Internal`] for a KeyPackage that is not `device`'s under our root or a
    /// device our list does not name; the database or MLS.
    pub fn add_own_device_to_conversations(
        &self,
        tx: &mut Tx<'_>,
        device: &DevicePublicKey,
        key_package: &[u8],
        now: i64,
    ) -> Result<usize, EngineError> {
        let certificate = rhizo_e2e::inspect_key_package(key_package)?.certificate;
        let listed = super::listed_devices_of(tx, &self.me, self.me.uid.as_bytes())?;
        if certificate.root() != self.me.root_public
            || certificate.device() != *device
            || *device == self.me.device.public()
            || !listed.contains(device)
        {
            return Err(EngineError::Internal(
                "not a KeyPackage of our listed device",
            ));
        }
        if self.sync_group(tx)?.is_none() {
            return Ok(0);
        }
        self.in_job(tx, |tx| {
            let mut added = 0;
            for contact in tx.list_contacts()? {
                let Some(row) = tx.open_conversation_with(&contact.uid)? else {
                    continue;
                };
                let (commit, attempts) =
                    match self.add_to_conversation(tx, &contact, &row, device, key_package, now)? {
                        Added::Sent(commit) => (Some(commit), 1),
                        // Sent once the pending commit resolved (`retry_device_adds`).
                        Added::Waiting => (None, 0),
                        Added::Member | Added::Failed => continue,
                    };
                added += usize::from(commit.is_some());
                let add = PendingAdd {
                    device: *device.as_bytes(),
                    contact: contact.uid,
                    commit,
                    attempts,
                    due_at: now,
                };
                super::pending::record(tx, add, key_package)?;
                self.device_adds.set();
            }
            Ok(added)
        })
    }

    /// [`Self::add_own_device_to_conversations`] for one conversation.
    pub(super) fn add_to_conversation(
        &self,
        tx: &mut Tx<'_>,
        contact: &rhizo_store::messaging::Contact,
        row: &ConversationRow,
        device: &DevicePublicKey,
        key_package: &[u8],
        now: i64,
    ) -> Result<Added, EngineError> {
        let mls = tx.mls()?;
        let Some(mut conversation) = self.conversations.load(&mls, &row.group_id)? else {
            return Ok(Added::Failed);
        };
        if conversation.members().iter().any(|c| c.device() == *device) {
            self.conversations.stage(conversation);
            return Ok(Added::Member);
        }
        if conversation.has_pending_commit() {
            self.conversations.stage(conversation);
            debug!("a 1:1 conversation gets our new device once its pending commit resolved");
            return Ok(Added::Waiting);
        }
        let (commit, welcome) = match conversation.add_devices(
            &mls,
            &self.mls_device,
            &[key_package.to_vec()],
            crate::secs(now),
        ) {
            Ok(done) => done,
            Err(e) => {
                // Dropped from the cache: the next use loads the database's state.
                debug!(error = %e, "our new device is not added to a 1:1 conversation");
                return Ok(Added::Failed);
            }
        };
        let commit_id = rhizo_e2e::commit_id(&commit);
        queue_sealed_tx(
            tx,
            self,
            contact,
            &row.session_id,
            Outgoing::commit(commit),
            now,
        )?;
        self.conversations.stage(conversation);
        let join = ConversationJoin {
            to_device: device.as_bytes().to_vec().into(),
            session_id: row.session_id.to_vec().into(),
            contact: Some(crate::sync::contact_sync(contact)),
            welcome: welcome.into(),
        };
        let sync = SyncMessage {
            conversation: Some(join),
            ..SyncMessage::default()
        };
        crate::sync::queue_if_synced(tx, self, sync, now)?;
        Ok(Added::Sent(commit_id))
    }
}

/// What adding our new device to one 1:1 conversation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Added {
    /// The Add commit was queued (its commit id) and the Welcome sent to the device.
    Sent([u8; 32]),
    /// Our own commit there is pending: the add waits for it to resolve.
    Waiting,
    /// The device is in it already.
    Member,
    /// It cannot be added (no MLS state, or MLS refused the KeyPackage): logged.
    Failed,
}

impl Engine {
    /// Removes our revoked `device` from every open 1:1 conversation it has a leaf in (one
    /// pending remove commit each, queued to the contact); how many. A conversation whose own
    /// commit is still pending is skipped (logged).
    ///
    /// # Errors
    ///
    /// The database or MLS.
    pub fn remove_own_device_from_conversations(
        &self,
        tx: &mut Tx<'_>,
        device: &DevicePublicKey,
        now: i64,
    ) -> Result<usize, EngineError> {
        self.in_job(tx, |tx| {
            let mut removed = 0;
            for contact in tx.list_contacts()? {
                let Some(row) = tx.open_conversation_with(&contact.uid)? else {
                    continue;
                };
                let mls = tx.mls().map_err(EngineError::Mls)?;
                let Some(mut conversation) = self
                    .conversations
                    .load(&mls, &row.group_id)
                    .map_err(EngineError::Mls)?
                else {
                    continue;
                };
                if !conversation.members().iter().any(|c| c.device() == *device) {
                    self.conversations.stage(conversation);
                    continue;
                }
                let commit = match conversation.remove_device(
                    &mls,
                    &self.mls_device,
                    device,
                    crate::secs(now),
                ) {
                    Ok(commit) => commit,
                    Err(e) => {
                        // Dropped from the cache: the next use loads the database's state.
                        debug!(error = %e, "a revoked device stays in a 1:1 conversation for now");
                        continue;
                    }
                };
                let out = Outgoing::commit(commit);
                queue_sealed_tx(tx, self, &contact, &row.session_id, out, now)?;
                self.conversations.stage(conversation);
                removed += 1;
            }
            Ok(removed)
        })
    }
}

/// A [`ConversationJoin`] from our own device in the sync group: for this device, the contact
/// is added and the conversation joined under its session id, its members checked as for any
/// 1:1 conversation (our listed devices and the contact's). One that cannot be joined is
/// dropped (logged): the sync message itself is still taken.
pub(crate) fn apply_conversation_join(
    tx: &mut Tx<'_>,
    (me, mls_device, conversations): (&Me, &Device, &ConversationCache),
    join: ConversationJoin,
    now: i64,
) -> Result<(), Reject> {
    if join.to_device.as_ref() != me.device.public().as_bytes() {
        return Ok(());
    }
    let (Ok(session_id), Some(contact)) =
        (<[u8; 16]>::try_from(join.session_id.as_ref()), join.contact)
    else {
        debug!("a conversation join without a session or contact ignored");
        return Ok(());
    };
    if join.welcome.is_empty() {
        return drop_withdrawn(tx, conversations, &session_id, now);
    }
    // Known: joined already, or withdrawn (closed) and joined anew from this Welcome.
    let closed = tx.conversation_closed(&session_id)?;
    if join.welcome.len() > MAX_JOIN_WELCOME_BYTES || closed == Some(false) {
        return Ok(());
    }
    let uid = <[u8; 32]>::try_from(contact.uid.as_ref()).unwrap_or_default();
    crate::sync::apply_contact(tx, contact, now)?;
    let Some(contact) = tx.contact_by_uid(&uid)? else {
        return Ok(());
    };
    let joined = tx.in_savepoint(|tx| -> Result<Conversation, Reject> {
        let mls = tx.mls().map_err(Reject::internal)?;
        let conversation = Conversation::join(&mls, mls_device, &join.welcome, crate::secs(now))
            .map_err(Reject::internal)?;
        check_membership(tx, &conversation, me, &contact)?;
        if closed.is_some() {
            tx.reopen_conversation(&session_id, conversation.id())?;
        } else {
            tx.insert_conversation(&ConversationRow {
                session_id,
                group_id: conversation.id().to_vec(),
                contact_uid: contact.uid,
                created_at: now,
            })?;
        }
        // A one-time KeyPackage may have been used: publish a fresh bundle.
        tx.set_meta(META_KEY_PACKAGE_BUNDLE, "")?;
        Ok(conversation)
    })?;
    match joined {
        Ok(conversation) => conversations.stage(conversation),
        Err(Reject::Code(code)) => debug!(
            ?code,
            "a 1:1 conversation our device added us to was refused"
        ),
        Err(Reject::Store(e)) => {
            debug!(error = %e, "a 1:1 conversation our device added us to was not joined")
        }
    }
    Ok(())
}

/// What a device's queued texts in a withdrawn conversation fail with.
pub(crate) const WITHDRAWN: &str =
    "the contact did not take this device into the conversation; send again to start a new one";

/// A [`ConversationJoin`] without a Welcome: our device that added us withdrew it (the contact
/// never applied the add). Our copy is closed (its queued texts fail, its history stays) and
/// its MLS state dropped, so a later Welcome for the same conversation joins it anew.
fn drop_withdrawn(
    tx: &mut Tx<'_>,
    conversations: &ConversationCache,
    session_id: &[u8; 16],
    now: i64,
) -> Result<(), Reject> {
    let Some(row) = tx.conversation(session_id)? else {
        return Ok(());
    };
    let dropped = tx.in_savepoint(|tx| -> Result<bool, Reject> {
        if tx.close_conversation(session_id, WITHDRAWN, now)?.is_none() {
            return Ok(false);
        }
        let mls = tx.mls().map_err(Reject::internal)?;
        drop(conversations.take(&row.group_id));
        if let Some(conversation) =
            Conversation::load(&mls, &row.group_id).map_err(Reject::internal)?
        {
            conversation.delete(&mls).map_err(Reject::internal)?;
        }
        Ok(true)
    })?;
    match dropped {
        Ok(true) => debug!("a 1:1 conversation our device withdrew was dropped"),
        Ok(false) => {}
        Err(Reject::Code(code)) => debug!(?code, "a withdrawn conversation was not dropped"),
        Err(Reject::Store(e)) => debug!(error = %e, "a withdrawn conversation was not dropped"),
    }
    Ok(())
}
