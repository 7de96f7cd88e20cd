//! The rules of issue 20 between two engines exchanging frames in memory (real SQLite in temp
//! dirs, real MLS, signed envelopes and receipts): a block refuses a contact's envelopes and
//! creates no message request, also for what a mailbox held; delete for everyone reaches the
//! peer, only for the sender's own messages; an unknown id is a clear error.

use bytes::Bytes;
use prost::Message as _;
use rhizo_core::{
    mailbox::FetchedEntry,
    proto::{ChatContent, MessageDelete},
};
use rhizo_e2e::RekeyPolicy;
use rhizo_store::{
    StoreError,
    messaging::{Contact, MessageRow, MessageState},
    requests::RequestLimits,
};

use crate::{
    EngineError, Event, Me,
    conversations::queue_application_tx,
    outbox::DeviceAnswer,
    send::Queued,
    test_support::{self, ALICE, BOB, NAMES, T0},
};

/// The identities' seed (see [`test_support::me`]).
const SEED: u8 = 41;

fn me(side: usize) -> Me {
    test_support::me(SEED, side)
}

fn contact(side: usize) -> Contact {
    test_support::contact(SEED, side)
}

/// The manage tests' helpers on the shared pair.
enum Manage {}
/// Alice and bob, each the other's contact.
type Pair = test_support::Pair<Manage>;

fn pair() -> Pair {
    Pair::new(SEED, RekeyPolicy::default())
}

impl Pair {
    /// Alice's first text to bob (a new conversation).
    fn first(&mut self, text: &str) -> MessageRow {
        let kp = self.bob_key_package();
        self.stores[ALICE]
            .write(|tx| self.engines[ALICE].send_first(tx, &contact(BOB), text, &[kp], T0))
            .unwrap()
    }

    /// A text from `from` to the other, in their conversation.
    fn text(&mut self, from: usize, text: &str) -> MessageRow {
        let to = NAMES[1 - from];
        match self.stores[from]
            .write(|tx| self.engines[from].queue_text(tx, to, text, T0))
            .unwrap()
        {
            Queued::Message { row, .. } => row,
            other => panic!("not queued: {other:?}"),
        }
    }

    /// `from`'s due frames to the other, once; the answers handed back. The receiver's events.
    fn deliver(&mut self, from: usize) -> Vec<Event> {
        let to = 1 - from;
        let transmits = self.engines[from]
            .poll_transmits(&self.stores[from].read(), T0)
            .unwrap();
        let mut events = Vec::new();
        for t in transmits {
            let engine = &self.engines[to];
            let inbound = self.stores[to]
                .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, &t.frame, T0)))
                .unwrap();
            events.extend(inbound.events);
            let answers: Vec<DeviceAnswer> = vec![(me(to).device.public(), Ok(inbound.response))];
            let engine = &self.engines[from];
            self.stores[from]
                .write(|tx| engine.on_transmit_result(tx, &t, answers, T0))
                .unwrap();
        }
        events
    }

    /// The texts `side` shows with the other.
    fn shown(&self, side: usize) -> Vec<String> {
        let reader = self.stores[side].read();
        let uid = *me(1 - side).uid.as_bytes();
        reader
            .conversations_with(&uid)
            .unwrap()
            .iter()
            .flat_map(|c| reader.messages(&c.session_id, 100).unwrap())
            .filter_map(|m| m.body)
            .collect()
    }

    fn block(&mut self, side: usize, uid: &[u8; 32]) {
        self.stores[side]
            .write(|tx| tx.block_sender(uid, &RequestLimits::DEFAULT, T0))
            .unwrap();
    }
}

#[test]
fn a_blocked_contacts_envelopes_are_refused_until_unblocked() {
    let mut p = pair();
    p.first("before");
    p.deliver(ALICE);
    assert_eq!(p.shown(BOB), ["before"]);
    p.block(BOB, me(ALICE).uid.as_bytes());
    let refused = p.text(ALICE, "while blocked");
    assert!(p.deliver(ALICE).is_empty());
    assert_eq!(
        p.shown(BOB),
        ["before"],
        "nothing from a blocked contact is stored"
    );
    let row = p.stores[ALICE].read().message(refused.id).unwrap().unwrap();
    assert_eq!(
        row.state,
        MessageState::Failed,
        "final for the sender: no retries"
    );
    assert!(row.error.unwrap_or_default().contains("UNKNOWN_SENDER"));
    // Unblocked: later texts arrive again.
    assert!(
        p.stores[BOB]
            .write(|tx| tx.unblock_sender(me(ALICE).uid.as_bytes()))
            .unwrap()
    );
    p.text(ALICE, "after");
    p.deliver(ALICE);
    assert_eq!(p.shown(BOB), ["before", "after"]);
}

#[test]
fn a_removed_contact_goes_with_its_conversation_and_writes_as_a_request_again() {
    let mut p = pair();
    p.first("hello");
    p.deliver(ALICE);
    let alice = *me(ALICE).uid.as_bytes();
    assert_eq!(
        p.stores[BOB]
            .read()
            .conversations_with(&alice)
            .unwrap()
            .len(),
        1
    );
    assert!(
        p.stores[BOB]
            .write(|tx| p.engines[BOB].remove_contact(tx, &alice))
            .unwrap()
    );
    {
        let reader = p.stores[BOB].read();
        assert!(reader.contact_by_uid(&alice).unwrap().is_none());
        assert!(reader.conversations_with(&alice).unwrap().is_empty());
    }
    p.text(ALICE, "still there?");
    let events = p.deliver(ALICE);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MessageRequest { .. })),
        "{events:?}"
    );
    assert_eq!(
        p.stores[BOB].read().held_envelopes(&alice).unwrap().len(),
        1
    );
}

#[test]
fn a_blocked_stranger_makes_no_message_request() {
    let mut p = pair();
    // Bob does not know alice (removed), and blocked her UID.
    assert!(
        p.stores[BOB]
            .write(|tx| p.engines[BOB].remove_contact(tx, me(ALICE).uid.as_bytes()))
            .unwrap()
    );
    p.block(BOB, me(ALICE).uid.as_bytes());
    p.first("hello?");
    let events = p.deliver(ALICE);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, Event::MessageRequest { .. })),
        "{events:?}"
    );
    let reader = p.stores[BOB].read();
    assert!(reader.list_requests().unwrap().is_empty());
    assert!(
        reader
            .held_envelopes(me(ALICE).uid.as_bytes())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_blocked_senders_mailbox_entries_are_acknowledged_and_dropped() {
    let mut p = pair();
    p.first("before");
    p.deliver(ALICE);
    let queued = p.text(ALICE, "from the mailbox");
    // The envelope a replica would hold for bob.
    let envelope = p.stores[ALICE]
        .read()
        .outbox_due(T0, 10)
        .unwrap()
        .into_iter()
        .find(|item| item.id == queued.id)
        .unwrap()
        .envelope;
    p.block(BOB, me(ALICE).uid.as_bytes());
    let entry = FetchedEntry {
        envelope: Bytes::from(envelope),
        expires_at_ms: 0,
    };
    let fetched = p.stores[BOB]
        .write(|tx| p.engines[BOB].apply_fetched(tx, vec![entry], T0))
        .unwrap();
    assert_eq!(
        fetched.handled.len(),
        1,
        "acknowledged: the replica deletes it"
    );
    assert_eq!(fetched.new, 0);
    assert!(fetched.events.is_empty());
    assert_eq!(p.shown(BOB), ["before"]);
    // The refusal goes back (signed), as it would directly: alice's node marks it failed and
    // never sends it again.
    assert!(fetched.receipts_queued);
    p.deliver(BOB);
    let row = p.stores[ALICE].read().message(queued.id).unwrap().unwrap();
    assert_eq!(row.state, MessageState::Failed);
}

#[test]
fn delete_for_everyone_reaches_the_peer_and_only_for_the_senders_own_messages() {
    let mut p = pair();
    let first = p.first("keep me");
    p.deliver(ALICE);
    let oops = p.text(ALICE, "oops");
    p.deliver(ALICE);
    assert_eq!(p.shown(BOB), ["keep me", "oops"]);
    // Bob cannot delete alice's message for everyone…
    let bobs_copy = received_id(&p, BOB, "oops");
    let refused = p.stores[BOB]
        .write(|tx| p.engines[BOB].delete_for_everyone(tx, bobs_copy, T0))
        .unwrap_err();
    assert!(matches!(refused, EngineError::NotYourMessage), "{refused}");
    // …nor with a forged request naming alice's message: alice keeps it.
    forge_delete(&mut p, &first);
    p.deliver(BOB);
    assert_eq!(p.shown(ALICE), ["keep me", "oops"]);
    // Alice can: gone here at once, and on bob's node once it arrives.
    let done = p.stores[ALICE]
        .write(|tx| p.engines[ALICE].delete_for_everyone(tx, oops.id, T0))
        .unwrap();
    assert_eq!(done.conversation, "bob");
    assert_eq!(p.shown(ALICE), ["keep me"]);
    let events = p.deliver(ALICE);
    assert!(
        events.contains(&Event::MessageDeleted {
            id: bobs_copy,
            conversation: "alice".into(),
            for_everyone: true,
        }),
        "{events:?}"
    );
    assert_eq!(p.shown(BOB), ["keep me"]);
    let row = p.stores[BOB].read().message(bobs_copy).unwrap().unwrap();
    assert_eq!((row.kind.as_str(), row.body), ("deleted", None));
}

#[test]
fn deleting_an_unknown_message_is_a_clear_error() {
    let mut p = pair();
    let e = p.stores[ALICE]
        .write(|tx| p.engines[ALICE].delete_for_everyone(tx, 4242, T0))
        .unwrap_err();
    assert!(matches!(e, EngineError::UnknownMessage(4242)), "{e}");
    assert!(e.to_string().contains("no message with id 4242"));
    assert!(
        !p.stores[ALICE]
            .write(|tx| tx.delete_message_locally(4242))
            .unwrap()
    );
}

#[test]
fn a_muted_conversations_messages_say_so() {
    let mut p = pair();
    p.stores[BOB]
        .write(|tx| tx.set_conversation_settings(me(ALICE).uid.as_bytes(), Some(true), None, T0))
        .unwrap();
    p.first("shh");
    let events = p.deliver(ALICE);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::MessageReceived { muted: true, .. })),
        "{events:?}"
    );
}

/// Bob's row id of the text `body` he received.
fn received_id(p: &Pair, side: usize, body: &str) -> i64 {
    let reader = p.stores[side].read();
    let uid = *me(1 - side).uid.as_bytes();
    reader
        .conversations_with(&uid)
        .unwrap()
        .iter()
        .flat_map(|c| reader.messages(&c.session_id, 100).unwrap())
        .find(|m| m.body.as_deref() == Some(body))
        .unwrap()
        .id
}

/// Bob sends a MessageDelete naming alice's message `target` (not his own).
fn forge_delete(p: &mut Pair, target: &MessageRow) {
    let content = ChatContent {
        sent_at_ms: T0 as u64,
        delete: Some(MessageDelete {
            sender_device: target.sender_device.to_vec().into(),
            seq: target.seq,
            ..MessageDelete::default()
        }),
        ..ChatContent::default()
    }
    .encode_to_vec();
    let engine = &p.engines[BOB];
    p.stores[BOB]
        .write(|tx| {
            let session = tx.open_conversation_with(&contact(ALICE).uid)?.unwrap();
            engine.in_job(tx, |tx| {
                queue_application_tx(
                    tx,
                    engine,
                    &contact(ALICE),
                    &session,
                    &content,
                    "delete",
                    None,
                    T0,
                )
            })
        })
        .unwrap();
}

mod groups {
    //! The same rules in a group (alice admin, bob, carol).

    use crate::{
        Event,
        groups::tests::{T0, pump, received_texts, trio},
    };
    use rhizo_store::requests::RequestLimits;

    fn shown(node: &crate::groups::tests::Node, session: &[u8; 16]) -> Vec<String> {
        node.store
            .read()
            .messages(session, 100)
            .unwrap()
            .into_iter()
            .filter_map(|m| m.body)
            .collect()
    }

    #[test]
    fn delete_for_everyone_in_a_group_removes_it_at_every_member() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session) = trio(tmp.path());
        let a = &mut nodes[0];
        let queued = a
            .store
            .write(|tx| a.engine.queue_group_text(tx, &session, "typo", T0 + 1))
            .unwrap();
        pump(&mut nodes, 0, T0 + 1);
        assert_eq!(shown(&nodes[1], &session), ["typo"]);
        // Bob may not delete alice's message for everyone.
        let bobs_copy = nodes[1].store.read().messages(&session, 10).unwrap()[0].id;
        let b = &mut nodes[1];
        let refused = b
            .store
            .write(|tx| b.engine.delete_for_everyone(tx, bobs_copy, T0 + 2))
            .unwrap_err();
        assert!(matches!(refused, crate::EngineError::NotYourMessage));
        let a = &mut nodes[0];
        let done = a
            .store
            .write(|tx| a.engine.delete_for_everyone(tx, queued.row.id, T0 + 2))
            .unwrap();
        assert_eq!(done.conversation, crate::groups::group_id_hex(&session));
        let (_, events) = pump(&mut nodes, 0, T0 + 2);
        for member in [1, 2] {
            assert!(
                events.iter().any(|(i, e)| *i == member
                    && matches!(
                        e,
                        Event::MessageDeleted {
                            for_everyone: true,
                            ..
                        }
                    )),
                "{events:?}"
            );
            assert!(shown(&nodes[member], &session).is_empty());
        }
        assert!(shown(&nodes[0], &session).is_empty());
    }

    #[test]
    fn a_blocked_members_group_texts_are_not_shown_or_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut nodes, session) = trio(tmp.path());
        let bob = nodes[1].uid();
        let c = &mut nodes[2];
        c.store
            .write(|tx| tx.block_sender(&bob, &RequestLimits::DEFAULT, T0))
            .unwrap();
        let b = &mut nodes[1];
        b.store
            .write(|tx| b.engine.queue_group_text(tx, &session, "from bob", T0 + 1))
            .unwrap();
        let (_, events) = pump(&mut nodes, 1, T0 + 1);
        assert_eq!(received_texts(&events, 0), ["from bob"]);
        assert!(received_texts(&events, 2).is_empty());
        assert!(shown(&nodes[2], &session).is_empty());
        // The group still works for carol: alice's next text arrives.
        let a = &mut nodes[0];
        a.store
            .write(|tx| {
                a.engine
                    .queue_group_text(tx, &session, "from alice", T0 + 2)
            })
            .unwrap();
        let (_, events) = pump(&mut nodes, 0, T0 + 2);
        assert_eq!(received_texts(&events, 2), ["from alice"]);
    }
}
