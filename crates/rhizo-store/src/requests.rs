//! Message requests: envelopes from senders who are not contacts, held until the user decides.
//!
//! ```text
//!  inbound envelope, sender not a contact ─▶ hold_request ─▶ request_envelopes (bounded)
//!        blocked sender? ─▶ Blocked        declined conversation? ─▶ SessionDeclined
//!  user: accept ─▶ take_request (the envelopes, oldest first; the rows go) ─▶ normal receive path
//!        decline ─▶ decline_request (rows go; their conversations are remembered as declined)
//!        block ─▶ block_sender (as decline, and later envelopes are refused)
//! ```
//!
//! Nothing here reads a clock: times are the caller's unix milliseconds.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{
    StoreError,
    error::SqliteContext,
    messaging::{ConversationRow, blob},
    tx::{Reader, Tx},
};

/// What a refused conversation's placeholder group id starts with (then its session id): it
/// can never equal a real MLS group id (those are 16 random bytes).
const REFUSED_GROUP_PREFIX: &[u8] = b"refused:";

/// Bounds on what message requests may hold. Defaults keep a flood from throwaway keys within
/// a few MiB while a real first contact (a Welcome and some messages) always fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Envelopes held per sender (UID).
    pub per_sender_envelopes: u64,
    /// Bytes held per sender.
    pub per_sender_bytes: u64,
    /// Senders with pending requests.
    pub senders: u64,
    /// Envelopes held in all.
    pub total_envelopes: u64,
    /// Bytes held in all.
    pub total_bytes: u64,
    /// Blocked senders remembered.
    pub blocked: u64,
}

impl RequestLimits {
    /// The bounds a node uses.
    pub const DEFAULT: Self = Self {
        // A first contact is a Welcome and a handful of texts; 64 leaves room for a chatty one.
        per_sender_envelopes: 64,
        // Two full-size envelopes and change.
        per_sender_bytes: 1024 * 1024,
        senders: 256,
        total_envelopes: 2048,
        total_bytes: 16 * 1024 * 1024,
        blocked: 10_000,
    };
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One envelope to hold as a request.
#[derive(Debug, Clone, Copy)]
pub struct HeldEnvelope<'a> {
    /// The sender's UID (as the envelope claims it; checked when the request is accepted).
    pub sender_uid: [u8; 32],
    /// The device that signed the envelope (the signature was checked).
    pub sender_device: [u8; 32],
    /// The envelope's session.
    pub session_id: [u8; 16],
    /// The envelope's sequence number.
    pub seq: u64,
    /// The envelope as received.
    pub envelope: &'a [u8],
}

/// What [`hold_request`](crate::Tx::hold_request) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldOutcome {
    /// Held; `new_sender` when this is the sender's first pending envelope.
    Held {
        /// The sender had no pending request before.
        new_sender: bool,
    },
    /// The same envelope is already held.
    AlreadyHeld,
    /// The sender is blocked.
    Blocked,
    /// The user declined this conversation.
    SessionDeclined,
    /// The sender's share is full (later, after the user decides, it may fit).
    SenderFull,
    /// All requests together are at their bound.
    AllFull,
}

/// A sender with a pending request (or a blocked one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRow {
    /// The sender's UID.
    pub uid: [u8; 32],
    /// `pending` or `blocked`.
    pub blocked: bool,
    /// First envelope held (unix ms).
    pub first_at: i64,
    /// Latest envelope held (unix ms).
    pub last_at: i64,
    /// Envelopes held.
    pub envelopes: u64,
    /// Bytes held.
    pub bytes: u64,
    /// The sender's root key, once looked up and checked against the UID.
    pub root_pk: Option<[u8; 32]>,
    /// The sender's public profile name, if it has one.
    pub name: Option<String>,
    /// Whether every held envelope's device is in the sender's signed device list.
    pub device_listed: Option<bool>,
    /// When the identity was last looked up (unix ms).
    pub resolved_at: Option<i64>,
}

/// What the network said about a sender's identity (see [`set_request_identity`](crate::Tx::set_request_identity)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestIdentity {
    /// The root key (its hash is the UID).
    pub root_pk: [u8; 32],
    /// The public profile name, if any.
    pub name: Option<String>,
    /// Whether the held envelopes' devices are all listed.
    pub device_listed: bool,
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    Ok(RequestRow {
        uid: blob(r.get(0)?)?,
        blocked: r.get::<_, String>(1)? == "blocked",
        first_at: r.get(2)?,
        last_at: r.get(3)?,
        envelopes: r.get::<_, i64>(4)? as u64,
        bytes: r.get::<_, i64>(5)? as u64,
        root_pk: r.get::<_, Option<Vec<u8>>>(6)?.map(blob).transpose()?,
        name: r.get(7)?,
        device_listed: r.get::<_, Option<i64>>(8)?.map(|v| v != 0),
        resolved_at: r.get(9)?,
    })
}

const REQUEST_SELECT: &str = "SELECT s.uid, s.state, s.first_at, s.last_at,
        (SELECT count(*) FROM request_envelopes e WHERE e.sender_uid = s.uid),
        (SELECT coalesce(sum(length(e.envelope)), 0) FROM request_envelopes e
           WHERE e.sender_uid = s.uid),
        s.root_pk, s.name, s.device_listed, s.resolved_at
     FROM request_senders s";

/// Drops a sender's held envelopes, remembering their conversations as declined.
fn drop_held_tx(tx: &Connection, uid: &[u8; 32], now: i64) -> Result<u64, StoreError> {
    const CTX: &str = "dropping a message request";
    tx.execute(
        "INSERT OR IGNORE INTO declined_sessions (session_id, sender_uid, declined_at)
         SELECT DISTINCT session_id, sender_uid, ?2 FROM request_envelopes WHERE sender_uid = ?1",
        params![&uid[..], now],
    )
    .context(CTX)?;
    let n = tx
        .execute(
            "DELETE FROM request_envelopes WHERE sender_uid = ?1",
            [&uid[..]],
        )
        .context(CTX)?;
    Ok(n as u64)
}

impl Reader<'_> {
    /// Pending requests (not blocked senders), newest activity first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn list_requests(&self) -> Result<Vec<RequestRow>, StoreError> {
        const CTX: &str = "listing message requests";
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{REQUEST_SELECT} WHERE s.state = 'pending' ORDER BY s.last_at DESC, s.uid"
            ))
            .context(CTX)?;
        stmt.query_map([], request_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Blocked senders, most recently blocked first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn list_blocked(&self) -> Result<Vec<RequestRow>, StoreError> {
        const CTX: &str = "listing blocked senders";
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{REQUEST_SELECT} WHERE s.state = 'blocked' ORDER BY s.last_at DESC, s.uid"
            ))
            .context(CTX)?;
        stmt.query_map([], request_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// One sender's request row (pending or blocked).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn request(&self, uid: &[u8; 32]) -> Result<Option<RequestRow>, StoreError> {
        self.conn
            .query_row(
                &format!("{REQUEST_SELECT} WHERE s.uid = ?1"),
                [&uid[..]],
                request_row,
            )
            .optional()
            .context("reading a message request")
    }

    /// The devices that signed a sender's held envelopes.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn request_devices(&self, uid: &[u8; 32]) -> Result<Vec<[u8; 32]>, StoreError> {
        const CTX: &str = "reading a request's devices";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT DISTINCT sender_device FROM request_envelopes WHERE sender_uid = ?1",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], |r| blob(r.get(0)?))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// A sender's held envelopes, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn held_envelopes(&self, uid: &[u8; 32]) -> Result<Vec<Vec<u8>>, StoreError> {
        const CTX: &str = "reading a message request";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT envelope FROM request_envelopes WHERE sender_uid = ?1 ORDER BY id",
            )
            .context(CTX)?;
        stmt.query_map([&uid[..]], |r| r.get::<_, Vec<u8>>(0))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// Whether a sender is blocked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn is_blocked(&self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM request_senders WHERE uid = ?1 AND state = 'blocked')",
                [&uid[..]],
                |r| r.get(0),
            )
            .context("reading the block list")
    }

    /// The oldest conversation with a contact that is not closed: the one sends go to.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn open_conversation_with(
        &self,
        uid: &[u8; 32],
    ) -> Result<Option<ConversationRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT session_id, group_id, contact_uid, created_at FROM conversations
                 WHERE contact_uid = ?1 AND closed_at IS NULL
                 ORDER BY created_at, session_id LIMIT 1",
            )
            .context("reading conversations")?
            .query_row([&uid[..]], |r| {
                Ok(ConversationRow {
                    session_id: blob(r.get(0)?)?,
                    group_id: r.get(1)?,
                    contact_uid: blob(r.get(2)?)?,
                    created_at: r.get(3)?,
                })
            })
            .optional()
            .context("reading conversations")
    }

    /// Inside a transaction: whether we sent a Welcome in this conversation that no receipt has
    /// confirmed yet (so an UNKNOWN_SESSION answer may only mean it has not arrived).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn welcome_pending(&self, session_id: &[u8; 16]) -> Result<bool, StoreError> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE session_id = ?1 AND direction = 'out'
               AND kind = 'welcome' AND state IN ('queued', 'sent', 'stored'))",
                [&session_id[..]],
                |r| r.get(0),
            )
            .context("reading a conversation's Welcome")
    }

    /// Why `held` may not be held, if it may not (checked before any write): a blocked
    /// sender, a declined conversation, an envelope held already, a full sender or a full
    /// table. `state` is the sender's request state, if it has one.
    fn hold_refusal(
        &self,
        held: &HeldEnvelope<'_>,
        limits: &RequestLimits,
        state: Option<&str>,
    ) -> Result<Option<HoldOutcome>, StoreError> {
        const CTX: &str = "holding a message request";
        if state == Some("blocked") {
            return Ok(Some(HoldOutcome::Blocked));
        }
        let declined: bool = self
            .conn
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM declined_sessions WHERE session_id = ?1)")
            .context(CTX)?
            .query_row([&held.session_id[..]], |r| r.get(0))
            .context(CTX)?;
        if declined {
            return Ok(Some(HoldOutcome::SessionDeclined));
        }
        let exists: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM request_envelopes
                   WHERE sender_device = ?1 AND session_id = ?2 AND seq = ?3)",
            )
            .context(CTX)?
            .query_row(
                params![
                    &held.sender_device[..],
                    &held.session_id[..],
                    held.seq as i64
                ],
                |r| r.get(0),
            )
            .context(CTX)?;
        if exists {
            return Ok(Some(HoldOutcome::AlreadyHeld));
        }
        let size = held.envelope.len() as u64;
        let (mine, my_bytes): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM request_envelopes
                 WHERE sender_uid = ?1",
            )
            .context(CTX)?
            .query_row([&held.sender_uid[..]], |r| Ok((r.get(0)?, r.get(1)?)))
            .context(CTX)?;
        if mine as u64 >= limits.per_sender_envelopes
            || my_bytes as u64 + size > limits.per_sender_bytes
        {
            return Ok(Some(HoldOutcome::SenderFull));
        }
        let (all, all_bytes): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM request_envelopes",
            )
            .context(CTX)?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .context(CTX)?;
        if all as u64 >= limits.total_envelopes || all_bytes as u64 + size > limits.total_bytes {
            return Ok(Some(HoldOutcome::AllFull));
        }
        if state.is_none() {
            let senders: i64 = self
                .conn
                .prepare_cached("SELECT count(*) FROM request_senders WHERE state = 'pending'")
                .context(CTX)?
                .query_row([], |r| r.get(0))
                .context(CTX)?;
            if senders as u64 >= limits.senders {
                return Ok(Some(HoldOutcome::AllFull));
            }
        }
        Ok(None)
    }
}

impl Tx<'_> {
    /// Inside a transaction: holds one envelope of a non-contact, within `limits`.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn hold_request(
        &mut self,
        held: &HeldEnvelope<'_>,
        limits: &RequestLimits,
        now: i64,
    ) -> Result<HoldOutcome, StoreError> {
        const CTX: &str = "holding a message request";
        let state: Option<String> = self
            .conn
            .prepare_cached("SELECT state FROM request_senders WHERE uid = ?1")
            .context(CTX)?
            .query_row([&held.sender_uid[..]], |r| r.get(0))
            .optional()
            .context(CTX)?;
        if let Some(refused) = self.hold_refusal(held, limits, state.as_deref())? {
            return Ok(refused);
        }
        let new_sender = state.is_none();
        if new_sender {
            self.conn.prepare_cached(
                "INSERT INTO request_senders (uid, state, first_at, last_at) VALUES (?1, 'pending', ?2, ?2)",
            )
            .context(CTX)?
            .execute(params![&held.sender_uid[..], now])
            .context(CTX)?;
        } else {
            self.conn
                .prepare_cached(
                    "UPDATE request_senders SET last_at = max(last_at, ?2) WHERE uid = ?1",
                )
                .context(CTX)?
                .execute(params![&held.sender_uid[..], now])
                .context(CTX)?;
        }
        self.conn.prepare_cached(
            "INSERT INTO request_envelopes (sender_uid, sender_device, session_id, seq, envelope,
               received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .context(CTX)?
        .execute(params![
            &held.sender_uid[..],
            &held.sender_device[..],
            &held.session_id[..],
            held.seq as i64,
            held.envelope,
            now
        ])
        .context(CTX)?;
        Ok(HoldOutcome::Held { new_sender })
    }

    /// Records what the DHT said about a sender (only for a sender still pending).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn set_request_identity(
        &mut self,
        uid: &[u8; 32],
        identity: Option<&RequestIdentity>,
        now: i64,
    ) -> Result<(), StoreError> {
        let (root, name, listed) = match identity {
            Some(i) => (
                Some(i.root_pk.to_vec()),
                i.name.clone(),
                Some(i64::from(i.device_listed)),
            ),
            None => (None, None, None),
        };
        self.conn
            .execute(
                "UPDATE request_senders SET root_pk = coalesce(?2, root_pk),
                   name = coalesce(?3, name), device_listed = coalesce(?4, device_listed),
                   resolved_at = ?5
                 WHERE uid = ?1 AND state = 'pending'",
                params![&uid[..], root, name, listed, now],
            )
            .context("recording a request's identity")?;
        Ok(())
    }

    /// Forgets a sender's request once its envelopes were applied (the sender is a contact
    /// now; a blocked sender is unblocked). Returns how many envelopes it held.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn take_request(&mut self, uid: &[u8; 32]) -> Result<usize, StoreError> {
        const CTX: &str = "forgetting a message request";
        self.atomic(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM request_envelopes WHERE sender_uid = ?1",
                    [&uid[..]],
                )
                .context(CTX)?;
            tx.execute("DELETE FROM request_senders WHERE uid = ?1", [&uid[..]])
                .context(CTX)?;
            // A conversation declined before and now accepted may come back.
            tx.execute(
                "DELETE FROM declined_sessions WHERE sender_uid = ?1",
                [&uid[..]],
            )
            .context(CTX)?;
            Ok(n)
        })
    }

    /// Drops a sender's pending request; its conversations are remembered as declined (later
    /// envelopes in them are refused for good, so the sender starts a new one). Returns how
    /// many envelopes were dropped, or `None` when there was no pending request.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn decline_request(&mut self, uid: &[u8; 32], now: i64) -> Result<Option<u64>, StoreError> {
        self.atomic(|tx| {
            let pending: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM request_senders WHERE uid = ?1 AND state = 'pending')",
                    [&uid[..]],
                    |r| r.get(0),
                )
                .context("declining a message request")?;
            if !pending {
                return Ok(None);
            }
            let dropped = drop_held_tx(tx, uid, now)?;
            tx.execute("DELETE FROM request_senders WHERE uid = ?1", [&uid[..]])
                .context("declining a message request")?;
            Ok(Some(dropped))
        })
    }

    /// Blocks a sender: its pending request is dropped as by [`decline_request`](Self::decline_request)
    /// and later envelopes from it are refused. Returns how many envelopes were dropped.
    ///
    /// # Errors
    ///
    /// A full block list is no error: the oldest blocked entry beyond
    /// [`RequestLimits::blocked`] is forgotten. [`StoreError`] if the database fails.
    pub fn block_sender(
        &mut self,
        uid: &[u8; 32],
        limits: &RequestLimits,
        now: i64,
    ) -> Result<u64, StoreError> {
        const CTX: &str = "blocking a sender";
        self.atomic(|tx| {
            let dropped = drop_held_tx(tx, uid, now)?;
            tx.execute(
                "INSERT INTO request_senders (uid, state, first_at, last_at)
                 VALUES (?1, 'blocked', ?2, ?2)
                 ON CONFLICT (uid) DO UPDATE SET state = 'blocked', last_at = ?2",
                params![&uid[..], now],
            )
            .context(CTX)?;
            tx.execute(
                "DELETE FROM request_senders WHERE state = 'blocked' AND uid NOT IN (
                   SELECT uid FROM request_senders WHERE state = 'blocked'
                   ORDER BY last_at DESC LIMIT ?1)",
                [limits.blocked as i64],
            )
            .context(CTX)?;
            Ok(dropped)
        })
    }

    /// Lifts a block; true if the sender was blocked.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn unblock_sender(&mut self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "DELETE FROM request_senders WHERE uid = ?1 AND state = 'blocked'",
                [&uid[..]],
            )
            .context("unblocking a sender")?
            == 1)
    }

    /// Forgets held envelopes received before `before` (the replay window: they could no
    /// longer be accepted), pending senders left with none, and declined conversations older
    /// than `before`. Returns how many envelopes went.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn prune_requests(&mut self, before: i64) -> Result<usize, StoreError> {
        const CTX: &str = "pruning message requests";
        self.atomic(|tx| {
            let n = tx
                .execute(
                    "DELETE FROM request_envelopes WHERE received_at < ?1",
                    [before],
                )
                .context(CTX)?;
            tx.execute(
                "DELETE FROM request_senders WHERE state = 'pending' AND NOT EXISTS (
                   SELECT 1 FROM request_envelopes e WHERE e.sender_uid = request_senders.uid)",
                [],
            )
            .context(CTX)?;
            tx.execute(
                "DELETE FROM declined_sessions WHERE declined_at < ?1",
                [before],
            )
            .context(CTX)?;
            Ok(n)
        })
    }

    /// Inside a transaction: closes a conversation the peer refused for good (it stays in the
    /// history; nothing is sent in it again) and fails what was still waiting to go in it.
    /// Returns the ids of the outgoing messages that failed; `None` if it was closed already (or
    /// is not known).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn close_conversation(
        &mut self,
        session_id: &[u8; 16],
        error: &str,
        now: i64,
    ) -> Result<Option<Vec<i64>>, StoreError> {
        const CTX: &str = "closing a conversation";
        let changed = self.conn
            .execute(
                "UPDATE conversations SET closed_at = ?2 WHERE session_id = ?1 AND closed_at IS NULL",
                params![&session_id[..], now],
            )
            .context(CTX)?;
        if changed == 0 {
            return Ok(None);
        }
        let mut stmt = self.conn
            .prepare_cached(
                "UPDATE messages SET state = 'failed', error = ?2, next_attempt_at = ?3, held = NULL
                 WHERE session_id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')
                 RETURNING id",
            )
            .context(CTX)?;
        let ids = stmt
            .query_map(
                params![&session_id[..], error, crate::messaging::NO_RETRY],
                |r| r.get(0),
            )
            .context(CTX)?
            .collect::<Result<Vec<i64>, _>>()
            .context(CTX)?;
        Ok(Some(ids))
    }

    /// Inside a transaction: a closed placeholder for a conversation whose Welcome we refused for
    /// good (there is no MLS group): it only numbers the receipt that tells the sender.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn insert_closed_conversation(
        &mut self,
        session_id: &[u8; 16],
        contact_uid: &[u8; 32],
        now: i64,
    ) -> Result<(), StoreError> {
        // The placeholder's group id is built here, not in SQL: `||` makes TEXT, which the
        // STRICT table refuses in a BLOB column (and OR IGNORE does not cover that).
        let group_id = [REFUSED_GROUP_PREFIX, &session_id[..]].concat();
        self.conn.execute(
            "INSERT OR IGNORE INTO conversations (session_id, group_id, contact_uid, created_at,
               closed_at) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![&session_id[..], group_id, &contact_uid[..], now],
        )
        .context("recording a refused conversation")?;
        Ok(())
    }

    /// Inside a transaction: an outgoing message that the recipient's node holds (as a message
    /// request, until its user accepts): `sent`, and not retried (the acceptance brings a signed
    /// delivery receipt). True when it changed.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn mark_held(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "UPDATE messages SET state = 'sent', next_attempt_at = ?2, error = NULL,
                   attempts = attempts + 1
                 WHERE id = ?1 AND direction = 'out' AND state IN ('queued', 'sent', 'stored')
                   AND NOT (state = 'sent' AND next_attempt_at = ?2)",
            )
            .context("marking a message held")?
            .execute(params![id, crate::messaging::NO_RETRY])
            .context("marking a message held")?
            == 1)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("r.db")).expect("open");
        (dir, store)
    }

    fn hold(
        store: &mut Store,
        uid: u8,
        session: u8,
        seq: u64,
        bytes: usize,
        limits: &RequestLimits,
    ) -> HoldOutcome {
        let envelope = vec![seq as u8; bytes];
        store
            .write(|tx| {
                tx.hold_request(
                    &HeldEnvelope {
                        sender_uid: [uid; 32],
                        sender_device: [uid; 32],
                        session_id: [session; 16],
                        seq,
                        envelope: &envelope,
                    },
                    limits,
                    1_000 + seq as i64,
                )
            })
            .expect("hold")
    }

    #[test]
    fn requests_are_held_deduplicated_and_taken_in_order() {
        let (_dir, mut store) = store();
        let limits = RequestLimits::default();
        assert_eq!(
            hold(&mut store, 1, 1, 0, 100, &limits),
            HoldOutcome::Held { new_sender: true }
        );
        assert_eq!(
            hold(&mut store, 1, 1, 1, 100, &limits),
            HoldOutcome::Held { new_sender: false }
        );
        assert_eq!(
            hold(&mut store, 1, 1, 1, 100, &limits),
            HoldOutcome::AlreadyHeld
        );
        let list = store.read().list_requests().expect("list");
        assert_eq!(list.len(), 1);
        assert_eq!((list[0].envelopes, list[0].bytes), (2, 200));
        let held = store.read().held_envelopes(&[1; 32]).expect("held");
        assert_eq!(held, vec![vec![0u8; 100], vec![1u8; 100]]);
        assert_eq!(
            store.write(|tx| tx.take_request(&[1; 32])).expect("take"),
            2
        );
        assert!(store.read().list_requests().expect("list").is_empty());
    }

    #[test]
    fn per_sender_and_total_bounds_refuse_without_dropping() {
        let (_dir, mut store) = store();
        let limits = RequestLimits {
            per_sender_envelopes: 2,
            per_sender_bytes: 1000,
            senders: 2,
            total_envelopes: 3,
            total_bytes: 10_000,
            blocked: 2,
        };
        assert!(matches!(
            hold(&mut store, 1, 1, 0, 10, &limits),
            HoldOutcome::Held { .. }
        ));
        assert!(matches!(
            hold(&mut store, 1, 1, 1, 10, &limits),
            HoldOutcome::Held { .. }
        ));
        assert_eq!(
            hold(&mut store, 1, 1, 2, 10, &limits),
            HoldOutcome::SenderFull
        );
        assert!(matches!(
            hold(&mut store, 2, 2, 0, 10, &limits),
            HoldOutcome::Held { .. }
        ));
        // Three envelopes held in all.
        assert_eq!(hold(&mut store, 2, 2, 1, 10, &limits), HoldOutcome::AllFull);
        // A third sender does not fit either (2 senders).
        assert_eq!(hold(&mut store, 3, 3, 0, 10, &limits), HoldOutcome::AllFull);
        // Bytes per sender.
        let (_d2, mut other) = self::store();
        assert_eq!(
            hold(&mut other, 1, 1, 0, 1001, &limits),
            HoldOutcome::SenderFull
        );
        // Nothing held was dropped.
        assert_eq!(
            store.write(|tx| tx.take_request(&[1; 32])).expect("take"),
            2
        );
    }

    #[test]
    fn declined_conversations_and_blocked_senders_are_refused() {
        let (_dir, mut store) = store();
        let limits = RequestLimits::default();
        hold(&mut store, 1, 1, 0, 10, &limits);
        assert_eq!(
            store
                .write(|tx| tx.decline_request(&[1; 32], 5_000))
                .expect("decline"),
            Some(1)
        );
        assert_eq!(
            store
                .write(|tx| tx.decline_request(&[1; 32], 5_000))
                .expect("again"),
            None
        );
        assert_eq!(
            hold(&mut store, 1, 1, 1, 10, &limits),
            HoldOutcome::SessionDeclined
        );
        // A new conversation from the same sender is a new request.
        assert!(matches!(
            hold(&mut store, 1, 2, 0, 10, &limits),
            HoldOutcome::Held { new_sender: true }
        ));
        assert_eq!(
            store
                .write(|tx| tx.block_sender(&[1; 32], &limits, 6_000))
                .expect("block"),
            1
        );
        assert!(store.read().is_blocked(&[1; 32]).expect("blocked"));
        assert_eq!(hold(&mut store, 1, 3, 0, 10, &limits), HoldOutcome::Blocked);
        assert!(store.read().list_requests().expect("list").is_empty());
        assert_eq!(store.read().list_blocked().expect("blocked").len(), 1);
        assert!(
            store
                .write(|tx| tx.unblock_sender(&[1; 32]))
                .expect("unblock")
        );
        assert!(matches!(
            hold(&mut store, 1, 3, 0, 10, &limits),
            HoldOutcome::Held { .. }
        ));
        // Pruning forgets old envelopes, their emptied senders and old declines.
        assert_eq!(
            store
                .write(|tx| tx.prune_requests(i64::MAX))
                .expect("prune"),
            1
        );
        assert!(store.read().list_requests().expect("list").is_empty());
        assert!(matches!(
            hold(&mut store, 1, 1, 1, 10, &limits),
            HoldOutcome::Held { .. }
        ));
    }

    /// A Welcome refused for good after its request was accepted leaves a closed placeholder
    /// that numbers the refusal's receipt. Regression: the placeholder's group id was built
    /// with `||` (TEXT), which the STRICT table refused, so every such acceptance failed and
    /// the sender never learnt of the refusal (the agent_examples flake).
    #[test]
    fn a_refused_welcome_gets_a_closed_placeholder_conversation() {
        let (_dir, mut store) = store();
        let contact = crate::messaging::Contact {
            uid: [7; 32],
            root_pk: [7; 32],
            name: "carol".into(),
            verified: false,
            added_at: 1,
            devices: Vec::new(),
        };
        store
            .write(|tx| tx.add_contact(&contact, 1))
            .expect("contact");
        let session = [0xC3; 16];
        for _ in 0..2 {
            store
                .write(|tx| tx.insert_closed_conversation(&session, &[7; 32], 9))
                .expect("placeholder (and again: ignored)");
        }
        let row = store
            .read()
            .conversation(&session)
            .expect("read")
            .expect("the placeholder");
        assert_eq!(row.group_id, [&b"refused:"[..], &session[..]].concat());
        assert_eq!(row.contact_uid, [7; 32]);
    }

    #[test]
    fn the_block_list_is_bounded() {
        let (_dir, mut store) = store();
        let limits = RequestLimits {
            blocked: 3,
            ..RequestLimits::default()
        };
        for i in 0..10u8 {
            store
                .write(|tx| tx.block_sender(&[i; 32], &limits, i64::from(i)))
                .expect("block");
        }
        let blocked = store.read().list_blocked().expect("list");
        assert_eq!(blocked.len(), 3);
        assert!(store.read().is_blocked(&[9; 32]).expect("newest kept"));
        assert!(!store.read().is_blocked(&[0; 32]).expect("oldest gone"));
    }

    #[test]
    fn identity_is_recorded_for_pending_senders() {
        let (_dir, mut store) = store();
        hold(&mut store, 1, 1, 0, 10, &RequestLimits::default());
        let identity = RequestIdentity {
            root_pk: [7; 32],
            name: Some("alice".into()),
            device_listed: true,
        };
        store
            .write(|tx| tx.set_request_identity(&[1; 32], Some(&identity), 9))
            .expect("set");
        let row = store.read().request(&[1; 32]).expect("read").expect("row");
        assert_eq!(row.root_pk, Some([7; 32]));
        assert_eq!(row.name.as_deref(), Some("alice"));
        assert_eq!(row.device_listed, Some(true));
        assert_eq!(row.resolved_at, Some(9));
        assert_eq!(
            store.read().request_devices(&[1; 32]).expect("devices"),
            vec![[1; 32]]
        );
    }
}
