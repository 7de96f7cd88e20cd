use std::path::Path;

use rhizo_node::clock_skew::ClockSkewSummary;

use super::Status;
use super::live::{
    BootstrapAddr, MAX_SKEW_MS, bootstrap_verdict, parse_bootstrap, reachability_verdict,
    skew_verdict,
};
use super::local::{LOW_FREE_BYTES, MIN_FREE_BYTES, Owned, disk_verdict, permissions_verdict};

const ME: u32 = 1000;

fn private(mode: u32) -> (String, Owned) {
    ("root.key".into(), Owned { mode, uid: ME })
}

#[test]
fn permissions_want_a_private_dir_and_private_files_of_ours() {
    let dir = Path::new("/d");
    let ok = permissions_verdict(
        dir,
        Owned {
            mode: 0o40700,
            uid: ME,
        },
        &[private(0o100600)],
        ME,
    );
    assert_eq!(ok.status, Status::Ok, "{ok:?}");

    let open_dir = permissions_verdict(
        dir,
        Owned {
            mode: 0o40755,
            uid: ME,
        },
        &[private(0o100600)],
        ME,
    );
    assert_eq!(open_dir.status, Status::Problem);
    assert_eq!(open_dir.fix.as_deref(), Some("chmod 700 /d"));

    let open_key = permissions_verdict(
        dir,
        Owned {
            mode: 0o40700,
            uid: ME,
        },
        &[private(0o100644)],
        ME,
    );
    assert_eq!(open_key.status, Status::Problem);
    assert!(open_key.detail.contains("root.key"), "{open_key:?}");
    assert_eq!(open_key.fix.as_deref(), Some("cd /d && chmod 600 root.key"));

    let theirs = permissions_verdict(
        dir,
        Owned {
            mode: 0o40700,
            uid: 0,
        },
        &[],
        ME,
    );
    assert_eq!(theirs.status, Status::Problem);
    assert!(theirs.detail.contains("uid 0"), "{theirs:?}");

    let unusable = permissions_verdict(
        dir,
        Owned {
            mode: 0o40500,
            uid: ME,
        },
        &[],
        ME,
    );
    assert_eq!(unusable.status, Status::Problem);
}

#[test]
fn disk_space_thresholds() {
    let dir = Path::new("/d");
    assert_eq!(
        disk_verdict(dir, MIN_FREE_BYTES - 1, 1 << 40).status,
        Status::Problem
    );
    assert_eq!(
        disk_verdict(dir, LOW_FREE_BYTES - 1, 1 << 40).status,
        Status::Warn
    );
    assert_eq!(
        disk_verdict(dir, LOW_FREE_BYTES, 1 << 40).status,
        Status::Ok
    );
}

fn summary(median: i64, widest: Option<(&str, i64)>) -> ClockSkewSummary {
    ClockSkewSummary {
        peers: 3,
        median_ms: Some(median),
        widest: widest.map(|(p, s)| (p.to_owned(), s)),
        max_error_ms: 40,
    }
}

#[test]
fn clock_skew_verdicts() {
    assert_eq!(
        skew_verdict(&ClockSkewSummary::default()).status,
        Status::Unknown
    );
    assert_eq!(skew_verdict(&summary(1_200, None)).status, Status::Ok);
    let warn = skew_verdict(&summary(-45_000, None));
    assert_eq!(warn.status, Status::Warn);
    assert!(warn.detail.contains("45.0 s ahead of"), "{warn:?}");
    let bad = skew_verdict(&summary(MAX_SKEW_MS + 1, None));
    assert_eq!(bad.status, Status::Problem);
    assert!(bad.detail.contains("behind"), "{bad:?}");
    // One peer far off while the rest agree with us: their clock, not ours.
    let one_off = skew_verdict(&summary(100, Some(("12D3KooWx", 3_600_000))));
    assert_eq!(one_off.status, Status::Ok);
    assert!(one_off.detail.contains("12D3KooWx"), "{one_off:?}");
}

#[test]
fn bootstrap_addresses_are_split_for_the_probe() {
    assert_eq!(
        parse_bootstrap("/ip4/127.0.0.1/tcp/4747/p2p/12D3KooWabc"),
        BootstrapAddr {
            text: "/ip4/127.0.0.1/tcp/4747/p2p/12D3KooWabc".into(),
            peer_id: Some("12D3KooWabc".into()),
            tcp: Some("127.0.0.1:4747".into()),
        }
    );
    assert_eq!(
        parse_bootstrap("/ip6/::1/tcp/9/p2p/X").tcp.as_deref(),
        Some("[::1]:9")
    );
    assert_eq!(
        parse_bootstrap("/dns4/example.invalid/tcp/1")
            .tcp
            .as_deref(),
        Some("example.invalid:1")
    );
    assert_eq!(parse_bootstrap("/ip4/127.0.0.1/udp/4747/quic-v1").tcp, None);
    assert_eq!(parse_bootstrap("").tcp, None);
}

#[test]
fn bootstrap_verdicts() {
    assert_eq!(bootstrap_verdict(0, 0, 0, None).status, Status::Warn);
    assert_eq!(bootstrap_verdict(0, 0, 0, Some(0)).status, Status::Warn);
    assert_eq!(bootstrap_verdict(0, 0, 0, Some(4)).status, Status::Ok);
    assert_eq!(bootstrap_verdict(2, 0, 0, None).status, Status::Unknown);
    assert_eq!(bootstrap_verdict(2, 0, 2, None).status, Status::Problem);
    assert_eq!(bootstrap_verdict(2, 1, 2, None).status, Status::Warn);
    assert_eq!(bootstrap_verdict(2, 2, 2, None).status, Status::Ok);
}

fn reachability(nat_status: &str, public: bool, relayed: bool) -> rhizo_net::Reachability {
    let addr: rhizo_net::Multiaddr = "/ip4/192.0.2.1/tcp/4747".parse().expect("addr");
    rhizo_net::Reachability {
        nat_status: nat_status.into(),
        public_addrs: if public {
            vec![addr.clone()]
        } else {
            Vec::new()
        },
        relayed_addrs: if relayed { vec![addr] } else { Vec::new() },
        relay_server: false,
        upnp: false,
        hole_punches: 0,
    }
}

#[test]
fn reachability_verdicts() {
    assert_eq!(
        reachability_verdict(&reachability("public", true, false), 0).status,
        Status::Ok
    );
    assert_eq!(
        reachability_verdict(&reachability("private", false, true), 1).status,
        Status::Ok
    );
    let lan = reachability_verdict(&reachability("private", false, false), 0);
    assert_eq!(lan.status, Status::Warn);
    assert!(
        lan.fix
            .as_deref()
            .is_some_and(|f| f.contains("--relay-via")),
        "{lan:?}"
    );
    assert_eq!(
        reachability_verdict(&reachability("unknown", false, false), 0).status,
        Status::Unknown
    );
    // Relays configured, none holds a slot: whatever AutoNAT says, that is broken.
    assert_eq!(
        reachability_verdict(&reachability("private", false, false), 2).status,
        Status::Problem
    );
}
