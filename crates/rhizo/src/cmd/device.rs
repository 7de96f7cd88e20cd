//! `rhizo device link|add|list|revoke`: this identity's devices.

use rhizo_core::link::LinkTicket;
use rhizo_node::{
    Config,
    devices::{AddDeviceRequest, DeviceView, LinkTicketView, device_fingerprint},
};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use rhizo_node::events::ApiEvent;

use super::contacts::urlencode;
use crate::{
    api_client::{ApiClient, EventStream, StreamItem},
    cli::DeviceCommand,
};

/// How long `device add --wait` waits for the history transfer to move before giving up.
const HISTORY_STALL: std::time::Duration = std::time::Duration::from_secs(360);

pub(crate) async fn run(config: &Config, command: &DeviceCommand) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match command {
        DeviceCommand::Link { no_qr } => {
            let ticket: LinkTicketView = api
                .post("/v1/devices/link-ticket", &serde_json::json!({}))
                .await?;
            if !no_qr {
                println!("{}", ticket.qr);
            }
            println!("{}", ticket.ticket);
            println!();
            println!("This device's fingerprint: {}", ticket.fingerprint);
            println!(
                "On your device with the root key, run `rhizo device add TICKET` within 10 minutes \
                 and check that it shows the same fingerprint."
            );
        }
        DeviceCommand::Add {
            ticket,
            yes,
            name,
            history_days,
            wait,
        } => {
            // Subscribe first, so no progress between the link and the subscription is missed.
            let events = if *wait {
                Some(api.events("").await?)
            } else {
                None
            };
            add(&api, ticket, *yes, name.clone(), *history_days).await?;
            if let Some(events) = events {
                follow_history(events).await?;
            }
        }
        DeviceCommand::List(args) => {
            let devices: Vec<DeviceView> = api.get("/v1/devices").await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&devices)?);
                return Ok(());
            }
            for d in &devices {
                print_device(d);
            }
        }
        DeviceCommand::Revoke { device } => {
            let path = format!("/v1/devices/{}", urlencode(device));
            let revoked: DeviceView = api.delete(&path).await?;
            println!(
                "Revoked {} ({}): a new device list without it is published.",
                revoked.name.as_deref().unwrap_or("device"),
                revoked.fingerprint
            );
            println!("Its conversations are not yet closed to it: that comes with the next slice.");
        }
    }
    Ok(())
}

async fn add(
    api: &ApiClient,
    text: &str,
    yes: bool,
    name: Option<String>,
    history_days: Option<u32>,
) -> anyhow::Result<()> {
    let ticket: LinkTicket = text.parse()?;
    let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    ticket.check_fresh(now)?;
    println!(
        "New device fingerprint: {}",
        device_fingerprint(&ticket.device_pk())
    );
    if !yes {
        eprint!("Does the new device show the same fingerprint? Link it? [y/N] ");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        if !matches!(line.trim(), "y" | "Y" | "yes") {
            println!("Not linked.");
            return Ok(());
        }
    }
    let body = AddDeviceRequest {
        ticket: text.trim().to_owned(),
        name,
        history_days,
    };
    let device: DeviceView = api.post("/v1/devices", &body).await?;
    println!("Linked device {} ({}).", device.id, device.fingerprint);
    println!("It now has this identity's UID; `rhizo device list` shows it.");
    println!("It joins our sync group and gets our recent history in the background.");
    Ok(())
}

/// Follows `device_sync_progress` events with a progress bar until our history transfer ends
/// (or nothing moves for [`HISTORY_STALL`]).
async fn follow_history(mut events: EventStream) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("history {bar:40} {pos}/{len} messages")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    loop {
        match tokio::time::timeout(HISTORY_STALL, events.next()).await {
            Ok(Ok(Some(StreamItem::Event(event)))) => {
                if let ApiEvent::DeviceSyncProgress {
                    sending: true,
                    done,
                    total,
                    finished,
                } = *event
                {
                    bar.set_length(total);
                    bar.set_position(done);
                    if finished {
                        bar.finish();
                        println!("History sent.");
                        return Ok(());
                    }
                }
            }
            Ok(Ok(Some(StreamItem::Lagged))) => {}
            Ok(Ok(None)) => bail!("the node closed the event stream"),
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                bar.abandon();
                bail!(
                    "the history transfer did not move for {} s; it goes on in the background \
                     (the new device may be offline)",
                    HISTORY_STALL.as_secs()
                );
            }
        }
    }
}

fn print_device(d: &DeviceView) {
    let name = d
        .name
        .as_deref()
        .unwrap_or(if d.this_device { "(this device)" } else { "-" });
    let last_seen = match (d.this_device, d.last_seen) {
        (true, _) => "now".to_owned(),
        (false, Some(at)) => format!("last seen {}", ago(at)),
        (false, None) => "never seen".to_owned(),
    };
    println!(
        "{name:<16} {}  added {}  {last_seen}\n                 {}",
        d.fingerprint,
        ago(i64::try_from(d.added_at).unwrap_or(0)),
        d.id
    );
}

/// How long ago `at` (Unix seconds) was, roughly: `40s ago`, `3m ago`, `2h ago`, `5d ago`.
fn ago(at: i64) -> String {
    let secs = rhizo_node::unix_now().saturating_sub(at).max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}
