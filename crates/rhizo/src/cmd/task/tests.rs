use clap::Parser;

use super::*;
use crate::cli::{Cli, Command};

fn send_args(args: &[&str]) -> Result<TaskSendArgs, clap::Error> {
    let mut argv = vec!["rhizo", "task", "send"];
    argv.extend_from_slice(args);
    match Cli::try_parse_from(argv)?.command {
        Command::Task(TaskCommand::Send(a)) => Ok(a),
        other => panic!("parsed as {other:?}"),
    }
}

#[test]
fn deadlines_are_durations_or_rfc3339_times() {
    assert_eq!(
        parse_deadline("30s"),
        Ok(Deadline::In(Duration::from_secs(30)))
    );
    assert_eq!(
        parse_deadline("5m"),
        Ok(Deadline::In(Duration::from_secs(300)))
    );
    assert_eq!(
        parse_deadline("2h"),
        Ok(Deadline::In(Duration::from_secs(7200)))
    );
    assert_eq!(
        parse_deadline("2026-12-07T10:00:00Z"),
        Ok(Deadline::At(1_796_637_600_000))
    );
    for bad in ["", "0s", "8d", "soon", "5x", "-3s", "2026-13-07"] {
        assert!(parse_deadline(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Deadline::In(Duration::from_secs(1)).resolve(1000).unwrap(),
        2000
    );
    assert!(Deadline::At(999).resolve(1000).is_err());
}

#[test]
fn bad_arguments_fail_before_any_request() {
    for (args, want) in [
        (&["bob", "x", "--data", "{nope"][..], "not valid JSON"),
        (
            &["bob", "x", "--priority", "asap"][..],
            "low, normal, high or urgent",
        ),
        (&["bob", "x", "--deadline", "tomorrow"][..], "RFC 3339"),
    ] {
        let err = send_args(args).unwrap_err().to_string();
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let ok = send_args(&[
        "bob",
        "x",
        "--data",
        "{\"n\":1}",
        "--priority",
        "high",
        "--deadline",
        "5m",
    ])
    .unwrap();
    let task = new_task(&ok, 1_000).unwrap();
    assert_eq!(task.priority, Priority::High);
    assert_eq!(task.deadline, Some(301_000));
    assert_eq!(task.all_parts().len(), 2);
    let bad_skill = send_args(&["bob", "x", "--skill", "Not A Skill"]).unwrap();
    assert!(new_task(&bad_skill, 0).is_err());
    let past = send_args(&["bob", "x", "--deadline", "2001-01-01T00:00:00Z"]).unwrap();
    let err = new_task(&past, now_ms()).unwrap_err().to_string();
    assert!(err.contains("in the past"), "{err}");
}

#[test]
fn task_ids_are_checked_before_any_request() {
    assert_eq!(checked_id(&"AB".repeat(16)).unwrap(), "ab".repeat(16));
    let err = checked_id("nope").unwrap_err().to_string();
    assert!(err.contains("32 hex digits"), "{err}");
}
