use super::*;

const M: [u8; 32] = [1; 32];

#[test]
fn a_store_pushes_to_each_peer_that_fetched_the_mailbox() {
    let mut book = PushBook::new();
    book.subscribe(M, "phone", 0);
    book.subscribe(M, "laptop", 0);
    book.on_stored(&[2; 32], 10);
    assert!(
        book.poll_due(10, usize::MAX).is_empty(),
        "nobody fetched that mailbox here"
    );
    book.on_stored(&M, 10);
    let mut due = book.poll_due(10, usize::MAX);
    due.sort();
    assert_eq!(due, vec![(M, "laptop"), (M, "phone")]);
    assert!(book.poll_due(10, usize::MAX).is_empty(), "handed out once");
}

#[test]
fn a_burst_of_stores_is_one_push_per_window() {
    let mut book = PushBook::new();
    book.subscribe(M, 'p', 0);
    book.on_stored(&M, 100);
    assert_eq!(book.poll_due(100, usize::MAX), vec![(M, 'p')]);
    // More stores while the push is on its way: one more push, after the window.
    book.on_stored(&M, 110);
    book.on_stored(&M, 120);
    book.on_sent(&M, &'p', true, 130);
    assert!(book.poll_due(130, usize::MAX).is_empty());
    assert_eq!(book.next_deadline(), Some(130 + PUSH_MIN_INTERVAL_MS));
    assert_eq!(
        book.poll_due(130 + PUSH_MIN_INTERVAL_MS, usize::MAX),
        vec![(M, 'p')]
    );
    book.on_sent(&M, &'p', true, 700);
    // A store inside the window of the last push waits for its end.
    book.on_stored(&M, 700);
    assert!(book.poll_due(700, usize::MAX).is_empty());
    assert_eq!(book.next_deadline(), Some(630 + PUSH_MIN_INTERVAL_MS));
    // Nothing new: nothing due.
    book.poll_due(2_000, usize::MAX);
    book.on_sent(&M, &'p', true, 2_000);
    assert_eq!(book.next_deadline(), None);
    assert!(book.poll_due(10_000, usize::MAX).is_empty());
}

#[test]
fn an_undelivered_push_goes_out_when_the_peer_connects() {
    let mut book = PushBook::new();
    book.subscribe(M, 'p', 0);
    book.on_stored(&M, 1_000);
    assert_eq!(book.poll_due(1_000, usize::MAX), vec![(M, 'p')]);
    book.on_sent(&M, &'p', false, 1_100);
    book.on_stored(&M, 5_000);
    assert!(
        book.poll_due(60_000, usize::MAX).is_empty(),
        "waits for a connection"
    );
    assert_eq!(book.next_deadline(), None);
    book.on_connected(&'q', 70_000);
    assert!(book.poll_due(70_000, usize::MAX).is_empty(), "another peer");
    book.on_connected(&'p', 70_000);
    assert_eq!(book.poll_due(70_000, usize::MAX), vec![(M, 'p')]);
}

#[test]
fn subscriptions_expire_and_are_bounded() {
    let mut book = PushBook::new();
    book.subscribe(M, 0u32, 0);
    book.on_stored(&M, PUSH_SUBSCRIPTION_TTL_MS);
    assert!(
        book.poll_due(PUSH_SUBSCRIPTION_TTL_MS, usize::MAX)
            .is_empty(),
        "expired"
    );
    assert!(book.is_empty());

    // Peers per mailbox: the one that fetched least recently goes.
    for peer in 0..=MAX_PUSH_PEERS_PER_MAILBOX as u32 {
        book.subscribe(M, peer, i64::from(peer));
    }
    book.on_stored(&M, 100);
    let due = book.poll_due(100, usize::MAX);
    assert_eq!(due.len(), MAX_PUSH_PEERS_PER_MAILBOX);
    assert!(!due.iter().any(|(_, p)| *p == 0));

    // Mailboxes: the one fetched least recently goes.
    let mut book = PushBook::new();
    for i in 0..=MAX_PUSH_MAILBOXES {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&(i as u64).to_be_bytes());
        book.subscribe(key, 'p', i as i64);
    }
    assert_eq!(book.len(), MAX_PUSH_MAILBOXES);
    book.on_stored(&[0; 32], 10_000);
    assert!(
        book.poll_due(10_000, usize::MAX).is_empty(),
        "the first mailbox was evicted"
    );
}

#[test]
fn one_poll_hands_out_a_bounded_number() {
    let mut book = PushBook::new();
    for i in 0..(MAX_PUSHES_PER_POLL + 5) {
        let mut key = [0u8; 32];
        key[0] = i as u8;
        book.subscribe(key, 'p', 0);
        book.on_stored(&key, 1);
    }
    assert_eq!(book.poll_due(1, usize::MAX).len(), MAX_PUSHES_PER_POLL);
    assert_eq!(book.poll_due(1, usize::MAX).len(), 5);
}

#[test]
fn a_snapshot_restores_the_subscribers_and_an_owed_push_waits_for_the_connection() {
    let mut book: PushBook<u32> = PushBook::new();
    let (m1, m2) = ([1; 32], [2; 32]);
    book.subscribe(m1, 7, 1_000);
    book.subscribe(m2, 8, 1_000);
    book.subscribe(m2, 9, 1_000 - PUSH_SUBSCRIPTION_TTL_MS);
    book.on_stored(&m1, 2_000);
    let saved = book.snapshot();
    assert_eq!(saved.len(), 3);
    assert!(
        saved
            .iter()
            .any(|s| s.mailbox == m1 && s.peer == 7 && s.pending)
    );
    assert!(saved.iter().any(|s| s.peer == 8 && !s.pending));
    let mut again: PushBook<u32> = PushBook::new();
    again.restore(saved, 3_000);
    // The expired subscriber is gone; the owed push is not due until peer 7 connects.
    assert_eq!(again.snapshot().len(), 2);
    assert!(again.poll_due(3_000, 10).is_empty());
    again.on_connected(&7, 4_000);
    assert_eq!(again.poll_due(4_000, 10), vec![(m1, 7)]);
    // A store for m2 reaches the restored subscriber 8.
    again.on_stored(&m2, 5_000);
    assert_eq!(again.poll_due(5_000, 10), vec![(m2, 8)]);
}
