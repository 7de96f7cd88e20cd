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

#[test]
fn a_version_14_database_keeps_its_conversations_and_messages_as_direct_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        let mut conn = Connection::open(&path).expect("raw open");
        conn.execute_batch("PRAGMA foreign_keys = ON;").expect("fk");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..14] {
            tx.execute_batch(sql).expect("v14 schema");
        }
        tx.execute_batch(
            "PRAGMA user_version = 14;
             INSERT INTO contacts (uid, root_pk, name, added_at, updated_at)
               VALUES (zeroblob(32), zeroblob(32), 'bob', 1, 1);
             INSERT INTO conversations (session_id, group_id, contact_uid, created_at, next_seq,
                 closed_at)
               VALUES (zeroblob(16), x'01', zeroblob(32), 2, 7, 9);
             INSERT INTO messages (session_id, direction, sender_device, seq, kind, body,
                 sent_at, state)
               VALUES (zeroblob(16), 'out', zeroblob(32), 6, 'text', 'hi', 3, 'queued');",
        )
        .expect("v14 rows");
        tx.commit().expect("commit");
    }
    let mut store = crate::Store::open(&path).expect("upgrade");
    let r = store.read();
    let conv = r.conversation(&[0; 16]).expect("read").expect("kept");
    assert_eq!(conv.contact_uid, [0; 32]);
    assert_eq!(r.messages(&[0; 16], 10).expect("messages").len(), 1);
    // next_seq survived the rebuild; foreign keys are enforced again.
    assert_eq!(
        store.write(|tx| tx.take_next_seq(&[0; 16])).expect("seq"),
        7
    );
    let fk: i64 = store
        .read()
        .conn
        .query_row("PRAGMA foreign_keys", [], |row| row.get(0))
        .expect("pragma");
    assert_eq!(fk, 1);
}

#[test]
fn mailbox_rows_from_before_per_device_delivery_stay_readable() {
    // The schema just before the per-device mailbox migration (the last one touching the
    // mailbox when it was written), with an entry and a device-list version in it.
    let before = MIGRATIONS
        .iter()
        .rposition(|sql| sql.contains("mailbox_device_acks"))
        .expect("the per-device mailbox migration");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        let mut conn = Connection::open(&path).expect("raw open");
        let tx = conn.transaction().expect("tx");
        for sql in &MIGRATIONS[..before] {
            tx.execute_batch(sql).expect("old schema");
        }
        tx.execute_batch(&format!(
            "PRAGMA user_version = {before};
             INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at,
                 expires_at, sender_cert)
               VALUES (zeroblob(32), x'{sender}', x'{digest}', x'abcd', 10, 1000, NULL);
             INSERT INTO mailbox_device_lists (uid, version, updated_at)
               VALUES (zeroblob(32), 3, 10);",
            sender = "02".repeat(32),
            digest = "07".repeat(32),
        ))
        .expect("old rows");
        tx.commit().expect("commit");
    }
    let mut store = crate::Store::open(&path).expect("upgrade");
    let device = [11; 32];
    let page = store
        .read()
        .mailbox_fetch_for(&[0; 32], &device, 20, 0, 10, usize::MAX)
        .expect("fetch");
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].envelope, vec![0xab, 0xcd]);
    assert_eq!(
        store
            .read()
            .mailbox_device_list_version(&[0; 32])
            .expect("v"),
        3
    );
    // No devices known for the old version: the old entry goes at its first acknowledgement,
    // as it did before.
    let acked = store
        .write(|tx| tx.mailbox_ack(&[0; 32], &device, &[[7; 32]], &[], 30))
        .expect("ack");
    assert_eq!(acked.deleted, 1);
}
