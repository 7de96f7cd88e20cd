//! `rhizo group create | add | remove | admin list|add|remove | leave | rename | list | info |
//! requests | accept | decline`, and `send` / `messages` / `chat` on a group.

use anyhow::Context;
use rhizo_node::{
    Config,
    api::{AddMembersRequest, AdminRequest, CreateGroupRequest, TextBody, UpdateGroupRequest},
    events::ApiEvent,
    messaging::{
        GroupInfoView, GroupMemberView, GroupMessageView, GroupRequestView, GroupView, MessageView,
    },
};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

use crate::{
    api_client::{ApiClient, ApiError, StreamItem},
    cli::{GroupAdminCommand, GroupCommand},
    cmd::{
        chat::{describe_state, time_of},
        contacts::urlencode,
    },
};

/// `POST /v1/groups/{id}/messages`'s answer.
#[derive(Debug, Deserialize)]
struct Posted {
    message: MessageView,
    total: u32,
}

pub(crate) async fn run(config: &Config, command: &GroupCommand) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match command {
        GroupCommand::Create {
            name,
            members,
            json,
        } => {
            let body = CreateGroupRequest {
                name: name.clone(),
                members: members.clone(),
                description: None,
            };
            let info: GroupInfoView = api.post("/v1/groups", &body).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!(
                    "group {} created ({} members)",
                    info.name,
                    info.members.len()
                );
                println!("id: {}", info.id);
            }
        }
        GroupCommand::Add { group, member } => {
            let body = AddMembersRequest {
                members: vec![member.clone()],
            };
            let _: Value = api.post(&members_path(group), &body).await?;
            println!("{member} added to {group}");
        }
        GroupCommand::Remove { group, member } => {
            let path = format!("{}/{}", members_path(group), urlencode(member));
            let answer: Value = api.delete(&path).await?;
            if answer["removed"].as_bool() == Some(true) {
                println!("{member} removed from {group}");
            } else {
                println!("{member} is not in {group}");
            }
        }
        GroupCommand::Admin(command) => admin(&api, command).await?,
        GroupCommand::Leave { group } => {
            let path = format!("{}/leave", group_path(group));
            let _: Value = api.post(&path, &serde_json::json!({})).await?;
            println!("you left {group}");
        }
        GroupCommand::Rename { group, name } => {
            let body = UpdateGroupRequest {
                name: Some(name.clone()),
                description: None,
            };
            let info: GroupInfoView = api.patch(&group_path(group), &body).await?;
            println!("{group} is now {}", info.name);
        }
        GroupCommand::List(args) => list(&api, args.json).await?,
        GroupCommand::Info { group, json } => {
            let info: GroupInfoView = api.get(&group_path(group)).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_info(&info);
            }
        }
        GroupCommand::Requests(args) => requests(&api, args.json).await?,
        GroupCommand::Accept { id } => {
            let path = format!("/v1/group-requests/{id}/accept");
            let g: GroupView = api.post(&path, &serde_json::json!({})).await?;
            println!("joined {} ({} members), id {}", g.name, g.members, g.id);
        }
        GroupCommand::Decline { id } => {
            let path = format!("/v1/group-requests/{id}/decline");
            let _: Value = api.post(&path, &serde_json::json!({})).await?;
            println!("invitation {id} declined");
        }
    }
    Ok(())
}

/// `POST`/`DELETE /v1/groups/{id}/admins…`'s answer.
#[derive(Debug, Deserialize)]
struct AdminsChanged {
    changed: bool,
    admins: Vec<GroupMemberView>,
}

async fn admin(api: &ApiClient, command: &GroupAdminCommand) -> anyhow::Result<()> {
    let (group, member, changed) = match command {
        GroupAdminCommand::List { group, json } => {
            let path = format!("{}/admins", group_path(group));
            let admins: Vec<GroupMemberView> = api.get(&path).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&admins)?);
            } else {
                println!("{}", admin_names(&admins));
            }
            return Ok(());
        }
        GroupAdminCommand::Add { group, member } => {
            let path = format!("{}/admins", group_path(group));
            let body = AdminRequest {
                member: member.clone(),
            };
            let answer: AdminsChanged = api.post(&path, &body).await?;
            (group, member, answer)
        }
        GroupAdminCommand::Remove { group, member } => {
            let path = format!("{}/admins/{}", group_path(group), urlencode(member));
            let answer: AdminsChanged = api.delete(&path).await?;
            (group, member, answer)
        }
    };
    let what = match (command, changed.changed) {
        (GroupAdminCommand::Add { .. }, true) => "is now an admin of",
        (GroupAdminCommand::Add { .. }, false) => "was already an admin of",
        (_, true) => "is no longer an admin of",
        (_, false) => "was no admin of",
    };
    println!(
        "{member} {what} {group}; admins: {}",
        admin_names(&changed.admins)
    );
    Ok(())
}

/// Admins by contact name where known, else UID.
fn admin_names(admins: &[GroupMemberView]) -> String {
    admins
        .iter()
        .map(|a| a.name.clone().unwrap_or_else(|| a.uid.clone()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn group_path(group: &str) -> String {
    format!("/v1/groups/{}", urlencode(group))
}

fn members_path(group: &str) -> String {
    format!("{}/members", group_path(group))
}

async fn list(api: &ApiClient, json: bool) -> anyhow::Result<()> {
    let list: Vec<GroupView> = api.get("/v1/groups").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no groups: `rhizo group create NAME --members a,b`");
    } else {
        for g in list {
            let status = if g.status == "active" {
                String::new()
            } else {
                format!(" ({})", g.status)
            };
            println!(
                "{:<24} {:>4} members  {:<6} {:>3} unread  {}{status}",
                g.name, g.members, g.role, g.unread, g.id
            );
        }
    }
    Ok(())
}

fn print_info(info: &GroupInfoView) {
    println!("{} ({})", info.name, info.id);
    if !info.description.is_empty() {
        println!("{}", info.description);
    }
    println!(
        "you: {}, {}; epoch {}; safety fingerprint {}",
        info.role, info.status, info.epoch, info.fingerprint
    );
    for m in &info.members {
        let name = m.name.as_deref().unwrap_or("");
        println!(
            "  {:<16} {:<6} {} device(s)  {}",
            name, m.role, m.devices, m.uid
        );
    }
}

async fn requests(api: &ApiClient, json: bool) -> anyhow::Result<()> {
    let list: Vec<GroupRequestView> = api.get("/v1/group-requests").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if list.is_empty() {
        println!("no group invitations waiting");
    } else {
        for r in list {
            let from = r.from_name.unwrap_or(r.from);
            println!(
                "{:>4}  {} ({} members) from {from}: `rhizo group accept {}`",
                r.id, r.name, r.members, r.id
            );
        }
    }
    Ok(())
}

/// Whether `err` says no contact has that name (then a group may).
pub(crate) fn no_such_contact(err: &anyhow::Error) -> bool {
    ApiError::has_code(err, "UNKNOWN_CONTACT")
}

/// Whether a group answers to `name` (by name, id or id prefix).
pub(crate) async fn exists(api: &ApiClient, name: &str) -> bool {
    api.get::<GroupInfoView>(&group_path(name)).await.is_ok()
}

/// `rhizo send --group` (or a name only a group has).
pub(crate) async fn send(
    api: &ApiClient,
    group: &str,
    text: &str,
    json: bool,
) -> anyhow::Result<()> {
    let path = format!("{}/messages", group_path(group));
    let posted: Posted = api
        .post(
            &path,
            &TextBody {
                text: text.to_string(),
            },
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&posted.message)?);
    } else {
        println!(
            "message {} to group {group}: {} (to {} devices)",
            posted.message.id,
            describe_state(&posted.message),
            posted.total
        );
    }
    Ok(())
}

/// How far one of our group messages got: `delivered 2/3, read 1/3`.
fn progress(m: &GroupMessageView) -> String {
    match (m.delivered, m.read, m.total) {
        (Some(d), Some(r), Some(t)) if t > 0 => {
            format!("{}, delivered {d}/{t}, read {r}/{t}", m.message.state)
        }
        _ => describe_state(&m.message),
    }
}

fn print_message(m: &GroupMessageView) {
    let text = m.message.text.as_deref().unwrap_or("");
    if m.message.direction == "out" {
        println!(
            "{} me: {text} [{}]",
            time_of(m.message.sent_at),
            progress(m)
        );
    } else {
        let who = m.from_name.as_deref().or(m.from.as_deref()).unwrap_or("?");
        println!("{} {who}: {text}", time_of(m.message.sent_at));
    }
}

/// `rhizo messages --group` (or a name only a group has).
pub(crate) async fn messages(
    api: &ApiClient,
    group: &str,
    limit: usize,
    json: bool,
    mark_read: bool,
) -> anyhow::Result<()> {
    let path = format!(
        "{}/messages?limit={limit}&mark_read={mark_read}",
        group_path(group)
    );
    let list: Vec<GroupMessageView> = api.get(&path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("No messages in {group} yet.");
    }
    for m in &list {
        print_message(m);
    }
    Ok(())
}

/// `rhizo chat --group` (or a name only a group has).
pub(crate) async fn chat(api: &ApiClient, group: &str) -> anyhow::Result<()> {
    let info: GroupInfoView = api.get(&group_path(group)).await?;
    let history = format!("{}/messages?limit=20&mark_read=true", group_path(&info.id));
    let recent: Vec<GroupMessageView> = api.get(&history).await?;
    for m in &recent {
        print_message(m);
    }
    println!(
        "-- chatting in group {} ({} members); a line and Enter sends, Ctrl-D leaves --",
        info.name,
        info.members.len()
    );
    let mut events = api.events("").await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let post_path = format!("{}/messages", group_path(&info.id));
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let Some(line) = line.context("reading stdin")? else { break };
                let text = line.trim();
                if text.is_empty() { continue; }
                let body = TextBody { text: text.to_string() };
                match api.post::<Posted>(&post_path, &body).await {
                    Ok(p) => println!("  (message {} {}, to {} devices)", p.message.id, p.message.state, p.total),
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            next = events.next() => {
                let Some(item) = next? else {
                    anyhow::bail!("the node closed the event stream");
                };
                let StreamItem::Event(event) = item else { continue };
                on_event(api, &info, *event).await;
            }
        }
    }
    Ok(())
}

async fn on_event(api: &ApiClient, info: &GroupInfoView, event: ApiEvent) {
    match event {
        ApiEvent::GroupMessageReceived {
            group,
            from,
            text,
            sent_at,
            ..
        } if group == info.id => {
            let who = info
                .members
                .iter()
                .find(|m| m.uid == from)
                .and_then(|m| m.name.clone())
                .unwrap_or(from);
            println!("{} {who}: {text}", time_of(sent_at));
            // Shown on screen: read.
            let path = format!("{}/messages?limit=1&mark_read=true", group_path(&info.id));
            let _ = api.get::<Vec<GroupMessageView>>(&path).await;
        }
        ApiEvent::GroupMessageState {
            id,
            group,
            state,
            delivered,
            read,
            total,
        } if group == info.id => {
            println!(
                "  (message {id} {state}, delivered {delivered}/{total}, read {read}/{total})"
            );
        }
        ApiEvent::GroupRenamed { group, name } if group == info.id => {
            println!("  (the group is now named {name})");
        }
        ApiEvent::GroupMemberAdded { group, uid } if group == info.id => {
            println!("  ({uid} joined)");
        }
        ApiEvent::GroupMemberRemoved { group, uid } if group == info.id => {
            println!("  ({uid} left or was removed)");
        }
        ApiEvent::GroupLeft { group, removed } if group == info.id => {
            let how = if removed {
                "an admin removed you"
            } else {
                "you left"
            };
            println!("  ({how}: no more messages here)");
        }
        _ => {}
    }
}
