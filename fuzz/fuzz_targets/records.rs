//! Fuzzes `validate_record`, the check every DHT storing node runs on
//! untrusted `PUT_VALUE`s: it must never panic, whatever the key and value.
//!
//! The first input byte says how many of the following bytes form the key
//! (0–63, so both right-length and wrong-length keys occur); the rest is the
//! value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rhizo_core::records::validate_record;

/// Fixed clock: the signatures are what the fuzzer cannot forge, the
/// lifetime checks only need a plausible `now`.
const NOW: u64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split % 64).min(rest.len());
    let (key, value) = rest.split_at(split);
    if let Ok(record) = validate_record(key, value, NOW) {
        // Whatever passes must re-encode to exactly the stored bytes.
        assert_eq!(record.encode(), value);
    }
});
