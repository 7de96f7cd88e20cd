//! Issue 15: a forged device (certified by another root, or named only by an older version of
//! the device list) is refused when it comes through a mailbox, and an older device list found
//! in the DHT is not used. The refusals are the contact's engine's: the membership rule of
//! `conversations::check_membership` for what a fetch hands over (the same rule as for a direct
//! delivery), and [`crate::Engine::note_device_list_version`] for the lists the driver finds.

use rhizo_core::{Uid, envelope::ReceiptStatus, mailbox::FetchedEntry};
use rhizo_e2e::RekeyPolicy;

use super::join_tests::{pump_direct, queue_forged_add, received};
use crate::groups::tests::{Node, T0, device_node, node};

/// a1 (node 0) and b1 (node 1) with a 1:1 conversation.
fn talking(dir: &std::path::Path) -> Vec<Node> {
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
    nodes
}

/// a1 queues a forged add of `package`; bob fetches it from his mailbox instead of a direct
/// delivery (a1's outbox drained, as a replica would hold it). Bob's answer for it.
fn forged_add_through_the_mailbox(nodes: &mut [Node], package: Vec<u8>, now: i64) -> ReceiptStatus {
    let id = queue_forged_add(nodes, package, now);
    let page: Vec<FetchedEntry> = nodes[0]
        .store
        .read()
        .outbox_due(now, 10)
        .unwrap()
        .into_iter()
        .filter(|item| item.id == id)
        .map(|item| FetchedEntry {
            envelope: item.envelope.into(),
            expires_at_ms: u64::MAX,
        })
        .collect();
    assert_eq!(page.len(), 1, "the commit alone");
    let b1 = &mut nodes[1];
    let fetched = b1
        .store
        .write(|tx| b1.engine.apply_fetched(tx, page, now))
        .unwrap();
    assert_eq!(fetched.new, 0, "nothing applied");
    assert_eq!(
        fetched.handled.len(),
        1,
        "answered: the replica may delete it"
    );
    fetched.handled[0].status
}

#[test]
fn a_forged_device_is_refused_when_its_commit_comes_through_the_mailbox() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = talking(tmp.path());
    let alice = nodes[0].contact("alice");

    // Another root's device: refused for good, and no device list is wanted for it.
    let mut mallory = device_node(tmp.path(), 9, 201, RekeyPolicy::default());
    let status = forged_add_through_the_mailbox(&mut nodes, mallory.key_package(), T0 + 1);
    assert!(matches!(status, ReceiptStatus::Rejected(_)), "{status:?}");
    assert!(nodes[1].engine.wanted_device_lists().is_empty());
    let bob = bob_of(&nodes);
    drop_pending_commit(&mut nodes[0], &bob);

    // A device of alice's root that the newest list bob fetched (just now) does not name.
    let alice_uid = Uid::from_bytes(&alice.uid);
    let b1 = &mut nodes[1];
    b1.store
        .write(|tx| {
            b1.engine
                .learn_listed_devices(tx, &alice_uid, alice.devices.clone(), T0 + 2)
        })
        .unwrap();
    let mut old = device_node(tmp.path(), 1, 202, RekeyPolicy::default());
    let status = forged_add_through_the_mailbox(&mut nodes, old.key_package(), T0 + 3);
    assert!(matches!(status, ReceiptStatus::Rejected(_)), "{status:?}");
    assert!(nodes[1].engine.wanted_device_lists().is_empty());

    // Bob's side has neither device, and still talks with a1.
    let b1 = &mut nodes[1];
    let stored = b1.store.read().contact_by_uid(&alice.uid).unwrap().unwrap();
    assert_eq!(stored.devices.len(), 1);
    b1.store
        .write(|tx| b1.engine.queue_text(tx, "alice", "still here", T0 + 4))
        .unwrap();
    assert_eq!(
        received(&pump_direct(&mut nodes, 1, T0 + 4), 0),
        ["still here"]
    );
}

fn bob_of(nodes: &[Node]) -> [u8; 32] {
    nodes[1].uid()
}

/// The forger (a1) drops its forged commit, as a refusal would make it (bob's refusal went to
/// the mailbox, not to a1).
fn drop_pending_commit(a1: &mut Node, bob: &[u8; 32]) {
    let engine = &a1.engine;
    a1.store
        .write(|tx| {
            engine.in_job(tx, |tx| {
                let row = tx.open_conversation_with(bob)?.expect("a conversation");
                let mls = tx.mls()?;
                let mut conversation = engine
                    .conversations
                    .load(&mls, &row.group_id)?
                    .expect("its state");
                conversation.discard_pending_commit(&mls)?;
                engine.conversations.stage(conversation);
                Ok::<_, crate::EngineError>(())
            })
        })
        .unwrap();
}

#[test]
fn an_older_device_list_found_in_the_dht_is_not_used() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = talking(tmp.path());
    let alice = Uid::from_bytes(&nodes[0].uid());
    let mut note = |version: u64| {
        let b1 = &mut nodes[1];
        b1.store
            .write(|tx| b1.engine.note_device_list_version(tx, &alice, version))
            .unwrap()
    };
    assert!(note(5), "the first list found");
    assert!(note(5), "the same version again");
    assert!(!note(3), "an older one: not used");
    assert!(note(7), "a newer one");
    // Persisted: after a restart, v6 is still older than what was seen.
    drop(nodes);
    let mut b1 = node(tmp.path(), 2, RekeyPolicy::default());
    let stale = b1
        .store
        .write(|tx| b1.engine.note_device_list_version(tx, &alice, 6))
        .unwrap();
    assert!(!stale);
}
