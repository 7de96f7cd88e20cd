//! The JSON the node gives clients for files (`clients/vectors/file-parts-v1.json`), which the
//! TypeScript package's types and helpers are checked against: a task whose request and
//! artifact name files (`GET /v1/tasks`), a file (`GET /v1/files`) and a file message of the
//! history (`GET /v1/messages`). `RHIZO_WRITE_VECTORS=1` writes the file again; without it the
//! stored file must equal what this code serializes.

use rhizo_core::agent::{
    Artifact, FilePart, Part, Priority, Role, Side, Task, TaskMessage, TaskMode, TaskState,
    TaskStatus,
};
use serde_json::{Value, json};

use super::FileView;
use crate::messaging::{FileSummary, MessageView};

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../clients/vectors/file-parts-v1.json"
);

fn file_part(id: Option<i64>, hash: u8, name: &str, size: u64, state: Option<&str>) -> Part {
    Part {
        file: Some(FilePart {
            id,
            hash: hex::encode([hash; 32]),
            name: name.into(),
            size,
            mime: crate::files::guess_mime(name).into(),
            state: state.map(Into::into),
        }),
        ..Part::default()
    }
}

fn task() -> Task {
    let status = |state, timestamp| TaskStatus {
        state,
        message: None,
        reason: None,
        timestamp,
    };
    Task {
        id: "5f".repeat(16),
        context_id: "5f".repeat(16),
        side: Side::Client,
        peer: "agent-uid".into(),
        peer_name: Some("bob".into()),
        skill: Some("summarise".into()),
        priority: Priority::Normal,
        deadline: None,
        requirements: Vec::new(),
        status: status(TaskState::Completed, 1_700_000_002_000),
        status_history: vec![
            status(TaskState::Submitted, 1_700_000_000_000),
            status(TaskState::Completed, 1_700_000_002_000),
        ],
        history: vec![TaskMessage {
            message_id: "m1".into(),
            role: Role::User,
            parts: vec![
                Part::text("summarise this"),
                file_part(Some(12), 0xab, "report.pdf", 20 << 20, Some("done")),
            ],
        }],
        artifacts: vec![Artifact {
            artifact_id: "a1".into(),
            name: Some("summary".into()),
            description: None,
            // Its file message has not arrived here yet: no id, no state.
            parts: vec![file_part(None, 0xcd, "summary.txt", 2048, None)],
        }],
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_002_000,
        group: None,
        worker: None,
        mode: TaskMode::Any,
        workers: Vec::new(),
    }
}

fn file() -> FileView {
    FileView {
        id: 12,
        direction: "in".into(),
        contact: Some("ab".repeat(32)),
        group: None,
        name: "report.pdf".into(),
        size: 20 << 20,
        mime: "application/pdf".into(),
        state: "downloading".into(),
        done_bytes: 7 << 20,
        total_bytes: rhizo_core::file::encrypted_size(20 << 20),
        hash: "ab".repeat(32),
        path: None,
        error: None,
        resumed_chunks: 3,
        fetched_chunks: 109,
    }
}

fn message() -> MessageView {
    MessageView {
        id: 12,
        direction: "in".into(),
        text: Some("the report".into()),
        sent_at: 1_700_000_000_000,
        state: "received".into(),
        seq: 4,
        error: None,
        replicas: None,
        file: Some(FileSummary {
            name: "report.pdf".into(),
            size: 20 << 20,
            mime: "application/pdf".into(),
            state: "downloading".into(),
            percent: 34,
        }),
    }
}

fn vectors() -> Value {
    json!({
        "description": "What rhizo's local API (and /v1/ws) gives clients for files: a task \
                        whose request and artifact name files (GET /v1/tasks), a file \
                        (GET /v1/files) and a file message (GET /v1/messages). Written by \
                        crates/rhizo-node/src/files/json_vectors.rs.",
        "task": task(),
        "file": file(),
        "message": message(),
    })
}

#[test]
fn the_stored_vectors_are_what_the_node_serializes() {
    let now = vectors();
    if std::env::var_os("RHIZO_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&now).unwrap();
        std::fs::write(PATH, format!("{text}\n")).unwrap();
    }
    let stored: Value = serde_json::from_str(
        &std::fs::read_to_string(PATH).expect("RHIZO_WRITE_VECTORS=1 writes the vector file"),
    )
    .unwrap();
    assert_eq!(
        stored, now,
        "clients/vectors/file-parts-v1.json is stale: the node's JSON changed (update \
         clients/ts/index.d.ts, then RHIZO_WRITE_VECTORS=1)"
    );
    // The stored task parses back as the node's own type.
    let task: Task = serde_json::from_value(stored["task"].clone()).unwrap();
    assert_eq!(task.history[0].parts[1].file.as_ref().unwrap().id, Some(12));
}
