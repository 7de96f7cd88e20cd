//! Profiles: setting ours (the engine signs it and queues it end-to-end; public ones are
//! published in the DHT) and reading ours, a contact's, or a public one from the DHT.

use rhizo_core::{
    Uid,
    records::{Profile, ValidRecord, profile_key, validate_record},
};
use rhizo_engine::contacts::find_contact_in;

use super::{
    Messaging, ProfileError, ProfileView,
    views::{profile_view, row_view},
};

impl Messaging {
    /// Signs a new version of our profile, sends it end-to-end to every contact we have a
    /// conversation with, and (when `public`) publishes it on the nodes closest to
    /// SHA-256("rhizo/meta/v1" ‖ UID). Returns the profile and how many DHT nodes stored it.
    pub async fn set_profile(
        &self,
        name: &str,
        avatar: Vec<u8>,
        avatar_mime: &str,
        public: bool,
    ) -> Result<(ProfileView, usize), ProfileError> {
        let name = name.trim().to_string();
        let mime = avatar_mime.trim().to_string();
        let now = self.now();
        let set = self
            .with_engine(move |tx, engine| {
                engine.set_profile(tx, &name, avatar, &mime, public, now)
            })
            .await?;
        // Queued to contacts, and to our other devices (the sync group).
        self.inner.outbox_wake.notify_one();
        let view = profile_view(&self.inner.engine.me().uid, &set.profile, public, "own");
        let stored = if public {
            self.publish_profile().await?
        } else {
            0
        };
        Ok((view, stored))
    }

    /// A profile: ours (`who` = None), a contact's as they sent it end-to-end, or else the
    /// public one in the DHT (by contact name or UID), verified against the UID.
    pub async fn profile(&self, who: Option<&str>) -> Result<ProfileView, ProfileError> {
        let Some(who) = who else {
            return self
                .with_reader(|reader, engine| {
                    let row = reader
                        .profile(engine.me().uid.as_bytes())?
                        .ok_or(ProfileError::NoOwnProfile)?;
                    Ok(row_view(&row, "own"))
                })
                .await;
        };
        let who_owned = who.to_string();
        let (uid, row) = self
            .with_reader(move |reader, _| {
                let uid = match find_contact_in(reader, &who_owned)? {
                    Some(c) => Uid::from_bytes(&c.uid),
                    None => who_owned
                        .trim()
                        .parse::<Uid>()
                        .map_err(|_| ProfileError::UnknownContact(who_owned.clone()))?,
                };
                Ok::<_, ProfileError>((uid, reader.profile(uid.as_bytes())?))
            })
            .await?;
        if let Some(row) = row {
            return Ok(row_view(&row, "contact"));
        }
        let best = self
            .public_profile(&uid)
            .await
            .ok_or_else(|| ProfileError::NotPublished(uid.to_string()))?;
        Ok(profile_view(&uid, &best, true, "dht"))
    }

    /// A UID's newest valid public profile in the DHT.
    pub(super) async fn public_profile(&self, uid: &Uid) -> Option<Profile> {
        let key = profile_key(uid);
        let now = u64::try_from(self.inner.clock.now_secs()).unwrap_or(0);
        self.inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::Profile(p)) if p.root_pk().uid() == *uid => Some(p),
                _ => None,
            })
            .max_by_key(Profile::version)
    }
}
