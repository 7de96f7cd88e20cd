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

#[test]
fn a_file_part_goes_on_the_wire_by_hash_and_is_checked_coming_back() {
    let file = FilePart {
        id: Some(7),
        hash: "ab".repeat(32),
        name: "input.bin".into(),
        size: 20 << 20,
        mime: "application/octet-stream".into(),
        state: Some("done".into()),
    };
    let part = Part {
        file: Some(file.clone()),
        ..Part::default()
    };
    part.validate().unwrap();
    assert_eq!(part.as_text(), "[file input.bin, 20971520 bytes]");
    let back = wire::part_from_wire(wire::part_to_wire(&part).unwrap()).unwrap();
    // The local id and state stay here: the peer learns the hash, name, size and MIME type.
    let sent = back.file.unwrap();
    assert_eq!((sent.id, sent.state), (None, None));
    assert_eq!(
        (sent.hash, sent.name, sent.size),
        (file.hash, file.name, file.size)
    );

    // An id alone is what the API takes; it cannot go on the wire before it is filled in.
    let by_id = Part {
        file: Some(FilePart {
            id: Some(3),
            ..FilePart::default()
        }),
        ..Part::default()
    };
    by_id.validate().unwrap();
    assert!(wire::part_to_wire(&by_id).is_err());
    // Neither an id nor a reference, a file beside text, or a path in the name: refused.
    let empty = Part {
        file: Some(FilePart::default()),
        ..Part::default()
    };
    assert!(empty.validate().is_err());
    let both = Part {
        text: Some("x".into()),
        ..by_id.clone()
    };
    assert!(both.validate().is_err());
    let bad = crate::proto::Part {
        file: Some(crate::proto::TaskFile {
            hash: vec![1u8; 32].into(),
            name: "../etc/passwd".into(),
            size: 1,
            mime: String::new(),
        }),
        ..crate::proto::Part::default()
    };
    assert!(matches!(
        wire::part_from_wire(bad),
        Err(AgentError::Malformed(_))
    ));
}
