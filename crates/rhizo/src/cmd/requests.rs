//! `rhizo requests …`: messages from people who are not contacts.

use rhizo_node::{
    Config,
    api::{AcceptRequestBody, AcceptRequestResponse, DroppedResponse},
    messaging::RequestView,
};
use serde_json::Value;

use crate::{
    api_client::ApiClient,
    cli::{RequestsArgs, RequestsCommand},
    cmd::{chat::time_of, contacts::urlencode},
};

pub(crate) async fn run(config: &Config, args: &RequestsArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match &args.command {
        None => list(&api, "/v1/requests", args.json).await,
        Some(RequestsCommand::Blocked(json)) => list(&api, "/v1/blocked", json.json).await,
        Some(RequestsCommand::Accept { who, name }) => {
            let answer: AcceptRequestResponse = api
                .post(
                    &format!("/v1/requests/{}/accept", urlencode(who)),
                    &AcceptRequestBody { name: name.clone() },
                )
                .await?;
            let c = &answer.contact;
            println!(
                "Accepted: {} (UID {}) is now a contact; {} held message(s) applied.",
                c.name, c.uid, answer.applied
            );
            println!("Safety number: {}", c.safety_number);
            println!(
                "Compare it with {} (in person or by call), then run `rhizo contacts verify {}`.",
                c.name, c.name
            );
            Ok(())
        }
        Some(RequestsCommand::Decline { who }) => {
            let answer: DroppedResponse = api
                .post(
                    &format!("/v1/requests/{}/decline", urlencode(who)),
                    &Value::Null,
                )
                .await?;
            println!(
                "Declined {who}: {} held message(s) dropped.",
                answer.dropped
            );
            Ok(())
        }
        Some(RequestsCommand::Block { who }) => {
            let answer: DroppedResponse = api
                .post(
                    &format!("/v1/requests/{}/block", urlencode(who)),
                    &Value::Null,
                )
                .await?;
            println!(
                "Blocked {who}: {} held message(s) dropped; later messages are refused \
                 (`rhizo requests unblock UID` lifts it).",
                answer.dropped
            );
            Ok(())
        }
        Some(RequestsCommand::Unblock { uid }) => {
            let _: Value = api
                .delete(&format!("/v1/blocked/{}", urlencode(uid)))
                .await?;
            println!("Unblocked {uid}.");
            Ok(())
        }
    }
}

async fn list(api: &ApiClient, path: &str, json: bool) -> anyhow::Result<()> {
    let list: Vec<RequestView> = api.get(path).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.is_empty() {
        println!(
            "{}",
            if path.ends_with("blocked") {
                "Nobody is blocked."
            } else {
                "No message requests."
            }
        );
        return Ok(());
    }
    for r in &list {
        let name = r.name.as_deref().unwrap_or("(no public profile name)");
        println!("{name}  UID {}", r.uid);
        if r.blocked {
            continue;
        }
        println!(
            "  {} message(s), {} bytes; last at {} (UTC)",
            r.envelopes,
            r.bytes,
            time_of(r.last_at)
        );
        match &r.safety_number {
            Some(number) => println!("  safety number: {number}"),
            None => println!("  safety number: not known yet (their identity is being looked up)"),
        }
        if r.device_listed == Some(false) {
            println!("  warning: sent from a device their signed device list does not name");
        }
    }
    if !path.ends_with("blocked") {
        println!("Accept with `rhizo requests accept UID [--name NAME]`, or decline / block it.");
    }
    Ok(())
}
