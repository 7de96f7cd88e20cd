//! `rhizo passphrase change`: encrypt a plaintext data dir in place, or change its passphrase.

use rhizo_node::{
    Config, DataDir,
    vault::{KdfParams, NEW_PASSPHRASE_FILE_ENV, Passphrase},
};

use crate::cli::PassphraseCommand;

pub(crate) fn run(config: &Config, command: &PassphraseCommand) -> anyhow::Result<()> {
    match command {
        PassphraseCommand::Change => change(config),
    }
}

fn change(config: &Config) -> anyhow::Result<()> {
    let dir = DataDir::new(config.data_dir.clone());
    if !dir.is_initialised() {
        anyhow::bail!(
            "rhizo is not initialised in {}: run `rhizo init --passphrase`",
            dir.path().display()
        );
    }
    let was_encrypted = dir.is_encrypted();
    // The current passphrase first (a wrong one stops here, before anything is asked or done).
    let dir = dir.unlocked()?;
    let new = Passphrase::new_from_env_or_prompt(NEW_PASSPHRASE_FILE_ENV)?;
    dir.set_passphrase(&new, KdfParams::DEFAULT)?;
    if was_encrypted {
        println!(
            "Changed the passphrase of {}: the database and key files are encrypted again under \
             a new key.",
            dir.path().display()
        );
    } else {
        println!(
            "Encrypted {} in place: the database and key files now need the passphrase.",
            dir.path().display()
        );
    }
    Ok(())
}
