//! Delivery state machines, sans-IO in the style of `quinn-proto`: the sender's
//! [`DeliveryTracker`] (retries until a receipt arrives) and the receiver's
//! [`ReceiveOrdering`] (puts envelopes back in sequence order). Neither sends,
//! sleeps nor reads a clock: the driver passes `now` (unix milliseconds) in,
//! and asks [`DeliveryTracker::poll_transmit`], [`DeliveryTracker::poll_timeout`]
//! and [`ReceiveOrdering::poll_timeout`] what to do and when to wake up.
//!
//! ```text
//!  sender device                                         recipient device
//!  ─────────────                                         ────────────────
//!  outbox (bytes) ◄── id ── DeliveryTracker                SecureMessage::decode + verify
//!        │                    ▲ poll_transmit(now)                │
//!        └──── envelope ══════╪═══(lost, reordered, duplicated)══►│
//!                             │                          SeenSet::check_and_insert
//!                             │                            New │        │ Replay
//!                             │                                ▼        │
//!                             │             ReceiveOrdering::push(seq)  │
//!                             │                  │ contiguous run       │
//!                             │                  ▼                      │
//!                             │             application                 │
//!                             │                                         │
//!        on_receipt(now) ◄════╧═══ DeliveryReceipt (DELIVERED) ◄════════┘ (for New and Replay)
//! ```
//!
//! # Guarantees
//!
//! With a sender that keeps retrying (`poll_transmit` on its timeouts) and a
//! receiver that acknowledges every verified envelope — *including
//! duplicates*, since the first receipt may have been lost — every envelope
//! is eventually delivered to the application exactly once and in order, and
//! the sender sees `Delivered` for all of them, whatever the channel drops,
//! duplicates or reorders, as long as it eventually lets some copies through.
//! `tests/envelope_convergence.rs` checks this on a simulated clock.
//!
//! # Layout
//!
//! * `tracker` — [`DeliveryTracker`], [`DeliveryState`], [`RetryPolicy`].
//! * `ordering` — [`ReceiveOrdering`], [`Released`].

mod ordering;
mod tracker;

pub use ordering::{
    DEFAULT_GAP_TIMEOUT, MAX_REORDER_WINDOW, MAX_TRACKED_HOLES, ReceiveOrdering, Released,
};
pub use tracker::{
    DeliveryError, DeliveryState, DeliveryTracker, INITIAL_BACKOFF, MAX_BACKOFF, MAX_IN_FLIGHT,
    MAX_TRACKED_MESSAGES, MessageId, RetryPolicy, StateChange,
};
