//! Heartbeats and liveness (seed 004 `heartbeat` / `status_report`, and `wake_up`).
//!
//! A node with an agent card sends each agent it works with a heartbeat every
//! `heartbeat_secs`: sequence number, load and the interval to the next one. The receiver keeps
//! the last one per agent in memory ([`LivenessMap`], bounded) and derives the agent's
//! [`Liveness`] from its age ([`Liveness::of`]: alive ≤ 1.5 intervals, late ≤ 3, else
//! unreachable). Time passing alone changes liveness, so the driver asks
//! [`LivenessMap::changes`] at [`LivenessMap::next_deadline`].
//!
//! Heartbeats are **ephemeral**: MLS-sealed in the existing conversation and sent once
//! ([`Engine::seal_ephemeral`]), with no message row, outbox entry or mailbox copy. A lost one
//! leaves a gap in the sender's MLS generations and envelope numbers, which the receiver
//! tolerates (its seen-set is a set, and MLS skips up to `MAX_SKIPPED_GENERATIONS`): to stay
//! far inside that bound, at most [`MAX_UNCONFIRMED_EPHEMERAL`] are sealed to an agent that
//! has not been heard from since.
//!
//! ```text
//!  sender: timer ─▶ seal_ephemeral(tx, uid, Heartbeat{seq, load, interval}) ─▶ commit ─▶ send once
//!  receiver: MLS ─▶ ChatContent.agent ─▶ on_heartbeat (seq grows? keep) ─▶ AgentLiveness event
//!  driver timer ─▶ changes(now) ─▶ alive → late → unreachable events
//! ```

use std::collections::HashMap;

use prost::Message as _;
use rhizo_core::{
    Uid,
    agent::{Liveness, MAX_REASON_BYTES},
    envelope::MessageType,
    proto::{AgentMessage, ChatContent, Heartbeat, WakeUp, agent_message::Kind},
};
use rhizo_store::{Tx, messaging::Contact};
use serde::{Deserialize, Serialize};

use super::health::AgentHealth;
use crate::{
    Engine, EngineError, Event,
    conversations::seal,
    outbox::{Target, targets_of},
};

/// Remote agents whose last heartbeat is kept (the least recently heard is dropped beyond).
pub const MAX_TRACKED_AGENTS: usize = 4096;
/// Ephemeral messages sealed to one agent without hearing from it (a heartbeat from it, or a
/// delivered send): far below the receiver's MLS bound on skipped generations (1000), so a
/// long silence can never make the next real message undecryptable.
pub const MAX_UNCONFIRMED_EPHEMERAL: u32 = 256;
/// Longest heartbeat interval honoured (a day): a larger one is read as this.
pub const MAX_INTERVAL_S: u32 = 86_400;

/// An agent's load as its last heartbeat said.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Tasks queued (submitted, not started).
    pub queued: u32,
    /// Tasks being worked on.
    pub working: u32,
    /// Queue capacity.
    pub capacity: u32,
}

/// What we know of one remote agent.
#[derive(Debug, Clone, Copy)]
struct Peer {
    /// Highest heartbeat seq applied (0: none yet).
    seq: u64,
    /// When the last heartbeat arrived, our clock (unix ms); `None`: never.
    last_ms: Option<i64>,
    /// Its announced interval, seconds.
    interval_s: u32,
    load: Option<Load>,
    /// The liveness last reported to the driver.
    shown: Liveness,
    /// Ephemeral messages sealed to it since we last heard from it.
    unconfirmed: u32,
}

impl Peer {
    fn liveness(&self, now: i64) -> Liveness {
        self.last_ms.map_or(Liveness::Unknown, |last| {
            Liveness::of(now.saturating_sub(last), self.interval_s)
        })
    }

    /// When its liveness next changes by time alone, if it will.
    fn next_change(&self, now: i64) -> Option<i64> {
        let last = self.last_ms?;
        let interval = i64::from(self.interval_s.max(1)) * 1000;
        match self.liveness(now) {
            Liveness::Alive => Some(last + interval * 3 / 2 + 1),
            Liveness::Late => Some(last + interval * 3 + 1),
            Liveness::Unreachable | Liveness::Unknown => None,
        }
    }
}

/// The liveness of remote agents, from their heartbeats (in memory, bounded by
/// [`MAX_TRACKED_AGENTS`]).
#[derive(Debug, Default)]
pub struct LivenessMap {
    peers: HashMap<Uid, Peer>,
}

impl LivenessMap {
    /// Nobody heard from yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a heartbeat `from` an agent at `now`: kept only if its seq is higher than the
    /// last one applied (a stale or duplicate heartbeat changes nothing). An
    /// [`Event::AgentLiveness`] when the agent's liveness changed.
    pub fn on_heartbeat(&mut self, from: Uid, hb: &Heartbeat, now: i64) -> Vec<Event> {
        if hb.seq == 0 {
            return Vec::new();
        }
        let peer = self.entry(from, now);
        if hb.seq <= peer.seq {
            return Vec::new();
        }
        peer.seq = hb.seq;
        peer.last_ms = Some(now);
        peer.interval_s = hb.interval_s.clamp(1, MAX_INTERVAL_S);
        peer.load = Some(Load {
            queued: hb.queued,
            working: hb.working,
            capacity: hb.capacity,
        });
        peer.unconfirmed = 0;
        let now_live = peer.liveness(now);
        if now_live == peer.shown {
            return Vec::new();
        }
        peer.shown = now_live;
        vec![liveness_event(from, now_live)]
    }

    /// The liveness changes time alone made by `now` (alive → late → unreachable), as events;
    /// each is reported once.
    pub fn changes(&mut self, now: i64) -> Vec<Event> {
        let mut out = Vec::new();
        for (uid, peer) in &mut self.peers {
            let live = peer.liveness(now);
            if live != peer.shown {
                peer.shown = live;
                out.push(liveness_event(*uid, live));
            }
        }
        out
    }

    /// When the next liveness change by time alone is due (unix ms), if any.
    pub fn next_deadline(&self, now: i64) -> Option<i64> {
        self.peers.values().filter_map(|p| p.next_change(now)).min()
    }

    /// An agent's liveness at `now`, when its last heartbeat arrived and the load it said.
    pub fn of(&self, uid: &Uid, now: i64) -> (Liveness, Option<i64>, Option<Load>) {
        self.peers
            .get(uid)
            .map_or((Liveness::Unknown, None, None), |p| {
                (p.liveness(now), p.last_ms, p.load)
            })
    }

    /// The agents heard from (for the driver's heartbeat round), most recent first, at most
    /// `limit`.
    pub fn known(&self, limit: usize) -> Vec<Uid> {
        let mut v: Vec<(i64, Uid)> = self
            .peers
            .iter()
            .filter_map(|(uid, p)| Some((p.last_ms?, *uid)))
            .collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().take(limit).map(|(_, uid)| uid).collect()
    }

    /// Whether another ephemeral message may be sealed to `uid` (see
    /// [`MAX_UNCONFIRMED_EPHEMERAL`]); counts it if so.
    pub(crate) fn take_ephemeral(&mut self, uid: Uid, now: i64) -> bool {
        let peer = self.entry(uid, now);
        if peer.unconfirmed >= MAX_UNCONFIRMED_EPHEMERAL {
            return false;
        }
        peer.unconfirmed += 1;
        true
    }

    /// `uid` answered one of our sends: it reads our conversation, the count of unconfirmed
    /// ephemeral messages restarts.
    pub fn confirm(&mut self, uid: &Uid) {
        if let Some(p) = self.peers.get_mut(uid) {
            p.unconfirmed = 0;
        }
    }

    /// The entry of `uid`, made (evicting the least recently heard agent at the bound) if new.
    fn entry(&mut self, uid: Uid, _now: i64) -> &mut Peer {
        if !self.peers.contains_key(&uid) && self.peers.len() >= MAX_TRACKED_AGENTS {
            let victim = self
                .peers
                .iter()
                .min_by_key(|(_, p)| p.last_ms.unwrap_or(i64::MIN))
                .map(|(u, _)| *u);
            if let Some(v) = victim {
                self.peers.remove(&v);
            }
        }
        self.peers.entry(uid).or_insert(Peer {
            seq: 0,
            last_ms: None,
            interval_s: 1,
            load: None,
            shown: Liveness::Unknown,
            unconfirmed: 0,
        })
    }
}

fn liveness_event(uid: Uid, liveness: Liveness) -> Event {
    Event::AgentLiveness {
        uid: uid.to_string(),
        liveness,
    }
}

/// Applies a heartbeat from `contact` (the inbound dispatcher calls it for
/// `AgentMessage.heartbeat`).
pub fn on_heartbeat(
    health: &AgentHealth,
    contact: &Contact,
    hb: &Heartbeat,
    now: i64,
) -> Vec<Event> {
    health.with_liveness(|map| map.on_heartbeat(Uid::from_bytes(&contact.uid), hb, now))
}

/// A `wake_up` from `contact`: an [`Event::WakeUp`] (the node starts its wake command if no
/// agent program is attached). The reason is cut to `MAX_REASON_BYTES` and stripped of control
/// characters.
pub fn on_wake_up(contact: &Contact, wake: &WakeUp) -> Vec<Event> {
    let mut reason: String = wake.reason.chars().filter(|c| !c.is_control()).collect();
    if reason.len() > MAX_REASON_BYTES {
        let mut cut = MAX_REASON_BYTES;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    vec![Event::WakeUp {
        from: Uid::from_bytes(&contact.uid).to_string(),
        reason,
    }]
}

/// An ephemeral message sealed by [`Engine::seal_ephemeral`]: send `frame` once to each
/// target; the answer only matters for [`Engine::note_ephemeral_answered`].
#[derive(Debug, Clone)]
pub struct Ephemeral {
    /// Whom it goes to.
    pub contact: Contact,
    /// The envelope (`/rhizo/msg/1` request bytes).
    pub frame: Vec<u8>,
}

impl Ephemeral {
    /// The contact's devices to send it to.
    pub fn targets(&self) -> Vec<Target> {
        targets_of(&self.contact)
    }
}

impl Engine {
    /// MLS-seals `message` in the open conversation with `to`, inside `tx`, WITHOUT a message
    /// row, outbox entry or mailbox copy: the envelope takes the conversation's next sequence
    /// number (persisted by `tx`, so never reused after a crash) and a fresh nonce, and no
    /// rekey commit is made. `None` when `to` is not a contact, has no open conversation, or
    /// was sent [`MAX_UNCONFIRMED_EPHEMERAL`] ephemeral messages without being heard from.
    /// Send the frame only after `tx` committed.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails (the job's savepoint is then rolled back).
    pub fn seal_ephemeral(
        &self,
        tx: &mut Tx<'_>,
        to: &Uid,
        message: AgentMessage,
        now: i64,
    ) -> Result<Option<Ephemeral>, EngineError> {
        let out = self.seal_ephemeral_in(tx, to, message, now);
        if out.is_err() {
            self.conversations.discard_staged();
        }
        let cache = std::sync::Arc::clone(&self.conversations);
        tx.after_commit(move |committed| cache.settle(&if committed { Ok(()) } else { Err(()) }));
        out
    }

    fn seal_ephemeral_in(
        &self,
        tx: &mut Tx<'_>,
        to: &Uid,
        message: AgentMessage,
        now: i64,
    ) -> Result<Option<Ephemeral>, EngineError> {
        let Some(contact) = tx.contact_by_uid(to.as_bytes())? else {
            return Ok(None);
        };
        let Some(session) = tx.open_conversation_with(&contact.uid)? else {
            return Ok(None);
        };
        if !self.agent_health.take_ephemeral(*to, now) {
            return Ok(None);
        }
        let content = ChatContent {
            sent_at_ms: crate::ms(now),
            agent: Some(message),
            ..ChatContent::default()
        }
        .encode_to_vec();
        let mls = tx.mls().map_err(EngineError::Mls)?;
        let mut conversation = self
            .conversations
            .load(&mls, &session.group_id)
            .map_err(EngineError::Mls)?
            .ok_or(EngineError::Internal("conversation state missing"))?;
        let ciphertext = conversation
            .encrypt(&mls, &self.mls_device, &content, crate::secs(now))
            .map_err(EngineError::Mls)?;
        let seq = tx.take_next_seq(&session.session_id)?;
        let frame = seal(
            &self.me,
            &self.rng,
            &contact,
            &session.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )?;
        self.conversations.stage(conversation);
        Ok(Some(Ephemeral { contact, frame }))
    }

    /// Seals our next heartbeat to `to` (see [`Engine::seal_ephemeral`]): the next seq (it
    /// starts from the clock in ms, so it keeps growing across restarts), `load` and the
    /// interval to the next one.
    ///
    /// # Errors
    ///
    /// As [`Engine::seal_ephemeral`].
    pub fn seal_heartbeat(
        &self,
        tx: &mut Tx<'_>,
        to: &Uid,
        load: Load,
        interval_s: u32,
        now: i64,
    ) -> Result<Option<Ephemeral>, EngineError> {
        let message = AgentMessage {
            kind: Some(Kind::Heartbeat(self.next_heartbeat(load, interval_s, now))),
        };
        self.seal_ephemeral(tx, to, message, now)
    }

    /// Our next heartbeat: the next seq (it starts from the clock in ms, so it keeps growing
    /// across restarts), `load` and the interval to the next one.
    pub(crate) fn next_heartbeat(&self, load: Load, interval_s: u32, now: i64) -> Heartbeat {
        Heartbeat {
            seq: self.agent_health.next_heartbeat_seq(now),
            queued: load.queued,
            working: load.working,
            capacity: load.capacity,
            interval_s,
            at_ms: crate::ms(now),
        }
    }

    /// An ephemeral send to `to` was answered with a receipt (it reads our conversation).
    pub fn note_ephemeral_answered(&self, to: &Uid) {
        self.agent_health.confirm(to);
    }
}

#[cfg(test)]
mod tests;
