//! Tests of the parent module (kept apart so the module file holds only its logic).

use super::*;
use crate::Store;

fn addrs(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn peer(store: &Store, peer_id: &str) -> PeerRecord {
    store
        .read()
        .list_peers()
        .expect("list")
        .into_iter()
        .find(|p| p.peer_id == peer_id)
        .expect("peer present")
}

fn ids(records: &[PeerRecord]) -> Vec<&str> {
    records.iter().map(|p| p.peer_id.as_str()).collect()
}

#[test]
fn source_names_round_trip() {
    for source in PeerSource::ALL {
        assert_eq!(source.as_str().parse::<PeerSource>(), Ok(source));
        assert_eq!(source.to_string(), source.as_str());
    }
    assert_eq!(
        "Mdns".parse::<PeerSource>(),
        Err(UnknownPeerSource("Mdns".to_owned()))
    );
}

#[test]
fn upsert_inserts_then_merges_addresses_and_keeps_first_source() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| {
            tx.upsert_peer(
                "A",
                &addrs(&["/ip4/1/tcp/1", "/ip4/2/tcp/2"]),
                PeerSource::Mdns,
                100,
            )
        })
        .expect("upsert");
    store
        .write(|tx| {
            tx.upsert_peer(
                "A",
                &addrs(&["/ip4/3/tcp/3", "/ip4/1/tcp/1"]),
                PeerSource::Kademlia,
                200,
            )
        })
        .expect("upsert");

    let a = peer(&store, "A");
    assert_eq!(a.source, PeerSource::Mdns, "first source wins");
    assert_eq!((a.first_seen, a.last_seen), (100, 200));
    assert_eq!((a.failures, a.last_failure), (0, None));
    // Newest first; the two refreshed at 200 tie and sort by text.
    assert_eq!(
        a.addrs,
        addrs(&["/ip4/1/tcp/1", "/ip4/3/tcp/3", "/ip4/2/tcp/2"])
    );
    assert_eq!(store.read().peer_count().expect("count"), 1);
}

#[test]
fn upsert_without_addresses_only_touches_last_seen() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/ip4/1/tcp/1"]), PeerSource::Identify, 100))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("A", &[], PeerSource::Identify, 150))
        .expect("upsert");
    let a = peer(&store, "A");
    assert_eq!(a.last_seen, 150);
    assert_eq!(a.addrs, addrs(&["/ip4/1/tcp/1"]));
}

#[test]
fn unusable_addresses_and_peer_ids_are_rejected() {
    let mut store = Store::open_in_memory().expect("open");
    let long = "x".repeat(MAX_ADDR_BYTES + 1);
    store
        .write(|tx| {
            tx.upsert_peer(
                "A",
                &[String::new(), long, "/ip4/1".into(), "/ip4/1".into()],
                PeerSource::Manual,
                1,
            )
        })
        .expect("upsert");
    assert_eq!(peer(&store, "A").addrs, addrs(&["/ip4/1"]));

    for bad in [String::new(), "p".repeat(MAX_PEER_ID_BYTES + 1)] {
        let err = store
            .write(|tx| tx.upsert_peer(&bad, &[], PeerSource::Manual, 1))
            .expect_err("invalid id");
        assert!(matches!(err, StoreError::InvalidPeerId { len } if len == bad.len()));
    }
    assert_eq!(store.read().peer_count().expect("count"), 1);
}

#[test]
fn address_cap_drops_the_oldest() {
    let mut store = Store::open_in_memory()
        .expect("open")
        .with_peer_book_limits(100, 3);
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a1", "/a2"]), PeerSource::Identify, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a3"]), PeerSource::Identify, 20))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a4", "/a2"]), PeerSource::Identify, 30))
        .expect("upsert");
    // /a1 (seen at 10) is the oldest and goes.
    assert_eq!(peer(&store, "A").addrs, addrs(&["/a2", "/a4", "/a3"]));

    // More in one call than the cap: the first ones given win.
    store
        .write(|tx| {
            tx.upsert_peer(
                "A",
                &addrs(&["/b1", "/b2", "/b3", "/b4", "/b5"]),
                PeerSource::Identify,
                40,
            )
        })
        .expect("upsert");
    assert_eq!(peer(&store, "A").addrs, addrs(&["/b1", "/b2", "/b3"]));
}

#[test]
fn default_address_cap_is_max_addrs_per_peer() {
    let mut store = Store::open_in_memory().expect("open");
    let many: Vec<String> = (0..MAX_ADDRS_PER_PEER + 5)
        .map(|i| format!("/ip4/{i}"))
        .collect();
    store
        .write(|tx| tx.upsert_peer("A", &many, PeerSource::Identify, 1))
        .expect("upsert");
    assert_eq!(peer(&store, "A").addrs.len(), MAX_ADDRS_PER_PEER);
}

#[test]
fn peer_cap_evicts_most_failures_then_oldest() {
    let mut store = Store::open_in_memory()
        .expect("open")
        .with_peer_book_limits(3, 4);
    store
        .write(|tx| tx.upsert_peer("old", &addrs(&["/o"]), PeerSource::Mdns, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("flaky", &addrs(&["/f"]), PeerSource::Mdns, 30))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("mid", &addrs(&["/m"]), PeerSource::Mdns, 20))
        .expect("upsert");
    store
        .write(|tx| tx.record_dial_failure("flaky", 31))
        .expect("failure");

    // Full: adding a fourth evicts "flaky" (most failures) despite being newest.
    store
        .write(|tx| tx.upsert_peer("new1", &addrs(&["/n1"]), PeerSource::Mdns, 40))
        .expect("upsert");
    assert_eq!(store.read().peer_count().expect("count"), 3);
    assert_eq!(
        ids(&store.read().list_peers().expect("list")),
        ["new1", "mid", "old"]
    );

    // Then the oldest by last_seen; its addresses go with it.
    store
        .write(|tx| tx.upsert_peer("new2", &addrs(&["/n2"]), PeerSource::Mdns, 50))
        .expect("upsert");
    assert_eq!(
        ids(&store.read().list_peers().expect("list")),
        ["new2", "new1", "mid"]
    );
    let orphan_addrs: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM peer_addrs WHERE peer_id IN ('old', 'flaky')",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(orphan_addrs, 0);

    // Updating a known peer never evicts.
    store
        .write(|tx| tx.upsert_peer("mid", &addrs(&["/m2"]), PeerSource::Mdns, 60))
        .expect("upsert");
    assert_eq!(store.read().peer_count().expect("count"), 3);
}

#[test]
fn the_peer_being_added_is_never_evicted() {
    let mut store = Store::open_in_memory()
        .expect("open")
        .with_peer_book_limits(1, 4);
    store
        .write(|tx| tx.upsert_peer("A", &[], PeerSource::Manual, 100))
        .expect("upsert");
    // B's clock is behind and B would sort as oldest; A goes anyway.
    store
        .write(|tx| tx.upsert_peer("B", &[], PeerSource::Manual, 50))
        .expect("upsert");
    assert_eq!(ids(&store.read().list_peers().expect("list")), ["B"]);
}

#[test]
fn dial_failures_count_up_and_success_resets() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Bootstrap, 10))
        .expect("upsert");
    assert_eq!(
        store
            .write(|tx| tx.record_dial_failure("A", 11))
            .expect("failure"),
        1
    );
    assert_eq!(
        store
            .write(|tx| tx.record_dial_failure("A", 12))
            .expect("failure"),
        2
    );
    let a = peer(&store, "A");
    assert_eq!((a.failures, a.last_failure, a.last_seen), (2, Some(12), 10));

    store
        .write(|tx| tx.record_dial_success("A", 20))
        .expect("success");
    let a = peer(&store, "A");
    assert_eq!((a.failures, a.last_seen), (0, 20));
    assert_eq!(
        a.last_failure,
        Some(12),
        "history of the last failure is kept"
    );

    // Unknown peers: no error, nothing created.
    assert_eq!(
        store
            .write(|tx| tx.record_dial_failure("nobody", 30))
            .expect("failure"),
        0
    );
    store
        .write(|tx| tx.record_dial_success("nobody", 30))
        .expect("success");
    assert_eq!(store.read().peer_count().expect("count"), 1);
}

#[test]
fn peers_for_dial_orders_by_failures_then_recency_and_skips_addressless() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("stale", &addrs(&["/s"]), PeerSource::Kademlia, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("fresh", &addrs(&["/f1", "/f2"]), PeerSource::Kademlia, 30))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("failing", &addrs(&["/x"]), PeerSource::Kademlia, 40))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("no-addrs", &[], PeerSource::Kademlia, 50))
        .expect("upsert");
    store
        .write(|tx| tx.record_dial_failure("failing", 41))
        .expect("failure");

    let all = store.read().peers_for_dial(10).expect("dial");
    assert_eq!(ids(&all), ["fresh", "stale", "failing"]);
    assert_eq!(all[0].addrs, addrs(&["/f1", "/f2"]));
    assert_eq!(all[2].failures, 1);

    assert_eq!(
        ids(&store.read().peers_for_dial(2).expect("dial")),
        ["fresh", "stale"]
    );
    assert!(store.read().peers_for_dial(0).expect("dial").is_empty());
}

#[test]
fn list_peers_includes_peers_without_addresses() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Manual, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("B", &[], PeerSource::Manual, 20))
        .expect("upsert");
    let all = store.read().list_peers().expect("list");
    assert_eq!(ids(&all), ["B", "A"]);
    assert!(all[0].addrs.is_empty());
}

#[test]
fn remove_peer_cascades_to_addresses() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a1", "/a2"]), PeerSource::Manual, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("B", &addrs(&["/b"]), PeerSource::Manual, 10))
        .expect("upsert");
    assert!(store.write(|tx| tx.remove_peer("A")).expect("remove"));
    assert!(!store.write(|tx| tx.remove_peer("A")).expect("remove again"));
    let remaining: Vec<String> = store
        .conn
        .prepare("SELECT peer_id || ' ' || addr FROM peer_addrs")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(remaining, ["B /b"]);
}

#[test]
fn reputation_is_stored_per_peer_and_listed_when_not_neutral() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Kademlia, 10))
        .expect("upsert");
    store
        .write(|tx| tx.upsert_peer("B", &addrs(&["/b"]), PeerSource::Kademlia, 10))
        .expect("upsert");
    assert!(store.read().peer_reputations().expect("list").is_empty());

    store
        .write(|tx| tx.set_peer_reputation("A", -30, None))
        .expect("set");
    store
        .write(|tx| tx.set_peer_reputation("B", -60, Some(1_700_000_000_000)))
        .expect("set");
    assert_eq!(
        store.read().peer_reputations().expect("list"),
        [
            ("A".to_owned(), -30, None),
            ("B".to_owned(), -60, Some(1_700_000_000_000))
        ]
    );
    // Overwrite; back to neutral drops it from the list, but keeps the peer.
    store
        .write(|tx| tx.set_peer_reputation("A", 0, None))
        .expect("set");
    store
        .write(|tx| tx.set_peer_reputation("B", 5, None))
        .expect("set");
    assert_eq!(
        store.read().peer_reputations().expect("list"),
        [("B".to_owned(), 5, None)]
    );
    assert_eq!(store.read().peer_count().expect("count"), 2);
    assert_eq!(
        peer(&store, "A").addrs,
        addrs(&["/a"]),
        "addresses untouched"
    );

    for bad in [String::new(), "p".repeat(MAX_PEER_ID_BYTES + 1)] {
        let err = store
            .write(|tx| tx.set_peer_reputation(&bad, -1, None))
            .expect_err("invalid id");
        assert!(matches!(err, StoreError::InvalidPeerId { .. }), "{err:?}");
    }
}

#[test]
fn reputation_of_an_unknown_peer_adds_a_placeholder() {
    let mut store = Store::open_in_memory().expect("open");
    // Neutral: nothing to remember, nothing added.
    store
        .write(|tx| tx.set_peer_reputation("ghost", 0, None))
        .expect("set");
    assert_eq!(store.read().peer_count().expect("count"), 0);

    store
        .write(|tx| tx.set_peer_reputation("M", -55, Some(99)))
        .expect("set");
    let m = peer(&store, "M");
    assert!(m.addrs.is_empty());
    assert_eq!(
        (m.source, m.first_seen, m.last_seen),
        (PeerSource::Identify, 0, 0)
    );
    assert!(
        store.read().peers_for_dial(10).expect("dial").is_empty(),
        "no address"
    );
    assert_eq!(
        store.read().peer_reputations().expect("list"),
        [("M".to_owned(), -55, Some(99))]
    );

    // The first real sighting fills in the source and times; the reputation stays.
    store
        .write(|tx| tx.upsert_peer("M", &addrs(&["/m"]), PeerSource::Mdns, 500))
        .expect("upsert");
    let m = peer(&store, "M");
    assert_eq!(
        (m.source, m.first_seen, m.last_seen),
        (PeerSource::Mdns, 500, 500)
    );
    // Later sightings keep the first source, as for any peer.
    store
        .write(|tx| tx.upsert_peer("M", &[], PeerSource::Kademlia, 600))
        .expect("upsert");
    let m = peer(&store, "M");
    assert_eq!(
        (m.source, m.first_seen, m.last_seen),
        (PeerSource::Mdns, 500, 600)
    );
    assert_eq!(
        store.read().peer_reputations().expect("list"),
        [("M".to_owned(), -55, Some(99))]
    );
}

#[test]
fn placeholders_respect_the_peer_cap() {
    let mut store = Store::open_in_memory()
        .expect("open")
        .with_peer_book_limits(2, 4);
    store
        .write(|tx| tx.upsert_peer("A", &addrs(&["/a"]), PeerSource::Mdns, 10))
        .expect("upsert");
    store
        .write(|tx| tx.set_peer_reputation("X", -10, None))
        .expect("set");
    store
        .write(|tx| tx.set_peer_reputation("Y", -20, None))
        .expect("set");
    // X (never seen: last_seen 0) went to make room for Y; A stays.
    assert_eq!(store.read().peer_count().expect("count"), 2);
    assert_eq!(
        store.read().peer_reputations().expect("list"),
        [("Y".to_owned(), -20, None)]
    );
    assert_eq!(peer(&store, "A").addrs, addrs(&["/a"]));
}

#[test]
fn evict_failing_peers_spares_configured_and_penalised_peers() {
    let mut store = Store::open_in_memory().expect("open");
    for (id, source) in [
        ("flaky", PeerSource::Kademlia),
        ("flaky-mdns", PeerSource::Mdns),
        ("flaky-pex", PeerSource::Exchange),
        ("once", PeerSource::Identify),
        ("boot", PeerSource::Bootstrap),
        ("mine", PeerSource::Manual),
        ("bad", PeerSource::Kademlia),
        ("banned", PeerSource::Kademlia),
        ("fine", PeerSource::Kademlia),
    ] {
        store
            .write(|tx| tx.upsert_peer(id, &addrs(&[&format!("/{id}")]), source, 10))
            .expect("upsert");
    }
    for id in [
        "flaky",
        "flaky-mdns",
        "flaky-pex",
        "boot",
        "mine",
        "bad",
        "banned",
    ] {
        for t in 0..3 {
            store
                .write(|tx| tx.record_dial_failure(id, 20 + t))
                .expect("failure");
        }
    }
    store
        .write(|tx| tx.record_dial_failure("once", 20))
        .expect("failure");
    store
        .write(|tx| tx.set_peer_reputation("bad", -5, None))
        .expect("set");
    store
        .write(|tx| tx.set_peer_reputation("banned", 0, Some(1000)))
        .expect("set");

    assert_eq!(
        store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
        3
    );
    assert_eq!(
        ids(&store.read().list_peers().expect("list"))
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>(),
        ["bad", "banned", "boot", "fine", "mine", "once"]
            .into_iter()
            .collect()
    );
    let orphans: i64 = store
        .conn
        .query_row(
            "SELECT count(*) FROM peer_addrs WHERE peer_id LIKE 'flaky%'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(orphans, 0, "addresses go with the peer");
    assert_eq!(
        store.write(|tx| tx.evict_failing_peers(3)).expect("evict"),
        0
    );
    assert_eq!(
        store.write(|tx| tx.evict_failing_peers(1)).expect("evict"),
        1,
        "once"
    );
    let err = store
        .write(|tx| tx.evict_failing_peers(0))
        .expect_err("zero");
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn unknown_source_in_the_file_is_an_error_not_a_panic() {
    let mut store = Store::open_in_memory().expect("open");
    store
        .write(|tx| tx.upsert_peer("A", &[], PeerSource::Manual, 10))
        .expect("upsert");
    store
        .conn
        .execute("UPDATE peers SET source = 'carrier-pigeon'", [])
        .expect("corrupt");
    let err = store.read().list_peers().expect_err("unknown source");
    assert!(matches!(err, StoreError::Sqlite { .. }), "{err:?}");
}
