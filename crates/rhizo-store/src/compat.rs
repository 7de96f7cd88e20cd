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

use crate::bans::{BanKind, BanRow};
use crate::channels::{ChannelPostRow, ChannelRow};
use crate::mailbox::{
    MailboxEntry, MailboxOutcome, MailboxPage, MailboxQuota, MailboxStored, MailboxSummary,
    NewMailboxEntry,
};
use crate::messaging::{
    AddContact, Contact, ContactDevice, ConversationRow, MessageRow, MessageState, NewMessage,
    OutboxItem, OutboxSummaryRow, SentCommit, UnreadMessage,
};
use crate::peer_book::{PeerBookLimits, PeerRecord, PeerSource};
use crate::profiles::ProfileRow;
use crate::requests::{HeldEnvelope, HoldOutcome, RequestIdentity, RequestLimits, RequestRow};
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
    pub fn bans(&self, now: i64) -> Result<Vec<BanRow>, StoreError> {
        self.read().bans(now)
    }

    #[allow(missing_docs)]
    pub fn add_ban(&mut self, row: &BanRow) -> Result<bool, StoreError> {
        self.write(|tx| tx.add_ban(row))
    }

    #[allow(missing_docs)]
    pub fn remove_ban(&mut self, kind: BanKind, value: &str) -> Result<bool, StoreError> {
        self.write(|tx| tx.remove_ban(kind, value))
    }

    #[allow(missing_docs)]
    pub fn purge_expired_bans(&mut self, now: i64) -> Result<usize, StoreError> {
        self.write(|tx| tx.purge_expired_bans(now))
    }

    #[allow(missing_docs)]
    pub fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        self.read().channels()
    }

    #[allow(missing_docs)]
    pub fn channel(&self, id: &[u8; 32]) -> Result<Option<ChannelRow>, StoreError> {
        self.read().channel(id)
    }

    #[allow(missing_docs)]
    pub fn channel_posts(
        &self,
        channel_id: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<ChannelPostRow>, StoreError> {
        self.read().channel_posts(channel_id, limit)
    }

    #[allow(missing_docs)]
    pub fn join_channel(&mut self, row: &ChannelRow) -> Result<bool, StoreError> {
        self.write(|tx| tx.join_channel(row))
    }

    #[allow(missing_docs)]
    pub fn leave_channel(&mut self, id: &[u8; 32]) -> Result<bool, StoreError> {
        self.write(|tx| tx.leave_channel(id))
    }

    #[allow(missing_docs)]
    pub fn insert_channel_post(
        &mut self,
        row: &ChannelPostRow,
        max_history: usize,
    ) -> Result<bool, StoreError> {
        self.write(|tx| tx.insert_channel_post(row, max_history))
    }

    #[allow(missing_docs)]
    pub fn mailbox_check_quota(
        &self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<(), StoreError> {
        self.read().mailbox_check_quota(entry, quota, now)
    }

    #[allow(missing_docs)]
    pub fn mailbox_fetch(
        &self,
        recipient: &[u8; 32],
        now: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        self.read().mailbox_fetch(recipient, now, limit, max_bytes)
    }

    #[allow(missing_docs)]
    pub fn mailbox_fetch_after(
        &self,
        recipient: &[u8; 32],
        now: i64,
        cursor: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        self.read()
            .mailbox_fetch_after(recipient, now, cursor, limit, max_bytes)
    }

    #[allow(missing_docs)]
    pub fn mailbox_entries(
        &self,
        recipient: &[u8; 32],
        now: i64,
        limit: usize,
    ) -> Result<Vec<MailboxEntry>, StoreError> {
        self.read().mailbox_entries(recipient, now, limit)
    }

    #[allow(missing_docs)]
    pub fn mailbox_recipients(&self, now: i64) -> Result<Vec<[u8; 32]>, StoreError> {
        self.read().mailbox_recipients(now)
    }

    #[allow(missing_docs)]
    pub fn mailbox_summary(&self) -> Result<MailboxSummary, StoreError> {
        self.read().mailbox_summary()
    }

    #[allow(missing_docs)]
    pub fn mailbox_device_list_version(&self, uid: &[u8; 32]) -> Result<u64, StoreError> {
        self.read().mailbox_device_list_version(uid)
    }

    #[allow(missing_docs)]
    pub fn mailbox_store(
        &mut self,
        entry: &NewMailboxEntry<'_>,
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<MailboxStored, StoreError> {
        self.write(|tx| tx.mailbox_store(entry, quota, now))
    }

    #[allow(missing_docs)]
    pub fn mailbox_store_batch(
        &mut self,
        entries: &[NewMailboxEntry<'_>],
        quota: &MailboxQuota,
        now: i64,
    ) -> Result<Vec<MailboxOutcome>, StoreError> {
        self.write(|tx| tx.mailbox_store_batch(entries, quota, now))
    }

    #[allow(missing_docs)]
    pub fn mailbox_delete(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(|tx| tx.mailbox_delete(recipient, digests, now))
    }

    #[allow(missing_docs)]
    pub fn mailbox_delete_held(
        &mut self,
        recipient: &[u8; 32],
        digests: &[[u8; 32]],
        now: i64,
    ) -> Result<usize, StoreError> {
        self.write(|tx| tx.mailbox_delete_held(recipient, digests, now))
    }

    #[allow(missing_docs)]
    pub fn mailbox_purge_expired(&mut self, now: i64) -> Result<usize, StoreError> {
        self.write(|tx| tx.mailbox_purge_expired(now))
    }

    #[allow(missing_docs)]
    pub fn note_mailbox_device_list_version(
        &mut self,
        uid: &[u8; 32],
        version: u64,
        at: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.note_mailbox_device_list_version(uid, version, at))
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
    pub fn update_contact_devices(
        &mut self,
        uid: &[u8; 32],
        devices: &[ContactDevice],
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.update_contact_devices(uid, devices))
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
    pub fn take_next_seq(&mut self, session_id: &[u8; 16]) -> Result<u64, StoreError> {
        self.write(|tx| tx.take_next_seq(session_id))
    }

    #[allow(missing_docs)]
    pub fn outgoing_message_id(
        &self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.read()
            .outgoing_message_id(session_id, sender_device, seq)
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
    pub fn insert_incoming(
        &mut self,
        m: &NewMessage<'_>,
        digest: &[u8; 32],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|tx| tx.insert_incoming(m, digest, now))
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
    pub fn mark_read(
        &mut self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<UnreadMessage>, StoreError> {
        self.write(|tx| tx.mark_read(session_id, limit))
    }

    #[allow(missing_docs)]
    pub fn mark_outgoing_read(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|tx| tx.mark_outgoing_read(session_id, sender_device, seq, at, envelope_matches))
    }

    #[allow(missing_docs)]
    pub fn mark_outgoing_delivered(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|tx| {
            tx.mark_outgoing_delivered(session_id, sender_device, seq, at, envelope_matches)
        })
    }

    #[allow(missing_docs)]
    pub fn mark_outgoing_failed(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
        at: i64,
        error: &str,
        envelope_matches: impl Fn(&[u8]) -> bool,
    ) -> Result<Option<i64>, StoreError> {
        self.write(|tx| {
            tx.mark_outgoing_failed(session_id, sender_device, seq, at, error, envelope_matches)
        })
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
    pub fn seen_contains(
        &self,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
    ) -> Result<bool, StoreError> {
        self.read().seen_contains(sender_device, session_id, seq)
    }

    #[allow(missing_docs)]
    pub fn seen_insert(
        &mut self,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
        envelope_timestamp: i64,
    ) -> Result<bool, StoreError> {
        self.write(|tx| tx.seen_insert(sender_device, session_id, seq, envelope_timestamp))
    }

    #[allow(missing_docs)]
    pub fn prune_seen(&mut self, before: i64) -> Result<usize, StoreError> {
        self.write(|tx| tx.prune_seen(before))
    }

    #[allow(missing_docs)]
    pub fn peers_for_dial(&self, limit: usize) -> Result<Vec<PeerRecord>, StoreError> {
        self.read().peers_for_dial(limit)
    }

    #[allow(missing_docs)]
    pub fn list_peers(&self) -> Result<Vec<PeerRecord>, StoreError> {
        self.read().list_peers()
    }

    #[allow(missing_docs)]
    pub fn peer_count(&self) -> Result<u64, StoreError> {
        self.read().peer_count()
    }

    #[allow(missing_docs)]
    pub fn peer_reputations(&self) -> Result<Vec<(String, i32, Option<i64>)>, StoreError> {
        self.read().peer_reputations()
    }

    #[allow(missing_docs)]
    pub fn upsert_peer(
        &mut self,
        peer_id: &str,
        addrs: &[String],
        source: PeerSource,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.upsert_peer(peer_id, addrs, source, now))
    }

    #[allow(missing_docs)]
    pub fn record_dial_success(&mut self, peer_id: &str, now: i64) -> Result<(), StoreError> {
        self.write(|tx| tx.record_dial_success(peer_id, now))
    }

    #[allow(missing_docs)]
    pub fn record_dial_failure(&mut self, peer_id: &str, now: i64) -> Result<u32, StoreError> {
        self.write(|tx| tx.record_dial_failure(peer_id, now))
    }

    #[allow(missing_docs)]
    pub fn remove_peer(&mut self, peer_id: &str) -> Result<bool, StoreError> {
        self.write(|tx| tx.remove_peer(peer_id))
    }

    #[allow(missing_docs)]
    pub fn set_peer_reputation(
        &mut self,
        peer_id: &str,
        score: i32,
        banned_until: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.set_peer_reputation(peer_id, score, banned_until))
    }

    #[allow(missing_docs)]
    pub fn evict_failing_peers(&mut self, min_failures: u32) -> Result<usize, StoreError> {
        self.write(|tx| tx.evict_failing_peers(min_failures))
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
    pub fn is_blocked(&self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        self.read().is_blocked(uid)
    }

    #[allow(missing_docs)]
    pub fn open_conversation_with(
        &self,
        uid: &[u8; 32],
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.read().open_conversation_with(uid)
    }

    #[allow(missing_docs)]
    pub fn welcome_pending(&self, session_id: &[u8; 16]) -> Result<bool, StoreError> {
        self.read().welcome_pending(session_id)
    }

    #[allow(missing_docs)]
    pub fn hold_request(
        &mut self,
        held: &HeldEnvelope<'_>,
        limits: &RequestLimits,
        now: i64,
    ) -> Result<HoldOutcome, StoreError> {
        self.write(|tx| tx.hold_request(held, limits, now))
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

    #[allow(missing_docs)]
    pub fn close_conversation(
        &mut self,
        session_id: &[u8; 16],
        error: &str,
        now: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        self.write(|tx| tx.close_conversation(session_id, error, now))
    }

    #[allow(missing_docs)]
    pub fn insert_closed_conversation(
        &mut self,
        session_id: &[u8; 16],
        contact_uid: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|tx| tx.insert_closed_conversation(session_id, contact_uid, now))
    }

    #[allow(missing_docs)]
    pub fn mark_held(&mut self, id: i64) -> Result<bool, StoreError> {
        self.write(|tx| tx.mark_held(id))
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
