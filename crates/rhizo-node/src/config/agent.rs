//! The `[agent]` section: heartbeats, the worker queue, who may send tasks, the wake command
//! and a local A2A server (see docs/agents.md).

pub use rhizo_engine::agents::AcceptTasksFrom;
use serde::{Deserialize, Serialize};

use super::{
    ConfigError,
    parse::{parse_bool, parse_count},
};

/// How often an agent node sends heartbeats, by default (seconds).
pub const DEFAULT_HEARTBEAT_SECS: u64 = 30;
/// The longest heartbeat interval (an hour): beyond it liveness says nothing useful.
pub const MAX_HEARTBEAT_SECS: u64 = 3600;
/// The largest worker queue a user may configure.
pub const MAX_AGENT_QUEUE: u64 = 100_000;
/// Most arguments in `wake_command`, and the longest one in bytes.
pub const MAX_WAKE_ARGS: usize = 64;
/// Longest `wake_command` argument, bytes.
pub const MAX_WAKE_ARG_BYTES: usize = 4096;

/// `anyone` or `contacts`.
fn parse_accept(setting: &'static str, value: &str) -> Result<AcceptTasksFrom, ConfigError> {
    match value.trim() {
        "anyone" => Ok(AcceptTasksFrom::Anyone),
        "contacts" => Ok(AcceptTasksFrom::Contacts),
        _ => Err(ConfigError::BadSetting {
            setting,
            value: value.to_string(),
            reason: "use \"anyone\" or \"contacts\"".into(),
        }),
    }
}

/// The effective `[agent]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentConfig {
    /// Send heartbeats even without an agent card (a card turns them on anyway).
    pub enabled: bool,
    /// Seconds between heartbeats to the agents we work with.
    pub heartbeat_secs: u64,
    /// The worker queue's bound (overrides the card's `limits.max_queue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<u64>,
    /// Who may send tasks without being a contact.
    pub accept_tasks_from: AcceptTasksFrom,
    /// The command started when a task or `wake_up` arrives and no agent program is attached
    /// (argv; empty: none).
    pub wake_command: Vec<String>,
    /// A local A2A server to forward received tasks to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub a2a_url: Option<String>,
}

/// The `[agent]` section of one source; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentLayer {
    /// Heartbeats without a card.
    pub enabled: Option<bool>,
    /// Heartbeat interval.
    pub heartbeat_secs: Option<u64>,
    /// Worker queue bound.
    pub max_queue: Option<u64>,
    /// `anyone` or `contacts`.
    pub accept_tasks_from: Option<AcceptTasksFrom>,
    /// The wake command's argv.
    pub wake_command: Option<Vec<String>>,
    /// The local A2A server.
    pub a2a_url: Option<String>,
}

impl AgentLayer {
    /// The built-in defaults.
    pub fn defaults() -> Self {
        Self {
            enabled: Some(false),
            heartbeat_secs: Some(DEFAULT_HEARTBEAT_SECS),
            max_queue: None,
            accept_tasks_from: Some(AcceptTasksFrom::Anyone),
            wake_command: Some(Vec::new()),
            a2a_url: None,
        }
    }

    /// `self` over `lower`.
    pub fn over(self, lower: Self) -> Self {
        Self {
            enabled: self.enabled.or(lower.enabled),
            heartbeat_secs: self.heartbeat_secs.or(lower.heartbeat_secs),
            max_queue: self.max_queue.or(lower.max_queue),
            accept_tasks_from: self.accept_tasks_from.or(lower.accept_tasks_from),
            wake_command: self.wake_command.or(lower.wake_command),
            a2a_url: self.a2a_url.or(lower.a2a_url),
        }
    }

    /// Sets what an `RHIZO_AGENT_*` variable says; `false` if `key` is none of them.
    pub(super) fn set_from_env(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "RHIZO_AGENT_ENABLED" => self.enabled = Some(parse_bool("RHIZO_AGENT_ENABLED", value)?),
            "RHIZO_AGENT_HEARTBEAT_SECS" => {
                self.heartbeat_secs = Some(parse_count("RHIZO_AGENT_HEARTBEAT_SECS", value)?);
            }
            "RHIZO_AGENT_MAX_QUEUE" => {
                self.max_queue = Some(parse_count("RHIZO_AGENT_MAX_QUEUE", value)?);
            }
            "RHIZO_AGENT_ACCEPT_TASKS_FROM" => {
                self.accept_tasks_from =
                    Some(parse_accept("", value).map_err(|_| ConfigError::BadEnv {
                        var: "RHIZO_AGENT_ACCEPT_TASKS_FROM",
                        value: value.to_string(),
                        reason: "use anyone or contacts".into(),
                    })?);
            }
            // Whitespace-separated argv (arguments with spaces need the config file's list).
            "RHIZO_AGENT_WAKE_COMMAND" if !value.trim().is_empty() => {
                self.wake_command = Some(value.split_whitespace().map(String::from).collect());
            }
            "RHIZO_AGENT_A2A_URL" if !value.trim().is_empty() => {
                self.a2a_url = Some(value.trim().to_string());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Validates the merged section.
    pub(super) fn resolve(self) -> Result<AgentConfig, ConfigError> {
        let bad = |setting: &'static str, value: String, reason: &str| ConfigError::BadSetting {
            setting,
            value,
            reason: reason.into(),
        };
        let heartbeat_secs = self.heartbeat_secs.unwrap_or(DEFAULT_HEARTBEAT_SECS);
        if !(1..=MAX_HEARTBEAT_SECS).contains(&heartbeat_secs) {
            return Err(bad(
                "agent.heartbeat_secs",
                heartbeat_secs.to_string(),
                "use 1 to 3600 seconds",
            ));
        }
        if let Some(q) = self.max_queue
            && !(1..=MAX_AGENT_QUEUE).contains(&q)
        {
            return Err(bad(
                "agent.max_queue",
                q.to_string(),
                "use 1 to 100000 tasks",
            ));
        }
        let wake_command = self.wake_command.unwrap_or_default();
        if wake_command.len() > MAX_WAKE_ARGS
            || wake_command
                .iter()
                .any(|a| a.len() > MAX_WAKE_ARG_BYTES || a.contains('\0'))
            || wake_command.first().is_some_and(|p| p.trim().is_empty())
        {
            return Err(bad(
                "agent.wake_command",
                format!("{wake_command:?}"),
                "give the program and its arguments as a list, e.g. [\"python3\", \"agent.py\"] \
                 (at most 64 arguments of 4096 bytes, no NUL)",
            ));
        }
        let a2a_url = self.a2a_url.map(check_a2a_url).transpose()?;
        Ok(AgentConfig {
            enabled: self.enabled.unwrap_or(false),
            heartbeat_secs,
            max_queue: self.max_queue,
            accept_tasks_from: self.accept_tasks_from.unwrap_or_default(),
            wake_command,
            a2a_url,
        })
    }
}

/// The A2A server must be on this machine: http(s) to a loopback address.
fn check_a2a_url(url: String) -> Result<String, ConfigError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let host = rest
        .and_then(|r| r.split(['/', '?', '#']).next())
        .unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let loopback = name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(url)
    } else {
        Err(ConfigError::BadSetting {
            setting: "agent.a2a_url",
            value: url,
            reason: "a local A2A server: http://127.0.0.1:PORT/… (loopback only)".into(),
        })
    }
}

#[cfg(test)]
mod tests;
