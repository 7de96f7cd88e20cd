//! Temporary shims for code that still uses the store's old shape.
//!
//! The engine migration removed the `*_tx` free functions on a `rusqlite` transaction and
//! `NewOutgoing` / `NewIncoming` (rhizo-engine writes through [`Tx`](crate::Tx)). What is left:
//! methods on [`Store`] that each run one transaction (still called by rhizo-engine's unit
//! tests and some rhizo-node services), [`Store::transaction`] / [`Store::connection`], and
//! [`Db::with_store`](crate::Db::with_store), the messaging driver's exclusive use of the store
//! between group commits. Each hands the call to the one method on
//! [`Reader`](crate::Reader) or [`Tx`](crate::Tx); nothing here has logic of its own. New code
//! uses [`Store::read`] / [`Store::write`] or the [`Db`](crate::Db) instead.

#![allow(missing_docs, clippy::missing_errors_doc)]

use rusqlite::{Connection, Transaction};

use crate::mailbox::MailboxSummary;
use crate::messaging::{
    AddContact, Contact, ConversationRow, MessageRow, MessageState, OutboxItem, OutboxSummaryRow,
    SentCommit,
};
use crate::profiles::ProfileRow;
use crate::requests::{RequestIdentity, RequestLimits, RequestRow};
use crate::tx::Durability;
use crate::{Store, StoreError};

#[doc(hidden)]
impl Store {
    /// Runs `f` in one write transaction on the store's connection, handing it the `rusqlite`
    /// transaction. Commits when `f` returns `Ok`; rolls everything back when it returns `Err`.
    pub fn transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction_with(Durability::Full, f)
    }

    /// [`transaction`](Self::transaction) with a relaxed commit ([`Durability::Relaxed`]).
    pub fn transaction_relaxed<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        self.transaction_with(Durability::Relaxed, f)
    }

    fn transaction_with<T, E: From<StoreError>>(
        &mut self,
        durability: Durability,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        use crate::error::SqliteContext;
        self.with_durability(durability, |store| {
            let tx = store
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .context("starting a transaction")?;
            let out = f(&tx)?;
            tx.commit().context("committing a transaction")?;
            Ok(out)
        })
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn get_meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.read().get_meta(key)
    }

    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write(|tx| tx.set_meta(key, value))
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.read().schema_version()
    }

    #[allow(missing_docs)]
    pub fn mailbox_summary(&self) -> Result<MailboxSummary, StoreError> {
        self.read().mailbox_summary()
    }

    #[allow(missing_docs)]
    pub fn list_contacts(&self) -> Result<Vec<Contact>, StoreError> {
        self.read().list_contacts()
    }

    #[allow(missing_docs)]
    pub fn contact_by_name(&self, name: &str) -> Result<Option<Contact>, StoreError> {
        self.read().contact_by_name(name)
    }

    #[allow(missing_docs)]
    pub fn contact_by_uid(&self, uid: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        self.read().contact_by_uid(uid)
    }

    #[allow(missing_docs)]
    pub fn contact_by_uid_device(
        &self,
        uid: &[u8; 32],
        device_pk: &[u8; 32],
    ) -> Result<Option<Contact>, StoreError> {
        self.read().contact_by_uid_device(uid, device_pk)
    }

    #[allow(missing_docs)]
    pub fn contact_by_device(&self, device_pk: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        self.read().contact_by_device(device_pk)
    }

    #[allow(missing_docs)]
    pub fn add_contact(&mut self, contact: &Contact, now: i64) -> Result<AddContact, StoreError> {
        self.write(|tx| tx.add_contact(contact, now))
    }

    #[allow(missing_docs)]
    pub fn set_contact_verified(
        &mut self,
        uid: &[u8; 32],
        verified: bool,
    ) -> Result<bool, StoreError> {
        self.write(|tx| tx.set_contact_verified(uid, verified))
    }

    #[allow(missing_docs)]
    pub fn conversations_with(&self, uid: &[u8; 32]) -> Result<Vec<ConversationRow>, StoreError> {
        self.read().conversations_with(uid)
    }

    #[allow(missing_docs)]
    pub fn conversation(
        &self,
        session_id: &[u8; 16],
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.read().conversation(session_id)
    }

    #[allow(missing_docs)]
    pub fn insert_conversation(&mut self, row: &ConversationRow) -> Result<bool, StoreError> {
        self.write(|tx| tx.insert_conversation(row))
    }

    #[allow(missing_docs)]
    pub fn messages(
        &self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        self.read().messages(session_id, limit)
    }

    #[allow(missing_docs)]
    pub fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        self.read().message(id)
    }

    #[allow(missing_docs)]
    pub fn latest_commits(&self, limit: usize) -> Result<Vec<SentCommit>, StoreError> {
        self.read().latest_commits(limit)
    }

    #[allow(missing_docs)]
    pub fn advance_message_state(
        &mut self,
        id: i64,
        state: MessageState,
        at: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.write(|tx| tx.advance_message_state(id, state, at, error))
    }

    #[allow(missing_docs)]
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        self.read().outbox_due(now, limit)
    }

    #[allow(missing_docs)]
    pub fn outbox_next_attempt(&self) -> Result<Option<i64>, StoreError> {
        self.read().outbox_next_attempt()
    }

    #[allow(missing_docs)]
    pub fn outbox_summary(&self) -> Result<Vec<OutboxSummaryRow>, StoreError> {
        self.read().outbox_summary()
    }

    #[allow(missing_docs)]
    pub fn mark_stored(
        &mut self,
        id: i64,
        replicas: u32,
        next_attempt_at: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| tx.mark_stored(id, replicas, next_attempt_at, at))
    }

    #[allow(missing_docs)]
    pub fn record_attempt_failed(
        &mut self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.record_attempt_failed(id, next_attempt_at, error))
    }

    #[allow(missing_docs)]
    pub fn make_due(&mut self, id: i64, now: i64) -> Result<bool, StoreError> {
        self.write(|tx| tx.make_due(id, now))
    }

    #[allow(missing_docs)]
    pub fn prune_seen(&mut self, before: i64) -> Result<usize, StoreError> {
        self.write(|tx| tx.prune_seen(before))
    }

    #[allow(missing_docs)]
    pub fn profile(&self, uid: &[u8; 32]) -> Result<Option<ProfileRow>, StoreError> {
        self.read().profile(uid)
    }

    #[allow(missing_docs)]
    pub fn upsert_profile(&mut self, row: &ProfileRow) -> Result<bool, StoreError> {
        self.write(|tx| tx.upsert_profile(row))
    }

    #[allow(missing_docs)]
    pub fn list_requests(&self) -> Result<Vec<RequestRow>, StoreError> {
        self.read().list_requests()
    }

    #[allow(missing_docs)]
    pub fn list_blocked(&self) -> Result<Vec<RequestRow>, StoreError> {
        self.read().list_blocked()
    }

    #[allow(missing_docs)]
    pub fn request(&self, uid: &[u8; 32]) -> Result<Option<RequestRow>, StoreError> {
        self.read().request(uid)
    }

    #[allow(missing_docs)]
    pub fn request_devices(&self, uid: &[u8; 32]) -> Result<Vec<[u8; 32]>, StoreError> {
        self.read().request_devices(uid)
    }

    #[allow(missing_docs)]
    pub fn held_envelopes(&self, uid: &[u8; 32]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.read().held_envelopes(uid)
    }

    #[allow(missing_docs)]
    pub fn open_conversation_with(
        &self,
        uid: &[u8; 32],
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.read().open_conversation_with(uid)
    }

    #[allow(missing_docs)]
    pub fn set_request_identity(
        &mut self,
        uid: &[u8; 32],
        identity: Option<&RequestIdentity>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.set_request_identity(uid, identity, now))
    }

    #[allow(missing_docs)]
    pub fn take_request(&mut self, uid: &[u8; 32]) -> Result<usize, StoreError> {
        self.write(|tx| tx.take_request(uid))
    }

    #[allow(missing_docs)]
    pub fn decline_request(&mut self, uid: &[u8; 32], now: i64) -> Result<Option<u64>, StoreError> {
        self.write(|tx| tx.decline_request(uid, now))
    }

    #[allow(missing_docs)]
    pub fn block_sender(
        &mut self,
        uid: &[u8; 32],
        limits: &RequestLimits,
        now: i64,
    ) -> Result<u64, StoreError> {
        self.write(|tx| tx.block_sender(uid, limits, now))
    }

    #[allow(missing_docs)]
    pub fn unblock_sender(&mut self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(|tx| tx.unblock_sender(uid))
    }

    #[allow(missing_docs)]
    pub fn prune_requests(&mut self, before: i64) -> Result<usize, StoreError> {
        self.write(|tx| tx.prune_requests(before))
    }
}

#[doc(hidden)]
#[cfg(feature = "db")]
impl crate::Db {
    /// Runs `f` with exclusive use of the [`Store`] on the writer thread, between group
    /// commits: the old `spawn_blocking` + `Mutex<Store>` access of the messaging code.
    ///
    /// # Errors
    ///
    /// [`DbError::Closed`](crate::DbError::Closed) if the database was closed,
    /// [`DbError::Panicked`](crate::DbError::Panicked) if `f` panicked.
    pub async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> T + Send + 'static,
    ) -> Result<T, crate::DbError> {
        self.exclusive(f).await
    }
}
