//! `rhizo ban`, `rhizo unban`, `rhizo bans`.

use rhizo_node::{Config, api::BanRequest, peer_policy::BanView};
use serde_json::Value;

use crate::{api_client::ApiClient, cli::BanArgs, cmd::contacts::urlencode};

pub(crate) async fn ban(config: &Config, args: &BanArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let b: BanView = api
        .post(
            "/v1/bans",
            &BanRequest {
                target: args.target.clone(),
                seconds: args.seconds,
                reason: args.reason.clone(),
            },
        )
        .await?;
    match args.seconds {
        Some(s) => println!("banned {} ({}) for {s} s", b.target, b.kind),
        None => println!(
            "banned {} ({}) until `rhizo unban {}`",
            b.target, b.kind, b.target
        ),
    }
    Ok(())
}

pub(crate) async fn unban(config: &Config, target: &str) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let _: Value = api
        .delete(&format!("/v1/bans/{}", urlencode(target)))
        .await?;
    println!("unbanned {target}");
    Ok(())
}

pub(crate) async fn list(config: &Config, json: bool) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let bans: Vec<BanView> = api.get("/v1/bans").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&bans)?);
        return Ok(());
    }
    if bans.is_empty() {
        println!("no bans");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    for b in bans {
        let until = match b.until {
            Some(u) => format!("{} s left", ((u - now) / 1000).max(0)),
            None => "until unbanned".into(),
        };
        println!("{:<5} {:<54} {until:<16} {}", b.kind, b.target, b.reason);
    }
    Ok(())
}
