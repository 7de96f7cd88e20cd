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
}

impl Reader<'_> {
    /// The rejoin row of a group, if any.
    pub fn group_rejoin(
        &self,
        session_id: &[u8; 16],
    ) -> Result<Option<GroupRejoinRow>, StoreError> {
        self.conn
            .query_row(
                "SELECT epoch, behind_since, requested_at FROM group_rejoins WHERE session_id = ?1",
                [&session_id[..]],
                |r| {
                    Ok(GroupRejoinRow {
                        epoch: r.get::<_, i64>(0)? as u64,
                        behind_since: r.get(1)?,
                        requested_at: r.get(2)?,
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
                 ON CONFLICT (session_id) DO UPDATE SET epoch = ?2, behind_since = ?3
                 WHERE epoch != ?2",
                params![&session_id[..], epoch as i64, now],
            )
            .context("noting a group we are behind in")?;
        self.group_rejoin(session_id)?
            .ok_or_else(|| StoreError::InvalidInput("a group's rejoin row vanished".into()))
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
