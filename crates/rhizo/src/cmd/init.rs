//! `rhizo init`.

use anyhow::Context;
use rhizo_node::vault::{KdfParams, PASSPHRASE_FILE_ENV, Passphrase};
use rhizo_node::{
    Config, DataDir,
    data_dir::{InitLinkOutcome, InitOutcome},
    node::META_DISPLAY_NAME,
};

use crate::cli::InitArgs;

/// Longest display name accepted.
const MAX_NAME_CHARS: usize = 64;

pub(crate) async fn run(config: &Config, args: &InitArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.name {
        if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS {
            anyhow::bail!("--name must be 1 to {MAX_NAME_CHARS} characters");
        }
        if name.chars().any(char::is_control) {
            anyhow::bail!("--name must not contain control characters");
        }
    }
    let dir = open_data_dir(config, args.passphrase)?;
    if args.link {
        return init_link(&dir);
    }
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let outcome = if args.recover {
        dir.init_with_root(read_phrase()?, now)?
    } else {
        dir.init(now)?
    };
    match outcome {
        InitOutcome::AlreadyInitialised(identity) => {
            eprintln!(
                "rhizo is already initialised in {} (UID {}); existing keys were left unchanged",
                dir.path().display(),
                identity.uid()
            );
        }
        InitOutcome::Created(identity) => {
            let mut store = dir.open_store().context("cannot create the database")?;
            if let Some(name) = &args.name {
                store.write(|tx| tx.set_meta(META_DISPLAY_NAME, name.trim()))?;
            }
            if args.recover {
                let now_ms = i64::try_from(now.saturating_mul(1000)).unwrap_or(i64::MAX);
                store
                    .write(|tx| rhizo_node::messaging::seed_versions_after_recovery(tx, now_ms))?;
            }
            if args.recover {
                println!(
                    "Recovered the identity in {} with a new device",
                    dir.path().display()
                );
            } else {
                println!("Created a new rhizo identity in {}", dir.path().display());
            }
            println!("UID:         {}", identity.uid());
            println!("Fingerprint: {}", identity.root_public().fingerprint());
            println!("Device:      {}", identity.peer_id());
            println!();
            println!("Next: `rhizo run` starts the node; `rhizo id` shows these again.");
        }
    }
    Ok(())
}

/// The data dir to initialise: with `--passphrase` a new encrypted one (its `vault` written
/// first, so no key or database ever reaches the disk in the clear); otherwise as it is
/// (unlocked if it is encrypted already).
fn open_data_dir(config: &Config, passphrase: bool) -> anyhow::Result<DataDir> {
    let dir = DataDir::new(config.data_dir.clone());
    if !passphrase {
        return Ok(dir.unlocked()?);
    }
    if dir.is_encrypted() {
        return Ok(dir.unlocked()?);
    }
    let passphrase = Passphrase::new_from_env_or_prompt(PASSPHRASE_FILE_ENV)?;
    let dir = dir.create_vault(&passphrase, KdfParams::DEFAULT)?;
    eprintln!(
        "The data dir is encrypted. `rhizo run` asks for the passphrase (or reads the file named \
         by {PASSPHRASE_FILE_ENV}); without it nothing in the data dir can be read."
    );
    Ok(dir)
}

/// `rhizo init --link`: a device key only, waiting to be linked.
fn init_link(dir: &DataDir) -> anyhow::Result<()> {
    match dir.init_link()? {
        InitLinkOutcome::AlreadyInitialised(identity) => {
            eprintln!(
                "rhizo is already initialised in {} (device {}); existing keys were left unchanged",
                dir.path().display(),
                identity.peer_id()
            );
        }
        InitLinkOutcome::Created(device) => {
            println!(
                "Created a device key in {} (no identity yet)",
                dir.path().display()
            );
            let peer_id = rhizo_node::data_dir::DeviceIdentity::PendingLink(*device).peer_id();
            println!("Device:      {peer_id}");
            println!();
            println!(
                "Next: `rhizo run` starts the node waiting to be linked; `rhizo device link` prints \
                 a link ticket; on your device with the root key run `rhizo device add TICKET`."
            );
        }
    }
    Ok(())
}

/// Longest phrase input read from stdin.
const MAX_PHRASE_INPUT: u64 = 4096;

/// Reads the recovery phrase from stdin (prompting on a terminal).
fn read_phrase() -> anyhow::Result<rhizo_core::RootKey> {
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        eprintln!("Type your 24-word recovery phrase, then Enter and Ctrl-D:");
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .take(MAX_PHRASE_INPUT)
        .read_to_string(&mut text)
        .context("cannot read the recovery phrase from stdin")?;
    Ok(rhizo_core::RootKey::from_phrase(&text)?)
}

/// `rhizo identity export-phrase`.
pub(crate) fn identity(
    config: &Config,
    command: &crate::cli::IdentityCommand,
) -> anyhow::Result<()> {
    match command {
        crate::cli::IdentityCommand::ExportPhrase => {
            let identity = DataDir::new(config.data_dir.clone()).unlocked()?.load()?;
            eprintln!(
                "Your recovery phrase (UID {}). Anyone who has it IS you: write it down, keep it \
                 offline, never type it into a website. `rhizo init --recover` recreates the \
                 identity; it cannot read past messages.",
                identity.uid()
            );
            println!("{}", identity.root.to_phrase().as_str());
        }
    }
    Ok(())
}
