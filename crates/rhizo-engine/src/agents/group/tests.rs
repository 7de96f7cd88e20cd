//! Agents in groups on the simulated clock: a client and two agent members in one group, their
//! envelopes handed between real engines and stores by the groups tests' in-memory network.

use rhizo_core::agent::{AgentCard, Liveness, NewTask, TaskId, TaskState, TaskUpdateInput};
use rhizo_e2e::RekeyPolicy;

use super::*;
use crate::{
    agents::Delegated,
    groups::tests::{Node, deliver, node, pump},
};

pub(super) const T0: i64 = 1_800_000_000_000;
pub(super) const CLIENT: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;

pub(super) fn uid(n: &Node) -> [u8; 32] {
    *n.engine.me().uid.as_bytes()
}

/// Alice (the client, admin) creates the group "team" with bob and carol, who both have her
/// as a contact (auto-join) and are agents offering `echo`.
fn team(dir: &std::path::Path) -> (Vec<Node>, [u8; 16]) {
    team_of(dir, 2)
}

/// As [`team`], with `workers` agent members (node 1 on).
pub(super) fn team_of(dir: &std::path::Path, workers: u8) -> (Vec<Node>, [u8; 16]) {
    let mut nodes: Vec<Node> = (1..=workers + 1)
        .map(|seed| node(dir, seed, RekeyPolicy::default()))
        .collect();
    let alice = nodes[CLIENT].contact("alice");
    let card: AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Echo", "skills": [{"id": "echo", "name": "Echo"}]
    }))
    .unwrap();
    let policy = AgentPolicy {
        card: Some(card),
        ..AgentPolicy::default()
    };
    for n in &mut nodes[BOB..] {
        let engine = &n.engine;
        n.store
            .write(|tx| {
                tx.add_contact(&alice, 1)?;
                engine.set_agent_policy(tx, &policy)
            })
            .unwrap();
    }
    let kps: Vec<_> = nodes[BOB..].iter_mut().map(|n| n.key_package()).collect();
    let a = &mut nodes[CLIENT];
    let group = a
        .store
        .write(|tx| a.engine.create_group(tx, "team", &kps, T0))
        .unwrap();
    let (unreachable, _) = pump(&mut nodes, CLIENT, T0);
    assert!(unreachable.is_empty());
    (nodes, group.session_id)
}

/// Alice sends a task to the group; its id.
fn delegate(nodes: &mut [Node], skill: Option<&str>, now: i64) -> TaskId {
    let id = TaskId([7; 16]);
    let new = NewTask {
        to: "team".into(),
        text: Some("hello".into()),
        skill: skill.map(str::to_string),
        ..NewTask::default()
    };
    let a = &mut nodes[CLIENT];
    let delegated = a
        .store
        .write(|tx| Ok::<_, StoreError>(a.engine.delegate(tx, &new, id, now)))
        .unwrap()
        .unwrap();
    let Delegated::Task(task) = delegated else {
        panic!("a group task is stored at once");
    };
    assert_eq!(
        task.group.as_deref(),
        Some(hex::encode(group_session(a)).as_str())
    );
    assert_eq!(task.worker, None);
    id
}

pub(super) fn group_session(n: &Node) -> [u8; 16] {
    n.store.read().groups().unwrap()[0].session_id
}

pub(super) fn client_task(nodes: &[Node], id: TaskId) -> rhizo_core::agent::Task {
    let n = &nodes[CLIENT];
    n.engine.task(&n.store.read(), id).unwrap().unwrap()
}

/// Worker `at` claims its next queued task, if any.
pub(super) fn claim(nodes: &mut [Node], at: usize, now: i64) -> Option<TaskId> {
    let n = &mut nodes[at];
    let claimed = n
        .store
        .write(|tx| Ok::<_, StoreError>(n.engine.claim_next_task(tx, now)))
        .unwrap()
        .unwrap();
    claimed.map(|(task, _)| task.id.parse().unwrap())
}

fn complete(nodes: &mut [Node], at: usize, id: TaskId, now: i64) {
    let done = TaskUpdateInput {
        state: TaskState::Completed,
        text: Some("HELLO".into()),
        message: None,
        artifacts: Vec::new(),
        reason: None,
    };
    let n = &mut nodes[at];
    n.store
        .write(|tx| Ok::<_, StoreError>(n.engine.update_task(tx, id, &done, now)))
        .unwrap()
        .unwrap();
}

#[test]
fn two_agent_members_race_to_claim_and_exactly_one_runs_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team(tmp.path());
    let id = delegate(&mut nodes, Some("echo"), T0 + 1);
    // Both members get the task and both claim it (their claims wait in their outboxes).
    pump(&mut nodes, CLIENT, T0 + 1);
    // Carol's claim reaches alice first, then bob's: carol wins, at alice and so everywhere.
    let (_, first) = pump(&mut nodes, CAROL, T0 + 2);
    let (_, second) = pump(&mut nodes, BOB, T0 + 2);
    let carol = rhizo_core::Uid::from_bytes(&uid(&nodes[CAROL])).to_string();
    assert_eq!(client_task(&nodes, id).worker, Some(carol.clone()));
    // Alice's node says so once, on /v1/events.
    let assigned: Vec<&String> = first
        .iter()
        .chain(&second)
        .filter_map(|(i, e)| match e {
            Event::TaskAssigned { worker, .. } if *i == CLIENT => Some(worker),
            _ => None,
        })
        .collect();
    assert_eq!(assigned, [&carol]);
    // The assignment reaches both; only carol stores (and so runs) the task.
    pump(&mut nodes, CLIENT, T0 + 3);
    assert_eq!(claim(&mut nodes, BOB, T0 + 4), None);
    assert_eq!(claim(&mut nodes, CAROL, T0 + 4), Some(id));
    // Bob's claim, applied late, changed nothing; re-sent, it still changes nothing.
    pump(&mut nodes, CLIENT, T0 + 4);
    assert_eq!(claim(&mut nodes, BOB, T0 + 5), None);
    complete(&mut nodes, CAROL, id, T0 + 6);
    pump(&mut nodes, CAROL, T0 + 6);
    let task = client_task(&nodes, id);
    assert_eq!(task.status.state, TaskState::Completed);
    let states: Vec<TaskState> = task.status_history.iter().map(|s| s.state).collect();
    assert_eq!(
        states,
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    // Exactly one worker row exists among the members.
    for (at, want) in [(BOB, 0), (CAROL, 1)] {
        let n = &nodes[at];
        let rows = n
            .engine
            .tasks(
                &n.store.read(),
                &rhizo_store::agents::TaskQuery {
                    side: Some(TaskSide::Worker),
                    limit: 10,
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(rows.len(), want, "worker tasks at node {at}");
    }
}

#[test]
fn an_update_from_a_member_that_does_not_run_the_task_is_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = team(tmp.path());
    let id = delegate(&mut nodes, None, T0 + 1);
    pump(&mut nodes, CLIENT, T0 + 1);
    pump(&mut nodes, BOB, T0 + 2);
    pump(&mut nodes, CAROL, T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 3);
    // Carol (not the assignee) claims to have completed it: alice ignores it.
    let fake = AgentMessage {
        kind: Some(Kind::TaskUpdate(proto::TaskUpdate {
            task_id: id.0.to_vec().into(),
            seq: 5,
            state: TaskState::Completed.wire(),
            ..proto::TaskUpdate::default()
        })),
    };
    let c = &mut nodes[CAROL];
    c.store
        .write(|tx| c.engine.queue_group_agent(tx, &session, &fake, T0 + 4))
        .unwrap();
    pump(&mut nodes, CAROL, T0 + 4);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Submitted);
    // Bob, the assignee, runs it.
    assert_eq!(claim(&mut nodes, BOB, T0 + 5), Some(id));
    complete(&mut nodes, BOB, id, T0 + 6);
    pump(&mut nodes, BOB, T0 + 6);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Completed);
}

#[test]
fn a_member_that_is_offline_does_not_take_the_task_and_another_does() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team(tmp.path());
    nodes[BOB].online = false;
    let id = delegate(&mut nodes, Some("echo"), T0 + 1);
    pump(&mut nodes, CLIENT, T0 + 1);
    pump(&mut nodes, CAROL, T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 3);
    assert_eq!(claim(&mut nodes, CAROL, T0 + 4), Some(id));
    // Bob comes back and gets the task and its assignment late (the retried sends): he claims,
    // alice ignores it, and he never stores or runs the task.
    nodes[BOB].online = true;
    pump(&mut nodes, CLIENT, T0 + 3_600_000);
    pump(&mut nodes, BOB, T0 + 3_600_001);
    pump(&mut nodes, CLIENT, T0 + 3_600_002);
    assert_eq!(claim(&mut nodes, BOB, T0 + 3_600_003), None);
    let carol = rhizo_core::Uid::from_bytes(&uid(&nodes[CAROL])).to_string();
    assert_eq!(client_task(&nodes, id).worker, Some(carol));
}

#[test]
fn a_member_without_the_skill_does_not_claim_and_the_task_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team(tmp.path());
    let id = delegate(&mut nodes, Some("translate"), T0 + 1);
    pump(&mut nodes, CLIENT, T0 + 1);
    pump(&mut nodes, BOB, T0 + 2);
    pump(&mut nodes, CAROL, T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 3);
    let task = client_task(&nodes, id);
    assert_eq!(
        (task.status.state, task.worker),
        (TaskState::Submitted, None)
    );
    assert_eq!(claim(&mut nodes, BOB, T0 + 4), None);
    assert_eq!(claim(&mut nodes, CAROL, T0 + 4), None);
}

#[test]
fn group_heartbeats_show_each_agent_members_liveness_until_it_goes_stale() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = team(tmp.path());
    let bob = uid(&nodes[BOB]);
    let b = &mut nodes[BOB];
    let sealed = b
        .store
        .write(|tx| {
            b.engine
                .seal_group_heartbeats(tx, Load::default(), 10, T0 + 1)
        })
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].targets.len(), 2, "alice and carol");
    let mut events = Vec::new();
    for target in &sealed[0].targets {
        let device = *target.device.as_bytes();
        deliver(&mut nodes, &device, &sealed[0].frame, T0 + 2, &mut events).unwrap();
    }
    for at in [CLIENT, CAROL] {
        assert!(events.iter().any(|(i, e)| *i == at
            && matches!(
                e,
                Event::AgentLiveness {
                    liveness: Liveness::Alive,
                    ..
                }
            )));
        let n = &nodes[at];
        let agents = n
            .engine
            .group_agents(&n.store.read(), &session, T0 + 3)
            .unwrap();
        assert_eq!(agents.len(), 1);
        assert_eq!((agents[0].uid, agents[0].liveness), (bob, Liveness::Alive));
    }
    // Time alone: late after 1.5 intervals, unreachable after 3.
    let a = &nodes[CLIENT];
    let late = a.engine.liveness_changes(T0 + 2 + 16_000);
    assert!(matches!(
        late.as_slice(),
        [Event::AgentLiveness {
            liveness: Liveness::Late,
            ..
        }]
    ));
    let gone = a.engine.liveness_changes(T0 + 2 + 31_000);
    assert!(matches!(
        gone.as_slice(),
        [Event::AgentLiveness {
            liveness: Liveness::Unreachable,
            ..
        }]
    ));
    let agents = a
        .engine
        .group_agents(&a.store.read(), &session, T0 + 2 + 31_000)
        .unwrap();
    assert_eq!(agents[0].liveness, Liveness::Unreachable);
    // A texts sent afterwards still reads at every member (the heartbeat left no gap).
    let c = &mut nodes[CLIENT];
    c.store
        .write(|tx| {
            c.engine
                .queue_group_text(tx, &session, "still here", T0 + 40_000)
        })
        .unwrap();
    let (_, events) = pump(&mut nodes, CLIENT, T0 + 40_000);
    let got = events
        .iter()
        .filter(|(_, e)| matches!(e, Event::GroupMessageReceived { .. }))
        .count();
    assert_eq!(got, 2);
}

/// Bob's heartbeat (interval 10 s) reaches alice and carol at `now`.
fn bob_heartbeat(nodes: &mut [Node], now: i64) {
    let b = &mut nodes[BOB];
    let sealed = b
        .store
        .write(|tx| b.engine.seal_group_heartbeats(tx, Load::default(), 10, now))
        .unwrap();
    let mut events = Vec::new();
    for target in &sealed[0].targets {
        let device = *target.device.as_bytes();
        deliver(nodes, &device, &sealed[0].frame, now, &mut events).unwrap();
    }
}

#[test]
fn an_assignee_that_goes_silent_is_replaced_and_its_late_copy_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team(tmp.path());
    bob_heartbeat(&mut nodes, T0 + 1);
    let id = delegate(&mut nodes, Some("echo"), T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 2);
    pump(&mut nodes, BOB, T0 + 3);
    pump(&mut nodes, CAROL, T0 + 3);
    pump(&mut nodes, CLIENT, T0 + 4);
    assert_eq!(claim(&mut nodes, BOB, T0 + 5), Some(id));
    pump(&mut nodes, BOB, T0 + 5);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Working);
    // Bob's node dies while it works; alive (and not replaced) until 3 intervals passed.
    nodes[BOB].online = false;
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
    let offered = a
        .store
        .write(|tx| Ok::<_, StoreError>(a.engine.reassign_group_tasks(tx, later)))
        .unwrap()
        .unwrap();
    assert_eq!(offered, 1);
    assert_eq!(client_task(&nodes, id).worker, None);
    // Carol claims the task offered again, runs and completes it.
    pump(&mut nodes, CLIENT, later);
    pump(&mut nodes, CAROL, later + 1);
    pump(&mut nodes, CLIENT, later + 2);
    assert_eq!(claim(&mut nodes, CAROL, later + 3), Some(id));
    complete(&mut nodes, CAROL, id, later + 4);
    pump(&mut nodes, CAROL, later + 4);
    let task = client_task(&nodes, id);
    let carol = rhizo_core::Uid::from_bytes(&uid(&nodes[CAROL])).to_string();
    assert_eq!(
        (task.status.state, task.worker),
        (TaskState::Completed, Some(carol))
    );
    // Bob comes back: the new assignment stops his copy (his program sees `canceled`).
    nodes[BOB].online = true;
    let (_, events) = pump(&mut nodes, CLIENT, later + 3_600_000);
    assert!(events.iter().any(|(i, e)| *i == BOB
        && matches!(e, Event::TaskUpdated { status, .. }
            if status.state == TaskState::Canceled
                && status.reason.as_deref() == Some(REASON_REASSIGNED))));
    let b = &nodes[BOB];
    let copy = b.engine.task(&b.store.read(), id).unwrap().unwrap();
    assert_eq!(copy.status.state, TaskState::Canceled);
    assert_eq!(client_task(&nodes, id).status.state, TaskState::Completed);
}

#[test]
fn a_claim_and_an_assignment_delivered_again_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = team(tmp.path());
    let id = delegate(&mut nodes, None, T0 + 1);
    pump(&mut nodes, CLIENT, T0 + 1);
    pump(&mut nodes, BOB, T0 + 2);
    pump(&mut nodes, CLIENT, T0 + 3);
    assert_eq!(claim(&mut nodes, BOB, T0 + 4), Some(id));
    // Bob claims again (say his first claim's answer seemed lost): alice sends the same
    // assignment again, and bob's task stays as it is (working, once).
    let again = AgentMessage {
        kind: Some(Kind::TaskClaim(proto::TaskClaim {
            task_id: id.0.to_vec().into(),
        })),
    };
    let b = &mut nodes[BOB];
    b.store
        .write(|tx| b.engine.queue_group_agent(tx, &session, &again, T0 + 5))
        .unwrap();
    pump(&mut nodes, BOB, T0 + 5);
    pump(&mut nodes, CLIENT, T0 + 6);
    let b = &nodes[BOB];
    let copy = b.engine.task(&b.store.read(), id).unwrap().unwrap();
    assert_eq!(copy.status.state, TaskState::Working);
    assert_eq!(claim(&mut nodes, BOB, T0 + 7), None);
    let bob = rhizo_core::Uid::from_bytes(&uid(&nodes[BOB])).to_string();
    assert_eq!(client_task(&nodes, id).worker, Some(bob));
}

#[test]
fn live_tasks_in_one_group_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, _) = team(tmp.path());
    let a = &mut nodes[CLIENT];
    let new = NewTask {
        to: "team".into(),
        text: Some("x".into()),
        ..NewTask::default()
    };
    for i in 0..=MAX_LIVE_GROUP_TASKS {
        let mut id = [0u8; 16];
        id[..8].copy_from_slice(&(i as u64).to_be_bytes());
        let out = a
            .store
            .write(|tx| Ok::<_, StoreError>(a.engine.delegate(tx, &new, TaskId(id), T0 + 1)))
            .unwrap();
        if i < MAX_LIVE_GROUP_TASKS {
            assert!(matches!(out, Ok(Delegated::Task(_))), "task {i}: {out:?}");
        } else {
            assert!(
                matches!(
                    out,
                    Err(TaskError::Engine(EngineError::Store(
                        StoreError::LimitReached { .. }
                    )))
                ),
                "{out:?}"
            );
        }
    }
}

#[test]
fn only_the_device_that_claimed_runs_the_task() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = team(tmp.path());
    let bob = uid(&nodes[BOB]);
    let bob_device = *nodes[BOB].engine.me().device.public().as_bytes();
    // Carol, as a client, names bob's UID with another of his devices, then this one.
    let assign = |task: u8, device: [u8; 32]| AgentMessage {
        kind: Some(Kind::TaskAssign(proto::TaskAssign {
            task_id: vec![task; 16].into(),
            worker: bob.to_vec().into(),
            worker_device: device.to_vec().into(),
            task: Some(proto::TaskDelegate {
                task_id: vec![task; 16].into(),
                message: Some(
                    wire::message_to_wire(&TaskMessage::text(
                        "m1",
                        rhizo_core::agent::Role::User,
                        "hi",
                    ))
                    .unwrap(),
                ),
                ..proto::TaskDelegate::default()
            }),
        })),
    };
    let c = &mut nodes[CAROL];
    c.store
        .write(|tx| {
            c.engine
                .queue_group_agent(tx, &session, &assign(1, [9; 32]), T0 + 1)?;
            c.engine
                .queue_group_agent(tx, &session, &assign(2, bob_device), T0 + 1)
        })
        .unwrap();
    pump(&mut nodes, CAROL, T0 + 1);
    assert_eq!(claim(&mut nodes, BOB, T0 + 2), Some(TaskId([2; 16])));
    assert_eq!(claim(&mut nodes, BOB, T0 + 3), None);
}

#[test]
fn a_group_seen_as_one_agent_gathers_its_members_cached_skills() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut nodes, session) = team(tmp.path());
    let a = &nodes[CLIENT];
    let address = a.store.read().groups().unwrap()[0].address;
    // No member's card cached yet: one generic skill.
    let card = a
        .engine
        .group_card(&a.store.read(), "team")
        .unwrap()
        .unwrap();
    assert_eq!((card.name.as_str(), card.agents), ("team", 0));
    assert_eq!(card.card.skills[0].id, card::GROUP_SKILL);
    assert_eq!(card.address, rhizo_core::Uid::from_bytes(&address));
    // Bob's card (echo + upper) cached at alice: its skills, each once.
    let two: AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Bob", "skills": [{"id": "echo", "name": "Echo"}, {"id": "upper", "name": "Upper"}]
    }))
    .unwrap();
    let b = &mut nodes[BOB];
    let own = b
        .store
        .write(|tx| b.engine.set_agent_card(tx, two, T0))
        .unwrap();
    let row = crate::agents::cards::card_row(&own.record, &own.bytes, T0);
    let a = &mut nodes[CLIENT];
    a.store.write(|tx| tx.upsert_agent_card(&row)).unwrap();
    let reader = a.store.read();
    for name in ["team", &hex::encode(session), &card.address.to_string()] {
        let found = a.engine.group_card(&reader, name).unwrap().unwrap();
        let ids: Vec<&str> = found.card.skills.iter().map(|s| s.id.as_str()).collect();
        assert_eq!((ids, found.agents), (vec!["echo", "upper"], 1), "{name}");
    }
    assert!(a.engine.group_card(&reader, "nobody").unwrap().is_none());
}
