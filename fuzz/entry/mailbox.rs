// Entry of the `mailbox` fuzz target, shared with the stable smoke test in
// crates/rhizo-core/tests/decoder_smoke.rs (both `include!` this file).
//
// `MailboxRequest::decode` and `MailboxResponse::decode` are what a replica
// and a recipient run on every `/rhizo/mailbox/1` frame: neither may panic,
// and whatever decodes must re-encode to the same bytes (both codecs accept
// only the canonical encoding). A decoded fetch or delete is also verified,
// which must not panic either.

use std::sync::LazyLock;

use rhizo_core::DeviceKey;
use rhizo_core::mailbox::{MailboxRequest, MailboxResponse};

/// The replica PeerId bytes decoded fetches are verified against: the one the
/// frozen `mailbox_fetch_request` vector is bound to (device key seed
/// `[4; 32]`), so seeds made from it reach the signature check.
static MAILBOX_REPLICA: LazyLock<Vec<u8>> = LazyLock::new(|| {
    let mut peer = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    peer.extend_from_slice(DeviceKey::from_bytes(&[4; 32]).public().as_bytes());
    peer
});
/// Unix seconds: the time of the frozen vectors.
const MAILBOX_NOW: u64 = 1_700_000_000;

/// Runs the mailbox decoders on `data`.
fn mailbox_entry(data: &[u8]) {
    if let Ok(request) = MailboxRequest::decode(data) {
        assert_eq!(
            request.encode(),
            data,
            "a decoded request re-encodes to its bytes"
        );
        match &request {
            MailboxRequest::Fetch(fetch) => {
                let _ = fetch.verify(&MAILBOX_REPLICA, MAILBOX_NOW, 0);
            }
            MailboxRequest::Delete(delete) => {
                let _ = delete.verify(MAILBOX_NOW, 0);
            }
            MailboxRequest::Store { .. }
            | MailboxRequest::Challenge { .. }
            | MailboxRequest::Notify { .. } => {}
        }
    }
    if let Ok(response) = MailboxResponse::decode(data) {
        assert_eq!(
            response.encode(),
            data,
            "a decoded response re-encodes to its bytes"
        );
    }
}
