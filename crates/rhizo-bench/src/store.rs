//! B8: durable mailbox ingest.
//!
//! **Headline.** N real envelopes of ~1 KiB (signed `SecureMessage`s, 16 senders × 64
//! recipients so the default quotas hold) go into `rhizo_store::Store::mailbox_store_batch` in
//! groups of [`GROUP`] — the replica writer's group size (`rhizo_node::mailbox::STORE_GROUP`) —
//! on a fresh database in `$TMPDIR` (WAL, `synchronous = FULL`, as the node opens it). Each group
//! is one durable transaction (purge if due, per entry: tombstone, duplicate and usage-counter
//! probe, quota, insert with its index and counter updates), committed before it returns, as a
//! replica must before acknowledging. The reference, in the same run on the same disk with the
//! same records: raw SQLite (rusqlite, same pragmas) inserting the same groups of [`GROUP`]
//! into a plain table, one transaction per group. Rounds are interleaved; each figure is the
//! median over rounds.
//!
//! Diagnostics (why the ratio is what it is): one envelope per transaction
//! (`Store::mailbox_store` against raw SQLite with one INSERT per transaction); the node's real
//! replica path (`rhizo_node::mailbox::MailboxReplica::handle`: decode, checks, signature, the
//! group-commit writer) with 64 requests in flight, as the node allows; the rate per quarter of
//! the run (does the cost grow as the mailbox fills?); bytes written per envelope (`wchar`: WAL
//! frames); the rates again on tmpfs (no fsync: the CPU cost alone); and each statement of the
//! store path timed alone on the filled database.

use std::{path::Path, sync::Arc, time::Instant};

use rhizo_core::{
    DeviceKey, RootKey,
    envelope::{MessageType, SecureMessage, SessionId, envelope_digest},
    mailbox::{MailboxRequest, MailboxResponse},
};
use rhizo_node::mailbox::{MailboxReplica, ReplicaContext, STORE_GROUP};
use rhizo_store::{
    Store,
    mailbox::{MailboxQuota, MailboxStored, NewMailboxEntry},
};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::median;
use crate::report::{Row, Target};

/// Target size of one envelope.
pub const ENVELOPE_BYTES: usize = 1024;
/// Envelopes per transaction of the headline and its reference: the replica writer's group.
pub const GROUP: usize = STORE_GROUP;
/// Requests in flight on the replica path (the node's `MAX_INBOUND_IN_FLIGHT`).
const IN_FLIGHT: usize = 64;
/// Distinct senders.
const SENDERS: usize = 16;
/// Distinct recipients.
const RECIPIENTS: usize = 64;
/// A week, in ms (the mailbox TTL).
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

/// One round's figures (envelopes/s).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct B8Sample {
    /// `mailbox_store_batch`, groups of [`GROUP`].
    pub rhizo_group: f64,
    /// Raw SQLite, [`GROUP`] INSERTs per transaction.
    pub raw_group: f64,
    /// `mailbox_store`, one per transaction.
    pub rhizo_single: f64,
    /// Raw SQLite, one INSERT per transaction.
    pub raw_single: f64,
    /// Raw SQLite, [`GROUP`] INSERTs per transaction into a table with the mailbox's indexes.
    pub raw_indexed_group: f64,
    /// The node's replica path.
    pub replica: f64,
}

/// B8's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B8Result {
    /// Envelopes per grouped run (and per replica-path run).
    pub n_group: usize,
    /// Envelopes per one-per-transaction run.
    pub n_single: usize,
    /// Envelopes per transaction in the grouped runs.
    pub group: usize,
    /// Mean envelope size.
    pub envelope_bytes: usize,
    /// Interleaved rounds.
    pub rounds: usize,
    /// Medians over rounds.
    pub median: B8Sample,
    /// Every round's figures.
    pub samples: Vec<B8Sample>,
    /// `mailbox_store_batch` envelopes/s in each quarter of the grouped run (first round).
    pub rhizo_group_quarters: Vec<f64>,
    /// Replica path, first round: transactions the writer committed, and stores in them.
    pub replica_commits: u64,
    /// Stores answered by the writer (first round).
    pub replica_stores: u64,
    /// Diagnostic: the same four on tmpfs (no fsync cost), envelopes/s.
    pub tmpfs: Option<B8Sample>,
    /// Bytes written (`wchar` of /proc/self/io: the WAL and any checkpoint) per envelope, first
    /// round: (rhizo grouped, raw grouped, rhizo single, raw single).
    pub write_bytes_per_envelope: (f64, f64, f64, f64),
    /// Diagnostic: the CPU cost of each statement of the store path on the filled tmpfs
    /// database (µs, mean over probes), and of the raw INSERT.
    pub statement_us: Vec<(String, f64)>,
    /// SQLite's `EXPLAIN QUERY PLAN` of each timed statement (bundled SQLite, filled database).
    pub query_plans: Vec<(String, String)>,
}

impl B8Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let m = &self.median;
        let group = self.group;
        let mut rows = vec![
            Row::new(
                "B8",
                format!("mailbox_store_batch, {group} per transaction, ~1 KiB envelopes, durable"),
                m.rhizo_group,
                "msg/s",
            )
            .reference(
                format!("raw SQLite {group} INSERTs/txn (FULL)"),
                m.raw_group,
            )
            .target(Target::ratio_at_least(0.7))
            .note(
                "group commit: the replica's writer commits up to 64 waiting stores in one \
                 transaction and answers each after the commit; the reference commits the same \
                 records in the same groups into a plain table",
            ),
            Row::new(
                "B8",
                "diagnostic: node replica path (decode, checks, signature, group commit), 64 in flight",
                m.replica,
                "msg/s",
            )
            .reference(
                format!("raw SQLite {group} INSERTs/txn (FULL)"),
                m.raw_group,
            )
            .note(
                "diagnostic: MailboxReplica::handle as the node calls it for /rhizo/mailbox/1 \
                 requests (no network), 64 requests in flight as the node allows",
            ),
        ];
        rows.push(
            Row::new(
                "B8",
                format!(
                    "diagnostic: raw SQLite {group} INSERTs/txn into a table with the mailbox's \
                     3 indexes"
                ),
                m.raw_indexed_group,
                "msg/s",
            )
            .reference(
                format!("raw SQLite {group} INSERTs/txn (FULL)"),
                m.raw_group,
            )
            .note(
                "diagnostic: what the mailbox's indexes alone cost SQLite (unique (recipient, \
                 digest) for dedupe, (recipient, id) for fetch order, expires_at for the purge), \
                 without rhizo's checks and counters",
            ),
        );
        rows.push(
            Row::new(
                "B8",
                format!("diagnostic: mailbox_store_batch, {group} per transaction"),
                m.rhizo_group,
                "msg/s",
            )
            .reference(
                "raw SQLite, same groups, mailbox's 3 indexes",
                m.raw_indexed_group,
            ),
        );
        if self.replica_commits > 0 {
            rows.push(Row::new(
                "B8",
                "diagnostic: replica path, stores per commit",
                self.replica_stores as f64 / self.replica_commits as f64,
                "msg",
            ));
        }
        rows.push(
            Row::new(
                "B8",
                "diagnostic: mailbox_store, one per transaction",
                m.rhizo_single,
                "msg/s",
            )
            .reference("raw SQLite 1 INSERT/txn (FULL)", m.raw_single),
        );
        if let (Some(first), Some(last)) = (
            self.rhizo_group_quarters.first(),
            self.rhizo_group_quarters.last(),
        ) {
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: mailbox_store_batch, last quarter of the run",
                    *last,
                    "msg/s",
                )
                .reference("first quarter", *first),
            );
        }
        if let Some(t) = &self.tmpfs {
            rows.push(
                Row::new(
                    "B8",
                    format!("diagnostic: mailbox_store_batch on tmpfs (no fsync), {group}/txn"),
                    t.rhizo_group,
                    "msg/s",
                )
                .reference(
                    format!("raw SQLite {group} INSERTs/txn on tmpfs"),
                    t.raw_group,
                )
                .note(
                    "diagnostic: the same on /dev/shm, where fsync costs nothing: what is left \
                     is the CPU cost of the statements",
                ),
            );
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: raw SQLite with the mailbox's 3 indexes on tmpfs",
                    t.raw_indexed_group,
                    "msg/s",
                )
                .reference(
                    format!("raw SQLite {group} INSERTs/txn on tmpfs"),
                    t.raw_group,
                ),
            );
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: node replica path on tmpfs",
                    t.replica,
                    "msg/s",
                )
                .reference(
                    format!("raw SQLite {group} INSERTs/txn on tmpfs"),
                    t.raw_group,
                ),
            );
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: mailbox_store on tmpfs, one per transaction",
                    t.rhizo_single,
                    "msg/s",
                )
                .reference("raw SQLite 1 INSERT/txn on tmpfs", t.raw_single),
            );
        }
        let (rg, raw_g, rs, raw_s) = self.write_bytes_per_envelope;
        if raw_g > 0.0 && raw_s > 0.0 {
            rows.push(
                Row::new(
                    "B8",
                    format!("diagnostic: bytes written per envelope, {group}/txn (WAL)"),
                    rg / 1024.0,
                    "KiB",
                )
                .reference("raw SQLite, same groups", raw_g / 1024.0),
            );
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: bytes written per mailbox_store call (WAL)",
                    rs / 1024.0,
                    "KiB",
                )
                .reference("per raw 1-INSERT transaction", raw_s / 1024.0),
            );
        }
        let raw_insert = self
            .statement_us
            .iter()
            .find(|(name, _)| name.starts_with("raw"))
            .map(|(_, us)| *us);
        for (name, us) in self
            .statement_us
            .iter()
            .filter(|(n, _)| !n.starts_with("raw"))
        {
            let mut row = Row::new("B8", format!("diagnostic: {name}"), *us, "µs");
            if let Some(raw) = raw_insert {
                row = row.reference("raw INSERT into a plain table", raw);
            }
            rows.push(row.note(
                "diagnostic: each statement of the store path timed alone on the filled tmpfs \
                 database (mean over 200 new envelopes; writes rolled back)",
            ));
        }
        rows
    }
}

/// An encoded envelope with its sender's and recipient's UIDs and the sender device's
/// certificate (a replica keeps it with the envelope).
pub type Record = (Vec<u8>, [u8; 32], [u8; 32], Vec<u8>);

/// `n` distinct signed envelopes of about [`ENVELOPE_BYTES`], with their sender and
/// recipient UIDs.
pub fn envelopes(n: usize) -> anyhow::Result<Vec<Record>> {
    let senders: Vec<(RootKey, DeviceKey)> = (0..SENDERS)
        .map(|_| Ok((RootKey::generate()?, DeviceKey::generate()?)))
        .collect::<anyhow::Result<_>>()?;
    let recipients: Vec<[u8; 32]> = (0..RECIPIENTS)
        .map(|_| Ok(*RootKey::generate()?.public().uid().as_bytes()))
        .collect::<anyhow::Result<_>>()?;
    let mut filler = Filler(0x9E37_79B9_7F4A_7C15);
    // Recent timestamps, so the node's replica path accepts them (its replay window).
    let t0 = u64::try_from(now_ms()).unwrap_or(0).saturating_sub(60_000);
    let make =
        |i: usize, payload_len: usize, filler: &mut Filler| -> anyhow::Result<SecureMessage> {
            let (root, device) = &senders[i % SENDERS];
            let recipient = recipients[i % RECIPIENTS];
            let mut nonce = [0u8; 32];
            filler.fill(&mut nonce);
            let mut payload = vec![0u8; payload_len];
            filler.fill(&mut payload);
            let mut m = SecureMessage {
                msg_type: MessageType::Application,
                sender_id: root.public().uid(),
                sender_device: device.public(),
                recipient_id: rhizo_core::Uid::from_bytes(&recipient),
                session_id: SessionId::from_bytes([7; 16]),
                sequence_num: i as u64 + 1,
                timestamp: t0 + i as u64,
                nonce,
                payload: payload.into(),
                signature: [0; 64],
            };
            m.sign(device)?;
            Ok(m)
        };
    let overhead = make(0, 0, &mut filler)?.encode().len() + 3;
    let payload_len = ENVELOPE_BYTES.saturating_sub(overhead);
    (0..n)
        .map(|i| {
            let m = make(i, payload_len, &mut filler)?;
            let (root, device) = &senders[i % SENDERS];
            Ok((
                m.encode(),
                *root.public().uid().as_bytes(),
                recipients[i % RECIPIENTS],
                root.certify_device(&device.public(), t0 / 1000).encode(),
            ))
        })
        .collect()
}

/// A xorshift filler for payload bytes (their content does not matter to SQLite).
struct Filler(u64);

impl Filler {
    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *b = self.0 as u8;
        }
    }
}

fn now_ms() -> i64 {
    rhizo_node::unix_now() * 1000
}

/// `entry` for a record, expiring a week after `now`.
fn new_entry(record: &Record, now: i64) -> NewMailboxEntry<'_> {
    let (envelope, sender, recipient, sender_cert) = record;
    NewMailboxEntry {
        recipient_uid: *recipient,
        sender_uid: *sender,
        digest: envelope_digest(envelope),
        envelope,
        expires_at: now + WEEK_MS,
        sender_cert,
    }
}

/// Envelopes per second through `Store::mailbox_store_batch`, [`GROUP`] per call, into a fresh
/// database in `dir`, overall and per quarter of the run.
fn rhizo_group_rate(dir: &Path, records: &[Record]) -> anyhow::Result<(f64, Vec<f64>)> {
    let mut store = Store::open(&dir.join("rhizo.db"))?;
    let quota = MailboxQuota::default();
    let now = now_ms();
    let groups: Vec<&[Record]> = records.chunks(GROUP).collect();
    let quarter = groups.len().div_ceil(4).max(1);
    let mut quarters = Vec::with_capacity(4);
    let start = Instant::now();
    let (mut mark, mut done) = (start, 0);
    for (i, group) in groups.iter().enumerate() {
        let entries: Vec<NewMailboxEntry<'_>> = group.iter().map(|r| new_entry(r, now)).collect();
        let outcomes = store.write(|tx| tx.mailbox_store_batch(&entries, &quota, now))?;
        anyhow::ensure!(
            outcomes.iter().all(|o| *o == Ok(MailboxStored::Stored)),
            "not every envelope was stored: {outcomes:?}"
        );
        done += group.len();
        if (i + 1) % quarter == 0 || i + 1 == groups.len() {
            quarters.push(done as f64 / mark.elapsed().as_secs_f64());
            (mark, done) = (Instant::now(), 0);
        }
    }
    Ok((
        records.len() as f64 / start.elapsed().as_secs_f64(),
        quarters,
    ))
}

/// Envelopes per second through `Store::mailbox_store`, one call (one transaction) each.
fn rhizo_single_rate(dir: &Path, records: &[Record]) -> anyhow::Result<f64> {
    let mut store = Store::open(&dir.join("single.db"))?;
    let quota = MailboxQuota::default();
    let now = now_ms();
    let start = Instant::now();
    for record in records {
        store.write(|tx| tx.mailbox_store(&new_entry(record, now), &quota, now))?;
    }
    Ok(records.len() as f64 / start.elapsed().as_secs_f64())
}

/// Envelopes per second through the node's replica path (`MailboxReplica::handle`, as for an
/// inbound `/rhizo/mailbox/1` request), [`IN_FLIGHT`] requests at a time; and the writer's
/// (commits, stores).
fn replica_rate(dir: &Path, records: &[Record]) -> anyhow::Result<(f64, u64, u64)> {
    let db = rhizo_store::Db::start(
        Store::open(&dir.join("replica.db"))?,
        rhizo_store::DbConfig::default(),
    )?;
    let replica = MailboxReplica::new(
        db,
        ReplicaContext {
            local_peer: b"rhizo-bench replica".to_vec(),
            quota: MailboxQuota::default(),
        },
    );
    let payloads: Vec<Vec<u8>> = records
        .iter()
        .map(|(envelope, _, recipient, sender_cert)| {
            MailboxRequest::Store {
                recipient: rhizo_core::Uid::from_bytes(recipient),
                envelope: envelope.clone().into(),
                ttl_secs: 0,
                sender_cert: sender_cert.clone().into(),
            }
            .encode()
        })
        .collect();
    crate::with_runtime(async move {
        let in_flight = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(payloads.len());
        for payload in payloads {
            let permit = in_flight.clone().acquire_owned().await?;
            let replica = replica.clone();
            tasks.push(tokio::spawn(async move {
                let response = replica.handle(payload).await;
                drop(permit);
                response
            }));
        }
        for task in tasks {
            let response = task.await?;
            anyhow::ensure!(
                matches!(
                    response,
                    MailboxResponse::Stored {
                        duplicate: false,
                        ..
                    }
                ),
                "the replica refused a store: {response:?}"
            );
        }
        let rate = records.len() as f64 / start.elapsed().as_secs_f64();
        let stats = replica.writer_stats();
        Ok((rate, stats.commits, stats.stores))
    })
}

/// How a raw reference table is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawTable {
    /// A plain rowid table (the reference).
    Plain,
    /// The same table with the three indexes of rhizo's `mailbox` table (unique (recipient,
    /// digest); (recipient, id); expires_at), no checks, no counters (a diagnostic).
    MailboxIndexes,
}

/// A fresh raw SQLite database with the node's pragmas and a `records` table.
fn raw_db(path: &Path, table: RawTable) -> anyhow::Result<Connection> {
    let conn = Connection::open(path)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    anyhow::ensure!(mode.eq_ignore_ascii_case("wal"), "no WAL: {mode}");
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE records (
             id INTEGER PRIMARY KEY,
             recipient BLOB NOT NULL,
             sender BLOB NOT NULL,
             digest BLOB NOT NULL,
             envelope BLOB NOT NULL,
             stored_at INTEGER NOT NULL,
             expires_at INTEGER NOT NULL
         );",
    )?;
    if table == RawTable::MailboxIndexes {
        conn.execute_batch(
            "CREATE UNIQUE INDEX records_by_digest ON records (recipient, digest);
             CREATE INDEX records_by_recipient ON records (recipient, id);
             CREATE INDEX records_by_expiry ON records (expires_at);",
        )?;
    }
    Ok(conn)
}

/// Records per second into a raw database with a plain table, `per_txn` INSERTs per transaction.
fn raw_rate(path: &Path, records: &[Record], per_txn: usize) -> anyhow::Result<f64> {
    raw_rate_into(path, records, per_txn, RawTable::Plain)
}

/// Records per second into a raw database with `table`, `per_txn` INSERTs per transaction.
fn raw_rate_into(
    path: &Path,
    records: &[Record],
    per_txn: usize,
    table: RawTable,
) -> anyhow::Result<f64> {
    let mut conn = raw_db(path, table)?;
    let now = now_ms();
    let start = Instant::now();
    for chunk in records.chunks(per_txn.max(1)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (recipient, sender, digest, envelope, stored_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (envelope, sender, recipient, _) in chunk {
                insert.execute(params![
                    &recipient[..],
                    &sender[..],
                    &envelope_digest(envelope)[..],
                    envelope,
                    now,
                    now + WEEK_MS
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(records.len() as f64 / start.elapsed().as_secs_f64())
}

/// Durable single-INSERT commits per second of `bytes`-byte records into a fresh database in
/// `dir` (used by B3's breakdown).
pub fn raw_commit_rate(dir: &Path, n: usize, bytes: usize) -> anyhow::Result<f64> {
    let records: Vec<Record> = (0..n.max(1))
        .map(|i| {
            let mut v = vec![0u8; bytes];
            v[..8].copy_from_slice(&(i as u64).to_le_bytes());
            (v, [1; 32], [2; 32], Vec::new())
        })
        .collect();
    raw_rate(&dir.join("commits.db"), &records, 1)
}

/// Bytes this process has passed to `write`-like system calls (`wchar` in /proc/self/io).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// How a timed statement binds a probe.
#[derive(Debug, Clone, Copy)]
enum Bind {
    /// `(recipient, digest, sender, now)`: the store path's probe.
    Probe,
    /// `(now, limit)`: the purge.
    Purge,
    /// The six columns of an INSERT.
    Insert,
}

/// One timed statement: its name, SQL, binding, whether it writes (then it runs in one
/// transaction that is rolled back), and SQL run first inside that transaction.
type Timed = (&'static str, &'static str, Bind, bool, &'static str);

/// Mean µs of `sql` over `probes` (digests computed beforehand, not timed).
fn time_statement(
    conn: &Connection,
    (_, sql, bind, write, setup): Timed,
    probes: &[Record],
) -> anyhow::Result<f64> {
    let now = now_ms();
    let digests: Vec<[u8; 32]> = probes.iter().map(|p| envelope_digest(&p.0)).collect();
    if write {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.execute_batch(setup)?;
    }
    let mut stmt = conn.prepare(sql)?;
    let start = Instant::now();
    for ((envelope, sender, recipient, _), digest) in probes.iter().zip(&digests) {
        let mut rows = match bind {
            Bind::Probe => stmt.query(params![&recipient[..], &digest[..], &sender[..], now])?,
            Bind::Purge => stmt.query(params![now, 4096])?,
            Bind::Insert => stmt.query(params![
                &recipient[..],
                &sender[..],
                &digest[..],
                envelope,
                now,
                now + WEEK_MS
            ])?,
        };
        while rows.next()?.is_some() {}
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / probes.len().max(1) as f64;
    drop(stmt);
    if write {
        conn.execute_batch("ROLLBACK")?;
    }
    Ok(us)
}

/// The INSERT of the store path (and, without `mailbox`, of the raw reference).
const MAILBOX_INSERT: &str = "INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, \
                              stored_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

/// Times each statement of the store path (the SQL of rhizo-store's `mailbox_store_batch`:
/// `Probe::read`, the INSERT, `purge_some`) on the databases `rhizo_group_rate` and `raw_rate`
/// filled in `dir`, for `probes` (new envelopes): µs per statement.
fn statement_costs(dir: &Path, probes: &[Record]) -> anyhow::Result<StatementCosts> {
    let conn = Connection::open(dir.join("rhizo.db"))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let statements: [Timed; 4] = [
        (
            "per envelope, probe: tombstone, duplicate, usage counters (one SELECT)",
            "SELECT
               EXISTS (SELECT 1 FROM mailbox_tombstones
                       WHERE recipient_uid = ?1 AND digest = ?2 AND expires_at > ?4),
               (SELECT expires_at FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2),
               coalesce((SELECT envelopes FROM mailbox_usage_by_recipient
                         WHERE recipient_uid = ?1), 0),
               coalesce((SELECT bytes FROM mailbox_usage_by_recipient WHERE recipient_uid = ?1),
                        0),
               coalesce((SELECT envelopes FROM mailbox_usage_by_sender WHERE sender_uid = ?3), 0),
               coalesce((SELECT bytes FROM mailbox_usage_by_sender WHERE sender_uid = ?3), 0)",
            Bind::Probe,
            false,
            "",
        ),
        (
            "per envelope, INSERT (unique + 2 indexes) with the usage-counter triggers",
            MAILBOX_INSERT,
            Bind::Insert,
            true,
            "",
        ),
        (
            "per envelope, the same INSERT without the triggers",
            MAILBOX_INSERT,
            Bind::Insert,
            true,
            "DROP TRIGGER mailbox_usage_on_insert",
        ),
        (
            "per group, purge of expired entries (expiry index; none expired)",
            "DELETE FROM mailbox WHERE id IN
               (SELECT id FROM mailbox WHERE expires_at <= ?1 ORDER BY expires_at LIMIT ?2)",
            Bind::Purge,
            true,
            "",
        ),
    ];
    let mut out = Vec::with_capacity(statements.len() + 2);
    let mut plans = Vec::with_capacity(statements.len());
    for timed in statements {
        plans.push((timed.0.to_string(), query_plan(&conn, timed.1)?));
        out.push((timed.0.to_string(), time_statement(&conn, timed, probes)?));
    }
    let start = Instant::now();
    for _ in probes {
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
    }
    out.push((
        "per group, BEGIN IMMEDIATE … COMMIT, nothing written".to_string(),
        start.elapsed().as_secs_f64() * 1e6 / probes.len().max(1) as f64,
    ));
    let raw = Connection::open(dir.join("raw.db"))?;
    out.push((
        "raw INSERT into a plain table".to_string(),
        time_statement(
            &raw,
            (
                "raw",
                "INSERT INTO records (recipient, sender, digest, envelope, stored_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                Bind::Insert,
                true,
                "",
            ),
            probes,
        )?,
    ));
    Ok((out, plans))
}

/// Timings (µs) and query plans of [`statement_costs`].
type StatementCosts = (Vec<(String, f64)>, Vec<(String, String)>);

/// `EXPLAIN QUERY PLAN` of `sql`, its detail lines joined with "; ".
fn query_plan(conn: &Connection, sql: &str) -> anyhow::Result<String> {
    let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
    let count = stmt.parameter_count();
    let nulls: Vec<rusqlite::types::Null> = vec![rusqlite::types::Null; count];
    let details: Vec<String> = stmt
        .query_map(rusqlite::params_from_iter(nulls), |row| {
            row.get::<_, String>(3)
        })?
        .collect::<Result<_, _>>()?;
    Ok(details.join("; "))
}

/// One round's measurements (see [`one_round`]).
struct Round {
    sample: B8Sample,
    /// Per quarter of the grouped run.
    quarters: Vec<f64>,
    /// The replica writer's (commits, stores).
    replica_counts: (u64, u64),
    /// Bytes written per envelope: (rhizo grouped, raw grouped, rhizo single, raw single).
    write_bytes: (f64, f64, f64, f64),
}

/// Every rate once, in `dir`, one after the other.
fn one_round(dir: &Path, grouped: &[Record], single: &[Record]) -> anyhow::Result<Round> {
    let per = |bytes: u64, n: usize| bytes as f64 / n.max(1) as f64;
    let written = written_bytes();
    let (rhizo_group, quarters) = rhizo_group_rate(dir, grouped)?;
    let rhizo_group_bytes = written_bytes().saturating_sub(written);
    let written = written_bytes();
    let raw_group = raw_rate(&dir.join("raw.db"), grouped, GROUP)?;
    let raw_group_bytes = written_bytes().saturating_sub(written);
    let written = written_bytes();
    let rhizo_single = rhizo_single_rate(dir, single)?;
    let rhizo_single_bytes = written_bytes().saturating_sub(written);
    let written = written_bytes();
    let raw_single = raw_rate(&dir.join("raw-single.db"), single, 1)?;
    let raw_single_bytes = written_bytes().saturating_sub(written);
    let raw_indexed_group = raw_rate_into(
        &dir.join("raw-indexed.db"),
        grouped,
        GROUP,
        RawTable::MailboxIndexes,
    )?;
    let (replica, commits, stores) = replica_rate(dir, grouped)?;
    Ok(Round {
        sample: B8Sample {
            rhizo_group,
            raw_group,
            rhizo_single,
            raw_single,
            raw_indexed_group,
            replica,
        },
        quarters,
        replica_counts: (commits, stores),
        write_bytes: (
            per(rhizo_group_bytes, grouped.len()),
            per(raw_group_bytes, grouped.len()),
            per(rhizo_single_bytes, single.len()),
            per(raw_single_bytes, single.len()),
        ),
    })
}

/// Runs B8: 8192 envelopes in groups and 2000 one per transaction (256 and 100 when quick),
/// 3 interleaved rounds (1 when quick).
pub fn run_b8(quick: bool) -> anyhow::Result<B8Result> {
    let n_group = if quick { 4 * GROUP } else { 128 * GROUP };
    let n_single = if quick { 100 } else { 2000 };
    let rounds = if quick { 1 } else { 3 };
    let probes_n = if quick { 20 } else { 200 };
    let mut grouped = envelopes(n_group + probes_n)?;
    let probes = grouped.split_off(n_group);
    let single = &grouped[..n_single.min(n_group)];
    let envelope_bytes = grouped.iter().map(|r| r.0.len()).sum::<usize>() / grouped.len().max(1);
    let mut samples = Vec::with_capacity(rounds);
    let mut quarters = Vec::new();
    let mut replica_counts = (0, 0);
    let mut write_bytes = (0.0, 0.0, 0.0, 0.0);
    for round in 0..rounds {
        let dir = tempfile::Builder::new().prefix("rhizo-bench-").tempdir()?;
        let measured = one_round(dir.path(), &grouped, single)?;
        if round == 0 {
            quarters = measured.quarters;
            replica_counts = measured.replica_counts;
            write_bytes = measured.write_bytes;
        }
        samples.push(measured.sample);
    }
    let (tmpfs, (statement_us, query_plans)) = if Path::new("/dev/shm").is_dir() {
        let dir = tempfile::Builder::new()
            .prefix("rhizo-bench-")
            .tempdir_in("/dev/shm")?;
        let sample = one_round(dir.path(), &grouped, single)?.sample;
        (Some(sample), statement_costs(dir.path(), &probes)?)
    } else {
        (None, (Vec::new(), Vec::new()))
    };
    let pick = |f: fn(&B8Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    Ok(B8Result {
        n_group,
        n_single: single.len(),
        group: GROUP,
        envelope_bytes,
        rounds,
        median: B8Sample {
            rhizo_group: pick(|s| s.rhizo_group),
            raw_group: pick(|s| s.raw_group),
            rhizo_single: pick(|s| s.rhizo_single),
            raw_single: pick(|s| s.raw_single),
            raw_indexed_group: pick(|s| s.raw_indexed_group),
            replica: pick(|s| s.replica),
        },
        samples,
        rhizo_group_quarters: quarters,
        replica_commits: replica_counts.0,
        replica_stores: replica_counts.1,
        tmpfs,
        write_bytes_per_envelope: write_bytes,
        statement_us,
        query_plans,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_about_one_kib_and_decode() {
        let list = envelopes(3).unwrap();
        for (bytes, _, _, _) in &list {
            assert!((ENVELOPE_BYTES - 8..=ENVELOPE_BYTES + 8).contains(&bytes.len()));
            SecureMessage::decode(bytes).unwrap();
        }
        assert_ne!(list[0].0, list[1].0);
    }
}
