//! The schema, as an ordered list of migrations.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to version `i + 1`. The
//! version lives in `PRAGMA user_version` (0 in a fresh file). Each migration
//! runs in its own transaction together with its `user_version` bump, so a
//! crash mid-upgrade leaves the database at the previous version, intact.
//!
//! Never edit a shipped migration: append a new one.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

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
    // 15: private groups (issue 14). A conversation is `direct` (with one contact) or `group`
    // (no contact: its members are in `group_members`), so `conversations` is rebuilt with a
    // nullable `contact_uid` (SQLite cannot drop NOT NULL in place; `migrate` runs with foreign
    // keys off and checks them before each commit). Outgoing rows get a per-row recipient (a
    // group's Welcome or a receipt goes to one member's UID; NULL: the conversation's contact or
    // the whole group) and group messages a `message_id` (dedupe per sender UID) and, for ours,
    // the MLS epoch they were encrypted in (re-sent after a rollback past it). Then the group
    // tables: the group, its members (devices come from the MLS roster), per-device delivery
    // state of our group messages, held group invitations and our pending changes (intents).
    "CREATE TABLE conversations_v15 (
        session_id  BLOB PRIMARY KEY CHECK (length(session_id) = 16),
        group_id    BLOB NOT NULL UNIQUE,
        kind        TEXT NOT NULL DEFAULT 'direct' CHECK (kind IN ('direct', 'group')),
        contact_uid BLOB REFERENCES contacts (uid) ON DELETE CASCADE,
        created_at  INTEGER NOT NULL,
        next_seq    INTEGER NOT NULL DEFAULT 1,
        closed_at   INTEGER,
        CHECK ((kind = 'direct') = (contact_uid IS NOT NULL))
    ) STRICT;
    INSERT INTO conversations_v15
        (session_id, group_id, kind, contact_uid, created_at, next_seq, closed_at)
        SELECT session_id, group_id, 'direct', contact_uid, created_at, next_seq, closed_at
        FROM conversations;
    DROP TABLE conversations;
    ALTER TABLE conversations_v15 RENAME TO conversations;
    CREATE INDEX conversations_by_contact ON conversations (contact_uid, created_at);
    ALTER TABLE messages ADD COLUMN recipient_uid BLOB;
    ALTER TABLE messages ADD COLUMN sender_uid BLOB;
    ALTER TABLE messages ADD COLUMN message_id BLOB;
    ALTER TABLE messages ADD COLUMN epoch INTEGER;
    CREATE UNIQUE INDEX messages_group_dedupe ON messages (session_id, sender_uid, message_id)
        WHERE message_id IS NOT NULL;
    CREATE TABLE groups (
        session_id BLOB PRIMARY KEY REFERENCES conversations (session_id) ON DELETE CASCADE,
        group_id   BLOB NOT NULL UNIQUE,
        address    BLOB NOT NULL UNIQUE CHECK (length(address) = 32),
        name       TEXT NOT NULL,
        my_role    TEXT NOT NULL CHECK (my_role IN ('admin', 'member')),
        state      TEXT NOT NULL CHECK (state IN ('active', 'left', 'removed')),
        invited_by BLOB CHECK (invited_by IS NULL OR length(invited_by) = 32),
        auto_join  INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE group_members (
        session_id BLOB NOT NULL REFERENCES groups (session_id) ON DELETE CASCADE,
        uid        BLOB NOT NULL CHECK (length(uid) = 32),
        root_pk    BLOB NOT NULL CHECK (length(root_pk) = 32),
        role       TEXT NOT NULL CHECK (role IN ('admin', 'member')),
        added_at   INTEGER NOT NULL,
        PRIMARY KEY (session_id, uid)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE message_deliveries (
        message    INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        device_pk  BLOB NOT NULL CHECK (length(device_pk) = 32),
        member_uid BLOB NOT NULL CHECK (length(member_uid) = 32),
        state      TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'read', 'failed')),
        at         INTEGER NOT NULL,
        PRIMARY KEY (message, device_pk)
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE group_requests (
        id          INTEGER PRIMARY KEY,
        session_id  BLOB NOT NULL UNIQUE CHECK (length(session_id) = 16),
        inviter_uid BLOB NOT NULL CHECK (length(inviter_uid) = 32),
        name        TEXT NOT NULL,
        members     INTEGER NOT NULL,
        envelope    BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX group_requests_by_expiry ON group_requests (expires_at);
    CREATE TABLE group_intents (
        id         INTEGER PRIMARY KEY,
        session_id BLOB NOT NULL REFERENCES groups (session_id) ON DELETE CASCADE,
        kind       TEXT NOT NULL CHECK (kind IN ('add', 'remove', 'profile', 'admins')),
        body       BLOB NOT NULL,
        commit_id  BLOB CHECK (commit_id IS NULL OR length(commit_id) = 32),
        epoch      INTEGER,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX group_intents_by_group ON group_intents (session_id, id);",
    // 16: the pieces of Welcomes sent in parts, kept until the rest arrives (so a piece
    // acknowledged survives a restart); the whole Welcome of a group request that arrived in
    // parts (its envelope is then the last part's); when this node found itself behind in a
    // group for good and asked its admins to re-add it.
    "CREATE TABLE welcome_parts (
        id         INTEGER PRIMARY KEY,
        sender_uid BLOB NOT NULL CHECK (length(sender_uid) = 32),
        welcome_id BLOB NOT NULL CHECK (length(welcome_id) = 32),
        idx        INTEGER NOT NULL,
        count      INTEGER NOT NULL,
        data       BLOB NOT NULL,
        first_at   INTEGER NOT NULL,
        UNIQUE (sender_uid, welcome_id, idx)
    ) STRICT;
    CREATE INDEX welcome_parts_by_first ON welcome_parts (first_at);
    ALTER TABLE group_requests ADD COLUMN welcome BLOB;
    CREATE TABLE group_rejoins (
        session_id   BLOB PRIMARY KEY REFERENCES groups (session_id) ON DELETE CASCADE,
        epoch        INTEGER NOT NULL,
        behind_since INTEGER NOT NULL,
        requested_at INTEGER
    ) STRICT;",
    // 17: group tasks (docs/agents.md "Agents in groups"): the group a task runs in, and the
    // member assigned to run it.
    "ALTER TABLE tasks ADD COLUMN group_session BLOB
        CHECK (group_session IS NULL OR length(group_session) = 16);
    ALTER TABLE tasks ADD COLUMN assignee BLOB CHECK (assignee IS NULL OR length(assignee) = 32);
    CREATE INDEX tasks_by_group ON tasks (group_session, side, state)
        WHERE group_session IS NOT NULL;",
    // 18: automatic rejoin (rhizo-engine groups/rejoin.rs): when (local time) the group was
    // first seen to have moved on for good without us at that epoch (the request waits a
    // grace after it, so commits that are merely late still catch us up), and the member
    // UIDs whose envelopes showed it (32 bytes each: a majority must, so a minority on a
    // losing branch never makes the others ask).
    "ALTER TABLE group_rejoins ADD COLUMN stuck_at INTEGER;
    ALTER TABLE group_rejoins ADD COLUMN senders BLOB NOT NULL DEFAULT x'';",
    // 19: `all`-mode group tasks (docs/agents.md "Agents in groups"): which client tasks every
    // agent member runs, and each of their workers' own status and results.
    "CREATE TABLE all_mode_tasks (
        task INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE
    ) STRICT;
    CREATE TABLE task_workers (
        task       INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        worker     BLOB NOT NULL CHECK (length(worker) = 32),
        device     BLOB NOT NULL CHECK (length(device) = 32),
        state      TEXT NOT NULL,
        last_seq   INTEGER NOT NULL DEFAULT 0,
        message    TEXT,
        reason     TEXT,
        artifacts  TEXT NOT NULL DEFAULT '[]',
        joined_at  INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (task, worker)
    ) STRICT;",
    // 20: delete-on-receipt with several devices (docs/protocol.md "Mailbox with several
    // devices"): the devices a mailbox entry is addressed to (32 bytes each, at most 16; NULL
    // for rows from before, fixed at their first acknowledgement), which of them acknowledged
    // it, and the devices of the newest device list the replica has seen per UID.
    "ALTER TABLE mailbox ADD COLUMN targets BLOB;
    CREATE TABLE mailbox_device_acks (
        entry_id INTEGER NOT NULL REFERENCES mailbox (id) ON DELETE CASCADE,
        device   BLOB NOT NULL CHECK (length(device) = 32),
        PRIMARY KEY (entry_id, device)
    ) STRICT, WITHOUT ROWID;
    ALTER TABLE mailbox_device_lists ADD COLUMN devices BLOB;",
    // 21: files and attachments (issue 16, rhizo-store files.rs): the file each `file` message
    // carries (its reference, inside MLS), and where the local copy is.
    "CREATE TABLE files (
        message_id INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
        outgoing   INTEGER NOT NULL,
        hash       BLOB NOT NULL CHECK (length(hash) = 32),
        key        BLOB NOT NULL CHECK (length(key) = 32),
        name       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        mime       TEXT NOT NULL,
        state      TEXT NOT NULL
            CHECK (state IN ('offered', 'downloading', 'done', 'failed')),
        done_bytes INTEGER NOT NULL DEFAULT 0,
        error      TEXT,
        path       TEXT,
        inline     BLOB,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX files_by_hash ON files (hash);",
    // 22: managing conversations (issue 20, rhizo-store messaging/manage.rs): whether a
    // conversation is muted (its message events say so) or archived (hidden from the listing),
    // by whom it is with: the contact's UID for a 1:1 conversation, the group address for a
    // group. Messages deleted on this device stay as `deleted` rows without a body (they keep
    // the dedupe keys, so a copy sent again is not shown again).
    "CREATE TABLE conversation_settings (
        peer       BLOB PRIMARY KEY CHECK (length(peer) = 32),
        muted      INTEGER NOT NULL DEFAULT 0 CHECK (muted IN (0, 1)),
        archived   INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
        updated_at INTEGER NOT NULL
    ) STRICT;",
    // 23: key-change warning (issue 18, docs/local-api.md "Key changes"): set when a known
    // contact gains a device key not stored before, cleared when the user verifies again.
    "ALTER TABLE contacts ADD COLUMN key_changed INTEGER NOT NULL DEFAULT 0;",
    // 24: presence and push across restarts (issue 20, rhizo-store presence.rs): when each
    // contact was last seen online, and the mailbox replica's push subscribers (whether a push
    // to each was still owed). Both are rewritten from memory, bounded.
    "CREATE TABLE presence_last_seen (
        uid       TEXT PRIMARY KEY,
        last_seen INTEGER NOT NULL
    ) STRICT, WITHOUT ROWID;
    CREATE TABLE push_subscriptions (
        mailbox    BLOB NOT NULL CHECK (length(mailbox) = 32),
        peer       TEXT NOT NULL,
        fetched_at INTEGER NOT NULL,
        pending    INTEGER NOT NULL DEFAULT 0 CHECK (pending IN (0, 1)),
        PRIMARY KEY (mailbox, peer)
    ) STRICT, WITHOUT ROWID;",
    // 25: a 1:1 message held for a fresh epoch after a restore (issue 14, rhizo-store
    // messaging/held.rs): the plaintext content to seal once our self-update is confirmed
    // (cleared when sealed); the row has no envelope until then.
    "ALTER TABLE messages ADD COLUMN held BLOB;
    CREATE INDEX messages_held ON messages (session_id) WHERE held IS NOT NULL;",
    // 26: history for a conversation this device is not in yet (issue 15, rhizo-store
    // messaging/history.rs): a history transfer's message whose conversation is not here is
    // kept here, and moved into `messages` by the trigger as soon as a conversation with its
    // session id is created (a group Welcome or a 1:1 join that arrives after the history).
    "CREATE TABLE history_pending (
        session_id    BLOB NOT NULL CHECK (length(session_id) = 16),
        direction     TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        sender_device BLOB NOT NULL,
        seq           INTEGER NOT NULL,
        body          TEXT NOT NULL,
        sent_at       INTEGER NOT NULL,
        received_at   INTEGER NOT NULL,
        state         TEXT NOT NULL,
        PRIMARY KEY (session_id, sender_device, seq)
    ) STRICT, WITHOUT ROWID;
    CREATE TRIGGER history_pending_attach AFTER INSERT ON conversations
    BEGIN
        INSERT OR IGNORE INTO messages (session_id, direction, sender_device, seq, kind, body,
            sent_at, received_at, state)
        SELECT session_id, direction, sender_device, seq, 'text', body, sent_at, received_at,
            state
        FROM history_pending WHERE session_id = NEW.session_id;
        DELETE FROM history_pending WHERE session_id = NEW.session_id;
    END;",
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
    // A migration may rebuild a table (15 does `conversations`): with foreign keys on, dropping
    // the old table would cascade into the rows that reference it. They are off while
    // migrating (the pragma is a no-op inside a transaction, so it is set here) and every step
    // checks them before it commits.
    let enforced: bool = conn
        .pragma_query_value(None, "foreign_keys", |row| row.get(0))
        .context("reading the foreign key setting")?;
    conn.pragma_update(None, "foreign_keys", false)
        .context("pausing foreign keys for a schema upgrade")?;
    let migrated = migrate_steps(conn);
    if enforced {
        conn.pragma_update(None, "foreign_keys", true)
            .context("enforcing foreign keys again")?;
    }
    migrated
}

/// The steps of [`migrate`], one transaction each.
fn migrate_steps(conn: &mut Connection) -> Result<(), StoreError> {
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
        let dangling: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |row| row.get(0))
            .optional()
            .map_err(failed)?;
        if let Some(table) = dangling {
            return Err(StoreError::InvalidInput(format!(
                "schema upgrade to version {next} left a dangling reference in {table}"
            )));
        }
        tx.pragma_update(None, "user_version", next)
            .map_err(failed)?;
        tx.commit().map_err(failed)?;
        tracing::info!(from = version, to = next, "upgraded database schema");
    }
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
