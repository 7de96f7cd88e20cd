//! Fuzzes `DeliveryReceipt::decode` and `verify`, what a sender (and a
//! mailbox replica) runs on every receipt: neither may panic, whatever the
//! bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizo_core::envelope::DeliveryReceipt;

fuzz_target!(|data: &[u8]| {
    let Ok(receipt) = DeliveryReceipt::decode(data) else {
        return;
    };
    // Only the canonical encoding decodes: it must re-encode to the input.
    assert_eq!(receipt.encode(), data);
    let _ = receipt.verify(&receipt.recipient_device);
});
