//! Fuzzes `rhizo_node::pex::parse_sample`, what a node runs on every
//! `/rhizo/pex/1` response; the checks live in `fuzz/entry/pex.rs`, which the
//! stable smoke test (crates/rhizo-node/tests/pex_decoder_smoke.rs) runs too.

#![no_main]

include!("../entry/pex.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // A fixed node identity: the decoder drops entries naming it.
    let me = rhizo_net::Keypair::ed25519_from_bytes([7u8; 32])
        .expect("32-byte seed")
        .public()
        .to_peer_id();
    pex_entry(data, &me);
});
