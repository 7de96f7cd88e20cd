//! Commit ordering for groups without a server: in each epoch, the valid commit with the
//! smallest [`OrderKey`] wins — first whether its sender already opened
//! [`MAX_RECENT_OPENINGS`] of the epochs before (such a sender loses every tie: grinding commit
//! ids or backdating wins a bounded share of epochs), then the commit's time span (its
//! sender's clock, carried in its authenticated data, in spans of [`COMMIT_TIME_SPAN_SECS`]: a
//! commit made on a stale epoch minutes after a competitor loses to it), then the smallest
//! commit id. The key is a function of the
//! two commits and of the chain below their epoch, which every member that can compare them
//! shares, so every member picks the same winner whatever it saw first. Kept: the commit
//! applied in each recent epoch with its time and sender (`e2e_group_applied`) and a copy of
//! the group's openmls rows from before it (`e2e_group_snapshots`), so that a late commit with
//! a smaller key can replace the applied one by restoring the copy and processing it on top.
//!
//! What a copy holds: every openmls row keyed by the group id (group data: tree, context,
//! message and epoch secrets, state; the epoch encryption key pairs — our leaf's and those of
//! our path —; our own leaf nodes; queued proposals). openmls keeps a group's private keys
//! only there (its standalone `openmls_encryption_keys` rows are for KeyPackages and
//! standalone update proposals, which rhizo does not use). Copies hold epoch secrets, so they are deleted (secure delete is on) as soon as they
//! leave the [`ROLLBACK_EPOCHS`] window.
//!
//! Size: the ratchet tree is 96 % of a copy. rhizo's store codec writes it (and the other
//! large openmls values) with postcard, about its TLS size, mostly key material that does not
//! compress: such values ([`BINARY_TAG`](crate::store::BINARY_TAG)) are copied as they are.
//! JSON values larger than [`PACK_MIN_BYTES`] (rows an older build wrote, where a byte array
//! is decimal numbers, about 3.7 × its size) are stored deflated (prefix [`PACKED`]), which
//! takes them back to about their binary size (numbers in docs/protocol.md, "Commit
//! ordering"). Deflating the postcard values too was the largest cost of processing a commit
//! at 1,000 devices once openmls kept fewer past epochs, and a raw copy (1.52 MB at 1,000) is
//! already smaller than the deflated JSON was (2.44 MB).

use rhizo_core::group::{COMMIT_TIME_SPAN_SECS, MAX_RECENT_OPENINGS, ROLLBACK_EPOCHS};
use rusqlite::{Connection, OptionalExtension, params};

use crate::E2eError;

/// The openmls tables keyed by `group_id`, with their columns (at most five).
const GROUP_TABLES: [(&str, &str); 4] = [
    (
        "openmls_group_data",
        "provider_version, group_id, data_type, group_data",
    ),
    (
        "openmls_epoch_keys_pairs",
        "provider_version, group_id, epoch_id, leaf_index, key_pairs",
    ),
    (
        "openmls_own_leaf_nodes",
        "provider_version, id, group_id, leaf_node",
    ),
    (
        "openmls_proposals",
        "provider_version, group_id, proposal_ref, proposal",
    ),
];

/// Snapshot values larger than this are stored deflated, unless they are postcard.
const PACK_MIN_BYTES: usize = 4096;

/// Prefix of a deflated snapshot value (an openmls JSON value never starts with NUL).
const PACKED: &[u8] = b"\0rz1";

/// Deflate level: fast (level 1 already removes most of JSON's redundancy).
const PACK_LEVEL: u8 = 1;

/// Largest value a packed snapshot value may inflate to (a 4,096-device tree is ~25 MB JSON).
const MAX_UNPACKED_BYTES: usize = 64 * 1024 * 1024;

/// `c0, c1, …` for `n` columns.
fn slots(columns: &str) -> String {
    (0..columns.split(',').count())
        .map(|i| format!("c{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How openmls' SQLite storage keys a group's rows: the codec's (JSON) encoding of its id.
pub(super) fn storage_key(group_id: &openmls::prelude::GroupId) -> Result<Vec<u8>, E2eError> {
    serde_json::to_vec(group_id).map_err(E2eError::mls)
}

/// Copies the group's rows (`mls_key`: openmls' key of the group) as the snapshot of `epoch`,
/// replacing an older copy of that epoch.
pub(super) fn snapshot(
    conn: &Connection,
    group_id: &[u8],
    mls_key: &[u8],
    epoch: u64,
) -> Result<(), E2eError> {
    conn.execute(
        "DELETE FROM e2e_group_snapshots WHERE group_id = ?1 AND epoch = ?2",
        params![group_id, epoch],
    )?;
    for (table, columns) in GROUP_TABLES {
        conn.execute(
            &format!(
                "INSERT INTO e2e_group_snapshots (group_id, epoch, tbl, seq, {slots})
                 SELECT ?1, ?2, '{table}', rowid, {columns} FROM {table} WHERE group_id = ?3",
                slots = slots(columns)
            ),
            params![group_id, epoch, mls_key],
        )?;
    }
    pack(conn, group_id, epoch)
}

/// The name of the value (last) column of an openmls table, and its snapshot slot.
fn value_column(columns: &str) -> (&str, String) {
    let names: Vec<&str> = columns.split(',').map(str::trim).collect();
    let last = names.last().copied().unwrap_or_default();
    (last, format!("c{}", names.len().saturating_sub(1)))
}

/// Deflates the large JSON values of the snapshot of `epoch` (postcard ones stay as they are).
fn pack(conn: &Connection, group_id: &[u8], epoch: u64) -> Result<(), E2eError> {
    let binary = [crate::store::BINARY_TAG];
    for (table, columns) in GROUP_TABLES {
        let (_, slot) = value_column(columns);
        let mut select = conn.prepare(&format!(
            "SELECT seq, {slot} FROM e2e_group_snapshots WHERE group_id = ?1 AND epoch = ?2
             AND tbl = '{table}' AND typeof({slot}) = 'blob' AND length({slot}) > ?3
             AND substr({slot}, 1, 1) != ?4"
        ))?;
        let large = select
            .query_map(params![group_id, epoch, PACK_MIN_BYTES, binary], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (seq, value) in large {
            let mut packed = PACKED.to_vec();
            packed.extend(miniz_oxide::deflate::compress_to_vec(&value, PACK_LEVEL));
            conn.execute(
                &format!(
                    "UPDATE e2e_group_snapshots SET {slot} = ?1 WHERE group_id = ?2 AND epoch = ?3
                     AND tbl = '{table}' AND seq = ?4"
                ),
                params![packed, group_id, epoch, seq],
            )?;
        }
    }
    Ok(())
}

/// Inflates the values [`pack`] deflated in the group's restored openmls rows.
fn unpack(conn: &Connection, mls_key: &[u8]) -> Result<(), E2eError> {
    for (table, columns) in GROUP_TABLES {
        let (column, _) = value_column(columns);
        let mut select = conn.prepare(&format!(
            "SELECT {column} FROM {table} WHERE group_id = ?1 AND typeof({column}) = 'blob'
             AND substr({column}, 1, {len}) = ?2",
            len = PACKED.len()
        ))?;
        let packed = select
            .query_map(params![mls_key, PACKED], |row| row.get::<_, Vec<u8>>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for value in packed {
            let body = value.get(PACKED.len()..).unwrap_or_default();
            let plain =
                miniz_oxide::inflate::decompress_to_vec_with_limit(body, MAX_UNPACKED_BYTES)
                    .map_err(|_| E2eError::Malformed("rollback snapshot"))?;
            conn.execute(
                &format!("UPDATE {table} SET {column} = ?1 WHERE group_id = ?2 AND {column} = ?3"),
                params![plain, mls_key, value],
            )?;
        }
    }
    Ok(())
}

/// Whether a snapshot of `epoch` exists.
pub(super) fn has_snapshot(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
) -> Result<bool, E2eError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM e2e_group_snapshots WHERE group_id = ?1 AND epoch = ?2 LIMIT 1",
            params![group_id, epoch],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Replaces the group's openmls rows with the snapshot of `epoch` (which stays); the rows of
/// the abandoned branch (its epoch secrets and key pairs among them) are deleted.
pub(super) fn restore(
    conn: &Connection,
    group_id: &[u8],
    mls_key: &[u8],
    epoch: u64,
) -> Result<(), E2eError> {
    for (table, columns) in GROUP_TABLES {
        conn.execute(
            &format!("DELETE FROM {table} WHERE group_id = ?1"),
            [mls_key],
        )?;
        conn.execute(
            &format!(
                "INSERT INTO {table} ({columns}) SELECT {slots} FROM e2e_group_snapshots
                 WHERE group_id = ?1 AND epoch = ?2 AND tbl = '{table}' ORDER BY seq",
                slots = slots(columns)
            ),
            params![group_id, epoch],
        )?;
    }
    unpack(conn, mls_key)
}

/// Version byte of the authenticated data of a rhizo group commit: `[1] ‖ made_at (u64 BE)`.
const AAD_VERSION: u8 = 1;

/// The authenticated data an own group commit carries: when it was made (unix seconds).
pub(super) fn commit_aad(made_at: u64) -> Vec<u8> {
    let mut aad = vec![AAD_VERSION];
    aad.extend_from_slice(&made_at.to_be_bytes());
    aad
}

/// When a commit was made, from its authenticated data (`None`: not a rhizo commit time).
pub(super) fn made_at(aad: &[u8]) -> Option<u64> {
    match aad {
        [AAD_VERSION, rest @ ..] => rest.try_into().ok().map(u64::from_be_bytes),
        _ => None,
    }
}

/// One commit competing for an epoch: its id, time and sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Competitor {
    /// SHA-256 of the serialized commit.
    pub(super) id: [u8; 32],
    /// When it was made (its authenticated data); `None` sorts last.
    pub(super) made_at: Option<u64>,
    /// The sender's UID (`None`: unknown, never demoted).
    pub(super) sender: Option<[u8; 32]>,
}

/// The order of commits competing for one epoch: the smallest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct OrderKey {
    demoted: bool,
    span: u64,
    id: [u8; 32],
}

/// The ordering key of `commit` for `epoch`: its time span, whether its sender opened
/// [`MAX_RECENT_OPENINGS`] of the [`ROLLBACK_EPOCHS`] epochs before (from the applied commits
/// below `epoch`, the chain every member comparing at `epoch` shares), its id.
pub(super) fn order_key(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
    commit: &Competitor,
) -> Result<OrderKey, E2eError> {
    let demoted = match &commit.sender {
        Some(sender) => {
            let openings: u64 = conn.query_row(
                "SELECT COUNT(*) FROM e2e_group_applied WHERE group_id = ?1 AND epoch < ?2
                 AND epoch >= ?3 AND sender = ?4",
                params![
                    group_id,
                    epoch,
                    epoch.saturating_sub(ROLLBACK_EPOCHS),
                    sender.as_slice()
                ],
                |row| row.get(0),
            )?;
            openings >= MAX_RECENT_OPENINGS
        }
        None => false,
    };
    Ok(OrderKey {
        demoted,
        span: commit
            .made_at
            .map_or(u64::MAX, |t| t / COMMIT_TIME_SPAN_SECS),
        id: commit.id,
    })
}

/// The commit applied in `epoch`, if one is recorded.
pub(super) fn applied(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
) -> Result<Option<Competitor>, E2eError> {
    let row = conn
        .query_row(
            "SELECT commit_id, made_at, sender FROM e2e_group_applied
             WHERE group_id = ?1 AND epoch = ?2",
            params![group_id, epoch],
            |row| {
                let id: Vec<u8> = row.get(0)?;
                let made_at: Option<u64> = row.get(1)?;
                let sender: Option<Vec<u8>> = row.get(2)?;
                Ok(id.try_into().ok().map(|id| Competitor {
                    id,
                    made_at,
                    sender: sender.and_then(|s| s.try_into().ok()),
                }))
            },
        )
        .optional()?;
    Ok(row.flatten())
}

/// Records that `commit` was applied in `epoch`: drops what was recorded for later epochs
/// (a rollback abandoned them) and whatever left the window (the group is now at `epoch + 1`):
/// snapshots after [`ROLLBACK_EPOCHS`], applied commits after twice that (the senders of the
/// epochs below the oldest one still reordered give its [`order_key`]).
pub(super) fn record_applied(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
    commit: &Competitor,
) -> Result<(), E2eError> {
    conn.execute(
        "INSERT OR REPLACE INTO e2e_group_applied (group_id, epoch, commit_id, made_at, sender)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            group_id,
            epoch,
            commit.id.as_slice(),
            commit.made_at,
            commit.sender.as_ref().map(|s| s.as_slice())
        ],
    )?;
    let next = epoch.saturating_add(1);
    for (table, kept) in [
        ("e2e_group_applied", ROLLBACK_EPOCHS.saturating_mul(2)),
        ("e2e_group_snapshots", ROLLBACK_EPOCHS),
    ] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE group_id = ?1 AND (epoch > ?2 OR epoch < ?3)"),
            params![group_id, epoch, next.saturating_sub(kept)],
        )?;
    }
    Ok(())
}

/// Deletes all ordering state of a group (it was left or replaced).
pub(super) fn forget(conn: &Connection, group_id: &[u8]) -> Result<(), E2eError> {
    for table in ["e2e_group_applied", "e2e_group_snapshots"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE group_id = ?1"),
            [group_id],
        )?;
    }
    Ok(())
}

/// How many snapshots the group keeps (tests check the window).
#[cfg(test)]
pub(super) fn snapshot_epochs(conn: &Connection, group_id: &[u8]) -> Result<Vec<u64>, E2eError> {
    let mut statement = conn.prepare(
        "SELECT DISTINCT epoch FROM e2e_group_snapshots WHERE group_id = ?1 ORDER BY epoch",
    )?;
    let epochs = statement
        .query_map([group_id], |row| row.get(0))?
        .collect::<Result<Vec<u64>, _>>()?;
    Ok(epochs)
}
