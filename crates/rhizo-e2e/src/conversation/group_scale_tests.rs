//! Groups of many members: sizes of the Welcome, the ratchet tree, commits and rollback
//! snapshots, and a member joining a large group.

use std::time::Instant;

use openmls::prelude::tls_codec::Serialize as _;
use rhizo_core::group::{GroupProfile, GroupState};
use rhizo_core::{DeviceKey, RootKey};

use super::group_tests::Member;
use super::*;
use crate::create_key_packages;

const T0: u64 = 1_000_000;

/// KeyPackages of `count` distinct users (one device each), all made in one store (theirs
/// are never joined).
fn key_packages(count: usize) -> Vec<Vec<u8>> {
    let pool = E2eStore::open_in_memory().expect("store");
    (0..count)
        .map(|i| {
            let mut seed = [7u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let root = RootKey::from_bytes(&seed);
            seed[31] = 9;
            let key = DeviceKey::from_bytes(&seed);
            let cert = root.certify_device(&key.public(), T0);
            let device = Device::new(&seed, &cert.encode()).expect("device");
            create_key_packages(&pool, &device, 1, false)
                .expect("key package")
                .remove(0)
        })
        .collect()
}

/// Bytes of the rollback snapshot of `epoch` in `member`'s store.
fn snapshot_bytes(member: &Member, epoch: u64) -> i64 {
    member
        .store
        .conn()
        .query_row(
            "SELECT COALESCE(SUM(COALESCE(length(c0),0) + COALESCE(length(c1),0)
                + COALESCE(length(c2),0) + COALESCE(length(c3),0) + COALESCE(length(c4),0)), 0)
             FROM e2e_group_snapshots WHERE epoch = ?1",
            [epoch],
            |row| row.get(0),
        )
        .expect("snapshot size")
}

/// Creates a group of `members` devices (the creator, `members - 2` pooled KeyPackages and
/// `joiner`), has `joiner` join, then measures an add and a remove commit.
fn measure(members: usize) {
    let mut creator = Member::new(1, 11);
    let mut joiner = Member::new(2, 21);
    let state = GroupState::new(
        vec![creator.uid()],
        GroupProfile::named("Large").expect("name"),
    )
    .expect("state");
    let mut packages = key_packages(members - 2);
    packages.push(joiner.key_package());
    let start = Instant::now();
    let (conv, welcome) =
        Conversation::create_group(&creator.store, &creator.device, &state, &packages, T0)
            .expect("create");
    let create_ms = start.elapsed().as_millis();
    creator.conv = Some(conv);
    let welcome = welcome.expect("welcome");
    let tree = creator
        .conv()
        .group
        .export_ratchet_tree()
        .tls_serialize_detached()
        .expect("tree")
        .len();
    let start = Instant::now();
    joiner.join(&welcome);
    let join_ms = start.elapsed().as_millis();
    let extra = key_packages(members + 1).pop().expect("one more");
    let start = Instant::now();
    let add = creator
        .with(|c, s, d| c.add_members(s, d, &[extra], T0))
        .expect("add");
    let add_create_ms = start.elapsed().as_millis();
    let start = Instant::now();
    joiner.process(&add.commit);
    let add_process_ms = start.elapsed().as_millis();
    let snapshot = snapshot_bytes(&creator, add.epoch - 1);
    let start = Instant::now();
    let update = joiner
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("update");
    let update_ms = start.elapsed().as_millis();
    println!(
        "members {members}: welcome {} B, tree {tree} B, create {create_ms} ms, join {join_ms} ms, \
         add commit {} B ({add_create_ms} ms create, {add_process_ms} ms process), \
         snapshot {snapshot} B, member self-update commit {} B ({update_ms} ms)",
        welcome.len(),
        add.commit.len(),
        update.len(),
    );
}

#[test]
#[ignore = "measurement: prints sizes at 64, 256 and 1,000 members"]
fn sizes_at_scale() {
    for members in [64, 256, 1000] {
        measure(members);
    }
}

/// Sends `welcome` as the engine does: whole if it fits one envelope, else split into parts
/// (encoded, delivered in reverse order with one duplicate), reassembled on the other side.
fn deliver_welcome(welcome: &[u8], sender: rhizo_core::Uid) -> Vec<u8> {
    use rhizo_core::welcome::{Reassembly, WelcomePart, WelcomeReassembler, split_welcome};
    assert!(
        !rhizo_core::welcome::fits_one_envelope(welcome.len()),
        "{}",
        welcome.len()
    );
    let mut wire: Vec<Vec<u8>> = split_welcome(welcome)
        .expect("split")
        .iter()
        .map(WelcomePart::encode)
        .collect();
    assert!(wire.len() >= 2);
    wire.reverse();
    wire.insert(1, wire[0].clone());
    let mut reassembler = WelcomeReassembler::new();
    let mut whole = None;
    for bytes in wire {
        let part = WelcomePart::decode(&bytes).expect("decode");
        if let Reassembly::Complete(w) = reassembler.insert(sender, part, T0).expect("insert") {
            whole = Some(w);
        }
    }
    whole.expect("complete")
}

/// A group of `members` devices; a member joins through the split creation Welcome, then a
/// newcomer joins through the split Welcome of a later add, and all three agree.
fn join_through_split_welcome(members: usize) {
    let mut creator = Member::new(1, 11);
    let mut joiner = Member::new(2, 21);
    let mut newcomer = Member::new(3, 31);
    let state = GroupState::new(
        vec![creator.uid()],
        GroupProfile::named("Large").expect("name"),
    )
    .expect("state");
    let mut packages = key_packages(members - 2);
    packages.push(joiner.key_package());
    let (conv, welcome) =
        Conversation::create_group(&creator.store, &creator.device, &state, &packages, T0)
            .expect("create");
    creator.conv = Some(conv);
    let welcome = deliver_welcome(&welcome.expect("welcome"), creator.uid());
    let info = crate::inspect_welcome(&joiner.store, &welcome).expect("inspect");
    assert_eq!(info.members.len(), members);
    joiner.join(&welcome);
    let add = creator
        .with(|c, s, d| c.add_members(s, d, &[newcomer.key_package()], T0))
        .expect("add");
    joiner.process(&add.commit);
    newcomer.join(&deliver_welcome(
        &add.welcome.expect("welcome"),
        creator.uid(),
    ));
    let all = [&creator, &joiner, &newcomer];
    for m in all {
        let c = m.conv.as_ref().expect("conv");
        assert_eq!(c.epoch(), add.epoch);
        assert_eq!(
            c.tree_hash(),
            creator.conv.as_ref().expect("conv").tree_hash()
        );
        assert_eq!(c.group.members().count(), members + 1);
    }
    let text = creator
        .with(|c, s, d| c.encrypt(s, d, b"hello, everyone", T0))
        .expect("encrypt");
    for m in [&mut joiner, &mut newcomer] {
        assert!(matches!(
            m.process(&text).as_slice(),
            [Processed::Application { plaintext, .. }] if plaintext == b"hello, everyone"
        ));
    }
}

#[test]
fn a_member_joins_a_group_of_300_through_a_split_welcome() {
    join_through_split_welcome(300);
}

#[test]
#[ignore = "slow (about 20 s in debug on this machine): the same at 1,000 members"]
fn a_member_joins_a_group_of_1000_through_a_split_welcome() {
    join_through_split_welcome(1000);
}

/// The value of one openmls group-data row of `member`'s group.
fn group_data(member: &mut Member, data_type: &str) -> Vec<u8> {
    let key = ordering::storage_key(member.conv().group.group_id()).expect("key");
    member
        .store
        .conn()
        .query_row(
            "SELECT group_data FROM openmls_group_data WHERE group_id = ?1 AND data_type = ?2",
            rusqlite::params![key, data_type],
            |row| row.get(0),
        )
        .expect("row")
}

/// Snapshots copy postcard values (the tree) as they are; a large JSON value (as an older
/// build wrote) is deflated, and a restore brings both back byte for byte.
#[test]
fn snapshots_copy_postcard_values_and_deflate_large_json() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    super::group_tests::group_of(&mut m, &[0]);
    let commit = m[0]
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("update");
    m[1].process(&commit);
    let counts = |m: &Member, epoch: u64| -> (i64, i64) {
        m.store
            .conn()
            .query_row(
                "SELECT COALESCE(SUM(substr(c3, 1, 4) = x'00727a31'), 0),
                        COALESCE(SUM(length(c3) > 4096 AND substr(c3, 1, 1) = x'c0'), 0)
                 FROM e2e_group_snapshots WHERE tbl = 'openmls_group_data' AND epoch = ?1",
                [epoch],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("query")
    };
    let epoch = m[0].epoch() - 1;
    let (packed, binary) = counts(&m[0], epoch);
    assert!(packed == 0 && binary >= 1, "the tree is copied as it is");
    // An older build's JSON value.
    let json = serde_json::to_vec(&vec![200u8; 4000]).expect("json");
    let (tree, id) = (group_data(&mut m[0], "tree"), m[0].conv().id().to_vec());
    let key = ordering::storage_key(m[0].conv().group.group_id()).expect("key");
    let set_tag = |m: &Member, value: &[u8]| {
        m.store
            .conn()
            .execute(
                "UPDATE openmls_group_data SET group_data = ?1
                 WHERE group_id = ?2 AND data_type = 'confirmation_tag'",
                rusqlite::params![value, key],
            )
            .expect("update");
    };
    set_tag(&m[0], &json);
    ordering::snapshot(m[0].store.conn(), &id, &key, 99).expect("snapshot");
    let (packed, binary) = counts(&m[0], 99);
    assert!(packed == 1 && binary >= 1, "the JSON value is deflated");
    set_tag(&m[0], b"changed");
    ordering::restore(m[0].store.conn(), &id, &key, 99).expect("restore");
    assert_eq!(group_data(&mut m[0], "confirmation_tag"), json);
    assert_eq!(group_data(&mut m[0], "tree"), tree);
}

/// Whether `member`'s openmls configuration (as stored) keeps `past_epochs` past epochs.
fn keeps(member: &Member, past_epochs: usize) -> bool {
    let conv = member.conv.as_ref().expect("in the group");
    let stored = Conversation::load(&member.store, conv.id())
        .expect("load")
        .expect("stored");
    conv.past_epochs() == past_epochs
        && stored.group.configuration() == &super::join_config_keeping(past_epochs)
}

/// A group that grows past `LARGE_GROUP_DEVICES` keeps one past epoch: a text one commit
/// late still decrypts, one two commits late is `WrongEpoch` (the engine refuses it
/// `DECRYPTION_FAILED`, and the sender encrypts it again); shrinking back keeps five again.
#[test]
fn a_large_group_keeps_one_past_epoch_and_refuses_older_texts() {
    let mut creator = Member::new(1, 11);
    let mut joiner = Member::new(2, 21);
    let newcomer = Member::new(3, 31);
    let state = GroupState::new(
        vec![creator.uid()],
        GroupProfile::named("Big").expect("name"),
    )
    .expect("state");
    let mut packages = key_packages(LARGE_GROUP_DEVICES - 2);
    packages.push(joiner.key_package());
    let (conv, welcome) =
        Conversation::create_group(&creator.store, &creator.device, &state, &packages, T0)
            .expect("create");
    creator.conv = Some(conv);
    joiner.join(&welcome.expect("welcome"));
    assert!(keeps(&creator, MAX_PAST_EPOCHS) && keeps(&joiner, MAX_PAST_EPOCHS));
    let encrypt = |m: &mut Member, text: &[u8]| {
        m.with(|c, s, d| c.encrypt(s, d, text, T0))
            .expect("encrypt")
    };
    let two_late = encrypt(&mut joiner, b"two commits late");
    let add = creator
        .with(|c, s, d| c.add_members(s, d, &[newcomer.key_package()], T0))
        .expect("add");
    joiner.process(&add.commit);
    assert!(keeps(&creator, LARGE_GROUP_PAST_EPOCHS) && keeps(&joiner, LARGE_GROUP_PAST_EPOCHS));
    let one_late = encrypt(&mut joiner, b"one commit late");
    let update = creator
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("update");
    joiner.process(&update);
    assert!(matches!(
        creator.process(&one_late).as_slice(),
        [Processed::Application { plaintext, .. }] if plaintext == b"one commit late"
    ));
    let group_epoch = creator.epoch();
    assert!(matches!(
        creator.try_process(&two_late),
        Err(E2eError::WrongEpoch { message_epoch, group_epoch: g })
            if message_epoch + 2 == group_epoch && g == group_epoch
    ));
    let target = [MemberRef::Device(newcomer.device.certificate().device())];
    let remove = creator
        .with(|c, s, d| c.remove_members(s, d, &target, T0))
        .expect("remove");
    joiner.process(&remove.commit);
    assert!(keeps(&creator, MAX_PAST_EPOCHS) && keeps(&joiner, MAX_PAST_EPOCHS));
}

#[test]
fn past_epochs_drop_above_the_large_group_size() {
    assert_eq!(past_epochs_for(2), MAX_PAST_EPOCHS);
    assert_eq!(past_epochs_for(LARGE_GROUP_DEVICES), MAX_PAST_EPOCHS);
    assert_eq!(
        past_epochs_for(LARGE_GROUP_DEVICES + 1),
        LARGE_GROUP_PAST_EPOCHS
    );
}
