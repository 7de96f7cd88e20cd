//! The `[devices]` section: its default, the config file, the environment, and bounds.

use std::path::Path;

use super::*;
use crate::config::{Config, ConfigLayer};

#[test]
fn history_days_default_file_environment_and_bounds() {
    let defaults = || Config::resolve([ConfigLayer::defaults()]).unwrap();
    assert_eq!(defaults().devices.history_days, DEFAULT_HISTORY_DAYS);
    let file =
        ConfigLayer::from_toml("[devices]\nhistory_days = 7\n", Path::new("c.toml")).unwrap();
    let c = Config::resolve([file.clone(), ConfigLayer::defaults()]).unwrap();
    assert_eq!(c.devices.history_days, 7);
    // The environment is over the file.
    let env = ConfigLayer::from_env([("RHIZO_DEVICES_HISTORY_DAYS".into(), "90".into())]).unwrap();
    let c = Config::resolve([env, file, ConfigLayer::defaults()]).unwrap();
    assert_eq!(c.devices.history_days, 90);
    assert!(
        c.to_toml().contains("[devices]\nhistory_days = 90"),
        "{}",
        c.to_toml()
    );
    // Bounds: a clear error naming the setting.
    let far =
        ConfigLayer::from_toml("[devices]\nhistory_days = 5000\n", Path::new("c.toml")).unwrap();
    let err = Config::resolve([far, ConfigLayer::defaults()]).unwrap_err();
    assert!(err.to_string().contains("devices.history_days"), "{err}");
    assert!(ConfigLayer::from_env([("RHIZO_DEVICES_HISTORY_DAYS".into(), "0".into())]).is_err());
    assert!(ConfigLayer::from_toml("[devices]\nhistory = 7\n", Path::new("c.toml")).is_err());
}
