//! B8: durable mailbox ingest.
//!
//! N real envelopes of ~1 KiB (signed `SecureMessage`s, 16 senders × 64 recipients so the
//! default quotas hold) go into `rhizo_store::Store::mailbox_store`, one call each, on a fresh
//! database in `$TMPDIR` (WAL, `synchronous = FULL`, as the node opens it). Each call is one
//! durable transaction (expired-entry purge, tombstone and duplicate check, quota check,
//! insert), committed before it returns, as a replica must before acknowledging.
//!
//! The reference, in the same run on the same disk with the same records: raw SQLite (rusqlite,
//! WAL + `synchronous = FULL`) with one INSERT per transaction (the honest per-message durable
//! baseline), and batched inserts (100 per transaction, the group-commit ceiling). Rounds are
//! interleaved; each figure is the median over rounds.
//!
//! Diagnostics (why the ratio is what it is): the rate per quarter of the run (does the cost
//! grow as the mailbox fills?), bytes written per call (`wchar`: WAL frames), both rates again
//! on tmpfs (no fsync: the CPU cost alone), and each statement of a `mailbox_store` call timed
//! alone on the filled database.

use std::{path::Path, time::Instant};

use rhizo_core::{
    DeviceKey, RootKey,
    envelope::{MessageType, SecureMessage, SessionId, envelope_digest},
};
use rhizo_store::{
    Store,
    mailbox::{MailboxQuota, NewMailboxEntry},
};
use rusqlite::{Connection, params};
use serde::Serialize;

use crate::median;
use crate::report::{Row, Target};

/// Target size of one envelope.
pub const ENVELOPE_BYTES: usize = 1024;
/// Inserts per transaction in the batched baseline.
pub const BATCH: usize = 100;
/// Distinct senders.
const SENDERS: usize = 16;
/// Distinct recipients.
const RECIPIENTS: usize = 64;
/// A week, in ms (the mailbox TTL).
const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;

/// B8's figures.
#[derive(Debug, Clone, Serialize)]
pub struct B8Result {
    /// Envelopes per run.
    pub n: usize,
    /// Mean envelope size.
    pub envelope_bytes: usize,
    /// Interleaved rounds.
    pub rounds: usize,
    /// `Store::mailbox_store` envelopes/s (median over rounds).
    pub rhizo_per_s: f64,
    /// Raw SQLite, one INSERT per transaction.
    pub raw_one_per_txn_per_s: f64,
    /// Raw SQLite, [`BATCH`] INSERTs per transaction.
    pub raw_batched_per_s: f64,
    /// Every round's figures: (rhizo, raw, batched).
    pub samples: Vec<(f64, f64, f64)>,
    /// `mailbox_store` envelopes/s in each quarter of the run (first round): whether the cost
    /// grows as the mailbox fills.
    pub rhizo_quarters: Vec<f64>,
    /// Diagnostic: `mailbox_store` on tmpfs (no fsync cost), envelopes/s.
    pub rhizo_tmpfs_per_s: Option<f64>,
    /// Diagnostic: raw SQLite, one INSERT per transaction, on tmpfs.
    pub raw_tmpfs_per_s: Option<f64>,
    /// Diagnostic: bytes written (`wchar` of /proc/self/io: the WAL and any checkpoint) per
    /// `mailbox_store` call, first round.
    pub rhizo_write_bytes_per_call: f64,
    /// The same per raw single-INSERT transaction.
    pub raw_write_bytes_per_call: f64,
    /// Diagnostic: the CPU cost of each statement of one `mailbox_store` call on the filled
    /// tmpfs database (µs, mean over probes), and of the raw INSERT.
    pub statement_us: Vec<(String, f64)>,
    /// SQLite's `EXPLAIN QUERY PLAN` of each timed statement (bundled SQLite, filled database).
    pub query_plans: Vec<(String, String)>,
}

impl B8Result {
    /// The report rows.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![
            Row::new(
                "B8",
                "mailbox_store, ~1 KiB envelopes, durable",
                self.rhizo_per_s,
                "msg/s",
            )
            .reference("raw SQLite 1 INSERT/txn (FULL)", self.raw_one_per_txn_per_s)
            .target(Target::ratio_at_least(0.7)),
            Row::new(
                "B8",
                "mailbox_store vs group-commit ceiling",
                self.rhizo_per_s,
                "msg/s",
            )
            .reference(
                format!("raw SQLite {BATCH} INSERTs/txn"),
                self.raw_batched_per_s,
            )
            .note(
                "the group-commit ceiling batches 100 envelopes per fsync, which a replica \
                 cannot do without delaying its acknowledgements",
            ),
        ];
        if let (Some(first), Some(last)) = (self.rhizo_quarters.first(), self.rhizo_quarters.last())
        {
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: mailbox_store, last quarter of the run",
                    *last,
                    "msg/s",
                )
                .reference("first quarter", *first),
            );
        }
        if let (Some(rhizo), Some(raw)) = (self.rhizo_tmpfs_per_s, self.raw_tmpfs_per_s) {
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: mailbox_store on tmpfs (no fsync)",
                    rhizo,
                    "msg/s",
                )
                .reference("raw SQLite 1 INSERT/txn on tmpfs", raw)
                .note(
                    "diagnostic: the same on /dev/shm, where fsync costs nothing: what is left \
                     is the CPU cost of the statements of each call",
                ),
            );
        }
        if self.raw_write_bytes_per_call > 0.0 {
            rows.push(
                Row::new(
                    "B8",
                    "diagnostic: bytes written per mailbox_store call (WAL)",
                    self.rhizo_write_bytes_per_call / 1024.0,
                    "KiB",
                )
                .reference(
                    "per raw 1-INSERT transaction",
                    self.raw_write_bytes_per_call / 1024.0,
                ),
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
            let mut row = Row::new("B8", format!("diagnostic: per call, {name}"), *us, "µs");
            if let Some(raw) = raw_insert {
                row = row.reference("raw INSERT into a plain table", raw);
            }
            rows.push(row.note(
                "diagnostic: each statement of mailbox_store's transaction timed alone on the \
                 filled tmpfs database (mean over 200 new envelopes; writes rolled back)",
            ));
        }
        rows
    }
}

/// An encoded envelope with its sender's and recipient's UIDs.
pub type Record = (Vec<u8>, [u8; 32], [u8; 32]);

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
                timestamp: 1_700_000_000_000 + i as u64,
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
            let (root, _) = &senders[i % SENDERS];
            Ok((
                m.encode(),
                *root.public().uid().as_bytes(),
                recipients[i % RECIPIENTS],
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

/// Envelopes per second through `Store::mailbox_store` into a fresh database in `dir`, overall
/// and per quarter of the run.
fn rhizo_rate(dir: &Path, records: &[Record]) -> anyhow::Result<(f64, Vec<f64>)> {
    let mut store = Store::open(&dir.join("rhizo.db"))?;
    let quota = MailboxQuota::default();
    let now = now_ms();
    let start = Instant::now();
    let quarter = records.len().div_ceil(4).max(1);
    let mut quarters = Vec::with_capacity(4);
    let mut mark = start;
    for (i, (envelope, sender, recipient)) in records.iter().enumerate() {
        store.mailbox_store(
            &NewMailboxEntry {
                recipient_uid: *recipient,
                sender_uid: *sender,
                digest: envelope_digest(envelope),
                envelope,
                expires_at: now + WEEK_MS,
            },
            &quota,
            now,
        )?;
        if (i + 1) % quarter == 0 || i + 1 == records.len() {
            let done = (i % quarter) + 1;
            quarters.push(done as f64 / mark.elapsed().as_secs_f64());
            mark = Instant::now();
        }
    }
    Ok((
        records.len() as f64 / start.elapsed().as_secs_f64(),
        quarters,
    ))
}

/// A fresh raw SQLite database with the node's pragmas and a plain table.
fn raw_db(path: &Path) -> anyhow::Result<Connection> {
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
    Ok(conn)
}

/// Records per second into a raw database, `per_txn` INSERTs per transaction.
fn raw_rate(path: &Path, records: &[Record], per_txn: usize) -> anyhow::Result<f64> {
    let mut conn = raw_db(path)?;
    let now = now_ms();
    let start = Instant::now();
    for chunk in records.chunks(per_txn.max(1)) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO records (recipient, sender, digest, envelope, stored_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (envelope, sender, recipient) in chunk {
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
            (v, [1; 32], [2; 32])
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
    /// `(now, recipient, sender)`.
    Purge,
    /// `(recipient, digest, now)`.
    Lookup,
    /// `(uid, now)` with the recipient's UID.
    ByRecipient,
    /// `(uid, now)` with the sender's UID.
    BySender,
    /// The six columns of an INSERT.
    Insert,
}

/// Mean µs of `sql` over `probes`; `write` statements run in one transaction that is rolled
/// back.
fn time_statement(
    conn: &Connection,
    sql: &str,
    probes: &[Record],
    bind: Bind,
    write: bool,
) -> anyhow::Result<f64> {
    let now = now_ms();
    if write {
        conn.execute_batch("BEGIN IMMEDIATE")?;
    }
    let mut stmt = conn.prepare(sql)?;
    let start = Instant::now();
    for (envelope, sender, recipient) in probes {
        let digest = envelope_digest(envelope);
        let mut rows = match bind {
            Bind::Purge => stmt.query(params![now, &recipient[..], &sender[..]])?,
            Bind::Lookup => stmt.query(params![&recipient[..], &digest[..], now])?,
            Bind::ByRecipient => stmt.query(params![&recipient[..], now])?,
            Bind::BySender => stmt.query(params![&sender[..], now])?,
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

/// Times each statement of one `mailbox_store` call (the SQL of rhizo-store's
/// `mailbox_store`, `known_outcome` and `check_quota`) on the databases `rhizo_rate` and
/// `raw_rate` filled in `dir`, for `probes` (new envelopes): µs per statement.
fn statement_costs(dir: &Path, probes: &[Record]) -> anyhow::Result<StatementCosts> {
    let conn = Connection::open(dir.join("rhizo.db"))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    let statements: [(&str, &str, Bind, bool); 6] = [
        (
            "purge expired (DELETE … recipient OR sender)",
            "DELETE FROM mailbox WHERE expires_at <= ?1 AND (recipient_uid = ?2 OR sender_uid = ?3)",
            Bind::Purge,
            true,
        ),
        (
            "tombstone check",
            "SELECT 1 FROM mailbox_tombstones WHERE recipient_uid = ?1 AND digest = ?2 \
             AND expires_at > ?3",
            Bind::Lookup,
            false,
        ),
        (
            "duplicate check",
            "SELECT 1 FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2 AND expires_at > ?3",
            Bind::Lookup,
            false,
        ),
        (
            "quota by recipient (count, sum of lengths)",
            "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM mailbox \
             WHERE recipient_uid = ?1 AND expires_at > ?2",
            Bind::ByRecipient,
            false,
        ),
        (
            "quota by sender (count, sum of lengths)",
            "SELECT count(*), coalesce(sum(length(envelope)), 0) FROM mailbox \
             WHERE sender_uid = ?1 AND expires_at > ?2",
            Bind::BySender,
            false,
        ),
        (
            "INSERT (unique + 3 indexes)",
            "INSERT INTO mailbox (recipient_uid, sender_uid, digest, envelope, stored_at, \
             expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            Bind::Insert,
            true,
        ),
    ];
    let mut out = Vec::with_capacity(statements.len() + 2);
    let mut plans = Vec::with_capacity(statements.len());
    for (name, sql, bind, write) in statements {
        plans.push((name.to_string(), query_plan(&conn, sql)?));
        out.push((
            name.to_string(),
            time_statement(&conn, sql, probes, bind, write)?,
        ));
    }
    let start = Instant::now();
    for _ in probes {
        conn.execute_batch("BEGIN IMMEDIATE; COMMIT;")?;
    }
    out.push((
        "BEGIN IMMEDIATE … COMMIT, nothing written".to_string(),
        start.elapsed().as_secs_f64() * 1e6 / probes.len().max(1) as f64,
    ));
    let raw = Connection::open(dir.join("raw.db"))?;
    out.push((
        "raw INSERT into a plain table".to_string(),
        time_statement(
            &raw,
            "INSERT INTO records (recipient, sender, digest, envelope, stored_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            probes,
            Bind::Insert,
            true,
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

/// Runs B8: N = 2000 (100 when quick), 3 interleaved rounds (1 when quick).
pub fn run_b8(quick: bool) -> anyhow::Result<B8Result> {
    let n = if quick { 100 } else { 2000 };
    let rounds = if quick { 1 } else { 3 };
    let probes_n = if quick { 20 } else { 200 };
    let mut records = envelopes(n + probes_n)?;
    let probes = records.split_off(n);
    let envelope_bytes = records.iter().map(|r| r.0.len()).sum::<usize>() / records.len().max(1);
    let mut samples = Vec::with_capacity(rounds);
    let mut rhizo_quarters = Vec::new();
    let (mut rhizo_write, mut raw_write) = (0.0, 0.0);
    for round in 0..rounds {
        let dir = tempfile::Builder::new().prefix("rhizo-bench-").tempdir()?;
        let written = written_bytes();
        let (rhizo, quarters) = rhizo_rate(dir.path(), &records)?;
        let rhizo_bytes = written_bytes().saturating_sub(written);
        let written = written_bytes();
        let raw = raw_rate(&dir.path().join("raw.db"), &records, 1)?;
        let raw_bytes = written_bytes().saturating_sub(written);
        if round == 0 {
            rhizo_quarters = quarters;
            rhizo_write = rhizo_bytes as f64 / n as f64;
            raw_write = raw_bytes as f64 / n as f64;
        }
        let batched = raw_rate(&dir.path().join("batched.db"), &records, BATCH)?;
        samples.push((rhizo, raw, batched));
    }
    let (rhizo_tmpfs_per_s, raw_tmpfs_per_s, (statement_us, query_plans)) =
        if Path::new("/dev/shm").is_dir() {
            let dir = tempfile::Builder::new()
                .prefix("rhizo-bench-")
                .tempdir_in("/dev/shm")?;
            let rhizo = rhizo_rate(dir.path(), &records)?.0;
            let raw = raw_rate(&dir.path().join("raw.db"), &records, 1)?;
            let costs = statement_costs(dir.path(), &probes)?;
            (Some(rhizo), Some(raw), costs)
        } else {
            (None, None, (Vec::new(), Vec::new()))
        };
    let pick = |f: fn(&(f64, f64, f64)) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
    Ok(B8Result {
        n,
        envelope_bytes,
        rounds,
        rhizo_per_s: pick(|s| s.0),
        raw_one_per_txn_per_s: pick(|s| s.1),
        raw_batched_per_s: pick(|s| s.2),
        samples,
        rhizo_quarters,
        rhizo_tmpfs_per_s,
        raw_tmpfs_per_s,
        rhizo_write_bytes_per_call: rhizo_write,
        raw_write_bytes_per_call: raw_write,
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
        for (bytes, _, _) in &list {
            assert!((ENVELOPE_BYTES - 8..=ENVELOPE_BYTES + 8).contains(&bytes.len()));
            SecureMessage::decode(bytes).unwrap();
        }
        assert_ne!(list[0].0, list[1].0);
    }
}
