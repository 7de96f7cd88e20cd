//! The mailbox protocol `/rhizo/mailbox/1`, sans-IO: request and response codecs, the fetch
//! signature, delete-on-receipt authorisation and the replica's single-use challenge nonces.
//!
//! ```text
//!  sender    ── Store{uid, envelope, ttl, sender cert} ────▶ replica: StoreOk | Error
//!  recipient ── Challenge{uid} ───────────────────────────▶ replica: Challenge{nonce, 60 s}
//!            ── Fetch{uid, nonce, device list, device, sig, cursor}
//!                                                          ▶ replica: Fetched{entries, more,
//!                                                                             next_cursor}
//!            ── Delete{uid, device list, signed receipt} ──▶ replica: Deleted{count}
//! ```
//!
//! A fetch is signed by a device certified in the recipient's current device list, over the
//! replica's PeerId and a nonce the replica issued; the replica consumes the nonce before it
//! checks anything else, so a captured request can never be replayed. A store carries the
//! sender's device certificate, checked against the envelope ([`verify_store_sender`]) before
//! the replica counts the sender's quota. A fetch pages with a cursor ([`FetchPager`]), so
//! entries the recipient leaves on the replica never hide later ones. Wire format in
//! `proto/mailbox.proto`; rules in docs/protocol.md.

use bytes::Bytes;
use prost::Message;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::{
    DEVICE_CERT_LEN, DeviceCertificate, DeviceKey, DevicePublicKey, Uid,
    envelope::{DeliveryReceipt, ErrorCode, MAX_ENVELOPE_BYTES, ReceiptStatus, SecureMessage},
    proto,
    records::{
        MAX_RECORD_BYTES, RecordError, ValidRecord, decode_canonical, device_list_key,
        validate_record,
    },
};

/// Domain tag of [`mailbox_key`].
pub const MAILBOX_KEY_DOMAIN: &[u8] = b"rhizo/mailbox/v1";
/// Replicas that hold a user's mailbox.
pub const REPLICAS: usize = 5;
/// Largest request: an envelope, or a device list record and a receipt, plus framing.
pub const MAX_REQUEST_BYTES: usize = MAX_ENVELOPE_BYTES + 64 * 1024;
/// Largest response.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// Most envelopes one fetch returns.
pub const MAX_FETCH_ENTRIES: u32 = 64;
/// Most fetch rounds (challenge + fetch) a recipient makes per replica and per fetch: enough to
/// page through a full per-recipient quota (4096 envelopes, 64 per page) with room for a second
/// pass; bounded so a replica answering `more` forever cannot keep a client busy.
pub const MAX_FETCH_ROUNDS: usize = 80;
/// How long a challenge nonce may be used.
pub const CHALLENGE_TTL_MS: u64 = 60_000;
/// Domain tag of the fetch signature.
pub const FETCH_SIGNATURE_DOMAIN: &[u8] = b"rhizo/mailbox-fetch/v1";
/// Shortest TTL a sender may ask for.
pub const MIN_TTL_SECS: u32 = 60;
/// The TTL when the sender asks for none: 7 days.
pub const DEFAULT_TTL_SECS: u32 = 7 * 24 * 3600;
/// The longest a replica keeps anything: 7 days.
pub const MAX_TTL_SECS: u32 = 7 * 24 * 3600;
/// Longest error detail: the same bound as an `ErrorMessage`'s.
const MAX_DETAIL_BYTES: usize = crate::envelope::MAX_ERROR_DETAIL_BYTES;

/// The DHT key whose closest peers hold `uid`'s mailbox: SHA-256("rhizo/mailbox/v1" ‖ uid).
pub fn mailbox_key(uid: &Uid) -> [u8; 32] {
    Sha256::new()
        .chain_update(MAILBOX_KEY_DOMAIN)
        .chain_update(uid.as_bytes())
        .finalize()
        .into()
}

/// Why a mailbox request or response was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MailboxError {
    /// Larger than the protocol allows; checked before decoding.
    #[error("mailbox message too large: {actual} bytes, at most {max}")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The size given.
        actual: usize,
    },
    /// Not a well-formed mailbox message.
    #[error("malformed mailbox message: {0}")]
    Malformed(&'static str),
    /// Well-formed but not canonically encoded.
    #[error("mailbox message is not canonically encoded")]
    NonCanonical,
    /// The nonce was never issued by this replica, was already used, or is for another UID.
    #[error(
        "unknown or already used challenge nonce (a replayed fetch is refused): ask for a new challenge"
    )]
    UnknownNonce,
    /// The nonce's 60 seconds are over.
    #[error("the challenge nonce expired: ask for a new challenge")]
    ExpiredNonce,
    /// The device list record does not validate.
    #[error("invalid device list: {0}")]
    DeviceList(RecordError),
    /// The device list is older than one this replica has seen for the UID.
    #[error("stale device list: version {got}, this replica has seen version {seen}")]
    StaleDeviceList {
        /// Newest version seen.
        seen: u64,
        /// Version given.
        got: u64,
    },
    /// The device list belongs to another UID.
    #[error("the device list belongs to another UID: send the recipient's own device list")]
    WrongUid,
    /// The signing device is not in the device list.
    #[error(
        "the device is not in the UID's device list: publish a device list that includes it, \
         then send that one"
    )]
    DeviceNotListed,
    /// A signature did not verify.
    #[error(
        "signature does not verify (a fetch is signed for this replica's PeerId and the nonce \
         it issued; a receipt by its recipient_device)"
    )]
    InvalidSignature,
    /// The delete receipt does not decode or verify.
    #[error("bad delete receipt: {0}")]
    BadReceipt(String),
    /// A store without a well-formed sender device certificate.
    #[error(
        "the store carries no valid sender device certificate: send the sender device's \
         137-byte certificate"
    )]
    MissingSenderCertificate,
    /// The sender certificate does not certify the envelope's sender.
    #[error(
        "the sender certificate does not match the envelope: its root must be the sender_id's \
         and its device the sender_device"
    )]
    SenderMismatch,
    /// The sender certificate's root signature does not verify.
    #[error("the sender device certificate's signature does not verify")]
    InvalidSenderCertificate,
}

impl MailboxError {
    /// The wire error code for this refusal.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Malformed(_) | Self::NonCanonical | Self::BadReceipt(_) => ErrorCode::Malformed,
            Self::UnknownNonce => ErrorCode::ReplayDetected,
            Self::ExpiredNonce => ErrorCode::SessionExpired,
            Self::DeviceList(_)
            | Self::StaleDeviceList { .. }
            | Self::WrongUid
            | Self::DeviceNotListed => ErrorCode::UnknownSender,
            Self::InvalidSignature | Self::InvalidSenderCertificate => ErrorCode::InvalidSignature,
            Self::MissingSenderCertificate => ErrorCode::Malformed,
            Self::SenderMismatch => ErrorCode::UnknownSender,
        }
    }
}

fn canonical<M: Message + Default>(bytes: &[u8]) -> Result<M, MailboxError> {
    decode_canonical(bytes).map_err(|e| match e {
        crate::records::CanonicalError::Malformed => {
            MailboxError::Malformed("not a valid encoding")
        }
        crate::records::CanonicalError::NonCanonical => MailboxError::NonCanonical,
    })
}

fn uid_from(bytes: &[u8]) -> Result<Uid, MailboxError> {
    let b: &[u8; 32] = bytes
        .try_into()
        .map_err(|_| MailboxError::Malformed("recipient_uid is not 32 bytes"))?;
    Ok(Uid::from_bytes(b))
}

fn array<const N: usize>(bytes: &[u8], what: &'static str) -> Result<[u8; N], MailboxError> {
    bytes.try_into().map_err(|_| MailboxError::Malformed(what))
}

/// A request to a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxRequest {
    /// Keep an envelope.
    Store {
        /// Whose mailbox.
        recipient: Uid,
        /// The sealed envelope.
        envelope: Bytes,
        /// Seconds to keep it (0: the default).
        ttl_secs: u32,
        /// The sender device's encoded certificate (checked by [`verify_store_sender`]).
        sender_cert: Bytes,
    },
    /// Ask for a nonce.
    Challenge {
        /// Whose mailbox.
        recipient: Uid,
    },
    /// Hand out what is held.
    Fetch(FetchRequest),
    /// Delete what a receipt names.
    Delete(DeleteRequest),
    /// Push, from a replica to the recipient: it now holds something for `recipient`.
    Notify {
        /// Whose mailbox.
        recipient: Uid,
    },
}

impl MailboxRequest {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        use proto::mailbox_request::Op;
        let op = match self {
            Self::Store {
                recipient,
                envelope,
                ttl_secs,
                sender_cert,
            } => Op::Store(proto::StoreRequest {
                recipient_uid: Bytes::copy_from_slice(recipient.as_bytes()),
                envelope: envelope.clone(),
                ttl_secs: *ttl_secs,
                sender_cert: sender_cert.clone(),
            }),
            Self::Challenge { recipient } => Op::Challenge(proto::ChallengeRequest {
                recipient_uid: Bytes::copy_from_slice(recipient.as_bytes()),
            }),
            Self::Fetch(f) => Op::Fetch(proto::FetchRequest {
                recipient_uid: Bytes::copy_from_slice(f.recipient.as_bytes()),
                nonce: Bytes::copy_from_slice(&f.nonce),
                device_list: f.device_list.clone(),
                device_pk: Bytes::copy_from_slice(f.device_pk.as_bytes()),
                signature: Bytes::copy_from_slice(&f.signature),
                max_entries: f.max_entries,
                cursor: f.cursor,
            }),
            Self::Delete(d) => Op::Delete(proto::DeleteRequest {
                recipient_uid: Bytes::copy_from_slice(d.recipient.as_bytes()),
                device_list: d.device_list.clone(),
                receipt: d.receipt.clone(),
            }),
            Self::Notify { recipient } => Op::Notify(proto::NotifyRequest {
                recipient_uid: Bytes::copy_from_slice(recipient.as_bytes()),
            }),
        };
        proto::MailboxRequest { op: Some(op) }.encode_to_vec()
    }

    /// Decodes a request; the size is checked before anything is decoded.
    pub fn decode(bytes: &[u8]) -> Result<Self, MailboxError> {
        use proto::mailbox_request::Op;
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(MailboxError::TooLarge {
                max: MAX_REQUEST_BYTES,
                actual: bytes.len(),
            });
        }
        let request: proto::MailboxRequest = canonical(bytes)?;
        match request.op.ok_or(MailboxError::Malformed("no operation"))? {
            Op::Store(s) => {
                if s.envelope.len() > MAX_ENVELOPE_BYTES {
                    return Err(MailboxError::TooLarge {
                        max: MAX_ENVELOPE_BYTES,
                        actual: s.envelope.len(),
                    });
                }
                // Only the size here: the replica decodes and verifies the certificate.
                if s.sender_cert.len() > DEVICE_CERT_LEN {
                    return Err(MailboxError::Malformed(
                        "sender_cert is longer than 137 bytes",
                    ));
                }
                Ok(Self::Store {
                    recipient: uid_from(&s.recipient_uid)?,
                    envelope: s.envelope,
                    ttl_secs: s.ttl_secs,
                    sender_cert: s.sender_cert,
                })
            }
            Op::Challenge(c) => Ok(Self::Challenge {
                recipient: uid_from(&c.recipient_uid)?,
            }),
            Op::Fetch(f) => Ok(Self::Fetch(FetchRequest {
                recipient: uid_from(&f.recipient_uid)?,
                nonce: array(&f.nonce, "nonce is not 32 bytes")?,
                device_list: f.device_list,
                device_pk: DevicePublicKey::from_bytes(&array(
                    &f.device_pk,
                    "device_pk is not 32 bytes",
                )?)
                .map_err(|_| MailboxError::Malformed("device_pk is not a valid key"))?,
                signature: array(&f.signature, "signature is not 64 bytes")?,
                max_entries: f.max_entries,
                cursor: f.cursor,
            })),
            Op::Delete(d) => Ok(Self::Delete(DeleteRequest {
                recipient: uid_from(&d.recipient_uid)?,
                device_list: d.device_list,
                receipt: d.receipt,
            })),
            Op::Notify(n) => Ok(Self::Notify {
                recipient: uid_from(&n.recipient_uid)?,
            }),
        }
    }
}

/// A device's (checked) authority over a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedDevice {
    /// The device.
    pub device: DevicePublicKey,
    /// The version of the device list it was found in (a replica refuses older ones later).
    pub device_list_version: u64,
    /// Every device that list names (at most 16, each certified by the recipient's root): the
    /// devices new entries are addressed to, and the ones an entry still waits for.
    pub listed: Vec<DevicePublicKey>,
}

/// Checks a device list record for `recipient` (valid at `now_secs`, signed by the recipient's
/// root, every device certified by that root, version at least `min_version`) and that
/// `device` is in it. What a replica checks for a fetch or delete, without the signature over
/// the request; a node holding its own mailbox checks its own list with it.
///
/// # Errors
///
/// The refusal, as a replica answers it.
pub fn check_device_list(
    recipient: &Uid,
    device_list: &[u8],
    device: &DevicePublicKey,
    now_secs: u64,
    min_version: u64,
) -> Result<AuthorizedDevice, MailboxError> {
    if device_list.len() > MAX_RECORD_BYTES {
        return Err(MailboxError::DeviceList(RecordError::TooLarge {
            max: MAX_RECORD_BYTES,
            actual: device_list.len(),
        }));
    }
    let list = match validate_record(&device_list_key(recipient), device_list, now_secs) {
        Ok(ValidRecord::DeviceList(list)) => list,
        Ok(_) => return Err(MailboxError::Malformed("device_list is not a device list")),
        Err(RecordError::WrongKey) => return Err(MailboxError::WrongUid),
        Err(e) => return Err(MailboxError::DeviceList(e)),
    };
    if list.root_pk().uid() != *recipient {
        return Err(MailboxError::WrongUid);
    }
    if list.version() < min_version {
        return Err(MailboxError::StaleDeviceList {
            seen: min_version,
            got: list.version(),
        });
    }
    if !list.devices().iter().any(|c| c.device() == *device) {
        return Err(MailboxError::DeviceNotListed);
    }
    Ok(AuthorizedDevice {
        device: *device,
        device_list_version: list.version(),
        listed: list
            .devices()
            .iter()
            .map(DeviceCertificate::device)
            .collect(),
    })
}

/// A fetch, signed by one of the recipient's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchRequest {
    /// Whose mailbox.
    pub recipient: Uid,
    /// The replica's nonce.
    pub nonce: [u8; 32],
    /// The recipient's signed device list record.
    pub device_list: Bytes,
    /// The signing device.
    pub device_pk: DevicePublicKey,
    /// Its signature (see [`FetchRequest::new`]).
    pub signature: [u8; 64],
    /// Most entries wanted.
    pub max_entries: u32,
    /// Only entries after this position (a previous [`MailboxResponse::Fetched`]'s
    /// `next_cursor` from the same replica); 0 = from the oldest. Not signed: the connection
    /// is authenticated, and a changed cursor only changes which of the recipient's own
    /// entries come back.
    pub cursor: u64,
}

fn fetch_message(
    replica_peer: &[u8],
    recipient: &Uid,
    nonce: &[u8; 32],
    device: &DevicePublicKey,
) -> Vec<u8> {
    let len = u16::try_from(replica_peer.len()).unwrap_or(u16::MAX);
    crate::identity::signed_message(
        FETCH_SIGNATURE_DOMAIN,
        &[
            &len.to_be_bytes(),
            &replica_peer[..usize::from(len)],
            recipient.as_bytes(),
            nonce,
            device.as_bytes(),
        ],
    )
}

impl FetchRequest {
    /// Signs "rhizo/mailbox-fetch/v1" ‖ u16-BE length ‖ replica PeerId bytes ‖ recipient ‖
    /// nonce ‖ device public key with `device`.
    pub fn new(
        device: &DeviceKey,
        replica_peer: &[u8],
        recipient: Uid,
        nonce: [u8; 32],
        device_list: Bytes,
        max_entries: u32,
    ) -> Self {
        let device_pk = device.public();
        let signature = device.sign(&fetch_message(replica_peer, &recipient, &nonce, &device_pk));
        Self {
            recipient,
            nonce,
            device_list,
            device_pk,
            signature,
            max_entries,
            cursor: 0,
        }
    }

    /// The same request, paging from `cursor` (see [`FetchRequest::cursor`]).
    #[must_use]
    pub fn with_cursor(mut self, cursor: u64) -> Self {
        self.cursor = cursor;
        self
    }

    /// The replica's check (the nonce is checked separately, by [`NonceBook::take`]): the device
    /// list is valid at `now_secs`, belongs to the recipient, is not older than `min_version`,
    /// lists the device, and the signature (bound to `replica_peer`) verifies.
    pub fn verify(
        &self,
        replica_peer: &[u8],
        now_secs: u64,
        min_version: u64,
    ) -> Result<AuthorizedDevice, MailboxError> {
        let authorized = check_device_list(
            &self.recipient,
            &self.device_list,
            &self.device_pk,
            now_secs,
            min_version,
        )?;
        self.device_pk
            .verify(
                &fetch_message(replica_peer, &self.recipient, &self.nonce, &self.device_pk),
                &self.signature,
            )
            .map_err(|_| MailboxError::InvalidSignature)?;
        Ok(authorized)
    }
}

/// Delete-on-receipt: a signed receipt naming the envelopes the recipient has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Whose mailbox.
    pub recipient: Uid,
    /// The recipient's signed device list record.
    pub device_list: Bytes,
    /// An encoded, signed [`DeliveryReceipt`].
    pub receipt: Bytes,
}

impl DeleteRequest {
    /// A delete for what `receipt` names.
    pub fn new(recipient: Uid, device_list: Bytes, receipt: &DeliveryReceipt) -> Self {
        Self {
            recipient,
            device_list,
            receipt: receipt.encode().into(),
        }
    }

    /// The replica's check: the device list as for a fetch (valid at `now_secs`, the recipient's,
    /// version at least `min_version`), the receipt decodes, its `recipient_device` is listed and
    /// its signature verifies (strict).
    ///
    /// Returns the device and what to delete ([`DeleteTargets`]): the envelopes the recipient
    /// has (every status but `REJECTED`), and those it rejected with a final code (e.g.
    /// `REPLAY_DETECTED`: it already had it). Entries rejected with a transient code are left
    /// out: the envelope stays for a later fetch, by this device or another one.
    pub fn verify(
        &self,
        now_secs: u64,
        min_version: u64,
    ) -> Result<(AuthorizedDevice, DeleteTargets), MailboxError> {
        let receipt = DeliveryReceipt::decode(&self.receipt)
            .map_err(|e| MailboxError::BadReceipt(e.to_string()))?;
        let authorized = check_device_list(
            &self.recipient,
            &self.device_list,
            &receipt.recipient_device,
            now_secs,
            min_version,
        )?;
        receipt
            .verify(&receipt.recipient_device)
            .map_err(|_| MailboxError::InvalidSignature)?;
        let mut targets = DeleteTargets::default();
        for entry in &receipt.entries {
            match entry.status {
                ReceiptStatus::Rejected(code) if code.is_transient() => {}
                ReceiptStatus::Rejected(_) => targets.rejected.push(entry.envelope_digest),
                _ => targets.acknowledged.push(entry.envelope_digest),
            }
        }
        Ok((authorized, targets))
    }
}

/// What a verified [`DeleteRequest`] asks a replica to drop, by envelope digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteTargets {
    /// Envelopes the recipient has (delivered, read, held as a request): deleted, and
    /// tombstoned even when this replica does not hold them, so a late copy is refused.
    pub acknowledged: Vec<[u8; 32]>,
    /// Envelopes the recipient refused with a final code: deleted only when this replica
    /// holds them (it verified their signature when it stored them), never tombstoned
    /// otherwise, so a rejection cannot block an envelope the replica never saw.
    pub rejected: Vec<[u8; 32]>,
}

/// The replica's check of a store's sender, before it counts the sender's quota: `sender_cert`
/// is a device certificate whose root hashes to the envelope's `sender_id` and whose device is
/// its `sender_device`, the root's signature on it verifies, and so does the envelope's
/// signature by that device. So nobody can store (or use up a quota) in another user's name.
/// Cheap comparisons run before the two signature checks.
pub fn verify_store_sender(
    message: &SecureMessage,
    sender_cert: &[u8],
) -> Result<DeviceCertificate, MailboxError> {
    let cert = DeviceCertificate::decode(sender_cert)
        .map_err(|_| MailboxError::MissingSenderCertificate)?;
    if cert.device() != message.sender_device || cert.root().uid() != message.sender_id {
        return Err(MailboxError::SenderMismatch);
    }
    cert.verify()
        .map_err(|_| MailboxError::InvalidSenderCertificate)?;
    message
        .verify(&message.sender_device)
        .map_err(|_| MailboxError::InvalidSignature)?;
    Ok(cert)
}

/// The recipient's paging through one replica during one fetch, sans-IO: which cursor to fetch
/// next, given what each page held and how much of it the recipient handled (and deleted).
///
/// Entries the recipient leaves on the replica (from a sender who is not a contact yet, or
/// refused with a transient code) are paged past with the cursor, so they never hide the ones
/// behind them. When the end is reached, something was handled and something was left, one
/// more pass starts from the oldest (what was handled may unblock what was left, e.g. a
/// Welcome behind its messages). At most [`MAX_FETCH_ROUNDS`] pages in all.
#[derive(Debug, Clone, Default)]
pub struct FetchPager {
    cursor: u64,
    rounds: usize,
    left_in_pass: bool,
    handled_in_pass: bool,
    done: bool,
}

impl FetchPager {
    /// A pager starting at the oldest entry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The cursor of the next fetch, or `None` when this replica is done.
    pub fn next(&self) -> Option<u64> {
        (!self.done && self.rounds < MAX_FETCH_ROUNDS).then_some(self.cursor)
    }

    /// Records one page: `returned` entries, `handled` of them handled (and deleted), the
    /// replica's `more` and `next_cursor`.
    pub fn page(&mut self, returned: usize, handled: usize, more: bool, next_cursor: u64) {
        self.rounds += 1;
        self.left_in_pass |= handled < returned;
        self.handled_in_pass |= handled > 0;
        if more {
            if next_cursor > self.cursor {
                self.cursor = next_cursor;
            } else if handled == 0 {
                // No progress (a replica without cursors, or a broken one) and nothing
                // deleted: asking again would return the same page.
                self.done = true;
            }
            // Else the same cursor again: what was handled is deleted now.
            return;
        }
        if self.left_in_pass && self.handled_in_pass && self.cursor != 0 {
            self.cursor = 0;
            self.left_in_pass = false;
            self.handled_in_pass = false;
            return;
        }
        self.done = true;
    }

    /// The failed fetch ends paging for this replica.
    pub fn failed(&mut self) {
        self.done = true;
    }
}

/// One envelope a fetch returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedEntry {
    /// The sealed envelope.
    pub envelope: Bytes,
    /// When the replica drops it (unix ms).
    pub expires_at_ms: u64,
}

/// A replica's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxResponse {
    /// Persisted.
    Stored {
        /// When it will be dropped (unix ms).
        expires_at_ms: u64,
        /// It was already held.
        duplicate: bool,
    },
    /// A fresh nonce.
    Challenge {
        /// Sign it within 60 s.
        nonce: [u8; 32],
        /// Unix ms.
        expires_at_ms: u64,
    },
    /// What is held.
    Fetched {
        /// Envelopes, in storage order.
        entries: Vec<FetchedEntry>,
        /// More are held.
        more: bool,
        /// Where the next page starts: the position of the last entry returned (the request's
        /// cursor when none was).
        next_cursor: u64,
    },
    /// Deleted.
    Deleted {
        /// How many.
        count: u32,
    },
    /// A push ([`MailboxRequest::Notify`]) was taken note of.
    Notified,
    /// Refused.
    Error {
        /// Why, as a stable code.
        code: ErrorCode,
        /// For humans and logs.
        detail: String,
    },
}

impl MailboxResponse {
    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        use proto::mailbox_response::Result as R;
        let result = match self {
            Self::Stored {
                expires_at_ms,
                duplicate,
            } => R::Stored(proto::StoreOk {
                expires_at_ms: *expires_at_ms,
                duplicate: *duplicate,
            }),
            Self::Challenge {
                nonce,
                expires_at_ms,
            } => R::Challenge(proto::Challenge {
                nonce: Bytes::copy_from_slice(nonce),
                expires_at_ms: *expires_at_ms,
            }),
            Self::Fetched {
                entries,
                more,
                next_cursor,
            } => R::Fetched(proto::Fetched {
                entries: entries
                    .iter()
                    .map(|e| proto::FetchedEntry {
                        envelope: e.envelope.clone(),
                        expires_at_ms: e.expires_at_ms,
                    })
                    .collect(),
                more: *more,
                next_cursor: *next_cursor,
            }),
            Self::Deleted { count } => R::Deleted(proto::Deleted { count: *count }),
            Self::Notified => R::Notified(proto::NotifyOk {}),
            Self::Error { code, detail } => {
                let mut detail = detail.clone();
                if detail.len() > MAX_DETAIL_BYTES {
                    let mut end = MAX_DETAIL_BYTES;
                    while !detail.is_char_boundary(end) {
                        end -= 1;
                    }
                    detail.truncate(end);
                }
                R::Error(proto::MailboxError {
                    code: u32::from(code.as_u16()),
                    detail,
                })
            }
        };
        proto::MailboxResponse {
            result: Some(result),
        }
        .encode_to_vec()
    }

    /// Decodes a response; the size is checked first.
    pub fn decode(bytes: &[u8]) -> Result<Self, MailboxError> {
        use proto::mailbox_response::Result as R;
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(MailboxError::TooLarge {
                max: MAX_RESPONSE_BYTES,
                actual: bytes.len(),
            });
        }
        let response: proto::MailboxResponse = canonical(bytes)?;
        Ok(
            match response
                .result
                .ok_or(MailboxError::Malformed("no result"))?
            {
                R::Stored(s) => Self::Stored {
                    expires_at_ms: s.expires_at_ms,
                    duplicate: s.duplicate,
                },
                R::Challenge(c) => Self::Challenge {
                    nonce: array(&c.nonce, "nonce is not 32 bytes")?,
                    expires_at_ms: c.expires_at_ms,
                },
                R::Fetched(f) => {
                    if f.entries.len() > MAX_FETCH_ENTRIES as usize {
                        return Err(MailboxError::Malformed("too many entries"));
                    }
                    Self::Fetched {
                        entries: f
                            .entries
                            .into_iter()
                            .map(|e| FetchedEntry {
                                envelope: e.envelope,
                                expires_at_ms: e.expires_at_ms,
                            })
                            .collect(),
                        more: f.more,
                        next_cursor: f.next_cursor,
                    }
                }
                R::Deleted(d) => Self::Deleted { count: d.count },
                R::Notified(_) => Self::Notified,
                R::Error(e) if e.detail.len() > MAX_DETAIL_BYTES => {
                    return Err(MailboxError::Malformed(
                        "error detail longer than 256 bytes",
                    ));
                }
                R::Error(e) => Self::Error {
                    code: u16::try_from(e.code)
                        .ok()
                        .and_then(ErrorCode::from_u16)
                        .ok_or(MailboxError::Malformed("unknown error code"))?,
                    detail: e.detail,
                },
            },
        )
    }
}

mod nonces;

pub use nonces::NonceBook;

#[cfg(test)]
mod tests;
