//! Presence: whether a contact is online, from this node's connections to any of the
//! contact's devices, and when it was last seen; `presence` events when that changes.
//!
//! ```text
//!  PeerConnected / PeerDisconnected ─▶ wake ─▶ compare (at once, and again a moment later,
//!     once identify told the peer's agent) ─▶ per contact: online / offline / hidden
//!     ─▶ ApiEvent::Presence for each change; the view for /v1/contacts
//!  every PROBE_INTERVAL (unless we hide): dial the devices of contacts we are not connected
//!     to, so each side sees the other come online (contacts' connections are kept open)
//! ```
//!
//! Last-seen times are saved (bounded, `rhizo_store::presence`) when a contact goes offline
//! and once a minute while it is online, and taken back at start: a restart keeps them.
//!
//! Hiding (`hide_presence`): the node announces [`PRESENCE_HIDDEN_AGENT`] in its identify agent
//! version and dials no contact just to be seen. rhizo nodes honour the announcement: they show
//! such a contact as `hidden`, with no last-seen time and no events. It is a request, not a
//! guarantee: a peer with a connection to us (to deliver a message, say) can always tell that
//! the connection is open.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tracing::debug;

use crate::{events::ApiEvent, messaging::Messaging};

/// Announced in the identify agent version (after the version) by a node that hides its
/// presence.
pub const PRESENCE_HIDDEN_AGENT: &str = "presence/hidden";
/// How often the devices of contacts we are not connected to are dialled.
const PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Contact devices dialled per probe round at most.
const MAX_PROBES_PER_ROUND: usize = 32;
/// A connection's peer is compared again this long after it connected (its identify, which
/// tells whether it hides, comes just after the connection).
const RECHECK_AFTER: Duration = Duration::from_secs(2);
/// Longest wait between comparisons with nothing happening.
const IDLE_RECHECK: Duration = Duration::from_secs(60);
/// A contact that stays online has its last-seen time saved this often (seconds); going
/// offline saves it at once. So a restart keeps `last_seen` (to within this).
const SAVE_ONLINE_EVERY_S: i64 = 60;

/// A contact's presence as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceState {
    /// This node is connected to one of the contact's devices.
    Online,
    /// It is not.
    Offline,
    /// The contact hides its presence (see the module docs).
    Hidden,
}

/// A contact's presence and when it was last seen online (unix seconds, kept across restarts;
/// none: never, or hidden).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPresence {
    /// Online, offline or hidden.
    pub state: PresenceState,
    /// When it was last online, in unix seconds.
    pub last_seen: Option<i64>,
}

impl Default for ContactPresence {
    fn default() -> Self {
        Self {
            state: PresenceState::Offline,
            last_seen: None,
        }
    }
}

/// The contacts' presence (cheap to clone): what the task saw last, per contact UID.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    inner: Arc<PresenceInner>,
}

#[derive(Debug, Default)]
struct PresenceInner {
    view: Mutex<HashMap<String, ContactPresence>>,
    wake: Notify,
}

impl Presence {
    /// The presence of the contact with this UID (text).
    pub fn of(&self, uid: &str) -> ContactPresence {
        self.inner
            .view
            .lock()
            .ok()
            .and_then(|v| v.get(uid).copied())
            .unwrap_or_default()
    }

    /// A connection opened or closed: compare again.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Takes back the last-seen times an earlier run saved (each contact offline until the
    /// first comparison says otherwise).
    fn restore(&self, saved: Vec<(String, i64)>) {
        if let Ok(mut view) = self.inner.view.lock() {
            for (uid, at) in saved {
                view.entry(uid).or_insert(ContactPresence {
                    state: PresenceState::Offline,
                    last_seen: Some(at),
                });
            }
        }
    }

    /// The last-seen times to save now, and `saved` updated to them: a contact that went
    /// offline at once, one still online once per [`SAVE_ONLINE_EVERY_S`].
    fn to_save(&self, saved: &mut HashMap<String, i64>) -> Vec<(String, i64)> {
        let Ok(view) = self.inner.view.lock() else {
            return Vec::new();
        };
        saved.retain(|uid, _| view.contains_key(uid));
        let mut out = Vec::new();
        for (uid, p) in view.iter() {
            let Some(at) = p.last_seen else { continue };
            let before = saved.get(uid).copied();
            let due = match (p.state, before) {
                (_, None) => true,
                (PresenceState::Online, Some(b)) => at.saturating_sub(b) >= SAVE_ONLINE_EVERY_S,
                (_, Some(b)) => at != b,
            };
            if due {
                saved.insert(uid.clone(), at);
                out.push((uid.clone(), at));
            }
        }
        out
    }
}

/// The agent version a node announces: [`crate::AGENT_VERSION`], plus
/// [`PRESENCE_HIDDEN_AGENT`] when it hides its presence.
pub fn agent_version(hide_presence: bool) -> String {
    if hide_presence {
        format!("{} {PRESENCE_HIDDEN_AGENT}", crate::AGENT_VERSION)
    } else {
        crate::AGENT_VERSION.to_string()
    }
}

/// Whether a peer's identify agent version says it hides its presence.
pub fn hides(agent_version: Option<&str>) -> bool {
    agent_version.is_some_and(|a| a.split_whitespace().any(|w| w == PRESENCE_HIDDEN_AGENT))
}

/// A contact's devices this node is connected to, and whether one of them hides.
fn state_of(devices: &[String], connected: &HashMap<String, bool>) -> PresenceState {
    let mut online = false;
    for d in devices {
        match connected.get(d) {
            Some(true) => return PresenceState::Hidden,
            Some(false) => online = true,
            None => {}
        }
    }
    if online {
        PresenceState::Online
    } else {
        PresenceState::Offline
    }
}

/// Keeps the presence view and sends `presence` events until `shutdown` fires; dials the
/// contacts we are not connected to every [`PROBE_INTERVAL`] unless `hide` is set.
pub async fn run(
    messaging: Messaging,
    client: rhizo_net::Client,
    hide: bool,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let presence = messaging.presence().clone();
    presence.restore(messaging.saved_last_seen().await);
    let mut saved: HashMap<String, i64> = HashMap::new();
    let mut first = true;
    let mut next_probe = tokio::time::Instant::now();
    let mut recheck: Option<tokio::time::Instant> = None;
    loop {
        let offline = compare(&messaging, &client, &presence, first).await;
        first = false;
        let changed = presence.to_save(&mut saved);
        if !changed.is_empty() {
            messaging.save_last_seen(changed).await;
        }
        let now = tokio::time::Instant::now();
        if !hide && now >= next_probe {
            next_probe = now + PROBE_INTERVAL;
            let client = client.clone();
            tokio::spawn(async move {
                for (peer, addrs) in offline.into_iter().take(MAX_PROBES_PER_ROUND) {
                    if let Err(e) = client.dial_peer(peer, addrs).await {
                        debug!(%peer, error = %e, "presence probe: contact not reachable");
                    }
                }
            });
        }
        let mut deadline = next_probe.min(now + IDLE_RECHECK);
        if let Some(at) = recheck.take() {
            deadline = deadline.min(at);
        }
        tokio::select! {
            () = presence.inner.wake.notified() => {
                recheck = Some(tokio::time::Instant::now() + RECHECK_AFTER);
            }
            () = tokio::time::sleep_until(deadline) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Compares the contacts' presence with the last view, sends an event per change (none the
/// first time), and returns the devices of the contacts that are offline (to probe).
async fn compare(
    messaging: &Messaging,
    client: &rhizo_net::Client,
    presence: &Presence,
    first: bool,
) -> Vec<(PeerId, Vec<Multiaddr>)> {
    let (Ok(contacts), Ok(peers)) = (messaging.contacts().await, client.peers().await) else {
        return Vec::new();
    };
    // Connected peers, and whether each hides.
    let connected: HashMap<String, bool> = peers
        .into_iter()
        .filter(|p| p.connections > 0)
        .map(|p| (p.peer_id.to_string(), hides(p.agent_version.as_deref())))
        .collect();
    let now = crate::unix_now();
    let mut offline = Vec::new();
    let mut events = Vec::new();
    {
        let Ok(mut view) = presence.inner.view.lock() else {
            return Vec::new();
        };
        let uids: HashSet<&str> = contacts.iter().map(|c| c.uid.as_str()).collect();
        view.retain(|uid, _| uids.contains(uid.as_str()));
        for contact in &contacts {
            let state = state_of(&contact.devices, &connected);
            let before = view.get(&contact.uid).copied().unwrap_or_default();
            let last_seen = match (state, before.state) {
                (PresenceState::Online, _) | (PresenceState::Offline, PresenceState::Online) => {
                    Some(now)
                }
                (PresenceState::Hidden, _) => None,
                _ => before.last_seen,
            };
            let after = ContactPresence { state, last_seen };
            if state == PresenceState::Offline {
                offline.extend(
                    contact
                        .devices
                        .iter()
                        .filter_map(|d| d.parse::<PeerId>().ok())
                        .map(|p| (p, Vec::new())),
                );
            }
            if state != before.state && !first {
                events.push(ApiEvent::Presence {
                    contact: contact.name.clone(),
                    uid: contact.uid.clone(),
                    state,
                    last_seen,
                });
            }
            view.insert(contact.uid.clone(), after);
        }
    }
    for event in events {
        messaging.emit_presence(event);
    }
    offline
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_contact_is_online_through_any_device_and_hidden_if_one_hides() {
        let devices = vec!["a".to_string(), "b".to_string()];
        let mut connected = HashMap::new();
        assert_eq!(state_of(&devices, &connected), PresenceState::Offline);
        connected.insert("b".to_string(), false);
        assert_eq!(state_of(&devices, &connected), PresenceState::Online);
        connected.insert("a".to_string(), true);
        assert_eq!(state_of(&devices, &connected), PresenceState::Hidden);
        assert!(agent_version(true).ends_with(" presence/hidden"));
        assert!(hides(Some(&agent_version(true))));
        assert!(!hides(Some(&agent_version(false))) && !hides(None));
        assert_eq!(agent_version(false), crate::AGENT_VERSION);
    }

    #[test]
    fn last_seen_is_saved_when_a_contact_goes_offline_and_once_a_minute_while_online() {
        let presence = Presence::default();
        presence.restore(vec![("bob".into(), 100)]);
        assert_eq!(presence.of("bob").last_seen, Some(100));
        assert_eq!(presence.of("bob").state, PresenceState::Offline);
        let mut saved = HashMap::new();
        assert_eq!(presence.to_save(&mut saved), [("bob".to_string(), 100)]);
        assert!(presence.to_save(&mut saved).is_empty(), "unchanged");
        let set = |state, at| {
            presence.inner.view.lock().unwrap().insert(
                "bob".into(),
                ContactPresence {
                    state,
                    last_seen: Some(at),
                },
            );
        };
        set(PresenceState::Online, 130);
        assert!(presence.to_save(&mut saved).is_empty(), "online: not yet");
        set(PresenceState::Online, 100 + SAVE_ONLINE_EVERY_S);
        assert_eq!(presence.to_save(&mut saved).len(), 1);
        set(PresenceState::Offline, 170);
        assert_eq!(presence.to_save(&mut saved), [("bob".to_string(), 170)]);
    }
}
