//! The local API's route table: one piece of data ([`ROUTES`]) from which the router is built and
//! against which `docs/local-api.md` is checked (the drift test in `crates/rhizo/tests`).
//!
//! Every route lives under `/v1/`, except the A2A binding's (`/a2a/{agent}/…`, the paths A2A
//! clients expect below an agent's URL) and the web UI's pages (`/ui/…`). The paths of seed 004
//! (`/health`, `/peers`, `/stats`, `/public-key`, `/message`) and the early `/metrics` stay as
//! **aliases**: rows whose
//! [`Route::alias_of`] names the `/v1/` route they answer exactly like (same handler, same auth).

use axum::{
    Router,
    routing::{MethodFilter, MethodRouter, on},
};

use super::ApiState;

/// An HTTP method the local API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET` (axum answers `HEAD` on the same route).
    Get,
    /// `POST`, with a JSON body where the route takes one.
    Post,
    /// `DELETE`.
    Delete,
    /// `PATCH`, with a JSON body.
    Patch,
}

impl Method {
    /// The method as written in HTTP and in the docs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
            Self::Patch => "PATCH",
        }
    }

    const fn filter(self) -> MethodFilter {
        match self {
            Self::Get => MethodFilter::GET,
            Self::Post => MethodFilter::POST,
            Self::Delete => MethodFilter::DELETE,
            Self::Patch => MethodFilter::PATCH,
        }
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone who can reach the loopback address.
    Open,
    /// Only with `Authorization: Bearer <token>` (the token in `<data_dir>/api.token`).
    Token,
}

impl Auth {
    /// The auth column of the docs' route table: `no` or `token`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "no",
            Self::Token => "token",
        }
    }
}

/// The handler a route runs; aliases share their `/v1/` route's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Health,
    Peers,
    Stats,
    PublicKey,
    Metrics,
    PostMessage,
    Invite,
    ListContacts,
    AddContact,
    VerifyContact,
    ContactSafety,
    ListRequests,
    AcceptRequest,
    DeclineRequest,
    BlockSender,
    ListBlocked,
    UnblockSender,
    ListMessages,
    PostConversationMessage,
    Events,
    AgentHeartbeat,
    MailboxStatus,
    MailboxFetch,
    ListBans,
    AddBan,
    RemoveBan,
    ListChannels,
    CreateChannel,
    JoinChannel,
    LeaveChannel,
    ReadChannel,
    PostChannel,
    OwnProfile,
    SetProfile,
    ProfileOf,
    CreateTask,
    ListTasks,
    ShowTask,
    CancelTask,
    TaskInput,
    WorkerTasks,
    ClaimNextTask,
    UpdateTask,
    OwnAgentCard,
    SetAgentCard,
    DeleteAgentCard,
    ListAgents,
    FindAgents,
    AgentOf,
    A2aCard,
    A2aRpc,
    ListGroups,
    CreateGroup,
    ShowGroup,
    UpdateGroup,
    AddGroupMembers,
    RemoveGroupMember,
    ListGroupAdmins,
    AddGroupAdmin,
    RemoveGroupAdmin,
    LeaveGroup,
    ListGroupMessages,
    GroupAgents,
    PostGroupMessage,
    ListGroupRequests,
    AcceptGroupRequest,
    DeclineGroupRequest,
    ListDevices,
    AddDevice,
    RevokeDevice,
    LinkTicket,
    LightWs,
    NewPairing,
    ListPairings,
    RevokePairing,
    SendFile,
    ListFiles,
    FileInfo,
    FetchFile,
    SaveFile,
    DownloadFile,
    FileStats,
    RenameContact,
    RemoveContact,
    BlockContact,
    UnblockContact,
    ListConversations,
    UpdateConversation,
    DeleteConversation,
    ConversationTyping,
    DeleteMessage,
    UiIndex,
    UiAppJs,
    UiAppCss,
    UiLogin,
    UiLoginLink,
    UiLogout,
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The HTTP method.
    pub method: Method,
    /// The path, with `{param}` segments as axum writes them.
    pub path: &'static str,
    /// Whether the bearer token is needed.
    pub auth: Auth,
    /// For an alias: the `/v1/` path it answers like (same method).
    pub alias_of: Option<&'static str>,
    /// What the route does, in one line.
    pub summary: &'static str,
    pub(crate) endpoint: Endpoint,
}

const fn v1(
    method: Method,
    path: &'static str,
    auth: Auth,
    endpoint: Endpoint,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        auth,
        alias_of: None,
        summary,
        endpoint,
    }
}

const fn alias(
    method: Method,
    path: &'static str,
    auth: Auth,
    endpoint: Endpoint,
    of: &'static str,
) -> Route {
    Route {
        method,
        path,
        auth,
        alias_of: Some(of),
        summary: "seed-004 alias",
        endpoint,
    }
}

use Auth::{Open, Token};
use Endpoint as E;
use Method::{Delete, Get, Patch, Post};

/// Every route of the local API, `/v1/` routes first, then the aliases.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    v1(   Get,    "/v1/health",                           Open,  E::Health,                  "liveness and version"),
    v1(   Get,    "/v1/stats",                            Token, E::Stats,                   "identity, peers and counters"),
    v1(   Get,    "/v1/peers",                            Token, E::Peers,                   "connected and routing-table peers"),
    v1(   Get,    "/v1/public-key",                       Token, E::PublicKey,               "UID, keys and device certificate"),
    v1(   Get,    "/v1/metrics",                          Token, E::Metrics,                 "the counters as OpenMetrics text"),
    v1(   Post,   "/v1/message",                          Token, E::PostMessage,             "send a text to a contact named in the body"),
    v1(   Get,    "/v1/invite",                           Token, E::Invite,                  "our contact ticket and its QR code"),
    v1(   Get,    "/v1/contacts",                         Token, E::ListContacts,            "list contacts"),
    v1(   Post,   "/v1/contacts",                         Token, E::AddContact,              "add a contact by ticket or UID"),
    v1(   Post,   "/v1/contacts/{name}/verify",           Token, E::VerifyContact,           "mark a contact verified"),
    v1(   Get,    "/v1/contacts/{name}/safety",           Token, E::ContactSafety,           "a contact's safety number and its QR code (to compare before verifying)"),
    v1(   Patch,  "/v1/contacts/{name}",                  Token, E::RenameContact,           "rename a contact"),
    v1(   Delete, "/v1/contacts/{name}",                  Token, E::RemoveContact,           "remove a contact with its 1:1 history"),
    v1(   Post,   "/v1/contacts/{name}/block",            Token, E::BlockContact,            "block a contact or UID (nothing from them is shown or stored)"),
    v1(   Delete, "/v1/contacts/{name}/block",            Token, E::UnblockContact,          "unblock a contact or UID"),
    v1(   Get,    "/v1/conversations",                    Token, E::ListConversations,       "1:1 and group conversations (`?archived=true`: with the archived ones)"),
    v1(   Patch,  "/v1/conversations/{id}",               Token, E::UpdateConversation,      "mute/unmute, archive/unarchive a conversation"),
    v1(   Delete, "/v1/conversations/{id}",               Token, E::DeleteConversation,      "delete a conversation's history on this node"),
    v1(   Post,   "/v1/conversations/{id}/typing",        Token, E::ConversationTyping,      "tell a conversation's connected devices we are typing (ephemeral, ≤ 1 per 3 s)"),
    v1(   Delete, "/v1/messages/{id}",                    Token, E::DeleteMessage,           "delete a message here (`?for_everyone=true`: ask the others' nodes too, best effort)"),
    v1(   Get,    "/v1/requests",                         Token, E::ListRequests,            "pending message requests"),
    v1(   Post,   "/v1/requests/{who}/accept",            Token, E::AcceptRequest,           "accept a message request"),
    v1(   Post,   "/v1/requests/{who}/decline",           Token, E::DeclineRequest,          "decline a message request"),
    v1(   Post,   "/v1/requests/{who}/block",             Token, E::BlockSender,             "block a sender"),
    v1(   Get,    "/v1/blocked",                          Token, E::ListBlocked,             "blocked senders"),
    v1(   Delete, "/v1/blocked/{uid}",                    Token, E::UnblockSender,           "unblock a sender"),
    v1(   Get,    "/v1/conversations/{contact}/messages", Token, E::ListMessages,            "message history with a contact"),
    v1(   Post,   "/v1/conversations/{contact}/messages", Token, E::PostConversationMessage, "send a text to a contact"),
    v1(   Get,    "/v1/events",                           Token, E::Events,                  "server-sent events"),
    v1(   Post,   "/v1/agent/heartbeat",                  Token, E::AgentHeartbeat,          "an agent program is attached (15 s)"),
    v1(   Get,    "/v1/mailbox",                          Token, E::MailboxStatus,           "mailbox replica and fetch status"),
    v1(   Post,   "/v1/mailbox/fetch",                    Token, E::MailboxFetch,            "fetch our mailbox now"),
    v1(   Get,    "/v1/bans",                             Token, E::ListBans,                "explicit bans"),
    v1(   Post,   "/v1/bans",                             Token, E::AddBan,                  "ban a peer id or IP range"),
    v1(   Delete, "/v1/bans/{target}",                    Token, E::RemoveBan,               "lift a ban"),
    v1(   Get,    "/v1/channels",                         Token, E::ListChannels,            "joined broadcast channels"),
    v1(   Post,   "/v1/channels",                         Token, E::CreateChannel,           "create a broadcast channel"),
    v1(   Post,   "/v1/channels/{id}/join",               Token, E::JoinChannel,             "join a broadcast channel"),
    v1(   Delete, "/v1/channels/{id}",                    Token, E::LeaveChannel,            "leave a broadcast channel"),
    v1(   Get,    "/v1/channels/{id}/posts",              Token, E::ReadChannel,             "a channel's recent posts"),
    v1(   Post,   "/v1/channels/{id}/posts",              Token, E::PostChannel,             "post to a channel"),
    v1(   Get,    "/v1/profile",                          Token, E::OwnProfile,              "our profile"),
    v1(   Post,   "/v1/profile",                          Token, E::SetProfile,              "set (and optionally publish) our profile"),
    v1(   Get,    "/v1/profiles/{who}",                   Token, E::ProfileOf,               "a contact's or a UID's profile"),
    v1(   Post,   "/v1/tasks",                            Token, E::CreateTask,              "delegate a task to an agent (or to a group's agents)"),
    v1(   Get,    "/v1/tasks",                            Token, E::ListTasks,               "tasks on either side, newest first"),
    v1(   Get,    "/v1/tasks/{id}",                       Token, E::ShowTask,                "one task with its status history"),
    v1(   Post,   "/v1/tasks/{id}/cancel",                Token, E::CancelTask,              "cancel a task we delegated"),
    v1(   Post,   "/v1/tasks/{id}/input",                 Token, E::TaskInput,               "more input for a task we delegated"),
    v1(   Get,    "/v1/agent/tasks",                      Token, E::WorkerTasks,             "the worker's tasks in queue order"),
    v1(   Post,   "/v1/agent/tasks/next",                 Token, E::ClaimNextTask,           "claim the next queued task (204 when none); with an `update`, also answer it"),
    v1(   Post,   "/v1/agent/tasks/{id}",                 Token, E::UpdateTask,              "the worker's status, message and artifacts"),
    v1(   Get,    "/v1/agent/card",                       Token, E::OwnAgentCard,            "our agent card"),
    v1(   Post,   "/v1/agent/card",                       Token, E::SetAgentCard,            "set, sign and publish our agent card"),
    v1(   Delete, "/v1/agent/card",                       Token, E::DeleteAgentCard,         "remove our agent card (stop announcing)"),
    v1(   Get,    "/v1/agents",                           Token, E::ListAgents,              "known agents (cached cards)"),
    v1(   Get,    "/v1/agents/find",                      Token, E::FindAgents,              "find agents by skill in the DHT"),
    v1(   Get,    "/v1/agents/{who}",                     Token, E::AgentOf,                 "one agent's card, by contact name or UID"),
    v1(   Get,    "/a2a/{agent}/.well-known/agent-card.json", Token, E::A2aCard,     "a remote agent's A2A 1.0 agent card"),
    v1(   Post,   "/a2a/{agent}/",                        Token, E::A2aRpc,                  "A2A 1.0 JSON-RPC (SSE for the streaming methods) to a remote agent"),
    v1(   Get,    "/v1/groups",                           Token, E::ListGroups,              "our private groups"),
    v1(   Post,   "/v1/groups",                           Token, E::CreateGroup,             "create a private group with members"),
    v1(   Get,    "/v1/groups/{id}",                      Token, E::ShowGroup,               "a group's members, epoch and fingerprint"),
    v1(   Patch,  "/v1/groups/{id}",                      Token, E::UpdateGroup,             "rename a group or change its description (admins)"),
    v1(   Post,   "/v1/groups/{id}/members",              Token, E::AddGroupMembers,         "add members to a group (admins)"),
    v1(   Delete, "/v1/groups/{id}/members/{member}",     Token, E::RemoveGroupMember,       "remove a member from a group (admins)"),
    v1(   Get,    "/v1/groups/{id}/admins",               Token, E::ListGroupAdmins,         "a group's admins"),
    v1(   Post,   "/v1/groups/{id}/admins",               Token, E::AddGroupAdmin,           "make a member admin (admins)"),
    v1(   Delete, "/v1/groups/{id}/admins/{member}",      Token, E::RemoveGroupAdmin,        "make an admin a member again (admins; never the last)"),
    v1(   Post,   "/v1/groups/{id}/leave",                Token, E::LeaveGroup,              "leave a group"),
    v1(   Get,    "/v1/groups/{id}/messages",             Token, E::ListGroupMessages,       "a group's history with delivered and read counts"),
    v1(   Post,   "/v1/groups/{id}/messages",             Token, E::PostGroupMessage,        "send a text to a group"),
    v1(   Get,    "/v1/groups/{id}/agents",               Token, E::GroupAgents,             "a group's agent members with their liveness"),
    v1(   Get,    "/v1/group-requests",                   Token, E::ListGroupRequests,       "held invitations to groups"),
    v1(   Post,   "/v1/group-requests/{id}/accept",       Token, E::AcceptGroupRequest,      "join a group from a held invitation"),
    v1(   Post,   "/v1/group-requests/{id}/decline",      Token, E::DeclineGroupRequest,     "drop a held invitation"),
    v1(   Get,    "/v1/devices",                          Token, E::ListDevices,             "this identity's devices (name, fingerprint, added, last seen)"),
    v1(   Post,   "/v1/devices",                          Token, E::AddDevice,               "link a new device from its link ticket (`history_days`: days of history to send it, default the config's `devices.history_days`, 30)"),
    v1(   Delete, "/v1/devices/{id}",                     Token, E::RevokeDevice,            "revoke a linked device (new device-list version)"),
    v1(   Post,   "/v1/devices/link-ticket",              Token, E::LinkTicket,              "on a device waiting to be linked: a link ticket and its QR"),
    v1(   Get,    "/v1/ws",                               Open,  E::LightWs,                 "WebSocket for paired light clients (authenticated by the paired channel)"),
    v1(   Post,   "/v1/pairings",                         Token, E::NewPairing,              "a one-time pairing ticket and its QR for a light client"),
    v1(   Get,    "/v1/pairings",                         Token, E::ListPairings,            "paired light clients"),
    v1(   Delete, "/v1/pairings/{id}",                    Token, E::RevokePairing,           "revoke a paired light client (by id prefix or name)"),
    v1(   Post,   "/v1/files",                            Token, E::SendFile,                "send a file (a path on this machine, or the content as the body) to a contact or a group"),
    v1(   Get,    "/v1/files",                            Token, E::ListFiles,               "files sent and received, with their state"),
    v1(   Get,    "/v1/files/stats",                      Token, E::FileStats,               "file transfer counters and the holders whose chunks were refused"),
    v1(   Get,    "/v1/files/{id}",                       Token, E::DownloadFile,            "a complete file's content (Range supported)"),
    v1(   Get,    "/v1/files/{id}/info",                  Token, E::FileInfo,                "one file's state and progress"),
    v1(   Post,   "/v1/files/{id}/fetch",                 Token, E::FetchFile,               "fetch a received file from its holders"),
    v1(   Post,   "/v1/files/{id}/save",                  Token, E::SaveFile,                "decrypt a complete file to a path on this machine"),
    v1(   Post,   "/v1/ui/login-link",                    Token, E::UiLoginLink,             "a one-time login link for the web UI (`rhizo ui`)"),
    v1(   Post,   "/v1/ui/logout",                        Token, E::UiLogout,                "end the web UI session of the calling cookie"),
    v1(   Get,    "/ui/",                                 Open,  E::UiIndex,                 "the web UI's page (loopback Host only, strict CSP)"),
    v1(   Get,    "/ui/app.js",                           Open,  E::UiAppJs,                 "the web UI's script"),
    v1(   Get,    "/ui/app.css",                          Open,  E::UiAppCss,                "the web UI's style sheet"),
    v1(   Get,    "/ui/login",                            Open,  E::UiLogin,                 "spend a one-time login code: sets the session cookie, redirects to /ui/"),
    alias(Get,    "/health",                              Open,  E::Health,                  "/v1/health"),
    alias(Get,    "/stats",                               Token, E::Stats,                   "/v1/stats"),
    alias(Get,    "/peers",                               Token, E::Peers,                   "/v1/peers"),
    alias(Get,    "/public-key",                          Token, E::PublicKey,               "/v1/public-key"),
    alias(Get,    "/metrics",                             Token, E::Metrics,                 "/v1/metrics"),
    alias(Post,   "/message",                             Token, E::PostMessage,             "/v1/message"),
];

/// The handler of one endpoint, for `method`.
fn handler(endpoint: Endpoint, method: Method) -> MethodRouter<ApiState> {
    use super::*;
    let m = method.filter();
    match endpoint {
        E::Health => on(m, health),
        E::Peers => on(m, peers),
        E::Stats => on(m, stats),
        E::PublicKey => on(m, public_key),
        E::Metrics => on(m, metrics),
        E::PostMessage => on(m, post_message),
        E::Invite => on(m, invite),
        E::ListContacts => on(m, list_contacts),
        E::AddContact => on(m, add_contact),
        E::VerifyContact => on(m, verify_contact),
        E::ContactSafety => on(m, super::web::contact_safety),
        E::ListRequests => on(m, list_requests),
        E::AcceptRequest => on(m, accept_request),
        E::DeclineRequest => on(m, decline_request),
        E::BlockSender => on(m, block_sender),
        E::ListBlocked => on(m, list_blocked),
        E::UnblockSender => on(m, unblock_sender),
        E::ListMessages => on(m, list_messages),
        E::PostConversationMessage => on(m, post_conversation_message),
        E::Events => on(m, events),
        E::AgentHeartbeat => on(m, agent_heartbeat),
        E::MailboxStatus => on(m, mailbox_status),
        E::MailboxFetch => on(m, mailbox_fetch),
        E::ListBans => on(m, list_bans),
        E::AddBan => on(m, add_ban),
        E::RemoveBan => on(m, remove_ban),
        E::ListChannels => on(m, list_channels),
        E::CreateChannel => on(m, create_channel),
        E::JoinChannel => on(m, join_channel),
        E::LeaveChannel => on(m, leave_channel),
        E::ReadChannel => on(m, read_channel),
        E::PostChannel => on(m, post_channel),
        E::OwnProfile => on(m, own_profile),
        E::SetProfile => on(m, set_profile),
        E::ProfileOf => on(m, profile_of),
        E::CreateTask => on(m, create_task),
        E::ListTasks => on(m, list_tasks),
        E::ShowTask => on(m, show_task),
        E::CancelTask => on(m, cancel_task),
        E::TaskInput => on(m, task_input),
        E::WorkerTasks => on(m, worker_tasks),
        E::ClaimNextTask => on(m, claim_next_task),
        E::UpdateTask => on(m, update_task),
        E::OwnAgentCard => on(m, own_agent_card),
        E::SetAgentCard => on(m, set_agent_card),
        E::DeleteAgentCard => on(m, delete_agent_card),
        E::ListAgents => on(m, list_agents),
        E::FindAgents => on(m, find_agents),
        E::AgentOf => on(m, agent_of),
        E::A2aCard => on(m, a2a_card),
        E::A2aRpc => on(m, a2a_rpc),
        E::ListGroups => on(m, list_groups),
        E::CreateGroup => on(m, create_group),
        E::ShowGroup => on(m, show_group),
        E::UpdateGroup => on(m, update_group),
        E::AddGroupMembers => on(m, add_group_members),
        E::RemoveGroupMember => on(m, remove_group_member),
        E::ListGroupAdmins => on(m, list_group_admins),
        E::AddGroupAdmin => on(m, add_group_admin),
        E::RemoveGroupAdmin => on(m, remove_group_admin),
        E::LeaveGroup => on(m, leave_group),
        E::ListGroupMessages => on(m, list_group_messages),
        E::GroupAgents => on(m, group_agents),
        E::PostGroupMessage => on(m, post_group_message),
        E::ListGroupRequests => on(m, list_group_requests),
        E::AcceptGroupRequest => on(m, accept_group_request),
        E::DeclineGroupRequest => on(m, decline_group_request),
        E::ListDevices => on(m, super::devices::list_devices),
        E::AddDevice => on(m, super::devices::add_device),
        E::RevokeDevice => on(m, super::devices::revoke_device),
        E::LinkTicket => on(m, super::devices::link_ticket),
        E::LightWs => on(m, super::ws::ws_upgrade),
        E::NewPairing => on(m, super::pairing::new_pairing),
        E::ListPairings => on(m, super::pairing::list_pairings),
        E::RevokePairing => on(m, super::pairing::revoke_pairing),
        E::SendFile => on(m, super::files::send_file),
        E::ListFiles => on(m, super::files::list_files),
        E::FileInfo => on(m, super::files::file_info),
        E::FetchFile => on(m, super::files::fetch_file),
        E::SaveFile => on(m, super::files::save_file),
        E::DownloadFile => on(m, super::files::download_file),
        E::FileStats => on(m, super::files::file_stats),
        E::RenameContact => on(m, super::manage::rename_contact),
        E::RemoveContact => on(m, super::manage::remove_contact),
        E::BlockContact => on(m, super::manage::block_contact),
        E::UnblockContact => on(m, super::manage::unblock_contact),
        E::ListConversations => on(m, super::manage::list_conversations),
        E::UpdateConversation => on(m, super::manage::update_conversation),
        E::DeleteConversation => on(m, super::manage::delete_conversation),
        E::ConversationTyping => on(m, super::manage::typing),
        E::DeleteMessage => on(m, super::manage::delete_message),
        E::UiIndex => on(m, super::web::index),
        E::UiAppJs => on(m, super::web::app_js),
        E::UiAppCss => on(m, super::web::app_css),
        E::UiLogin => on(m, super::web::login),
        E::UiLoginLink => on(m, super::web::login_link),
        E::UiLogout => on(m, super::web::logout),
    }
}

/// The routes of `routes` with the given auth, as a router (methods on one path are merged).
fn build(routes: &[Route], auth: Auth) -> Router<ApiState> {
    routes
        .iter()
        .filter(|r| r.auth == auth)
        .fold(Router::new(), |router, r| {
            router.route(r.path, handler(r.endpoint, r.method))
        })
}

/// The open routes and the token-protected routes of [`ROUTES`], unlayered: the caller adds the
/// token check to the second.
pub(super) fn open_and_protected() -> (Router<ApiState>, Router<ApiState>) {
    (build(ROUTES, Open), build(ROUTES, Token))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn target(route: &Route) -> Option<&'static Route> {
        let of = route.alias_of?;
        ROUTES
            .iter()
            .find(|r| r.path == of && r.method == route.method)
    }

    #[test]
    fn every_route_is_under_v1_or_an_alias_of_one() {
        for r in ROUTES {
            match r.alias_of {
                None => assert!(
                    r.path.starts_with("/v1/")
                        || r.path.starts_with("/a2a/")
                        || r.path.starts_with("/ui/"),
                    "{} is not under /v1/ (or the A2A binding's /a2a/, or the web UI's /ui/)",
                    r.path
                ),
                Some(of) => {
                    assert!(
                        !r.path.starts_with("/v1/"),
                        "{} is an alias under /v1/",
                        r.path
                    );
                    let t = target(r).unwrap_or_else(|| panic!("{} aliases missing {of}", r.path));
                    assert_eq!(t.alias_of, None, "{} aliases an alias", r.path);
                    assert_eq!(t.endpoint, r.endpoint, "{} runs another handler", r.path);
                    assert_eq!(t.auth, r.auth, "{} has another auth", r.path);
                }
            }
        }
    }

    #[test]
    fn seed_004_paths_are_aliases() {
        for path in ["/message", "/health", "/peers", "/stats", "/public-key"] {
            let r = ROUTES.iter().find(|r| r.path == path);
            assert!(
                r.is_some_and(|r| r.alias_of.is_some()),
                "{path} is not an alias"
            );
        }
    }

    #[test]
    fn rows_are_unique_and_only_health_the_light_socket_and_the_ui_pages_are_open() {
        let mut seen = HashSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method.as_str(),
                r.path
            );
            // `/v1/ws` authenticates inside its paired channel (browsers cannot send a token);
            // the web UI's pages are public assets, and its login spends a one-time code.
            let open = matches!(
                r.endpoint,
                Endpoint::Health
                    | Endpoint::LightWs
                    | Endpoint::UiIndex
                    | Endpoint::UiAppJs
                    | Endpoint::UiAppCss
                    | Endpoint::UiLogin
            );
            assert_eq!(r.auth == Open, open, "{} auth", r.path);
        }
    }

    #[test]
    fn the_router_builds_from_the_table() {
        // axum panics on a malformed or conflicting route; building proves the table is valid.
        let (open, protected) = open_and_protected();
        let _ = open.merge(protected);
    }
}
