//! `rhizo status`.

use rhizo_node::{Config, api::StatsResponse};

use crate::api_client::ApiClient;

pub(crate) async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let stats: StatsResponse = api.get("/v1/stats").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&stats)?);
        return Ok(());
    }
    let up = stats.uptime_secs;
    println!(
        "rhizo node running (v{}, up {}h {}m {}s)",
        stats.version,
        up / 3600,
        (up / 60) % 60,
        up % 60
    );
    println!("UID:        {}", stats.uid);
    if let Some(name) = &stats.name {
        println!("Name:       {name}");
    }
    println!("Device:     {}", stats.peer_id);
    for (i, addr) in stats.listen_addrs.iter().enumerate() {
        let label = if i == 0 { "Listening:" } else { "" };
        println!("{label:<11} {addr}");
    }
    println!(
        "Peers:      {} connected, {} in the routing table, {} in the peer book",
        stats.connected_peers, stats.routing_table_peers, stats.peer_book_peers
    );
    println!("mDNS:       {}", if stats.mdns { "on" } else { "off" });
    if let Some(r) = &stats.reachability {
        let how = match r.describe() {
            "public" => "public: others can dial this node directly".to_string(),
            "via relay" => format!(
                "via relay: behind NAT, reachable through {}",
                r.relayed_addrs
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ),
            "LAN only" => "LAN only: not reachable from outside; use --relay-via".to_string(),
            other => format!("{other} (AutoNAT has not decided yet)"),
        };
        println!("Reachable:  {how}");
        if r.relay_server {
            println!("Relay:      serving as a circuit relay for others");
        }
    }
    println!(
        "Limits:     {} connections refused so far",
        stats.net.connections_denied
    );
    Ok(())
}
