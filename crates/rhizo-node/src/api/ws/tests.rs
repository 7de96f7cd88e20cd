use super::protocol::{ClientMessage, ServerMessage};
use super::*;
use crate::events::ApiEvent;

#[tokio::test(start_paused = true)]
async fn rate_limit_allows_a_burst_then_the_rate() {
    let mut limit = RateLimit::new();
    let burst = (0..100).take_while(|_| limit.allow()).count();
    assert_eq!(burst, REQUEST_BURST as usize);
    assert!(!limit.allow());
    tokio::time::advance(Duration::from_millis(100)).await;
    // 100 ms at 20/s: two more.
    assert!(limit.allow());
    assert!(limit.allow());
    assert!(!limit.allow());
    tokio::time::advance(Duration::from_secs(60)).await;
    let refilled = (0..100).take_while(|_| limit.allow()).count();
    assert_eq!(refilled, REQUEST_BURST as usize);
}

#[test]
fn client_messages_parse_as_documented() {
    let m: ClientMessage =
        serde_json::from_str(r#"{"type":"message","request_id":3,"to":"bob","text":"hi"}"#)
            .unwrap();
    assert_eq!(
        m,
        ClientMessage::Message {
            request_id: Some(3),
            to: "bob".into(),
            text: "hi".into()
        }
    );
    let m: ClientMessage = serde_json::from_str(r#"{"type":"discover"}"#).unwrap();
    assert_eq!(m, ClientMessage::Discover { request_id: None });
    assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"nope"}"#).is_err());
    assert!(serde_json::from_str::<ClientMessage>(r#"{"type":"ping","extra":1}"#).is_err());
}

#[test]
fn server_messages_serialise_as_documented() {
    let m = ServerMessage::from_event(ApiEvent::MessageReceived {
        id: 7,
        contact: "bob".into(),
        text: "hello".into(),
        sent_at: 5,
        muted: false,
    })
    .unwrap();
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        serde_json::json!({"type":"message","id":7,"from":"bob","text":"hello","sent_at":5})
    );
    let e = ServerMessage::error(Some(1), protocol::codes::RATE_LIMITED, "slow down");
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        serde_json::json!({"type":"error","request_id":1,"code":"RATE_LIMITED","message":"slow down"})
    );
    let p = ServerMessage::PeerDisconnected { peer: "bob".into() };
    assert_eq!(
        serde_json::to_value(&p).unwrap(),
        serde_json::json!({"type":"peer_disconnected","peer":"bob"})
    );
}
