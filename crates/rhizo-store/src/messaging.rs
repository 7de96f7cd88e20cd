//! Contacts, conversations, messages (with the outbox) and the persisted seen-set.
//!
//! ```text
//!  contacts ─┬─ contact_devices          (who, and which devices speak for them)
//!            └─ conversations ── messages (history; outgoing rows not yet delivered = outbox)
//!  seen                                   (sender_device, session, seq) already accepted
//! ```
//!
//! Every multi-row change is one transaction. Times are unix milliseconds passed in by the caller.

use rusqlite::{OptionalExtension, Row, Transaction, params};

use crate::{
    Store,
    error::{SqliteContext, StoreError},
};

/// Profiles live in [`crate::profiles`]; re-exported here next to the other conversation data.
pub use crate::profiles::{ProfileRow, upsert_profile_tx};

/// Longest contact name.
pub const MAX_CONTACT_NAME_CHARS: usize = 64;
/// Most devices remembered per contact.
pub const MAX_DEVICES_PER_CONTACT: usize = 16;
/// Most messages returned by one history query.
pub const MAX_HISTORY: usize = 10_000;
/// A `next_attempt_at` that is never due: the row is final where it is (e.g. a receipt once
/// mailbox replicas hold it). [`Store::outbox_due`] never returns such a row and
/// [`Store::outbox_next_attempt`] ignores it.
pub const NO_RETRY: i64 = i64::MAX;

/// A device of a contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactDevice {
    /// Its Ed25519 public key.
    pub device_pk: [u8; 32],
    /// Its libp2p PeerId (derived from `device_pk`), as text.
    pub peer_id: String,
    /// Where it was last reachable (multiaddrs).
    pub addrs: Vec<String>,
    /// Its certificate from the contact's root key, when known.
    pub certificate: Option<Vec<u8>>,
}

/// A contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The contact's UID.
    pub uid: [u8; 32],
    /// Their root public key (UID = hash of it).
    pub root_pk: [u8; 32],
    /// The local name for them (unique).
    pub name: String,
    /// Whether the safety number was compared.
    pub verified: bool,
    /// When added (unix ms).
    pub added_at: i64,
    /// Their devices.
    pub devices: Vec<ContactDevice>,
}

/// What [`Store::add_contact`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddContact {
    /// A new contact.
    Added,
    /// A known contact (same UID): devices and addresses were merged.
    Updated,
}

/// Where an outgoing message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Persisted, not yet handed to any device of the recipient.
    Queued,
    /// Handed over, no receipt yet.
    Sent,
    /// Held by mailbox replicas for the offline recipient (how many: [`MessageRow::replicas`]);
    /// direct delivery is still retried, slowly.
    Stored,
    /// A device of the recipient signed a delivery receipt.
    Delivered,
    /// The recipient's client showed it.
    Read,
    /// Refused by the recipient (see the error).
    Failed,
    /// An incoming message, stored.
    Received,
}

impl MessageState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Stored => "stored",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
            Self::Received => "received",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "sent" => Self::Sent,
            "stored" => Self::Stored,
            "delivered" => Self::Delivered,
            "read" => Self::Read,
            "failed" => Self::Failed,
            "received" => Self::Received,
            _ => Self::Queued,
        }
    }

    /// Rank for monotone updates: a state never goes back.
    fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Sent => 1,
            Self::Stored => 2,
            Self::Delivered | Self::Failed | Self::Received => 3,
            Self::Read => 4,
        }
    }
}

impl std::fmt::Display for MessageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A conversation row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationRow {
    /// The envelope session id (16 bytes).
    pub session_id: [u8; 16],
    /// The MLS group id.
    pub group_id: Vec<u8>,
    /// The contact it is with.
    pub contact_uid: [u8; 32],
    /// When created (unix ms).
    pub created_at: i64,
}

/// One message of a conversation's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRow {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// Whether we sent it.
    pub outgoing: bool,
    /// The sending device.
    pub sender_device: [u8; 32],
    /// The sender's sequence number.
    pub seq: u64,
    /// `text`, `welcome`, `commit`, …
    pub kind: String,
    /// The text, for text messages.
    pub body: Option<String>,
    /// Sender's timestamp (unix ms).
    pub sent_at: i64,
    /// When it arrived (incoming) or was delivered.
    pub received_at: Option<i64>,
    /// State.
    pub state: MessageState,
    /// Attempts so far (outgoing).
    pub attempts: u32,
    /// Last error (outgoing).
    pub error: Option<String>,
    /// How many mailbox replicas acknowledged holding it (outgoing, once `stored`).
    pub replicas: Option<u32>,
}

/// An outgoing message to be persisted before it is sent.
#[derive(Debug, Clone)]
pub struct NewOutgoing<'a> {
    /// The conversation.
    pub session_id: [u8; 16],
    /// Our device.
    pub sender_device: [u8; 32],
    /// Its sequence number (from [`Store::take_next_seq`]).
    pub seq: u64,
    /// Kind.
    pub kind: &'a str,
    /// Text, for text messages.
    pub body: Option<&'a str>,
    /// Timestamp (unix ms).
    pub sent_at: i64,
    /// The signed envelope to send.
    pub envelope: &'a [u8],
}

/// An outbox entry due for a (re)send.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// The recipient.
    pub contact_uid: [u8; 32],
    /// The sequence number.
    pub seq: u64,
    /// `text`, `welcome`, `commit`, …
    pub kind: String,
    /// The signed envelope.
    pub envelope: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// `Queued` or `Sent`, or `Stored` when mailbox replicas already hold it (then only direct
    /// delivery is retried).
    pub state: MessageState,
}

/// Outgoing messages not yet delivered, per contact and state (from [`Store::outbox_summary`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSummaryRow {
    /// The recipient.
    pub contact_uid: [u8; 32],
    /// `Queued`, `Sent` or `Stored`.
    pub state: MessageState,
    /// How many messages.
    pub count: u64,
    /// The oldest one's timestamp (`sent_at`, unix ms).
    pub oldest: i64,
    /// The fewest replicas holding one of them (`Stored` only).
    pub replicas_min: Option<u32>,
}

pub(crate) fn blob<const N: usize>(v: Vec<u8>) -> Result<[u8; N], rusqlite::Error> {
    let len = v.len();
    <[u8; N]>::try_from(v).map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Blob,
            format!("expected {N} bytes, found {len}").into(),
        )
    })
}

fn join_addrs(addrs: &[String]) -> String {
    addrs.join("\n")
}

fn split_addrs(s: &str) -> Vec<String> {
    s.lines()
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

fn message_row(row: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: row.get(0)?,
        session_id: blob(row.get(1)?)?,
        outgoing: row.get::<_, String>(2)? == "out",
        sender_device: blob(row.get(3)?)?,
        seq: row.get::<_, i64>(4)? as u64,
        kind: row.get(5)?,
        body: row.get(6)?,
        sent_at: row.get(7)?,
        received_at: row.get(8)?,
        state: MessageState::parse(&row.get::<_, String>(9)?),
        attempts: row.get::<_, i64>(10)? as u32,
        error: row.get(11)?,
        replicas: row.get::<_, Option<i64>>(12)?.map(|n| n as u32),
    })
}

const MESSAGE_COLUMNS: &str = "id, session_id, direction, sender_device, seq, kind, body, \
                               sent_at, received_at, state, attempts, error, replicas";

impl Store {
    /// Adds a contact or, if the UID is known, merges its devices. A different UID under a
    /// name already in use is refused ([`StoreError::NameTaken`]), and so is a device key that
    /// is already listed for another contact ([`StoreError::DeviceKeyTaken`]): one device key
    /// belongs to at most one contact. Nothing is changed when it is refused.
    pub fn add_contact(&mut self, contact: &Contact, now: i64) -> Result<AddContact, StoreError> {
        const CTX: &str = "adding a contact";
        if contact.name.trim().is_empty() || contact.name.chars().count() > MAX_CONTACT_NAME_CHARS {
            return Err(StoreError::InvalidInput(format!(
                "a contact name has 1 to {MAX_CONTACT_NAME_CHARS} characters"
            )));
        }
        let tx = self.conn.transaction().context(CTX)?;
        let by_name: Option<Vec<u8>> = tx
            .query_row(
                "SELECT uid FROM contacts WHERE name = ?1",
                [&contact.name],
                |r| r.get(0),
            )
            .optional()
            .context(CTX)?;
        if let Some(uid) = &by_name
            && uid.as_slice() != contact.uid
        {
            return Err(StoreError::NameTaken(contact.name.clone()));
        }
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM contacts WHERE uid = ?1",
                [&contact.uid[..]],
                |_| Ok(()),
            )
            .optional()
            .context(CTX)?
            .is_some();
        let outcome = if exists {
            tx.execute(
                "UPDATE contacts SET updated_at = ?2 WHERE uid = ?1",
                params![&contact.uid[..], now],
            )
            .context(CTX)?;
            AddContact::Updated
        } else {
            tx.execute(
                "INSERT INTO contacts (uid, root_pk, name, verified, added_at, updated_at)
                 VALUES (?1, ?2, ?3, 0, ?4, ?4)",
                params![&contact.uid[..], &contact.root_pk[..], contact.name, now],
            )
            .context(CTX)?;
            AddContact::Added
        };
        upsert_devices(&tx, &contact.uid, &contact.devices)?;
        tx.commit().context(CTX)?;
        Ok(outcome)
    }

    /// Replaces what is known of a contact's devices' addresses and certificates (merging).
    /// A device key listed for another contact is refused ([`StoreError::DeviceKeyTaken`]).
    pub fn update_contact_devices(
        &mut self,
        uid: &[u8; 32],
        devices: &[ContactDevice],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().context("updating devices")?;
        upsert_devices(&tx, uid, devices)?;
        tx.commit().context("updating devices")
    }

    /// All contacts, by name.
    pub fn list_contacts(&self) -> Result<Vec<Contact>, StoreError> {
        const CTX: &str = "listing contacts";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid, root_pk, name, verified, added_at FROM contacts ORDER BY name",
            )
            .context(CTX)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Contact {
                    uid: blob(r.get(0)?)?,
                    root_pk: blob(r.get(1)?)?,
                    name: r.get(2)?,
                    verified: r.get::<_, i64>(3)? != 0,
                    added_at: r.get(4)?,
                    devices: Vec::new(),
                })
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        let mut out = Vec::with_capacity(rows.len());
        for mut c in rows {
            c.devices = self.contact_devices(&c.uid)?;
            out.push(c);
        }
        Ok(out)
    }

    fn contact_devices(&self, uid: &[u8; 32]) -> Result<Vec<ContactDevice>, StoreError> {
        const CTX: &str = "reading contact devices";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT device_pk, peer_id, addrs, certificate FROM contact_devices
                 WHERE uid = ?1 ORDER BY device_pk",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], |r| {
            Ok(ContactDevice {
                device_pk: blob(r.get(0)?)?,
                peer_id: r.get(1)?,
                addrs: split_addrs(&r.get::<_, String>(2)?),
                certificate: r.get(3)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// A contact by its local name.
    pub fn contact_by_name(&self, name: &str) -> Result<Option<Contact>, StoreError> {
        Ok(self.list_contacts()?.into_iter().find(|c| c.name == name))
    }

    /// A contact by UID.
    pub fn contact_by_uid(&self, uid: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        const CTX: &str = "reading a contact";
        let contact = self
            .conn
            .prepare_cached(
                "SELECT uid, root_pk, name, verified, added_at FROM contacts WHERE uid = ?1",
            )
            .context(CTX)?
            .query_row([&uid[..]], |r| {
                Ok(Contact {
                    uid: blob(r.get(0)?)?,
                    root_pk: blob(r.get(1)?)?,
                    name: r.get(2)?,
                    verified: r.get::<_, i64>(3)? != 0,
                    added_at: r.get(4)?,
                    devices: Vec::new(),
                })
            })
            .optional()
            .context(CTX)?;
        let Some(mut contact) = contact else {
            return Ok(None);
        };
        contact.devices = self.contact_devices(&contact.uid)?;
        Ok(Some(contact))
    }

    /// The contact with UID `uid` if `device_pk` is one of its listed devices: how an envelope's
    /// (`sender_id`, `sender_device`) is resolved. `None` when the UID is not a contact or the
    /// device is not listed for it.
    pub fn contact_by_uid_device(
        &self,
        uid: &[u8; 32],
        device_pk: &[u8; 32],
    ) -> Result<Option<Contact>, StoreError> {
        let listed = self
            .conn
            .prepare_cached("SELECT 1 FROM contact_devices WHERE uid = ?1 AND device_pk = ?2")
            .context("finding a device")?
            .query_row(params![&uid[..], &device_pk[..]], |_| Ok(()))
            .optional()
            .context("finding a device")?
            .is_some();
        if !listed {
            return Ok(None);
        }
        self.contact_by_uid(uid)
    }

    /// The contact one of whose devices is `device_pk` (at most one: a device key belongs to
    /// one contact). To resolve an envelope's sender use [`Store::contact_by_uid_device`],
    /// which also checks the UID the sender claims.
    pub fn contact_by_device(&self, device_pk: &[u8; 32]) -> Result<Option<Contact>, StoreError> {
        let uid: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT uid FROM contact_devices WHERE device_pk = ?1",
                [&device_pk[..]],
                |r| r.get(0),
            )
            .optional()
            .context("finding a device")?;
        match uid {
            Some(uid) => self.contact_by_uid(&blob(uid).context("finding a device")?),
            None => Ok(None),
        }
    }

    /// Marks a contact verified (safety number compared) or not.
    pub fn set_contact_verified(
        &mut self,
        uid: &[u8; 32],
        verified: bool,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE contacts SET verified = ?2 WHERE uid = ?1",
                params![&uid[..], verified as i64],
            )
            .context("verifying a contact")?
            > 0)
    }

    /// Records a new conversation.
    pub fn insert_conversation(&mut self, row: &ConversationRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO conversations (session_id, group_id, contact_uid, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    &row.session_id[..],
                    row.group_id,
                    &row.contact_uid[..],
                    row.created_at
                ],
            )
            .context("creating a conversation")?;
        Ok(())
    }

    /// The conversations with a contact, oldest first.
    pub fn conversations_with(&self, uid: &[u8; 32]) -> Result<Vec<ConversationRow>, StoreError> {
        const CTX: &str = "reading conversations";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT session_id, group_id, contact_uid, created_at FROM conversations
                 WHERE contact_uid = ?1 ORDER BY created_at, session_id",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], conversation_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// A conversation by session id.
    pub fn conversation(
        &self,
        session_id: &[u8; 16],
    ) -> Result<Option<ConversationRow>, StoreError> {
        conversation_tx(&self.conn, session_id)
    }

    /// Takes the next sequence number of a conversation (persisted before use, so a number is
    /// never handed out twice, also across a crash).
    pub fn take_next_seq(&mut self, session_id: &[u8; 16]) -> Result<u64, StoreError> {
        take_next_seq_tx(&self.conn, session_id)
    }

    /// Persists an outgoing message as `queued`; returns its row id.
    pub fn insert_outgoing(&mut self, m: &NewOutgoing<'_>, now: i64) -> Result<i64, StoreError> {
        insert_outgoing_tx(&self.conn, m, now)
    }

    /// Outgoing messages not yet delivered (queued, sent or stored) whose next attempt is due,
    /// oldest first. A row whose next attempt is [`NO_RETRY`] is never due.
    pub fn outbox_due(&self, now: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        const CTX: &str = "reading the outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.session_id, c.contact_uid, m.seq, m.envelope, m.attempts, m.kind,
                        m.state
                 FROM messages m JOIN conversations c ON c.session_id = m.session_id
                 WHERE m.direction = 'out' AND m.state IN ('queued', 'sent', 'stored')
                   AND m.next_attempt_at <= ?1 AND m.next_attempt_at < ?3
                   AND m.envelope IS NOT NULL
                 ORDER BY m.id LIMIT ?2",
            )
            .context(CTX)?;
        stmt.query_map(params![now, limit as i64, NO_RETRY], |r| {
            Ok(OutboxItem {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                contact_uid: blob(r.get(2)?)?,
                seq: r.get::<_, i64>(3)? as u64,
                envelope: r.get(4)?,
                attempts: r.get::<_, i64>(5)? as u32,
                kind: r.get(6)?,
                state: MessageState::parse(&r.get::<_, String>(7)?),
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// The earliest next attempt in the outbox (queued, sent or stored), if any; rows whose next
    /// attempt is [`NO_RETRY`] are ignored.
    pub fn outbox_next_attempt(&self) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(next_attempt_at) FROM messages
                 WHERE direction = 'out' AND state IN ('queued', 'sent', 'stored')
                   AND next_attempt_at < ?1",
                [NO_RETRY],
                |r| r.get(0),
            )
            .context("reading the outbox")
    }

    /// Outgoing messages not yet delivered (queued, sent or stored), counted per contact and
    /// state, by contact then state. Rows that are final where they are (next attempt
    /// [`NO_RETRY`], e.g. receipts held by replicas) are left out: nothing is pending for them.
    pub fn outbox_summary(&self) -> Result<Vec<OutboxSummaryRow>, StoreError> {
        const CTX: &str = "summarising the outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.contact_uid, m.state, count(*), min(m.sent_at), min(m.replicas)
                 FROM messages m JOIN conversations c ON c.session_id = m.session_id
                 WHERE m.direction = 'out' AND m.state IN ('queued', 'sent', 'stored')
                   AND m.next_attempt_at < ?1
                 GROUP BY c.contact_uid, m.state
                 ORDER BY c.contact_uid, m.state",
            )
            .context(CTX)?;
        let mut rows = stmt
            .query_map([NO_RETRY], |r| {
                Ok(OutboxSummaryRow {
                    contact_uid: blob(r.get(0)?)?,
                    state: MessageState::parse(&r.get::<_, String>(1)?),
                    count: r.get::<_, i64>(2)? as u64,
                    oldest: r.get(3)?,
                    replicas_min: r.get::<_, Option<i64>>(4)?.map(|n| n as u32),
                })
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        // By contact, then by how far along (queued, sent, stored).
        rows.sort_by_key(|r| (r.contact_uid, r.state.rank()));
        Ok(rows)
    }

    /// Records that `replicas` mailbox replicas hold an outgoing message that is queued, sent or
    /// already stored: it becomes `stored`, keeps the largest replica count reported, counts an
    /// attempt, clears the error and is next tried (directly) at `next_attempt_at` ([`NO_RETRY`]
    /// for a row that is final once stored, such as a receipt). `at` is when the replicas
    /// acknowledged (unix ms); it is not persisted. True if the row changed state or replica
    /// count; false for an unknown row, an incoming one, or one already delivered, read or
    /// failed (a state never goes back).
    pub fn mark_stored(
        &mut self,
        id: i64,
        replicas: u32,
        next_attempt_at: i64,
        at: i64,
    ) -> Result<bool, StoreError> {
        const CTX: &str = "marking a message stored";
        let tx = self.conn.transaction().context(CTX)?;
        let before: Option<(String, Option<i64>)> = tx
            .query_row(
                "SELECT state, replicas FROM messages
                 WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .context(CTX)?;
        let Some((state, old_replicas)) = before else {
            return Ok(false);
        };
        let new_replicas = old_replicas.unwrap_or(0).max(i64::from(replicas));
        tx.execute(
            "UPDATE messages SET state = 'stored', replicas = ?2, attempts = attempts + 1,
               next_attempt_at = ?3, error = NULL
             WHERE id = ?1",
            params![id, new_replicas, next_attempt_at],
        )
        .context(CTX)?;
        tx.commit().context(CTX)?;
        tracing::trace!(
            id,
            replicas = new_replicas,
            at,
            "message held by mailbox replicas"
        );
        Ok(state != "stored" || old_replicas != Some(new_replicas))
    }

    /// Records a failed attempt on a queued, sent or stored message: its state stays, the next
    /// attempt is at `next_attempt_at`.
    pub fn record_attempt_failed(
        &mut self,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?2, error = ?3
                 WHERE id = ?1 AND state IN ('queued', 'sent', 'stored')",
                params![id, next_attempt_at, error],
            )
            .context("recording a send attempt")?;
        Ok(())
    }

    /// Moves a message forward to `state` (never backwards); true when it changed.
    pub fn advance_message_state(
        &mut self,
        id: i64,
        state: MessageState,
        at: i64,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.transaction(|tx| advance_message_state_tx(tx, id, state, at, error))
    }

    /// Like [`transaction`](Self::transaction), but this one commit does not wait for the disk
    /// (`synchronous = NORMAL` for it; in WAL mode the database stays consistent and the commit
    /// is durable against a crash of the process, and against power loss once any later
    /// ordinary commit has synced the log, which holds it). Only for changes that are redone
    /// if lost, never for what acknowledges something to a peer or the user: e.g. marking a
    /// message delivered from its receipt (lost → it is sent again and the recipient answers
    /// "already have it").
    pub fn transaction_relaxed<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        const CTX: &str = "switching the sync mode";
        self.conn
            .execute_batch("PRAGMA synchronous = NORMAL")
            .context(CTX)?;
        let out = self.transaction(f);
        // Back to FULL before anything else commits; if even that failed, say so.
        self.conn
            .execute_batch("PRAGMA synchronous = FULL")
            .context(CTX)?;
        out
    }

    /// The outgoing message with this (session, our device, seq).
    pub fn outgoing_message_id(
        &self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM messages WHERE session_id = ?1 AND sender_device = ?2
                   AND seq = ?3 AND direction = 'out'",
                params![&session_id[..], &sender_device[..], seq as i64],
                |r| r.get(0),
            )
            .optional()
            .context("finding a message")
    }

    /// A conversation's history in order: by sender timestamp, then sender, then sequence.
    pub fn messages(
        &self,
        session_id: &[u8; 16],
        limit: usize,
    ) -> Result<Vec<MessageRow>, StoreError> {
        const CTX: &str = "reading messages";
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = ?1 AND kind = 'text'
             ORDER BY sent_at DESC, sender_device DESC, seq DESC LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        let mut rows = stmt
            .query_map(
                params![&session_id[..], limit.min(MAX_HISTORY) as i64],
                message_row,
            )
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        // Newest N were selected; show them oldest first.
        rows.reverse();
        Ok(rows)
    }

    /// One message by id.
    pub fn message(&self, id: i64) -> Result<Option<MessageRow>, StoreError> {
        let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], message_row)
            .optional()
            .context("reading a message")
    }

    /// Runs `f` in one write transaction on the store's connection (for callers that must make
    /// several changes — e.g. MLS state through openmls' storage and a message row — atomic).
    /// Commits when `f` returns `Ok`; rolls everything back when it returns `Err`.
    pub fn transaction<T, E: From<StoreError>>(
        &mut self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .context("starting a transaction")?;
        let out = f(&tx)?;
        tx.commit().context("committing a transaction")?;
        Ok(out)
    }

    /// The underlying connection (read-only uses, such as openmls' storage provider outside a
    /// transaction).
    pub fn connection(&self) -> &rusqlite::Connection {
        &self.conn
    }

    /// Removes the seen-set entries whose *envelope timestamp* is below `before` (unix ms; the
    /// node passes `rhizo_core::seen::prune_cutoff(now)`).
    pub fn prune_seen(&mut self, before: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM seen WHERE envelope_ts < ?1", [before])
            .context("pruning the seen-set")
    }
}

/// Inside a transaction: inserts (sender_device, session, seq) into the seen-set with the
/// envelope's own signed `timestamp` (unix ms), which [`Store::prune_seen`] compares against —
/// not the time it was received, so an entry lives exactly as long as the replay window can
/// accept its envelope. `true` if it was new, `false` if it had been seen (a replay or
/// duplicate).
pub fn seen_insert(
    tx: &Transaction<'_>,
    sender_device: &[u8; 32],
    session_id: &[u8; 16],
    seq: u64,
    envelope_timestamp: i64,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "INSERT OR IGNORE INTO seen (sender_device, session_id, seq, envelope_ts)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                &sender_device[..],
                &session_id[..],
                seq as i64,
                envelope_timestamp
            ],
        )
        .context("updating the seen-set")?
        == 1)
}

/// [`Store::advance_message_state`] inside a caller's transaction.
pub fn advance_message_state_tx(
    tx: &Transaction<'_>,
    id: i64,
    state: MessageState,
    at: i64,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    const CTX: &str = "updating a message";
    let current: Option<String> = tx
        .prepare_cached("SELECT state FROM messages WHERE id = ?1")
        .context(CTX)?
        .query_row([id], |row| row.get(0))
        .optional()
        .context(CTX)?;
    let Some(current) = current else {
        return Ok(false);
    };
    if MessageState::parse(&current).rank() >= state.rank() {
        return Ok(false);
    }
    tx.prepare_cached(
        "UPDATE messages SET state = ?2, received_at = coalesce(received_at, ?3),
           error = ?4, attempts = attempts + (?2 = 'sent')
         WHERE id = ?1",
    )
    .context(CTX)?
    .execute(params![id, state.as_str(), at, error])
    .context(CTX)?;
    Ok(true)
}

/// [`Store::record_attempt_failed`] inside a caller's transaction.
pub fn record_attempt_failed_tx(
    tx: &Transaction<'_>,
    id: i64,
    next_attempt_at: i64,
    error: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE messages SET attempts = attempts + 1, next_attempt_at = ?2, error = ?3
         WHERE id = ?1 AND state IN ('queued', 'sent', 'stored')",
    )
    .context("recording a send attempt")?
    .execute(params![id, next_attempt_at, error])
    .context("recording a send attempt")?;
    Ok(())
}

/// Runs `f` inside a savepoint of `tx`: what it changed is kept when it returns `Ok` and rolled
/// back when it returns `Err`, leaving the transaction usable either way. This is how one
/// transaction applies several independent items (group commit) where each may be refused on
/// its own. The outer `Result` is the savepoint's own failure.
pub fn in_savepoint<T, E>(
    tx: &Transaction<'_>,
    f: impl FnOnce() -> Result<T, E>,
) -> Result<Result<T, E>, StoreError> {
    const CTX: &str = "using a savepoint";
    tx.execute_batch("SAVEPOINT item").context(CTX)?;
    let out = f();
    let sql = if out.is_ok() {
        "RELEASE item"
    } else {
        "ROLLBACK TO item; RELEASE item"
    };
    tx.execute_batch(sql).context(CTX)?;
    Ok(out)
}

/// Whether (sender_device, session, seq) is in the seen-set.
pub fn seen_contains(
    conn: &rusqlite::Connection,
    sender_device: &[u8; 32],
    session_id: &[u8; 16],
    seq: u64,
) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM seen WHERE sender_device = ?1 AND session_id = ?2 AND seq = ?3",
            params![&sender_device[..], &session_id[..], seq as i64],
            |_| Ok(()),
        )
        .optional()
        .context("reading the seen-set")?
        .is_some())
}

/// An incoming message to store.
#[derive(Debug, Clone)]
pub struct NewIncoming<'a> {
    /// The conversation.
    pub session_id: [u8; 16],
    /// The sending device.
    pub sender_device: [u8; 32],
    /// Its sequence number.
    pub seq: u64,
    /// Kind.
    pub kind: &'a str,
    /// The text.
    pub body: Option<&'a str>,
    /// Sender's timestamp (unix ms).
    pub sent_at: i64,
    /// Digest of the envelope it came in (named by read receipts).
    pub digest: [u8; 32],
}

/// An incoming message shown to the user but not yet acknowledged as read.
#[derive(Debug, Clone)]
pub struct UnreadMessage {
    /// Row id.
    pub id: i64,
    /// The sending device.
    pub sender_device: [u8; 32],
    /// Its sequence number.
    pub seq: u64,
    /// The envelope digest.
    pub digest: [u8; 32],
}

/// Inside a transaction: marks a conversation's received messages read; returns them.
pub fn mark_read_tx(
    tx: &Transaction<'_>,
    session_id: &[u8; 16],
    limit: usize,
) -> Result<Vec<UnreadMessage>, StoreError> {
    const CTX: &str = "marking messages read";
    let unread = {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, sender_device, seq, digest FROM messages
                 WHERE session_id = ?1 AND direction = 'in' AND state = 'received'
                   AND digest IS NOT NULL
                 ORDER BY id LIMIT ?2",
            )
            .context(CTX)?;
        stmt.query_map(params![&session_id[..], limit as i64], |r| {
            Ok(UnreadMessage {
                id: r.get(0)?,
                sender_device: blob(r.get(1)?)?,
                seq: r.get::<_, i64>(2)? as u64,
                digest: blob(r.get(3)?)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)?
    };
    for m in &unread {
        tx.execute("UPDATE messages SET state = 'read' WHERE id = ?1", [m.id])
            .context(CTX)?;
    }
    Ok(unread)
}

/// Inside a transaction: our outgoing message (session, our device, seq) becomes `read` (from
/// queued, sent, stored or delivered), if `envelope_matches` accepts the envelope we sent (the
/// receipt names its digest); returns its id when it changed.
pub fn mark_outgoing_read_tx(
    tx: &Transaction<'_>,
    session_id: &[u8; 16],
    sender_device: &[u8; 32],
    seq: u64,
    at: i64,
    envelope_matches: impl Fn(&[u8]) -> bool,
) -> Result<Option<i64>, StoreError> {
    if !sent_envelope_matches(tx, session_id, sender_device, seq, envelope_matches)? {
        return Ok(None);
    }
    tx.query_row(
        "UPDATE messages SET state = 'read', received_at = coalesce(received_at, ?4)
         WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
           AND state IN ('queued', 'sent', 'stored', 'delivered')
         RETURNING id",
        params![&session_id[..], &sender_device[..], seq as i64, at],
        |r| r.get(0),
    )
    .optional()
    .context("marking a message read")
}

/// Inside a transaction: our outgoing message (session, our device, seq) becomes `delivered`
/// (from queued, sent or stored only: a read or failed message stays), if `envelope_matches`
/// accepts the envelope we sent (the receipt names its digest); returns its id when it changed.
pub fn mark_outgoing_delivered_tx(
    tx: &Transaction<'_>,
    session_id: &[u8; 16],
    sender_device: &[u8; 32],
    seq: u64,
    at: i64,
    envelope_matches: impl Fn(&[u8]) -> bool,
) -> Result<Option<i64>, StoreError> {
    if !sent_envelope_matches(tx, session_id, sender_device, seq, envelope_matches)? {
        return Ok(None);
    }
    tx.query_row(
        "UPDATE messages SET state = 'delivered', received_at = coalesce(received_at, ?4)
         WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
           AND state IN ('queued', 'sent', 'stored')
         RETURNING id",
        params![&session_id[..], &sender_device[..], seq as i64, at],
        |r| r.get(0),
    )
    .optional()
    .context("marking a message delivered")
}

/// Our newest outgoing self-update (commit) of a conversation, as [`Store::latest_commits`]
/// lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommit {
    /// Row id.
    pub id: i64,
    /// The conversation.
    pub session_id: [u8; 16],
    /// The conversation's MLS group id.
    pub group_id: Vec<u8>,
    /// Its state.
    pub state: MessageState,
    /// The signed envelope carrying it.
    pub envelope: Vec<u8>,
    /// When it was made (unix ms).
    pub sent_at: i64,
}

impl Store {
    /// The newest outgoing commit of each open conversation (at most `limit`, oldest
    /// conversations first): what a pending self-update is checked against.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn latest_commits(&self, limit: usize) -> Result<Vec<SentCommit>, StoreError> {
        const CTX: &str = "reading sent commits";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.session_id, c.group_id, m.state, m.envelope, m.sent_at
                 FROM conversations c JOIN messages m ON m.id = (
                     SELECT max(id) FROM messages
                     WHERE session_id = c.session_id AND direction = 'out' AND kind = 'commit')
                 WHERE c.closed_at IS NULL AND m.envelope IS NOT NULL
                 ORDER BY c.created_at, c.session_id LIMIT ?1",
            )
            .context(CTX)?;
        stmt.query_map([limit as i64], |r| {
            Ok(SentCommit {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                group_id: r.get(2)?,
                state: MessageState::parse(&r.get::<_, String>(3)?),
                envelope: r.get(4)?,
                sent_at: r.get(5)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// Makes a queued, sent or stored outgoing message due now (`now`), e.g. to resend a
    /// self-update that waited too long for its receipt. True if it changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn make_due(&mut self, id: i64, now: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE messages SET next_attempt_at = ?2
                 WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')
                   AND next_attempt_at > ?2",
                params![id, now],
            )
            .context("rescheduling a message")?
            == 1)
    }
}

/// Inside a transaction: our outgoing message (session, our device, seq) becomes `failed` with
/// `error` (from queued, sent or stored only), if `envelope_matches` accepts the envelope we
/// sent; returns its id when it changed.
pub fn mark_outgoing_failed_tx(
    tx: &Transaction<'_>,
    session_id: &[u8; 16],
    sender_device: &[u8; 32],
    seq: u64,
    at: i64,
    error: &str,
    envelope_matches: impl Fn(&[u8]) -> bool,
) -> Result<Option<i64>, StoreError> {
    if !sent_envelope_matches(tx, session_id, sender_device, seq, envelope_matches)? {
        return Ok(None);
    }
    tx.query_row(
        "UPDATE messages SET state = 'failed', error = ?5, next_attempt_at = ?6,
           received_at = coalesce(received_at, ?4)
         WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3 AND direction = 'out'
           AND state IN ('queued', 'sent', 'stored')
         RETURNING id",
        params![
            &session_id[..],
            &sender_device[..],
            seq as i64,
            at,
            error,
            NO_RETRY
        ],
        |r| r.get(0),
    )
    .optional()
    .context("marking a message failed")
}

/// Whether we sent (session, our device, seq) with an envelope that `envelope_matches` accepts.
fn sent_envelope_matches(
    tx: &Transaction<'_>,
    session_id: &[u8; 16],
    sender_device: &[u8; 32],
    seq: u64,
    envelope_matches: impl Fn(&[u8]) -> bool,
) -> Result<bool, StoreError> {
    let sent: Option<Vec<u8>> = tx
        .query_row(
            "SELECT envelope FROM messages WHERE session_id = ?1 AND sender_device = ?2
               AND seq = ?3 AND direction = 'out' AND envelope IS NOT NULL",
            params![&session_id[..], &sender_device[..], seq as i64],
            |r| r.get(0),
        )
        .optional()
        .context("reading a sent envelope")?;
    Ok(sent.is_some_and(|e| envelope_matches(&e)))
}

/// Inside a transaction: stores an incoming message; `None` if it was already stored.
pub fn insert_incoming(
    tx: &Transaction<'_>,
    m: &NewIncoming<'_>,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let n = tx
        .execute(
            "INSERT OR IGNORE INTO messages (session_id, direction, sender_device, seq, kind,
                body, sent_at, received_at, state, digest)
             VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8)",
            params![
                &m.session_id[..],
                &m.sender_device[..],
                m.seq as i64,
                m.kind,
                m.body,
                m.sent_at,
                now,
                &m.digest[..]
            ],
        )
        .context("storing a message")?;
    Ok((n == 1).then(|| tx.last_insert_rowid()))
}

/// Inside a transaction: records a conversation created by a peer's Welcome (ignored if known).
pub fn insert_conversation_tx(
    tx: &Transaction<'_>,
    row: &ConversationRow,
) -> Result<bool, StoreError> {
    Ok(tx
        .execute(
            "INSERT OR IGNORE INTO conversations (session_id, group_id, contact_uid, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                &row.session_id[..],
                row.group_id,
                &row.contact_uid[..],
                row.created_at
            ],
        )
        .context("creating a conversation")?
        == 1)
}

/// Inside a transaction: takes the next sequence number of a conversation.
pub fn take_next_seq_tx(
    tx: &rusqlite::Connection,
    session_id: &[u8; 16],
) -> Result<u64, StoreError> {
    let seq: i64 = tx
        .query_row(
            "UPDATE conversations SET next_seq = next_seq + 1 WHERE session_id = ?1
             RETURNING next_seq - 1",
            [&session_id[..]],
            |r| r.get(0),
        )
        .context("taking a sequence number")?;
    Ok(seq as u64)
}

/// Inside a transaction: persists an outgoing message as `queued`; returns its row id.
pub fn insert_outgoing_tx(
    tx: &rusqlite::Connection,
    m: &NewOutgoing<'_>,
    now: i64,
) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO messages (session_id, direction, sender_device, seq, kind, body,
            sent_at, state, envelope, next_attempt_at)
         VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8)",
        params![
            &m.session_id[..],
            &m.sender_device[..],
            m.seq as i64,
            m.kind,
            m.body,
            m.sent_at,
            m.envelope,
            now
        ],
    )
    .context("queueing a message")?;
    Ok(tx.last_insert_rowid())
}

/// Inside a transaction: a conversation by session id.
pub fn conversation_tx(
    tx: &rusqlite::Connection,
    session_id: &[u8; 16],
) -> Result<Option<ConversationRow>, StoreError> {
    tx.query_row(
        "SELECT session_id, group_id, contact_uid, created_at FROM conversations
         WHERE session_id = ?1",
        [&session_id[..]],
        conversation_row,
    )
    .optional()
    .context("reading a conversation")
}

fn conversation_row(r: &Row<'_>) -> rusqlite::Result<ConversationRow> {
    Ok(ConversationRow {
        session_id: blob(r.get(0)?)?,
        group_id: r.get(1)?,
        contact_uid: blob(r.get(2)?)?,
        created_at: r.get(3)?,
    })
}

fn upsert_devices(
    tx: &Transaction<'_>,
    uid: &[u8; 32],
    devices: &[ContactDevice],
) -> Result<(), StoreError> {
    const CTX: &str = "updating contact devices";
    for d in devices.iter().take(MAX_DEVICES_PER_CONTACT) {
        // Checked here for a clear error; the UNIQUE index on device_pk is the backstop.
        let owner: Option<String> = tx
            .query_row(
                "SELECT c.name FROM contact_devices d JOIN contacts c ON c.uid = d.uid
                 WHERE d.device_pk = ?1 AND d.uid <> ?2",
                params![&d.device_pk[..], &uid[..]],
                |r| r.get(0),
            )
            .optional()
            .context(CTX)?;
        if let Some(contact) = owner {
            return Err(StoreError::DeviceKeyTaken {
                device: d.device_pk.iter().map(|b| format!("{b:02x}")).collect(),
                contact,
            });
        }
        tx.execute(
            "INSERT INTO contact_devices (uid, device_pk, peer_id, addrs, certificate)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (uid, device_pk) DO UPDATE SET
               peer_id = excluded.peer_id,
               addrs = CASE WHEN excluded.addrs = '' THEN addrs ELSE excluded.addrs END,
               certificate = coalesce(excluded.certificate, certificate)",
            params![
                &uid[..],
                &d.device_pk[..],
                d.peer_id,
                join_addrs(&d.addrs),
                d.certificate
            ],
        )
        .context(CTX)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contact(uid: u8, name: &str) -> Contact {
        Contact {
            uid: [uid; 32],
            root_pk: [uid; 32],
            name: name.into(),
            verified: false,
            added_at: 0,
            devices: vec![ContactDevice {
                device_pk: [uid + 100; 32],
                peer_id: format!("peer-{uid}"),
                addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
                certificate: None,
            }],
        }
    }

    #[test]
    fn contacts_add_merge_and_name_clash() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(
            s.add_contact(&contact(1, "bob"), 1).unwrap(),
            AddContact::Added
        );
        assert_eq!(
            s.add_contact(&contact(1, "bob"), 2).unwrap(),
            AddContact::Updated
        );
        let err = s.add_contact(&contact(2, "bob"), 3).unwrap_err();
        assert!(matches!(err, StoreError::NameTaken(_)), "{err}");
        let bob = s.contact_by_name("bob").unwrap().unwrap();
        assert_eq!(bob.devices.len(), 1);
        assert_eq!(
            s.contact_by_device(&[101; 32]).unwrap().unwrap().name,
            "bob"
        );
        assert!(s.set_contact_verified(&[1; 32], true).unwrap());
        assert!(s.contact_by_uid(&[1; 32]).unwrap().unwrap().verified);
    }

    #[test]
    fn a_device_key_belongs_to_one_contact_and_lookups_are_by_uid_and_device() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_contact(&contact(1, "bob"), 1).unwrap();
        // Mallory's ticket lists bob's device (101) next to her own (102).
        let mut mallory = contact(2, "mallory");
        mallory.devices.push(contact(1, "bob").devices.remove(0));
        let err = s.add_contact(&mallory, 2).unwrap_err();
        assert!(
            matches!(&err, StoreError::DeviceKeyTaken { contact, .. } if contact == "bob"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("already listed for your contact 'bob'")
        );
        // Refused as a whole: mallory was not added, not even with her own device.
        assert_eq!(s.contact_by_name("mallory").unwrap(), None);
        assert_eq!(s.contact_by_device(&[102; 32]).unwrap(), None);
        // Nor can a known contact's devices be extended with it.
        s.add_contact(&contact(2, "mallory"), 3).unwrap();
        let taken = s.update_contact_devices(&[2; 32], &contact(1, "x").devices);
        assert!(matches!(taken, Err(StoreError::DeviceKeyTaken { .. })));
        // The device resolves to bob, and only under bob's UID.
        let bob = s.contact_by_uid_device(&[1; 32], &[101; 32]).unwrap();
        assert_eq!(bob.unwrap().name, "bob");
        assert_eq!(s.contact_by_uid_device(&[2; 32], &[101; 32]).unwrap(), None);
        assert_eq!(s.contact_by_uid_device(&[1; 32], &[102; 32]).unwrap(), None);
        assert_eq!(s.contact_by_uid_device(&[9; 32], &[101; 32]).unwrap(), None);
        // Re-adding bob with the same device merges.
        assert_eq!(
            s.add_contact(&contact(1, "bob"), 4).unwrap(),
            AddContact::Updated
        );
    }

    #[test]
    fn outbox_sequence_states_and_seen_set() {
        let mut s = Store::open_in_memory().unwrap();
        s.add_contact(&contact(1, "bob"), 1).unwrap();
        let conv = ConversationRow {
            session_id: [9; 16],
            group_id: vec![1, 2, 3],
            contact_uid: [1; 32],
            created_at: 5,
        };
        s.insert_conversation(&conv).unwrap();
        assert_eq!(s.take_next_seq(&[9; 16]).unwrap(), 1);
        assert_eq!(s.take_next_seq(&[9; 16]).unwrap(), 2);
        let id = s
            .insert_outgoing(
                &NewOutgoing {
                    session_id: [9; 16],
                    sender_device: [7; 32],
                    seq: 1,
                    kind: "text",
                    body: Some("hi"),
                    sent_at: 10,
                    envelope: b"env",
                },
                10,
            )
            .unwrap();
        assert_eq!(s.outbox_due(10, 10).unwrap().len(), 1);
        s.record_attempt_failed(id, 100, "unreachable").unwrap();
        assert!(s.outbox_due(50, 10).unwrap().is_empty());
        assert_eq!(s.outbox_next_attempt().unwrap(), Some(100));
        assert!(
            s.advance_message_state(id, MessageState::Delivered, 60, None)
                .unwrap()
        );
        assert!(
            !s.advance_message_state(id, MessageState::Sent, 61, None)
                .unwrap(),
            "never back"
        );
        assert!(s.outbox_due(1000, 10).unwrap().is_empty());
        assert_eq!(
            s.message(id).unwrap().unwrap().state,
            MessageState::Delivered
        );

        let fresh: bool = s
            .transaction(|tx| seen_insert(tx, &[3; 32], &[9; 16], 1, 70))
            .unwrap();
        // A failed transaction leaves nothing behind.
        let failed: Result<(), StoreError> = s.transaction(|tx| {
            seen_insert(tx, &[4; 32], &[9; 16], 1, 70)?;
            Err(StoreError::InvalidInput("rejected".into()))
        });
        assert!(failed.is_err());
        assert!(!seen_contains(s.connection(), &[4; 32], &[9; 16], 1).unwrap());
        let again: bool = s
            .transaction(|tx| seen_insert(tx, &[3; 32], &[9; 16], 1, 71))
            .unwrap();
        assert!(fresh && !again);
        assert!(seen_contains(s.connection(), &[3; 32], &[9; 16], 1).unwrap());
        assert_eq!(
            s.prune_seen(70).unwrap(),
            0,
            "kept by its envelope timestamp"
        );
        assert_eq!(s.prune_seen(71).unwrap(), 1);
        let stored: Option<i64> = s
            .transaction(|tx| {
                insert_incoming(
                    tx,
                    &NewIncoming {
                        session_id: [9; 16],
                        sender_device: [3; 32],
                        seq: 1,
                        kind: "text",
                        body: Some("yo"),
                        sent_at: 20,
                        digest: [5; 32],
                    },
                    80,
                )
            })
            .unwrap();
        assert!(stored.is_some());
        let history = s.messages(&[9; 16], 100).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].body.as_deref(), Some("hi"));
    }

    /// A store with contacts 1 (bob, session [1; 16]) and 2 (carol, session [2; 16]).
    fn two_conversations() -> Store {
        let mut s = Store::open_in_memory().unwrap();
        for (uid, name) in [(1, "bob"), (2, "carol")] {
            s.add_contact(&contact(uid, name), 1).unwrap();
            s.insert_conversation(&ConversationRow {
                session_id: [uid; 16],
                group_id: vec![uid],
                contact_uid: [uid; 32],
                created_at: 1,
            })
            .unwrap();
        }
        s
    }

    /// Queues a message on `session` from our device [7; 32]; returns its id.
    fn queue(s: &mut Store, session: u8, kind: &str, sent_at: i64) -> i64 {
        let seq = s.take_next_seq(&[session; 16]).unwrap();
        s.insert_outgoing(
            &NewOutgoing {
                session_id: [session; 16],
                sender_device: [7; 32],
                seq,
                kind,
                body: None,
                sent_at,
                envelope: format!("env-{session}-{seq}").as_bytes(),
            },
            sent_at,
        )
        .unwrap()
    }

    fn state(s: &Store, id: i64) -> MessageState {
        s.message(id).unwrap().unwrap().state
    }

    #[test]
    fn states_round_trip_and_rank_in_order() {
        use MessageState::*;
        for st in [Queued, Sent, Stored, Delivered, Read, Failed, Received] {
            assert_eq!(MessageState::parse(st.as_str()), st);
        }
        assert_eq!(Stored.to_string(), "stored");
        assert!(Queued.rank() < Sent.rank() && Sent.rank() < Stored.rank());
        for done in [Delivered, Failed, Received] {
            assert!(Stored.rank() < done.rank() && done.rank() < Read.rank());
        }
    }

    #[test]
    fn stored_then_delivered_then_read_and_never_back() {
        let mut s = two_conversations();
        let id = queue(&mut s, 1, "text", 10);
        assert!(s.mark_stored(id, 2, 1_000, 12).unwrap(), "queued → stored");
        let row = s.message(id).unwrap().unwrap();
        assert_eq!((row.state, row.replicas), (MessageState::Stored, Some(2)));
        assert!(
            !s.advance_message_state(id, MessageState::Sent, 13, None)
                .unwrap(),
            "stored never goes back to sent"
        );

        // A delivery receipt moves it on, once.
        let matches = |e: &[u8]| e == b"env-1-1";
        let delivered = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 1, 20, matches))
            .unwrap();
        assert_eq!(delivered, Some(id));
        let row = s.message(id).unwrap().unwrap();
        assert_eq!(
            (row.state, row.received_at),
            (MessageState::Delivered, Some(20))
        );
        let again: Option<i64> = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 1, 21, matches))
            .unwrap();
        assert_eq!(again, None);

        // Never delivered → stored.
        assert!(!s.mark_stored(id, 3, 2_000, 22).unwrap());
        assert!(
            !s.advance_message_state(id, MessageState::Stored, 22, None)
                .unwrap()
        );
        assert_eq!(state(&s, id), MessageState::Delivered);
        assert_eq!(s.message(id).unwrap().unwrap().replicas, Some(2));

        let read = s
            .transaction(|tx| mark_outgoing_read_tx(tx, &[1; 16], &[7; 32], 1, 30, matches))
            .unwrap();
        assert_eq!(read, Some(id));
        assert_eq!(state(&s, id), MessageState::Read);
        // Read never goes back to delivered (or stored).
        let back: Option<i64> = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 1, 31, matches))
            .unwrap();
        assert_eq!(back, None);
        assert!(!s.mark_stored(id, 3, 2_000, 32).unwrap());
        assert_eq!(state(&s, id), MessageState::Read);
        assert_eq!(s.message(id).unwrap().unwrap().received_at, Some(20));
    }

    #[test]
    fn receipts_need_the_envelope_we_sent() {
        let mut s = two_conversations();
        let id = queue(&mut s, 1, "text", 10);
        let wrong = s
            .transaction(|tx| {
                mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 1, 20, |e| e == b"other")
            })
            .unwrap();
        assert_eq!(wrong, None);
        // Unknown seq, or a device that is not ours.
        let unknown = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 9, 20, |_| true))
            .unwrap();
        let other_device = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[8; 32], 1, 20, |_| true))
            .unwrap();
        assert_eq!((unknown, other_device), (None, None));
        assert_eq!(state(&s, id), MessageState::Queued);
        // A stored message can be read directly (the delivered receipt may come later or never).
        s.mark_stored(id, 1, 1_000, 15).unwrap();
        let read = s
            .transaction(|tx| mark_outgoing_read_tx(tx, &[1; 16], &[7; 32], 1, 30, |_| true))
            .unwrap();
        assert_eq!(read, Some(id));
        let late = s
            .transaction(|tx| mark_outgoing_delivered_tx(tx, &[1; 16], &[7; 32], 1, 31, |_| true))
            .unwrap();
        assert_eq!(late, None, "a late delivered receipt does not undo read");
        assert_eq!(state(&s, id), MessageState::Read);
    }

    #[test]
    fn mark_stored_keeps_the_most_replicas_and_stays_in_the_outbox() {
        let mut s = two_conversations();
        let id = queue(&mut s, 1, "text", 10);
        s.record_attempt_failed(id, 50, "unreachable").unwrap();
        assert!(s.mark_stored(id, 3, 500, 60).unwrap(), "queued → stored");
        let row = s.message(id).unwrap().unwrap();
        assert_eq!(row.replicas, Some(3));
        assert_eq!(row.attempts, 2);
        assert_eq!(row.error, None, "the error is cleared");
        assert!(!s.mark_stored(id, 2, 600, 70).unwrap(), "fewer: unchanged");
        assert!(!s.mark_stored(id, 3, 600, 70).unwrap(), "same: unchanged");
        assert_eq!(s.message(id).unwrap().unwrap().replicas, Some(3));
        assert_eq!(
            s.outbox_next_attempt().unwrap(),
            Some(600),
            "but rescheduled"
        );
        assert!(s.mark_stored(id, 5, 700, 80).unwrap(), "more: changed");
        assert_eq!(s.message(id).unwrap().unwrap().replicas, Some(5));

        // Still retried directly, slowly.
        assert!(s.outbox_due(699, 10).unwrap().is_empty());
        let due = s.outbox_due(700, 10).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].id, due[0].state), (id, MessageState::Stored));
        s.record_attempt_failed(id, 900, "still offline").unwrap();
        let row = s.message(id).unwrap().unwrap();
        assert_eq!(row.state, MessageState::Stored);
        assert_eq!(row.error.as_deref(), Some("still offline"));
        assert_eq!(s.outbox_next_attempt().unwrap(), Some(900));

        // Unknown rows and incoming rows are not touched.
        assert!(!s.mark_stored(9_999, 1, 0, 0).unwrap());
        let incoming: Option<i64> = s
            .transaction(|tx| {
                insert_incoming(
                    tx,
                    &NewIncoming {
                        session_id: [1; 16],
                        sender_device: [101; 32],
                        seq: 1,
                        kind: "text",
                        body: Some("yo"),
                        sent_at: 5,
                        digest: [5; 32],
                    },
                    5,
                )
            })
            .unwrap();
        let incoming = incoming.unwrap();
        assert!(!s.mark_stored(incoming, 1, 0, 0).unwrap());
        assert_eq!(state(&s, incoming), MessageState::Received);
        // Neither are failed ones.
        let failed = queue(&mut s, 1, "text", 11);
        s.advance_message_state(failed, MessageState::Failed, 12, Some("refused"))
            .unwrap();
        assert!(!s.mark_stored(failed, 1, 0, 0).unwrap());
        assert_eq!(state(&s, failed), MessageState::Failed);
    }

    #[test]
    fn a_stored_receipt_is_final_never_due_and_not_pending() {
        let mut s = two_conversations();
        let receipt = queue(&mut s, 1, "receipt", 10);
        let text = queue(&mut s, 1, "text", 11);
        assert!(s.mark_stored(receipt, 2, NO_RETRY, 20).unwrap());
        assert_eq!(s.outbox_next_attempt().unwrap(), Some(11), "only the text");
        let due = s.outbox_due(i64::MAX, 10).unwrap();
        assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![text]);
        assert!(
            s.advance_message_state(text, MessageState::Delivered, 30, None)
                .unwrap()
        );
        assert_eq!(s.outbox_next_attempt().unwrap(), None);
        assert!(s.outbox_due(i64::MAX, 10).unwrap().is_empty());
        assert!(s.outbox_summary().unwrap().is_empty());
        assert_eq!(state(&s, receipt), MessageState::Stored);
    }

    #[test]
    fn outbox_summary_groups_by_contact_and_state() {
        let mut s = two_conversations();
        let b1 = queue(&mut s, 1, "text", 100);
        let b2 = queue(&mut s, 1, "text", 50);
        let b3 = queue(&mut s, 1, "text", 70);
        let _b4 = queue(&mut s, 1, "text", 200);
        let b5 = queue(&mut s, 1, "text", 300);
        let c1 = queue(&mut s, 2, "text", 40);
        let c2 = queue(&mut s, 2, "text", 20);
        s.mark_stored(b1, 3, 1_000, 1).unwrap();
        s.mark_stored(b2, 2, 1_000, 1).unwrap();
        s.advance_message_state(b3, MessageState::Sent, 1, None)
            .unwrap();
        s.advance_message_state(b5, MessageState::Delivered, 1, None)
            .unwrap();
        s.advance_message_state(c1, MessageState::Read, 1, None)
            .unwrap();
        let _ = c2;
        assert_eq!(
            s.outbox_summary().unwrap(),
            vec![
                OutboxSummaryRow {
                    contact_uid: [1; 32],
                    state: MessageState::Queued,
                    count: 1,
                    oldest: 200,
                    replicas_min: None,
                },
                OutboxSummaryRow {
                    contact_uid: [1; 32],
                    state: MessageState::Sent,
                    count: 1,
                    oldest: 70,
                    replicas_min: None,
                },
                OutboxSummaryRow {
                    contact_uid: [1; 32],
                    state: MessageState::Stored,
                    count: 2,
                    oldest: 50,
                    replicas_min: Some(2),
                },
                OutboxSummaryRow {
                    contact_uid: [2; 32],
                    state: MessageState::Queued,
                    count: 1,
                    oldest: 20,
                    replicas_min: None,
                },
            ]
        );
    }
}
