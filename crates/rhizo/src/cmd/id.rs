//! `rhizo id`.

use rhizo_node::{
    Config, DataDir, api::StatsResponse, data_dir::DeviceIdentity, node::META_DISPLAY_NAME,
};
use serde::Serialize;

use crate::api_client::ApiClient;

#[derive(Serialize)]
struct IdOutput {
    /// `None` on a device waiting to be linked.
    uid: Option<String>,
    fingerprint: Option<String>,
    /// `primary` (holds the root key), `linked` or `pending-link`.
    role: &'static str,
    name: Option<String>,
    peer_id: String,
    root_public_key: Option<String>,
    device_public_key: String,
    running: bool,
    listen_addrs: Vec<String>,
}

pub(crate) async fn run(config: &Config, json: bool) -> anyhow::Result<()> {
    let dir = DataDir::new(config.data_dir.clone()).unlocked()?;
    let identity = dir.load_device()?;
    let name = dir
        .open_store()
        .ok()
        .and_then(|s| s.read().get_meta(META_DISPLAY_NAME).ok().flatten());
    let peer_id = identity.peer_id();
    // Ask the running node for its bound addresses; otherwise show the configured ones.
    let running = match ApiClient::connect(config) {
        Ok(api) if api.is_up().await => api.get::<StatsResponse>("/v1/stats").await.ok(),
        _ => None,
    };
    let (is_running, listen_addrs) = match &running {
        Some(stats) => (true, stats.listen_addrs.clone()),
        None => (
            false,
            config.listen.iter().map(ToString::to_string).collect(),
        ),
    };
    let listen_addrs: Vec<String> = listen_addrs
        .into_iter()
        .map(|a| {
            // 0.0.0.0 is where a stopped node would listen, not an address to give others.
            if a.contains("/p2p/") || a.starts_with("/ip4/0.0.0.0/") || a.starts_with("/ip6/::/") {
                a
            } else {
                format!("{a}/p2p/{peer_id}")
            }
        })
        .collect();
    let out = IdOutput {
        uid: identity.uid().map(|u| u.to_string()),
        fingerprint: identity.root_public().map(|r| r.fingerprint().to_string()),
        role: match identity {
            DeviceIdentity::Primary(_) => "primary",
            DeviceIdentity::Companion(_) => "linked",
            DeviceIdentity::PendingLink(_) => "pending-link",
        },
        name,
        peer_id: peer_id.to_string(),
        root_public_key: identity.root_public().map(|r| r.to_string()),
        device_public_key: identity.device().public().to_string(),
        running: is_running,
        listen_addrs,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    match (&out.uid, &out.fingerprint) {
        (Some(uid), Some(fingerprint)) => {
            println!("UID:         {uid}");
            println!("Fingerprint: {fingerprint}");
        }
        _ => println!("UID:         (none yet: this device is waiting to be linked)"),
    }
    if out.role != "primary" {
        println!("Role:        {} (no root key on this device)", out.role);
    }
    if let Some(name) = &out.name {
        println!("Name:        {name}");
    }
    println!("Device:      {}", out.peer_id);
    if out.running {
        println!("Listening:");
    } else {
        println!("Listening:   (node not running; configured addresses)");
    }
    for addr in &out.listen_addrs {
        println!("  {addr}");
    }
    Ok(())
}
