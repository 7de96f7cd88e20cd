//! Managing contacts and conversations (issue 20): renaming and removing a contact, muting and
//! archiving a conversation (`conversation_settings`), deleting messages on this device and
//! the deletions a sender asked for ("delete for everyone").
//!
//! A deleted message keeps its row as kind `deleted` without a body (and its file row goes):
//! the row keeps the dedupe keys (`(session, sender device, seq)`, a group message's id), so a
//! copy that arrives again is not shown again, and an outgoing one still in the outbox is
//! still delivered and acknowledged. Its text is gone from this device.

use rusqlite::{OptionalExtension, params};

use super::contacts::MAX_CONTACT_NAME_CHARS;
use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// The kinds a user sees in a history, and so may delete.
const SHOWN_KINDS: &str = "('text', 'file')";

/// A conversation's settings on this device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConversationSettings {
    /// Its message events carry `muted` (a client does not notify).
    pub muted: bool,
    /// Hidden from the conversation listing unless archived ones are asked for.
    pub archived: bool,
}

/// Which message a "delete for everyone" names, as the receiver matches it: a group message by
/// its sender's UID and message id, a 1:1 message by its sending device and sequence number
/// (and direction: a contact's message is `in`, our other device's is `out`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteTarget {
    /// A group message.
    Group {
        /// The sender's UID (the requester: only its own messages).
        sender_uid: [u8; 32],
        /// The message's id.
        message_id: [u8; 16],
    },
    /// A 1:1 message.
    Direct {
        /// The device that sent it (one of the requester's).
        sender_device: [u8; 32],
        /// Its envelope's sequence number.
        seq: u64,
        /// `true`: sent by us (another device of ours asked); `false`: by the contact.
        outgoing: bool,
    },
}

impl Reader<'_> {
    /// The settings of the conversation with `peer` (a contact's UID or a group's address);
    /// the defaults when none were set.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn conversation_settings(
        &self,
        peer: &[u8; 32],
    ) -> Result<ConversationSettings, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT muted, archived FROM conversation_settings WHERE peer = ?1")
            .context("reading conversation settings")?
            .query_row([&peer[..]], |r| {
                Ok(ConversationSettings {
                    muted: r.get::<_, i64>(0)? != 0,
                    archived: r.get::<_, i64>(1)? != 0,
                })
            })
            .optional()
            .context("reading conversation settings")?
            .unwrap_or_default())
    }
}

impl Reader<'_> {
    /// The message id (`ChatContent.message_id`) of a group message row, if it has one.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn message_group_id(&self, id: i64) -> Result<Option<[u8; 16]>, StoreError> {
        let raw: Option<Option<Vec<u8>>> = self
            .conn
            .query_row("SELECT message_id FROM messages WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .context("reading a message id")?;
        Ok(raw.flatten().and_then(|v| v.try_into().ok()))
    }
}

impl Tx<'_> {
    /// Gives a contact a new local name; false if there is no contact with that UID. A name in
    /// use by another contact is refused ([`StoreError::NameTaken`]).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an empty or too long name; [`StoreError`] if the
    /// database fails.
    pub fn rename_contact(&mut self, uid: &[u8; 32], name: &str) -> Result<bool, StoreError> {
        const CTX: &str = "renaming a contact";
        if name.trim().is_empty() || name.chars().count() > MAX_CONTACT_NAME_CHARS {
            return Err(StoreError::InvalidInput(format!(
                "a contact name has 1 to {MAX_CONTACT_NAME_CHARS} characters"
            )));
        }
        let holder: Option<Vec<u8>> = self
            .conn
            .query_row("SELECT uid FROM contacts WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .context(CTX)?;
        if holder.is_some_and(|h| h.as_slice() != uid) {
            return Err(StoreError::NameTaken(name.to_string()));
        }
        Ok(self
            .conn
            .execute(
                "UPDATE contacts SET name = ?2 WHERE uid = ?1",
                params![&uid[..], name],
            )
            .context(CTX)?
            == 1)
    }

    /// Removes a contact with its devices, its 1:1 conversations and their history (the
    /// foreign keys cascade) and its conversation settings; false if there was none. The
    /// caller forgets the conversations' MLS state in the same transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn remove_contact(&mut self, uid: &[u8; 32]) -> Result<bool, StoreError> {
        const CTX: &str = "removing a contact";
        self.atomic(|tx| {
            tx.execute(
                "DELETE FROM conversation_settings WHERE peer = ?1",
                [&uid[..]],
            )
            .context(CTX)?;
            Ok(tx
                .execute("DELETE FROM contacts WHERE uid = ?1", [&uid[..]])
                .context(CTX)?
                == 1)
        })
    }

    /// Sets what is given of a conversation's settings (`None`: unchanged); the settings now.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn set_conversation_settings(
        &mut self,
        peer: &[u8; 32],
        muted: Option<bool>,
        archived: Option<bool>,
        now: i64,
    ) -> Result<ConversationSettings, StoreError> {
        let mut settings = self.conversation_settings(peer)?;
        settings.muted = muted.unwrap_or(settings.muted);
        settings.archived = archived.unwrap_or(settings.archived);
        self.conn
            .execute(
                "INSERT INTO conversation_settings (peer, muted, archived, updated_at)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (peer) DO UPDATE SET muted = ?2, archived = ?3, updated_at = ?4",
                params![
                    &peer[..],
                    i64::from(settings.muted),
                    i64::from(settings.archived),
                    now
                ],
            )
            .context("changing conversation settings")?;
        Ok(settings)
    }

    /// Deletes one shown message (a text or a file) on this device; false if there is no
    /// such message (or it was deleted already).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn delete_message_locally(&mut self, id: i64) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE messages SET kind = 'deleted', body = NULL
             WHERE id = ?1 AND kind IN {SHOWN_KINDS} RETURNING id"
        );
        Ok(!self.tombstone(&sql, params![id])?.is_empty())
    }

    /// Deletes the shown message of `session_id` that `sender_device` sent as `seq` (either
    /// direction: how another of our devices names a message it deleted); the ids deleted
    /// (none when it is unknown or deleted already).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn delete_by_envelope(
        &mut self,
        session_id: &[u8; 16],
        sender_device: &[u8; 32],
        seq: u64,
    ) -> Result<Vec<i64>, StoreError> {
        let sql = format!(
            "UPDATE messages SET kind = 'deleted', body = NULL
             WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3
               AND kind IN {SHOWN_KINDS} RETURNING id"
        );
        self.tombstone(
            &sql,
            params![&session_id[..], &sender_device[..], seq as i64],
        )
    }

    /// Deletes every shown message of a conversation on this device; how many.
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn clear_history(&mut self, session_id: &[u8; 16]) -> Result<usize, StoreError> {
        let sql = format!(
            "UPDATE messages SET kind = 'deleted', body = NULL
             WHERE session_id = ?1 AND kind IN {SHOWN_KINDS} RETURNING id"
        );
        Ok(self.tombstone(&sql, params![&session_id[..]])?.len())
    }

    /// Deletes the message a sender asked to delete for everyone, in one of `sessions` (the
    /// conversations with the requester: several for a contact whose conversation was
    /// re-established); the ids of the rows deleted (none when it is unknown, deleted already
    /// or not the requester's).
    ///
    /// # Errors
    ///
    /// [`StoreError`] if the database fails.
    pub fn delete_requested(
        &mut self,
        sessions: &[[u8; 16]],
        target: &DeleteTarget,
    ) -> Result<Vec<i64>, StoreError> {
        let mut deleted = Vec::new();
        for session in sessions {
            let ids = match target {
                DeleteTarget::Group {
                    sender_uid,
                    message_id,
                } => {
                    let sql = format!(
                        "UPDATE messages SET kind = 'deleted', body = NULL
                         WHERE session_id = ?1 AND sender_uid = ?2 AND message_id = ?3
                           AND kind IN {SHOWN_KINDS} RETURNING id"
                    );
                    self.tombstone(
                        &sql,
                        params![&session[..], &sender_uid[..], &message_id[..]],
                    )?
                }
                DeleteTarget::Direct {
                    sender_device,
                    seq,
                    outgoing,
                } => {
                    let sql = format!(
                        "UPDATE messages SET kind = 'deleted', body = NULL
                         WHERE session_id = ?1 AND sender_device = ?2 AND seq = ?3
                           AND direction = ?4 AND kind IN {SHOWN_KINDS} RETURNING id"
                    );
                    let direction = if *outgoing { "out" } else { "in" };
                    self.tombstone(
                        &sql,
                        params![&session[..], &sender_device[..], *seq as i64, direction],
                    )?
                }
            };
            deleted.extend(ids);
        }
        Ok(deleted)
    }

    /// Runs an `UPDATE … RETURNING id` that makes rows `deleted`, and drops their file rows.
    fn tombstone(
        &mut self,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<i64>, StoreError> {
        const CTX: &str = "deleting messages";
        self.atomic(|tx| {
            let ids = tx
                .prepare_cached(sql)
                .context(CTX)?
                .query_map(params, |r| r.get::<_, i64>(0))
                .context(CTX)?
                .collect::<Result<Vec<_>, _>>()
                .context(CTX)?;
            for id in &ids {
                tx.execute("DELETE FROM files WHERE message_id = ?1", [id])
                    .context(CTX)?;
            }
            Ok(ids)
        })
    }
}
