//! Agent liveness on the node's clock: heartbeat rounds (a node that is an agent sends one to
//! each agent it works with, sealed by the engine and sent once, result ignored except to note
//! that the peer reads our conversation), and the liveness ticker that turns time passing into
//! `agent_liveness` events.
//!
//! ```text
//!  every heartbeat_secs ─▶ targets (≤ 64) ─▶ Db::write: seal_heartbeat ─▶ send once per device
//!     and every max(heartbeat_secs, 10) ─▶ seal_group_heartbeats (≤ 32 groups) ─▶ send once
//!     to every other member device
//!  next_liveness_deadline / a heartbeat arrived ─▶ liveness_changes(now) ─▶ agent_liveness
//! ```

use futures::StreamExt as _;
use rhizo_core::{Uid, agent::TaskState};
use rhizo_engine::{
    EngineError,
    agents::{
        group::{GroupEphemeral, MIN_GROUP_HEARTBEAT_SECS},
        heartbeat::{Ephemeral, Load},
    },
    outbox::Target,
};
use rhizo_store::agents::TaskQuery;
use tracing::{debug, warn};

use super::{JobError, Messaging, RESPONSE_RECEIPT};

/// Heartbeats sent per round at most.
pub const MAX_HEARTBEATS_PER_ROUND: usize = 64;
/// Heartbeats sent at once (each may wait for a dial timeout).
const HEARTBEATS_IN_FLIGHT: usize = 8;
/// The liveness ticker's longest sleep (a heartbeat that arrives wakes it sooner).
const LIVENESS_IDLE_MS: i64 = 60_000;

/// What the heartbeat loop needs from the `[agent]` config.
#[derive(Debug, Clone, Copy)]
pub struct HeartbeatSettings {
    /// Seconds between rounds (also announced to the receivers).
    pub interval_secs: u64,
    /// Send heartbeats even without an agent card (a card turns them on).
    pub enabled: bool,
}

impl Messaging {
    /// Runs heartbeat rounds (when this node is an agent) and the liveness ticker until `stop`
    /// fires.
    pub async fn run_agent_liveness(
        self,
        settings: HeartbeatSettings,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let interval_ms = i64::try_from(settings.interval_secs.max(1) * 1000).unwrap_or(i64::MAX);
        let group_interval_ms =
            i64::try_from(group_interval_secs(settings) * 1000).unwrap_or(i64::MAX);
        let mut next_round = self.now();
        let mut next_group_round = next_round;
        loop {
            let now = self.now();
            let changes = self.inner.engine.liveness_changes(now);
            if !changes.is_empty() {
                // An agent gone unreachable may hold group tasks to give to another member.
                self.inner.agent_wake.notify_one();
            }
            self.emit_events(changes);
            // Whether we are an agent (a card, or `agent.enabled`) is asked once an interval.
            if now >= next_round {
                next_round = now.saturating_add(interval_ms);
                if self.is_agent(settings).await {
                    let groups_due = now >= next_group_round;
                    if groups_due {
                        next_group_round = now.saturating_add(group_interval_ms);
                    }
                    let round = tokio::select! {
                        r = self.heartbeat_round(settings, groups_due) => r,
                        _ = stop.changed() => return,
                    };
                    if let Err(e) = round {
                        warn!(error = %e, "heartbeat round failed");
                    }
                }
            }
            let now = self.now();
            let mut wake = now.saturating_add(LIVENESS_IDLE_MS);
            wake = wake.min(next_round);
            if let Some(t) = self.inner.engine.next_liveness_deadline(now) {
                wake = wake.min(t);
            }
            let wait = crate::clock::until(self.inner.clock.as_ref(), wake);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.liveness_wake.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Whether worker tasks are still queued (`submitted`): the wake command is restarted
    /// while they are.
    pub async fn worker_work_pending(&self) -> bool {
        self.worker_load()
            .await
            .is_ok_and(|(queued, _, _)| queued > 0)
    }

    /// Whether this node is an agent now: it has a card, or `agent.enabled` is set.
    async fn is_agent(&self, settings: HeartbeatSettings) -> bool {
        settings.enabled || self.has_agent_card().await
    }

    /// One round: a heartbeat to each agent we work with, and (`groups_due`) to each group we
    /// are in.
    async fn heartbeat_round(
        &self,
        settings: HeartbeatSettings,
        groups_due: bool,
    ) -> Result<(), JobError> {
        let targets = self.heartbeat_targets().await?;
        let interval_s = u32::try_from(settings.interval_secs).unwrap_or(u32::MAX);
        let (queued, working, capacity) = self.worker_load().await.unwrap_or_default();
        let load = Load {
            queued: u32::try_from(queued).unwrap_or(u32::MAX),
            working: u32::try_from(working).unwrap_or(u32::MAX),
            capacity,
        };
        debug!(targets = targets.len(), "heartbeat round");
        futures::stream::iter(targets)
            .for_each_concurrent(HEARTBEATS_IN_FLIGHT, |uid| async move {
                if let Err(e) = self.send_heartbeat(uid, load, interval_s).await {
                    debug!(error = %e, "heartbeat not sent");
                }
            })
            .await;
        if groups_due {
            let interval_s = u32::try_from(group_interval_secs(settings)).unwrap_or(u32::MAX);
            self.group_heartbeats(load, interval_s).await?;
        }
        Ok(())
    }

    /// Seals our heartbeat for each group we are in (committed first: sequence numbers are
    /// never reused) and sends each once to every other member device; answers are ignored.
    async fn group_heartbeats(&self, load: Load, interval_s: u32) -> Result<(), JobError> {
        let now = self.now();
        let this = self.clone();
        let sealed: Vec<GroupEphemeral> = self
            .inner
            .db
            .write(move |tx| -> Result<_, JobError> {
                Ok(this
                    .inner
                    .engine
                    .seal_group_heartbeats(tx, load, interval_s, now)?)
            })
            .await?;
        let sends: Vec<(&Target, &[u8])> = sealed
            .iter()
            .flat_map(|g| g.targets.iter().map(|t| (t, g.frame.as_slice())))
            .collect();
        debug!(
            groups = sealed.len(),
            sends = sends.len(),
            "group heartbeats"
        );
        futures::stream::iter(sends)
            .for_each_concurrent(HEARTBEATS_IN_FLIGHT, |(target, frame)| async move {
                let _answer = self.send_frame(target, frame).await;
            })
            .await;
        Ok(())
    }

    /// Seals a heartbeat to `uid` (committed first: its sequence number is never reused) and
    /// sends it once to each of its devices.
    async fn send_heartbeat(&self, uid: Uid, load: Load, interval_s: u32) -> Result<(), JobError> {
        let now = self.now();
        let this = self.clone();
        let sealed: Option<Ephemeral> = self
            .inner
            .db
            .write(move |tx| -> Result<_, JobError> {
                Ok(this
                    .inner
                    .engine
                    .seal_heartbeat(tx, &uid, load, interval_s, now)?)
            })
            .await?;
        let Some(sealed) = sealed else {
            return Ok(());
        };
        for target in sealed.targets() {
            let answer = self.send_frame(&target, &sealed.frame).await;
            if answer.is_some_and(|a| a.is_ok_and(|r| r.first() == Some(&RESPONSE_RECEIPT))) {
                self.inner.engine.note_ephemeral_answered(&uid);
            }
        }
        Ok(())
    }

    /// The agents we work with, at most [`MAX_HEARTBEATS_PER_ROUND`]: those heard from (they
    /// send us heartbeats), then contacts whose agent card we hold or that have a live task
    /// with us (either side), each with an open conversation.
    async fn heartbeat_targets(&self) -> Result<Vec<Uid>, JobError> {
        let mut targets = self
            .inner
            .engine
            .agent_health()
            .with_liveness(|m| m.known(MAX_HEARTBEATS_PER_ROUND));
        let known = targets.clone();
        let contacts = self
            .inner
            .db
            .read(move |r| -> Result<_, JobError> {
                let mut out = Vec::new();
                for c in r.list_contacts().map_err(EngineError::from)? {
                    if known.len() + out.len() >= MAX_HEARTBEATS_PER_ROUND {
                        break;
                    }
                    let uid = Uid::from_bytes(&c.uid);
                    if !known.contains(&uid)
                        && works_with(&r, &c.uid).map_err(EngineError::from)?
                        && r.open_conversation_with(&c.uid)
                            .map_err(EngineError::from)?
                            .is_some()
                    {
                        out.push(uid);
                    }
                }
                Ok(out)
            })
            .await?;
        targets.extend(contacts);
        targets.truncate(MAX_HEARTBEATS_PER_ROUND);
        Ok(targets)
    }
}

/// Seconds between two heartbeats to a group: the configured interval, at least
/// [`MIN_GROUP_HEARTBEAT_SECS`] (each is an MLS message to every member device).
fn group_interval_secs(settings: HeartbeatSettings) -> u64 {
    settings.interval_secs.max(MIN_GROUP_HEARTBEAT_SECS)
}

/// Whether we work with contact `uid` as an agent: we hold its agent card, or a task between
/// us is live.
fn works_with(
    r: &rhizo_store::Reader<'_>,
    uid: &[u8; 32],
) -> Result<bool, rhizo_store::StoreError> {
    if r.agent_card(uid)?.is_some() {
        return Ok(true);
    }
    let live = r.tasks(&TaskQuery {
        side: None,
        states: LIVE_STATES.iter().map(|s| s.as_str().to_string()).collect(),
        peer_uid: Some(*uid),
        context_id: None,
        limit: 1,
    })?;
    Ok(!live.is_empty())
}

/// The states of a task that is not over.
const LIVE_STATES: [TaskState; 4] = [
    TaskState::Submitted,
    TaskState::Working,
    TaskState::InputRequired,
    TaskState::AuthRequired,
];
