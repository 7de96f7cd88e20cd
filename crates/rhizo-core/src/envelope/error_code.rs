//! [`ErrorCode`]: stable wire error codes, and [`ErrorMessage`], which carries
//! one back to a sender.

use std::fmt;

use bytes::Bytes;
use prost::Message as _;

use super::{EnvelopeError, SessionId, check_size, ensure_canonical, fixed, sequence};
use crate::proto;

/// Longest [`ErrorMessage::detail`]: a log line, not a document.
pub const MAX_ERROR_DETAIL_BYTES: usize = 256;
/// Largest encoded [`ErrorMessage`]: the detail plus at most 34 bytes of other
/// fields, rounded up.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 512;

// code (1 + 3) + detail (1 + 2 + 256) + session_id (2 + 16) + sequence_num (1 + 10).
const _: () = assert!(4 + 3 + MAX_ERROR_DETAIL_BYTES + 18 + 11 <= MAX_ERROR_MESSAGE_BYTES);

/// Stable wire error codes (seed 004's list plus rhizo's own). Values never
/// change; new codes get new numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The envelope (or receipt) version is not supported.
    InvalidVersion = 1,
    /// A signature did not verify.
    InvalidSignature = 2,
    /// This envelope id was already received (with different content, if it
    /// comes back in a receipt: identical duplicates are acknowledged as
    /// delivered).
    ReplayDetected = 3,
    /// The sender or its device is not known, or not certified for the UID.
    UnknownSender = 4,
    /// The envelope is older than the acceptance window.
    SessionExpired = 5,
    /// The sequence number is invalid or too far ahead of what was received.
    SequenceError = 6,
    /// The payload could not be decrypted (MLS).
    DecryptionFailed = 7,
    /// The bytes are not a well-formed message.
    Malformed = 8,
    /// The message exceeds a size limit.
    TooLarge = 9,
    /// The receiver is refusing this sender for now; retry later.
    RateLimited = 10,
    /// The conversation (MLS group) is not known to the receiver.
    UnknownSession = 11,
    /// The receiver failed internally (for example storage); retry later.
    Internal = 12,
    /// A mailbox replica's quota for this sender or recipient is full; retry
    /// later or elsewhere. Nothing already stored was dropped.
    QuotaExceeded = 13,
    /// The receiver does not have this conversation and never will (its user declined the
    /// message request that carried its Welcome, or the Welcome was refused for good): the
    /// sender closes it and starts a new one. Final.
    SessionClosed = 14,
    /// The conversation (MLS group) has a member device the receiver does not
    /// expect: neither its own nor a listed device of the contact. A Welcome
    /// or commit that would make it so is refused.
    UnexpectedMember = 15,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [Self; 15] = [
        Self::InvalidVersion,
        Self::InvalidSignature,
        Self::ReplayDetected,
        Self::UnknownSender,
        Self::SessionExpired,
        Self::SequenceError,
        Self::DecryptionFailed,
        Self::Malformed,
        Self::TooLarge,
        Self::RateLimited,
        Self::UnknownSession,
        Self::Internal,
        Self::QuotaExceeded,
        Self::SessionClosed,
        Self::UnexpectedMember,
    ];

    /// The numeric wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// Parses a wire value; `None` if unknown.
    pub fn from_u16(value: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_u16() == value)
    }

    /// The stable name, e.g. `"INVALID_VERSION"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::InvalidVersion => "INVALID_VERSION",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::ReplayDetected => "REPLAY_DETECTED",
            Self::UnknownSender => "UNKNOWN_SENDER",
            Self::SessionExpired => "SESSION_EXPIRED",
            Self::SequenceError => "SEQUENCE_ERROR",
            Self::DecryptionFailed => "DECRYPTION_FAILED",
            Self::Malformed => "MALFORMED",
            Self::TooLarge => "TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::UnknownSession => "UNKNOWN_SESSION",
            Self::Internal => "INTERNAL",
            Self::QuotaExceeded => "QUOTA_EXCEEDED",
            Self::SessionClosed => "SESSION_CLOSED",
            Self::UnexpectedMember => "UNEXPECTED_MEMBER",
        }
    }

    /// Whether sending the same envelope again later may succeed
    /// ([`RateLimited`](Self::RateLimited), [`Internal`](Self::Internal),
    /// [`SequenceError`](Self::SequenceError) — the receiver's reorder window
    /// moves on — and [`UnknownSession`](Self::UnknownSession) — the Welcome
    /// may still be on its way). Other codes are final for that envelope.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            Self::RateLimited
                | Self::Internal
                | Self::SequenceError
                | Self::UnknownSession
                | Self::QuotaExceeded
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a protobuf `uint32` error code.
pub(super) fn code_from_u32(value: u32) -> Result<ErrorCode, EnvelopeError> {
    u16::try_from(value)
        .ok()
        .and_then(ErrorCode::from_u16)
        .ok_or(EnvelopeError::InvalidErrorCode(value))
}

/// Tells a sender why its envelope was refused. Sent as the payload of a
/// signed [`SecureMessage`](super::SecureMessage) of type
/// [`MessageType::Error`](super::MessageType::Error); wire format in the
/// [module docs](super#errormessage-at-most-max_error_message_bytes).
///
/// The detail is the peer's text: log it, never show it as trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorMessage {
    /// What went wrong.
    pub code: ErrorCode,
    /// Short explanation, at most [`MAX_ERROR_DETAIL_BYTES`] of UTF-8.
    pub detail: String,
    /// The refused envelope's `(session_id, sequence_num)`, if it could be
    /// parsed that far.
    pub refused: Option<(SessionId, u64)>,
}

impl ErrorMessage {
    /// Builds an error message, cutting `detail` at a character boundary to
    /// [`MAX_ERROR_DETAIL_BYTES`].
    pub fn new(code: ErrorCode, detail: &str, refused: Option<(SessionId, u64)>) -> Self {
        let mut end = detail.len().min(MAX_ERROR_DETAIL_BYTES);
        while !detail.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            code,
            detail: detail[..end].to_owned(),
            refused,
        }
    }

    /// Encodes the message (canonical protobuf).
    pub fn encode(&self) -> Vec<u8> {
        let (session_id, sequence_num) = match self.refused {
            Some((session, seq)) => (Bytes::copy_from_slice(session.as_bytes()), seq),
            None => (Bytes::new(), 0),
        };
        proto::ErrorMessage {
            code: u32::from(self.code.as_u16()),
            detail: self.detail.clone(),
            session_id,
            sequence_num,
        }
        .encode_to_vec()
    }

    /// Decodes and checks an error message (size first).
    ///
    /// # Errors
    ///
    /// [`EnvelopeError::TooLarge`] before parsing above
    /// [`MAX_ERROR_MESSAGE_BYTES`]; [`EnvelopeError::InvalidErrorCode`] for an
    /// unknown code; [`EnvelopeError::DetailTooLong`];
    /// [`EnvelopeError::PartialReference`] if only one of session id and
    /// sequence number is set; [`EnvelopeError::NonCanonical`]; other
    /// variants for malformed fields.
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        check_size(bytes.len(), MAX_ERROR_MESSAGE_BYTES)?;
        let wire = proto::ErrorMessage::decode(bytes)?;
        let code = code_from_u32(wire.code)?;
        if wire.detail.len() > MAX_ERROR_DETAIL_BYTES {
            return Err(EnvelopeError::DetailTooLong {
                len: wire.detail.len(),
                max: MAX_ERROR_DETAIL_BYTES,
            });
        }
        let refused = match (wire.session_id.is_empty(), wire.sequence_num) {
            (true, 0) => None,
            (false, seq) if seq != 0 => Some((
                SessionId::from_bytes(fixed("session_id", &wire.session_id)?),
                sequence(seq)?,
            )),
            _ => return Err(EnvelopeError::PartialReference),
        };
        ensure_canonical(&wire, bytes)?;
        Ok(Self {
            code,
            detail: wire.detail,
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let expected = [
            (1, "INVALID_VERSION"),
            (2, "INVALID_SIGNATURE"),
            (3, "REPLAY_DETECTED"),
            (4, "UNKNOWN_SENDER"),
            (5, "SESSION_EXPIRED"),
            (6, "SEQUENCE_ERROR"),
            (7, "DECRYPTION_FAILED"),
            (8, "MALFORMED"),
            (9, "TOO_LARGE"),
            (10, "RATE_LIMITED"),
            (11, "UNKNOWN_SESSION"),
            (12, "INTERNAL"),
            (13, "QUOTA_EXCEEDED"),
            (14, "SESSION_CLOSED"),
            (15, "UNEXPECTED_MEMBER"),
        ];
        for (code, (value, name)) in ErrorCode::ALL.into_iter().zip(expected) {
            assert_eq!(code.as_u16(), value);
            assert_eq!(code.as_str(), name);
            assert_eq!(code.to_string(), name);
            assert_eq!(ErrorCode::from_u16(value), Some(code));
        }
        assert_eq!(ErrorCode::from_u16(0), None);
        assert_eq!(ErrorCode::from_u16(16), None);
        assert_eq!(
            code_from_u32(70_000),
            Err(EnvelopeError::InvalidErrorCode(70_000))
        );
    }

    #[test]
    fn error_message_round_trip() {
        let session = SessionId::from_bytes([7; 16]);
        for message in [
            ErrorMessage::new(ErrorCode::Malformed, "bad", None),
            ErrorMessage::new(ErrorCode::ReplayDetected, "", Some((session, 9))),
        ] {
            let bytes = message.encode();
            assert_eq!(ErrorMessage::decode(&bytes), Ok(message));
        }
    }

    #[test]
    fn detail_is_cut_at_a_char_boundary() {
        let long = "é".repeat(200); // 400 bytes
        let message = ErrorMessage::new(ErrorCode::Internal, &long, None);
        assert_eq!(message.detail.len(), 256);
        let bytes = message.encode();
        assert!(bytes.len() <= MAX_ERROR_MESSAGE_BYTES);
        assert_eq!(ErrorMessage::decode(&bytes), Ok(message));

        let over = proto::ErrorMessage {
            code: 8,
            detail: "x".repeat(257),
            session_id: Bytes::new(),
            sequence_num: 0,
        };
        assert!(matches!(
            ErrorMessage::decode(&over.encode_to_vec()),
            Err(EnvelopeError::DetailTooLong { len: 257, .. })
        ));
    }

    #[test]
    fn partial_references_are_rejected() {
        let wire = proto::ErrorMessage {
            code: 8,
            detail: String::new(),
            session_id: Bytes::new(),
            sequence_num: 3,
        };
        assert_eq!(
            ErrorMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::PartialReference)
        );
        let wire = proto::ErrorMessage {
            session_id: Bytes::from_static(&[1; 16]),
            sequence_num: 0,
            ..wire
        };
        assert_eq!(
            ErrorMessage::decode(&wire.encode_to_vec()),
            Err(EnvelopeError::PartialReference)
        );
        assert_eq!(
            ErrorMessage::decode(&[0x08, 0x00]),
            Err(EnvelopeError::InvalidErrorCode(0))
        );
    }
}
