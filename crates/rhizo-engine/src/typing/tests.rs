//! Typing indicators between real engines on real SQLite stores, on a simulated clock: 1:1 and
//! group, the rate limit, the offline rule, the bounded run, and that nothing is stored.

use rhizo_e2e::RekeyPolicy;

use super::*;
use crate::groups::tests::{Node, T0, deliver, node, pump, received_texts, trio};

const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

/// Rows that would hold anything about a typing indicator: messages (the outboxes are message
/// rows in a state) and group deliveries.
fn stored_rows(n: &Node) -> i64 {
    n.store
        .connection()
        .query_row(
            "SELECT (SELECT COUNT(*) FROM messages) + (SELECT COUNT(*) FROM message_deliveries)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

fn seal_typing(n: &mut Node, to: TypingTo, connected: bool, now: i64) -> TypingSeal {
    let engine = &n.engine;
    n.store
        .write(|tx| engine.seal_typing(tx, to, &|_| connected, now))
        .unwrap()
}

/// Alice and bob, contacts of each other, with a 1:1 conversation alice opened (its Welcome
/// and first text delivered to bob).
fn pair(dir: &std::path::Path) -> Vec<Node> {
    let mut nodes = vec![
        node(dir, 1, RekeyPolicy::default()),
        node(dir, 2, RekeyPolicy::default()),
    ];
    let (alice, bob) = (nodes[ALICE].contact("alice"), nodes[BOB].contact("bob"));
    nodes[ALICE]
        .store
        .write(|tx| tx.add_contact(&bob, 1))
        .unwrap();
    nodes[BOB]
        .store
        .write(|tx| tx.add_contact(&alice, 1))
        .unwrap();
    let kp = nodes[BOB].key_package();
    let a = &mut nodes[ALICE];
    a.store
        .write(|tx| a.engine.send_first(tx, &bob, "hi", &[kp], T0))
        .unwrap();
    assert_eq!(send_direct(&mut nodes, T0), ["hi"]);
    nodes
}

/// Sends alice's due 1:1 outbox to bob and writes the answers; the texts bob showed.
fn send_direct(nodes: &mut [Node], now: i64) -> Vec<String> {
    let transmits = {
        let a = &nodes[ALICE];
        a.engine.poll_transmits(&a.store.read(), now).unwrap()
    };
    let mut texts = Vec::new();
    for t in transmits {
        let mut events = Vec::new();
        let device = t.targets()[0].device;
        let answer = deliver(nodes, device.as_bytes(), &t.frame, now, &mut events);
        texts.extend(events.into_iter().filter_map(|(_, e)| match e {
            Event::MessageReceived { text, .. } => Some(text),
            _ => None,
        }));
        let a = &mut nodes[ALICE];
        a.store
            .write(|tx| {
                a.engine
                    .on_transmit_result(tx, &t, vec![(device, answer)], now)
            })
            .unwrap();
    }
    texts
}

/// Hands a sealed indicator to each of its targets; the events they showed.
fn hand(nodes: &mut [Node], sealed: &TypingSeal, now: i64) -> Vec<(usize, Event)> {
    let TypingSeal::Sealed { frame, targets } = sealed else {
        panic!("not sealed: {sealed:?}");
    };
    let mut events = Vec::new();
    for t in targets {
        let answer = deliver(nodes, t.device.as_bytes(), frame, now, &mut events);
        assert!(answer.is_ok(), "{answer:?}");
    }
    events
}

#[test]
fn a_direct_typing_indicator_shows_as_an_event_and_neither_side_stores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = pair(tmp.path());
    let bob_uid = nodes[BOB].uid();
    let before = (stored_rows(&nodes[ALICE]), stored_rows(&nodes[BOB]));
    let sealed = seal_typing(&mut nodes[ALICE], TypingTo::Contact(bob_uid), true, T0 + 10);
    let events = hand(&mut nodes, &sealed, T0 + 11);
    let alice = Uid::from_bytes(&nodes[ALICE].uid()).to_string();
    assert_eq!(
        events,
        [(
            BOB,
            Event::Typing {
                conversation: "alice".into(),
                from: alice
            }
        )]
    );
    assert_eq!(
        (stored_rows(&nodes[ALICE]), stored_rows(&nodes[BOB])),
        before,
        "no message or delivery row on either side"
    );
    // The conversation goes on: alice's next text reads at bob.
    let a = &mut nodes[ALICE];
    a.store
        .write(|tx| a.engine.queue_text(tx, "bob", "after typing", T0 + 20))
        .unwrap();
    assert_eq!(send_direct(&mut nodes, T0 + 20), ["after typing"]);
}

#[test]
fn typing_is_rate_limited_and_never_sealed_for_an_offline_contact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = pair(tmp.path());
    let to = TypingTo::Contact(nodes[BOB].uid());
    // Bob is not connected: nothing sealed, nothing to send later.
    let offline = seal_typing(&mut nodes[ALICE], to, false, T0 + 10);
    assert!(matches!(offline, TypingSeal::Offline));
    assert_eq!(offline.skipped(), Some("offline"));
    let first = seal_typing(&mut nodes[ALICE], to, true, T0 + 10);
    assert_eq!(first.skipped(), None);
    let soon = seal_typing(
        &mut nodes[ALICE],
        to,
        true,
        T0 + 10 + TYPING_MIN_INTERVAL_MS - 1,
    );
    assert!(matches!(soon, TypingSeal::TooSoon));
    let later = seal_typing(
        &mut nodes[ALICE],
        to,
        true,
        T0 + 10 + TYPING_MIN_INTERVAL_MS,
    );
    assert_eq!(later.skipped(), None);
    // Not a contact or no conversation.
    let stranger = seal_typing(
        &mut nodes[ALICE],
        TypingTo::Contact([9; 32]),
        true,
        T0 + 20_000,
    );
    assert!(matches!(stranger, TypingSeal::NoConversation));
    let no_group = seal_typing(
        &mut nodes[ALICE],
        TypingTo::Group([9; 16]),
        true,
        T0 + 20_000,
    );
    assert!(matches!(no_group, TypingSeal::NoConversation));
}

#[test]
fn a_run_of_indicators_is_bounded_until_we_send_something_else_and_the_gap_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = pair(tmp.path());
    let to = TypingTo::Contact(nodes[BOB].uid());
    let step = TYPING_MIN_INTERVAL_MS;
    let mut now = T0 + 10;
    // Bob gets none of them (he left), so his MLS skips every one.
    for _ in 0..MAX_TYPING_RUN {
        assert_eq!(
            seal_typing(&mut nodes[ALICE], to, true, now).skipped(),
            None
        );
        now += step;
    }
    assert!(matches!(
        seal_typing(&mut nodes[ALICE], to, true, now),
        TypingSeal::TooMany
    ));
    now += step;
    assert!(matches!(
        seal_typing(&mut nodes[ALICE], to, true, now),
        TypingSeal::TooMany
    ));
    // A text ends the run; bob reads it across the skipped generations.
    let a = &mut nodes[ALICE];
    a.store
        .write(|tx| a.engine.queue_text(tx, "bob", "sent", now))
        .unwrap();
    assert_eq!(send_direct(&mut nodes, now), ["sent"]);
    now += step;
    assert_eq!(
        seal_typing(&mut nodes[ALICE], to, true, now).skipped(),
        None
    );
}

#[test]
fn a_stale_indicator_shows_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut nodes = pair(tmp.path());
    let to = TypingTo::Contact(nodes[BOB].uid());
    let sealed = seal_typing(&mut nodes[ALICE], to, true, T0 + 10);
    let events = hand(&mut nodes, &sealed, T0 + 10 + TYPING_STALE_MS + 1);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn group_typing_goes_to_connected_members_only_and_later_texts_read_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let carol_device = nodes[CAROL].device();
    let before: Vec<i64> = nodes.iter().map(stored_rows).collect();
    // Alice is connected to carol only.
    let a = &mut nodes[ALICE];
    let sealed = a
        .store
        .write(|tx| {
            a.engine.seal_typing(
                tx,
                TypingTo::Group(session),
                &|t: &Target| *t.device.as_bytes() == carol_device,
                T0 + 10,
            )
        })
        .unwrap();
    let TypingSeal::Sealed { targets, .. } = &sealed else {
        panic!("{sealed:?}");
    };
    assert_eq!(targets.len(), 1);
    let events = hand(&mut nodes, &sealed, T0 + 11);
    let alice = Uid::from_bytes(&nodes[ALICE].uid()).to_string();
    assert_eq!(
        events,
        [(
            CAROL,
            Event::Typing {
                conversation: crate::groups::group_id_hex(&session),
                from: alice
            }
        )]
    );
    let after: Vec<i64> = nodes.iter().map(stored_rows).collect();
    assert_eq!(after, before, "nothing stored on any member");
    // Bob skipped that generation: alice's next text still reads at both.
    let a = &mut nodes[ALICE];
    a.store
        .write(|tx| {
            a.engine
                .queue_group_text(tx, &session, "hello all", T0 + 20)
        })
        .unwrap();
    let (unreachable, events) = pump(&mut nodes, ALICE, T0 + 20);
    assert!(unreachable.is_empty());
    assert_eq!(received_texts(&events, BOB), ["hello all"]);
    assert_eq!(received_texts(&events, CAROL), ["hello all"]);
    // Nobody connected: nothing sealed.
    let offline = seal_typing(
        &mut nodes[ALICE],
        TypingTo::Group(session),
        false,
        T0 + 30_000,
    );
    assert!(matches!(offline, TypingSeal::Offline));
}

#[test]
fn the_limiter_is_bounded() {
    let limiter = TypingLimiter::default();
    for n in 0..(MAX_TYPING_CONVERSATIONS as u32 + 10) {
        let mut uid = [0u8; 32];
        uid[..4].copy_from_slice(&n.to_le_bytes());
        assert!(limiter.record(TypingTo::Contact(uid), 1, i64::from(n)));
    }
    assert!(limiter.last.lock().unwrap().len() <= MAX_TYPING_CONVERSATIONS);
}
