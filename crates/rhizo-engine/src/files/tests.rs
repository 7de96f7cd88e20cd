//! File messages between two engines exchanging frames in memory (real SQLite in temp dirs,
//! real MLS, signed envelopes and receipts).

use rhizo_core::file::{FileKey, FileRef};
use rhizo_e2e::RekeyPolicy;
use rhizo_store::{StoreError, messaging::Contact};

use crate::{
    Me,
    outbox::DeviceAnswer,
    send::Queued,
    test_support::{self, T0},
};

/// The identities' seed (see [`test_support::me`]).
const SEED: u8 = 1;

fn me(side: usize) -> Me {
    test_support::me(SEED, side)
}

fn contact(side: usize) -> Contact {
    test_support::contact(SEED, side)
}

/// The file tests' helpers on the shared pair.
enum Files {}
type Pair = test_support::Pair<Files>;

fn pair() -> Pair {
    Pair::new(SEED, RekeyPolicy::default())
}

impl Pair {
    /// Alice's due frames to bob, once; bob's responses handed back.
    fn deliver(&mut self) {
        let transmits = self.engines[0]
            .poll_transmits(&self.stores[0].read(), T0)
            .unwrap();
        for t in transmits {
            let engine = &self.engines[1];
            let inbound = self.stores[1]
                .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, &t.frame, T0)))
                .unwrap();
            let answers: Vec<DeviceAnswer> = vec![(me(1).device.public(), Ok(inbound.response))];
            let engine = &self.engines[0];
            self.stores[0]
                .write(|tx| engine.on_transmit_result(tx, &t, answers, T0))
                .unwrap();
        }
    }
}

fn file_ref(name: &str, inline: Option<Vec<u8>>) -> FileRef {
    FileRef {
        name: name.into(),
        size: 0,
        mime: "text/plain".into(),
        hash: [7; 32],
        key: FileKey::from_bytes([8; 32]),
        inline,
    }
}

#[test]
fn a_file_message_carries_its_reference_and_the_receiver_records_it_offered() {
    let mut p = pair();
    let kp = p.bob_key_package();
    let file = file_ref("notes.txt", Some(vec![0; 16]));
    let row = p.stores[0]
        .write(|tx| p.engines[0].send_first_file(tx, &contact(1), &file, "my notes", &[kp], T0))
        .unwrap();
    assert_eq!(row.kind, "file");
    let ours = p.stores[0]
        .read()
        .file(row.id)
        .unwrap()
        .expect("our file row");
    assert_eq!((ours.state.as_str(), ours.outgoing), ("done", true));
    p.deliver();
    let theirs = p.stores[1].read().files().unwrap();
    assert_eq!(theirs.len(), 1, "bob recorded the file");
    let f = &theirs[0];
    assert_eq!(
        (f.name.as_str(), f.mime.as_str(), f.size),
        ("notes.txt", "text/plain", 0)
    );
    assert_eq!((f.hash, f.key), ([7; 32], [8; 32]));
    assert_eq!(f.state, "offered");
    assert_eq!(f.contact_uid, Some(*me(0).uid.as_bytes()));
    let inline = p.stores[1].read().files_inline(10).unwrap();
    assert_eq!(inline, vec![(f.message_id, [7; 32], vec![0; 16])]);
    // Bob may fetch from alice's node: he is the contact of the conversation.
    let bob_peer = &contact(1).devices[0].peer_id;
    assert!(p.stores[0].read().may_fetch(&[7; 32], bob_peer).unwrap());
    // A second file in the open conversation takes the ordinary path.
    let queued = p.stores[0]
        .write(|tx| p.engines[0].queue_file(tx, "bob", &file_ref("b.bin", None), "", T0))
        .unwrap();
    assert!(matches!(queued, Queued::Message { .. }), "{queued:?}");
    p.deliver();
    assert_eq!(p.stores[1].read().files().unwrap().len(), 2);
}

#[test]
fn the_largest_inline_file_with_the_longest_caption_fits_one_envelope() {
    use rhizo_core::file::{MAX_INLINE_FILE_BYTES, encrypted_size};
    let mut p = pair();
    let kp = p.bob_key_package();
    let size = MAX_INLINE_FILE_BYTES;
    let inline = vec![0x5a; usize::try_from(encrypted_size(size)).unwrap()];
    let mut file = file_ref("photo.jpg", Some(inline.clone()));
    file.size = size;
    let caption = "c".repeat(crate::files::MAX_CAPTION_BYTES);
    p.stores[0]
        .write(|tx| p.engines[0].send_first_file(tx, &contact(1), &file, &caption, &[kp], T0))
        .unwrap();
    let transmits = p.engines[0]
        .poll_transmits(&p.stores[0].read(), T0)
        .unwrap();
    for t in &transmits {
        assert!(t.frame.len() <= rhizo_core::envelope::MAX_BATCH_FRAME_BYTES);
    }
    p.deliver();
    let held = p.stores[1].read().files_inline(10).unwrap();
    assert_eq!(held.len(), 1, "the inline content arrived with the message");
    assert_eq!(held[0].2, inline);
}

#[test]
fn a_file_reference_with_a_path_in_its_name_is_refused_and_nothing_is_stored() {
    let mut p = pair();
    let kp = p.bob_key_package();
    let bad = file_ref("../../etc/passwd", None);
    p.stores[0]
        .write(|tx| p.engines[0].send_first_file(tx, &contact(1), &bad, "", &[kp], T0))
        .unwrap();
    p.deliver();
    assert!(p.stores[1].read().files().unwrap().is_empty());
}
