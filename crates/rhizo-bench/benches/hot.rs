//! Criterion micro-benchmarks of rhizo's per-message hot paths (`cargo bench -p rhizo-bench`):
//! envelope encode/decode and signature verification, DHT record validation, and mailbox
//! request decoding. These are the sans-IO costs every message or record pays on top of MLS,
//! the network and SQLite (see BENCHMARKS.md for how they compare).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rhizo_core::{
    DeviceKey, DeviceList, IdentityRecord, RootKey, SecureMessage, SessionId, Uid,
    envelope::MessageType,
    mailbox::MailboxRequest,
    records::{device_list_key, identity_key},
    validate_record,
};

const NOW: u64 = 1_750_000_000;
const TTL: u64 = 3 * 24 * 3600;

fn envelope(device: &DeviceKey, root: &RootKey, payload: usize) -> SecureMessage {
    let mut m = SecureMessage {
        msg_type: MessageType::Application,
        sender_id: root.public().uid(),
        sender_device: device.public(),
        recipient_id: Uid::from_bytes(&[9; 32]),
        session_id: SessionId::from_bytes([4; 16]),
        sequence_num: 42,
        timestamp: NOW * 1000,
        nonce: [5; 32],
        payload: vec![0xab; payload].into(),
        signature: [0; 64],
    };
    m.sign(device).expect("signing a valid envelope");
    m
}

fn envelopes(c: &mut Criterion) {
    let root = RootKey::from_bytes(&[1; 32]);
    let device = DeviceKey::from_bytes(&[2; 32]);
    let public = device.public();
    for payload in [64usize, 1024, 16 * 1024] {
        let message = envelope(&device, &root, payload);
        let bytes = message.encode();
        let mut group = c.benchmark_group(format!("envelope/{payload}B"));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_function("encode", |b| b.iter(|| black_box(&message).encode()));
        group.bench_function("decode", |b| {
            b.iter(|| SecureMessage::decode(black_box(&bytes)).expect("valid"))
        });
        group.bench_function("verify", |b| {
            b.iter(|| black_box(&message).verify(&public).expect("valid"))
        });
        group.bench_function("decode+verify", |b| {
            b.iter(|| {
                SecureMessage::decode(black_box(&bytes))
                    .expect("valid")
                    .verify(&public)
                    .expect("valid")
            })
        });
        group.bench_function("sign", |b| {
            let mut m = message.clone();
            b.iter(|| m.sign(black_box(&device)).expect("valid"))
        });
        group.finish();
    }
}

fn records(c: &mut Criterion) {
    let root = RootKey::from_bytes(&[1; 32]);
    let device = DeviceKey::from_bytes(&[2; 32]);
    let uid = root.public().uid();
    let identity = IdentityRecord::new(&root, NOW, TTL)
        .expect("valid record")
        .encode();
    let identity_k = identity_key(&uid);
    let cert = root.certify_device(&device.public(), NOW);
    let devices = DeviceList::new(&root, 1, vec![cert], NOW, TTL)
        .expect("valid list")
        .encode();
    let devices_k = device_list_key(&uid);
    let mut group = c.benchmark_group("validate_record");
    group.bench_function("identity", |b| {
        b.iter(|| validate_record(black_box(&identity_k), black_box(&identity), NOW + 1))
    });
    group.bench_function("device_list(1 device)", |b| {
        b.iter(|| validate_record(black_box(&devices_k), black_box(&devices), NOW + 1))
    });
    group.finish();
}

fn mailbox(c: &mut Criterion) {
    let root = RootKey::from_bytes(&[1; 32]);
    let device = DeviceKey::from_bytes(&[2; 32]);
    let envelope = envelope(&device, &root, 1024).encode();
    let store = MailboxRequest::Store {
        recipient: Uid::from_bytes(&[9; 32]),
        envelope: envelope.into(),
        ttl_secs: 0,
        sender_cert: root.certify_device(&device.public(), 1).encode().into(),
    }
    .encode();
    let challenge = MailboxRequest::Challenge {
        recipient: Uid::from_bytes(&[9; 32]),
    }
    .encode();
    let mut group = c.benchmark_group("mailbox_request_decode");
    group.bench_function("store(1 KiB envelope)", |b| {
        b.iter(|| MailboxRequest::decode(black_box(&store)).expect("valid"))
    });
    group.bench_function("challenge", |b| {
        b.iter(|| MailboxRequest::decode(black_box(&challenge)).expect("valid"))
    });
    group.finish();
}

criterion_group!(hot, envelopes, records, mailbox);
criterion_main!(hot);
