//! Stable smoke test of the `pex` fuzz target: runs the entry cargo-fuzz runs
//! (`fuzz/entry/pex.rs`, included below) on seeded pseudo-random bytes and on
//! every truncation and single-byte mutation of a valid sample, so CI
//! exercises `rhizo_node::pex::parse_sample` without a nightly toolchain.

use prost::Message as _;
use rhizo_core::proto::{PexPeer, PexSample};
use rhizo_net::Keypair;

include!("../../../fuzz/entry/smoke.rs");
include!("../../../fuzz/entry/pex.rs");

/// Random inputs.
const RANDOM_INPUTS: usize = 2_000;
/// Longest random input.
const RANDOM_MAX_LEN: usize = 512;

fn peer(seed: u8) -> PeerId {
    Keypair::ed25519_from_bytes([seed; 32])
        .expect("32-byte seed")
        .public()
        .to_peer_id()
}

/// A valid sample: two peers with addresses, one of them `me`.
fn sample(me: &PeerId) -> Vec<u8> {
    let entry = |id: &PeerId, addrs: &[&str]| PexPeer {
        peer_id: id.to_bytes().into(),
        addrs: addrs.iter().map(|a| (*a).to_owned()).collect(),
    };
    PexSample {
        peers: vec![
            entry(
                &peer(1),
                &["/ip4/127.0.0.1/tcp/4001", "/ip6/::1/udp/4001/quic-v1"],
            ),
            entry(me, &["/ip4/127.0.0.1/tcp/4002"]),
        ],
    }
    .encode_to_vec()
}

#[test]
fn pex_entry_survives_random_and_damaged_samples() {
    let me = peer(7);
    let valid = sample(&me);
    // The valid sample decodes, without `me`.
    let parsed = parse_sample(&valid, &me).expect("valid sample");
    assert_eq!(parsed.len(), 1);
    let mut rng = SmokeRng(4);
    for input in rng.inputs(RANDOM_INPUTS, RANDOM_MAX_LEN) {
        pex_entry(&input, &me);
    }
    for input in truncations_and_mutations(&valid, &mut rng) {
        pex_entry(&input, &me);
    }
}
