//! Issue 15: own-device adds to 1:1 conversations that cannot go out at once. Alice has a1 and
//! b1 a 1:1 conversation; a2 is linked. A conversation whose own commit is pending at link time
//! gets a2 once that commit resolved (also across a restart), and an add bob refuses for good is
//! withdrawn from a2 and sent again later, at most `MAX_DEVICE_ADD_ATTEMPTS` times.

use rhizo_core::{DevicePublicKey, Uid};
use rhizo_e2e::{E2eStore, RekeyPolicy};
use rhizo_store::messaging::ContactDevice;

use super::join_tests::{pump_direct, received};
use super::pending::{DEVICE_ADD_RETRY_MS, MAX_DEVICE_ADD_ATTEMPTS, pending_adds};
use crate::groups::tests::{Node, T0, node, settle};

/// a1 (node 0) and b1 (node 1) with a 1:1 conversation (a1 sent "hello bob"), a2 (node 2)
/// linked and in the sync group (not yet in the 1:1 conversation).
fn talking_then_linked(dir: &std::path::Path) -> (Vec<Node>, i64) {
    let mut a1 = node(dir, 1, RekeyPolicy::default());
    let mut b1 = node(dir, 2, RekeyPolicy::default());
    let (alice, bob) = (a1.contact("alice"), b1.contact("bob"));
    a1.store.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    b1.store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
    let packages = vec![b1.key_package()];
    a1.store
        .write(|tx| a1.engine.send_first(tx, &bob, "hello bob", &packages, T0))
        .unwrap();
    let mut nodes = vec![a1, b1];
    assert_eq!(received(&pump_direct(&mut nodes, 0, T0), 1), ["hello bob"]);
    let (a2, _) = crate::sync::tests::link_a2(dir, &mut nodes[0]);
    nodes.push(a2);
    let (now, _) = settle(&mut nodes, T0, 20);
    (nodes, now)
}

/// a2's reusable (last-resort) KeyPackage, as the link driver finds it in the DHT.
fn last_resort_package(node: &Node) -> Vec<u8> {
    let mls = E2eStore::from_connection(node.store.connection()).unwrap();
    rhizo_e2e::create_key_packages(&mls, node.engine.mls_device(), 1, true)
        .unwrap()
        .remove(0)
}

/// Bob's copy of alice's device list: a1, and a2 if `with_a2`.
fn bob_learns_alice(nodes: &mut [Node], with_a2: bool, now: i64) {
    let mut devices = nodes[0].contact("alice").devices;
    if with_a2 {
        devices.push(ContactDevice {
            device_pk: nodes[2].device(),
            peer_id: String::new(),
            addrs: vec![],
            certificate: None,
        });
    }
    let alice = Uid::from_bytes(&nodes[0].uid());
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.learn_listed_devices(tx, &alice, devices, now))
        .unwrap();
}

/// a1 adds a2 to its 1:1 conversations; how many adds went out now.
fn add_a2(nodes: &mut [Node], now: i64) -> usize {
    let package = last_resort_package(&nodes[2]);
    let key = DevicePublicKey::from_bytes(&nodes[2].device()).unwrap();
    let a1 = &mut nodes[0];
    a1.store
        .write(|tx| {
            a1.engine
                .add_own_device_to_conversations(tx, &key, &package, now)
        })
        .unwrap()
}

/// a1 makes a self-update in its conversation with bob and queues it (pending until bob's
/// receipt); nothing is sent yet.
fn pending_self_update(nodes: &mut [Node], now: i64) {
    let bob = nodes[1].contact("bob");
    let a1 = &mut nodes[0];
    let engine = &a1.engine;
    a1.store
        .write(|tx| {
            engine.in_job(tx, |tx| {
                let row = tx
                    .open_conversation_with(&bob.uid)?
                    .expect("a conversation");
                let mls = tx.mls()?;
                let mut conversation = engine
                    .conversations
                    .load(&mls, &row.group_id)?
                    .expect("its state");
                let commit =
                    conversation.self_update(&mls, engine.mls_device(), crate::secs(now))?;
                engine.conversations.stage(conversation);
                let out = crate::conversations::Outgoing::commit(commit);
                crate::conversations::queue_sealed_tx(tx, engine, &bob, &row.session_id, out, now)?;
                Ok::<_, crate::EngineError>(())
            })
        })
        .unwrap();
}

/// a2 and bob talk both ways in the 1:1 conversation: each text arrives.
fn a2_and_bob_talk(nodes: &mut [Node], now: i64) {
    let a2 = &mut nodes[2];
    a2.store
        .write(|tx| a2.engine.queue_text(tx, "bob", "from a2", now))
        .unwrap();
    assert_eq!(received(&pump_direct(nodes, 2, now), 1), ["from a2"]);
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "to both", now))
        .unwrap();
    let events = pump_direct(nodes, 1, now);
    assert_eq!(received(&events, 0), ["to both"]);
    assert_eq!(received(&events, 2), ["to both"]);
}

#[test]
fn a_conversation_with_a_pending_commit_at_link_time_gets_the_device_once_it_resolved() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, now) = talking_then_linked(tmp.path());
    bob_learns_alice(&mut nodes, true, now);
    pending_self_update(&mut nodes, now);
    // The link: the conversation's own commit is pending, so no add yet, only the mark.
    assert_eq!(add_a2(&mut nodes, now), 0);
    let adds = pending_adds(&nodes[0].store.read()).unwrap();
    assert_eq!(adds.len(), 1);
    assert_eq!(adds[0].commit, None);

    // a1 restarts (a new engine on the same database): the mark survived.
    drop(nodes.remove(0));
    nodes.insert(0, node(tmp.path(), 1, RekeyPolicy::default()));
    assert_eq!(pending_adds(&nodes[0].store.read()).unwrap().len(), 1);

    // The self-update goes to bob; his receipt merges it, and the add goes out at once.
    pump_direct(&mut nodes, 0, now);
    let adds = pending_adds(&nodes[0].store.read()).unwrap();
    assert!(adds.len() == 1 && adds[0].commit.is_some(), "{adds:?}");
    // The add commit to bob, the Welcome to a2 over the sync group.
    pump_direct(&mut nodes, 0, now);
    let (now, _) = settle(&mut nodes, now, 20);
    assert!(pending_adds(&nodes[0].store.read()).unwrap().is_empty());
    a2_and_bob_talk(&mut nodes, now);
}

#[test]
fn an_add_the_contact_refuses_for_good_is_withdrawn_and_sent_again_later() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, now) = talking_then_linked(tmp.path());
    assert_eq!(add_a2(&mut nodes, now), 1);
    let session = nodes[0]
        .store
        .read()
        .open_conversation_with(&nodes[1].uid())
        .unwrap()
        .unwrap()
        .session_id;
    let (now, _) = settle(&mut nodes, now, 20);
    assert_eq!(
        nodes[2].store.read().conversation_closed(&session).unwrap(),
        Some(false),
        "a2 joined from the Welcome"
    );
    // Bob just fetched a stale copy of alice's list (without a2): he refuses the add for good.
    bob_learns_alice(&mut nodes, false, now);
    pump_direct(&mut nodes, 0, now);
    // a1 dropped the refused commit and withdrew the conversation from a2: a2 closed its copy.
    let adds = pending_adds(&nodes[0].store.read()).unwrap();
    assert!(
        adds.len() == 1 && adds[0].commit.is_none() && adds[0].attempts == 1,
        "{adds:?}"
    );
    let (now, _) = settle(&mut nodes, now, 20);
    assert_eq!(
        nodes[2].store.read().conversation_closed(&session).unwrap(),
        Some(true)
    );
    // What a2 sends bob now does not go into the dead copy: a2 has no open conversation with
    // him, so its driver would start one of its own (from bob's KeyPackages).
    let a2 = &mut nodes[2];
    let queued = a2
        .store
        .write(|tx| a2.engine.queue_text(tx, "bob", "new?", now))
        .unwrap();
    assert!(matches!(queued, crate::send::Queued::FirstMessage(_)));
    // a1 and bob still talk (a1 is in the epoch bob has).
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "still here", now))
        .unwrap();
    let events = pump_direct(&mut nodes, 1, now);
    assert_eq!(received(&events, 0), ["still here"]);

    // Bob's node has alice's newest list now. Not before the retry delay, then a fresh add.
    bob_learns_alice(&mut nodes, true, now);
    let a1 = &mut nodes[0];
    a1.store.write(|tx| a1.engine.sweep(tx, now + 1)).unwrap();
    assert!(
        pending_adds(&nodes[0].store.read()).unwrap()[0]
            .commit
            .is_none()
    );
    let later = now + DEVICE_ADD_RETRY_MS;
    let a1 = &mut nodes[0];
    a1.store.write(|tx| a1.engine.sweep(tx, later)).unwrap();
    let adds = pending_adds(&nodes[0].store.read()).unwrap();
    assert!(
        adds.len() == 1 && adds[0].attempts == 2 && adds[0].commit.is_some(),
        "{adds:?}"
    );
    pump_direct(&mut nodes, 0, later);
    let (now, _) = settle(&mut nodes, later, 20);
    assert!(pending_adds(&nodes[0].store.read()).unwrap().is_empty());
    // a2 joined the same conversation anew and talks with bob.
    assert_eq!(
        nodes[2].store.read().conversation_closed(&session).unwrap(),
        Some(false)
    );
    a2_and_bob_talk(&mut nodes, now);
}

#[test]
fn an_add_refused_every_time_is_given_up_after_the_last_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, mut now) = talking_then_linked(tmp.path());
    assert_eq!(add_a2(&mut nodes, now), 1);
    for attempt in 1..=MAX_DEVICE_ADD_ATTEMPTS {
        let adds = pending_adds(&nodes[0].store.read()).unwrap();
        assert!(adds.len() == 1 && adds[0].attempts == attempt, "{adds:?}");
        bob_learns_alice(&mut nodes, false, now);
        pump_direct(&mut nodes, 0, now);
        now = settle(&mut nodes, now, 20).0 + DEVICE_ADD_RETRY_MS;
        let a1 = &mut nodes[0];
        a1.store.write(|tx| a1.engine.sweep(tx, now)).unwrap();
    }
    assert!(pending_adds(&nodes[0].store.read()).unwrap().is_empty());
    // a1 and bob still talk.
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "still here", now))
        .unwrap();
    assert_eq!(
        received(&pump_direct(&mut nodes, 1, now), 0),
        ["still here"]
    );
}
