use super::*;
use crate::messaging::{MessageState, NewMessage};
use crate::{Store, StoreError};

fn new_group(n: u8) -> NewGroup<'static> {
    NewGroup {
        session_id: [n; 16],
        group_id: &[7; 32],
        address: [n; 32],
        name: "friends",
        my_role: GroupRole::Admin,
        invited_by: None,
        auto_join: false,
    }
}

fn member(uid: u8, role: GroupRole) -> GroupMember {
    GroupMember {
        uid: [uid; 32],
        root_pk: [uid; 32],
        role,
        added_at: 5,
    }
}

fn store_with_group() -> Store {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.insert_group(&new_group(1), 10)).unwrap();
    s
}

#[test]
fn a_group_is_a_group_conversation_found_by_session_address_and_group_id() {
    let s = store_with_group();
    let r = s.read();
    let g = r.group_by_session(&[1; 16]).unwrap().unwrap();
    assert_eq!(g.name, "friends");
    assert_eq!(g.my_role, GroupRole::Admin);
    assert_eq!(g.status, GroupStatus::Active);
    assert_eq!(r.group_by_address(&[1; 32]).unwrap().unwrap(), g);
    assert_eq!(r.group_by_group_id(&[7; 32]).unwrap().unwrap(), g);
    // Not a direct conversation: the 1:1 paths do not see it.
    assert!(r.conversation(&[1; 16]).unwrap().is_none());
    assert_eq!(r.groups().unwrap().len(), 1);
}

#[test]
fn members_are_replaced_and_the_changes_reported() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let first = vec![member(1, GroupRole::Admin), member(2, GroupRole::Member)];
    let changed = s.write(|tx| tx.set_group_members(&sid, &first)).unwrap();
    assert_eq!(changed.added, vec![[1; 32], [2; 32]]);
    let second = vec![member(1, GroupRole::Admin), member(3, GroupRole::Member)];
    let mut promoted = second.clone();
    promoted[1].role = GroupRole::Admin;
    let changed = s.write(|tx| tx.set_group_members(&sid, &second)).unwrap();
    assert_eq!(changed.added, vec![[3; 32]]);
    assert_eq!(changed.removed, vec![[2; 32]]);
    let changed = s.write(|tx| tx.set_group_members(&sid, &promoted)).unwrap();
    assert_eq!(changed.role_changed, vec![[3; 32]]);
    assert_eq!(s.read().group_members(&sid).unwrap(), promoted);
}

#[test]
fn bounds_are_typed_errors_that_change_nothing() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let too_many: Vec<GroupMember> = (0..=MAX_GROUP_MEMBERS)
        .map(|i| GroupMember {
            uid: {
                let mut u = [0; 32];
                u[..8].copy_from_slice(&(i as u64).to_be_bytes());
                u
            },
            root_pk: [1; 32],
            role: GroupRole::Member,
            added_at: 0,
        })
        .collect();
    let err = s
        .write(|tx| tx.set_group_members(&sid, &too_many))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { max: 1000, .. }),
        "{err}"
    );
    assert!(s.read().group_members(&sid).unwrap().is_empty());
    for _ in 0..MAX_GROUP_INTENTS {
        s.write(|tx| tx.add_group_intent(&sid, IntentKind::Add, b"x", 1))
            .unwrap();
    }
    let err = s
        .write(|tx| tx.add_group_intent(&sid, IntentKind::Add, b"x", 1))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { max: 16, .. }),
        "{err}"
    );
    assert_eq!(
        s.read().group_intents(&sid).unwrap().len(),
        MAX_GROUP_INTENTS
    );
}

#[test]
fn groups_per_node_are_bounded_but_a_left_group_does_not_count() {
    let mut s = Store::open_in_memory().unwrap();
    for i in 0..MAX_GROUPS {
        let mut g = new_group(0);
        let mut sid = [0; 16];
        sid[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let mut addr = [0; 32];
        addr[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let gid = addr;
        g.session_id = sid;
        g.address = addr;
        g.group_id = &gid;
        s.write(|tx| tx.insert_group(&g, 1)).unwrap();
    }
    let mut extra = new_group(0);
    extra.session_id = [0xff; 16];
    extra.address = [0xff; 32];
    extra.group_id = &[0xff; 32];
    let err = s.write(|tx| tx.insert_group(&extra, 2)).unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { max: 256, .. }),
        "{err}"
    );
    s.write(|tx| tx.update_group(&[0; 16], "friends", GroupRole::Member, GroupStatus::Left, 3))
        .unwrap();
    s.write(|tx| tx.insert_group(&extra, 4)).unwrap();
    assert_eq!(
        s.read().group_by_session(&[0; 16]).unwrap().unwrap().status,
        GroupStatus::Left
    );
}

fn text(sid: [u8; 16], seq: u64) -> NewMessage<'static> {
    NewMessage {
        session_id: sid,
        sender_device: [9; 32],
        seq,
        kind: "text",
        body: Some("hi"),
        sent_at: 100,
    }
}

#[test]
fn per_device_delivery_counts_move_forward_only() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let devices = [
        ([21; 32], [2; 32]),
        ([22; 32], [2; 32]),
        ([31; 32], [3; 32]),
    ];
    let send = GroupSend {
        recipient_uid: None,
        sender_uid: [1; 32],
        message_id: Some([4; 16]),
        devices: &devices,
        epoch: Some(3),
    };
    let id = s
        .write(|tx| tx.insert_group_outgoing(&text(sid, 1), b"env", &send, 100))
        .unwrap();
    let due = s.read().group_outbox_due(100, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].recipient_uid, None);
    assert_eq!(due[0].state, MessageState::Queued);
    // Not in the 1:1 outbox.
    assert!(s.read().outbox_due(100, 10).unwrap().is_empty());
    assert!(
        s.write(|tx| tx.set_delivery(id, &[21; 32], DeliveryState::Delivered, 101))
            .unwrap()
    );
    assert!(
        s.write(|tx| tx.set_delivery(id, &[21; 32], DeliveryState::Read, 102))
            .unwrap()
    );
    // Never backwards.
    assert!(
        !s.write(|tx| tx.set_delivery(id, &[21; 32], DeliveryState::Delivered, 103))
            .unwrap()
    );
    assert!(
        s.write(|tx| tx.set_delivery(id, &[31; 32], DeliveryState::Failed, 103))
            .unwrap()
    );
    let counts = s.read().delivery_counts(id).unwrap();
    assert_eq!(
        counts,
        DeliveryCounts {
            total: 3,
            delivered: 1,
            read: 1,
            failed: 1
        }
    );
    assert_eq!(
        s.read().pending_deliveries(id).unwrap(),
        vec![([22; 32], [2; 32])]
    );
    assert_eq!(
        s.read()
            .group_message_by_id(&sid, &[1; 32], &[4; 16])
            .unwrap(),
        Some(id)
    );
    // A rollback to epoch 2 drops epoch 3: the message (still pending on one device) is
    // encrypted again, under a new seq; one to epoch 3 keeps it.
    assert!(s.read().group_resends(&sid, 3).unwrap().is_empty());
    let resend = s.read().group_resends(&sid, 2).unwrap();
    assert_eq!(resend.len(), 1);
    assert_eq!(resend[0].message_id, [4; 16]);
    assert!(
        s.write(|tx| tx.reseal_group_outgoing(id, 9, b"env2", 4, 200))
            .unwrap()
    );
    let due = s.read().group_outbox_due(200, 10).unwrap();
    assert_eq!((due[0].seq, due[0].envelope.as_slice()), (9, &b"env2"[..]));
}

#[test]
fn incoming_group_messages_are_deduplicated_per_sender_and_message_id() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let first = s
        .write(|tx| tx.insert_group_incoming(&text(sid, 1), &[1; 32], &[2; 32], Some(&[5; 16]), 1))
        .unwrap();
    assert!(first.is_some());
    // Re-sent after a rollback: a new envelope (new seq), the same message id.
    let again = s
        .write(|tx| tx.insert_group_incoming(&text(sid, 2), &[2; 32], &[2; 32], Some(&[5; 16]), 2))
        .unwrap();
    assert_eq!(again, None);
    // Another sender may use the same id.
    let other = s
        .write(|tx| {
            let mut m = text(sid, 1);
            m.sender_device = [8; 32];
            tx.insert_group_incoming(&m, &[3; 32], &[3; 32], Some(&[5; 16]), 3)
        })
        .unwrap();
    assert!(other.is_some());
    assert_eq!(s.read().messages(&sid, 10).unwrap().len(), 2);
}

#[test]
fn group_requests_are_bounded_expire_and_are_taken_once() {
    let mut s = Store::open_in_memory().unwrap();
    let req = |n: u8| NewGroupRequest {
        session_id: [n; 16],
        inviter_uid: [2; 32],
        name: "club",
        members: 3,
        envelope: b"welcome",
        welcome: None,
    };
    let id = s
        .write(|tx| tx.hold_group_request(&req(0), 0))
        .unwrap()
        .unwrap();
    assert_eq!(
        s.write(|tx| tx.hold_group_request(&req(0), 0)).unwrap(),
        None
    );
    for n in 1..MAX_GROUP_REQUESTS as u8 {
        s.write(|tx| tx.hold_group_request(&req(n), 0)).unwrap();
    }
    let err = s
        .write(|tx| tx.hold_group_request(&req(200), 0))
        .unwrap_err();
    assert!(
        matches!(err, StoreError::LimitReached { max: 64, .. }),
        "{err}"
    );
    let taken = s.write(|tx| tx.take_group_request(id)).unwrap().unwrap();
    assert_eq!(taken.name, "club");
    assert_eq!(s.write(|tx| tx.take_group_request(id)).unwrap(), None);
    // After the TTL every held one is gone, and room is back.
    let later = GROUP_REQUEST_TTL_MS + 1;
    assert!(s.read().group_requests(later).unwrap().is_empty());
    s.write(|tx| tx.hold_group_request(&req(200), later))
        .unwrap()
        .unwrap();
    assert_eq!(s.read().group_requests(later).unwrap().len(), 1);
}

#[test]
fn intents_name_their_commit_and_are_forgotten() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let id = s
        .write(|tx| tx.add_group_intent(&sid, IntentKind::Remove, b"uid", 1))
        .unwrap();
    assert!(s.write(|tx| tx.set_intent_commit(id, &[6; 32], 4)).unwrap());
    let intents = s.read().group_intents(&sid).unwrap();
    assert_eq!(intents[0].kind, IntentKind::Remove);
    assert_eq!(intents[0].commit_id, Some([6; 32]));
    assert_eq!(intents[0].epoch, Some(4));
    assert!(s.write(|tx| tx.delete_group_intent(id)).unwrap());
    assert!(s.read().group_intents(&sid).unwrap().is_empty());
}

#[test]
fn a_rollback_drops_our_commits_and_their_welcomes_but_not_texts() {
    let mut s = store_with_group();
    let sid = [1; 16];
    let devices = [([21; 32], [2; 32])];
    let mut ids = Vec::new();
    for (seq, kind, epoch, message_id) in [
        (1, "commit", 4, None),
        (2, "commit", 5, None),
        (3, "welcome", 5, None),
        (4, "text", 5, Some([9; 16])),
    ] {
        let send = GroupSend {
            recipient_uid: None,
            sender_uid: [1; 32],
            message_id,
            devices: &devices,
            epoch: Some(epoch),
        };
        let mut m = text(sid, seq);
        m.kind = kind;
        ids.push(
            s.write(|tx| tx.insert_group_outgoing(&m, b"env", &send, 100))
                .unwrap(),
        );
    }
    assert_eq!(s.write(|tx| tx.drop_group_commits(&sid, 5)).unwrap(), 2);
    let state = |id| s.read().message(id).unwrap().unwrap().state;
    assert_eq!(state(ids[0]), MessageState::Queued);
    assert_eq!(state(ids[1]), MessageState::Failed);
    assert_eq!(state(ids[2]), MessageState::Failed);
    assert_eq!(state(ids[3]), MessageState::Queued);
}

#[test]
fn held_welcomes_that_came_in_parts_are_bounded_by_bytes() {
    let mut s = Store::open_in_memory().unwrap();
    let big = vec![7u8; MAX_HELD_WELCOME_BYTES / 2];
    let req = |n: u8, welcome: &[u8]| {
        let welcome = welcome.to_vec();
        move |tx: &mut crate::Tx<'_>| {
            tx.hold_group_request(
                &NewGroupRequest {
                    session_id: [n; 16],
                    inviter_uid: [2; 32],
                    name: "big",
                    members: 300,
                    envelope: b"last part",
                    welcome: Some(&welcome),
                },
                0,
            )
        }
    };
    let id = s.write(req(1, &big)).unwrap().unwrap();
    s.write(req(2, &big)).unwrap().unwrap();
    let err = s.write(req(3, &[1])).unwrap_err();
    assert!(matches!(err, StoreError::LimitReached { .. }), "{err}");
    // The whole Welcome comes back with the request; taking it frees the room.
    let taken = s.write(|tx| tx.take_group_request(id)).unwrap().unwrap();
    assert_eq!(taken.welcome.as_deref(), Some(&big[..]));
    assert_eq!(taken.envelope, b"last part");
    s.write(req(3, &[1])).unwrap().unwrap();
}

#[test]
fn a_groups_rejoin_row_notes_when_it_fell_behind_and_when_it_asked() {
    let mut s = Store::open_in_memory().unwrap();
    let session = [5u8; 16];
    s.write(|tx| tx.insert_group(&new_group(5), 1)).unwrap();
    let row = s
        .write(|tx| tx.note_group_behind(&session, 3, 100))
        .unwrap();
    assert_eq!(
        (row.epoch, row.behind_since, row.requested_at),
        (3, 100, None)
    );
    // Still at that epoch: the first time stands.
    let row = s
        .write(|tx| tx.note_group_behind(&session, 3, 500))
        .unwrap();
    assert_eq!(row.behind_since, 100);
    // Moved on meanwhile: counted again from now.
    let row = s
        .write(|tx| tx.note_group_behind(&session, 4, 900))
        .unwrap();
    assert_eq!((row.epoch, row.behind_since), (4, 900));
    // Stuck, and who showed it: the first time stands, each sender once; moving on forgets
    // both.
    let stuck = |s: &mut Store, at| s.write(|tx| tx.note_group_stuck(&session, at)).unwrap();
    assert_eq!(stuck(&mut s, 950), 950);
    assert_eq!(stuck(&mut s, 990), 950);
    for (uid, count) in [([1u8; 32], 1), ([2; 32], 2), ([1; 32], 2)] {
        let noted = s.write(|tx| tx.note_group_behind_sender(&session, &uid));
        assert_eq!(noted.unwrap(), count);
    }
    assert_eq!(s.read().group_rejoin(&session).unwrap().unwrap().senders, 2);
    let row = s
        .write(|tx| tx.note_group_behind(&session, 5, 995))
        .unwrap();
    assert_eq!((row.stuck_at, row.senders), (None, 0));
    s.write(|tx| tx.note_group_behind(&session, 4, 900))
        .unwrap();
    s.write(|tx| tx.set_group_rejoin_requested(&session, 4, 1000))
        .unwrap();
    let row = s.read().group_rejoin(&session).unwrap().unwrap();
    assert_eq!(row.requested_at, Some(1000));
    s.write(|tx| tx.clear_group_rejoin(&session)).unwrap();
    assert!(s.read().group_rejoin(&session).unwrap().is_none());
}
