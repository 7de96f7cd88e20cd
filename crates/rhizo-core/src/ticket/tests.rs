//! Tests of the parent module (kept apart so the module file holds only its logic).

use proptest::prelude::*;

use super::*;
use crate::DeviceKey;

const NOW: u64 = 1_700_000_000;

fn root() -> RootKey {
    RootKey::from_bytes(&[7u8; 32])
}

fn device(seed: u8) -> DevicePublicKey {
    DeviceKey::from_bytes(&[seed; 32]).public()
}

fn ticket() -> ContactTicket {
    ContactTicket::new(
        &root(),
        vec![TicketDevice::new(
            device(9),
            vec![
                "/ip4/192.0.2.1/udp/4001/quic-v1".to_owned(),
                "/ip6/2001:db8::1/tcp/4001".to_owned(),
            ],
        )],
        Some("Alice".to_owned()),
        NOW,
    )
    .expect("valid ticket")
}

/// Builds a ticket text from a hand-made body, signed by `signer`.
fn forge(body: &proto::ContactTicketBody, signer: &RootKey) -> String {
    let body = body.encode_to_vec();
    let signature = signer.sign(&signed_message(&body));
    let bytes = proto::ContactTicket {
        body: body.into(),
        signature: Bytes::copy_from_slice(&signature),
    }
    .encode_to_vec();
    format!(
        "{CONTACT_TICKET_PREFIX}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    )
}

fn body_of(ticket: &ContactTicket) -> proto::ContactTicketBody {
    proto::ContactTicketBody::decode(ticket.body().as_slice()).expect("decode")
}

#[test]
fn round_trip_and_text_shape() {
    let ticket = ticket();
    let text = ticket.to_string();
    assert!(text.starts_with("rhz1contact"), "{text}");
    assert!(
        text[CONTACT_TICKET_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)),
        "{text}"
    );
    assert_eq!(text.parse::<ContactTicket>(), Ok(ticket.clone()));
    assert_eq!(
        format!(" \t{}\r\n", text.to_uppercase()).parse::<ContactTicket>(),
        Ok(ticket.clone())
    );
    assert_eq!(ticket.uid(), root().public().uid());
    assert_eq!(ticket.root_pk(), root().public());
    assert_eq!(ticket.name(), Some("Alice"));
    assert_eq!(ticket.created_at(), NOW);
    assert_eq!(ticket.devices()[0].device_pk, device(9));
    assert!(format!("{ticket:?}").contains("Alice"));
}

#[test]
fn signature_covers_the_documented_message() {
    let ticket = ticket();
    let mut message = b"rhizo/contact-ticket/v1".to_vec();
    message.extend_from_slice(&ticket.body());
    assert_eq!(root().public().verify(&message, ticket.signature()), Ok(()));
}

#[test]
fn minimal_ticket_round_trips() {
    let ticket = ContactTicket::new(&root(), Vec::new(), None, 0).expect("valid");
    assert_eq!(ticket.to_string().parse::<ContactTicket>(), Ok(ticket));
}

#[test]
fn typos_give_clear_errors() {
    let text = ticket().to_string();
    let position = CONTACT_TICKET_PREFIX.len() + 10;
    // A character outside the alphabet names the character and position.
    let mut typo = text.clone();
    typo.replace_range(position..=position, "1");
    assert_eq!(
        typo.parse::<ContactTicket>(),
        Err(TicketError::InvalidCharacter {
            character: '1',
            position: position + 1
        })
    );
    let message = typo.parse::<ContactTicket>().unwrap_err().to_string();
    assert!(message.contains("copy the ticket again"), "{message}");
    // Any in-alphabet substitution is caught too.
    for offset in [0, 5, 20, 40, text.len() - CONTACT_TICKET_PREFIX.len() - 2] {
        let at = CONTACT_TICKET_PREFIX.len() + offset;
        let mut typo = text.clone();
        let replacement = if &text[at..=at] == "a" { "b" } else { "a" };
        typo.replace_range(at..=at, replacement);
        let error = typo.parse::<ContactTicket>().expect_err("typo accepted");
        assert!(
            error.to_string().contains("copy"),
            "offset {offset}: {error}"
        );
    }
    // A dropped character.
    let mut short = text.clone();
    short.pop();
    assert!(short.parse::<ContactTicket>().is_err());
    // Wrong prefix.
    assert_eq!(
        text.replacen("contact", "contract", 1)
            .parse::<ContactTicket>(),
        Err(TicketError::MissingPrefix)
    );
    assert_eq!("".parse::<ContactTicket>(), Err(TicketError::MissingPrefix));
    // Non-ASCII in the base32 part.
    let mut accent = text.clone();
    accent.replace_range(position..=position, "é");
    assert_eq!(
        accent.parse::<ContactTicket>(),
        Err(TicketError::InvalidCharacter {
            character: 'é',
            position: position + 1
        })
    );
}

#[test]
fn wrong_uid_or_root_is_rejected() {
    let ticket = ticket();
    // A UID that is not the root key's, signed by the root key.
    let mut body = body_of(&ticket);
    body.uid = Bytes::copy_from_slice(RootKey::from_bytes(&[8u8; 32]).public().uid().as_bytes());
    assert_eq!(
        forge(&body, &root()).parse::<ContactTicket>(),
        Err(TicketError::UidMismatch)
    );
    // The victim's UID and root key, signed by an attacker.
    let attacker = RootKey::from_bytes(&[66u8; 32]);
    assert_eq!(
        forge(&body_of(&ticket), &attacker).parse::<ContactTicket>(),
        Err(TicketError::InvalidSignature)
    );
    // The attacker's root key with the victim's UID.
    let mut body = body_of(&ticket);
    body.root_pk = Bytes::copy_from_slice(attacker.public().as_bytes());
    assert_eq!(
        forge(&body, &attacker).parse::<ContactTicket>(),
        Err(TicketError::UidMismatch)
    );
    // A root key that is not a valid point.
    let mut body = body_of(&ticket);
    body.root_pk = Bytes::from_static(&[0u8; 32]);
    assert_eq!(
        forge(&body, &root()).parse::<ContactTicket>(),
        Err(TicketError::InvalidKey)
    );
    // A short UID.
    let mut body = body_of(&ticket);
    body.uid = Bytes::from_static(&[1u8; 31]);
    assert_eq!(
        forge(&body, &root()).parse::<ContactTicket>(),
        Err(TicketError::Malformed("UID is not 32 bytes"))
    );
}

#[test]
fn limits_are_enforced_on_build_and_parse() {
    let root = root();
    let devices: Vec<TicketDevice> = (1..=5)
        .map(|seed| TicketDevice::new(device(seed), Vec::new()))
        .collect();
    assert_eq!(
        ContactTicket::new(&root, devices.clone(), None, NOW),
        Err(TicketError::TooManyDevices { max: 4, actual: 5 })
    );
    let mut body = body_of(&ContactTicket::new(&root, Vec::new(), None, NOW).expect("ok"));
    body.devices = devices
        .iter()
        .map(|d| proto::TicketDevice {
            device_pk: Bytes::copy_from_slice(d.device_pk.as_bytes()),
            ..Default::default()
        })
        .collect();
    assert_eq!(
        forge(&body, &root).parse::<ContactTicket>(),
        Err(TicketError::TooManyDevices { max: 4, actual: 5 })
    );

    let twice = vec![
        TicketDevice::new(device(1), Vec::new()),
        TicketDevice::new(device(1), Vec::new()),
    ];
    assert_eq!(
        ContactTicket::new(&root, twice, None, NOW),
        Err(TicketError::DuplicateDevice { index: 1 })
    );
    let many_addrs = vec![TicketDevice::new(device(1), vec!["/a".to_owned(); 9])];
    assert_eq!(
        ContactTicket::new(&root, many_addrs, None, NOW),
        Err(TicketError::TooManyAddrs {
            device: 0,
            max: 8,
            actual: 9
        })
    );
    for bad in [String::new(), "/".repeat(257), "/dns/a\nb".to_owned()] {
        let devices = vec![TicketDevice::new(device(1), vec!["/ok".to_owned(), bad])];
        assert_eq!(
            ContactTicket::new(&root, devices, None, NOW),
            Err(TicketError::InvalidAddr { device: 0, addr: 1 })
        );
    }
    for bad in [String::new(), "x".repeat(65), "evil\u{1b}[2J".to_owned()] {
        assert_eq!(
            ContactTicket::new(&root, Vec::new(), Some(bad), NOW),
            Err(TicketError::InvalidName)
        );
    }
    assert!(ContactTicket::new(&root, Vec::new(), Some("é".repeat(64)), NOW).is_ok());

    // The largest content that passes the per-field limits is too long as text.
    let huge: Vec<TicketDevice> = (1..=4)
        .map(|seed| TicketDevice::new(device(seed), vec!["/".repeat(256); 8]))
        .collect();
    assert!(matches!(
        ContactTicket::new(&root, huge, None, NOW),
        Err(TicketError::TooLong { max: 4096, .. })
    ));
    assert_eq!(
        format!("rhz1contact{}", "a".repeat(4096)).parse::<ContactTicket>(),
        Err(TicketError::TooLong {
            max: 4096,
            actual: 4107
        })
    );
}

#[test]
fn non_canonical_tickets_are_rejected() {
    let ticket = ticket();
    let mut bytes = ticket.encode();
    bytes.extend_from_slice(&[0x78, 0x01]); // unknown field 15
    let text = format!(
        "{CONTACT_TICKET_PREFIX}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    );
    assert_eq!(
        text.parse::<ContactTicket>(),
        Err(TicketError::Malformed("not canonically encoded"))
    );
}

#[test]
fn qr_code_renders_and_the_largest_ticket_fits() {
    let qr = ticket().to_qr_string();
    assert!(qr.lines().count() > 10, "{qr}");
    assert!(
        qr.chars()
            .all(|c| matches!(c, ' ' | '▀' | '▄' | '█' | '\n'))
    );
    // A ticket near the limit still renders as a QR code, not as text.
    let big: Vec<TicketDevice> = (1..=4)
        .map(|seed| TicketDevice::new(device(seed), vec!["/".repeat(256); 2]))
        .collect();
    let ticket = ContactTicket::new(&root(), big, Some("n".repeat(64)), NOW).expect("fits");
    assert!(ticket.to_string().len() > 3000);
    assert!(!ticket.to_qr_string().contains("RHZ1"));
    assert!(render_qr(&"A".repeat(MAX_TICKET_CHARS)).is_some());
}

#[test]
fn device_proofs_round_trip_and_are_checked() {
    let root = root();
    let key = DeviceKey::from_bytes(&[9u8; 32]);
    let certificate = root.certify_device(&key.public(), NOW);
    let proven = TicketDevice::with_proof(&key, certificate, vec!["/ip4/192.0.2.1/tcp/1".into()])
        .expect("proof");
    // The documented message, signed by the device key.
    let mut message = b"rhizo/device-possession/v1".to_vec();
    message.extend_from_slice(&certificate.encode());
    let proof = proven.proof.clone().expect("proof");
    assert_eq!(key.public().verify(&message, &proof.possession), Ok(()));
    let ticket = ContactTicket::new(
        &root,
        vec![proven, TicketDevice::new(device(3), Vec::new())],
        None,
        NOW,
    )
    .expect("ticket");
    let parsed: ContactTicket = ticket.to_string().parse().expect("parses");
    assert_eq!(parsed, ticket);
    assert_eq!(parsed.devices()[0].proven_certificate(), Some(&certificate));
    // A device without proof parses (older tickets) but is not proven.
    assert_eq!(parsed.devices()[1].proven_certificate(), None);
    // A certificate for another key cannot be used.
    let other = root.certify_device(&device(3), NOW);
    assert_eq!(
        TicketDevice::with_proof(&key, other, Vec::new()),
        Err(TicketError::InvalidDeviceProof { device: 0 })
    );
}

#[test]
fn a_ticket_cannot_claim_someone_elses_device() {
    // Bob's device and its genuine proof (certificate from bob's root, signed by the device).
    let bob = RootKey::from_bytes(&[2u8; 32]);
    let bob_device = DeviceKey::from_bytes(&[3u8; 32]);
    let bob_proof = DeviceProof::new(&bob_device, bob.certify_device(&bob_device.public(), NOW))
        .expect("proof");
    let mallory = root();
    // Mallory lists bob's device with bob's proof: the certificate is for another root.
    let forged = TicketDevice {
        device_pk: bob_device.public(),
        addrs: Vec::new(),
        proof: Some(bob_proof.clone()),
    };
    assert_eq!(
        ContactTicket::new(&mallory, vec![forged.clone()], None, NOW),
        Err(TicketError::InvalidDeviceProof { device: 0 })
    );
    let mut body = body_of(&ContactTicket::new(&mallory, Vec::new(), None, NOW).expect("ok"));
    let encoded = |proof: &DeviceProof| proto::TicketDevice {
        device_pk: Bytes::copy_from_slice(bob_device.public().as_bytes()),
        addrs: Vec::new(),
        certificate: Bytes::copy_from_slice(&proof.certificate.encode()),
        possession: Bytes::copy_from_slice(&proof.possession),
    };
    body.devices = vec![encoded(&bob_proof)];
    assert_eq!(
        forge(&body, &mallory).parse::<ContactTicket>(),
        Err(TicketError::InvalidDeviceProof { device: 0 })
    );
    // Mallory certifies bob's device herself: she cannot make the device sign it.
    let certificate = mallory.certify_device(&bob_device.public(), NOW);
    let fake = DeviceProof {
        certificate,
        possession: bob_proof.possession,
    };
    body.devices = vec![encoded(&fake)];
    assert_eq!(
        forge(&body, &mallory).parse::<ContactTicket>(),
        Err(TicketError::InvalidDeviceProof { device: 0 })
    );
    // Without any proof the ticket parses, and the device is not proven.
    let parsed = ContactTicket::new(
        &mallory,
        vec![TicketDevice::new(bob_device.public(), Vec::new())],
        None,
        NOW,
    )
    .expect("ticket");
    assert_eq!(parsed.devices()[0].proven_certificate(), None);
    // Half a proof is malformed.
    let mut half = encoded(&bob_proof);
    half.possession = Bytes::new();
    body.devices = vec![half];
    assert!(matches!(
        forge(&body, &mallory).parse::<ContactTicket>(),
        Err(TicketError::Malformed(_))
    ));
}

proptest! {
    #[test]
    fn parse_never_panics(text in ".{0,300}") {
        let _ = text.parse::<ContactTicket>();
        let _ = format!("rhz1contact{text}").parse::<ContactTicket>();
    }

    #[test]
    fn parse_never_panics_on_base32(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let text = format!("rhz1contact{}", BASE32_NOPAD.encode(&bytes));
        let _ = text.parse::<ContactTicket>();
    }

    #[test]
    fn round_trip(
        seed in any::<[u8; 32]>(),
        device_seeds in proptest::collection::btree_set(any::<u8>(), 0..=4),
        addr in "/[a-z0-9/.]{1,40}",
        name in proptest::option::of("[^\\p{Cc}]{1,64}"),
        now in any::<u64>(),
    ) {
        let root = RootKey::from_bytes(&seed);
        let devices = device_seeds
            .into_iter()
            .map(|s| TicketDevice::new(device(s), vec![addr.clone()]))
            .collect();
        let ticket = ContactTicket::new(&root, devices, name, now).expect("valid");
        prop_assert_eq!(ticket.to_string().parse::<ContactTicket>(), Ok(ticket));
    }
}
