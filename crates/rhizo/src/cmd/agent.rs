//! `rhizo agent card set|show|delete`, `rhizo agents [find SKILL | ask CONTACT]`: this node's
//! agent card, the agents it knows or finds by skill, and asking a contact for its card.

use anyhow::{Context, anyhow};
use rhizo_core::agent::{AgentCard, AgentLimits, AgentSkill};
use rhizo_node::Config;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod serve;

pub(crate) use serve::serve;

use crate::{
    api_client::ApiClient,
    cli::{AgentsArgs, AgentsCommand, CardCommand, CardSetArgs},
    cmd::contacts::urlencode,
};

/// An agent as `/v1/agents` shows it (the spec's `AgentView`); fields this build does not
/// know are ignored, missing ones take their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct AgentView {
    pub(crate) uid: String,
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) card: Option<AgentCard>,
    #[serde(default)]
    pub(crate) card_version: Option<u64>,
    #[serde(default)]
    pub(crate) liveness: Option<String>,
    #[serde(default)]
    pub(crate) last_heartbeat: Option<i64>,
    #[serde(default)]
    pub(crate) load: Option<Value>,
    #[serde(default)]
    pub(crate) breaker: Option<String>,
}

/// Parses `--skill ID[:NAME]` into a skill (the name defaults to the id).
pub(crate) fn parse_skill(spec: &str) -> anyhow::Result<AgentSkill> {
    let (id, name) = match spec.split_once(':') {
        Some((id, name)) if !name.trim().is_empty() => (id.trim(), name.trim()),
        _ => (
            spec.trim().trim_end_matches(':'),
            spec.trim().trim_end_matches(':'),
        ),
    };
    rhizo_core::agent::check_skill_id(id).map_err(|e| anyhow!("--skill {spec:?}: {e}"))?;
    Ok(AgentSkill {
        id: id.to_string(),
        name: name.to_string(),
        description: String::new(),
        tags: Vec::new(),
        examples: Vec::new(),
        input_modes: Vec::new(),
        output_modes: Vec::new(),
    })
}

/// A card from flags.
pub(crate) fn card_of(
    name: &str,
    description: Option<&str>,
    skills: &[String],
) -> anyhow::Result<AgentCard> {
    let card = AgentCard {
        name: name.to_string(),
        description: description.unwrap_or_default().to_string(),
        version: String::new(),
        skills: skills
            .iter()
            .map(|s| parse_skill(s))
            .collect::<anyhow::Result<_>>()?,
        default_input_modes: vec!["text/plain".into()],
        default_output_modes: vec!["text/plain".into()],
        limits: AgentLimits::default(),
    };
    card.validate()
        .map_err(|e| anyhow!("the card is not valid: {e}"))?;
    Ok(card)
}

/// A card from a JSON file, checked.
pub(crate) fn card_from_file(path: &std::path::Path) -> anyhow::Result<AgentCard> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let card: AgentCard = serde_json::from_str(&text)
        .with_context(|| format!("{} is not an agent card", path.display()))?;
    card.validate()
        .map_err(|e| anyhow!("{}: the card is not valid: {e}", path.display()))?;
    Ok(card)
}

pub(crate) async fn card(config: &Config, command: &CardCommand) -> anyhow::Result<()> {
    match command {
        CardCommand::Set(args) => set_card(config, args).await,
        CardCommand::Show(json) => {
            let card: Value = ApiClient::connect(config)?.get("/v1/agent/card").await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&card)?);
            } else {
                print_card(&card);
            }
            Ok(())
        }
        CardCommand::Delete => {
            let _: Value = ApiClient::connect(config)?.delete("/v1/agent/card").await?;
            println!("The agent card is removed; its skills are no longer announced.");
            Ok(())
        }
    }
}

async fn set_card(config: &Config, args: &CardSetArgs) -> anyhow::Result<()> {
    let card = match &args.file {
        Some(path) => card_from_file(path)?,
        None => card_of(
            args.name.as_deref().unwrap_or_default(),
            args.description.as_deref(),
            &args.skills,
        )?,
    };
    let stored: Value = ApiClient::connect(config)?
        .post("/v1/agent/card", &card)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&stored)?);
    } else {
        println!(
            "Agent card version {} published: {} with skills {}.",
            stored["card_version"],
            card.name,
            skill_ids(&card)
        );
    }
    Ok(())
}

fn skill_ids(card: &AgentCard) -> String {
    card.skills
        .iter()
        .map(|s| s.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_card(card: &Value) {
    println!(
        "{} (card version {}, UID {})",
        card["name"].as_str().unwrap_or("?"),
        card["card_version"],
        card["uid"].as_str().unwrap_or("?")
    );
    if let Some(d) = card["description"].as_str().filter(|d| !d.is_empty()) {
        println!("  {d}");
    }
    for s in card["skills"].as_array().into_iter().flatten() {
        println!(
            "  skill {}: {}",
            s["id"].as_str().unwrap_or("?"),
            s["name"].as_str().unwrap_or("")
        );
    }
}

pub(crate) async fn agents(config: &Config, args: &AgentsArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let (path, json, empty) = match &args.command {
        None => (
            "/v1/agents".to_string(),
            args.json,
            "No known agents. Find some with `rhizo agents find SKILL`.".to_string(),
        ),
        Some(AgentsCommand::Find { skill, json }) => {
            rhizo_core::agent::check_skill_id(skill).map_err(|e| anyhow!("{e}"))?;
            (
                format!("/v1/agents/find?skill={}", urlencode(skill)),
                *json || args.json,
                format!("No agent offering {skill} was found."),
            )
        }
        Some(AgentsCommand::Ask { agent, json }) => {
            return ask(api, agent, *json || args.json).await;
        }
    };
    let list: Vec<AgentView> = api.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("{empty}");
    } else {
        print_table(&list);
    }
    Ok(())
}

/// `rhizo agents ask`: the node asks the contact over MLS and waits (bounded) for its answer.
async fn ask(api: ApiClient, agent: &str, json: bool) -> anyhow::Result<()> {
    // The node gives up after ASK_AGENT_TIMEOUT and says so; wait a little longer for that.
    let wait = rhizo_node::messaging::ASK_AGENT_TIMEOUT + std::time::Duration::from_secs(15);
    let path = format!("/v1/agents/{}?live=1", urlencode(agent));
    let view: AgentView = api.waiting(wait)?.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&view)?);
    } else {
        print_table(std::slice::from_ref(&view));
    }
    Ok(())
}

fn print_table(list: &[AgentView]) {
    println!(
        "{:<24}  {:<63}  {:<11}  {:<9}  SKILLS",
        "NAME", "UID", "LIVENESS", "BREAKER"
    );
    for a in list {
        let name = a
            .name
            .clone()
            .or_else(|| a.card.as_ref().map(|c| c.name.clone()))
            .unwrap_or_else(|| "-".into());
        let skills = a.card.as_ref().map_or_else(|| "-".into(), skill_ids);
        println!(
            "{name:<24}  {:<63}  {:<11}  {:<9}  {skills}",
            a.uid,
            a.liveness.as_deref().unwrap_or("unknown"),
            a.breaker.as_deref().unwrap_or("closed"),
        );
    }
}

#[cfg(test)]
mod tests;
