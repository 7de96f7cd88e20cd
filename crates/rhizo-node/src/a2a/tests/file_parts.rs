//! A client's file parts (issue 16): a raw part over the inline limit and a
//! `urn:rhizo:file:HASH` url part become rhizo file parts naming the file messages the node
//! attached; bad ones are refused before anything is attached.

use rhizo_core::agent::MAX_INLINE_PART_BYTES;

use super::*;

fn b64(bytes: &[u8]) -> String {
    data_encoding::BASE64.encode(bytes)
}

fn send(parts: Value) -> Value {
    json!({"message": {"messageId": "m1", "role": "ROLE_USER", "parts": parts},
           "configuration": {"returnImmediately": true}})
}

#[test]
fn which_parts_carry_files() {
    let big = vec![7u8; MAX_INLINE_PART_BYTES + 1];
    let hash = "ab".repeat(32);
    let parts: Vec<json::Part> = serde_json::from_value(json!([
        {"text": "look"},
        {"raw": b64(&[1, 2, 3]), "filename": "small.bin"},
        {"raw": b64(&big), "filename": "photo.PNG"},
        {"raw": b64(&big), "mediaType": "application/x-thing"},
        {"url": format!("urn:rhizo:file:{hash}")},
    ]))
    .unwrap();
    let found = json::inbound_files(&parts).unwrap();
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(
        found[0],
        (
            2,
            InboundFile::Bytes {
                name: "photo.PNG".into(),
                mime: "image/png".into(),
                bytes: big.clone(),
            }
        ),
        "a name's extension gives the MIME type"
    );
    assert_eq!(
        found[1],
        (
            3,
            InboundFile::Bytes {
                name: "attachment".into(),
                mime: "application/x-thing".into(),
                bytes: big,
            }
        )
    );
    assert_eq!(found[2], (4, InboundFile::Known { hash: [0xab; 32] }));
}

#[test]
fn bad_file_parts_are_refused_with_what_to_do() {
    let refused = |part: Value| json::inbound_files(&[serde_json::from_value(part).unwrap()]);
    let web = refused(json!({"url": "https://example.com/x.pdf"})).unwrap_err();
    assert_eq!(web, json::MapError::UrlPart);
    assert!(web.to_string().contains("urn:rhizo:file:HASH"), "{web}");
    assert_eq!(
        refused(json!({"url": "urn:rhizo:file:abcd"})),
        Err(json::MapError::UrlPart),
        "a hash of 64 hex digits"
    );
    let big = b64(&vec![0u8; MAX_INLINE_PART_BYTES + 1]);
    assert_eq!(
        refused(json!({"raw": big.clone(), "filename": "../etc/passwd"})),
        Err(json::MapError::BadFilename)
    );
    let mut not_base64 = big;
    not_base64.replace_range(0..4, "!!!!");
    assert_eq!(
        refused(json!({"raw": not_base64})),
        Err(json::MapError::BadRaw)
    );
}

#[tokio::test]
async fn send_message_attaches_file_parts_and_names_them_in_the_task() {
    let fake = Fake::new(false);
    let big = vec![9u8; MAX_INLINE_PART_BYTES + 10];
    let parts = json!([
        {"text": "summarise these"},
        {"raw": b64(&big), "filename": "report.pdf"},
        {"url": format!("urn:rhizo:file:{}", "cd".repeat(32)), "filename": "old.csv"},
        {"raw": b64(b"tiny"), "filename": "tiny.txt"},
    ]);
    let v = call(&fake, "upper", "SendMessage", send(parts)).await;
    assert!(v["error"].is_null(), "{v}");
    let s = fake.state.lock().unwrap();
    assert_eq!(s.attached.len(), 2);
    assert!(
        s.attached.iter().all(|(to, _)| to == UID),
        "attached in the conversation with the agent's UID"
    );
    assert!(
        matches!(&s.attached[0].1, InboundFile::Bytes { name, mime, bytes }
        if name == "report.pdf" && mime == "application/pdf" && *bytes == big)
    );
    assert_eq!(s.attached[1].1, InboundFile::Known { hash: [0xcd; 32] });
    let parts = &s.delegated[0].parts;
    assert_eq!(parts[0].text.as_deref(), Some("summarise these"));
    assert_eq!(parts[1].file.as_ref().and_then(|f| f.id), Some(101));
    assert_eq!(parts[2].file.as_ref().and_then(|f| f.id), Some(102));
    assert!(
        parts[3].raw.is_some(),
        "a small raw part still travels inline"
    );
}

#[tokio::test]
async fn a_bad_part_fails_the_send_before_any_file_is_attached() {
    let fake = Fake::new(false);
    let big = b64(&vec![1u8; MAX_INLINE_PART_BYTES + 1]);
    // The file part is fine; the text part is over the inline limit.
    let parts = json!([
        {"raw": big, "filename": "a.bin"},
        {"text": "x".repeat(MAX_INLINE_PART_BYTES + 1)},
    ]);
    let v = call(&fake, UID, "SendMessage", send(parts)).await;
    assert_eq!(v["error"]["code"], json!(-32602), "{v}");
    // An unknown hash: the node's error reaches the client, and no task is made.
    let unknown = json!([{"url": format!("urn:rhizo:file:{}", "ee".repeat(32))}]);
    let v = call(&fake, UID, "SendMessage", send(unknown)).await;
    assert_eq!(v["error"]["code"], json!(-32602), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no file with that hash"),
        "{v}"
    );
    let s = fake.state.lock().unwrap();
    assert!(s.attached.is_empty());
    assert!(s.delegated.is_empty());
}

#[tokio::test]
async fn an_oversized_request_gets_a_clear_json_rpc_error() {
    let r = rpc::too_large(16 << 20);
    let v: Value = serde_json::from_str(&body_text(r).await).unwrap();
    assert_eq!(v["error"]["code"], json!(-32600));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("POST /v1/files"),
        "{v}"
    );
}
