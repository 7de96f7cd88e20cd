//! Fuzzes the `batch` decoders; the checks live in `fuzz/entry/batch.rs`,
//! which the stable smoke test (crates/rhizo-core/tests/decoder_smoke.rs)
//! runs too.

#![no_main]

include!("../entry/batch.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| batch_entry(data));
