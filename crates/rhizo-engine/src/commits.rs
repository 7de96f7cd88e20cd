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

use rhizo_store::{Tx, messaging::MessageState};
use tracing::{debug, info};

use crate::{Engine, EngineError, cache::ConversationCache};

/// A pending self-update with no receipt for this long is sent again now (ms).
pub const PENDING_COMMIT_RESEND_MS: i64 = 60 * 60 * 1000;
/// How often the sweep runs.
pub const COMMIT_SWEEP_INTERVAL_MS: i64 = 60 * 60 * 1000;
/// Conversations looked at per sweep.
const COMMIT_SWEEP_LIMIT: usize = 4096;

/// What [`settle_pending_commits`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommitSweep {
    /// Pending commits merged (the peer had them).
    pub merged: usize,
    /// Pending commits dropped (the peer refused them for good).
    pub dropped: usize,
    /// Pending commits made due for a resend.
    pub resent: usize,
}

/// Settles every pending self-update against what is known of its envelope (see the module
/// docs), each in a savepoint of `tx`. The caller settles the cache when `tx` ends.
pub(crate) fn settle_pending_commits(
    tx: &mut Tx<'_>,
    conversations: &ConversationCache,
    now: i64,
) -> Result<CommitSweep, EngineError> {
    let mut sweep = CommitSweep::default();
    for sent in tx.latest_commits(COMMIT_SWEEP_LIMIT)? {
        let Ok(message) = rhizo_core::envelope::SecureMessage::decode(&sent.envelope) else {
            continue;
        };
        let commit_id = rhizo_e2e::commit_id(&message.payload);
        let outcome = tx.in_savepoint(|tx| -> Result<Option<bool>, EngineError> {
            let mls = tx.mls().map_err(EngineError::Mls)?;
            let Some(mut conversation) = conversations
                .load(&mls, &sent.group_id)
                .map_err(EngineError::Mls)?
            else {
                return Ok(None);
            };
            if conversation.pending_commit_id() != Some(commit_id) {
                conversations.stage(conversation);
                return Ok(None);
            }
            let merged = match sent.state {
                MessageState::Delivered | MessageState::Read => {
                    conversation
                        .confirm_commit(&mls)
                        .map_err(EngineError::Mls)?;
                    Some(true)
                }
                MessageState::Failed => {
                    conversation
                        .discard_pending_commit(&mls)
                        .map_err(EngineError::Mls)?;
                    Some(false)
                }
                _ => None,
            };
            conversations.stage(conversation);
            Ok(merged)
        })?;
        if outcome.is_err() {
            conversations.discard_staged();
        }
        let overdue = matches!(
            sent.state,
            MessageState::Queued | MessageState::Sent | MessageState::Stored
        ) && now.saturating_sub(sent.sent_at) >= PENDING_COMMIT_RESEND_MS;
        match outcome? {
            Some(true) => sweep.merged += 1,
            Some(false) => sweep.dropped += 1,
            None if overdue && tx.make_due(sent.id, now)? => sweep.resent += 1,
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

/// Settles our pending self-update from what the peer said about the envelope carrying it:
/// delivered or read → merged (on every path, also when the row was already delivered);
/// refused for good → dropped, so the next rekey makes a new one. Anything else leaves it
/// pending (the outbox resends it).
pub(crate) fn settle_commit_tx(
    tx: &mut Tx<'_>,
    conversations: &ConversationCache,
    session_id: &[u8; 16],
    commit_id: [u8; 32],
    state: MessageState,
) -> Result<(), EngineError> {
    if !matches!(
        state,
        MessageState::Delivered | MessageState::Read | MessageState::Failed
    ) {
        return Ok(());
    }
    let Some(row) = tx.conversation(session_id)? else {
        return Ok(());
    };
    let mls = tx.mls().map_err(EngineError::Mls)?;
    let Some(mut conversation) = conversations
        .load(&mls, &row.group_id)
        .map_err(EngineError::Mls)?
    else {
        return Ok(());
    };
    if conversation.pending_commit_id() == Some(commit_id) {
        if state == MessageState::Failed {
            conversation
                .discard_pending_commit(&mls)
                .map_err(EngineError::Mls)?;
            debug!("self-update refused by the peer: dropped, the next rekey redoes it");
        } else {
            conversation
                .confirm_commit(&mls)
                .map_err(EngineError::Mls)?;
            debug!(epoch = conversation.epoch(), "self-update confirmed");
        }
    }
    conversations.stage(conversation);
    Ok(())
}

impl Engine {
    /// The hourly sweep: forgets held requests past the replay window (they could never be
    /// accepted), settles pending self-updates (see the module docs) and seals what waited
    /// for a fresh epoch of ours once it is there ([`crate::restored`]).
    ///
    /// # Errors
    ///
    /// If MLS or the database fails.
    pub fn sweep(&self, tx: &mut Tx<'_>, now: i64) -> Result<CommitSweep, EngineError> {
        let max_age = i64::try_from(rhizo_core::seen::MAX_ENVELOPE_AGE).unwrap_or(i64::MAX);
        tx.prune_requests(now.saturating_sub(max_age))?;
        let sweep = self.in_job(tx, |tx| {
            let sweep = settle_pending_commits(tx, &self.conversations, now)?;
            crate::restored::release_all_held(tx, self.into(), now)?;
            Ok::<_, EngineError>(sweep)
        })?;
        // Own-device adds: what waited for the commits just settled, and refused ones due again.
        self.retry_device_adds_safely(tx, now);
        Ok(sweep)
    }
}
