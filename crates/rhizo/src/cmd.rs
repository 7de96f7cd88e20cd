//! One file per command; [`dispatch`] routes to them.

mod agent;
mod backup;
mod bans;
mod channel;
mod chat;
mod config;
pub(crate) mod contacts;
mod conversations;
mod demo;
mod device;
mod doctor;
pub(crate) mod files;
mod group;
mod id;
mod init;
mod mailbox;
mod mcp;
mod pair;
mod passphrase;
mod peers;
mod profile;
mod requests;
mod restore;
mod run;
mod shell;
mod status;
pub(crate) mod task;
mod ui;

use std::path::PathBuf;

use anyhow::Context;
use rhizo_node::{Config, ConfigLayer, config::default_config_file};

use crate::cli::{AgentCommand, Cli, Command, ConfigCommand, NodeArgs};

pub(crate) async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init(args) => init::run(&load_config(&cli, None)?, args).await,
        Command::Id(args) => id::run(&load_config(&cli, None)?, args.json).await,
        Command::Run(args) => run::run(load_config(&cli, Some(args))?).await,
        Command::Status(args) => status::run(&load_config(&cli, None)?, args.json).await,
        Command::Peers(args) => peers::run(&load_config(&cli, None)?, args.json).await,
        Command::Demo(args) => demo::run(args.keep).await,
        Command::Ban(args) => bans::ban(&load_config(&cli, None)?, args).await,
        Command::Unban { target } => bans::unban(&load_config(&cli, None)?, target).await,
        Command::Bans(args) => bans::list(&load_config(&cli, None)?, args.json).await,
        Command::Channel(c) => channel::run(&load_config(&cli, None)?, c).await,
        Command::Profile(c) => profile::run(&load_config(&cli, None)?, c).await,
        Command::Mailbox(args) => mailbox::run(&load_config(&cli, None)?, args).await,
        Command::Invite(args) => contacts::invite(&load_config(&cli, None)?, args).await,
        Command::Contacts(c) => contacts::run(&load_config(&cli, None)?, c).await,
        Command::Requests(args) => requests::run(&load_config(&cli, None)?, args).await,
        Command::Send(args) => chat::send(&load_config(&cli, None)?, args).await,
        Command::Conversations(args) => conversations::run(&load_config(&cli, None)?, args).await,
        Command::Messages(args) => chat::messages(&load_config(&cli, None)?, args).await,
        Command::Files(args) => files::run(&load_config(&cli, None)?, args).await,
        Command::Chat(args) => chat::chat(&load_config(&cli, None)?, args).await,
        Command::Tui => crate::tui::run(&load_config(&cli, None)?).await,
        Command::Ui(args) => ui::run(&load_config(&cli, None)?, args).await,
        Command::Group(c) => group::run(&load_config(&cli, None)?, c).await,
        Command::Device(c) => device::run(&load_config(&cli, None)?, c).await,
        Command::Pair(args) => pair::run(&load_config(&cli, None)?, args).await,
        Command::Identity(c) => init::identity(&load_config(&cli, None)?, c),
        Command::Passphrase(c) => passphrase::run(&load_config(&cli, None)?, c),
        Command::Backup(args) => backup::run(&load_config(&cli, None)?, args),
        Command::Restore(args) => restore::run(&load_config(&cli, None)?, args),
        Command::Agent(AgentCommand::Card(c)) => agent::card(&load_config(&cli, None)?, c).await,
        Command::Agent(AgentCommand::Serve(args)) => {
            agent::serve(&load_config(&cli, None)?, args).await
        }
        Command::Agents(args) => agent::agents(&load_config(&cli, None)?, args).await,
        Command::Task(c) => task::run(&load_config(&cli, None)?, c).await,
        Command::Mcp => mcp::run(load_config(&cli, None)?).await,
        Command::Doctor(args) => doctor::run(&load_config(&cli, None)?, args).await,
        Command::Completions(args) => shell::completions(args),
        Command::Man(args) => shell::man(args),
        Command::Config(ConfigCommand::Show(args)) => {
            config::show(&load_config(&cli, Some(args))?, &config_file_in_use(&cli))
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}

/// `RHIZO_*` variables, skipping any that are not valid UTF-8 (instead of panicking on them).
fn env_vars() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with("RHIZO_"))
        .collect()
}

/// The config file in effect: `--config`, else `RHIZO_CONFIG`, else the XDG default if it exists.
/// The bool says whether it was named explicitly (then it must exist).
fn config_file_in_use(cli: &Cli) -> Option<(PathBuf, bool)> {
    if let Some(path) = &cli.config {
        return Some((path.clone(), true));
    }
    if let Some(path) = std::env::var_os("RHIZO_CONFIG").filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(path), true));
    }
    default_config_file()
        .filter(|p| p.exists())
        .map(|p| (p, false))
}

fn load_config(cli: &Cli, node: Option<&NodeArgs>) -> anyhow::Result<Config> {
    let env = ConfigLayer::from_env(env_vars())?;
    let file = match config_file_in_use(cli) {
        Some((path, _)) => ConfigLayer::from_file(&path)?,
        None => ConfigLayer::default(),
    };
    Config::resolve([cli.flag_layer(node), env, file]).context("invalid configuration")
}
