// Entry of the `pex` fuzz target, shared with the stable smoke test in
// crates/rhizo-node/tests/pex_decoder_smoke.rs (both `include!` this file).
//
// `rhizo_node::pex::parse_sample` is what a node runs on every
// `/rhizo/pex/1` response. It must not panic, and what it returns stays
// within the sample limits and never names the node itself.

use rhizo_net::PeerId;
use rhizo_node::pex::{MAX_SAMPLE_ADDRS, MAX_SAMPLE_PEERS, parse_sample};

/// Runs the pex sample decoder on `data`, as node `me`.
fn pex_entry(data: &[u8], me: &PeerId) {
    let Ok(peers) = parse_sample(data, me) else {
        return;
    };
    assert!(peers.len() <= MAX_SAMPLE_PEERS);
    for (peer, addrs) in &peers {
        assert_ne!(peer, me, "a sample never hands a node itself");
        assert!(!addrs.is_empty() && addrs.len() <= MAX_SAMPLE_ADDRS);
    }
}
