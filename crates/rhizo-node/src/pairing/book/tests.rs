use super::*;
use crate::pairing::channel::{ClientHandshake, open_hello};

const URL: &str = "ws://127.0.0.1:1/v1/ws";
const NOW: u64 = 1_700_000_000;

/// Pairs a fresh client through `book`; returns its key pair and pair key.
fn pair(
    book: &PairingBook,
    now: u64,
) -> Result<(KemKeyPair, Zeroizing<[u8; PSK_LEN]>), PairingError> {
    let ticket = book.new_ticket(URL, "phone", NOW)?;
    let ticket: PairTicket = ticket.to_string().parse().unwrap();
    let client = KemKeyPair::generate().unwrap();
    let keep = KemKeyPair::from_bytes(client.secret(), client.public()).unwrap();
    let (state, hello) =
        ClientHandshake::start(HelloKind::Pair, &ticket.node_pk, client, &ticket.secret).unwrap();
    let hello = Hello::parse(&hello).unwrap();
    let choice = book.psk_for(&hello, now)?;
    assert_eq!(choice.pairing_name.as_deref(), Some("phone"));
    let (node, reply) = open_hello(book.key(), &hello, &choice.psk)
        .unwrap()
        .reply()
        .unwrap();
    let (_, finish, _) = state.finish(&reply).unwrap();
    let (_, keys) = node.finish(&finish).unwrap();
    book.complete_pairing(&hello, &keys.pair_key, now)?;
    Ok((keep, keys.pair_key))
}

fn resume_hello(book: &PairingBook, client: KemKeyPair, key: &[u8; PSK_LEN]) -> Hello {
    let (_, hello) =
        ClientHandshake::start(HelloKind::Resume, book.key().public(), client, key).unwrap();
    Hello::parse(&hello).unwrap()
}

#[test]
fn pair_list_resume_revoke_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let book = PairingBook::open(dir.path()).unwrap();
    let (client, key) = pair(&book, NOW + 1).unwrap();
    let list = book.list();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].name, "phone");
    // The key and the paired client survive a restart.
    let public = book.key().public().to_vec();
    drop(book);
    let book = PairingBook::open(dir.path()).unwrap();
    assert_eq!(book.key().public(), public.as_slice());
    let copy = KemKeyPair::from_bytes(client.secret(), client.public()).unwrap();
    let hello = resume_hello(&book, copy, &key);
    let choice = book.psk_for(&hello, NOW + 2).unwrap();
    assert_eq!(*choice.psk, *key);
    assert!(open_hello(book.key(), &hello, &choice.psk).is_ok());
    assert!(book.is_paired(&list[0].id));
    book.revoke(&list[0].id[..6]).unwrap();
    assert!(!book.is_paired(&list[0].id));
    assert!(matches!(
        book.psk_for(&hello, NOW + 3),
        Err(PairingError::UnknownClient)
    ));
    let book = PairingBook::open(dir.path()).unwrap();
    assert!(book.list().is_empty());
}

#[test]
fn a_ticket_pairs_once_and_expires() {
    let dir = tempfile::tempdir().unwrap();
    let book = PairingBook::open(dir.path()).unwrap();
    let ticket = book.new_ticket(URL, "laptop", NOW).unwrap();
    let client = KemKeyPair::generate().unwrap();
    let (_, hello) =
        ClientHandshake::start(HelloKind::Pair, &ticket.node_pk, client, &ticket.secret).unwrap();
    let hello = Hello::parse(&hello).unwrap();
    assert!(matches!(
        book.psk_for(&hello, NOW + PAIR_TICKET_TTL_SECS),
        Err(PairingError::UnknownClient)
    ));
    assert!(book.psk_for(&hello, NOW + 5).is_ok());
    book.complete_pairing(&hello, &[1u8; PSK_LEN], NOW + 5)
        .unwrap();
    // Used up.
    assert!(matches!(
        book.psk_for(&hello, NOW + 6),
        Err(PairingError::UnknownClient)
    ));
}

#[test]
fn unknown_clients_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    let book = PairingBook::open(dir.path()).unwrap();
    let stranger = KemKeyPair::generate().unwrap();
    let hello = resume_hello(&book, stranger, &[3u8; PSK_LEN]);
    assert!(matches!(
        book.psk_for(&hello, NOW),
        Err(PairingError::UnknownClient)
    ));
    for _ in 0..MAX_PENDING_TICKETS {
        book.new_ticket(URL, "x", NOW).unwrap();
    }
    assert!(matches!(
        book.new_ticket(URL, "x", NOW),
        Err(PairingError::TooManyPending)
    ));
    // Expired ones make room.
    assert!(
        book.new_ticket(URL, "x", NOW + PAIR_TICKET_TTL_SECS)
            .is_ok()
    );
    assert!(matches!(
        book.new_ticket(URL, "", NOW),
        Err(PairingError::BadInput(_))
    ));
    assert!(matches!(
        book.revoke("nobody"),
        Err(PairingError::NoSuchClient(_))
    ));
}

#[test]
fn files_are_private_and_damage_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    PairingBook::open(dir.path()).unwrap();
    let key = dir.path().join("light/channel.key");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::write(&key, b"short").unwrap();
    assert!(matches!(
        PairingBook::open(dir.path()),
        Err(PairingError::Damaged(_))
    ));
}
