//! What this node publishes in the DHT and when: the KeyPackage bundle (one-time
//! KeyPackages plus a last-resort one, rotated and their retired keys deleted), the identity
//! record and device list, our public profile; and the schedule ([`PublishSchedule`]) that
//! says when each is due again, as deadlines.
//!
//! ```text
//!  PublishSchedule::due(now) ─▶ prune seen-set (hourly) / republish everything (hourly)
//!     / republish KeyPackages now (a Welcome used one: the bundle was dropped)
//!  identity_records, key_package_record ─▶ driver puts them in the DHT ─▶ published(now)
//! ```

use rhizo_core::records::{
    DeviceList, IdentityRecord, KeyPackageBundle, ValidRecord, device_list_key, identity_key,
    key_packages_key, validate_record,
};
use rhizo_e2e::Device;
use rhizo_store::{Reader, Tx};
use tracing::debug;

use crate::{Engine, EngineError, Me};

/// One-time KeyPackages published per device (plus one last-resort).
pub(crate) const ONE_TIME_KEY_PACKAGES: usize = 8;
/// TTL of published records.
pub const RECORD_TTL_SECS: u64 = 3 * 24 * 3600;
/// How often records are republished while online (ms).
pub const REPUBLISH_INTERVAL_MS: i64 = 3600 * 1000;
/// How often the persisted seen-set is pruned (ms).
pub const SEEN_PRUNE_INTERVAL_MS: i64 = 3600 * 1000;
/// How often the publisher checks whether a one-time KeyPackage was used up (ms).
pub const PUBLISHER_CHECK_INTERVAL_MS: i64 = 5 * 1000;
/// How often the publisher tries again before its first publication succeeded (ms).
pub const PUBLISHER_FIRST_TRY_INTERVAL_MS: i64 = 2 * 1000;
/// KeyPackages are replaced after this long (openmls gives them a 28-day lifetime).
pub(crate) const KEY_PACKAGE_ROTATION_SECS: u64 = 14 * 24 * 3600;
/// A superseded KeyPackage keeps its private keys this long, then they are deleted: a sender may
/// fetch the old bundle from the DHT until its record expires (`RECORD_TTL_SECS`), and a Welcome
/// made from it is accepted up to the replay window (`MAX_ENVELOPE_AGE` + `MAX_CLOCK_SKEW`) after
/// it was sealed. After that no Welcome the node would accept can use it. 17 days 5 minutes.
pub const KEY_PACKAGE_GRACE_SECS: u64 = RECORD_TTL_SECS
    + (rhizo_core::seen::MAX_ENVELOPE_AGE + rhizo_core::seen::MAX_CLOCK_SKEW) / 1000;
/// Meta key: when our current KeyPackages were made (unix seconds).
const META_KEY_PACKAGES_AT: &str = "key_packages_made_at";
/// Meta key holding our current KeyPackages (hex, one per line; the last is last-resort;
/// empty once a Welcome used one).
pub(crate) const META_KEY_PACKAGE_BUNDLE: &str = "key_package_bundle";
/// Meta key holding the last record version used (versions must grow).
const META_RECORD_VERSION: &str = "record_version";
/// Meta key holding our current signed device list (hex), shown to mailbox replicas.
const META_DEVICE_LIST: &str = "device_list_record";

/// A DHT record to put: (key, value).
pub type DhtRecord = (Vec<u8>, Vec<u8>);

/// When the publisher's jobs are due, from when they last ran (all times unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishSchedule {
    published_at: Option<i64>,
    pruned_at: Option<i64>,
}

/// What is due at one tick of the publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishDue {
    /// Prune the persisted seen-set.
    pub prune_seen: bool,
    /// Republish everything (identity, device list, profile, KeyPackages).
    pub republish: bool,
}

impl PublishSchedule {
    /// What is due at `now`.
    pub fn due(&self, now: i64) -> PublishDue {
        let since =
            |at: Option<i64>, interval: i64| at.is_none_or(|t| now.saturating_sub(t) >= interval);
        PublishDue {
            prune_seen: since(self.pruned_at, SEEN_PRUNE_INTERVAL_MS),
            republish: since(self.published_at, REPUBLISH_INTERVAL_MS),
        }
    }

    /// The seen-set was pruned at `now`.
    pub fn pruned(&mut self, now: i64) {
        self.pruned_at = Some(now);
    }

    /// The KeyPackages were published at `now`.
    pub fn published(&mut self, now: i64) {
        self.published_at = Some(now);
    }

    /// Whether a publication succeeded since start (until then the publisher tries again
    /// soon, and whenever a peer connects).
    pub fn published_once(&self) -> bool {
        self.published_at.is_some()
    }

    /// When to look again: soon until the first publication succeeded, then every
    /// [`PUBLISHER_CHECK_INTERVAL_MS`] (a used one-time KeyPackage is replaced within that).
    pub fn next_check(&self, now: i64) -> i64 {
        now + if self.published_at.is_some() {
            PUBLISHER_CHECK_INTERVAL_MS
        } else {
            PUBLISHER_FIRST_TRY_INTERVAL_MS
        }
    }
}

impl Engine {
    /// Our signed identity record and a new device list, as DHT (key, value) pairs.
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn identity_records(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<Vec<DhtRecord>, EngineError> {
        let me = &self.me;
        let identity = IdentityRecord::new(me.root_signer()?, crate::secs(now), RECORD_TTL_SECS)?;
        let devices = new_device_list(tx, me, now)?;
        Ok(vec![
            (identity_key(&me.uid).to_vec(), identity.encode()),
            (device_list_key(&me.uid).to_vec(), devices),
        ])
    }

    /// Records of ours a lookup found in the DHT under `key` (every value it returned): the
    /// newest valid one of them that is ours and carries a version (a device list, a
    /// KeyPackage bundle, a profile; not the identity record, ordered by its time) moves the
    /// record-version counter up to its version, so the next record we sign outranks it. A
    /// device that signed several records in a second ran ahead of the clock, and a lost or
    /// restored device's counter may lag behind what it, or the device before it, published.
    /// Call it before signing what goes under `key`; the version the counter moved to, if it
    /// moved.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn note_own_records(
        &self,
        tx: &mut Tx<'_>,
        key: &[u8],
        values: &[Vec<u8>],
        now: i64,
    ) -> Result<Option<u64>, EngineError> {
        let now = crate::secs(now);
        let newest = values
            .iter()
            .filter_map(|v| validate_record(key, v, now).ok())
            .filter(|r| r.uid() == self.me.uid && !matches!(r, ValidRecord::Identity(_)))
            .map(|r| r.ordering_version())
            .max();
        match newest {
            Some(found) if raise_record_version(tx, found)? => Ok(Some(found)),
            _ => Ok(None),
        }
    }

    /// A freshly signed KeyPackage bundle, as a DHT (key, value) pair (see
    /// [`build_key_package_bundle`]).
    ///
    /// # Errors
    ///
    /// If MLS, signing or the database fails.
    pub fn key_package_record(&self, tx: &mut Tx<'_>, now: i64) -> Result<DhtRecord, EngineError> {
        let bundle = build_key_package_bundle(tx, &self.me, &self.mls_device, crate::secs(now))?;
        let key = key_packages_key(&self.me.uid, &self.me.device.public());
        Ok((key.to_vec(), bundle))
    }

    /// Whether a Welcome used one of our one-time KeyPackages since the bundle was last built
    /// (then a new one is due now).
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn key_packages_used(&self, reader: &Reader<'_>) -> Result<bool, EngineError> {
        Ok(reader
            .get_meta(META_KEY_PACKAGE_BUNDLE)?
            .is_none_or(|v| v.is_empty()))
    }

    /// Whether this device holds our identity's device list: always on the device with the
    /// root key (it signs one); on a linked device once it adopted one from the DHT
    /// ([`Self::adopt_device_list`]). Until then it knows no other device of ours, so it must
    /// not invite them to add it (by publishing its KeyPackages): it would take their
    /// Welcomes and sync messages for a stranger's.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn holds_device_list(&self, reader: &Reader<'_>) -> Result<bool, EngineError> {
        Ok(self.me.holds_root()
            || reader
                .get_meta(META_DEVICE_LIST)?
                .is_some_and(|v| !v.is_empty()))
    }

    /// Our current signed device list (what mailbox replicas check a fetch against).
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn device_list(&self, tx: &mut Tx<'_>, now: i64) -> Result<Vec<u8>, EngineError> {
        current_device_list(tx, &self.me, now)
    }

    /// On a linked device (no root key): keeps `list`, our identity's device list found in
    /// the DHT, as the current one when it is ours, valid and newer than the one we have.
    /// Whether it was kept.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn adopt_device_list(
        &self,
        tx: &mut Tx<'_>,
        list: &[u8],
        now: i64,
    ) -> Result<bool, EngineError> {
        let key = device_list_key(&self.me.uid);
        let now = crate::secs(now);
        let Ok(ValidRecord::DeviceList(new)) = validate_record(&key, list, now) else {
            return Ok(false);
        };
        if new.root_pk() != self.me.root_public {
            return Ok(false);
        }
        let stored = tx
            .get_meta(META_DEVICE_LIST)?
            .and_then(|h| hex::decode(h).ok())
            .and_then(|bytes| match validate_record(&key, &bytes, now) {
                Ok(ValidRecord::DeviceList(old)) => Some(old.version()),
                _ => None,
            });
        if stored.is_some_and(|v| v >= new.version()) {
            return Ok(false);
        }
        tx.set_meta(META_DEVICE_LIST, &hex::encode(list))?;
        crate::devices::adopt_listed(tx, &self.me, new.devices())?;
        Ok(true)
    }

    /// Forgets the seen ids whose envelopes the replay window refuses anyway; how many.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn prune_seen(&self, tx: &mut Tx<'_>, now: i64) -> Result<usize, EngineError> {
        Ok(tx.prune_seen(seen_prune_cutoff(now))?)
    }
}

/// The persisted seen-set keeps every id whose envelope timestamp is at or above this at
/// `now_ms` (rhizo-core `seen::prune_cutoff`: the window, plus the clock-skew slack).
pub(crate) fn seen_prune_cutoff(now_ms: i64) -> i64 {
    let cutoff = rhizo_core::seen::prune_cutoff(u64::try_from(now_ms).unwrap_or(0));
    i64::try_from(cutoff).unwrap_or(i64::MAX)
}

pub(crate) fn next_record_version(tx: &mut Tx<'_>, now: i64) -> Result<u64, EngineError> {
    let last: u64 = tx
        .get_meta(META_RECORD_VERSION)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let version = last.max(crate::secs(now)) + 1;
    tx.set_meta(META_RECORD_VERSION, &version.to_string())?;
    Ok(version)
}

/// Moves the record-version counter up to `found` (the version of a record of ours found in
/// the DHT), so the next version signed is above it; whether it moved.
pub(crate) fn raise_record_version(tx: &mut Tx<'_>, found: u64) -> Result<bool, EngineError> {
    let last: u64 = tx
        .get_meta(META_RECORD_VERSION)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if found <= last {
        return Ok(false);
    }
    tx.set_meta(META_RECORD_VERSION, &found.to_string())?;
    Ok(true)
}

/// How far the record versions of an identity recovered on a new device jump ahead of the
/// clock. Versions are `max(last, now) + 1`, so a device that signed several records in one
/// second runs ahead of the clock; the lost device's last device list can therefore carry a
/// version above what a fresh counter gives minutes later, and would outrank the recovered
/// device's list (contacts kept addressing the lost device). No device signs 2^20 records
/// more than the seconds that pass. [`Engine::note_own_records`] covers this too once a lookup
/// finds the lost device's records, but the recovered node's first publication comes seconds
/// after it starts, often before it reaches the peers that hold them: a list signed lower then
/// would be refused by those holders and ranked below the old one by contacts until the next
/// hourly republish.
pub const RECOVERY_VERSION_JUMP: u64 = 1 << 20;

/// Seeds the record-version counter of an identity just recovered on a new device (`rhizo
/// init --recover`): its first records outrank anything the lost devices signed.
///
/// # Errors
///
/// If the database fails.
pub fn seed_versions_after_recovery(tx: &mut Tx<'_>, now_ms: i64) -> Result<(), EngineError> {
    let version = crate::secs(now_ms).saturating_add(RECOVERY_VERSION_JUMP);
    tx.set_meta(META_RECORD_VERSION, &version.to_string())?;
    Ok(())
}

/// A freshly signed bundle (new version and lifetime, so it never expires while we are online)
/// of our KeyPackages, at `now` (unix seconds). The KeyPackages themselves are kept (in `meta`)
/// until a Welcome used one (then the receive path drops the bundle) or they are
/// [`KEY_PACKAGE_ROTATION_SECS`] old; then new ones are made and the previous set is *retired*
/// (rhizo-e2e `replace_published_key_packages`). Retired KeyPackages' private keys are deleted
/// from the database once [`KEY_PACKAGE_GRACE_SECS`] have passed (checked on every build, so at
/// least hourly while online), and so are the one-time KeyPackages a Welcome used once
/// `rhizo_e2e::USED_KEY_PACKAGE_GRACE_SECS` have passed since; then the WAL is checkpointed once `tx` committed
/// ([`Tx::checkpoint_after_commit`]) so the zeroed pages (secure delete) replace the old page
/// images in the file.
pub(crate) fn build_key_package_bundle(
    tx: &mut Tx<'_>,
    me: &Me,
    mls_device: &Device,
    now: u64,
) -> Result<Vec<u8>, EngineError> {
    let made_at: u64 = tx
        .get_meta(META_KEY_PACKAGES_AT)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stored: Vec<Vec<u8>> = tx
        .get_meta(META_KEY_PACKAGE_BUNDLE)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| hex::decode(l).ok())
        .collect();
    let kps = if stored.len() >= 2 && now.saturating_sub(made_at) < KEY_PACKAGE_ROTATION_SECS {
        stored
    } else {
        let mls = tx.mls().map_err(EngineError::Mls)?;
        let mut kps =
            rhizo_e2e::create_key_packages(&mls, mls_device, ONE_TIME_KEY_PACKAGES, false)
                .map_err(EngineError::Mls)?;
        kps.extend(
            rhizo_e2e::create_key_packages(&mls, mls_device, 1, true).map_err(EngineError::Mls)?,
        );
        rhizo_e2e::replace_published_key_packages(&mls, &kps, now).map_err(EngineError::Mls)?;
        let joined: Vec<String> = kps.iter().map(hex::encode).collect();
        tx.set_meta(META_KEY_PACKAGE_BUNDLE, &joined.join("\n"))?;
        tx.set_meta(META_KEY_PACKAGES_AT, &now.to_string())?;
        kps
    };
    let mls = tx.mls().map_err(EngineError::Mls)?;
    // Idempotent for a set recorded when it was made; records a set made before this
    // bookkeeping existed, so that it too is retired and deleted in its turn.
    rhizo_e2e::replace_published_key_packages(&mls, &kps, now).map_err(EngineError::Mls)?;
    let deleted =
        rhizo_e2e::delete_retired_key_packages(&mls, now.saturating_sub(KEY_PACKAGE_GRACE_SECS))
            .map_err(EngineError::Mls)?
            + rhizo_e2e::delete_used_key_packages(
                &mls,
                now.saturating_sub(rhizo_e2e::USED_KEY_PACKAGE_GRACE_SECS),
            )
            .map_err(EngineError::Mls)?;
    if deleted > 0 {
        debug!(
            deleted,
            "deleted the private keys of superseded KeyPackages"
        );
        // The zeroed pages go to the WAL; once committed, copy them into the database file and
        // empty the log, so the old keys are not left in either.
        tx.checkpoint_after_commit();
    }
    let version = next_record_version(
        tx,
        i64::try_from(now).unwrap_or(i64::MAX).saturating_mul(1000),
    )?;
    let last_resort = kps.len() - 1;
    let bundle = KeyPackageBundle::new(
        &me.device,
        me.certificate,
        version,
        kps,
        last_resort,
        now,
        RECORD_TTL_SECS,
    )
    .map_err(EngineError::from)?;
    Ok(bundle.encode())
}

/// A random one-time KeyPackage of the bundle (the last-resort one only if there is no other):
/// random, so two senders rarely pick the same one.
pub fn pick_key_package(bundle: &KeyPackageBundle, random: u64) -> Option<Vec<u8>> {
    let all = bundle.key_packages();
    let one_time: Vec<&bytes::Bytes> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != bundle.last_resort_index())
        .map(|(_, kp)| kp)
        .collect();
    if one_time.is_empty() {
        return bundle.last_resort().map(|kp| kp.to_vec());
    }
    let index = usize::try_from(random % one_time.len() as u64).unwrap_or(0);
    one_time.get(index).map(|kp| kp.to_vec())
}

impl Engine {
    /// [`pick_key_package`] with the engine's generator: the one-time KeyPackage of `bundle`
    /// a first contact uses.
    pub fn choose_key_package(&self, bundle: &KeyPackageBundle) -> Option<Vec<u8>> {
        pick_key_package(bundle, self.rng.next_u64())
    }
}

/// Our current signed device list (what mailbox replicas check a fetch against): the last one
/// published, or a fresh one when there is none or it expires within a day.
pub(crate) fn current_device_list(
    tx: &mut Tx<'_>,
    me: &Me,
    now_ms: i64,
) -> Result<Vec<u8>, EngineError> {
    let now = crate::secs(now_ms);
    if let Some(stored) = tx
        .get_meta(META_DEVICE_LIST)?
        .and_then(|h| hex::decode(h).ok())
        && let Ok(ValidRecord::DeviceList(list)) =
            validate_record(&device_list_key(&me.uid), &stored, now)
        && list.expires_at() > now + 24 * 3600
    {
        return Ok(stored);
    }
    if !me.holds_root() {
        // A linked device cannot sign one: the last list it adopted from the DHT, even close
        // to expiry (the publisher adopts newer ones as the root's device publishes them).
        return tx
            .get_meta(META_DEVICE_LIST)?
            .and_then(|h| hex::decode(h).ok())
            .ok_or(EngineError::NoRootKey);
    }
    new_device_list(tx, me, now_ms)
}

/// Signs a new device list (the version grows) and remembers it.
pub(crate) fn new_device_list(
    tx: &mut Tx<'_>,
    me: &Me,
    now_ms: i64,
) -> Result<Vec<u8>, EngineError> {
    let now = crate::secs(now_ms);
    let version = next_record_version(tx, now_ms)?;
    let certificates = crate::devices::listed_certificates(tx, me)?;
    let list = DeviceList::new(
        me.root_signer()?,
        version,
        certificates,
        now,
        RECORD_TTL_SECS,
    )
    .map_err(EngineError::from)?
    .encode();
    tx.set_meta(META_DEVICE_LIST, &hex::encode(&list))?;
    Ok(list)
}

#[cfg(test)]
mod recovery_tests {
    use rhizo_store::Store;

    use super::*;

    /// A lost device that signed records ahead of the clock (several in one second) never
    /// outranks the first records of the identity recovered on a new device.
    #[test]
    fn records_after_a_recovery_outrank_a_lost_device_that_ran_ahead_of_the_clock() {
        let now_ms = 1_800_000_000_000;
        let mut lost = Store::open_in_memory().unwrap();
        let ahead = lost
            .write(|tx| {
                let mut last = 0;
                for _ in 0..1000 {
                    last = next_record_version(tx, now_ms)?;
                }
                Ok::<_, EngineError>(last)
            })
            .unwrap();
        assert_eq!(ahead, crate::secs(now_ms) + 1000, "ran ahead of the clock");

        let mut recovered = Store::open_in_memory().unwrap();
        let first = recovered
            .write(|tx| {
                seed_versions_after_recovery(tx, now_ms + 1000)?;
                next_record_version(tx, now_ms + 1000)
            })
            .unwrap();
        assert!(first > ahead, "{first} after {ahead}");
    }

    /// The version of the device list in `records` (what [`Engine::identity_records`] gave).
    fn list_version(records: &[DhtRecord], now_ms: i64) -> u64 {
        let (key, value) = &records[1];
        match validate_record(key, value, crate::secs(now_ms)) {
            Ok(ValidRecord::DeviceList(list)) => list.version(),
            other => panic!("not a device list: {other:?}"),
        }
    }

    /// An engine of identity `seed` on a store of its own (a device, or the same identity
    /// restored on another).
    fn device(seed: u8, dir: &std::path::Path, name: &str) -> (Engine, Store) {
        let me = crate::tests::party(seed, "me").me;
        let engine = Engine::new(me, rhizo_e2e::RekeyPolicy::default()).unwrap();
        (engine, crate::tests::open(&dir.join(format!("{name}.db"))))
    }

    /// A device list of ours found in the DHT with a version at or above our next one (signed
    /// ahead of the clock by the device before us) moves our counter: the next list outranks
    /// it. Found records of someone else, our identity record and garbage move nothing.
    #[test]
    fn a_version_found_in_the_dht_is_never_signed_again_or_undercut() {
        let dir = tempfile::tempdir().unwrap();
        let now_ms = 1_800_000_000_000;
        let (old, mut old_store) = device(5, dir.path(), "old");
        let mut last = Vec::new();
        old_store
            .write(|tx| {
                for _ in 0..50 {
                    last = old.identity_records(tx, now_ms)?;
                }
                Ok::<_, EngineError>(())
            })
            .unwrap();
        let ahead = list_version(&last, now_ms);
        assert_eq!(ahead, crate::secs(now_ms) + 50, "ran ahead of the clock");

        // The same identity on a new store ten seconds later (restored; no 2^20 jump).
        let later = now_ms + 10_000;
        let (new, mut store) = device(5, dir.path(), "new");
        let (stranger, mut stranger_store) = device(6, dir.path(), "stranger");
        let theirs = stranger_store
            .write(|tx| stranger.identity_records(tx, later + 60_000))
            .unwrap();
        let key = device_list_key(&new.me().uid).to_vec();
        let (identity_key, identity) = last[0].clone();
        let moved = store
            .write(|tx| {
                // Not ours, not a device list under our key, not a record at all: no change.
                let found = vec![theirs[1].1.clone(), identity.clone(), b"junk".to_vec()];
                assert_eq!(new.note_own_records(tx, &key, &found, later)?, None);
                assert_eq!(
                    new.note_own_records(
                        tx,
                        &identity_key,
                        std::slice::from_ref(&identity),
                        later
                    )?,
                    None
                );
                new.note_own_records(tx, &key, &[last[1].1.clone()], later)
            })
            .unwrap();
        assert_eq!(moved, Some(ahead));
        let next = store.write(|tx| new.identity_records(tx, later)).unwrap();
        assert_eq!(list_version(&next, later), ahead + 1);

        // A record found below our counter does not move it back.
        let again = store
            .write(|tx| new.note_own_records(tx, &key, &[last[1].1.clone()], later))
            .unwrap();
        assert_eq!(again, None);
        let next = store.write(|tx| new.identity_records(tx, later)).unwrap();
        assert_eq!(list_version(&next, later), ahead + 2);
    }
}
