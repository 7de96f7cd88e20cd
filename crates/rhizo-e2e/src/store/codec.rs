//! [`StoreCodec`]: how openmls' stored keys and values become bytes.
//!
//! openmls' storage provider writes the group's secrets and tree on every
//! encrypt and decrypt, and its byte vectors are sequences of `u8` in serde:
//! JSON spells each byte as a decimal number, which made the codec a large
//! part of the store writer's time. Values of the types in [`BINARY_VALUES`]
//! are now written with postcard (one byte per `u8`) behind [`BINARY_TAG`], a
//! byte no JSON text can start with (it is not even UTF-8), so that rows an
//! older build wrote as JSON are still read: no migration.
//!
//! Everything else stays JSON:
//! * keys (group ids, epochs, public keys, proposal refs), because openmls
//!   looks rows up by the key's exact bytes, and the rows of existing
//!   databases hold JSON keys (`conversation/ordering.rs` also spells a group
//!   id the JSON way);
//! * values whose serde form needs a self-describing format (openmls'
//!   `MlsGroupJoinConfig` reads an untagged enum), which postcard is not;
//! * any type this module does not recognise by name, so a change in
//!   [`std::any::type_name`]'s output only costs speed, never a lookup.

use std::any::type_name;

/// First byte of a postcard-encoded value. JSON text starts with `{`, `[`, `"`,
/// a digit, `-`, `t`, `f`, `n` or whitespace; `0xC0` is none of those and
/// never appears in UTF-8.
pub(crate) const BINARY_TAG: u8 = 0xC0;

/// The openmls value types (last path segment of the Rust type name) written
/// with postcard. Only entities that are never keys, and whose serde form
/// round-trips through a format that is not self-describing.
const BINARY_VALUES: &[&str] = &[
    "MessageSecretsStore",
    "TreeSync",
    "GroupEpochSecrets",
    "GroupContext",
    "InterimTranscriptHash",
    "ConfirmationTag",
    "MlsGroupState",
    "ResumptionPskStore",
    "LeafNode",
    "LeafNodeIndex",
    "EncryptionKeyPair",
    "KeyPackageBundle",
    "QueuedProposal",
    "PskBundle",
];

/// Whether values of type `T` (possibly behind references, or a slice of
/// them) are written with postcard.
fn is_binary<T: ?Sized>() -> bool {
    #[cfg(test)]
    if tests::ALL_JSON.with(std::cell::Cell::get) {
        return false;
    }
    let name = type_name::<T>()
        .trim_start_matches('&')
        .trim_start_matches('[')
        .trim_end_matches(']');
    let last = name.rsplit("::").next().unwrap_or(name);
    BINARY_VALUES.contains(&last)
}

/// Why a stored value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    /// A JSON key or value.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A postcard value.
    #[error("postcard: {0}")]
    Postcard(#[from] postcard::Error),
}

/// serde codec for openmls' stored keys and values (see the [module docs](self)).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct StoreCodec;

impl openmls_sqlite_storage::Codec for StoreCodec {
    type Error = CodecError;

    fn to_vec<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Self::Error> {
        if !is_binary::<T>() {
            return Ok(serde_json::to_vec(value)?);
        }
        let body = postcard::to_allocvec(value)?;
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(BINARY_TAG);
        out.extend_from_slice(&body);
        Ok(out)
    }

    fn from_slice<T: serde::de::DeserializeOwned>(slice: &[u8]) -> Result<T, Self::Error> {
        match slice.split_first() {
            Some((&BINARY_TAG, rest)) => Ok(postcard::from_bytes(rest)?),
            _ => Ok(serde_json::from_slice(slice)?),
        }
    }
}

#[cfg(test)]
mod tests;
