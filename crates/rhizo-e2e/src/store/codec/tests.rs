//! The codec: keys stay JSON, listed values go binary, and a database an
//! all-JSON build wrote keeps working.

use std::cell::Cell;

use openmls::prelude::GroupId;
use openmls_sqlite_storage::Codec as _;
use rhizo_core::{DeviceKey, RootKey};
use serde::{Deserialize, Serialize};

use super::*;
use crate::{Conversation, Device, E2eStore, Processed, create_key_packages};

thread_local! {
    /// Test switch: write everything as JSON, as builds before the binary codec did.
    pub(super) static ALL_JSON: Cell<bool> = const { Cell::new(false) };
}

/// Named like an openmls value type that goes binary.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct GroupContext {
    epoch: u64,
    bytes: Vec<u8>,
}

fn value() -> GroupContext {
    GroupContext {
        epoch: 7,
        bytes: (0..=255).collect(),
    }
}

#[test]
fn listed_values_are_tagged_binary_and_smaller() {
    let binary = StoreCodec::to_vec(&&value()).expect("encode");
    let json = serde_json::to_vec(&value()).expect("json");
    assert_eq!(binary[0], BINARY_TAG);
    assert!(
        binary.len() < json.len() / 2,
        "{} vs {}",
        binary.len(),
        json.len()
    );
    let back: GroupContext = StoreCodec::from_slice(&binary).expect("decode");
    assert_eq!(back, value());
}

#[test]
fn json_values_of_older_builds_are_still_read() {
    let json = serde_json::to_vec(&value()).expect("json");
    let back: GroupContext = StoreCodec::from_slice(&json).expect("decode");
    assert_eq!(back, value());
    let list: Vec<GroupContext> =
        StoreCodec::from_slice(&serde_json::to_vec(&[value()]).expect("json")).expect("decode");
    assert_eq!(list, vec![value()]);
}

#[test]
fn slices_of_listed_values_go_binary() {
    let bytes = StoreCodec::to_vec(&&[value()][..]).expect("encode");
    assert_eq!(bytes[0], BINARY_TAG);
    let back: Vec<GroupContext> = StoreCodec::from_slice(&bytes).expect("decode");
    assert_eq!(back, vec![value()]);
}

#[test]
fn keys_and_unlisted_values_stay_json() {
    let id = GroupId::from_slice(b"group");
    let bytes = StoreCodec::to_vec(&&id).expect("encode");
    assert_eq!(bytes, serde_json::to_vec(&id).expect("json"));
    assert_eq!(StoreCodec::to_vec(&&3u64).expect("encode"), b"3");
    let bad = [BINARY_TAG, 0xff, 0xff];
    assert!(StoreCodec::from_slice::<GroupContext>(&bad).is_err());
    assert!(StoreCodec::from_slice::<GroupContext>(b"").is_err());
}

const T0: u64 = 1_000_000;

fn device(root_seed: u8, device_seed: u8) -> Device {
    let root = RootKey::from_bytes(&[root_seed; 32]);
    let seed = [device_seed; 32];
    let cert = root.certify_device(&DeviceKey::from_bytes(&seed).public(), T0);
    Device::new(&seed, &cert.encode()).expect("device")
}

/// Encrypts at `from`, decrypts at `to`.
fn deliver(
    from: (&E2eStore, &Device, &mut Conversation),
    to: (&E2eStore, &Device, &mut Conversation),
    text: &[u8],
) {
    let message = from.2.encrypt(from.0, from.1, text, T0).expect("encrypt");
    let out = to.2.process(to.0, to.1, &message, T0).expect("process");
    assert_eq!(
        out,
        vec![Processed::Application {
            plaintext: text.to_vec(),
            sender: *from.1.certificate(),
        }]
    );
}

/// Rows of openmls' tables whose value starts with the binary tag.
fn binary_rows(store: &E2eStore) -> i64 {
    store
        .conn()
        .query_row(
            "SELECT (SELECT count(*) FROM openmls_group_data WHERE substr(group_data, 1, 1) = x'C0')
                  + (SELECT count(*) FROM openmls_encryption_keys WHERE substr(key_pair, 1, 1) = x'C0')",
            [],
            |row| row.get(0),
        )
        .expect("count")
}

#[test]
fn a_database_written_as_json_keeps_working() {
    let dir = tempfile::tempdir().expect("dir");
    let (alice, bob) = (device(1, 11), device(2, 21));
    let (a_path, b_path) = (dir.path().join("a.db"), dir.path().join("b.db"));
    ALL_JSON.with(|all| all.set(true));
    let id = {
        let (a_store, b_store) = (
            E2eStore::open(&a_path).expect("a"),
            E2eStore::open(&b_path).expect("b"),
        );
        let package = create_key_packages(&b_store, &bob, 1, false)
            .expect("kp")
            .remove(0);
        let (mut a, welcome) =
            Conversation::create(&a_store, &alice, &[package], T0).expect("create");
        let mut b = Conversation::join(&b_store, &bob, &welcome, T0).expect("join");
        deliver(
            (&a_store, &alice, &mut a),
            (&b_store, &bob, &mut b),
            b"json 1",
        );
        deliver(
            (&b_store, &bob, &mut b),
            (&a_store, &alice, &mut a),
            b"json 2",
        );
        assert_eq!(binary_rows(&a_store) + binary_rows(&b_store), 0);
        a.id().to_vec()
    };
    ALL_JSON.with(|all| all.set(false));
    let (a_store, b_store) = (
        E2eStore::open(&a_path).expect("a"),
        E2eStore::open(&b_path).expect("b"),
    );
    let mut a = Conversation::load(&a_store, &id)
        .expect("load")
        .expect("alice's");
    let mut b = Conversation::load(&b_store, &id)
        .expect("load")
        .expect("bob's");
    deliver(
        (&a_store, &alice, &mut a),
        (&b_store, &bob, &mut b),
        b"binary 1",
    );
    deliver(
        (&b_store, &bob, &mut b),
        (&a_store, &alice, &mut a),
        b"binary 2",
    );
    let commit = a
        .self_update(&a_store, &alice, T0 + 1)
        .expect("self update");
    b.process(&b_store, &bob, &commit, T0 + 1).expect("commit");
    a.confirm_commit(&a_store).expect("confirm");
    deliver(
        (&a_store, &alice, &mut a),
        (&b_store, &bob, &mut b),
        b"new epoch",
    );
    deliver(
        (&b_store, &bob, &mut b),
        (&a_store, &alice, &mut a),
        b"new epoch too",
    );
    assert!(binary_rows(&a_store) > 0);
    assert!(binary_rows(&b_store) > 0);
    drop((a, b));
    let mut a = Conversation::load(&a_store, &id)
        .expect("load")
        .expect("alice's");
    let mut b = Conversation::load(&b_store, &id)
        .expect("load")
        .expect("bob's");
    deliver(
        (&a_store, &alice, &mut a),
        (&b_store, &bob, &mut b),
        b"reloaded",
    );
}
