//! The A2A agent card of a remote rhizo agent, built 1:1 from its signed rhizo card.

use serde_json::{Value, json};

use super::{PROTOCOL_VERSION, RemoteAgent};

/// The name of the bearer scheme in `securitySchemes`.
pub const SECURITY_SCHEME: &str = "rhizoApiToken";

/// The JSON-RPC URL of `uid`'s binding on the local API reached at `host` (`127.0.0.1:4748`).
pub fn endpoint_url(host: &str, uid: &str) -> String {
    format!("http://{host}/a2a/{uid}/")
}

/// `GET /a2a/{agent}/.well-known/agent-card.json`: the agent's card in A2A 1.0's JSON (the
/// ProtoJSON of `lf.a2a.v1.AgentCard`), with one JSON-RPC interface at this node's local API
/// and bearer auth with the API token.
pub fn agent_card(agent: &RemoteAgent, host: &str) -> Value {
    let card = &agent.card;
    let skills: Vec<Value> = card
        .skills
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "name": s.name,
                "description": s.description,
                "tags": s.tags,
                "examples": s.examples,
                "inputModes": s.input_modes,
                "outputModes": s.output_modes,
            })
        })
        .collect();
    json!({
        "name": card.name,
        "description": card.description,
        "version": card.version,
        "supportedInterfaces": [{
            "url": endpoint_url(host, &agent.uid),
            "protocolBinding": "JSONRPC",
            "protocolVersion": PROTOCOL_VERSION,
        }],
        "provider": {
            "organization": "rhizo",
            "url": format!("rhizo:{}", agent.uid),
        },
        "capabilities": {
            "streaming": true,
            "pushNotifications": false,
            "extendedAgentCard": false,
        },
        "securitySchemes": {
            SECURITY_SCHEME: {
                "httpAuthSecurityScheme": {
                    "scheme": "Bearer",
                    "description": "the rhizo node's local API token (<data_dir>/api.token)",
                }
            }
        },
        "securityRequirements": [{"schemes": {SECURITY_SCHEME: {"list": []}}}],
        "defaultInputModes": card.default_input_modes,
        "defaultOutputModes": card.default_output_modes,
        "skills": skills,
    })
}
