//! Receiving: one message or commit processed (decrypt, validate, merge), the future-epoch
//! buffer retried after a commit, and the mapping of openmls' errors to ours.

use openmls::framing::errors::MessageDecryptionError;
use openmls::prelude::{
    ContentType, LeafNodeIndex, MergeCommitError, ProcessMessageError, ProcessedMessageContent,
    Proposal, Sender, StagedCommit, ValidationError, WelcomeError,
};

use super::*;

impl Conversation {
    /// Handles one message. Returns its outcome and whether a commit was
    /// applied (so buffered messages should be retried).
    pub(super) fn process_one(
        &mut self,
        store: &E2eStore,
        provider: &MlsProvider<'_>,
        bytes: &[u8],
        message: ProtocolMessage,
        now: u64,
    ) -> Result<(Vec<Processed>, bool), E2eError> {
        if message.group_id() != self.group.group_id() {
            return Err(E2eError::WrongGroup);
        }
        let message_epoch = message.epoch().as_u64();
        let group_epoch = self.epoch();
        if message_epoch > group_epoch {
            if message_epoch - group_epoch > MAX_FUTURE_EPOCHS {
                return Err(E2eError::WrongEpoch {
                    message_epoch,
                    group_epoch,
                });
            }
            self.state.defer(store.conn(), message_epoch, bytes, now)?;
            return Ok((vec![Processed::Deferred], false));
        }
        let group = self.is_group();
        if message.content_type() == ContentType::Commit {
            if group {
                return self.process_group_commit(
                    store,
                    provider,
                    bytes,
                    message,
                    message_epoch,
                    now,
                );
            }
            return self
                .process_commit(provider, bytes, message, message_epoch, group_epoch)
                .map(|(processed, applied)| (vec![processed], applied));
        }
        if group_epoch - message_epoch > self.past_epochs() as u64 {
            // openmls no longer has that epoch's secrets (and would call it a replay).
            return Err(E2eError::WrongEpoch {
                message_epoch,
                group_epoch,
            });
        }
        let savepoint = store.atomic()?;
        let processed = match self.group.process_message(provider, message) {
            Ok(processed) => processed,
            Err(error) => {
                let error = process_error(error, message_epoch, group_epoch);
                if group && matches!(error, E2eError::DecryptionFailed(_)) {
                    drop(savepoint);
                    self.reload_group(provider)?;
                    return self.park_application(store, message_epoch, bytes, now);
                }
                return Err(error);
            }
        };
        savepoint.commit()?;
        let credential = processed.credential().clone();
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(application) => {
                let sender = member_certificate(&credential).ok_or(E2eError::InvalidCredential(
                    "sender credential is not a device certificate",
                ))?;
                Ok((
                    vec![Processed::Application {
                        plaintext: application.into_bytes(),
                        sender,
                    }],
                    false,
                ))
            }
            ProcessedMessageContent::OwnPrivateMessage => Err(E2eError::OwnMessage),
            ProcessedMessageContent::ProposalMessage(_)
            | ProcessedMessageContent::ExternalJoinProposalMessage(_) => {
                Err(E2eError::Unsupported("standalone proposals"))
            }
            _ => Err(E2eError::Unsupported("this MLS message type")),
        }
    }

    /// A commit at or before the current epoch: stale, tie-break, or apply.
    pub(super) fn process_commit(
        &mut self,
        provider: &MlsProvider<'_>,
        bytes: &[u8],
        message: ProtocolMessage,
        message_epoch: u64,
        group_epoch: u64,
    ) -> Result<(Processed, bool), E2eError> {
        if message_epoch < group_epoch {
            return Ok((
                Processed::CommitRejected {
                    reason: CommitRejectReason::StaleEpoch,
                },
                false,
            ));
        }
        if let Some(pending) = &self.state.pending {
            let incoming = commit_id(bytes);
            if incoming == pending.id {
                return Err(E2eError::OwnMessage);
            }
            // Deterministic tie-break: the smaller SHA-256 wins, on both sides.
            if incoming > pending.id {
                return Ok((
                    Processed::CommitRejected {
                        reason: CommitRejectReason::LostTieBreak,
                    },
                    false,
                ));
            }
        }
        let processed = self
            .group
            .process_message(provider, message)
            .map_err(|e| process_error(e, message_epoch, group_epoch))?;
        let sender = processed.sender().clone();
        let staged = match processed.into_content() {
            ProcessedMessageContent::StagedCommitMessage(staged) => staged,
            ProcessedMessageContent::OwnPrivateMessage => return Err(E2eError::OwnMessage),
            _ => return Err(E2eError::Unsupported("this MLS message type")),
        };
        self.validate_commit(&staged, sender)?;
        // Merging also discards our pending commit (it lost the tie-break).
        self.group
            .merge_staged_commit(provider, *staged)
            .map_err(merge_error)?;
        self.state.pending = None;
        Ok((
            Processed::CommitApplied {
                epoch: self.epoch(),
            },
            true,
        ))
    }

    /// rhizo's rules for a peer's commit, on top of openmls' RFC 9420
    /// validation: only Add/Remove/Update proposals; every new leaf carries a
    /// valid device certificate for its key; an updated leaf keeps its root
    /// identity; the group stays within [`MAX_GROUP_DEVICES`].
    pub(super) fn validate_commit(
        &self,
        staged: &StagedCommit,
        sender: Sender,
    ) -> Result<(), E2eError> {
        let mut adds = 0usize;
        for queued in staged.queued_proposals() {
            match queued.proposal() {
                Proposal::Add(add) => {
                    adds = adds.saturating_add(1);
                    let leaf = add.key_package().leaf_node();
                    certificate_of_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
                }
                Proposal::Update(update) => {
                    let leaf = update.leaf_node();
                    let certificate =
                        certificate_of_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
                    self.check_same_root(queued.sender(), &certificate)?;
                }
                Proposal::Remove(_) => {}
                // Groups only; the role rule checks who and what.
                Proposal::GroupContextExtensions(_) if self.is_group() => {}
                _ => {
                    return Err(E2eError::Unsupported(
                        "commits with proposals other than add, remove and update",
                    ));
                }
            }
        }
        if let Some(leaf) = staged.update_path_leaf_node() {
            let certificate =
                certificate_of_leaf(leaf.credential(), leaf.signature_key().as_slice())?;
            self.check_same_root(&sender, &certificate)?;
        }
        let count = self.device_count().saturating_add(adds);
        if count > MAX_GROUP_DEVICES {
            return Err(E2eError::TooManyDevices {
                count,
                max: MAX_GROUP_DEVICES,
            });
        }
        Ok(())
    }

    /// An updated leaf must stay with the identity (root key) it had.
    pub(super) fn check_same_root(
        &self,
        sender: &Sender,
        certificate: &DeviceCertificate,
    ) -> Result<(), E2eError> {
        let Sender::Member(index) = sender else {
            return Err(E2eError::Unsupported("commits from non-members"));
        };
        let old = self
            .member_at(*index)
            .ok_or(E2eError::InvalidCredential("update from an unknown leaf"))?;
        if old.root() != certificate.root() {
            return Err(E2eError::InvalidCredential(
                "an updated leaf changed its identity (root key)",
            ));
        }
        Ok(())
    }

    /// The certificate at a leaf index.
    pub(super) fn member_at(&self, index: LeafNodeIndex) -> Option<DeviceCertificate> {
        // The leaf itself, not `members()`, which copies every member's keys to find one.
        let leaf = self.group.public_group().leaf(index)?;
        member_certificate(leaf.credential())
    }

    /// After a commit was applied: processes buffered messages that are no
    /// longer in the future, oldest first, repeating while they apply more
    /// commits. Each runs in its own savepoint; one that fails is dropped and
    /// counted, the others still go through.
    pub(super) fn retry_deferred(
        &mut self,
        store: &E2eStore,
        provider: &MlsProvider<'_>,
        now: u64,
        results: &mut Vec<Processed>,
    ) -> Result<(), E2eError> {
        // Each round either applies a commit (bounded by the queue size) or
        // ends the loop.
        for _ in 0..=MAX_DEFERRED {
            if self.is_group() {
                let oldest = self
                    .epoch()
                    .saturating_sub(rhizo_core::group::ROLLBACK_EPOCHS);
                self.state.drop_stale(store.conn(), oldest)?;
            }
            let ready = self.state.take_ready(store.conn(), self.epoch())?;
            if ready.is_empty() {
                return Ok(());
            }
            let mut applied_any = false;
            for bytes in ready {
                let saved = self.state.clone();
                let atomic = store.atomic()?;
                let outcome = decode_private(&bytes)
                    .and_then(|message| self.process_one(store, provider, &bytes, message, now));
                match outcome {
                    Ok((processed, applied)) => {
                        atomic.commit()?;
                        applied_any |= applied;
                        results.extend(processed);
                    }
                    Err(error) => {
                        drop(atomic);
                        self.group = MlsGroup::load(provider.storage(), self.group.group_id())?
                            .ok_or(E2eError::Mls("group vanished from storage".into()))?;
                        self.state = saved;
                        self.state.deferred_dropped = self.state.deferred_dropped.saturating_add(1);
                        tracing::warn!(%error, "dropped a deferred MLS message that failed");
                    }
                }
            }
            if !applied_any {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// Maps openmls' processing errors to ours.
pub(super) fn process_error(
    error: ProcessMessageError<rusqlite::Error>,
    message_epoch: u64,
    group_epoch: u64,
) -> E2eError {
    let wrong_epoch = E2eError::WrongEpoch {
        message_epoch,
        group_epoch,
    };
    match error {
        ProcessMessageError::StorageError(e) => E2eError::Storage(e),
        ProcessMessageError::ValidationError(validation) => match validation {
            ValidationError::WrongGroupId => E2eError::WrongGroup,
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData => wrong_epoch,
            ValidationError::UnableToDecrypt(MessageDecryptionError::SecretTreeError(inner)) => {
                // openmls does not export the inner type; its variant names
                // say whether the key was used and deleted already.
                let name = format!("{inner:?}");
                if name.contains("SecretReuse") || name.contains("TooDistantInThePast") {
                    E2eError::Replayed
                } else {
                    E2eError::DecryptionFailed(inner.to_string())
                }
            }
            ValidationError::LibraryError(e) => E2eError::mls(e),
            other => E2eError::DecryptionFailed(other.to_string()),
        },
        ProcessMessageError::InvalidCommit(e) => E2eError::DecryptionFailed(e.to_string()),
        ProcessMessageError::IncompatibleWireFormat => {
            E2eError::Unsupported("unencrypted (PublicMessage) group messages")
        }
        other => E2eError::mls(other),
    }
}

/// Maps openmls' merge errors to ours.
pub(super) fn merge_error(error: MergeCommitError<rusqlite::Error>) -> E2eError {
    match error {
        MergeCommitError::StorageError(e) => E2eError::Storage(e),
        other => E2eError::mls(other),
    }
}

/// Maps openmls' Welcome errors to ours.
pub(super) fn welcome_error(error: WelcomeError<rusqlite::Error>) -> E2eError {
    match error {
        WelcomeError::StorageError(e) => E2eError::Storage(e),
        WelcomeError::NoMatchingKeyPackage | WelcomeError::PrivateInitKeyNotFound => {
            E2eError::NoMatchingKeyPackage
        }
        WelcomeError::GroupAlreadyExists => E2eError::AlreadyJoined,
        WelcomeError::UnsupportedCiphersuite(suite) => E2eError::WrongCiphersuite(suite as u16),
        other => E2eError::mls(other),
    }
}
