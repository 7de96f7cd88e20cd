//! Agent cards in the node: setting, showing and removing ours (the engine signs it; this
//! module publishes it and announces each skill as a Kademlia provider record), finding agents
//! by skill through the DHT, and the views of known agents.
//!
//! ```text
//!  set_agent_card ─▶ engine signs (version + 1) ─▶ put under agent_card_key(uid) and
//!                    agent_card_device_key(device) ─▶ start_providing(skill_key(id)) per skill
//!  publisher (hourly) ─▶ the same again (re-signed 2 days before it expires)
//!  find_agents(skill) ─▶ get_providers(skill_key) ─▶ ≤ 20 providers ─▶ each device's card
//!                    ─▶ validate (the device signed its binding to the card's UID),
//!                       has the skill ─▶ cache ─▶ [AgentView]
//!  agents() / agent(who, refresh) ─▶ cached cards (or the DHT) ─▶ AgentView
//!  ask_agent(contact) ─▶ capability_query over MLS ─▶ wait ≤ ASK_AGENT_TIMEOUT for its
//!                    capability_answer (Event::AgentCard) ─▶ the cached card ─▶ AgentView
//! ```

use std::{collections::HashSet, time::Duration};

use libp2p::PeerId;
use rhizo_core::{
    DevicePublicKey, Uid,
    agent::{AgentCard, BreakerState, Liveness, check_skill_id},
    records::{
        AgentCardRecord, ValidRecord, agent_card_device_key, agent_card_key, skill_key,
        validate_record,
    },
};
use rhizo_engine::{
    agents::cards::{OwnCard, card_row},
    contacts::find_contact_in,
};
use rhizo_store::{AgentCardRow, agent_cards::MAX_CACHED_AGENT_CARDS};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tracing::debug;

use super::{CardError, Messaging};
use crate::events::ApiEvent;

/// Providers of a skill whose cards one search fetches: a provider key holds at most 20 per
/// storing node (rhizo-net `MAX_PROVIDERS_PER_KEY`), and each costs one DHT lookup.
pub const MAX_FIND_PROVIDERS: usize = 20;
/// How long one card lookup of a search may take before that provider is skipped.
pub const FIND_CARD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `agents ask` waits for a contact's `capability_answer`: the query takes the
/// reliable path (direct, else the contact's mailbox), so an online agent answers in seconds.
pub const ASK_AGENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Load figures an agent announces in its heartbeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentLoad {
    /// Tasks waiting in its queue.
    pub queued: u32,
    /// Tasks it works on.
    pub working: u32,
    /// Tasks it accepts at once.
    pub capacity: u32,
}

/// A remote agent as the API shows it (`/v1/agents*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentView {
    /// Its UID.
    pub uid: String,
    /// The contact's local name, if it is a contact.
    pub name: Option<String>,
    /// Its card, validated.
    pub card: AgentCard,
    /// The card record's version.
    pub card_version: u64,
    /// Liveness from its heartbeats (`unknown` before any).
    pub liveness: Liveness,
    /// When its last heartbeat arrived (unix ms).
    pub last_heartbeat: Option<i64>,
    /// The load its last heartbeat announced.
    pub load: Option<AgentLoad>,
    /// This node's circuit breaker for it.
    pub breaker: BreakerState,
}

/// Our own card as the API shows it (`/v1/agent/card`): the card's fields, our UID and the
/// record's version (`card_version`: the card's own `version` is the agent software's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnCardView {
    /// Our UID.
    pub uid: String,
    /// The signed record's version.
    pub card_version: u64,
    /// When the current signature expires (unix seconds; re-signed before, while online).
    pub expires_at: u64,
    /// The card.
    #[serde(flatten)]
    pub card: AgentCard,
}

/// The view of a validated card, with what the engine knows of the agent's health now.
fn agent_view(
    record: &AgentCardRecord,
    name: Option<String>,
    engine: &rhizo_engine::Engine,
    now: i64,
) -> AgentView {
    let uid = record.uid();
    let status = engine.agent_status(&uid, now);
    AgentView {
        uid: uid.to_string(),
        name,
        card: record.card().clone(),
        card_version: record.version(),
        liveness: status.liveness,
        last_heartbeat: status.last_heartbeat,
        load: status.load.map(|l| AgentLoad {
            queued: l.queued,
            working: l.working,
            capacity: l.capacity,
        }),
        breaker: status.breaker,
    }
}

/// A cached card, decoded (it was validated when it was cached; an expired one still shows).
fn cached_record(row: &AgentCardRow) -> Option<AgentCardRecord> {
    rhizo_engine::agents::cards::cached_card(row)
}

/// The device key a PeerId holds (rhizo devices are Ed25519 keys, inlined in the PeerId).
fn device_of_peer(peer: &PeerId) -> Option<DevicePublicKey> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    let bytes = key.try_into_ed25519().ok()?.to_bytes();
    DevicePublicKey::from_bytes(&bytes).ok()
}

fn own_view(uid: &Uid, own: &OwnCard) -> OwnCardView {
    OwnCardView {
        uid: uid.to_string(),
        card_version: own.record.version(),
        expires_at: own.record.expires_at(),
        card: own.record.card().clone(),
    }
}

impl Messaging {
    /// Signs `card` as the next version of our card, stores it, and publishes it in the DHT
    /// with a provider record per skill (in the background: the DHT may take seconds).
    ///
    /// # Errors
    ///
    /// [`CardError::BadCard`] naming the rule the card breaks; or if the database fails.
    pub async fn set_agent_card(&self, card: AgentCard) -> Result<OwnCardView, CardError> {
        let now = self.now();
        let own = self
            .with_engine(move |tx, engine| engine.set_agent_card(tx, card, now))
            .await?;
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.publish_agent_card().await {
                debug!(error = %e, "agent card not published yet");
            }
        });
        Ok(own_view(&self.inner.engine.me().uid, &own))
    }

    /// Our card.
    ///
    /// # Errors
    ///
    /// [`CardError::NoCard`] when none is set; or if the database fails.
    pub async fn agent_card(&self) -> Result<OwnCardView, CardError> {
        let this = self.clone();
        let own = self
            .inner
            .db
            .read(move |r| -> Result<_, CardError> { Ok(this.inner.engine.agent_card(&r)?) })
            .await?
            .ok_or(CardError::NoCard)?;
        Ok(own_view(&self.inner.engine.me().uid, &own))
    }

    /// Whether this node has an agent card (it is an agent: it sends heartbeats, announces
    /// skills). False if the database cannot say.
    pub async fn has_agent_card(&self) -> bool {
        self.inner
            .db
            .read(|r| -> Result<_, CardError> { Ok(r.own_agent_card()?) })
            .await
            .ok()
            .flatten()
            .is_some_and(|own| own.record.is_some())
    }

    /// Removes our card and stops announcing its skills (records already in the DHT expire).
    ///
    /// # Errors
    ///
    /// [`CardError::NoCard`] when none is set; or if the database fails.
    pub async fn clear_agent_card(&self) -> Result<(), CardError> {
        let now = self.now();
        let cleared = self
            .with_engine(move |tx, engine| engine.clear_agent_card(tx, now))
            .await?;
        if !cleared {
            return Err(CardError::NoCard);
        }
        self.announce_skills(Vec::new()).await;
        Ok(())
    }

    /// Publishes our card (re-signed when it is due) under our UID's and this device's card
    /// keys, and announces each of its skills; without a card, stops announcing. How many
    /// peers stored the records.
    pub(super) async fn publish_agent_card(&self) -> Result<usize, CardError> {
        let now = self.now();
        let published = self
            .with_engine(move |tx, engine| engine.agent_card_records(tx, now))
            .await?;
        let Some((own, records)) = published else {
            self.announce_skills(Vec::new()).await;
            return Ok(0);
        };
        let mut stored = 0;
        for (key, value) in records {
            match self.inner.client.put_record(key, value).await {
                Ok(n) => stored += n,
                Err(e) => debug!(error = %e, "agent card record not stored"),
            }
        }
        let skills = own.record.card().skills.iter().map(|s| s.id.clone());
        self.announce_skills(skills.collect()).await;
        Ok(stored)
    }

    /// Announces `skills` as provider records (again: Kademlia republishes them, and one made
    /// while no peer was known goes out now) and stops announcing the skills announced before
    /// that are not among them.
    async fn announce_skills(&self, skills: Vec<String>) {
        let gone: Vec<String> = match self.inner.announced_skills.lock() {
            Ok(mut announced) => {
                let now: HashSet<String> = skills.iter().cloned().collect();
                let gone = announced.difference(&now).cloned().collect();
                *announced = now;
                gone
            }
            Err(_) => Vec::new(),
        };
        let client = &self.inner.client;
        for skill in gone {
            let _ = client.stop_providing(skill_key(&skill).to_vec()).await;
        }
        for skill in skills {
            match client.start_providing(skill_key(&skill).to_vec()).await {
                Ok(peers) => debug!(%skill, peers, "skill announced"),
                Err(e) => debug!(%skill, error = %e, "skill not announced"),
            }
        }
    }
}

impl Messaging {
    /// Finds agents offering `skill`: the providers of its skill key in the DHT (at most
    /// [`MAX_FIND_PROVIDERS`]), each one's card fetched from the DHT under its device's card key
    /// (at most [`FIND_CARD_TIMEOUT`] each), validated and checked to list the skill, then
    /// cached. Our own card is included when it lists the skill.
    ///
    /// # Errors
    ///
    /// [`CardError::BadSkill`] for an invalid skill id; [`CardError::Network`] when the
    /// provider lookup could not run.
    pub async fn find_agents(&self, skill: &str) -> Result<Vec<AgentView>, CardError> {
        check_skill_id(skill).map_err(|_| CardError::BadSkill(skill.to_string()))?;
        let client = &self.inner.client;
        let providers = client
            .get_providers(skill_key(skill).to_vec())
            .await
            .map_err(CardError::Network)?;
        let local = client.info().await.ok().map(|i| i.peer_id);
        let lookups = providers
            .into_iter()
            .filter(|p| Some(*p) != local)
            .take(MAX_FIND_PROVIDERS)
            .map(|peer| self.card_of_provider(peer));
        let mut found: Vec<(AgentCardRecord, Vec<u8>)> = futures::future::join_all(lookups)
            .await
            .into_iter()
            .flatten()
            .filter(|(record, _)| record.card().has_skill(skill))
            .collect();
        if let Ok(own) = self.agent_card().await
            && own.card.has_skill(skill)
            && let Some(mine) = self.own_record().await
        {
            found.push(mine);
        }
        let mut seen = HashSet::new();
        found.retain(|(record, _)| seen.insert(record.uid()));
        self.cache_and_view(found).await
    }

    /// Our own card record and its bytes, if set.
    async fn own_record(&self) -> Option<(AgentCardRecord, Vec<u8>)> {
        let this = self.clone();
        self.inner
            .db
            .read(move |r| -> Result<_, CardError> { Ok(this.inner.engine.agent_card(&r)?) })
            .await
            .ok()
            .flatten()
            .map(|own| (own.record, own.bytes))
    }

    /// The newest valid card under a provider's device key. Any root can certify any device
    /// key (a PeerId is public), but a card is valid there only with the device's own binding
    /// signature ([`rhizo_core::records::CardDevice`]), so another identity cannot claim an
    /// agent's device and take its place in the answers to a search.
    async fn card_of_provider(&self, peer: PeerId) -> Option<(AgentCardRecord, Vec<u8>)> {
        let device = device_of_peer(&peer)?;
        self.cards_under(agent_card_device_key(&device))
            .await
            .into_iter()
            .max_by_key(|(record, _)| record.version())
    }

    /// A UID's newest valid card in the DHT.
    async fn card_in_dht(&self, uid: &Uid) -> Option<(AgentCardRecord, Vec<u8>)> {
        self.cards_under(agent_card_key(uid))
            .await
            .into_iter()
            .max_by_key(|(record, _)| record.version())
    }

    /// The valid cards among the DHT values under `key` (none if the lookup does not end
    /// within [`FIND_CARD_TIMEOUT`]).
    async fn cards_under(&self, key: [u8; 32]) -> Vec<(AgentCardRecord, Vec<u8>)> {
        let Ok(Ok(values)) = tokio::time::timeout(
            FIND_CARD_TIMEOUT,
            self.inner.client.get_records(key.to_vec()),
        )
        .await
        else {
            return Vec::new();
        };
        let now = self.now_secs();
        values
            .into_iter()
            .filter_map(|v| match validate_record(&key, &v, now) {
                Ok(ValidRecord::AgentCard(record)) => Some((record, v)),
                _ => None,
            })
            .collect()
    }

    fn now_secs(&self) -> u64 {
        u64::try_from(self.inner.clock.now_secs()).unwrap_or(0)
    }

    /// Caches validated cards and returns their views (with contacts' names).
    async fn cache_and_view(
        &self,
        found: Vec<(AgentCardRecord, Vec<u8>)>,
    ) -> Result<Vec<AgentView>, CardError> {
        let now = self.now();
        let this = self.clone();
        self.inner
            .db
            .write(move |tx| -> Result<_, CardError> {
                let mut views = Vec::with_capacity(found.len());
                for (record, bytes) in found {
                    tx.upsert_agent_card(&card_row(&record, &bytes, now))?;
                    let name = tx.contact_by_uid(record.uid().as_bytes())?.map(|c| c.name);
                    views.push(agent_view(&record, name, &this.inner.engine, now));
                }
                Ok(views)
            })
            .await
    }

    /// The agents whose cards are cached (found in the DHT or received from contacts), the
    /// most recently fetched first.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub async fn agents(&self) -> Result<Vec<AgentView>, CardError> {
        let (this, now) = (self.clone(), self.now());
        self.inner
            .db
            .read(move |r| -> Result<_, CardError> {
                let mut views = Vec::new();
                for row in r.agent_cards(MAX_CACHED_AGENT_CARDS)? {
                    let Some(record) = cached_record(&row) else {
                        continue;
                    };
                    let name = r.contact_by_uid(&row.uid)?.map(|c| c.name);
                    views.push(agent_view(&record, name, &this.inner.engine, now));
                }
                Ok(views)
            })
            .await
    }

    /// One agent, by contact name or UID: its cached card, or (when none is cached, or with
    /// `refresh`) the newest one in the DHT, cached. With `refresh`, a contact is also sent a
    /// `capability_query` (its answer updates the cache). A group's name, id or address (no
    /// contact of that name) is the group as one agent: a card gathered from its members'
    /// cached cards ([`rhizo_engine::Engine::group_card`]); tasks to its UID go to the group.
    ///
    /// # Errors
    ///
    /// [`CardError::UnknownAgent`] when `who` is neither a contact nor a UID, or no card is
    /// known or found.
    pub async fn agent(&self, who: &str, refresh: bool) -> Result<AgentView, CardError> {
        let who_owned = who.trim().to_string();
        let this = self.clone();
        let (uid, name, cached) = match self
            .inner
            .db
            .read(move |r| -> Result<_, CardError> {
                let contact = find_contact_in(&r, &who_owned)?;
                if contact.is_none()
                    && let Some(group) = this.inner.engine.group_card(&r, &who_owned)?
                {
                    return Ok(Err(group));
                }
                let uid = match &contact {
                    Some(c) => Uid::from_bytes(&c.uid),
                    None => who_owned
                        .parse::<Uid>()
                        .map_err(|_| CardError::UnknownAgent(who_owned.clone()))?,
                };
                let cached = r.agent_card(uid.as_bytes())?;
                Ok(Ok((uid, contact.map(|c| c.name), cached)))
            })
            .await?
        {
            Ok(agent) => agent,
            Err(group) => return Ok(self.group_view(group)),
        };
        let cached = cached.as_ref().and_then(cached_record);
        if !refresh && let Some(record) = cached {
            return Ok(agent_view(&record, name, &self.inner.engine, self.now()));
        }
        if refresh && name.is_some() {
            self.query_capabilities_of(uid).await;
        }
        if let Some(found) = self.card_in_dht(&uid).await {
            let newer = cached
                .as_ref()
                .is_none_or(|c| found.0.version() >= c.version());
            if newer {
                let mut views = self.cache_and_view(vec![found]).await?;
                if let Some(view) = views.pop() {
                    return Ok(view);
                }
            }
        }
        cached
            .map(|record| agent_view(&record, name, &self.inner.engine, self.now()))
            .ok_or_else(|| CardError::UnknownAgent(who.to_string()))
    }

    /// A group as one agent (its gathered card; liveness and breaker of its address, which
    /// no heartbeat names: unknown, closed).
    fn group_view(&self, group: rhizo_engine::agents::group::card::GroupAgentCard) -> AgentView {
        let status = self.inner.engine.agent_status(&group.address, self.now());
        AgentView {
            uid: group.address.to_string(),
            name: Some(group.name),
            card: group.card,
            card_version: 0,
            liveness: status.liveness,
            last_heartbeat: None,
            load: None,
            breaker: status.breaker,
        }
    }

    /// Asks a contact for its card now (`capability_query` over our conversation, end to end)
    /// and waits up to [`ASK_AGENT_TIMEOUT`] for the answer, which the inbound path validates
    /// and caches; the agent as the answer shows it.
    ///
    /// # Errors
    ///
    /// [`CardError::UnknownContact`] when `who` is no contact; [`CardError::NoConversation`]
    /// when there is no conversation with it yet; [`CardError::NotAnAgent`] when it answered
    /// that it has no card; [`CardError::NoAnswer`] when no answer came in time.
    pub async fn ask_agent(&self, who: &str) -> Result<AgentView, CardError> {
        let who_owned = who.trim().to_string();
        let contact = self
            .inner
            .db
            .read(move |r| -> Result<_, CardError> { Ok(find_contact_in(&r, &who_owned)?) })
            .await?
            .ok_or_else(|| CardError::UnknownContact(who.to_string()))?;
        let uid = Uid::from_bytes(&contact.uid).to_string();
        // Subscribed before the query goes out, so the answer cannot slip past.
        let mut events = self.subscribe();
        let now = self.now();
        let queued = self
            .with_tx(move |tx, engine| -> Result<bool, CardError> {
                Ok(engine.query_capabilities(tx, &contact, now)?)
            })
            .await?;
        if !queued {
            return Err(CardError::NoConversation(who.to_string()));
        }
        self.inner.outbox_wake.notify_one();
        let answer = async {
            loop {
                match events.recv().await {
                    Ok(ApiEvent::AgentCard { uid: from, agent }) if from == uid => {
                        return Some(agent);
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        match tokio::time::timeout(ASK_AGENT_TIMEOUT, answer).await {
            Ok(Some(true)) => self.agent(&uid, false).await,
            Ok(Some(false)) => Err(CardError::NotAnAgent(who.to_string())),
            Ok(None) | Err(_) => Err(CardError::NoAnswer {
                who: who.to_string(),
                secs: ASK_AGENT_TIMEOUT.as_secs(),
            }),
        }
    }

    /// Sends a contact a `capability_query` (best effort: nothing when there is no
    /// conversation yet).
    async fn query_capabilities_of(&self, uid: Uid) {
        let now = self.now();
        let queued = self
            .with_tx(move |tx, engine| -> Result<bool, CardError> {
                let Some(contact) = tx.contact_by_uid(uid.as_bytes())? else {
                    return Ok(false);
                };
                Ok(engine.query_capabilities(tx, &contact, now)?)
            })
            .await;
        match queued {
            Ok(true) => self.inner.outbox_wake.notify_one(),
            Ok(false) => {}
            Err(e) => debug!(error = %e, "capability query not queued"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_key_reads_back_from_its_peer_id() {
        let device = rhizo_core::DeviceKey::from_bytes(&[5; 32]).public();
        let peer = rhizo_engine::contacts::peer_id_of_device(&device).unwrap();
        assert_eq!(device_of_peer(&peer), Some(device));
        assert_eq!(device_of_peer(&PeerId::random()), None);
    }

    #[test]
    fn the_own_card_view_keeps_the_card_version_apart_from_the_software_version() {
        let card: AgentCard = serde_json::from_value(serde_json::json!({
            "name": "Echo", "version": "2.1",
            "skills": [{"id": "echo.v1", "name": "Echo"}]
        }))
        .unwrap();
        let view = OwnCardView {
            uid: "u".into(),
            card_version: 7,
            expires_at: 9,
            card,
        };
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(json["version"], "2.1");
        assert_eq!(json["card_version"], 7);
        assert_eq!(json["skills"][0]["id"], "echo.v1");
        let back: OwnCardView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }
}
