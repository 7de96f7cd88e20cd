//! Groups: creation, roles, ordering, recovery — members in memory, bytes handed over by hand.

use openmls::prelude::tls_codec::{Deserialize as _, Serialize as _};
use openmls::prelude::{KeyPackageIn, ProtocolVersion};
use openmls_traits::OpenMlsProvider as _;
use rhizo_core::group::{GroupProfile, GroupRole, GroupState, ROLLBACK_EPOCHS};
use rhizo_core::{DeviceKey, RootKey, Uid};

use super::*;
use crate::create_key_packages;

const T0: u64 = 1_000_000;

pub(super) struct Member {
    pub(super) store: E2eStore<'static>,
    pub(super) device: Device,
    pub(super) conv: Option<Conversation>,
}

impl Member {
    pub(super) fn new(root_seed: u8, device_seed: u8) -> Self {
        let root = RootKey::from_bytes(&[root_seed; 32]);
        let seed = [device_seed; 32];
        let cert = root.certify_device(&DeviceKey::from_bytes(&seed).public(), T0);
        Self {
            store: E2eStore::open_in_memory().expect("store"),
            device: Device::new(&seed, &cert.encode()).expect("device"),
            conv: None,
        }
    }

    pub(super) fn uid(&self) -> Uid {
        self.device.certificate().root().uid()
    }

    pub(super) fn key_package(&self) -> Vec<u8> {
        create_key_packages(&self.store, &self.device, 1, false)
            .expect("key package")
            .remove(0)
    }

    pub(super) fn conv(&mut self) -> &mut Conversation {
        self.conv.as_mut().expect("in the group")
    }

    pub(super) fn join(&mut self, welcome: &[u8]) {
        self.conv = Some(Conversation::join(&self.store, &self.device, welcome, T0).expect("join"));
    }

    pub(super) fn try_process(&mut self, message: &[u8]) -> Result<Vec<Processed>, E2eError> {
        let conv = self.conv.as_mut().expect("in the group");
        conv.process(&self.store, &self.device, message, T0)
    }

    pub(super) fn process(&mut self, message: &[u8]) -> Vec<Processed> {
        self.try_process(message).expect("process")
    }

    /// Runs `f` on the conversation with this member's store and device.
    pub(super) fn with<T>(
        &mut self,
        f: impl FnOnce(&mut Conversation, &E2eStore<'static>, &Device) -> T,
    ) -> T {
        let conv = self.conv.as_mut().expect("in the group");
        f(conv, &self.store, &self.device)
    }

    pub(super) fn epoch(&self) -> u64 {
        self.conv.as_ref().expect("in the group").epoch()
    }

    fn encrypt(&mut self, text: &[u8]) -> Vec<u8> {
        let conv = self.conv.as_mut().expect("in the group");
        conv.encrypt(&self.store, &self.device, text, T0)
            .expect("encrypt")
    }

    /// A commit built straight with openmls, skipping our own checks (what a misbehaving
    /// member could send); our state is left unchanged.
    pub(super) fn raw_commit(
        &mut self,
        build: impl FnOnce(
            openmls::prelude::CommitBuilder<'_, openmls::group::Initial>,
        ) -> openmls::prelude::CommitBuilder<'_, openmls::group::Initial>,
    ) -> Vec<u8> {
        self.raw_commit_and_welcome(build).0
    }

    /// [`raw_commit`](Self::raw_commit) with its Welcome, if it adds anyone.
    fn raw_commit_and_welcome(
        &mut self,
        build: impl FnOnce(
            openmls::prelude::CommitBuilder<'_, openmls::group::Initial>,
        ) -> openmls::prelude::CommitBuilder<'_, openmls::group::Initial>,
    ) -> (Vec<u8>, Option<Vec<u8>>) {
        let conv = self.conv.as_mut().expect("in the group");
        let provider = self.store.provider();
        let bundle = build(conv.group.commit_builder())
            .load_psks(provider.storage())
            .expect("psks")
            .build(provider.rand(), provider.crypto(), &self.device, |_| true)
            .expect("build")
            .stage_commit(&provider)
            .expect("stage");
        conv.group
            .clear_pending_commit(provider.storage())
            .expect("clear");
        let welcome = bundle
            .to_welcome_msg()
            .map(|w| w.tls_serialize_detached().expect("serialize"));
        (
            bundle.commit().tls_serialize_detached().expect("serialize"),
            welcome,
        )
    }
}

pub(super) fn state(admins: &[&Member], name: &str) -> GroupState {
    GroupState::new(
        admins.iter().map(|m| m.uid()).collect(),
        GroupProfile::named(name).expect("name"),
    )
    .expect("state")
}

/// `members[0]` creates a group with `admins` (indexes) and everyone else joins.
pub(super) fn group_of(members: &mut [Member], admins: &[usize]) {
    let admin_refs: Vec<&Member> = admins.iter().map(|&i| &members[i]).collect();
    let state = state(&admin_refs, "Team");
    let packages: Vec<Vec<u8>> = members[1..].iter().map(Member::key_package).collect();
    let (conv, welcome) =
        Conversation::create_group(&members[0].store, &members[0].device, &state, &packages, T0)
            .expect("create");
    members[0].conv = Some(conv);
    let welcome = welcome.expect("welcome");
    for m in &mut members[1..] {
        m.join(&welcome);
    }
}

pub(super) fn same_state(members: &[Member]) {
    let first = members[0].conv.as_ref().expect("conv");
    for m in &members[1..] {
        let c = m.conv.as_ref().expect("conv");
        assert_eq!(c.epoch(), first.epoch());
        assert_eq!(c.epoch_authenticator(), first.epoch_authenticator());
        assert_eq!(c.tree_hash(), first.tree_hash());
        assert_eq!(c.roster().expect("roster"), first.roster().expect("roster"));
    }
}

pub(super) fn rejected(reason: CommitRejectReason) -> Vec<Processed> {
    vec![Processed::CommitRejected { reason }]
}

#[test]
fn create_inspect_join_and_talk() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    let st = state(&[&m[0]], "Hiking");
    let packages = vec![m[1].key_package(), m[2].key_package()];
    let (conv, welcome) =
        Conversation::create_group(&m[0].store, &m[0].device, &st, &packages, T0).expect("create");
    let welcome = welcome.expect("welcome");
    m[0].conv = Some(conv);
    // Inspecting does not use up the KeyPackage: joining afterwards works.
    let info = inspect_welcome(&m[1].store, &welcome).expect("inspect");
    assert_eq!(info.state, st);
    assert_eq!(info.epoch, 1);
    assert_eq!(info.members.len(), 3);
    assert_eq!(&info.inviter, m[0].device.certificate());
    assert_eq!(info.group_id, m[0].conv().id());
    let again = inspect_welcome(&m[1].store, &welcome).expect("inspect twice");
    assert_eq!(again, info);
    m[1].join(&welcome);
    m[2].join(&welcome);
    same_state(&m);
    let roster = m[1].conv().roster().expect("roster");
    assert_eq!(roster.len(), 3);
    for entry in &roster {
        let role = if entry.uid == m[0].uid() {
            GroupRole::Admin
        } else {
            GroupRole::Member
        };
        assert_eq!(entry.role, role);
        assert_eq!(entry.devices.len(), 1);
    }
    assert!(m[2].conv().is_group());
    assert_eq!(m[2].conv().group_state().expect("state"), st);
    let ciphertext = m[0].encrypt(b"hello group");
    for i in [1, 2] {
        assert!(matches!(
            m[i].process(&ciphertext).as_slice(),
            [Processed::Application { plaintext, .. }] if plaintext == b"hello group"
        ));
    }
    // A 1:1 Welcome is not a group.
    let (_, one_to_one) =
        Conversation::create(&m[0].store, &m[0].device, &[m[1].key_package()], T0).expect("1:1");
    assert!(matches!(
        inspect_welcome(&m[1].store, &one_to_one),
        Err(E2eError::NotAGroup)
    ));
}

#[test]
fn admin_adds_removes_and_renames() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m[..2], &[0]);
    let package = m[2].key_package();
    let (a, rest) = m.split_at_mut(1);
    let add = a[0]
        .with(|c, s, d| c.add_members(s, d, &[package], T0))
        .expect("add");
    assert_eq!(add.epoch, 2);
    rest[0].process(&add.commit);
    rest[1].join(&add.welcome.expect("welcome"));
    same_state(&m);
    let renamed = state(&[&m[0], &m[1]], "Renamed");
    let c = m[0]
        .with(|c, s, d| c.set_state(s, d, &renamed, T0))
        .expect("set state");
    for i in [1, 2] {
        assert_eq!(
            m[i].process(&c.commit),
            vec![Processed::CommitApplied { epoch: 3 }]
        );
    }
    assert_eq!(m[2].conv().group_state().expect("state"), renamed);
    // Bob is an admin now: he removes Carol, who can no longer read the group.
    let carol = m[2].uid();
    let r = {
        let b = &mut m[1];
        let conv = b.conv.as_mut().expect("conv");
        conv.remove_members(&b.store, &b.device, &[MemberRef::Uid(carol)], T0)
            .expect("remove")
    };
    m[0].process(&r.commit);
    m[2].process(&r.commit);
    assert!(!m[2].conv().group.is_active());
    let secret = m[0].encrypt(b"after carol left");
    assert!(m[1].try_process(&secret).is_ok());
    assert!(m[2].try_process(&secret).is_err());
    same_state(&m[..2]);
    let roster = m[0].conv().roster().expect("roster");
    assert_eq!(roster.len(), 2);
    assert!(matches!(
        m[0].with(|c, s, d| c.remove_members(s, d, &[MemberRef::Uid(carol)], T0)),
        Err(E2eError::NoSuchMember)
    ));
    let me = m[0].uid();
    assert!(matches!(
        m[0].with(|c, s, d| c.remove_members(s, d, &[MemberRef::Uid(me)], T0)),
        Err(E2eError::Unsupported(_))
    ));
}

#[test]
fn a_removed_admin_loses_the_role_in_the_same_commit_and_comes_back_a_member() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0, 1]);
    let (alice, bob) = (m[0].uid(), m[1].uid());
    let r = m[0]
        .with(|c, s, d| c.remove_members(s, d, &[MemberRef::Uid(bob)], T0))
        .expect("remove");
    assert_eq!(
        m[2].process(&r.commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    for i in [0, 2] {
        assert_eq!(m[i].conv().group_state().expect("state").admins(), &[alice]);
    }
    // Added again, Bob is a plain member.
    let old = m[1].conv.take().expect("bob's old group");
    old.delete(&m[1].store).expect("forget");
    let package = m[1].key_package();
    let add = m[0]
        .with(|c, s, d| c.add_members(s, d, &[package], T0))
        .expect("add");
    m[2].process(&add.commit);
    m[1].join(&add.welcome.expect("welcome"));
    same_state(&m);
    let roster = m[1].conv().roster().expect("roster");
    let entry = roster.iter().find(|e| e.uid == bob).expect("bob");
    assert_eq!(entry.role, GroupRole::Member);
}

#[test]
fn the_role_rule_refuses_and_changes_nothing() {
    let mut m = [
        Member::new(1, 11),
        Member::new(2, 21),
        Member::new(3, 31),
        Member::new(4, 41),
    ];
    group_of(&mut m[..3], &[0]);
    let before = m[0].conv().epoch_authenticator();
    // A member's own calls are refused before anything is sent.
    let package = m[3].key_package();
    let (b, _) = m[1..].split_at_mut(1);
    let b = &mut b[0];
    let conv = b.conv.as_mut().expect("conv");
    assert!(matches!(
        conv.add_members(&b.store, &b.device, std::slice::from_ref(&package), T0),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
    let carol = m[2].uid();
    {
        let b = &mut m[1];
        let conv = b.conv.as_mut().expect("conv");
        assert!(matches!(
            conv.remove_members(&b.store, &b.device, &[MemberRef::Uid(carol)], T0),
            Err(E2eError::Refused(CommitRejectReason::NotAdmin))
        ));
        let st = GroupState::new(
            vec![conv.group_state().expect("s").admins()[0]],
            GroupProfile::named("mine").expect("n"),
        )
        .expect("s");
        let refused = conv.set_state(&b.store, &b.device, &st, T0);
        assert!(
            matches!(
                refused,
                Err(E2eError::Refused(CommitRejectReason::NotAdmin))
            ),
            "{refused:?}"
        );
        assert_eq!(conv.epoch(), 1);
    }
    // The same commits made with openmls directly are refused by every receiver.
    let kp = KeyPackageIn::tls_deserialize_exact(&package)
        .expect("kp")
        .validate(m[0].store.provider().crypto(), ProtocolVersion::Mls10)
        .expect("valid");
    let carol_leaf = LeafNodeIndex::new(2);
    let ext = roles::extensions_for(&state(&[&m[1]], "coup")).expect("ext");
    let (add, welcome) = m[1].raw_commit_and_welcome(|c| c.propose_adds([kp]));
    // The added device refuses the Welcome too: its sender is no admin.
    let welcome = welcome.expect("welcome");
    assert!(matches!(
        inspect_welcome(&m[3].store, &welcome),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
    assert!(matches!(
        Conversation::join(&m[3].store, &m[3].device, &welcome, T0),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
    let bad = [
        add,
        m[1].raw_commit(|c| c.propose_removals([carol_leaf])),
        m[1].raw_commit(|c| c.propose_group_context_extensions(ext).expect("gce")),
    ];
    for commit in &bad {
        for i in [0, 2] {
            assert_eq!(m[i].process(commit), rejected(CommitRejectReason::NotAdmin));
        }
    }
    // The last admin cannot be dropped, not even by an admin.
    let nobody = state(&[&m[3]], "headless");
    {
        let a = &mut m[0];
        let conv = a.conv.as_mut().expect("conv");
        assert!(matches!(
            conv.set_state(&a.store, &a.device, &nobody, T0),
            Err(E2eError::Refused(CommitRejectReason::NoAdminLeft))
        ));
    }
    let ext = roles::extensions_for(&nobody).expect("ext");
    let headless = m[0].raw_commit(|c| c.propose_group_context_extensions(ext).expect("gce"));
    assert_eq!(
        m[1].process(&headless),
        rejected(CommitRejectReason::NoAdminLeft)
    );
    // Nothing changed anywhere; a valid commit still applies.
    for member in &mut m[..3] {
        assert_eq!(member.epoch(), 1);
        assert_eq!(member.conv().epoch_authenticator(), before);
    }
    let update = m[1]
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("member may self-update");
    assert_eq!(
        m[0].process(&update),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
}

#[test]
fn a_member_may_remove_its_own_other_device() {
    // Bob has two devices (same root 2).
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(2, 22)];
    group_of(&mut m, &[0]);
    let other = m[2].device.certificate().device();
    let b = &mut m[1];
    let conv = b.conv.as_mut().expect("conv");
    let c = conv
        .remove_members(&b.store, &b.device, &[MemberRef::Device(other)], T0)
        .expect("own device");
    assert_eq!(
        m[0].process(&c.commit),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    assert_eq!(m[0].conv().members().len(), 2);
}

#[test]
fn an_added_leaf_whose_certificate_does_not_verify_is_refused() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    let root = RootKey::from_bytes(&[4; 32]);
    let mut forged = root
        .certify_device(&DeviceKey::from_bytes(&[43; 32]).public(), T0)
        .encode();
    forged[100] ^= 1;
    let forged = rhizo_core::DeviceCertificate::decode(&forged).expect("decodes");
    let mallory = Device::new_unchecked(&[43; 32], forged);
    let mallory_store = E2eStore::open_in_memory().expect("store");
    let package = create_key_packages(&mallory_store, &mallory, 1, false)
        .expect("create")
        .remove(0);
    let kp = KeyPackageIn::tls_deserialize_exact(&package)
        .expect("kp")
        .validate(m[0].store.provider().crypto(), ProtocolVersion::Mls10)
        .expect("openmls accepts it");
    let commit = m[0].raw_commit(|c| c.propose_adds([kp]));
    assert!(matches!(
        m[1].try_process(&commit),
        Err(E2eError::InvalidCertificate(_))
    ));
    assert_eq!(m[1].epoch(), 1);
}

#[test]
fn concurrent_commits_the_smaller_id_wins_everywhere() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0, 2]);
    let x = m[0].with(|c, s, d| c.self_update(s, d, T0)).expect("x");
    let y = m[2].with(|c, s, d| c.self_update(s, d, T0)).expect("y");
    let (win, lose) = if commit_id(&x) < commit_id(&y) {
        (&x, &y)
    } else {
        (&y, &x)
    };
    // Bob sees the loser first, then the winner: rollback.
    assert_eq!(
        m[1].process(lose),
        vec![Processed::CommitApplied { epoch: 2 }]
    );
    assert_eq!(
        m[1].process(win),
        vec![
            Processed::RolledBack {
                from_epoch: 2,
                to_epoch: 1
            },
            Processed::CommitApplied { epoch: 2 }
        ]
    );
    assert_eq!(
        m[1].process(lose),
        rejected(CommitRejectReason::LostTieBreak)
    );
    assert_eq!(m[1].process(win), rejected(CommitRejectReason::Duplicate));
    let m0_won = commit_id(&x) < commit_id(&y);
    let (winner, loser) = if m0_won { (0, 2) } else { (2, 0) };
    assert_eq!(
        m[winner].process(lose),
        rejected(CommitRejectReason::LostTieBreak)
    );
    assert_eq!(m[loser].process(win).len(), 2);
    same_state(&m);
    // Everyone can talk on the winning branch.
    let text = m[loser].encrypt(b"after the fork");
    assert!(matches!(
        m[winner].process(&text).as_slice(),
        [Processed::Application { .. }]
    ));
}

#[test]
fn replayed_old_commits_change_nothing_and_snapshots_stay_in_the_window() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    let mut commits = Vec::new();
    for _ in 0..12 {
        let c = m[0]
            .with(|c, s, d| c.self_update(s, d, T0))
            .expect("update");
        m[1].process(&c);
        commits.push(c);
    }
    same_state(&m);
    let auth = m[1].conv().epoch_authenticator();
    for (i, c) in commits.iter().enumerate() {
        let out = m[1].process(c);
        let reason = if i + (ROLLBACK_EPOCHS as usize) < 12 {
            CommitRejectReason::StaleEpoch
        } else {
            CommitRejectReason::Duplicate
        };
        assert_eq!(out, rejected(reason), "commit {i}");
    }
    assert_eq!(m[1].conv().epoch_authenticator(), auth);
    for member in &m {
        let conv = member.conv.as_ref().expect("conv");
        let epochs = ordering::snapshot_epochs(member.store.conn(), conv.id()).expect("epochs");
        assert_eq!(epochs, (5..13).collect::<Vec<u64>>());
        // Each snapshot has the epoch's encryption key pairs (our leaf's among them).
        let keys: u64 = member
            .store
            .conn()
            .query_row(
                "SELECT COUNT(DISTINCT epoch) FROM e2e_group_snapshots
                 WHERE tbl = 'openmls_epoch_keys_pairs'",
                [],
                |row| row.get(0),
            )
            .expect("count");
        assert_eq!(keys, 8);
    }
}

#[test]
fn readd_recovers_a_member_that_lost_its_state() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    // Bob's device loses everything (same device key, new store).
    m[1] = Member::new(2, 21);
    let package = m[1].key_package();
    let bob = m[1].device.certificate().device();
    // Someone else's KeyPackage cannot take Bob's place.
    let mallory = Member::new(9, 91).key_package();
    assert!(matches!(
        m[0].with(|c, s, d| c.readd(s, d, MemberRef::Device(bob), &mallory, T0)),
        Err(E2eError::InvalidKeyPackage(_))
    ));
    let a = &mut m[0];
    let conv = a.conv.as_mut().expect("conv");
    let c = conv
        .readd(&a.store, &a.device, MemberRef::Device(bob), &package, T0)
        .expect("readd");
    m[1].join(&c.welcome.expect("welcome"));
    same_state(&m);
    let text = m[0].encrypt(b"welcome back");
    assert!(matches!(
        m[1].process(&text).as_slice(),
        [Processed::Application { .. }]
    ));
    assert_eq!(m[0].conv().members().len(), 2);
}

#[test]
fn a_message_from_the_winning_branch_is_parked_until_the_rollback() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0, 2]);
    let x = m[0].with(|c, s, d| c.self_update(s, d, T0)).expect("x");
    let y = m[2].with(|c, s, d| c.self_update(s, d, T0)).expect("y");
    let (win, lose, winner) = if commit_id(&x) < commit_id(&y) {
        (x, y, 0)
    } else {
        (y, x, 2)
    };
    // Bob is on the losing branch when the winner's message (epoch 2 of its branch) arrives.
    m[1].process(&lose);
    let text = m[winner].encrypt(b"from the winning branch");
    assert_eq!(m[1].process(&text), vec![Processed::Deferred]);
    assert_eq!(m[1].with(|c, s, _| c.deferred_len(s)).expect("len"), 1);
    // The winner's commit rolls Bob back; the parked message then decrypts.
    let out = m[1].process(&win);
    assert_eq!(out.len(), 3, "{out:?}");
    assert!(matches!(out[0], Processed::RolledBack { .. }));
    assert!(matches!(
        &out[2],
        Processed::Application { plaintext, .. } if plaintext == b"from the winning branch"
    ));
    assert_eq!(m[1].with(|c, s, _| c.deferred_len(s)).expect("len"), 0);
}

#[test]
fn a_forgotten_group_can_be_joined_again_from_a_new_welcome() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    let package = m[1].key_package();
    let bob = m[1].device.certificate().device();
    let c = m[0]
        .with(|c, s, d| c.readd(s, d, MemberRef::Device(bob), &package, T0))
        .expect("readd");
    let welcome = c.welcome.expect("welcome");
    assert!(matches!(
        Conversation::join(&m[1].store, &m[1].device, &welcome, T0),
        Err(E2eError::AlreadyJoined)
    ));
    let old = m[1].conv.take().expect("conv");
    let id = old.id().to_vec();
    old.delete(&m[1].store).expect("delete");
    assert!(
        Conversation::load(&m[1].store, &id)
            .expect("load")
            .is_none()
    );
    m[1].join(&welcome);
    same_state(&m);
    // Bob is not an admin: he cannot re-add anyone.
    let alice = m[0].device.certificate().device();
    let package = m[0].key_package();
    assert!(matches!(
        m[1].with(|c, s, d| c.readd(s, d, MemberRef::Device(alice), &package, T0)),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
}

#[test]
fn damaged_group_messages_never_panic_or_change_the_group() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    let commit = m[0]
        .with(|c, s, d| c.self_update(s, d, T0))
        .expect("update");
    let text = m[0].encrypt(b"hello");
    let before = m[1].conv().epoch_authenticator();
    for original in [&commit, &text] {
        for i in (0..original.len()).step_by(7) {
            let mut damaged = original.clone();
            damaged[i] ^= 0x41;
            // Undecryptable copies are parked, at most MAX_DEFERRED of them.
            let _ = m[1].try_process(&damaged);
            let _ = m[1].try_process(&original[..i]);
        }
    }
    assert_eq!(m[1].conv().epoch_authenticator(), before);
    assert!(m[1].with(|c, s, _| c.deferred_len(s)).expect("len") <= MAX_DEFERRED);
    // The undamaged commit still applies, and the message after it decrypts.
    assert_eq!(
        m[1].process(&commit)[0],
        Processed::CommitApplied { epoch: 2 }
    );
    assert!(
        m[1].process(&text).iter().any(
            |p| matches!(p, Processed::Application { plaintext, .. } if plaintext == b"hello")
        )
    );
}

#[test]
fn a_key_package_without_group_support_is_refused_clearly() {
    let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
    group_of(&mut m, &[0]);
    let old = Member::new(3, 31);
    // What a build from before groups publishes: no 0xF7A1 in the leaf's capabilities.
    let capabilities = openmls::prelude::Capabilities::builder()
        .versions(vec![ProtocolVersion::Mls10])
        .ciphersuites(vec![crate::CIPHERSUITE])
        .extensions(vec![openmls::prelude::ExtensionType::LastResort])
        .credentials(vec![openmls::prelude::CredentialType::Basic])
        .build();
    let bundle = openmls::prelude::KeyPackage::builder()
        .leaf_node_capabilities(capabilities)
        .build(
            crate::CIPHERSUITE,
            &old.store.provider(),
            &old.device,
            old.device.credential_with_key(),
        )
        .expect("key package");
    let package = bundle
        .key_package()
        .tls_serialize_detached()
        .expect("serialize");
    assert!(matches!(
        m[0].with(|c, s, d| c.add_members(s, d, &[package], T0)),
        Err(E2eError::InvalidKeyPackage(_))
    ));
    assert_eq!(m[0].epoch(), 1);
}

#[test]
fn a_version_2_store_gains_the_group_tables() {
    let mut conn = rusqlite::Connection::open_in_memory().expect("open");
    E2eStore::migrate_connection(&mut conn).expect("migrate");
    conn.execute_batch(
        "DROP TABLE e2e_group_applied; DROP TABLE e2e_group_snapshots;
         UPDATE e2e_schema SET version = 2;",
    )
    .expect("downgrade");
    E2eStore::migrate_connection(&mut conn).expect("upgrade");
    let version: u32 = conn
        .query_row("SELECT version FROM e2e_schema", [], |row| row.get(0))
        .expect("version");
    assert_eq!(version, crate::SCHEMA_VERSION);
    for table in ["e2e_group_applied", "e2e_group_snapshots"] {
        let n: u32 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| {
                row.get(0)
            })
            .expect("table exists");
        assert_eq!(n, 0);
    }
}
