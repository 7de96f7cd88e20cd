//! Fuzzes the `channel` decoders; the checks live in `fuzz/entry/channel.rs`,
//! which the stable smoke test (crates/rhizo-core/tests/decoder_smoke.rs)
//! runs too.

#![no_main]

include!("../entry/channel.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| channel_entry(data));
