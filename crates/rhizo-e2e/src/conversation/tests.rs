//! Two (or three) devices in memory on a simulated clock, as in quinn-proto's
//! tests: every byte string one side outputs is handed to the other by hand.

use openmls_traits::OpenMlsProvider as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rhizo_core::{DeviceKey, RootKey};

use super::*;
use crate::{MAX_KEY_PACKAGE_BYTES, create_key_packages, inspect_key_package};

/// Simulated clock start (unix seconds); only the rekey timer uses it.
const T0: u64 = 1_000_000;

struct Party {
    store: E2eStore<'static>,
    device: Device,
}

impl Party {
    fn new(root_seed: u8, device_seed: u8) -> Self {
        Self::with_store(
            root_seed,
            device_seed,
            E2eStore::open_in_memory().expect("store"),
        )
    }

    fn with_store(root_seed: u8, device_seed: u8, store: E2eStore<'static>) -> Self {
        let root = RootKey::from_bytes(&[root_seed; 32]);
        let seed = [device_seed; 32];
        let cert = root.certify_device(&DeviceKey::from_bytes(&seed).public(), T0);
        let device = Device::new(&seed, &cert.encode()).expect("device");
        Self { store, device }
    }

    fn key_package(&self) -> Vec<u8> {
        create_key_packages(&self.store, &self.device, 1, false)
            .expect("key package")
            .remove(0)
    }

    fn encrypt(&self, conversation: &mut Conversation, text: &[u8]) -> Vec<u8> {
        conversation
            .encrypt(&self.store, &self.device, text, T0)
            .expect("encrypt")
    }

    fn process(&self, conversation: &mut Conversation, message: &[u8]) -> Vec<Processed> {
        conversation
            .process(&self.store, &self.device, message, T0)
            .expect("process")
    }

    fn try_process(
        &self,
        conversation: &mut Conversation,
        message: &[u8],
    ) -> Result<Vec<Processed>, E2eError> {
        conversation.process(&self.store, &self.device, message, T0)
    }

    fn self_update(&self, conversation: &mut Conversation, now: u64) -> Vec<u8> {
        conversation
            .self_update(&self.store, &self.device, now)
            .expect("self_update")
    }
}

/// Alice creates a conversation with Bob's KeyPackage; Bob joins.
fn pair() -> (Party, Party, Conversation, Conversation) {
    let alice = Party::new(1, 11);
    let bob = Party::new(2, 21);
    let (a, b) = connect(&alice, &bob);
    (alice, bob, a, b)
}

fn connect(alice: &Party, bob: &Party) -> (Conversation, Conversation) {
    let (a, welcome) = Conversation::create(&alice.store, &alice.device, &[bob.key_package()], T0)
        .expect("create");
    let b = Conversation::join(&bob.store, &bob.device, &welcome, T0).expect("join");
    (a, b)
}

fn application(text: &[u8], from: &Party) -> Processed {
    Processed::Application {
        plaintext: text.to_vec(),
        sender: *from.device.certificate(),
    }
}

/// Sends `text` from one side and checks the other decrypts it.
fn deliver(from: &Party, a: &mut Conversation, to: &Party, b: &mut Conversation, text: &[u8]) {
    let message = from.encrypt(a, text);
    assert_eq!(to.process(b, &message), vec![application(text, from)]);
}

/// A secret both sides derive only if their group states are identical.
fn exported(party: &Party, conversation: &Conversation) -> Vec<u8> {
    conversation
        .group
        .export_secret(party.store.provider().crypto(), "rhizo test", b"", 32)
        .expect("export")
}

#[test]
fn create_join_and_talk_both_ways() {
    let (alice, bob, mut a, mut b) = pair();
    assert_eq!(a.id(), b.id());
    assert_eq!(a.id().len(), GROUP_ID_LEN);
    assert_eq!((a.epoch(), b.epoch()), (1, 1));
    let members = vec![*alice.device.certificate(), *bob.device.certificate()];
    assert_eq!(a.members(), members);
    assert_eq!(b.members(), members);
    assert_eq!(exported(&alice, &a), exported(&bob, &b));

    deliver(&alice, &mut a, &bob, &mut b, b"hello bob");
    deliver(&bob, &mut b, &alice, &mut a, b"hi alice");
    for i in 0..5u8 {
        deliver(&alice, &mut a, &bob, &mut b, &[i; 100]);
    }
    deliver(&bob, &mut b, &alice, &mut a, b"");
}

#[test]
fn key_package_is_x_wing_and_fits_the_dht_record() {
    let bob = Party::new(2, 21);
    let packages = create_key_packages(&bob.store, &bob.device, 3, false).expect("create");
    assert_eq!(packages.len(), 3);
    for package in &packages {
        assert!(package.len() <= MAX_KEY_PACKAGE_BYTES, "{}", package.len());
        // version mls10, then the X-Wing suite 0x004f.
        assert_eq!(&package[..4], &[0, 1, 0, 0x4f]);
        let info = inspect_key_package(package).expect("valid");
        assert_eq!(&info.certificate, bob.device.certificate());
        assert_eq!(info.hash_ref.len(), 32);
        assert!(!info.last_resort);
        assert!(info.not_after - info.not_before > crate::KEY_PACKAGE_LIFETIME_SECS);
    }
    assert_ne!(
        inspect_key_package(&packages[0]).expect("valid").hash_ref,
        inspect_key_package(&packages[1]).expect("valid").hash_ref
    );
    let last_resort = create_key_packages(&bob.store, &bob.device, 1, true).expect("create");
    assert!(
        inspect_key_package(&last_resort[0])
            .expect("valid")
            .last_resort
    );
    assert!(matches!(
        create_key_packages(&bob.store, &bob.device, 65, false),
        Err(E2eError::TooLarge { .. })
    ));
}

#[test]
fn a_used_one_time_key_package_joins_for_its_grace_window_then_is_gone() {
    let alice = Party::new(1, 11);
    let carol = Party::new(3, 31);
    let dave = Party::new(4, 41);
    let bob = Party::new(2, 21);
    let count = |store: &E2eStore, table: &str| -> i64 {
        store
            .conn()
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .expect("count")
    };

    let one_time = bob.key_package();
    let (mut a, welcome) = Conversation::create(
        &alice.store,
        &alice.device,
        std::slice::from_ref(&one_time),
        T0,
    )
    .expect("create");
    let mut b = Conversation::join(&bob.store, &bob.device, &welcome, T0).expect("join");
    deliver(&alice, &mut a, &bob, &mut b, b"first creator");
    // Replaying the same Welcome finds the group.
    assert!(matches!(
        Conversation::join(&bob.store, &bob.device, &welcome, T0),
        Err(E2eError::AlreadyJoined)
    ));
    // A second creator who fetched the same (stale) bundle joins too, within the window.
    let within = T0 + crate::USED_KEY_PACKAGE_GRACE_SECS - 1;
    let (mut c, second) = Conversation::create(
        &carol.store,
        &carol.device,
        std::slice::from_ref(&one_time),
        within,
    )
    .expect("create");
    let mut b2 = Conversation::join(&bob.store, &bob.device, &second, within).expect("join");
    deliver(&carol, &mut c, &bob, &mut b2, b"second creator");
    // The window counts from the first use (a second use does not extend it).
    assert_eq!(count(&bob.store, "e2e_used_key_packages"), 1);
    assert_eq!(
        count(&bob.store, "openmls_key_packages"),
        1,
        "kept in the window"
    );
    // After the window a third Welcome fails.
    let after = T0 + crate::USED_KEY_PACKAGE_GRACE_SECS + 1;
    let (_, third) =
        Conversation::create(&dave.store, &dave.device, &[one_time], after).expect("create");
    assert!(matches!(
        Conversation::join(&bob.store, &bob.device, &third, after),
        Err(E2eError::NoMatchingKeyPackage)
    ));
    // The failed join rolled back its sweep; the publisher's sweep deletes the keys for good.
    let used_before = after - crate::USED_KEY_PACKAGE_GRACE_SECS;
    assert_eq!(
        crate::delete_used_key_packages(&bob.store, used_before).expect("delete"),
        1
    );
    assert_eq!(count(&bob.store, "openmls_key_packages"), 0);
    assert_eq!(count(&bob.store, "e2e_used_key_packages"), 0);
}

#[test]
fn last_resort_key_package_is_never_used_up() {
    let alice = Party::new(1, 11);
    let carol = Party::new(3, 31);
    let bob = Party::new(2, 21);

    let last_resort = create_key_packages(&bob.store, &bob.device, 1, true)
        .expect("create")
        .remove(0);
    for creator in [&alice, &carol] {
        let (mut c, welcome) = Conversation::create(
            &creator.store,
            &creator.device,
            std::slice::from_ref(&last_resort),
            T0,
        )
        .expect("create");
        let mut b = Conversation::join(&bob.store, &bob.device, &welcome, T0).expect("join");
        deliver(creator, &mut c, &bob, &mut b, b"via last resort");
        // Replaying a Welcome for a last-resort KeyPackage finds the group.
        assert!(matches!(
            Conversation::join(&bob.store, &bob.device, &welcome, T0),
            Err(E2eError::AlreadyJoined)
        ));
    }
}

#[test]
fn state_persists_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let alice_path = dir.path().join("alice.db");
    let bob_path = dir.path().join("bob.db");
    let id;
    {
        let alice = Party::with_store(1, 11, E2eStore::open(&alice_path).expect("open"));
        let bob = Party::with_store(2, 21, E2eStore::open(&bob_path).expect("open"));
        let (mut a, mut b) = connect(&alice, &bob);
        deliver(&alice, &mut a, &bob, &mut b, b"before restart");
        id = a.id().to_vec();
    }
    let alice = Party::with_store(1, 11, E2eStore::open(&alice_path).expect("reopen"));
    let bob = Party::with_store(2, 21, E2eStore::open(&bob_path).expect("reopen"));
    let mut a = Conversation::load(&alice.store, &id)
        .expect("load")
        .expect("present");
    let mut b = Conversation::load(&bob.store, &id)
        .expect("load")
        .expect("present");
    assert_eq!(a.epoch(), 1);
    deliver(&alice, &mut a, &bob, &mut b, b"after restart");
    deliver(&bob, &mut b, &alice, &mut a, b"back at you");
    // Counters came back too: one before, one after the restart.
    assert_eq!(a.state.sent_since_commit, 2);
    assert!(
        Conversation::load(&alice.store, &[0; GROUP_ID_LEN])
            .expect("load")
            .is_none()
    );
    assert!(
        Conversation::load(&alice.store, b"short")
            .expect("load")
            .is_none()
    );

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&alice_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn coexists_with_rhizo_store_tables_in_one_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rhizo.db");
    {
        // What rhizo-store does: WAL, its own user_version and tables.
        let conn = rusqlite::Connection::open(&path).expect("open");
        let _: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .expect("wal");
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
             INSERT INTO meta VALUES ('k', x'01');
             PRAGMA user_version = 7;",
        )
        .expect("schema");
    }
    // Another connection stays open, as the node's Store would.
    let other = rusqlite::Connection::open(&path).expect("open");
    for _ in 0..2 {
        let alice = Party::with_store(1, 11, E2eStore::open(&path).expect("open shared"));
        let bob = Party::new(2, 21);
        let (mut a, mut b) = connect(&alice, &bob);
        deliver(&alice, &mut a, &bob, &mut b, b"shared file");
    }
    let version: u32 = other
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, 7);
    let value: Vec<u8> = other
        .query_row("SELECT value FROM meta WHERE key = 'k'", [], |row| {
            row.get(0)
        })
        .expect("meta");
    assert_eq!(value, vec![1]);
    let mode: String = other
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .expect("mode");
    assert_eq!(mode, "wal");
}

#[test]
fn duplicate_message_is_a_replay() {
    let (alice, bob, mut a, mut b) = pair();
    let message = alice.encrypt(&mut a, b"once");
    assert_eq!(
        bob.process(&mut b, &message),
        vec![application(b"once", &alice)]
    );
    assert!(matches!(
        bob.try_process(&mut b, &message),
        Err(E2eError::Replayed)
    ));
    // The failed call changed nothing: the next message still decrypts.
    deliver(&alice, &mut a, &bob, &mut b, b"next");
}

#[test]
fn out_of_order_messages_decrypt() {
    let (alice, bob, mut a, mut b) = pair();
    let first = alice.encrypt(&mut a, b"1");
    let second = alice.encrypt(&mut a, b"2");
    assert_eq!(
        bob.process(&mut b, &second),
        vec![application(b"2", &alice)]
    );
    assert_eq!(bob.process(&mut b, &first), vec![application(b"1", &alice)]);
}

#[test]
fn rekey_after_max_messages_then_commit_round_trip() {
    let (alice, bob, mut a, mut b) = pair();
    let policy = RekeyPolicy {
        max_messages: 3,
        max_age_secs: u64::MAX,
    };
    for i in 0..3u8 {
        assert!(!a.rekey_due(&policy, T0), "due after {i} messages");
        deliver(&alice, &mut a, &bob, &mut b, &[i]);
    }
    assert!(a.rekey_due(&policy, T0));
    assert!(!b.rekey_due(&policy, T0), "receiving does not count");

    let commit = alice.self_update(&mut a, T0 + 5);
    assert!(a.has_pending_commit());
    assert_eq!(a.pending_commit(), Some(commit.as_slice()));
    assert_eq!(a.pending_commit_id(), Some(commit_id(&commit)));
    assert!(!a.rekey_due(&policy, T0), "never due while pending");
    assert!(matches!(
        a.self_update(&alice.store, &alice.device, T0),
        Err(E2eError::CommitPending)
    ));
    assert_eq!(a.epoch(), 1);

    assert_eq!(
        bob.process(&mut b, &commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    assert_eq!(a.confirm_commit(&alice.store).expect("confirm"), vec![]);
    assert!(!a.has_pending_commit());
    assert_eq!((a.epoch(), b.epoch()), (2, 2));
    assert!(!a.rekey_due(&policy, T0 + 5));
    assert_eq!(exported(&alice, &a), exported(&bob, &b));
    assert!(matches!(
        a.confirm_commit(&alice.store),
        Err(E2eError::NoPendingCommit)
    ));

    deliver(&alice, &mut a, &bob, &mut b, b"new epoch");
    deliver(&bob, &mut b, &alice, &mut a, b"new epoch too");

    // Bob rekeys too; both end at epoch 3.
    let commit = bob.self_update(&mut b, T0 + 6);
    assert_eq!(
        alice.process(&mut a, &commit),
        vec![Processed::CommitApplied { epoch: 3 }]
    );
    b.confirm_commit(&bob.store).expect("confirm");
    deliver(&bob, &mut b, &alice, &mut a, b"epoch 3");
    assert_eq!(exported(&alice, &a), exported(&bob, &b));
}

#[test]
fn rekey_after_max_age() {
    let (alice, bob, mut a, mut b) = pair();
    let policy = RekeyPolicy {
        max_messages: u64::MAX,
        max_age_secs: 100,
    };
    assert!(!a.rekey_due(&policy, T0 + 99));
    assert!(a.rekey_due(&policy, T0 + 100));
    assert!(b.rekey_due(&policy, T0 + 100), "joining starts the clock");
    assert!(
        !a.rekey_due(&policy, T0 - 50),
        "a clock going back is not due"
    );

    let commit = alice.self_update(&mut a, T0 + 150);
    bob.process(&mut b, &commit);
    a.confirm_commit(&alice.store).expect("confirm");
    assert!(!a.rekey_due(&policy, T0 + 249));
    assert!(a.rekey_due(&policy, T0 + 250));
    assert_eq!(RekeyPolicy::default().max_messages, 100);
    assert_eq!(RekeyPolicy::default().max_age_secs, 86_400);
}

#[test]
fn messages_around_a_pending_commit() {
    let (alice, bob, mut a, mut b) = pair();
    let commit = alice.self_update(&mut a, T0);
    // Alice keeps talking in epoch 1 while her commit is pending.
    let old_epoch = alice.encrypt(&mut a, b"sent while pending");
    assert_eq!(
        bob.process(&mut b, &commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    // Bob is at epoch 2 and still decrypts it (past epochs are kept).
    assert_eq!(
        bob.process(&mut b, &old_epoch),
        vec![application(b"sent while pending", &alice)]
    );
    // Bob answers in epoch 2 before Alice has the receipt: buffered, then
    // delivered by confirm_commit.
    let reply = bob.encrypt(&mut b, b"reply in epoch 2");
    assert_eq!(alice.process(&mut a, &reply), vec![Processed::Deferred]);
    assert_eq!(a.deferred_len(&alice.store).expect("len"), 1);
    // The same bytes again are not buffered twice.
    assert_eq!(alice.process(&mut a, &reply), vec![Processed::Deferred]);
    assert_eq!(a.deferred_len(&alice.store).expect("len"), 1);
    assert_eq!(
        a.confirm_commit(&alice.store).expect("confirm"),
        vec![application(b"reply in epoch 2", &bob)]
    );
    assert_eq!(a.deferred_len(&alice.store).expect("len"), 0);
    assert_eq!(a.deferred_dropped(), 0);
    deliver(&alice, &mut a, &bob, &mut b, b"all caught up");
}

#[test]
fn concurrent_commits_converge_on_the_smaller_hash() {
    // Each round's winner is random: several rounds cover both sides winning.
    let (alice, bob, mut a, mut b) = pair();
    for round in 0..4u64 {
        let epoch = a.epoch();
        let from_alice = alice.self_update(&mut a, T0 + round);
        let from_bob = bob.self_update(&mut b, T0 + round);
        let alice_wins = commit_id(&from_alice) < commit_id(&from_bob);

        let at_alice = alice.process(&mut a, &from_bob);
        let at_bob = bob.process(&mut b, &from_alice);
        let rejected = vec![Processed::CommitRejected {
            reason: CommitRejectReason::LostTieBreak,
        }];
        let applied = vec![Processed::CommitApplied { epoch: epoch + 1 }];
        let (winner, w, loser, l) = if alice_wins {
            assert_eq!((at_alice, at_bob), (rejected, applied));
            (&alice, &mut a, &bob, &mut b)
        } else {
            assert_eq!((at_alice, at_bob), (applied, rejected));
            (&bob, &mut b, &alice, &mut a)
        };
        // The loser dropped its commit and is in the new epoch; the winner
        // keeps its commit pending until the loser's receipt.
        assert!(!l.has_pending_commit());
        assert!(w.has_pending_commit());
        assert_eq!((w.epoch(), l.epoch()), (epoch, epoch + 1));
        assert!(matches!(
            l.confirm_commit(&loser.store),
            Err(E2eError::NoPendingCommit)
        ));
        w.confirm_commit(&winner.store).expect("confirm");
        assert_eq!((w.epoch(), l.epoch()), (epoch + 1, epoch + 1));
        assert_eq!(exported(winner, w), exported(loser, l));

        // The losing commit arriving again later is stale, not an error.
        let losing = if alice_wins { &from_bob } else { &from_alice };
        assert_eq!(
            winner.process(w, losing),
            vec![Processed::CommitRejected {
                reason: CommitRejectReason::StaleEpoch
            }]
        );

        deliver(winner, w, loser, l, b"winner speaks");
        deliver(loser, l, winner, w, b"loser speaks");
    }
}

#[test]
fn post_compromise_security_after_own_self_update() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (alice, bob, mut a, mut b) = pair();
    deliver(&alice, &mut a, &bob, &mut b, b"epoch 1");

    // An attacker copies Bob's whole state now.
    let stolen = dir.path().join("stolen.db");
    bob.store.copy_to(&stolen).expect("copy");
    let attacker = Party::with_store(2, 21, E2eStore::open(&stolen).expect("open copy"));
    let mut clone = Conversation::load(&attacker.store, b.id())
        .expect("load")
        .expect("present");

    // With the old state the attacker reads epoch-1 traffic …
    let message = alice.encrypt(&mut a, b"still epoch 1");
    assert_eq!(
        attacker.process(&mut clone, &message),
        vec![application(b"still epoch 1", &alice)]
    );
    assert_eq!(bob.process(&mut b, &message).len(), 1);

    // … until Bob's self-update is applied by Alice and confirmed.
    let commit = bob.self_update(&mut b, T0);
    alice.process(&mut a, &commit);
    b.confirm_commit(&bob.store).expect("confirm");

    let secret = alice.encrypt(&mut a, b"after the heal");
    assert_eq!(
        bob.process(&mut b, &secret),
        vec![application(b"after the heal", &alice)]
    );
    // The clone can only buffer it (it is for an epoch it cannot reach) …
    assert_eq!(
        attacker.process(&mut clone, &secret),
        vec![Processed::Deferred]
    );
    // … and cannot process Bob's commit (only Bob held its fresh secrets).
    assert!(attacker.try_process(&mut clone, &commit).is_err());
    assert_eq!(clone.epoch(), 1);
    let later = alice.encrypt(&mut a, b"later");
    let outcome = attacker.try_process(&mut clone, &later);
    assert!(
        !matches!(outcome.as_deref(), Ok([Processed::Application { .. }])),
        "{outcome:?}"
    );
}

#[test]
fn future_epoch_message_waits_for_its_commit() {
    // Three devices: Alice, and Bob on two devices under one root.
    let alice = Party::new(1, 11);
    let phone = Party::new(2, 21);
    let laptop = Party::new(2, 22);
    let (mut a, welcome) = Conversation::create(
        &alice.store,
        &alice.device,
        &[phone.key_package(), laptop.key_package()],
        T0,
    )
    .expect("create");
    let mut p = Conversation::join(&phone.store, &phone.device, &welcome, T0).expect("join");
    let mut l = Conversation::join(&laptop.store, &laptop.device, &welcome, T0).expect("join");
    assert_eq!(a.members().len(), 3);
    assert_eq!(p.members()[1].root(), p.members()[2].root());

    let commit = alice.self_update(&mut a, T0);
    assert_eq!(
        phone.process(&mut p, &commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    let message = phone.encrypt(&mut p, b"from the phone, epoch 2");
    // The laptop gets the message before the commit.
    assert_eq!(laptop.process(&mut l, &message), vec![Processed::Deferred]);
    assert_eq!(
        laptop.process(&mut l, &commit),
        vec![
            Processed::CommitApplied { epoch: 2 },
            application(b"from the phone, epoch 2", &phone)
        ]
    );
    assert_eq!(
        a.confirm_commit(&alice.store).expect("confirm"),
        vec![],
        "alice has nothing buffered"
    );
    assert_eq!(
        alice.process(&mut a, &message),
        vec![application(b"from the phone, epoch 2", &phone)]
    );
    deliver(&laptop, &mut l, &alice, &mut a, b"laptop");
    deliver(&alice, &mut a, &phone, &mut p, b"to both");
}

#[test]
fn deferred_queue_is_bounded() {
    let (alice, bob, mut a, mut b) = pair();
    let commit = bob.self_update(&mut b, T0);
    b.confirm_commit(&bob.store).expect("confirm without alice");
    let messages: Vec<Vec<u8>> = (0..=MAX_DEFERRED as u32)
        .map(|i| bob.encrypt(&mut b, &i.to_be_bytes()))
        .collect();
    for message in &messages {
        assert_eq!(alice.process(&mut a, message), vec![Processed::Deferred]);
    }
    assert_eq!(a.deferred_len(&alice.store).expect("len"), MAX_DEFERRED);
    assert_eq!(a.deferred_dropped(), 1);
    let results = alice.process(&mut a, &commit);
    assert_eq!(results.len(), 1 + MAX_DEFERRED);
    assert_eq!(results[0], Processed::CommitApplied { epoch: 2 });
    // The oldest (0) was dropped; 1..=256 arrive in order.
    assert_eq!(results[1], application(&1u32.to_be_bytes(), &bob));
    assert_eq!(
        results[MAX_DEFERRED],
        application(&(MAX_DEFERRED as u32).to_be_bytes(), &bob)
    );
}

#[test]
fn too_far_future_epoch_is_refused() {
    let (alice, bob, mut a, mut b) = pair();
    for _ in 0..=MAX_FUTURE_EPOCHS {
        bob.self_update(&mut b, T0);
        b.confirm_commit(&bob.store).expect("confirm");
    }
    let message = bob.encrypt(&mut b, b"far ahead");
    assert!(matches!(
        alice.try_process(&mut a, &message),
        Err(E2eError::WrongEpoch {
            message_epoch: 10,
            group_epoch: 1
        })
    ));
}

#[test]
fn message_for_another_conversation_is_refused() {
    let (alice, bob, mut a, _) = pair();
    let carol = Party::new(3, 31);
    let (mut c, welcome) =
        Conversation::create(&carol.store, &carol.device, &[alice.key_package()], T0)
            .expect("create");
    let mut a2 = Conversation::join(&alice.store, &alice.device, &welcome, T0).expect("join");
    let message = carol.encrypt(&mut c, b"for the other one");
    assert!(matches!(
        alice.try_process(&mut a, &message),
        Err(E2eError::WrongGroup)
    ));
    assert_eq!(alice.process(&mut a2, &message).len(), 1);
    // Bob's device cannot act as Alice's in her conversation.
    assert!(matches!(
        a.encrypt(&alice.store, &bob.device, b"x", T0),
        Err(E2eError::WrongDevice)
    ));
}

#[test]
fn mismatched_credential_is_refused() {
    let alice = Party::new(1, 11);
    let mallory_store = E2eStore::open_in_memory().expect("store");
    let root = RootKey::from_bytes(&[4; 32]);
    // A valid certificate, but for another device key than the one signing.
    let certified = root.certify_device(&DeviceKey::from_bytes(&[41; 32]).public(), T0);
    let mallory = Device::new_unchecked(&[42; 32], certified);
    let package = create_key_packages(&mallory_store, &mallory, 1, false)
        .expect("openmls does not check")
        .remove(0);
    assert!(matches!(
        inspect_key_package(&package),
        Err(E2eError::InvalidCredential(_))
    ));
    assert!(matches!(
        Conversation::create(&alice.store, &alice.device, &[package], T0),
        Err(E2eError::InvalidCredential(_))
    ));

    // A certificate for the right key whose root signature is forged.
    let mut forged = root
        .certify_device(&DeviceKey::from_bytes(&[43; 32]).public(), T0)
        .encode();
    forged[100] ^= 1;
    let forged = rhizo_core::DeviceCertificate::decode(&forged).expect("decodes");
    let mallory = Device::new_unchecked(&[43; 32], forged);
    let package = create_key_packages(&mallory_store, &mallory, 1, false)
        .expect("create")
        .remove(0);
    assert!(matches!(
        inspect_key_package(&package),
        Err(E2eError::InvalidCertificate(_))
    ));
}

#[test]
fn malformed_key_packages_are_refused_cheaply() {
    let bob = Party::new(2, 21);
    let package = bob.key_package();
    assert!(matches!(
        inspect_key_package(&vec![0; MAX_KEY_PACKAGE_BYTES + 1]),
        Err(E2eError::TooLarge { .. })
    ));
    assert!(matches!(
        inspect_key_package(&[0, 1]),
        Err(E2eError::Malformed(_))
    ));
    let mut other_suite = package.clone();
    other_suite[3] = 0x01;
    assert!(matches!(
        inspect_key_package(&other_suite),
        Err(E2eError::WrongCiphersuite(1))
    ));
    assert!(matches!(
        inspect_key_package(&package[..package.len() - 1]),
        Err(E2eError::Malformed(_))
    ));
    let mut tampered = package.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        inspect_key_package(&tampered),
        Err(E2eError::InvalidKeyPackage(_))
    ));
    let alice = Party::new(1, 11);
    assert!(matches!(
        Conversation::create(&alice.store, &alice.device, &[], T0),
        Err(E2eError::NoPeers)
    ));
}

#[test]
fn wrong_kinds_of_messages_are_refused() {
    let (alice, bob, mut a, mut b) = pair();
    let package = bob.key_package();
    // A KeyPackage is not a Welcome, a Welcome is not a group message.
    assert!(matches!(
        Conversation::join(&bob.store, &bob.device, &package, T0),
        Err(E2eError::Malformed(_))
    ));
    let (_, welcome) =
        Conversation::create(&alice.store, &alice.device, &[package], T0).expect("create");
    assert!(matches!(
        bob.try_process(&mut b, &welcome),
        Err(E2eError::Malformed(_))
    ));
    assert!(matches!(
        bob.try_process(&mut b, &vec![0; MAX_MESSAGE_BYTES + 1]),
        Err(E2eError::TooLarge { .. })
    ));
    // Alice's own message echoed back to her.
    let message = alice.encrypt(&mut a, b"echo");
    assert!(matches!(
        alice.try_process(&mut a, &message),
        Err(E2eError::OwnMessage)
    ));
    assert!(matches!(
        a.encrypt(
            &alice.store,
            &alice.device,
            &vec![0; MAX_PLAINTEXT_BYTES + 1],
            T0
        ),
        Err(E2eError::TooLarge { .. })
    ));
    deliver(&alice, &mut a, &bob, &mut b, b"still fine");
}

#[test]
fn largest_plaintext_fits_the_message_limit() {
    let (alice, bob, mut a, mut b) = pair();
    let plaintext = vec![7; MAX_PLAINTEXT_BYTES];
    let message = alice.encrypt(&mut a, &plaintext);
    assert!(message.len() <= MAX_MESSAGE_BYTES, "{}", message.len());
    assert_eq!(
        bob.process(&mut b, &message),
        vec![application(&plaintext, &alice)]
    );
}

/// Garbage and corrupted messages give errors, never panics, and leave the
/// conversation working.
#[test]
fn garbage_never_panics() {
    let (alice, bob, mut a, b) = pair();
    let valid = alice.encrypt(&mut a, b"template");
    let commit = alice.self_update(&mut a, T0);
    let package = bob.key_package();
    // `run` takes a `Fn`; the conversation is mutated through a RefCell.
    let shared = std::cell::RefCell::new(b);
    let mut runner = TestRunner::new(Config {
        cases: 48,
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        proptest::collection::vec(any::<u8>(), 0..600),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..3usize,
    );
    runner
        .run(&strategy, |(garbage, index, flip, which)| {
            let mut b = shared.borrow_mut();
            prop_assert!(bob.try_process(&mut b, &garbage).is_err());
            prop_assert!(Conversation::join(&bob.store, &bob.device, &garbage, T0).is_err());
            prop_assert!(inspect_key_package(&garbage).is_err());

            let template = [&valid, &commit, &package][which];
            let mut corrupted = template.clone();
            let at = index.index(corrupted.len());
            corrupted[at] ^= flip | 1;
            let _ = bob.try_process(&mut b, &corrupted);
            let _ = Conversation::join(&bob.store, &bob.device, &corrupted, T0);
            prop_assert!(inspect_key_package(&corrupted).is_err() || which != 2);

            let truncated = &template[..at];
            prop_assert!(bob.try_process(&mut b, truncated).is_err());
            prop_assert!(Conversation::join(&bob.store, &bob.device, truncated, T0).is_err());
            prop_assert!(inspect_key_package(truncated).is_err());
            Ok(())
        })
        .expect("no panics, no acceptance of garbage");
    let mut b = shared.into_inner();
    assert_eq!(
        bob.process(&mut b, &valid),
        vec![application(b"template", &alice)]
    );
    assert_eq!(
        bob.process(&mut b, &commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
}

/// (root, device) of a party, as [`Conversation::check_members`] expects it.
fn identity_of(party: &Party) -> (RootPublicKey, DevicePublicKey) {
    let certificate = party.device.certificate();
    (certificate.root(), certificate.device())
}

#[test]
fn members_are_checked_against_the_expected_devices() {
    let (alice, bob, a, b) = pair();
    let both = [identity_of(&alice), identity_of(&bob)];
    assert_eq!(a.check_members(&both).map_err(|e| e.to_string()), Ok(()));
    assert_eq!(b.check_members(&both).map_err(|e| e.to_string()), Ok(()));
    // Bob's device under another root is not bob's device.
    let carol = Party::new(3, 31);
    let wrong_root = [
        identity_of(&alice),
        (identity_of(&carol).0, identity_of(&bob).1),
    ];
    assert!(matches!(
        a.check_members(&wrong_root),
        Err(E2eError::UnexpectedMember { .. })
    ));
    // Expected but absent is fine (no KeyPackage found for one of the contact's devices).
    let more = [identity_of(&alice), identity_of(&bob), identity_of(&carol)];
    assert!(b.check_members(&more).is_ok());
}

#[test]
fn a_welcome_with_a_hidden_device_fails_the_member_check() {
    let alice = Party::new(1, 11);
    let bob = Party::new(2, 21);
    let eve = Party::new(5, 51);
    // Alice invites bob and, hidden in the same Welcome, eve's device.
    let (_a, welcome) = Conversation::create(
        &alice.store,
        &alice.device,
        &[bob.key_package(), eve.key_package()],
        T0,
    )
    .expect("create");
    let b = Conversation::join(&bob.store, &bob.device, &welcome, T0).expect("join");
    let err = b
        .check_members(&[identity_of(&alice), identity_of(&bob)])
        .expect_err("eve is not expected");
    assert!(
        err.to_string()
            .contains(&eve.device.certificate().device().to_string()),
        "{err}"
    );
}

#[test]
fn a_commit_that_adds_a_hidden_device_fails_the_member_check() {
    let (alice, bob, mut a, mut b) = pair();
    let eve = Party::new(5, 51);
    let (commit, _welcome) = a
        .add_devices(&alice.store, &alice.device, &[eve.key_package()], T0)
        .expect("add");
    assert!(a.has_pending_commit());
    let processed = bob.process(&mut b, &commit);
    assert!(matches!(
        processed.as_slice(),
        [Processed::CommitApplied { .. }]
    ));
    let expected = [identity_of(&alice), identity_of(&bob)];
    assert!(matches!(
        b.check_members(&expected),
        Err(E2eError::UnexpectedMember { .. })
    ));
    // A self-update changes no membership and passes.
    let (alice, bob, mut a, mut b) = pair();
    let commit = alice.self_update(&mut a, T0 + 1);
    bob.process(&mut b, &commit);
    assert!(
        b.check_members(&[identity_of(&alice), identity_of(&bob)])
            .is_ok()
    );
}
