//! [`RawNode`]: a bare rhizo-net node inside the test process — no database, no record
//! validation and no rhizo node logic of its own — for the tests that play a peer the real
//! nodes must withstand (a flooder, a forger, a record publisher). Loopback only: it listens on
//! `127.0.0.1/tcp/0` and dials only what the test hands it.
//!
//! ```text
//!  test (tokio runtime) ──RawNode::start──▶ rhizo_net::start ─▶ event loop task
//!                                                           └─▶ its events, drained
//!  raw.client.put_record_to / send_message / get_records ──▶ the real nodes under test
//! ```

use std::time::Duration;

use rhizo_net::{Client, Keypair, Multiaddr, NetConfig, PeerId};
use tokio::task::JoinHandle;

/// How long [`RawNode::stop`] waits for the event loop to end after the shutdown.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A bare rhizo-net node running on the current tokio runtime.
#[derive(Debug)]
pub struct RawNode {
    /// Its network client.
    pub client: Client,
    /// Its PeerId.
    pub peer_id: PeerId,
    event_loop: JoinHandle<()>,
}

impl RawNode {
    /// Starts one with a fresh key; `agent` is its identify agent version (it names the test's
    /// role in the other nodes' logs), `bootstrap` the peers it joins the DHT through.
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// If rhizo-net does not start (e.g. no loopback port).
    pub fn start(agent: &str, bootstrap: Vec<Multiaddr>) -> anyhow::Result<Self> {
        Self::start_with(Keypair::generate_ed25519(), agent, bootstrap)
    }

    /// [`RawNode::start`] with `keypair` as its identity.
    ///
    /// # Errors
    ///
    /// If rhizo-net does not start.
    pub fn start_with(
        keypair: Keypair,
        agent: &str,
        bootstrap: Vec<Multiaddr>,
    ) -> anyhow::Result<Self> {
        let peer_id = keypair.public().to_peer_id();
        let (client, mut events, event_loop) = rhizo_net::start(NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            bootstrap,
            agent_version: agent.into(),
            ..NetConfig::new(keypair)
        })?;
        let event_loop = tokio::spawn(event_loop.run());
        // Nobody reads its events: drained, so the event loop never waits on them.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(Self {
            client,
            peer_id,
            event_loop,
        })
    }

    /// Shuts it down and waits (at most 10 s) for its event loop to end.
    pub async fn stop(self) {
        let _ = self.client.shutdown().await;
        let _ = tokio::time::timeout(STOP_WAIT, self.event_loop).await;
    }
}
