//! The persisted seen-set (`seen`): (sender device, session, seq) already accepted.

use rusqlite::{OptionalExtension, params};

use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

impl Reader<'_> {
    /// Whether (sender_device, session, seq) is in the seen-set.
    pub fn seen_contains(
        &self,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT 1 FROM seen WHERE sender_device = ?1 AND session_id = ?2 AND seq = ?3",
                params![&sender_device[..], &session_id[..], seq as i64],
                |_| Ok(()),
            )
            .optional()
            .context("reading the seen-set")?
            .is_some())
    }
}

impl Tx<'_> {
    /// Inserts (sender_device, session, seq) into the seen-set with the
    /// envelope's own signed `timestamp` (unix ms), which [`prune_seen`](crate::Tx::prune_seen) compares against —
    /// not the time it was received, so an entry lives exactly as long as the replay window can
    /// accept its envelope. `true` if it was new, `false` if it had been seen (a replay or
    /// duplicate).
    pub fn seen_insert(
        &mut self,
        sender_device: &[u8; 32],
        session_id: &[u8; 16],
        seq: u64,
        envelope_timestamp: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
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

    /// Removes the seen-set entries whose *envelope timestamp* is below `before` (unix ms; the
    /// node passes `rhizo_core::seen::prune_cutoff(now)`).
    pub fn prune_seen(&mut self, before: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM seen WHERE envelope_ts < ?1", [before])
            .context("pruning the seen-set")
    }
}
