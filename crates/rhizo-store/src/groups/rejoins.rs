//! Automatic rejoin bookkeeping: since when this node has been behind in a group (its
//! messages keep arriving for an epoch it cannot reach, at the same epoch of ours) and when it
//! last asked the group's admins to re-add it. One row per group at most; deleted with the
//! group, and when a Welcome joined it again.

use rusqlite::{OptionalExtension, params};

use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// Where this node stands in a group it may be stuck in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupRejoinRow {
    /// Our MLS epoch when we first found ourselves behind.
    pub epoch: u64,
    /// Since when (unix ms) we have been behind at that epoch.
    pub behind_since: i64,
    /// When (unix ms) we last sent a `GroupRejoin`, if ever.
    pub requested_at: Option<i64>,
    /// When (unix ms, local time) we first saw that the group moved on for good without us
    /// at that epoch, if we did: the request waits a grace after it.
    pub stuck_at: Option<i64>,
    /// How many member UIDs sent envelopes that showed us behind or on another branch at
    /// that epoch (at most [`MAX_BEHIND_SENDERS`]).
    pub senders: usize,
}

/// At most this many sender UIDs are kept per group row (a larger group needs no more to
/// tell a majority: the engine caps what it asks for).
pub const MAX_BEHIND_SENDERS: usize = 64;

impl Reader<'_> {
    /// The rejoin row of a group, if any.
    pub fn group_rejoin(
        &self,
        session_id: &[u8; 16],
    ) -> Result<Option<GroupRejoinRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT epoch, behind_since, requested_at, stuck_at, length(senders) / 32
                 FROM group_rejoins WHERE session_id = ?1",
                [&session_id[..]],
                |r| {
                    Ok(GroupRejoinRow {
                        epoch: r.get::<_, i64>(0)? as u64,
                        behind_since: r.get(1)?,
                        requested_at: r.get(2)?,
                        stuck_at: r.get(3)?,
                        senders: r.get::<_, i64>(4)? as usize,
                    })
                },
            )
            .optional()
            .context("reading a group's rejoin state")
    }
}

impl Tx<'_> {
    /// Notes that we are behind in a group at `epoch` (at `now`): a row at another epoch
    /// starts again from `now` (we moved on meanwhile); the row as it stands now.
    pub fn note_group_behind(
        &mut self,
        session_id: &[u8; 16],
        epoch: u64,
        now: i64,
    ) -> Result<GroupRejoinRow, StoreError> {
        self.conn
            .execute(
                "INSERT INTO group_rejoins (session_id, epoch, behind_since) VALUES (?1, ?2, ?3)
                 ON CONFLICT (session_id) DO UPDATE SET epoch = ?2, behind_since = ?3,
                     stuck_at = NULL, senders = x''
                 WHERE epoch != ?2",
                params![&session_id[..], epoch as i64, now],
            )
            .context("noting a group we are behind in")?;
        self.group_rejoin(session_id)?
            .ok_or_else(|| StoreError::InvalidInput("a group's rejoin row vanished".into()))
    }

    /// Notes (once per epoch row) that the group moved on for good without us, at local
    /// time `now`; when it was first noted. The row must exist ([`Tx::note_group_behind`]).
    pub fn note_group_stuck(&mut self, session_id: &[u8; 16], now: i64) -> Result<i64, StoreError> {
        self.conn
            .execute(
                "UPDATE group_rejoins SET stuck_at = coalesce(stuck_at, ?2) WHERE session_id = ?1",
                params![&session_id[..], now],
            )
            .context("noting a group we are stuck in")?;
        self.group_rejoin(session_id)?
            .and_then(|r| r.stuck_at)
            .ok_or_else(|| StoreError::InvalidInput("a group's rejoin row is missing".into()))
    }

    /// Adds `uid` to the senders that showed us behind at the row's epoch (once each, at most
    /// [`MAX_BEHIND_SENDERS`]); how many there are now. The row must exist
    /// ([`Tx::note_group_behind`]).
    pub fn note_group_behind_sender(
        &mut self,
        session_id: &[u8; 16],
        uid: &[u8; 32],
    ) -> Result<usize, StoreError> {
        let mut senders: Vec<u8> = self
            .conn
            .query_row(
                "SELECT senders FROM group_rejoins WHERE session_id = ?1",
                [&session_id[..]],
                |r| r.get(0),
            )
            .optional()
            .context("reading who showed us behind")?
            .ok_or_else(|| StoreError::InvalidInput("a group's rejoin row is missing".into()))?;
        let known = senders.chunks(32).any(|c| c == uid.as_slice());
        if known || senders.len() / 32 >= MAX_BEHIND_SENDERS {
            return Ok(senders.len() / 32);
        }
        senders.extend_from_slice(uid);
        self.conn
            .execute(
                "UPDATE group_rejoins SET senders = ?2 WHERE session_id = ?1",
                params![&session_id[..], &senders],
            )
            .context("noting who showed us behind")?;
        Ok(senders.len() / 32)
    }

    /// Records that we asked the group's admins to re-add us at `now`.
    pub fn set_group_rejoin_requested(
        &mut self,
        session_id: &[u8; 16],
        epoch: u64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO group_rejoins (session_id, epoch, behind_since, requested_at)
                 VALUES (?1, ?2, ?3, ?3)
                 ON CONFLICT (session_id) DO UPDATE SET requested_at = ?3",
                params![&session_id[..], epoch as i64, now],
            )
            .context("recording a rejoin request")?;
        Ok(())
    }

    /// Forgets a group's rejoin row (we joined it again, or caught up).
    pub fn clear_group_rejoin(&mut self, session_id: &[u8; 16]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM group_rejoins WHERE session_id = ?1",
                [&session_id[..]],
            )
            .context("clearing a group's rejoin state")?;
        Ok(())
    }
}
