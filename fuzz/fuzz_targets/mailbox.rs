//! Fuzzes the `mailbox` decoders; the checks live in `fuzz/entry/mailbox.rs`,
//! which the stable smoke test (crates/rhizo-core/tests/decoder_smoke.rs)
//! runs too.

#![no_main]

include!("../entry/mailbox.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| mailbox_entry(data));
