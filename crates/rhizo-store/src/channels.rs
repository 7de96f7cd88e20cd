//! Public channels joined and their recent posts.
//!
//! ```text
//!  join_channel(row) ──▶ channels (≤ MAX_CHANNELS) ──1:n──▶ channel_posts (newest max_history
//!  leave_channel(id) ──▶ row and its posts gone (cascade)      per channel, by sent_at)
//!  insert_channel_post(row, max_history) ─▶ dedupe by post_id, then trim the channel's oldest
//!  channel_posts(id, limit) ◀── newest `limit`, oldest first
//! ```
//!
//! Posts are stored after the caller verified them (signature, certificate, channel, time);
//! the text is opaque here. Times are unix milliseconds passed in by the caller.

use rusqlite::{OptionalExtension, Row, params};

use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;
use crate::tx::{Atomic, Reader, Tx};

/// Most channels joined at once.
pub const MAX_CHANNELS: usize = 1_000;
/// Largest history kept per channel (the `max_history` of
/// [`insert_channel_post`](crate::Tx::insert_channel_post)), and most posts returned by one query.
pub const MAX_CHANNEL_HISTORY: usize = 10_000;

/// A channel joined.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelRow {
    /// The channel id (SHA-256 of creator and name, see `rhizo_core::channel::ChannelId`).
    pub id: [u8; 32],
    /// Its name.
    pub name: String,
    /// The creator's UID, when known.
    pub creator_uid: Option<[u8; 32]>,
    /// When we joined (unix ms).
    pub joined_at: i64,
}

impl ChannelRow {
    /// Reads a row of `id, name, creator_uid, joined_at`.
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: blob(row.get(0)?)?,
            name: row.get(1)?,
            creator_uid: row.get::<_, Option<Vec<u8>>>(2)?.map(blob).transpose()?,
            joined_at: row.get(3)?,
        })
    }
}

/// A verified post of a joined channel.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChannelPostRow {
    /// SHA-256 of the encoded post (its gossipsub message id).
    pub post_id: [u8; 32],
    /// The channel.
    pub channel_id: [u8; 32],
    /// The author's UID.
    pub author_uid: [u8; 32],
    /// The author's device public key.
    pub author_device: [u8; 32],
    /// The text.
    pub text: String,
    /// The author's claimed time (unix ms); history is ordered by it.
    pub sent_at: i64,
    /// When this node received (or, for our own, sent) it (unix ms).
    pub received_at: i64,
    /// Whether we wrote it.
    pub own: bool,
}

impl ChannelPostRow {
    /// Reads a row of the columns in [`POST_COLUMNS`].
    fn from_row(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            post_id: blob(row.get(0)?)?,
            channel_id: blob(row.get(1)?)?,
            author_uid: blob(row.get(2)?)?,
            author_device: blob(row.get(3)?)?,
            text: row.get(4)?,
            sent_at: row.get(5)?,
            received_at: row.get(6)?,
            own: row.get::<_, i64>(7)? != 0,
        })
    }
}

/// The columns [`ChannelPostRow::from_row`] reads, in its order.
const POST_COLUMNS: &str =
    "post_id, channel_id, author_uid, author_device, text, sent_at, received_at, own";

/// Channel methods.
impl Reader<'_> {
    /// Every channel joined, in the order joined.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        const CONTEXT: &str = "listing channels";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, name, creator_uid, joined_at FROM channels ORDER BY joined_at, id",
            )
            .context(CONTEXT)?;
        stmt.query_map([], ChannelRow::from_row)
            .and_then(Iterator::collect)
            .context(CONTEXT)
    }

    /// The joined channel `id`, if joined.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn channel(&self, id: &[u8; 32]) -> Result<Option<ChannelRow>, StoreError> {
        self.conn
            .prepare_cached("SELECT id, name, creator_uid, joined_at FROM channels WHERE id = ?1")
            .and_then(|mut stmt| stmt.query_row([&id[..]], ChannelRow::from_row).optional())
            .context("reading a channel")
    }

    /// The newest `limit` posts of a channel (at most [`MAX_CHANNEL_HISTORY`]), returned oldest
    /// first. Empty for a channel not joined.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn channel_posts(
        &self,
        channel_id: &[u8; 32],
        limit: usize,
    ) -> Result<Vec<ChannelPostRow>, StoreError> {
        const CONTEXT: &str = "reading channel posts";
        let sql = format!(
            "SELECT * FROM (
                 SELECT {POST_COLUMNS} FROM channel_posts WHERE channel_id = ?1
                 ORDER BY sent_at DESC, post_id DESC LIMIT ?2)
             ORDER BY sent_at ASC, post_id ASC"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CONTEXT)?;
        let limit = i64::try_from(limit.min(MAX_CHANNEL_HISTORY)).unwrap_or(i64::MAX);
        stmt.query_map(params![&channel_id[..], limit], ChannelPostRow::from_row)
            .and_then(Iterator::collect)
            .context(CONTEXT)
    }
}

impl Tx<'_> {
    /// Joins a channel. Returns true if it was not joined before; joining again changes nothing
    /// (the stored name, creator and time stay).
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] for an empty name; [`StoreError::TableFull`] with
    /// [`MAX_CHANNELS`] channels joined; or if SQLite fails.
    pub fn join_channel(&mut self, row: &ChannelRow) -> Result<bool, StoreError> {
        const CONTEXT: &str = "joining a channel";
        if row.name.is_empty() {
            return Err(StoreError::InvalidInput(
                "a channel needs a name to be joined".into(),
            ));
        }
        let tx = Atomic::begin(self.conn).context(CONTEXT)?;
        let known = tx
            .prepare_cached("SELECT 1 FROM channels WHERE id = ?1")
            .and_then(|mut stmt| stmt.exists([&row.id[..]]))
            .context(CONTEXT)?;
        if known {
            return Ok(false);
        }
        let count: i64 = tx
            .query_row("SELECT count(*) FROM channels", [], |r| r.get(0))
            .context(CONTEXT)?;
        if count >= i64::try_from(MAX_CHANNELS).unwrap_or(i64::MAX) {
            return Err(StoreError::TableFull(format!(
                "{MAX_CHANNELS} channels are joined already, the most allowed; leave one first"
            )));
        }
        tx.prepare_cached(
            "INSERT INTO channels (id, name, creator_uid, joined_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                &row.id[..],
                row.name,
                row.creator_uid.as_ref().map(|uid| &uid[..]),
                row.joined_at
            ])
        })
        .context(CONTEXT)?;
        tx.commit().context(CONTEXT)?;
        Ok(true)
    }

    /// Leaves a channel and deletes its stored posts. Returns whether it was joined.
    ///
    /// # Errors
    ///
    /// If SQLite fails.
    pub fn leave_channel(&mut self, id: &[u8; 32]) -> Result<bool, StoreError> {
        let removed = self
            .conn
            .prepare_cached("DELETE FROM channels WHERE id = ?1")
            .and_then(|mut stmt| stmt.execute([&id[..]]))
            .context("leaving a channel")?;
        Ok(removed > 0)
    }

    /// Stores a verified post, then keeps only the newest `max_history` posts of its channel
    /// (by `sent_at`, ties by `post_id`). Returns true if the post is new *and* was kept (a post
    /// older than the whole kept history is dropped at once); false for a duplicate `post_id`.
    ///
    /// # Errors
    ///
    /// [`StoreError::InvalidInput`] if the channel is not joined (for example it was just
    /// left) or `max_history` is not 1 to [`MAX_CHANNEL_HISTORY`]; or if SQLite fails (then
    /// nothing changed).
    pub fn insert_channel_post(
        &mut self,
        row: &ChannelPostRow,
        max_history: usize,
    ) -> Result<bool, StoreError> {
        const CONTEXT: &str = "storing a channel post";
        if max_history == 0 || max_history > MAX_CHANNEL_HISTORY {
            return Err(StoreError::InvalidInput(format!(
                "channel history must keep 1 to {MAX_CHANNEL_HISTORY} posts, not {max_history}"
            )));
        }
        let tx = Atomic::begin(self.conn).context(CONTEXT)?;
        let joined = tx
            .prepare_cached("SELECT 1 FROM channels WHERE id = ?1")
            .and_then(|mut stmt| stmt.exists([&row.channel_id[..]]))
            .context(CONTEXT)?;
        if !joined {
            return Err(StoreError::InvalidInput(
                "post for a channel that is not joined; join the channel first (or drop posts \
                 that arrive after leaving it)"
                    .into(),
            ));
        }
        let inserted = tx
            .prepare_cached(
                "INSERT INTO channel_posts (post_id, channel_id, author_uid, author_device, text,
                     sent_at, received_at, own)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (post_id) DO NOTHING",
            )
            .and_then(|mut stmt| {
                stmt.execute(params![
                    &row.post_id[..],
                    &row.channel_id[..],
                    &row.author_uid[..],
                    &row.author_device[..],
                    row.text,
                    row.sent_at,
                    row.received_at,
                    i64::from(row.own)
                ])
            })
            .context(CONTEXT)?
            > 0;
        if !inserted {
            return Ok(false);
        }
        tx.prepare_cached(
            "DELETE FROM channel_posts WHERE channel_id = ?1 AND post_id NOT IN (
                 SELECT post_id FROM channel_posts WHERE channel_id = ?1
                 ORDER BY sent_at DESC, post_id DESC LIMIT ?2)",
        )
        .and_then(|mut stmt| {
            stmt.execute(params![
                &row.channel_id[..],
                i64::try_from(max_history).unwrap_or(i64::MAX)
            ])
        })
        .context(CONTEXT)?;
        let kept = tx
            .prepare_cached("SELECT 1 FROM channel_posts WHERE post_id = ?1")
            .and_then(|mut stmt| stmt.exists([&row.post_id[..]]))
            .context(CONTEXT)?;
        tx.commit().context(CONTEXT)?;
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn channel(n: u8) -> ChannelRow {
        ChannelRow {
            id: [n; 32],
            name: format!("channel {n}"),
            creator_uid: Some([n.wrapping_add(100); 32]),
            joined_at: 1000 + i64::from(n),
        }
    }

    fn post(channel: u8, n: u8, sent_at: i64) -> ChannelPostRow {
        ChannelPostRow {
            post_id: [n; 32],
            channel_id: [channel; 32],
            author_uid: [7; 32],
            author_device: [8; 32],
            text: format!("post {n}"),
            sent_at,
            received_at: sent_at + 5,
            own: n.is_multiple_of(2),
        }
    }

    fn texts(posts: &[ChannelPostRow]) -> Vec<&str> {
        posts.iter().map(|p| p.text.as_str()).collect()
    }

    #[test]
    fn join_list_leave() {
        let mut store = Store::open_in_memory().expect("open");
        assert!(store.read().channels().expect("list").is_empty());
        assert!(
            store
                .write(|tx| tx.join_channel(&channel(2)))
                .expect("join")
        );
        let anonymous = ChannelRow {
            creator_uid: None,
            ..channel(1)
        };
        assert!(store.write(|tx| tx.join_channel(&anonymous)).expect("join"));
        // Joining again keeps the first row.
        let renamed = ChannelRow {
            name: "other".into(),
            ..channel(2)
        };
        assert!(
            !store
                .write(|tx| tx.join_channel(&renamed))
                .expect("join again")
        );
        assert_eq!(
            store.read().channels().expect("list"),
            [anonymous.clone(), channel(2)],
            "in the order joined"
        );
        assert_eq!(
            store.read().channel(&[2; 32]).expect("get"),
            Some(channel(2))
        );
        assert_eq!(
            store.read().channel(&[1; 32]).expect("get"),
            Some(anonymous)
        );
        assert_eq!(store.read().channel(&[9; 32]).expect("get"), None);

        assert!(store.write(|tx| tx.leave_channel(&[2; 32])).expect("leave"));
        assert!(
            !store
                .write(|tx| tx.leave_channel(&[2; 32]))
                .expect("leave again")
        );
        assert_eq!(store.read().channel(&[2; 32]).expect("get"), None);
        assert_eq!(store.read().channels().expect("list").len(), 1);

        let err = store
            .write(|tx| {
                tx.join_channel(&ChannelRow {
                    name: String::new(),
                    ..channel(3)
                })
            })
            .expect_err("empty name");
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    }

    #[test]
    fn joined_channels_are_bounded() {
        let mut store = Store::open_in_memory().expect("open");
        {
            let tx = store.conn.transaction().expect("tx");
            for i in 0..MAX_CHANNELS as u32 {
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&i.to_be_bytes());
                tx.execute(
                    "INSERT INTO channels (id, name, joined_at) VALUES (?1, 'c', 0)",
                    [&id[..]],
                )
                .expect("insert");
            }
            tx.commit().expect("commit");
        }
        let err = store
            .write(|tx| tx.join_channel(&channel(255)))
            .expect_err("full");
        assert!(matches!(err, StoreError::TableFull(_)), "{err:?}");
        assert!(err.to_string().contains("leave one first"), "{err}");
        // Re-joining a joined one is still fine.
        let mut first = channel(0);
        first.id = [0; 32];
        assert!(!store.write(|tx| tx.join_channel(&first)).expect("known"));
    }

    #[test]
    fn posts_are_deduplicated_and_listed_newest_last() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.join_channel(&channel(1)))
            .expect("join");
        store
            .write(|tx| tx.join_channel(&channel(2)))
            .expect("join");
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(1, 10, 300), 100))
                .expect("insert")
        );
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(1, 11, 100), 100))
                .expect("insert")
        );
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(1, 12, 200), 100))
                .expect("insert")
        );
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(2, 20, 150), 100))
                .expect("insert")
        );
        // A duplicate post id is ignored, whatever else it says.
        let mut dup = post(1, 10, 999);
        dup.text = "changed".into();
        assert!(
            !store
                .write(|tx| tx.insert_channel_post(&dup, 100))
                .expect("dup")
        );

        let all = store.read().channel_posts(&[1; 32], 100).expect("posts");
        assert_eq!(texts(&all), ["post 11", "post 12", "post 10"], "by sent_at");
        assert_eq!(all[2], post(1, 10, 300), "every field round-trips");
        assert!(all[1].own && !all[0].own);
        // The newest `limit`, still oldest first.
        assert_eq!(
            texts(&store.read().channel_posts(&[1; 32], 2).expect("posts")),
            ["post 12", "post 10"]
        );
        assert!(
            store
                .read()
                .channel_posts(&[1; 32], 0)
                .expect("posts")
                .is_empty()
        );
        assert_eq!(
            texts(&store.read().channel_posts(&[2; 32], 100).expect("posts")),
            ["post 20"]
        );
        assert!(
            store
                .read()
                .channel_posts(&[9; 32], 100)
                .expect("posts")
                .is_empty()
        );
    }

    #[test]
    fn history_is_bounded_per_channel() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.join_channel(&channel(1)))
            .expect("join");
        store
            .write(|tx| tx.join_channel(&channel(2)))
            .expect("join");
        store
            .write(|tx| tx.insert_channel_post(&post(2, 200, 1), 3))
            .expect("other channel");
        for n in 0..10u8 {
            assert!(
                store
                    .write(|tx| tx.insert_channel_post(&post(1, n, 100 + i64::from(n)), 3))
                    .expect("insert")
            );
        }
        assert_eq!(
            texts(&store.read().channel_posts(&[1; 32], 100).expect("posts")),
            ["post 7", "post 8", "post 9"]
        );
        // Older than everything kept: not kept, reported as such.
        assert!(
            !store
                .write(|tx| tx.insert_channel_post(&post(1, 50, 5), 3))
                .expect("old")
        );
        assert_eq!(
            store
                .read()
                .channel_posts(&[1; 32], 100)
                .expect("posts")
                .len(),
            3
        );
        // Another channel's history is untouched.
        assert_eq!(
            texts(&store.read().channel_posts(&[2; 32], 100).expect("posts")),
            ["post 200"]
        );
        // Ties on sent_at keep the higher post ids.
        store
            .write(|tx| tx.insert_channel_post(&post(1, 60, 109), 3))
            .expect("tie");
        assert_eq!(
            texts(&store.read().channel_posts(&[1; 32], 100).expect("posts")),
            ["post 8", "post 9", "post 60"]
        );
    }

    #[test]
    fn posts_need_a_joined_channel_and_a_sane_history_bound() {
        let mut store = Store::open_in_memory().expect("open");
        let err = store
            .write(|tx| tx.insert_channel_post(&post(1, 1, 1), 10))
            .expect_err("not joined");
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        assert!(err.to_string().contains("not joined"), "{err}");
        store
            .write(|tx| tx.join_channel(&channel(1)))
            .expect("join");
        for bad in [0, MAX_CHANNEL_HISTORY + 1] {
            let err = store
                .write(|tx| tx.insert_channel_post(&post(1, 1, 1), bad))
                .expect_err("bad bound");
            assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
        }
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(1, 1, 1), 10))
                .expect("ok")
        );
    }

    #[test]
    fn leaving_deletes_the_posts() {
        let mut store = Store::open_in_memory().expect("open");
        store
            .write(|tx| tx.join_channel(&channel(1)))
            .expect("join");
        store
            .write(|tx| tx.insert_channel_post(&post(1, 1, 1), 10))
            .expect("insert");
        store
            .write(|tx| tx.insert_channel_post(&post(1, 2, 2), 10))
            .expect("insert");
        assert!(store.write(|tx| tx.leave_channel(&[1; 32])).expect("leave"));
        let left: i64 = store
            .conn
            .query_row("SELECT count(*) FROM channel_posts", [], |r| r.get(0))
            .expect("count");
        assert_eq!(left, 0);
        // Rejoining starts empty, and the same post can be stored again.
        store
            .write(|tx| tx.join_channel(&channel(1)))
            .expect("rejoin");
        assert!(
            store
                .read()
                .channel_posts(&[1; 32], 10)
                .expect("posts")
                .is_empty()
        );
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post(1, 1, 1), 10))
                .expect("again")
        );
    }

    #[test]
    fn the_schema_refuses_malformed_rows() {
        let store = Store::open_in_memory().expect("open");
        assert!(
            store
                .conn
                .execute(
                    "INSERT INTO channels (id, name, joined_at) VALUES (x'01', 'short', 0)",
                    [],
                )
                .is_err()
        );
        assert!(
            store
                .conn
                .execute(
                    "INSERT INTO channels (id, name, creator_uid, joined_at)
                 VALUES (zeroblob(32), 'c', x'02', 0)",
                    [],
                )
                .is_err()
        );
    }
}
