//! Frozen wire vectors for every signed structure rhizo puts on the wire
//! (docs/protocol.md, "Test vectors"): device certificate, the five DHT
//! records, contact ticket (with a device-possession proof), envelope,
//! delivery receipt, batch frame, mailbox fetch (and its signed message),
//! mailbox delete and channel post.
//!
//! Every vector is built from fixed key seeds and fixed times, so the bytes
//! are deterministic (Ed25519 signatures are). The test rebuilds them and
//! compares with `tests/rhizo/wire_vectors.json`: a change to any encoding or
//! signed message fails it. Each vector is also decoded and verified by the
//! decoder a peer runs, every truncation of it is refused without a panic,
//! and docs/protocol.md (§7) must quote every vector as it is.
//!
//! Regenerate (only for a deliberate, versioned format change):
//! `RHIZO_REGENERATE_VECTORS=1 cargo test -p rhizo-vectors --test rhizo_wire`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use rhizo_core::channel::{ChannelId, ChannelPost};
use rhizo_core::envelope::{
    DeliveryReceipt, EnvelopeBatch, MessageType, ReceiptEntry, ReceiptStatus, SecureMessage,
};
use rhizo_core::mailbox::{DeleteRequest, FETCH_SIGNATURE_DOMAIN, FetchRequest, MailboxRequest};
use rhizo_core::records::{
    AgentCardRecord, DeviceList, IdentityRecord, KeyPackageBundle, Profile, ValidRecord,
    validate_record,
};
use rhizo_core::{
    ContactTicket, DeviceCertificate, DeviceKey, RootKey, SessionId, TicketDevice, Uid,
};
use serde::{Deserialize, Serialize};

/// Creation time of every record, ticket and certificate, Unix seconds.
const NOW: u64 = 1_700_000_000;
/// Record lifetime: 3 days.
const TTL: u64 = 3 * 24 * 60 * 60;
/// Environment variable that rewrites the vector file instead of checking it.
const REGENERATE: &str = "RHIZO_REGENERATE_VECTORS";

/// One vector: what it is and its bytes (hex) or text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Vector {
    /// How it was made.
    description: String,
    /// The wire bytes, lowercase hex (empty when `text` holds the value).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    hex: String,
    /// The wire text, for text formats (the contact ticket).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    text: String,
}

fn vector_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/rhizo/wire_vectors.json")
}

/// The root key of the signing identity (Alice): seed `[1; 32]`.
fn root() -> RootKey {
    RootKey::from_bytes(&[1; 32])
}

/// Alice's device key: seed `[3; 32]`.
fn device() -> DeviceKey {
    DeviceKey::from_bytes(&[3; 32])
}

/// Bob's identity (the recipient): seed `[2; 32]`.
fn bob_root() -> RootKey {
    RootKey::from_bytes(&[2; 32])
}

/// Bob's device key: seed `[4; 32]`.
fn bob_device() -> DeviceKey {
    DeviceKey::from_bytes(&[4; 32])
}

fn cert() -> DeviceCertificate {
    root().certify_device(&device().public(), NOW)
}

/// Device `[3; 32]` as a card lists it: certified by root `[1; 32]`, binding signed.
fn card_device() -> rhizo_core::records::CardDevice {
    rhizo_core::records::CardDevice::sign(&device(), cert()).expect("binding")
}

fn bob_cert() -> DeviceCertificate {
    bob_root().certify_device(&bob_device().public(), NOW)
}

/// The libp2p PeerId bytes of Bob's device key (identity multihash of the
/// protobuf-encoded Ed25519 public key), the replica a fetch is bound to.
fn replica_peer() -> Vec<u8> {
    let mut peer = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    peer.extend_from_slice(bob_device().public().as_bytes());
    peer
}

fn envelope(sequence_num: u64) -> SecureMessage {
    let mut message = SecureMessage {
        msg_type: MessageType::Application,
        sender_id: root().public().uid(),
        sender_device: device().public(),
        recipient_id: bob_root().public().uid(),
        session_id: SessionId::from_bytes([4; 16]),
        sequence_num,
        timestamp: NOW * 1000,
        nonce: [5; 32],
        payload: Bytes::from_static(b"ciphertext"),
        signature: [0; 64],
    };
    message.sign(&device()).expect("sign envelope");
    message
}

fn receipt() -> DeliveryReceipt {
    let message = envelope(7);
    let mut receipt = DeliveryReceipt {
        recipient_device: bob_device().public(),
        timestamp: NOW * 1000 + 1,
        entries: vec![ReceiptEntry {
            envelope: message.id(),
            envelope_digest: message.digest(),
            status: ReceiptStatus::Delivered,
        }],
        signature: [0; 64],
    };
    receipt.sign(&bob_device()).expect("sign receipt");
    receipt
}

fn bob_device_list() -> DeviceList {
    DeviceList::new(&bob_root(), 1, vec![bob_cert()], NOW, TTL).expect("device list")
}

fn fetch() -> FetchRequest {
    FetchRequest::new(
        &bob_device(),
        &replica_peer(),
        bob_root().public().uid(),
        [9; 32],
        bob_device_list().encode().into(),
        64,
    )
}

/// `"rhizo/mailbox-fetch/v1" ‖ u16-BE len ‖ replica PeerId ‖ recipient UID ‖
/// nonce ‖ device key`, built here independently of rhizo-core.
fn fetch_signed_message(recipient: &Uid) -> Vec<u8> {
    let peer = replica_peer();
    let mut message = FETCH_SIGNATURE_DOMAIN.to_vec();
    message.extend_from_slice(&u16::try_from(peer.len()).expect("short").to_be_bytes());
    message.extend_from_slice(&peer);
    message.extend_from_slice(recipient.as_bytes());
    message.extend_from_slice(&[9; 32]);
    message.extend_from_slice(bob_device().public().as_bytes());
    message
}

fn ticket() -> ContactTicket {
    let device = TicketDevice::with_proof(
        &device(),
        cert(),
        vec!["/ip4/127.0.0.1/udp/4001/quic-v1".to_owned()],
    )
    .expect("proof");
    ContactTicket::new(&root(), vec![device], Some("Alice".to_owned()), NOW).expect("ticket")
}

fn channel_post() -> ChannelPost {
    let channel = ChannelId::new(&root().public(), "news");
    ChannelPost::new(&device(), &cert(), channel, "hello", NOW * 1000, [3; 16]).expect("post")
}

fn bytes_vector(description: &str, bytes: &[u8]) -> Vector {
    Vector {
        description: description.to_owned(),
        hex: hex::encode(bytes),
        text: String::new(),
    }
}

/// Builds every vector from the fixed seeds.
fn build() -> BTreeMap<String, Vector> {
    let mut v = BTreeMap::new();
    build_identity_and_records(&mut v);
    build_ticket_and_messages(&mut v);
    build_mailbox_and_channel(&mut v);
    v
}

/// The device certificate and the four DHT records.
fn build_identity_and_records(v: &mut BTreeMap<String, Vector>) {
    let mut add = |name: &str, vector: Vector| v.insert(name.to_owned(), vector);
    add(
        "device_certificate",
        bytes_vector(
            "root [1;32] certifies device [3;32] at 1700000000 (137 bytes)",
            &cert().to_bytes(),
        ),
    );
    add(
        "identity_record",
        bytes_vector(
            "SignedRecord kind 1: IdentityRecord::new(root [1;32], now 1700000000, ttl 259200)",
            &IdentityRecord::new(&root(), NOW, TTL)
                .expect("identity")
                .encode(),
        ),
    );
    add(
        "device_list",
        bytes_vector(
            "SignedRecord kind 2: DeviceList::new(root [1;32], version 2, [cert of device [3;32]], now, ttl)",
            &DeviceList::new(&root(), 2, vec![cert()], NOW, TTL)
                .expect("list")
                .encode(),
        ),
    );
    let bundle = KeyPackageBundle::new(
        &device(),
        cert(),
        5,
        [&b"key-package-0"[..], &b"key-package-1"[..]],
        1,
        NOW,
        TTL,
    );
    add(
        "key_package_bundle",
        bytes_vector(
            "SignedRecord kind 3: KeyPackageBundle::new(device [3;32], its cert, version 5, \
         [\"key-package-0\", \"key-package-1\"], last resort 1, now, ttl), signed by the device",
            &bundle.expect("bundle").encode(),
        ),
    );
    let profile = Profile::new(
        &root(),
        3,
        "Alice",
        b"\x89PNG".to_vec(),
        "image/png",
        NOW,
        TTL,
    );
    add(
        "profile",
        bytes_vector(
            "SignedRecord kind 4: Profile::new(root [1;32], version 3, \"Alice\", avatar 89504e47, \
         \"image/png\", now, ttl)",
            &profile.expect("profile").encode(),
        ),
    );
    let card: rhizo_core::agent::AgentCard = serde_json::from_str(
        r#"{"name": "Echo", "description": "repeats its input", "version": "1.0",
            "skills": [{"id": "echo.v1", "name": "Echo", "tags": ["text"]}]}"#,
    )
    .expect("card JSON");
    add(
        "agent_card",
        bytes_vector(
            "SignedRecord kind 5: AgentCardRecord::new(root [1;32], version 2, card {name \"Echo\", \
         description \"repeats its input\", version \"1.0\", skill echo.v1 \"Echo\" tag \"text\", \
         default modes text/plain, limits 64/4/49152}, [cert of device [3;32] with its binding \
         signature], now, ttl)",
            &AgentCardRecord::new(&root(), 2, card, vec![card_device()], NOW, TTL)
                .expect("agent card")
                .encode(),
        ),
    );
}

/// The contact ticket, the envelope, the receipt and the batch frame.
fn build_ticket_and_messages(v: &mut BTreeMap<String, Vector>) {
    let mut add = |name: &str, vector: Vector| v.insert(name.to_owned(), vector);
    add(
        "contact_ticket",
        Vector {
            description: "ContactTicket::new(root [1;32], [device [3;32] with possession proof, \
                      addr /ip4/127.0.0.1/udp/4001/quic-v1], name \"Alice\", created 1700000000)"
                .to_owned(),
            hex: String::new(),
            text: ticket().to_string(),
        },
    );
    add(
        "secure_message",
        bytes_vector(
            "SecureMessage Application from root [1;32]/device [3;32] to root [2;32], session [4;16], \
         seq 7, timestamp 1700000000000 ms, nonce [5;32], payload \"ciphertext\"",
            &envelope(7).encode(),
        ),
    );
    add(
        "delivery_receipt",
        bytes_vector(
            "DeliveryReceipt by device [4;32] at 1700000000001 ms: Delivered for secure_message",
            &receipt().encode(),
        ),
    );
    let batch = EnvelopeBatch {
        envelopes: vec![envelope(7).encode().into(), envelope(8).encode().into()],
    };
    add(
        "envelope_batch",
        bytes_vector(
            "batch frame (0xB1 ‖ EnvelopeBatch v1) of secure_message and the same with seq 8",
            &batch.encode().expect("batch"),
        ),
    );
}

/// The mailbox fetch (signed message, signature, request), the delete and the channel post.
fn build_mailbox_and_channel(v: &mut BTreeMap<String, Vector>) {
    let mut add = |name: &str, vector: Vector| v.insert(name.to_owned(), vector);
    let fetch = fetch();
    add(
        "mailbox_fetch_signed_message",
        bytes_vector(
            "the bytes device [4;32] signs to fetch root [2;32]'s mailbox from replica PeerId \
         002408011220‖device [4;32] with nonce [9;32]",
            &fetch_signed_message(&fetch.recipient),
        ),
    );
    add(
        "mailbox_fetch_signature",
        bytes_vector(
            "Ed25519 signature of mailbox_fetch_signed_message by device [4;32]",
            &fetch.signature,
        ),
    );
    add(
        "mailbox_fetch_request",
        bytes_vector(
            "MailboxRequest::Fetch with that signature, Bob's device list (version 1), max 64, cursor 0",
            &MailboxRequest::Fetch(fetch.clone()).encode(),
        ),
    );
    let delete = DeleteRequest::new(
        bob_root().public().uid(),
        bob_device_list().encode().into(),
        &receipt(),
    );
    add(
        "mailbox_delete_request",
        bytes_vector(
            "MailboxRequest::Delete of root [2;32]'s mailbox with delivery_receipt",
            &MailboxRequest::Delete(delete).encode(),
        ),
    );
    add(
        "channel_post",
        bytes_vector(
            "ChannelPost by device [3;32] to ChannelId(root [1;32], \"news\"): \"hello\" at \
         1700000000000 ms, nonce [3;16]",
            &channel_post().encode(),
        ),
    );
}

fn load() -> BTreeMap<String, Vector> {
    let text = std::fs::read_to_string(vector_file()).expect("read wire_vectors.json");
    serde_json::from_str(&text).expect("parse wire_vectors.json")
}

#[test]
fn encodings_match_the_frozen_vectors() {
    let built = build();
    if std::env::var_os(REGENERATE).is_some() {
        let json = serde_json::to_string_pretty(&built).expect("json");
        std::fs::write(vector_file(), json + "\n").expect("write wire_vectors.json");
        return;
    }
    let frozen = load();
    let names = |m: &BTreeMap<String, Vector>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(&built), names(&frozen), "vector names differ");
    for (name, vector) in &built {
        assert_eq!(
            (&vector.hex, &vector.text),
            (&frozen[name].hex, &frozen[name].text),
            "{name}: the encoding changed; a wire change needs a new version (docs/protocol.md)"
        );
    }
}

fn frozen_bytes(name: &str) -> Vec<u8> {
    hex::decode(&load()[name].hex).expect("hex")
}

/// Decodes and verifies a frozen vector as a receiving peer would; `Err` if
/// any step refuses it.
fn accept(name: &str, bytes: &[u8]) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match name {
        "device_certificate" => DeviceCertificate::decode(bytes)
            .and_then(|c| c.verify_for(&root().public()))
            .map_err(|x| e(&x)),
        "identity_record" | "device_list" | "key_package_bundle" | "profile" | "agent_card" => {
            let valid = validate_record(&record_key(name), bytes, NOW).map_err(|x| e(&x))?;
            (valid.encode() == bytes)
                .then_some(())
                .ok_or_else(|| "re-encoding differs".into())
        }
        "secure_message" => SecureMessage::decode(bytes)
            .and_then(|m| m.verify(&device().public()))
            .map_err(|x| e(&x)),
        "delivery_receipt" => DeliveryReceipt::decode(bytes)
            .and_then(|r| r.verify(&bob_device().public()))
            .map_err(|x| e(&x)),
        "envelope_batch" => {
            let batch = EnvelopeBatch::decode(bytes).map_err(|x| e(&x))?;
            for envelope in &batch.envelopes {
                SecureMessage::decode(envelope)
                    .and_then(|m| m.verify(&device().public()))
                    .map_err(|x| e(&x))?;
            }
            Ok(())
        }
        "mailbox_fetch_request" => match MailboxRequest::decode(bytes).map_err(|x| e(&x))? {
            MailboxRequest::Fetch(fetch) => fetch
                .verify(&replica_peer(), NOW, 0)
                .map(drop)
                .map_err(|x| e(&x)),
            other => Err(format!("not a fetch: {other:?}")),
        },
        "mailbox_delete_request" => match MailboxRequest::decode(bytes).map_err(|x| e(&x))? {
            MailboxRequest::Delete(delete) => delete.verify(NOW, 0).map(drop).map_err(|x| e(&x)),
            other => Err(format!("not a delete: {other:?}")),
        },
        "channel_post" => {
            let channel = ChannelId::new(&root().public(), "news");
            ChannelPost::decode_verified(bytes, &channel, NOW * 1000)
                .map(drop)
                .map_err(|x| e(&x))
        }
        _ => Ok(()),
    }
}

fn record_key(name: &str) -> [u8; 32] {
    let uid = root().public().uid();
    match name {
        "identity_record" => rhizo_core::records::identity_key(&uid),
        "device_list" => rhizo_core::records::device_list_key(&uid),
        "key_package_bundle" => rhizo_core::records::key_packages_key(&uid, &device().public()),
        "agent_card" => rhizo_core::records::agent_card_key(&uid),
        _ => rhizo_core::records::profile_key(&uid),
    }
}

#[test]
fn the_wire_spec_quotes_every_vector() {
    let spec = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/protocol.md");
    let text = std::fs::read_to_string(&spec).expect("read docs/protocol.md");
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    for (name, vector) in load() {
        let value = if vector.hex.is_empty() {
            &vector.text
        } else {
            &vector.hex
        };
        assert!(
            compact.contains(value.as_str()),
            "docs/protocol.md (§7 Wire vectors) does not quote the current `{name}` vector"
        );
    }
}

#[test]
fn frozen_vectors_decode_and_verify() {
    for (name, vector) in load() {
        if vector.hex.is_empty() {
            continue;
        }
        let bytes = hex::decode(&vector.hex).expect("hex");
        assert_eq!(accept(&name, &bytes), Ok(()), "{name} is refused");
    }
    let parsed: ContactTicket = load()["contact_ticket"]
        .text
        .parse()
        .expect("ticket parses");
    assert_eq!(parsed.uid(), root().public().uid());
    assert!(parsed.devices()[0].proven_certificate().is_some());
    // The fetch signature verifies over the independently built message.
    let fetch = fetch();
    let signed = frozen_bytes("mailbox_fetch_signed_message");
    assert!(
        bob_device()
            .public()
            .verify(&signed, &fetch.signature)
            .is_ok()
    );
    // The record kinds decode to the kind their name says.
    let valid = validate_record(&record_key("profile"), &frozen_bytes("profile"), NOW);
    assert!(matches!(valid, Ok(ValidRecord::Profile(_))));
    let valid = validate_record(&record_key("agent_card"), &frozen_bytes("agent_card"), NOW);
    assert!(matches!(valid, Ok(ValidRecord::AgentCard(_))));
}

#[test]
fn truncated_vectors_are_refused_without_panicking() {
    for (name, vector) in load() {
        if vector.hex.is_empty() {
            let text = vector.text;
            for end in 0..text.len() {
                if let Some(prefix) = text.get(..end) {
                    assert!(
                        prefix.parse::<ContactTicket>().is_err(),
                        "ticket prefix {end}"
                    );
                }
            }
            continue;
        }
        let bytes = hex::decode(&vector.hex).expect("hex");
        if name.starts_with("mailbox_fetch_s") {
            continue; // raw signed message and signature, no decoder of their own
        }
        for end in 0..bytes.len() {
            assert!(
                accept(&name, &bytes[..end]).is_err(),
                "{name} accepted truncated to {end}"
            );
        }
    }
}
