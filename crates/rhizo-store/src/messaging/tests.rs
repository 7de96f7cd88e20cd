use super::*;
use crate::{Store, StoreError};

fn contact(uid: u8, name: &str) -> Contact {
    Contact {
        uid: [uid; 32],
        root_pk: [uid; 32],
        name: name.into(),
        verified: false,
        added_at: 0,
        devices: vec![ContactDevice {
            device_pk: [uid + 100; 32],
            peer_id: format!("peer-{uid}"),
            addrs: vec!["/ip4/127.0.0.1/tcp/1".into()],
            certificate: None,
        }],
    }
}

#[test]
fn devices_the_newest_list_no_longer_names_are_dropped() {
    let mut s = Store::open_in_memory().unwrap();
    let mut bob = contact(1, "bob");
    s.write(|tx| tx.add_contact(&bob, 1)).unwrap();
    // A second device: merged in.
    bob.devices[0].device_pk = [201; 32];
    s.write(|tx| tx.add_contact(&bob, 2)).unwrap();
    let keys = |s: &Store| -> Vec<[u8; 32]> {
        let c = s.read().contact_by_uid(&[1; 32]).unwrap().unwrap();
        c.devices.iter().map(|d| d.device_pk).collect()
    };
    assert_eq!(keys(&s).len(), 2);
    // The newest list names only the second one: the first goes.
    let dropped = s
        .write(|tx| tx.drop_unlisted_contact_devices(&[1; 32], &[[201; 32]]))
        .unwrap();
    assert_eq!(dropped, 1);
    assert_eq!(keys(&s), [[201; 32]]);
    assert_eq!(s.read().contact_by_device(&[101; 32]).unwrap(), None);
}

#[test]
fn contacts_add_merge_and_name_clash() {
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(
        s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap(),
        AddContact::Added
    );
    assert_eq!(
        s.write(|tx| tx.add_contact(&contact(1, "bob"), 2)).unwrap(),
        AddContact::Updated
    );
    let err = s
        .write(|tx| tx.add_contact(&contact(2, "bob"), 3))
        .unwrap_err();
    assert!(matches!(err, StoreError::NameTaken(_)), "{err}");
    let bob = s.read().contact_by_name("bob").unwrap().unwrap();
    assert_eq!(bob.devices.len(), 1);
    assert_eq!(
        s.read()
            .contact_by_device(&[101; 32])
            .unwrap()
            .unwrap()
            .name,
        "bob"
    );
    assert!(
        s.write(|tx| tx.set_contact_verified(&[1; 32], true))
            .unwrap()
    );
    assert!(s.read().contact_by_uid(&[1; 32]).unwrap().unwrap().verified);
}

#[test]
fn a_new_device_key_of_a_known_contact_sets_key_changed_until_verified() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    assert!(!s.read().contact_key_changed(&[1; 32]).unwrap());
    let mut more = contact(1, "bob");
    more.devices.push(ContactDevice {
        device_pk: [42; 32],
        peer_id: "p".into(),
        addrs: vec![],
        certificate: None,
    });
    assert_eq!(
        s.write(|tx| tx.add_contact(&more, 2)).unwrap(),
        AddContact::KeyChanged
    );
    assert!(s.read().contact_key_changed(&[1; 32]).unwrap());
    assert_eq!(
        s.write(|tx| tx.add_contact(&more, 3)).unwrap(),
        AddContact::Updated
    );
    // Marking unverified keeps it; verifying clears it.
    s.write(|tx| tx.set_contact_verified(&[1; 32], false))
        .unwrap();
    assert!(s.read().contact_key_changed(&[1; 32]).unwrap());
    s.write(|tx| tx.set_contact_verified(&[1; 32], true))
        .unwrap();
    assert!(!s.read().contact_key_changed(&[1; 32]).unwrap());
    // update_contact_devices follows the same rule.
    let mut third = more.devices.clone();
    third[0].device_pk = [43; 32];
    s.write(|tx| tx.update_contact_devices(&[1; 32], &third))
        .unwrap();
    assert!(s.read().contact_key_changed(&[1; 32]).unwrap());
    assert!(!s.read().contact_key_changed(&[7; 32]).unwrap(), "unknown");
}

#[test]
fn a_device_key_belongs_to_one_contact_and_lookups_are_by_uid_and_device() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    // Mallory's ticket lists bob's device (101) next to her own (102).
    let mut mallory = contact(2, "mallory");
    mallory.devices.push(contact(1, "bob").devices.remove(0));
    let err = s.write(|tx| tx.add_contact(&mallory, 2)).unwrap_err();
    assert!(
        matches!(&err, StoreError::DeviceKeyTaken { contact, .. } if contact == "bob"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("already listed for your contact 'bob'")
    );
    // Refused as a whole: mallory was not added, not even with her own device.
    assert_eq!(s.read().contact_by_name("mallory").unwrap(), None);
    assert_eq!(s.read().contact_by_device(&[102; 32]).unwrap(), None);
    // Nor can a known contact's devices be extended with it.
    s.write(|tx| tx.add_contact(&contact(2, "mallory"), 3))
        .unwrap();
    let taken = s.write(|tx| tx.update_contact_devices(&[2; 32], &contact(1, "x").devices));
    assert!(matches!(taken, Err(StoreError::DeviceKeyTaken { .. })));
    // The device resolves to bob, and only under bob's UID.
    let bob = s
        .read()
        .contact_by_uid_device(&[1; 32], &[101; 32])
        .unwrap();
    assert_eq!(bob.unwrap().name, "bob");
    assert_eq!(
        s.read()
            .contact_by_uid_device(&[2; 32], &[101; 32])
            .unwrap(),
        None
    );
    assert_eq!(
        s.read()
            .contact_by_uid_device(&[1; 32], &[102; 32])
            .unwrap(),
        None
    );
    assert_eq!(
        s.read()
            .contact_by_uid_device(&[9; 32], &[101; 32])
            .unwrap(),
        None
    );
    // Re-adding bob with the same device merges.
    assert_eq!(
        s.write(|tx| tx.add_contact(&contact(1, "bob"), 4)).unwrap(),
        AddContact::Updated
    );
}

#[test]
fn outbox_sequence_states_and_seen_set() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    let conv = ConversationRow {
        session_id: [9; 16],
        group_id: vec![1, 2, 3],
        contact_uid: [1; 32],
        created_at: 5,
    };
    s.write(|tx| tx.insert_conversation(&conv)).unwrap();
    assert_eq!(s.write(|tx| tx.take_next_seq(&[9; 16])).unwrap(), 1);
    assert_eq!(s.write(|tx| tx.take_next_seq(&[9; 16])).unwrap(), 2);
    let hi = NewMessage {
        session_id: [9; 16],
        sender_device: [7; 32],
        seq: 1,
        kind: "text",
        body: Some("hi"),
        sent_at: 10,
    };
    let id = s.write(|tx| tx.insert_outgoing(&hi, b"env", 10)).unwrap();
    assert_eq!(s.read().outbox_due(10, 10).unwrap().len(), 1);
    s.write(|tx| tx.record_attempt_failed(id, 100, "unreachable"))
        .unwrap();
    assert!(s.read().outbox_due(50, 10).unwrap().is_empty());
    assert_eq!(s.read().outbox_next_attempt().unwrap(), Some(100));
    assert!(
        s.write(|tx| tx.advance_message_state(id, MessageState::Delivered, 60, None))
            .unwrap()
    );
    assert!(
        !s.write(|tx| tx.advance_message_state(id, MessageState::Sent, 61, None))
            .unwrap(),
        "never back"
    );
    assert!(s.read().outbox_due(1000, 10).unwrap().is_empty());
    assert_eq!(
        s.read().message(id).unwrap().unwrap().state,
        MessageState::Delivered
    );

    let fresh: bool = s
        .write(|tx| tx.seen_insert(&[3; 32], &[9; 16], 1, 70))
        .unwrap();
    // A failed transaction leaves nothing behind.
    let failed: Result<(), StoreError> = s.write(|tx| {
        tx.seen_insert(&[4; 32], &[9; 16], 1, 70)?;
        Err(StoreError::InvalidInput("rejected".into()))
    });
    assert!(failed.is_err());
    assert!(!s.read().seen_contains(&[4; 32], &[9; 16], 1).unwrap());
    let again: bool = s
        .write(|tx| tx.seen_insert(&[3; 32], &[9; 16], 1, 71))
        .unwrap();
    assert!(fresh && !again);
    assert!(s.read().seen_contains(&[3; 32], &[9; 16], 1).unwrap());
    assert_eq!(
        s.write(|tx| tx.prune_seen(70)).unwrap(),
        0,
        "kept by its envelope timestamp"
    );
    assert_eq!(s.write(|tx| tx.prune_seen(71)).unwrap(), 1);
    let stored: Option<i64> = s
        .write(|tx| {
            tx.insert_incoming(
                &NewMessage {
                    session_id: [9; 16],
                    sender_device: [3; 32],
                    seq: 1,
                    kind: "text",
                    body: Some("yo"),
                    sent_at: 20,
                },
                &[5; 32],
                80,
            )
        })
        .unwrap();
    assert!(stored.is_some());
    let history = s.read().messages(&[9; 16], 100).unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].body.as_deref(), Some("hi"));
}

/// A store with contacts 1 (bob, session [1; 16]) and 2 (carol, session [2; 16]).
fn two_conversations() -> Store {
    let mut s = Store::open_in_memory().unwrap();
    for (uid, name) in [(1, "bob"), (2, "carol")] {
        s.write(|tx| tx.add_contact(&contact(uid, name), 1))
            .unwrap();
        s.write(|tx| {
            tx.insert_conversation(&ConversationRow {
                session_id: [uid; 16],
                group_id: vec![uid],
                contact_uid: [uid; 32],
                created_at: 1,
            })
        })
        .unwrap();
    }
    s
}

/// Queues a message on `session` from our device [7; 32]; returns its id.
fn queue(s: &mut Store, session: u8, kind: &str, sent_at: i64) -> i64 {
    let seq = s.write(|tx| tx.take_next_seq(&[session; 16])).unwrap();
    let m = NewMessage {
        session_id: [session; 16],
        sender_device: [7; 32],
        seq,
        kind,
        body: None,
        sent_at,
    };
    let envelope = format!("env-{session}-{seq}");
    s.write(|tx| tx.insert_outgoing(&m, envelope.as_bytes(), sent_at))
        .unwrap()
}

fn state(s: &Store, id: i64) -> MessageState {
    s.read().message(id).unwrap().unwrap().state
}

#[test]
fn states_round_trip_and_rank_in_order() {
    use MessageState::*;
    for st in [Queued, Sent, Stored, Delivered, Read, Failed, Received] {
        assert_eq!(MessageState::parse(st.as_str()), st);
    }
    assert_eq!(Stored.to_string(), "stored");
    assert!(Queued.rank() < Sent.rank() && Sent.rank() < Stored.rank());
    for done in [Delivered, Failed, Received] {
        assert!(Stored.rank() < done.rank() && done.rank() < Read.rank());
    }
}

#[test]
fn stored_then_delivered_then_read_and_never_back() {
    let mut s = two_conversations();
    let id = queue(&mut s, 1, "text", 10);
    assert!(
        s.write(|tx| tx.mark_stored(id, 2, 1_000, 12)).unwrap(),
        "queued → stored"
    );
    let row = s.read().message(id).unwrap().unwrap();
    assert_eq!((row.state, row.replicas), (MessageState::Stored, Some(2)));
    assert!(
        !s.write(|tx| tx.advance_message_state(id, MessageState::Sent, 13, None))
            .unwrap(),
        "stored never goes back to sent"
    );

    // A delivery receipt moves it on, once.
    let matches = |e: &[u8]| e == b"env-1-1";
    let delivered = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 1, 20, matches))
        .unwrap();
    assert_eq!(delivered, Some(id));
    let row = s.read().message(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.received_at),
        (MessageState::Delivered, Some(20))
    );
    let again: Option<i64> = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 1, 21, matches))
        .unwrap();
    assert_eq!(again, None);

    // Never delivered → stored.
    assert!(!s.write(|tx| tx.mark_stored(id, 3, 2_000, 22)).unwrap());
    assert!(
        !s.write(|tx| tx.advance_message_state(id, MessageState::Stored, 22, None))
            .unwrap()
    );
    assert_eq!(state(&s, id), MessageState::Delivered);
    assert_eq!(s.read().message(id).unwrap().unwrap().replicas, Some(2));

    let read = s
        .write(|tx| tx.mark_outgoing_read(&[1; 16], &[7; 32], 1, 30, matches))
        .unwrap();
    assert_eq!(read, Some(id));
    assert_eq!(state(&s, id), MessageState::Read);
    // Read never goes back to delivered (or stored).
    let back: Option<i64> = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 1, 31, matches))
        .unwrap();
    assert_eq!(back, None);
    assert!(!s.write(|tx| tx.mark_stored(id, 3, 2_000, 32)).unwrap());
    assert_eq!(state(&s, id), MessageState::Read);
    assert_eq!(s.read().message(id).unwrap().unwrap().received_at, Some(20));
}

#[test]
fn receipts_need_the_envelope_we_sent() {
    let mut s = two_conversations();
    let id = queue(&mut s, 1, "text", 10);
    let wrong = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 1, 20, |e| e == b"other"))
        .unwrap();
    assert_eq!(wrong, None);
    // Unknown seq, or a device that is not ours.
    let unknown = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 9, 20, |_| true))
        .unwrap();
    let other_device = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[8; 32], 1, 20, |_| true))
        .unwrap();
    assert_eq!((unknown, other_device), (None, None));
    assert_eq!(state(&s, id), MessageState::Queued);
    // A stored message can be read directly (the delivered receipt may come later or never).
    s.write(|tx| tx.mark_stored(id, 1, 1_000, 15)).unwrap();
    let read = s
        .write(|tx| tx.mark_outgoing_read(&[1; 16], &[7; 32], 1, 30, |_| true))
        .unwrap();
    assert_eq!(read, Some(id));
    let late = s
        .write(|tx| tx.mark_outgoing_delivered(&[1; 16], &[7; 32], 1, 31, |_| true))
        .unwrap();
    assert_eq!(late, None, "a late delivered receipt does not undo read");
    assert_eq!(state(&s, id), MessageState::Read);
}

#[test]
fn mark_stored_keeps_the_most_replicas_and_stays_in_the_outbox() {
    let mut s = two_conversations();
    let id = queue(&mut s, 1, "text", 10);
    s.write(|tx| tx.record_attempt_failed(id, 50, "unreachable"))
        .unwrap();
    assert!(
        s.write(|tx| tx.mark_stored(id, 3, 500, 60)).unwrap(),
        "queued → stored"
    );
    let row = s.read().message(id).unwrap().unwrap();
    assert_eq!(row.replicas, Some(3));
    assert_eq!(row.attempts, 2);
    assert_eq!(row.error, None, "the error is cleared");
    assert!(
        !s.write(|tx| tx.mark_stored(id, 2, 600, 70)).unwrap(),
        "fewer: unchanged"
    );
    assert!(
        !s.write(|tx| tx.mark_stored(id, 3, 600, 70)).unwrap(),
        "same: unchanged"
    );
    assert_eq!(s.read().message(id).unwrap().unwrap().replicas, Some(3));
    assert_eq!(
        s.read().outbox_next_attempt().unwrap(),
        Some(600),
        "but rescheduled"
    );
    assert!(
        s.write(|tx| tx.mark_stored(id, 5, 700, 80)).unwrap(),
        "more: changed"
    );
    assert_eq!(s.read().message(id).unwrap().unwrap().replicas, Some(5));

    // Still retried directly, slowly.
    assert!(s.read().outbox_due(699, 10).unwrap().is_empty());
    let due = s.read().outbox_due(700, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].id, due[0].state), (id, MessageState::Stored));
    s.write(|tx| tx.record_attempt_failed(id, 900, "still offline"))
        .unwrap();
    let row = s.read().message(id).unwrap().unwrap();
    assert_eq!(row.state, MessageState::Stored);
    assert_eq!(row.error.as_deref(), Some("still offline"));
    assert_eq!(s.read().outbox_next_attempt().unwrap(), Some(900));

    // Unknown rows and incoming rows are not touched.
    assert!(!s.write(|tx| tx.mark_stored(9_999, 1, 0, 0)).unwrap());
    let incoming: Option<i64> = s
        .write(|tx| {
            tx.insert_incoming(
                &NewMessage {
                    session_id: [1; 16],
                    sender_device: [101; 32],
                    seq: 1,
                    kind: "text",
                    body: Some("yo"),
                    sent_at: 5,
                },
                &[5; 32],
                5,
            )
        })
        .unwrap();
    let incoming = incoming.unwrap();
    assert!(!s.write(|tx| tx.mark_stored(incoming, 1, 0, 0)).unwrap());
    assert_eq!(state(&s, incoming), MessageState::Received);
    // Neither are failed ones.
    let failed = queue(&mut s, 1, "text", 11);
    s.write(|tx| tx.advance_message_state(failed, MessageState::Failed, 12, Some("refused")))
        .unwrap();
    assert!(!s.write(|tx| tx.mark_stored(failed, 1, 0, 0)).unwrap());
    assert_eq!(state(&s, failed), MessageState::Failed);
}

#[test]
fn a_stored_receipt_is_final_never_due_and_not_pending() {
    let mut s = two_conversations();
    let receipt = queue(&mut s, 1, "receipt", 10);
    let text = queue(&mut s, 1, "text", 11);
    assert!(
        s.write(|tx| tx.mark_stored(receipt, 2, NO_RETRY, 20))
            .unwrap()
    );
    assert_eq!(
        s.read().outbox_next_attempt().unwrap(),
        Some(11),
        "only the text"
    );
    let due = s.read().outbox_due(i64::MAX, 10).unwrap();
    assert_eq!(due.iter().map(|d| d.id).collect::<Vec<_>>(), vec![text]);
    assert!(
        s.write(|tx| tx.advance_message_state(text, MessageState::Delivered, 30, None))
            .unwrap()
    );
    assert_eq!(s.read().outbox_next_attempt().unwrap(), None);
    assert!(s.read().outbox_due(i64::MAX, 10).unwrap().is_empty());
    assert!(s.read().outbox_summary().unwrap().is_empty());
    assert_eq!(state(&s, receipt), MessageState::Stored);
}

#[test]
fn outbox_summary_groups_by_contact_and_state() {
    let mut s = two_conversations();
    let b1 = queue(&mut s, 1, "text", 100);
    let b2 = queue(&mut s, 1, "text", 50);
    let b3 = queue(&mut s, 1, "text", 70);
    let _b4 = queue(&mut s, 1, "text", 200);
    let b5 = queue(&mut s, 1, "text", 300);
    let c1 = queue(&mut s, 2, "text", 40);
    let c2 = queue(&mut s, 2, "text", 20);
    s.write(|tx| tx.mark_stored(b1, 3, 1_000, 1)).unwrap();
    s.write(|tx| tx.mark_stored(b2, 2, 1_000, 1)).unwrap();
    s.write(|tx| tx.advance_message_state(b3, MessageState::Sent, 1, None))
        .unwrap();
    s.write(|tx| tx.advance_message_state(b5, MessageState::Delivered, 1, None))
        .unwrap();
    s.write(|tx| tx.advance_message_state(c1, MessageState::Read, 1, None))
        .unwrap();
    let _ = c2;
    assert_eq!(
        s.read().outbox_summary().unwrap(),
        vec![
            OutboxSummaryRow {
                contact_uid: [1; 32],
                state: MessageState::Queued,
                count: 1,
                oldest: 200,
                replicas_min: None,
            },
            OutboxSummaryRow {
                contact_uid: [1; 32],
                state: MessageState::Sent,
                count: 1,
                oldest: 70,
                replicas_min: None,
            },
            OutboxSummaryRow {
                contact_uid: [1; 32],
                state: MessageState::Stored,
                count: 2,
                oldest: 50,
                replicas_min: Some(2),
            },
            OutboxSummaryRow {
                contact_uid: [2; 32],
                state: MessageState::Queued,
                count: 1,
                oldest: 20,
                replicas_min: None,
            },
        ]
    );
}

#[test]
fn a_lost_conversations_messages_are_parked_then_moved_in_order_or_failed() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    let conversation = |session: u8| ConversationRow {
        session_id: [session; 16],
        group_id: vec![session; 16],
        contact_uid: [1; 32],
        created_at: i64::from(session),
    };
    s.write(|tx| tx.insert_conversation(&conversation(1)))
        .unwrap();
    let queue = |s: &mut Store, seq: u64, kind: &str, session: u8| {
        let m = NewMessage {
            session_id: [session; 16],
            sender_device: [9; 32],
            seq,
            kind,
            body: Some("b"),
            sent_at: 10 + seq as i64,
        };
        s.write(|tx| tx.insert_outgoing(&m, b"envelope", 10))
            .unwrap()
    };
    let welcome = queue(&mut s, 1, "welcome", 1);
    let one = queue(&mut s, 2, "text", 1);
    let two = queue(&mut s, 3, "agent", 1);
    let receipt = queue(&mut s, 4, "read_receipt", 1);
    s.write(|tx| tx.mark_stored(one, 3, 500, 20)).unwrap();
    let parked = s
        .write(|tx| tx.park_conversation(&[1; 16], "lost", 1_000, 30))
        .unwrap()
        .expect("closed now");
    assert_eq!(parked.parked, [one, two]);
    assert_eq!(parked.requeued, [one], "stored goes back to queued");
    assert_eq!(parked.failed, [welcome, receipt]);
    assert!(
        s.write(|tx| tx.park_conversation(&[1; 16], "lost", 1_000, 30))
            .unwrap()
            .is_none(),
        "closed already"
    );
    // Never sent as they are (no envelope); due for a new conversation at 1 000.
    assert!(s.read().outbox_due(i64::MAX - 1, 10).unwrap().is_empty());
    assert!(s.read().parked_due(999, 10).unwrap().is_empty());
    let due = s.read().parked_due(1_000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].contact_uid, due[0].attempts, due[0].messages),
        ([1; 32], 0, 2)
    );
    assert_eq!(
        s.read().conversations_closed_since(&[1; 32], 30).unwrap(),
        1
    );
    assert!(!s.read().outgoing_in_session(one, &[1; 16]).unwrap());
    // An attempt failed: counted, later.
    assert_eq!(
        s.write(|tx| tx.reschedule_parked(&[1; 32], 2_000, "again"))
            .unwrap(),
        2
    );
    assert_eq!(s.read().parked_due(2_000, 10).unwrap()[0].attempts, 1);
    // A new conversation takes the first, in order; the second fails.
    s.write(|tx| tx.insert_conversation(&conversation(2)))
        .unwrap();
    let ids: Vec<i64> = s
        .read()
        .parked_messages(&[1; 32], 10)
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, [one, two]);
    assert!(
        s.write(|tx| tx.unpark(one, &[2; 16], 2, b"new", 2_000))
            .unwrap()
    );
    assert!(s.read().outgoing_in_session(one, &[2; 16]).unwrap());
    let row = s.read().message(one).unwrap().unwrap();
    assert_eq!((row.session_id, row.seq, row.sent_at), ([2; 16], 2, 12));
    assert_eq!(s.read().outbox_due(2_000, 10).unwrap()[0].id, one);
    assert_eq!(
        s.write(|tx| tx.fail_parked(&[1; 32], "gave up")).unwrap(),
        [two]
    );
    assert!(s.read().parked_due(i64::MAX - 1, 10).unwrap().is_empty());
}

/// A node restarted on a database copied back from an older backup: every sequence number it
/// takes afterwards lies above all those it used after the copy was made, so no peer sees a
/// new envelope as a replay of an old one.
#[test]
fn a_database_restored_from_an_older_copy_never_hands_out_a_used_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rhizo.db");
    let backup = dir.path().join("backup.db");
    let session = [9; 16];
    let t1 = 1_800_000_000_000;
    let mut used = Vec::new();
    {
        let mut s = Store::open(&path).unwrap();
        s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
        let conv = ConversationRow {
            session_id: session,
            group_id: vec![1],
            contact_uid: [1; 32],
            created_at: 1,
        };
        s.write(|tx| tx.insert_conversation(&conv)).unwrap();
        // The node starts at t1 and sends twice; then the backup is made.
        s.write(|tx| tx.raise_sequence_floor(t1)).unwrap();
        for _ in 0..2 {
            used.push(s.write(|tx| tx.take_next_seq(&session)).unwrap());
        }
    }
    std::fs::copy(&path, &backup).unwrap();
    {
        // It goes on sending (the same run, and a restart a minute later), then the disk dies.
        let mut s = Store::open(&path).unwrap();
        for _ in 0..3 {
            used.push(s.write(|tx| tx.take_next_seq(&session)).unwrap());
        }
        s.write(|tx| tx.raise_sequence_floor(t1 + 60_000)).unwrap();
        for _ in 0..3 {
            used.push(s.write(|tx| tx.take_next_seq(&session)).unwrap());
        }
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(&backup, &path).unwrap();
    // Restored, the node starts again an hour later.
    let mut s = Store::open(&path).unwrap();
    assert_eq!(
        s.write(|tx| tx.raise_sequence_floor(t1 + 3_600_000))
            .unwrap(),
        1
    );
    let next = s.write(|tx| tx.take_next_seq(&session)).unwrap();
    assert!(
        used.iter().all(|u| next > *u),
        "after the restore the node took {next}, already used: {used:?}"
    );
    assert_eq!(next as i64, sequence_floor(t1 + 3_600_000));
    // Numbers still only grow: a start with a clock set back lowers nothing.
    assert_eq!(s.write(|tx| tx.raise_sequence_floor(t1)).unwrap(), 0);
    assert_eq!(s.write(|tx| tx.take_next_seq(&session)).unwrap(), next + 1);
    assert_eq!(sequence_floor(-5), 1);
}

#[test]
fn rename_remove_and_conversation_settings() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    s.write(|tx| tx.add_contact(&contact(2, "carol"), 1))
        .unwrap();
    assert!(matches!(
        s.write(|tx| tx.rename_contact(&[1; 32], "carol")),
        Err(StoreError::NameTaken(_))
    ));
    assert!(s.write(|tx| tx.rename_contact(&[1; 32], "robert")).unwrap());
    assert!(!s.write(|tx| tx.rename_contact(&[9; 32], "nobody")).unwrap());
    assert!(s.read().contact_by_name("robert").unwrap().is_some());
    let row = ConversationRow {
        session_id: [7; 16],
        group_id: vec![7; 16],
        contact_uid: [1; 32],
        created_at: 1,
    };
    s.write(|tx| tx.insert_conversation(&row)).unwrap();
    let settings = s
        .write(|tx| tx.set_conversation_settings(&[1; 32], Some(true), None, 2))
        .unwrap();
    assert_eq!(
        settings,
        ConversationSettings {
            muted: true,
            archived: false
        }
    );
    let settings = s
        .write(|tx| tx.set_conversation_settings(&[1; 32], None, Some(true), 3))
        .unwrap();
    assert!(settings.muted && settings.archived);
    assert!(s.write(|tx| tx.remove_contact(&[1; 32])).unwrap());
    assert!(s.read().contact_by_uid(&[1; 32]).unwrap().is_none());
    assert!(s.read().conversation(&[7; 16]).unwrap().is_none());
    assert_eq!(
        s.read().conversation_settings(&[1; 32]).unwrap(),
        ConversationSettings::default()
    );
    assert!(!s.write(|tx| tx.remove_contact(&[1; 32])).unwrap());
}

#[test]
fn deleting_messages_keeps_a_bodiless_row() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    let row = ConversationRow {
        session_id: [7; 16],
        group_id: vec![7; 16],
        contact_uid: [1; 32],
        created_at: 1,
    };
    s.write(|tx| tx.insert_conversation(&row)).unwrap();
    let incoming = |seq: u64| NewMessage {
        session_id: [7; 16],
        sender_device: [101; 32],
        seq,
        kind: "text",
        body: Some("hello"),
        sent_at: 10,
    };
    let a = s
        .write(|tx| tx.insert_incoming(&incoming(1), &[1; 32], 10))
        .unwrap()
        .unwrap();
    s.write(|tx| tx.insert_incoming(&incoming(2), &[2; 32], 10))
        .unwrap();
    s.write(|tx| tx.insert_incoming(&incoming(3), &[3; 32], 10))
        .unwrap();
    assert!(s.write(|tx| tx.delete_message_locally(a)).unwrap());
    assert!(!s.write(|tx| tx.delete_message_locally(a)).unwrap());
    let gone = s.read().message(a).unwrap().unwrap();
    assert_eq!((gone.kind.as_str(), gone.body), ("deleted", None));
    assert_eq!(s.read().messages(&[7; 16], 10).unwrap().len(), 2);
    // Only the contact's own message (direction `in`) matches a request for it.
    let ours = DeleteTarget::Direct {
        sender_device: [101; 32],
        seq: 2,
        outgoing: true,
    };
    assert!(
        s.write(|tx| tx.delete_requested(&[[7; 16]], &ours))
            .unwrap()
            .is_empty()
    );
    let theirs = DeleteTarget::Direct {
        sender_device: [101; 32],
        seq: 2,
        outgoing: false,
    };
    assert_eq!(
        s.write(|tx| tx.delete_requested(&[[7; 16]], &theirs))
            .unwrap()
            .len(),
        1
    );
    // The same insert again (a copy) is not shown again.
    s.write(|tx| tx.insert_incoming(&incoming(2), &[2; 32], 11))
        .unwrap();
    assert_eq!(s.read().messages(&[7; 16], 10).unwrap().len(), 1);
    assert_eq!(s.write(|tx| tx.clear_history(&[7; 16])).unwrap(), 1);
    assert!(s.read().messages(&[7; 16], 10).unwrap().is_empty());
}

#[test]
fn history_for_a_conversation_not_here_yet_waits_and_moves_in_when_it_is_created() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    let row = |seq: u64, body: &str| HistoryRow {
        id: 0,
        session_id: [4; 16],
        outgoing: seq.is_multiple_of(2),
        sender_device: [7; 32],
        seq,
        body: body.into(),
        sent_at: 10 + seq as i64,
        read: false,
    };
    let stored = s
        .write(|tx| {
            let mut room = 2;
            let mut out = Vec::new();
            for (seq, body) in [(1, "one"), (2, "two"), (2, "two again"), (3, "three")] {
                out.push(tx.insert_history(&row(seq, body), 50, &mut room)?);
            }
            Ok::<_, StoreError>(out)
        })
        .unwrap();
    // The third is a copy of the second; the fourth finds no room left.
    assert_eq!(
        stored,
        [
            HistoryStored::Pending,
            HistoryStored::Pending,
            HistoryStored::Kept,
            HistoryStored::Full
        ]
    );
    assert_eq!(s.read().pending_history_count().unwrap(), 2);
    assert!(s.read().messages(&[4; 16], 100).unwrap().is_empty());
    // The conversation arrives: the waiting messages are in it, and wait no more.
    s.write(|tx| {
        tx.insert_conversation(&ConversationRow {
            session_id: [4; 16],
            group_id: vec![1],
            contact_uid: [1; 32],
            created_at: 60,
        })
    })
    .unwrap();
    let texts: Vec<_> = s
        .read()
        .messages(&[4; 16], 100)
        .unwrap()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert_eq!(texts, ["one", "two"]);
    assert_eq!(s.read().pending_history_count().unwrap(), 0);
    // Now here: stored at once, and a copy of what came in is kept as it was.
    let stored = s
        .write(|tx| {
            let mut room = 0;
            Ok::<_, StoreError>((
                tx.insert_history(&row(3, "three"), 70, &mut room)?,
                tx.insert_history(&row(1, "one again"), 70, &mut room)?,
            ))
        })
        .unwrap();
    assert_eq!(stored, (HistoryStored::Stored, HistoryStored::Kept));
}
