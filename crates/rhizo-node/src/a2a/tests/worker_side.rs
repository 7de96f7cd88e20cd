//! The worker side against a fake A2A server on 127.0.0.1 that answers as a2a-sdk's does.

use axum::{Router, extract::State, http::HeaderMap, routing::post};
use tokio::sync::{Notify, watch};

use super::*;

/// What the fake A2A server saw and how it answers.
#[derive(Default)]
struct Server {
    requests: Mutex<Vec<(Option<String>, Value)>>,
    cancel: Notify,
}

fn sse(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "data: {}\r\n\r\n",
                json!({"jsonrpc": "2.0", "id": "x", "result": e})
            )
        })
        .collect()
}

async fn a2a(State(server): State<Arc<Server>>, headers: HeaderMap, body: String) -> Response {
    let request: Value = serde_json::from_str(&body).unwrap();
    let version = headers
        .get("a2a-version")
        .map(|v| v.to_str().unwrap().to_string());
    server
        .requests
        .lock()
        .unwrap()
        .push((version, request.clone()));
    let text = request["params"]["message"]["parts"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plain = |body: Value| {
        Response::builder()
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    match request["method"].as_str() {
        Some("CancelTask") => {
            server.cancel.notify_one();
            return plain(json!({"jsonrpc": "2.0", "id": 1, "result": {"id": "srv-1"}}));
        }
        _ if text == "refuse" => {
            return plain(json!({"jsonrpc": "2.0", "id": 1,
                "error": {"code": -32009, "message": "A2A version '0.3' is not supported"}}));
        }
        _ => {}
    }
    let task = json!({"task": {"id": "srv-1", "contextId": "c", "status": {"state": "TASK_STATE_SUBMITTED"}}});
    let working = json!({"statusUpdate": {"taskId": "srv-1", "contextId": "c", "status": {
        "state": "TASK_STATE_WORKING",
        "message": {"messageId": "w1", "role": "ROLE_AGENT", "parts": [{"text": "working on it"}]}}}});
    if text == "ask" {
        let ask = json!({"statusUpdate": {"taskId": "srv-1", "contextId": "c", "status": {
            "state": "TASK_STATE_INPUT_REQUIRED",
            "message": {"messageId": "q1", "role": "ROLE_AGENT", "parts": [{"text": "which?"}]}}}});
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from(sse(&[task, ask])))
            .unwrap();
    }
    let head = sse(&[task, working]);
    let stream = if text == "slow" {
        // Streams the start, then stays open until the client goes away.
        futures::stream::once(async move { Ok::<_, std::io::Error>(head) })
            .chain(futures::stream::pending())
            .boxed()
    } else {
        let artifact = json!({"artifactUpdate": {"taskId": "srv-1", "contextId": "c",
            "artifact": {"artifactId": "a1", "name": "upper", "parts": [{"text": text.to_uppercase()}]}}});
        let done = json!({"statusUpdate": {"taskId": "srv-1", "contextId": "c",
            "status": {"state": "TASK_STATE_COMPLETED"}}});
        let tail = sse(&[artifact, done]);
        // Cut mid-event, as a network may.
        let (a, b) = tail.split_at(tail.len() / 2);
        let chunks = vec![head, ": ping\n\n".to_string(), a.to_string(), b.to_string()];
        futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

use futures::StreamExt;

/// Starts the fake server; answers its state and URL.
async fn server() -> (Arc<Server>, String) {
    let state = Arc::new(Server::default());
    let app = Router::new()
        .route("/", post(a2a))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (state, url)
}

/// Waits until task `id` reaches `state` (on the fake's events, bounded).
async fn until(fake: &Fake, rx: &mut broadcast::Receiver<ApiEvent>, id: &str, state: TaskState) {
    if fake.get(id).is_some_and(|t| t.status.state == state) {
        return;
    }
    tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Ok(ApiEvent::TaskUpdated {
                task_id, status, ..
            }) = rx.recv().await
                && task_id == id
                && status.state == state
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("task {id} never became {state}: {:?}", fake.get(id)));
}

fn start(fake: &Fake, url: String) -> watch::Sender<bool> {
    let (stop, stop_rx) = watch::channel(false);
    tokio::spawn(forward::run(fake.clone(), url, stop_rx));
    stop
}

#[tokio::test]
async fn tasks_are_forwarded_and_the_stream_is_relayed() {
    let fake = Fake::new(false);
    let mut rx = fake.subscribe();
    // One task waits from before the forwarder starts (found by its sweep), one arrives after.
    fake.add(new_task(
        "t1",
        Side::Worker,
        "client-uid",
        TaskState::Submitted,
        "hello",
    ));
    let (server, url) = server().await;
    let _stop = start(&fake, url);
    until(&fake, &mut rx, "t1", TaskState::Completed).await;
    fake.add(new_task(
        "t2",
        Side::Worker,
        "client-uid",
        TaskState::Submitted,
        "again",
    ));
    let _ = fake.events.send(ApiEvent::TaskReceived {
        task_id: "t2".into(),
        from: "client-uid".into(),
        skill: None,
    });
    until(&fake, &mut rx, "t2", TaskState::Completed).await;

    let t1 = fake.get("t1").unwrap();
    let states: Vec<TaskState> = t1.status_history.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    assert_eq!(
        t1.status_history[1].message.as_ref().unwrap().joined_text(),
        "working on it"
    );
    assert_eq!(t1.artifacts.len(), 1);
    assert_eq!(t1.artifacts[0].parts[0].text.as_deref(), Some("HELLO"));
    assert_eq!(
        fake.get("t2").unwrap().artifacts[0].parts[0]
            .text
            .as_deref(),
        Some("AGAIN")
    );
    let requests = server.requests.lock().unwrap();
    let (version, first) = &requests[0];
    assert_eq!(version.as_deref(), Some("1.0"));
    assert_eq!(first["method"], json!("SendStreamingMessage"));
    assert_eq!(first["params"]["message"]["role"], json!("ROLE_USER"));
    assert_eq!(first["params"]["message"]["messageId"], json!("m-t1"));
    assert!(first["params"]["message"].get("taskId").is_none());
    assert_eq!(first["params"]["metadata"]["rhizo"]["taskId"], json!("t1"));
    assert_eq!(
        first["params"]["metadata"]["rhizo"]["from"],
        json!("client-uid")
    );
}

#[tokio::test]
async fn a_cancel_here_is_sent_on_as_cancel_task() {
    let fake = Fake::new(false);
    let mut rx = fake.subscribe();
    fake.add(new_task(
        "s",
        Side::Worker,
        "client-uid",
        TaskState::Submitted,
        "slow",
    ));
    let (server, url) = server().await;
    let _stop = start(&fake, url);
    until(&fake, &mut rx, "s", TaskState::Working).await;
    // The engine ends the task when the client cancels it.
    fake.apply("s", &update(TaskState::Canceled, Vec::new()))
        .unwrap();
    tokio::time::timeout(TIMEOUT, server.cancel.notified())
        .await
        .expect("CancelTask reaches the A2A server");
    let requests = server.requests.lock().unwrap();
    let cancel = &requests.last().unwrap().1;
    assert_eq!(cancel["method"], json!("CancelTask"));
    assert_eq!(cancel["params"]["id"], json!("srv-1"));
    assert_eq!(fake.get("s").unwrap().status.state, TaskState::Canceled);
}

#[tokio::test]
async fn a_refusing_or_missing_server_fails_the_task_with_the_reason() {
    let fake = Fake::new(false);
    let mut rx = fake.subscribe();
    fake.add(new_task(
        "r",
        Side::Worker,
        "c",
        TaskState::Submitted,
        "refuse",
    ));
    let (_server, url) = server().await;
    let _stop = start(&fake, url);
    until(&fake, &mut rx, "r", TaskState::Failed).await;
    let reason = fake.get("r").unwrap().status.reason.unwrap();
    assert!(reason.contains("-32009"), "{reason}");

    let fake = Fake::new(false);
    let mut rx = fake.subscribe();
    fake.add(new_task("u", Side::Worker, "c", TaskState::Submitted, "x"));
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _stop = start(&fake, format!("http://127.0.0.1:{port}/"));
    until(&fake, &mut rx, "u", TaskState::Failed).await;
    let reason = fake.get("u").unwrap().status.reason.unwrap();
    assert!(reason.contains("cannot reach the A2A server"), "{reason}");
}

#[tokio::test]
async fn input_the_server_asked_for_goes_to_the_same_server_task() {
    let fake = Fake::new(false);
    let mut rx = fake.subscribe();
    fake.add(new_task(
        "i",
        Side::Worker,
        "c",
        TaskState::Submitted,
        "ask",
    ));
    let (server, url) = server().await;
    let _stop = start(&fake, url);
    until(&fake, &mut rx, "i", TaskState::InputRequired).await;
    let question = fake.get("i").unwrap().status.message.unwrap();
    assert_eq!(question.joined_text(), "which?");
    // The client's input arrives (the engine appends it to the history).
    {
        let mut s = fake.state.lock().unwrap();
        let t = s.tasks.iter_mut().find(|t| t.id == "i").unwrap();
        t.history
            .push(TaskMessage::text("m2", Role::User, "this one"));
    }
    let _ = fake.events.send(ApiEvent::TaskReceived {
        task_id: "i".into(),
        from: "c".into(),
        skill: None,
    });
    until(&fake, &mut rx, "i", TaskState::Completed).await;
    let requests = server.requests.lock().unwrap();
    let second = &requests[1].1;
    assert_eq!(second["params"]["message"]["taskId"], json!("srv-1"));
    assert_eq!(second["params"]["message"]["messageId"], json!("m2"));
    assert_eq!(
        fake.get("i").unwrap().artifacts[0].parts[0].text.as_deref(),
        Some("THIS ONE")
    );
}
