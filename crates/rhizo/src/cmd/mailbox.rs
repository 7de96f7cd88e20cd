//! `rhizo mailbox`: what this node holds for offline users, and what it still has to deliver.

use rhizo_node::{
    Config,
    messaging::{FetchReport, MailboxStatus},
};

use crate::{api_client::ApiClient, cli::MailboxArgs};

pub(crate) async fn run(config: &Config, args: &MailboxArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let fetched: Option<FetchReport> = if args.fetch {
        Some(
            api.post("/v1/mailbox/fetch", &serde_json::json!({}))
                .await?,
        )
    } else {
        None
    };
    let status: MailboxStatus = api.get("/v1/mailbox").await?;
    if args.json {
        let out =
            serde_json::json!({ "fetched": fetched, "held": status.held, "queued": status.queued });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if let Some(f) = fetched {
        println!(
            "fetched: {} new from {} replicas ({} envelopes, {} deleted from replicas)",
            f.new, f.replicas, f.fetched, f.deleted
        );
        if f.refused > 0 {
            println!(
                "refused by {} replicas: this device is not in the newest device list they saw \
                 (revoked?); run `rhizo device list` on the device with the root key",
                f.refused
            );
        }
    }
    let held = &status.held;
    match held.oldest {
        Some(oldest) if held.count > 0 => println!(
            "held for others: {} envelopes, {} bytes, for {} users, oldest stored {}",
            held.count,
            held.bytes,
            held.recipients,
            age(oldest)
        ),
        _ => println!("held for others: nothing"),
    }
    if status.queued.is_empty() {
        println!("queued for contacts: nothing");
    } else {
        println!("queued for contacts:");
        for q in &status.queued {
            let state = match (q.state.as_str(), q.replicas) {
                ("stored", Some(n)) => format!("stored on {n}+ replicas"),
                (s, _) => s.to_string(),
            };
            println!(
                "  {:<16} {:>5} {state} (oldest {})",
                q.contact,
                q.count,
                age(q.oldest)
            );
        }
    }
    Ok(())
}

fn age(at_ms: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let secs = ((now - at_ms) / 1000).max(0);
    match secs {
        s if s < 120 => format!("{s} s ago"),
        s if s < 7200 => format!("{} min ago", s / 60),
        s if s < 172_800 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}
