//! Network-scale simulations: B5 (gossipsub propagation) and B6 (Kademlia lookups).
//!
//! Hundreds of real swarms do not fit on a 2-core runner, and real swarms are not
//! deterministic; both benchmarks are therefore discrete-event simulations of the protocol
//! logic of the libp2p versions rhizo links (libp2p-gossipsub 0.50.1, libp2p-kad 0.49.0), run
//! with rhizo's configuration (`crates/rhizo-net/src/gossip.rs`, `behaviour.rs`). Nothing
//! touches the network; every run is bounded in events and fully determined by a fixed seed.
//!
//! # Layout
//!
//! - [`gossip`]: B5, gossipsub mesh, flood publish, IHAVE/IWANT, IDONTWANT.
//! - [`dht`]: B6, routing tables from sequential joins, libp2p's `ClosestPeersIter`, churn.
//! - `rng`: the seeded xoshiro256** generator both use.
//!
//! ```text
//!  run_b5(n) ── Topology::kademlia_like ──► GossipSim × 3 settings ──► B5Result ──► rows()
//!  run_b6(n, churn) ── Dht::build ──► put records ──► lookups (calm, churned) ──► B6Result ──► rows()
//! ```

pub mod dht;
pub mod gossip;
pub(crate) mod rng;

pub use dht::{B6Result, B6Scenario, run_b6};
pub use gossip::{B5Result, B5Scenario, B5Topology, run_b5};
