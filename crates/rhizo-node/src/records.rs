//! The node's DHT record rules: what it stores for others, through rhizo-core's validation.

use rhizo_core::records::{should_replace, validate_record};
use rhizo_net::RecordValidator;

/// Validates records with [`validate_record`] (size, signature, key, expiry) and refuses
/// replacements that do not grow the version ([`should_replace`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreRecordValidator;

impl RecordValidator for CoreRecordValidator {
    fn validate(&self, key: &[u8], value: &[u8], existing: Option<&[u8]>) -> Result<(), String> {
        let now = u64::try_from(crate::unix_now()).unwrap_or(0);
        let incoming = validate_record(key, value, now).map_err(|e| e.to_string())?;
        if let Some(existing) = existing
            && let Ok(existing) = validate_record(key, existing, now)
        {
            // An expired or invalid stored copy is simply replaced.
            match should_replace(&existing, &incoming) {
                Ok(true) => {}
                Ok(false) => return Err("not newer than the stored record".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}
