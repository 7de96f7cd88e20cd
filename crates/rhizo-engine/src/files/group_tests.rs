//! File messages in a group (three engines on real SQLite, frames handed in memory by the
//! group tests' network): every member gets the reference; the holders of a group's file are
//! the other member devices; only member devices of an active group may fetch it.

use rhizo_core::file::{FileKey, FileRef};
use rhizo_store::files::FileRow;

use crate::groups::tests::{T0, settle, trio};

fn file_ref(size: u64) -> FileRef {
    FileRef {
        name: "plan.pdf".into(),
        size,
        mime: "application/pdf".into(),
        hash: [7; 32],
        key: FileKey::from_bytes([8; 32]),
        inline: None,
    }
}

fn files(node: &crate::groups::tests::Node) -> Vec<FileRow> {
    node.store.read().files().unwrap()
}

#[test]
fn a_group_file_reaches_every_member_and_each_other_member_may_hold_and_fetch_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let a = &mut nodes[0];
    let queued = a
        .store
        .write(|tx| {
            a.engine
                .queue_group_file(tx, &session, &file_ref(3 << 20), "the plan", T0)
        })
        .unwrap();
    assert_eq!(queued.row.kind, "file");
    assert_eq!(queued.total, 2);
    settle(&mut nodes, T0, 5);
    let sent = files(&nodes[0]);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].outgoing && sent[0].state == "done");
    assert_eq!(sent[0].group, Some(session));
    for (i, from_contact) in [(1, true), (2, false)] {
        let got = files(&nodes[i]);
        assert_eq!(got.len(), 1, "node {i}");
        let f = &got[0];
        assert!(!f.outgoing && f.state == "offered", "{f:?}");
        assert_eq!(
            (f.name.as_str(), f.size, f.hash),
            ("plan.pdf", 3 << 20, [7; 32])
        );
        assert_eq!(f.group, Some(session));
        assert_eq!(f.contact_uid, None);
        // Bob has alice (the sender) as a contact: auto-download; carol does not.
        assert_eq!(f.from_contact, from_contact, "node {i}");
    }
    // The holders of the file at bob: alice's and carol's devices, not bob's own.
    let holders = {
        let b = &mut nodes[1];
        b.store
            .write(|tx| b.engine.group_file_holders(tx, &session))
            .unwrap()
    };
    let mut devices: Vec<[u8; 32]> = holders.iter().map(|t| *t.device.as_bytes()).collect();
    devices.sort_unstable();
    let mut want = vec![nodes[0].device(), nodes[2].device()];
    want.sort_unstable();
    assert_eq!(devices, want);
    // Bob serves carol (a member), not a device outside the group, nor another file.
    let carol = nodes[2].device();
    let b = &mut nodes[1];
    let may = |b: &mut crate::groups::tests::Node, hash: [u8; 32], device: [u8; 32]| {
        b.store
            .write(|tx| b.engine.may_serve_group_file(tx, &hash, &device))
            .unwrap()
    };
    assert!(may(b, [7; 32], carol));
    assert!(!may(b, [7; 32], [9; 32]));
    assert!(!may(b, [6; 32], carol));
}

#[test]
fn a_removed_member_may_no_longer_fetch_a_group_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    let a = &mut nodes[0];
    a.store
        .write(|tx| {
            a.engine
                .queue_group_file(tx, &session, &file_ref(1 << 20), "", T0)
        })
        .unwrap();
    let (now, _) = settle(&mut nodes, T0, 5);
    let (carol, carol_uid) = (nodes[2].device(), nodes[2].uid());
    let a = &mut nodes[0];
    assert!(
        a.store
            .write(|tx| a.engine.may_serve_group_file(tx, &[7; 32], &carol))
            .unwrap()
    );
    a.store
        .write(|tx| a.engine.remove_group_member(tx, &session, &carol_uid, now))
        .unwrap();
    settle(&mut nodes, now, 5);
    let a = &mut nodes[0];
    assert!(
        !a.store
            .write(|tx| a.engine.may_serve_group_file(tx, &[7; 32], &carol))
            .unwrap()
    );
    let holders = a
        .store
        .write(|tx| a.engine.group_file_holders(tx, &session))
        .unwrap();
    assert_eq!(holders.len(), 1, "only bob's device is left");
}
