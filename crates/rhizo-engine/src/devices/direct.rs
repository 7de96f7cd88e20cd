//! Our own devices in 1:1 conversations (issue 15): a revoked device is removed from every
//! open 1:1 conversation it has a leaf in, with a commit that stays pending until the contact's
//! device acknowledges it (like a self-update, [`crate::commits`]). Once the contact applied
//! it, what it sends is in an epoch the revoked device has no keys for.

use rhizo_core::{DevicePublicKey, envelope::MessageType};
use rhizo_store::Tx;
use tracing::debug;

use crate::{
    Engine, EngineError,
    conversations::{Outgoing, queue_sealed_tx},
};

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
                let out = Outgoing {
                    msg_type: MessageType::Commit,
                    kind: "commit",
                    body: None,
                    payload: commit,
                };
                queue_sealed_tx(tx, self, &contact, &row.session_id, out, now)?;
                self.conversations.stage(conversation);
                removed += 1;
            }
            Ok(removed)
        })
    }
}
