//! Tests of the parent module (kept apart so the module file holds only its logic).

use super::*;
use crate::RootKey;

const NOW: u64 = 1_700_000_000_000;

#[test]
fn provider_key_is_a_sha256_multihash_bound_to_the_channel() {
    let id = ChannelId::new(&root().public(), "rust");
    let key = id.provider_key();
    assert_eq!(key.len(), 34);
    assert_eq!(&key[..2], &[0x12, 0x20], "multihash: sha2-256, 32 bytes");
    let digest: [u8; 32] = Sha256::new()
        .chain_update(b"rhizo/channel-providers/v1")
        .chain_update(id.as_bytes())
        .finalize()
        .into();
    assert_eq!(&key[2..], &digest);
    assert_ne!(
        key,
        ChannelId::new(&root().public(), "rusty").provider_key()
    );
}

fn root() -> RootKey {
    RootKey::from_bytes(&[1; 32])
}

fn device() -> DeviceKey {
    DeviceKey::from_bytes(&[2; 32])
}

fn cert() -> DeviceCertificate {
    root().certify_device(&device().public(), NOW / 1000)
}

fn channel() -> ChannelId {
    ChannelId::new(&root().public(), "news")
}

fn post(text: &str) -> ChannelPost {
    ChannelPost::new(
        &device(),
        &cert(),
        channel(),
        text,
        NOW,
        [3; POST_NONCE_LEN],
    )
    .expect("post")
}

#[test]
fn id_is_the_documented_hash() {
    let mut input = b"rhizo/channel/v1".to_vec();
    input.extend_from_slice(root().public().as_bytes());
    input.extend_from_slice("news".as_bytes());
    let expected: [u8; 32] = Sha256::digest(&input).into();
    assert_eq!(channel().as_bytes(), &expected);
    assert_eq!(ChannelId::from_bytes(expected), channel());
    // Name and creator both matter.
    assert_ne!(ChannelId::new(&root().public(), "News"), channel());
    let other = RootKey::from_bytes(&[9; 32]).public();
    assert_ne!(ChannelId::new(&other, "news"), channel());
}

#[test]
fn id_text_form_and_topic() {
    let id = channel();
    let text = id.to_string();
    assert_eq!(text.len(), CHANNEL_ID_TEXT_LEN);
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{text}"
    );
    assert_eq!(text, BASE32_NOPAD.encode(id.as_bytes()).to_lowercase());
    assert_eq!(text.parse::<ChannelId>(), Ok(id));
    assert_eq!(text.to_uppercase().parse::<ChannelId>(), Ok(id));
    assert_eq!(id.topic(), format!("rhizo/channel/{text}"));
    assert_eq!(ChannelId::from_topic(&id.topic()), Some(id));
    assert_eq!(ChannelId::from_topic(&id.topic().to_uppercase()), None);
    assert_eq!(
        ChannelId::from_topic(&format!("rhizo/channel/{}", text.to_uppercase())),
        None,
        "topics are lowercase only"
    );
    assert_eq!(ChannelId::from_topic(&text), None);
    assert_eq!(format!("{id:?}"), format!("ChannelId({text})"));
}

#[test]
fn id_parse_errors_are_clear() {
    let text = channel().to_string();
    assert_eq!(
        text[1..].parse::<ChannelId>(),
        Err(ChannelIdError::WrongLength { actual: 51 })
    );
    let bad = format!("{}1{}", &text[..10], &text[11..]);
    assert_eq!(
        bad.parse::<ChannelId>(),
        Err(ChannelIdError::InvalidCharacter {
            character: '1',
            position: 11
        })
    );
    let accented = format!("é{}", &text[1..]);
    assert!(matches!(
        accented.parse::<ChannelId>(),
        Err(ChannelIdError::InvalidCharacter {
            character: 'é',
            position: 1
        })
    ));
    // The last character carries one bit; the other four must be zero.
    let mut chars: Vec<char> = text.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'b' { 'c' } else { 'b' };
    let non_canonical: String = chars.into_iter().collect();
    assert_eq!(
        non_canonical.parse::<ChannelId>(),
        Err(ChannelIdError::NonCanonical)
    );
    let message = ChannelIdError::WrongLength { actual: 3 }.to_string();
    assert!(message.contains("52 characters, got 3"), "{message}");
}

#[test]
fn descriptor_checks_the_name_and_the_creator() {
    let descriptor = ChannelDescriptor::new(&root().public(), "news").expect("valid");
    assert_eq!(descriptor.id, channel());
    assert!(descriptor.is_created_by(&root().public()));
    assert!(!descriptor.is_created_by(&RootKey::from_bytes(&[9; 32]).public()));
    for bad in ["", "a\nb", &"x".repeat(MAX_CHANNEL_NAME_CHARS + 1)] {
        assert_eq!(
            ChannelDescriptor::new(&root().public(), bad),
            Err(ChannelError::InvalidName),
            "{bad:?}"
        );
    }
    assert!(ChannelDescriptor::new(&root().public(), &"é".repeat(64)).is_ok());
}

#[test]
fn round_trip() {
    let post = post("hello, channel");
    let bytes = post.encode();
    let decoded = ChannelPost::decode_verified(&bytes, &channel(), NOW).expect("valid");
    assert_eq!(decoded, post);
    assert_eq!(decoded.channel(), channel());
    assert_eq!(decoded.author_uid(), root().public().uid());
    assert_eq!(decoded.author_root(), root().public());
    assert_eq!(decoded.author_device(), device().public());
    assert_eq!(decoded.author_cert(), &cert());
    assert_eq!(decoded.text(), "hello, channel");
    assert_eq!(decoded.sent_at_ms(), NOW);
    assert_eq!(decoded.nonce(), &[3; POST_NONCE_LEN]);
    assert_eq!(decoded.post_id(), post_id_of(&bytes));
    assert_eq!(post_id_of(&bytes), <[u8; 32]>::from(Sha256::digest(&bytes)));
    // The nonce makes equal texts distinct posts.
    let again = ChannelPost::new(
        &device(),
        &cert(),
        channel(),
        "hello, channel",
        NOW,
        [4; 16],
    )
    .expect("post");
    assert_ne!(again.post_id(), post.post_id());
}

#[test]
fn signed_bytes_are_the_wire_bytes_without_the_signature_field() {
    let post = post("hi");
    let wire = post.encode();
    let signed = post.signed_bytes();
    assert_eq!(&signed[..CHANNEL_POST_DOMAIN.len()], CHANNEL_POST_DOMAIN);
    assert_eq!(
        &signed[CHANNEL_POST_DOMAIN.len()..],
        &wire[..wire.len() - (2 + SIGNATURE_LEN)]
    );
    assert_eq!(&wire[wire.len() - 66..wire.len() - 64], &[0x32, 0x40]);
    assert_eq!(device().public().verify(&signed, &post.signature), Ok(()));
}

#[test]
fn every_single_bit_flip_is_refused() {
    let bytes = post("flip me").encode();
    for bit in 0..bytes.len() * 8 {
        let mut tampered = bytes.clone();
        tampered[bit / 8] ^= 1 << (bit % 8);
        let result = ChannelPost::decode_verified(&tampered, &channel(), NOW);
        assert!(result.is_err(), "bit {bit} flip accepted");
    }
}

#[test]
fn non_canonical_encodings_are_refused() {
    let wire = post("x").encode();
    let mut unknown = wire.clone();
    unknown.extend_from_slice(&[0x38, 0x00]); // field 7, varint 0
    assert_eq!(
        ChannelPost::decode_verified(&unknown, &channel(), NOW),
        Err(ChannelError::NonCanonical)
    );
    let mut reordered = wire[34..].to_vec();
    reordered.extend_from_slice(&wire[..34]); // channel_id moved to the end
    assert_eq!(
        ChannelPost::decode_verified(&reordered, &channel(), NOW),
        Err(ChannelError::NonCanonical)
    );
    assert!(matches!(
        ChannelPost::decode_verified(&[0xff, 0xff], &channel(), NOW),
        Err(ChannelError::Decode(_))
    ));
}

#[test]
fn wrong_channel_is_refused() {
    let bytes = post("hi").encode();
    let other = ChannelId::new(&root().public(), "sports");
    assert_eq!(
        ChannelPost::decode_verified(&bytes, &other, NOW),
        Err(ChannelError::WrongChannel {
            expected: other,
            actual: channel()
        })
    );
}

/// Re-signs `wire` (with its signature field dropped) by `device`.
fn resign(mut wire: proto::ChannelPost, device: &DeviceKey) -> Vec<u8> {
    wire.signature = Bytes::new();
    let mut signed = CHANNEL_POST_DOMAIN.to_vec();
    signed.extend_from_slice(&wire.encode_to_vec());
    wire.signature = Bytes::copy_from_slice(&device.sign(&signed));
    wire.encode_to_vec()
}

#[test]
fn forged_certificate_is_refused() {
    // The attacker certifies its own device with its root key, then claims the victim's root.
    let attacker_root = RootKey::from_bytes(&[66; 32]);
    let attacker_device = DeviceKey::from_bytes(&[67; 32]);
    let mut cert_bytes = attacker_root
        .certify_device(&attacker_device.public(), NOW / 1000)
        .encode();
    cert_bytes[1..33].copy_from_slice(root().public().as_bytes());
    let mut wire = post("hi").to_proto(true);
    wire.author_cert = Bytes::from(cert_bytes);
    let forged = resign(wire, &attacker_device);
    assert_eq!(
        ChannelPost::decode_verified(&forged, &channel(), NOW),
        Err(ChannelError::Certificate(CertError::InvalidSignature))
    );

    // A valid certificate, but the post is signed by another device.
    let forged = resign(post("hi").to_proto(true), &attacker_device);
    assert_eq!(
        ChannelPost::decode_verified(&forged, &channel(), NOW),
        Err(ChannelError::InvalidSignature)
    );

    // Building a post with someone else's certificate is refused up front.
    assert_eq!(
        ChannelPost::new(&attacker_device, &cert(), channel(), "hi", NOW, [0; 16]),
        Err(ChannelError::SignerMismatch)
    );
    let bad_cert = DeviceCertificate::decode(&{
        let mut b = cert().encode();
        b[DEVICE_CERT_LEN - 1] ^= 1;
        b
    })
    .expect("well-formed");
    assert_eq!(
        ChannelPost::new(&device(), &bad_cert, channel(), "hi", NOW, [0; 16]),
        Err(ChannelError::Certificate(CertError::InvalidSignature))
    );
}

/// Changes one field of a wire post.
type Mutation = fn(&mut proto::ChannelPost);

#[test]
fn field_lengths_are_checked() {
    let good = post("hi").to_proto(true);
    let cases: [(&str, Mutation); 4] = [
        ("channel_id", |w| {
            w.channel_id = Bytes::from_static(&[0; 31])
        }),
        ("author_cert", |w| {
            w.author_cert = Bytes::from_static(&[1; 136])
        }),
        ("nonce", |w| w.nonce = Bytes::from_static(&[0; 17])),
        ("signature", |w| w.signature = Bytes::new()),
    ];
    for (field, mutate) in cases {
        let mut wire = good.clone();
        mutate(&mut wire);
        let result = ChannelPost::decode_verified(&wire.encode_to_vec(), &channel(), NOW);
        assert!(
            matches!(result, Err(ChannelError::FieldLength { field: f, .. }) if f == field),
            "{field}: {result:?}"
        );
    }
}

#[test]
fn size_limits() {
    // Text: 1 to 4096 bytes, counted in bytes not characters.
    for text in ["", &"x".repeat(MAX_POST_TEXT_BYTES + 1), &"é".repeat(2049)] {
        assert_eq!(
            ChannelPost::new(&device(), &cert(), channel(), text, NOW, [0; 16]),
            Err(ChannelError::TextLength { len: text.len() })
        );
    }
    let longest = post(&"é".repeat(MAX_POST_TEXT_BYTES / 2));
    let bytes = longest.encode();
    assert!(bytes.len() <= MAX_VALID_POST_BYTES);
    assert_eq!(
        ChannelPost::decode_verified(&bytes, &channel(), NOW),
        Ok(longest)
    );

    // A received post with too long or empty text is refused even if signed.
    let mut wire = post("hi").to_proto(true);
    wire.text = "x".repeat(MAX_POST_TEXT_BYTES + 1);
    let signed = resign(wire.clone(), &device());
    assert_eq!(
        ChannelPost::decode_verified(&signed, &channel(), NOW),
        Err(ChannelError::TextLength {
            len: MAX_POST_TEXT_BYTES + 1
        })
    );
    wire.text = String::new();
    let signed = resign(wire, &device());
    assert_eq!(
        ChannelPost::decode_verified(&signed, &channel(), NOW),
        Err(ChannelError::TextLength { len: 0 })
    );

    // Anything over 8 KiB is refused before parsing.
    let junk = vec![0xff; MAX_POST_BYTES + 1];
    assert_eq!(
        ChannelPost::decode_verified(&junk, &channel(), NOW),
        Err(ChannelError::TooLarge {
            len: MAX_POST_BYTES + 1,
            max: MAX_POST_BYTES
        })
    );
}

#[test]
fn time_window() {
    let bytes = post("hi").encode();
    let decode = |now| ChannelPost::decode_verified(&bytes, &channel(), now);
    // Sent at NOW: fine from 5 minutes before (receiver behind) to 7 days after.
    assert!(decode(NOW - MAX_POST_CLOCK_SKEW_MS).is_ok());
    assert_eq!(
        decode(NOW - MAX_POST_CLOCK_SKEW_MS - 1),
        Err(ChannelError::FromTheFuture {
            sent_at_ms: NOW,
            newest_ms: NOW - 1
        })
    );
    assert!(decode(NOW + MAX_POST_AGE_MS).is_ok());
    assert_eq!(
        decode(NOW + MAX_POST_AGE_MS + 1),
        Err(ChannelError::TooOld {
            sent_at_ms: NOW,
            oldest_ms: NOW + 1
        })
    );
    // Extreme clocks do not overflow.
    assert!(matches!(decode(0), Err(ChannelError::FromTheFuture { .. })));
    assert!(matches!(decode(u64::MAX), Err(ChannelError::TooOld { .. })));
    let early = ChannelPost::new(&device(), &cert(), channel(), "hi", 0, [0; 16]).expect("post");
    assert!(ChannelPost::decode_verified(&early.encode(), &channel(), 0).is_ok());
}

#[test]
fn error_messages_are_actionable() {
    let message = ChannelError::TextLength { len: 5000 }.to_string();
    assert!(message.contains("1 to 4096 bytes"), "{message}");
    let message = ChannelError::Certificate(CertError::InvalidSignature).to_string();
    assert!(message.contains("certificate"), "{message}");
}

#[test]
fn dedupe_is_a_bounded_lru() {
    let mut dedupe = PostDedupe::new(3);
    assert!(dedupe.is_empty());
    assert!(dedupe.first_time([1; 32]));
    assert!(!dedupe.first_time([1; 32]), "a repeat");
    assert!(dedupe.first_time([2; 32]));
    assert!(dedupe.first_time([3; 32]));
    assert_eq!(dedupe.len(), 3);
    // Touch 1, so 2 is the least recently seen and goes when 4 arrives.
    assert!(!dedupe.first_time([1; 32]));
    assert!(dedupe.first_time([4; 32]));
    assert_eq!(dedupe.len(), 3);
    assert!(!dedupe.first_time([1; 32]));
    assert!(!dedupe.first_time([3; 32]));
    assert!(!dedupe.first_time([4; 32]));
    assert!(dedupe.first_time([2; 32]), "forgotten, so new again");
    for i in 0..=255u8 {
        dedupe.first_time([i; 32]);
        assert!(dedupe.len() <= 3);
    }
    assert_eq!(dedupe.capacity(), 3);
    assert_eq!(PostDedupe::default().capacity(), DEFAULT_DEDUPE_CAPACITY);
    let mut tiny = PostDedupe::new(0);
    assert_eq!(tiny.capacity(), 1);
    assert!(tiny.first_time([1; 32]));
    assert!(tiny.first_time([2; 32]));
    assert!(
        tiny.first_time([1; 32]),
        "capacity 1 remembers only the last"
    );
}

#[test]
fn dedupe_by_post_id_catches_relayed_copies() {
    let mut dedupe = PostDedupe::default();
    let bytes = post("hi").encode();
    assert!(dedupe.first_time(post_id_of(&bytes)));
    assert!(!dedupe.first_time(post_id_of(&bytes.clone())));
}
