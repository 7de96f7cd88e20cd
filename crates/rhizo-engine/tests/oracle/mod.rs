//! The oracle for the engine's simulation tests: in-memory models of what delivery must look
//! like — the sender's [`DeliveryTracker`] (retries until a receipt arrives, on the node's
//! retry schedule) and the receiver's [`ReceiveOrdering`] (puts envelopes back in sequence
//! order). Sans-IO in the style of `quinn-proto`: `now` in, what to do and when to wake up out.
//! `oracle_convergence.rs` checks their exactly-once, in-order guarantee over seeded random
//! schedules; simulation tests of two engines compare against them.
//!
//! ```text
//!  sender                                                recipient
//!  outbox (bytes) ◄── id ── DeliveryTracker              SecureMessage::decode + verify
//!        │                    ▲ poll_transmit(now)                │
//!        └──── envelope ══════╪═══(lost, reordered, duplicated)══►│ SeenSet
//!                             │                          ReceiveOrdering::push(seq)
//!        on_receipt(now) ◄════╧═══ DeliveryReceipt (DELIVERED) ◄══┘ (for new and replayed)
//! ```
// Test support shared by the test crates that `mod oracle;` it: each uses a part of its
// surface, and its `pub` items are that surface, not an export.
#![allow(dead_code, unused_imports, unreachable_pub)]

mod ordering;
mod tracker;

pub use ordering::{
    DEFAULT_GAP_TIMEOUT, MAX_REORDER_WINDOW, MAX_TRACKED_HOLES, ReceiveOrdering, Released,
};
pub use tracker::{
    DeliveryError, DeliveryState, DeliveryTracker, INITIAL_BACKOFF, MAX_BACKOFF, MAX_IN_FLIGHT,
    MAX_TRACKED_MESSAGES, MessageId, RetryPolicy, StateChange,
};
