use super::*;
use crate::{DeviceKey, RootKey};

const NOW: u64 = 1_700_000_000;

fn ticket() -> (DeviceKey, LinkTicket) {
    let device = DeviceKey::from_bytes(&[3u8; 32]);
    let ticket = LinkTicket::new(
        device.public(),
        LinkSecret::from_bytes(&[9u8; 32]),
        vec!["/ip4/127.0.0.1/udp/4001/quic-v1".to_owned()],
        NOW,
    )
    .unwrap();
    (device, ticket)
}

#[test]
fn a_ticket_round_trips_in_any_case_and_as_qr_text() {
    let (device, ticket) = ticket();
    let text = ticket.to_string();
    assert!(text.starts_with("rhz1link"), "{text}");
    let parsed: LinkTicket = format!(" {}\n", text.to_uppercase()).parse().unwrap();
    assert_eq!(parsed, ticket);
    assert_eq!(parsed.device_pk(), device.public());
    assert!(!ticket.to_qr_string().is_empty());
    // The secret never shows in Debug output.
    assert!(!format!("{ticket:?}").contains("9, 9"));
}

#[test]
fn malformed_tickets_are_refused_with_a_clear_error() {
    let (_, ticket) = ticket();
    let text = ticket.to_string();
    assert_eq!(
        "rhz1contactabc".parse::<LinkTicket>(),
        Err(LinkError::MissingPrefix)
    );
    assert!(matches!(
        text[..text.len() - 7].parse::<LinkTicket>(),
        Err(LinkError::Malformed(_))
    ));
    assert!(matches!(
        format!("{text}!").parse::<LinkTicket>(),
        Err(LinkError::Malformed(_))
    ));
    assert!(matches!(
        "rhz1link".repeat(600).parse::<LinkTicket>(),
        Err(LinkError::TooLong(_))
    ));
    let many = vec!["/ip4/127.0.0.1/tcp/1".to_owned(); 9];
    assert!(
        LinkTicket::new(
            ticket.device_pk(),
            LinkSecret::from_bytes(&[1; 32]),
            many,
            NOW
        )
        .is_err()
    );
}

#[test]
fn a_ticket_expires_after_ten_minutes() {
    let (_, ticket) = ticket();
    ticket.check_fresh(NOW).unwrap();
    ticket.check_fresh(NOW + LINK_TICKET_TTL_SECS).unwrap();
    assert_eq!(
        ticket.check_fresh(NOW + LINK_TICKET_TTL_SECS + 1),
        Err(LinkError::Expired)
    );
    assert_eq!(ticket.check_fresh(NOW - 3600), Err(LinkError::Expired));
}

#[test]
fn a_proof_needs_the_same_secret_keys_and_role() {
    let (device, ticket) = ticket();
    let primary = DeviceKey::from_bytes(&[4u8; 32]).public();
    let other = DeviceKey::from_bytes(&[5u8; 32]).public();
    let secret = ticket.secret();
    let proof = secret.proof(LinkRole::Primary, &primary, &device.public());
    secret
        .verify(LinkRole::Primary, &primary, &device.public(), &proof)
        .unwrap();
    // Wrong secret.
    let wrong = LinkSecret::from_bytes(&[8u8; 32]);
    assert_eq!(
        wrong.verify(LinkRole::Primary, &primary, &device.public(), &proof),
        Err(LinkError::WrongProof)
    );
    // Wrong key (another requester, or another new device).
    assert!(
        secret
            .verify(LinkRole::Primary, &other, &device.public(), &proof)
            .is_err()
    );
    assert!(
        secret
            .verify(LinkRole::Primary, &primary, &other, &proof)
            .is_err()
    );
    // The requester's proof is not the device's.
    assert!(
        secret
            .verify(LinkRole::Device, &primary, &device.public(), &proof)
            .is_err()
    );
    assert!(
        secret
            .verify(LinkRole::Primary, &primary, &device.public(), &proof[..31])
            .is_err()
    );
}

#[test]
fn link_messages_round_trip_and_bad_bytes_are_errors() {
    let (device, _) = ticket();
    let root = RootKey::from_bytes(&[1u8; 32]);
    let primary = DeviceKey::from_bytes(&[4u8; 32]).public();
    let request = LinkRequest {
        primary_pk: primary,
        proof: [7; LINK_PROOF_LEN],
        certificate: Some(root.certify_device(&device.public(), NOW)),
    };
    assert_eq!(LinkRequest::decode(&request.encode()).unwrap(), request);
    let hello = LinkRequest {
        certificate: None,
        ..request
    };
    assert_eq!(LinkRequest::decode(&hello.encode()).unwrap(), hello);
    for response in [
        LinkResponse::Accepted([1; LINK_PROOF_LEN]),
        LinkResponse::Refused(LinkRefusal::NoTicket),
    ] {
        assert_eq!(LinkResponse::decode(&response.encode()).unwrap(), response);
    }
    assert!(LinkRequest::decode(b"\xff\xff").is_err());
    assert!(LinkRequest::decode(&[0u8; MAX_LINK_MESSAGE_BYTES + 1]).is_err());
    assert!(LinkResponse::decode(b"\x0a\x03abc").is_err());
}

proptest::proptest! {
    #[test]
    fn decoders_never_panic_on_arbitrary_input(bytes in proptest::collection::vec(0u8.., 0..600)) {
        let _ = LinkRequest::decode(&bytes);
        let _ = LinkResponse::decode(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = text.parse::<LinkTicket>();
        let _ = format!("rhz1link{text}").parse::<LinkTicket>();
        let _ = crate::RootKey::from_phrase(&text);
    }
}
