//! The `[devices]` section: how much history a newly linked device gets when `device add` does
//! not say (issue 15).

use rhizo_engine::sync::history::{DEFAULT_HISTORY_DAYS, MAX_HISTORY_DAYS};
use serde::{Deserialize, Serialize};

use super::{ConfigError, parse::parse_count};

/// The effective `[devices]` settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DevicesConfig {
    /// Days of history `device add` sends a new device without `--history-days`.
    pub history_days: u32,
}

/// The `[devices]` section of one config layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesLayer {
    /// Days of history for a new device.
    pub history_days: Option<u64>,
}

impl DevicesLayer {
    /// The built-in defaults.
    pub fn defaults() -> Self {
        Self {
            history_days: Some(u64::from(DEFAULT_HISTORY_DAYS)),
        }
    }

    /// `self` over `lower`.
    pub fn over(self, lower: Self) -> Self {
        Self {
            history_days: self.history_days.or(lower.history_days),
        }
    }

    /// Sets what an `RHIZO_DEVICES_*` variable says; `false` if `key` is none of them.
    pub(super) fn set_from_env(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "RHIZO_DEVICES_HISTORY_DAYS" => {
                self.history_days = Some(parse_count("RHIZO_DEVICES_HISTORY_DAYS", value)?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Validates the merged section.
    pub(super) fn resolve(self) -> Result<DevicesConfig, ConfigError> {
        let days = self.history_days.unwrap_or(u64::from(DEFAULT_HISTORY_DAYS));
        match u32::try_from(days) {
            Ok(history_days) if (1..=MAX_HISTORY_DAYS).contains(&history_days) => {
                Ok(DevicesConfig { history_days })
            }
            _ => Err(ConfigError::BadSetting {
                setting: "devices.history_days",
                value: days.to_string(),
                reason: format!("use 1 to {MAX_HISTORY_DAYS} days"),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
