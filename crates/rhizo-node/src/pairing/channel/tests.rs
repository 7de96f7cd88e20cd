use super::*;

const SECRET: [u8; PSK_LEN] = [7u8; PSK_LEN];

/// Runs a whole handshake; returns (client session, node session, client keys, node keys).
fn handshake(
    kind: HelloKind,
    node: &KemKeyPair,
    client_psk: &[u8; PSK_LEN],
    node_psk: &[u8; PSK_LEN],
) -> Result<(Session, Session, SessionKeys, SessionKeys), ChannelError> {
    let client = KemKeyPair::generate()?;
    let (state, hello) = ClientHandshake::start(kind, node.public(), client, client_psk)?;
    let parsed = Hello::parse(&hello)?;
    let (node_state, reply) = open_hello(node, &parsed, node_psk)?.reply()?;
    let (client_session, finish, client_keys) = state.finish(&reply)?;
    let (node_session, node_keys) = node_state.finish(&finish)?;
    Ok((client_session, node_session, client_keys, node_keys))
}

#[test]
fn pair_then_frames_both_ways() {
    let node = KemKeyPair::generate().unwrap();
    let (mut c, mut n, ck, nk) = handshake(HelloKind::Pair, &node, &SECRET, &SECRET).unwrap();
    assert_eq!(ck.pair_key, nk.pair_key);
    for i in 0..3u8 {
        let frame = c.seal(&[i; 10]).unwrap();
        assert_eq!(n.open(&frame).unwrap(), vec![i; 10]);
        let back = n.seal(b"pong").unwrap();
        assert_eq!(c.open(&back).unwrap(), b"pong");
    }
}

#[test]
fn resume_with_the_pair_key() {
    let node = KemKeyPair::generate().unwrap();
    let key = [9u8; PSK_LEN];
    let (mut c, mut n, _, _) = handshake(HelloKind::Resume, &node, &key, &key).unwrap();
    let frame = c.seal(b"hi").unwrap();
    assert_eq!(n.open(&frame).unwrap(), b"hi");
}

#[test]
fn wrong_secret_fails_without_detail() {
    let node = KemKeyPair::generate().unwrap();
    let wrong = [8u8; PSK_LEN];
    let err = handshake(HelloKind::Pair, &node, &SECRET, &wrong).unwrap_err();
    assert_eq!(err, ChannelError::HandshakeFailed);
}

#[test]
fn a_node_without_the_tickets_key_cannot_answer() {
    let node = KemKeyPair::generate().unwrap();
    let impostor = KemKeyPair::generate().unwrap();
    let client = KemKeyPair::generate().unwrap();
    let (_, hello) =
        ClientHandshake::start(HelloKind::Pair, node.public(), client, &SECRET).unwrap();
    let parsed = Hello::parse(&hello).unwrap();
    assert_eq!(
        open_hello(&impostor, &parsed, &SECRET).unwrap_err(),
        ChannelError::HandshakeFailed
    );
}

#[test]
fn an_edited_hello_or_reply_fails() {
    let node = KemKeyPair::generate().unwrap();
    let client = KemKeyPair::generate().unwrap();
    let (state, hello) =
        ClientHandshake::start(HelloKind::Pair, node.public(), client, &SECRET).unwrap();
    // Flip a bit of the ephemeral key: the transcript (info) no longer matches.
    let mut edited = hello.clone();
    edited[2 + ID_LEN + KEM_PUBLIC_KEY_LEN + 5] ^= 1;
    let parsed = Hello::parse(&edited).unwrap();
    assert_eq!(
        open_hello(&node, &parsed, &SECRET).unwrap_err(),
        ChannelError::HandshakeFailed
    );
    let parsed = Hello::parse(&hello).unwrap();
    let (_, mut reply) = open_hello(&node, &parsed, &SECRET)
        .unwrap()
        .reply()
        .unwrap();
    reply[REPLY_LEN - 1] ^= 1;
    assert_eq!(
        state.finish(&reply).unwrap_err(),
        ChannelError::HandshakeFailed
    );
}

#[test]
fn a_wrong_client_confirmation_fails() {
    let node = KemKeyPair::generate().unwrap();
    let client = KemKeyPair::generate().unwrap();
    let (_, hello) =
        ClientHandshake::start(HelloKind::Pair, node.public(), client, &SECRET).unwrap();
    let parsed = Hello::parse(&hello).unwrap();
    let (node_state, _) = open_hello(&node, &parsed, &SECRET)
        .unwrap()
        .reply()
        .unwrap();
    assert_eq!(
        node_state.finish(&[0u8; CONFIRM_LEN]).unwrap_err(),
        ChannelError::HandshakeFailed
    );
}

#[test]
fn hello_parse_checks_shape() {
    assert!(matches!(
        Hello::parse(&[1, 1, 2]),
        Err(ChannelError::Malformed(_))
    ));
    let mut bytes = vec![0u8; HELLO_LEN];
    bytes[0] = 2;
    assert!(matches!(
        Hello::parse(&bytes),
        Err(ChannelError::Malformed(_))
    ));
    bytes[0] = CHANNEL_VERSION;
    bytes[1] = 9;
    assert!(matches!(
        Hello::parse(&bytes),
        Err(ChannelError::Malformed(_))
    ));
    // Resume with an id that is not the client key's.
    bytes[1] = HelloKind::Resume as u8;
    assert!(matches!(
        Hello::parse(&bytes),
        Err(ChannelError::Malformed(_))
    ));
}

fn sessions() -> (Session, Session) {
    let (a, b) = ([1u8; 32], [2u8; 32]);
    (Session::new(&a, &b), Session::new(&b, &a))
}

#[test]
fn replay_closes_the_session() {
    let (mut c, mut n) = sessions();
    let f0 = c.seal(b"a").unwrap();
    n.open(&f0).unwrap();
    assert_eq!(
        n.open(&f0).unwrap_err(),
        ChannelError::Replayed {
            expected: 1,
            got: 0
        }
    );
    let f1 = c.seal(b"b").unwrap();
    assert_eq!(n.open(&f1).unwrap_err(), ChannelError::Closed);
}

#[test]
fn reorder_and_drop_close_the_session() {
    let (mut c, mut n) = sessions();
    let _f0 = c.seal(b"a").unwrap();
    let f1 = c.seal(b"b").unwrap();
    assert_eq!(
        n.open(&f1).unwrap_err(),
        ChannelError::OutOfOrder {
            expected: 0,
            got: 1
        }
    );
}

#[test]
fn tamper_closes_the_session() {
    let (mut c, mut n) = sessions();
    let mut f0 = c.seal(b"hello").unwrap();
    f0[SEQ_LEN] ^= 1;
    assert_eq!(n.open(&f0).unwrap_err(), ChannelError::Tampered);
    // A forged sequence number does not authenticate either.
    let (mut c, mut n) = sessions();
    let f0 = c.seal(b"x").unwrap();
    let mut f1 = c.seal(b"y").unwrap();
    n.open(&f0).unwrap();
    f1[..SEQ_LEN].copy_from_slice(&1u64.to_be_bytes());
    f1[SEQ_LEN + 1] ^= 0x80;
    assert_eq!(n.open(&f1).unwrap_err(), ChannelError::Tampered);
}

#[test]
fn frame_sizes_are_bounded() {
    let (mut c, mut n) = sessions();
    assert!(matches!(
        c.seal(&vec![0u8; MAX_FRAME_PLAINTEXT + 1]),
        Err(ChannelError::BadFrameSize(_))
    ));
    assert!(matches!(
        n.open(&[0u8; 3]),
        Err(ChannelError::BadFrameSize(3))
    ));
    let big = vec![0u8; SEQ_LEN + TAG_LEN + MAX_FRAME_PLAINTEXT + 1];
    let (_, mut n) = sessions();
    assert!(matches!(n.open(&big), Err(ChannelError::BadFrameSize(_))));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096)) {
        let _ = Hello::parse(&bytes);
        let (_, mut n) = sessions();
        let _ = n.open(&bytes);
    }
}

mod vectors;
