//! `rhizo conversations …`, `rhizo messages delete …` and `rhizo contacts
//! rename|remove|block|unblock` (issue 20): managing contacts and conversations through the
//! local API.

use rhizo_node::{
    Config,
    api::{ConversationSettingsRequest, DroppedResponse, RenameContactRequest},
    messaging::{ContactView, ConversationView, DeletedView},
};

use super::contacts::urlencode;
use crate::{
    api_client::ApiClient,
    cli::{ContactsCommand, ConversationsArgs, ConversationsCommand, MessagesCommand},
};

pub(crate) async fn run(config: &Config, args: &ConversationsArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let Some(command) = &args.command else {
        return list(&api, args.archived, args.json).await;
    };
    let (conversation, muted, archived, done) = match command {
        ConversationsCommand::Delete { conversation } => {
            let path = format!("/v1/conversations/{}", urlencode(conversation));
            let answer: serde_json::Value = api.delete(&path).await?;
            let deleted = answer["deleted"].as_u64().unwrap_or(0);
            println!("Deleted {deleted} messages with {conversation} on this device.");
            return Ok(());
        }
        ConversationsCommand::Mute { conversation } => (conversation, Some(true), None, "muted"),
        ConversationsCommand::Unmute { conversation } => {
            (conversation, Some(false), None, "unmuted")
        }
        ConversationsCommand::Archive { conversation } => {
            (conversation, None, Some(true), "archived")
        }
        ConversationsCommand::Unarchive { conversation } => {
            (conversation, None, Some(false), "unarchived")
        }
    };
    let path = format!("/v1/conversations/{}", urlencode(conversation));
    let view: ConversationView = api
        .patch(&path, &ConversationSettingsRequest { muted, archived })
        .await?;
    println!("{} is {done}.", view.name);
    Ok(())
}

async fn list(api: &ApiClient, archived: bool, json: bool) -> anyhow::Result<()> {
    let list: Vec<ConversationView> = api
        .get(&format!("/v1/conversations?archived={archived}"))
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("No conversations yet (archived ones: `rhizo conversations --archived`).");
    }
    for c in &list {
        let flags: Vec<&str> = [
            (c.muted, "muted"),
            (c.archived, "archived"),
            (c.blocked, "blocked"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        let kind = if c.kind == "group" { "group" } else { "1:1" };
        let name = if c.kind == "group" {
            format!("{} ({})", c.name, c.id)
        } else {
            c.name.clone()
        };
        println!("{kind:<6} {name}  {}", flags.join(", "));
    }
    Ok(())
}

pub(crate) async fn messages_command(
    config: &Config,
    command: &MessagesCommand,
) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let MessagesCommand::Delete { id, for_everyone } = command;
    let path = format!("/v1/messages/{id}?for_everyone={for_everyone}");
    let deleted: DeletedView = api.delete(&path).await?;
    match deleted.conversation.filter(|_| deleted.for_everyone) {
        Some(conversation) => println!(
            "Deleted message {id}; asked the other devices in {conversation} to delete it too \
             (best effort: their nodes honour it, copies made before cannot be undone)."
        ),
        _ => println!("Deleted message {id} on this device."),
    }
    Ok(())
}

pub(crate) async fn contacts_command(
    api: &ApiClient,
    command: &ContactsCommand,
) -> anyhow::Result<()> {
    match command {
        ContactsCommand::Rename { name, new_name } => {
            let path = format!("/v1/contacts/{}", urlencode(name));
            let c: ContactView = api
                .patch(
                    &path,
                    &RenameContactRequest {
                        name: new_name.clone(),
                    },
                )
                .await?;
            println!("{name} is now called {}.", c.name);
        }
        ContactsCommand::Remove { name } => {
            let path = format!("/v1/contacts/{}", urlencode(name));
            let _: serde_json::Value = api.delete(&path).await?;
            println!(
                "Removed {name} and your 1:1 history with them; what they send later arrives \
                 as a message request."
            );
        }
        ContactsCommand::Block { name } => {
            let path = format!("/v1/contacts/{}/block", urlencode(name));
            let d: DroppedResponse = api.post(&path, &serde_json::json!({})).await?;
            println!(
                "Blocked {name}: nothing they send is shown or stored ({} held messages \
                 dropped). Undo with `rhizo contacts unblock {name}`.",
                d.dropped
            );
        }
        ContactsCommand::Unblock { name } => {
            let path = format!("/v1/contacts/{}/block", urlencode(name));
            let _: serde_json::Value = api.delete(&path).await?;
            println!("Unblocked {name}.");
        }
        _ => {}
    }
    Ok(())
}
