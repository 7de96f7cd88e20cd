//! Upgrades from every earlier schema version, from fixture databases kept in the repository
//! (`tests/fixtures/v<N>.db`, one per schema version; how to add one: the README there).
//!
//! A fixture of version N is built the way a node that lived through versions 1..N would have
//! it: migration 1, then the representative rows of [`seed`] 1, migration 2, seed 2, … up to N
//! (shipped migrations are never edited, so this is the schema as it shipped). The test copies
//! each fixture, opens it with [`Store::open`] (which migrates it to [`SCHEMA_VERSION`]), and
//! checks that every row is still there and that the store's own readers decode them.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::{MIGRATIONS, SCHEMA_VERSION};
use crate::Store;

/// A fixed time (unix ms) for every row: the fixtures are reproducible byte for byte.
const T: i64 = 1_700_000_000_000;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fixtures present, by schema version.
fn fixtures() -> Vec<(u32, PathBuf)> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(fixtures_dir())
        .expect("tests/fixtures")
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let name = path.file_name()?.to_str()?;
            let version = name.strip_prefix('v')?.strip_suffix(".db")?.parse().ok()?;
            Some((version, path))
        })
        .collect();
    found.sort();
    found
}

/// `x'…'`: `len` bytes of `byte`, as an SQL blob literal.
fn blob(byte: u8, len: usize) -> String {
    format!("x'{}'", format!("{byte:02x}").repeat(len))
}

/// The representative rows written right after migration `version` (in the schema of that
/// version): one or two rows in each table it added, some values in the columns it added.
/// A migration without an entry adds nothing worth a row (indexes, triggers, back-fills).
fn seed(version: u32) -> Option<String> {
    if version <= 8 {
        seed_first_years(version)
    } else {
        seed_later(version)
    }
}

/// The contacts' uid, device and 1:1 session of the seeds.
const BOB: (u8, u8, u8) = (0x01, 0x03, 0x04);

/// [`seed`] for versions 1 to 8: meta, the peer book, messaging, mailbox, profiles, bans and
/// channels.
fn seed_first_years(version: u32) -> Option<String> {
    let bob = blob(BOB.0, 32);
    let bob_device = blob(BOB.1, 32);
    let session = blob(BOB.2, 16);
    Some(match version {
        1 => "INSERT INTO meta (key, value) VALUES ('identity', 'fixture-alice'), ('name', 'Alice');"
            .to_owned(),
        2 => format!(
            "INSERT INTO peers (peer_id, source, first_seen, last_seen, failures)
                VALUES ('12D3KooWFixturePeer', 'manual', {T}, {T}, 1);
             INSERT INTO peer_addrs (peer_id, addr, last_seen)
                VALUES ('12D3KooWFixturePeer', '/ip4/127.0.0.1/tcp/4747', {T});"
        ),
        3 => format!(
            "INSERT INTO contacts (uid, root_pk, name, verified, added_at, updated_at)
                VALUES ({bob}, {}, 'bob', 1, {T}, {T});
             INSERT INTO contact_devices (uid, device_pk, peer_id, addrs)
                VALUES ({bob}, {bob_device}, '12D3KooWBobDevice', '/ip4/127.0.0.1/tcp/4748');
             INSERT INTO conversations (session_id, group_id, contact_uid, created_at, next_seq)
                VALUES ({session}, {}, {bob}, {T}, 2);
             INSERT INTO messages (id, session_id, direction, sender_device, seq, kind, body,
                                   sent_at, received_at, state)
                VALUES (1, {session}, 'in', {bob_device}, 1, 'text', 'hello from bob', {T},
                        {T} + 5, 'received'),
                       (2, {session}, 'out', {}, 1, 'text', 'hi bob', {T} + 10, NULL,
                        'delivered');
             INSERT INTO seen (sender_device, session_id, seq, seen_at)
                VALUES ({bob_device}, {session}, 1, {T});",
            blob(0x02, 32),
            blob(0x05, 32),
            blob(0x06, 32),
        ),
        4 => format!("UPDATE messages SET digest = {} WHERE id = 1;", blob(0x07, 32)),
        5 => format!(
            "INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at, expires_at)
                VALUES ({}, {bob}, {}, x'0a0b0c0d', {T}, {T} + 604800000);",
            blob(0x08, 32),
            blob(0x09, 32),
        ),
        6 => format!(
            "INSERT INTO profiles (uid, version, name, record, public, updated_at)
                VALUES ({bob}, 1, 'Bob', x'0b', 0, {T});
             INSERT INTO mailbox_tombstones (recipient_uid, digest, expires_at)
                VALUES ({}, {}, {T} + 604800000);
             INSERT INTO mailbox_device_lists (uid, version, updated_at) VALUES ({bob}, 3, {T});
             UPDATE messages SET state = 'stored', replicas = 3 WHERE id = 2;",
            blob(0x08, 32),
            blob(0x0c, 32),
        ),
        7 => format!(
            "INSERT INTO bans (kind, value, reason, until, created_at)
                VALUES ('cidr', '192.0.2.0/24', 'fixture', NULL, {T});
             INSERT INTO channels (id, name, creator_uid, joined_at)
                VALUES ({}, 'general', NULL, {T});
             INSERT INTO channel_posts (post_id, channel_id, author_uid, author_device, text,
                                        sent_at, received_at, own)
                VALUES ({}, {}, {bob}, {bob_device}, 'first post', {T}, {T}, 0);
             UPDATE peers SET reputation = -5;",
            blob(0x0d, 32),
            blob(0x0e, 32),
            blob(0x0d, 32),
        ),
        _ => return None,
    })
}

/// [`seed`] for versions 9 on: requests, agents, groups, Welcome parts, files.
fn seed_later(version: u32) -> Option<String> {
    let bob = blob(BOB.0, 32);
    let bob_device = blob(BOB.1, 32);
    let session = blob(BOB.2, 16);
    let group_session = blob(0x17, 16);
    Some(match version {
        9 => format!(
            "INSERT INTO request_senders (uid, state, first_at, last_at, name)
                VALUES ({carol}, 'pending', {T}, {T}, 'Carol');
             INSERT INTO request_envelopes (sender_uid, sender_device, session_id, seq, envelope,
                                            received_at)
                VALUES ({carol}, {}, {}, 1, x'1212', {T});
             INSERT INTO declined_sessions (session_id, sender_uid, declined_at)
                VALUES ({}, {}, {T});",
            blob(0x10, 32),
            blob(0x11, 16),
            blob(0x13, 16),
            blob(0x14, 32),
            carol = blob(0x0f, 32),
        ),
        13 => format!(
            "INSERT INTO tasks (id, task_id, side, peer_uid, context_id, skill, priority, deadline,
                                requirements, state, last_seq, request, created_at, updated_at)
                VALUES (1, {}, 'client', {bob}, 'ctx-1', 'summarize', 0, NULL, '{{}}', 'working',
                        2, '{{\"text\":\"summarize this\"}}', {T}, {T});
             INSERT INTO task_events (task, seq, state, at)
                VALUES (1, 1, 'submitted', {T}), (1, 2, 'working', {T} + 1);",
            blob(0x15, 16),
        ),
        14 => format!(
            "INSERT INTO agent_cards (uid, version, record, expires_at, fetched_at)
                VALUES ({bob}, 1, x'16', {T} + 604800000, {T});
             INSERT INTO own_agent_card (id, version, record, updated_at) VALUES (0, 1, NULL, {T});"
        ),
        15 => format!(
            "INSERT INTO conversations (session_id, group_id, kind, contact_uid, created_at)
                VALUES ({group_session}, {gid}, 'group', NULL, {T});
             INSERT INTO groups (session_id, group_id, address, name, my_role, state, created_at,
                                 updated_at)
                VALUES ({group_session}, {gid}, {}, 'Friends', 'admin', 'active', {T}, {T});
             INSERT INTO group_members (session_id, uid, root_pk, role, added_at)
                VALUES ({group_session}, {bob}, {}, 'member', {T});
             INSERT INTO messages (id, session_id, direction, sender_device, seq, kind, body,
                                   sent_at, received_at, state, sender_uid, message_id)
                VALUES (3, {group_session}, 'in', {bob_device}, 1, 'text', 'hello group',
                        {T} + 20, {T} + 21, 'received', {bob}, {});",
            blob(0x19, 32),
            blob(0x02, 32),
            blob(0x1a, 16),
            gid = blob(0x18, 32),
        ),
        16 => format!(
            "INSERT INTO welcome_parts (sender_uid, welcome_id, idx, count, data, first_at)
                VALUES ({bob}, {}, 0, 2, x'1c1c', {T});",
            blob(0x1b, 32),
        ),
        21 => format!(
            "INSERT INTO messages (id, session_id, direction, sender_device, seq, kind, body,
                                   sent_at, received_at, state)
                VALUES (4, {session}, 'in', {bob_device}, 2, 'file', 'the notes', {T} + 30,
                        {T} + 31, 'received');
             INSERT INTO files (message_id, outgoing, hash, key, name, size, mime, state,
                                created_at, updated_at)
                VALUES (4, 0, {}, {}, 'notes.txt', 12, 'text/plain', 'offered', {T}, {T});",
            blob(0x1d, 32),
            blob(0x1e, 32),
        ),
        22 => format!(
            "INSERT INTO conversation_settings (peer, muted, archived, updated_at)
                VALUES ({bob}, 1, 0, {T});"
        ),
        24 => format!(
            "INSERT INTO presence_last_seen (uid, last_seen) VALUES ('{}', {T});
             INSERT INTO push_subscriptions (mailbox, peer, fetched_at, pending)
                VALUES ({}, '12D3KooWFixturePeer', {T}, 1);",
            "01".repeat(32),
            blob(0x1f, 32),
        ),
        25 => format!(
            "INSERT INTO messages (id, session_id, direction, sender_device, seq, kind, body,
                                   sent_at, state, held)
                VALUES (5, {session}, 'out', {}, 7, 'text', 'held for a fresh epoch',
                        {T} + 40, 'pending', x'2020');",
            blob(0x02, 32),
        ),
        _ => return None,
    })
}

/// Builds the fixture of schema `version` at `path` (a new file): small pages, no WAL, vacuumed.
fn build_fixture(path: &Path, version: u32) {
    let mut conn = Connection::open(path).expect("create fixture");
    // Foreign keys off, as `migrate` has them: migration 15 rebuilds `conversations`, and with
    // them on (rusqlite's SQLite enforces them by default) dropping it would cascade.
    conn.execute_batch(
        "PRAGMA page_size = 512; PRAGMA journal_mode = DELETE; PRAGMA foreign_keys = OFF;",
    )
    .expect("fixture settings");
    for v in 1..=version {
        let tx = conn.transaction().expect("tx");
        let before = row_counts(&tx);
        tx.execute_batch(MIGRATIONS[v as usize - 1])
            .unwrap_or_else(|e| panic!("migration {v}: {e}"));
        assert_rows_kept(
            &before,
            &row_counts(&tx),
            &format!("building v{version}, step {v}"),
        );
        if let Some(sql) = seed(v) {
            tx.execute_batch(&sql)
                .unwrap_or_else(|e| panic!("seed {v}: {e}"));
        }
        tx.pragma_update(None, "user_version", v).expect("version");
        tx.commit().expect("commit");
    }
    conn.execute_batch("VACUUM").expect("vacuum");
}

/// Writes the fixture of every schema version that has none yet (never overwrites one: a
/// committed fixture is what that version shipped). Run it after appending a migration (see
/// tests/fixtures/README.md).
#[test]
#[ignore = "writes tests/fixtures; run by hand after appending a migration"]
fn write_missing_fixtures() {
    let have: Vec<u32> = fixtures().into_iter().map(|(v, _)| v).collect();
    for version in 1..=SCHEMA_VERSION {
        if !have.contains(&version) {
            let path = fixtures_dir().join(format!("v{version}.db"));
            build_fixture(&path, version);
            println!("wrote {}", path.display());
        }
    }
}

/// Rows per table (the fixture's own tables).
fn row_counts(conn: &Connection) -> Vec<(String, i64)> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        .expect("tables");
    let tables: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("tables")
        .collect::<Result<_, _>>()
        .expect("tables");
    tables
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM \"{t}\""), [], |r| r.get(0))
                .expect("count");
            (t, n)
        })
        .collect()
}

/// Every table of `before` still has at least its rows in `after` (migration 15 rebuilt
/// `conversations` under the same name; no migration drops a table that holds rows).
fn assert_rows_kept(before: &[(String, i64)], after: &[(String, i64)], what: &str) {
    for (table, rows) in before {
        let now = after
            .iter()
            .find(|(t, _)| t == table)
            .map_or(0, |(_, n)| *n);
        assert!(now >= *rows, "{what}: {table} had {rows} rows, now {now}");
    }
}

#[test]
fn every_fixture_migrates_to_the_current_schema_and_keeps_its_rows() {
    let found = fixtures();
    assert!(
        !found.is_empty(),
        "no fixture in {}",
        fixtures_dir().display()
    );
    for (version, fixture) in found {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("rhizo.db");
        std::fs::copy(&fixture, &path).expect("copy fixture");
        let before = row_counts(&Connection::open(&path).expect("open fixture"));
        let store = Store::open(&path).unwrap_or_else(|e| panic!("v{version}: {e:#?}"));
        assert_eq!(
            store.read().schema_version().expect("version"),
            SCHEMA_VERSION,
            "v{version}"
        );
        assert_rows_kept(&before, &row_counts(&store.conn), &format!("v{version}"));
        check_rows(&store, version);
    }
}

/// The seeded rows, read back through the store's own readers (so they also decode).
fn check_rows(store: &Store, version: u32) {
    let r = store.read();
    let at = |since: u32| version >= since;
    assert_eq!(
        r.get_meta("identity").expect("meta").as_deref(),
        Some("fixture-alice")
    );
    if at(2) {
        let peers = r.list_peers().expect("peers");
        let peer = peers
            .iter()
            .find(|p| p.peer_id == "12D3KooWFixturePeer")
            .expect("peer");
        assert_eq!(peer.addrs, ["/ip4/127.0.0.1/tcp/4747"], "v{version}");
    }
    if at(3) {
        let contacts = r.list_contacts().expect("contacts");
        assert!(
            contacts.iter().any(|c| c.name == "bob" && c.verified),
            "v{version}"
        );
        let bodies: Vec<Option<String>> = r
            .messages(&[0x04; 16], 100)
            .expect("messages")
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert!(
            bodies.contains(&Some("hello from bob".into())),
            "v{version}: {bodies:?}"
        );
        assert!(
            bodies.contains(&Some("hi bob".into())),
            "v{version}: {bodies:?}"
        );
    }
    if at(6) {
        let profile = r
            .profile(&[0x01; 32])
            .expect("profile")
            .expect("bob's profile");
        assert_eq!(profile.name, "Bob", "v{version}");
    }
    if at(7) {
        let bans = r.bans(T).expect("bans");
        assert!(bans.iter().any(|b| b.value == "192.0.2.0/24"), "v{version}");
    }
    if at(9) {
        let requests = r.list_requests().expect("requests");
        assert!(requests.iter().any(|q| q.uid == [0x0f; 32]), "v{version}");
    }
    if at(13) {
        let task = r.task(1).expect("task").expect("the task");
        assert_eq!(task.skill.as_deref(), Some("summarize"), "v{version}");
        assert_eq!(r.task_events(1).expect("events").len(), 2, "v{version}");
    }
    if at(14) {
        assert!(
            r.agent_card(&[0x01; 32]).expect("card").is_some(),
            "v{version}"
        );
    }
    if at(15) {
        let groups = r.groups().expect("groups");
        assert!(groups.iter().any(|g| g.name == "Friends"), "v{version}");
        let texts: Vec<Option<String>> = r
            .messages(&[0x17; 16], 10)
            .expect("group messages")
            .into_iter()
            .map(|m| m.body)
            .collect();
        assert_eq!(texts, [Some("hello group".to_owned())], "v{version}");
    }
    if at(21) {
        let file = r.file(4).expect("file").expect("the file");
        assert_eq!(file.name, "notes.txt", "v{version}");
    }
    if at(22) {
        let settings = r.conversation_settings(&[BOB.0; 32]).expect("settings");
        assert!(settings.muted && !settings.archived, "v{version}");
    }
}

/// Every schema version before this one has its fixture, so each upgrade path is tested.
/// (The current version's fixture appears once a later migration exists; building it earlier
/// does no harm.)
#[test]
fn every_earlier_schema_version_has_a_fixture() {
    let have: Vec<u32> = fixtures().into_iter().map(|(v, _)| v).collect();
    let missing: Vec<u32> = (1..SCHEMA_VERSION).filter(|v| !have.contains(v)).collect();
    assert!(
        missing.is_empty(),
        "no fixture for schema version(s) {missing:?}: run `cargo test -p rhizo-store --lib \
         write_missing_fixtures -- --ignored` and commit tests/fixtures (see its README)"
    );
}
