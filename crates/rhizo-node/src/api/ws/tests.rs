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
    });
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

#[test]
fn every_other_event_reaches_light_clients_as_an_event() {
    let progress = ApiEvent::FileProgress {
        id: 9,
        state: "done".into(),
        done_bytes: 10,
        total_bytes: 10,
    };
    let m = ServerMessage::from_event(progress);
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        serde_json::json!({"type":"event","event":{"type":"file_progress","id":9,"state":"done","done_bytes":10,"total_bytes":10}})
    );
    let group = ApiEvent::GroupMessageReceived {
        id: 3,
        group: "ab".into(),
        from: "UID".into(),
        text: "hi".into(),
        sent_at: 1,
        muted: false,
    };
    assert!(matches!(
        ServerMessage::from_event(group),
        ServerMessage::Event { .. }
    ));
    let added = ServerMessage::from_event(ApiEvent::ContactAdded { name: "x".into() });
    assert_eq!(
        serde_json::to_value(&added).unwrap(),
        serde_json::json!({"type":"event","event":{"type":"contact_added","name":"x"}})
    );
}

#[test]
fn the_group_file_and_task_requests_parse_as_documented() {
    let m: ClientMessage = serde_json::from_str(
        r#"{"type":"group_message","request_id":4,"group":"ab12","text":"hi all"}"#,
    )
    .unwrap();
    assert_eq!(
        m,
        ClientMessage::GroupMessage {
            request_id: Some(4),
            group: "ab12".into(),
            text: "hi all".into()
        }
    );
    for (text, want) in [
        (
            r#"{"type":"groups"}"#,
            ClientMessage::Groups { request_id: None },
        ),
        (
            r#"{"type":"files","request_id":1}"#,
            ClientMessage::Files {
                request_id: Some(1),
            },
        ),
        (
            r#"{"type":"tasks"}"#,
            ClientMessage::Tasks { request_id: None },
        ),
    ] {
        assert_eq!(serde_json::from_str::<ClientMessage>(text).unwrap(), want);
    }
    let state = ServerMessage::GroupMessageState {
        request_id: Some(4),
        id: 12,
        group: "ab12".into(),
        state: "sent".into(),
        total: 2,
    };
    assert_eq!(
        serde_json::to_value(&state).unwrap(),
        serde_json::json!({"type":"group_message_state","request_id":4,"id":12,"group":"ab12","state":"sent","total":2})
    );
}
