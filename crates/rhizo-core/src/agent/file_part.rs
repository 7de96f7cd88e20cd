//! A task part that is a file by reference (issue 16): [`FilePart`]; and [`decode_raw`] for
//! raw parts. A file's content is not in the task message: it travels as a file message of
//! the same conversation (its `FileRef`, with the key, inside MLS) and is fetched over
//! `/rhizo/file/1` like any file; the part names it by content hash, with its name, size and
//! MIME type.
//!
//! ```text
//!  sender API: {"file": {"id": N}}  (N: a file message already sent to the peer)
//!        ─▶ engine fills hash, name, size, mime from the file row ─▶ TaskFile on the wire
//!  receiver:  TaskFile (checked) ─▶ stored ─▶ on view, `id` and `state` of the file message
//!             with that hash in the conversation with the peer (`rhizo files get id`)
//! ```

use serde::{Deserialize, Serialize};

use super::AgentError;
use crate::file::{MAX_FILE_BYTES, MAX_MIME_BYTES, MAX_NAME_BYTES};
use crate::proto;

/// A file a task part refers to (A2A's `url` part, by content hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePart {
    /// The file's id here (its file message, as `rhizo files` lists it): what the API caller
    /// gives; on a received part, the file message with the same hash once it is here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// The content hash (hex): the bao root of the encrypted content.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    /// The file's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Its plaintext size in bytes.
    #[serde(default)]
    pub size: u64,
    /// Its MIME type.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mime: String,
    /// The file's state here (`offered`, `downloading`, `done`, `failed`), shown on view;
    /// absent while its file message has not arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl FilePart {
    /// Whether the reference is filled in (hash, name): what goes on the wire.
    #[must_use]
    pub fn is_resolved(&self) -> bool {
        !self.hash.is_empty() && !self.name.is_empty()
    }

    /// The content hash's bytes.
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] when the hash is not 64 hex digits.
    pub fn hash_bytes(&self) -> Result<[u8; 32], AgentError> {
        data_encoding::HEXLOWER_PERMISSIVE
            .decode(self.hash.as_bytes())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or(AgentError::Invalid(
                "a file part's hash is not 64 hex digits",
            ))
    }

    /// Checks the part as the API gives it (an id, or a whole reference).
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] naming the field.
    pub fn validate(&self) -> Result<(), AgentError> {
        if self.id.is_none() && !self.is_resolved() {
            return Err(AgentError::Invalid(
                "a file part names a file by `id` (send it to the peer first: POST /v1/files)",
            ));
        }
        if self.is_resolved() {
            self.hash_bytes()?;
            check_name_mime(&self.name, &self.mime)?;
            if self.size > MAX_FILE_BYTES {
                return Err(AgentError::Invalid("a file part's size is over the limit"));
            }
        }
        Ok(())
    }

    /// A short text for the CLI: `[file NAME, SIZE bytes]`.
    #[must_use]
    pub fn as_text(&self) -> String {
        format!("[file {}, {} bytes]", self.name, self.size)
    }

    /// The part for the wire (its reference must be filled in).
    ///
    /// # Errors
    ///
    /// [`AgentError::Invalid`] when it is not.
    pub fn to_wire(&self) -> Result<proto::TaskFile, AgentError> {
        if !self.is_resolved() {
            return Err(AgentError::Invalid("a file part was not filled in"));
        }
        Ok(proto::TaskFile {
            hash: self.hash_bytes()?.to_vec().into(),
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
        })
    }

    /// A part from the wire, checked (no local id or state yet).
    ///
    /// # Errors
    ///
    /// [`AgentError::Malformed`] naming the field.
    pub fn from_wire(f: &proto::TaskFile) -> Result<Self, AgentError> {
        let hash: [u8; 32] = f.hash[..]
            .try_into()
            .map_err(|_| AgentError::Malformed("a file part's hash is not 32 bytes"))?;
        check_name_mime(&f.name, &f.mime)
            .map_err(|_| AgentError::Malformed("a file part's name or MIME type"))?;
        if f.size > MAX_FILE_BYTES {
            return Err(AgentError::Malformed(
                "a file part's size is over the limit",
            ));
        }
        Ok(Self {
            id: None,
            hash: data_encoding::HEXLOWER.encode(&hash),
            name: f.name.clone(),
            size: f.size,
            mime: f.mime.clone(),
            state: None,
        })
    }
}

/// Decodes a raw part's base64.
///
/// # Errors
///
/// [`AgentError::Invalid`] when it is not standard padded base64.
pub fn decode_raw(raw: &str) -> Result<Vec<u8>, AgentError> {
    data_encoding::BASE64
        .decode(raw.as_bytes())
        .map_err(|_| AgentError::Invalid("raw part is not base64"))
}

/// A name of 1 to 255 bytes without a path; a MIME type of at most 127 ASCII bytes.
fn check_name_mime(name: &str, mime: &str) -> Result<(), AgentError> {
    if name.is_empty()
        || name.len() > MAX_NAME_BYTES
        || name.contains(['/', '\\', '\0'])
        || name == "."
        || name == ".."
    {
        return Err(AgentError::Invalid(
            "a file part's name is empty, too long or has a path in it",
        ));
    }
    if mime.len() > MAX_MIME_BYTES || !mime.is_ascii() {
        return Err(AgentError::Invalid(
            "a file part's MIME type is too long or not ASCII",
        ));
    }
    Ok(())
}
