//! Processing a commit in a group: the ordering rule (the smallest [`ordering::OrderKey`] per
//! epoch wins, with rollback to a snapshot when a smaller one arrives late), the role rule,
//! and parking of messages that do not decrypt on this branch (they may after a rollback or
//! commit).

use openmls::prelude::{MlsGroup, ProcessedMessageContent, ProtocolMessage, Sender, StagedCommit};
use rhizo_core::group::ROLLBACK_EPOCHS;

use super::{
    CommitRejectReason, Conversation, Processed, commit_id, ordering, process_error, roles,
};
use crate::store::MlsProvider;
use crate::{E2eError, E2eStore};

/// What staging a commit on the current state gave.
enum Staged {
    /// Decrypted and valid: ready to merge; when and by whom it was made.
    Valid(Box<StagedCommit>, Stamp),
    /// Valid MLS, refused by the role rule.
    Refused(CommitRejectReason),
    /// Does not decrypt here: made on another branch, or needs a rollback first.
    Undecryptable,
}

/// A received commit's time (its authenticated data) and sender UID.
type Stamp = (Option<u64>, Option<[u8; 32]>);

/// The outcome of [`Conversation::process_group_commit`]: results and whether a commit was
/// applied (so parked and deferred messages are retried).
pub(super) type Outcome = (Vec<Processed>, bool);

impl Conversation {
    /// A group commit made in epoch `epoch` (≤ the current one).
    pub(super) fn process_group_commit(
        &mut self,
        store: &E2eStore,
        provider: &MlsProvider<'_>,
        bytes: &[u8],
        message: ProtocolMessage,
        epoch: u64,
        now: u64,
    ) -> Result<Outcome, E2eError> {
        let current = self.epoch();
        let id = commit_id(bytes);
        let group_id = self.id().to_vec();
        let mls_key = ordering::storage_key(self.group.group_id())?;
        let rejected = |reason| Ok((vec![Processed::CommitRejected { reason }], false));
        if epoch == current {
            let savepoint = store.atomic()?;
            ordering::snapshot(store.conn(), &group_id, &mls_key, epoch)?;
            return match self.stage(provider, message)? {
                Staged::Valid(staged, stamp) => {
                    self.merge(store, provider, *staged, epoch, &competitor(id, stamp))?;
                    savepoint.commit()?;
                    Ok((vec![self.applied_result()], true))
                }
                other => {
                    drop(savepoint);
                    self.reload_group(provider)?;
                    self.not_applied(store, other, epoch, bytes, now)
                }
            };
        }
        if current.saturating_sub(epoch) > ROLLBACK_EPOCHS
            || !ordering::has_snapshot(store.conn(), &group_id, epoch)?
        {
            return rejected(CommitRejectReason::StaleEpoch);
        }
        let Some(applied) = ordering::applied(store.conn(), &group_id, epoch)? else {
            return rejected(CommitRejectReason::StaleEpoch);
        };
        if applied.id == id {
            return rejected(CommitRejectReason::Duplicate);
        }
        // Try it on the state of its epoch; keep the result only if it wins.
        let savepoint = store.atomic()?;
        ordering::restore(store.conn(), &group_id, &mls_key, epoch)?;
        self.reload_group(provider)?;
        let applied_key = ordering::order_key(store.conn(), &group_id, epoch, &applied)?;
        match self.stage(provider, message)? {
            Staged::Valid(staged, stamp)
                if ordering::order_key(store.conn(), &group_id, epoch, &competitor(id, stamp))?
                    < applied_key =>
            {
                self.merge(store, provider, *staged, epoch, &competitor(id, stamp))?;
                savepoint.commit()?;
                let rolled_back = Processed::RolledBack {
                    from_epoch: current,
                    to_epoch: epoch,
                };
                Ok((vec![rolled_back, self.applied_result()], true))
            }
            other => {
                drop(savepoint);
                self.reload_group(provider)?;
                let other = match other {
                    Staged::Valid(..) => Staged::Refused(CommitRejectReason::LostTieBreak),
                    other => other,
                };
                self.not_applied(store, other, epoch, bytes, now)
            }
        }
    }

    /// The result for a commit that was not merged: refused, or parked.
    fn not_applied(
        &mut self,
        store: &E2eStore,
        staged: Staged,
        epoch: u64,
        bytes: &[u8],
        now: u64,
    ) -> Result<Outcome, E2eError> {
        match staged {
            Staged::Refused(reason) => Ok((vec![Processed::CommitRejected { reason }], false)),
            Staged::Undecryptable | Staged::Valid(..) => {
                self.state.defer(store.conn(), epoch, bytes, now)?;
                Ok((vec![Processed::Deferred], false))
            }
        }
    }

    fn applied_result(&self) -> Processed {
        Processed::CommitApplied {
            epoch: self.epoch(),
        }
    }

    /// Decrypts and stages a commit of the current epoch and checks rhizo's rules on it.
    fn stage(
        &mut self,
        provider: &MlsProvider<'_>,
        message: ProtocolMessage,
    ) -> Result<Staged, E2eError> {
        let epoch = self.epoch();
        let processed = match self.group.process_message(provider, message) {
            Ok(processed) => processed,
            Err(error) => {
                return match process_error(error, epoch, epoch) {
                    E2eError::DecryptionFailed(_) => Ok(Staged::Undecryptable),
                    other => Err(other),
                };
            }
        };
        let sender: Sender = processed.sender().clone();
        let made_at = ordering::made_at(processed.aad());
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => staged,
            ProcessedMessageContent::OwnPrivateMessage => return Err(E2eError::OwnMessage),
            _ => return Err(E2eError::Unsupported("this MLS message type")),
        };
        self.validate_commit(&staged, sender.clone())?;
        let uid = match &sender {
            Sender::Member(index) => self
                .member_at(*index)
                .map(|certificate| *certificate.root().uid().as_bytes()),
            _ => None,
        };
        Ok(
            match roles::check(&self.group, &staged, &sender, &self.listed)? {
                Some(reason) => Staged::Refused(reason),
                None => Staged::Valid(staged, (made_at, uid)),
            },
        )
    }

    /// Merges a staged commit made in `epoch` and records it as that epoch's applied commit.
    fn merge(
        &mut self,
        store: &E2eStore,
        provider: &MlsProvider<'_>,
        staged: StagedCommit,
        epoch: u64,
        commit: &ordering::Competitor,
    ) -> Result<(), E2eError> {
        self.group
            .merge_staged_commit(provider, staged)
            .map_err(super::merge_error)?;
        self.fit_past_epochs(provider)?;
        ordering::record_applied(store.conn(), self.id(), epoch, commit)
    }

    /// Re-reads the group from storage (after a savepoint was rolled back or a snapshot
    /// restored).
    pub(super) fn reload_group(&mut self, provider: &MlsProvider<'_>) -> Result<(), E2eError> {
        use openmls_traits::OpenMlsProvider as _;
        self.group = MlsGroup::load(provider.storage(), self.group.group_id())?
            .ok_or(E2eError::Mls("group vanished from storage".into()))?;
        Ok(())
    }

    /// An application message of a group that did not decrypt: parked (retried after the next
    /// rollback or commit) if its epoch is still within the rollback window.
    pub(super) fn park_application(
        &mut self,
        store: &E2eStore,
        epoch: u64,
        bytes: &[u8],
        now: u64,
    ) -> Result<Outcome, E2eError> {
        self.state.defer(store.conn(), epoch, bytes, now)?;
        Ok((vec![Processed::Deferred], false))
    }
}

/// A received commit as an ordering competitor.
fn competitor(id: [u8; 32], (made_at, sender): Stamp) -> ordering::Competitor {
    ordering::Competitor {
        id,
        made_at,
        sender,
    }
}
