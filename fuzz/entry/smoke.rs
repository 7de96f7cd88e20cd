// Inputs for the stable smoke tests that run the fuzz entries without
// cargo-fuzz (crates/rhizo-core/tests/decoder_smoke.rs,
// crates/rhizo-node/tests/pex_decoder_smoke.rs): seeded pseudo-random bytes,
// and every truncation and single-byte mutation of a valid input.

/// A small deterministic generator (SplitMix64): the same seed gives the
/// same inputs on every run and platform.
struct SmokeRng(u64);

impl SmokeRng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `count` inputs of 0 to `max_len` random bytes.
    fn inputs(&mut self, count: usize, max_len: usize) -> Vec<Vec<u8>> {
        (0..count)
            .map(|_| {
                let len = usize::try_from(self.next_u64()).unwrap_or(0) % (max_len + 1);
                (0..len).map(|_| self.next_u64().to_le_bytes()[0]).collect()
            })
            .collect()
    }
}

/// Every prefix of `valid`, and `valid` with each byte in turn XORed with a
/// pseudo-random non-zero value.
fn truncations_and_mutations(valid: &[u8], rng: &mut SmokeRng) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = (0..=valid.len()).map(|end| valid[..end].to_vec()).collect();
    for i in 0..valid.len() {
        let mut mutated = valid.to_vec();
        mutated[i] ^= rng.next_u64().to_le_bytes()[0] | 1;
        out.push(mutated);
    }
    out
}
