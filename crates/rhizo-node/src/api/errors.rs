//! The local API's error mapping: every typed error of the messaging service (and the
//! channels) has an HTTP status and a stable error code.

use axum::{http::StatusCode, response::Response};

use super::error;
use crate::messaging::{
    CardError, ContactError, FetchError, GroupError, ManageError, MessagingError, ProfileError,
    RequestError, SendError, TaskError,
};

/// The HTTP status and stable error code of a messaging or channel error (see
/// docs/local-api.md): 400 for bad input, 404 for what does not exist, 409 for a conflict with
/// what is stored, 503 for what may work shortly, 500 for the node's own failures.
pub(super) fn error_status(e: &MessagingError) -> (StatusCode, &'static str) {
    match e {
        MessagingError::Contact(e) => contact_status(e),
        MessagingError::Send(e) => match e {
            SendError::BadText { .. } => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
            SendError::UnknownContact(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
            SendError::NoKeyPackages(_) => (StatusCode::SERVICE_UNAVAILABLE, "NO_KEY_PACKAGES"),
            SendError::Engine(e) => engine_status(e),
            SendError::Db(e) => db_status(e),
        },
        MessagingError::Profile(e) => match e {
            ProfileError::BadProfile(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
            ProfileError::NoOwnProfile | ProfileError::NotPublished(_) => {
                (StatusCode::NOT_FOUND, "NO_PROFILE")
            }
            ProfileError::UnknownContact(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
            ProfileError::Engine(e) => engine_status(e),
            ProfileError::Db(e) => db_status(e),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        },
        MessagingError::Request(e) => match e {
            RequestError::UnknownRequest(_) => (StatusCode::NOT_FOUND, "UNKNOWN_REQUEST"),
            RequestError::AmbiguousName(_)
            | RequestError::NoName
            | RequestError::BadUid(_)
            | RequestError::Ourselves => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
            RequestError::Contact(e) => contact_status(e),
            RequestError::Engine(e) => engine_status(e),
            RequestError::Db(e) => db_status(e),
        },
        MessagingError::Task(e) => task_status(e),
        MessagingError::Card(e) => card_status(e),
        MessagingError::Group(e) => group_status(e),
        MessagingError::Manage(e) => manage_status(e),
        MessagingError::Fetch(FetchError::Engine(e)) => engine_status(e),
        MessagingError::Fetch(FetchError::Db(e)) => db_status(e),
        MessagingError::BadInput(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        MessagingError::UnknownChannel(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CHANNEL"),
        MessagingError::Busy(_) => (StatusCode::SERVICE_UNAVAILABLE, "BUSY"),
        MessagingError::Store(e) => store_status(e),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// Agent tasks: the codes of docs/local-api.md.
fn task_status(e: &TaskError) -> (StatusCode, &'static str) {
    use rhizo_core::agent::AgentError;
    match e {
        TaskError::UnknownTask(_) => (StatusCode::NOT_FOUND, "UNKNOWN_TASK"),
        TaskError::UnknownAgent(_) => (StatusCode::NOT_FOUND, "UNKNOWN_AGENT"),
        TaskError::BadTransition { .. } => (StatusCode::CONFLICT, "BAD_TRANSITION"),
        TaskError::BadTask(AgentError::TooLarge { .. }) => {
            (StatusCode::PAYLOAD_TOO_LARGE, "PART_TOO_LARGE")
        }
        TaskError::BadTask(_) => (StatusCode::BAD_REQUEST, "BAD_TASK"),
        TaskError::NoKeyPackages(_) => (StatusCode::SERVICE_UNAVAILABLE, "NO_KEY_PACKAGES"),
        TaskError::AgentUnavailable { .. } => {
            (StatusCode::SERVICE_UNAVAILABLE, "AGENT_UNAVAILABLE")
        }
        TaskError::Contact(e) => contact_status(e),
        TaskError::Engine(e) => engine_status(e),
        TaskError::Db(e) => db_status(e),
    }
}

/// Groups: the codes of docs/local-api.md.
fn group_status(e: &GroupError) -> (StatusCode, &'static str) {
    match e {
        GroupError::UnknownGroup(_) => (StatusCode::NOT_FOUND, "UNKNOWN_GROUP"),
        GroupError::UnknownRequest(_) => (StatusCode::NOT_FOUND, "UNKNOWN_REQUEST"),
        GroupError::UnknownMember(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
        GroupError::AmbiguousGroup(_)
        | GroupError::BadMembers { .. }
        | GroupError::BadText { .. } => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        GroupError::NoKeyPackages(_) => (StatusCode::SERVICE_UNAVAILABLE, "NO_KEY_PACKAGES"),
        GroupError::Contact(e) => contact_status(e),
        GroupError::Engine(e) => engine_status(e),
        GroupError::Db(e) => db_status(e),
    }
}

fn card_status(e: &CardError) -> (StatusCode, &'static str) {
    match e {
        CardError::BadCard(_) | CardError::BadSkill(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        CardError::NoCard => (StatusCode::NOT_FOUND, "NO_CARD"),
        CardError::UnknownAgent(_) | CardError::NotAnAgent(_) => {
            (StatusCode::NOT_FOUND, "UNKNOWN_AGENT")
        }
        CardError::UnknownContact(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
        CardError::NoConversation(_) => (StatusCode::CONFLICT, "NO_CONVERSATION"),
        CardError::NoAnswer { .. } => (StatusCode::GATEWAY_TIMEOUT, "NO_ANSWER"),
        CardError::Network(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        CardError::Engine(e) => engine_status(e),
        CardError::Db(e) => db_status(e),
    }
}

fn contact_status(e: &ContactError) -> (StatusCode, &'static str) {
    match e {
        ContactError::UnknownContact(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
        ContactError::BadTicket(_) => (StatusCode::BAD_REQUEST, "BAD_TICKET"),
        ContactError::Ourselves(_) | ContactError::NoName | ContactError::BadUid(_) => {
            (StatusCode::BAD_REQUEST, "BAD_INPUT")
        }
        ContactError::NotInDht(_) => (StatusCode::NOT_FOUND, "NOT_IN_DHT"),
        ContactError::UnprovenDevices(_) => (StatusCode::BAD_REQUEST, "UNPROVEN_DEVICES"),
        ContactError::StaleDeviceList(_) => (StatusCode::SERVICE_UNAVAILABLE, "STALE_DEVICE_LIST"),
        ContactError::NameTaken(_) => (StatusCode::CONFLICT, "NAME_TAKEN"),
        ContactError::DeviceTaken(_) => (StatusCode::CONFLICT, "DEVICE_TAKEN"),
        ContactError::Engine(e) => engine_status(e),
        ContactError::Db(e) => db_status(e),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

/// Managing contacts and conversations: the codes of docs/local-api.md.
fn manage_status(e: &ManageError) -> (StatusCode, &'static str) {
    match e {
        ManageError::UnknownContact(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONTACT"),
        ManageError::UnknownConversation(_) => (StatusCode::NOT_FOUND, "UNKNOWN_CONVERSATION"),
        ManageError::NotBlocked(_) => (StatusCode::NOT_FOUND, "NOT_BLOCKED"),
        ManageError::Ambiguous(_) | ManageError::Ourselves => {
            (StatusCode::BAD_REQUEST, "BAD_INPUT")
        }
        ManageError::Engine(e) => engine_status(e),
        ManageError::Db(e) => db_status(e),
    }
}

fn engine_status(e: &rhizo_engine::EngineError) -> (StatusCode, &'static str) {
    use rhizo_engine::EngineError;
    match e {
        EngineError::Store(e) => store_status(e),
        EngineError::UnknownGroup => (StatusCode::NOT_FOUND, "UNKNOWN_GROUP"),
        EngineError::NotAdmin => (StatusCode::FORBIDDEN, "NOT_ADMIN"),
        EngineError::NotInGroup => (StatusCode::CONFLICT, "NOT_IN_GROUP"),
        EngineError::Rejoining => (StatusCode::CONFLICT, "REJOINING"),
        EngineError::NoAdminLeft => (StatusCode::CONFLICT, "NO_ADMIN_LEFT"),
        EngineError::NotAMember => (StatusCode::NOT_FOUND, "NOT_A_MEMBER"),
        EngineError::Group(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        EngineError::TooManyMembers { .. } => (StatusCode::CONFLICT, "TOO_MANY_MEMBERS"),
        EngineError::NoRootKey => (StatusCode::CONFLICT, "NO_ROOT_KEY"),
        EngineError::UnknownMessage(_) => (StatusCode::NOT_FOUND, "UNKNOWN_MESSAGE"),
        EngineError::NotYourMessage => (StatusCode::FORBIDDEN, "NOT_YOUR_MESSAGE"),
        EngineError::ConversationClosed => (StatusCode::CONFLICT, "CONVERSATION_CLOSED"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

fn db_status(e: &rhizo_store::DbError) -> (StatusCode, &'static str) {
    match e {
        rhizo_store::DbError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "BUSY"),
        rhizo_store::DbError::Store(e) => store_status(e),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

fn store_status(e: &rhizo_store::StoreError) -> (StatusCode, &'static str) {
    use rhizo_store::StoreError;
    match e {
        StoreError::NameTaken(_) => (StatusCode::CONFLICT, "NAME_TAKEN"),
        StoreError::DeviceKeyTaken { .. } => (StatusCode::CONFLICT, "DEVICE_TAKEN"),
        StoreError::InvalidInput(_) => (StatusCode::BAD_REQUEST, "BAD_INPUT"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
    }
}

pub(super) fn messaging_error(e: impl Into<MessagingError>) -> Response {
    let e = e.into();
    let (status, code) = error_status(&e);
    error(status, code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn status_and_code(e: impl Into<MessagingError>) -> (StatusCode, String) {
        let response = messaging_error(e);
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        (
            status,
            json["code"].as_str().unwrap_or_default().to_string(),
        )
    }

    #[tokio::test]
    async fn identity_binding_errors_have_stable_codes() {
        let taken = ContactError::from(rhizo_store::StoreError::DeviceKeyTaken {
            device: "ab".repeat(32),
            contact: "bob".into(),
        });
        assert_eq!(
            status_and_code(taken).await,
            (StatusCode::CONFLICT, "DEVICE_TAKEN".to_string())
        );
        assert_eq!(
            status_and_code(ContactError::UnprovenDevices("mallory".into())).await,
            (StatusCode::BAD_REQUEST, "UNPROVEN_DEVICES".to_string())
        );
    }

    /// Every typed error of the messaging service has its status and stable code; a name
    /// that another contact has is NAME_TAKEN (it was KEY_CHANGED, which meant something else).
    /// One error of each kind, with the status and code the API must give it.
    fn cases() -> Vec<(MessagingError, StatusCode, &'static str)> {
        use rhizo_store::StoreError;
        vec![
            (
                ContactError::from(StoreError::NameTaken("bob".into())).into(),
                StatusCode::CONFLICT,
                "NAME_TAKEN",
            ),
            (
                MessagingError::Store(StoreError::NameTaken("bob".into())),
                StatusCode::CONFLICT,
                "NAME_TAKEN",
            ),
            (
                ContactError::UnknownContact("x".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_CONTACT",
            ),
            (
                ContactError::NotInDht("u".into()).into(),
                StatusCode::NOT_FOUND,
                "NOT_IN_DHT",
            ),
            (
                ContactError::NoName.into(),
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
            ),
        ]
        .into_iter()
        .chain(other_cases())
        .chain(group_cases())
        .collect()
    }

    /// Groups: the engine's group refusals and the driver's own.
    fn group_cases() -> Vec<(MessagingError, StatusCode, &'static str)> {
        use rhizo_engine::EngineError;
        vec![
            (
                GroupError::UnknownGroup("g".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_GROUP",
            ),
            (
                GroupError::Engine(EngineError::UnknownGroup).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_GROUP",
            ),
            (
                GroupError::Engine(EngineError::NotAdmin).into(),
                StatusCode::FORBIDDEN,
                "NOT_ADMIN",
            ),
            (
                GroupError::Engine(EngineError::NotInGroup).into(),
                StatusCode::CONFLICT,
                "NOT_IN_GROUP",
            ),
            (
                GroupError::Engine(EngineError::Rejoining).into(),
                StatusCode::CONFLICT,
                "REJOINING",
            ),
            (
                GroupError::Engine(EngineError::NoAdminLeft).into(),
                StatusCode::CONFLICT,
                "NO_ADMIN_LEFT",
            ),
            (
                GroupError::Engine(EngineError::NotAMember).into(),
                StatusCode::NOT_FOUND,
                "NOT_A_MEMBER",
            ),
            (
                GroupError::Engine(EngineError::TooManyMembers { count: 2, max: 1 }).into(),
                StatusCode::CONFLICT,
                "TOO_MANY_MEMBERS",
            ),
            (
                GroupError::UnknownRequest(7).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_REQUEST",
            ),
            (
                GroupError::UnknownMember("x".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_CONTACT",
            ),
            (
                GroupError::AmbiguousGroup("g".into()).into(),
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
            ),
            (
                GroupError::NoKeyPackages("bob".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "NO_KEY_PACKAGES",
            ),
        ]
    }

    /// Sending, profiles, requests, the mailbox and channels.
    fn other_cases() -> Vec<(MessagingError, StatusCode, &'static str)> {
        vec![
            (
                SendError::BadText { max: 1 }.into(),
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
            ),
            (
                SendError::UnknownContact("x".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_CONTACT",
            ),
            (
                SendError::NoKeyPackages("x".into()).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "NO_KEY_PACKAGES",
            ),
            (
                ProfileError::NoOwnProfile.into(),
                StatusCode::NOT_FOUND,
                "NO_PROFILE",
            ),
            (
                ProfileError::NotPublished("u".into()).into(),
                StatusCode::NOT_FOUND,
                "NO_PROFILE",
            ),
            (
                RequestError::UnknownRequest("x".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_REQUEST",
            ),
            (
                RequestError::AmbiguousName("x".into()).into(),
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
            ),
            (
                RequestError::Contact(ContactError::NotInDht("u".into())).into(),
                StatusCode::NOT_FOUND,
                "NOT_IN_DHT",
            ),
            (
                SendError::Db(rhizo_store::DbError::Busy).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "BUSY",
            ),
            (
                FetchError::Engine(rhizo_engine::EngineError::Internal("x")).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
            ),
            (
                MessagingError::UnknownChannel("c".into()),
                StatusCode::NOT_FOUND,
                "UNKNOWN_CHANNEL",
            ),
            (CardError::NoCard.into(), StatusCode::NOT_FOUND, "NO_CARD"),
            (
                CardError::UnknownAgent("x".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_AGENT",
            ),
            (
                CardError::BadSkill("X".into()).into(),
                StatusCode::BAD_REQUEST,
                "BAD_INPUT",
            ),
        ]
        .into_iter()
        .chain(task_cases())
        .collect()
    }

    /// Agent tasks.
    fn task_cases() -> Vec<(MessagingError, StatusCode, &'static str)> {
        use rhizo_core::agent::{AgentError, TaskState};
        vec![
            (
                TaskError::UnknownTask("t".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_TASK",
            ),
            (
                TaskError::UnknownAgent("a".into()).into(),
                StatusCode::NOT_FOUND,
                "UNKNOWN_AGENT",
            ),
            (
                TaskError::BadTransition {
                    from: TaskState::Completed,
                    to: TaskState::Working,
                }
                .into(),
                StatusCode::CONFLICT,
                "BAD_TRANSITION",
            ),
            (
                TaskError::BadTask(AgentError::Invalid("x")).into(),
                StatusCode::BAD_REQUEST,
                "BAD_TASK",
            ),
            (
                TaskError::BadTask(AgentError::TooLarge { limit: 1 }).into(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "PART_TOO_LARGE",
            ),
            (
                TaskError::AgentUnavailable {
                    agent: "bob".into(),
                    why: "it failed 5 times; tried again in 30 s".into(),
                }
                .into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "AGENT_UNAVAILABLE",
            ),
        ]
    }

    #[tokio::test]
    async fn each_messaging_error_maps_to_its_status_and_code() {
        for (error, status, code) in cases() {
            let shown = error.to_string();
            assert_eq!(
                status_and_code(error).await,
                (status, code.to_string()),
                "{shown}"
            );
        }
    }
}
