//! Pieces of Welcomes too large for one envelope: each piece is written to the store
//! (rhizo-store `welcome_parts`, bounded and expiring) in the transaction of its envelope, so it
//! is kept before its receipt goes back and survives a restart; the last piece yields the
//! whole Welcome, reassembled from the table, which then takes the Welcome path (a contact's:
//! joined or held; a stranger's group invitation: held as a group request).
//!
//! ```text
//!  WELCOME_PART envelope ─▶ decode ─▶ keep_welcome_part (tx) ─▶ Pending / Duplicate: answered
//!     ─▶ Complete(welcome, its hash checked) ─▶ the Welcome path with the last part's envelope
//! ```

use rhizo_core::{
    envelope::{ErrorCode, SecureMessage},
    welcome::{Reassembly, WelcomePart, WelcomePartError},
};
use rhizo_store::Tx;
use tracing::debug;

use crate::inbound::Reject;

/// Keeps one piece of a Welcome sent in parts (inside the envelope's transaction): the whole
/// Welcome once this was the last piece, `None` while pieces are missing (or it was a
/// duplicate).
///
/// # Errors
///
/// `QUOTA_EXCEEDED` (transient: the sender has too many unfinished Welcomes here),
/// `MALFORMED` for a piece that does not decode or does not fit the others, or the database
/// (a damaged stored piece says so).
pub(crate) fn keep_part(
    tx: &mut Tx<'_>,
    message: &SecureMessage,
    now: i64,
) -> Result<Option<Vec<u8>>, Reject> {
    let part = WelcomePart::decode(&message.payload).map_err(|e| {
        debug!(error = %e, "a Welcome part was malformed");
        Reject::Code(ErrorCode::Malformed)
    })?;
    let kept = tx.keep_welcome_part(message.sender_id.as_bytes(), &part, now)?;
    match kept {
        Ok(Reassembly::Complete(welcome)) => Ok(Some(welcome)),
        Ok(Reassembly::Pending { .. } | Reassembly::Duplicate) => Ok(None),
        Err(e) => {
            debug!(error = %e, "a Welcome part was refused");
            Err(Reject::Code(match e {
                WelcomePartError::TooManyPending => ErrorCode::QuotaExceeded,
                _ => ErrorCode::Malformed,
            }))
        }
    }
}
