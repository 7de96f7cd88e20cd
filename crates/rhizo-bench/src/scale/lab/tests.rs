//! The eclipse's key grinding: a Sybil's id lands next to the target, an honest node's does
//! not move.

use super::{Lab, eclipse_bits};

fn shared_bits(peer: libp2p::PeerId, target: &[u8]) -> u32 {
    let id = libp2p::kad::KBucketKey::from(peer);
    let target = libp2p::kad::KBucketKey::new(target.to_vec());
    id.distance(&target).ilog2().map_or(256, |l| 255 - l)
}

#[test]
fn an_eclipsing_sybil_id_shares_the_target_prefix() {
    let target = b"the mailbox key under attack".to_vec();
    let mut lab = Lab::new(19, None, true);
    let honest = lab.keypair(3, false).expect("honest key");
    lab.eclipse(target.clone());
    let sybil = lab.keypair(3, true).expect("ground key");
    let same_honest = lab.keypair(3, false).expect("honest key");
    assert_eq!(
        honest.public(),
        same_honest.public(),
        "honest keys come from the seed alone"
    );
    let bits = eclipse_bits(0);
    assert!(
        shared_bits(sybil.public().to_peer_id(), &target) >= bits,
        "the Sybil's id shares fewer than {bits} leading bits with the target"
    );
    assert_eq!(eclipse_bits(1000), 14, "log2(1000) rounded up + 4");
}
