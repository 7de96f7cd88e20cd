//! Tests of the engine's inbound, outbox, receipt, commit, contact and publishing rules on
//! real SQLite stores in temp dirs (moved from rhizo-node's messaging tests with the logic).

use std::sync::{Arc, Mutex};

use prost::Message as _;
use rhizo_core::{
    DeviceKey, RootKey,
    envelope::{
        BATCH_FRAME_MARKER, DeliveryReceipt, EnvelopeBatch, ErrorCode, MessageType, ReceiptEntry,
        ReceiptStatus, SecureMessage,
    },
    proto::ChatContent,
    records::{DeviceList, KeyPackageBundle},
    seen::SeenSet,
    ticket::{ContactTicket, TicketDevice},
};
use rhizo_e2e::{Conversation, Device, E2eStore};
use rhizo_store::{
    Store, StoreError,
    messaging::{Contact, ContactDevice, ConversationRow, MessageState, NewMessage, OutboxItem},
};

use super::*;
use crate::{
    cache::ConversationCache,
    commits,
    contacts::{UnprovenDevices, peer_id_of_device, proven_list_devices, proven_ticket_devices},
    conversations::seal,
    inbound::{InTransaction, Received, receive_batch_in, receive_in},
    outbox::{SentUpdate, batches, better_outcome, outcome_of, parse_response},
    publish::seen_prune_cutoff,
    publish::{
        KEY_PACKAGE_GRACE_SECS, KEY_PACKAGE_ROTATION_SECS, META_KEY_PACKAGE_BUNDLE,
        ONE_TIME_KEY_PACKAGES, build_key_package_bundle,
    },
    wire::{RESPONSE_ERROR, RESPONSE_RECEIPT, conduct_of},
};
use rhizo_core::envelope::ErrorMessage;
use rhizo_core::seen::check_timestamp;

/// Envelopes older than this are refused (rhizo-core's replay window).
const MAX_ENVELOPE_AGE_MS: i64 = rhizo_core::seen::MAX_ENVELOPE_AGE as i64;

/// The generator of the envelopes these tests seal by hand (seeded: the same nonces each run).
pub(crate) static TEST_RNG: std::sync::LazyLock<crate::rng::EngineRng> =
    std::sync::LazyLock::new(|| crate::rng::EngineRng::from_seed(12));

/// The wall clock, for tests that seal envelopes "now" (the engine itself never reads it).
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap())
        .unwrap()
}

/// [`receive_in`] now, in a transaction of its own.
fn receive(
    store: &mut Store,
    me: &Me,
    mls_device: &Device,
    conversations: &Arc<ConversationCache>,
    seen: &Arc<Mutex<SeenSet<InTransaction>>>,
    payload: &[u8],
) -> Received {
    store
        .write(|tx| {
            Ok::<_, StoreError>(receive_in(
                tx,
                me,
                mls_device,
                conversations,
                seen,
                &crate::agents::health::AgentHealth::default(),
                &TEST_RNG,
                payload,
                now_ms(),
            ))
        })
        .unwrap()
}

/// [`receive_batch_in`] now, in a transaction of its own.
fn receive_batch(
    store: &mut Store,
    me: &Me,
    mls_device: &Device,
    conversations: &Arc<ConversationCache>,
    seen: &Arc<Mutex<SeenSet<InTransaction>>>,
    payload: &[u8],
) -> Received {
    store
        .write(|tx| {
            Ok::<_, StoreError>(receive_batch_in(
                tx,
                me,
                mls_device,
                conversations,
                seen,
                &crate::agents::health::AgentHealth::default(),
                &TEST_RNG,
                payload,
                now_ms(),
            ))
        })
        .unwrap()
}

pub(crate) struct Party {
    pub(crate) me: Me,
    device: Device,
    pub(crate) contact: Contact,
}

pub(crate) fn party(seed: u8, name: &str) -> Party {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed + 100; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    let uid = root.public().uid();
    let contact = Contact {
        uid: *uid.as_bytes(),
        root_pk: *root.public().as_bytes(),
        name: name.into(),
        verified: false,
        added_at: 0,
        devices: vec![ContactDevice {
            device_pk: *device.public().as_bytes(),
            peer_id: peer_id_of_device(&device.public()).unwrap().to_string(),
            addrs: vec![],
            certificate: None,
        }],
    };
    let mls = Device::new(&device.to_bytes(), &certificate.encode()).unwrap();
    Party {
        me: Me::primary(root, device, certificate, Some(name.into())),
        device: mls,
        contact,
    }
}

pub(crate) fn open(path: &std::path::Path) -> Store {
    let store = Store::open(path).unwrap();
    E2eStore::open(path).unwrap();
    store
}

fn status_of(response: &[u8]) -> ReceiptStatus {
    assert_eq!(response[0], RESPONSE_RECEIPT, "expected a receipt");
    DeliveryReceipt::decode(&response[1..]).unwrap().entries[0].status
}

/// Alice and bob, contacts of each other, each with a database in a temp dir, and one of
/// bob's KeyPackages for alice to start a conversation with.
struct Chat {
    _tmp: tempfile::TempDir,
    alice: Party,
    bob: Party,
    alice_store: Store,
    bob_store: Store,
    bob_db: std::path::PathBuf,
    key_package: Vec<u8>,
}

fn chat() -> Chat {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = (party(1, "alice"), party(2, "bob"));
    let bob_db = tmp.path().join("bob.db");
    let mut bob_store = open(&bob_db);
    let mut alice_store = open(&tmp.path().join("alice.db"));
    bob_store
        .write(|tx| tx.add_contact(&alice.contact, 1))
        .unwrap();
    alice_store
        .write(|tx| tx.add_contact(&bob.contact, 1))
        .unwrap();
    let key_package = {
        let mls = E2eStore::from_connection(bob_store.connection()).unwrap();
        rhizo_e2e::create_key_packages(&mls, &bob.device, 1, false)
            .unwrap()
            .remove(0)
    };
    Chat {
        _tmp: tmp,
        alice,
        bob,
        alice_store,
        bob_store,
        bob_db,
        key_package,
    }
}

#[test]
fn a_replayed_envelope_is_refused_and_delivered_once_also_after_a_restart() {
    // Bob's KeyPackage, alice creates the conversation and writes two envelopes.
    let Chat {
        _tmp,
        alice,
        bob,
        alice_store,
        mut bob_store,
        bob_db,
        key_package: kp,
    } = chat();
    let now = now_ms();
    let session = [7u8; 16];
    let (welcome, message) = {
        let mls = E2eStore::from_connection(alice_store.connection()).unwrap();
        let (mut conversation, welcome) =
            Conversation::create(&mls, &alice.device, &[kp], 1).unwrap();
        let content = ChatContent {
            text: "hello bob".into(),
            sent_at_ms: now as u64,
            ..Default::default()
        }
        .encode_to_vec();
        let ciphertext = conversation
            .encrypt(&mls, &alice.device, &content, 1)
            .unwrap();
        (
            seal(
                &alice.me,
                &TEST_RNG,
                &bob.contact,
                &session,
                1,
                MessageType::Welcome,
                welcome,
                now,
            )
            .unwrap(),
            seal(
                &alice.me,
                &TEST_RNG,
                &bob.contact,
                &session,
                2,
                MessageType::Application,
                ciphertext,
                now,
            )
            .unwrap(),
        )
    };

    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &welcome,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &message,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    assert!(matches!(
        r.events.as_slice(),
        [Event::MessageReceived { .. }]
    ));
    // The same envelope again: REPLAY_DETECTED, nothing stored twice.
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &message,
    );
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::ReplayDetected)
    );
    assert!(r.events.is_empty());

    // After a restart (the database reopened, the in-memory cache gone), still refused.
    drop(bob_store);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let mut bob_store = open(&bob_db);
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &message,
    );
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::ReplayDetected)
    );
    let history = bob_store.read().messages(&session, 100).unwrap();
    let texts: Vec<_> = history.iter().filter_map(|m| m.body.clone()).collect();
    assert_eq!(texts, vec!["hello bob".to_string()], "exactly one delivery");
}

/// A KeyPackage of a third device (eve: root 5, device 105) in its own database.
fn eve_key_package(dir: &std::path::Path) -> Vec<u8> {
    let eve = party(5, "eve");
    let store = open(&dir.join("eve.db"));
    let mls = E2eStore::from_connection(store.connection()).unwrap();
    rhizo_e2e::create_key_packages(&mls, &eve.device, 1, false)
        .unwrap()
        .remove(0)
}

/// A KeyPackage of a device of `root_seed`'s root that no contact lists (device seed 150).
fn unlisted_device_key_package(dir: &std::path::Path, root_seed: u8) -> Vec<u8> {
    let root = RootKey::from_bytes(&[root_seed; 32]);
    let device = DeviceKey::from_bytes(&[150; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    let mls_device = Device::new(&device.to_bytes(), &certificate.encode()).unwrap();
    let store = open(&dir.join("unlisted.db"));
    let mls = E2eStore::from_connection(store.connection()).unwrap();
    rhizo_e2e::create_key_packages(&mls, &mls_device, 1, false)
        .unwrap()
        .remove(0)
}

/// Alice's Welcome to bob holding bob's device and `extra`, sealed to bob.
fn welcome_with(chat: &Chat, extra: Vec<u8>, session: [u8; 16]) -> Vec<u8> {
    let mls = E2eStore::from_connection(chat.alice_store.connection()).unwrap();
    let (_, welcome) = Conversation::create(
        &mls,
        &chat.alice.device,
        &[chat.key_package.clone(), extra],
        1,
    )
    .unwrap();
    seal(
        &chat.alice.me,
        &TEST_RNG,
        &chat.bob.contact,
        &session,
        1,
        MessageType::Welcome,
        welcome,
        now_ms(),
    )
    .unwrap()
}

#[test]
fn a_welcome_whose_conversation_has_an_unlisted_device_of_the_contact_is_refused() {
    let mut chat = chat();
    let extra = unlisted_device_key_package(chat._tmp.path(), 1);
    let welcome = welcome_with(&chat, extra, [3u8; 16]);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let r = receive(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &welcome,
    );
    // Issue 15: a device of alice's root that bob's copy of her list does not name: first her
    // newest device list is wanted (the sender retries) ...
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::SequenceError)
    );
    let alice = rhizo_core::Uid::from_bytes(&chat.alice.contact.uid);
    assert_eq!(cache.device_lists.take_wanted(), vec![*alice.as_bytes()]);
    // ... and once it is fetched and does not name the device either, refused for good.
    let listed = chat
        .alice
        .contact
        .devices
        .iter()
        .filter_map(|d| rhizo_core::DevicePublicKey::from_bytes(&d.device_pk).ok())
        .collect();
    cache.device_lists.learn(alice.as_bytes(), listed, now_ms());
    let r = receive(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &welcome,
    );
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::UnexpectedMember)
    );
    // Nothing was kept: no conversation, no group.
    let reader = chat.bob_store.read();
    assert!(
        reader
            .conversations_with(&chat.alice.contact.uid)
            .unwrap()
            .is_empty()
    );
    assert!(reader.groups().unwrap().is_empty());
}

#[test]
fn a_welcome_whose_conversation_hides_a_third_person_is_refused() {
    // Not a group Welcome (no group extension): a 1:1 conversation with eve hidden in it.
    let mut chat = chat();
    let eve_kp = eve_key_package(chat._tmp.path());
    let welcome = welcome_with(&chat, eve_kp, [3u8; 16]);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let r = receive(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &welcome,
    );
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::UnexpectedMember)
    );
    let reader = chat.bob_store.read();
    assert!(
        reader
            .conversations_with(&chat.alice.contact.uid)
            .unwrap()
            .is_empty()
    );
    assert!(reader.groups().unwrap().is_empty());
}

#[test]
fn a_commit_that_adds_a_hidden_member_is_refused() {
    let Chat {
        _tmp,
        alice,
        bob,
        alice_store,
        mut bob_store,
        bob_db: _,
        key_package: kp,
    } = chat();
    let eve_kp = eve_key_package(_tmp.path());
    let now = now_ms();
    let session = [4u8; 16];
    let seal_as = |seq, msg_type, payload| {
        seal(
            &alice.me,
            &TEST_RNG,
            &bob.contact,
            &session,
            seq,
            msg_type,
            payload,
            now,
        )
        .unwrap()
    };
    let (welcome, add) = {
        let mls = E2eStore::from_connection(alice_store.connection()).unwrap();
        let (mut conversation, welcome) =
            Conversation::create(&mls, &alice.device, &[kp], 1).unwrap();
        // Alice's next commit adds eve's device to the conversation with bob.
        let (add, _) = conversation
            .add_devices(&mls, &alice.device, &[eve_kp], 1)
            .unwrap();
        (
            seal_as(1, MessageType::Welcome, welcome),
            seal_as(2, MessageType::Commit, add),
        )
    };
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let mut deliver = |envelope: &[u8]| {
        status_of(
            &receive(
                &mut bob_store,
                &bob.me,
                &bob.device,
                &cache,
                &seen,
                envelope,
            )
            .response,
        )
    };
    assert_eq!(deliver(&welcome), ReceiptStatus::Delivered);
    assert_eq!(
        deliver(&add),
        ReceiptStatus::Rejected(ErrorCode::UnexpectedMember)
    );
}

#[test]
fn a_ticket_listing_someone_elses_device_cannot_take_their_envelopes() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = (party(1, "alice"), party(2, "bob"));
    // A mallory whose UID sorts before alice's, so that a lookup by device key alone (as
    // before: it returned the first listing, in UID order) would find her.
    let mallory = (3..=40)
        .map(|seed| party(seed, "mallory"))
        .find(|m| m.contact.uid < alice.contact.uid)
        .unwrap();
    let mut bob_store = open(&tmp.path().join("bob.db"));
    let alice_store = open(&tmp.path().join("alice.db"));
    let kp = {
        let mls = E2eStore::from_connection(bob_store.connection()).unwrap();
        rhizo_e2e::create_key_packages(&mls, &bob.device, 1, false)
            .unwrap()
            .remove(0)
    };
    // Bob adds mallory first. Her ticket lists alice's device key (alice never signed
    // anything for mallory's root) next to her own device.
    let ticket = ContactTicket::new(
        mallory.me.root_signer().unwrap(),
        vec![
            TicketDevice::new(alice.me.device.public(), Vec::new()),
            TicketDevice::with_proof(&mallory.me.device, mallory.me.certificate, Vec::new())
                .unwrap(),
        ],
        Some("mallory".into()),
        1,
    )
    .unwrap();
    let mut mallory_contact = mallory.contact.clone();
    mallory_contact.devices = proven_ticket_devices(&ticket).unwrap();
    bob_store
        .write(|tx| tx.add_contact(&mallory_contact, 1))
        .unwrap();
    // Then bob adds alice.
    bob_store
        .write(|tx| tx.add_contact(&alice.contact, 2))
        .unwrap();

    // Alice's envelopes resolve to alice: her Welcome and message are accepted as hers.
    let now = now_ms();
    let session = [5u8; 16];
    let (welcome, message) = {
        let mls = E2eStore::from_connection(alice_store.connection()).unwrap();
        let (mut conversation, welcome) =
            Conversation::create(&mls, &alice.device, &[kp], 1).unwrap();
        let content = ChatContent {
            text: "it is me".into(),
            sent_at_ms: now as u64,
            ..Default::default()
        }
        .encode_to_vec();
        let ciphertext = conversation
            .encrypt(&mls, &alice.device, &content, 1)
            .unwrap();
        let seal_as = |seq, msg_type, payload| {
            seal(
                &alice.me,
                &TEST_RNG,
                &bob.contact,
                &session,
                seq,
                msg_type,
                payload,
                now,
            )
            .unwrap()
        };
        (
            seal_as(1, MessageType::Welcome, welcome),
            seal_as(2, MessageType::Application, ciphertext),
        )
    };
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &welcome,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &message,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    assert!(
        matches!(r.events.as_slice(), [Event::MessageReceived { contact, .. }] if contact == "alice"),
        "{:?}",
        r.events
    );
    // Listing alice's device for mallory is refused by the store as well.
    let mut forged = mallory.contact.clone();
    forged.devices = alice.contact.devices.clone();
    let err = bob_store
        .write(|tx| tx.add_contact(&forged, 3))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DeviceKeyTaken { ref contact, .. } if contact == "alice"),
        "{err}"
    );
}

#[test]
fn only_devices_with_a_proof_of_possession_are_trusted() {
    let alice = party(1, "alice");
    let mallory = party(3, "mallory");
    let mallory_device = TicketDevice::with_proof(
        &mallory.me.device,
        mallory.me.certificate,
        vec!["/ip4/127.0.0.1/tcp/1".into()],
    )
    .unwrap();
    // Alice's device key, listed by mallory: it never signed anything for mallory's root.
    let stolen = TicketDevice::new(alice.me.device.public(), Vec::new());
    let ticket = ContactTicket::new(
        mallory.me.root_signer().unwrap(),
        vec![stolen.clone()],
        None,
        1,
    )
    .unwrap();
    assert!(matches!(
        proven_ticket_devices(&ticket),
        Err(UnprovenDevices)
    ));
    let ticket = ContactTicket::new(
        mallory.me.root_signer().unwrap(),
        vec![stolen, mallory_device],
        None,
        1,
    )
    .unwrap();
    let devices = proven_ticket_devices(&ticket).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_pk, *mallory.me.device.public().as_bytes());
    assert_eq!(
        devices[0].certificate,
        Some(mallory.me.certificate.encode())
    );

    // By UID: a device list may certify any key; only a device that signed a KeyPackage
    // bundle under that root counts.
    let list = DeviceList::new(
        mallory.me.root_signer().unwrap(),
        1,
        vec![
            mallory.me.certificate,
            mallory
                .me
                .root_signer()
                .unwrap()
                .certify_device(&alice.me.device.public(), 1),
        ],
        1_700_000_000,
        3600,
    )
    .unwrap();
    let bundle = |who: &Party| {
        let tmp = tempfile::tempdir().unwrap();
        let store = open(&tmp.path().join("kp.db"));
        let mls = E2eStore::from_connection(store.connection()).unwrap();
        let kps = rhizo_e2e::create_key_packages(&mls, &who.device, 1, true).unwrap();
        KeyPackageBundle::new(
            &who.me.device,
            who.me.certificate,
            1,
            kps,
            0,
            1_700_000_000,
            3600,
        )
        .unwrap()
    };
    assert!(matches!(
        proven_list_devices(&list, &[]),
        Err(UnprovenDevices)
    ));
    // Alice's genuine bundle is under alice's root: it proves nothing for mallory.
    assert!(matches!(
        proven_list_devices(&list, &[bundle(&alice)]),
        Err(UnprovenDevices)
    ));
    let devices = proven_list_devices(&list, &[bundle(&alice), bundle(&mallory)]).unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].device_pk, *mallory.me.device.public().as_bytes());
}

#[test]
fn the_seen_set_keeps_an_envelope_by_its_timestamp_and_the_sent_time_is_bounded() {
    let Chat {
        _tmp,
        alice,
        bob,
        alice_store,
        mut bob_store,
        key_package: kp,
        ..
    } = chat();
    let now = now_ms();
    // Alice's clock runs 4 minutes ahead (inside the window's skew), and her message claims
    // to be sent ten days from now.
    let stamped = now + 4 * 60 * 1000;
    let session = [8u8; 16];
    let (welcome, message) = {
        let mls = E2eStore::from_connection(alice_store.connection()).unwrap();
        let (mut conversation, welcome) =
            Conversation::create(&mls, &alice.device, &[kp], 1).unwrap();
        let content = ChatContent {
            text: "from the future".into(),
            sent_at_ms: (now + 10 * 24 * 3600 * 1000) as u64,
            ..Default::default()
        }
        .encode_to_vec();
        let ciphertext = conversation
            .encrypt(&mls, &alice.device, &content, 1)
            .unwrap();
        let seal_at = |seq, kind, payload, at| {
            seal(
                &alice.me,
                &TEST_RNG,
                &bob.contact,
                &session,
                seq,
                kind,
                payload,
                at,
            )
            .unwrap()
        };
        (
            seal_at(1, MessageType::Welcome, welcome, now),
            seal_at(2, MessageType::Application, ciphertext, stamped),
        )
    };
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    for envelope in [&welcome, &message] {
        let r = receive(
            &mut bob_store,
            &bob.me,
            &bob.device,
            &cache,
            &seen,
            envelope,
        );
        assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    }
    // The claimed time is implausible: the envelope's signed timestamp is shown instead.
    let history = bob_store.read().messages(&session, 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].sent_at, stamped);

    // The seen-set row carries the envelope's timestamp, not the time it was received.
    let device = *alice.me.device.public().as_bytes();
    let kept: i64 = bob_store
        .connection()
        .query_row(
            "SELECT envelope_ts FROM seen WHERE session_id = ?1 AND seq = 2",
            [&session[..]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, stamped);
    // Two minutes after "received + 14 days" the window still accepts the envelope, so the
    // hourly prune must keep its id (pruned by receive time, it would be gone: a replay
    // would reach MLS with no seen-set entry in front of it).
    let later = now + MAX_ENVELOPE_AGE_MS + 2 * 60 * 1000;
    assert!(check_timestamp(stamped as u64, later as u64).is_ok());
    bob_store
        .write(|tx| tx.prune_seen(seen_prune_cutoff(later)))
        .unwrap();
    assert!(
        bob_store
            .read()
            .seen_contains(&device, &session, 2)
            .unwrap()
    );
    // Once even a clock 5 minutes behind would refuse it, it goes.
    let gone = stamped + MAX_ENVELOPE_AGE_MS + rhizo_core::seen::MAX_CLOCK_SKEW as i64 + 1;
    bob_store
        .write(|tx| tx.prune_seen(seen_prune_cutoff(gone)))
        .unwrap();
    assert!(
        !bob_store
            .read()
            .seen_contains(&device, &session, 2)
            .unwrap()
    );
}

#[test]
fn superseded_key_packages_lose_their_private_keys_after_the_grace_period() {
    let tmp = tempfile::tempdir().unwrap();
    let bob = party(2, "bob");
    let path = tmp.path().join("bob.db");
    let mut store = open(&path);
    let private_keys = |store: &Store| -> Vec<Vec<u8>> {
        let mut stmt = store
            .connection()
            .prepare("SELECT key_package FROM openmls_key_packages")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let build = |store: &mut Store, at: u64| {
        store
            .write(|tx| build_key_package_bundle(tx, &bob.me, &bob.device, at))
            .unwrap();
    };
    let t0 = 1_800_000_000;
    build(&mut store, t0);
    let first = private_keys(&store);
    assert_eq!(first.len(), ONE_TIME_KEY_PACKAGES + 1);
    // The hourly republish signs the same KeyPackages again.
    build(&mut store, t0 + 3600);
    assert_eq!(private_keys(&store), first);

    // A Welcome used one of them: the receive path drops the bundle, a new one is made.
    store
        .connection()
        .execute("DELETE FROM meta WHERE key = ?1", [META_KEY_PACKAGE_BUNDLE])
        .unwrap();
    let retired_at = t0 + 7200;
    build(&mut store, retired_at);
    let second = private_keys(&store)
        .into_iter()
        .filter(|k| !first.contains(k))
        .collect::<Vec<_>>();
    assert_eq!(second.len(), ONE_TIME_KEY_PACKAGES + 1);
    let held = |store: &Store, set: &[Vec<u8>]| {
        let now = private_keys(store);
        set.iter().filter(|k| now.contains(k)).count()
    };
    assert_eq!(
        held(&store, &first),
        first.len(),
        "the old ones are kept while a Welcome made from them may be in flight"
    );
    // (By then the second set is older than the rotation age: it is replaced and retired.)
    const { assert!(KEY_PACKAGE_GRACE_SECS > KEY_PACKAGE_ROTATION_SECS) };
    build(&mut store, retired_at + KEY_PACKAGE_GRACE_SECS);
    assert_eq!(held(&store, &first), first.len());

    // After the grace period: the first set's private keys are gone...
    let second_retired_at = retired_at + KEY_PACKAGE_GRACE_SECS;
    build(&mut store, second_retired_at + 1);
    assert_eq!(held(&store, &first), 0);
    assert_eq!(held(&store, &second), second.len());
    let left = private_keys(&store);
    assert_eq!(left.len(), 2 * (ONE_TIME_KEY_PACKAGES + 1));
    // ...also from the database file's bytes (secure delete, then the checkpoint).
    let mut raw = std::fs::read(&path).unwrap();
    raw.extend(std::fs::read(tmp.path().join("bob.db-wal")).unwrap_or_default());
    let kept: std::collections::HashSet<&[u8]> = left.iter().flat_map(|k| k.windows(48)).collect();
    let pieces: Vec<&[u8]> = first
        .iter()
        .flat_map(|k| k.chunks_exact(48))
        .filter(|p| !kept.contains(p))
        .collect();
    assert!(!pieces.is_empty());
    let in_file: std::collections::HashSet<&[u8]> = raw.windows(48).collect();
    assert!(
        !pieces.iter().any(|p| in_file.contains(p)),
        "a superseded KeyPackage's private key is still in the database file"
    );

    // The set replaced by age goes the same way, after its own grace period.
    build(&mut store, second_retired_at + KEY_PACKAGE_GRACE_SECS);
    assert_eq!(held(&store, &second), second.len());
    build(&mut store, second_retired_at + KEY_PACKAGE_GRACE_SECS + 1);
    assert_eq!(held(&store, &second), 0);
}

fn statuses(response: &[u8]) -> Vec<ReceiptStatus> {
    assert_eq!(response[0], RESPONSE_RECEIPT, "expected a receipt");
    DeliveryReceipt::decode(&response[1..])
        .unwrap()
        .entries
        .iter()
        .map(|e| e.status)
        .collect()
}

fn batch_of(envelopes: &[&Vec<u8>]) -> Vec<u8> {
    EnvelopeBatch {
        envelopes: envelopes.iter().map(|e| e.to_vec().into()).collect(),
    }
    .encode()
    .unwrap()
}

#[test]
fn a_batch_is_applied_in_order_in_one_transaction_with_one_receipt() {
    let Chat {
        _tmp,
        alice,
        bob,
        alice_store,
        mut bob_store,
        bob_db,
        key_package: kp,
    } = chat();
    let now = now_ms();
    let session = [9u8; 16];
    let seal_app = |seq: u64, payload: Vec<u8>| {
        seal(
            &alice.me,
            &TEST_RNG,
            &bob.contact,
            &session,
            seq,
            MessageType::Application,
            payload,
            now,
        )
        .unwrap()
    };
    let mls = E2eStore::from_connection(alice_store.connection()).unwrap();
    let (mut conversation, welcome) = Conversation::create(&mls, &alice.device, &[kp], 1).unwrap();
    let mut encrypt = |text: &str| {
        let content = ChatContent {
            text: text.into(),
            sent_at_ms: now as u64,
            ..Default::default()
        }
        .encode_to_vec();
        conversation
            .encrypt(&mls, &alice.device, &content, 1)
            .unwrap()
    };
    let welcome = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &session,
        1,
        MessageType::Welcome,
        welcome,
        now,
    )
    .unwrap();
    let one = seal_app(2, encrypt("one"));
    let undecryptable = seal_app(3, vec![1, 2, 3]);
    let two = seal_app(4, encrypt("two"));
    let mut forged = seal_app(5, encrypt("forged"));
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let three = seal_app(6, encrypt("three"));
    let four = seal_app(7, encrypt("four"));

    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    // A batch holding a forged envelope is refused whole, unsigned: nothing is signed for
    // an envelope whose signature did not verify (regression: it used to get a signed
    // REJECTED entry), and it counts against the peer that sent it.
    let frame = batch_of(&[&welcome, &one, &undecryptable, &two, &forged]);
    let r = receive_batch(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &frame);
    assert_eq!(r.response[0], RESPONSE_ERROR, "no signed receipt");
    assert_eq!(
        ErrorMessage::decode(&r.response[1..]).unwrap().code,
        ErrorCode::InvalidSignature
    );
    assert!(r.events.is_empty());
    assert_eq!(
        conduct_of(&r.response),
        Some(rhizo_core::abuse::Conduct::InvalidMessage)
    );
    let frame = batch_of(&[&welcome, &one, &undecryptable, &two]);
    let r = receive_batch(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &frame);
    // One signed receipt, one entry per envelope in order; a final refusal (undecryptable)
    // does not stop the envelopes after it.
    assert_eq!(
        statuses(&r.response),
        vec![
            ReceiptStatus::Delivered,
            ReceiptStatus::Delivered,
            ReceiptStatus::Rejected(ErrorCode::DecryptionFailed),
            ReceiptStatus::Delivered,
        ]
    );
    assert_eq!(r.events.len(), 2, "two messages received");
    // The sender reads one outcome per envelope from it.
    let sent: Vec<SecureMessage> = [&welcome, &one, &undecryptable, &two]
        .iter()
        .map(|e| SecureMessage::decode(e).unwrap())
        .collect();
    let outcomes = parse_response(&r.response, &bob.me.device.public(), &sent).unwrap();
    assert_eq!(outcomes[0], Outcome::Final(MessageState::Delivered, None));
    assert!(matches!(
        outcomes[2],
        Outcome::Final(MessageState::Failed, Some(_))
    ));
    // A receipt from another device is not believed.
    assert!(parse_response(&r.response, &alice.me.device.public(), &sent).is_err());

    // A transient refusal stops the rest of the batch unprocessed, so nothing overtakes it.
    let unknown_session = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[3; 16],
        1,
        MessageType::Application,
        vec![1],
        now,
    )
    .unwrap();
    let frame = batch_of(&[&three, &unknown_session, &four]);
    let r = receive_batch(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &frame);
    assert_eq!(
        statuses(&r.response),
        vec![
            ReceiptStatus::Delivered,
            ReceiptStatus::Rejected(ErrorCode::UnknownSession),
            ReceiptStatus::Rejected(ErrorCode::SequenceError),
        ]
    );
    // Retried later, it goes through; a replay of the first batch is answered from the
    // seen-set without storing anything twice.
    let r = receive(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &four);
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    let frame = batch_of(&[&one, &two]);
    let r = receive_batch(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &frame);
    assert_eq!(
        statuses(&r.response),
        vec![ReceiptStatus::Rejected(ErrorCode::ReplayDetected); 2]
    );

    // Everything acknowledged is on disk.
    drop(bob_store);
    let bob_store = open(&bob_db);
    let texts: Vec<_> = bob_store
        .read()
        .messages(&session, 100)
        .unwrap()
        .iter()
        .rev()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    for t in ["one", "two", "three", "four"] {
        assert!(texts.iter().any(|x| x == t), "{t} missing from {texts:?}");
    }
}

#[test]
fn bad_batch_frames_are_refused_whole_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = (party(1, "alice"), party(2, "bob"));
    let mut bob_store = open(&tmp.path().join("bob.db"));
    bob_store
        .write(|tx| tx.add_contact(&alice.contact, 1))
        .unwrap();
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let good = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[2; 16],
        1,
        MessageType::Application,
        vec![1],
        now_ms(),
    )
    .unwrap();
    let garbage = b"\x00garbage".to_vec();
    for frame in [
        vec![BATCH_FRAME_MARKER],
        vec![BATCH_FRAME_MARKER, 0xff, 0xff],
        batch_of(&[&good, &garbage]),
    ] {
        let r = receive_batch(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &frame);
        assert_eq!(r.response[0], RESPONSE_ERROR);
        assert_eq!(
            conduct_of(&r.response),
            Some(rhizo_core::abuse::Conduct::InvalidMessage)
        );
        assert!(r.events.is_empty());
    }
    let seen_rows: i64 = bob_store
        .connection()
        .query_row("SELECT count(*) FROM seen", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen_rows, 0, "nothing was recorded");
}

#[test]
fn outbox_batches_respect_count_and_frame_limits() {
    let item = |id: i64, len: usize| OutboxItem {
        id,
        session_id: [0; 16],
        contact_uid: [0; 32],
        seq: 1,
        kind: "text".into(),
        envelope: vec![0; len],
        attempts: 0,
        state: MessageState::Queued,
    };
    let small: Vec<_> = (0..70).map(|i| item(i, 100)).collect();
    let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
    assert_eq!(sizes, vec![32, 32, 6]);
    let big: Vec<_> = (0..5).map(|i| item(i, 200 * 1024)).collect();
    let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1]);
    for b in batches(&big) {
        if b.len() > 1 {
            let frame = EnvelopeBatch {
                envelopes: b.iter().map(|i| i.envelope.clone().into()).collect(),
            }
            .encode();
            assert!(frame.is_ok(), "every batch fits a frame");
        }
    }
    assert!(batches(&[]).is_empty());
    // Delivered on one device beats failed on another, which beats a retry.
    let retry = Outcome::Retry(None, "later".into());
    let failed = Outcome::Final(MessageState::Failed, Some("no".into()));
    let delivered = Outcome::Final(MessageState::Delivered, None);
    assert_eq!(better_outcome(retry.clone(), failed.clone()), failed);
    assert_eq!(better_outcome(failed.clone(), delivered.clone()), delivered);
    assert_eq!(better_outcome(delivered.clone(), retry.clone()), delivered);
    // Held by one device's node beats failed on another, and loses to delivered.
    assert_eq!(better_outcome(failed, Outcome::Held), Outcome::Held);
    assert_eq!(better_outcome(Outcome::Held, delivered.clone()), delivered);
    assert_eq!(better_outcome(retry, Outcome::Held), Outcome::Held);
}

#[test]
fn bad_envelopes_get_clear_codes_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob, eve) = (party(1, "alice"), party(2, "bob"), party(3, "eve"));
    let mut bob_store = open(&tmp.path().join("bob.db"));
    bob_store
        .write(|tx| tx.add_contact(&alice.contact, 1))
        .unwrap();
    let now = now_ms();

    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    // Garbage: an error response, no panic.
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        b"\x00garbage",
    );
    assert_eq!(r.response[0], RESPONSE_ERROR);
    // From a stranger: held as a message request (regression: it used to be refused
    // UNKNOWN_SENDER, final, so a first contact was lost).
    let from_eve = seal(
        &eve.me,
        &TEST_RNG,
        &bob.contact,
        &[1; 16],
        1,
        MessageType::Application,
        vec![1],
        now,
    )
    .unwrap();
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &from_eve,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Held);
    assert!(matches!(
        r.events.as_slice(),
        [Event::MessageRequest { .. }]
    ));
    assert_eq!(bob_store.read().list_requests().unwrap().len(), 1);
    // A stranger's forged envelope is not held, and nothing is signed for it.
    let mut forged_eve = from_eve.clone();
    let last = forged_eve.len() - 1;
    forged_eve[last] ^= 1;
    let r = receive(
        &mut bob_store,
        &bob.me,
        &bob.device,
        &cache,
        &seen,
        &forged_eve,
    );
    assert_eq!(r.response[0], RESPONSE_ERROR);
    assert_eq!(bob_store.read().list_requests().unwrap()[0].envelopes, 1);
    // For an unknown conversation: UNKNOWN_SESSION (transient: the Welcome may be on its way),
    // and the seen-set keeps no trace, so a later retry is not taken for a replay.
    let early = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[2; 16],
        5,
        MessageType::Application,
        vec![1],
        now,
    )
    .unwrap();
    let r = receive(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &early);
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::UnknownSession)
    );
    let r = receive(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &early);
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::UnknownSession)
    );
    // Too old: SESSION_EXPIRED.
    let old = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[2; 16],
        6,
        MessageType::Application,
        vec![1],
        now - MAX_ENVELOPE_AGE_MS - 1,
    )
    .unwrap();
    let r = receive(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &old);
    assert_eq!(
        status_of(&r.response),
        ReceiptStatus::Rejected(ErrorCode::SessionExpired)
    );
    // A flipped bit in the signature: INVALID_SIGNATURE.
    let mut forged = early.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let r = receive(&mut bob_store, &bob.me, &bob.device, &cache, &seen, &forged);
    assert_eq!(r.response[0], RESPONSE_ERROR);
    let e = ErrorMessage::decode(&r.response[1..]).unwrap();
    assert_eq!(e.code, ErrorCode::InvalidSignature);
}

/// Alice (not a contact of bob) opens a conversation: her Welcome and a text.
fn first_contact(chat: &Chat, session: [u8; 16], texts: &[&str]) -> Vec<Vec<u8>> {
    first_contact_from(&chat.alice, &chat.alice_store, chat, session, texts)
}

/// As [`first_contact`], from `sender` (with its store) to bob with bob's KeyPackage.
fn first_contact_from(
    sender: &Party,
    sender_store: &Store,
    chat: &Chat,
    session: [u8; 16],
    texts: &[&str],
) -> Vec<Vec<u8>> {
    let now = now_ms();
    let mls = E2eStore::from_connection(sender_store.connection()).unwrap();
    let (mut conversation, welcome) = Conversation::create(
        &mls,
        &sender.device,
        std::slice::from_ref(&chat.key_package),
        1,
    )
    .unwrap();
    let mut out = vec![
        seal(
            &sender.me,
            &TEST_RNG,
            &chat.bob.contact,
            &session,
            1,
            MessageType::Welcome,
            welcome,
            now,
        )
        .unwrap(),
    ];
    for (i, text) in texts.iter().enumerate() {
        let content = ChatContent {
            text: (*text).into(),
            sent_at_ms: now as u64,
            ..Default::default()
        }
        .encode_to_vec();
        let ciphertext = conversation
            .encrypt(&mls, &sender.device, &content, 1)
            .unwrap();
        out.push(
            seal(
                &sender.me,
                &TEST_RNG,
                &chat.bob.contact,
                &session,
                2 + i as u64,
                MessageType::Application,
                ciphertext,
                now,
            )
            .unwrap(),
        );
    }
    out
}

#[test]
fn two_first_contacts_from_one_stale_key_package_both_deliver() {
    // Alice and carol fetched the same bundle of bob's and picked the same one-time
    // KeyPackage: carol's Welcome comes after alice's used it, and joins too (grace window).
    let mut chat = chat();
    let carol = party(3, "carol");
    let carol_store = open(&chat._tmp.path().join("carol.db"));
    chat.bob_store
        .write(|tx| tx.add_contact(&carol.contact, 1))
        .unwrap();
    let from_alice = first_contact(&chat, [8u8; 16], &["from alice"]);
    let from_carol = first_contact_from(&carol, &carol_store, &chat, [9u8; 16], &["from carol"]);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    for envelope in from_alice.iter().chain(&from_carol) {
        let r = receive(
            &mut chat.bob_store,
            &chat.bob.me,
            &chat.bob.device,
            &cache,
            &seen,
            envelope,
        );
        assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    }
    for who in [&chat.alice.contact.uid, &carol.contact.uid] {
        assert!(
            chat.bob_store
                .read()
                .open_conversation_with(who)
                .unwrap()
                .is_some()
        );
    }
}

fn bob_without_alice() -> Chat {
    let chat = chat();
    chat.bob_store
        .connection()
        .execute("DELETE FROM contacts", [])
        .unwrap();
    chat
}

#[test]
fn a_first_contact_is_held_as_a_request_and_applied_in_order_on_accept() {
    // Regression (issue 11 §1): bob has not added alice yet. Her Welcome used to be
    // refused UNKNOWN_SENDER (final): the first message failed, and the next ones stayed
    // queued for good against a session bob did not have.
    let mut chat = bob_without_alice();
    let session = [5u8; 16];
    let envelopes = first_contact(&chat, session, &["hi", "it's alice"]);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    // The Welcome and the first text as one batch, the second bare.
    let frame = batch_of(&[&envelopes[0], &envelopes[1]]);
    let r = receive_batch(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &frame,
    );
    assert_eq!(statuses(&r.response), vec![ReceiptStatus::Held; 2]);
    assert_eq!(
        r.events
            .iter()
            .filter(|e| matches!(e, Event::MessageRequest { .. }))
            .count(),
        1,
        "one request event per new sender"
    );
    let r = receive(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &envelopes[2],
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Held);
    assert!(r.events.is_empty());
    // A retransmission is held once.
    let r = receive(
        &mut chat.bob_store,
        &chat.bob.me,
        &chat.bob.device,
        &cache,
        &seen,
        &envelopes[2],
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Held);
    let requests = chat.bob_store.read().list_requests().unwrap();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].uid, *chat.alice.me.uid.as_bytes());
    assert_eq!(requests[0].envelopes, 3);
    // The sender reads `Held` as sent-and-held, not failed.
    let sent = SecureMessage::decode(&envelopes[2]).unwrap();
    assert_eq!(
        parse_response(&r.response, &chat.bob.me.device.public(), &[sent]).unwrap(),
        vec![Outcome::Held]
    );
    // Nothing shows before the user accepts.
    assert!(
        chat.bob_store
            .read()
            .messages(&session, 100)
            .unwrap()
            .is_empty()
    );

    // Accept: alice becomes a contact; the held envelopes go through the normal path in
    // order (what apply_requests does through apply_fetched).
    chat.bob_store
        .write(|tx| tx.add_contact(&chat.alice.contact, 2))
        .unwrap();
    let held = chat
        .bob_store
        .read()
        .held_envelopes(chat.alice.me.uid.as_bytes())
        .unwrap();
    assert_eq!(held.len(), 3);
    for envelope in &held {
        let r = receive(
            &mut chat.bob_store,
            &chat.bob.me,
            &chat.bob.device,
            &cache,
            &seen,
            envelope,
        );
        assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    }
    chat.bob_store
        .write(|tx| tx.take_request(chat.alice.me.uid.as_bytes()))
        .unwrap();
    assert!(chat.bob_store.read().list_requests().unwrap().is_empty());
    let texts: Vec<_> = chat
        .bob_store
        .read()
        .messages(&session, 100)
        .unwrap()
        .iter()
        .filter_map(|m| m.body.clone())
        .collect();
    assert_eq!(texts, vec!["hi".to_string(), "it's alice".to_string()]);
}

#[test]
fn a_declined_request_closes_its_conversation_and_a_blocked_sender_is_refused() {
    let mut chat = bob_without_alice();
    let session = [6u8; 16];
    let envelopes = first_contact(&chat, session, &["hi", "again"]);
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let bob_receives = |chat: &mut Chat, envelope: &[u8]| {
        let r = receive(
            &mut chat.bob_store,
            &chat.bob.me,
            &chat.bob.device,
            &cache,
            &seen,
            envelope,
        );
        status_of(&r.response)
    };
    assert_eq!(bob_receives(&mut chat, &envelopes[0]), ReceiptStatus::Held);
    assert_eq!(bob_receives(&mut chat, &envelopes[1]), ReceiptStatus::Held);
    let uid = *chat.alice.me.uid.as_bytes();
    assert_eq!(
        chat.bob_store
            .write(|tx| tx.decline_request(&uid, now_ms()))
            .unwrap(),
        Some(2)
    );
    // A later envelope in the declined conversation: SESSION_CLOSED, final, so the sender
    // closes it and starts a new one instead of sending into it forever.
    let status = bob_receives(&mut chat, &envelopes[2]);
    assert_eq!(status, ReceiptStatus::Rejected(ErrorCode::SessionClosed));
    assert!(matches!(outcome_of(status), Outcome::Closed(_)));
    assert!(!ErrorCode::SessionClosed.is_transient());
    // Blocked: refused for good.
    chat.bob_store
        .write(|tx| tx.block_sender(&uid, &requests::REQUEST_LIMITS, now_ms()))
        .unwrap();
    let other = first_contact(&chat, [8u8; 16], &[]);
    assert_eq!(
        bob_receives(&mut chat, &other[0]),
        ReceiptStatus::Rejected(ErrorCode::UnknownSender)
    );
    assert!(chat.bob_store.read().list_requests().unwrap().is_empty());
}

/// Alice's side of a conversation with bob as her store holds it: the row, the Welcome
/// and a text still queued, and a self-update commit.
fn alice_conversation(chat: &mut Chat, session: [u8; 16]) -> (i64, i64, Vec<u8>) {
    let now = now_ms();
    let (welcome, commit) = {
        let mls = E2eStore::from_connection(chat.alice_store.connection()).unwrap();
        let (mut conversation, welcome) = Conversation::create(
            &mls,
            &chat.alice.device,
            std::slice::from_ref(&chat.key_package),
            1,
        )
        .unwrap();
        let commit = conversation
            .self_update(&mls, &chat.alice.device, 1)
            .unwrap();
        chat.alice_store
            .write(|tx| {
                tx.insert_conversation(&ConversationRow {
                    session_id: session,
                    group_id: conversation.id().to_vec(),
                    contact_uid: chat.bob.contact.uid,
                    created_at: now,
                })
            })
            .unwrap();
        (welcome, commit)
    };
    let mut insert = |seq: u64, kind: &str, msg_type: MessageType, payload: Vec<u8>| {
        let envelope = seal(
            &chat.alice.me,
            &TEST_RNG,
            &chat.bob.contact,
            &session,
            seq,
            msg_type,
            payload,
            now,
        )
        .unwrap();
        let message = NewMessage {
            session_id: session,
            sender_device: *chat.alice.me.device.public().as_bytes(),
            seq,
            kind,
            body: None,
            sent_at: now,
        };
        let id = chat
            .alice_store
            .write(|tx| tx.insert_outgoing(&message, &envelope, now))
            .unwrap();
        (id, envelope)
    };
    let (welcome_id, _) = insert(1, "welcome", MessageType::Welcome, welcome);
    let (commit_id, commit_envelope) = insert(2, "commit", MessageType::Commit, commit);
    (welcome_id, commit_id, commit_envelope)
}

fn pending_commit(chat: &Chat, session: &[u8; 16]) -> bool {
    let row = chat
        .alice_store
        .read()
        .conversation(session)
        .unwrap()
        .unwrap();
    let mls = E2eStore::from_connection(chat.alice_store.connection()).unwrap();
    Conversation::load(&mls, &row.group_id)
        .unwrap()
        .unwrap()
        .has_pending_commit()
}

#[test]
fn a_welcome_refused_for_good_closes_the_conversation_and_the_next_send_starts_anew() {
    let mut chat = chat();
    let session = [4u8; 16];
    let (welcome_id, commit_id, _) = alice_conversation(&mut chat, session);
    let cache = Arc::new(ConversationCache::new(4));
    let items = chat
        .alice_store
        .read()
        .outbox_due(i64::MAX - 1, 10)
        .unwrap();
    assert_eq!(items.len(), 2);
    let outcomes = vec![
        outcome_of(ReceiptStatus::Rejected(ErrorCode::DecryptionFailed)),
        Outcome::Retry(Some(ErrorCode::UnknownSession), "later".into()),
    ];
    let mut changed = Vec::new();
    let closed = chat
        .alice_store
        .write(|tx| -> Result<u64, EngineError> {
            let mut closed = 0;
            for (item, outcome) in items.iter().zip(outcomes) {
                closed += SentUpdate::new(item, outcome)
                    .apply(tx, &cache, &TEST_RNG, now_ms(), &mut changed)?
                    .closed;
            }
            Ok(closed)
        })
        .unwrap();
    assert_eq!(closed, 1);
    // Nothing of it is retried; the next send finds no open conversation and starts one.
    assert!(
        chat.alice_store
            .read()
            .outbox_due(i64::MAX - 1, 10)
            .unwrap()
            .is_empty()
    );
    assert!(changed.contains(&(welcome_id, MessageState::Failed)));
    assert!(changed.contains(&(commit_id, MessageState::Failed)));
    assert_eq!(
        chat.alice_store
            .read()
            .open_conversation_with(&chat.bob.contact.uid)
            .unwrap(),
        None
    );
    // The history keeps it.
    assert_eq!(
        chat.alice_store
            .read()
            .conversations_with(&chat.bob.contact.uid)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn unknown_session_after_the_welcome_was_delivered_closes_instead_of_retrying_forever() {
    let mut chat = chat();
    let session = [3u8; 16];
    let (welcome_id, _, _) = alice_conversation(&mut chat, session);
    chat.alice_store
        .write(|tx| tx.advance_message_state(welcome_id, MessageState::Delivered, now_ms(), None))
        .unwrap();
    let cache = Arc::new(ConversationCache::new(4));
    let items = chat
        .alice_store
        .read()
        .outbox_due(i64::MAX - 1, 10)
        .unwrap();
    assert_eq!(items.len(), 1, "the commit");
    let mut changed = Vec::new();
    let closed = chat
        .alice_store
        .write(|tx| {
            SentUpdate::new(
                &items[0],
                outcome_of(ReceiptStatus::Rejected(ErrorCode::UnknownSession)),
            )
            .apply(tx, &cache, &TEST_RNG, now_ms(), &mut changed)
            .map(|c| c.closed)
        })
        .unwrap();
    assert_eq!(closed, 1);
    assert!(
        chat.alice_store
            .read()
            .outbox_due(i64::MAX - 1, 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_commit_is_merged_on_a_receipt_that_comes_after_its_row_was_marked_delivered() {
    // Regression (issue 11 §2): a row marked delivered on another path (formerly a mailbox
    // replica's REPLAY_DETECTED) never had its commit merged, so alice stayed an epoch
    // behind and could never rekey again.
    let mut chat = chat();
    let session = [2u8; 16];
    let (welcome_id, commit_row, commit_envelope) = alice_conversation(&mut chat, session);
    for id in [welcome_id, commit_row] {
        chat.alice_store
            .write(|tx| tx.advance_message_state(id, MessageState::Delivered, now_ms(), None))
            .unwrap();
    }
    assert!(pending_commit(&chat, &session));
    // Bob's signed delivery receipt for the commit arrives (through a mailbox).
    let commit = SecureMessage::decode(&commit_envelope).unwrap();
    let mut receipt = DeliveryReceipt {
        recipient_device: chat.bob.me.device.public(),
        timestamp: now_ms() as u64,
        entries: vec![ReceiptEntry::for_envelope(
            &commit,
            ReceiptStatus::Delivered,
        )],
        signature: [0; 64],
    };
    receipt.sign(&chat.bob.me.device).unwrap();
    let envelope = seal(
        &chat.bob.me,
        &TEST_RNG,
        &chat.alice.contact,
        &session,
        1,
        MessageType::DeliveryReceipt,
        receipt.encode(),
        now_ms(),
    )
    .unwrap();
    let seen = Arc::new(Mutex::new(SeenSet::new(InTransaction)));
    let cache = Arc::new(ConversationCache::new(4));
    let r = receive(
        &mut chat.alice_store,
        &chat.alice.me,
        &chat.alice.device,
        &cache,
        &seen,
        &envelope,
    );
    assert_eq!(status_of(&r.response), ReceiptStatus::Delivered);
    assert!(!pending_commit(&chat, &session), "merged");
}

#[test]
fn the_sweep_settles_pending_commits_delivered_refused_or_overdue() {
    let cache = Arc::new(ConversationCache::new(4));
    // Delivered without a merge: merged.
    let mut chat = chat();
    let (_, row, _) = alice_conversation(&mut chat, [1u8; 16]);
    chat.alice_store
        .write(|tx| tx.advance_message_state(row, MessageState::Delivered, now_ms(), None))
        .unwrap();
    let sweep = chat
        .alice_store
        .write(|tx| commits::settle_pending_commits(tx, &cache, now_ms()))
        .unwrap();
    assert_eq!(sweep.merged, 1);
    assert!(!pending_commit(&chat, &[1u8; 16]));
    // Refused for good: dropped, so a new self-update can be made.
    let mut chat = self::chat();
    let cache = Arc::new(ConversationCache::new(4));
    let (_, row, _) = alice_conversation(&mut chat, [1u8; 16]);
    chat.alice_store
        .write(|tx| tx.advance_message_state(row, MessageState::Failed, now_ms(), Some("no")))
        .unwrap();
    let sweep = chat
        .alice_store
        .write(|tx| commits::settle_pending_commits(tx, &cache, now_ms()))
        .unwrap();
    assert_eq!(sweep.dropped, 1);
    assert!(!pending_commit(&chat, &[1u8; 16]));
    // Still waiting past the bound: made due now (resent), left pending.
    let mut chat = self::chat();
    let cache = Arc::new(ConversationCache::new(4));
    let (_, row, _) = alice_conversation(&mut chat, [1u8; 16]);
    chat.alice_store
        .write(|tx| tx.record_attempt_failed(row, i64::MAX - 10, "later"))
        .unwrap();
    let later = now_ms() + commits::PENDING_COMMIT_RESEND_MS + 1;
    let sweep = chat
        .alice_store
        .write(|tx| commits::settle_pending_commits(tx, &cache, later))
        .unwrap();
    assert_eq!(sweep.resent, 1);
    assert!(pending_commit(&chat, &[1u8; 16]));
    assert!(
        chat.alice_store
            .read()
            .outbox_due(later, 10)
            .unwrap()
            .iter()
            .any(|i| i.id == row)
    );
}

#[test]
fn production_engines_draw_unpredictable_ids_and_seeded_ones_replay() {
    let policy = rhizo_e2e::RekeyPolicy::default();
    let os = [1, 2].map(|_| Engine::new(party(1, "alice").me, policy).unwrap());
    assert_ne!(os[0].random::<16>(), os[1].random::<16>());
    let seeded = [1, 2].map(|_| Engine::with_seed(party(1, "alice").me, policy, 9).unwrap());
    assert_eq!(seeded[0].random::<32>(), seeded[1].random::<32>());
    let delays = seeded
        .each_ref()
        .map(|e| crate::outbox::retry_delay(&e.rng, 3));
    assert_eq!(delays[0], delays[1]);
}

#[test]
fn signatures_are_checked_before_the_write_job_and_a_refused_frame_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (alice, bob) = (party(1, "alice"), party(2, "bob"));
    let mut bob_store = open(&tmp.path().join("bob.db"));
    bob_store
        .write(|tx| tx.add_contact(&alice.contact, 1))
        .unwrap();
    let engine = Engine::new(party(2, "bob").me, rhizo_e2e::RekeyPolicy::default()).unwrap();
    let now = now_ms();
    let good = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[2; 16],
        1,
        MessageType::Application,
        vec![1],
        now,
    )
    .unwrap();
    let second = seal(
        &alice.me,
        &TEST_RNG,
        &bob.contact,
        &[2; 16],
        2,
        MessageType::Application,
        vec![2],
        now,
    )
    .unwrap();
    let mut forged = second.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    // The check needs no database: a forged envelope, or a batch holding one, is refused
    // there, and the write job of a refused frame answers an unsigned error and stores nothing.
    for frame in [forged.clone(), batch_of(&[&good, &forged])] {
        let checked = engine.check_frame(&frame);
        assert_eq!(checked.envelopes(), 0);
        let inbound = bob_store
            .write(|tx| Ok::<_, StoreError>(engine.handle_checked(tx, checked, now)))
            .unwrap();
        assert_eq!(inbound.response[0], RESPONSE_ERROR, "no signed receipt");
        let e = ErrorMessage::decode(&inbound.response[1..]).unwrap();
        assert_eq!(e.code, ErrorCode::InvalidSignature);
        assert!(inbound.events.is_empty());
    }
    let seen_rows: i64 = bob_store
        .connection()
        .query_row("SELECT count(*) FROM seen", [], |r| r.get(0))
        .unwrap();
    assert_eq!(seen_rows, 0, "nothing was recorded");
    // A verified envelope goes on to the checks that need the database (here: no such
    // conversation), answered in a signed receipt, as one frame or as a batch.
    for (frame, envelopes) in [(good.clone(), 1), (batch_of(&[&good, &second]), 2)] {
        let checked = engine.check_frame(&frame);
        assert_eq!(checked.envelopes(), envelopes);
        let inbound = bob_store
            .write(|tx| Ok::<_, StoreError>(engine.handle_checked(tx, checked, now)))
            .unwrap();
        let statuses = statuses(&inbound.response);
        assert_eq!(statuses.len(), envelopes);
        assert_eq!(
            statuses[0],
            ReceiptStatus::Rejected(ErrorCode::UnknownSession)
        );
    }
}
