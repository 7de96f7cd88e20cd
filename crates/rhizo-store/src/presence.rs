//! Presence and push state kept across restarts (issue 20): when each contact was last seen
//! online, and a mailbox replica's push subscribers. Both are copies of in-memory state that
//! the node writes now and then and reads at start; both are bounded.
//!
//! ```text
//!  presence task ──save_last_seen(changed)──▶ presence_last_seen ≤ MAX_LAST_SEEN_ROWS
//!  push loop ──replace_push_subscriptions(all)──▶ push_subscriptions ≤ MAX_PUSH_SUBSCRIPTION_ROWS
//!  node start ◀──last_seen() / push_subscriptions()──
//! ```

use rusqlite::params;

use crate::error::{SqliteContext, StoreError};
use crate::tx::{Reader, Tx};

/// Contacts' last-seen times kept at most (the oldest go beyond).
pub const MAX_LAST_SEEN_ROWS: usize = 10_000;
/// Push subscriptions kept at most (2048 mailboxes × 16 peers, the replica's own bounds).
pub const MAX_PUSH_SUBSCRIPTION_ROWS: usize = 2048 * 16;

/// One push subscriber of a mailbox held here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSubscriptionRow {
    /// The mailbox key (the recipient's UID bytes).
    pub mailbox: [u8; 32],
    /// The subscriber's peer id (text).
    pub peer: String,
    /// Its last fetch here (unix ms).
    pub fetched_at: i64,
    /// A push to it was still owed.
    pub pending: bool,
}

impl Reader<'_> {
    /// Every stored last-seen time: (contact UID text, unix seconds).
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn last_seen(&self) -> Result<Vec<(String, i64)>, StoreError> {
        const CONTEXT: &str = "reading last-seen times";
        let mut stmt = self
            .conn
            .prepare_cached("SELECT uid, last_seen FROM presence_last_seen ORDER BY uid")
            .context(CONTEXT)?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(Iterator::collect)
            .context(CONTEXT)
    }

    /// Every stored push subscription.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn push_subscriptions(&self) -> Result<Vec<PushSubscriptionRow>, StoreError> {
        const CONTEXT: &str = "reading push subscriptions";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT mailbox, peer, fetched_at, pending FROM push_subscriptions
                 ORDER BY fetched_at DESC LIMIT ?1",
            )
            .context(CONTEXT)?;
        let limit = i64::try_from(MAX_PUSH_SUBSCRIPTION_ROWS).unwrap_or(i64::MAX);
        stmt.query_map([limit], |r| {
            Ok(PushSubscriptionRow {
                mailbox: r.get(0)?,
                peer: r.get(1)?,
                fetched_at: r.get(2)?,
                pending: r.get(3)?,
            })
        })
        .and_then(Iterator::collect)
        .context(CONTEXT)
    }
}

impl Tx<'_> {
    /// Stores last-seen times (contact UID text, unix seconds), keeping the newest
    /// [`MAX_LAST_SEEN_ROWS`].
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn save_last_seen(&mut self, seen: &[(String, i64)]) -> Result<(), StoreError> {
        const CONTEXT: &str = "saving last-seen times";
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT INTO presence_last_seen (uid, last_seen) VALUES (?1, ?2)
                     ON CONFLICT (uid) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
                )
                .context(CONTEXT)?;
            for (uid, at) in seen {
                stmt.execute(params![uid, at]).context(CONTEXT)?;
            }
        }
        let keep = i64::try_from(MAX_LAST_SEEN_ROWS).unwrap_or(i64::MAX);
        self.conn
            .execute(
                "DELETE FROM presence_last_seen WHERE uid NOT IN
                 (SELECT uid FROM presence_last_seen ORDER BY last_seen DESC LIMIT ?1)",
                [keep],
            )
            .context(CONTEXT)?;
        Ok(())
    }

    /// Replaces the stored push subscriptions with `rows` (the first
    /// [`MAX_PUSH_SUBSCRIPTION_ROWS`]).
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn replace_push_subscriptions(
        &mut self,
        rows: &[PushSubscriptionRow],
    ) -> Result<(), StoreError> {
        const CONTEXT: &str = "saving push subscriptions";
        self.conn
            .execute("DELETE FROM push_subscriptions", [])
            .context(CONTEXT)?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO push_subscriptions (mailbox, peer, fetched_at, pending)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .context(CONTEXT)?;
        for row in rows.iter().take(MAX_PUSH_SUBSCRIPTION_ROWS) {
            stmt.execute(params![row.mailbox, row.peer, row.fetched_at, row.pending])
                .context(CONTEXT)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::Store;

    use super::*;

    #[test]
    fn last_seen_and_push_subscriptions_round_trip_and_stay_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("p.db");
        {
            let mut store = Store::open(&path).unwrap();
            store
                .write(|tx| {
                    tx.save_last_seen(&[("bob".into(), 10), ("carol".into(), 20)])?;
                    // An older time never replaces a newer one.
                    tx.save_last_seen(&[("bob".into(), 5)])?;
                    tx.replace_push_subscriptions(&[PushSubscriptionRow {
                        mailbox: [7; 32],
                        peer: "12D3KooWPeer".into(),
                        fetched_at: 99,
                        pending: true,
                    }])
                })
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        let reader = store.read();
        assert_eq!(
            reader.last_seen().unwrap(),
            [("bob".to_string(), 10), ("carol".to_string(), 20)]
        );
        let subs = reader.push_subscriptions().unwrap();
        assert_eq!(subs.len(), 1);
        assert!(subs[0].pending && subs[0].mailbox == [7; 32]);
        let mut store = store;
        let many: Vec<(String, i64)> = (0..MAX_LAST_SEEN_ROWS + 5)
            .map(|i| (format!("u{i}"), i64::try_from(i).unwrap()))
            .collect();
        store.write(|tx| tx.save_last_seen(&many)).unwrap();
        let kept = store.read().last_seen().unwrap();
        assert_eq!(kept.len(), MAX_LAST_SEEN_ROWS);
        assert!(!kept.iter().any(|(u, _)| u == "u0"), "the oldest went");
    }
}
