//! `rhizo pair [list|revoke]`: light clients paired with this node (issue 17).

use rhizo_node::api::{NewPairingRequest, NewPairingResponse};
use rhizo_node::pairing::PairedClientView;

use super::contacts::urlencode;
use crate::{
    api_client::ApiClient,
    cli::{PairArgs, PairCommand},
};

pub(crate) async fn run(config: &rhizo_node::Config, args: &PairArgs) -> anyhow::Result<()> {
    let api = ApiClient::connect(config)?;
    match &args.command {
        None => {
            let body = NewPairingRequest {
                name: args.name.clone(),
                url: args.url.clone(),
            };
            let ticket: NewPairingResponse = api.post("/v1/pairings", &body).await?;
            if !args.no_qr {
                println!("{}", ticket.qr);
            }
            println!("{}", ticket.ticket);
            println!();
            println!(
                "Give this ticket to the light client within 10 minutes; it pairs one client, once, \
                 and reaches this node at {}. Keep it secret until then.",
                ticket.url
            );
        }
        Some(PairCommand::List(json)) => {
            let clients: Vec<PairedClientView> = api.get("/v1/pairings").await?;
            if json.json {
                println!("{}", serde_json::to_string_pretty(&clients)?);
            } else if clients.is_empty() {
                println!("No light client is paired: `rhizo pair` prints a ticket for one.");
            }
            if !json.json {
                for c in &clients {
                    println!("{:<16} {}  paired at {}", c.name, c.id, c.paired_at);
                }
            }
        }
        Some(PairCommand::Revoke { client }) => {
            let path = format!("/v1/pairings/{}", urlencode(client));
            let revoked: PairedClientView = api.delete(&path).await?;
            println!(
                "Revoked {} ({}): it can no longer connect, and its session ends.",
                revoked.name, revoked.id
            );
        }
    }
    Ok(())
}
