//! Contacts, conversations, messages (with the outbox) and the persisted seen-set, one file
//! per table group.
//!
//! ```text
//!  contacts ─┬─ contact_devices          (who, and which devices speak for them)   contacts.rs
//!            └─ conversations ── messages (history; outgoing rows not yet        conversations.rs
//!                                          delivered = the outbox)             messages.rs, outbox.rs
//!                                         (parked while the conversation is re-established)  parked.rs
//!                                         (held for a fresh epoch after a restore)     held.rs
//!  seen                                   (sender_device, session, seq) already accepted   seen.rs
//!  history pages (a linked device's history transfer, by row id)                     history.rs
//!  conversation_settings (muted, archived); renaming, removing, deleting messages     manage.rs
//! ```
//!
//! Reads are methods of [`Reader`](crate::Reader), writes of [`Tx`](crate::Tx); every
//! multi-row change runs in one savepoint. Times are unix milliseconds passed in by the caller.

mod contacts;
mod conversations;
mod held;
mod history;
mod manage;
mod messages;
mod outbox;
mod parked;
mod seen;

pub use contacts::{
    AddContact, Contact, ContactDevice, MAX_CONTACT_NAME_CHARS, MAX_DEVICES_PER_CONTACT,
};
pub use conversations::{ConversationRow, SEQUENCES_PER_MS, sequence_floor};
pub use held::HeldMessage;
pub use history::{HistoryRow, HistoryStored, MAX_PENDING_HISTORY};
pub use manage::{ConversationSettings, DeleteTarget};
pub use messages::{MAX_HISTORY, MessageRow, MessageState, NewMessage, SentCommit, UnreadMessage};
pub use outbox::{NO_RETRY, OutboxItem, OutboxSummaryRow};
pub use parked::{PARKED_KINDS, Parked, ParkedContact};

/// Profiles live in [`crate::profiles`]; re-exported here next to the other conversation data.
pub use crate::profiles::ProfileRow;

pub(crate) use messages::blob;

#[cfg(test)]
mod tests;
