//! The shared test vectors of the paired channel (`clients/vectors/light-channel-v1.json`), which
//! the TypeScript package checks too. `RHIZO_WRITE_VECTORS=1` regenerates the file (fresh random
//! keys and encapsulations); without it the stored file is checked against this implementation.

use serde::{Deserialize, Serialize};

use super::super::*;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../clients/vectors/light-channel-v1.json"
);

#[derive(Debug, Serialize, Deserialize)]
struct VectorFile {
    description: String,
    cases: Vec<Case>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Case {
    kind: String,
    psk: String,
    node_sk: String,
    node_pk: String,
    client_sk: String,
    client_pk: String,
    eph_sk: String,
    hello: String,
    reply: String,
    finish: String,
    c2n: String,
    n2c: String,
    pair_key: String,
    frames: Vec<Frame>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Frame {
    direction: String,
    plaintext: String,
    frame: String,
}

fn h(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn unh(text: &str) -> Vec<u8> {
    hex::decode(text).unwrap()
}

fn psk(text: &str) -> [u8; PSK_LEN] {
    unh(text).try_into().unwrap()
}

const PLAINTEXTS: [(&str, &str); 3] = [
    ("c2n", r#"{"type":"register","request_id":1}"#),
    ("n2c", r#"{"type":"registered","request_id":1}"#),
    ("c2n", r#"{"type":"discover","request_id":2}"#),
];

fn frames(keys: &SessionKeys) -> Vec<Frame> {
    let mut client = Session::new(&keys.c2n, &keys.n2c);
    let mut node = Session::new(&keys.n2c, &keys.c2n);
    PLAINTEXTS
        .iter()
        .map(|(direction, text)| {
            let sender = if *direction == "c2n" {
                &mut client
            } else {
                &mut node
            };
            Frame {
                direction: (*direction).into(),
                plaintext: (*text).into(),
                frame: h(&sender.seal(text.as_bytes()).unwrap()),
            }
        })
        .collect()
}

fn generate(kind: HelloKind, psk: [u8; PSK_LEN]) -> Case {
    let node = KemKeyPair::generate().unwrap();
    let client = KemKeyPair::generate().unwrap();
    let (client_sk, client_pk) = (h(client.secret()), h(client.public()));
    let (state, hello) = ClientHandshake::start(kind, node.public(), client, &psk).unwrap();
    let eph_sk = h(state.eph.secret());
    let opened = open_hello(&node, &Hello::parse(&hello).unwrap(), &psk).unwrap();
    let (node_state, reply) = opened.reply().unwrap();
    let (_, finish, keys) = state.finish(&reply).unwrap();
    node_state.finish(&finish).unwrap();
    Case {
        kind: if kind == HelloKind::Pair {
            "pair"
        } else {
            "resume"
        }
        .into(),
        psk: h(&psk),
        node_sk: h(node.secret()),
        node_pk: h(node.public()),
        client_sk,
        client_pk,
        eph_sk,
        hello: h(&hello),
        reply: h(&reply),
        finish: h(&finish),
        c2n: h(keys.c2n.as_ref()),
        n2c: h(keys.n2c.as_ref()),
        pair_key: h(keys.pair_key.as_ref()),
        frames: frames(&keys),
    }
}

/// Checks one case: the node opens the hello, the client (rebuilt from the stored keys) finishes
/// with the stored reply and derives the stored keys and finish, the frames seal identically.
fn check(case: &Case) {
    let node = KemKeyPair::from_bytes(&unh(&case.node_sk), &unh(&case.node_pk)).unwrap();
    let hello = Hello::parse(&unh(&case.hello)).unwrap();
    assert_eq!(hello.kind == HelloKind::Pair, case.kind == "pair");
    let psk = psk(&case.psk);
    let opened = open_hello(&node, &hello, &psk).unwrap();
    let client = KemKeyPair::from_bytes(&unh(&case.client_sk), &unh(&case.client_pk)).unwrap();
    let eph = KemKeyPair::from_bytes(&unh(&case.eph_sk), &hello.eph_pk).unwrap();
    let state = ClientHandshake {
        h1: hello.h1(node.public()),
        hello,
        x1: opened.x1,
        client,
        eph,
    };
    let (_, finish, keys) = state.finish(&unh(&case.reply)).unwrap();
    assert_eq!(h(&finish), case.finish);
    assert_eq!(h(keys.c2n.as_ref()), case.c2n);
    assert_eq!(h(keys.n2c.as_ref()), case.n2c);
    assert_eq!(h(keys.pair_key.as_ref()), case.pair_key);
    let expected = frames(&keys);
    for (got, want) in expected.iter().zip(&case.frames) {
        assert_eq!(got.frame, want.frame, "{}", want.plaintext);
    }
    assert_eq!(expected.len(), case.frames.len());
}

#[test]
fn shared_vectors_hold() {
    if std::env::var_os("RHIZO_WRITE_VECTORS").is_some() {
        let file = VectorFile {
            description: "rhizo light-client channel v1 (docs/protocol.md, 'Light clients'): \
                HPKE X-Wing/HKDF-SHA256/ChaCha20-Poly1305 handshake and first frames; all \
                byte strings hex"
                .into(),
            cases: vec![
                generate(HelloKind::Pair, [0x11; PSK_LEN]),
                generate(HelloKind::Resume, [0x22; PSK_LEN]),
            ],
        };
        let text = serde_json::to_string_pretty(&file).unwrap() + "\n";
        std::fs::create_dir_all(std::path::Path::new(PATH).parent().unwrap()).unwrap();
        std::fs::write(PATH, text).unwrap();
    }
    let file: VectorFile = serde_json::from_str(&std::fs::read_to_string(PATH).unwrap()).unwrap();
    assert_eq!(file.cases.len(), 2);
    for case in &file.cases {
        check(case);
    }
}
