//! Profiles: our own (uid = ours) and the newest one received from each contact.
//!
//! ```text
//!  upsert_profile(row) ──▶ profiles (one row per UID; replaced only by a higher version)
//!  profile(uid)        ◀──
//! ```
//!
//! `record` is the signed profile record as received or published; it is opaque here (the caller
//! verifies it) and kept so the profile can be passed on as it was signed. Times are unix
//! milliseconds passed in by the caller.

use rusqlite::{OptionalExtension, params};

use crate::{
    error::{SqliteContext, StoreError},
    messaging::blob,
    tx::{Reader, Tx},
};

/// A stored profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRow {
    /// Whose profile.
    pub uid: [u8; 32],
    /// Its version: a profile is only ever replaced by a higher one.
    pub version: u64,
    /// The display name.
    pub name: String,
    /// The avatar image, if any.
    pub avatar: Option<Vec<u8>>,
    /// The avatar's MIME type, if any.
    pub avatar_mime: Option<String>,
    /// The signed record bytes (opaque here).
    pub record: Vec<u8>,
    /// Whether it may be shown to anyone, not only to contacts.
    pub public: bool,
    /// When it was stored (unix ms).
    pub updated_at: i64,
}

impl Reader<'_> {
    /// The profile stored for `uid`, if any.
    pub fn profile(&self, uid: &[u8; 32]) -> Result<Option<ProfileRow>, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT uid, version, name, avatar, avatar_mime, record, public, updated_at
                 FROM profiles WHERE uid = ?1",
            )
            .and_then(|mut stmt| {
                stmt.query_row([&uid[..]], |r| {
                    Ok(ProfileRow {
                        uid: blob(r.get(0)?)?,
                        version: r.get::<_, i64>(1)? as u64,
                        name: r.get(2)?,
                        avatar: r.get(3)?,
                        avatar_mime: r.get(4)?,
                        record: r.get(5)?,
                        public: r.get::<_, i64>(6)? != 0,
                        updated_at: r.get(7)?,
                    })
                })
                .optional()
            })
            .context("reading a profile")
    }
}

impl Tx<'_> {
    /// Stores `row` unless a profile of the same or a higher version is already stored for its
    /// UID; true if written.
    pub fn upsert_profile(&mut self, row: &ProfileRow) -> Result<bool, StoreError> {
        let version = i64::try_from(row.version).map_err(|_| {
            StoreError::InvalidInput(format!("profile version {} is too large", row.version))
        })?;
        Ok(self
            .conn
            .execute(
                "INSERT INTO profiles (uid, version, name, avatar, avatar_mime, record, public,
                    updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (uid) DO UPDATE SET
                   version = excluded.version, name = excluded.name, avatar = excluded.avatar,
                   avatar_mime = excluded.avatar_mime, record = excluded.record,
                   public = excluded.public, updated_at = excluded.updated_at
                 WHERE excluded.version > profiles.version",
                params![
                    &row.uid[..],
                    version,
                    row.name,
                    row.avatar,
                    row.avatar_mime,
                    row.record,
                    row.public as i64,
                    row.updated_at
                ],
            )
            .context("storing a profile")?
            == 1)
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    fn profile(uid: u8, version: u64, name: &str) -> ProfileRow {
        ProfileRow {
            uid: [uid; 32],
            version,
            name: name.into(),
            avatar: None,
            avatar_mime: None,
            record: format!("record-{version}").into_bytes(),
            public: false,
            updated_at: version as i64 * 10,
        }
    }

    #[test]
    fn a_profile_version_only_grows() {
        let mut s = Store::open_in_memory().unwrap();
        assert_eq!(s.read().profile(&[1; 32]).unwrap(), None);

        let v2 = ProfileRow {
            avatar: Some(vec![0x89, b'P', b'N', b'G']),
            avatar_mime: Some("image/png".into()),
            public: true,
            ..profile(1, 2, "Bob")
        };
        assert!(
            s.write(|tx| tx.upsert_profile(&v2)).unwrap(),
            "first one is inserted"
        );
        assert_eq!(s.read().profile(&[1; 32]).unwrap().as_ref(), Some(&v2));

        // Same version with other content, then an older one: nothing changes.
        assert!(
            !s.write(|tx| tx.upsert_profile(&profile(1, 2, "Mallory")))
                .unwrap()
        );
        assert!(
            !s.write(|tx| tx.upsert_profile(&profile(1, 1, "Old Bob")))
                .unwrap()
        );
        assert_eq!(s.read().profile(&[1; 32]).unwrap().as_ref(), Some(&v2));

        // A newer one replaces every field (the avatar too, here removed).
        let v3 = profile(1, 3, "Robert");
        assert!(s.write(|tx| tx.upsert_profile(&v3)).unwrap());
        assert_eq!(s.read().profile(&[1; 32]).unwrap().as_ref(), Some(&v3));

        // Other UIDs are separate.
        assert!(
            s.write(|tx| tx.upsert_profile(&profile(2, 1, "Carol")))
                .unwrap()
        );
        assert_eq!(s.read().profile(&[1; 32]).unwrap().unwrap().version, 3);

        let err = s
            .write(|tx| tx.upsert_profile(&profile(3, u64::MAX, "Huge")))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    }

    #[test]
    fn upsert_inside_a_transaction_rolls_back_with_it() {
        let mut s = Store::open_in_memory().unwrap();
        let written: bool = s
            .write(|tx| tx.upsert_profile(&profile(1, 1, "Bob")))
            .unwrap();
        assert!(written);
        let failed: Result<(), StoreError> = s.write(|tx| {
            assert!(tx.upsert_profile(&profile(1, 5, "Bobby"))?);
            Err(StoreError::InvalidInput("rejected".into()))
        });
        assert!(failed.is_err());
        assert_eq!(s.read().profile(&[1; 32]).unwrap().unwrap().name, "Bob");
    }
}
