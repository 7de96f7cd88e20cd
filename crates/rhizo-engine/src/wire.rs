//! `/rhizo/msg/1` responses: a signed receipt or an error, what they say about the peer, and
//! how many envelopes a request carries.

use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeBatch, ErrorCode, ErrorMessage, ReceiptEntry, ReceiptStatus,
    SecureMessage, SessionId, is_batch_frame,
};

use crate::Me;

/// First byte of a `/rhizo/msg/1` response carrying a signed [`DeliveryReceipt`].
pub const RESPONSE_RECEIPT: u8 = 1;
/// First byte of a `/rhizo/msg/1` response carrying an [`ErrorMessage`].
pub const RESPONSE_ERROR: u8 = 2;

/// How many envelopes a `/rhizo/msg/1` request carries: a batch frame's count (0 if it does not
/// decode: it is refused whole), 1 for a bare envelope.
pub fn batch_len(request: &[u8]) -> usize {
    if is_batch_frame(request) {
        EnvelopeBatch::decode(request).map_or(0, |b| b.envelopes.len())
    } else {
        1
    }
}

/// The `/rhizo/msg/1` answer to a peer over its rate limit.
pub fn rate_limited_response() -> Vec<u8> {
    error_response(ErrorCode::RateLimited, "too many requests; slow down", None)
}

/// What an answer we gave says about the peer that sent the request: a signed receipt means
/// it sent a well-formed, correctly signed envelope; an undecodable, oversized or forged one
/// counts against it. Refusals honest peers also get (unknown sender, replay, stale) say
/// nothing.
pub fn conduct_of(response: &[u8]) -> Option<rhizo_core::abuse::Conduct> {
    use rhizo_core::abuse::Conduct;
    match response.split_first() {
        // A batch holding a forged envelope: that one counts against the peer.
        Some((&RESPONSE_RECEIPT, body)) => match DeliveryReceipt::decode(body) {
            Ok(r)
                if r.entries
                    .iter()
                    .any(|e| e.status == ReceiptStatus::Rejected(ErrorCode::InvalidSignature)) =>
            {
                Some(Conduct::InvalidMessage)
            }
            _ => Some(Conduct::ValidReply),
        },
        Some((&RESPONSE_ERROR, body)) => match ErrorMessage::decode(body).ok()?.code {
            ErrorCode::Malformed | ErrorCode::InvalidVersion | ErrorCode::InvalidSignature => {
                Some(Conduct::InvalidMessage)
            }
            ErrorCode::TooLarge => Some(Conduct::Oversized),
            _ => None,
        },
        _ => None,
    }
}

/// The `MALFORMED` answer a node older than batch frames gives to one (it reads it as a broken
/// envelope); a node run without batch frames answers the same.
pub fn batch_refused_response() -> Vec<u8> {
    error_response(
        ErrorCode::Malformed,
        "not an envelope (this node takes no batch frames)",
        None,
    )
}

pub(crate) fn error_response(
    code: ErrorCode,
    detail: &str,
    refused: Option<(SessionId, u64)>,
) -> Vec<u8> {
    let mut out = vec![RESPONSE_ERROR];
    out.extend(ErrorMessage::new(code, detail, refused).encode());
    out
}

pub(crate) fn receipt_response(
    me: &Me,
    answers: &[(&SecureMessage, ReceiptStatus)],
    now: i64,
) -> Vec<u8> {
    let mut receipt = DeliveryReceipt {
        recipient_device: me.device.public(),
        timestamp: crate::ms(now),
        entries: answers
            .iter()
            .map(|(message, status)| ReceiptEntry::for_envelope(message, *status))
            .collect(),
        signature: [0; 64],
    };
    if receipt.sign(&me.device).is_err() {
        return error_response(ErrorCode::Internal, "cannot sign a receipt", None);
    }
    let mut out = vec![RESPONSE_RECEIPT];
    out.extend(receipt.encode());
    out
}

/// The receipt status inside a response built by [`receipt_response`].
pub(crate) fn status_of_response(response: &[u8]) -> Option<ReceiptStatus> {
    match response.split_first() {
        Some((&RESPONSE_RECEIPT, body)) => DeliveryReceipt::decode(body)
            .ok()
            .and_then(|r| r.entries.first().map(|e| e.status)),
        _ => None,
    }
}

/// The error code of an error response.
pub(crate) fn error_code_of(response: &[u8]) -> Option<ErrorCode> {
    match response.split_first() {
        Some((&RESPONSE_ERROR, body)) => ErrorMessage::decode(body).ok().map(|e| e.code),
        _ => None,
    }
}

/// The `/rhizo/msg/1` answer when the node itself failed (nothing was decided).
pub fn internal_error_response() -> Vec<u8> {
    error_response(ErrorCode::Internal, "internal error", None)
}
