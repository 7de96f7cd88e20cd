//! The engine's random generator. Every random choice the engine makes — conversation session
//! ids, envelope nonces, agent message ids, retry jitter, the one-time KeyPackage a first
//! contact uses — comes from the one generator its [`Engine`] owns, so a simulation that seeds
//! it (from `SIM_SEED`) replays exactly, retry times included.
//!
//! Production seeds it from the operating system ([`getrandom`]): it is a CSPRNG (rand's
//! `StdRng`, ChaCha12), so nonces and ids stay unpredictable. MLS's own randomness (openmls'
//! RustCrypto provider in rhizo-e2e: HPKE, leaf secrets) does not come from here.

use std::sync::{Mutex, PoisonError};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::{Engine, EngineError};

/// A CSPRNG behind a lock (the engine's methods take `&self`); each draw is a few bytes.
pub(crate) struct EngineRng(Mutex<StdRng>);

impl EngineRng {
    /// Seeded from the operating system.
    pub(crate) fn from_os() -> Result<Self, EngineError> {
        let mut seed = <StdRng as SeedableRng>::Seed::default();
        getrandom::fill(&mut seed).map_err(EngineError::Random)?;
        Ok(Self(Mutex::new(StdRng::from_seed(seed))))
    }

    /// Seeded from `seed`: the same draws on every run (tests and simulations only).
    pub(crate) fn from_seed(seed: u64) -> Self {
        Self(Mutex::new(StdRng::seed_from_u64(seed)))
    }

    /// `N` random bytes.
    pub(crate) fn bytes<const N: usize>(&self) -> [u8; N] {
        let mut b = [0u8; N];
        // A panic while holding the lock cannot leave the generator's state half-written.
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .fill_bytes(&mut b);
        b
    }

    /// A random `u64`.
    pub(crate) fn next_u64(&self) -> u64 {
        u64::from_le_bytes(self.bytes())
    }
}

impl Engine {
    /// `N` random bytes from the engine's generator.
    pub(crate) fn random<const N: usize>(&self) -> [u8; N] {
        self.rng.bytes()
    }
}
