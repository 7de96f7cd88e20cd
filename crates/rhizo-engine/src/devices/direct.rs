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

/// Largest Welcome a [`ConversationJoin`] carries (bytes).
pub(crate) const MAX_JOIN_WELCOME_BYTES: usize = 64 * 1024;

impl Engine {
    /// Adds our newly linked `device` (its KeyPackage `key_package`, from the DHT; the
    /// last-resort one may be used for every conversation) to every open 1:1 conversation it is
    /// not in yet: a pending Add commit to the contact each, and the Welcome with the contact
    /// to the device over our sync group. How many. Nothing without a sync group (the device
    /// joins it first). A conversation whose own commit is still pending is skipped (logged).
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
                if self.add_to_conversation(tx, &contact, &row, device, key_package, now)? {
                    added += 1;
                }
            }
            Ok(added)
        })
    }

    /// [`Self::add_own_device_to_conversations`] for one conversation; whether it was added.
    fn add_to_conversation(
        &self,
        tx: &mut Tx<'_>,
        contact: &rhizo_store::messaging::Contact,
        row: &ConversationRow,
        device: &DevicePublicKey,
        key_package: &[u8],
        now: i64,
    ) -> Result<bool, EngineError> {
        let mls = tx.mls()?;
        let Some(mut conversation) = self.conversations.load(&mls, &row.group_id)? else {
            return Ok(false);
        };
        if conversation.members().iter().any(|c| c.device() == *device) {
            self.conversations.stage(conversation);
            return Ok(false);
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
                debug!(error = %e, "our new device is not added to a 1:1 conversation for now");
                return Ok(false);
            }
        };
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
        Ok(true)
    }
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
    if join.welcome.len() > MAX_JOIN_WELCOME_BYTES || tx.conversation(&session_id)?.is_some() {
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
        tx.insert_conversation(&ConversationRow {
            session_id,
            group_id: conversation.id().to_vec(),
            contact_uid: contact.uid,
            created_at: now,
        })?;
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
