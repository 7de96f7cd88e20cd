use rhizo_core::mailbox::FetchedEntry;
use rhizo_e2e::{E2eStore, RekeyPolicy};
use rhizo_store::Store;

use crate::{
    Engine, EngineError, Event,
    tests::{Party, open, party},
};

/// A simulated now (unix ms); the engine reads no clock.
const T0: i64 = 1_800_000_000_000;

fn message_rows(store: &Store) -> i64 {
    store
        .connection()
        .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))
        .unwrap()
}

/// A fetched page is applied inside the caller's job: when that job is rolled back, nothing of
/// the page stays (rows, MLS state, the loaded conversations, the seen-set cache), so the
/// replica keeps it and the same page applies in full in the next job.
#[test]
fn a_page_applied_in_a_job_that_rolls_back_leaves_nothing_and_applies_again() {
    let tmp = tempfile::tempdir().unwrap();
    let Party {
        me: alice_me,
        contact: alice,
        ..
    } = party(1, "alice");
    let Party {
        me: bob_me,
        contact: bob,
        ..
    } = party(2, "bob");
    let mut alice_store = open(&tmp.path().join("alice.db"));
    let mut bob_store = open(&tmp.path().join("bob.db"));
    alice_store.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    bob_store.write(|tx| tx.add_contact(&alice, 1)).unwrap();
    let alice_engine = Engine::new(alice_me, RekeyPolicy::default()).unwrap();
    let bob_engine = Engine::new(bob_me, RekeyPolicy::default()).unwrap();
    let kp = {
        let mls = E2eStore::from_connection(bob_store.connection()).unwrap();
        rhizo_e2e::create_key_packages(&mls, bob_engine.mls_device(), 1, false)
            .unwrap()
            .remove(0)
    };
    alice_store
        .write(|tx| alice_engine.send_first(tx, &bob, "hello", &[kp], T0))
        .unwrap();
    // What a replica would hold for bob: the Welcome and the text.
    let page: Vec<FetchedEntry> = alice_store
        .read()
        .outbox_due(T0, 10)
        .unwrap()
        .into_iter()
        .map(|item| FetchedEntry {
            envelope: item.envelope.into(),
            expires_at_ms: u64::MAX,
        })
        .collect();
    assert_eq!(page.len(), 2);

    let before = message_rows(&bob_store);
    let failed = bob_store.write(|tx| -> Result<(), EngineError> {
        let fetched = bob_engine.apply_fetched(tx, page.clone(), T0 + 1)?;
        assert_eq!(fetched.handled.len(), 2);
        Err(EngineError::Internal("the job fails after the page"))
    });
    assert!(failed.is_err());
    assert_eq!(message_rows(&bob_store), before, "nothing of the job stays");

    let fetched = bob_store
        .write(|tx| bob_engine.apply_fetched(tx, page.clone(), T0 + 2))
        .unwrap();
    assert_eq!(fetched.handled.len(), 2, "every entry handled: delete them");
    assert_eq!(fetched.new, 2);
    assert!(fetched.receipts_queued, "a DELIVERED receipt goes to alice");
    assert!(
        fetched
            .events
            .iter()
            .any(|e| matches!(e, Event::MessageReceived { .. }))
    );
    assert!(message_rows(&bob_store) > before);
}
