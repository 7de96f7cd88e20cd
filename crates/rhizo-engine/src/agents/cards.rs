//! Agent cards in the engine: ours (signed by the root key with a growing version, re-signed
//! before it expires, published by the driver under the UID's and this device's card keys, and
//! kept in the worker's [`AgentPolicy`]) and the capability protocol (`capability_query` →
//! `capability_answer{card}`), whose answers are validated against the contact's UID and cached.
//!
//! ```text
//!  set_agent_card(card) ─▶ AgentCardRecord (version + 1) ─▶ own_agent_card, AgentPolicy.card
//!  agent_card_records(now) ─▶ (re-sign if < 2 days left) ─▶ [(key, value)] for the DHT
//!  inbound capability_query ─▶ on_capability_query ─▶ queue_reply(capability_answer{card})
//!  inbound capability_answer ─▶ on_capability_answer ─▶ validate (key = contact's UID) ─▶ agent_cards
//! ```
//!
//! The answer goes through the agent outbox ([`queue_reply`]): written in the inbound
//! transaction (persisted before the receipt), queued in the conversation once it committed.

use prost::Message as _;
use rhizo_core::{
    Uid,
    agent::AgentCard,
    proto::{AgentMessage, CapabilityAnswer, CapabilityQuery, agent_message::Kind},
    records::{
        AgentCardRecord, CardDevice, ValidRecord, agent_card_device_key, agent_card_key,
        validate_record,
    },
};
use rhizo_store::{AgentCardRow, Reader, Tx, messaging::Contact};
use tracing::debug;

use super::{AgentCtx, AgentPolicy, queue_reply};
use crate::{Engine, EngineError, Event, Me, inbound::Reject};

/// Lifetime of our card record (3 to 7 days are allowed).
pub const AGENT_CARD_TTL_SECS: u64 = 3 * 24 * 3600;
/// Our card is re-signed (next version) when less than this is left of its lifetime, so a
/// copy in the DHT never expires while we are online.
pub const AGENT_CARD_RESIGN_SECS: u64 = 2 * 24 * 3600;

/// Our card as stored and signed.
#[derive(Debug, Clone)]
pub struct OwnCard {
    /// The signed record (valid when it was signed; it may have expired since, if the node was
    /// offline).
    pub record: AgentCardRecord,
    /// Its encoding, as published.
    pub bytes: Vec<u8>,
}

impl Engine {
    /// Signs `card` as the next version of our card (served by this device), stores it (and
    /// puts it in the worker's [`AgentPolicy`], whose skill and queue checks use it) and
    /// returns it. The driver publishes it.
    ///
    /// # Errors
    ///
    /// [`EngineError::Record`] for a card the record format refuses
    /// ([`RecordError::AgentCard`](rhizo_core::records::RecordError::AgentCard) names the
    /// rule); or if the database fails.
    pub fn set_agent_card(
        &self,
        tx: &mut Tx<'_>,
        card: AgentCard,
        now: i64,
    ) -> Result<OwnCard, EngineError> {
        let me = &self.me;
        let version = tx
            .own_agent_card()?
            .map_or(0, |own| own.version)
            .saturating_add(1);
        let record = AgentCardRecord::new(
            me.root_signer()?,
            version,
            card,
            vec![CardDevice::sign(&me.device, me.certificate)?],
            crate::secs(now),
            AGENT_CARD_TTL_SECS,
        )?;
        let bytes = record.encode();
        let card = record.card().clone();
        tx.in_savepoint(|tx| -> Result<(), EngineError> {
            tx.set_own_agent_card(version, Some(&bytes), now)?;
            self.set_policy_card(tx, Some(card))
        })??;
        Ok(OwnCard { record, bytes })
    }

    /// Our card, if one is set.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn agent_card(&self, reader: &Reader<'_>) -> Result<Option<OwnCard>, EngineError> {
        Ok(own_card(reader, &self.me)?)
    }

    /// Removes our card (its version is kept, so a later card outranks copies still in the
    /// DHT); true if there was one. The driver stops announcing its skills.
    ///
    /// # Errors
    ///
    /// If the database fails.
    pub fn clear_agent_card(&self, tx: &mut Tx<'_>, now: i64) -> Result<bool, EngineError> {
        let Some(own) = tx.own_agent_card()? else {
            return Ok(false);
        };
        if own.record.is_none() {
            return Ok(false);
        }
        tx.in_savepoint(|tx| -> Result<(), EngineError> {
            tx.set_own_agent_card(own.version, None, now)?;
            self.set_policy_card(tx, None)
        })??;
        Ok(true)
    }

    /// Puts `card` in the worker policy the inbound path applies.
    fn set_policy_card(&self, tx: &mut Tx<'_>, card: Option<AgentCard>) -> Result<(), EngineError> {
        let mut policy = AgentPolicy::read(tx)?;
        policy.card = card;
        self.set_agent_policy(tx, &policy)
    }

    /// Our card to publish, as DHT (key, value) pairs — under the UID's card key and this
    /// device's — re-signed with the next version first when less than
    /// [`AGENT_CARD_RESIGN_SECS`] of its lifetime is left. `None` when we have no card.
    ///
    /// # Errors
    ///
    /// If signing or the database fails.
    pub fn agent_card_records(
        &self,
        tx: &mut Tx<'_>,
        now: i64,
    ) -> Result<Option<(OwnCard, Vec<crate::publish::DhtRecord>)>, EngineError> {
        let Some(mut own) = own_card(tx, &self.me)? else {
            return Ok(None);
        };
        if own.record.expires_at() < crate::secs(now).saturating_add(AGENT_CARD_RESIGN_SECS) {
            own = self.set_agent_card(tx, own.record.card().clone(), now)?;
        }
        let me = &self.me;
        let records = vec![
            (agent_card_key(&me.uid).to_vec(), own.bytes.clone()),
            (
                agent_card_device_key(&me.device.public()).to_vec(),
                own.bytes.clone(),
            ),
        ];
        Ok(Some((own, records)))
    }

    /// Queues a `capability_query` to `contact` on the reliable path (their answer updates the
    /// cached card); false when there is no conversation with them yet.
    ///
    /// # Errors
    ///
    /// If MLS or the database fails.
    pub fn query_capabilities(
        &self,
        tx: &mut Tx<'_>,
        contact: &Contact,
        now: i64,
    ) -> Result<bool, EngineError> {
        let query = AgentMessage {
            kind: Some(Kind::CapabilityQuery(CapabilityQuery {})),
        };
        let queued = self.queue_agent(tx, contact, &query, now);
        if queued.is_err() {
            self.conversations.discard_staged();
        }
        Ok(queued?.is_some())
    }
}

/// Our card as stored, decoded (whatever its lifetime: we signed it).
fn own_card(reader: &Reader<'_>, me: &Me) -> Result<Option<OwnCard>, rhizo_store::StoreError> {
    let Some(bytes) = reader.own_agent_card()?.and_then(|own| own.record) else {
        return Ok(None);
    };
    let key = agent_card_key(&me.uid);
    // Validated at its own creation time, so an expired card still decodes (it is re-signed
    // before it is published again).
    match validate_record(&key, &bytes, created_at_of(&bytes)) {
        Ok(ValidRecord::AgentCard(record)) => Ok(Some(OwnCard { record, bytes })),
        _ => {
            debug!("our stored agent card does not decode; ignored");
            Ok(None)
        }
    }
}

/// The `created_at` of an encoded card record (0 if it does not decode).
fn created_at_of(bytes: &[u8]) -> u64 {
    rhizo_core::proto::SignedRecord::decode(bytes)
        .ok()
        .and_then(|r| rhizo_core::proto::AgentCardBody::decode(r.body).ok())
        .map_or(0, |body| body.created_at)
}

/// A contact asked for our card (`capability_query`): answered with
/// `capability_answer{card}` through the agent outbox (sent once this transaction committed).
/// A node without a card answers too, with an empty card, so the asker learns it is not an
/// agent.
pub(crate) fn on_capability_query(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    _query: &CapabilityQuery,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let card = own_card(tx, ctx.me)?
        .map(|own| own.bytes)
        .unwrap_or_default();
    let answer = AgentMessage {
        kind: Some(Kind::CapabilityAnswer(CapabilityAnswer {
            card: card.into(),
        })),
    };
    queue_reply(tx, &ctx.contact.uid, &answer, now)?;
    Ok(Vec::new())
}

/// A contact's card arrived (`capability_answer`): cached if it validates under the contact's
/// UID's card key and is signed by their root key; an empty card means they are no longer an
/// agent (the cached card is dropped). Either way [`Event::AgentCard`] tells the driver (an
/// `agents ask` waits for it). A bad card is ignored (the message itself is fine).
pub(crate) fn on_capability_answer(
    tx: &mut Tx<'_>,
    ctx: &AgentCtx<'_>,
    answer: &CapabilityAnswer,
    now: i64,
) -> Result<Vec<Event>, Reject> {
    let contact = ctx.contact;
    let uid = Uid::from_bytes(&contact.uid);
    let answered = |agent| {
        vec![Event::AgentCard {
            uid: uid.to_string(),
            agent,
        }]
    };
    if answer.card.is_empty() {
        tx.delete_agent_card(&contact.uid)?;
        return Ok(answered(false));
    }
    match validate_record(&agent_card_key(&uid), &answer.card, crate::secs(now)) {
        Ok(ValidRecord::AgentCard(record)) if record.root_pk().as_bytes() == &contact.root_pk => {
            tx.upsert_agent_card(&card_row(&record, &answer.card, now))?;
            return Ok(answered(true));
        }
        Ok(_) => debug!("a contact's agent card is not theirs; ignored"),
        Err(e) => debug!(error = %e, "a contact's agent card does not verify; ignored"),
    }
    Ok(Vec::new())
}

/// A cached card, decoded (it was validated when it was cached; an expired one still shows).
pub fn cached_card(row: &AgentCardRow) -> Option<AgentCardRecord> {
    let key = agent_card_key(&Uid::from_bytes(&row.uid));
    match validate_record(&key, &row.record, row.expires_at.saturating_sub(1)) {
        Ok(ValidRecord::AgentCard(record)) => Some(record),
        _ => None,
    }
}

/// The cache row for a validated card record.
pub fn card_row(record: &AgentCardRecord, bytes: &[u8], now_ms: i64) -> AgentCardRow {
    AgentCardRow {
        uid: *record.uid().as_bytes(),
        version: record.version(),
        record: bytes.to_vec(),
        expires_at: record.expires_at(),
        fetched_at: now_ms,
    }
}

#[cfg(test)]
mod tests;
