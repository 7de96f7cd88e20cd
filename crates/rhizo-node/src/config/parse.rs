//! Parsing and checking single settings (addresses, peer ids, CIDRs, counts, lists).

use std::{net::SocketAddr, path::PathBuf};

use libp2p::Multiaddr;

use super::*;

/// Multiaddrs that must name their peer (`…/p2p/<id>`).
pub(super) fn parse_peer_addrs(
    setting: &'static str,
    values: &[String],
) -> Result<Vec<Multiaddr>, ConfigError> {
    let addrs = parse_multiaddrs(setting, values)?;
    for (addr, value) in addrs.iter().zip(values) {
        if !matches!(
            addr.iter().last(),
            Some(libp2p::multiaddr::Protocol::P2p(_))
        ) {
            return Err(ConfigError::BadMultiaddr {
                setting,
                value: value.clone(),
                reason: "it must end with /p2p/<peer id>".into(),
            });
        }
    }
    Ok(addrs)
}

pub(super) fn parse_peer_ids(values: &[String]) -> Result<Vec<libp2p::PeerId>, ConfigError> {
    values
        .iter()
        .map(|v| {
            v.trim().parse().map_err(|e| ConfigError::BadSetting {
                setting: "banned_peers",
                value: v.clone(),
                reason: format!("not a peer id ({e}); peer ids look like 12D3KooW…"),
            })
        })
        .collect()
}

/// CIDR ranges; a bare IP address means just that address.
pub fn parse_cidr(value: &str) -> Result<ipnet::IpNet, ConfigError> {
    let v = value.trim();
    v.parse::<ipnet::IpNet>()
        .or_else(|_| v.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| ConfigError::BadSetting {
            setting: "banned_cidrs",
            value: value.to_string(),
            reason: "not an IP range: use e.g. 192.0.2.0/24, 2001:db8::/32 or 192.0.2.7".into(),
        })
}

pub(super) fn parse_cidrs(values: &[String]) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    values.iter().map(|v| parse_cidr(v)).collect()
}

pub(super) fn parse_countries(
    values: &[String],
    have_db: bool,
) -> Result<Vec<String>, ConfigError> {
    if !values.is_empty() && !have_db {
        return Err(ConfigError::BadSetting {
            setting: "blocked_countries",
            value: values.join(","),
            reason: "a country filter needs geoip_db (--geoip-db FILE): a MaxMind GeoLite2 or \
                     GeoIP2 Country .mmdb file you supply; rhizo ships no country list"
                .into(),
        });
    }
    values
        .iter()
        .map(|v| {
            let code = v.trim().to_ascii_uppercase();
            if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(code)
            } else {
                Err(ConfigError::BadSetting {
                    setting: "blocked_countries",
                    value: v.clone(),
                    reason: "use two-letter ISO 3166 codes such as DE or BR".into(),
                })
            }
        })
        .collect()
}

pub(super) fn parse_count(var: &'static str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(ConfigError::BadEnv {
            var,
            value: value.to_string(),
            reason: "use a whole number above 0".into(),
        }),
    }
}

pub(super) fn split_list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn parse_bool(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::BadEnv {
            var,
            value: value.to_string(),
            reason: "use true or false".into(),
        }),
    }
}

/// `$XDG_DATA_HOME/rhizo`, usually `~/.local/share/rhizo`.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "rhizo").map(|d| d.data_dir().to_path_buf())
}

/// `$XDG_CONFIG_HOME/rhizo/config.toml`, usually `~/.config/rhizo/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "rhizo").map(|d| d.config_dir().join("config.toml"))
}

/// Parses a list of multiaddrs for `setting`.
pub fn parse_multiaddrs(
    setting: &'static str,
    values: &[String],
) -> Result<Vec<Multiaddr>, ConfigError> {
    use libp2p::multiaddr::Protocol;
    values
        .iter()
        .map(|v| {
            let bad = |reason: String| ConfigError::BadMultiaddr {
                setting,
                value: v.clone(),
                reason,
            };
            let addr = v.parse::<Multiaddr>().map_err(|e| bad(e.to_string()))?;
            match addr.iter().next() {
                Some(Protocol::Ip4(_) | Protocol::Ip6(_)) => Ok(addr),
                Some(
                    Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_),
                ) => Err(bad(
                    "host names cannot be dialled yet; use the IP address".into()
                )),
                _ => Err(bad("it must start with /ip4/ or /ip6/".into())),
            }
        })
        .collect()
}

/// Parses the API address and insists on loopback: the API is for this machine only.
pub fn parse_api_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    let addr: SocketAddr = value.parse().map_err(|_| ConfigError::BadApi {
        value: value.to_string(),
        reason: "expected IP:PORT such as 127.0.0.1:4748".into(),
    })?;
    if !addr.ip().is_loopback() {
        return Err(ConfigError::BadApi {
            value: value.to_string(),
            reason: "the local API only binds loopback (127.0.0.1 or ::1); it is not meant to \
                     be reachable from the network"
                .into(),
        });
    }
    Ok(addr)
}

/// `value` if set and above zero, else `default` (zero means "not set" for every count).
pub(super) fn positive<T: PartialOrd + Default>(value: Option<T>, default: T) -> T {
    value.filter(|n| *n > T::default()).unwrap_or(default)
}

/// The mailbox TTL: the default, or a number of days within the allowed range.
pub(super) fn mailbox_ttl_days(days: Option<u64>) -> Result<u64, ConfigError> {
    match days {
        None => Ok(DEFAULT_MAILBOX_TTL_DAYS),
        Some(d) if (MIN_MAILBOX_TTL_DAYS..=MAX_MAILBOX_TTL_DAYS).contains(&d) => Ok(d),
        Some(d) => Err(ConfigError::BadSetting {
            setting: "mailbox_ttl_days",
            value: d.to_string(),
            reason: format!("use {MIN_MAILBOX_TTL_DAYS} to {MAX_MAILBOX_TTL_DAYS} days"),
        }),
    }
}
