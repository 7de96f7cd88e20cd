//! Pending self-updates (MLS commits) never stay pending for good.
//!
//! A self-update is merged when the peer's signed receipt says it has the commit, on every
//! path (see `settle_commit_tx`). This sweep catches what a path missed — a row marked
//! delivered before that rule, a commit the peer refused for good — and resends one that has
//! waited too long, so a conversation always returns to a state where both sides can send
//! and rekey:
//!
//! ```text
//!  newest commit row of each open conversation, if it is the pending one:
//!    delivered / read ─▶ merge        failed ─▶ drop (the next rekey makes a new one)
//!    queued / sent / stored, older than PENDING_COMMIT_RESEND_MS ─▶ due now (resent)
//! ```

use rhizo_e2e::E2eStore;
use rhizo_store::{Store, messaging::MessageState};
use tracing::{debug, info};

use super::{MessagingError, e2e};
use crate::conv_cache::ConversationCache;

/// A pending self-update with no receipt for this long is sent again now (ms).
pub(super) const PENDING_COMMIT_RESEND_MS: i64 = 60 * 60 * 1000;
/// How often the sweep runs.
pub(super) const COMMIT_SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);
/// Conversations looked at per sweep.
const COMMIT_SWEEP_LIMIT: usize = 4096;

/// What [`settle_pending_commits`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct CommitSweep {
    /// Pending commits merged (the peer had them).
    pub(super) merged: usize,
    /// Pending commits dropped (the peer refused them for good).
    pub(super) dropped: usize,
    /// Pending commits made due for a resend.
    pub(super) resent: usize,
}

/// Settles every pending self-update against what is known of its envelope (see the module
/// docs).
pub(super) fn settle_pending_commits(
    store: &mut Store,
    conversations: &ConversationCache,
    now: i64,
) -> Result<CommitSweep, MessagingError> {
    let mut sweep = CommitSweep::default();
    for sent in store.latest_commits(COMMIT_SWEEP_LIMIT)? {
        let Ok(message) = rhizo_core::envelope::SecureMessage::decode(&sent.envelope) else {
            continue;
        };
        let commit_id = rhizo_e2e::commit_id(&message.payload);
        let outcome = store.transaction(|tx| -> Result<Option<bool>, MessagingError> {
            let mls = E2eStore::from_connection(tx).map_err(e2e)?;
            let Some(mut conversation) = conversations.load(&mls, &sent.group_id).map_err(e2e)?
            else {
                return Ok(None);
            };
            if conversation.pending_commit_id() != Some(commit_id) {
                conversations.stage(conversation);
                return Ok(None);
            }
            let merged = match sent.state {
                MessageState::Delivered | MessageState::Read => {
                    conversation.confirm_commit(&mls).map_err(e2e)?;
                    Some(true)
                }
                MessageState::Failed => {
                    conversation.discard_pending_commit(&mls).map_err(e2e)?;
                    Some(false)
                }
                _ => None,
            };
            conversations.stage(conversation);
            Ok(merged)
        });
        conversations.settle(&outcome);
        let overdue = matches!(
            sent.state,
            MessageState::Queued | MessageState::Sent | MessageState::Stored
        ) && now.saturating_sub(sent.sent_at) >= PENDING_COMMIT_RESEND_MS;
        match outcome? {
            Some(true) => sweep.merged += 1,
            Some(false) => sweep.dropped += 1,
            None if overdue && store.make_due(sent.id, now)? => sweep.resent += 1,
            None => {}
        }
    }
    if sweep != CommitSweep::default() {
        info!(?sweep, "pending self-updates settled");
    } else {
        debug!("no pending self-update to settle");
    }
    Ok(sweep)
}
