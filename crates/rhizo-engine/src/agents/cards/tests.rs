use rhizo_core::{DeviceKey, RootKey, records::RecordError};
use rhizo_store::{Store, StoreError, messaging::ContactDevice};

use super::*;

const NOW: i64 = 1_700_000_000_000;
const DAY_MS: i64 = 24 * 3600 * 1000;

fn me(seed: u8) -> Me {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed + 100; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    Me::primary(root, device, certificate, None)
}

fn engine(seed: u8) -> Engine {
    Engine::new(me(seed), rhizo_e2e::RekeyPolicy::default()).unwrap()
}

fn contact_of(me: &Me) -> Contact {
    Contact {
        uid: *me.uid.as_bytes(),
        root_pk: *me.root_public.as_bytes(),
        name: "bob".into(),
        verified: false,
        added_at: 0,
        devices: vec![ContactDevice {
            device_pk: *me.device.public().as_bytes(),
            peer_id: String::new(),
            addrs: vec![],
            certificate: None,
        }],
    }
}

fn card(name: &str) -> AgentCard {
    AgentCard {
        name: name.into(),
        description: String::new(),
        version: String::new(),
        skills: vec![rhizo_core::agent::AgentSkill {
            id: "echo.v1".into(),
            name: "Echo".into(),
            description: String::new(),
            tags: vec![],
            examples: vec![],
            input_modes: vec![],
            output_modes: vec![],
        }],
        default_input_modes: vec!["text/plain".into()],
        default_output_modes: vec!["text/plain".into()],
        limits: rhizo_core::agent::AgentLimits::default(),
    }
}

#[test]
fn our_card_versions_grow_also_across_a_removal() {
    let alice = engine(1);
    let mut store = Store::open_in_memory().unwrap();
    assert!(alice.agent_card(&store.read()).unwrap().is_none());
    assert!(!store.write(|tx| alice.clear_agent_card(tx, NOW)).unwrap());
    let v1 = store
        .write(|tx| alice.set_agent_card(tx, card("Echo"), NOW))
        .unwrap();
    assert_eq!(v1.record.version(), 1);
    assert_eq!(v1.record.devices().len(), 1);
    assert_eq!(v1.record.devices()[0].certificate, alice.me().certificate);
    assert_eq!(
        v1.record.devices()[0].verify_for(&alice.me().root_public),
        Ok(())
    );
    let v2 = store
        .write(|tx| alice.set_agent_card(tx, card("Echo 2"), NOW))
        .unwrap();
    assert_eq!(v2.record.version(), 2);
    let shown = alice.agent_card(&store.read()).unwrap().unwrap();
    assert_eq!(shown.record.card().name, "Echo 2");
    assert_eq!(shown.bytes, v2.bytes);
    assert!(store.write(|tx| alice.clear_agent_card(tx, NOW)).unwrap());
    assert!(alice.agent_card(&store.read()).unwrap().is_none());
    assert!(
        store
            .write(|tx| alice.agent_card_records(tx, NOW))
            .unwrap()
            .is_none()
    );
    let v3 = store
        .write(|tx| alice.set_agent_card(tx, card("Echo"), NOW))
        .unwrap();
    assert_eq!(
        v3.record.version(),
        3,
        "a removed card's version is not reused"
    );
    // A card the model refuses is a record error naming the rule, and changes nothing.
    let mut bad = card("Echo");
    bad.skills.clear();
    let err = store
        .write(|tx| alice.set_agent_card(tx, bad, NOW))
        .unwrap_err();
    assert!(
        matches!(err, EngineError::Record(RecordError::AgentCard(_))),
        "{err}"
    );
    assert_eq!(store.read().own_agent_card().unwrap().unwrap().version, 3);
}

#[test]
fn the_card_is_published_under_both_keys_and_re_signed_before_it_expires() {
    let alice = engine(1);
    let mut store = Store::open_in_memory().unwrap();
    store
        .write(|tx| alice.set_agent_card(tx, card("Echo"), NOW))
        .unwrap();
    let (own, records) = store
        .write(|tx| alice.agent_card_records(tx, NOW))
        .unwrap()
        .unwrap();
    assert_eq!(own.record.version(), 1);
    let me = alice.me();
    let keys: Vec<Vec<u8>> = records.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(
        keys,
        vec![
            agent_card_key(&me.uid).to_vec(),
            agent_card_device_key(&me.device.public()).to_vec()
        ]
    );
    for (key, value) in &records {
        assert!(validate_record(key, value, crate::secs(NOW)).is_ok());
    }
    // Half a day later: the same record. A day and a half later (less than 2 days left):
    // re-signed with the next version.
    let later = store
        .write(|tx| alice.agent_card_records(tx, NOW + DAY_MS / 2))
        .unwrap()
        .unwrap();
    assert_eq!(later.0.record.version(), 1);
    let resigned = store
        .write(|tx| alice.agent_card_records(tx, NOW + 3 * DAY_MS / 2))
        .unwrap()
        .unwrap();
    assert_eq!(resigned.0.record.version(), 2);
    assert_eq!(resigned.0.record.card(), own.record.card());
    // Offline for a week: the expired card still decodes and is re-signed.
    let week = store
        .write(|tx| alice.agent_card_records(tx, NOW + 7 * DAY_MS))
        .unwrap()
        .unwrap();
    assert_eq!(week.0.record.version(), 3);
}

#[test]
fn a_contacts_card_is_cached_only_when_it_is_theirs() {
    let (alice, bob) = (engine(1), engine(2));
    let mut bob_store = Store::open_in_memory().unwrap();
    let bob_card = bob_store
        .write(|tx| bob.set_agent_card(tx, card("Bob"), NOW))
        .unwrap();
    let mallory = engine(3);
    let mallory_card = Store::open_in_memory()
        .unwrap()
        .write(|tx| mallory.set_agent_card(tx, card("Bob"), NOW))
        .unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let bob_contact = contact_of(bob.me());
    let answer = |store: &mut Store, bytes: &[u8]| {
        let ctx = AgentCtx {
            me: alice.me(),
            contact: &bob_contact,
            health: &crate::agents::health::AgentHealth::default(),
        };
        let answer = CapabilityAnswer {
            card: bytes.to_vec().into(),
        };
        store
            .write(|tx| {
                on_capability_answer(tx, &ctx, &answer, NOW)
                    .map_err(|_| StoreError::InvalidInput("rejected".into()))
            })
            .unwrap()
    };
    // Mallory's card sent as bob's, and garbage: ignored, nothing cached, no event.
    assert!(answer(&mut store, &mallory_card.bytes).is_empty());
    assert!(answer(&mut store, b"not a card").is_empty());
    assert_eq!(store.read().agent_card(&bob_contact.uid).unwrap(), None);
    // Bob's own card: cached with its version, and the driver told (`agents ask` waits).
    let uid = bob.me().uid.to_string();
    assert_eq!(
        answer(&mut store, &bob_card.bytes),
        vec![Event::AgentCard {
            uid: uid.clone(),
            agent: true
        }]
    );
    let row = store.read().agent_card(&bob_contact.uid).unwrap().unwrap();
    assert_eq!((row.version, &row.record), (1, &bob_card.bytes));
    // An empty answer: bob is no longer an agent.
    assert_eq!(
        answer(&mut store, &[]),
        vec![Event::AgentCard { uid, agent: false }]
    );
    assert_eq!(store.read().agent_card(&bob_contact.uid).unwrap(), None);
}

#[test]
fn a_capability_query_is_answered_with_our_card_through_the_agent_outbox() {
    let bob = engine(2);
    let alice = engine(1);
    let mut store = Store::open_in_memory().unwrap();
    let alice_contact = contact_of(alice.me());
    let ctx = AgentCtx {
        me: bob.me(),
        contact: &alice_contact,
        health: &crate::agents::health::AgentHealth::default(),
    };
    let ask = |store: &mut Store| {
        store
            .write(|tx| {
                on_capability_query(tx, &ctx, &CapabilityQuery {}, NOW)
                    .map_err(|_| StoreError::InvalidInput("rejected".into()))
            })
            .unwrap();
        let rows = store.read().agent_outbox(10).unwrap();
        store
            .write(|tx| tx.remove_agent_outbox(rows[0].id))
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].peer_uid, alice_contact.uid);
        match AgentMessage::decode(rows[0].message.as_slice())
            .unwrap()
            .kind
        {
            Some(Kind::CapabilityAnswer(a)) => a.card.to_vec(),
            other => panic!("not an answer: {other:?}"),
        }
    };
    // Without a card: an empty answer.
    assert!(ask(&mut store).is_empty());
    let own = store
        .write(|tx| bob.set_agent_card(tx, card("Bob"), NOW))
        .unwrap();
    assert_eq!(ask(&mut store), own.bytes);
    // The card is the worker policy's too.
    let policy = bob.agent_policy(&store.read()).unwrap();
    assert_eq!(policy.card.as_ref(), Some(own.record.card()));
    store.write(|tx| bob.clear_agent_card(tx, NOW)).unwrap();
    assert_eq!(bob.agent_policy(&store.read()).unwrap().card, None);
    // No conversation with alice: a query cannot be queued.
    store.write(|tx| tx.add_contact(&alice_contact, 1)).unwrap();
    assert!(
        !store
            .write(|tx| bob.query_capabilities(tx, &alice_contact, NOW))
            .unwrap()
    );
}
