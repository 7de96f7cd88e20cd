//! `rhizo run`: the node in the foreground until Ctrl-C or SIGTERM.

use rhizo_node::{Config, node::NodeReport};

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let shutdown = async {
        super::shutdown_signal().await;
        eprintln!("shutting down…");
    };
    rhizo_node::run(config, shutdown, |report| match report {
        NodeReport::Ready {
            uid,
            peer_id,
            api_addr,
        } => {
            println!("rhizo node running");
            println!("UID:       {uid}");
            println!("Device:    {peer_id}");
            println!("Local API: http://{api_addr} (token in the data dir's api.token)");
        }
        NodeReport::Listening(addr) => println!("Listening: {addr}"),
        NodeReport::Linked { uid } => println!("Linked:    this device now belongs to UID {uid}"),
        NodeReport::PeerConnected(peer) => println!("Connected: {peer}"),
        NodeReport::BootstrapPartlyFailed(failed) => {
            for (addr, why) in failed {
                eprintln!("warning: bootstrap peer {addr} unreachable: {why}");
            }
        }
        _ => {}
    })
    .await?;
    Ok(())
}
