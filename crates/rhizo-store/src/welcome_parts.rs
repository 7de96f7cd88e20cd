//! Pieces of Welcomes sent in parts (`MESSAGE_TYPE_WELCOME_PART`), kept until the rest arrives
//! so that a piece acknowledged to its sender survives a restart.
//!
//! ```text
//!  inbound part ─▶ keep_welcome_part (in the envelope's transaction, before its receipt)
//!     ─▶ expired unfinished Welcomes dropped ─▶ per-sender bound ─▶ row written
//!     ─▶ last piece: rows read in order, joined, hash checked, rows deleted ─▶ Complete
//!     ─▶ otherwise: the oldest other unfinished Welcomes dropped while over the node bounds
//! ```
//!
//! The bounds are rhizo-core's (`rhizo_core::welcome`): [`MAX_PENDING_PER_SENDER`] unfinished
//! Welcomes per sender UID (a further one is refused), [`MAX_PENDING_WELCOMES`] and
//! [`MAX_PENDING_BYTES`] per node (the oldest unfinished one is dropped to make room), and
//! [`WELCOME_PART_TTL_SECS`] from a Welcome's first piece.

use rhizo_core::welcome::{
    MAX_PART_BYTES, MAX_PENDING_BYTES, MAX_PENDING_PER_SENDER, MAX_PENDING_WELCOMES,
    MAX_WELCOME_BYTES, MAX_WELCOME_PARTS, Reassembly, WELCOME_PART_TTL_SECS, WelcomePart,
    WelcomePartError, join_parts,
};
use rusqlite::{OptionalExtension, params};

use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// How long an unfinished Welcome is kept after its first piece (unix ms).
pub const WELCOME_PART_TTL_MS: i64 = WELCOME_PART_TTL_SECS as i64 * 1000;

/// What is held of unfinished Welcomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WelcomePartsHeld {
    /// Unfinished Welcomes.
    pub welcomes: usize,
    /// Pieces.
    pub parts: usize,
    /// Bytes of the pieces' data.
    pub bytes: usize,
}

/// The unfinished Welcome a new piece belongs to, as stored.
struct Unfinished {
    count: u32,
    first_at: i64,
    received: u32,
    bytes: usize,
}

impl Reader<'_> {
    /// What is held of unfinished Welcomes (all of them, expired or not).
    pub fn welcome_parts_held(&self) -> Result<WelcomePartsHeld, StoreError> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM
                            (SELECT 1 FROM welcome_parts GROUP BY sender_uid, welcome_id)),
                        count(*), coalesce(sum(length(data)), 0)
                 FROM welcome_parts",
                [],
                |r| {
                    Ok(WelcomePartsHeld {
                        welcomes: r.get::<_, i64>(0)? as usize,
                        parts: r.get::<_, i64>(1)? as usize,
                        bytes: r.get::<_, i64>(2)? as usize,
                    })
                },
            )
            .context("counting Welcome parts")
    }

    /// The unfinished Welcome `(sender, welcome_id)`, if pieces of it are held.
    fn unfinished(
        &self,
        sender: &[u8; 32],
        welcome_id: &[u8; 32],
    ) -> Result<Option<Unfinished>, StoreError> {
        self.conn
            .query_row(
                "SELECT min(count), min(first_at), count(*), coalesce(sum(length(data)), 0)
                 FROM welcome_parts WHERE sender_uid = ?1 AND welcome_id = ?2
                 HAVING count(*) > 0",
                params![&sender[..], &welcome_id[..]],
                |r| {
                    Ok(Unfinished {
                        count: u32::try_from(r.get::<_, i64>(0)?).unwrap_or(u32::MAX),
                        first_at: r.get(1)?,
                        received: r.get::<_, i64>(2)? as u32,
                        bytes: r.get::<_, i64>(3)? as usize,
                    })
                },
            )
            .optional()
            .context("reading an unfinished Welcome")
    }
}

impl Tx<'_> {
    /// Keeps one piece (decoded and checked with [`WelcomePart::decode`]) of a Welcome that
    /// `sender` sent in parts, received at `now` (unix ms), and reassembles the Welcome from
    /// the stored pieces once the last one is here (its pieces are then deleted). Expired
    /// unfinished Welcomes are dropped first; beyond the node bounds the oldest other ones are
    /// dropped after the piece was written.
    ///
    /// The inner `Err` refuses the piece: [`WelcomePartError::TooManyPending`] keeps nothing
    /// new; [`WelcomePartError::CountMismatch`], [`WelcomePartError::Conflict`],
    /// [`WelcomePartError::TooLarge`] and [`WelcomePartError::HashMismatch`] drop the
    /// unfinished Welcome.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] when a stored piece is damaged (its row does not fit the
    /// Welcome it belongs to; the unfinished Welcome must then be dropped with
    /// [`Tx::drop_welcome_parts`]), or if the database fails.
    pub fn keep_welcome_part(
        &mut self,
        sender: &[u8; 32],
        part: &WelcomePart,
        now: i64,
    ) -> Result<Result<Reassembly, WelcomePartError>, StoreError> {
        const CTX: &str = "keeping a Welcome part";
        self.purge_welcome_parts(now)?;
        let id = &part.welcome_id;
        let held = self.unfinished(sender, id)?;
        let first_at = match &held {
            Some(h) => h.first_at,
            None => {
                let from_sender: i64 = self
                    .conn
                    .query_row(
                        "SELECT count(DISTINCT welcome_id) FROM welcome_parts
                         WHERE sender_uid = ?1",
                        [&sender[..]],
                        |r| r.get(0),
                    )
                    .context(CTX)?;
                if from_sender as usize >= MAX_PENDING_PER_SENDER {
                    return Ok(Err(WelcomePartError::TooManyPending));
                }
                now
            }
        };
        if let Some(refused) = self.check_part(sender, part, held.as_ref())? {
            return Ok(refused);
        }
        self.conn
            .execute(
                "INSERT INTO welcome_parts (sender_uid, welcome_id, idx, count, data, first_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &sender[..],
                    &id[..],
                    part.index,
                    part.count,
                    part.data,
                    first_at
                ],
            )
            .context(CTX)?;
        let received = held.as_ref().map_or(0, |h| h.received) + 1;
        if received < part.count {
            self.make_room_for_welcomes(sender, id)?;
            return Ok(Ok(Reassembly::Pending {
                received,
                count: part.count,
            }));
        }
        let pieces = self.welcome_pieces(sender, id, part.count)?;
        self.drop_welcome_parts(sender, id)?;
        Ok(join_parts(id, &pieces).map(Reassembly::Complete))
    }

    /// Whether `part` fits the unfinished Welcome `held`: `Some` answers it without storing
    /// (a duplicate, or a refusal that dropped the unfinished Welcome).
    fn check_part(
        &mut self,
        sender: &[u8; 32],
        part: &WelcomePart,
        held: Option<&Unfinished>,
    ) -> Result<Option<Result<Reassembly, WelcomePartError>>, StoreError> {
        let Some(held) = held else {
            return Ok(None);
        };
        let id = &part.welcome_id;
        let refused = if held.count != part.count {
            WelcomePartError::CountMismatch {
                expected: held.count,
                got: part.count,
            }
        } else if let Some(data) = self.welcome_piece(sender, id, part.index)? {
            if data == part.data {
                return Ok(Some(Ok(Reassembly::Duplicate)));
            }
            WelcomePartError::Conflict(part.index)
        } else if held.bytes.saturating_add(part.data.len()) > MAX_WELCOME_BYTES {
            WelcomePartError::TooLarge {
                what: "welcome",
                len: held.bytes.saturating_add(part.data.len()),
                max: MAX_WELCOME_BYTES,
            }
        } else {
            return Ok(None);
        };
        self.drop_welcome_parts(sender, id)?;
        Ok(Some(Err(refused)))
    }

    /// One stored piece's data.
    fn welcome_piece(
        &self,
        sender: &[u8; 32],
        welcome_id: &[u8; 32],
        index: u32,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        self.conn
            .query_row(
                "SELECT data FROM welcome_parts
                 WHERE sender_uid = ?1 AND welcome_id = ?2 AND idx = ?3",
                params![&sender[..], &welcome_id[..], index],
                |r| r.get(0),
            )
            .optional()
            .context("reading a Welcome part")
    }

    /// Every piece of a complete Welcome, in order, each checked against the Welcome it
    /// belongs to (a damaged row is an error that says so).
    fn welcome_pieces(
        &self,
        sender: &[u8; 32],
        welcome_id: &[u8; 32],
        count: u32,
    ) -> Result<Vec<Vec<u8>>, StoreError> {
        const CTX: &str = "reading the parts of a Welcome";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT idx, count, data FROM welcome_parts
                 WHERE sender_uid = ?1 AND welcome_id = ?2 ORDER BY idx",
            )
            .context(CTX)?;
        let rows = stmt
            .query_map(params![&sender[..], &welcome_id[..]], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)?;
        let damaged = |why: String| {
            StoreError::InvalidInput(format!(
                "a stored Welcome part is damaged ({why}); drop that unfinished Welcome and \
                 let the inviter send it again"
            ))
        };
        if rows.len() != count as usize || count as usize > MAX_WELCOME_PARTS {
            return Err(damaged(format!("{} pieces of {count}", rows.len())));
        }
        rows.into_iter()
            .zip(0i64..)
            .map(|((idx, n, data), expected)| {
                if idx != expected || n != i64::from(count) {
                    return Err(damaged(format!("piece {idx} of {n}, expected {expected}")));
                }
                if data.is_empty() || data.len() > MAX_PART_BYTES {
                    return Err(damaged(format!("piece {idx} holds {} bytes", data.len())));
                }
                Ok(data)
            })
            .collect()
    }

    /// Forgets an unfinished Welcome (completed, refused, dropped for room); how many pieces.
    pub fn drop_welcome_parts(
        &mut self,
        sender: &[u8; 32],
        welcome_id: &[u8; 32],
    ) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM welcome_parts WHERE sender_uid = ?1 AND welcome_id = ?2",
                params![&sender[..], &welcome_id[..]],
            )
            .context("dropping a Welcome's parts")
    }

    /// Drops unfinished Welcomes whose first piece arrived [`WELCOME_PART_TTL_MS`] or more
    /// before `now`; how many pieces.
    pub fn purge_welcome_parts(&mut self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .execute(
                "DELETE FROM welcome_parts WHERE first_at <= ?1",
                [now.saturating_sub(WELCOME_PART_TTL_MS)],
            )
            .context("dropping expired Welcome parts")
    }

    /// Drops the oldest unfinished Welcomes other than `(sender, keep)` while over
    /// [`MAX_PENDING_WELCOMES`] or [`MAX_PENDING_BYTES`].
    fn make_room_for_welcomes(
        &mut self,
        sender: &[u8; 32],
        keep: &[u8; 32],
    ) -> Result<(), StoreError> {
        const CTX: &str = "making room for a Welcome";
        loop {
            let held = self.welcome_parts_held()?;
            if held.welcomes <= MAX_PENDING_WELCOMES && held.bytes <= MAX_PENDING_BYTES {
                return Ok(());
            }
            let oldest: Option<(Vec<u8>, Vec<u8>)> = self
                .conn
                .query_row(
                    "SELECT sender_uid, welcome_id FROM welcome_parts
                     WHERE NOT (sender_uid = ?1 AND welcome_id = ?2)
                     ORDER BY first_at, id LIMIT 1",
                    params![&sender[..], &keep[..]],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .context(CTX)?;
            let Some((uid, id)) = oldest else {
                return Ok(());
            };
            self.conn
                .execute(
                    "DELETE FROM welcome_parts WHERE sender_uid = ?1 AND welcome_id = ?2",
                    params![uid, id],
                )
                .context(CTX)?;
        }
    }
}

#[cfg(test)]
mod tests;
