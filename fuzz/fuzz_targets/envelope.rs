//! Fuzzes `SecureMessage::decode` and `verify`, what a device runs on every
//! envelope it receives from the network or a mailbox: neither may panic,
//! whatever the bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizo_core::envelope::{ErrorMessage, MessageType, SecureMessage};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = SecureMessage::decode(data) else {
        return;
    };
    // Only the canonical encoding decodes: it must re-encode to the input.
    assert_eq!(message.encode(), data);
    // Signature check under the key the envelope names (a receiver would use
    // the key it looked up; both paths must be panic-free).
    let _ = message.verify(&message.sender_device);
    if message.msg_type == MessageType::Error {
        let _ = ErrorMessage::decode(&message.payload);
    }
});
