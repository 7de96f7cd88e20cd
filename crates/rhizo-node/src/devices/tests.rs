//! The link protocol between two in-process networks on 127.0.0.1: the new device's responder
//! and the requester with the root key.

use std::time::Duration;

use rhizo_core::{
    DeviceKey, RootKey,
    link::{LinkRefusal, LinkSecret, LinkTicket},
};
use rhizo_net::{Multiaddr, NetConfig, NetEvent};

use super::{DeviceError, requester, responder::answer_link};
use crate::data_dir::{DataDir, DeviceIdentity, InitLinkOutcome, device_keypair};

/// Every wait is bounded.
const WAIT: Duration = Duration::from_secs(30);

fn now() -> u64 {
    u64::try_from(crate::unix_now()).unwrap()
}

/// Starts the new device's network on 127.0.0.1 and a task answering `/rhizo/link/1` from
/// `dir`; returns its address.
async fn serve_link(dir: DataDir, device: DeviceKey) -> Multiaddr {
    let mut config = NetConfig::new(device_keypair(&device));
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let (client, mut events, event_loop) = rhizo_net::start(config).unwrap();
    tokio::spawn(event_loop.run());
    let addr = tokio::time::timeout(WAIT, async {
        loop {
            if let Some(NetEvent::Listening { addr }) = events.recv().await {
                return addr;
            }
        }
    })
    .await
    .expect("the new device listens");
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetEvent::InboundLink {
                peer,
                payload,
                channel,
            } = event
            {
                let answer = answer_link(&dir, &device, peer, &payload, now());
                let _ = client.respond_link(channel, answer.response).await;
            }
        }
    });
    addr
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f).await.expect("bounded")
}

fn requester_net(device: &DeviceKey) -> rhizo_net::Client {
    let (client, _events, event_loop) =
        rhizo_net::start(NetConfig::new(device_keypair(device))).unwrap();
    tokio::spawn(event_loop.run());
    // The events receiver is dropped: the requester only needs its own requests' answers.
    client
}

#[tokio::test]
async fn a_device_is_linked_over_the_link_protocol_once_and_only_with_the_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = DataDir::new(tmp.path().join("new"));
    let InitLinkOutcome::Created(device) = dir.init_link().unwrap() else {
        panic!("expected a new device key");
    };
    let secret = LinkSecret::generate().unwrap();
    dir.write_link_secret(&secret, now()).unwrap();
    let device_pk = device.public();
    let addr = serve_link(dir.clone(), *device).await;
    let ticket = LinkTicket::new(device_pk, secret, vec![addr.to_string()], now()).unwrap();

    let root = RootKey::generate().unwrap();
    let primary = DeviceKey::generate().unwrap();
    let me = primary.public();
    let client = requester_net(&primary);

    // A wrong secret is refused, and nothing is linked.
    let wrong = LinkTicket::new(
        device_pk,
        LinkSecret::from_bytes(&[7; 32]),
        vec![addr.to_string()],
        now(),
    )
    .unwrap();
    let err = bounded(requester::hello(&client, &me, &wrong))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeviceError::Refused(LinkRefusal::WrongProof)),
        "{err}"
    );
    // A ticket naming another key at the same address: the dial does not authenticate it.
    let other = DeviceKey::generate().unwrap().public();
    let forged = LinkTicket::new(
        other,
        ticket.secret().clone(),
        vec![addr.to_string()],
        now(),
    )
    .unwrap();
    let err = bounded(requester::hello(&client, &me, &forged))
        .await
        .unwrap_err();
    assert!(matches!(err, DeviceError::Unreachable(_)), "{err}");

    bounded(requester::hello(&client, &me, &ticket))
        .await
        .unwrap();
    // A certificate for another device is refused.
    let not_its = root.certify_device(&other, now());
    let err = bounded(requester::send_certificate(&client, &me, &ticket, not_its))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeviceError::Refused(LinkRefusal::WrongDevice)),
        "{err}"
    );
    let certificate = root.certify_device(&device_pk, now());
    bounded(requester::send_certificate(
        &client,
        &me,
        &ticket,
        certificate,
    ))
    .await
    .unwrap();
    let DeviceIdentity::Companion(linked) = dir.load_device().unwrap() else {
        panic!("the new device is linked");
    };
    assert_eq!(linked.certificate.root().uid(), root.public().uid());
    // The ticket was single use.
    let err = bounded(requester::hello(&client, &me, &ticket))
        .await
        .unwrap_err();
    assert!(
        matches!(err, DeviceError::Refused(LinkRefusal::NoTicket)),
        "{err}"
    );
}
