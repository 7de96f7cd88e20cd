//! End-to-end encryption for rhizo: every conversation is an MLS group
//! (RFC 9420) with the X-Wing hybrid post-quantum ciphersuite
//! ([`CIPHERSUITE`]: ML-KEM-768 + X25519, AES-128-GCM, SHA-256, Ed25519),
//! built on openmls and `openmls_rust_crypto`.
//!
//! Sans-IO: no sockets and no clock reads — callers pass `now` (unix
//! seconds) in. Bytes in, bytes out; MLS state is persisted in SQLite through
//! openmls' storage provider ([`E2eStore`]). (openmls itself reads the
//! system clock when it creates and checks KeyPackage lifetimes.)
//!
//! # Identity binding
//!
//! The leaves of a group are **devices**, not users, so a user may have
//! several. A leaf's MLS signature key is the device's Ed25519 key
//! ([`rhizo_core::DeviceKey`]); its credential is a `BasicCredential` whose
//! identity is the device's 137-byte [`rhizo_core::DeviceCertificate`].
//! Every leaf entering a group (KeyPackage, Welcome, commit) must carry a
//! certificate that verifies and certifies exactly the leaf's signature key;
//! a leaf's update must keep its root. [`Conversation::members`] and
//! [`Processed::Application::sender`] give the certificates, so the caller
//! checks the root / UID against its contact.
//!
//! # Rules on top of MLS
//!
//! * **Rekey cadence.** A device counts the messages it encrypted since its
//!   last own commit and remembers that commit's time (or when it created or
//!   joined the conversation). [`Conversation::rekey_due`] says when either
//!   limit of the [`RekeyPolicy`] is reached (default: 100 messages or 24 h,
//!   seed 000's rule); the node then calls [`Conversation::self_update`].
//!   The counters live in `e2e_conversations`.
//! * **Commits without a server.** A self-update commit stays *pending*
//!   until the node calls [`Conversation::confirm_commit`] on the peer's
//!   delivery receipt for it. Meanwhile messages are encrypted in the
//!   current epoch. Groups keep [`MAX_PAST_EPOCHS`] old epochs so messages
//!   sent just before a commit still decrypt after it ([`LARGE_GROUP_PAST_EPOCHS`]
//!   above [`LARGE_GROUP_DEVICES`] devices: see [`past_epochs_for`]), and tolerate
//!   [`OUT_OF_ORDER_TOLERANCE`] reordered and [`MAX_SKIPPED_GENERATIONS`]
//!   skipped messages per sender.
//! * **Concurrent commits.** If both sides commit in the same epoch, the
//!   commit whose SHA-256 ([`commit_id`]) is lexicographically *smaller*
//!   wins. A device with a pending commit that receives a competing one: if
//!   the incoming one wins, its own is discarded and the incoming applied
//!   ([`Processed::CommitApplied`]; rekey stays due, so it may self-update
//!   again); if its own wins, the incoming one is ignored
//!   ([`Processed::CommitRejected`]) and its own stays pending — the peer will
//!   apply it. Both end in the same epoch with the same state.
//! * **Receipts mean "applied".** The node must send the delivery receipt
//!   that triggers the peer's `confirm_commit` only when [`Conversation::process`]
//!   returned [`Processed::CommitApplied`] for that commit — never for
//!   `CommitRejected` or a mere transport acknowledgement — and must confirm
//!   only a receipt naming [`Conversation::pending_commit_id`]. Otherwise the
//!   loser of a tie-break could merge its losing commit and fork the group.
//!   `CommitRejected` and `Deferred` are decided from the message's clear
//!   header (epoch, content type, hash) *before* authentication: change no
//!   state because of them, and accept conversation messages only from
//!   authenticated peer devices (the transport's job) so strangers cannot
//!   flush the deferred queue.
//! * **Future-epoch messages** (sent after a commit this device has not
//!   applied yet) are buffered, up to [`MAX_DEFERRED`] per conversation
//!   (oldest dropped and counted) and at most [`MAX_FUTURE_EPOCHS`] ahead,
//!   and delivered in the results of the call that applies the commit.
//! * **Replays.** openmls deletes each message key after use, so a
//!   duplicate fails with [`E2eError::Replayed`].
//!
//! # Groups
//!
//! A group is a [`Conversation`] like any other (same type, same `encrypt` / `process` /
//! `load`), whose GroupContext carries the extension
//! [`GROUP_STATE_EXTENSION_TYPE`](rhizo_core::group::GROUP_STATE_EXTENSION_TYPE) (0xF7A1): the
//! admins and profile ([`rhizo_core::group::GroupState`]), required of every member's leaf.
//! Chosen over a separate `Group` type so the node's receive path (one `process` per envelope)
//! serves both kinds; [`Conversation::is_group`] tells them apart, and the group calls refuse a
//! 1:1 conversation ([`E2eError::NotAGroup`]).
//!
//! * [`Conversation::create_group`], [`Conversation::add_members`],
//!   [`Conversation::remove_members`] (a [`MemberRef`]: all leaves of a UID, or one device),
//!   [`Conversation::set_state`] (a GroupContextExtensions commit), [`Conversation::readd`]
//!   (recovery: Remove + Add in one commit), [`Conversation::roster`],
//!   [`Conversation::group_state`], [`Conversation::epoch_authenticator`] /
//!   [`Conversation::tree_hash`] (safety fingerprint), [`inspect_welcome`] (read an invitation
//!   without joining; join later with [`Conversation::join`]), [`Conversation::delete`].
//! * **Role rule**, on every commit processed and on our own before it is returned: adding,
//!   removing someone else's leaf or changing the state needs an admin of the current epoch; the
//!   new state must decode and leave an admin in the group. Refusals are
//!   [`Processed::CommitRejected`] with [`CommitRejectReason::NotAdmin`],
//!   [`CommitRejectReason::NoAdminLeft`] or [`CommitRejectReason::InvalidGroupState`] (for our
//!   own: [`E2eError::Refused`]) and change nothing.
//! * **Own commits merge at once** ([`GroupCommit`]; `self_update` too): no pending state.
//! * **Ordering**: in each epoch the valid commit with the smallest ordering key wins: a
//!   sender that opened [`MAX_RECENT_OPENINGS`](rhizo_core::group::MAX_RECENT_OPENINGS) of
//!   the epochs before loses ties, then the earlier time span (each group commit carries when
//!   it was made in its authenticated data;
//!   [`COMMIT_TIME_SPAN_SECS`](rhizo_core::group::COMMIT_TIME_SPAN_SECS)), then the smaller
//!   [`commit_id`]. The commit applied in each recent epoch (id, time, sender) and a snapshot
//!   of the group's openmls rows from before it (last
//!   [`ROLLBACK_EPOCHS`](rhizo_core::group::ROLLBACK_EPOCHS) epochs) are kept; a late, smaller,
//!   valid commit rolls the group back ([`Processed::RolledBack`], then
//!   [`Processed::CommitApplied`]); a larger one is [`CommitRejectReason::LostTieBreak`], the
//!   same one [`CommitRejectReason::Duplicate`], an older one
//!   [`CommitRejectReason::StaleEpoch`]. Snapshots leaving the window are deleted.
//! * **Parking**: a group message of the current or a recent epoch that does not decrypt (made
//!   on another branch, or needing a rollback first) is kept in the deferred buffer
//!   ([`Processed::Deferred`]) and retried after every applied commit and rollback.
//!
//! The wire rules are in `docs/protocol.md` ("Groups: commit ordering, roles extension,
//! recovery").
//!
//! # Persistence contract
//!
//! Each state-changing call runs in one SQLite transaction that is committed
//! (durably: WAL, `synchronous = FULL`) *before* the call returns its output.
//! Send what a call returned only after it returned `Ok`; on `Err` nothing
//! changed.
//!
//! # Layout
//!
//! * `store` — [`E2eStore`]: SQLite connection, openmls provider
//!   (RustCrypto + `openmls_sqlite_storage`), the `e2e_*` tables,
//!   transactions.
//! * `device` — [`Device`]: device key as MLS signer, certificate as
//!   credential, and the leaf-credential check.
//! * `key_package` — [`create_key_packages`], [`inspect_key_package`],
//!   [`KeyPackageInfo`].
//! * `conversation` — [`Conversation`], [`Processed`], [`RekeyPolicy`], the
//!   commit flow and tie-break; `conversation/receive` — processing one
//!   message or commit, the deferred retry, openmls error mapping;
//!   `conversation/state` — rekey counters,
//!   pending commit and deferred queue rows; `conversation/group` — group
//!   creation, membership, roster, Welcome inspection; `conversation/roles` —
//!   the role rule and the 0xF7A1 extension; `conversation/group_commit` —
//!   processing group commits (ordering, rollback, parking);
//!   `conversation/ordering` — applied ids and state snapshots.
//! * `error` — [`E2eError`].
//!
//! # Data flow
//!
//! ```text
//!  device seed + DeviceCertificate ──► Device (MLS signer + credential)
//!
//!  Bob:   create_key_packages ──► KeyPackage bytes ──► (DHT) ──┐
//!                                                               ▼
//!  Alice: Conversation::create(peer KeyPackages) ──► Welcome ──► (mailbox) ──► Bob: Conversation::join
//!
//!  plaintext ──encrypt──► PrivateMessage bytes ──► (network) ──► process ──► Processed::Application
//!                                                                   │
//!  rekey_due? ──self_update──► commit (pending) ──► (network) ──► process ──► CommitApplied
//!        ▲                                                          │  (or CommitRejected: lost tie-break,
//!        └── confirm_commit ◄── delivery receipt ◄──────────────────┘   or Deferred: future epoch)
//!
//!  every call ──► E2eStore: one SQLite transaction (openmls_* + e2e_* tables) committed before returning
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conversation;
mod device;
mod error;
mod key_package;
mod store;

use openmls::prelude::Ciphersuite;

pub use conversation::{
    CommitRejectReason, Conversation, DEFAULT_REKEY_MAX_AGE_SECS, DEFAULT_REKEY_MAX_MESSAGES,
    GROUP_ID_LEN, GroupCommit, LARGE_GROUP_DEVICES, LARGE_GROUP_PAST_EPOCHS, ListedDevices,
    MAX_DEFERRED, MAX_FUTURE_EPOCHS, MAX_GROUP_DEVICES, MAX_LISTED_DEVICES, MAX_LISTED_USERS,
    MAX_MESSAGE_BYTES, MAX_PAST_EPOCHS, MAX_PLAINTEXT_BYTES, MAX_SKIPPED_GENERATIONS,
    MAX_WELCOME_BYTES, MemberRef, OUT_OF_ORDER_TOLERANCE, PADDING_BLOCK, Processed, RekeyPolicy,
    RosterEntry, WelcomeInfo, commit_id, inspect_welcome, message_epoch, past_epochs_for,
};
pub use device::Device;
pub use error::E2eError;
pub use key_package::{
    KEY_PACKAGE_LIFETIME_SECS, KeyPackageInfo, MAX_KEY_PACKAGE_BYTES, MAX_KEY_PACKAGES_PER_CALL,
    create_key_packages, inspect_key_package,
};
pub use key_package::{
    MAX_RETIRED_KEY_PACKAGES, USED_KEY_PACKAGE_GRACE_SECS, delete_retired_key_packages,
    delete_used_key_packages, replace_published_key_packages,
};
pub use store::{E2eStore, SCHEMA_VERSION, secure_delete_on};

/// The only MLS ciphersuite rhizo uses: X-Wing (ML-KEM-768 + X25519) KEM,
/// AES-128-GCM, SHA-256, Ed25519 signatures (code point 0x004F in
/// draft-ietf-mls-pq-ciphersuites).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_MLKEM768X25519_AES128GCM_SHA256_Ed25519;
