use prost::Message;

use super::*;

fn uid(n: u8) -> Uid {
    Uid::from_bytes(&[n; 32])
}

fn state() -> GroupState {
    GroupState::new(
        vec![uid(3), uid(1)],
        GroupProfile::named("Hiking").expect("name"),
    )
    .expect("state")
}

fn wire(state: &GroupState) -> proto::GroupState {
    proto::GroupState::decode(state.encode().as_slice()).expect("decode")
}

#[test]
fn state_round_trips_sorted_and_roles_follow_admins() {
    let s = state();
    assert_eq!(s.admins(), &[uid(1), uid(3)]);
    assert_eq!(GroupState::decode(&s.encode()), Ok(s.clone()));
    assert_eq!(s.role_of(&uid(1)), GroupRole::Admin);
    assert_eq!(s.role_of(&uid(2)), GroupRole::Member);
    assert_eq!(GroupRole::Admin.to_string(), "admin");
    let dup = GroupState::new(vec![uid(1), uid(1)], s.profile().clone()).expect("dedup");
    assert_eq!(dup.admins(), &[uid(1)]);
}

#[test]
fn admins_rules() {
    let p = GroupProfile::named("x").expect("name");
    assert!(matches!(
        GroupState::new(Vec::new(), p.clone()),
        Err(GroupError::Admins(_))
    ));
    let many: Vec<Uid> = (0..=MAX_GROUP_ADMINS as u8).map(uid).collect();
    assert!(matches!(
        GroupState::new(many, p.clone()),
        Err(GroupError::Admins(_))
    ));
    let max: Vec<Uid> = (0..MAX_GROUP_ADMINS as u8).map(uid).collect();
    assert!(GroupState::new(max, p).is_ok());

    // Unsorted, duplicate and short admin UIDs on the wire are refused.
    let mut w = wire(&state());
    w.admins.reverse();
    assert_eq!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Admins("admins are not strictly ascending"))
    );
    let mut w = wire(&state());
    w.admins[1] = w.admins[0].clone();
    assert!(matches!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Admins(_))
    ));
    let mut w = wire(&state());
    w.admins[0] = bytes::Bytes::from_static(&[1; 31]);
    assert!(matches!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Admins(_))
    ));
    let mut w = wire(&state());
    w.admins.clear();
    assert!(matches!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Admins(_))
    ));
}

#[test]
fn profile_rules() {
    let ok = GroupProfile::named("x").expect("name");
    let with = |f: &dyn Fn(&mut GroupProfile)| {
        let mut p = ok.clone();
        f(&mut p);
        p.validate()
    };
    let field = |r: Result<(), GroupError>| match r {
        Err(GroupError::Profile { field, .. }) => field,
        other => panic!("expected a profile error, got {other:?}"),
    };
    assert_eq!(field(with(&|p| p.name.clear())), "name");
    assert_eq!(field(with(&|p| p.name = "é".repeat(65))), "name");
    assert!(with(&|p| p.name = "é".repeat(64)).is_ok());
    assert_eq!(field(with(&|p| p.name = "a\nb".into())), "name");
    assert_eq!(
        field(with(&|p| p.description = "d".repeat(513))),
        "description"
    );
    assert_eq!(
        field(with(&|p| p.avatar = vec![0; 32 * 1024 + 1])),
        "avatar"
    );
    assert_eq!(
        field(with(&|p| p.avatar_mime = "m".repeat(65))),
        "avatar_mime"
    );
    assert!(
        with(&|p| {
            p.avatar = vec![0; 32 * 1024];
            p.avatar_mime = "image/png".into();
        })
        .is_ok()
    );
    // The same rules apply on decode.
    let mut w = wire(&state());
    if let Some(p) = w.profile.as_mut() {
        p.name = String::new();
    }
    assert!(matches!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Profile { field: "name", .. })
    ));
    let mut w = wire(&state());
    w.profile = None;
    assert!(matches!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::Profile { field: "name", .. })
    ));
}

#[test]
fn malformed_oversized_noncanonical_and_versioned_input_is_refused() {
    assert!(matches!(
        GroupState::decode(&[0xff, 0xff, 0xff]),
        Err(GroupError::Decode { what: "state", .. })
    ));
    assert!(matches!(
        GroupState::decode(&vec![0; MAX_GROUP_STATE_BYTES + 1]),
        Err(GroupError::TooLarge { .. })
    ));
    // An unknown field (99) makes the encoding non-canonical.
    let mut bytes = state().encode();
    bytes.extend_from_slice(&[0xa0, 0x06, 0x01]);
    assert_eq!(
        GroupState::decode(&bytes),
        Err(GroupError::NonCanonical("state"))
    );
    // Fields out of order: profile before admins.
    let w = wire(&state());
    let mut reordered = proto::GroupState {
        version: 1,
        ..Default::default()
    }
    .encode_to_vec();
    let profile_only = proto::GroupState {
        profile: w.profile.clone(),
        ..Default::default()
    };
    reordered.extend(profile_only.encode_to_vec());
    let admins_only = proto::GroupState {
        admins: w.admins.clone(),
        ..Default::default()
    };
    reordered.extend(admins_only.encode_to_vec());
    assert_eq!(
        GroupState::decode(&reordered),
        Err(GroupError::NonCanonical("state"))
    );
    let mut w = wire(&state());
    w.version = 2;
    assert_eq!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::UnsupportedVersion(2))
    );
    w.version = 0;
    assert_eq!(
        GroupState::decode(&w.encode_to_vec()),
        Err(GroupError::UnsupportedVersion(0))
    );
    assert!(matches!(
        GroupState::decode(&[]),
        Err(GroupError::UnsupportedVersion(0))
    ));
}

#[test]
fn state_too_large_is_refused_on_build() {
    let admins: Vec<Uid> = (0..64).map(uid).collect();
    let profile = GroupProfile {
        name: "n".into(),
        description: "d".repeat(512),
        avatar: vec![0; 32 * 1024],
        avatar_mime: "image/png".into(),
    };
    // 64 admins + the biggest profile still fit in 48 KiB.
    let s = GroupState::new(admins, profile).expect("fits");
    assert!(s.encode().len() <= MAX_GROUP_STATE_BYTES);
    assert_eq!(GroupState::decode(&s.encode()), Ok(s));
}

#[test]
fn address_is_domain_separated_hash_of_group_id() {
    let a = GroupAddress::from_group_id(&[5; 32]);
    let expected: [u8; 32] = Sha256::new()
        .chain_update(b"rhizo/group-address/v1")
        .chain_update([5; 32])
        .finalize()
        .into();
    assert_eq!(a.as_bytes(), &expected);
    assert_ne!(a, GroupAddress::from_group_id(&[6; 32]));
    assert_eq!(GroupAddress::from_bytes(a.as_bytes()), a);
    assert_eq!(a.to_string().len(), 64);
    assert!(format!("{a:?}").starts_with("GroupAddress("));
}

#[test]
fn rejoin_round_trips_and_refuses_bad_input() {
    let r = GroupRejoin {
        group_id: [9; 32],
        key_package: vec![1, 2, 3],
    };
    assert_eq!(GroupRejoin::decode(&r.encode()), Ok(r.clone()));
    let short = proto::GroupRejoin {
        group_id: bytes::Bytes::from_static(&[1; 16]),
        key_package: bytes::Bytes::from_static(&[1]),
    };
    assert_eq!(
        GroupRejoin::decode(&short.encode_to_vec()),
        Err(GroupError::GroupIdLength(16))
    );
    let empty = GroupRejoin {
        key_package: Vec::new(),
        ..r.clone()
    };
    assert_eq!(
        GroupRejoin::decode(&empty.encode()),
        Err(GroupError::EmptyKeyPackage)
    );
    let big = GroupRejoin {
        key_package: vec![0; MAX_REJOIN_KEY_PACKAGE_BYTES + 1],
        ..r.clone()
    };
    assert!(matches!(
        GroupRejoin::decode(&big.encode()),
        Err(GroupError::TooLarge { .. })
    ));
    assert!(matches!(
        GroupRejoin::decode(&vec![0; MAX_GROUP_REJOIN_BYTES + 1]),
        Err(GroupError::TooLarge { .. })
    ));
    let mut bytes = r.encode();
    bytes.extend_from_slice(&[0x18, 0x01]);
    assert_eq!(
        GroupRejoin::decode(&bytes),
        Err(GroupError::NonCanonical("rejoin"))
    );
    assert!(matches!(
        GroupRejoin::decode(&[0x0a, 0x05]),
        Err(GroupError::Decode { .. })
    ));
}

#[test]
fn every_truncation_and_byte_flip_decodes_or_errors_without_panic() {
    let bytes = state().encode();
    for cut in 0..bytes.len() {
        let _ = GroupState::decode(&bytes[..cut]);
    }
    for i in 0..bytes.len() {
        let mut m = bytes.clone();
        m[i] ^= 0x5a;
        if let Ok(s) = GroupState::decode(&m) {
            // Whatever decodes is canonical and valid.
            assert_eq!(s.encode(), m);
        }
    }
    let r = GroupRejoin {
        group_id: [9; 32],
        key_package: vec![7; 40],
    }
    .encode();
    for i in 0..r.len() {
        let _ = GroupRejoin::decode(&r[..i]);
        let mut m = r.clone();
        m[i] ^= 0xff;
        let _ = GroupRejoin::decode(&m);
    }
}
