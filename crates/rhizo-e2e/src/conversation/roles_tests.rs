//! The last admin leaving: it hands its role over in an ordinary admin commit (drops itself,
//! makes another member admin), and only then can the new admin commit its removal. The role
//! rule needs no exception for it: nobody else may remove the last admin, before or after its
//! leave.

use openmls::prelude::LeafNodeIndex;
use rhizo_core::Uid;

use super::group_tests::{Member, group_of, rejected, same_state, state};
use super::*;

const T0: u64 = 1_000_000;

#[test]
fn the_last_admin_hands_over_before_leaving_and_only_then_is_removed() {
    let mut m = [Member::new(1, 11), Member::new(2, 21), Member::new(3, 31)];
    group_of(&mut m, &[0]);
    let alice = m[0].uid();
    // A member cannot remove the last admin (e.g. after its leave): no admin, refused.
    let coup = m[1].raw_commit(|c| c.propose_removals([LeafNodeIndex::new(0)]));
    for i in [0, 2] {
        assert_eq!(m[i].process(&coup), rejected(CommitRejectReason::NotAdmin));
    }
    // The hand-over: one GroupState commit by the leaving admin, bob the only admin after it.
    let handed = state(&[&m[1]], "Team");
    let c = m[0]
        .with(|c, s, d| c.set_state(s, d, &handed, T0))
        .expect("hand over");
    for i in [1, 2] {
        assert_eq!(
            m[i].process(&c.commit),
            vec![Processed::CommitApplied { epoch: 2 }]
        );
    }
    same_state(&m);
    // Alice is no admin any more: she could not add or rename now.
    let renamed = state(&[&m[1]], "Mine");
    assert!(matches!(
        m[0].with(|c, s, d| c.set_state(s, d, &renamed, T0)),
        Err(E2eError::Refused(CommitRejectReason::NotAdmin))
    ));
    // Bob, the new admin, removes her; everyone left agrees, and bob is the only admin.
    let r = m[1]
        .with(|c, s, d| c.remove_members(s, d, &[MemberRef::Uid(alice)], T0))
        .expect("remove the leaver");
    assert_eq!(
        m[2].process(&r.commit),
        vec![Processed::CommitApplied { epoch: 3 }]
    );
    m[0].process(&r.commit);
    assert!(!m[0].conv().group.is_active());
    same_state(&m[1..]);
    let roster = m[2].conv().roster().expect("roster");
    assert_eq!(roster.len(), 2);
    let admins: Vec<Uid> = roster
        .iter()
        .filter(|e| e.role == rhizo_core::group::GroupRole::Admin)
        .map(|e| e.uid)
        .collect();
    assert_eq!(admins, vec![m[1].uid()]);
    // Carol, a member, still cannot remove bob, the last admin now.
    let coup = m[2].raw_commit(|c| c.propose_removals([LeafNodeIndex::new(1)]));
    assert_eq!(m[1].process(&coup), rejected(CommitRejectReason::NotAdmin));
}

/// Issue 15: a member who is no admin adds its own user's new device, listed in its device list.
mod own_devices {
    use openmls::prelude::tls_codec::Deserialize as _;
    use openmls::prelude::{KeyPackageIn, ProtocolVersion};
    use openmls_traits::OpenMlsProvider as _;
    use rhizo_core::{DeviceKey, RootKey};

    use super::super::group_tests::{Member, group_of, rejected};
    use super::super::*;
    use super::T0;
    use crate::create_key_packages;

    /// Alice (admin), bob (member) and bob's second device (not in the group yet).
    fn alice_bob_and_bob2() -> (Vec<Member>, Member) {
        let mut m = vec![Member::new(1, 11), Member::new(2, 21)];
        group_of(&mut m, &[0]);
        (m, Member::new(2, 22))
    }

    /// Every member is told bob's device list: his first device and `bob2`.
    fn list_bob(m: &mut [Member], bob2: &Member) {
        let bob = m[1].uid();
        let keys = vec![
            m[1].device.certificate().device(),
            bob2.device.certificate().device(),
        ];
        for member in m.iter_mut() {
            member.conv().set_listed_devices(bob, keys.clone());
        }
    }

    fn validated(package: &[u8], by: &Member) -> openmls::prelude::KeyPackage {
        KeyPackageIn::tls_deserialize_exact(package)
            .expect("kp")
            .validate(by.store.provider().crypto(), ProtocolVersion::Mls10)
            .expect("valid")
    }

    #[test]
    fn a_member_adds_its_own_listed_device_and_it_joins() {
        let (mut m, mut bob2) = alice_bob_and_bob2();
        list_bob(&mut m, &bob2);
        let package = bob2.key_package();
        let c = m[1]
            .with(|c, s, d| c.add_members(s, d, &[package], T0))
            .expect("bob adds his own device");
        assert_eq!(
            m[0].process(&c.commit),
            vec![Processed::CommitApplied { epoch: 2 }]
        );
        // The new device accepts the Welcome of its own user's device, no admin.
        bob2.join(&c.welcome.expect("welcome"));
        assert_eq!(bob2.epoch(), 2);
        assert_eq!(m[0].conv().members().len(), 3);
    }

    #[test]
    fn a_member_cannot_add_another_users_device() {
        let (mut m, bob2) = alice_bob_and_bob2();
        list_bob(&mut m, &bob2);
        let carol = Member::new(3, 31);
        // Listing carol's device under bob's UID changes nothing: it is not bob's.
        let carol_key = carol.device.certificate().device();
        let bob = m[1].uid();
        m[0].conv().set_listed_devices(bob, [carol_key]);
        let package = carol.key_package();
        assert!(matches!(
            m[1].with(|c, s, d| c.add_members(s, d, std::slice::from_ref(&package), T0)),
            Err(E2eError::Refused(CommitRejectReason::NotAdmin))
        ));
        let kp = validated(&package, &m[1]);
        let commit = m[1].raw_commit(|c| c.propose_adds([kp]));
        assert_eq!(
            m[0].process(&commit),
            rejected(CommitRejectReason::NotAdmin)
        );
        assert_eq!(m[0].epoch(), 1);
    }

    #[test]
    fn an_own_device_missing_from_the_device_list_is_refused_until_listed() {
        let (mut m, bob2) = alice_bob_and_bob2();
        // Alice's copy of bob's list names only his first device (e.g. bob2 was revoked).
        list_bob(&mut m, &bob2);
        let bob = m[1].uid();
        let bob1_key = m[1].device.certificate().device();
        m[0].conv().set_listed_devices(bob, [bob1_key]);
        let package = bob2.key_package();
        let c = m[1]
            .with(|c, s, d| c.add_members(s, d, &[package], T0))
            .expect("bob's own list names it");
        assert_eq!(
            m[0].process(&c.commit),
            rejected(CommitRejectReason::DeviceNotListed)
        );
        assert_eq!(m[0].epoch(), 1);
        // With the newest list, the same commit is applied.
        let both = [bob1_key, bob2.device.certificate().device()];
        m[0].conv().set_listed_devices(bob, both);
        assert_eq!(
            m[0].process(&c.commit),
            vec![Processed::CommitApplied { epoch: 2 }]
        );
    }

    #[test]
    fn an_own_device_whose_certificate_does_not_verify_is_refused() {
        let (mut m, _) = alice_bob_and_bob2();
        // A certificate naming bob's root whose signature does not verify.
        let mut forged = RootKey::from_bytes(&[2; 32])
            .certify_device(&DeviceKey::from_bytes(&[44; 32]).public(), T0)
            .encode();
        forged[100] ^= 1;
        let forged = rhizo_core::DeviceCertificate::decode(&forged).expect("decodes");
        let bob = m[1].uid();
        assert_eq!(forged.root().uid(), bob);
        let listed = forged.device();
        for member in m.iter_mut() {
            member.conv().set_listed_devices(bob, [listed]);
        }
        let mallory = Device::new_unchecked(&[44; 32], forged);
        let store = E2eStore::open_in_memory().expect("store");
        let package = create_key_packages(&store, &mallory, 1, false)
            .expect("create")
            .remove(0);
        let kp = validated(&package, &m[1]);
        let commit = m[1].raw_commit(|c| c.propose_adds([kp]));
        assert!(matches!(
            m[0].try_process(&commit),
            Err(E2eError::InvalidCertificate(_))
        ));
        assert_eq!(m[0].epoch(), 1);
    }

    #[test]
    fn listed_devices_are_bounded() {
        let mut listed = ListedDevices::default();
        for i in 0..=MAX_LISTED_USERS {
            let mut seed = [0u8; 32];
            seed[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let uid = RootKey::from_bytes(&seed).public().uid();
            let devices = (0..20u8).map(|d| DeviceKey::from_bytes(&[d; 32]).public());
            listed.set(uid, devices);
        }
        let first = RootKey::from_bytes(&[0; 32]);
        let cert = first.certify_device(&DeviceKey::from_bytes(&[1; 32]).public(), T0);
        // The first user's list was dropped (the oldest beyond the bound).
        assert!(!listed.is_listed(&cert));
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&(MAX_LISTED_USERS as u64).to_be_bytes());
        let last = RootKey::from_bytes(&seed);
        let kept = last.certify_device(&DeviceKey::from_bytes(&[15; 32]).public(), T0);
        let cut = last.certify_device(&DeviceKey::from_bytes(&[16; 32]).public(), T0);
        assert!(listed.is_listed(&kept));
        assert!(!listed.is_listed(&cut));
    }
}
