use super::*;
use crate::Store;

fn row(uid: u8, version: u64, fetched_at: i64) -> AgentCardRow {
    AgentCardRow {
        uid: [uid; 32],
        version,
        record: format!("card-{uid}-{version}").into_bytes(),
        expires_at: version.saturating_add(1_700_000_000),
        fetched_at,
    }
}

#[test]
fn a_cached_card_is_only_replaced_by_a_higher_or_equal_version() {
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(s.read().agent_card(&[1; 32]).unwrap(), None);
    assert!(s.write(|tx| tx.upsert_agent_card(&row(1, 2, 10))).unwrap());
    assert_eq!(s.read().agent_card(&[1; 32]).unwrap(), Some(row(1, 2, 10)));
    // Older: nothing changes.
    assert!(!s.write(|tx| tx.upsert_agent_card(&row(1, 1, 20))).unwrap());
    assert_eq!(s.read().agent_card(&[1; 32]).unwrap(), Some(row(1, 2, 10)));
    // The same version again refreshes fetched_at; a newer one replaces it.
    assert!(s.write(|tx| tx.upsert_agent_card(&row(1, 2, 30))).unwrap());
    assert_eq!(
        s.read().agent_card(&[1; 32]).unwrap().unwrap().fetched_at,
        30
    );
    assert!(s.write(|tx| tx.upsert_agent_card(&row(1, 3, 40))).unwrap());
    assert_eq!(s.read().agent_card(&[1; 32]).unwrap(), Some(row(1, 3, 40)));
    assert!(s.write(|tx| tx.upsert_agent_card(&row(2, 1, 50))).unwrap());
    let listed: Vec<u8> = s
        .read()
        .agent_cards(10)
        .unwrap()
        .iter()
        .map(|r| r.uid[0])
        .collect();
    assert_eq!(listed, vec![2, 1], "most recently fetched first");
    assert!(s.write(|tx| tx.delete_agent_card(&[2; 32])).unwrap());
    assert!(!s.write(|tx| tx.delete_agent_card(&[2; 32])).unwrap());
    let err = s
        .write(|tx| tx.upsert_agent_card(&row(3, u64::MAX, 1)))
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
}

#[test]
fn the_cache_is_bounded_and_drops_the_least_recently_fetched() {
    let mut s = Store::open_in_memory().unwrap();
    s.write(|tx| {
        for i in 0..=MAX_CACHED_AGENT_CARDS {
            let mut r = row(0, 1, i as i64);
            r.uid[..8].copy_from_slice(&(i as u64).to_be_bytes());
            tx.upsert_agent_card(&r)?;
        }
        Ok::<_, StoreError>(())
    })
    .unwrap();
    let all = s.read().agent_cards(usize::MAX).unwrap();
    assert_eq!(all.len(), MAX_CACHED_AGENT_CARDS);
    assert!(all.iter().all(|r| r.fetched_at > 0), "the oldest went");
}

#[test]
fn our_card_keeps_its_version_when_removed() {
    let mut s = Store::open_in_memory().unwrap();
    assert_eq!(s.read().own_agent_card().unwrap(), None);
    s.write(|tx| tx.set_own_agent_card(1, Some(b"v1"), 10))
        .unwrap();
    s.write(|tx| tx.set_own_agent_card(2, Some(b"v2"), 20))
        .unwrap();
    s.write(|tx| tx.set_own_agent_card(2, None, 30)).unwrap();
    assert_eq!(
        s.read().own_agent_card().unwrap(),
        Some(OwnAgentCard {
            version: 2,
            record: None,
            updated_at: 30
        })
    );
    // A lower version is refused and changes nothing.
    assert!(
        s.write(|tx| tx.set_own_agent_card(1, Some(b"old"), 40))
            .is_err()
    );
    assert_eq!(s.read().own_agent_card().unwrap().unwrap().version, 2);
}
