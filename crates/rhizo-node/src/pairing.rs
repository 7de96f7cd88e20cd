//! Light clients paired with this node (issue 17): the pairing ticket `rhizo pair` prints, the
//! paired channel both ends speak, and the book of paired clients.
//!
//! ```text
//!  rhizo pair ─▶ POST /v1/pairings ─▶ PairingBook::new_ticket ─▶ "rhz1pair…" + QR
//!                                                                  │ (carried to the client)
//!  light client ── GET /v1/ws: Hello/Reply/Finish (channel) ─▶ PairingBook::psk_for (pending
//!                 ticket or paired client) ─▶ Session ─▶ api::ws (JSON messages in frames)
//! ```
//!
//! # Layout
//! - [`channel`]: the sans-IO handshake (HPKE with X-Wing) and the AEAD frames.
//! - [`ticket`]: the pairing ticket (`rhz1pair…`) and its QR code.
//! - [`book`]: the node's channel key, pending tickets and paired clients, under the data dir.

pub mod book;
pub mod channel;
pub mod ticket;

pub use book::{PairedClient, PairedClientView, PairingBook, PairingError};
pub use channel::{ChannelError, KemKeyPair, Session};
pub use ticket::PairTicket;
