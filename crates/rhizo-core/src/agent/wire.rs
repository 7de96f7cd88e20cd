//! Conversions between the agent model ([`super`]) and its protobuf wire form
//! (`proto/agent.proto`). Everything decoded from the wire is validated against the same
//! limits as what the API accepts.

use super::{AgentError, Artifact, Part, Role, TaskMessage, decode_raw};
use crate::proto;

/// A part for the wire.
///
/// # Errors
///
/// [`AgentError::Invalid`] for a raw part that is not base64.
pub fn part_to_wire(part: &Part) -> Result<proto::Part, AgentError> {
    Ok(proto::Part {
        text: part.text.clone().unwrap_or_default(),
        data_json: part
            .data
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        raw: match &part.raw {
            Some(r) => decode_raw(r)?.into(),
            None => bytes::Bytes::new(),
        },
        media_type: part.media_type.clone().unwrap_or_default(),
        filename: part.filename.clone().unwrap_or_default(),
        file: part
            .file
            .as_ref()
            .map(super::FilePart::to_wire)
            .transpose()?,
    })
}

/// A part from the wire, validated.
///
/// # Errors
///
/// [`AgentError::Malformed`] for bad JSON data, no or several contents, or over the limits.
pub fn part_from_wire(part: proto::Part) -> Result<Part, AgentError> {
    let data = if part.data_json.is_empty() {
        None
    } else {
        Some(
            serde_json::from_str(&part.data_json)
                .map_err(|_| AgentError::Malformed("data part is not JSON"))?,
        )
    };
    let out = Part {
        text: (!part.text.is_empty()).then_some(part.text),
        data,
        raw: (!part.raw.is_empty()).then(|| data_encoding::BASE64.encode(&part.raw)),
        media_type: (!part.media_type.is_empty()).then_some(part.media_type),
        filename: (!part.filename.is_empty()).then_some(part.filename),
        file: part
            .file
            .as_ref()
            .map(super::FilePart::from_wire)
            .transpose()?,
    };
    out.validate().map_err(malformed)?;
    Ok(out)
}

/// A message for the wire.
///
/// # Errors
///
/// As [`part_to_wire`].
pub fn message_to_wire(message: &TaskMessage) -> Result<proto::TaskMessage, AgentError> {
    Ok(proto::TaskMessage {
        message_id: message.message_id.clone(),
        role: match message.role {
            Role::User => 1,
            Role::Agent => 2,
        },
        parts: message
            .parts
            .iter()
            .map(part_to_wire)
            .collect::<Result<_, _>>()?,
    })
}

/// A message from the wire, validated.
///
/// # Errors
///
/// [`AgentError::Malformed`].
pub fn message_from_wire(message: proto::TaskMessage) -> Result<TaskMessage, AgentError> {
    let role = match message.role {
        1 => Role::User,
        2 => Role::Agent,
        _ => return Err(AgentError::Malformed("unknown message role")),
    };
    let out = TaskMessage {
        message_id: message.message_id,
        role,
        parts: message
            .parts
            .into_iter()
            .map(part_from_wire)
            .collect::<Result<_, _>>()?,
    };
    out.validate().map_err(malformed)?;
    Ok(out)
}

/// An artifact for the wire.
///
/// # Errors
///
/// As [`part_to_wire`].
pub fn artifact_to_wire(artifact: &Artifact) -> Result<proto::Artifact, AgentError> {
    Ok(proto::Artifact {
        artifact_id: artifact.artifact_id.clone(),
        name: artifact.name.clone().unwrap_or_default(),
        description: artifact.description.clone().unwrap_or_default(),
        parts: artifact
            .parts
            .iter()
            .map(part_to_wire)
            .collect::<Result<_, _>>()?,
    })
}

/// An artifact from the wire, validated.
///
/// # Errors
///
/// [`AgentError::Malformed`].
pub fn artifact_from_wire(artifact: proto::Artifact) -> Result<Artifact, AgentError> {
    let out = Artifact {
        artifact_id: artifact.artifact_id,
        name: (!artifact.name.is_empty()).then_some(artifact.name),
        description: (!artifact.description.is_empty()).then_some(artifact.description),
        parts: artifact
            .parts
            .into_iter()
            .map(part_from_wire)
            .collect::<Result<_, _>>()?,
    };
    out.validate().map_err(malformed)?;
    Ok(out)
}

/// What came off the wire is malformed, whatever rule it broke.
fn malformed(e: AgentError) -> AgentError {
    match e {
        AgentError::Invalid(what) => AgentError::Malformed(what),
        AgentError::TooLarge { .. } => AgentError::Malformed("part over the inline limit"),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_and_artifacts_round_trip() {
        let m = TaskMessage {
            message_id: "m1".into(),
            role: Role::User,
            parts: vec![
                Part::text("hello"),
                Part::data(serde_json::json!({"n": 3})),
                Part {
                    raw: Some(data_encoding::BASE64.encode(b"\x00\x01")),
                    media_type: Some("application/octet-stream".into()),
                    ..Part::default()
                },
            ],
        };
        let back = message_from_wire(message_to_wire(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let a = Artifact {
            artifact_id: "a1".into(),
            name: Some("result".into()),
            description: None,
            parts: vec![Part::text("42")],
        };
        assert_eq!(
            artifact_from_wire(artifact_to_wire(&a).unwrap()).unwrap(),
            a
        );
    }

    #[test]
    fn bad_wire_values_are_malformed() {
        let empty = proto::Part::default();
        assert!(matches!(
            part_from_wire(empty),
            Err(AgentError::Malformed(_))
        ));
        let bad_json = proto::Part {
            data_json: "{".into(),
            ..proto::Part::default()
        };
        assert!(part_from_wire(bad_json).is_err());
        let bad_role = proto::TaskMessage {
            message_id: "m".into(),
            role: 7,
            parts: vec![proto::Part {
                text: "x".into(),
                ..proto::Part::default()
            }],
        };
        assert!(message_from_wire(bad_role).is_err());
    }
}
