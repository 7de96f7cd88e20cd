//! `rhizo mcp`: an MCP server over stdin/stdout (the official Rust SDK, `rmcp`) whose tools
//! are the running node's contacts, messages, agents and tasks.
//!
//! ```text
//!  AI assistant ──MCP (JSON-RPC, stdio)──▶ rhizo mcp ──local API (bearer token)──▶ rhizo run
//! ```
//!
//! Each tool answers JSON text, or an error result (`isError`) whose text says what was wrong
//! with the input or what the node refused. stdout is the protocol: logs go to stderr.

use std::time::Duration;

use anyhow::anyhow;
use rhizo_core::agent::{NewTask, Priority, TaskMode};
use rhizo_node::Config;
use rmcp::{
    ServerHandler, ServiceExt,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{
    api_client::ApiClient,
    cmd::{
        contacts::urlencode,
        task::{checked_id, delegate_and_wait, now_ms, parse_deadline},
    },
};

/// How long `delegate_task` waits when asked to and given no `wait_seconds`.
const DEFAULT_WAIT: Duration = Duration::from_secs(120);
/// The longest `delegate_task` waits.
const MAX_WAIT: Duration = Duration::from_secs(600);
/// Most messages `read_messages` returns.
const MAX_READ: usize = 1000;

/// `find_agents` input.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct FindAgents {
    /// The skill id to look for (1-64 characters of a-z, 0-9, '.', '_', '-').
    pub(crate) skill: String,
}

/// `send_message` input.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct SendMessage {
    /// The contact: their name or UID.
    pub(crate) to: String,
    /// The text (end-to-end encrypted to them).
    pub(crate) text: String,
}

/// `read_messages` input.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct ReadMessages {
    /// The contact: their name or UID.
    pub(crate) contact: String,
    /// At most this many of the latest messages (default 20, at most 1000).
    #[serde(default)]
    pub(crate) limit: Option<usize>,
}

/// `delegate_task` input.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
pub(crate) struct DelegateTask {
    /// The agent: a contact name or a UID (find one with find_agents); or a group's name or
    /// id, whose agent members take the task.
    pub(crate) to: String,
    /// What to do.
    pub(crate) text: String,
    /// Structured input, sent as a JSON data part after the text.
    #[serde(default)]
    pub(crate) data: Option<serde_json::Value>,
    /// The skill asked for.
    #[serde(default)]
    pub(crate) skill: Option<String>,
    /// low, normal (default), high or urgent.
    #[serde(default)]
    pub(crate) priority: Option<String>,
    /// When the task fails if not done: 30s, 5m, 2h, 1d from now, or an RFC 3339 time.
    #[serde(default)]
    pub(crate) deadline: Option<String>,
    /// Wait until the task ends and answer it with its result (default false: answer at once).
    #[serde(default)]
    pub(crate) wait: Option<bool>,
    /// With wait: give up waiting after this many seconds (default 120, at most 600) and
    /// answer the task as it is then.
    #[serde(default)]
    pub(crate) wait_seconds: Option<u64>,
    /// To a group: "any" (default: one agent member runs it) or "all" (every agent member
    /// with the skill runs it; the task lists each worker's state and artifacts).
    #[serde(default)]
    pub(crate) mode: Option<String>,
}

/// `get_task` / `cancel_task` input.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
pub(crate) struct TaskRef {
    /// The task id (32 hex digits).
    pub(crate) id: String,
}

/// The MCP server: tools over the node's local API.
#[derive(Debug, Clone)]
pub(crate) struct RhizoTools {
    config: Config,
    tool_router: ToolRouter<Self>,
}

/// A tool's answer: JSON text, or the error text.
type ToolResult = Result<String, String>;

fn pretty(value: &impl Serialize) -> ToolResult {
    serde_json::to_string_pretty(value).map_err(|e| e.to_string())
}

fn error_text(e: &anyhow::Error) -> String {
    format!("{e:#}")
}

#[tool_router]
impl RhizoTools {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            tool_router: Self::tool_router(),
        }
    }

    /// The node's API, found afresh for each call (the node may start after `rhizo mcp`).
    fn api(&self) -> Result<ApiClient, String> {
        ApiClient::connect(&self.config).map_err(|e| error_text(&e))
    }

    async fn get_json(&self, path: &str) -> ToolResult {
        let value: serde_json::Value = self.api()?.get(path).await.map_err(|e| error_text(&e))?;
        pretty(&value)
    }

    #[tool(description = "List your contacts (name, UID, verified).")]
    async fn list_contacts(&self) -> ToolResult {
        self.get_json("/v1/contacts").await
    }

    #[tool(description = "List the agents this node knows: card (skills), liveness, breaker.")]
    async fn list_agents(&self) -> ToolResult {
        self.get_json("/v1/agents").await
    }

    #[tool(description = "Find agents offering a skill, through the DHT (no registry).")]
    async fn find_agents(&self, Parameters(p): Parameters<FindAgents>) -> ToolResult {
        rhizo_core::agent::check_skill_id(&p.skill).map_err(|e| format!("skill: {e}"))?;
        self.get_json(&format!("/v1/agents/find?skill={}", urlencode(&p.skill)))
            .await
    }

    #[tool(description = "Send an end-to-end encrypted text message to a contact.")]
    async fn send_message(&self, Parameters(p): Parameters<SendMessage>) -> ToolResult {
        if p.to.trim().is_empty() || p.text.is_empty() {
            return Err("`to` and `text` must not be empty".into());
        }
        let sent: serde_json::Value = self
            .api()?
            .post("/v1/message", &json!({"to": p.to, "text": p.text}))
            .await
            .map_err(|e| error_text(&e))?;
        pretty(&sent)
    }

    #[tool(description = "Read the latest messages with a contact (oldest first).")]
    async fn read_messages(&self, Parameters(p): Parameters<ReadMessages>) -> ToolResult {
        let limit = p.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_READ {
            return Err(format!("limit must be 1 to {MAX_READ}"));
        }
        self.get_json(&format!(
            "/v1/conversations/{}/messages?limit={limit}&mark_read=false",
            urlencode(&p.contact)
        ))
        .await
    }

    #[tool(
        description = "Delegate a task to an agent, or to a group's agent members (end-to-end \
                       encrypted). Answers the task (id, status); with wait=true, waits until \
                       it ends and answers it with its artifacts."
    )]
    async fn delegate_task(&self, Parameters(p): Parameters<DelegateTask>) -> ToolResult {
        let (request, wait) = delegate_request(&p, now_ms()).map_err(|e| error_text(&e))?;
        let api = self.api()?;
        let task = match wait {
            Some(limit) => delegate_and_wait(&api, &request, Some(limit), |_| {}).await,
            None => api.post("/v1/tasks", &request).await,
        }
        .map_err(|e| error_text(&e))?;
        pretty(&task)
    }

    #[tool(description = "Get a task: its state, status history, messages and artifacts.")]
    async fn get_task(&self, Parameters(p): Parameters<TaskRef>) -> ToolResult {
        let id = task_id(&p.id)?;
        self.get_json(&format!("/v1/tasks/{id}")).await
    }

    #[tool(description = "Ask the worker to cancel a task; answers the task as it is now.")]
    async fn cancel_task(&self, Parameters(p): Parameters<TaskRef>) -> ToolResult {
        let id = task_id(&p.id)?;
        let task: serde_json::Value = self
            .api()?
            .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
            .await
            .map_err(|e| error_text(&e))?;
        pretty(&task)
    }
}

fn task_id(id: &str) -> Result<String, String> {
    checked_id(id).map_err(|e| format!("id {e}"))
}

/// The checked request of `delegate_task`, and how long to wait (`None`: do not).
pub(crate) fn delegate_request(
    p: &DelegateTask,
    now_ms: i64,
) -> anyhow::Result<(NewTask, Option<Duration>)> {
    let priority = match &p.priority {
        Some(s) => s
            .parse::<Priority>()
            .map_err(|e| anyhow!("priority: {e}"))?,
        None => Priority::Normal,
    };
    let deadline = match &p.deadline {
        Some(s) => Some(
            parse_deadline(s)
                .map_err(|e| anyhow!("deadline: {e}"))?
                .resolve(now_ms)?,
        ),
        None => None,
    };
    let mode = match p.mode.as_deref() {
        None | Some("any") => TaskMode::Any,
        Some("all") => TaskMode::All,
        Some(other) => return Err(anyhow!("mode: {other:?} is not \"any\" or \"all\"")),
    };
    let request = NewTask {
        to: p.to.clone(),
        text: Some(p.text.clone()),
        data: p.data.clone(),
        skill: p.skill.clone(),
        priority,
        deadline,
        mode,
        ..NewTask::default()
    };
    request.validate().map_err(|e| anyhow!("{e}"))?;
    let wait = match (p.wait.unwrap_or(false), p.wait_seconds) {
        (false, _) => None,
        (true, None) => Some(DEFAULT_WAIT),
        (true, Some(s)) if s == 0 || s > MAX_WAIT.as_secs() => {
            return Err(anyhow!("wait_seconds must be 1 to {}", MAX_WAIT.as_secs()));
        }
        (true, Some(s)) => Some(Duration::from_secs(s)),
    };
    Ok((request, wait))
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for RhizoTools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build()).with_instructions(
            "rhizo: end-to-end encrypted messaging for people and agents. Find agents by \
             skill, delegate tasks to them, follow the tasks; send and read messages.",
        )
    }
}

/// Serves MCP on stdin/stdout until the client closes it.
pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    tracing::info!("rhizo mcp: serving on stdio");
    let service = RhizoTools::new(config)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| anyhow!("MCP start failed: {e}"))?;
    service.waiting().await?;
    Ok(())
}

#[cfg(test)]
mod tests;
