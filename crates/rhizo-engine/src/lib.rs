//! rhizo's messaging protocol as a sans-IO engine (the quinn-proto half of a quinn / quinn-proto
//! split; `rhizo-node` is the thin async driver).
//!
//! The engine reads no clock, opens no socket and spawns no task: every input is a store
//! transaction, bytes and `now` (unix milliseconds), and every output is data — frames to send,
//! events for the local API, and the next deadline. Conversations have N members with several
//! devices each.
//!
//! # Layout
//!
//! - [`mailbox`]: the mailbox replica's rules (what a replica answers to each request).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mailbox;
