//! Profiles: ours (signed by the root key with a growing version, sent end-to-end to every
//! contact we talk with and, when public, published in the DHT) and contacts' (accepted when
//! signed by their root and newer than what we have).

use prost::Message as _;
use rhizo_core::{
    Uid,
    proto::ChatContent,
    records::{Profile, ValidRecord, profile_key, validate_record},
};
use rhizo_store::{
    Reader, Tx,
    messaging::{Contact, ProfileRow},
};
use tracing::debug;

use crate::{
    Engine, EngineError, Me, conversations::queue_application_tx, inbound::Reject,
    publish::next_record_version,
};

/// TTL of our public profile record (3 to 7 days are allowed; republished hourly).
pub const PROFILE_TTL_SECS: u64 = 3 * 24 * 3600;

/// What [`Engine::set_profile`] did.
#[derive(Debug)]
pub struct ProfileSet {
    /// The signed profile.
    pub profile: Profile,
    /// Conversations it was queued in (end-to-end to each contact).
    pub queued: usize,
}

impl Engine {
    /// Signs a new version of our profile, stores it and queues it end-to-end to every contact
    /// we have a conversation with, inside `tx` (a job of the group commit: the loaded
    /// conversations it changed are cached once that committed).
    ///
    /// # Errors
    ///
    /// [`EngineError::Record`] for a name or avatar the profile format refuses; or if MLS or
    /// the database fails.
    pub fn set_profile(
        &self,
        tx: &mut Tx<'_>,
        name: &str,
        avatar: Vec<u8>,
        avatar_mime: &str,
        public: bool,
        now: i64,
    ) -> Result<ProfileSet, EngineError> {
        self.in_job(tx, |tx| {
            let me = &self.me;
            let version = next_record_version(tx, now)?;
            let profile = Profile::new(
                me.root_signer()?,
                version,
                name,
                avatar,
                avatar_mime,
                crate::secs(now),
                PROFILE_TTL_SECS,
            )?;
            let record = profile.encode();
            tx.upsert_profile(&profile_row(&me.uid, &profile, &record, public, now))?;
            crate::sync::queue_profile(tx, self, &record, public, now)?;
            let content = ChatContent {
                text: String::new(),
                sent_at_ms: crate::ms(now),
                profile: record.clone().into(),
                agent: None,
                ..ChatContent::default()
            }
            .encode_to_vec();
            let mut queued = 0;
            for contact in tx.list_contacts()? {
                if let Some(session) = tx.open_conversation_with(&contact.uid)? {
                    queue_application_tx(
                        tx, self, &contact, &session, &content, "profile", None, now,
                    )?;
                    queued += 1;
                }
            }
            Ok(ProfileSet { profile, queued })
        })
    }

    /// Our public profile re-signed with a new version (so it never expires while we are
    /// online), to publish; `None` when we have none or it is not public.
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn public_profile_record(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<Option<Vec<u8>>, EngineError> {
        let me = &self.me;
        if !me.holds_root() {
            // Only the device with the root key signs our profile; it republishes it.
            return Ok(None);
        }
        let Some(row) = tx.profile(me.uid.as_bytes())? else {
            return Ok(None);
        };
        if !row.public {
            return Ok(None);
        }
        let version = next_record_version(tx, now)?;
        let profile = Profile::new(
            me.root_signer()?,
            version,
            &row.name,
            row.avatar.clone().unwrap_or_default(),
            row.avatar_mime.as_deref().unwrap_or(""),
            crate::secs(now),
            PROFILE_TTL_SECS,
        )?;
        let record = profile.encode();
        tx.upsert_profile(&profile_row(&me.uid, &profile, &record, true, now))?;
        Ok(Some(record))
    }
}

/// Stores a contact's profile that came end-to-end, if it is signed by the contact's root key
/// and newer than the one we have. A bad profile is ignored (the message itself is fine).
pub(crate) fn accept_contact_profile(
    tx: &mut Tx<'_>,
    contact: &Contact,
    record: &[u8],
    now_ms: i64,
) -> Result<(), Reject> {
    let uid = Uid::from_bytes(&contact.uid);
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    match validate_record(&profile_key(&uid), record, now) {
        Ok(ValidRecord::Profile(p)) if p.root_pk().as_bytes() == &contact.root_pk => {
            tx.upsert_profile(&profile_row(&uid, &p, record, false, now_ms))?;
        }
        Ok(_) => debug!("a contact's profile is not theirs; ignored"),
        Err(e) => debug!(error = %e, "a contact's profile does not verify; ignored"),
    }
    Ok(())
}

/// The store row for a verified profile record of `uid`.
pub fn profile_row(uid: &Uid, p: &Profile, record: &[u8], public: bool, now_ms: i64) -> ProfileRow {
    ProfileRow {
        uid: *uid.as_bytes(),
        version: p.version(),
        name: p.name().to_string(),
        avatar: (!p.avatar().is_empty()).then(|| p.avatar().to_vec()),
        avatar_mime: (!p.avatar_mime().is_empty()).then(|| p.avatar_mime().to_string()),
        record: record.to_vec(),
        public,
        updated_at: now_ms,
    }
}

/// Our own signed profile record, if we set one.
pub(crate) fn own_profile_record(
    reader: &Reader<'_>,
    me: &Me,
) -> Result<Option<Vec<u8>>, EngineError> {
    Ok(reader.profile(me.uid.as_bytes())?.map(|p| p.record))
}
