//! The rhizo daemon: loads the identity and config, opens the store, starts the network and the
//! local API, keeps the peer book up to date, and shuts down cleanly.
//!
//! ```text
//!  config (defaults < file < env < flags)      data dir (keys, token)      rhizo.db (peer book)
//!          └──────────────┬───────────────────────────┴─────────────────────────┘
//!                         ▼
//!                    node::run ──▶ rhizo_net::EventLoop (Swarm) ──NetEvent──▶ peer book writer
//!                         │                 ▲
//!                         ▼                 │ Client
//!                 api (axum, 127.0.0.1, bearer token): /health /peers /stats /public-key /metrics
//! ```
//!
//! # Layout
//! - [`clock`]: the injected [`clock::Clock`] every timer reads.
//! - [`config`]: settings and their precedence.
//! - [`data_dir`]: key files, API token and address.
//! - [`api`]: the local HTTP API and its JSON types.
//! - [`messaging`]: contacts, MLS conversations, envelopes, outbox, receipts.
//! - [`events`]: what `GET /v1/events` streams.
//! - [`records`]: which DHT records the node stores for others.
//! - [`metrics`]: Prometheus text rendering.
//! - [`node`]: [`node::run`], the daemon's main loop.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod channels;
pub mod clock;
pub mod config;
mod conv_cache;
pub mod data_dir;
pub mod events;
pub mod geoip;
pub mod mailbox;
pub mod messaging;
pub mod metrics;
pub mod node;
pub mod peer_policy;
pub mod pex;
pub mod record_validator;

pub use config::{Config, ConfigLayer};
pub use data_dir::{DataDir, LocalIdentity};
pub use node::{NodeError, run};

/// The agent version this build announces to peers.
pub const AGENT_VERSION: &str = concat!("rhizo/", env!("CARGO_PKG_VERSION"));

/// Seconds since the Unix epoch (the node's one clock read for stored timestamps).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
