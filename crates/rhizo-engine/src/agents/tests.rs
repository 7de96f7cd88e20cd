//! Tasks between two engines exchanging frames in memory on a simulated clock (real SQLite in
//! temp dirs, real MLS, signed envelopes and receipts; only the network and the clock are not).

use rhizo_core::{
    DevicePublicKey,
    agent::{
        AgentCard, Artifact, NewTask, Part, Side, TaskId, TaskMessage, TaskState, TaskUpdateInput,
    },
    proto::{self, AgentMessage, agent_message::Kind},
    records::{ValidRecord, validate_record},
};
use rhizo_e2e::RekeyPolicy;
use rhizo_store::{
    StoreError,
    agents::{TaskQuery, TaskSide},
    messaging::Contact,
};

use super::*;
use crate::{
    Me,
    outbox::DeviceAnswer,
    test_support::{self, ALICE, BOB, T0},
};

/// The identities' seed (see [`test_support::me`]).
const SEED: u8 = 1;

fn me(side: usize) -> Me {
    test_support::me(SEED, side)
}

fn contact(side: usize) -> Contact {
    test_support::contact(SEED, side)
}

fn device_of(side: usize) -> DevicePublicKey {
    me(side).device.public()
}

/// The agent tests' helpers on the shared pair.
enum Agents {}
/// Alice (the client) and bob (the worker), contacts with an open conversation.
type Pair = test_support::Pair<Agents>;

/// A rekey policy that never rekeys during a test.
const NO_REKEY: RekeyPolicy = RekeyPolicy {
    max_messages: 1_000,
    max_age_secs: 365 * 24 * 3600,
};

fn pair() -> Pair {
    let mut p = Pair::new(SEED, NO_REKEY);
    let kp = p.bob_key_package();
    p.stores[ALICE]
        .write(|tx| p.engines[ALICE].send_first(tx, &contact(BOB), "hello", &[kp], T0))
        .unwrap();
    p.run(T0);
    p.events = [Vec::new(), Vec::new()];
    p
}

impl Pair {
    /// Sends what side `from` has due, once; the frames sent.
    fn send(&mut self, from: usize, now: i64) -> Vec<Vec<u8>> {
        let to = 1 - from;
        let transmits = self.engines[from]
            .poll_transmits(&self.stores[from].read(), now)
            .unwrap();
        let mut frames = Vec::new();
        for t in transmits {
            frames.push(t.frame.clone());
            let response = self.receive(to, &t.frame, now);
            let answers: Vec<DeviceAnswer> = vec![(device_of(to), Ok(response))];
            let engine = &self.engines[from];
            let r = self.stores[from]
                .write(|tx| engine.on_transmit_result(tx, &t, answers, now))
                .unwrap();
            assert!(r.unreachable.is_none());
            self.events[from].extend(r.events);
        }
        frames
    }

    /// Side `to` handles one frame; its response.
    fn receive(&mut self, to: usize, frame: &[u8], now: i64) -> Vec<u8> {
        let engine = &self.engines[to];
        let inbound = self.stores[to]
            .write(|tx| Ok::<_, StoreError>(engine.handle_frame(tx, frame, now)))
            .unwrap();
        self.events[to].extend(inbound.events);
        inbound.response
    }

    /// Both sides send until nothing is due.
    fn run(&mut self, now: i64) {
        for _ in 0..20 {
            let a = self.send(ALICE, now);
            let b = self.send(BOB, now);
            if a.is_empty() && b.is_empty() {
                return;
            }
        }
        panic!("the two sides do not settle");
    }

    fn write<T>(
        &mut self,
        side: usize,
        f: impl FnOnce(&Engine, &mut rhizo_store::Tx<'_>) -> Result<T, TaskError>,
    ) -> Result<T, TaskError> {
        let engine = &self.engines[side];
        self.stores[side].write(|tx| f(engine, tx))
    }

    fn delegate(&mut self, new: &NewTask, now: i64) -> TaskId {
        let id = TaskId::random().unwrap();
        let out = self
            .write(ALICE, |e, tx| e.delegate(tx, new, id, now))
            .unwrap();
        assert!(matches!(out, Delegated::Task(_)), "{out:?}");
        id
    }

    fn task(&self, side: usize, id: TaskId) -> rhizo_core::agent::Task {
        let r = self.stores[side].read();
        let tside = if side == ALICE {
            TaskSide::Client
        } else {
            TaskSide::Worker
        };
        let row = r.task_by_id(&id.0, tside).unwrap().expect("task stored");
        tasks::task_view(&r, &row).unwrap()
    }

    fn states(&self, side: usize, id: TaskId) -> Vec<TaskState> {
        self.task(side, id)
            .status_history
            .iter()
            .map(|s| s.state)
            .collect()
    }

    fn set_policy(&mut self, side: usize, policy: &AgentPolicy) {
        let engine = &self.engines[side];
        self.stores[side]
            .write(|tx| engine.set_agent_policy(tx, policy))
            .unwrap();
    }
}

fn task_to_bob(text: &str) -> NewTask {
    NewTask {
        to: "bob".into(),
        text: Some(text.into()),
        ..NewTask::default()
    }
}

#[test]
fn a_task_is_delegated_claimed_and_completed_with_an_artifact() {
    let mut p = pair();
    let id = p.delegate(&task_to_bob("summarize this"), T0 + 1);
    p.run(T0 + 1);
    assert!(
        p.events[BOB].iter().any(
            |e| matches!(e, Event::TaskReceived { task_id, .. } if *task_id == id.to_string())
        )
    );
    let (claimed, _) = p
        .write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .expect("a queued task");
    assert_eq!(claimed.id, id.to_string());
    assert_eq!(claimed.status.state, TaskState::Working);
    assert_eq!(claimed.history[0].joined_text(), "summarize this");
    p.run(T0 + 2);
    let done = TaskUpdateInput {
        state: TaskState::Completed,
        text: Some("done".into()),
        message: None,
        artifacts: vec![Artifact {
            artifact_id: "a1".into(),
            name: Some("summary".into()),
            description: None,
            parts: vec![Part::text("short")],
        }],
        reason: None,
    };
    p.write(BOB, |e, tx| e.update_task(tx, id, &done, T0 + 3))
        .unwrap();
    p.run(T0 + 3);
    let task = p.task(ALICE, id);
    assert_eq!(task.side, Side::Client);
    assert_eq!(
        p.states(ALICE, id),
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    assert_eq!(task.artifacts.len(), 1);
    assert_eq!(task.artifacts[0].parts[0].text.as_deref(), Some("short"));
    assert_eq!(task.history.last().unwrap().joined_text(), "done");
    // The client was told each change, in order, with the new artifact.
    let updates: Vec<TaskState> = p.events[ALICE]
        .iter()
        .filter_map(|e| match e {
            Event::TaskUpdated { status, side, .. } if *side == Side::Client => Some(status.state),
            _ => None,
        })
        .collect();
    assert_eq!(updates, [TaskState::Working, TaskState::Completed]);
    // Agent rows are never chat.
    let session = p.stores[BOB]
        .read()
        .open_conversation_with(&contact(ALICE).uid)
        .unwrap()
        .unwrap();
    let chat = p.stores[BOB]
        .read()
        .messages(&session.session_id, 100)
        .unwrap();
    assert!(chat.iter().all(|m| m.kind == "text"));
    // Nothing left to claim.
    assert!(
        p.write(BOB, |e, tx| e.claim_next_task(tx, T0 + 4))
            .unwrap()
            .is_none()
    );
}

#[test]
fn a_duplicate_envelope_or_delegation_executes_once() {
    let mut p = pair();
    p.delegate(&task_to_bob("once"), T0 + 1);
    let frames = p.send(ALICE, T0 + 1);
    assert_eq!(frames.len(), 1);
    // The same envelope again (a retry, or the mailbox copy after the direct one).
    p.receive(BOB, &frames[0], T0 + 2);
    p.run(T0 + 2);
    let received = p.events[BOB]
        .iter()
        .filter(|e| matches!(e, Event::TaskReceived { .. }))
        .count();
    assert_eq!(received, 1);
    // The same task id in a new envelope: stored once, nothing new.
    let row = p.stores[BOB].read().task_queue(&["submitted"], 10).unwrap();
    assert_eq!(row.len(), 1);
    let delegate = AgentMessage {
        kind: Some(Kind::TaskDelegate(proto::TaskDelegate {
            task_id: row[0].task_id.to_vec().into(),
            message: Some(
                rhizo_core::agent::wire::message_to_wire(&TaskMessage::text(
                    "m",
                    rhizo_core::agent::Role::User,
                    "again",
                ))
                .unwrap(),
            ),
            ..proto::TaskDelegate::default()
        })),
    };
    let alice = contact(ALICE);
    let me_bob = me(BOB);
    let events = p.stores[BOB]
        .write(|tx| {
            let ctx = AgentCtx {
                me: &me_bob,
                contact: &alice,
                health: &crate::agents::health::AgentHealth::default(),
            };
            Ok::<_, StoreError>(apply(tx, &ctx, delegate, T0 + 3).ok())
        })
        .unwrap()
        .expect("applied");
    assert!(events.is_empty());
    assert_eq!(
        p.stores[BOB]
            .read()
            .count_tasks(TaskSide::Worker, "submitted")
            .unwrap(),
        1
    );
}

#[test]
fn a_full_queue_rejects_clearly_and_an_unknown_skill_is_rejected() {
    let mut p = pair();
    p.set_policy(
        BOB,
        &AgentPolicy {
            max_queue: Some(2),
            ..AgentPolicy::default()
        },
    );
    let ids: Vec<TaskId> = (0..3)
        .map(|i| p.delegate(&task_to_bob(&format!("t{i}")), T0 + 1))
        .collect();
    p.run(T0 + 1);
    assert_eq!(p.states(ALICE, ids[0]), [TaskState::Submitted]);
    assert_eq!(
        p.states(ALICE, ids[2]),
        [TaskState::Submitted, TaskState::Rejected]
    );
    let third = p.task(ALICE, ids[2]);
    assert_eq!(
        third.status.reason.as_deref(),
        Some("RATE_LIMITED: queue full (2 tasks)")
    );
    // Stored rejected on the worker too: a duplicate does not run either.
    assert_eq!(p.task(BOB, ids[2]).status.state, TaskState::Rejected);

    let card: AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Bob", "skills": [{"id": "summarize", "name": "Summarize"}]
    }))
    .unwrap();
    p.set_policy(
        BOB,
        &AgentPolicy {
            card: Some(card),
            ..AgentPolicy::default()
        },
    );
    let mut t = task_to_bob("translate");
    t.skill = Some("translate".into());
    let id = p.delegate(&t, T0 + 5);
    p.run(T0 + 5);
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Rejected);
    assert!(task.status.reason.unwrap().starts_with("UNKNOWN_SKILL"));
}

#[test]
fn a_past_deadline_fails_the_task_on_both_sides() {
    let mut p = pair();
    let mut t = task_to_bob("slow");
    t.deadline = Some(T0 + 10_000);
    let id = p.delegate(&t, T0 + 1);
    p.run(T0 + 1);
    let deadline = |p: &Pair, side: usize| {
        p.engines[side]
            .next_agent_deadline(&p.stores[side].read())
            .unwrap()
    };
    assert_eq!(deadline(&p, ALICE), Some(T0 + 10_000));
    assert_eq!(deadline(&p, BOB), Some(T0 + 10_000));
    assert!(
        p.write(BOB, |e, tx| e.expire_tasks(tx, T0 + 9_999))
            .unwrap()
            .is_empty()
    );
    let events = p
        .write(BOB, |e, tx| e.expire_tasks(tx, T0 + 10_000))
        .unwrap();
    assert_eq!(events.len(), 1);
    p.run(T0 + 10_000);
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Failed);
    assert_eq!(task.status.reason.as_deref(), Some(tasks::REASON_DEADLINE));
    assert_eq!(deadline(&p, ALICE), None);
    assert_eq!(deadline(&p, BOB), None);

    // A client whose worker never answers fails its own copy.
    let mut t = task_to_bob("lost");
    t.deadline = Some(T0 + 20_000);
    let id = p.delegate(&t, T0 + 11_000);
    p.write(ALICE, |e, tx| e.expire_tasks(tx, T0 + 20_000))
        .unwrap();
    assert_eq!(
        p.states(ALICE, id),
        [TaskState::Submitted, TaskState::Failed]
    );
}

#[test]
fn cancel_reaches_the_worker_and_a_finished_task_stays_finished() {
    let mut p = pair();
    let id = p.delegate(&task_to_bob("long"), T0 + 1);
    p.run(T0 + 1);
    p.write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .unwrap();
    p.run(T0 + 2);
    let task = p
        .write(ALICE, |e, tx| e.cancel_task(tx, id, T0 + 3))
        .unwrap();
    // Not canceled until the worker says so.
    assert_eq!(task.status.state, TaskState::Working);
    p.run(T0 + 3);
    assert_eq!(p.task(BOB, id).status.state, TaskState::Canceled);
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Canceled);
    assert_eq!(task.status.reason.as_deref(), Some(tasks::REASON_CANCELED));

    // A completed task stays completed.
    let id = p.delegate(&task_to_bob("quick"), T0 + 4);
    p.run(T0 + 4);
    p.write(BOB, |e, tx| {
        e.claim_next_task(tx, T0 + 5)?;
        e.update_task(
            tx,
            id,
            &TaskUpdateInput {
                state: TaskState::Completed,
                text: Some("ok".into()),
                message: None,
                artifacts: vec![],
                reason: None,
            },
            T0 + 5,
        )
    })
    .unwrap();
    p.run(T0 + 5);
    p.write(ALICE, |e, tx| e.cancel_task(tx, id, T0 + 6))
        .unwrap();
    p.run(T0 + 6);
    assert_eq!(p.task(BOB, id).status.state, TaskState::Completed);
    assert_eq!(p.task(ALICE, id).status.state, TaskState::Completed);
}

#[test]
fn input_goes_to_the_worker_and_the_task_goes_on() {
    let mut p = pair();
    let id = p.delegate(&task_to_bob("which file?"), T0 + 1);
    p.run(T0 + 1);
    p.write(BOB, |e, tx| {
        e.claim_next_task(tx, T0 + 2)?;
        e.update_task(
            tx,
            id,
            &TaskUpdateInput {
                state: TaskState::InputRequired,
                text: Some("which one?".into()),
                message: None,
                artifacts: vec![],
                reason: None,
            },
            T0 + 2,
        )
    })
    .unwrap();
    p.run(T0 + 2);
    assert_eq!(p.task(ALICE, id).status.state, TaskState::InputRequired);
    p.write(ALICE, |e, tx| {
        e.task_input(
            tx,
            id,
            TaskMessage::text("", rhizo_core::agent::Role::User, "the second"),
            T0 + 3,
        )
    })
    .unwrap();
    p.run(T0 + 3);
    let worker = p.task(BOB, id);
    assert_eq!(worker.history.last().unwrap().joined_text(), "the second");
    assert_eq!(
        p.events[BOB]
            .iter()
            .filter(|e| matches!(e, Event::TaskReceived { .. }))
            .count(),
        2
    );
}

#[test]
fn a_bad_transition_is_refused_and_changes_nothing() {
    let mut p = pair();
    let id = p.delegate(&task_to_bob("x"), T0 + 1);
    p.run(T0 + 1);
    let done = |state| TaskUpdateInput {
        state,
        text: None,
        message: None,
        artifacts: vec![],
        reason: None,
    };
    p.write(BOB, |e, tx| {
        e.update_task(tx, id, &done(TaskState::Completed), T0 + 2)
    })
    .unwrap();
    p.run(T0 + 2);
    let before = p.task(BOB, id);
    let err = p
        .write(BOB, |e, tx| {
            e.update_task(tx, id, &done(TaskState::Working), T0 + 3)
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            TaskError::BadTransition {
                from: TaskState::Completed,
                to: TaskState::Working
            }
        ),
        "{err}"
    );
    assert_eq!(p.task(BOB, id), before);
    // A worker that sends one anyway: the client changes nothing.
    let client_before = p.task(ALICE, id);
    let bogus = proto::TaskUpdate {
        task_id: id.0.to_vec().into(),
        seq: 99,
        state: TaskState::Working.wire(),
        ..proto::TaskUpdate::default()
    };
    let bob = contact(BOB);
    let me_alice = me(ALICE);
    let events = p.stores[ALICE]
        .write(|tx| {
            let ctx = AgentCtx {
                me: &me_alice,
                contact: &bob,
                health: &crate::agents::health::AgentHealth::default(),
            };
            Ok::<_, StoreError>(tasks::on_update(tx, &ctx, bogus, T0 + 4).ok())
        })
        .unwrap()
        .expect("ignored, not refused");
    assert!(events.is_empty());
    assert_eq!(p.task(ALICE, id), client_before);
    // Unknown ids are a clear error.
    let unknown = TaskId([9; 16]);
    assert!(matches!(
        p.write(ALICE, |e, tx| e.cancel_task(tx, unknown, T0 + 5)),
        Err(TaskError::UnknownTask(_))
    ));
    assert!(matches!(
        p.write(BOB, |e, tx| e.update_task(
            tx,
            unknown,
            &done(TaskState::Working),
            T0 + 5
        )),
        Err(TaskError::UnknownTask(_))
    ));
}

#[test]
fn malformed_agent_messages_are_refused() {
    let mut p = pair();
    let alice = contact(ALICE);
    let me_bob = me(BOB);
    let mut refused = |message: AgentMessage| {
        p.stores[BOB]
            .write(|tx| {
                let ctx = AgentCtx {
                    me: &me_bob,
                    contact: &alice,
                    health: &crate::agents::health::AgentHealth::default(),
                };
                Ok::<_, StoreError>(matches!(
                    apply(tx, &ctx, message, T0),
                    Err(Reject::Code(rhizo_core::envelope::ErrorCode::Malformed))
                ))
            })
            .unwrap()
    };
    assert!(refused(AgentMessage { kind: None }));
    assert!(refused(AgentMessage {
        kind: Some(Kind::TaskDelegate(proto::TaskDelegate {
            task_id: vec![1, 2, 3].into(),
            ..proto::TaskDelegate::default()
        })),
    }));
    // No message.
    assert!(refused(AgentMessage {
        kind: Some(Kind::TaskDelegate(proto::TaskDelegate {
            task_id: vec![1; 16].into(),
            ..proto::TaskDelegate::default()
        })),
    }));
    assert!(refused(AgentMessage {
        kind: Some(Kind::TaskUpdate(proto::TaskUpdate {
            task_id: vec![1; 16].into(),
            seq: 1,
            state: 42,
            ..proto::TaskUpdate::default()
        })),
    }));
    assert!(
        p.stores[BOB]
            .read()
            .tasks(&TaskQuery {
                limit: 10,
                ..TaskQuery::default()
            })
            .unwrap()
            .is_empty()
    );
    // A request over the inline limit is refused before anything is stored.
    let big = NewTask {
        to: "bob".into(),
        text: Some("x".repeat(rhizo_core::agent::MAX_INLINE_PART_BYTES + 1)),
        ..NewTask::default()
    };
    assert!(matches!(
        p.write(ALICE, |e, tx| e.delegate(tx, &big, TaskId([1; 16]), T0)),
        Err(TaskError::BadTask(_))
    ));
}

#[test]
fn a_task_from_a_blocked_sender_is_refused_and_the_client_sees_it_failed() {
    let mut p = pair();
    let alice_uid = contact(ALICE).uid;
    p.stores[BOB]
        .write(|tx| tx.block_sender(&alice_uid, &crate::requests::REQUEST_LIMITS, T0))
        .unwrap();
    let id = p.delegate(&task_to_bob("let me in"), T0 + 1);
    p.run(T0 + 1);
    // Nothing stored on the worker, no event.
    assert!(
        p.stores[BOB]
            .read()
            .task_by_id(&id.0, TaskSide::Worker)
            .unwrap()
            .is_none()
    );
    assert!(p.events[BOB].is_empty());
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Failed);
    let reason = task.status.reason.unwrap();
    assert!(reason.starts_with("not delivered"), "{reason}");
}

#[test]
fn the_first_task_to_a_contact_opens_the_conversation() {
    let mut p = Pair::new(SEED, NO_REKEY);
    let new = task_to_bob("hello, agent");
    let id = TaskId::random().unwrap();
    let Delegated::FirstMessage(bob) = p
        .write(ALICE, |e, tx| e.delegate(tx, &new, id, T0))
        .unwrap()
    else {
        panic!("no conversation yet: the first-message path");
    };
    // Nothing stored before the conversation exists.
    assert!(
        p.stores[ALICE]
            .read()
            .task_by_id(&id.0, TaskSide::Client)
            .unwrap()
            .is_none()
    );
    let (key, bundle) = p.stores[BOB]
        .write(|tx| p.engines[BOB].key_package_record(tx, T0))
        .unwrap();
    let Ok(ValidRecord::KeyPackages(bundle)) = validate_record(&key, &bundle, (T0 / 1000) as u64)
    else {
        panic!("bob's KeyPackages do not validate");
    };
    let kp = bundle.key_packages()[0].to_vec();
    let engine = &p.engines[ALICE];
    let task = p.stores[ALICE]
        .write(|tx| engine.delegate_first(tx, &bob, &new, id, &[kp], T0))
        .unwrap();
    assert_eq!(task.status.state, TaskState::Submitted);
    p.run(T0 + 1);
    assert!(
        p.events[BOB].iter().any(
            |e| matches!(e, Event::TaskReceived { task_id, .. } if *task_id == id.to_string())
        )
    );
    assert_eq!(p.task(BOB, id).history[0].joined_text(), "hello, agent");
}

#[test]
fn a_capability_query_is_answered_with_the_signed_card_which_is_cached() {
    let mut p = pair();
    let card: AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]
    }))
    .unwrap();
    let own = p.stores[BOB]
        .write(|tx| p.engines[BOB].set_agent_card(tx, card, T0 + 1))
        .unwrap();
    let bob = contact(BOB);
    assert!(
        p.stores[ALICE]
            .write(|tx| p.engines[ALICE].query_capabilities(tx, &bob, T0 + 2))
            .unwrap()
    );
    p.run(T0 + 2);
    let cached = p.stores[ALICE].read().agent_card(&bob.uid).unwrap();
    let cached = cached.expect("bob's card is cached");
    assert_eq!((cached.version, &cached.record), (1, &own.bytes));
    // Bob is no longer an agent: his next answer is empty, and alice forgets the card.
    assert!(
        p.stores[BOB]
            .write(|tx| p.engines[BOB].clear_agent_card(tx, T0 + 3))
            .unwrap()
    );
    assert!(
        p.stores[ALICE]
            .write(|tx| p.engines[ALICE].query_capabilities(tx, &bob, T0 + 4))
            .unwrap()
    );
    p.run(T0 + 4);
    assert_eq!(p.stores[ALICE].read().agent_card(&bob.uid).unwrap(), None);
    // Agent messages are never chat: no message event on either side.
    for events in &p.events {
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, Event::MessageReceived { .. })),
            "{events:?}"
        );
    }
}

mod file_parts;
mod supersede;
