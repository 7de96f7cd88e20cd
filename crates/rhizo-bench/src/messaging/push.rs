//! PUSH (issue 20): how soon a message stored on mailbox replicas shows at a recipient that
//! is online but not reachable from the sender, now that replicas push instead of waiting for
//! the recipient's poll.
//!
//! ```text
//!  hub, r1, r2 (mailbox replicas) ── alice ──✗ bob (bob bans alice: no direct connection)
//!  POST alice /v1/message ─▶ direct attempt refused ─▶ StoreRequest on the replicas
//!     ─▶ a replica's Notify ─▶ bob fetches from it ─▶ bob's message_received event
//! ```
//!
//! Five in-process nodes on 127.0.0.1; alice and bob poll their mailboxes every 600 s, so a
//! message that shows sooner came through a push. Each round is timed from the POST at alice
//! to bob's `message_received` event: the store on the replicas plus the push and the fetch,
//! an upper bound of "stored → shown" (the POST, alice's refused dial and her store are in it).

use std::time::Instant;

use rhizo_node::ConfigLayer;
use serde::Serialize;

use super::{Disk, Events, Node, befriend};
use crate::report::{Row, Target};
use crate::{Summary, ms};

/// Timed messages (full run).
const ROUNDS: usize = 30;
/// Timed messages (`--quick`).
const QUICK_ROUNDS: usize = 5;
/// The recipients' mailbox poll interval in this benchmark: no message may wait for it.
const LONG_POLL_SECS: u64 = 600;
/// The default poll interval (`mailbox_poll_secs`): what a message waited for, up to, before
/// push.
const DEFAULT_POLL_MS: f64 = 60_000.0;

/// What PUSH measured.
#[derive(Debug, Clone, Serialize)]
pub struct PushFigures {
    /// POST at the sender → shown at the recipient, through the replicas (ms).
    pub latency_ms: Summary,
}

impl PushFigures {
    /// The report's rows.
    pub fn rows(&self) -> Vec<Row> {
        vec![
            Row::new(
                "PUSH",
                "send → shown through mailbox replicas p50 (recipient online, unreachable)",
                self.latency_ms.p50,
                "ms",
            )
            .reference("default mailbox poll interval", DEFAULT_POLL_MS)
            .target(Target::value_at_most(2_000.0))
            .note(
                "5 in-process nodes on 127.0.0.1 (3 replicas); the recipient bans the sender and \
                 polls every 600 s; timed from the POST to the recipient's message_received event",
            ),
            Row::new(
                "PUSH",
                "send → shown through mailbox replicas p99",
                self.latency_ms.p99,
                "ms",
            ),
        ]
    }
}

/// Runs PUSH.
///
/// # Errors
///
/// If a node does not start, the contacts cannot be added, or a message does not show in time.
pub async fn run_push(quick: bool) -> anyhow::Result<PushFigures> {
    let rounds = if quick { QUICK_ROUNDS } else { ROUNDS };
    let hub = Node::start("hub", None, Disk::Tmp).await?;
    let r1 = Node::start("r1", Some(&hub.listen), Disk::Tmp).await?;
    let r2 = Node::start("r2", Some(&hub.listen), Disk::Tmp).await?;
    let long_poll = || ConfigLayer {
        mailbox_poll_secs: Some(LONG_POLL_SECS),
        ..ConfigLayer::default()
    };
    let mut alice = Node::start_with("alice", Some(&hub.listen), Disk::Tmp, long_poll()).await?;
    let mut bob = Node::start_with("bob", Some(&hub.listen), Disk::Tmp, long_poll()).await?;
    alice.wait_connected().await?;
    bob.wait_connected().await?;
    befriend(&alice.api, "alice", &bob.api, "bob").await?;
    let _: serde_json::Value = bob
        .api
        .post(
            "/v1/bans",
            &serde_json::json!({"target": alice.peer_id.to_string(), "reason": "PUSH benchmark"}),
        )
        .await?;
    let mut events = Events::open(&bob.api).await?;
    // The conversation (its Welcome) goes through the replicas too.
    alice.api.send_when_ready("bob", "warm-up").await?;
    events.wait_received("warm-up").await?;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let text = format!("pushed #{i}");
        let start = Instant::now();
        alice.api.send("bob", &text).await?;
        let shown = events.wait_received(&text).await?;
        samples.push(ms(shown - start));
    }
    drop(events);
    for node in [alice, bob, r2, r1, hub] {
        node.shutdown().await;
    }
    Ok(PushFigures {
        latency_ms: Summary::of(&samples),
    })
}
