//! `rhizo`: the node, the CLI and the local API client in one binary.
//!
//! Every command is one file under `cmd/`. Commands that talk to a running node do so through
//! its local API ([`api_client`]), found through `<data_dir>/api.addr` and `<data_dir>/api.token`.
//!
//! # Layout
//! - [`cli`]: the clap definitions of every command and global flag.
//! - [`cmd`]: one file per command (`cmd/<command>.rs`).
//! - [`api_client`]: the local API client (`/v1/` routes, bearer token).
//! - [`tui`]: `rhizo tui`, the full-screen terminal UI over the local API.
#![forbid(unsafe_code)]

mod api_client;
mod cli;
mod cmd;
mod tui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = cli::Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `rhizo status | head -2` closes our stdout early; `println!` then panics. Leave quietly
/// with the status a shell expects (128 + SIGPIPE), like other command-line tools.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn init_logging(cli: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (
        cli.quiet,
        cli.verbose,
        matches!(cli.command, cli::Command::Run(_)),
    ) {
        (true, _, _) => "error",
        (false, 0, true) => "warn,rhizo_node=info,rhizo_net=info",
        (false, 0, false) => "warn",
        (false, 1, _) => "info,rhizo_node=debug,rhizo_net=debug",
        (false, _, _) => "debug,rhizo_node=trace,rhizo_net=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
