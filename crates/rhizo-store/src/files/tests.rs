use super::*;
use crate::Store;
use crate::messaging::{Contact, ContactDevice, ConversationRow, NewMessage};

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
            addrs: Vec::new(),
            certificate: None,
        }],
    }
}

#[test]
fn file_rows_follow_their_message_and_only_its_conversation_may_fetch() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| tx.add_contact(&contact(1, "bob"), 1)).unwrap();
    s.write(|tx| tx.add_contact(&contact(2, "carol"), 1))
        .unwrap();
    let conv = ConversationRow {
        session_id: [9; 16],
        group_id: vec![1],
        contact_uid: [1; 32],
        created_at: 5,
    };
    s.write(|tx| tx.insert_conversation(&conv)).unwrap();
    let m = NewMessage {
        session_id: [9; 16],
        sender_device: [7; 32],
        seq: 1,
        kind: "file",
        body: Some("a cat"),
        sent_at: 10,
    };
    let id = s.write(|tx| tx.insert_outgoing(&m, b"env", 10)).unwrap();
    let f = NewFile {
        message_id: id,
        outgoing: true,
        hash: &[5; 32],
        key: &[6; 32],
        name: "cat.png",
        size: 1000,
        mime: "image/png",
        state: "done",
        inline: None,
    };
    s.write(|tx| tx.insert_file(&f, 10)).unwrap();
    let row = s.read().file(id).unwrap().expect("stored");
    assert_eq!(
        (row.name.as_str(), row.size, row.done_bytes),
        ("cat.png", 1000, 1000)
    );
    assert_eq!(row.contact_uid, Some([1; 32]));
    assert_eq!(s.read().files().unwrap().len(), 1);
    assert!(s.read().may_fetch(&[5; 32], "peer-1").unwrap());
    assert!(
        !s.read().may_fetch(&[5; 32], "peer-2").unwrap(),
        "carol is not in it"
    );
    assert!(!s.read().may_fetch(&[5; 32], "stranger").unwrap());
    assert!(
        !s.read().may_fetch(&[4; 32], "peer-1").unwrap(),
        "another file"
    );
    assert_eq!(s.read().file_hashes().unwrap(), vec![[5; 32]]);
    s.write(|tx| tx.set_file_path(id, "/tmp/cat.png")).unwrap();
    assert_eq!(
        s.read().file(id).unwrap().unwrap().path.as_deref(),
        Some("/tmp/cat.png")
    );
}
