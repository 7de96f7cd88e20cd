//! `rhizo send`, `rhizo messages`, `rhizo chat`.

use anyhow::Context;
use rhizo_node::{
    Config,
    api::{PostMessageRequest, TextBody},
    events::ApiEvent,
    messaging::MessageView,
};
use tokio::io::AsyncBufReadExt;

use crate::{
    api_client::{ApiClient, StreamItem},
    cli::{ChatArgs, MessagesArgs, SendArgs},
    cmd::{contacts::urlencode, group},
};

/// `rhizo send`: to a contact; to a group with `--group`, or when no contact has the name.
pub(crate) async fn send(config: &Config, args: &SendArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    if let Some(path) = &args.file {
        let caption = args.caption.as_ref().or(args.text.as_ref());
        let api = api.waiting(super::files::FILE_API_TIMEOUT)?;
        return super::files::send(&api, &args.contact, path, caption, args.json).await;
    }
    let text = args.text.clone().unwrap_or_default();
    if args.group {
        return group::send(&api, &args.contact, &text, args.json).await;
    }
    let sent = api
        .post(
            "/v1/message",
            &PostMessageRequest {
                to: args.contact.clone(),
                text: text.clone(),
            },
        )
        .await;
    let m: MessageView = match sent {
        Err(e) if group::no_such_contact(&e) && group::exists(&api, &args.contact).await => {
            return group::send(&api, &args.contact, &text, args.json).await;
        }
        sent => sent?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!(
            "message {} to {}: {}",
            m.id,
            args.contact,
            describe_state(&m)
        );
    }
    Ok(())
}

pub(crate) fn time_of(ms: i64) -> String {
    let secs = ms / 1000;
    format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}

/// The state as a person reads it: `stored on 5 replicas` rather than `stored`.
pub(crate) fn describe_state(m: &MessageView) -> String {
    match (m.state.as_str(), m.replicas) {
        ("stored", Some(1)) => "stored on 1 replica".into(),
        ("stored", Some(n)) => format!("stored on {n} replicas"),
        // Only a message request the recipient's node holds is `sent` for long.
        ("sent", _) => "sent (held by their node until they accept)".into(),
        (state, _) => state.to_string(),
    }
}

fn print_message(contact: &str, m: &MessageView) {
    let who = if m.direction == "out" { "me" } else { contact };
    let state = if m.direction == "out" {
        format!(" [{}]", describe_state(m))
    } else {
        String::new()
    };
    let file = m.file.as_ref().map(|f| {
        let state = match f.state.as_str() {
            "downloading" => format!("downloading {} %", f.percent),
            other => other.to_string(),
        };
        format!(
            "[file {} ({}, {}), {state}; `rhizo files get {}`] ",
            f.name,
            super::files::human_size(f.size),
            f.mime,
            m.id
        )
    });
    println!(
        "{} {who}: {}{}{state}",
        time_of(m.sent_at),
        file.unwrap_or_default(),
        m.text.as_deref().unwrap_or("")
    );
}

pub(crate) async fn messages(config: &Config, args: &MessagesArgs) -> anyhow::Result<()> {
    if let Some(command) = &args.command {
        return super::conversations::messages_command(config, command).await;
    }
    let contact = args.contact.as_deref().unwrap_or_default();
    let api = ApiClient::connect(config)?;
    // Showing messages to a person marks them read (and tells the sender); `--json` output is
    // for scripts and does not, unless asked with --mark-read.
    let mark_read = !args.json || args.mark_read;
    let on_group = |api| group::messages(api, contact, args.limit, args.json, mark_read);
    if args.group {
        return on_group(&api).await;
    }
    let path = format!(
        "/v1/conversations/{}/messages?limit={}&mark_read={mark_read}",
        urlencode(contact),
        args.limit
    );
    let list: Vec<MessageView> = match api.get(&path).await {
        Err(e) if group::no_such_contact(&e) && group::exists(&api, contact).await => {
            return on_group(&api).await;
        }
        list => list?,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!("No messages with {} yet.", contact);
    }
    for m in &list {
        print_message(contact, m);
    }
    Ok(())
}

pub(crate) async fn chat(config: &Config, args: &ChatArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let contact = args.contact.as_str();
    if args.group {
        return group::chat(&api, contact).await;
    }
    let path = format!(
        "/v1/conversations/{}/messages?limit=20&mark_read=true",
        urlencode(contact)
    );
    let recent: Vec<MessageView> = match api.get(&path).await {
        Err(e) if group::no_such_contact(&e) && group::exists(&api, contact).await => {
            return group::chat(&api, contact).await;
        }
        recent => recent?,
    };
    for m in &recent {
        print_message(contact, m);
    }
    println!("-- chatting with {contact}; type a line and Enter to send, Ctrl-D to leave --");
    let mut events = api.events("").await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let post_path = format!("/v1/conversations/{}/messages", urlencode(contact));
    loop {
        tokio::select! {
            line = stdin.next_line() => {
                let Some(line) = line.context("reading stdin")? else { break };
                let text = line.trim();
                if text.is_empty() { continue; }
                match api.post::<MessageView>(&post_path, &TextBody { text: text.to_string() }).await {
                    Ok(m) => println!("  (message {} {})", m.id, m.state),
                    Err(e) => eprintln!("error: {e:#}"),
                }
            }
            next = events.next() => {
                let Some(item) = next? else {
                    anyhow::bail!("the node closed the event stream");
                };
                let StreamItem::Event(event) = item else { continue };
                match *event {
                    ApiEvent::MessageReceived { contact: from, text, sent_at, .. } if from == contact => {
                        println!("{} {from}: {text}", time_of(sent_at));
                        // Shown on screen: read.
                        let _ = api.get::<Vec<MessageView>>(&format!(
                            "/v1/conversations/{}/messages?limit=1&mark_read=true",
                            urlencode(contact)
                        )).await;
                    }
                    ApiEvent::MessageState { id, contact: to, state } if to == contact => {
                        println!("  (message {id} {state})");
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}
