//! `rhizo demo`: a self-contained local network on 127.0.0.1 — a hub node and two users, alice
//! and bob, each a real `rhizo run` process with a temporary data dir — in which alice and bob
//! add each other by ticket and exchange end-to-end encrypted messages.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use rhizo_node::{
    Config, ConfigLayer,
    api::{
        AddContactRequest, AddContactResponse, InviteResponse, PostMessageRequest, StatsResponse,
    },
    messaging::MessageView,
};
use tokio::process::{Child, Command};

use crate::api_client::ApiClient;

/// How long any one demo step may take before the demo gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

struct DemoNode {
    name: &'static str,
    dir: PathBuf,
    child: Child,
}

impl DemoNode {
    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::resolve([ConfigLayer {
            data_dir: Some(self.dir.clone()),
            ..Default::default()
        }])?)
    }

    async fn api(&self) -> anyhow::Result<ApiClient> {
        let config = self.config()?;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let Ok(api) = ApiClient::connect(&config)
                && api.is_up().await
            {
                return Ok(api);
            }
            if Instant::now() > deadline {
                bail!("node {} did not start", self.name);
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

async fn start(
    exe: &Path,
    root: &Path,
    name: &'static str,
    bootstrap: Option<&str>,
) -> anyhow::Result<DemoNode> {
    let dir = root.join(name);
    let status = Command::new(exe)
        .arg("--data-dir")
        .arg(&dir)
        .args(["-q", "init", "--name", name])
        .stdout(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        bail!("rhizo init failed for {name}");
    }
    let mut cmd = Command::new(exe);
    cmd.arg("--data-dir")
        .arg(&dir)
        .args([
            "-q",
            "run",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(addr) = bootstrap {
        cmd.args(["--bootstrap", addr]);
    }
    let child = cmd.spawn().context("cannot start a demo node")?;
    Ok(DemoNode { name, dir, child })
}

async fn wait_delivered(api: &ApiClient, contact: &str, id: i64) -> anyhow::Result<MessageView> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let list: Vec<MessageView> = api
            .get(&format!("/v1/conversations/{contact}/messages"))
            .await?;
        if let Some(m) = list.into_iter().find(|m| m.id == id)
            && (m.state == "delivered" || m.state == "read")
        {
            return Ok(m);
        }
        if Instant::now() > deadline {
            bail!("message {id} was not delivered within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn send_when_ready(api: &ApiClient, to: &str, text: &str) -> anyhow::Result<MessageView> {
    // The first message needs the contact's KeyPackages in the DHT, published shortly after
    // their node starts: retry for a bounded time.
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        match api
            .post::<MessageView>(
                "/v1/message",
                &PostMessageRequest {
                    to: to.into(),
                    text: text.into(),
                },
            )
            .await
        {
            Ok(m) => return Ok(m),
            Err(e) if Instant::now() < deadline && e.to_string().contains("KeyPackages") => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

pub(crate) async fn run(keep: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the rhizo binary")?;
    let tmp = tempfile::Builder::new().prefix("rhizo-demo-").tempdir()?;
    println!(
        "rhizo demo: a local network on 127.0.0.1 (data in {})",
        tmp.path().display()
    );

    let mut hub = start(&exe, tmp.path(), "hub", None).await?;
    let hub_api = hub.api().await?;
    let stats: StatsResponse = hub_api.get("/v1/stats").await?;
    let hub_addr = format!("{}/p2p/{}", stats.listen_addrs[0], stats.peer_id);
    println!("1. hub node up at {hub_addr}");

    let mut alice = start(&exe, tmp.path(), "alice", Some(&hub_addr)).await?;
    let mut bob = start(&exe, tmp.path(), "bob", Some(&hub_addr)).await?;
    let (alice_api, bob_api) = (alice.api().await?, bob.api().await?);
    let a: StatsResponse = alice_api.get("/v1/stats").await?;
    let b: StatsResponse = bob_api.get("/v1/stats").await?;
    println!(
        "2. alice (UID {}) and bob (UID {}) joined through the hub",
        a.uid, b.uid
    );

    let alice_ticket: InviteResponse = alice_api.get("/v1/invite").await?;
    let bob_ticket: InviteResponse = bob_api.get("/v1/invite").await?;
    println!(
        "3. alice's ticket: {}…",
        &alice_ticket.ticket[..40.min(alice_ticket.ticket.len())]
    );
    let added: AddContactResponse = bob_api
        .post(
            "/v1/contacts",
            &AddContactRequest {
                ticket: Some(alice_ticket.ticket),
                uid: None,
                name: Some("alice".into()),
            },
        )
        .await?;
    let _: AddContactResponse = alice_api
        .post(
            "/v1/contacts",
            &AddContactRequest {
                ticket: Some(bob_ticket.ticket),
                uid: None,
                name: Some("bob".into()),
            },
        )
        .await?;
    println!(
        "4. they added each other; safety number: {}",
        added.contact.safety_number
    );

    let m = send_when_ready(
        &alice_api,
        "bob",
        "Hello Bob! This is end-to-end encrypted with MLS (X-Wing).",
    )
    .await?;
    println!("5. alice → bob: message {} {}", m.id, m.state);
    let m = wait_delivered(&alice_api, "bob", m.id).await?;
    println!("   state on alice's side: {}", m.state);
    let inbox: Vec<MessageView> = bob_api.get("/v1/conversations/alice/messages").await?;
    for m in &inbox {
        println!("   bob reads: \"{}\"", m.text.as_deref().unwrap_or(""));
    }
    let reply =
        send_when_ready(&bob_api, "alice", "Hi Alice, received. No server saw this.").await?;
    let reply = wait_delivered(&bob_api, "alice", reply.id).await?;
    println!("6. bob → alice: message {} {}", reply.id, reply.state);
    let inbox: Vec<MessageView> = alice_api.get("/v1/conversations/bob/messages").await?;
    for m in inbox.iter().filter(|m| m.direction == "in") {
        println!("   alice reads: \"{}\"", m.text.as_deref().unwrap_or(""));
    }
    println!("Done: two identities, one hub, messages delivered end to end.");
    if keep {
        println!(
            "The nodes keep running until Ctrl-C. Try:\n  rhizo --data-dir {} messages bob\n  rhizo --data-dir {} chat alice",
            alice.dir.display(),
            bob.dir.display()
        );
        let _ = tokio::signal::ctrl_c().await;
    }
    for node in [&mut alice, &mut bob, &mut hub] {
        let _ = node.child.start_kill();
        let _ = node.child.wait().await;
    }
    Ok(())
}
