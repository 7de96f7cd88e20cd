//! Message requests: what a node does with envelopes from someone who is not a contact.
//!
//! ```text
//!  inbound envelope ─▶ precheck: signature ok, sender not a contact ─▶ precheck_request
//!     ─▶ hold_tx (bounded, rhizo-store `requests`) ─▶ signed receipt `HELD`; event
//!        `message_request`; the sender's identity is looked up in the DHT in the background
//!  user: accept ─▶ add the sender as a contact (DHT identity + device list) ─▶ apply_requests:
//!        the held envelopes go through the normal receive path, oldest first ─▶ signed
//!        DELIVERED receipts back to the sender (through the outbox)
//!        decline ─▶ dropped; later envelopes in those conversations get SESSION_CLOSED
//!        block ─▶ dropped; later envelopes from the sender get UNKNOWN_SENDER
//! ```
//!
//! Adding a contact by ticket or UID accepts their pending request the same way.

use std::sync::atomic::Ordering;

use rhizo_core::{
    RootPublicKey, Uid,
    envelope::{MessageType, ReceiptStatus, SecureMessage},
    mailbox::FetchedEntry,
    records::{Profile, ValidRecord, profile_key, validate_record},
    safety::SafetyNumber,
};
use rhizo_store::{
    Store, StoreError,
    requests::{HeldEnvelope, HoldOutcome, RequestIdentity, RequestLimits, RequestRow},
};
use tracing::{debug, info};

use super::{
    ErrorCode, Me, Messaging, MessagingError, Precheck, Received, now_ms, receipt_response,
};
use crate::{events::ApiEvent, unix_now};

/// Bounds on held requests (per sender and in all; see [`RequestLimits`]).
pub(super) const REQUEST_LIMITS: RequestLimits = RequestLimits::DEFAULT;
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
            .map(|r| SafetyNumber::between(&me.root.public(), r).to_string()),
        device_listed: row.device_listed,
        envelopes: row.envelopes,
        bytes: row.bytes,
        first_at: row.first_at,
        last_at: row.last_at,
        blocked: row.blocked,
    }
}

/// What precheck answers for a correctly signed envelope from a non-contact: conversation
/// envelopes are held; anything else (receipts) means nothing without a conversation.
pub(super) fn precheck_request(me: &Me, message: SecureMessage) -> Precheck {
    if message.sender_id == me.uid {
        // Our own UID from a device we do not know: not a request (devices are linked, later).
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender));
    }
    match message.msg_type {
        MessageType::Welcome | MessageType::Application | MessageType::Commit => {
            Precheck::Request(Box::new(message))
        }
        _ => Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender)),
    }
}

/// Inside a transaction: holds a non-contact's envelope; the receipt status to answer and the
/// event for a new request.
pub(super) fn hold_tx(
    tx: &rusqlite::Transaction<'_>,
    message: &SecureMessage,
    now: i64,
) -> Result<(ReceiptStatus, Option<ApiEvent>), StoreError> {
    let envelope = message.encode();
    let outcome = rhizo_store::requests::hold_request_tx(
        tx,
        &HeldEnvelope {
            sender_uid: *message.sender_id.as_bytes(),
            sender_device: *message.sender_device.as_bytes(),
            session_id: *message.session_id.as_bytes(),
            seq: message.sequence_num,
            envelope: &envelope,
        },
        &REQUEST_LIMITS,
        now,
    )?;
    Ok(match outcome {
        HoldOutcome::Held { new_sender } => (
            ReceiptStatus::Held,
            new_sender.then(|| ApiEvent::MessageRequest {
                uid: message.sender_id.to_string(),
                name: None,
                safety_number: None,
            }),
        ),
        HoldOutcome::AlreadyHeld => (ReceiptStatus::Held, None),
        HoldOutcome::Blocked => (ReceiptStatus::Rejected(ErrorCode::UnknownSender), None),
        HoldOutcome::SessionDeclined => (ReceiptStatus::Rejected(ErrorCode::SessionClosed), None),
        // Transient: nothing held is dropped to make room; the sender retries later.
        HoldOutcome::SenderFull | HoldOutcome::AllFull => {
            (ReceiptStatus::Rejected(ErrorCode::QuotaExceeded), None)
        }
    })
}

/// Holds one bare envelope from a non-contact (its own transaction, committed before the
/// receipt is signed).
pub(super) fn hold(store: &mut Store, me: &Me, message: &SecureMessage, now: i64) -> Received {
    match store.transaction(|tx| hold_tx(tx, message, now)) {
        Ok((status, event)) => Received {
            response: receipt_response(me, &[(message, status)]),
            events: event.into_iter().collect(),
            status: Some(status),
        },
        Err(e) => {
            tracing::warn!(error = %e, "holding a message request failed");
            let status = ReceiptStatus::Rejected(ErrorCode::Internal);
            Received {
                response: receipt_response(me, &[(message, status)]),
                events: Vec::new(),
                status: Some(status),
            }
        }
    }
}

/// The UID a user means by `who`: a UID, or the name a pending request's profile carries.
fn request_uid(store: &Store, who: &str) -> Result<Uid, MessagingError> {
    if let Ok(uid) = who.trim().parse::<Uid>() {
        return Ok(uid);
    }
    let named: Vec<RequestRow> = store
        .list_requests()?
        .into_iter()
        .filter(|r| r.name.as_deref() == Some(who))
        .collect();
    match named.as_slice() {
        [one] => Ok(Uid::from_bytes(&one.uid)),
        [] => Err(MessagingError::UnknownRequest(who.to_string())),
        _ => Err(MessagingError::BadInput(format!(
            "several requests carry the name '{who}': use the UID (`rhizo requests`)"
        ))),
    }
}

impl Messaging {
    /// Pending message requests (with `blocked`, the block list instead). Senders whose
    /// identity is not known yet are looked up in the background.
    pub async fn requests(&self, blocked: bool) -> Result<Vec<RequestView>, MessagingError> {
        let rows = self
            .with_store(move |store, _| {
                Ok(if blocked {
                    store.list_blocked()?
                } else {
                    store.list_requests()?
                })
            })
            .await?;
        let now = now_ms();
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
            .map(|r| request_view(r, &self.inner.me))
            .collect())
    }

    /// Accepts a request: the sender becomes a contact (named `name`, else the name on their
    /// profile) and the held messages are applied in order. Returns the contact and how many
    /// envelopes were applied.
    pub async fn accept_request(
        &self,
        who: &str,
        name: Option<String>,
    ) -> Result<(super::ContactView, usize), MessagingError> {
        let who = who.to_string();
        let row = self
            .with_store(move |store, _| {
                let uid = request_uid(store, &who)?;
                store
                    .request(uid.as_bytes())?
                    .filter(|r| !r.blocked)
                    .ok_or_else(|| MessagingError::UnknownRequest(who.clone()))
            })
            .await?;
        let name = name.or(row.name.clone()).ok_or_else(|| {
            MessagingError::BadInput(
                "this request carries no name (no public profile was found): pass --name NAME"
                    .into(),
            )
        })?;
        let uid = Uid::from_bytes(&row.uid);
        let (view, _) = self.add_contact_by_uid(&uid.to_string(), &name).await?;
        // add_contact_by_uid applied the request; count what it held.
        Ok((view, usize::try_from(row.envelopes).unwrap_or(usize::MAX)))
    }

    /// Declines a request: its envelopes are dropped and its conversations refused from now on
    /// (the sender sees SESSION_CLOSED and may start a new one). Returns how many were dropped.
    pub async fn decline_request(&self, who: &str) -> Result<u64, MessagingError> {
        let who = who.to_string();
        self.with_store(move |store, _| {
            let uid = request_uid(store, &who)?;
            store
                .decline_request(uid.as_bytes(), now_ms())?
                .ok_or(MessagingError::UnknownRequest(who))
        })
        .await
    }

    /// Blocks a sender (pending request or not): what it sent is dropped and later envelopes
    /// from it are refused. Returns how many held envelopes were dropped.
    pub async fn block_sender(&self, who: &str) -> Result<u64, MessagingError> {
        let who = who.to_string();
        self.with_store(move |store, inner| {
            let uid = request_uid(store, &who)?;
            if uid == inner.me.uid {
                return Err(MessagingError::BadInput("that is your own UID".into()));
            }
            Ok(store.block_sender(uid.as_bytes(), &REQUEST_LIMITS, now_ms())?)
        })
        .await
    }

    /// Lifts a block.
    pub async fn unblock_sender(&self, who: &str) -> Result<(), MessagingError> {
        let who = who.to_string();
        self.with_store(move |store, _| {
            let uid = who
                .trim()
                .parse::<Uid>()
                .map_err(|e| MessagingError::BadInput(format!("invalid UID: {e}")))?;
            if store.unblock_sender(uid.as_bytes())? {
                Ok(())
            } else {
                Err(MessagingError::UnknownRequest(who))
            }
        })
        .await
    }

    /// Applies what a sender who just became a contact had sent as a request, oldest first
    /// (a Welcome before the messages after it), like envelopes fetched from a mailbox:
    /// delivered ones get signed receipts back through the outbox. The request is forgotten
    /// afterwards (a crash in between leaves it; applying again answers "already have it").
    pub(super) async fn apply_requests(&self, uid: Uid) -> Result<usize, MessagingError> {
        let held = self
            .with_store(move |store, _| Ok(store.held_envelopes(uid.as_bytes())?))
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
        let (_, new) = self.apply_fetched(entries).await?;
        self.with_store(move |store, _| Ok(store.take_request(uid.as_bytes())?))
            .await?;
        self.inner
            .counters
            .requests_accepted
            .fetch_add(1, Ordering::Relaxed);
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
    async fn resolve_request(&self, uid: Uid) -> Result<(), MessagingError> {
        let found = self.lookup_identity(&uid).await;
        let identity = match found {
            Ok((identity, devices)) => {
                let listed: Vec<[u8; 32]> = devices
                    .devices()
                    .iter()
                    .map(|c| *c.device().as_bytes())
                    .collect();
                let senders = self
                    .with_store(move |store, _| Ok(store.request_devices(uid.as_bytes())?))
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
                safety_number: root
                    .map(|r| SafetyNumber::between(&self.inner.me.root.public(), &r).to_string()),
            }
        });
        self.with_store(move |store, _| {
            Ok(store.set_request_identity(uid.as_bytes(), identity.as_ref(), now_ms())?)
        })
        .await?;
        if let Some(event) = event {
            self.emit(event);
        }
        Ok(())
    }

    /// A UID's newest valid public profile in the DHT.
    pub(super) async fn public_profile(&self, uid: &Uid) -> Option<Profile> {
        let key = profile_key(uid);
        let now = u64::try_from(unix_now()).unwrap_or(0);
        self.inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::Profile(p)) if p.root_pk().uid() == *uid => Some(p),
                _ => None,
            })
            .max_by_key(Profile::version)
    }

    /// Emits the events of received envelopes, and looks up the senders of new requests.
    pub(super) fn emit_received(&self, events: Vec<ApiEvent>) {
        for event in events {
            if let ApiEvent::MessageRequest { uid, .. } = &event
                && let Ok(uid) = uid.parse::<Uid>()
            {
                self.inner
                    .counters
                    .requests_received
                    .fetch_add(1, Ordering::Relaxed);
                self.spawn_resolve(uid);
            }
            self.emit(event);
        }
    }
}
