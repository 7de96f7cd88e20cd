//! The agent card as the user writes it (A2A's AgentCard): skills, limits, the size rules that
//! keep a maximal card inside one DHT record, and their checks.

use serde::{Deserialize, Serialize};

use super::{AgentError, MAX_INLINE_PART_BYTES, MAX_SKILL_ID_BYTES};

/// A2A's AgentSkill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentSkill {
    /// 1–64 bytes of `[a-z0-9._-]`; what `rhizo agents find` looks up.
    pub id: String,
    /// Human name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: String,
    /// Keywords.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Example requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// Accepted media types (default: the card's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub input_modes: Vec<String>,
    /// Produced media types (default: the card's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_modes: Vec<String>,
}

/// What an agent accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLimits {
    /// Tasks queued at most; more are rejected with `RATE_LIMITED`.
    pub max_queue: u32,
    /// Tasks worked on at once.
    pub max_concurrent: u32,
    /// Largest part accepted, bytes.
    pub max_part_bytes: u32,
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_queue: 64,
            max_concurrent: 4,
            max_part_bytes: u32::try_from(MAX_INLINE_PART_BYTES).unwrap_or(u32::MAX),
        }
    }
}

/// An agent card as the user writes it (`rhizo agent card set`, `PUT /v1/agent/card`); the
/// node signs it into a versioned DHT record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCard {
    /// 1–64 characters.
    pub name: String,
    /// At most 1024 bytes.
    #[serde(default)]
    pub description: String,
    /// The agent software's version.
    #[serde(default)]
    pub version: String,
    /// 1–32 skills with unique ids.
    pub skills: Vec<AgentSkill>,
    /// Default `["text/plain"]`.
    #[serde(default = "default_modes")]
    pub default_input_modes: Vec<String>,
    /// Default `["text/plain"]`.
    #[serde(default = "default_modes")]
    pub default_output_modes: Vec<String>,
    /// Queue and size limits.
    #[serde(default)]
    pub limits: AgentLimits,
}

fn default_modes() -> Vec<String> {
    vec!["text/plain".to_string()]
}

/// Longest card name, in characters.
pub const MAX_CARD_NAME_CHARS: usize = 64;
/// Longest card description, bytes.
pub const MAX_CARD_DESCRIPTION_BYTES: usize = 1024;
/// Longest agent software version string, bytes.
pub const MAX_CARD_VERSION_BYTES: usize = 64;
/// Most skills on a card.
pub const MAX_SKILLS: usize = 32;
/// Longest skill name, bytes.
pub const MAX_SKILL_NAME_BYTES: usize = 128;
/// Longest skill description, bytes.
pub const MAX_SKILL_DESCRIPTION_BYTES: usize = 512;
/// Most tags on a skill, and the longest tag in bytes.
pub const MAX_TAGS: usize = 8;
/// Longest tag, bytes.
pub const MAX_TAG_BYTES: usize = 32;
/// Most examples on a skill.
pub const MAX_EXAMPLES: usize = 2;
/// Longest example, bytes.
pub const MAX_EXAMPLE_BYTES: usize = 128;
/// Most media types in one list (a card's defaults, a skill's input or output modes).
pub const MAX_MODES: usize = 4;
/// Longest media type, bytes.
pub const MAX_MODE_BYTES: usize = 64;

// These limits keep a maximal card's signed record (every field at its limit, names in 4-byte
// characters, protobuf framing counted generously) inside one DHT value
// (`records::MAX_RECORD_BYTES`, 60 KiB); `records::agent_card` tests it with a real maximal card.
const _: () = {
    let lists = 2 * MAX_MODES * (MAX_MODE_BYTES + 2);
    let skill = (MAX_SKILL_ID_BYTES + 2)
        + (MAX_SKILL_NAME_BYTES + 3)
        + (MAX_SKILL_DESCRIPTION_BYTES + 3)
        + MAX_TAGS * (MAX_TAG_BYTES + 2)
        + MAX_EXAMPLES * (MAX_EXAMPLE_BYTES + 3)
        + lists
        + 3;
    let card = (4 * MAX_CARD_NAME_CHARS + 3)
        + (MAX_CARD_DESCRIPTION_BYTES + 3)
        + (MAX_CARD_VERSION_BYTES + 2)
        + lists
        + 256;
    // 1.25 KiB stays for the record's envelope, signature and devices (certificates and
    // binding signatures).
    assert!(MAX_SKILLS * skill + card + 1280 <= crate::records::MAX_RECORD_BYTES);
};

impl AgentCard {
    /// Checks every field's limits (the `MAX_CARD_*`, `MAX_SKILL*`, `MAX_TAG*`,
    /// `MAX_EXAMPLE*` and `MAX_MODE*` constants), so that a valid card always fits in its DHT
    /// record.
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), AgentError> {
        let chars = self.name.chars().count();
        if chars == 0 || chars > MAX_CARD_NAME_CHARS || self.name.chars().any(char::is_control) {
            return Err(AgentError::Invalid(
                "card name must be 1-64 characters, no control characters",
            ));
        }
        if self.description.len() > MAX_CARD_DESCRIPTION_BYTES {
            return Err(AgentError::Invalid(
                "card description must be at most 1024 bytes",
            ));
        }
        if self.version.len() > MAX_CARD_VERSION_BYTES {
            return Err(AgentError::Invalid("card version must be at most 64 bytes"));
        }
        if self.skills.is_empty() || self.skills.len() > MAX_SKILLS {
            return Err(AgentError::Invalid("a card has 1 to 32 skills"));
        }
        check_modes(&self.default_input_modes)?;
        check_modes(&self.default_output_modes)?;
        let mut ids = std::collections::HashSet::new();
        for s in &self.skills {
            check_skill_id(&s.id)?;
            if !ids.insert(s.id.as_str()) {
                return Err(AgentError::Invalid("skill ids must be unique"));
            }
            s.validate()?;
        }
        if self.limits.max_queue == 0 || self.limits.max_concurrent == 0 {
            return Err(AgentError::Invalid("limits must be at least 1"));
        }
        Ok(())
    }

    /// Whether the card offers a skill.
    pub fn has_skill(&self, id: &str) -> bool {
        self.skills.iter().any(|s| s.id == id)
    }
}

impl AgentSkill {
    /// Checks the skill's fields other than its id (which [`check_skill_id`] checks).
    fn validate(&self) -> Result<(), AgentError> {
        if self.name.is_empty()
            || self.name.len() > MAX_SKILL_NAME_BYTES
            || self.description.len() > MAX_SKILL_DESCRIPTION_BYTES
        {
            return Err(AgentError::Invalid(
                "skill name must be 1-128 bytes, description at most 512",
            ));
        }
        if !list_fits(&self.tags, MAX_TAGS, MAX_TAG_BYTES) {
            return Err(AgentError::Invalid(
                "a skill has at most 8 tags of 32 bytes",
            ));
        }
        if !list_fits(&self.examples, MAX_EXAMPLES, MAX_EXAMPLE_BYTES) {
            return Err(AgentError::Invalid(
                "a skill has at most 2 examples of 128 bytes",
            ));
        }
        check_modes(&self.input_modes)?;
        check_modes(&self.output_modes)
    }
}

fn list_fits(list: &[String], entries: usize, bytes: usize) -> bool {
    list.len() <= entries && list.iter().all(|x| x.len() <= bytes)
}

fn check_modes(list: &[String]) -> Result<(), AgentError> {
    if !list_fits(list, MAX_MODES, MAX_MODE_BYTES) {
        return Err(AgentError::Invalid(
            "media type lists hold at most 4 entries of 64 bytes",
        ));
    }
    Ok(())
}

/// Checks a skill id: 1–64 bytes of `[a-z0-9._-]`.
///
/// # Errors
///
/// [`AgentError::Invalid`].
pub fn check_skill_id(id: &str) -> Result<(), AgentError> {
    if id.is_empty()
        || id.len() > MAX_SKILL_ID_BYTES
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err(AgentError::Invalid(
            "a skill id is 1-64 characters of a-z, 0-9, '.', '_' and '-'",
        ));
    }
    Ok(())
}
