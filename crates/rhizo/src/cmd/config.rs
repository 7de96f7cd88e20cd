//! `rhizo config show`.

use std::path::PathBuf;

use rhizo_node::Config;

pub(crate) fn show(config: &Config, file: &Option<(PathBuf, bool)>) -> anyhow::Result<()> {
    match file {
        Some((path, _)) => println!("# config file: {}", path.display()),
        None => println!("# config file: none (defaults, environment and flags only)"),
    }
    print!("{}", config.to_toml());
    Ok(())
}
