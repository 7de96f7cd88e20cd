//! [`AgentBackend`] on the node's messaging and file services ([`NodeAgents`]): the binding's
//! calls are the task, card and file methods the `/v1` routes use.

use rhizo_core::agent::{NewTask, Task, TaskMessage, TaskUpdateInput};
use tokio::sync::broadcast;

use super::{AgentBackend, BackendError, InboundFile, RemoteAgent, TaskQuery};
use crate::{
    events::ApiEvent,
    files::{AttachError, Files, FilesError},
    messaging::{
        CardError, GroupError, Messaging, MessagingError, SendError, TaskError, TaskInputBody,
        TaskListQuery,
    },
};

/// The node as the A2A binding sees it: the messaging service (tasks, cards, events) and the
/// file service (a client's file parts). Cheap to clone.
#[derive(Debug, Clone)]
pub struct NodeAgents {
    messaging: Messaging,
    files: Files,
}

impl NodeAgents {
    /// The binding's backend over these services.
    #[must_use]
    pub fn new(messaging: Messaging, files: Files) -> Self {
        Self { messaging, files }
    }
}

fn attach_error(e: AttachError) -> BackendError {
    let text = e.to_string();
    match e {
        AttachError::UnknownPeer(_)
        | AttachError::UnknownHash(_)
        | AttachError::NotReady(_)
        | AttachError::Files(FilesError::Content(_)) => BackendError::BadTask(text),
        AttachError::Send(MessagingError::Send(
            SendError::UnknownContact(_) | SendError::BadText { .. },
        ))
        | AttachError::Send(MessagingError::Group(GroupError::UnknownGroup(_))) => {
            BackendError::BadTask(text)
        }
        AttachError::Send(MessagingError::Send(SendError::NoKeyPackages(_))) => {
            BackendError::Unavailable(text)
        }
        _ => BackendError::Internal(text),
    }
}

fn task_error(e: TaskError) -> BackendError {
    let text = e.to_string();
    match e {
        TaskError::UnknownTask(id) => BackendError::UnknownTask(id),
        TaskError::UnknownAgent(_) => BackendError::UnknownAgent(text),
        TaskError::BadTransition { .. } => BackendError::BadTransition(text),
        TaskError::BadTask(_) => BackendError::BadTask(text),
        TaskError::NoKeyPackages(_) | TaskError::AgentUnavailable { .. } => {
            BackendError::Unavailable(text)
        }
        _ => BackendError::Internal(text),
    }
}

fn card_error(e: CardError) -> BackendError {
    match e {
        CardError::UnknownAgent(_) => BackendError::UnknownAgent(e.to_string()),
        e => BackendError::Internal(e.to_string()),
    }
}

impl AgentBackend for NodeAgents {
    async fn agent(&self, who: &str, refresh: bool) -> Result<RemoteAgent, BackendError> {
        let view = self
            .messaging
            .agent(who, refresh)
            .await
            .map_err(card_error)?;
        Ok(RemoteAgent {
            uid: view.uid,
            name: view.name,
            card: view.card,
        })
    }

    async fn delegate(&self, task: NewTask) -> Result<Task, BackendError> {
        self.messaging.delegate(task).await.map_err(task_error)
    }

    async fn task(&self, id: &str) -> Result<Task, BackendError> {
        self.messaging.task(id).await.map_err(task_error)
    }

    async fn tasks(&self, query: TaskQuery) -> Result<Vec<Task>, BackendError> {
        let query = TaskListQuery {
            side: query.side,
            state: query.state.map(|s| s.as_str().to_string()),
            peer: query.peer,
            context_id: query.context_id,
            limit: Some(query.limit),
        };
        self.messaging.tasks(query).await.map_err(task_error)
    }

    async fn cancel_task(&self, id: &str) -> Result<Task, BackendError> {
        self.messaging.cancel_task(id).await.map_err(task_error)
    }

    async fn task_input(&self, id: &str, message: TaskMessage) -> Result<Task, BackendError> {
        self.messaging
            .task_input(id, TaskInputBody::from(message))
            .await
            .map_err(task_error)
    }

    async fn update_task(&self, id: &str, update: TaskUpdateInput) -> Result<Task, BackendError> {
        self.messaging
            .update_task(id, update)
            .await
            .map_err(task_error)
    }

    async fn attach_file(&self, to: &str, file: InboundFile) -> Result<i64, BackendError> {
        match file {
            InboundFile::Bytes { name, mime, bytes } => {
                self.files.attach_bytes(to, name, mime, bytes).await
            }
            InboundFile::Known { hash } => self.files.attach_known(to, hash).await,
        }
        .map_err(attach_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        self.messaging.subscribe()
    }
}

#[cfg(test)]
mod tests;
