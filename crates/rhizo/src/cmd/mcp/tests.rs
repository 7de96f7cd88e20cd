use super::*;

fn delegate(p: DelegateTask) -> anyhow::Result<(NewTask, Option<Duration>)> {
    delegate_request(&p, 1_000)
}

fn base() -> DelegateTask {
    DelegateTask {
        to: "worker".into(),
        text: "hello".into(),
        ..DelegateTask::default()
    }
}

#[test]
fn delegate_task_checks_its_input() {
    let (task, wait) = delegate(base()).unwrap();
    assert_eq!(task.priority, Priority::Normal);
    assert_eq!(wait, None);
    let (task, wait) = delegate(DelegateTask {
        priority: Some("urgent".into()),
        deadline: Some("30s".into()),
        wait: Some(true),
        data: Some(json!({"n": 1})),
        ..base()
    })
    .unwrap();
    assert_eq!(task.priority, Priority::Urgent);
    assert_eq!(task.deadline, Some(31_000));
    assert_eq!(wait, Some(DEFAULT_WAIT));
    for (bad, want) in [
        (
            DelegateTask {
                priority: Some("asap".into()),
                ..base()
            },
            "priority",
        ),
        (
            DelegateTask {
                deadline: Some("later".into()),
                ..base()
            },
            "deadline",
        ),
        (
            DelegateTask {
                skill: Some("No Such".into()),
                ..base()
            },
            "skill id",
        ),
        (
            DelegateTask {
                to: " ".into(),
                ..base()
            },
            "names no agent",
        ),
        (
            DelegateTask {
                wait: Some(true),
                wait_seconds: Some(100_000),
                ..base()
            },
            "wait_seconds",
        ),
    ] {
        let err = format!("{:#}", delegate(bad).unwrap_err());
        assert!(err.contains(want), "{want}: {err}");
    }
    assert!(task_id("nope").unwrap_err().contains("32 hex digits"));
    assert!(task_id(&"ab".repeat(16)).is_ok());
}

#[test]
fn every_tool_is_listed_with_a_schema() {
    let tools = RhizoTools::new(Config::resolve(std::iter::empty()).unwrap())
        .tool_router
        .list_all();
    let mut names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "cancel_task",
            "delegate_task",
            "find_agents",
            "get_task",
            "list_agents",
            "list_contacts",
            "read_messages",
            "send_message"
        ]
    );
    let delegate = tools.iter().find(|t| t.name == "delegate_task").unwrap();
    let schema = serde_json::to_value(&delegate.input_schema).unwrap();
    assert!(schema["properties"]["deadline"].is_object(), "{schema}");
    let required = schema["required"].as_array().unwrap();
    assert!(required.contains(&json!("to")) && required.contains(&json!("text")));
}

#[test]
fn delegate_task_takes_a_group_mode() {
    let (task, _) = delegate(base()).unwrap();
    assert_eq!(task.mode, TaskMode::Any);
    let (task, _) = delegate(DelegateTask {
        mode: Some("all".into()),
        ..base()
    })
    .unwrap();
    assert_eq!(task.mode, TaskMode::All);
    let bad = delegate(DelegateTask {
        mode: Some("most".into()),
        ..base()
    })
    .unwrap_err();
    assert!(bad.to_string().contains("mode"), "{bad}");
}
