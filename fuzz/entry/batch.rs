// Entry of the `batch` fuzz target, shared with the stable smoke test in
// crates/rhizo-core/tests/decoder_smoke.rs (both `include!` this file).
//
// `EnvelopeBatch::decode` is what a device runs on every `/rhizo/msg/1`
// request that starts with the batch marker. It must not panic; a decoded
// batch must encode again (within the same limits) to a frame that decodes to
// the same batch, and each envelope in it goes through `SecureMessage::decode`.

use rhizo_core::envelope::{EnvelopeBatch, SecureMessage, is_batch_frame};

/// Runs the batch decoder on `data`.
fn batch_entry(data: &[u8]) {
    let Ok(batch) = EnvelopeBatch::decode(data) else {
        return;
    };
    assert!(is_batch_frame(data), "only a frame with the marker decodes");
    let frame = batch
        .encode()
        .expect("a decoded batch is within the limits");
    assert_eq!(EnvelopeBatch::decode(&frame).as_ref(), Ok(&batch));
    for envelope in &batch.envelopes {
        if let Ok(message) = SecureMessage::decode(envelope) {
            let _ = message.verify(&message.sender_device);
        }
    }
}
