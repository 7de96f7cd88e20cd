//! A task's bare update still waiting in the outbox is superseded by the next one, and an
//! instant worker claims and completes in one call: fewer envelopes, the same final state.

use super::*;

fn completed() -> TaskUpdateInput {
    TaskUpdateInput {
        state: TaskState::Completed,
        text: None,
        message: None,
        artifacts: vec![Artifact {
            artifact_id: "result".into(),
            name: None,
            description: None,
            parts: vec![Part::text("ok")],
        }],
        reason: None,
    }
}

/// A task delegated to bob and received there.
fn received(p: &mut Pair, now: i64) -> TaskId {
    let id = p.delegate(&task_to_bob("work"), now);
    p.run(now);
    id
}

fn due(p: &Pair, side: usize, now: i64) -> usize {
    p.stores[side].read().outbox_due(now, 100).unwrap().len()
}

/// The client's `task_updated` states, in order.
fn client_updates(p: &Pair) -> Vec<TaskState> {
    p.events[ALICE]
        .iter()
        .filter_map(|e| match e {
            Event::TaskUpdated { status, side, .. } if *side == Side::Client => Some(status.state),
            _ => None,
        })
        .collect()
}

#[test]
fn working_and_completed_queued_together_send_one_envelope() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    p.write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .expect("a queued task");
    assert_eq!(due(&p, BOB, T0 + 2), 1);
    p.write(BOB, |e, tx| e.update_task(tx, id, &completed(), T0 + 3))
        .unwrap();
    // `working` was still queued: only `completed` goes.
    assert_eq!(due(&p, BOB, T0 + 3), 1);
    let frames = p.send(BOB, T0 + 3);
    assert_eq!(frames.len(), 1);
    p.run(T0 + 3);
    // The client skipped `working` (a gap in seq) and ends completed, with the artifact.
    assert_eq!(client_updates(&p), [TaskState::Completed]);
    assert_eq!(
        p.states(ALICE, id),
        [TaskState::Submitted, TaskState::Completed]
    );
    assert_eq!(p.task(ALICE, id).artifacts.len(), 1);
    // The worker's own history has every step.
    assert_eq!(
        p.states(BOB, id),
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    assert_eq!(due(&p, BOB, T0 + 4), 0);
}

#[test]
fn a_working_update_already_sent_is_followed_by_completed() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    p.write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .expect("a queued task");
    assert_eq!(p.send(BOB, T0 + 2).len(), 1);
    p.write(BOB, |e, tx| e.update_task(tx, id, &completed(), T0 + 3))
        .unwrap();
    assert_eq!(due(&p, BOB, T0 + 3), 1);
    p.run(T0 + 3);
    assert_eq!(
        client_updates(&p),
        [TaskState::Working, TaskState::Completed]
    );
    assert_eq!(
        p.states(ALICE, id),
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
}

#[test]
fn a_working_update_in_flight_when_superseded_still_arrives_in_order() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    p.write(BOB, |e, tx| e.claim_next_task(tx, T0 + 2))
        .unwrap()
        .expect("a queued task");
    // The driver took `working` for sending; `completed` is queued meanwhile (its row goes).
    let in_flight = p.engines[BOB]
        .poll_transmits(&p.stores[BOB].read(), T0 + 2)
        .unwrap();
    assert_eq!(in_flight.len(), 1);
    p.write(BOB, |e, tx| e.update_task(tx, id, &completed(), T0 + 3))
        .unwrap();
    for t in in_flight {
        let response = p.receive(ALICE, &t.frame, T0 + 3);
        let engine = &p.engines[BOB];
        let answers: Vec<DeviceAnswer> = vec![(device_of(ALICE), Ok(response))];
        let r = p.stores[BOB]
            .write(|tx| engine.on_transmit_result(tx, &t, answers, T0 + 3))
            .unwrap();
        assert!(r.unreachable.is_none());
    }
    p.run(T0 + 4);
    assert_eq!(
        client_updates(&p),
        [TaskState::Working, TaskState::Completed]
    );
    assert_eq!(p.task(ALICE, id).status.state, TaskState::Completed);
}

#[test]
fn an_update_with_content_is_never_superseded() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    let progress = TaskUpdateInput {
        state: TaskState::Working,
        text: Some("half way".into()),
        ..completed()
    };
    p.write(BOB, |e, tx| e.update_task(tx, id, &progress, T0 + 2))
        .unwrap();
    p.write(BOB, |e, tx| e.update_task(tx, id, &completed(), T0 + 3))
        .unwrap();
    assert_eq!(due(&p, BOB, T0 + 3), 2);
    p.run(T0 + 3);
    assert_eq!(
        client_updates(&p),
        [TaskState::Working, TaskState::Completed]
    );
    let task = p.task(ALICE, id);
    assert_eq!(task.status.state, TaskState::Completed);
    assert!(task.history.iter().any(|m| m.joined_text() == "half way"));
}

#[test]
fn claim_and_complete_in_one_call_sends_one_envelope() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    let (task, events) = p
        .write(BOB, |e, tx| {
            e.claim_and_update(tx, Some(&completed()), T0 + 2)
        })
        .unwrap()
        .expect("a queued task");
    assert_eq!(task.id, id.to_string());
    assert_eq!(task.status.state, TaskState::Completed);
    assert_eq!(events.len(), 2);
    assert_eq!(due(&p, BOB, T0 + 2), 1);
    p.run(T0 + 2);
    assert_eq!(client_updates(&p), [TaskState::Completed]);
    let client = p.task(ALICE, id);
    assert_eq!(client.artifacts[0].parts[0].text.as_deref(), Some("ok"));
    assert_eq!(
        p.states(BOB, id),
        [
            TaskState::Submitted,
            TaskState::Working,
            TaskState::Completed
        ]
    );
    // Executed once: nothing is left to claim.
    assert!(
        p.write(BOB, |e, tx| e.claim_and_update(
            tx,
            Some(&completed()),
            T0 + 3
        ))
        .unwrap()
        .is_none()
    );
}

#[test]
fn claim_with_an_update_the_state_machine_refuses_changes_nothing() {
    let mut p = pair();
    let id = received(&mut p, T0 + 1);
    let back = TaskUpdateInput {
        state: TaskState::Submitted,
        ..completed()
    };
    let err = p
        .write(BOB, |e, tx| e.claim_and_update(tx, Some(&back), T0 + 2))
        .unwrap_err();
    assert!(matches!(err, TaskError::BadTransition { .. }), "{err:?}");
    assert_eq!(p.states(BOB, id), [TaskState::Submitted]);
    assert_eq!(due(&p, BOB, T0 + 2), 0);
}
