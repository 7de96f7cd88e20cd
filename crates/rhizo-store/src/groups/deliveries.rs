//! Group messages: ours with one delivery row per member device (`message_deliveries`), the
//! group outbox, and incoming ones deduplicated per (sender UID, message id).

use rusqlite::{OptionalExtension, params};

use crate::error::{SqliteContext, StoreError};
use crate::messaging::{MessageState, NO_RETRY, NewMessage, blob};
use crate::tx::{Reader, Tx};

/// Where one member device is with one of our group messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Not yet confirmed by that device.
    Pending,
    /// The device signed a delivery receipt.
    Delivered,
    /// The device's user read it.
    Read,
    /// The device refused it for good.
    Failed,
}

impl DeliveryState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// The states a row may move to this one from (never backwards; failed is final).
    fn previous_states(self) -> &'static str {
        match self {
            Self::Pending => "('')",
            Self::Delivered | Self::Failed => "('pending')",
            Self::Read => "('pending', 'delivered')",
        }
    }
}

/// `delivered k/n`, `read k/n` of one group message (n = the member devices other than ours at
/// the time it was sent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryCounts {
    /// Member devices it went to.
    pub total: u32,
    /// Of those, delivered or read.
    pub delivered: u32,
    /// Of those, read.
    pub read: u32,
    /// Of those, refused for good.
    pub failed: u32,
}

/// A group envelope of ours due for a (re)send.
#[derive(Debug, Clone)]
pub struct GroupOutboxItem {
    /// Row id.
    pub id: i64,
    /// The group conversation.
    pub session_id: [u8; 16],
    /// One member's UID (a Welcome, a receipt, a rejoin) or None: every member device.
    pub recipient_uid: Option<[u8; 32]>,
    /// The sequence number.
    pub seq: u64,
    /// `text`, `welcome`, `commit`, …
    pub kind: String,
    /// The signed envelope.
    pub envelope: Vec<u8>,
    /// Attempts so far.
    pub attempts: u32,
    /// `Queued`, `Sent` or `Stored`.
    pub state: MessageState,
}

/// A member device (its key) with its owner's UID.
pub type MemberDevice = ([u8; 32], [u8; 32]);

/// What is special about an outgoing group row.
#[derive(Debug, Clone, Copy)]
pub struct GroupSend<'a> {
    /// One member's UID, or None for the whole group.
    pub recipient_uid: Option<[u8; 32]>,
    /// Our UID (the dedupe key's sender).
    pub sender_uid: [u8; 32],
    /// ChatContent's message id (None for commits, Welcomes, receipts).
    pub message_id: Option<[u8; 16]>,
    /// The member devices it goes to, with their owner's UID (a delivery row each).
    pub devices: &'a [MemberDevice],
    /// The MLS epoch it was encrypted in (application messages and commits).
    pub epoch: Option<u64>,
}

/// One of our group messages encrypted in an epoch a rollback dropped: to encrypt again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResendRow {
    /// Row id.
    pub id: i64,
    /// `text` or `control`.
    pub kind: String,
    /// The text.
    pub body: Option<String>,
    /// Its message id.
    pub message_id: [u8; 16],
    /// When it was sent (unix ms).
    pub sent_at: i64,
}

impl Reader<'_> {
    /// Our group envelopes whose next attempt is due: groups by their oldest due row, and
    /// within a group in sequence order, which is the order they were encrypted in (a text
    /// encrypted again after later commits keeps its row id but takes a new sequence number,
    /// and must not go ahead of the commits that open its epoch: a receiver defers it and
    /// answers everything after it in the batch `SEQUENCE_ERROR` unprocessed).
    pub fn group_outbox_due(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<GroupOutboxItem>, StoreError> {
        const CTX: &str = "reading the group outbox";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT m.id, m.session_id, m.recipient_uid, m.seq, m.envelope, m.attempts,
                        m.kind, m.state
                 FROM messages m JOIN conversations c ON c.session_id = m.session_id
                 WHERE m.direction = 'out' AND m.state IN ('queued', 'sent', 'stored')
                   AND m.next_attempt_at <= ?1 AND m.next_attempt_at < ?3
                   AND m.envelope IS NOT NULL AND c.kind = 'group'
                 ORDER BY min(m.id) OVER (PARTITION BY m.session_id), m.seq, m.id
                 LIMIT ?2",
            )
            .context(CTX)?;
        stmt.query_map(params![now, limit as i64, NO_RETRY], |r| {
            Ok(GroupOutboxItem {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                recipient_uid: r.get::<_, Option<Vec<u8>>>(2)?.map(blob).transpose()?,
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

    /// How far one of our group messages got.
    pub fn delivery_counts(&self, message: i64) -> Result<DeliveryCounts, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*), count(*) FILTER (WHERE state IN ('delivered', 'read')),
                        count(*) FILTER (WHERE state = 'read'),
                        count(*) FILTER (WHERE state = 'failed')
                 FROM message_deliveries WHERE message = ?1",
            )
            .context("counting deliveries")?
            .query_row([message], |r| {
                Ok(DeliveryCounts {
                    total: r.get::<_, i64>(0)? as u32,
                    delivered: r.get::<_, i64>(1)? as u32,
                    read: r.get::<_, i64>(2)? as u32,
                    failed: r.get::<_, i64>(3)? as u32,
                })
            })
            .context("counting deliveries")
    }

    /// The member devices (with their UID) that have not confirmed one of our group messages.
    pub fn pending_deliveries(&self, message: i64) -> Result<Vec<MemberDevice>, StoreError> {
        const CTX: &str = "reading pending deliveries";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT device_pk, member_uid FROM message_deliveries
                 WHERE message = ?1 AND state = 'pending' ORDER BY member_uid, device_pk",
            )
            .context(CTX)?;
        stmt.query_map([message], |r| Ok((blob(r.get(0)?)?, blob(r.get(1)?)?)))
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// The member devices (with their UID) that have not confirmed one of our group messages
    /// and are due at `now`: a pending row whose `at` is in the future is held by a relay
    /// (member-relayed fan-out) until then.
    pub fn pending_deliveries_due(
        &self,
        message: i64,
        now: i64,
    ) -> Result<Vec<MemberDevice>, StoreError> {
        const CTX: &str = "reading due deliveries";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT device_pk, member_uid FROM message_deliveries
                 WHERE message = ?1 AND state = 'pending' AND at <= ?2
                 ORDER BY member_uid, device_pk",
            )
            .context(CTX)?;
        stmt.query_map(params![message, now], |r| {
            Ok((blob(r.get(0)?)?, blob(r.get(1)?)?))
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// When the earliest pending delivery of `message` held by a relay past `now` is due, if
    /// any is held.
    pub fn next_held_delivery(&self, message: i64, now: i64) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(at) FROM message_deliveries
                 WHERE message = ?1 AND state = 'pending' AND at > ?2",
                params![message, now],
                |r| r.get(0),
            )
            .context("reading the next held delivery")
    }

    /// Relay jobs (rows of kind `relay`: envelopes we forward for another member) still open:
    /// in `session_id`, and over all groups.
    pub fn open_relay_jobs(&self, session_id: &[u8; 16]) -> Result<(usize, usize), StoreError> {
        self.conn
            .query_row(
                "SELECT count(*) FILTER (WHERE session_id = ?1), count(*) FROM messages
                 WHERE direction = 'out' AND kind = 'relay'
                   AND state IN ('queued', 'sent', 'stored')",
                [&session_id[..]],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
            .context("counting relay jobs")
    }

    /// Our group messages (texts and controls) encrypted in an epoch after `epoch` that some
    /// member device still lacks, oldest first: what a rollback to `epoch` makes us send again.
    pub fn group_resends(
        &self,
        session_id: &[u8; 16],
        epoch: u64,
    ) -> Result<Vec<ResendRow>, StoreError> {
        const CTX: &str = "reading group messages to send again";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, kind, body, message_id, sent_at FROM messages
                 WHERE session_id = ?1 AND direction = 'out' AND epoch > ?2
                   AND message_id IS NOT NULL AND recipient_uid IS NULL
                   AND EXISTS (SELECT 1 FROM message_deliveries d
                               WHERE d.message = messages.id AND d.state = 'pending')
                 ORDER BY id",
            )
            .context(CTX)?;
        stmt.query_map(params![&session_id[..], epoch as i64], |r| {
            Ok(ResendRow {
                id: r.get(0)?,
                kind: r.get(1)?,
                body: r.get(2)?,
                message_id: blob(r.get(3)?)?,
                sent_at: r.get(4)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// One of our group texts or controls, to encrypt again (a member could not decrypt it).
    pub fn group_resend(&self, id: i64) -> Result<Option<(ResendRow, u64)>, StoreError> {
        self.conn
            .query_row(
                "SELECT id, kind, body, message_id, sent_at, epoch FROM messages
                 WHERE id = ?1 AND direction = 'out' AND message_id IS NOT NULL",
                [id],
                |r| {
                    Ok((
                        ResendRow {
                            id: r.get(0)?,
                            kind: r.get(1)?,
                            body: r.get(2)?,
                            message_id: blob(r.get(3)?)?,
                            sent_at: r.get(4)?,
                        },
                        r.get::<_, Option<i64>>(5)?.unwrap_or(0) as u64,
                    ))
                },
            )
            .optional()
            .context("reading a group message")
    }

    /// Our group message with this message id (a rollback re-encrypts it under the same id).
    pub fn group_message_by_id(
        &self,
        session_id: &[u8; 16],
        sender_uid: &[u8; 32],
        message_id: &[u8; 16],
    ) -> Result<Option<i64>, StoreError> {
        self.conn
            .query_row(
                "SELECT id FROM messages
                 WHERE session_id = ?1 AND sender_uid = ?2 AND message_id = ?3",
                params![&session_id[..], &sender_uid[..], &message_id[..]],
                |r| r.get(0),
            )
            .optional()
            .context("finding a group message")
    }
}

impl Tx<'_> {
    /// Persists one of our group envelopes as `queued`, with a `pending` delivery row per
    /// member device it goes to; its row id.
    pub fn insert_group_outgoing(
        &mut self,
        m: &NewMessage<'_>,
        envelope: &[u8],
        send: &GroupSend<'_>,
        now: i64,
    ) -> Result<i64, StoreError> {
        const CTX: &str = "queueing a group message";
        self.atomic(|a| {
            a.execute(
                "INSERT INTO messages (session_id, direction, sender_device, seq, kind, body,
                    sent_at, state, envelope, next_attempt_at, recipient_uid, sender_uid,
                    message_id, epoch)
                 VALUES (?1, 'out', ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    &m.session_id[..],
                    &m.sender_device[..],
                    m.seq as i64,
                    m.kind,
                    m.body,
                    m.sent_at,
                    envelope,
                    now,
                    send.recipient_uid.as_ref().map(|u| &u[..]),
                    &send.sender_uid[..],
                    send.message_id.as_ref().map(|u| &u[..]),
                    send.epoch.map(|e| e as i64),
                ],
            )
            .context(CTX)?;
            let id = a.last_insert_rowid();
            let mut stmt = a
                .prepare_cached(
                    "INSERT OR IGNORE INTO message_deliveries (message, device_pk, member_uid,
                        state, at) VALUES (?1, ?2, ?3, 'pending', ?4)",
                )
                .context(CTX)?;
            for (device, uid) in send.devices {
                stmt.execute(params![id, &device[..], &uid[..], now])
                    .context(CTX)?;
            }
            Ok(id)
        })
    }

    /// Replaces one of our group messages' envelope with `envelope` (encrypted again after a
    /// rollback, under sequence number `seq`, in `epoch`): queued and due at `now`; true if it
    /// exists.
    pub fn reseal_group_outgoing(
        &mut self,
        id: i64,
        seq: u64,
        envelope: &[u8],
        epoch: u64,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE messages SET seq = ?2, envelope = ?3, epoch = ?4, next_attempt_at = ?5,
                    attempts = 0, error = NULL,
                    state = CASE WHEN state IN ('delivered', 'read', 'failed') THEN 'sent'
                                 ELSE state END
                 WHERE id = ?1 AND direction = 'out'",
                params![id, seq as i64, envelope, epoch as i64, now],
            )
            .context("sending a group message again")?
            == 1)
    }

    /// Stops sending our group messages sealed after `epoch` (a rollback to `epoch` applied a
    /// commit that removed us: nobody can read them, and we cannot seal them again); how many.
    pub fn drop_group_sealed_after(
        &mut self,
        session_id: &[u8; 16],
        epoch: u64,
    ) -> Result<usize, StoreError> {
        self.drop_group_outgoing(
            session_id,
            "epoch > ?2",
            epoch,
            "dropped: removed from the group by the commit that won",
        )
    }

    /// Fails our outgoing group rows of `session_id` still to send that `condition` (on
    /// `epoch`, `?2`) picks, with `error`; how many.
    fn drop_group_outgoing(
        &mut self,
        session_id: &[u8; 16],
        condition: &str,
        epoch: u64,
        error: &str,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                &format!(
                    "UPDATE messages SET state = 'failed', next_attempt_at = ?3, error = ?4
                     WHERE session_id = ?1 AND direction = 'out' AND {condition}
                       AND state IN ('queued', 'sent', 'stored')"
                ),
                params![&session_id[..], epoch as i64, NO_RETRY, error],
            )
            .context("dropping group messages")
    }

    /// Our group controls (a leave) sealed after `epoch` go to every member device again: a
    /// rollback to `epoch` undid what the devices that had them did with them. How many
    /// deliveries moved back to pending.
    pub fn repend_group_controls(
        &mut self,
        session_id: &[u8; 16],
        epoch: u64,
        now: i64,
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "UPDATE message_deliveries SET state = 'pending', at = ?3
                 WHERE state != 'pending' AND message IN (SELECT id FROM messages
                    WHERE session_id = ?1 AND direction = 'out' AND kind = 'control'
                      AND epoch > ?2)",
                params![&session_id[..], epoch as i64, now],
            )
            .context("sending group controls again")
    }

    /// Stops sending our commits of a group made in `epoch` or later, and the Welcomes of those
    /// commits (a rollback dropped them: nobody can apply them any more); how many.
    pub fn drop_group_commits(
        &mut self,
        session_id: &[u8; 16],
        epoch: u64,
    ) -> Result<usize, StoreError> {
        self.drop_group_outgoing(
            session_id,
            "kind IN ('commit', 'welcome') AND epoch >= ?2",
            epoch,
            "dropped: a smaller commit won its epoch",
        )
    }

    /// Moves one device's delivery of our group message forward to `state` (pending →
    /// delivered/failed, pending/delivered → read); true when it changed.
    pub fn set_delivery(
        &mut self,
        message: i64,
        device: &[u8; 32],
        state: DeliveryState,
        at: i64,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE message_deliveries SET state = ?3, at = ?4
             WHERE message = ?1 AND device_pk = ?2 AND state IN {}",
            state.previous_states()
        );
        Ok(self
            .conn
            .prepare_cached(&sql)
            .context("recording a delivery")?
            .execute(params![message, &device[..], state.as_str(), at])
            .context("recording a delivery")?
            == 1)
    }

    /// Holds the pending deliveries of `message` to `devices` until `until`: a relay took them
    /// (member-relayed fan-out); they are sent directly only if still pending then.
    pub fn hold_deliveries(
        &mut self,
        message: i64,
        devices: &[[u8; 32]],
        until: i64,
    ) -> Result<(), StoreError> {
        const CTX: &str = "holding deliveries for a relay";
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE message_deliveries SET at = ?3
                 WHERE message = ?1 AND device_pk = ?2 AND state = 'pending'",
            )
            .context(CTX)?;
        for device in devices {
            stmt.execute(params![message, &device[..], until])
                .context(CTX)?;
        }
        Ok(())
    }

    /// Deletes a finished relay job (a row of kind `relay`) with its delivery rows.
    pub fn delete_relay_job(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "DELETE FROM messages WHERE id = ?1 AND direction = 'out' AND kind = 'relay'",
                [id],
            )
            .context("deleting a relay job")?
            == 1)
    }

    /// Stores an incoming group message from `sender_uid`; `None` if it was already stored
    /// (same envelope, or the same message id from that sender re-sent after a rollback).
    pub fn insert_group_incoming(
        &mut self,
        m: &NewMessage<'_>,
        digest: &[u8; 32],
        sender_uid: &[u8; 32],
        message_id: Option<&[u8; 16]>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let n = self
            .conn
            .prepare_cached(
                "INSERT OR IGNORE INTO messages (session_id, direction, sender_device, seq, kind,
                    body, sent_at, received_at, state, digest, sender_uid, message_id)
                 VALUES (?1, 'in', ?2, ?3, ?4, ?5, ?6, ?7, 'received', ?8, ?9, ?10)",
            )
            .context("storing a group message")?
            .execute(params![
                &m.session_id[..],
                &m.sender_device[..],
                m.seq as i64,
                m.kind,
                m.body,
                m.sent_at,
                now,
                &digest[..],
                &sender_uid[..],
                message_id.map(|u| &u[..]),
            ])
            .context("storing a group message")?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }
}
