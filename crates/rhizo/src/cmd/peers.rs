//! `rhizo peers`.

use rhizo_node::{Config, api::PeersResponse};

use crate::api_client::ApiClient;

pub(crate) async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    let peers: PeersResponse = api.get("/v1/peers").await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&peers)?);
        return Ok(());
    }
    if peers.peers.is_empty() {
        println!(
            "No peers yet ({} in the peer book). Give this node a --bootstrap address, or run \
             another node on the same network with mDNS on.",
            peers.peer_book_peers
        );
        return Ok(());
    }
    println!(
        "{:<54} {:>5} {:>4} {:>9}  ADDRESS",
        "PEER ID", "CONN", "DHT", "RTT"
    );
    for p in &peers.peers {
        let rtt = p
            .rtt_ms
            .map_or_else(|| "-".to_string(), |r| format!("{r:.1}ms"));
        println!(
            "{:<54} {:>5} {:>4} {:>9}  {}",
            p.peer_id,
            p.connections,
            if p.in_routing_table { "yes" } else { "no" },
            rtt,
            p.addrs.first().map_or("-", String::as_str)
        );
    }
    println!(
        "{} peers; {} in the peer book",
        peers.peers.len(),
        peers.peer_book_peers
    );
    Ok(())
}
