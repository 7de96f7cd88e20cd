//! The agent and task commands' arguments (`rhizo agent|agents|task`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::JsonArg;

#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// This node's agent card (name, skills, limits), signed and announced in the DHT
    #[command(subcommand)]
    Card(CardCommand),
    /// Run CMD for each task this node receives: the task's text on stdin, stdout becomes
    /// the result (exit 0: completed; otherwise failed with the last stderr line)
    Serve(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CardCommand {
    /// Set the card, from a JSON file or from flags; signs and publishes a new version
    Set(CardSetArgs),
    /// Show the card
    Show(JsonArg),
    /// Stop being an agent: remove the card and stop announcing its skills
    Delete,
}

#[derive(Debug, Args)]
pub(crate) struct CardSetArgs {
    /// A card as JSON (`{"name": …, "skills": [{"id": …, "name": …}], …}`)
    #[arg(value_name = "FILE.json", conflicts_with_all = ["name", "description", "skills"])]
    pub(crate) file: Option<PathBuf>,
    /// The agent's name (1 to 64 characters)
    #[arg(long, required_unless_present = "file")]
    pub(crate) name: Option<String>,
    /// What it does
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// A skill, repeatable: its id (a-z, 0-9, '.', '_', '-'), optionally `:` and a human name
    #[arg(
        long = "skill",
        value_name = "ID[:NAME]",
        required_unless_present = "file"
    )]
    pub(crate) skills: Vec<String>,
    /// Print JSON
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A skill id this worker offers, repeatable (added to the node's card)
    #[arg(long = "skill", value_name = "ID[:NAME]", required = true)]
    pub(crate) skills: Vec<String>,
    /// The command run per task with `sh -c` (env RHIZO_TASK_ID, RHIZO_TASK_SKILL)
    #[arg(long = "exec", value_name = "CMD")]
    pub(crate) command: String,
    /// The card's name (default: the present card's, else "rhizo agent")
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Tasks run at once
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) concurrency: u32,
}

#[derive(Debug, Args)]
pub(crate) struct AgentsArgs {
    #[command(subcommand)]
    pub(crate) command: Option<AgentsCommand>,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgentsCommand {
    /// Find agents offering a skill, through the DHT (no registry)
    Find {
        /// The skill id
        skill: String,
        /// Machine-readable JSON output
        #[arg(long)]
        json: bool,
    },
    /// Ask a contact for its agent card now, over your conversation (end to end), and wait
    /// (at most 30 s) for its answer
    Ask {
        /// The contact's name or UID
        agent: String,
        /// Machine-readable JSON output
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Delegate a task to an agent; prints the task id (with --wait: its result)
    Send(TaskSendArgs),
    /// List tasks, newest first
    List(TaskListArgs),
    /// Show a task: state, history, artifacts
    Show {
        /// The task id
        id: String,
        /// Machine-readable JSON output
        #[arg(long)]
        json: bool,
    },
    /// Ask the worker to cancel a task
    Cancel {
        /// The task id
        id: String,
    },
    /// Give more input to a task that is `input-required`
    Input {
        /// The task id
        id: String,
        /// The text
        text: String,
    },
}

#[derive(Debug, Args)]
pub(crate) struct TaskSendArgs {
    /// The agent: a contact name or a UID; or a group's name or id (no contact of that name),
    /// whose agent members take it (one of them runs it; every one with `--all`)
    pub(crate) agent: String,
    /// What to do (the task's text)
    pub(crate) text: String,
    /// A JSON value sent as a data part after the text
    #[arg(long, value_name = "JSON", value_parser = crate::cmd::task::parse_json)]
    pub(crate) data: Option<serde_json::Value>,
    /// The skill asked for
    #[arg(long)]
    pub(crate) skill: Option<String>,
    /// low, normal, high or urgent
    #[arg(long, default_value = "normal", value_parser = crate::cmd::task::parse_priority)]
    pub(crate) priority: rhizo_core::agent::Priority,
    /// When the task fails if not done: 30s, 5m, 2h, 1d from now, or an RFC 3339 time
    #[arg(long, value_parser = crate::cmd::task::parse_deadline)]
    pub(crate) deadline: Option<crate::cmd::task::Deadline>,
    /// To a group: every agent member with the skill runs it (each one's result is kept)
    #[arg(long)]
    pub(crate) all: bool,
    /// Follow the task until it ends and print its result
    #[arg(long)]
    pub(crate) wait: bool,
    /// Machine-readable JSON output (the task)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct TaskListArgs {
    /// Only tasks we delegated (client) or execute (worker)
    #[arg(long, value_parser = ["client", "worker"])]
    pub(crate) side: Option<String>,
    /// Only tasks in this state (submitted, working, input-required, completed, failed, …)
    #[arg(long)]
    pub(crate) state: Option<String>,
    /// Only tasks with this agent or client (contact name or UID)
    #[arg(long)]
    pub(crate) peer: Option<String>,
    /// At most this many (1 to 1000)
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub(crate) limit: u16,
    /// Machine-readable JSON output
    #[arg(long)]
    pub(crate) json: bool,
}
