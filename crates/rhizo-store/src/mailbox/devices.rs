//! Delete-on-receipt with several devices (docs/protocol.md "Mailbox with several devices").
//!
//! ```text
//!  store ─▶ entry.targets = devices of the newest device list noted for the recipient
//!           (none noted yet: NULL, fixed from the newest list at the first acknowledgement)
//!  fetch by device d ─▶ entries d has not acknowledged
//!  ack by device d ─▶ mailbox_device_acks (entry, d)   (at most 16 per entry)
//!           └─▶ every target acknowledged, or no longer in the newest list (revoked)?
//!               yes: delete the entry and tombstone it   no: keep it for the others
//! ```
//!
//! A device listed after the entry was stored may fetch it while it is held, but never keeps
//! it from being deleted; a revoked device never does either. Entries still go at their expiry.

use rusqlite::{Connection, OptionalExtension, params};

use super::MailboxPage;
use crate::{
    error::{SqliteContext, StoreError},
    tx::{Atomic, Reader, Tx},
};

/// Most devices an entry is addressed to, and most acknowledgements kept per entry: a device
/// list names at most 16 devices.
pub const MAX_TARGET_DEVICES: usize = 16;

/// Length of a device key in the `targets`, `devices` and `mailbox_device_acks` columns.
const DEVICE_LEN: usize = 32;

/// What [`mailbox_ack`](crate::Tx::mailbox_ack) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxAcked {
    /// Entries held here (unexpired) that the device is now done with: deleted, or kept for
    /// another device they are addressed to.
    pub handled: usize,
    /// Of those, the entries deleted: no device they are addressed to still needs them.
    pub deleted: usize,
}

/// What one acknowledgement did to its entry.
enum Ack {
    /// Not held here (or expired).
    NotHeld,
    /// Held, and another addressed device still needs it.
    Kept,
    /// Held, and no addressed device needs it any more: delete it.
    Done,
}

/// The `devices` column for `devices`: their keys, concatenated.
pub(super) fn encode_devices(devices: &[[u8; 32]]) -> Result<Vec<u8>, StoreError> {
    if devices.len() > MAX_TARGET_DEVICES {
        return Err(StoreError::InvalidInput(format!(
            "a device list names at most {MAX_TARGET_DEVICES} devices, not {}",
            devices.len()
        )));
    }
    Ok(devices.concat())
}

fn names(set: &[u8], device: &[u8]) -> bool {
    set.chunks_exact(DEVICE_LEN).any(|d| d == device)
}

/// The devices of the newest device list noted for `uid` (`None`: none noted, or noted
/// before devices were kept).
fn listed_devices(conn: &Connection, uid: &[u8; 32]) -> Result<Option<Vec<u8>>, StoreError> {
    conn.prepare_cached("SELECT devices FROM mailbox_device_lists WHERE uid = ?1")
        .and_then(|mut s| s.query_row([&uid[..]], |r| r.get(0)).optional())
        .map(Option::flatten)
        .context("reading a device list's devices")
}

impl Reader<'_> {
    /// The devices of the newest device list this mailbox noted for `uid`, if it kept them.
    pub fn mailbox_listed_devices(
        &self,
        uid: &[u8; 32],
    ) -> Result<Option<Vec<[u8; 32]>>, StoreError> {
        Ok(listed_devices(self.conn, uid)?.map(|set| {
            set.chunks_exact(DEVICE_LEN)
                .filter_map(|d| d.try_into().ok())
                .collect()
        }))
    }

    /// [`mailbox_fetch_after`](Self::mailbox_fetch_after) for one of the recipient's devices:
    /// the entries `device` already acknowledged are left out (each device gets an entry once).
    pub fn mailbox_fetch_for(
        &self,
        recipient: &[u8; 32],
        device: &[u8; 32],
        now: i64,
        cursor: i64,
        limit: usize,
        max_bytes: usize,
    ) -> Result<MailboxPage, StoreError> {
        self.mailbox_page(recipient, device, now, cursor, limit, max_bytes)
    }
}

impl Tx<'_> {
    /// Delete-on-receipt by one of `recipient`'s devices (`device`, checked by the caller
    /// against the newest device list, which the caller noted first): it is done with the
    /// entries it `acknowledged` (has them) and `rejected` (refused for good). An entry is
    /// deleted, and tombstoned, once no device it is addressed to still needs it: each one
    /// acknowledged it or is missing from the newest list (revoked). Entries stored before any
    /// device list was noted are addressed to the newest list's devices at their first
    /// acknowledgement.
    ///
    /// A digest not held here is tombstoned (as [`mailbox_delete`](Self::mailbox_delete) does)
    /// only when acknowledged and no other device is listed, so a late copy still reaches the
    /// other devices; a rejected one never is.
    pub fn mailbox_ack(
        &mut self,
        recipient: &[u8; 32],
        device: &[u8; 32],
        acknowledged: &[[u8; 32]],
        rejected: &[[u8; 32]],
        now: i64,
    ) -> Result<MailboxAcked, StoreError> {
        const CTX: &str = "acknowledging mailbox entries";
        // A copy of the connection reference, so `self`'s deletes can run inside the savepoint.
        let conn = self.read.conn;
        let tx = Atomic::begin(conn).context(CTX)?;
        let listed = listed_devices(&tx, recipient)?;
        let alone = listed
            .as_deref()
            .is_none_or(|set| set.chunks_exact(DEVICE_LEN).all(|d| d == device));
        let (mut done, mut done_rejected, mut kept) = (Vec::new(), Vec::new(), 0);
        let digests = acknowledged.iter().map(|d| (d, true));
        for (digest, has_it) in digests.chain(rejected.iter().map(|d| (d, false))) {
            match ack_entry(&tx, recipient, device, digest, now, listed.as_deref())? {
                Ack::Kept => kept += 1,
                Ack::Done if has_it => done.push(*digest),
                Ack::Done => done_rejected.push(*digest),
                Ack::NotHeld if has_it && alone => done.push(*digest),
                Ack::NotHeld => {}
            }
        }
        let deleted = self.mailbox_delete(recipient, &done, now)?
            + self.mailbox_delete_held(recipient, &done_rejected, now)?;
        tx.commit().context(CTX)?;
        Ok(MailboxAcked {
            handled: kept + deleted,
            deleted,
        })
    }
}

/// Records `device`'s acknowledgement of the entry with `digest` (if held and unexpired) and
/// tells whether any device it is addressed to still needs it.
fn ack_entry(
    conn: &Connection,
    recipient: &[u8; 32],
    device: &[u8; 32],
    digest: &[u8; 32],
    now: i64,
    listed: Option<&[u8]>,
) -> Result<Ack, StoreError> {
    const CTX: &str = "acknowledging a mailbox entry";
    let row: Option<(i64, i64, Option<Vec<u8>>)> = conn
        .prepare_cached(
            "SELECT id, expires_at, targets FROM mailbox WHERE recipient_uid = ?1 AND digest = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![&recipient[..], &digest[..]], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .context(CTX)?;
    let Some((id, _, targets)) = row.filter(|(_, expires_at, _)| *expires_at > now) else {
        return Ok(Ack::NotHeld);
    };
    let targets = match (targets, listed) {
        (Some(targets), _) => targets,
        // Stored before any list was noted: addressed to the newest list's devices from now.
        (None, Some(listed)) => {
            conn.prepare_cached("UPDATE mailbox SET targets = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id, listed]))
                .context(CTX)?;
            listed.to_vec()
        }
        // No device list known at all: the first acknowledgement deletes, as with one device.
        (None, None) => return Ok(Ack::Done),
    };
    conn.prepare_cached(
        "INSERT INTO mailbox_device_acks (entry_id, device)
         SELECT ?1, ?2 WHERE (SELECT count(*) FROM mailbox_device_acks WHERE entry_id = ?1) < ?3
         ON CONFLICT DO NOTHING",
    )
    .and_then(|mut s| s.execute(params![id, &device[..], MAX_TARGET_DEVICES as i64]))
    .context(CTX)?;
    let acked: Vec<Vec<u8>> = conn
        .prepare_cached("SELECT device FROM mailbox_device_acks WHERE entry_id = ?1")
        .and_then(|mut s| {
            s.query_map([id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()
        })
        .context(CTX)?;
    let waiting = targets.chunks_exact(DEVICE_LEN).any(|target| {
        target != device
            && !acked.iter().any(|a| a == target)
            && listed.is_none_or(|set| names(set, target))
    });
    Ok(if waiting { Ack::Kept } else { Ack::Done })
}

#[cfg(test)]
mod tests;
