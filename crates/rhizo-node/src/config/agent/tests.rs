//! The `[agent]` section's defaults, validation and environment variables.

use super::*;
use crate::config::ConfigLayer;

#[test]
fn defaults_and_validation() {
    let c = AgentLayer::defaults().resolve().unwrap();
    assert_eq!(c.heartbeat_secs, DEFAULT_HEARTBEAT_SECS);
    assert_eq!(c.accept_tasks_from, AcceptTasksFrom::Anyone);
    assert!(c.wake_command.is_empty() && !c.enabled);
    let with = |f: fn(&mut AgentLayer)| {
        let mut l = AgentLayer::defaults();
        f(&mut l);
        l.resolve()
    };
    let err = with(|l| l.heartbeat_secs = Some(0)).unwrap_err();
    assert!(err.to_string().contains("1 to 3600"), "{err}");
    let err = with(|l| l.max_queue = Some(0)).unwrap_err();
    assert!(err.to_string().contains("agent.max_queue"), "{err}");
    let err = with(|l| l.wake_command = Some(vec![String::new()])).unwrap_err();
    assert!(err.to_string().contains("as a list"), "{err}");
    let err = with(|l| l.a2a_url = Some("http://192.0.2.1:9999/".into())).unwrap_err();
    assert!(err.to_string().contains("loopback"), "{err}");
    for ok in [
        "http://127.0.0.1:9999/",
        "http://localhost:1",
        "http://[::1]:80/a2a",
    ] {
        let c = AgentLayer {
            a2a_url: Some(ok.into()),
            ..AgentLayer::defaults()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.a2a_url.as_deref(), Some(ok));
    }
    assert!(
        parse_accept("agent.accept_tasks_from", "everyone")
            .unwrap_err()
            .to_string()
            .contains("contacts")
    );
    let err = ConfigLayer::from_toml(
        "[agent]\naccept_tasks_from = \"everyone\"\n",
        std::path::Path::new("c.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("c.toml"), "{err}");
}

#[test]
fn env_variables() {
    let mut l = AgentLayer::default();
    assert!(l.set_from_env("RHIZO_AGENT_HEARTBEAT_SECS", "5").unwrap());
    assert!(
        l.set_from_env("RHIZO_AGENT_WAKE_COMMAND", "python3 agent.py")
            .unwrap()
    );
    assert!(
        l.set_from_env("RHIZO_AGENT_ACCEPT_TASKS_FROM", "contacts")
            .unwrap()
    );
    assert!(l.set_from_env("RHIZO_AGENT_ENABLED", "yes").unwrap());
    assert!(!l.set_from_env("RHIZO_OTHER", "1").unwrap());
    assert!(l.set_from_env("RHIZO_AGENT_MAX_QUEUE", "x").is_err());
    let c = l.over(AgentLayer::defaults()).resolve().unwrap();
    assert_eq!(c.heartbeat_secs, 5);
    assert_eq!(c.wake_command, ["python3", "agent.py"]);
    assert_eq!(c.accept_tasks_from, AcceptTasksFrom::Contacts);
    assert!(c.enabled);
}
