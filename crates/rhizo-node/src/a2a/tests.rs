//! The JSON-RPC layer, the streams, the card and the worker side against an in-memory
//! [`AgentBackend`].

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{body::Body, response::Response};
use rhizo_core::agent::{
    AgentCard, AgentSkill, Artifact, Part, Priority, Role, Side, Task, TaskMessage, TaskState,
    TaskStatus, TaskUpdateInput,
};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::*;

mod file_parts;
mod sse_parser;
mod worker_side;

const UID: &str = "worker-uid";
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct FakeState {
    tasks: Vec<Task>,
    delegated: Vec<NewTask>,
    inputs: Vec<(String, TaskMessage)>,
    updates: Vec<(String, TaskUpdateInput)>,
    canceled: Vec<String>,
    /// Files attached for tasks: (peer, file).
    attached: Vec<(String, InboundFile)>,
    next: u32,
}

/// An in-memory node: one known agent, tasks in a list, updates applied with the state
/// machine's rules and published as events. With `auto`, each delegated task runs at once:
/// working, then completed with an upper-cased artifact (as a remote worker would answer).
#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<FakeState>>,
    events: broadcast::Sender<ApiEvent>,
    auto: bool,
}

fn card() -> AgentCard {
    serde_json::from_value(json!({
        "name": "Upper", "description": "upper-cases", "version": "1.2",
        "skills": [{"id": "upper", "name": "Upper-case", "tags": ["text"], "examples": ["hi"]}]
    }))
    .unwrap()
}

fn status(state: TaskState, at: i64) -> TaskStatus {
    TaskStatus {
        state,
        message: None,
        reason: None,
        timestamp: at,
    }
}

fn new_task(id: &str, side: Side, peer: &str, state: TaskState, text: &str) -> Task {
    Task {
        id: id.into(),
        context_id: format!("ctx-{id}"),
        side,
        peer: peer.into(),
        peer_name: None,
        skill: None,
        priority: Priority::Normal,
        deadline: None,
        requirements: Vec::new(),
        status: status(state, 1),
        status_history: vec![status(state, 1)],
        history: vec![TaskMessage::text(format!("m-{id}"), Role::User, text)],
        artifacts: Vec::new(),
        created_at: 1,
        updated_at: 1,
        group: None,
        worker: None,
        mode: rhizo_core::agent::TaskMode::Any,
        workers: Vec::new(),
    }
}

impl Fake {
    fn new(auto: bool) -> Self {
        Self {
            state: Arc::default(),
            events: broadcast::channel(64).0,
            auto,
        }
    }

    fn add(&self, task: Task) {
        self.state.lock().unwrap().tasks.push(task);
    }

    fn get(&self, id: &str) -> Option<Task> {
        let s = self.state.lock().unwrap();
        s.tasks.iter().find(|t| t.id == id).cloned()
    }

    /// Applies an update as the engine would (either side) and publishes it.
    fn apply(&self, id: &str, u: &TaskUpdateInput) -> Result<Task, BackendError> {
        let mut s = self.state.lock().unwrap();
        let t = s
            .tasks
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| BackendError::UnknownTask(id.into()))?;
        t.status
            .state
            .check_move(u.state)
            .map_err(|e| BackendError::BadTransition(e.to_string()))?;
        let st = TaskStatus {
            state: u.state,
            message: u.message.clone(),
            reason: u.reason.clone(),
            timestamp: 2,
        };
        t.status = st.clone();
        t.status_history.push(st.clone());
        t.artifacts.extend(u.artifacts.iter().cloned());
        let _ = self.events.send(ApiEvent::TaskUpdated {
            task_id: id.into(),
            side: t.side,
            peer: t.peer.clone(),
            status: st,
            new_artifacts: u.artifacts.clone(),
        });
        Ok(t.clone())
    }
}

fn update(state: TaskState, artifacts: Vec<Artifact>) -> TaskUpdateInput {
    TaskUpdateInput {
        state,
        text: None,
        message: None,
        artifacts,
        reason: None,
    }
}

fn text_artifact(id: &str, text: &str) -> Artifact {
    Artifact {
        artifact_id: id.into(),
        name: None,
        description: None,
        parts: vec![Part::text(text)],
    }
}

impl AgentBackend for Fake {
    async fn agent(&self, who: &str, _refresh: bool) -> Result<RemoteAgent, BackendError> {
        if who == UID || who == "upper" {
            Ok(RemoteAgent {
                uid: UID.into(),
                name: Some("upper".into()),
                card: card(),
            })
        } else {
            Err(BackendError::UnknownAgent(who.into()))
        }
    }

    async fn delegate(&self, new: NewTask) -> Result<Task, BackendError> {
        new.validate()
            .map_err(|e| BackendError::BadTask(e.to_string()))?;
        let task = {
            let mut s = self.state.lock().unwrap();
            s.next += 1;
            let mut t = new_task(
                &format!("t{}", s.next),
                Side::Client,
                &new.to,
                TaskState::Submitted,
                "",
            );
            t.history[0].parts = new.all_parts();
            s.tasks.push(t.clone());
            s.delegated.push(new);
            t
        };
        if self.auto {
            let this = self.clone();
            let id = task.id.clone();
            let text = task.history[0].joined_text().to_uppercase();
            tokio::spawn(async move {
                this.apply(&id, &update(TaskState::Working, Vec::new()))?;
                if text.starts_with("SLOW") {
                    return this.task(&id).await;
                }
                let done = update(TaskState::Completed, vec![text_artifact("a1", &text)]);
                this.apply(&id, &done)
            });
        }
        Ok(task)
    }

    async fn task(&self, id: &str) -> Result<Task, BackendError> {
        self.get(id)
            .ok_or_else(|| BackendError::UnknownTask(id.into()))
    }

    async fn tasks(&self, q: TaskQuery) -> Result<Vec<Task>, BackendError> {
        let s = self.state.lock().unwrap();
        Ok(s.tasks
            .iter()
            .rev()
            .filter(|t| q.side.is_none_or(|x| x == t.side))
            .filter(|t| q.peer.as_ref().is_none_or(|p| *p == t.peer))
            .filter(|t| q.state.is_none_or(|x| x == t.status.state))
            .filter(|t| q.context_id.as_ref().is_none_or(|c| *c == t.context_id))
            .take(q.limit)
            .cloned()
            .collect())
    }

    async fn cancel_task(&self, id: &str) -> Result<Task, BackendError> {
        self.state.lock().unwrap().canceled.push(id.into());
        let task = self.task(id).await?;
        if self.auto {
            // The worker's update comes back after the answer.
            let this = self.clone();
            let id = id.to_string();
            tokio::spawn(async move { this.apply(&id, &update(TaskState::Canceled, Vec::new())) });
        }
        Ok(task)
    }

    async fn task_input(&self, id: &str, m: TaskMessage) -> Result<Task, BackendError> {
        let mut s = self.state.lock().unwrap();
        s.inputs.push((id.into(), m.clone()));
        let t = s
            .tasks
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(|| BackendError::UnknownTask(id.into()))?;
        t.history.push(m);
        Ok(t.clone())
    }

    async fn update_task(&self, id: &str, u: TaskUpdateInput) -> Result<Task, BackendError> {
        self.state
            .lock()
            .unwrap()
            .updates
            .push((id.into(), u.clone()));
        self.apply(id, &u)
    }

    async fn attach_file(&self, to: &str, file: InboundFile) -> Result<i64, BackendError> {
        if let InboundFile::Known { hash } = &file
            && hash[0] == 0xee
        {
            return Err(BackendError::BadTask("no file with that hash here".into()));
        }
        let mut s = self.state.lock().unwrap();
        s.attached.push((to.into(), file));
        Ok(100 + s.attached.len() as i64)
    }

    fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        self.events.subscribe()
    }
}

async fn body_text(r: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn call(fake: &Fake, agent: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let r = rpc::handle(fake, agent, Some("1.0"), body.to_string().as_bytes()).await;
    serde_json::from_str(&body_text(r).await).unwrap()
}

/// The JSON-RPC responses of an SSE body (the stream must close within [`TIMEOUT`]).
async fn stream(fake: &Fake, agent: &str, method: &str, params: Value) -> Vec<Value> {
    let body = json!({"jsonrpc": "2.0", "id": "s", "method": method, "params": params});
    let r = rpc::handle(fake, agent, Some("1.0"), body.to_string().as_bytes()).await;
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    let text = tokio::time::timeout(TIMEOUT, body_text(r)).await.unwrap();
    let mut parser = sse::SseParser::default();
    parser
        .push(text.as_bytes())
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn hello() -> Value {
    json!({"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "hello"}]},
           "metadata": {"skill": "upper"}})
}

#[tokio::test]
async fn send_message_delegates_and_waits_for_the_end() {
    let fake = Fake::new(true);
    let v = call(&fake, "upper", "SendMessage", hello()).await;
    assert_eq!(v["id"], json!(7));
    let task = &v["result"]["task"];
    assert_eq!(task["status"]["state"], json!("TASK_STATE_COMPLETED"));
    assert_eq!(task["artifacts"][0]["parts"][0]["text"], json!("HELLO"));
    let s = fake.state.lock().unwrap();
    assert_eq!(s.delegated[0].to, UID, "delegated to the UID, not the name");
    assert_eq!(s.delegated[0].skill.as_deref(), Some("upper"));
}

#[tokio::test]
async fn send_message_can_return_at_once() {
    let fake = Fake::new(false);
    let mut params = hello();
    params["configuration"] = json!({"returnImmediately": true});
    let v = call(&fake, UID, "SendMessage", params).await;
    assert_eq!(
        v["result"]["task"]["status"]["state"],
        json!("TASK_STATE_SUBMITTED")
    );
    assert_eq!(
        v["result"]["task"]["history"][0]["parts"][0]["text"],
        json!("hello")
    );
}

#[tokio::test]
async fn streaming_sends_the_task_then_updates_in_order_and_closes() {
    let fake = Fake::new(true);
    let events = stream(&fake, UID, "SendStreamingMessage", hello()).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            assert_eq!(e["id"], json!("s"));
            let r = e["result"].as_object().unwrap();
            let kind = r.keys().next().unwrap().clone();
            match kind.as_str() {
                "task" => format!("task:{}", r["task"]["status"]["state"]),
                "statusUpdate" => format!("status:{}", r["statusUpdate"]["status"]["state"]),
                "artifactUpdate" => {
                    format!(
                        "artifact:{}",
                        r["artifactUpdate"]["artifact"]["parts"][0]["text"]
                    )
                }
                other => other.to_string(),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "task:\"TASK_STATE_SUBMITTED\"",
            "status:\"TASK_STATE_WORKING\"",
            "artifact:\"HELLO\"",
            "status:\"TASK_STATE_COMPLETED\"",
        ]
    );
}

#[tokio::test]
async fn subscribe_follows_a_running_task_and_refuses_a_finished_one() {
    let fake = Fake::new(false);
    fake.add(new_task("w", Side::Client, UID, TaskState::Working, "x"));
    fake.add(new_task("d", Side::Client, UID, TaskState::Completed, "x"));
    let f = fake.clone();
    let follower =
        tokio::spawn(async move { stream(&f, UID, "SubscribeToTask", json!({"id": "w"})).await });
    // The stream subscribes before it reads the task; wait until it listens, then finish it.
    tokio::time::timeout(TIMEOUT, async {
        while fake.events.receiver_count() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    fake.apply("w", &update(TaskState::InputRequired, Vec::new()))
        .unwrap();
    let events = follower.await.unwrap();
    assert_eq!(events[0]["result"]["task"]["id"], json!("w"));
    // The update lands after the snapshot was read (two events) or before (one).
    let last = &events[events.len() - 1]["result"];
    let state = last.get("statusUpdate").unwrap_or(&last["task"])["status"]["state"].clone();
    assert_eq!(state, json!("TASK_STATE_INPUT_REQUIRED"));
    assert!(events.len() <= 2);
    let v = call(&fake, UID, "SubscribeToTask", json!({"id": "d"})).await;
    assert_eq!(v["error"]["code"], json!(-32004));
}

#[tokio::test]
async fn get_list_and_cancel() {
    let fake = Fake::new(false);
    let mut done = new_task("d", Side::Client, UID, TaskState::Completed, "x");
    done.artifacts.push(text_artifact("a", "X"));
    fake.add(done);
    fake.add(new_task("w", Side::Client, UID, TaskState::Working, "y"));
    fake.add(new_task(
        "o",
        Side::Client,
        "other",
        TaskState::Working,
        "z",
    ));
    fake.add(new_task("k", Side::Worker, UID, TaskState::Working, "z"));

    let v = call(
        &fake,
        UID,
        "GetTask",
        json!({"id": "d", "historyLength": 0}),
    )
    .await;
    assert_eq!(
        v["result"]["status"]["state"],
        json!("TASK_STATE_COMPLETED")
    );
    assert_eq!(v["result"]["artifacts"][0]["parts"][0]["text"], json!("X"));
    assert!(v["result"].get("history").is_none());
    for id in ["nope", "o", "k"] {
        let v = call(&fake, UID, "GetTask", json!({"id": id})).await;
        assert_eq!(v["error"]["code"], json!(-32001), "{id}");
        assert_eq!(v["error"]["data"][0]["reason"], json!("TASK_NOT_FOUND"));
    }

    let v = call(&fake, "upper", "ListTasks", json!({})).await;
    let ids: Vec<&str> = v["result"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["w", "d"]);
    assert!(v["result"]["tasks"][1].get("artifacts").is_none());
    let v = call(
        &fake,
        UID,
        "ListTasks",
        json!({"status": "TASK_STATE_COMPLETED", "includeArtifacts": true, "pageSize": 10}),
    )
    .await;
    assert_eq!(
        v["result"]["tasks"][0]["artifacts"][0]["artifactId"],
        json!("a")
    );
    assert_eq!(v["result"]["totalSize"], json!(1));
    let v = call(&fake, UID, "ListTasks", json!({"pageSize": 1000})).await;
    assert_eq!(v["error"]["code"], json!(-32602));

    let v = call(&fake, UID, "CancelTask", json!({"id": "d"})).await;
    assert_eq!(v["error"]["code"], json!(-32002));
    let v = call(&fake, UID, "CancelTask", json!({"id": "w"})).await;
    assert_eq!(v["result"]["id"], json!("w"));
    assert_eq!(fake.state.lock().unwrap().canceled, ["w"]);
}

#[tokio::test]
async fn a_message_with_a_task_id_is_input_for_that_task() {
    let fake = Fake::new(false);
    fake.add(new_task(
        "q",
        Side::Client,
        UID,
        TaskState::InputRequired,
        "x",
    ));
    fake.add(new_task("w", Side::Client, UID, TaskState::Working, "x"));
    let more = |id: &str| {
        json!({"message": {"messageId": "m2", "taskId": id, "role": "ROLE_USER", "parts": [{"text": "more"}]},
               "configuration": {"returnImmediately": true}})
    };
    let v = call(&fake, UID, "SendMessage", more("q")).await;
    assert_eq!(
        v["result"]["task"]["history"][1]["parts"][0]["text"],
        json!("more")
    );
    assert_eq!(fake.state.lock().unwrap().inputs[0].0, "q");
    let v = call(&fake, UID, "SendMessage", more("w")).await;
    assert_eq!(v["error"]["code"], json!(-32602));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input-required")
    );
    assert!(fake.state.lock().unwrap().delegated.is_empty());
}

#[tokio::test]
async fn bad_requests_get_a2a_error_codes() {
    let fake = Fake::new(false);
    let raw = |body: &'static str, version: Option<&'static str>| {
        let f = fake.clone();
        async move {
            let r = rpc::handle(&f, UID, version, body.as_bytes()).await;
            serde_json::from_str::<Value>(&body_text(r).await).unwrap()
        }
    };
    assert_eq!(raw("{nope", None).await["error"]["code"], json!(-32700));
    assert_eq!(raw(r#"[1]"#, None).await["error"]["code"], json!(-32600));
    let old = r#"{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"x"}}"#;
    assert_eq!(raw(old, Some("0.3")).await["error"]["code"], json!(-32009));
    // No header: taken as this version.
    assert_eq!(raw(old, None).await["error"]["code"], json!(-32001));
    assert_eq!(
        call(&fake, UID, "Nope", json!({})).await["error"]["code"],
        json!(-32601)
    );
    let push = call(&fake, UID, "CreateTaskPushNotificationConfig", json!({})).await;
    assert_eq!(push["error"]["code"], json!(-32003));
    let ext = call(&fake, UID, "GetExtendedAgentCard", json!({})).await;
    assert_eq!(ext["error"]["code"], json!(-32007));
    let url =
        json!({"message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"url": "http://x"}]}});
    let v = call(&fake, UID, "SendMessage", url).await;
    assert_eq!(v["error"]["code"], json!(-32602));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("urn:rhizo:file:HASH")
    );
    let v = call(&fake, "stranger", "SendMessage", hello()).await;
    assert_eq!(v["error"]["code"], json!(-32602));
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown agent")
    );
    assert!(fake.state.lock().unwrap().delegated.is_empty());
}

#[tokio::test]
async fn the_card_maps_the_rhizo_card() {
    let agent = Fake::new(false).agent("upper", false).await.unwrap();
    let c = card::agent_card(&agent, "127.0.0.1:4748");
    assert_eq!(c["name"], json!("Upper"));
    assert_eq!(c["version"], json!("1.2"));
    assert_eq!(
        c["supportedInterfaces"],
        json!([{"url": "http://127.0.0.1:4748/a2a/worker-uid/", "protocolBinding": "JSONRPC",
                "protocolVersion": "1.0"}])
    );
    assert_eq!(c["capabilities"]["streaming"], json!(true));
    assert_eq!(
        c["securitySchemes"][card::SECURITY_SCHEME]["httpAuthSecurityScheme"]["scheme"],
        json!("Bearer")
    );
    assert_eq!(c["skills"][0]["id"], json!("upper"));
    assert_eq!(c["skills"][0]["tags"], json!(["text"]));
    assert_eq!(c["defaultInputModes"], json!(["text/plain"]));
    let _: AgentSkill = serde_json::from_value(json!({"id": "x", "name": "y"})).unwrap();
}

#[tokio::test]
async fn a_canceled_stream_ends_canceled() {
    let fake = Fake::new(true);
    let slow =
        json!({"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "slow"}]}});
    let f = fake.clone();
    let follower = tokio::spawn(async move { stream(&f, UID, "SendStreamingMessage", slow).await });
    let mut rx = fake.subscribe();
    tokio::time::timeout(TIMEOUT, async {
        while fake
            .get("t1")
            .is_none_or(|t| t.status.state != TaskState::Working)
        {
            let _ = rx.recv().await;
        }
    })
    .await
    .unwrap();
    let v = call(&fake, UID, "CancelTask", json!({"id": "t1"})).await;
    assert_eq!(v["result"]["status"]["state"], json!("TASK_STATE_WORKING"));
    let events = follower.await.unwrap();
    let last = &events[events.len() - 1]["result"]["statusUpdate"]["status"]["state"];
    assert_eq!(*last, json!("TASK_STATE_CANCELED"));
}

#[test]
fn a_file_part_is_an_a2a_url_part_by_hash() {
    let part = Part {
        file: Some(rhizo_core::agent::FilePart {
            id: Some(4),
            hash: "cd".repeat(32),
            name: "out.csv".into(),
            size: 10,
            mime: "text/csv".into(),
            state: Some("done".into()),
        }),
        ..Part::default()
    };
    let a2a = json::part_to_a2a(&part);
    assert_eq!(
        a2a.url.as_deref(),
        Some(format!("urn:rhizo:file:{}", "cd".repeat(32)).as_str())
    );
    assert_eq!(a2a.filename.as_deref(), Some("out.csv"));
    assert_eq!(a2a.media_type.as_deref(), Some("text/csv"));
    assert!(a2a.text.is_none() && a2a.raw.is_none());
    // Mapped alone, a URL part is refused (the binding attaches it first: tests/file_parts).
    assert_eq!(json::part_from_a2a(&a2a), Err(json::MapError::UrlPart));
}
