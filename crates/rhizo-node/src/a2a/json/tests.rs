use rhizo_core::agent::{Side, TaskStatus as RhizoStatus};
use serde_json::json;

use super::*;

/// What a2a-sdk 1.3.0's server streams for `SendStreamingMessage` (captured from
/// interop/a2a/worker.py): the task, a working status with a message, an artifact, completed.
const SDK_STREAM: [&str; 4] = [
    r#"{"task": {"id": "1d00d318", "contextId": "da181e85", "status": {"state": "TASK_STATE_SUBMITTED"}, "history": [{"messageId": "m1", "contextId": "da181e85", "taskId": "1d00d318", "role": "ROLE_USER", "parts": [{"text": "hello"}]}]}}"#,
    r#"{"statusUpdate": {"taskId": "1d00d318", "contextId": "da181e85", "status": {"state": "TASK_STATE_WORKING", "message": {"messageId": "b9e6", "contextId": "da181e85", "taskId": "1d00d318", "role": "ROLE_AGENT", "parts": [{"text": "working on it"}]}, "timestamp": "2026-12-07T01:17:07.605404Z"}}}"#,
    r#"{"artifactUpdate": {"taskId": "1d00d318", "contextId": "da181e85", "artifact": {"artifactId": "60b3", "name": "upper", "parts": [{"text": "HELLO"}]}}}"#,
    r#"{"statusUpdate": {"taskId": "1d00d318", "contextId": "da181e85", "status": {"state": "TASK_STATE_COMPLETED", "timestamp": "2026-12-07T01:17:07.605519Z"}}}"#,
];

#[test]
fn the_sdk_stream_parses() {
    let events: Vec<StreamResponse> = SDK_STREAM
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let StreamResponse::Task(task) = &events[0] else {
        panic!("first is the task")
    };
    assert_eq!(task.status.state, State::Submitted);
    assert_eq!(task.history[0].role, Role::User);
    let StreamResponse::StatusUpdate(working) = &events[1] else {
        panic!("then a status")
    };
    assert_eq!(working.status.state.to_rhizo(), Some(TaskState::Working));
    let message =
        message_from_a2a(working.status.message.as_ref().unwrap(), RhizoRole::Agent).unwrap();
    assert_eq!(message.joined_text(), "working on it");
    let StreamResponse::ArtifactUpdate(a) = &events[2] else {
        panic!("then an artifact")
    };
    let artifact = artifact_from_a2a(&a.artifact).unwrap();
    assert_eq!(artifact.name.as_deref(), Some("upper"));
    assert_eq!(artifact.parts[0].text.as_deref(), Some("HELLO"));
    let StreamResponse::StatusUpdate(done) = &events[3] else {
        panic!("then completed")
    };
    assert_eq!(done.status.state, State::Completed);
}

#[test]
fn every_state_maps_both_ways_and_unspecified_is_none() {
    for s in TaskState::ALL {
        assert_eq!(State::from(s).to_rhizo(), Some(s));
        let name = serde_json::to_value(State::from(s)).unwrap();
        let expected = format!(
            "TASK_STATE_{}",
            s.as_str().replace('-', "_").to_ascii_uppercase()
        );
        assert_eq!(name, json!(expected));
    }
    assert_eq!(State::Unspecified.to_rhizo(), None);
}

fn task() -> agent::Task {
    let at = 1_796_605_027_605;
    let failed = RhizoStatus {
        state: TaskState::Failed,
        message: None,
        reason: Some("deadline passed".into()),
        timestamp: at,
    };
    agent::Task {
        id: "ab".repeat(16),
        context_id: "ctx".into(),
        side: Side::Client,
        peer: "uid".into(),
        peer_name: None,
        skill: Some("upper".into()),
        priority: Priority::Normal,
        deadline: None,
        requirements: Vec::new(),
        status: failed.clone(),
        status_history: vec![failed],
        history: vec![
            TaskMessage::text("m1", RhizoRole::User, "one"),
            TaskMessage::text("m2", RhizoRole::Agent, "two"),
        ],
        artifacts: vec![agent::Artifact {
            artifact_id: "a1".into(),
            name: None,
            description: None,
            parts: vec![agent::Part::data(json!({"n": 1}))],
        }],
        created_at: at,
        updated_at: at,
        group: None,
        worker: None,
        mode: agent::TaskMode::Any,
        workers: Vec::new(),
    }
}

#[test]
fn a_task_maps_to_the_json_the_sdk_reads() {
    let t = task();
    let json = serde_json::to_value(StreamResponse::Task(task_to_a2a(&t, None))).unwrap();
    assert_eq!(json["task"]["id"], json!(t.id));
    assert_eq!(json["task"]["contextId"], json!("ctx"));
    assert_eq!(json["task"]["status"]["state"], json!("TASK_STATE_FAILED"));
    assert_eq!(
        json["task"]["status"]["timestamp"],
        json!("2026-12-07T00:57:07.605Z")
    );
    // The reason reaches an A2A client as the status message.
    let reason = &json["task"]["status"]["message"];
    assert_eq!(reason["role"], json!("ROLE_AGENT"));
    assert_eq!(reason["parts"][0]["text"], json!("deadline passed"));
    assert_eq!(json["task"]["history"][0]["role"], json!("ROLE_USER"));
    assert_eq!(json["task"]["history"][1]["taskId"], json!(t.id));
    assert_eq!(json["task"]["artifacts"][0]["artifactId"], json!("a1"));
    assert_eq!(
        json["task"]["artifacts"][0]["parts"][0]["data"],
        json!({"n": 1})
    );
    let short = task_to_a2a(&t, Some(1));
    assert_eq!(short.history.len(), 1);
    assert_eq!(short.history[0].message_id, "m2");
    assert!(task_to_a2a(&t, Some(0)).history.is_empty());
}

#[test]
fn a_send_becomes_a_delegation_with_metadata() {
    let req: SendRequest = serde_json::from_value(json!({
        "message": {"messageId": "m1", "contextId": "c1", "role": "ROLE_USER",
                    "parts": [{"text": "hi"}, {"data": {"k": [1, 2]}}, {"raw": "AAE=", "mediaType": "application/octet-stream"}]},
        "configuration": {"returnImmediately": true, "acceptedOutputModes": ["text/plain"]},
        "metadata": {"skill": "upper", "priority": "high", "deadline": 42, "requirements": ["gpu"]},
        "tenant": ""
    }))
    .unwrap();
    assert!(req.configuration.return_immediately);
    let t = new_task_from_send("bob", &req, &[]).unwrap();
    assert_eq!(t.to, "bob");
    assert_eq!(t.parts.len(), 3);
    assert_eq!(t.parts[2].raw.as_deref(), Some("AAE="));
    assert_eq!(t.skill.as_deref(), Some("upper"));
    assert_eq!(t.priority, Priority::High);
    assert_eq!(t.deadline, Some(42));
    assert_eq!(t.requirements, vec!["gpu".to_string()]);
    assert_eq!(t.context_id.as_deref(), Some("c1"));
    assert_eq!(t.message_id.as_deref(), Some("m1"));
}

#[test]
fn an_all_task_to_a_group_maps_its_mode_and_each_workers_artifacts() {
    let req: SendRequest = serde_json::from_value(json!({
        "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hi"}]},
        "metadata": {"mode": "all"}
    }))
    .unwrap();
    assert_eq!(
        new_task_from_send("crew", &req, &[]).unwrap().mode,
        agent::TaskMode::All
    );
    let mut t = task();
    t.mode = agent::TaskMode::All;
    t.artifacts.clear();
    for who in ["U1", "U2"] {
        t.workers.push(agent::TaskWorker {
            worker: who.into(),
            state: agent::TaskState::Completed,
            message: None,
            reason: None,
            artifacts: vec![agent::Artifact {
                artifact_id: "stdout".into(),
                name: None,
                description: None,
                parts: vec![agent::Part::text("HI")],
            }],
            updated_at: 1,
        });
    }
    let a2a = task_to_a2a(&t, None);
    let ids: Vec<&str> = a2a
        .artifacts
        .iter()
        .map(|a| a.artifact_id.as_str())
        .collect();
    assert_eq!(ids, ["U1/stdout", "U2/stdout"]);
    assert_eq!(a2a.artifacts[0].name.as_deref(), Some("worker U1"));
}

#[test]
fn bad_sends_are_refused_with_a_reason() {
    let send = |v: Value| {
        let req: SendRequest = serde_json::from_value(v).unwrap();
        new_task_from_send("bob", &req, &[])
    };
    let url = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"url": "https://x/y"}]}});
    assert_eq!(send(url), Err(MapError::UrlPart));
    let agent =
        json!({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}});
    assert_eq!(send(agent), Err(MapError::Role("ROLE_USER")));
    let empty = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": []}});
    assert!(matches!(send(empty), Err(MapError::Invalid(_))));
    let no_content = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"mediaType": "text/plain"}]}});
    assert_eq!(send(no_content), Err(MapError::EmptyPart));
    let skill = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}, "metadata": {"skill": 5}});
    assert_eq!(send(skill), Err(MapError::Metadata("skill")));
    let priority = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}, "metadata": {"priority": "asap"}});
    assert_eq!(send(priority), Err(MapError::Metadata("priority")));
    let mode = json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"text": "x"}]}, "metadata": {"mode": "most"}});
    assert_eq!(send(mode), Err(MapError::Metadata("mode")));
    let big = json!({"message": {"messageId": "m", "role": "ROLE_USER",
                     "parts": [{"text": "x".repeat(agent::MAX_INLINE_PART_BYTES + 1)}]}});
    assert!(matches!(
        send(big),
        Err(MapError::Invalid(agent::AgentError::TooLarge { .. }))
    ));
}

#[test]
fn a_message_without_id_or_role_gets_one() {
    let m: Message = serde_json::from_value(json!({"parts": [{"text": "x"}]})).unwrap();
    let mapped = message_from_a2a(&m, RhizoRole::User).unwrap();
    assert_eq!(mapped.message_id.len(), 32);
    assert_eq!(mapped.role, RhizoRole::User);
}
