//! The mailbox replica's rules, with no I/O: what a replica answers to each
//! `/rhizo/mailbox/1` request, given a store transaction, the nonce book, `now` and
//! randomness. The node's replica (`rhizo-node::mailbox::replica`) runs these checks off its
//! event loop and commits stores through the database's group commit.
//!
//! ```text
//!  Store(envelope)  ─▶ check_store: size, decode, recipient (the owner, or any group address
//!                      for group messages), window, sender binding +
//!                      signatures, then the quota (read-only) ─▶ CheckedStore
//!                   ─▶ commit_stores (in the caller's transaction) ─▶ Stored / refusal
//!  Challenge        ─▶ challenge: a fresh single-use nonce
//!  Fetch / Delete   ─▶ authorize: nonce, device list (not older than seen), signatures
//!                   ─▶ serve (in the caller's transaction): note the device list (version
//!                      and devices), then a page of what the signing device has not
//!                      acknowledged, or its acknowledgements (an entry goes once every device
//!                      it is addressed to has it, or is revoked)
//! ```
//!
//! Cheap checks (size, structure, timestamps) run before any signature verification, and
//! signatures before the quota counts and any write.
//!
//! `push`: [`PushBook`], which recipients a replica tells at once that it holds something new
//! for them (the peers that fetched their mailbox here), coalesced and rate-limited.

use std::sync::Mutex;

use bytes::Bytes;
use rhizo_core::{
    Uid,
    envelope::{ErrorCode, MAX_ENVELOPE_BYTES, MessageType, SecureMessage, envelope_digest},
    mailbox::{
        AuthorizedDevice, DEFAULT_TTL_SECS, DeleteTargets, FetchedEntry, MAX_FETCH_ENTRIES,
        MAX_RESPONSE_BYTES, MAX_TTL_SECS, MIN_TTL_SECS, MailboxError, MailboxRequest,
        MailboxResponse, NonceBook, verify_store_sender,
    },
    seen::check_timestamp,
};
use rhizo_store::{
    StoreError, Tx,
    mailbox::{MailboxOutcome, MailboxPage, MailboxQuota, MailboxStored, NewMailboxEntry},
};

/// Bytes of envelopes a fetch response may carry (the frame limit minus room for framing).
pub const FETCH_MAX_BYTES: usize = MAX_RESPONSE_BYTES - 64 * 1024;
/// The replica's fixed context.
#[derive(Debug, Clone)]
pub struct ReplicaContext {
    /// Our PeerId bytes: fetch signatures are bound to them.
    pub local_peer: Vec<u8>,
    /// Quotas.
    pub quota: MailboxQuota,
}

/// A refusal with `code` and a detail the peer can act on.
pub fn error(code: ErrorCode, detail: impl Into<String>) -> MailboxResponse {
    MailboxResponse::Error {
        code,
        detail: detail.into(),
    }
}

/// Handles one decoded-or-not request as a replica, synchronously: a store is committed alone
/// (a one-entry batch) before it is answered. Cheap checks (size, structure, timestamps) run
/// before any signature verification, and signatures before the quota counts and any write.
/// The node runs the same checks through its replica, which commits stores in groups.
pub fn handle_request(
    store: &mut Tx<'_>,
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    now_ms: i64,
    random: [u8; 32],
    payload: &[u8],
) -> MailboxResponse {
    match MailboxRequest::decode(payload) {
        Ok(request) => answer_request(store, context, nonces, now_ms, random, request),
        Err(e) => error(e.code(), e.to_string()),
    }
}

/// Answers a decoded request (see [`handle_request`]).
fn answer_request(
    store: &mut Tx<'_>,
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    now_ms: i64,
    random: [u8; 32],
    request: MailboxRequest,
) -> MailboxResponse {
    match request {
        MailboxRequest::Store {
            recipient,
            envelope,
            ttl_secs,
            sender_cert,
        } => {
            let quota_check = |entry: &NewMailboxEntry<'_>| {
                store.mailbox_check_quota(entry, &context.quota, now_ms)
            };
            match check_store(
                quota_check,
                now_ms,
                recipient,
                envelope,
                ttl_secs,
                sender_cert,
            ) {
                Ok(checked) => commit_stores(store, &context.quota, &[checked], now_ms)
                    .map(|mut answers| answers.pop())
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| error(ErrorCode::Internal, "the store was not committed")),
                Err(refused) => refused,
            }
        }
        MailboxRequest::Challenge { recipient } => challenge(nonces, recipient, now_ms, random),
        other => {
            let min_version = |uid: &[u8; 32]| store.mailbox_device_list_version(uid);
            match authorize(context, nonces, min_version, now_ms, other) {
                Ok(authorized) => serve(store, now_ms, authorized),
                Err(refused) => refused,
            }
        }
    }
}

/// A fresh single-use nonce for `recipient` (no store access).
pub fn challenge(
    nonces: &Mutex<NonceBook>,
    recipient: Uid,
    now_ms: i64,
    random: [u8; 32],
) -> MailboxResponse {
    let Ok(mut book) = nonces.lock() else {
        return error(ErrorCode::Internal, "nonce book unavailable");
    };
    let (nonce, expires_at_ms) = book.issue(recipient, random, u64::try_from(now_ms).unwrap_or(0));
    MailboxResponse::Challenge {
        nonce,
        expires_at_ms,
    }
}

/// A fetch or delete whose nonce, device list and signatures were checked.
#[derive(Debug)]
pub enum Authorized {
    /// Hand out a page.
    Fetch {
        /// The recipient.
        uid: [u8; 32],
        /// The device list the request was signed under.
        list: ListedDevices,
        /// Where the page starts.
        cursor: u64,
        /// Most entries in the page.
        limit: usize,
    },
    /// Delete what a receipt names.
    Delete {
        /// The recipient.
        uid: [u8; 32],
        /// The device list the receipt was checked against.
        list: ListedDevices,
        /// What to delete.
        targets: DeleteTargets,
    },
}

/// The device that signed a fetch or delete, and the device list it was checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDevices {
    /// The signing device.
    pub device: [u8; 32],
    /// The list's version.
    pub version: u64,
    /// Every device the list names (at most 16).
    pub devices: Vec<[u8; 32]>,
}

impl From<AuthorizedDevice> for ListedDevices {
    fn from(authorized: AuthorizedDevice) -> Self {
        Self {
            device: *authorized.device.as_bytes(),
            version: authorized.device_list_version,
            devices: authorized.listed.iter().map(|d| *d.as_bytes()).collect(),
        }
    }
}

/// The checking half of a fetch or delete: nonce, device list (not older than what
/// `min_version` reads), signatures. Needs no write access, so the node runs it without the
/// store's lock: a flood of badly signed requests never waits for, or holds up, the store.
///
/// # Errors
///
/// The refusal to answer with.
pub fn authorize(
    context: &ReplicaContext,
    nonces: &Mutex<NonceBook>,
    min_version: impl FnOnce(&[u8; 32]) -> Result<u64, StoreError>,
    now_ms: i64,
    request: MailboxRequest,
) -> Result<Authorized, MailboxResponse> {
    let now_u = u64::try_from(now_ms).unwrap_or(0);
    let refuse = |e: rhizo_core::mailbox::MailboxError| error(e.code(), e.to_string());
    let internal = |e: StoreError| error(ErrorCode::Internal, e.to_string());
    match request {
        MailboxRequest::Fetch(request) => {
            // The nonce is consumed first, whatever follows: a captured request never works
            // twice.
            let taken = match nonces.lock() {
                Ok(mut book) => book.take(&request.recipient, &request.nonce, now_u),
                Err(_) => return Err(error(ErrorCode::Internal, "nonce book unavailable")),
            };
            taken.map_err(refuse)?;
            let uid = *request.recipient.as_bytes();
            let min_version = min_version(&uid).map_err(internal)?;
            let authorized = request
                .verify(&context.local_peer, now_u / 1000, min_version)
                .map_err(refuse)?;
            Ok(Authorized::Fetch {
                uid,
                list: authorized.into(),
                cursor: request.cursor,
                limit: request.max_entries.clamp(1, MAX_FETCH_ENTRIES) as usize,
            })
        }
        MailboxRequest::Delete(request) => {
            let uid = *request.recipient.as_bytes();
            let min_version = min_version(&uid).map_err(internal)?;
            let (authorized, targets) =
                request.verify(now_u / 1000, min_version).map_err(refuse)?;
            Ok(Authorized::Delete {
                uid,
                list: authorized.into(),
                targets,
            })
        }
        MailboxRequest::Store { .. } | MailboxRequest::Challenge { .. } => {
            Err(error(ErrorCode::Internal, "not a fetch or delete"))
        }
        MailboxRequest::Notify { .. } => Err(error(
            ErrorCode::Malformed,
            "a push is for the recipient's node, not for a replica",
        )),
    }
}

/// The writing half of a fetch or delete (under the store's lock): notes the device list
/// (version and devices: new entries are addressed to its devices), then hands out a page of
/// what the signing device has not acknowledged yet, or records its acknowledgements.
///
/// Delete-on-receipt with several devices: an entry goes once every device it is addressed to
/// acknowledged it or is missing from the newest list (revoked); the count answered is how
/// many held entries this device is now done with.
pub fn serve(store: &mut Tx<'_>, now_ms: i64, authorized: Authorized) -> MailboxResponse {
    let (Authorized::Fetch { uid, list, .. } | Authorized::Delete { uid, list, .. }) = &authorized;
    let (uid, list) = (*uid, list.clone());
    // Checked again under the writer: a newer list noted since the check (a revoke) wins.
    match store.mailbox_device_list_version(&uid) {
        Ok(seen) if seen > list.version => {
            let stale = MailboxError::StaleDeviceList {
                seen,
                got: list.version,
            };
            return error(stale.code(), stale.to_string());
        }
        Ok(_) => {}
        Err(e) => return error(ErrorCode::Internal, e.to_string()),
    }
    if let Err(e) = store.note_mailbox_device_list(&uid, list.version, &list.devices, now_ms) {
        return error(ErrorCode::Internal, e.to_string());
    }
    let answer = match authorized {
        Authorized::Fetch { cursor, limit, .. } => {
            let cursor = i64::try_from(cursor).unwrap_or(i64::MAX);
            store
                .mailbox_fetch_for(&uid, &list.device, now_ms, cursor, limit, FETCH_MAX_BYTES)
                .map(fetched)
        }
        // A rejection deletes only a (verified) envelope held here.
        Authorized::Delete { targets, .. } => store
            .mailbox_ack(
                &uid,
                &list.device,
                &targets.acknowledged,
                &targets.rejected,
                now_ms,
            )
            .map(|acked| MailboxResponse::Deleted {
                count: u32::try_from(acked.handled).unwrap_or(u32::MAX),
            }),
    };
    answer.unwrap_or_else(|e| error(ErrorCode::Internal, e.to_string()))
}

/// A store page as a `Fetched` answer.
pub fn fetched(page: MailboxPage) -> MailboxResponse {
    MailboxResponse::Fetched {
        more: page.more,
        next_cursor: u64::try_from(page.next_cursor).unwrap_or(0),
        entries: page
            .entries
            .into_iter()
            .map(|e| FetchedEntry {
                envelope: Bytes::from(e.envelope),
                expires_at_ms: u64::try_from(e.expires_at).unwrap_or(0),
            })
            .collect(),
    }
}

/// A store request that passed every check a replica makes before committing it: size,
/// decoding, recipient, time window, the sender's certificate and the envelope's signature,
/// and the quota (read-only).
#[derive(Debug, Clone)]
pub struct CheckedStore {
    recipient_uid: [u8; 32],
    sender_uid: [u8; 32],
    digest: [u8; 32],
    envelope: Bytes,
    expires_at: i64,
    sender_cert: Bytes,
}

impl CheckedStore {
    /// The digest of the envelope.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    /// The row to store.
    pub fn entry(&self) -> NewMailboxEntry<'_> {
        NewMailboxEntry {
            recipient_uid: self.recipient_uid,
            sender_uid: self.sender_uid,
            digest: self.digest,
            envelope: &self.envelope,
            expires_at: self.expires_at,
            sender_cert: &self.sender_cert,
        }
    }

    /// The answer for this store once the transaction holding it committed with `outcome`.
    pub fn answer(&self, outcome: MailboxOutcome) -> MailboxResponse {
        match outcome {
            Ok(MailboxStored::AlreadyDelivered) => error(
                ErrorCode::ReplayDetected,
                "the recipient already fetched and acknowledged this envelope",
            ),
            Ok(stored) => MailboxResponse::Stored {
                expires_at_ms: u64::try_from(self.expires_at).unwrap_or(0),
                duplicate: stored == MailboxStored::Duplicate,
            },
            Err(refusal) => error(ErrorCode::QuotaExceeded, refusal.to_string()),
        }
    }
}

/// The checks of a store request, cheapest first: size, decoding, recipient, time window; then
/// the sender binding ([`verify_store_sender`]: the certificate names the envelope's sender
/// and device, and both signatures verify) **before** `quota_check` (read-only, see
/// [`Reader::mailbox_check_quota`](rhizo_store::Reader::mailbox_check_quota)) counts anything against the sender, so nobody can use up
/// another user's per-sender quota in their name.
///
/// # Errors
///
/// The refusal to answer with.
pub fn check_store(
    quota_check: impl FnOnce(&NewMailboxEntry<'_>) -> Result<(), StoreError>,
    now_ms: i64,
    recipient: Uid,
    envelope: Bytes,
    ttl_secs: u32,
    sender_cert: Bytes,
) -> Result<CheckedStore, MailboxResponse> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(error(
            ErrorCode::Malformed,
            format!("envelope of {} bytes is over the limit", envelope.len()),
        ));
    }
    let message = SecureMessage::decode(&envelope).map_err(|e| error(e.code(), e.to_string()))?;
    // A group envelope is addressed to the group (its address), not to the mailbox owner: the
    // sender stores the same signed bytes in the mailbox of each member none of whose devices
    // answered. The replica cannot check group membership, so an application message or a
    // commit may name any recipient; everything else (Welcomes, receipts, key packages) must
    // be for the owner. The per-sender quotas still apply, and the owner's node refuses an
    // envelope for a group it is not in.
    let group_envelope = matches!(
        message.msg_type,
        MessageType::Application | MessageType::Commit
    );
    if message.recipient_id != recipient && !group_envelope {
        return Err(error(
            ErrorCode::Malformed,
            "the envelope is for another UID (only group messages may name a group address)",
        ));
    }
    let now_u = u64::try_from(now_ms).unwrap_or(0);
    check_timestamp(message.timestamp, now_u).map_err(|e| error(e.code(), e.to_string()))?;
    verify_store_sender(&message, &sender_cert).map_err(|e| error(e.code(), e.to_string()))?;
    let ttl = if ttl_secs == 0 {
        DEFAULT_TTL_SECS
    } else {
        ttl_secs.clamp(MIN_TTL_SECS, MAX_TTL_SECS)
    };
    // Never longer than the recipient would accept the envelope (its replay window).
    let window_end = i64::try_from(message.timestamp)
        .unwrap_or(i64::MAX)
        .saturating_add(rhizo_core::seen::MAX_ENVELOPE_AGE as i64);
    let checked = CheckedStore {
        recipient_uid: *recipient.as_bytes(),
        sender_uid: *message.sender_id.as_bytes(),
        digest: envelope_digest(&envelope),
        expires_at: now_ms.saturating_add(i64::from(ttl) * 1000).min(window_end),
        envelope,
        sender_cert,
    };
    match quota_check(&checked.entry()) {
        Ok(()) => Ok(checked),
        Err(StoreError::QuotaExceeded(why)) => Err(error(ErrorCode::QuotaExceeded, why)),
        Err(e) => Err(error(ErrorCode::Internal, e.to_string())),
    }
}

/// Stores `stores` in the caller's transaction (all or none) and returns each one's answer, in
/// order.
///
/// # Errors
///
/// [`StoreError`] if the database failed: nothing of `stores` was kept.
pub fn commit_stores(
    store: &mut Tx<'_>,
    quota: &MailboxQuota,
    stores: &[CheckedStore],
    now_ms: i64,
) -> Result<Vec<MailboxResponse>, StoreError> {
    let entries: Vec<NewMailboxEntry<'_>> = stores.iter().map(CheckedStore::entry).collect();
    let outcomes = store.mailbox_store_batch(&entries, quota, now_ms)?;
    Ok(stores
        .iter()
        .zip(outcomes)
        .map(|(checked, outcome)| checked.answer(outcome))
        .collect())
}

/// What a receipt asks a replica to delete, as [`DeleteRequest::verify`] decides it: what the
/// recipient has, and what it refused for good (deleted only if held); transient rejections
/// keep their envelope.
///
/// [`DeleteRequest::verify`]: rhizo_core::mailbox::DeleteRequest::verify
pub fn delete_targets(receipt: &rhizo_core::envelope::DeliveryReceipt) -> DeleteTargets {
    use rhizo_core::envelope::ReceiptStatus;
    let mut targets = DeleteTargets::default();
    for e in &receipt.entries {
        match e.status {
            ReceiptStatus::Rejected(code) if code.is_transient() => {}
            ReceiptStatus::Rejected(_) => targets.rejected.push(e.envelope_digest),
            _ => targets.acknowledged.push(e.envelope_digest),
        }
    }
    targets
}

mod push;

pub use push::{
    MAX_PUSH_MAILBOXES, MAX_PUSH_PEERS_PER_MAILBOX, MAX_PUSHES_PER_POLL, PUSH_MIN_INTERVAL_MS,
    PUSH_SUBSCRIPTION_TTL_MS, PushBook, Saved,
};

#[cfg(any(test, feature = "test-support"))]
pub mod test_support;
#[cfg(test)]
mod tests;
