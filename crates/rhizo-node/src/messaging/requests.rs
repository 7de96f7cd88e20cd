//! Message requests: what a node does with envelopes from someone who is not a contact.
//!
//! ```text
//!  inbound envelope ─▶ the engine holds it (rhizo-engine `requests`) ─▶ signed receipt `HELD`;
//!        event `message_request`; the sender's identity is looked up in the DHT in the background
//!  user: accept ─▶ add the sender as a contact (DHT identity + device list) ─▶ apply_requests:
//!        the held envelopes go through the normal receive path, oldest first ─▶ signed
//!        DELIVERED receipts back to the sender (through the outbox)
//!        decline ─▶ dropped; later envelopes in those conversations get SESSION_CLOSED
//!        block ─▶ dropped; later envelopes from the sender get UNKNOWN_SENDER
//! ```
//!
//! Adding a contact by ticket or UID accepts their pending request the same way.

use rhizo_core::{RootPublicKey, Uid, mailbox::FetchedEntry, safety::SafetyNumber};
use rhizo_engine::{Me, requests::REQUEST_LIMITS, sync::SettingChange};
use rhizo_store::{
    Reader,
    requests::{RequestIdentity, RequestRow},
};
use tracing::{debug, info};

use super::{ContactError, Messaging, RequestError};
use crate::events::ApiEvent;

/// Identity lookups (DHT) of request senders running at once; more wait for the next listing.
pub(super) const MAX_RESOLVING: usize = 4;
/// A sender whose identity was not found is looked up again after this long (ms).
const RESOLVE_RETRY_MS: i64 = 60_000;

/// A message request as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RequestView {
    /// The sender's UID.
    pub uid: String,
    /// The name on their public profile, if they published one and it was found.
    pub name: Option<String>,
    /// Fingerprint of their root key, once their identity record was found.
    pub fingerprint: Option<String>,
    /// Safety number between us, once their identity record was found.
    pub safety_number: Option<String>,
    /// Whether the devices that sent the held envelopes are in their signed device list
    /// (`None`: not looked up yet).
    pub device_listed: Option<bool>,
    /// Envelopes held (a Welcome, messages).
    pub envelopes: u64,
    /// Bytes held.
    pub bytes: u64,
    /// First held (unix ms).
    pub first_at: i64,
    /// Last held (unix ms).
    pub last_at: i64,
    /// Whether the sender is blocked (only in the block list).
    pub blocked: bool,
}

fn request_view(row: &RequestRow, me: &Me) -> RequestView {
    let root = row.root_pk.and_then(|r| RootPublicKey::from_bytes(&r).ok());
    RequestView {
        uid: Uid::from_bytes(&row.uid).to_string(),
        name: row.name.clone(),
        fingerprint: root.as_ref().map(|r| r.fingerprint().to_string()),
        safety_number: root
            .as_ref()
            .map(|r| SafetyNumber::between(&me.root_public, r).to_string()),
        device_listed: row.device_listed,
        envelopes: row.envelopes,
        bytes: row.bytes,
        first_at: row.first_at,
        last_at: row.last_at,
        blocked: row.blocked,
    }
}

/// The UID a user means by `who`: a UID, or the name a pending request's profile carries.
fn request_uid(reader: &Reader<'_>, who: &str) -> Result<Uid, RequestError> {
    if let Ok(uid) = who.trim().parse::<Uid>() {
        return Ok(uid);
    }
    let named: Vec<RequestRow> = reader
        .list_requests()?
        .into_iter()
        .filter(|r| r.name.as_deref() == Some(who))
        .collect();
    match named.as_slice() {
        [one] => Ok(Uid::from_bytes(&one.uid)),
        [] => Err(RequestError::UnknownRequest(who.to_string())),
        _ => Err(RequestError::AmbiguousName(who.to_string())),
    }
}

impl Messaging {
    /// Pending message requests (with `blocked`, the block list instead). Senders whose
    /// identity is not known yet are looked up in the background.
    pub async fn requests(&self, blocked: bool) -> Result<Vec<RequestView>, RequestError> {
        let rows = self
            .with_reader(move |reader, _| {
                Ok::<_, RequestError>(if blocked {
                    reader.list_blocked()?
                } else {
                    reader.list_requests()?
                })
            })
            .await?;
        let now = self.now();
        for row in rows.iter().filter(|r| !r.blocked) {
            if row.root_pk.is_none()
                && row
                    .resolved_at
                    .is_none_or(|at| now.saturating_sub(at) >= RESOLVE_RETRY_MS)
            {
                self.spawn_resolve(Uid::from_bytes(&row.uid));
            }
        }
        Ok(rows
            .iter()
            .map(|r| request_view(r, self.inner.engine.me()))
            .collect())
    }

    /// Accepts a request: the sender becomes a contact (named `name`, else the name on their
    /// profile) and the held messages are applied in order. Returns the contact and how many
    /// envelopes were applied.
    pub async fn accept_request(
        &self,
        who: &str,
        name: Option<String>,
    ) -> Result<(super::ContactView, usize), RequestError> {
        let who = who.to_string();
        let row = self
            .with_reader(move |reader, _| {
                let uid = request_uid(reader, &who)?;
                reader
                    .request(uid.as_bytes())?
                    .filter(|r| !r.blocked)
                    .ok_or_else(|| RequestError::UnknownRequest(who.clone()))
            })
            .await?;
        let name = name.or(row.name.clone()).ok_or(RequestError::NoName)?;
        let uid = Uid::from_bytes(&row.uid);
        let (view, _) = self.add_contact_by_uid(&uid.to_string(), &name).await?;
        // add_contact_by_uid applied the request; count what it held.
        Ok((view, usize::try_from(row.envelopes).unwrap_or(usize::MAX)))
    }

    /// Declines a request: its envelopes are dropped and its conversations refused from now on
    /// (the sender sees SESSION_CLOSED and may start a new one). Returns how many were dropped.
    pub async fn decline_request(&self, who: &str) -> Result<u64, RequestError> {
        let who = who.to_string();
        let now = self.now();
        self.with_tx(move |tx, _| {
            let uid = request_uid(tx, &who)?;
            tx.decline_request(uid.as_bytes(), now)?
                .ok_or(RequestError::UnknownRequest(who))
        })
        .await
    }

    /// Blocks a sender (pending request or not): what it sent is dropped and later envelopes
    /// from it are refused. Returns how many held envelopes were dropped.
    pub async fn block_sender(&self, who: &str) -> Result<u64, RequestError> {
        let who = who.to_string();
        let now = self.now();
        let dropped = self
            .with_tx(move |tx, engine| {
                let uid = request_uid(tx, &who)?;
                if uid == engine.me().uid {
                    return Err(RequestError::Ourselves);
                }
                let dropped = tx.block_sender(uid.as_bytes(), &REQUEST_LIMITS, now)?;
                engine.sync_setting(tx, uid.as_bytes(), SettingChange::Block(true), now)?;
                Ok(dropped)
            })
            .await?;
        self.settings_changed(true);
        Ok(dropped)
    }

    /// Lifts a block.
    pub async fn unblock_sender(&self, who: &str) -> Result<(), RequestError> {
        let who = who.to_string();
        let now = self.now();
        self.with_tx(move |tx, engine| {
            let uid = who.trim().parse::<Uid>().map_err(RequestError::BadUid)?;
            if tx.unblock_sender(uid.as_bytes())? {
                engine.sync_setting(tx, uid.as_bytes(), SettingChange::Block(false), now)?;
                Ok(())
            } else {
                Err(RequestError::UnknownRequest(who))
            }
        })
        .await?;
        self.settings_changed(false);
        Ok(())
    }

    /// Applies what a sender who just became a contact had sent as a request, oldest first
    /// (a Welcome before the messages after it), like envelopes fetched from a mailbox:
    /// delivered ones get signed receipts back through the outbox. The request is forgotten
    /// afterwards (a crash in between leaves it; applying again answers "already have it").
    pub(super) async fn apply_requests(&self, uid: Uid) -> Result<usize, ContactError> {
        let held = self
            .with_reader(move |reader, _| {
                Ok::<_, ContactError>(reader.held_envelopes(uid.as_bytes())?)
            })
            .await?;
        if held.is_empty() {
            return Ok(0);
        }
        let count = held.len();
        let entries = held
            .into_iter()
            .map(|envelope| FetchedEntry {
                envelope: envelope.into(),
                expires_at_ms: 0,
            })
            .collect();
        let (_, new) = self.apply_fetched(entries).await.map_err(|e| match e {
            super::FetchError::Engine(e) => ContactError::Engine(e),
            super::FetchError::Db(e) => ContactError::Db(e),
        })?;
        self.with_tx(move |tx, _| Ok::<_, ContactError>(tx.take_request(uid.as_bytes())?))
            .await?;
        self.inner.engine.note_request_accepted();
        info!(envelopes = count, new, "message request accepted");
        Ok(new)
    }

    /// Looks a request sender's identity up in the DHT in the background (at most
    /// [`MAX_RESOLVING`] at once; the others are looked up on a later listing).
    pub(super) fn spawn_resolve(&self, uid: Uid) {
        let Ok(permit) = self.inner.resolving.clone().try_acquire_owned() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = this.resolve_request(uid).await {
                debug!(error = %e, "looking up a request's sender failed");
            }
        });
    }

    /// Finds the sender's identity record, device list and public profile, and records them
    /// on the request: the root key (so the user can compare safety numbers), the name, and
    /// whether the devices that sent the envelopes are listed.
    async fn resolve_request(&self, uid: Uid) -> Result<(), RequestError> {
        let found = self.lookup_identity(&uid).await;
        let identity = match found {
            Ok((identity, devices)) => {
                let listed: Vec<[u8; 32]> = devices
                    .devices()
                    .iter()
                    .map(|c| *c.device().as_bytes())
                    .collect();
                let senders = self
                    .with_reader(move |reader, _| {
                        Ok::<_, RequestError>(reader.request_devices(uid.as_bytes())?)
                    })
                    .await?;
                let name = self
                    .public_profile(&uid)
                    .await
                    .map(|p| p.name().to_string())
                    .filter(|n| !n.is_empty());
                Some(RequestIdentity {
                    root_pk: *identity.root_pk().as_bytes(),
                    name,
                    device_listed: senders.iter().all(|d| listed.contains(d)),
                })
            }
            Err(e) => {
                debug!(error = %e, "a request sender's identity is not in the DHT (yet)");
                None
            }
        };
        let event = identity.as_ref().map(|i| {
            let root = RootPublicKey::from_bytes(&i.root_pk).ok();
            ApiEvent::MessageRequest {
                uid: uid.to_string(),
                name: i.name.clone(),
                safety_number: root.map(|r| {
                    SafetyNumber::between(&self.inner.engine.me().root_public, &r).to_string()
                }),
            }
        });
        let now = self.now();
        self.with_tx(move |tx, _| {
            Ok::<_, RequestError>(tx.set_request_identity(
                uid.as_bytes(),
                identity.as_ref(),
                now,
            )?)
        })
        .await?;
        if let Some(event) = event {
            self.emit(event);
        }
        Ok(())
    }
}
