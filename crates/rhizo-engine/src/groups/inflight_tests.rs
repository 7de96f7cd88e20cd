//! A removed member's texts still in flight (protocol.md §29): one sealed before its removal
//! and delivered after it is shown once; one sealed in the old epoch after the removal commit
//! was made is refused, on the simulated clock.

use rhizo_core::envelope::{ErrorCode, ReceiptStatus};

use super::tests::{Node, deliver, pump, received_texts, trio};

const T0: i64 = 1_800_000_000_000;

/// Carol's newest queued group envelope (she queues `body` at `at`).
fn carol_text(nodes: &mut [Node], session: &[u8; 16], body: &str, at: i64) -> Vec<u8> {
    let c = &mut nodes[2];
    c.store
        .write(|tx| c.engine.queue_group_text(tx, session, body, at))
        .unwrap();
    c.store
        .read()
        .group_outbox_due(at, 10)
        .unwrap()
        .pop()
        .unwrap()
        .envelope
}

/// Hands `frame` to bob at `at`: his answer and the texts he showed.
fn to_bob(nodes: &mut [Node], frame: &[u8], at: i64) -> (Option<ReceiptStatus>, Vec<String>) {
    let bob = nodes[1].device();
    let mut events = Vec::new();
    let response = deliver(nodes, &bob, frame, at, &mut events).unwrap();
    (
        crate::wire::status_of_response(&response),
        received_texts(&events, 1),
    )
}

#[test]
fn a_text_sealed_before_the_removal_arrives_once_and_one_sealed_after_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = trio(tmp.path());
    // Carol seals a text; it is still on its way when alice removes her (carol, offline,
    // never sees the removal and stays in the old epoch).
    let before = carol_text(&mut nodes, &session, "sent while a member", T0 + 1_000);
    nodes[2].online = false;
    let carol = nodes[2].uid();
    let a = &mut nodes[0];
    assert!(
        a.store
            .write(|tx| a
                .engine
                .remove_group_member(tx, &session, &carol, T0 + 10_000))
            .unwrap()
    );
    pump(&mut nodes, 0, T0 + 10_000);
    assert!(
        nodes[1]
            .store
            .read()
            .group_members(&session)
            .unwrap()
            .iter()
            .all(|m| m.uid != carol)
    );
    // Bob applied the removal first; the text still arrives, and only once.
    let (status, texts) = to_bob(&mut nodes, &before, T0 + 20_000);
    assert_eq!(status, Some(ReceiptStatus::Delivered));
    assert_eq!(texts, ["sent while a member"]);
    // The same envelope again (a retry whose receipt was lost) is a replay, not shown again.
    let (status, texts) = to_bob(&mut nodes, &before, T0 + 21_000);
    assert_eq!(
        status,
        Some(ReceiptStatus::Rejected(ErrorCode::ReplayDetected))
    );
    assert!(texts.is_empty());
    // A text carol seals in the old epoch after the removal commit was made: refused.
    let after = carol_text(&mut nodes, &session, "sealed after", T0 + 30_000);
    let (status, texts) = to_bob(&mut nodes, &after, T0 + 31_000);
    assert_eq!(
        status,
        Some(ReceiptStatus::Rejected(ErrorCode::UnknownSender))
    );
    assert!(texts.is_empty());
}
