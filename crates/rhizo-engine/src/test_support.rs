//! The fixture the engine's tests share: two real engines (alice and bob), each on its own
//! SQLite store in a temp dir, each the other's verified contact. Only the network and the
//! clock are not real: the tests hand frames across and pass `now`.
//!
//! A test module gives the pair its own helpers through a marker type of its own
//! (`type Pair = test_support::Pair<Marker>;` then `impl Pair { … }`), so two modules' helpers
//! of the same name do not collide.

use std::marker::PhantomData;

use rhizo_core::records::{ValidRecord, validate_record};
use rhizo_e2e::RekeyPolicy;
use rhizo_store::{Store, messaging::Contact};

use crate::{Engine, Event, Me, tests::party};

/// The simulated clock's start (unix ms).
pub(crate) const T0: i64 = 1_800_000_000_000;
/// Alice's index in a [`Pair`]'s arrays.
pub(crate) const ALICE: usize = 0;
/// Bob's index in a [`Pair`]'s arrays.
pub(crate) const BOB: usize = 1;
/// The sides' names (also their contact names at each other).
pub(crate) const NAMES: [&str; 2] = ["alice", "bob"];

/// Side `side`'s identity: root key `[seed + side; 32]`, device key `[seed + side + 100; 32]`.
pub(crate) fn me(seed: u8, side: usize) -> Me {
    party(seed + side as u8, NAMES[side]).me
}

/// Side `side` as the other side's verified contact (see [`me`] for `seed`).
pub(crate) fn contact(seed: u8, side: usize) -> Contact {
    let mut contact = party(seed + side as u8, NAMES[side]).contact;
    contact.verified = true;
    contact
}

/// Alice and bob, each with an engine and a store; `M` marks whose helpers the pair carries.
pub(crate) struct Pair<M> {
    _dir: tempfile::TempDir,
    /// The engines, by side.
    pub(crate) engines: [Engine; 2],
    /// The stores, by side.
    pub(crate) stores: [Store; 2],
    /// Events each side's engine produced, in order (for the modules that collect them).
    pub(crate) events: [Vec<Event>; 2],
    _marker: PhantomData<M>,
}

impl<M> Pair<M> {
    /// Alice and bob from identity seed `seed` (see [`me`]), each the other's contact, with no
    /// conversation yet.
    pub(crate) fn new(seed: u8, rekey: RekeyPolicy) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let engines = [0, 1].map(|s| Engine::new(me(seed, s), rekey).unwrap());
        let stores = [0, 1].map(|s| {
            let mut store = crate::tests::open(&dir.path().join(format!("{}.db", NAMES[s])));
            store
                .write(|tx| tx.add_contact(&contact(seed, 1 - s), 1))
                .unwrap();
            store
        });
        Self {
            _dir: dir,
            engines,
            stores,
            events: [Vec::new(), Vec::new()],
            _marker: PhantomData,
        }
    }

    /// The temp dir holding both stores (`alice.db`, `bob.db`).
    pub(crate) fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// One of bob's KeyPackages, from his signed, validated KeyPackage record at [`T0`].
    pub(crate) fn bob_key_package(&mut self) -> Vec<u8> {
        let (key, bundle) = self.stores[BOB]
            .write(|tx| self.engines[BOB].key_package_record(tx, T0))
            .unwrap();
        let Ok(ValidRecord::KeyPackages(bundle)) =
            validate_record(&key, &bundle, (T0 / 1000) as u64)
        else {
            panic!("bob's KeyPackages do not validate");
        };
        bundle.key_packages()[0].to_vec()
    }
}
