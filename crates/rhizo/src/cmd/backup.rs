//! `rhizo backup FILE`.

use rhizo_node::{
    Config, DataDir,
    vault::{BACKUP_PASSPHRASE_FILE_ENV, KdfParams, Passphrase, backup},
};

use crate::cli::BackupArgs;

pub(crate) fn run(config: &Config, args: &BackupArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(config.data_dir.clone()).unlocked()?;
    if !dir.is_initialised() {
        anyhow::bail!(
            "rhizo is not initialised in {}: there is nothing to back up",
            dir.path().display()
        );
    }
    eprintln!("The backup's own passphrase (needed to restore it):");
    let passphrase = Passphrase::new_from_env_or_prompt(BACKUP_PASSPHRASE_FILE_ENV)?;
    backup::write_backup(&dir, &args.file, &passphrase, KdfParams::DEFAULT)?;
    println!(
        "Wrote an encrypted backup of {} to {}. `rhizo restore {}` reads it into a new data dir; \
         conversations then start fresh epochs by themselves.",
        dir.path().display(),
        args.file.display(),
        args.file.display()
    );
    Ok(())
}
