//! Commit ordering for groups without a server (spec: "in each epoch, the valid commit with the
//! smallest commit_id wins"): the id of the commit applied in each recent epoch
//! (`e2e_group_applied`) and a copy of the group's openmls rows from before it
//! (`e2e_group_snapshots`), so that a late commit with a smaller id can replace the applied one
//! by restoring the copy and processing the late commit on top.
//!
//! What a copy holds: every openmls row keyed by the group id (group data: tree, context,
//! message and epoch secrets, state; the epoch encryption key pairs — our leaf's and those of
//! our path —; our own leaf nodes; queued proposals). openmls keeps a group's private keys
//! only there (its standalone `openmls_encryption_keys` rows are for KeyPackages and
//! standalone update proposals, which rhizo does not use). Copies hold epoch secrets, so they are deleted (secure delete is on) as soon as they
//! leave the [`ROLLBACK_EPOCHS`] window.
//!
//! Size: openmls stores the ratchet tree as serde JSON (a byte array as decimal numbers, about
//! 3.7 × its TLS size), 96 % of a copy; a copy was 430 KB at 64 devices and 5.7 MB at 1,000.
//! Values larger than [`PACK_MIN_BYTES`] are stored deflated (prefix [`PACKED`]), which takes
//! a copy back to about its binary size (numbers in docs/protocol.md, "Commit ordering").

use rhizo_core::group::ROLLBACK_EPOCHS;
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

/// Snapshot values larger than this are stored deflated.
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

/// Deflates the large values of the snapshot of `epoch`.
fn pack(conn: &Connection, group_id: &[u8], epoch: u64) -> Result<(), E2eError> {
    for (table, columns) in GROUP_TABLES {
        let (_, slot) = value_column(columns);
        let mut select = conn.prepare(&format!(
            "SELECT seq, {slot} FROM e2e_group_snapshots WHERE group_id = ?1 AND epoch = ?2
             AND tbl = '{table}' AND typeof({slot}) = 'blob' AND length({slot}) > ?3"
        ))?;
        let large = select
            .query_map(params![group_id, epoch, PACK_MIN_BYTES], |row| {
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

/// The commit applied in `epoch`, if one is recorded.
pub(super) fn applied(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
) -> Result<Option<[u8; 32]>, E2eError> {
    let id: Option<Vec<u8>> = conn
        .query_row(
            "SELECT commit_id FROM e2e_group_applied WHERE group_id = ?1 AND epoch = ?2",
            params![group_id, epoch],
            |row| row.get(0),
        )
        .optional()?;
    Ok(id.and_then(|id| id.try_into().ok()))
}

/// Records that `commit_id` was applied in `epoch`: drops what was recorded for later epochs
/// (a rollback abandoned them) and whatever left the window (the group is now at `epoch + 1`).
pub(super) fn record_applied(
    conn: &Connection,
    group_id: &[u8],
    epoch: u64,
    commit_id: &[u8; 32],
) -> Result<(), E2eError> {
    conn.execute(
        "INSERT OR REPLACE INTO e2e_group_applied (group_id, epoch, commit_id) VALUES (?1, ?2, ?3)",
        params![group_id, epoch, commit_id.as_slice()],
    )?;
    let oldest = epoch.saturating_add(1).saturating_sub(ROLLBACK_EPOCHS);
    for table in ["e2e_group_applied", "e2e_group_snapshots"] {
        conn.execute(
            &format!("DELETE FROM {table} WHERE group_id = ?1 AND (epoch > ?2 OR epoch < ?3)"),
            params![group_id, epoch, oldest],
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
