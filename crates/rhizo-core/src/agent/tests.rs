use super::*;

#[test]
fn terminal_states_move_nowhere_and_submitted_is_only_first() {
    for from in TaskState::ALL {
        for to in TaskState::ALL {
            let ok = from.can_move_to(to);
            if from.is_terminal() || to == TaskState::Submitted {
                assert!(!ok, "{from} -> {to}");
            } else {
                assert!(ok, "{from} -> {to}");
            }
        }
    }
    assert_eq!(
        TaskState::Completed.check_move(TaskState::Working),
        Err(AgentError::BadTransition {
            from: TaskState::Completed,
            to: TaskState::Working
        })
    );
}

#[test]
fn states_and_priorities_round_trip_wire_and_text() {
    for s in TaskState::ALL {
        assert_eq!(TaskState::from_wire(s.wire()), Ok(s));
        assert_eq!(s.as_str().parse::<TaskState>(), Ok(s));
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::Value::String(s.as_str().into())
        );
    }
    assert!(TaskState::from_wire(0).is_err());
    assert!(TaskState::from_wire(9).is_err());
    for p in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ] {
        assert_eq!(Priority::from_wire(p.wire()), p);
        assert_eq!(p.as_str().parse::<Priority>(), Ok(p));
    }
    assert!(Priority::Urgent > Priority::Low);
}

#[test]
fn parts_hold_exactly_one_content_within_limits() {
    assert!(Part::text("hi").validate().is_ok());
    assert!(Part::default().validate().is_err());
    let both = Part {
        text: Some("a".into()),
        data: Some(serde_json::json!(1)),
        ..Part::default()
    };
    assert!(both.validate().is_err());
    let big = Part::text("x".repeat(MAX_INLINE_PART_BYTES + 1));
    assert_eq!(
        big.validate(),
        Err(AgentError::TooLarge {
            limit: MAX_INLINE_PART_BYTES
        })
    );
    let raw = Part {
        raw: Some("not base64!".into()),
        ..Part::default()
    };
    assert!(raw.validate().is_err());
}

#[test]
fn new_task_and_card_validation() {
    let mut t = NewTask {
        to: "bob".into(),
        text: Some("do it".into()),
        ..NewTask::default()
    };
    assert!(t.validate().is_ok());
    t.skill = Some("Bad Skill".into());
    assert!(t.validate().is_err());
    t.skill = Some("summarize.v1".into());
    t.requirements = vec!["r".into(); MAX_REQUIREMENTS + 1];
    assert!(t.validate().is_err());
    let none = NewTask {
        to: "bob".into(),
        ..NewTask::default()
    };
    assert!(none.validate().is_err());

    let card: AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Summarizer",
        "skills": [{"id": "summarize", "name": "Summarize"}]
    }))
    .unwrap();
    assert!(card.validate().is_ok());
    assert_eq!(card.default_input_modes, vec!["text/plain".to_string()]);
    let mut dup = card.clone();
    dup.skills.push(dup.skills[0].clone());
    assert!(dup.validate().is_err());
}

#[test]
fn task_ids_print_as_hex_and_parse_back() {
    let id = TaskId([0xab; TASK_ID_LEN]);
    let text = id.to_string();
    assert_eq!(text.len(), 32);
    assert_eq!(text.parse::<TaskId>(), Ok(id));
    assert!("xyz".parse::<TaskId>().is_err());
    assert!(TaskId::from_slice(&[1, 2, 3]).is_err());
}

#[test]
fn liveness_follows_the_announced_interval() {
    assert_eq!(Liveness::of(10_000, 10), Liveness::Alive);
    assert_eq!(Liveness::of(15_000, 10), Liveness::Alive);
    assert_eq!(Liveness::of(15_001, 10), Liveness::Late);
    assert_eq!(Liveness::of(30_000, 10), Liveness::Late);
    assert_eq!(Liveness::of(30_001, 10), Liveness::Unreachable);
}
