//! The rhizo daemon: loads the identity and config, opens the database, starts the network and
//! the local API, runs the messaging, mailbox, channel and peer services, and shuts down
//! cleanly.
//!
//! ```text
//!  config (defaults < file < env < flags)      data dir (keys, token)      rhizo.db
//!          └──────────────┬───────────────────────────┴─────────────────────────┘
//!                         ▼                                    rhizo_store::Db (one owner:
//!                    node::run ──▶ rhizo_net::EventLoop (Swarm)  writer thread + readers)
//!                         │            ▲         │ NetEvent          ▲
//!                         │            │ Client  ▼                   │ read / write / try_write
//!                         │     peer_policy, messaging, mailbox, channels, pex, peer book
//!                         ▼
//!                 api (axum, 127.0.0.1, bearer token): /v1/… /metrics
//! ```
//!
//! # Layout
//! - [`a2a`]: the A2A 1.0 binding: remote agents as A2A endpoints on the local API, and a local
//!   A2A server reachable over rhizo (`agent.a2a_url`).
//! - [`agent_wake`]: wake on task: agent presence and the wake-command supervisor.
//! - [`api`]: the local HTTP API and its JSON types.
//! - [`channels`]: public channels over gossipsub, with their post history.
//! - [`clock`]: the injected [`clock::Clock`] every timer reads.
//! - [`clock_skew`]: clock skew against peers, from the timestamps of their delivery receipts
//!   (`rhizo doctor`).
//! - [`config`]: settings and their precedence.
//! - [`data_dir`]: key files (a device with the root key, a linked device, or one waiting to be
//!   linked), API token and address.
//! - [`devices`]: linking devices: the node of a device without the root key (serving
//!   `/rhizo/link/1` and its link ticket) and the link protocol's two sides.
//! - [`events`]: what `GET /v1/events` streams.
//! - [`gateway`]: gateway mode: light clients' WebSockets spliced over `/rhizo/light/1` to their
//!   home nodes, and the home node's side of those streams.
//! - [`files`]: files and attachments: the content store, serving `/rhizo/file/1`, fetching.
//! - [`geoip`]: the optional country filter for inbound connections.
//! - [`mailbox`]: offline delivery — the replica we run for others, and our use of theirs.
//! - [`messaging`]: the async driver of the messaging engine (`rhizo-engine`): contacts,
//!   sending, the outbox loop, the mailbox poll, publishing, profiles, agent cards, message
//!   requests.
//! - [`metrics`]: Prometheus text rendering.
//! - [`node`]: [`node::run`], the daemon's main loop.
//! - [`pairing`]: light clients: the pairing ticket, the paired channel (HPKE with X-Wing) and
//!   the book of paired clients.
//! - [`peer_policy`]: per-peer rate limits, reputations and bans.
//! - [`pex`]: peer exchange.
//! - [`presence`]: contacts' presence (online, offline, hidden; last seen) from this node's
//!   connections, with `presence` events, and hiding our own.
//! - [`record_validator`]: which DHT records the node stores for others.
//! - [`restored`]: finding at start a database restored from an older copy (run tokens), so
//!   the engine gives every group a fresh epoch before sending.
//! - [`vault`]: encryption at rest — the passphrase (Argon2id), the `vault` file, sealed key
//!   files, encrypting a plaintext data dir in place and changing the passphrase
//!   (`vault/migrate`), and `rhizo backup` / `rhizo restore` (`vault/backup`).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod a2a;
pub mod agent_wake;
pub mod api;
pub mod channels;
pub mod clock;
pub mod clock_skew;
pub mod config;
pub mod data_dir;
pub mod devices;
pub mod events;
pub mod files;
pub mod gateway;
pub mod geoip;
pub mod mailbox;
pub mod messaging;
pub mod metrics;
pub mod node;
pub mod pairing;
pub mod peer_policy;
pub mod pex;
pub mod presence;
pub mod record_validator;
pub mod restored;
pub mod vault;

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
