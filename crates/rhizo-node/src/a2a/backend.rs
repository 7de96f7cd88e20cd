//! [`AgentBackend`] on the node's messaging service: the binding's calls are the task and
//! card methods the `/v1` routes use.

use rhizo_core::agent::{NewTask, Task, TaskMessage, TaskUpdateInput};
use tokio::sync::broadcast;

use super::{AgentBackend, BackendError, RemoteAgent, TaskQuery};
use crate::{
    events::ApiEvent,
    messaging::{CardError, Messaging, TaskError, TaskInputBody, TaskListQuery},
};

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

impl AgentBackend for Messaging {
    async fn agent(&self, who: &str, refresh: bool) -> Result<RemoteAgent, BackendError> {
        let view = Self::agent(self, who, refresh).await.map_err(card_error)?;
        Ok(RemoteAgent {
            uid: view.uid,
            name: view.name,
            card: view.card,
        })
    }

    async fn delegate(&self, task: NewTask) -> Result<Task, BackendError> {
        Self::delegate(self, task).await.map_err(task_error)
    }

    async fn task(&self, id: &str) -> Result<Task, BackendError> {
        Self::task(self, id).await.map_err(task_error)
    }

    async fn tasks(&self, query: TaskQuery) -> Result<Vec<Task>, BackendError> {
        let query = TaskListQuery {
            side: query.side,
            state: query.state.map(|s| s.as_str().to_string()),
            peer: query.peer,
            context_id: query.context_id,
            limit: Some(query.limit),
        };
        Self::tasks(self, query).await.map_err(task_error)
    }

    async fn cancel_task(&self, id: &str) -> Result<Task, BackendError> {
        Self::cancel_task(self, id).await.map_err(task_error)
    }

    async fn task_input(&self, id: &str, message: TaskMessage) -> Result<Task, BackendError> {
        Self::task_input(self, id, TaskInputBody::from(message))
            .await
            .map_err(task_error)
    }

    async fn update_task(&self, id: &str, update: TaskUpdateInput) -> Result<Task, BackendError> {
        Self::update_task(self, id, update)
            .await
            .map_err(task_error)
    }

    fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        Self::subscribe(self)
    }
}

#[cfg(test)]
mod tests;
