use rhizo_core::agent::{AgentError, TaskState};

use super::*;
use crate::a2a::rpc::RpcError;

/// The node's task and card errors reach an A2A client with the right code and their message.
#[test]
fn node_errors_become_a2a_errors() {
    let code = |e: BackendError| RpcError::from(e).code();
    assert_eq!(
        task_error(TaskError::UnknownTask("t".into())),
        BackendError::UnknownTask("t".into())
    );
    assert_eq!(code(task_error(TaskError::UnknownTask("t".into()))), -32001);
    let moved = task_error(TaskError::BadTransition {
        from: TaskState::Completed,
        to: TaskState::Working,
    });
    assert!(matches!(moved, BackendError::BadTransition(ref m) if m.contains("completed")));
    assert_eq!(code(moved), -32602);
    let bad = task_error(TaskError::BadTask(AgentError::TooLarge { limit: 1 }));
    assert!(matches!(bad, BackendError::BadTask(ref m) if m.contains("too large")));
    let gone = task_error(TaskError::NoKeyPackages("bob".into()));
    assert!(matches!(gone, BackendError::Unavailable(ref m) if m.contains("KeyPackages")));
    assert_eq!(code(gone), -32603);
    let unknown = card_error(CardError::UnknownAgent("zed".into()));
    assert!(matches!(unknown, BackendError::UnknownAgent(ref m) if m.contains("zed")));
    assert_eq!(code(unknown), -32602);
}
