//! The schema, as an ordered list of migrations.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to version `i + 1`. The
//! version lives in `PRAGMA user_version` (0 in a fresh file). Each migration
//! runs in its own transaction together with its `user_version` bump, so a
//! crash mid-upgrade leaves the database at the previous version, intact.
//!
//! Never edit a shipped migration: append a new one.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::{SqliteContext, StoreError};

/// SQL batches, oldest first. See the module docs.
const MIGRATIONS: &[&str] = &[
    // 1: small settings and facts about this node, as key → value.
    "CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;",
    // 2: the peer book: who we have seen, where, and how dialling them went.
    "CREATE TABLE peers (
        peer_id      TEXT PRIMARY KEY,
        source       TEXT NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        failures     INTEGER NOT NULL DEFAULT 0,
        last_failure INTEGER
    ) STRICT;
    CREATE TABLE peer_addrs (
        peer_id   TEXT NOT NULL REFERENCES peers (peer_id) ON DELETE CASCADE,
        addr      TEXT NOT NULL,
        last_seen INTEGER NOT NULL,
        PRIMARY KEY (peer_id, addr)
    ) STRICT;
    -- Dial order (failures asc, last_seen desc) and, read backwards, eviction order.
    CREATE INDEX peers_by_dial_rank ON peers (failures, last_seen DESC);
    -- list_peers order.
    CREATE INDEX peers_by_last_seen ON peers (last_seen);
    -- Trimming a peer's addresses to the newest few.
    CREATE INDEX peer_addrs_by_last_seen ON peer_addrs (peer_id, last_seen);",
    // 3: messaging: contacts and their devices, conversations, messages (the outbox is the
    // outgoing rows not yet delivered), and the persisted seen-set for replay protection.
    "CREATE TABLE contacts (
        uid        BLOB PRIMARY KEY CHECK (length(uid) = 32),
        root_pk    BLOB NOT NULL CHECK (length(root_pk) = 32),
        name       TEXT NOT NULL UNIQUE,
        verified   INTEGER NOT NULL DEFAULT 0,
        added_at   INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE contact_devices (
        uid         BLOB NOT NULL REFERENCES contacts (uid) ON DELETE CASCADE,
        device_pk   BLOB NOT NULL CHECK (length(device_pk) = 32),
        peer_id     TEXT NOT NULL,
        addrs       TEXT NOT NULL DEFAULT '',
        certificate BLOB,
        PRIMARY KEY (uid, device_pk)
    ) STRICT;
    CREATE TABLE conversations (
        session_id  BLOB PRIMARY KEY CHECK (length(session_id) = 16),
        group_id    BLOB NOT NULL UNIQUE,
        contact_uid BLOB NOT NULL REFERENCES contacts (uid) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL,
        next_seq    INTEGER NOT NULL DEFAULT 1
    ) STRICT;
    CREATE INDEX conversations_by_contact ON conversations (contact_uid, created_at);
    CREATE TABLE messages (
        id              INTEGER PRIMARY KEY,
        session_id      BLOB NOT NULL REFERENCES conversations (session_id) ON DELETE CASCADE,
        direction       TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        sender_device   BLOB NOT NULL,
        seq             INTEGER NOT NULL,
        kind            TEXT NOT NULL,
        body            TEXT,
        sent_at         INTEGER NOT NULL,
        received_at     INTEGER,
        state           TEXT NOT NULL,
        envelope        BLOB,
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at INTEGER NOT NULL DEFAULT 0,
        error           TEXT,
        UNIQUE (session_id, sender_device, seq)
    ) STRICT;
    CREATE INDEX messages_outbox ON messages (state, next_attempt_at) WHERE direction = 'out';
    CREATE TABLE seen (
        sender_device BLOB NOT NULL,
        session_id    BLOB NOT NULL,
        seq           INTEGER NOT NULL,
        seen_at       INTEGER NOT NULL,
        PRIMARY KEY (sender_device, session_id, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX seen_by_time ON seen (seen_at);",
    // 4: read receipts: the digest of each received envelope (a receipt names it).
    "ALTER TABLE messages ADD COLUMN digest BLOB;
    CREATE INDEX messages_unread ON messages (session_id, state) WHERE direction = 'in';",
    // 5: the mailbox this node keeps for others (offline delivery): sealed envelopes by
    // recipient, until fetched and deleted by a receipt or expired.
    "CREATE TABLE mailbox (
        id            INTEGER PRIMARY KEY,
        recipient_uid BLOB NOT NULL CHECK (length(recipient_uid) = 32),
        sender_uid    BLOB NOT NULL CHECK (length(sender_uid) = 32),
        digest        BLOB NOT NULL CHECK (length(digest) = 32),
        envelope      BLOB NOT NULL,
        stored_at     INTEGER NOT NULL,
        expires_at    INTEGER NOT NULL,
        UNIQUE (recipient_uid, digest)
    ) STRICT;
    CREATE INDEX mailbox_by_recipient ON mailbox (recipient_uid, id);
    CREATE INDEX mailbox_by_sender ON mailbox (sender_uid);
    CREATE INDEX mailbox_by_expiry ON mailbox (expires_at);",
    // 6: mailbox replicas and profiles. Outgoing rows may be `stored` on N replicas (`replicas`);
    // the mailbox keeps tombstones of delivered envelopes (a late re-replication is refused) and
    // the newest device-list version seen per UID (a stale list is refused); profiles hold ours
    // and the newest received from each contact.
    "ALTER TABLE messages ADD COLUMN replicas INTEGER;
    CREATE TABLE mailbox_tombstones (
        recipient_uid BLOB NOT NULL CHECK (length(recipient_uid) = 32),
        digest        BLOB NOT NULL CHECK (length(digest) = 32),
        expires_at    INTEGER NOT NULL,
        PRIMARY KEY (recipient_uid, digest)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX mailbox_tombstones_by_expiry ON mailbox_tombstones (expires_at);
    CREATE TABLE mailbox_device_lists (
        uid        BLOB PRIMARY KEY CHECK (length(uid) = 32),
        version    INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE profiles (
        uid         BLOB PRIMARY KEY CHECK (length(uid) = 32),
        version     INTEGER NOT NULL,
        name        TEXT NOT NULL,
        avatar      BLOB,
        avatar_mime TEXT,
        record      BLOB NOT NULL,
        public      INTEGER NOT NULL DEFAULT 0 CHECK (public IN (0, 1)),
        updated_at  INTEGER NOT NULL
    ) STRICT;",
    // 7: abuse resistance and public channels. Peers get a persisted reputation and the end of a
    // reputation ban (unix ms); `bans` holds explicit bans of peer ids and IP ranges (temporary or
    // permanent); `channels` are the public channels joined and `channel_posts` their bounded
    // history.
    "ALTER TABLE peers ADD COLUMN reputation INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE peers ADD COLUMN banned_until INTEGER;
    -- peer_reputations: only the few peers with a score or a ban.
    CREATE INDEX peers_with_reputation ON peers (peer_id)
        WHERE reputation <> 0 OR banned_until IS NOT NULL;
    CREATE TABLE bans (
        kind       TEXT NOT NULL CHECK (kind IN ('peer', 'cidr')),
        value      TEXT NOT NULL CHECK (length(value) > 0),
        reason     TEXT NOT NULL,
        until      INTEGER,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (kind, value)
    ) STRICT;
    CREATE INDEX bans_by_until ON bans (until) WHERE until IS NOT NULL;
    CREATE TABLE channels (
        id          BLOB PRIMARY KEY CHECK (length(id) = 32),
        name        TEXT NOT NULL,
        creator_uid BLOB CHECK (creator_uid IS NULL OR length(creator_uid) = 32),
        joined_at   INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE channel_posts (
        post_id       BLOB PRIMARY KEY CHECK (length(post_id) = 32),
        channel_id    BLOB NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
        author_uid    BLOB NOT NULL CHECK (length(author_uid) = 32),
        author_device BLOB NOT NULL CHECK (length(author_device) = 32),
        text          TEXT NOT NULL,
        sent_at       INTEGER NOT NULL,
        received_at   INTEGER NOT NULL,
        own           INTEGER NOT NULL DEFAULT 0 CHECK (own IN (0, 1))
    ) STRICT;
    CREATE INDEX channel_posts_by_time ON channel_posts (channel_id, sent_at);",
    // 8: mailbox quotas in O(1): what is held per recipient and per sender, kept exact by
    // triggers on every insert, update and delete of a mailbox row (stores, purges, deletes on
    // receipt), back-filled here. A usage row goes when its count reaches 0. The sender index
    // only served the quota scans and the per-store purge, which the counters replace.
    "CREATE TABLE mailbox_usage_by_recipient (
        recipient_uid BLOB PRIMARY KEY CHECK (length(recipient_uid) = 32),
        envelopes     INTEGER NOT NULL,
        bytes         INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE mailbox_usage_by_sender (
        sender_uid BLOB PRIMARY KEY CHECK (length(sender_uid) = 32),
        envelopes  INTEGER NOT NULL,
        bytes      INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    INSERT INTO mailbox_usage_by_recipient (recipient_uid, envelopes, bytes)
        SELECT recipient_uid, count(*), sum(length(envelope)) FROM mailbox GROUP BY recipient_uid;
    INSERT INTO mailbox_usage_by_sender (sender_uid, envelopes, bytes)
        SELECT sender_uid, count(*), sum(length(envelope)) FROM mailbox GROUP BY sender_uid;
    CREATE TRIGGER mailbox_usage_on_insert AFTER INSERT ON mailbox BEGIN
        INSERT INTO mailbox_usage_by_recipient (recipient_uid, envelopes, bytes)
            VALUES (NEW.recipient_uid, 1, length(NEW.envelope))
            ON CONFLICT (recipient_uid) DO UPDATE
            SET envelopes = envelopes + 1, bytes = bytes + excluded.bytes;
        INSERT INTO mailbox_usage_by_sender (sender_uid, envelopes, bytes)
            VALUES (NEW.sender_uid, 1, length(NEW.envelope))
            ON CONFLICT (sender_uid) DO UPDATE
            SET envelopes = envelopes + 1, bytes = bytes + excluded.bytes;
    END;
    CREATE TRIGGER mailbox_usage_on_delete AFTER DELETE ON mailbox BEGIN
        UPDATE mailbox_usage_by_recipient
            SET envelopes = envelopes - 1, bytes = bytes - length(OLD.envelope)
            WHERE recipient_uid = OLD.recipient_uid;
        DELETE FROM mailbox_usage_by_recipient
            WHERE recipient_uid = OLD.recipient_uid AND envelopes <= 0;
        UPDATE mailbox_usage_by_sender
            SET envelopes = envelopes - 1, bytes = bytes - length(OLD.envelope)
            WHERE sender_uid = OLD.sender_uid;
        DELETE FROM mailbox_usage_by_sender
            WHERE sender_uid = OLD.sender_uid AND envelopes <= 0;
    END;
    -- Rows are never updated by rhizo; if one is, it counts as a delete then an insert.
    CREATE TRIGGER mailbox_usage_on_update
    AFTER UPDATE OF recipient_uid, sender_uid, envelope ON mailbox BEGIN
        UPDATE mailbox_usage_by_recipient
            SET envelopes = envelopes - 1, bytes = bytes - length(OLD.envelope)
            WHERE recipient_uid = OLD.recipient_uid;
        DELETE FROM mailbox_usage_by_recipient
            WHERE recipient_uid = OLD.recipient_uid AND envelopes <= 0;
        UPDATE mailbox_usage_by_sender
            SET envelopes = envelopes - 1, bytes = bytes - length(OLD.envelope)
            WHERE sender_uid = OLD.sender_uid;
        DELETE FROM mailbox_usage_by_sender
            WHERE sender_uid = OLD.sender_uid AND envelopes <= 0;
        INSERT INTO mailbox_usage_by_recipient (recipient_uid, envelopes, bytes)
            VALUES (NEW.recipient_uid, 1, length(NEW.envelope))
            ON CONFLICT (recipient_uid) DO UPDATE
            SET envelopes = envelopes + 1, bytes = bytes + excluded.bytes;
        INSERT INTO mailbox_usage_by_sender (sender_uid, envelopes, bytes)
            VALUES (NEW.sender_uid, 1, length(NEW.envelope))
            ON CONFLICT (sender_uid) DO UPDATE
            SET envelopes = envelopes + 1, bytes = bytes + excluded.bytes;
    END;
    DROP INDEX mailbox_by_sender;",
    // 9: message requests. Envelopes from a sender who is not a contact are held (bounded per
    // sender and in all) until the user accepts, declines or blocks the sender; a declined
    // conversation is remembered so later envelopes in it get a final refusal; a conversation
    // the peer refused for good is closed (kept for history, never sent in again).
    "ALTER TABLE conversations ADD COLUMN closed_at INTEGER;
    CREATE TABLE request_senders (
        uid           BLOB PRIMARY KEY CHECK (length(uid) = 32),
        state         TEXT NOT NULL CHECK (state IN ('pending', 'blocked')),
        first_at      INTEGER NOT NULL,
        last_at       INTEGER NOT NULL,
        root_pk       BLOB CHECK (root_pk IS NULL OR length(root_pk) = 32),
        name          TEXT,
        device_listed INTEGER,
        resolved_at   INTEGER
    ) STRICT;
    CREATE TABLE request_envelopes (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        sender_uid    BLOB NOT NULL REFERENCES request_senders (uid) ON DELETE CASCADE,
        sender_device BLOB NOT NULL CHECK (length(sender_device) = 32),
        session_id    BLOB NOT NULL CHECK (length(session_id) = 16),
        seq           INTEGER NOT NULL,
        envelope      BLOB NOT NULL,
        received_at   INTEGER NOT NULL,
        UNIQUE (sender_device, session_id, seq)
    ) STRICT;
    CREATE INDEX request_envelopes_by_sender ON request_envelopes (sender_uid, id);
    CREATE INDEX request_envelopes_by_age ON request_envelopes (received_at);
    CREATE TABLE declined_sessions (
        session_id  BLOB PRIMARY KEY CHECK (length(session_id) = 16),
        sender_uid  BLOB NOT NULL CHECK (length(sender_uid) = 32),
        declined_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX declined_sessions_by_age ON declined_sessions (declined_at);",
    // 10: one device key, one contact. A device key listed for two or more contacts cannot be
    // attributed safely (one of them lists someone else's device), so every listing of such a
    // key is dropped; re-adding the right contact with a proven device restores it. Then a
    // UNIQUE index keeps it so, and serves lookups by device key.
    "DELETE FROM contact_devices WHERE device_pk IN
        (SELECT device_pk FROM contact_devices GROUP BY device_pk HAVING count(*) > 1);
    CREATE UNIQUE INDEX contact_devices_by_device ON contact_devices (device_pk);",
    // 11: mailbox bounds and sender binding (issue 11). Each entry keeps the sender device's
    // certificate (re-replication hands it on; NULL for entries stored before); the node-wide
    // usage (one row) is kept exact by triggers like the per-recipient counters, back-filled
    // here; device-list rows are pruned oldest-noted first.
    "ALTER TABLE mailbox ADD COLUMN sender_cert BLOB;
    CREATE TABLE mailbox_usage_total (
        id        INTEGER PRIMARY KEY CHECK (id = 0),
        envelopes INTEGER NOT NULL,
        bytes     INTEGER NOT NULL
    ) STRICT;
    INSERT INTO mailbox_usage_total (id, envelopes, bytes)
        SELECT 0, count(*), coalesce(sum(length(envelope)), 0) FROM mailbox;
    CREATE TRIGGER mailbox_total_on_insert AFTER INSERT ON mailbox BEGIN
        UPDATE mailbox_usage_total
            SET envelopes = envelopes + 1, bytes = bytes + length(NEW.envelope) WHERE id = 0;
    END;
    CREATE TRIGGER mailbox_total_on_delete AFTER DELETE ON mailbox BEGIN
        UPDATE mailbox_usage_total
            SET envelopes = envelopes - 1, bytes = bytes - length(OLD.envelope) WHERE id = 0;
    END;
    CREATE TRIGGER mailbox_total_on_update AFTER UPDATE OF envelope ON mailbox BEGIN
        UPDATE mailbox_usage_total
            SET bytes = bytes - length(OLD.envelope) + length(NEW.envelope) WHERE id = 0;
    END;
    CREATE INDEX mailbox_device_lists_by_update ON mailbox_device_lists (updated_at);",
    // 12: the seen-set is kept by the envelope's own timestamp (the replay window's clock), not
    // by the time it was received. A row from before holds its receive time t; its envelope was
    // stamped at most t + 5 min (the window's future skew, rhizo-core `MAX_CLOCK_SKEW`), so it is
    // kept as if stamped then: never shorter than the window needs.
    "ALTER TABLE seen RENAME COLUMN seen_at TO envelope_ts;
    UPDATE seen SET envelope_ts = envelope_ts + 300000;
    DROP INDEX seen_by_time;
    CREATE INDEX seen_by_envelope_ts ON seen (envelope_ts);",
    // 13: agent tasks (issue 13), on both sides: the task (UNIQUE per side, peer and task id;
    // a client's own ids are unique on their own), its status history, its messages after the
    // request, its artifacts, and the agent messages queued inside an inbound transaction
    // (answers the engine sends once that transaction committed).
    "CREATE TABLE tasks (
        id           INTEGER PRIMARY KEY,
        task_id      BLOB NOT NULL CHECK (length(task_id) = 16),
        side         TEXT NOT NULL CHECK (side IN ('client', 'worker')),
        peer_uid     BLOB NOT NULL CHECK (length(peer_uid) = 32),
        context_id   TEXT NOT NULL,
        skill        TEXT,
        priority     INTEGER NOT NULL,
        deadline     INTEGER,
        requirements TEXT NOT NULL,
        state        TEXT NOT NULL,
        last_seq     INTEGER NOT NULL DEFAULT 0,
        request      TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        UNIQUE (side, peer_uid, task_id)
    ) STRICT;
    CREATE UNIQUE INDEX tasks_client_ids ON tasks (task_id) WHERE side = 'client';
    CREATE INDEX tasks_by_task_id ON tasks (task_id);
    CREATE INDEX tasks_queue ON tasks (side, state, priority DESC, id);
    CREATE INDEX tasks_live_deadlines ON tasks (deadline)
        WHERE deadline IS NOT NULL
          AND state IN ('submitted', 'working', 'input-required', 'auth-required');
    CREATE TABLE task_events (
        id      INTEGER PRIMARY KEY,
        task    INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        seq     INTEGER NOT NULL,
        state   TEXT NOT NULL,
        message TEXT,
        reason  TEXT,
        at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX task_events_by_task ON task_events (task, id);
    CREATE TABLE task_messages (
        id      INTEGER PRIMARY KEY,
        task    INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        message TEXT NOT NULL,
        at      INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX task_messages_by_task ON task_messages (task, id);
    CREATE TABLE task_artifacts (
        id          INTEGER PRIMARY KEY,
        task        INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        artifact_id TEXT NOT NULL,
        artifact    TEXT NOT NULL,
        at          INTEGER NOT NULL,
        UNIQUE (task, artifact_id)
    ) STRICT;
    CREATE TABLE agent_outbox (
        id         INTEGER PRIMARY KEY,
        peer_uid   BLOB NOT NULL CHECK (length(peer_uid) = 32),
        message    BLOB NOT NULL,
        summary    TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;",
    // 14: agent cards (issue 13). `agent_cards` caches other agents' signed cards (found in the
    // DHT or received in a capability answer), one row per UID, replaced only by a higher
    // version, bounded (oldest fetched dropped first); `own_agent_card` holds ours (`record` NULL
    // once removed: the version stays, so a later card outranks copies still in the DHT).
    "CREATE TABLE agent_cards (
        uid        BLOB PRIMARY KEY CHECK (length(uid) = 32),
        version    INTEGER NOT NULL,
        record     BLOB NOT NULL,
        expires_at INTEGER NOT NULL,
        fetched_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX agent_cards_by_fetch ON agent_cards (fetched_at);
    CREATE TABLE own_agent_card (
        id         INTEGER PRIMARY KEY CHECK (id = 0),
        version    INTEGER NOT NULL,
        record     BLOB,
        updated_at INTEGER NOT NULL
    ) STRICT;",
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Reads `PRAGMA user_version`.
pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version")
}

/// Brings the database up to [`SCHEMA_VERSION`], one transaction per step.
///
/// Each step re-reads the version under a write lock, so two processes
/// opening the same file at once cannot apply a migration twice.
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("locking the database for a schema upgrade")?;
        let version = user_version(&tx)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        let Some(sql) = MIGRATIONS.get(version as usize) else {
            // Up to date; dropping `tx` just releases the lock.
            return Ok(());
        };
        let next = version + 1;
        let failed = |source: rusqlite::Error| StoreError::Migration {
            version: next,
            source: source.into(),
        };
        tx.execute_batch(sql).map_err(failed)?;
        tx.pragma_update(None, "user_version", next)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(from = version, to = next, "upgraded database schema");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_applies_on_an_empty_database() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        assert_eq!(user_version(&conn).expect("version"), SCHEMA_VERSION);
        // Running again is a no-op.
        migrate(&mut conn).expect("migrate again");
        assert_eq!(user_version(&conn).expect("version"), SCHEMA_VERSION);
    }

    #[test]
    fn a_failing_migration_leaves_the_previous_version() {
        let mut conn = Connection::open_in_memory().expect("open");
        // Something already occupies the name migration 2 wants.
        conn.execute_batch(&format!(
            "{}; PRAGMA user_version = 1; CREATE TABLE peers (x);",
            MIGRATIONS[0]
        ))
        .expect("setup");
        let err = migrate(&mut conn).expect_err("must fail");
        assert!(
            matches!(err, StoreError::Migration { version: 2, .. }),
            "{err:?}"
        );
        assert_eq!(user_version(&conn).expect("version"), 1);
        // Nothing of migration 2 was left behind.
        let addrs_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'peer_addrs'",
                [],
                |row| row.get(0),
            )
            .expect("query");
        assert_eq!(addrs_tables, 0);
    }

    #[test]
    fn a_version_5_database_upgrades_and_keeps_its_rows() {
        use crate::{
            Store,
            mailbox::{MailboxQuota, MailboxStored, NewMailboxEntry},
            messaging::MessageState,
            profiles::ProfileRow,
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        {
            // Version 5 as it shipped (shipped migrations are never edited), with rows in it.
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..5] {
                tx.execute_batch(sql).expect("v5 schema");
            }
            tx.execute_batch(
                "PRAGMA user_version = 5;
                 INSERT INTO meta (key, value) VALUES ('identity', 'alice');
                 INSERT INTO contacts (uid, root_pk, name, added_at, updated_at)
                   VALUES (zeroblob(32), zeroblob(32), 'bob', 1, 1);
                 INSERT INTO conversations (session_id, group_id, contact_uid, created_at)
                   VALUES (zeroblob(16), x'01', zeroblob(32), 1);
                 INSERT INTO messages (id, session_id, direction, sender_device, seq, kind, body,
                     sent_at, state, envelope, attempts, next_attempt_at)
                   VALUES (1, zeroblob(16), 'out', zeroblob(32), 1, 'text', 'hi', 10, 'sent',
                     x'aa', 1, 20),
                          (2, zeroblob(16), 'out', zeroblob(32), 2, 'text', 'yo', 11, 'delivered',
                     x'bb', 1, 0);
                 INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at,
                     expires_at)
                   VALUES (zeroblob(32), zeroblob(32), zeroblob(32), x'cafe', 5, 1000);",
            )
            .expect("v5 rows");
            tx.commit().expect("commit");
        }

        let mut store = Store::open(&path).expect("upgrade");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        assert_eq!(
            store.read().get_meta("identity").expect("meta").as_deref(),
            Some("alice")
        );
        let sent = store.read().message(1).expect("read").expect("kept");
        assert_eq!(
            (sent.state, sent.replicas, sent.body.as_deref()),
            (MessageState::Sent, None, Some("hi"))
        );
        assert_eq!(
            store.read().outbox_next_attempt().expect("outbox"),
            Some(20)
        );
        let held = store
            .read()
            .mailbox_entries(&[0; 32], 100, 10)
            .expect("mailbox");
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].envelope, vec![0xca, 0xfe]);
        let summary = store.read().mailbox_summary().expect("summary");
        assert_eq!((summary.count, summary.tombstones), (1, 0));

        // What version 6 adds works on the upgraded rows.
        assert!(
            store
                .write(|tx| tx.mark_stored(1, 2, 500, 30))
                .expect("stored")
        );
        assert_eq!(
            store
                .read()
                .message(1)
                .expect("read")
                .expect("kept")
                .replicas,
            Some(2)
        );
        assert!(
            !store
                .write(|tx| tx.mark_stored(2, 2, 500, 30))
                .expect("delivered stays")
        );
        assert_eq!(
            store
                .write(|tx| tx.mailbox_delete(&[0; 32], &[[0; 32]], 40))
                .expect("delete"),
            1
        );
        let again = NewMailboxEntry {
            recipient_uid: [0; 32],
            sender_uid: [0; 32],
            digest: [0; 32],
            envelope: &[0xca, 0xfe],
            expires_at: 1000,
            sender_cert: &[],
        };
        assert_eq!(
            store
                .write(|tx| tx.mailbox_store(&again, &MailboxQuota::default(), 50))
                .expect("store"),
            MailboxStored::AlreadyDelivered
        );
        store
            .write(|tx| tx.note_mailbox_device_list_version(&[0; 32], 4, 60))
            .expect("note");
        assert_eq!(
            store
                .read()
                .mailbox_device_list_version(&[0; 32])
                .expect("v"),
            4
        );
        let me = ProfileRow {
            uid: [0; 32],
            version: 1,
            name: "Alice".into(),
            avatar: None,
            avatar_mime: None,
            record: b"signed".to_vec(),
            public: true,
            updated_at: 70,
        };
        assert!(store.write(|tx| tx.upsert_profile(&me)).expect("profile"));
        drop(store);

        // And it all survives a reopen.
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.read().profile(&[0; 32]).expect("profile"), Some(me));
        assert_eq!(
            store.read().message(1).expect("read").expect("kept").state,
            MessageState::Stored
        );
    }

    #[test]
    fn a_version_6_database_upgrades_and_keeps_its_rows() {
        use crate::{
            BanKind, BanRow, ChannelPostRow, ChannelRow, PeerRecord, PeerSource, Store,
            profiles::ProfileRow,
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        {
            // Version 6 as it shipped, with rows in the tables version 7 touches and others.
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..6] {
                tx.execute_batch(sql).expect("v6 schema");
            }
            tx.execute_batch(
                "PRAGMA user_version = 6;
                 INSERT INTO meta (key, value) VALUES ('identity', 'alice');
                 INSERT INTO peers (peer_id, source, first_seen, last_seen, failures, last_failure)
                   VALUES ('P1', 'kademlia', 10, 20, 3, 19),
                          ('P2', 'bootstrap', 5, 30, 0, NULL);
                 INSERT INTO peer_addrs (peer_id, addr, last_seen)
                   VALUES ('P1', '/ip4/192.0.2.1/tcp/1', 20),
                          ('P2', '/ip4/192.0.2.2/udp/2/quic-v1', 30);
                 INSERT INTO profiles (uid, version, name, record, public, updated_at)
                   VALUES (zeroblob(32), 3, 'Alice', x'5151', 1, 40);
                 INSERT INTO mailbox_device_lists (uid, version, updated_at)
                   VALUES (zeroblob(32), 2, 50);",
            )
            .expect("v6 rows");
            tx.commit().expect("commit");
        }

        let mut store = Store::open(&path).expect("upgrade");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        assert_eq!(
            store.read().get_meta("identity").expect("meta").as_deref(),
            Some("alice")
        );
        let expected_peers = [
            PeerRecord {
                peer_id: "P2".into(),
                addrs: vec!["/ip4/192.0.2.2/udp/2/quic-v1".into()],
                source: PeerSource::Bootstrap,
                first_seen: 5,
                last_seen: 30,
                failures: 0,
                last_failure: None,
            },
            PeerRecord {
                peer_id: "P1".into(),
                addrs: vec!["/ip4/192.0.2.1/tcp/1".into()],
                source: PeerSource::Kademlia,
                first_seen: 10,
                last_seen: 20,
                failures: 3,
                last_failure: Some(19),
            },
        ];
        assert_eq!(store.read().list_peers().expect("peers"), expected_peers);
        assert!(
            store
                .read()
                .peer_reputations()
                .expect("reputations")
                .is_empty(),
            "old peers start neutral"
        );
        assert_eq!(
            store
                .read()
                .profile(&[0; 32])
                .expect("profile")
                .map(|p| p.version),
            Some(3)
        );
        assert_eq!(
            store
                .read()
                .mailbox_device_list_version(&[0; 32])
                .expect("v"),
            2
        );

        // What version 7 adds works on the upgraded rows.
        store
            .write(|tx| tx.set_peer_reputation("P1", -60, Some(1_000_000)))
            .expect("reputation");
        assert_eq!(
            store.read().peer_reputations().expect("reputations"),
            [("P1".to_owned(), -60, Some(1_000_000))]
        );
        assert_eq!(
            store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
            0,
            "P1 is banned"
        );
        store
            .write(|tx| tx.set_peer_reputation("P1", 0, None))
            .expect("reputation");
        assert_eq!(
            store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
            1
        );
        let ban = BanRow {
            kind: BanKind::Cidr,
            value: "198.51.100.0/24".into(),
            reason: "manual".into(),
            until: None,
            created_at: 60,
        };
        assert!(store.write(|tx| tx.add_ban(&ban)).expect("ban"));
        let channel = ChannelRow {
            id: [4; 32],
            name: "news".into(),
            creator_uid: Some([5; 32]),
            joined_at: 70,
        };
        assert!(store.write(|tx| tx.join_channel(&channel)).expect("join"));
        let post = ChannelPostRow {
            post_id: [6; 32],
            channel_id: [4; 32],
            author_uid: [5; 32],
            author_device: [7; 32],
            text: "hello".into(),
            sent_at: 80,
            received_at: 81,
            own: false,
        };
        assert!(
            store
                .write(|tx| tx.insert_channel_post(&post, 100))
                .expect("post")
        );
        let me = ProfileRow {
            uid: [0; 32],
            version: 4,
            name: "Alice".into(),
            avatar: None,
            avatar_mime: None,
            record: b"signed".to_vec(),
            public: true,
            updated_at: 90,
        };
        assert!(store.write(|tx| tx.upsert_profile(&me)).expect("profile"));
        drop(store);

        // And it all survives a reopen.
        let store = Store::open(&path).expect("reopen");
        assert_eq!(
            store.read().list_peers().expect("peers"),
            expected_peers[..1]
        );
        assert_eq!(store.read().bans(100).expect("bans"), [ban]);
        assert_eq!(store.read().channels().expect("channels"), [channel]);
        assert_eq!(
            store.read().channel_posts(&[4; 32], 10).expect("posts"),
            [post]
        );
        assert_eq!(store.read().profile(&[0; 32]).expect("profile"), Some(me));
    }

    #[test]
    fn a_version_7_database_upgrades_with_mailbox_usage_back_filled() {
        use crate::{
            Store,
            mailbox::{MailboxQuota, MailboxRefusal, MailboxStored, NewMailboxEntry, QuotaLimit},
        };

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        {
            // Version 7 as it shipped, with envelopes held for two recipients from two senders.
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..7] {
                tx.execute_batch(sql).expect("v7 schema");
            }
            tx.execute_batch(
                "PRAGMA user_version = 7;
                 INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at,
                     expires_at)
                   VALUES (zeroblob(32), zeroblob(32), unhex('01' || hex(zeroblob(31))), x'aabbcc', 5, 1000),
                          (zeroblob(32), unhex('02' || hex(zeroblob(31))), unhex('02' || hex(zeroblob(31))), x'dd', 6,
                           1000),
                          (unhex('03' || hex(zeroblob(31))), zeroblob(32), unhex('03' || hex(zeroblob(31))), x'eeff',
                           7, 50);",
            )
            .expect("v7 rows");
            tx.commit().expect("commit");
        }

        let mut store = Store::open(&path).expect("upgrade");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        let usage = |store: &Store, table: &str| -> Vec<(Vec<u8>, i64, i64)> {
            let mut stmt = store
                .conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        let uid = |first: u8| {
            let mut u = vec![0u8; 32];
            u[0] = first;
            u
        };
        assert_eq!(
            usage(&store, "mailbox_usage_by_recipient"),
            [(uid(0), 2, 4), (uid(3), 1, 2)]
        );
        assert_eq!(
            usage(&store, "mailbox_usage_by_sender"),
            [(uid(0), 2, 5), (uid(2), 1, 1)]
        );
        let index_left: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'mailbox_by_sender'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(index_left, 0);
        // Migration 11 back-fills the node-wide usage the same way.
        let total = |store: &Store| -> (i64, i64) {
            store
                .conn
                .query_row(
                    "SELECT envelopes, bytes FROM mailbox_usage_total",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("total")
        };
        assert_eq!(total(&store), (3, 6));

        // The back-filled counters are the quota: sender 0 holds 2 envelopes.
        let quota = MailboxQuota {
            max_count_per_sender: 3,
            ..MailboxQuota::default()
        };
        let new = |digest: u8| NewMailboxEntry {
            recipient_uid: [9; 32],
            sender_uid: [0; 32],
            digest: [digest; 32],
            envelope: b"x",
            expires_at: 2000,
            sender_cert: &[],
        };
        assert_eq!(
            store
                .write(|tx| tx.mailbox_store_batch(&[new(7), new(8)], &quota, 10))
                .expect("store"),
            [
                Ok(MailboxStored::Stored),
                Err(MailboxRefusal::QuotaExceeded {
                    limit: QuotaLimit::Sender,
                    held_count: 3,
                    held_bytes: 6,
                })
            ]
        );
        // Once recipient 3's envelope (sender 0) expired, the sender has room again.
        assert_eq!(
            store
                .write(|tx| tx.mailbox_store(&new(8), &quota, 60))
                .expect("store"),
            MailboxStored::Stored
        );
        assert_eq!(
            usage(&store, "mailbox_usage_by_sender"),
            [(uid(0), 3, 5), (uid(2), 1, 1)]
        );
        // Kept exact by the triggers through stores and the purge.
        assert_eq!(total(&store), (4, 6));
    }

    #[test]
    fn a_version_9_database_upgrades_without_shared_device_keys() {
        use crate::Store;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        {
            // Version 9 as it shipped: bob (uid 1) and mallory (uid 2) both list device 7; bob
            // also has device 8 of his own.
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..9] {
                tx.execute_batch(sql).expect("v9 schema");
            }
            tx.execute_batch(
                "PRAGMA user_version = 9;
                 INSERT INTO contacts (uid, root_pk, name, added_at, updated_at)
                   VALUES (unhex('01' || hex(zeroblob(31))), zeroblob(32), 'bob', 1, 1),
                          (unhex('02' || hex(zeroblob(31))), zeroblob(32), 'mallory', 2, 2);
                 INSERT INTO contact_devices (uid, device_pk, peer_id)
                   VALUES (unhex('01' || hex(zeroblob(31))), unhex('07' || hex(zeroblob(31))), 'p7'),
                          (unhex('02' || hex(zeroblob(31))), unhex('07' || hex(zeroblob(31))), 'p7'),
                          (unhex('01' || hex(zeroblob(31))), unhex('08' || hex(zeroblob(31))), 'p8');",
            )
            .expect("v9 rows");
            tx.commit().expect("commit");
        }
        let store = Store::open(&path).expect("upgrade");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        let devices: Vec<(Vec<u8>, Vec<u8>)> = store
            .conn
            .prepare("SELECT uid, device_pk FROM contact_devices ORDER BY uid, device_pk")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        let key = |first: u8| {
            let mut k = vec![0u8; 32];
            k[0] = first;
            k
        };
        // The shared key is gone from both; bob's own device stays.
        assert_eq!(devices, [(key(1), key(8))]);
        // And the schema now refuses a second listing.
        let err = store.conn.execute(
            "INSERT INTO contact_devices (uid, device_pk, peer_id) VALUES (?1, ?2, 'p8')",
            rusqlite::params![key(2), key(8)],
        );
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn a_version_10_database_keeps_its_seen_set_by_envelope_time() {
        use crate::Store;

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        {
            // Version 10 as it shipped: `seen_at` is the time the envelope was received.
            let mut conn = Connection::open(&path).expect("raw open");
            let tx = conn.transaction().expect("tx");
            for sql in &MIGRATIONS[..10] {
                tx.execute_batch(sql).expect("v10 schema");
            }
            tx.execute_batch(
                "PRAGMA user_version = 10;
                 INSERT INTO seen (sender_device, session_id, seq, seen_at)
                   VALUES (zeroblob(32), zeroblob(16), 1, 1000000),
                          (zeroblob(32), zeroblob(16), 2, 2000000);",
            )
            .expect("v10 rows");
            tx.commit().expect("commit");
        }
        let mut store = Store::open(&path).expect("upgrade");
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION
        );
        // Received at 1 000 000: its envelope may have been stamped up to 5 minutes later, so
        // a prune at that time keeps it; one just after drops it.
        assert_eq!(
            store.write(|tx| tx.prune_seen(1_300_000)).expect("prune"),
            0
        );
        assert_eq!(
            store.write(|tx| tx.prune_seen(1_300_001)).expect("prune"),
            1
        );
        assert!(
            store
                .read()
                .seen_contains(&[0; 32], &[0; 16], 2)
                .expect("seen")
        );
        let index: i64 = store
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'seen_by_envelope_ts'",
                [],
                |r| r.get(0),
            )
            .expect("schema");
        assert_eq!(index, 1);
    }
}
