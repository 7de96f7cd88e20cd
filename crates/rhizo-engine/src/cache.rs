//! Loaded MLS conversations kept in memory between messages.
//!
//! Loading a conversation (`Conversation::load`: openmls reads the group context, the ratchet
//! tree with its post-quantum keys and the secret tree from SQLite and decodes them) costs about
//! three times as much CPU as encrypting or decrypting a message with it (rhizo-bench B3,
//! "MLS load+encrypt, load+decrypt per message"). So the node keeps the conversations it used
//! recently, loaded, and uses them again as long as nothing could have made them differ from
//! the database.
//!
//! The discipline, followed by every transaction in the engine that touches MLS state (all of
//! which run on the database's one writer thread, so one transaction at a time):
//!
//! ```text
//!  take/load ─▶ change it (encrypt, process, confirm…) ─▶ stage   (only on success)
//!  transaction committed  ─▶ settle(Ok)  : staged ─▶ cache
//!  transaction rolled back ─▶ settle(Err) : staged dropped
//! ```
//!
//! A conversation is *taken out* of the cache while in use, so one whose change failed (and was
//! rolled back, or rolled back to a savepoint) is simply dropped, and the next use loads the
//! database's state again. Within one transaction, [`ConversationCache::take`] finds a
//! conversation staged earlier in it first (several envelopes of a batch, several texts of a
//! group commit), so each sees the state the previous one left.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use rhizo_e2e::{Conversation, E2eError, E2eStore};

/// Conversations kept loaded (each a few tens of KiB with X-Wing keys).
pub const CAPACITY: usize = 64;

/// See the module docs.
pub struct ConversationCache {
    state: Mutex<State>,
    /// Other users' device lists fetched for the role rule ([`crate::devices::lists`]).
    pub(crate) device_lists: crate::devices::lists::DeviceLists,
    hits: AtomicU64,
    misses: AtomicU64,
}

struct State {
    cached: LruCache<Vec<u8>, Conversation>,
    /// Changed in the transaction running now; cached when it commits.
    staged: Vec<(Vec<u8>, Conversation)>,
}

impl std::fmt::Debug for ConversationCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConversationCache").finish_non_exhaustive()
    }
}

impl ConversationCache {
    /// A cache holding at most `capacity` loaded conversations.
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                cached: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
                staged: Vec::new(),
            }),
            device_lists: crate::devices::lists::DeviceLists::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is only ever left consistent (each step is one Vec or LRU operation).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The conversation, taken out of the cache (staged in this transaction first), or loaded
    /// from `mls` when it is not there. Stage it again after a successful change.
    pub fn load(
        &self,
        mls: &E2eStore<'_>,
        group_id: &[u8],
    ) -> Result<Option<Conversation>, E2eError> {
        if let Some(c) = self.take(group_id) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(c));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        Conversation::load(mls, group_id)
    }

    /// Takes the conversation out if it is staged or cached.
    pub fn take(&self, group_id: &[u8]) -> Option<Conversation> {
        let mut state = self.state();
        if let Some(i) = state.staged.iter().position(|(id, _)| id == group_id) {
            return Some(state.staged.swap_remove(i).1);
        }
        state.cached.pop(group_id)
    }

    /// Keeps a conversation the current transaction changed (or used) successfully, until the
    /// transaction ends.
    pub fn stage(&self, conversation: Conversation) {
        let id = conversation.id().to_vec();
        let mut state = self.state();
        state.staged.retain(|(staged, _)| *staged != id);
        state.staged.push((id, conversation));
    }

    /// Ends the transaction: what it staged is cached if it committed, dropped otherwise.
    pub fn settle<T, E>(&self, outcome: &Result<T, E>) {
        let mut state = self.state();
        let staged = std::mem::take(&mut state.staged);
        if outcome.is_ok() {
            for (id, conversation) in staged {
                state.cached.put(id, conversation);
            }
        }
    }

    /// Drops what the transaction running now staged (a job whose savepoint is rolled back:
    /// its changes may be among them). Later uses load the database's state again.
    pub fn discard_staged(&self) {
        self.state().staged.clear();
    }

    /// (hits, misses) since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use rhizo_core::{DeviceKey, RootKey};
    use rhizo_e2e::{Device, Processed};

    use super::*;

    fn device(seed: u8) -> Device {
        let root = RootKey::from_bytes(&[seed; 32]);
        let key = DeviceKey::from_bytes(&[seed + 50; 32]);
        let cert = root.certify_device(&key.public(), 1);
        Device::new(&key.to_bytes(), &cert.encode()).unwrap()
    }

    /// Alice encrypts with cached conversations across transactions; a change that failed
    /// (rolled back) is never cached, so bob's side keeps decrypting whatever happened.
    #[test]
    fn cached_conversations_stay_equal_to_the_database() {
        let a_store = E2eStore::open_in_memory().unwrap();
        let b_store = E2eStore::open_in_memory().unwrap();
        let (a, b) = (device(1), device(2));
        let kps = rhizo_e2e::create_key_packages(&b_store, &b, 1, false).unwrap();
        let (conv, welcome) = Conversation::create(&a_store, &a, &kps, 1).unwrap();
        let id = conv.id().to_vec();
        let mut bob = Conversation::join(&b_store, &b, &welcome, 1).unwrap();
        let cache = ConversationCache::new(4);
        cache.stage(conv);
        cache.settle(&Ok::<(), ()>(()));

        for i in 0..5u8 {
            // A transaction that changes alice's state and commits.
            let mut conv = cache.load(&a_store, &id).unwrap().unwrap();
            let ct = conv.encrypt(&a_store, &a, &[i], 1).unwrap();
            cache.stage(conv);
            cache.settle(&Ok::<(), ()>(()));
            let out = bob.process(&b_store, &b, &ct, 1).unwrap();
            assert!(matches!(out.as_slice(), [Processed::Application { .. }]));
            // One that fails: what it staged is dropped, the next load reads the database.
            let conv = cache.load(&a_store, &id).unwrap().unwrap();
            cache.stage(conv);
            cache.settle(&Err::<(), ()>(()));
            assert!(
                cache.take(&id).is_none(),
                "a rolled-back change is not cached"
            );
        }
        // Each round: the encrypting load hits, except after a rolled-back round (then it reads
        // the database); the failing round's load hits the state just cached.
        assert_eq!(cache.counts(), (6, 4));
        // Staged conversations are found first within a transaction; capacity is bounded.
        let conv = Conversation::load(&a_store, &id).unwrap().unwrap();
        cache.stage(conv);
        assert!(cache.take(&id).is_some());
        cache.settle(&Ok::<(), ()>(()));
        assert!(cache.take(&id).is_none());
    }
}
