//! [`EngineError`]: why an engine operation failed (the database, MLS, signing, randomness).
//!
//! Refusals of a peer's envelope are not errors: they are answered on the wire (see
//! [`crate::wire`]). A user's mistake (an unknown contact, a bad ticket) is the driver's typed
//! error per operation; the engine reports what it could not do.

use rhizo_core::envelope::EnvelopeError;
use rhizo_core::records::RecordError;
use rhizo_e2e::E2eError;
use rhizo_store::StoreError;

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// MLS (rhizo-e2e).
    #[error("end-to-end encryption: {0}")]
    Mls(#[from] E2eError),
    /// Signing or encoding an envelope or receipt.
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    /// Building or signing a DHT record or profile.
    #[error("record: {0}")]
    Record(#[from] RecordError),
    /// The system's random number generator failed.
    #[error("the system's random number generator failed: {0}")]
    Random(#[source] getrandom::Error),
    /// The store does not hold what it must (e.g. a conversation's MLS state is missing).
    #[error("internal error: {0}")]
    Internal(&'static str),
}
