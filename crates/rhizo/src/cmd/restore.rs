//! `rhizo restore FILE`.

use rhizo_node::{
    Config, DataDir,
    vault::{BACKUP_PASSPHRASE_FILE_ENV, KdfParams, PASSPHRASE_FILE_ENV, Passphrase, backup},
};

use crate::cli::RestoreArgs;

pub(crate) fn run(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let dir = DataDir::new(config.data_dir.clone());
    if dir.is_initialised() || dir.database().exists() {
        anyhow::bail!(
            "{} already holds a rhizo identity or database: restore into a new, empty data dir \
             (--data-dir DIR)",
            dir.path().display()
        );
    }
    let from_backup =
        Passphrase::from_env_or_prompt(BACKUP_PASSPHRASE_FILE_ENV, "The backup's passphrase: ")?;
    let dir = if args.passphrase {
        let store_passphrase = Passphrase::new_from_env_or_prompt(PASSPHRASE_FILE_ENV)?;
        dir.create_vault(&store_passphrase, KdfParams::DEFAULT)?
    } else {
        dir
    };
    let restored = backup::restore_backup(&dir, &args.file, &from_backup)?;
    println!(
        "Restored {} into {}.",
        restored.files.join(", "),
        dir.path().display()
    );
    println!(
        "Next: `rhizo run`. MLS state is not reused as it was: every conversation gets a fresh \
         epoch of ours before our next message in it."
    );
    Ok(())
}
