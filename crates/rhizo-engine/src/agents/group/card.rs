//! A group as one agent (A2A and MCP clients address it where they name an agent): its card
//! gathers the skills of its agent members' cached cards.

use rhizo_core::{
    Uid,
    agent::{AgentCard, AgentSkill, MAX_CARD_NAME_CHARS, MAX_SKILLS},
};
use rhizo_store::Reader;

use super::group_named;
use crate::{Engine, EngineError, agents::cards::cached_card};

/// Members whose cached cards one group card reads at most.
pub const MAX_CARD_MEMBERS: usize = 256;
/// The skill a group card shows when no member's card is known.
pub const GROUP_SKILL: &str = "group";

/// A group seen as one agent: where its tasks go, and its gathered card.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAgentCard {
    /// The group's address, as a UID (a task to the group shows it as the peer).
    pub address: Uid,
    /// The group's name.
    pub name: String,
    /// The gathered card.
    pub card: AgentCard,
    /// How many members' cards it gathered.
    pub agents: usize,
}

impl Engine {
    /// The group `to` names (as [`Engine::delegate`] finds one: its id, address or name) as
    /// one agent: a card named after it, with the skills (unique ids, at most 32) of the
    /// cards cached for its members (the first [`MAX_CARD_MEMBERS`] other than us). With none
    /// known, one skill [`GROUP_SKILL`] says any task goes to its agent members. `None`: no
    /// such group.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn group_card(
        &self,
        reader: &Reader<'_>,
        to: &str,
    ) -> Result<Option<GroupAgentCard>, EngineError> {
        let Some(group) = group_named(reader, to)? else {
            return Ok(None);
        };
        let me = *self.me.uid.as_bytes();
        let mut skills: Vec<AgentSkill> = Vec::new();
        let mut agents = 0;
        let members = reader.group_members(&group.session_id)?;
        for m in members
            .iter()
            .filter(|m| m.uid != me)
            .take(MAX_CARD_MEMBERS)
        {
            let Some(record) = reader.agent_card(&m.uid)?.as_ref().and_then(cached_card) else {
                continue;
            };
            agents += 1;
            for skill in &record.card().skills {
                if skills.len() < MAX_SKILLS && !skills.iter().any(|s| s.id == skill.id) {
                    skills.push(skill.clone());
                }
            }
        }
        if skills.is_empty() {
            skills.push(AgentSkill {
                id: GROUP_SKILL.into(),
                name: "Any task for the group's agent members".into(),
                description: String::new(),
                tags: Vec::new(),
                examples: Vec::new(),
                input_modes: Vec::new(),
                output_modes: Vec::new(),
            });
        }
        let card = AgentCard {
            name: group.name.chars().take(MAX_CARD_NAME_CHARS).collect(),
            description: format!(
                "The rhizo group '{}': a task sent here goes to one of its agent members \
                 (metadata mode \"all\": to every one that has the skill, each result kept)",
                group.name
            ),
            version: String::new(),
            skills,
            default_input_modes: vec!["text/plain".into()],
            default_output_modes: vec!["text/plain".into()],
            limits: rhizo_core::agent::AgentLimits::default(),
        };
        Ok(Some(GroupAgentCard {
            address: Uid::from_bytes(&group.address),
            name: group.name,
            card,
            agents,
        }))
    }
}
