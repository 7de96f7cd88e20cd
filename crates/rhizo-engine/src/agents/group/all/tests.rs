//! `all`-mode group tasks on the simulated clock: a client and three agent members; each
//! worker's status and results are kept apart, and the overall state follows them.

use rhizo_core::agent::{
    AgentError, Artifact, Liveness, NewTask, Part, TaskId, TaskMode, TaskState, TaskUpdateInput,
};

use super::*;
use crate::{
    agents::{
        Delegated,
        group::tests::{CLIENT, T0, claim, client_task, team_of, uid},
        heartbeat::Load,
    },
    groups::tests::{Node, deliver, pump},
};

const BOB: usize = 1;
const CAROL: usize = 2;
const DAVE: usize = 3;

/// Alice sends an `all` task to the group; its id.
fn delegate_all(nodes: &mut [Node], skill: Option<&str>, now: i64) -> TaskId {
    let id = TaskId([5; 16]);
    let new = NewTask {
        to: "team".into(),
        text: Some("hello".into()),
        skill: skill.map(str::to_string),
        mode: TaskMode::All,
        ..NewTask::default()
    };
    let a = &mut nodes[CLIENT];
    let out = a
        .store
        .write(|tx| Ok::<_, StoreError>(a.engine.delegate(tx, &new, id, now)))
        .unwrap()
        .unwrap();
    let Delegated::Task(task) = out else {
        panic!("a group task is stored at once");
    };
    assert_eq!(task.mode, TaskMode::All);
    id
}

/// Member `at`'s heartbeat (interval 10 s) reaches every other member at `now`.
fn heartbeat(nodes: &mut [Node], at: usize, now: i64) {
    let n = &mut nodes[at];
    let sealed = n
        .store
        .write(|tx| n.engine.seal_group_heartbeats(tx, Load::default(), 10, now))
        .unwrap();
    let mut events = Vec::new();
    for target in &sealed[0].targets {
        let device = *target.device.as_bytes();
        let _ = deliver(nodes, &device, &sealed[0].frame, now, &mut events);
    }
}

/// Worker `at` ends task `id` in `state` (with an artifact when it completes).
fn finish(nodes: &mut [Node], at: usize, id: TaskId, state: TaskState, now: i64) {
    let artifacts = if state == TaskState::Completed {
        vec![Artifact {
            artifact_id: "result".into(),
            name: None,
            description: None,
            parts: vec![Part::text(format!("done by {at}"))],
        }]
    } else {
        Vec::new()
    };
    let update = TaskUpdateInput {
        state,
        text: None,
        message: None,
        artifacts,
        reason: (state == TaskState::Failed).then(|| "boom".to_string()),
    };
    let n = &mut nodes[at];
    n.store
        .write(|tx| Ok::<_, StoreError>(n.engine.update_task(tx, id, &update, now)))
        .unwrap()
        .unwrap();
}

/// Delivers the task, the claims and the assignments: every worker holds its copy.
fn assign_all(nodes: &mut [Node], now: i64) -> Vec<String> {
    pump(nodes, CLIENT, now);
    let mut assigned = Vec::new();
    for at in 1..nodes.len() {
        let (_, events) = pump(nodes, at, now + 1);
        assigned.extend(events.into_iter().filter_map(|(i, e)| match e {
            Event::TaskAssigned { worker, .. } if i == CLIENT => Some(worker),
            _ => None,
        }));
    }
    pump(nodes, CLIENT, now + 2);
    assigned
}

fn worker_entry(task: &rhizo_core::agent::Task, n: &Node) -> rhizo_core::agent::TaskWorker {
    let who = Uid::from_bytes(&uid(n)).to_string();
    task.workers
        .iter()
        .find(|w| w.worker == who)
        .cloned()
        .unwrap_or_else(|| panic!("no entry for {who}: {task:?}"))
}

#[test]
fn three_workers_one_failing_one_gone_silent_end_in_a_partial_result() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team_of(tmp.path(), 3);
    for at in [BOB, CAROL, DAVE] {
        heartbeat(&mut nodes, at, T0 + 1);
    }
    let id = delegate_all(&mut nodes, Some("echo"), T0 + 2);
    let assigned = assign_all(&mut nodes, T0 + 2);
    assert_eq!(assigned.len(), 3, "every member that claimed runs it");
    // Each holds its own copy: another member's assignment does not stop it.
    for at in [BOB, CAROL, DAVE] {
        assert_eq!(claim(&mut nodes, at, T0 + 5), Some(id), "member {at}");
    }
    // Dave's node dies while it works; bob completes, carol fails.
    pump(&mut nodes, DAVE, T0 + 6);
    nodes[DAVE].online = false;
    finish(&mut nodes, BOB, id, TaskState::Completed, T0 + 7);
    finish(&mut nodes, CAROL, id, TaskState::Failed, T0 + 7);
    pump(&mut nodes, BOB, T0 + 7);
    pump(&mut nodes, CAROL, T0 + 7);
    let task = client_task(&nodes, id);
    assert_eq!(task.status.state, TaskState::Working, "dave still runs it");
    assert_eq!(task.workers.len(), 3);
    let bob = worker_entry(&task, &nodes[BOB]);
    assert_eq!(bob.state, TaskState::Completed);
    assert_eq!(bob.artifacts[0].parts[0].text.as_deref(), Some("done by 1"));
    let carol = worker_entry(&task, &nodes[CAROL]);
    assert_eq!(
        (carol.state, carol.reason.as_deref()),
        (TaskState::Failed, Some("boom"))
    );
    assert!(carol.artifacts.is_empty(), "each worker's results apart");
    assert!(task.artifacts.is_empty(), "results are per worker");
    // Dave's heartbeats stop: 3 intervals later his part ends and so does the task.
    let a = &nodes[CLIENT];
    assert!(
        !a.engine
            .group_tasks_to_reassign(&a.store.read(), T0 + 20_000)
            .unwrap()
    );
    let later = T0 + 40_000;
    assert!(
        a.engine
            .group_tasks_to_reassign(&a.store.read(), later)
            .unwrap()
    );
    let a = &mut nodes[CLIENT];
    let (offered, events) = a
        .store
        .write(|tx| {
            Ok::<_, StoreError>((
                a.engine.reassign_group_tasks(tx, later),
                a.engine.end_silent_workers(tx, later),
            ))
        })
        .unwrap();
    assert_eq!(
        offered.unwrap(),
        0,
        "a worker of an all task is not replaced"
    );
    let events = events.unwrap();
    assert!(
        matches!(events.as_slice(), [Event::TaskUpdated { status, .. }]
            if status.state == TaskState::Completed),
        "{events:?}"
    );
    let task = client_task(&nodes, id);
    let dave = worker_entry(&task, &nodes[DAVE]);
    assert_eq!(
        (dave.state, dave.reason.as_deref()),
        (TaskState::Failed, Some(REASON_UNREACHABLE))
    );
    assert_eq!(task.status.state, TaskState::Completed);
    let reason = task.status.reason.unwrap_or_default();
    assert!(
        reason.starts_with("PARTIAL: 1 of 3 workers completed"),
        "{reason}"
    );
    assert!(
        reason.contains("boom") && reason.contains("UNREACHABLE"),
        "{reason}"
    );
    let states: Vec<TaskState> = task.status_history.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    // Nothing more to do; dave back with a late completion changes nothing.
    let a = &nodes[CLIENT];
    assert!(
        !a.engine
            .group_tasks_to_reassign(&a.store.read(), later)
            .unwrap()
    );
    assert_eq!(
        a.engine
            .agent_health
            .with_liveness(|m| m.of(&Uid::from_bytes(&uid(&nodes[DAVE])), later).0),
        Liveness::Unreachable
    );
    nodes[DAVE].online = true;
    finish(&mut nodes, DAVE, id, TaskState::Completed, later + 1);
    pump(&mut nodes, DAVE, later + 1);
    let task = client_task(&nodes, id);
    assert_eq!(worker_entry(&task, &nodes[DAVE]).state, TaskState::Failed);
    assert_eq!(task.status.state, TaskState::Completed);
}

#[test]
fn every_worker_completing_completes_the_task_and_a_member_without_the_skill_is_not_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team_of(tmp.path(), 2);
    let id = delegate_all(&mut nodes, None, T0 + 1);
    let assigned = assign_all(&mut nodes, T0 + 1);
    assert_eq!(assigned.len(), 2, "no skill asked: every agent member");
    for at in [BOB, CAROL] {
        assert_eq!(claim(&mut nodes, at, T0 + 4), Some(id));
    }
    finish(&mut nodes, BOB, id, TaskState::Completed, T0 + 5);
    pump(&mut nodes, BOB, T0 + 5);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Working);
    finish(&mut nodes, CAROL, id, TaskState::Completed, T0 + 6);
    pump(&mut nodes, CAROL, T0 + 6);
    let task = client_task(&nodes, id);
    assert_eq!(
        (task.status.state, task.status.reason),
        (TaskState::Completed, None)
    );
    assert!(task.workers.iter().all(|w| w.artifacts.len() == 1));
    // A claim applied after the end is not assigned.
    let again = AgentMessage {
        kind: Some(Kind::TaskClaim(proto::TaskClaim {
            task_id: id.0.to_vec().into(),
        })),
    };
    let session = nodes[CLIENT].store.read().groups().unwrap()[0].session_id;
    let c = &mut nodes[CAROL];
    c.store
        .write(|tx| c.engine.queue_group_agent(tx, &session, &again, T0 + 7))
        .unwrap();
    let (_, events) = pump(&mut nodes, CAROL, T0 + 7);
    assert!(
        !events
            .iter()
            .any(|(_, e)| matches!(e, Event::TaskAssigned { .. }))
    );

    // With a skill no member has, nobody claims: the task waits, with no worker.
    let other = TaskId([6; 16]);
    let new = NewTask {
        to: "team".into(),
        text: Some("x".into()),
        skill: Some("translate".into()),
        mode: TaskMode::All,
        ..NewTask::default()
    };
    let a = &mut nodes[CLIENT];
    a.store
        .write(|tx| Ok::<_, StoreError>(a.engine.delegate(tx, &new, other, T0 + 8)))
        .unwrap()
        .unwrap();
    assert!(assign_all(&mut nodes, T0 + 8).is_empty());
    let task = client_task(&nodes, other);
    assert_eq!(
        (task.status.state, task.workers.len()),
        (TaskState::Submitted, 0)
    );
}

#[test]
fn all_mode_to_a_contact_is_refused_with_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team_of(tmp.path(), 1);
    let bob = nodes[BOB].contact("bob");
    let a = &mut nodes[CLIENT];
    let new = NewTask {
        to: "bob".into(),
        text: Some("x".into()),
        mode: TaskMode::All,
        ..NewTask::default()
    };
    let out = a
        .store
        .write(|tx| {
            tx.add_contact(&bob, 1)?;
            Ok::<_, StoreError>(a.engine.delegate(tx, &new, TaskId([1; 16]), T0 + 1))
        })
        .unwrap();
    assert!(
        matches!(out, Err(TaskError::BadTask(AgentError::Invalid(why))) if why.contains("group")),
        "{out:?}"
    );
}

/// The events that name a new worker, from `events`.
fn assigned_in(events: &[(usize, Event)]) -> usize {
    events
        .iter()
        .filter(|(i, e)| *i == CLIENT && matches!(e, Event::TaskAssigned { .. }))
        .count()
}

#[test]
fn a_claim_after_the_first_worker_finished_is_still_assigned_within_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team_of(tmp.path(), 2);
    let id = delegate_all(&mut nodes, None, T0 + 1);
    pump(&mut nodes, CLIENT, T0 + 1);
    // Bob's claim reaches the client first; carol's is still on its way.
    let (_, events) = pump(&mut nodes, BOB, T0 + 2);
    assert_eq!(assigned_in(&events), 1);
    pump(&mut nodes, CLIENT, T0 + 3);
    assert_eq!(claim(&mut nodes, BOB, T0 + 4), Some(id));
    finish(&mut nodes, BOB, id, TaskState::Completed, T0 + 5);
    pump(&mut nodes, BOB, T0 + 5);
    let task = client_task(&nodes, id);
    assert_eq!(
        (task.status.state, task.workers.len()),
        (TaskState::Working, 1),
        "carol has not claimed: the task waits for her"
    );
    // Nothing for the driver to settle while the window is open.
    let a = &nodes[CLIENT];
    let read = a.store.read();
    assert!(!a.engine.group_tasks_to_reassign(&read, T0 + 6).unwrap());
    assert_eq!(
        a.engine.next_agent_deadline(&read).unwrap(),
        Some(T0 + 1 + CLAIM_WINDOW_MS)
    );
    // Carol's claim arrives late (inside the window): she is assigned and completes.
    let (_, events) = pump(&mut nodes, CAROL, T0 + 10_000);
    assert_eq!(assigned_in(&events), 1, "a late claim is assigned");
    pump(&mut nodes, CLIENT, T0 + 10_001);
    assert_eq!(claim(&mut nodes, CAROL, T0 + 10_002), Some(id));
    finish(&mut nodes, CAROL, id, TaskState::Completed, T0 + 10_003);
    pump(&mut nodes, CAROL, T0 + 10_003);
    let task = client_task(&nodes, id);
    assert_eq!(
        (task.status.state, task.status.reason.clone()),
        (TaskState::Completed, None),
        "every other member claimed: it settles at once"
    );
    assert_eq!(task.workers.len(), 2);
    for at in [BOB, CAROL] {
        let w = worker_entry(&task, &nodes[at]);
        let text = w.artifacts[0].parts[0].text.clone();
        assert_eq!(text, Some(format!("done by {at}")));
    }
    let a = &nodes[CLIENT];
    assert_eq!(a.engine.next_agent_deadline(&a.store.read()).unwrap(), None);
}

#[test]
fn a_member_that_never_claims_is_not_waited_for_past_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team_of(tmp.path(), 2);
    let sent = T0 + 1;
    let id = delegate_all(&mut nodes, None, sent);
    pump(&mut nodes, CLIENT, sent);
    // Carol's claim never leaves her node (her outbox is not run); bob claims and fails.
    pump(&mut nodes, BOB, T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 3);
    assert_eq!(claim(&mut nodes, BOB, T0 + 4), Some(id));
    finish(&mut nodes, BOB, id, TaskState::Failed, T0 + 5);
    pump(&mut nodes, BOB, T0 + 5);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Working);
    let a = &nodes[CLIENT];
    let end = sent + CLAIM_WINDOW_MS;
    assert!(
        !a.engine
            .group_tasks_to_reassign(&a.store.read(), end - 1)
            .unwrap()
    );
    assert!(
        a.engine
            .group_tasks_to_reassign(&a.store.read(), end)
            .unwrap()
    );
    // Before the window ends the pass settles nothing; at its end, what bob did.
    let a = &mut nodes[CLIENT];
    let early = a
        .store
        .write(|tx| a.engine.settle_claim_windows(tx, end - 1))
        .unwrap();
    assert!(early.is_empty(), "{early:?}");
    let events = a
        .store
        .write(|tx| a.engine.settle_claim_windows(tx, end))
        .unwrap();
    assert!(
        matches!(events.as_slice(), [Event::TaskUpdated { status, .. }]
            if status.state == TaskState::Failed),
        "{events:?}"
    );
    let task = client_task(&nodes, id);
    assert_eq!(task.status.state, TaskState::Failed);
    let reason = task.status.reason.unwrap_or_default();
    assert!(
        reason.starts_with("no worker completed") && reason.contains("boom"),
        "{reason}"
    );
    assert_eq!(task.workers.len(), 1);
    // Nothing more for the driver; carol's claim, delivered now, is not assigned.
    let a = &nodes[CLIENT];
    assert!(
        !a.engine
            .group_tasks_to_reassign(&a.store.read(), end + 1)
            .unwrap()
    );
    let (_, events) = pump(&mut nodes, CAROL, end + 1);
    assert_eq!(assigned_in(&events), 0);
}
