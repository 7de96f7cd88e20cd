//! Configuration: defaults < config file < `RHIZO_*` environment < command-line flags.
//!
//! Each source is a [`ConfigLayer`] of optional settings; [`Config::resolve`] stacks them and
//! validates the result, so precedence lives in one place and is unit tested.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

mod agent;
mod devices;
mod parse;
use parse::*;
pub use parse::{
    default_config_file, default_data_dir, parse_api_addr, parse_cidr, parse_multiaddrs,
};

pub use devices::{DevicesConfig, DevicesLayer};

pub use agent::{
    AcceptTasksFrom, AgentConfig, AgentLayer, DEFAULT_HEARTBEAT_SECS, MAX_AGENT_QUEUE,
    MAX_HEARTBEAT_SECS, MAX_WAKE_ARG_BYTES, MAX_WAKE_ARGS,
};

/// The fixed default port for peer-to-peer traffic (TCP and QUIC).
pub const DEFAULT_P2P_PORT: u16 = 4747;
/// The fixed default port of the local API (always on 127.0.0.1).
pub const DEFAULT_API_PORT: u16 = 4748;
/// Seed 000's rekey rule: a self-update commit after this many sent messages…
pub const DEFAULT_REKEY_MESSAGES: u64 = 100;
/// …or after this long (24 h).
pub const DEFAULT_REKEY_INTERVAL_SECS: u64 = 24 * 3600;
/// How long mailbox replicas keep an envelope for an offline recipient, by default (days).
pub const DEFAULT_MAILBOX_TTL_DAYS: u64 = 7;
/// The shortest mailbox TTL a user may configure (days).
pub const MIN_MAILBOX_TTL_DAYS: u64 = 3;
/// The longest mailbox TTL (days): replicas never keep anything longer.
pub const MAX_MAILBOX_TTL_DAYS: u64 = 7;
/// How often a node fetches its own mailbox from the replicas, by default (seconds).
pub const DEFAULT_MAILBOX_POLL_SECS: u64 = 60;
/// How often a replica checks that what it holds is on the current closest replicas (seconds).
pub const DEFAULT_MAILBOX_REPLICATE_SECS: u64 = 600;
/// Envelopes a replica holds from one sender (all recipients), by default.
pub const DEFAULT_MAILBOX_MAX_PER_SENDER: u64 = 1024;
/// MiB of envelopes a replica holds for others in all, by default (1 GiB).
pub const DEFAULT_MAILBOX_MAX_TOTAL_MIB: u64 =
    rhizo_store::mailbox::DEFAULT_MAX_TOTAL_BYTES / (1024 * 1024);
/// Largest file sent or fetched, in MiB, by default (4 GiB).
pub const DEFAULT_FILES_MAX_MIB: u64 = crate::files::DEFAULT_MAX_FILE_BYTES >> 20;
/// Largest file from a contact fetched without being asked, in MiB, by default.
pub const DEFAULT_FILES_AUTO_DOWNLOAD_MIB: u64 = crate::files::DEFAULT_AUTO_DOWNLOAD_BYTES >> 20;
/// Cap on the file content store, in MiB, by default (32 GiB).
pub const DEFAULT_FILES_MAX_STORAGE_MIB: u64 = crate::files::DEFAULT_MAX_STORAGE_BYTES >> 20;
/// Envelopes a replica holds for others in all, by default.
pub const DEFAULT_MAILBOX_MAX_TOTAL_ENTRIES: u64 = rhizo_store::mailbox::DEFAULT_MAX_TOTAL_COUNT;
/// Inbound connections kept at most (trusted and protected peers do not count).
pub const DEFAULT_MAX_INBOUND: u64 = 64;
/// Outbound connections kept at most (trusted and protected peers do not count).
pub const DEFAULT_MAX_OUTBOUND: u64 = 32;
/// Connections from one IP address at most.
pub const DEFAULT_MAX_PER_IP: u64 = 16;
/// How often a node asks peers for samples of their peer books (seconds).
pub const DEFAULT_PEX_INTERVAL_SECS: u64 = 60;
/// Largest config file read: a config is a few hundred bytes; anything huge is a mistake.
const MAX_CONFIG_FILE_BYTES: u64 = 1024 * 1024;

/// The environment variables rhizo reads, for `--help` and the docs.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("RHIZO_CONFIG", "config file path"),
    ("RHIZO_DATA_DIR", "data directory"),
    ("RHIZO_LISTEN", "listen multiaddrs, comma-separated"),
    ("RHIZO_BOOTSTRAP", "bootstrap multiaddrs, comma-separated"),
    ("RHIZO_MDNS", "true/false: mDNS discovery on the LAN"),
    ("RHIZO_API", "local API address, 127.0.0.1:PORT"),
    ("RHIZO_ANNOUNCE", "advertised multiaddrs, comma-separated"),
    (
        "RHIZO_REKEY_MESSAGES",
        "self-update a conversation after N sent messages",
    ),
    (
        "RHIZO_REKEY_INTERVAL_SECS",
        "self-update a conversation after T seconds",
    ),
    (
        "RHIZO_MAILBOX_TTL_DAYS",
        "days mailbox replicas keep an envelope for an offline contact (3-7)",
    ),
    (
        "RHIZO_MAILBOX_POLL_SECS",
        "fetch this node's mailbox from the replicas every N seconds",
    ),
    (
        "RHIZO_MAILBOX_REPLICATE_SECS",
        "re-replicate held mailbox entries every N seconds",
    ),
    (
        "RHIZO_MAILBOX_MAX_PER_SENDER",
        "envelopes this node holds for others from one sender",
    ),
    (
        "RHIZO_MAILBOX_MAX_TOTAL_MIB",
        "MiB of envelopes this node holds for others in all",
    ),
    (
        "RHIZO_MAILBOX_MAX_TOTAL_ENTRIES",
        "envelopes this node holds for others in all",
    ),
    ("RHIZO_FILES_MAX_MIB", "largest file sent or fetched (MiB)"),
    (
        "RHIZO_FILES_AUTO_DOWNLOAD_MIB",
        "largest file from a contact fetched without asking (MiB)",
    ),
    (
        "RHIZO_FILES_MAX_STORAGE_MIB",
        "cap on the file content store (MiB)",
    ),
    ("RHIZO_MAX_INBOUND", "inbound connections kept at most"),
    ("RHIZO_MAX_OUTBOUND", "outbound connections kept at most"),
    (
        "RHIZO_MAX_PER_IP",
        "connections from one IP address at most",
    ),
    (
        "RHIZO_TRUSTED",
        "must-connect peers (multiaddrs ending in /p2p/ID), comma-separated",
    ),
    (
        "RHIZO_BANNED_PEERS",
        "peer ids never to connect with, comma-separated",
    ),
    (
        "RHIZO_BANNED_CIDRS",
        "IP ranges never to connect with (e.g. 192.0.2.0/24), comma-separated",
    ),
    (
        "RHIZO_GEOIP_DB",
        "a MaxMind country .mmdb file you supply, for blocked_countries",
    ),
    (
        "RHIZO_BLOCKED_COUNTRIES",
        "ISO country codes to refuse (needs RHIZO_GEOIP_DB), comma-separated",
    ),
    (
        "RHIZO_RELAY",
        "true/false: serve as a circuit relay (v2) for others",
    ),
    (
        "RHIZO_HIDE_PRESENCE",
        "true/false: ask contacts' nodes not to show when this node is online",
    ),
    (
        "RHIZO_BATCH_FRAMES",
        "true/false: take and send batch frames (false: as a node older than them)",
    ),
    (
        "RHIZO_RELAYS",
        "relay nodes to reserve a slot on (multiaddrs ending in /p2p/ID)",
    ),
    (
        "RHIZO_UPNP",
        "true/false: map the port on the router with UPnP",
    ),
    (
        "RHIZO_AGENT_ENABLED",
        "true/false: send agent heartbeats even without an agent card",
    ),
    (
        "RHIZO_AGENT_HEARTBEAT_SECS",
        "seconds between heartbeats to the agents this node works with",
    ),
    (
        "RHIZO_AGENT_MAX_QUEUE",
        "tasks the worker queue holds (overrides the card's limit)",
    ),
    (
        "RHIZO_AGENT_ACCEPT_TASKS_FROM",
        "anyone or contacts: who may send tasks without being a contact",
    ),
    (
        "RHIZO_AGENT_WAKE_COMMAND",
        "command started when a task arrives and no agent program is attached",
    ),
    (
        "RHIZO_AGENT_A2A_URL",
        "a local A2A server to forward tasks to",
    ),
    (
        "RHIZO_DEVICES_HISTORY_DAYS",
        "days of history `device add` sends a new device without --history-days",
    ),
];

/// The effective configuration of a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// Where keys, the database and the API token live.
    pub data_dir: PathBuf,
    /// Addresses to listen on.
    #[serde(serialize_with = "ser_addrs")]
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start.
    #[serde(serialize_with = "ser_addrs")]
    pub bootstrap: Vec<Multiaddr>,
    /// mDNS discovery on the local network.
    pub mdns: bool,
    /// Local API address; must be a loopback address.
    pub api: SocketAddr,
    /// Addresses to advertise instead of the listen addresses (port forwarding, a proxy).
    #[serde(serialize_with = "ser_addrs")]
    pub announce: Vec<Multiaddr>,
    /// Self-update (rekey) a conversation after this many sent messages.
    pub rekey_messages: u64,
    /// Self-update (rekey) a conversation after this many seconds.
    pub rekey_interval_secs: u64,
    /// Days mailbox replicas keep what we store for an offline contact (3 to 7).
    pub mailbox_ttl_days: u64,
    /// Seconds between fetches of our own mailbox.
    pub mailbox_poll_secs: u64,
    /// Seconds between re-replication passes over what we hold for others.
    pub mailbox_replicate_secs: u64,
    /// Envelopes we hold for others from one sender (the per-sender quota).
    pub mailbox_max_per_sender: u64,
    /// MiB of envelopes we hold for others in all (the node-wide cap).
    pub mailbox_max_total_mib: u64,
    /// Envelopes we hold for others in all (the node-wide cap).
    pub mailbox_max_total_entries: u64,
    /// Largest file sent or fetched (MiB).
    pub files_max_mib: u64,
    /// Largest file from a contact fetched without being asked (MiB).
    pub files_auto_download_mib: u64,
    /// Cap on the file content store (MiB).
    pub files_max_storage_mib: u64,
    /// Inbound connections kept at most.
    pub max_inbound: u64,
    /// Outbound connections kept at most.
    pub max_outbound: u64,
    /// Connections from one IP address at most.
    pub max_per_ip: u64,
    /// Must-connect peers: bypass the limits, redialled with backoff.
    #[serde(serialize_with = "ser_addrs")]
    pub trusted: Vec<Multiaddr>,
    /// Peers never to connect with.
    #[serde(serialize_with = "ser_display")]
    pub banned_peers: Vec<libp2p::PeerId>,
    /// IP ranges never to connect with.
    #[serde(serialize_with = "ser_display")]
    pub banned_cidrs: Vec<ipnet::IpNet>,
    /// A MaxMind country database the user supplies (for `blocked_countries`).
    pub geoip_db: Option<PathBuf>,
    /// ISO 3166 country codes whose addresses are refused (needs `geoip_db`).
    pub blocked_countries: Vec<String>,
    /// Serve as a circuit relay for others.
    pub relay: bool,
    /// Hide our presence from contacts (announced; honoured by their nodes).
    pub hide_presence: bool,
    /// Take and send batch frames on `/rhizo/msg/2` (off: behave as a node older than them).
    pub batch_frames: bool,
    /// Relays to reserve a slot on, so unreachable nodes can be reached through them.
    #[serde(serialize_with = "ser_addrs")]
    pub relays: Vec<Multiaddr>,
    /// Map the listen port on the router with UPnP.
    pub upnp: bool,
    /// Serve light clients' WebSockets here and splice them to their home nodes (`--gateway`).
    pub gateway: Option<std::net::SocketAddr>,
    /// Seconds between peer-exchange rounds.
    pub pex_interval_secs: u64,
    /// The `[agent]` section (a TOML table follows the plain settings).
    pub agent: AgentConfig,
    /// The `[devices]` section.
    pub devices: DevicesConfig,
}

fn ser_display<S: serde::Serializer, T: std::fmt::Display>(
    items: &[T],
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_seq(items.iter().map(ToString::to_string))
}

fn ser_addrs<S: serde::Serializer>(addrs: &[Multiaddr], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(addrs.iter().map(ToString::to_string))
}

/// One source of settings; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Listen multiaddrs.
    pub listen: Option<Vec<String>>,
    /// Bootstrap multiaddrs.
    pub bootstrap: Option<Vec<String>>,
    /// mDNS on or off.
    pub mdns: Option<bool>,
    /// Local API address.
    pub api: Option<String>,
    /// Advertised addresses.
    pub announce: Option<Vec<String>>,
    /// Rekey after N messages.
    pub rekey_messages: Option<u64>,
    /// Rekey after T seconds.
    pub rekey_interval_secs: Option<u64>,
    /// Mailbox TTL in days.
    pub mailbox_ttl_days: Option<u64>,
    /// Mailbox poll interval.
    pub mailbox_poll_secs: Option<u64>,
    /// Mailbox re-replication interval.
    pub mailbox_replicate_secs: Option<u64>,
    /// Per-sender mailbox quota (envelopes).
    pub mailbox_max_per_sender: Option<u64>,
    /// Node-wide mailbox cap (MiB).
    pub mailbox_max_total_mib: Option<u64>,
    /// Node-wide mailbox cap (envelopes).
    pub mailbox_max_total_entries: Option<u64>,
    /// Largest file sent or fetched (MiB).
    pub files_max_mib: Option<u64>,
    /// Largest file from a contact fetched without being asked (MiB).
    pub files_auto_download_mib: Option<u64>,
    /// Cap on the file content store (MiB).
    pub files_max_storage_mib: Option<u64>,
    /// Inbound connection limit.
    pub max_inbound: Option<u64>,
    /// Outbound connection limit.
    pub max_outbound: Option<u64>,
    /// Per-IP connection limit.
    pub max_per_ip: Option<u64>,
    /// Must-connect peers.
    pub trusted: Option<Vec<String>>,
    /// Banned peer ids.
    pub banned_peers: Option<Vec<String>>,
    /// Banned IP ranges.
    pub banned_cidrs: Option<Vec<String>>,
    /// Country database file.
    pub geoip_db: Option<PathBuf>,
    /// Blocked country codes.
    pub blocked_countries: Option<Vec<String>>,
    /// Serve as a relay.
    pub relay: Option<bool>,
    /// Hide our presence from contacts.
    pub hide_presence: Option<bool>,
    /// Take and send batch frames.
    pub batch_frames: Option<bool>,
    /// Relays to reserve on.
    pub relays: Option<Vec<String>>,
    /// UPnP.
    pub upnp: Option<bool>,
    /// Gateway listen address.
    pub gateway: Option<String>,
    /// Peer-exchange interval.
    pub pex_interval_secs: Option<u64>,
    /// The `[agent]` section.
    pub agent: Option<AgentLayer>,
    /// The `[devices]` section.
    pub devices: Option<DevicesLayer>,
}

/// A setting that cannot be used, with what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The config file is not valid TOML for rhizo.
    #[error("config file {path} is invalid: {reason} (see config.example.toml for every setting)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A multiaddr does not parse.
    #[error(
        "invalid {setting} address '{value}': {reason} (expected a multiaddr such as \
         /ip4/127.0.0.1/tcp/4747 or /ip4/192.0.2.1/tcp/4747/p2p/12D3Koo…)"
    )]
    BadMultiaddr {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// The API address does not parse or is not loopback.
    #[error("invalid API address '{value}': {reason}")]
    BadApi {
        /// The value given.
        value: String,
        /// Why.
        reason: String,
    },
    /// An environment variable has a value rhizo cannot use.
    #[error("invalid value '{value}' for {var}: {reason}")]
    BadEnv {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why.
        reason: String,
    },
    /// No data directory was set and no home directory is known.
    #[error("cannot find a data directory: set --data-dir or RHIZO_DATA_DIR")]
    NoDataDir,
    /// A setting is out of its allowed range.
    #[error("invalid {setting} '{value}': {reason}")]
    BadSetting {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: String,
        /// Why, and what is allowed.
        reason: String,
    },
}

impl ConfigLayer {
    /// Built-in defaults (the data dir comes from XDG: `~/.local/share/rhizo`).
    pub fn defaults() -> Self {
        Self {
            data_dir: default_data_dir(),
            listen: Some(vec![
                format!("/ip4/0.0.0.0/tcp/{DEFAULT_P2P_PORT}"),
                format!("/ip4/0.0.0.0/udp/{DEFAULT_P2P_PORT}/quic-v1"),
            ]),
            bootstrap: Some(Vec::new()),
            mdns: Some(true),
            api: Some(format!("127.0.0.1:{DEFAULT_API_PORT}")),
            announce: Some(Vec::new()),
            rekey_messages: Some(DEFAULT_REKEY_MESSAGES),
            rekey_interval_secs: Some(DEFAULT_REKEY_INTERVAL_SECS),
            mailbox_ttl_days: Some(DEFAULT_MAILBOX_TTL_DAYS),
            mailbox_poll_secs: Some(DEFAULT_MAILBOX_POLL_SECS),
            mailbox_replicate_secs: Some(DEFAULT_MAILBOX_REPLICATE_SECS),
            mailbox_max_per_sender: Some(DEFAULT_MAILBOX_MAX_PER_SENDER),
            mailbox_max_total_mib: Some(DEFAULT_MAILBOX_MAX_TOTAL_MIB),
            mailbox_max_total_entries: Some(DEFAULT_MAILBOX_MAX_TOTAL_ENTRIES),
            files_max_mib: Some(DEFAULT_FILES_MAX_MIB),
            files_auto_download_mib: Some(DEFAULT_FILES_AUTO_DOWNLOAD_MIB),
            files_max_storage_mib: Some(DEFAULT_FILES_MAX_STORAGE_MIB),
            max_inbound: Some(DEFAULT_MAX_INBOUND),
            max_outbound: Some(DEFAULT_MAX_OUTBOUND),
            max_per_ip: Some(DEFAULT_MAX_PER_IP),
            trusted: Some(Vec::new()),
            banned_peers: Some(Vec::new()),
            banned_cidrs: Some(Vec::new()),
            geoip_db: None,
            blocked_countries: Some(Vec::new()),
            relay: Some(false),
            hide_presence: Some(false),
            batch_frames: Some(true),
            relays: Some(Vec::new()),
            upnp: Some(false),
            gateway: None,
            pex_interval_secs: Some(DEFAULT_PEX_INTERVAL_SECS),
            agent: Some(AgentLayer::defaults()),
            devices: Some(DevicesLayer::defaults()),
        }
    }

    /// Parses a TOML config file's text.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: e.message().to_string(),
        })
    }

    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let read_err = |reason: String| ConfigError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| read_err(e.to_string()))?;
        if meta.len() > MAX_CONFIG_FILE_BYTES {
            return Err(read_err(format!(
                "it is {} bytes; a config file is at most {MAX_CONFIG_FILE_BYTES}",
                meta.len()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| read_err(e.to_string()))?;
        Self::from_toml(&text, path)
    }

    /// Reads the `RHIZO_*` variables from `vars` (pass `std::env::vars()`).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let mut layer = Self::default();
        for (key, value) in vars {
            match key.as_str() {
                "RHIZO_DATA_DIR" if !value.is_empty() => layer.data_dir = Some(value.into()),
                // Set but empty means "not set": an empty listen list would listen nowhere.
                "RHIZO_LISTEN" if !split_list(&value).is_empty() => {
                    layer.listen = Some(split_list(&value));
                }
                "RHIZO_BOOTSTRAP" if !split_list(&value).is_empty() => {
                    layer.bootstrap = Some(split_list(&value));
                }
                "RHIZO_MDNS" => layer.mdns = Some(parse_bool("RHIZO_MDNS", &value)?),
                "RHIZO_API" if !value.is_empty() => layer.api = Some(value),
                "RHIZO_ANNOUNCE" if !split_list(&value).is_empty() => {
                    layer.announce = Some(split_list(&value));
                }
                "RHIZO_REKEY_MESSAGES" => {
                    layer.rekey_messages = Some(parse_count("RHIZO_REKEY_MESSAGES", &value)?);
                }
                "RHIZO_REKEY_INTERVAL_SECS" => {
                    layer.rekey_interval_secs =
                        Some(parse_count("RHIZO_REKEY_INTERVAL_SECS", &value)?);
                }
                "RHIZO_MAILBOX_TTL_DAYS" => {
                    layer.mailbox_ttl_days = Some(parse_count("RHIZO_MAILBOX_TTL_DAYS", &value)?);
                }
                "RHIZO_MAILBOX_POLL_SECS" => {
                    layer.mailbox_poll_secs = Some(parse_count("RHIZO_MAILBOX_POLL_SECS", &value)?);
                }
                "RHIZO_MAX_INBOUND" => {
                    layer.max_inbound = Some(parse_count("RHIZO_MAX_INBOUND", &value)?);
                }
                "RHIZO_MAX_OUTBOUND" => {
                    layer.max_outbound = Some(parse_count("RHIZO_MAX_OUTBOUND", &value)?);
                }
                "RHIZO_MAX_PER_IP" => {
                    layer.max_per_ip = Some(parse_count("RHIZO_MAX_PER_IP", &value)?);
                }
                "RHIZO_TRUSTED" if !split_list(&value).is_empty() => {
                    layer.trusted = Some(split_list(&value));
                }
                "RHIZO_BANNED_PEERS" if !split_list(&value).is_empty() => {
                    layer.banned_peers = Some(split_list(&value));
                }
                "RHIZO_BANNED_CIDRS" if !split_list(&value).is_empty() => {
                    layer.banned_cidrs = Some(split_list(&value));
                }
                "RHIZO_GEOIP_DB" if !value.is_empty() => layer.geoip_db = Some(value.into()),
                "RHIZO_GATEWAY" if !value.is_empty() => layer.gateway = Some(value),
                "RHIZO_BLOCKED_COUNTRIES" if !split_list(&value).is_empty() => {
                    layer.blocked_countries = Some(split_list(&value));
                }
                "RHIZO_RELAY" => layer.relay = Some(parse_bool("RHIZO_RELAY", &value)?),
                "RHIZO_HIDE_PRESENCE" => {
                    layer.hide_presence = Some(parse_bool("RHIZO_HIDE_PRESENCE", &value)?);
                }
                "RHIZO_BATCH_FRAMES" => {
                    layer.batch_frames = Some(parse_bool("RHIZO_BATCH_FRAMES", &value)?);
                }
                "RHIZO_RELAYS" if !split_list(&value).is_empty() => {
                    layer.relays = Some(split_list(&value));
                }
                "RHIZO_UPNP" => layer.upnp = Some(parse_bool("RHIZO_UPNP", &value)?),
                "RHIZO_PEX_INTERVAL_SECS" => {
                    layer.pex_interval_secs = Some(parse_count("RHIZO_PEX_INTERVAL_SECS", &value)?);
                }
                _ if key.starts_with("RHIZO_AGENT_") => {
                    let mut agent = layer.agent.take().unwrap_or_default();
                    agent.set_from_env(&key, &value)?;
                    layer.agent = Some(agent);
                }
                _ if key.starts_with("RHIZO_DEVICES_") => {
                    let mut devices = layer.devices.take().unwrap_or_default();
                    devices.set_from_env(&key, &value)?;
                    layer.devices = Some(devices);
                }
                _ => layer.mailbox_quota_from_env(&key, &value)?,
            }
        }
        Ok(layer)
    }

    /// The mailbox replica's `RHIZO_MAILBOX_*` bounds, if `key` is one of them.
    fn mailbox_quota_from_env(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "RHIZO_MAILBOX_MAX_PER_SENDER" => {
                self.mailbox_max_per_sender =
                    Some(parse_count("RHIZO_MAILBOX_MAX_PER_SENDER", value)?);
            }
            "RHIZO_MAILBOX_MAX_TOTAL_MIB" => {
                self.mailbox_max_total_mib =
                    Some(parse_count("RHIZO_MAILBOX_MAX_TOTAL_MIB", value)?);
            }
            "RHIZO_MAILBOX_MAX_TOTAL_ENTRIES" => {
                self.mailbox_max_total_entries =
                    Some(parse_count("RHIZO_MAILBOX_MAX_TOTAL_ENTRIES", value)?);
            }
            "RHIZO_MAILBOX_REPLICATE_SECS" => {
                self.mailbox_replicate_secs =
                    Some(parse_count("RHIZO_MAILBOX_REPLICATE_SECS", value)?);
            }
            "RHIZO_FILES_MAX_MIB" => {
                self.files_max_mib = Some(parse_count("RHIZO_FILES_MAX_MIB", value)?);
            }
            "RHIZO_FILES_AUTO_DOWNLOAD_MIB" => {
                self.files_auto_download_mib =
                    Some(parse_count("RHIZO_FILES_AUTO_DOWNLOAD_MIB", value)?);
            }
            "RHIZO_FILES_MAX_STORAGE_MIB" => {
                self.files_max_storage_mib =
                    Some(parse_count("RHIZO_FILES_MAX_STORAGE_MIB", value)?);
            }
            _ => {}
        }
        Ok(())
    }

    /// `self` over `lower`: every setting present in `self` wins.
    pub fn over(self, lower: Self) -> Self {
        Self {
            data_dir: self.data_dir.or(lower.data_dir),
            listen: self.listen.or(lower.listen),
            bootstrap: self.bootstrap.or(lower.bootstrap),
            mdns: self.mdns.or(lower.mdns),
            api: self.api.or(lower.api),
            announce: self.announce.or(lower.announce),
            rekey_messages: self.rekey_messages.or(lower.rekey_messages),
            rekey_interval_secs: self.rekey_interval_secs.or(lower.rekey_interval_secs),
            mailbox_ttl_days: self.mailbox_ttl_days.or(lower.mailbox_ttl_days),
            mailbox_poll_secs: self.mailbox_poll_secs.or(lower.mailbox_poll_secs),
            mailbox_replicate_secs: self.mailbox_replicate_secs.or(lower.mailbox_replicate_secs),
            mailbox_max_per_sender: self.mailbox_max_per_sender.or(lower.mailbox_max_per_sender),
            mailbox_max_total_mib: self.mailbox_max_total_mib.or(lower.mailbox_max_total_mib),
            files_max_mib: self.files_max_mib.or(lower.files_max_mib),
            files_auto_download_mib: self
                .files_auto_download_mib
                .or(lower.files_auto_download_mib),
            files_max_storage_mib: self.files_max_storage_mib.or(lower.files_max_storage_mib),
            mailbox_max_total_entries: self
                .mailbox_max_total_entries
                .or(lower.mailbox_max_total_entries),
            max_inbound: self.max_inbound.or(lower.max_inbound),
            max_outbound: self.max_outbound.or(lower.max_outbound),
            max_per_ip: self.max_per_ip.or(lower.max_per_ip),
            trusted: self.trusted.or(lower.trusted),
            banned_peers: self.banned_peers.or(lower.banned_peers),
            banned_cidrs: self.banned_cidrs.or(lower.banned_cidrs),
            geoip_db: self.geoip_db.or(lower.geoip_db),
            blocked_countries: self.blocked_countries.or(lower.blocked_countries),
            relay: self.relay.or(lower.relay),
            hide_presence: self.hide_presence.or(lower.hide_presence),
            batch_frames: self.batch_frames.or(lower.batch_frames),
            relays: self.relays.or(lower.relays),
            upnp: self.upnp.or(lower.upnp),
            gateway: self.gateway.or(lower.gateway),
            pex_interval_secs: self.pex_interval_secs.or(lower.pex_interval_secs),
            agent: match (self.agent, lower.agent) {
                (Some(a), Some(b)) => Some(a.over(b)),
                (a, b) => a.or(b),
            },
            devices: match (self.devices, lower.devices) {
                (Some(a), Some(b)) => Some(a.over(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

impl Config {
    /// Stacks the layers (highest precedence first) over the defaults and validates them.
    pub fn resolve(layers: impl IntoIterator<Item = ConfigLayer>) -> Result<Self, ConfigError> {
        let mut merged = ConfigLayer::default();
        for layer in layers {
            merged = merged.over(layer);
        }
        let merged = merged.over(ConfigLayer::defaults());
        let data_dir = merged.data_dir.ok_or(ConfigError::NoDataDir)?;
        Ok(Self {
            data_dir,
            listen: parse_multiaddrs("listen", &merged.listen.unwrap_or_default())?,
            bootstrap: parse_multiaddrs("bootstrap", &merged.bootstrap.unwrap_or_default())?,
            mdns: merged.mdns.unwrap_or(true),
            api: parse_api_addr(merged.api.as_deref().unwrap_or_default())?,
            announce: parse_multiaddrs("announce", &merged.announce.unwrap_or_default())?,
            rekey_messages: positive(merged.rekey_messages, DEFAULT_REKEY_MESSAGES),
            rekey_interval_secs: positive(merged.rekey_interval_secs, DEFAULT_REKEY_INTERVAL_SECS),
            mailbox_ttl_days: mailbox_ttl_days(merged.mailbox_ttl_days)?,
            mailbox_poll_secs: positive(merged.mailbox_poll_secs, DEFAULT_MAILBOX_POLL_SECS),
            mailbox_replicate_secs: positive(
                merged.mailbox_replicate_secs,
                DEFAULT_MAILBOX_REPLICATE_SECS,
            ),
            mailbox_max_per_sender: positive(
                merged.mailbox_max_per_sender,
                DEFAULT_MAILBOX_MAX_PER_SENDER,
            ),
            mailbox_max_total_mib: positive(
                merged.mailbox_max_total_mib,
                DEFAULT_MAILBOX_MAX_TOTAL_MIB,
            ),
            mailbox_max_total_entries: positive(
                merged.mailbox_max_total_entries,
                DEFAULT_MAILBOX_MAX_TOTAL_ENTRIES,
            ),
            files_max_mib: positive(merged.files_max_mib, DEFAULT_FILES_MAX_MIB),
            // 0 turns automatic downloads off.
            files_auto_download_mib: merged
                .files_auto_download_mib
                .unwrap_or(DEFAULT_FILES_AUTO_DOWNLOAD_MIB),
            files_max_storage_mib: positive(
                merged.files_max_storage_mib,
                DEFAULT_FILES_MAX_STORAGE_MIB,
            ),
            max_inbound: positive(merged.max_inbound, DEFAULT_MAX_INBOUND),
            max_outbound: positive(merged.max_outbound, DEFAULT_MAX_OUTBOUND),
            max_per_ip: positive(merged.max_per_ip, DEFAULT_MAX_PER_IP),
            trusted: parse_peer_addrs("trusted", &merged.trusted.unwrap_or_default())?,
            banned_peers: parse_peer_ids(&merged.banned_peers.unwrap_or_default())?,
            banned_cidrs: parse_cidrs(&merged.banned_cidrs.unwrap_or_default())?,
            blocked_countries: parse_countries(
                &merged.blocked_countries.unwrap_or_default(),
                merged.geoip_db.is_some(),
            )?,
            geoip_db: merged.geoip_db,
            relay: merged.relay.unwrap_or(false),
            hide_presence: merged.hide_presence.unwrap_or(false),
            batch_frames: merged.batch_frames.unwrap_or(true),
            relays: parse_peer_addrs("relays", &merged.relays.unwrap_or_default())?,
            upnp: merged.upnp.unwrap_or(false),
            gateway: merged
                .gateway
                .map(|value| {
                    value
                        .parse()
                        .map_err(|e: std::net::AddrParseError| ConfigError::BadSetting {
                            setting: "gateway",
                            value,
                            reason: format!("{e}: give IP:PORT, such as 0.0.0.0:7790"),
                        })
                })
                .transpose()?,
            pex_interval_secs: positive(merged.pex_interval_secs, DEFAULT_PEX_INTERVAL_SECS),
            agent: merged.agent.unwrap_or_default().resolve()?,
            devices: merged.devices.unwrap_or_default().resolve()?,
        })
    }

    /// The effective configuration as TOML, as `rhizo config show` prints it.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer_api(api: &str) -> ConfigLayer {
        ConfigLayer {
            api: Some(api.into()),
            ..Default::default()
        }
    }

    #[test]
    fn precedence_is_flag_over_env_over_file_over_default() {
        let file = ConfigLayer::from_toml(
            "api = \"127.0.0.1:1001\"\nmdns = false\nlisten = [\"/ip4/127.0.0.1/tcp/1\"]\n\
             data_dir = \"/tmp/from-file\"\n",
            Path::new("test.toml"),
        )
        .unwrap();
        let env = ConfigLayer::from_env([
            ("RHIZO_API".to_string(), "127.0.0.1:1002".to_string()),
            (
                "RHIZO_LISTEN".to_string(),
                "/ip4/127.0.0.1/tcp/2".to_string(),
            ),
        ])
        .unwrap();
        let flags = layer_api("127.0.0.1:1003");

        // All three: the flag wins for api, env for listen, file for mdns and data_dir.
        let c = Config::resolve([flags.clone(), env.clone(), file.clone()]).unwrap();
        assert_eq!(c.api.port(), 1003);
        assert_eq!(
            c.listen,
            vec!["/ip4/127.0.0.1/tcp/2".parse::<Multiaddr>().unwrap()]
        );
        assert!(!c.mdns);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/from-file"));

        // Without the flag, env wins over the file.
        let c = Config::resolve([ConfigLayer::default(), env, file.clone()]).unwrap();
        assert_eq!(c.api.port(), 1002);
        // Without flag and env, the file wins over the defaults.
        let c = Config::resolve([file]).unwrap();
        assert_eq!(c.api.port(), 1001);
        // Nothing set: the defaults.
        let c = Config::resolve([ConfigLayer {
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(c.api.port(), DEFAULT_API_PORT);
        assert!(c.mdns);
        assert_eq!(c.listen.len(), 2);
        assert!(c.bootstrap.is_empty());
    }

    #[test]
    fn env_parsing() {
        let l = ConfigLayer::from_env([
            ("RHIZO_MDNS".to_string(), "off".to_string()),
            (
                "RHIZO_BOOTSTRAP".to_string(),
                "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2".into(),
            ),
            ("HOME".to_string(), "/root".to_string()),
        ])
        .unwrap();
        assert_eq!(l.mdns, Some(false));
        assert_eq!(l.bootstrap.unwrap().len(), 2);
        let err =
            ConfigLayer::from_env([("RHIZO_MDNS".to_string(), "maybe".to_string())]).unwrap_err();
        assert!(err.to_string().contains("RHIZO_MDNS"), "{err}");
    }

    #[test]
    fn empty_list_variables_count_as_unset() {
        let l = ConfigLayer::from_env([("RHIZO_LISTEN".to_string(), " ".to_string())]).unwrap();
        assert_eq!(l.listen, None);
    }

    #[test]
    fn host_names_are_refused_with_a_reason() {
        let err =
            parse_multiaddrs("bootstrap", &["/dns4/example.org/tcp/4747".into()]).unwrap_err();
        assert!(err.to_string().contains("use the IP address"), "{err}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::resolve([ConfigLayer {
            data_dir: Some("/tmp/x".into()),
            listen: Some(vec!["not-an-addr".into()]),
            ..Default::default()
        }])
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid listen address 'not-an-addr'"),
            "{err}"
        );
        let err = Config::resolve([layer_api("0.0.0.0:4748")]).unwrap_err();
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = ConfigLayer::from_toml("nonsense = 1", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("c.toml"), "{err}");
    }

    #[test]
    fn hardening_and_mailbox_settings_are_checked() {
        let with = |f: fn(&mut ConfigLayer)| {
            let mut l = ConfigLayer {
                data_dir: Some("/tmp/x".into()),
                ..Default::default()
            };
            f(&mut l);
            Config::resolve([l])
        };
        let err = with(|l| l.banned_cidrs = Some(vec!["10.0.0.0/33".into()])).unwrap_err();
        assert!(err.to_string().contains("not an IP range"), "{err}");
        let ok = with(|l| l.banned_cidrs = Some(vec!["192.0.2.7".into(), "2001:db8::/32".into()]))
            .unwrap();
        assert_eq!(ok.banned_cidrs[0].to_string(), "192.0.2.7/32");
        let err = with(|l| l.banned_peers = Some(vec!["nope".into()])).unwrap_err();
        assert!(err.to_string().contains("12D3KooW"), "{err}");
        let err = with(|l| l.blocked_countries = Some(vec!["DE".into()])).unwrap_err();
        assert!(err.to_string().contains("geoip_db"), "{err}");
        let err = with(|l| {
            l.geoip_db = Some("/x.mmdb".into());
            l.blocked_countries = Some(vec!["Germany".into()]);
        })
        .unwrap_err();
        assert!(err.to_string().contains("ISO 3166"), "{err}");
        let err = with(|l| l.trusted = Some(vec!["/ip4/192.0.2.1/tcp/4747".into()])).unwrap_err();
        assert!(err.to_string().contains("/p2p/"), "{err}");
        let err = with(|l| l.mailbox_ttl_days = Some(8)).unwrap_err();
        assert!(err.to_string().contains("3 to 7 days"), "{err}");
        let ok = with(|l| l.mailbox_ttl_days = Some(3)).unwrap();
        assert_eq!(ok.mailbox_ttl_days, 3);
        let env = ConfigLayer::from_env([
            ("RHIZO_MAX_PER_IP".to_string(), "4".to_string()),
            ("RHIZO_RELAY".to_string(), "true".to_string()),
            ("RHIZO_BANNED_CIDRS".to_string(), "192.0.2.0/24".to_string()),
        ])
        .unwrap();
        assert_eq!(env.max_per_ip, Some(4));
        assert_eq!(env.relay, Some(true));
        assert_eq!(env.banned_cidrs, Some(vec!["192.0.2.0/24".to_string()]));
    }

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../../../config.example.toml");
        let layer = ConfigLayer::from_toml(text, Path::new("config.example.toml")).unwrap();
        let mut defaults = ConfigLayer::defaults();
        defaults.data_dir = None;
        let mut layer_no_dir = layer.clone();
        layer_no_dir.data_dir = None;
        assert_eq!(
            layer_no_dir, defaults,
            "config.example.toml must document the defaults"
        );
    }

    #[test]
    fn show_renders_toml_that_parses_back() {
        let c = Config::resolve([ConfigLayer {
            data_dir: Some("/tmp/x".into()),
            ..Default::default()
        }])
        .unwrap();
        let text = c.to_toml();
        let back = ConfigLayer::from_toml(&text, Path::new("shown")).unwrap();
        assert_eq!(Config::resolve([back]).unwrap(), c);
    }
}
