//! The network side of the TUI: every API call and the event stream run in tasks that feed
//! bounded channels, so the screen never waits for the node.
//!
//! ```text
//!  UI loop ──Command (bounded, try_send)──▶ serve_commands ──▶ one task per call (≤ 4 at once)
//!     ▲                                                              │
//!     └────────────Update (bounded)────────── forward_events ◀── GET /v1/events
//! ```

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use futures::StreamExt;
use rhizo_node::{
    api::{ContactWithPresence, InviteResponse, StatsResponse},
    devices::DeviceView,
    events::ApiEvent,
    messaging::{
        ContactView, GroupMessageView, GroupRequestView, GroupView, MailboxStatus, MessageView,
        RequestView,
    },
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use super::model::{
    ConvKey, ConvSummary, Line, NodeStatus, Overlay, contact_summary, group_summary,
    sort_conversations,
};
use crate::{
    api_client::{ApiClient, StreamItem},
    cmd::contacts::urlencode,
};

/// API calls running at once (a slow DHT lookup must not hold up a refresh).
const CALLS_AT_ONCE: usize = 4;
/// Histories read at once while the conversation list is refreshed.
const HISTORIES_AT_ONCE: usize = 4;
/// Most contacts whose history the list reads for unread counts and activity.
const MAX_LISTED_CONTACTS: usize = 500;
/// Wait before reconnecting a lost event stream.
const EVENTS_RETRY: Duration = Duration::from_secs(2);

/// What the UI asks the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    /// Conversations, contacts and the status bar.
    Refresh,
    /// A conversation's history (marks its received messages read).
    Open(ConvKey),
    /// Send a text.
    Send(ConvKey, String),
    /// Send a file (a path on this machine) to a contact: contact, path, and the `progress`
    /// id its `file_import` events carry.
    SendFile(String, String, String),
    /// Add a contact by ticket.
    AddContact(String),
    /// Our ticket and its QR code.
    ShowTicket,
    /// Pending message requests and group invitations.
    ShowRequests,
    /// Accept a message request (UID or name), optionally naming the contact.
    Accept(String, Option<String>),
    /// Decline a message request.
    Decline(String),
    /// Join a group from an invitation.
    AcceptGroup(i64),
    /// Drop an invitation.
    DeclineGroup(i64),
    /// Mark a contact verified.
    Verify(String),
    /// Create a group with members.
    CreateGroup(String, Vec<String>),
    /// Add members to a group (its id).
    AddMembers(String, Vec<String>),
    /// This identity's devices.
    ShowDevices,
    /// Link a new device from its link ticket, optionally naming it.
    LinkDevice(String, Option<String>),
    /// Revoke a device (its PeerId, name or fingerprint prefix).
    RevokeDevice(String),
    /// Known agents and tasks.
    ShowAgents,
    /// Tell a conversation we are typing (best effort, no answer shown).
    Typing(ConvKey),
}

impl Command {
    /// The contact a send goes to (a 1:1 text or a file).
    pub(crate) fn contact(&self) -> Option<&str> {
        match self {
            Self::Send(ConvKey::Contact(name), _) | Self::SendFile(name, ..) => Some(name),
            _ => None,
        }
    }
}

/// What comes back to the UI.
#[derive(Debug)]
pub(crate) enum Update {
    /// The conversation list (sorted) and the contacts.
    Conversations(Vec<ConvSummary>, Vec<ContactView>, NodeStatus),
    /// A conversation's lines, oldest first.
    History(ConvKey, Vec<Line>),
    /// Open an overlay.
    Overlay(Overlay),
    /// A short message for the status line (a success or an error).
    Notice(String),
    /// A command failed or finished: the UI may ask for it again.
    Done(Command),
    /// An event from the node.
    Event(Box<ApiEvent>),
    /// Events were lost (or the stream reconnected): re-read everything.
    Lagged,
}

/// Runs each command in its own task (at most [`CALLS_AT_ONCE`] at once) until the UI goes.
pub(crate) async fn serve_commands(
    api: ApiClient,
    mut commands: mpsc::Receiver<Command>,
    updates: mpsc::Sender<Update>,
) {
    let permits = Arc::new(Semaphore::new(CALLS_AT_ONCE));
    while let Some(command) = commands.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (api, updates) = (api.clone(), updates.clone());
        tokio::spawn(async move {
            let answer = match run(&api, &command).await {
                Ok(update) => update,
                Err(e) => Some(Update::Notice(format!("{e:#}"))),
            };
            if let Some(update) = answer {
                let _ = updates.send(update).await;
            }
            let _ = updates.send(Update::Done(command)).await;
            drop(permit);
        });
    }
}

/// Forwards `/v1/events` to the UI, reconnecting when the stream ends (after a lost stream
/// the UI re-reads everything: events are not stored).
pub(crate) async fn forward_events(api: ApiClient, updates: mpsc::Sender<Update>) {
    loop {
        if let Ok(mut stream) = api.events("").await {
            if updates.send(Update::Lagged).await.is_err() {
                return;
            }
            while let Ok(Some(item)) = stream.next().await {
                let update = match item {
                    StreamItem::Event(event) => Update::Event(event),
                    StreamItem::Lagged => Update::Lagged,
                };
                if updates.send(update).await.is_err() {
                    return;
                }
            }
        }
        let notice = Update::Notice("lost the node's event stream; reconnecting".into());
        if updates.send(notice).await.is_err() {
            return;
        }
        tokio::time::sleep(EVENTS_RETRY).await;
    }
}

/// One command's API calls; `None` when only [`Update::Done`] is needed.
async fn run(api: &ApiClient, command: &Command) -> anyhow::Result<Option<Update>> {
    let notice = |s: String| Ok(Some(Update::Notice(s)));
    match command {
        Command::Refresh => refresh(api).await.map(Some),
        Command::Open(key) => history(api, key).await.map(Some),
        Command::Send(key, text) => send(api, key, text).await.map(|()| None),
        Command::SendFile(to, path, progress) => send_file(api, to, path, progress).await.map(Some),
        Command::AddContact(ticket) => {
            let added: Value = api.post("/v1/contacts", &json!({"ticket": ticket})).await?;
            let name = added["contact"]["name"].as_str().unwrap_or("?");
            notice(format!("added contact {name}"))
        }
        Command::ShowTicket => {
            let invite: InviteResponse = api.get("/v1/invite").await?;
            Ok(Some(Update::Overlay(Overlay::Ticket {
                ticket: invite.ticket,
                qr: invite.qr,
            })))
        }
        Command::ShowRequests => {
            let people: Vec<RequestView> = api.get("/v1/requests").await?;
            let groups: Vec<GroupRequestView> = api.get("/v1/group-requests").await?;
            Ok(Some(Update::Overlay(Overlay::Requests { people, groups })))
        }
        Command::Accept(who, name) => {
            let path = format!("/v1/requests/{}/accept", urlencode(who));
            let body = name
                .as_ref()
                .map_or_else(|| json!({}), |n| json!({"name": n}));
            let accepted: Value = api.post(&path, &body).await?;
            let name = accepted["contact"]["name"].as_str().unwrap_or("?");
            notice(format!("accepted: {name} is a contact"))
        }
        Command::Decline(who) => {
            let path = format!("/v1/requests/{}/decline", urlencode(who));
            let _: Value = api.post(&path, &json!({})).await?;
            notice("declined".into())
        }
        Command::AcceptGroup(id) => {
            let group: GroupView = api
                .post(&format!("/v1/group-requests/{id}/accept"), &json!({}))
                .await?;
            notice(format!("joined group {}", group.name))
        }
        Command::DeclineGroup(id) => {
            let path = format!("/v1/group-requests/{id}/decline");
            let _: Value = api.post(&path, &json!({})).await?;
            notice("invitation declined".into())
        }
        _ => run_more(api, command).await,
    }
}

/// The rest of [`run`]: contacts, groups, devices, agents.
async fn run_more(api: &ApiClient, command: &Command) -> anyhow::Result<Option<Update>> {
    match command {
        Command::Verify(name) => {
            let path = format!("/v1/contacts/{}/verify", urlencode(name));
            let contact: ContactView = api.post(&path, &json!({})).await?;
            Ok(Some(Update::Notice(format!(
                "{} is marked verified",
                contact.name
            ))))
        }
        Command::CreateGroup(name, members) => {
            let body = json!({"name": name, "members": members});
            let _: Value = api.post("/v1/groups", &body).await?;
            Ok(Some(Update::Notice(format!("created group {name}"))))
        }
        Command::AddMembers(group, members) => {
            let path = format!("/v1/groups/{}/members", urlencode(group));
            let added: Value = api.post(&path, &json!({"members": members})).await?;
            let n = added["added"].as_array().map_or(0, Vec::len);
            Ok(Some(Update::Notice(format!("added {n} member(s)"))))
        }
        Command::ShowDevices => {
            let devices: Vec<DeviceView> = api.get("/v1/devices").await?;
            Ok(Some(Update::Overlay(Overlay::Devices(devices))))
        }
        Command::LinkDevice(ticket, name) => {
            let body = json!({"ticket": ticket, "name": name});
            let device: DeviceView = api.post("/v1/devices", &body).await?;
            Ok(Some(Update::Notice(format!(
                "linked {} (fingerprint {}): F4 lists the devices",
                device.name.as_deref().unwrap_or(&device.id),
                device.fingerprint
            ))))
        }
        Command::RevokeDevice(id) => {
            let path = format!("/v1/devices/{}", urlencode(id));
            let device: DeviceView = api.delete(&path).await?;
            Ok(Some(Update::Notice(format!(
                "revoked {}",
                device.name.as_deref().unwrap_or(&device.id)
            ))))
        }
        Command::Typing(key) => {
            let (ConvKey::Contact(id) | ConvKey::Group(id)) = key;
            let path = format!("/v1/conversations/{}/typing", urlencode(id));
            // Best effort: an indicator that did not go is not worth a notice.
            let _: Result<Value, _> = api.post(&path, &json!({})).await;
            Ok(None)
        }
        Command::ShowAgents => {
            let agents: Vec<Value> = api.get("/v1/agents").await?;
            let tasks: Vec<Value> = api.get("/v1/tasks?limit=50").await?;
            Ok(Some(Update::Overlay(Overlay::Agents { agents, tasks })))
        }
        _ => Ok(None),
    }
}

/// Contacts (with their histories' unread counts and activity), groups and the status bar.
async fn refresh(api: &ApiClient) -> anyhow::Result<Update> {
    let contacts: Vec<ContactWithPresence> = api.get("/v1/contacts").await?;
    let groups: Vec<GroupView> = api.get("/v1/groups").await?;
    let reads = contacts.iter().take(MAX_LISTED_CONTACTS).map(|c| {
        let (api, contact, presence) = (api.clone(), c.contact.clone(), c.presence.state);
        async move {
            let path = format!("/v1/conversations/{}/messages", urlencode(&contact.name));
            let history: Vec<MessageView> = api.get(&path).await.unwrap_or_default();
            contact_summary(&contact, &history, presence)
        }
    });
    let mut list: Vec<ConvSummary> = futures::stream::iter(reads.collect::<Vec<_>>())
        .buffer_unordered(HISTORIES_AT_ONCE)
        .collect()
        .await;
    list.extend(
        groups
            .iter()
            .filter(|g| g.status == "active")
            .map(group_summary),
    );
    sort_conversations(&mut list);
    let stats: StatsResponse = api.get("/v1/stats").await?;
    let mailbox: MailboxStatus = api.get("/v1/mailbox").await?;
    let requests: Vec<RequestView> = api.get("/v1/requests").await?;
    let invitations: Vec<GroupRequestView> = api.get("/v1/group-requests").await?;
    let status = NodeStatus::from_views(&stats, &mailbox, requests.len() + invitations.len());
    let contacts = contacts.into_iter().map(|c| c.contact).collect();
    Ok(Update::Conversations(list, contacts, status))
}

/// A conversation's history, marking what we received read (it is on screen).
async fn history(api: &ApiClient, key: &ConvKey) -> anyhow::Result<Update> {
    let lines = match key {
        ConvKey::Contact(name) => {
            let path = format!(
                "/v1/conversations/{}/messages?mark_read=true",
                urlencode(name)
            );
            let history: Vec<MessageView> = api.get(&path).await?;
            history.iter().map(|m| Line::direct(m, name)).collect()
        }
        ConvKey::Group(id) => {
            let path = format!("/v1/groups/{}/messages?mark_read=true", urlencode(id));
            let history: Vec<GroupMessageView> = api.get(&path).await?;
            history.iter().map(Line::group).collect()
        }
    };
    Ok(Update::History(key.clone(), lines))
}

/// Sends a file: the node reads and encrypts the path (made absolute here), emitting
/// `file_import` events with `progress` as it goes (the sender's progress bar), and queues the
/// message; the receiver's `file_progress` events then show its download.
async fn send_file(
    api: &ApiClient,
    to: &str,
    path: &str,
    progress: &str,
) -> anyhow::Result<Update> {
    let path = std::path::absolute(path).context("file not sent: a bad path")?;
    let body = json!({"to": to, "path": path, "progress": progress});
    let sent: Value = api
        .post("/v1/files", &body)
        .await
        .context("file not sent")?;
    let name = sent["file"]["name"].as_str().unwrap_or("?");
    let size = sent["file"]["size"].as_u64().unwrap_or(0);
    Ok(Update::Notice(format!(
        "sent file {name} ({size} bytes) to {to}"
    )))
}

/// Sends a text (the events then show it queued and delivered).
async fn send(api: &ApiClient, key: &ConvKey, text: &str) -> anyhow::Result<()> {
    let body = json!({"text": text});
    let _: Value = match key {
        ConvKey::Contact(name) => {
            let path = format!("/v1/conversations/{}/messages", urlencode(name));
            api.post(&path, &body).await
        }
        ConvKey::Group(id) => {
            let path = format!("/v1/groups/{}/messages", urlencode(id));
            api.post(&path, &body).await
        }
    }
    .context("not sent")?;
    Ok(())
}
