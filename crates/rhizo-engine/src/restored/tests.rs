//! A 1:1 conversation after a restore from an older copy, between two engines exchanging
//! frames in memory (real SQLite in temp dirs, real MLS, signed envelopes and receipts, a
//! simulated `now`): the next text waits for our self-update to be confirmed, across a crash,
//! and is then sealed in the fresh epoch, so the peer reads it.

use rhizo_e2e::{E2eStore, RekeyPolicy};
use rhizo_store::{Store, StoreError, messaging::MessageState};

use crate::{
    Engine,
    outbox::DeviceAnswer,
    send::Queued,
    test_support::{ALICE, BOB, NAMES, T0, contact, me},
};

/// The identity seed of this module's pair.
const SEED: u8 = 61;

/// This module's helpers on the shared pair.
struct Restored;
type Pair = crate::test_support::Pair<Restored>;

fn path(dir: &std::path::Path, side: usize) -> std::path::PathBuf {
    dir.join(format!("{}.db", NAMES[side]))
}

/// Alice and bob, each the other's contact, and a conversation alice started ("hello").
fn pair() -> Pair {
    let mut p = Pair::new(SEED, RekeyPolicy::default());
    let kp = p.bob_key_package();
    p.stores[ALICE]
        .write(|tx| p.engines[ALICE].send_first(tx, &contact(SEED, BOB), "hello", &[kp], T0))
        .unwrap();
    p.deliver(ALICE, T0);
    p
}

impl Pair {
    fn text(&mut self, from: usize, text: &str, now: i64) -> i64 {
        match self.stores[from]
            .write(|tx| self.engines[from].queue_text(tx, NAMES[1 - from], text, now))
            .unwrap()
        {
            Queued::Message { row, .. } => row.id,
            other => panic!("not queued: {other:?}"),
        }
    }

    /// `from`'s due frames to the other, once, and the answers handed back.
    fn deliver(&mut self, from: usize, now: i64) {
        let to = 1 - from;
        let transmits = self.engines[from]
            .poll_transmits(&self.stores[from].read(), now)
            .unwrap();
        for t in transmits {
            let engine = &self.engines[to];
            let inbound = self.stores[to]
                .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, &t.frame, now)))
                .unwrap();
            let answers: Vec<DeviceAnswer> =
                vec![(me(SEED, to).device.public(), Ok(inbound.response))];
            let engine = &self.engines[from];
            self.stores[from]
                .write(|tx| engine.on_transmit_result(tx, &t, answers, now))
                .unwrap();
        }
    }

    /// The texts `side` shows with the other.
    fn shown(&self, side: usize) -> Vec<String> {
        let reader = self.stores[side].read();
        let uid = *me(SEED, 1 - side).uid.as_bytes();
        reader
            .conversations_with(&uid)
            .unwrap()
            .iter()
            .flat_map(|c| reader.messages(&c.session_id, 100).unwrap())
            .filter(|m| m.kind == "text")
            .filter_map(|m| m.body)
            .collect()
    }

    fn session(&self) -> [u8; 16] {
        let reader = self.stores[ALICE].read();
        reader
            .open_conversation_with(me(SEED, BOB).uid.as_bytes())
            .unwrap()
            .unwrap()
            .session_id
    }

    fn held(&self) -> usize {
        let session = self.session();
        self.stores[ALICE]
            .read()
            .held_messages(&session, 100)
            .unwrap()
            .len()
    }

    fn pending_commit(&self) -> bool {
        let session = self.session();
        let row = self.stores[ALICE]
            .read()
            .conversation(&session)
            .unwrap()
            .unwrap();
        let mls = E2eStore::from_connection(self.stores[ALICE].connection()).unwrap();
        rhizo_e2e::Conversation::load(&mls, &row.group_id)
            .unwrap()
            .unwrap()
            .has_pending_commit()
    }

    /// Alice's node starts again on `copy` (or on its own file when `None`: a crash), with
    /// its sequence floor raised as rhizo-node does at every start.
    fn restart_alice(&mut self, copy: Option<&std::path::Path>, now: i64) {
        let alice = path(self.dir(), ALICE);
        // Closes the database first (the store is replaced by one on another file).
        self.stores[ALICE] = Store::open(&self.dir().join("elsewhere.db")).unwrap();
        if let Some(copy) = copy {
            for ext in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{ext}", alice.display()));
            }
            std::fs::copy(copy, &alice).unwrap();
        }
        self.stores[ALICE] = Store::open(&alice).unwrap();
        self.engines[ALICE] = Engine::new(me(SEED, ALICE), RekeyPolicy::default()).unwrap();
        self.stores[ALICE]
            .write(|tx| tx.raise_sequence_floor(now).map(|_| ()))
            .unwrap();
    }
}

/// Alice's node is restored from a copy taken before she sent two texts (her sender ratchet
/// back at the generations she used for them). Her next text is held, not sealed, until bob
/// confirmed her self-update; a crash in that time loses nothing; then it and the text queued
/// behind it go out in the fresh epoch, and bob reads both. After that, nothing more is held.
#[test]
fn a_restored_1to1_holds_the_next_text_until_its_fresh_epoch_is_confirmed() {
    let mut p = pair();
    let copy = p.dir().join("alice-copy.db");
    p.stores[ALICE]
        .connection()
        .execute("VACUUM INTO ?1", [copy.display().to_string()])
        .unwrap();
    p.text(ALICE, "one", T0 + 1_000);
    p.text(ALICE, "two", T0 + 1_000);
    p.deliver(ALICE, T0 + 1_000);
    assert_eq!(p.shown(BOB), ["hello", "one", "two"]);

    let restored_at = T0 + 5_000;
    p.restart_alice(Some(&copy), restored_at);
    p.stores[ALICE]
        .write(|tx| {
            crate::restored::note_restored(tx, restored_at)
                .map_err(|e| StoreError::InvalidInput(e.to_string()))
        })
        .unwrap();
    let now = T0 + 10_000;
    let three = p.text(ALICE, "three", now);
    assert_eq!(p.held(), 1, "the text waits for the fresh epoch");
    assert!(p.pending_commit(), "our self-update is pending");
    let row = p.stores[ALICE].read().message(three).unwrap().unwrap();
    assert_eq!(row.state, MessageState::Queued);

    // A crash before bob confirmed: the held text and the pending commit are both still there.
    p.restart_alice(None, now + 1_000);
    let now = now + 2_000;
    assert_eq!(p.held(), 1);
    assert!(p.pending_commit());
    p.text(ALICE, "four", now);
    assert_eq!(p.held(), 2, "a later text waits behind the held one");

    // The commit goes out; bob's receipt confirms it and the held texts are sealed.
    p.deliver(ALICE, now);
    assert!(!p.pending_commit());
    assert_eq!(p.held(), 0);
    assert_eq!(p.shown(BOB), ["hello", "one", "two"]);
    p.deliver(ALICE, now);
    assert_eq!(p.shown(BOB), ["hello", "one", "two", "three", "four"]);
    let row = p.stores[ALICE].read().message(three).unwrap().unwrap();
    assert_eq!(row.state, MessageState::Delivered);

    // The fresh epoch is there: the next text goes at once.
    p.text(ALICE, "five", now + 5_000);
    assert_eq!(p.held(), 0);
    assert!(!p.pending_commit());
    p.deliver(ALICE, now + 5_000);
    assert_eq!(
        p.shown(BOB),
        ["hello", "one", "two", "three", "four", "five"]
    );
}

/// Without a restore, nothing is held: the rekey rule's commit stays pending while texts are
/// sealed in the current epoch (protocol.md §13).
#[test]
fn without_a_restore_nothing_is_held() {
    let mut p = pair();
    p.text(ALICE, "one", T0 + 1_000);
    assert_eq!(p.held(), 0);
    p.deliver(ALICE, T0 + 1_000);
    assert_eq!(p.shown(BOB), ["hello", "one"]);
}
