//! Arguments of the operator commands: `rhizo doctor`, `rhizo completions`, `rhizo man`.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Machine-readable JSON output (one object per check)
    #[arg(long)]
    pub(crate) json: bool,
    /// Do not open TCP connections to the bootstrap peers the node is not connected to (or to
    /// all of them, when no node runs): check only that they are configured
    #[arg(long)]
    pub(crate) offline: bool,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ManArgs {
    /// Write rhizo.1 and one page per command (rhizo-send.1, …) into this directory instead
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}
