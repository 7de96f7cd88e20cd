//! `rhizo completions SHELL` and `rhizo man`: generated from the clap definitions, so they never
//! drift from the commands.

use std::io::Write;

use anyhow::Context;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs, ManArgs};

/// The binary's name in completions and man pages.
const BIN: &str = "rhizo";

pub(crate) fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), BIN, &mut out);
    write_stdout(&out)
}

pub(crate) fn man(args: &ManArgs) -> anyhow::Result<()> {
    // NAME reads "rhizo - <about>": the about without its own "rhizo: " prefix.
    let mut cmd = Cli::command();
    if let Some(about) = cmd.get_about().map(ToString::to_string)
        && let Some(rest) = about.strip_prefix("rhizo: ")
    {
        cmd = cmd.about(rest.to_owned());
    }
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display()))?;
        println!("wrote the man pages into {}", dir.display());
        return Ok(());
    }
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .context("cannot render the man page")?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .context("cannot write to stdout")
}
