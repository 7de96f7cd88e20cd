//! `rhizo invite` and `rhizo contacts …`.

use rhizo_node::{
    Config,
    api::{AddContactRequest, AddContactResponse, ContactWithPresence, InviteResponse},
    messaging::ContactView,
    presence::{ContactPresence, PresenceState},
};

use crate::{
    api_client::ApiClient,
    cli::{ContactsCommand, InviteArgs},
};

pub(crate) async fn invite(config: &Config, args: &InviteArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let invite: InviteResponse = api.get("/v1/invite").await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&invite)?);
        return Ok(());
    }
    if args.qr {
        println!("{}", invite.qr);
    }
    println!("{}", invite.ticket);
    eprintln!("Give this ticket to your contact: they run `rhizo contacts add <ticket>`.");
    Ok(())
}

/// How `rhizo contacts` shows a contact's presence.
fn presence_line(presence: &ContactPresence) -> String {
    let ago = |t: i64| {
        let secs = (rhizo_node::unix_now() - t).max(0);
        match secs {
            0..60 => format!("{secs} s ago"),
            60..3600 => format!("{} min ago", secs / 60),
            3600..86400 => format!("{} h ago", secs / 3600),
            _ => format!("{} days ago", secs / 86400),
        }
    };
    match (presence.state, presence.last_seen) {
        (PresenceState::Online, _) => "online".into(),
        (PresenceState::Hidden, _) => "presence hidden".into(),
        (PresenceState::Offline, Some(t)) => format!("offline, last seen {}", ago(t)),
        (PresenceState::Offline, None) => "offline".into(),
    }
}

pub(crate) async fn run(config: &Config, command: &ContactsCommand) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match command {
        ContactsCommand::Add { ticket, name } => {
            let response: AddContactResponse = api
                .post(
                    "/v1/contacts",
                    &if ticket
                        .trim()
                        .to_ascii_lowercase()
                        .starts_with("rhz1contact")
                    {
                        AddContactRequest {
                            ticket: Some(ticket.clone()),
                            uid: None,
                            name: name.clone(),
                        }
                    } else {
                        AddContactRequest {
                            ticket: None,
                            uid: Some(ticket.clone()),
                            name: name.clone(),
                        }
                    },
                )
                .await?;
            let c = &response.contact;
            if response.added {
                println!("Added contact {} (UID {})", c.name, c.uid);
            } else {
                println!("Updated contact {} (UID {})", c.name, c.uid);
            }
            println!("Safety number: {}", c.safety_number);
            println!(
                "Compare it with {} (in person or by call), then run `rhizo contacts verify {}`.",
                c.name, c.name
            );
        }
        ContactsCommand::List(args) => {
            let list: Vec<ContactWithPresence> = api.get("/v1/contacts").await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if list.is_empty() {
                println!(
                    "No contacts yet: `rhizo invite` prints your ticket; `rhizo contacts add TICKET` adds someone."
                );
            }
            for ContactWithPresence {
                contact: c,
                presence,
            } in &list
            {
                let mark = if c.verified {
                    "verified"
                } else {
                    "not verified"
                };
                let changed = if c.key_changed {
                    "  ! keys changed: `rhizo contacts verify` again"
                } else {
                    ""
                };
                println!(
                    "{:<20} {}  ({mark})  {}{changed}",
                    c.name,
                    c.uid,
                    presence_line(presence)
                );
            }
        }
        ContactsCommand::Rename { .. }
        | ContactsCommand::Remove { .. }
        | ContactsCommand::Block { .. }
        | ContactsCommand::Unblock { .. } => {
            super::conversations::contacts_command(&api, command).await?;
        }
        ContactsCommand::Verify { name, yes } => {
            let list: Vec<ContactView> = api.get("/v1/contacts").await?;
            let c = list
                .iter()
                .find(|c| &c.name == name)
                .ok_or_else(|| anyhow::anyhow!("no contact '{name}': see `rhizo contacts list`"))?;
            println!(
                "Safety number with {}:\n\n    {}\n",
                c.name, c.safety_number
            );
            println!("Their fingerprint: {}", c.fingerprint);
            if !yes {
                eprint!("Does {} see the same number? [y/N] ", c.name);
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                if !matches!(line.trim(), "y" | "Y" | "yes") {
                    println!("Not marked verified.");
                    return Ok(());
                }
            }
            let path = format!("/v1/contacts/{}/verify", urlencode(name));
            let c: ContactView = api.post(&path, &serde_json::json!({})).await?;
            println!("{} is now verified.", c.name);
        }
    }
    Ok(())
}

/// Percent-encodes a path segment.
pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
