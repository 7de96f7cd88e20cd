//! Temporary shims for the node's messaging code while it moves into rhizo-engine.
//!
//! The engine migration deletes this file: it keeps `rhizo-node/src/messaging.rs` (and
//! `messaging/*`) compiling with the store's old shape — methods on [`Store`] that each run
//! one transaction, `*_tx` free functions on a `rusqlite` transaction, `NewOutgoing` /
//! `NewIncoming` — by handing every call to the one method on [`Reader`](crate::Reader) or [`Tx`](crate::Tx). New code
//! uses [`Store::read`] / [`Store::write`] or the [`Db`](crate::Db) instead. Nothing here has
//! logic of its own.

#![allow(missing_docs, clippy::missing_errors_doc)]

use rusqlite::{Connection, Transaction};

use crate::mailbox::MailboxSummary;
use crate::messaging::{
    AddContact, Contact, ConversationRow, MessageRow, MessageState, OutboxItem, OutboxSummaryRow,
    SentCommit,
};
use crate::peer_book::PeerBookLimits;
use crate::profiles::ProfileRow;
use crate::requests::{RequestIdentity, RequestLimits, RequestRow};
use crate::tx::{Durability, Tx};
use crate::{Store, StoreError};

/// Runs `f` on a [`Tx`] view of a connection that is already inside a transaction.
fn view<T>(conn: &Connection, f: impl FnOnce(&mut Tx<'_>) -> T) -> T {
    // Views never store into the mailbox (the replica has its own path), so the purge
    // schedule they would advance is thrown away.
    let mut purge_due = i64::MAX;
    f(&mut Tx::new(
        conn,
        PeerBookLimits::default(),
        &mut purge_due,
    ))
}

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
    pub fn insert_outgoing(
        &mut self,
        m: &messaging::NewOutgoing<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.transaction(|tx| messaging::insert_outgoing_tx(tx, m, now))
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

/// The old free functions of `rhizo_store::messaging` and `rhizo_store::requests`.
pub mod messaging {
    use rusqlite::Connection;

    use super::view;
    use crate::StoreError;
    use crate::messaging::{ConversationRow, MessageState, NewMessage, UnreadMessage};
    use crate::profiles::ProfileRow;
    use crate::requests::{HeldEnvelope, HoldOutcome, RequestLimits};

    /// An outgoing message to be persisted before it is sent.
    #[derive(Debug, Clone)]
    pub struct NewOutgoing<'a> {
        pub session_id: [u8; 16],
        pub sender_device: [u8; 32],
        pub seq: u64,
        pub kind: &'a str,
        pub body: Option<&'a str>,
        pub sent_at: i64,
        pub envelope: &'a [u8],
    }

    /// An incoming message to store.
    #[derive(Debug, Clone)]
    pub struct NewIncoming<'a> {
        pub session_id: [u8; 16],
        pub sender_device: [u8; 32],
        pub seq: u64,
        pub kind: &'a str,
        pub body: Option<&'a str>,
        pub sent_at: i64,
        pub digest: [u8; 32],
    }

    fn new_message<'a>(
        session_id: [u8; 16],
        sender_device: [u8; 32],
        seq: u64,
        kind: &'a str,
        body: Option<&'a str>,
        sent_at: i64,
    ) -> NewMessage<'a> {
        NewMessage {
            session_id,
            sender_device,
            seq,
            kind,
            body,
            sent_at,
        }
    }

    pub fn seen_insert(
        tx: &Connection,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
        envelope_timestamp: i64,
    ) -> Result<bool, StoreError> {
        view(tx, |t| {
            t.seen_insert(sender_device, session_id, seq, envelope_timestamp)
        })
    }

    pub fn seen_contains(
        conn: &Connection,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
    ) -> Result<bool, StoreError> {
        view(conn, |t| t.seen_contains(sender_device, session_id, seq))
    }

    pub fn advance_message_state_tx(
        tx: &Connection,
        id: i64,
        state: MessageState,
        at: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        view(tx, |t| t.advance_message_state(id, state, at, error))
    }

    pub fn record_attempt_failed_tx(
        tx: &Connection,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        view(tx, |t| t.record_attempt_failed(id, next_attempt_at, error))
    }

    /// Runs `f` inside a savepoint of `tx` (see [`Tx::in_savepoint`](crate::Tx::in_savepoint)).
    pub fn in_savepoint<T, E>(
        tx: &Connection,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<Result<T, E>, StoreError> {
        view(tx, |t| t.in_savepoint(|_| f()))
    }

    pub fn mark_read_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<UnreadMessage>, StoreError> {
        view(tx, |t| t.mark_read(session_id, limit))
    }

    pub fn mark_outgoing_read_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        view(tx, |t| {
            t.mark_outgoing_read(session_id, sender_device, seq, at, envelope_matches)
        })
    }

    pub fn mark_outgoing_delivered_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        view(tx, |t| {
            t.mark_outgoing_delivered(session_id, sender_device, seq, at, envelope_matches)
        })
    }

    pub fn mark_outgoing_failed_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        error: &str,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        view(tx, |t| {
            t.mark_outgoing_failed(session_id, sender_device, seq, at, error, envelope_matches)
        })
    }

    pub fn insert_incoming(
        tx: &Connection,
        m: &NewIncoming<'_>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let new = new_message(
            m.session_id,
            m.sender_device,
            m.seq,
            m.kind,
            m.body,
            m.sent_at,
        );
        view(tx, |t| t.insert_incoming(&new, &m.digest, now))
    }

    pub fn insert_conversation_tx(
        tx: &Connection,
        row: &ConversationRow,
    ) -> Result<bool, StoreError> {
        view(tx, |t| t.insert_conversation(row))
    }

    pub fn take_next_seq_tx(tx: &Connection, session_id: &[u8; 16]) -> Result<u64, StoreError> {
        view(tx, |t| t.take_next_seq(session_id))
    }

    pub fn insert_outgoing_tx(
        tx: &Connection,
        m: &NewOutgoing<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        let new = new_message(
            m.session_id,
            m.sender_device,
            m.seq,
            m.kind,
            m.body,
            m.sent_at,
        );
        view(tx, |t| t.insert_outgoing(&new, m.envelope, now))
    }

    pub fn conversation_tx(
        tx: &Connection,
        session_id: &[u8; 16],
    ) -> Result<Option<ConversationRow>, StoreError> {
        view(tx, |t| t.conversation(session_id))
    }

    pub fn upsert_profile_tx(tx: &Connection, row: &ProfileRow) -> Result<bool, StoreError> {
        view(tx, |t| t.upsert_profile(row))
    }

    pub fn hold_request_tx(
        tx: &Connection,
        held: &HeldEnvelope<'_>,
        limits: &RequestLimits,
        now: i64,
    ) -> Result<HoldOutcome, StoreError> {
        view(tx, |t| t.hold_request(held, limits, now))
    }

    pub fn close_conversation_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        error: &str,
        now: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        view(tx, |t| t.close_conversation(session_id, error, now))
    }

    pub fn insert_closed_conversation_tx(
        tx: &Connection,
        session_id: &[u8; 16],
        contact_uid: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        view(tx, |t| {
            t.insert_closed_conversation(session_id, contact_uid, now)
        })
    }

    pub fn welcome_pending_tx(tx: &Connection, session_id: &[u8; 16]) -> Result<bool, StoreError> {
        view(tx, |t| t.welcome_pending(session_id))
    }

    pub fn mark_held_tx(tx: &Connection, id: i64) -> Result<bool, StoreError> {
        view(tx, |t| t.mark_held(id))
    }
}
