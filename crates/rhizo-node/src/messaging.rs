//! The messaging service: contacts, conversations (MLS), envelopes, the outbox and receipts.
//!
//! ```text
//!  send_text ─▶ conversation (MLS encrypt) ─▶ envelope (sign) ─▶ outbox row ┐  one SQLite
//!                                                                         ┘  transaction
//!  outbox worker ─▶ /rhizo/msg/1 to each device of the contact ─▶ signed receipt ─▶ delivered
//!
//!  inbound /rhizo/msg/1 ─▶ size, decode ─▶ known device? ─▶ signature ─▶ seen-set ─▶ MLS
//!     ─▶ message row ─▶ commit ─▶ signed receipt back            (all but the last: one tx)
//! ```
//!
//! Store and MLS work runs on the blocking pool under the store's mutex, which is also what
//! serialises changes to a conversation's MLS state. Persist-before-acknowledge: an incoming
//! message is committed (MLS state, seen-set and the message row together) before its receipt
//! is sent; an outgoing one is committed before its first send.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use libp2p::{Multiaddr, PeerId};
use prost::Message as _;
use rhizo_core::mailbox::{FetchPager, FetchedEntry, REPLICAS};
use rhizo_core::{
    DeviceCertificate, DeviceKey, DevicePublicKey, RootKey, RootPublicKey, Uid,
    envelope::{
        DeliveryReceipt, EnvelopeBatch, EnvelopeId, ErrorCode, ErrorMessage, MAX_BATCH_ENVELOPES,
        MAX_BATCH_FRAME_BYTES, MAX_RECEIPT_ENTRIES, MessageType, NONCE_LEN, ReceiptEntry,
        ReceiptStatus, SecureMessage, SessionId, envelope_digest, is_batch_frame,
    },
    proto::ChatContent,
    records::{
        DeviceList, IdentityRecord, KeyPackageBundle, Profile, ValidRecord, device_list_key,
        identity_key, key_packages_key, profile_key, validate_record,
    },
    safety::SafetyNumber,
    seen::{Freshness, SeenSet, SeenStore, check_timestamp},
    ticket::{ContactTicket, TicketDevice},
};
use rhizo_e2e::{Conversation, Device, E2eStore, Processed, RekeyPolicy};
use rhizo_net::Client;
use rhizo_store::{
    Db, Store, StoreError,
    messaging::{
        AddContact, Contact, ContactDevice, ConversationRow, MessageRow, MessageState, NewIncoming,
        NewOutgoing, OutboxItem, ProfileRow, insert_conversation_tx, insert_incoming, seen_insert,
        upsert_profile_tx,
    },
};
use tokio::sync::{Notify, broadcast};
use tracing::{debug, info, warn};

mod commits;
mod requests;

pub use requests::RequestView;

use crate::{
    conv_cache::ConversationCache,
    events::ApiEvent,
    mailbox::{Mailbox, Source, StoreVerdict},
    unix_now,
};

/// First byte of a `/rhizo/msg/1` response: what follows.
pub const RESPONSE_RECEIPT: u8 = 1;
/// First byte of a `/rhizo/msg/1` response carrying an [`ErrorMessage`].
pub const RESPONSE_ERROR: u8 = 2;
/// Longest chat text accepted.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// Outbox entries handled per pass.
const OUTBOX_BATCH: usize = 64;
/// Wait after a failed outbox pass (the database, not the network, failed).
const FIRST_RETRY_DELAY_MS: i64 = 1_000;
/// Longest retry delay: an unreachable contact is retried at least this often.
const MAX_RETRY_DELAY_MS: i64 = 5 * 60 * 1_000;
/// Envelopes older than this are refused (rhizo-core's replay window).
const MAX_ENVELOPE_AGE_MS: i64 = rhizo_core::seen::MAX_ENVELOPE_AGE as i64;
/// How often the persisted seen-set is pruned.
const SEEN_PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// One-time KeyPackages published per device (plus one last-resort).
const ONE_TIME_KEY_PACKAGES: usize = 8;
/// TTL of published records.
const RECORD_TTL_SECS: u64 = 3 * 24 * 3600;
/// TTL of our public profile record (3 to 7 days are allowed; republished hourly).
const PROFILE_TTL_SECS: u64 = 3 * 24 * 3600;
/// How often records are republished while online.
const REPUBLISH_INTERVAL: Duration = Duration::from_secs(3600);
/// How often the publisher checks whether a one-time KeyPackage was used up.
const PUBLISHER_CHECK_INTERVAL: Duration = Duration::from_secs(5);
/// KeyPackages are replaced after this long (openmls gives them a 28-day lifetime).
const KEY_PACKAGE_ROTATION_SECS: u64 = 14 * 24 * 3600;
/// A superseded KeyPackage keeps its private keys this long, then they are deleted: a sender may
/// fetch the old bundle from the DHT until its record expires (`RECORD_TTL_SECS`), and a Welcome
/// made from it is accepted up to the replay window (`MAX_ENVELOPE_AGE` + `MAX_CLOCK_SKEW`) after
/// it was sealed. After that no Welcome the node would accept can use it. 17 days 5 minutes.
const KEY_PACKAGE_GRACE_SECS: u64 = RECORD_TTL_SECS
    + (rhizo_core::seen::MAX_ENVELOPE_AGE + rhizo_core::seen::MAX_CLOCK_SKEW) / 1000;
/// Meta key: when our current KeyPackages were made (unix seconds).
const META_KEY_PACKAGES_AT: &str = "key_packages_made_at";
/// Meta key holding our current KeyPackages (hex, one per line; the last is last-resort).
const META_KEY_PACKAGE_BUNDLE: &str = "key_package_bundle";
/// Meta key holding the last record version used (versions must grow).
const META_RECORD_VERSION: &str = "record_version";
/// Meta key holding our current signed device list (hex), shown to mailbox replicas.
const META_DEVICE_LIST: &str = "device_list_record";
/// A stored envelope is retried directly this often, in case the contact is back but has not
/// fetched its mailbox yet.
const STORED_RETRY_MS: i64 = 10 * 60 * 1_000;
/// Passes over one fetched page: an envelope that waits for another (a Welcome, a commit) is
/// retried once the others were applied.
const FETCH_PASSES: usize = 3;
/// Replicas asked beyond the closest [`REPLICAS`] (some may have left).
const EXTRA_FETCH_REPLICAS: usize = 3;

/// Errors a user of the messaging service sees.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessagingError {
    /// No contact by that name or UID.
    #[error("no contact '{0}': add one with `rhizo contacts add TICKET`")]
    UnknownContact(String),
    /// The ticket does not parse or verify.
    #[error("invalid ticket: {0}")]
    BadTicket(String),
    /// The contact's KeyPackages could not be found in the DHT.
    #[error(
        "cannot start a conversation with {0}: none of their devices' KeyPackages were found \
         in the DHT (is their node running and connected to the network?)"
    )]
    NoKeyPackages(String),
    /// None of the contact's devices proved it belongs to them (see [`proven_ticket_devices`]
    /// and [`proven_list_devices`]), so none can be trusted.
    #[error(
        "none of {0}'s devices proves that it belongs to them (a device must sign its \
         certificate, in the ticket or in its KeyPackages): ask them for a new ticket \
         (`rhizo invite`), or retry adding by UID once their node has published its KeyPackages"
    )]
    UnprovenDevices(String),
    /// The UID's identity or device list is not in the DHT.
    #[error(
        "no identity record for UID {0} was found in the DHT: check the UID, and that their node \
         is running and connected to the network (or ask for their ticket)"
    )]
    NotInDht(String),
    /// Text too long or empty.
    #[error("{0}")]
    BadInput(String),
    /// No such profile.
    #[error("{0}")]
    UnknownProfile(String),
    /// Not in that channel.
    #[error("{0}")]
    UnknownChannel(String),
    /// No pending message request from that sender.
    #[error("no message request from '{0}': see `rhizo requests`")]
    UnknownRequest(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// MLS.
    #[error("end-to-end encryption: {0}")]
    E2e(String),
    /// Too much is waiting already; the caller may retry shortly.
    #[error("busy: {0}")]
    Busy(String),
    /// Internal.
    #[error("internal error: {0}")]
    Internal(String),
}

impl MessagingError {
    /// Whether the user asked for something that does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::UnknownContact(_)
                | Self::NotInDht(_)
                | Self::UnknownProfile(_)
                | Self::UnknownChannel(_)
                | Self::UnknownRequest(_)
        )
    }
}

/// This node's identity, as the messaging service needs it.
pub(crate) struct Me {
    pub(crate) root: RootKey,
    pub(crate) device: DeviceKey,
    pub(crate) certificate: DeviceCertificate,
    pub(crate) uid: Uid,
    pub(crate) name: Option<String>,
}

/// The messaging service (cheap to clone).
#[derive(Clone)]
pub struct Messaging {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Messaging {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Messaging").finish_non_exhaustive()
    }
}

struct Inner {
    db: Db,
    /// The seen-set's LRU and window in front of the persisted `seen` table.
    seen: Mutex<SeenSet<InTransaction>>,
    client: Client,
    me: Me,
    mls_device: Device,
    events: broadcast::Sender<ApiEvent>,
    outbox_wake: Notify,
    rekey: RekeyPolicy,
    mailbox: Mailbox,
    /// Texts waiting for the next group commit (see [`Messaging::send_text`]).
    sends: Mutex<SendQueue>,
    counters: Counters,
    /// Loaded MLS conversations (see [`crate::conv_cache`]).
    conversations: ConversationCache,
    /// Identity lookups of message-request senders running at once.
    resolving: Arc<tokio::sync::Semaphore>,
}

/// How much group commit and batching happened (for `/v1/stats` and the metrics).
#[derive(Default)]
struct Counters {
    send_commits: AtomicU64,
    grouped_sends: AtomicU64,
    batches_sent: AtomicU64,
    batched_envelopes_sent: AtomicU64,
    batches_received: AtomicU64,
    batched_envelopes_received: AtomicU64,
    requests_received: AtomicU64,
    requests_accepted: AtomicU64,
    conversations_closed: AtomicU64,
}

/// Counters of the messaging service since start.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct MessagingStats {
    /// Transactions that committed texts queued through the group commit.
    pub send_commits: u64,
    /// Texts queued through the group commit (÷ `send_commits` = texts per `fsync`).
    pub grouped_sends: u64,
    /// Batch frames sent (each answered by one receipt).
    pub batches_sent: u64,
    /// Envelopes sent inside batch frames.
    pub batched_envelopes_sent: u64,
    /// Batch frames received and applied (one transaction each).
    pub batches_received: u64,
    /// Envelopes received inside batch frames.
    pub batched_envelopes_received: u64,
    /// MLS conversations found loaded in memory.
    pub conversation_cache_hits: u64,
    /// MLS conversations loaded from the database.
    pub conversation_cache_misses: u64,
    /// Mailbox replica: transactions that committed stores for others (one `fsync` each).
    #[serde(default)]
    pub mailbox_commits: u64,
    /// Mailbox replica: stores answered from them (÷ `mailbox_commits` = stores per `fsync`).
    #[serde(default)]
    pub mailbox_stores: u64,
    /// Mailbox replica: stores answered `RATE_LIMITED` because the writer's queue was full.
    #[serde(default)]
    pub mailbox_refused_busy: u64,
    /// New message requests (senders who are not contacts).
    #[serde(default)]
    pub requests_received: u64,
    /// Message requests accepted (their envelopes applied).
    #[serde(default)]
    pub requests_accepted: u64,
    /// Conversations closed because the peer refused them for good.
    #[serde(default)]
    pub conversations_closed: u64,
}

/// Texts to encrypt and queue, committed together: while one transaction waits for the disk,
/// the next sends gather here, so under load many messages share one `fsync`.
#[derive(Default)]
struct SendQueue {
    jobs: Vec<SendJob>,
    /// A drain task is running (it takes jobs until the queue is empty).
    draining: bool,
}

/// One text to send (to a contact by name or UID), and where its answer goes.
struct SendJob {
    to: String,
    text: String,
    reply: tokio::sync::oneshot::Sender<Result<Grouped, MessagingError>>,
}

/// What the group commit did with a text.
enum Grouped {
    /// Queued in an existing conversation (committed); the contact's name.
    Queued(MessageView, String),
    /// The contact has no conversation yet: the first message takes its own path.
    FirstMessage(Contact),
}

/// Most texts waiting for a group commit; more are refused as busy, not queued without bound.
const MAX_PENDING_SENDS: usize = 1024;
/// Most texts in one group commit.
const SEND_GROUP: usize = 64;

/// A contact as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContactView {
    /// Local name.
    pub name: String,
    /// UID.
    pub uid: String,
    /// Fingerprint of their root key.
    pub fingerprint: String,
    /// Safety number between us.
    pub safety_number: String,
    /// Whether it was compared and marked verified.
    pub verified: bool,
    /// Their device PeerIds.
    pub devices: Vec<String>,
}

/// A message as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MessageView {
    /// Row id.
    pub id: i64,
    /// `out` or `in`.
    pub direction: String,
    /// The text.
    pub text: Option<String>,
    /// Sender's timestamp (unix ms).
    pub sent_at: i64,
    /// queued, sent, delivered, read, failed, received.
    pub state: String,
    /// Sender's sequence number.
    pub seq: u64,
    /// Last error, if any.
    pub error: Option<String>,
    /// Mailbox replicas holding it (state `stored`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
}

/// A profile as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProfileView {
    /// Whose.
    pub uid: String,
    /// Display name.
    pub name: String,
    /// Grows with every change.
    pub version: u64,
    /// Avatar image type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_mime: Option<String>,
    /// Avatar bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar_base64: Option<String>,
    /// Published in the DHT.
    pub public: bool,
    /// own, contact (received end-to-end) or dht.
    pub source: String,
}

fn profile_view(uid: &Uid, p: &Profile, public: bool, source: &str) -> ProfileView {
    ProfileView {
        uid: uid.to_string(),
        name: p.name().to_string(),
        version: p.version(),
        avatar_mime: (!p.avatar_mime().is_empty()).then(|| p.avatar_mime().to_string()),
        avatar_base64: (!p.avatar().is_empty()).then(|| data_encoding::BASE64.encode(p.avatar())),
        public,
        source: source.into(),
    }
}

fn row_view(row: &ProfileRow, source: &str) -> ProfileView {
    ProfileView {
        uid: Uid::from_bytes(&row.uid).to_string(),
        name: row.name.clone(),
        version: row.version,
        avatar_mime: row.avatar_mime.clone(),
        avatar_base64: row.avatar.as_ref().map(|a| data_encoding::BASE64.encode(a)),
        public: row.public,
        source: source.into(),
    }
}

/// What one mailbox fetch did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct FetchReport {
    /// Replicas that answered.
    pub replicas: usize,
    /// Envelopes fetched (with the copies from several replicas).
    pub fetched: usize,
    /// New messages (and Welcomes, commits) applied.
    pub new: usize,
    /// Entries deleted from replicas.
    pub deleted: usize,
}

/// What this node holds for others, for `rhizo mailbox`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct HeldView {
    /// Envelopes held.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When the oldest was stored (unix ms).
    pub oldest: Option<i64>,
    /// Distinct recipients.
    pub recipients: u64,
}

/// Outgoing messages not yet delivered, per contact and state.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct QueuedView {
    /// Contact name.
    pub contact: String,
    /// queued, sent or stored.
    pub state: String,
    /// How many.
    pub count: u64,
    /// Oldest (sent_at, unix ms).
    pub oldest: i64,
    /// Fewest replicas holding one of them (state `stored`).
    pub replicas: Option<u32>,
}

/// `rhizo mailbox`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct MailboxStatus {
    /// What we hold for others.
    pub held: HeldView,
    /// What we still have to deliver.
    pub queued: Vec<QueuedView>,
}

fn message_view(m: &MessageRow) -> MessageView {
    MessageView {
        id: m.id,
        direction: if m.outgoing { "out" } else { "in" }.into(),
        text: m.body.clone(),
        sent_at: m.sent_at,
        state: m.state.to_string(),
        seq: m.seq,
        error: m.error.clone(),
        replicas: m.replicas,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn random<const N: usize>() -> Result<[u8; N], MessagingError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| MessagingError::Internal(e.to_string()))?;
    Ok(b)
}

fn peer_id_of_device(device: &DevicePublicKey) -> Option<PeerId> {
    let pk = libp2p::identity::ed25519::PublicKey::try_from_bytes(device.as_bytes()).ok()?;
    Some(libp2p::identity::PublicKey::from(pk).to_peer_id())
}

fn e2e(e: impl std::fmt::Display) -> MessagingError {
    MessagingError::E2e(e.to_string())
}

impl Messaging {
    pub(crate) fn new(
        db: Db,
        client: Client,
        me: Me,
        rekey: RekeyPolicy,
        mailbox: Mailbox,
    ) -> Result<Self, MessagingError> {
        let mls_device =
            Device::new(&me.device.to_bytes(), &me.certificate.encode()).map_err(e2e)?;
        let (events, _) = broadcast::channel(crate::events::EVENT_BUFFER);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                client,
                me,
                mls_device,
                seen: Mutex::new(SeenSet::new(InTransaction)),
                events,
                outbox_wake: Notify::new(),
                rekey,
                mailbox,
                sends: Mutex::new(SendQueue::default()),
                counters: Counters::default(),
                conversations: ConversationCache::new(crate::conv_cache::CAPACITY),
                resolving: Arc::new(tokio::sync::Semaphore::new(requests::MAX_RESOLVING)),
            }),
        })
    }

    /// Counters since start.
    pub fn stats(&self) -> MessagingStats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let replica = self.inner.mailbox.replica_stats();
        MessagingStats {
            send_commits: get(&c.send_commits),
            grouped_sends: get(&c.grouped_sends),
            batches_sent: get(&c.batches_sent),
            batched_envelopes_sent: get(&c.batched_envelopes_sent),
            batches_received: get(&c.batches_received),
            batched_envelopes_received: get(&c.batched_envelopes_received),
            conversation_cache_hits: self.inner.conversations.counts().0,
            conversation_cache_misses: self.inner.conversations.counts().1,
            mailbox_commits: replica.commits,
            mailbox_stores: replica.stores,
            mailbox_refused_busy: replica.refused_busy,
            requests_received: get(&c.requests_received),
            requests_accepted: get(&c.requests_accepted),
            conversations_closed: get(&c.conversations_closed),
        }
    }

    /// The sender side of the event stream (other services publish on it too).
    pub fn event_sender(&self) -> broadcast::Sender<ApiEvent> {
        self.inner.events.clone()
    }

    /// Subscribes to incoming messages and state changes.
    pub fn subscribe(&self) -> broadcast::Receiver<ApiEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: ApiEvent) {
        // No subscriber is fine: events are also in the database.
        let _ = self.inner.events.send(event);
    }

    /// Runs `f` with the store on the database's writer thread.
    async fn with_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store, &Inner) -> Result<T, MessagingError> + Send + 'static,
    ) -> Result<T, MessagingError> {
        let this = self.clone();
        self.inner
            .db
            .with_store(move |store| f(store, &this.inner))
            .await
            .map_err(|e| MessagingError::Internal(e.to_string()))?
    }

    // ---- contacts ---------------------------------------------------------------------------

    /// Our contact ticket, with the addresses the node listens on.
    pub async fn invite(&self) -> Result<ContactTicket, MessagingError> {
        let info = self
            .inner
            .client
            .info()
            .await
            .map_err(|e| MessagingError::Internal(e.to_string()))?;
        // Advertised addresses win over the bound listeners (`--announce`).
        let source = if info.external_addrs.is_empty() {
            &info.listen_addrs
        } else {
            &info.external_addrs
        };
        let addrs: Vec<String> = source
            .iter()
            .filter(|a| dialable(a))
            .map(ToString::to_string)
            .take(rhizo_core::ticket::MAX_TICKET_ADDRS)
            .collect();
        let me = &self.inner.me;
        let device = TicketDevice::with_proof(&me.device, me.certificate, addrs)
            .map_err(|e| MessagingError::BadTicket(e.to_string()))?;
        ContactTicket::new(
            &me.root,
            vec![device],
            me.name.clone(),
            u64::try_from(unix_now()).unwrap_or(0),
        )
        .map_err(|e| MessagingError::BadTicket(e.to_string()))
    }

    /// Adds (or updates) a contact from a ticket; `name` overrides the ticket's name.
    pub async fn add_contact(
        &self,
        ticket: &str,
        name: Option<String>,
    ) -> Result<(ContactView, bool), MessagingError> {
        let ticket: ContactTicket =
            ticket
                .trim()
                .parse()
                .map_err(|e: rhizo_core::ticket::TicketError| {
                    MessagingError::BadTicket(e.to_string())
                })?;
        if ticket.uid() == self.inner.me.uid {
            return Err(MessagingError::BadInput("that is your own ticket".into()));
        }
        let name = name
            .or_else(|| ticket.name().map(String::from))
            .ok_or_else(|| {
                MessagingError::BadInput("the ticket carries no name: pass --name NAME".into())
            })?;
        let devices = proven_ticket_devices(&ticket, &name)?;
        // Tell the network layer where the devices are, so it can dial them.
        for d in &devices {
            for addr in &d.addrs {
                if let (Ok(peer), Ok(addr)) =
                    (d.peer_id.parse::<PeerId>(), addr.parse::<Multiaddr>())
                {
                    let _ = self
                        .inner
                        .client
                        .dial(addr.with_p2p(peer).unwrap_or_else(|a| a))
                        .await;
                }
            }
        }
        let contact = Contact {
            uid: *ticket.uid().as_bytes(),
            root_pk: *ticket.root_pk().as_bytes(),
            name: name.clone(),
            verified: false,
            added_at: now_ms(),
            devices,
        };
        let uid_text = ticket.uid().to_string();
        let outcome = self
            .with_store(move |store, _| Ok(store.add_contact(&contact, now_ms())?))
            .await?;
        // By UID: re-adding a known contact keeps the name it already has.
        let view = self.contact_view(&uid_text).await?;
        self.emit(ApiEvent::ContactAdded {
            name: view.name.clone(),
        });
        // Adding someone whose message request is pending accepts it.
        self.apply_requests(ticket.uid()).await?;
        // A newly known contact may unblock queued messages.
        self.inner.outbox_wake.notify_one();
        Ok((view, outcome == AddContact::Added))
    }

    async fn contact_view(&self, name: &str) -> Result<ContactView, MessagingError> {
        let name = name.to_string();
        self.with_store(move |store, inner| {
            let c = find_contact(store, &name)?;
            Ok(view_of(&c, &inner.me))
        })
        .await
    }

    /// All contacts.
    pub async fn contacts(&self) -> Result<Vec<ContactView>, MessagingError> {
        self.with_store(|store, inner| {
            Ok(store
                .list_contacts()?
                .iter()
                .map(|c| view_of(c, &inner.me))
                .collect())
        })
        .await
    }

    /// Marks a contact verified after the user compared safety numbers.
    pub async fn verify_contact(&self, name: &str) -> Result<ContactView, MessagingError> {
        let name = name.to_string();
        self.with_store(move |store, inner| {
            let c = find_contact(store, &name)?;
            store.set_contact_verified(&c.uid, true)?;
            let c = find_contact(store, &name)?;
            Ok(view_of(&c, &inner.me))
        })
        .await
    }

    // ---- sending ----------------------------------------------------------------------------

    /// Queues a text message to a contact (by name or UID); returns its row.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<MessageView, MessagingError> {
        if text.is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(MessagingError::BadInput(format!(
                "a message has 1 to {MAX_TEXT_BYTES} bytes of text"
            )));
        }
        match self.send_in_group(to.to_string(), text.to_string()).await? {
            Grouped::Queued(view, _) => Ok(view),
            Grouped::FirstMessage(contact) => self.send_first(contact, text.to_string()).await,
        }
    }

    /// The first message to a contact: a new conversation (Welcome, then the text), committed
    /// on its own.
    async fn send_first(
        &self,
        contact: Contact,
        text: String,
    ) -> Result<MessageView, MessagingError> {
        let key_packages = self.fetch_key_packages(&contact).await?;
        let contact_name = contact.name.clone();
        let view = self
            .with_store(move |store, inner| {
                let now = now_ms();
                let (session, new) = match store.open_conversation_with(&contact.uid)? {
                    Some(row) => (row, false),
                    None => (
                        create_conversation(store, inner, &contact, &key_packages, now)?,
                        true,
                    ),
                };
                let content = ChatContent {
                    text: text.clone(),
                    sent_at_ms: now as u64,
                    // A new conversation carries our profile, if we set one.
                    profile: if new {
                        own_profile_record(store, &inner.me)?
                            .unwrap_or_default()
                            .into()
                    } else {
                        Default::default()
                    },
                }
                .encode_to_vec();
                let id = queue_application(
                    store,
                    inner,
                    &contact,
                    &session,
                    &content,
                    "text",
                    Some(&text),
                    now,
                )?;
                store
                    .message(id)?
                    .map(|m| message_view(&m))
                    .ok_or_else(|| MessagingError::Internal("message vanished".into()))
            })
            .await?;
        self.emit(ApiEvent::MessageState {
            id: view.id,
            contact: contact_name,
            state: view.state.clone(),
        });
        self.inner.outbox_wake.notify_one();
        Ok(view)
    }

    /// Queues a text through the group commit: the first sender to find no drain running
    /// starts one; every sender waits for its own answer, which comes only after the
    /// transaction holding its message committed (persist before acknowledge). A contact with
    /// no conversation yet comes back as [`Grouped::FirstMessage`].
    async fn send_in_group(&self, to: String, text: String) -> Result<Grouped, MessagingError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let start_drain = {
            let mut queue = self
                .inner
                .sends
                .lock()
                .map_err(|_| MessagingError::Internal("send queue poisoned".into()))?;
            if queue.jobs.len() >= MAX_PENDING_SENDS {
                return Err(MessagingError::Busy(format!(
                    "{MAX_PENDING_SENDS} messages are waiting to be saved; try again shortly"
                )));
            }
            queue.jobs.push(SendJob { to, text, reply });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start_drain {
            // A task of its own: a caller that goes away must not strand the others' jobs.
            tokio::spawn(self.clone().drain_sends());
        }
        answer
            .await
            .map_err(|_| MessagingError::Internal("the send was dropped".into()))?
    }

    /// Commits queued sends, up to [`SEND_GROUP`] per transaction, until none are left. Each
    /// group is one blocking task: the contacts are looked up, then every text with a
    /// conversation is encrypted and queued in one transaction (a savepoint each).
    async fn drain_sends(self) {
        loop {
            let jobs: Vec<SendJob> = {
                let Ok(mut queue) = self.inner.sends.lock() else {
                    return;
                };
                if queue.jobs.is_empty() {
                    queue.draining = false;
                    return;
                }
                let n = queue.jobs.len().min(SEND_GROUP);
                queue.jobs.drain(..n).collect()
            };
            let (work, replies): (Vec<_>, Vec<_>) =
                jobs.into_iter().map(|j| ((j.to, j.text), j.reply)).unzip();
            let results = self
                .with_store(move |store, inner| {
                    let now = now_ms();
                    // Per job: its contact and conversation, or its answer already.
                    let mut answers: Vec<Option<Result<Grouped, MessagingError>>> =
                        Vec::with_capacity(work.len());
                    let mut ready: Vec<(usize, Contact, ConversationRow, &str)> = Vec::new();
                    for (i, (to, text)) in work.iter().enumerate() {
                        let found = find_contact(store, to).and_then(|contact| {
                            let session = store.open_conversation_with(&contact.uid)?;
                            Ok((contact, session))
                        });
                        answers.push(match found {
                            Ok((contact, Some(session))) => {
                                ready.push((i, contact, session, text));
                                None
                            }
                            Ok((contact, None)) => Some(Ok(Grouped::FirstMessage(contact))),
                            Err(e) => Some(Err(e)),
                        });
                    }
                    if ready.is_empty() {
                        return Ok((answers, false));
                    }
                    let outcome = store.transaction(|tx| -> Result<_, MessagingError> {
                        let mut ids = Vec::with_capacity(ready.len());
                        for (_, contact, session, text) in &ready {
                            let content = ChatContent {
                                text: (*text).to_string(),
                                sent_at_ms: now as u64,
                                profile: Default::default(),
                            }
                            .encode_to_vec();
                            ids.push(rhizo_store::messaging::in_savepoint(tx, || {
                                queue_application_tx(
                                    tx,
                                    inner,
                                    contact,
                                    session,
                                    &content,
                                    "text",
                                    Some(text),
                                    now,
                                )
                            })?);
                        }
                        Ok(ids)
                    });
                    inner.conversations.settle(&outcome);
                    // Committed: read each row back for its answer.
                    for (id, (i, contact, _, _)) in outcome?.into_iter().zip(&ready) {
                        answers[*i] = Some(id.and_then(|id| {
                            store
                                .message(id)?
                                .map(|m| Grouped::Queued(message_view(&m), contact.name.clone()))
                                .ok_or_else(|| MessagingError::Internal("message vanished".into()))
                        }));
                    }
                    Ok((answers, true))
                })
                .await;
            match results {
                Ok((answers, committed)) => {
                    let c = &self.inner.counters;
                    let mut queued = 0u64;
                    for (answer, reply) in answers.into_iter().zip(replies) {
                        let answer = answer.unwrap_or_else(|| {
                            Err(MessagingError::Internal("a send got no answer".into()))
                        });
                        if let Ok(Grouped::Queued(view, contact)) = &answer {
                            queued += 1;
                            self.emit(ApiEvent::MessageState {
                                id: view.id,
                                contact: contact.clone(),
                                state: view.state.clone(),
                            });
                        }
                        let _ = reply.send(answer);
                    }
                    if committed {
                        c.send_commits.fetch_add(1, Ordering::Relaxed);
                    }
                    c.grouped_sends.fetch_add(queued, Ordering::Relaxed);
                    if queued > 0 {
                        self.inner.outbox_wake.notify_one();
                    }
                }
                Err(e) => {
                    // Nothing of this group was committed: every sender hears why.
                    for reply in replies {
                        let _ = reply.send(Err(MessagingError::Internal(e.to_string())));
                    }
                }
            }
        }
    }

    /// Looks the contact's KeyPackages up in the DHT, newest valid bundle per device.
    async fn fetch_key_packages(&self, contact: &Contact) -> Result<Vec<Vec<u8>>, MessagingError> {
        let uid = Uid::from_bytes(&contact.uid);
        let now = u64::try_from(unix_now()).unwrap_or(0);
        let mut out = Vec::new();
        for device in &contact.devices {
            let Ok(device_pk) = DevicePublicKey::from_bytes(&device.device_pk) else {
                continue;
            };
            let key = key_packages_key(&uid, &device_pk);
            let values = self
                .inner
                .client
                .get_records(key.to_vec())
                .await
                .unwrap_or_default();
            let best = values
                .iter()
                .filter_map(|v| match validate_record(&key, v, now) {
                    Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                    _ => None,
                })
                .filter(|b| b.device_cert().root().as_bytes() == &contact.root_pk)
                .max_by_key(KeyPackageBundle::version);
            if let Some(bundle) = best
                && let Some(kp) = pick_key_package(&bundle, u64::from_le_bytes(random::<8>()?))
            {
                out.push(kp);
            }
        }
        if out.is_empty() {
            return Err(MessagingError::NoKeyPackages(contact.name.clone()));
        }
        Ok(out)
    }

    /// History with a contact, in order. With `mark_read`, received messages count as shown
    /// to the user: they become `read` and a signed READ receipt goes back to the sender.
    pub async fn history(
        &self,
        with: &str,
        limit: usize,
        mark_read: bool,
    ) -> Result<Vec<MessageView>, MessagingError> {
        let with = with.to_string();
        let (views, queued) = self
            .with_store(move |store, inner| {
                let c = find_contact(store, &with)?;
                let mut queued = false;
                if mark_read {
                    for conv in store.conversations_with(&c.uid)? {
                        queued |= queue_read_receipt(store, inner, &c, &conv.session_id)?;
                    }
                }
                let mut all = Vec::new();
                for conv in store.conversations_with(&c.uid)? {
                    all.extend(store.messages(&conv.session_id, limit)?);
                }
                all.retain(|m| m.kind == "text");
                all.sort_by(|a, b| {
                    (a.sent_at, a.sender_device, a.seq).cmp(&(b.sent_at, b.sender_device, b.seq))
                });
                // The newest `limit` across the contact's conversations.
                if all.len() > limit {
                    all.drain(..all.len() - limit);
                }
                Ok((all.iter().map(message_view).collect::<Vec<_>>(), queued))
            })
            .await?;
        if queued {
            self.inner.outbox_wake.notify_one();
        }
        Ok(views)
    }

    // ---- the outbox worker ------------------------------------------------------------------

    /// Delivers queued envelopes until `shutdown` fires.
    pub async fn run_outbox(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_sweep: Option<tokio::time::Instant> = None;
        loop {
            if last_sweep.is_none_or(|t| t.elapsed() >= commits::COMMIT_SWEEP_INTERVAL) {
                last_sweep = Some(tokio::time::Instant::now());
                let swept = self
                    .with_store(|store, inner| {
                        // Held requests past the replay window could never be accepted.
                        store.prune_requests(now_ms() - MAX_ENVELOPE_AGE_MS)?;
                        commits::settle_pending_commits(store, &inner.conversations, now_ms())
                    })
                    .await;
                if let Err(e) = swept {
                    warn!(error = %e, "pruning requests or settling pending self-updates failed");
                }
            }
            let next = match self.outbox_pass().await {
                Ok(next) => next,
                Err(e) => {
                    warn!(error = %e, "outbox pass failed");
                    Some(now_ms() + FIRST_RETRY_DELAY_MS)
                }
            };
            let wait = next
                .map(|t| Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0).max(50)))
                .unwrap_or(Duration::from_secs(60));
            tokio::select! {
                () = self.inner.outbox_wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Sends what is due; returns when the next attempt is due.
    ///
    /// Per contact, in order: consecutive due envelopes go together in one batch frame (up to
    /// [`MAX_BATCH_ENVELOPES`]), which the recipient applies in order in one transaction and
    /// answers with one signed receipt; their new states are then written in one transaction.
    /// So under load a message costs a fraction of a round trip, a commit and a signature,
    /// while one message alone still goes at once (a batch of one is sent bare).
    async fn outbox_pass(&self) -> Result<Option<i64>, MessagingError> {
        let due = self
            .with_store(|store, _| {
                let items = store.outbox_due(now_ms(), OUTBOX_BATCH)?;
                let mut with_contacts = Vec::with_capacity(items.len());
                for item in items {
                    let contact = store.contact_by_uid(&item.contact_uid)?;
                    with_contacts.push((item, contact));
                }
                Ok(with_contacts)
            })
            .await?;
        // Each contact's envelopes keep their order (a Welcome before the messages after it).
        let mut per_contact: Vec<(Contact, Vec<OutboxItem>)> = Vec::new();
        for (item, contact) in due {
            let Some(contact) = contact else { continue };
            match per_contact.iter_mut().find(|(c, _)| c.uid == contact.uid) {
                Some((_, items)) => items.push(item),
                None => per_contact.push((contact, vec![item])),
            }
        }
        for (contact, items) in per_contact {
            // A contact none of whose devices answered is not dialled again in the same pass.
            let mut unreachable: Option<String> = None;
            for chunk in batches(&items) {
                let outcome = match &unreachable {
                    Some(why) => Err(why.clone()),
                    None => self.deliver(&contact, chunk).await,
                };
                match outcome {
                    Ok(outcomes) => self.record_outcomes(&contact, chunk, outcomes).await?,
                    Err(why) => {
                        for item in chunk {
                            self.store_in_mailbox(item, &contact, why.clone()).await?;
                        }
                        unreachable = Some("no device of the contact answered".into());
                    }
                }
            }
        }
        self.with_store(|store, _| Ok(store.outbox_next_attempt()?))
            .await
    }

    /// Writes what the receipts said about `items`, in one transaction: new states (and a
    /// confirmed self-update where a commit was delivered or read, also when its row was
    /// already delivered), `sent` for what the recipient's node holds as a message request, a
    /// closed conversation where the recipient refused it for good (its Welcome, or
    /// SESSION_CLOSED), or a retry for an envelope the recipient refused for now. The commit
    /// does not wait for the disk: lost, it is redone (the envelope is sent again and answered
    /// "already have it").
    async fn record_outcomes(
        &self,
        contact: &Contact,
        items: &[OutboxItem],
        outcomes: Vec<Outcome>,
    ) -> Result<(), MessagingError> {
        let updates: Vec<SentUpdate> = items
            .iter()
            .zip(outcomes)
            .map(|(item, outcome)| SentUpdate::new(item, outcome))
            .collect();
        let (changed, closed) = self
            .with_store(move |store, inner| {
                let outcome = store.transaction_relaxed(|tx| -> Result<_, MessagingError> {
                    let now = now_ms();
                    let mut changed = Vec::new();
                    let mut closed = 0u64;
                    for update in updates {
                        closed += update.apply(tx, &inner.conversations, now, &mut changed)?;
                    }
                    Ok((changed, closed))
                });
                inner.conversations.settle(&outcome);
                outcome
            })
            .await?;
        self.inner
            .counters
            .conversations_closed
            .fetch_add(closed, Ordering::Relaxed);
        for (id, state) in changed {
            self.emit(ApiEvent::MessageState {
                id,
                contact: contact.name.clone(),
                state: state.to_string(),
            });
        }
        Ok(())
    }

    /// Sends envelopes (one bare, or several as a batch frame) to every device of the contact
    /// (each holds its own MLS leaf). An envelope is delivered once any device signed a receipt
    /// for it; a device that cannot be reached now gets it again on the next retry only if none
    /// could. `Err` when no device answered with a valid receipt; otherwise one outcome per
    /// envelope, where `Err` is a transient refusal by a device that did answer.
    async fn deliver(
        &self,
        contact: &Contact,
        items: &[OutboxItem],
    ) -> Result<Vec<Outcome>, String> {
        let mut last_error = String::from("the contact has no known device");
        let mut best: Option<Vec<Outcome>> = None;
        let sent: Vec<SecureMessage> = items
            .iter()
            .map(|i| SecureMessage::decode(&i.envelope).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let request = match items {
            [one] => one.envelope.clone(),
            many => {
                let c = &self.inner.counters;
                c.batches_sent.fetch_add(1, Ordering::Relaxed);
                c.batched_envelopes_sent
                    .fetch_add(many.len() as u64, Ordering::Relaxed);
                EnvelopeBatch {
                    envelopes: many.iter().map(|i| i.envelope.clone().into()).collect(),
                }
                .encode()
                .map_err(|e| e.to_string())?
            }
        };
        for device in &contact.devices {
            let Ok(peer) = device.peer_id.parse::<PeerId>() else {
                continue;
            };
            let Ok(device_pk) = DevicePublicKey::from_bytes(&device.device_pk) else {
                continue;
            };
            let addrs: Vec<Multiaddr> =
                device.addrs.iter().filter_map(|a| a.parse().ok()).collect();
            let outcome = match self
                .inner
                .client
                .send_message(peer, addrs, request.clone())
                .await
            {
                Ok(response) => parse_response(&response, &device_pk, &sent),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(result) => {
                    best = Some(match best {
                        None => result,
                        // Delivered (or read) on one device beats failed on another.
                        Some(current) => current
                            .into_iter()
                            .zip(result)
                            .map(|(a, b)| better_outcome(a, b))
                            .collect(),
                    });
                }
                Err(e) => last_error = e,
            }
        }
        best.ok_or(last_error)
    }

    /// No device of the contact could be reached: the envelope goes to the contact's mailbox
    /// replicas, with our device certificate (the replicas bind the store to its sender).
    /// Stored → state `stored` (receipts are then final); a replica's `REPLAY_DETECTED` counts
    /// as a replica holding it, never as delivered (only a signed receipt from the recipient's
    /// device is); otherwise it stays queued with the reason (e.g. a full quota) and is
    /// retried with backoff.
    async fn store_in_mailbox(
        &self,
        item: &OutboxItem,
        contact: &Contact,
        why: String,
    ) -> Result<(), MessagingError> {
        let id = item.id;
        // Receipts are not acknowledged in turn: once a replica holds one, it is done.
        let final_once_stored = matches!(item.kind.as_str(), "read_receipt" | "receipt");
        let exclude: Vec<PeerId> = contact
            .devices
            .iter()
            .filter_map(|d| d.peer_id.parse().ok())
            .collect();
        let ttl = self.inner.mailbox.settings().ttl_secs;
        let stored = self
            .inner
            .mailbox
            .store_for(
                &Uid::from_bytes(&contact.uid),
                &exclude,
                &item.envelope,
                ttl,
                &self.inner.me.certificate,
            )
            .await;
        if let StoreVerdict::Stored { replicas } = stored.verdict() {
            let next = if final_once_stored {
                rhizo_store::messaging::NO_RETRY
            } else {
                now_ms() + STORED_RETRY_MS
            };
            debug!(
                id,
                replicas, "contact offline: envelope stored on mailbox replicas"
            );
            let changed = self
                .with_store(move |store, _| Ok(store.mark_stored(id, replicas, next, now_ms())?))
                .await?;
            if changed {
                self.emit(ApiEvent::MessageState {
                    id,
                    contact: contact.name.clone(),
                    state: MessageState::Stored.to_string(),
                });
            }
            return Ok(());
        }
        let delay = retry_delay(item.attempts);
        let mut error = format!("no device of {} is reachable ({why})", contact.name);
        if stored.quota_full {
            error.push_str(
                "; the mailbox replicas refused it: their quota for this sender or recipient \
                 is full (it stays queued and is retried)",
            );
        } else if !stored.errors.is_empty() {
            error.push_str("; mailbox: ");
            error.push_str(
                &stored
                    .errors
                    .iter()
                    .take(2)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        debug!(id, %error, delay_ms = delay, "delivery failed; will retry");
        self.with_store(move |store, _| {
            Ok(store.record_attempt_failed(id, now_ms() + delay, &error)?)
        })
        .await
    }

    // ---- profiles ---------------------------------------------------------------------------

    /// Signs a new version of our profile, sends it end-to-end to every contact we have a
    /// conversation with, and (when `public`) publishes it on the nodes closest to
    /// SHA-256("rhizo/meta/v1" ‖ UID). Returns the profile and how many DHT nodes stored it.
    pub async fn set_profile(
        &self,
        name: &str,
        avatar: Vec<u8>,
        avatar_mime: &str,
        public: bool,
    ) -> Result<(ProfileView, usize), MessagingError> {
        let name = name.trim().to_string();
        let mime = avatar_mime.trim().to_string();
        let (view, queued) = self
            .with_store(move |store, inner| {
                let me = &inner.me;
                let now = now_ms();
                let version = next_record_version(store)?;
                let profile = Profile::new(
                    &me.root,
                    version,
                    &name,
                    avatar,
                    &mime,
                    u64::try_from(now / 1000).unwrap_or(0),
                    PROFILE_TTL_SECS,
                )
                .map_err(|e| MessagingError::BadInput(e.to_string()))?;
                let record = profile.encode();
                store.upsert_profile(&profile_row(&me.uid, &profile, &record, public, now))?;
                // End-to-end to every contact we talk with.
                let content = ChatContent {
                    text: String::new(),
                    sent_at_ms: now as u64,
                    profile: record.clone().into(),
                }
                .encode_to_vec();
                let mut queued = 0;
                for contact in store.list_contacts()? {
                    if let Some(session) = store.open_conversation_with(&contact.uid)? {
                        queue_application(
                            store, inner, &contact, &session, &content, "profile", None, now,
                        )?;
                        queued += 1;
                    }
                }
                Ok((profile_view(&me.uid, &profile, public, "own"), queued))
            })
            .await?;
        if queued > 0 {
            self.inner.outbox_wake.notify_one();
        }
        let stored = if public {
            self.publish_profile().await?
        } else {
            0
        };
        Ok((view, stored))
    }

    /// Publishes our public profile (re-signed with a new version, so it never expires while
    /// we are online) on the closest nodes; 0 when we have none or it is not public.
    async fn publish_profile(&self) -> Result<usize, MessagingError> {
        let record = self
            .with_store(|store, inner| {
                let me = &inner.me;
                let Some(row) = store.profile(me.uid.as_bytes())? else {
                    return Ok(None);
                };
                if !row.public {
                    return Ok(None);
                }
                let now = now_ms();
                let version = next_record_version(store)?;
                let profile = Profile::new(
                    &me.root,
                    version,
                    &row.name,
                    row.avatar.clone().unwrap_or_default(),
                    row.avatar_mime.as_deref().unwrap_or(""),
                    u64::try_from(now / 1000).unwrap_or(0),
                    PROFILE_TTL_SECS,
                )
                .map_err(|e| MessagingError::Internal(e.to_string()))?;
                let record = profile.encode();
                store.upsert_profile(&profile_row(&me.uid, &profile, &record, true, now))?;
                Ok(Some(record))
            })
            .await?;
        let Some(record) = record else { return Ok(0) };
        let key = profile_key(&self.inner.me.uid).to_vec();
        let closest: Vec<PeerId> = self
            .inner
            .client
            .closest_peers(key.clone())
            .await
            .unwrap_or_default()
            .into_iter()
            .take(REPLICAS)
            .map(|p| p.peer)
            .collect();
        if closest.is_empty() {
            return Err(MessagingError::Internal(
                "no node to publish the profile on (is the node connected?)".into(),
            ));
        }
        self.inner
            .client
            .put_record_to(key, record, closest)
            .await
            .map_err(|e| MessagingError::Internal(e.to_string()))
    }

    /// A profile: ours (`who` = None), a contact's as they sent it end-to-end, or else the
    /// public one in the DHT (by contact name or UID), verified against the UID.
    pub async fn profile(&self, who: Option<&str>) -> Result<ProfileView, MessagingError> {
        let Some(who) = who else {
            return self
                .with_store(|store, inner| {
                    let row = store.profile(inner.me.uid.as_bytes())?.ok_or_else(|| {
                        MessagingError::UnknownProfile(
                            "you have no profile yet: set one with `rhizo profile set --name NAME`"
                                .into(),
                        )
                    })?;
                    Ok(row_view(&row, "own"))
                })
                .await;
        };
        let who_owned = who.to_string();
        let known = self
            .with_store(move |store, _| {
                let uid = match find_contact(store, &who_owned) {
                    Ok(c) => Uid::from_bytes(&c.uid),
                    Err(e) => who_owned.trim().parse::<Uid>().map_err(|_| e)?,
                };
                Ok((uid, store.profile(uid.as_bytes())?))
            })
            .await?;
        let (uid, row) = known;
        if let Some(row) = row {
            return Ok(row_view(&row, "contact"));
        }
        let best = self.public_profile(&uid).await.ok_or_else(|| {
            MessagingError::UnknownProfile(format!(
                "no public profile of {uid} was found (profiles are opt-in: they may not have \
                 published one)"
            ))
        })?;
        Ok(profile_view(&uid, &best, true, "dht"))
    }

    // ---- the mailbox: fetching ours ---------------------------------------------------------

    /// Fetches our mailbox from its replicas (and from our own store, since we may be one of
    /// our closest nodes), applies what it holds in order, deletes what was handled from each
    /// replica with a signed receipt, and queues delivery receipts to the senders.
    pub async fn fetch_mailbox(&self) -> Result<FetchReport, MessagingError> {
        let device_list = self
            .with_store(|store, inner| current_device_list(store, &inner.me))
            .await?;
        let me = &self.inner.me;
        let mut sources = vec![Source::Local];
        sources.extend(
            self.inner
                .mailbox
                .closest(&me.uid, false)
                .await
                .into_iter()
                .take(REPLICAS + EXTRA_FETCH_REPLICAS)
                .map(Source::Remote),
        );
        let mut report = FetchReport::default();
        for source in &sources {
            let mut answered = false;
            // Pages past what we leave on the replica (a sender who is not a contact, a
            // transient refusal), so it never hides what follows; bounded rounds.
            let mut pager = FetchPager::new();
            while let Some(cursor) = pager.next() {
                let page = match self
                    .inner
                    .mailbox
                    .fetch_page(source, &me.device, &me.uid, &device_list, cursor)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => {
                        debug!(error = %e, "mailbox fetch from a replica failed");
                        pager.failed();
                        continue;
                    }
                };
                answered = true;
                let (returned, more, next_cursor) =
                    (page.entries.len(), page.more, page.next_cursor);
                report.fetched += returned;
                let handled = if returned == 0 {
                    Vec::new()
                } else {
                    let (handled, new) = self.apply_fetched(page.entries).await?;
                    report.new += new;
                    handled
                };
                pager.page(returned, handled.len(), more, next_cursor);
                for chunk in handled.chunks(MAX_RECEIPT_ENTRIES) {
                    let mut receipt = DeliveryReceipt {
                        recipient_device: me.device.public(),
                        timestamp: u64::try_from(now_ms()).unwrap_or(0),
                        entries: chunk.to_vec(),
                        signature: [0; 64],
                    };
                    receipt
                        .sign(&me.device)
                        .map_err(|e| MessagingError::Internal(e.to_string()))?;
                    match self
                        .inner
                        .mailbox
                        .delete(source, &me.uid, &device_list, &receipt)
                        .await
                    {
                        Ok(n) => report.deleted += n as usize,
                        Err(e) => debug!(error = %e, "mailbox delete failed"),
                    }
                }
            }
            if answered && matches!(source, Source::Remote(_)) {
                report.replicas += 1;
            }
        }
        if report.new > 0 {
            info!(new = report.new, "messages fetched from the mailbox");
        }
        Ok(report)
    }

    /// Applies fetched envelopes, in conversation order; returns the receipt entries for what
    /// was handled (to delete from the replica) and how many were new.
    async fn apply_fetched(
        &self,
        entries: Vec<FetchedEntry>,
    ) -> Result<(Vec<ReceiptEntry>, usize), MessagingError> {
        let (handled, new, events, receipts) = self
            .with_store(move |store, inner| {
                let mut pending: Vec<(SecureMessage, Vec<u8>)> = entries
                    .into_iter()
                    .filter_map(|e| {
                        let m = SecureMessage::decode(&e.envelope).ok()?;
                        Some((m, e.envelope.to_vec()))
                    })
                    .collect();
                pending.sort_by(|(a, _), (b, _)| {
                    (a.session_id.as_bytes(), a.sequence_num)
                        .cmp(&(b.session_id.as_bytes(), b.sequence_num))
                });
                let mut handled = Vec::new();
                let mut events = Vec::new();
                let mut to_acknowledge: Vec<(SecureMessage, ReceiptEntry)> = Vec::new();
                let mut new = 0;
                for _ in 0..FETCH_PASSES {
                    let before = pending.len();
                    let mut retry = Vec::new();
                    for (message, bytes) in pending {
                        let r = receive(
                            store,
                            &inner.me,
                            &inner.mls_device,
                            &inner.conversations,
                            &inner.seen,
                            &bytes,
                        );
                        events.extend(r.events);
                        let status = match r.status {
                            Some(status) => status,
                            None => match error_code_of(&r.response) {
                                Some(code) if !code.is_transient() => ReceiptStatus::Rejected(code),
                                _ => {
                                    retry.push((message, bytes));
                                    continue;
                                }
                            },
                        };
                        // Transient: kept on the replica and tried again on the next fetch
                        // (until its TTL ends). Held (a message request) is handled: this node
                        // keeps it now.
                        if let ReceiptStatus::Rejected(code) = status
                            && code.is_transient()
                        {
                            retry.push((message, bytes));
                            continue;
                        }
                        let entry = ReceiptEntry::for_envelope(&message, status);
                        handled.push(entry);
                        let conversation_envelope = matches!(
                            message.msg_type,
                            MessageType::Welcome | MessageType::Application | MessageType::Commit
                        );
                        if status == ReceiptStatus::Delivered && conversation_envelope {
                            new += 1;
                            to_acknowledge.push((message, entry));
                        } else if matches!(status, ReceiptStatus::Rejected(_))
                            && message.msg_type == MessageType::Welcome
                        {
                            // A Welcome refused for good: the sender learns it (signed) and
                            // closes that conversation instead of sending in it forever.
                            to_acknowledge.push((message, entry));
                        }
                    }
                    pending = retry;
                    if pending.is_empty() || pending.len() == before {
                        break;
                    }
                }
                // The senders learn `delivered` from a signed receipt, sent like any envelope
                // (directly, or through their own mailbox when they are offline).
                let receipts = !to_acknowledge.is_empty();
                queue_delivery_receipts(store, inner, to_acknowledge)?;
                Ok((handled, new, events, receipts))
            })
            .await?;
        self.emit_received(events);
        if receipts {
            self.inner.outbox_wake.notify_one();
        }
        Ok((handled, new))
    }

    /// Fetches our mailbox at start (as soon as a replica answers) and then every poll
    /// interval, until `shutdown` fires.
    pub async fn run_mailbox(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let poll = self.inner.mailbox.settings().poll;
        let mut reached = false;
        loop {
            let wait = if reached {
                poll
            } else {
                poll.min(Duration::from_secs(2))
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
            match self.fetch_mailbox().await {
                Ok(report) => reached |= report.replicas > 0,
                Err(e) => warn!(error = %e, "fetching the mailbox failed"),
            }
        }
    }

    /// What this node holds for others and what it still has queued for its contacts.
    pub async fn mailbox_status(&self) -> Result<MailboxStatus, MessagingError> {
        self.with_store(|store, _| {
            let held = store.mailbox_summary()?;
            let contacts = store.list_contacts()?;
            let queued = store
                .outbox_summary()?
                .into_iter()
                .map(|row| QueuedView {
                    contact: contacts
                        .iter()
                        .find(|c| c.uid == row.contact_uid)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| Uid::from_bytes(&row.contact_uid).to_string()),
                    state: row.state.to_string(),
                    count: row.count,
                    oldest: row.oldest,
                    replicas: row.replicas_min,
                })
                .collect();
            Ok(MailboxStatus {
                held: HeldView {
                    count: held.count,
                    bytes: held.bytes,
                    oldest: held.oldest,
                    recipients: held.recipients,
                },
                queued,
            })
        })
        .await
    }

    // ---- receiving --------------------------------------------------------------------------

    /// Handles one inbound `/rhizo/msg/1` request; returns the response bytes.
    pub async fn handle_inbound(&self, peer: PeerId, payload: Vec<u8>) -> Vec<u8> {
        let result = self
            .with_store(move |store, inner| {
                let receive = if is_batch_frame(&payload) {
                    receive_batch
                } else {
                    receive
                };
                let received = receive(
                    store,
                    &inner.me,
                    &inner.mls_device,
                    &inner.conversations,
                    &inner.seen,
                    &payload,
                );
                if is_batch_frame(&payload)
                    && let Some(n) = received_entries(&received.response)
                {
                    let c = &inner.counters;
                    c.batches_received.fetch_add(1, Ordering::Relaxed);
                    c.batched_envelopes_received
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                Ok(received)
            })
            .await;
        match result {
            Ok(Received {
                response, events, ..
            }) => {
                self.emit_received(events);
                response
            }
            Err(e) => {
                warn!(%peer, error = %e, "inbound message failed");
                error_response(ErrorCode::Internal, "internal error", None)
            }
        }
    }

    // ---- records ----------------------------------------------------------------------------

    /// Publishes our KeyPackage bundle (creating it once) in the DHT, then keeps republishing.
    pub async fn run_publisher(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut last_published: Option<tokio::time::Instant> = None;
        let mut last_pruned: Option<tokio::time::Instant> = None;
        loop {
            if last_pruned.is_none_or(|t| t.elapsed() >= SEEN_PRUNE_INTERVAL) {
                // Forget the ids whose envelopes the window refuses anyway (by their envelope
                // timestamp, with the clock-skew slack: rhizo-core `seen::prune_cutoff`).
                let cutoff = seen_prune_cutoff(now_ms());
                match self
                    .with_store(move |store, _| Ok(store.prune_seen(cutoff)?))
                    .await
                {
                    Ok(n) if n > 0 => debug!(pruned = n, "seen-set pruned"),
                    Ok(_) => {}
                    Err(e) => warn!(error = %e, "pruning the seen-set failed"),
                }
                last_pruned = Some(tokio::time::Instant::now());
            }
            let bundle_used = self
                .with_store(|store, _| Ok(store.get_meta(META_KEY_PACKAGE_BUNDLE)?.is_none()))
                .await
                .unwrap_or(false);
            let due = last_published.is_none_or(|t| t.elapsed() >= REPUBLISH_INTERVAL);
            if due || bundle_used {
                if let Err(e) = self.publish_identity().await {
                    debug!(error = %e, "identity records not published yet");
                }
                if due && let Err(e) = self.publish_profile().await {
                    debug!(error = %e, "public profile not republished yet");
                }
                match self.publish_key_packages().await {
                    Ok(n) => {
                        info!(peers = n, "published KeyPackages in the DHT");
                        last_published = Some(tokio::time::Instant::now());
                    }
                    Err(e) => debug!(error = %e, "KeyPackages not published yet"),
                }
            }
            let wait = if last_published.is_some() {
                PUBLISHER_CHECK_INTERVAL
            } else {
                Duration::from_secs(2)
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Publishes the signed identity record and device list, so others can add us by UID.
    async fn publish_identity(&self) -> Result<(), MessagingError> {
        let records = self
            .with_store(|store, inner| {
                let now = u64::try_from(unix_now()).unwrap_or(0);
                let me = &inner.me;
                let identity = IdentityRecord::new(&me.root, now, RECORD_TTL_SECS)
                    .map_err(|e| MessagingError::Internal(e.to_string()))?;
                let devices = new_device_list(store, me)?;
                Ok(vec![
                    (identity_key(&me.uid).to_vec(), identity.encode()),
                    (device_list_key(&me.uid).to_vec(), devices),
                ])
            })
            .await?;
        for (key, value) in records {
            self.inner
                .client
                .put_record(key, value)
                .await
                .map_err(|e| MessagingError::Internal(e.to_string()))?;
        }
        Ok(())
    }

    /// Adds a contact by UID alone: their signed identity record and device list come from the
    /// DHT and are checked against the UID (UID = hash of the root key).
    pub async fn add_contact_by_uid(
        &self,
        uid: &str,
        name: &str,
    ) -> Result<(ContactView, bool), MessagingError> {
        let uid: Uid = uid.trim().parse().map_err(|e: rhizo_core::IdCodeError| {
            MessagingError::BadInput(format!("invalid UID: {e}"))
        })?;
        if uid == self.inner.me.uid {
            return Err(MessagingError::BadInput("that is your own UID".into()));
        }
        let (identity, devices) = self.lookup_identity(&uid).await?;
        // Proof of possession: each device's KeyPackage bundle, signed by the device itself.
        let now = u64::try_from(unix_now()).unwrap_or(0);
        let mut bundles = Vec::new();
        for cert in devices.devices() {
            let key = key_packages_key(&uid, &cert.device());
            bundles.extend(
                self.inner
                    .client
                    .get_records(key.to_vec())
                    .await
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|v| match validate_record(&key, v, now) {
                        Ok(ValidRecord::KeyPackages(bundle)) => Some(bundle),
                        _ => None,
                    }),
            );
        }
        let contact = Contact {
            uid: *uid.as_bytes(),
            root_pk: *identity.root_pk().as_bytes(),
            name: name.to_string(),
            verified: false,
            added_at: now_ms(),
            devices: proven_list_devices(&devices, &bundles, name)?,
        };
        let uid_text = uid.to_string();
        let outcome = self
            .with_store(move |store, _| Ok(store.add_contact(&contact, now_ms())?))
            .await?;
        let view = self.contact_view(&uid_text).await?;
        self.emit(ApiEvent::ContactAdded {
            name: view.name.clone(),
        });
        // Adding someone whose message request is pending accepts it.
        self.apply_requests(uid).await?;
        self.inner.outbox_wake.notify_one();
        Ok((view, outcome == AddContact::Added))
    }

    /// A UID's signed identity record and newest device list from the DHT, both checked
    /// against the UID (UID = hash of the root key).
    async fn lookup_identity(
        &self,
        uid: &Uid,
    ) -> Result<(IdentityRecord, DeviceList), MessagingError> {
        let now = u64::try_from(unix_now()).unwrap_or(0);
        let key = identity_key(uid);
        let identity = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .find_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::Identity(r)) => Some(r),
                _ => None,
            })
            .ok_or_else(|| MessagingError::NotInDht(uid.to_string()))?;
        let key = device_list_key(uid);
        let devices = self
            .inner
            .client
            .get_records(key.to_vec())
            .await
            .unwrap_or_default()
            .iter()
            .filter_map(|v| match validate_record(&key, v, now) {
                Ok(ValidRecord::DeviceList(d)) if d.root_pk() == identity.root_pk() => Some(d),
                _ => None,
            })
            .max_by_key(DeviceList::version)
            .ok_or_else(|| MessagingError::NotInDht(uid.to_string()))?;
        Ok((identity, devices))
    }

    async fn publish_key_packages(&self) -> Result<usize, MessagingError> {
        let (key, value) = self
            .with_store(|store, inner| {
                let now = u64::try_from(unix_now()).unwrap_or(0);
                let bundle = build_key_package_bundle(store, &inner.me, &inner.mls_device, now)?;
                let key = key_packages_key(&inner.me.uid, &inner.me.device.public());
                Ok((key.to_vec(), bundle))
            })
            .await?;
        self.inner
            .client
            .put_record(key, value)
            .await
            .map_err(|e| MessagingError::Internal(e.to_string()))
    }
}

/// The persisted seen-set keeps every id whose envelope timestamp is at or above this at
/// `now_ms` (rhizo-core `seen::prune_cutoff`: the window, plus the clock-skew slack).
fn seen_prune_cutoff(now_ms: i64) -> i64 {
    let cutoff = rhizo_core::seen::prune_cutoff(u64::try_from(now_ms).unwrap_or(0));
    i64::try_from(cutoff).unwrap_or(i64::MAX)
}

fn next_record_version(store: &mut Store) -> Result<u64, MessagingError> {
    let last: u64 = store
        .get_meta(META_RECORD_VERSION)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let version = last.max(u64::try_from(unix_now()).unwrap_or(0)) + 1;
    store.set_meta(META_RECORD_VERSION, &version.to_string())?;
    Ok(version)
}

/// A freshly signed bundle (new version and lifetime, so it never expires while we are online)
/// of our KeyPackages, at `now` (unix seconds). The KeyPackages themselves are kept (in `meta`)
/// until a Welcome used one (then the receive path drops the bundle) or they are
/// [`KEY_PACKAGE_ROTATION_SECS`] old; then new ones are made and the previous set is *retired*
/// (rhizo-e2e `replace_published_key_packages`). Retired KeyPackages' private keys are deleted
/// from the database once [`KEY_PACKAGE_GRACE_SECS`] have passed (checked on every build, so at
/// least hourly while online), then the WAL is checkpointed so the zeroed pages (secure delete)
/// replace the old page images in the file.
fn build_key_package_bundle(
    store: &mut Store,
    me: &Me,
    mls_device: &Device,
    now: u64,
) -> Result<Vec<u8>, MessagingError> {
    let made_at: u64 = store
        .get_meta(META_KEY_PACKAGES_AT)?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stored: Vec<Vec<u8>> = store
        .get_meta(META_KEY_PACKAGE_BUNDLE)?
        .unwrap_or_default()
        .lines()
        .filter_map(|l| hex::decode(l).ok())
        .collect();
    let kps = if stored.len() >= 2 && now.saturating_sub(made_at) < KEY_PACKAGE_ROTATION_SECS {
        stored
    } else {
        let kps = store.transaction(|tx| -> Result<_, MessagingError> {
            let mls = E2eStore::from_connection(tx).map_err(e2e)?;
            let mut kps =
                rhizo_e2e::create_key_packages(&mls, mls_device, ONE_TIME_KEY_PACKAGES, false)
                    .map_err(e2e)?;
            kps.extend(rhizo_e2e::create_key_packages(&mls, mls_device, 1, true).map_err(e2e)?);
            rhizo_e2e::replace_published_key_packages(&mls, &kps, now).map_err(e2e)?;
            Ok(kps)
        })?;
        let joined: Vec<String> = kps.iter().map(hex::encode).collect();
        store.set_meta(META_KEY_PACKAGE_BUNDLE, &joined.join("\n"))?;
        store.set_meta(META_KEY_PACKAGES_AT, &now.to_string())?;
        kps
    };
    let deleted = store.transaction(|tx| -> Result<_, MessagingError> {
        let mls = E2eStore::from_connection(tx).map_err(e2e)?;
        // Idempotent for a set recorded when it was made; records a set made before this
        // bookkeeping existed, so that it too is retired and deleted in its turn.
        rhizo_e2e::replace_published_key_packages(&mls, &kps, now).map_err(e2e)?;
        rhizo_e2e::delete_retired_key_packages(&mls, now.saturating_sub(KEY_PACKAGE_GRACE_SECS))
            .map_err(e2e)
    })?;
    if deleted > 0 {
        debug!(
            deleted,
            "deleted the private keys of superseded KeyPackages"
        );
        // The zeroed pages go to the WAL; copy them into the database file and empty the log,
        // so the old keys are not left in either. Best effort: busy readers delay it to the
        // next deletion.
        if let Err(e) = store
            .connection()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            })
        {
            debug!(error = %e, "checkpoint after deleting KeyPackages failed");
        }
    }
    let version = next_record_version(store)?;
    let last_resort = kps.len() - 1;
    let bundle = KeyPackageBundle::new(
        &me.device,
        me.certificate,
        version,
        kps,
        last_resort,
        now,
        RECORD_TTL_SECS,
    )
    .map_err(|e| MessagingError::Internal(e.to_string()))?;
    Ok(bundle.encode())
}

/// A random one-time KeyPackage of the bundle (the last-resort one only if there is no other):
/// random, so two senders rarely pick the same one.
fn pick_key_package(bundle: &KeyPackageBundle, random: u64) -> Option<Vec<u8>> {
    let all = bundle.key_packages();
    let one_time: Vec<&bytes::Bytes> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != bundle.last_resort_index())
        .map(|(_, kp)| kp)
        .collect();
    if one_time.is_empty() {
        return bundle.last_resort().map(|kp| kp.to_vec());
    }
    let index = usize::try_from(random % one_time.len() as u64).unwrap_or(0);
    one_time.get(index).map(|kp| kp.to_vec())
}

/// Marks the conversation's received messages read and queues one signed READ receipt naming
/// them (in chunks of at most [`MAX_RECEIPT_ENTRIES`]). Returns whether anything was queued.
fn queue_read_receipt(
    store: &mut Store,
    inner: &Inner,
    contact: &Contact,
    session_id: &[u8; 16],
) -> Result<bool, MessagingError> {
    store.transaction(|tx| -> Result<bool, MessagingError> {
        let unread = rhizo_store::messaging::mark_read_tx(tx, session_id, MAX_RECEIPT_ENTRIES)?;
        let entries: Vec<ReceiptEntry> = unread
            .iter()
            .filter_map(|m| {
                Some(ReceiptEntry {
                    envelope: EnvelopeId {
                        sender_device: DevicePublicKey::from_bytes(&m.sender_device).ok()?,
                        session_id: SessionId::from_bytes(*session_id),
                        sequence_num: m.seq,
                    },
                    envelope_digest: m.digest,
                    status: ReceiptStatus::Read,
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(false);
        }
        queue_receipt_tx(
            tx,
            &inner.me,
            contact,
            session_id,
            entries,
            MessageType::ReadReceipt,
        )?;
        Ok(true)
    })
}

/// Queues signed DELIVERED receipts for envelopes that came through a mailbox (their senders
/// had no direct answer), one receipt envelope per conversation.
fn queue_delivery_receipts(
    store: &mut Store,
    inner: &Inner,
    delivered: Vec<(SecureMessage, ReceiptEntry)>,
) -> Result<(), MessagingError> {
    /// (session, sender device, sender UID): one receipt envelope each.
    type Key = ([u8; 16], [u8; 32], [u8; 32]);
    let mut by_session: Vec<(Key, Vec<ReceiptEntry>)> = Vec::new();
    for (message, entry) in delivered {
        let key = (
            *message.session_id.as_bytes(),
            *message.sender_device.as_bytes(),
            *message.sender_id.as_bytes(),
        );
        match by_session.iter_mut().find(|(k, _)| *k == key) {
            Some((_, entries)) => entries.push(entry),
            None => by_session.push((key, vec![entry])),
        }
    }
    for ((session_id, device, uid), entries) in by_session {
        let Some(contact) = store.contact_by_uid_device(&uid, &device)? else {
            continue;
        };
        store.transaction(|tx| -> Result<(), MessagingError> {
            // A Welcome refused for good left no conversation here: the refusal still goes
            // back, in a closed placeholder (nothing is ever sent in it but receipts).
            if rhizo_store::messaging::conversation_tx(tx, &session_id)?.is_none() {
                rhizo_store::requests::insert_closed_conversation_tx(
                    tx,
                    &session_id,
                    &contact.uid,
                    now_ms(),
                )?;
            }
            for chunk in entries.chunks(MAX_RECEIPT_ENTRIES) {
                queue_receipt_tx(
                    tx,
                    &inner.me,
                    &contact,
                    &session_id,
                    chunk.to_vec(),
                    MessageType::DeliveryReceipt,
                )?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// Inside a transaction: signs a receipt with `entries`, seals it as a `msg_type` envelope to
/// the contact and queues it in the outbox.
fn queue_receipt_tx(
    tx: &rusqlite::Connection,
    me: &Me,
    contact: &Contact,
    session_id: &[u8; 16],
    entries: Vec<ReceiptEntry>,
    msg_type: MessageType,
) -> Result<(), MessagingError> {
    let now = now_ms();
    let mut receipt = DeliveryReceipt {
        recipient_device: me.device.public(),
        timestamp: u64::try_from(now).unwrap_or(0),
        entries,
        signature: [0; 64],
    };
    receipt
        .sign(&me.device)
        .map_err(|e| MessagingError::Internal(e.to_string()))?;
    let seq = rhizo_store::messaging::take_next_seq_tx(tx, session_id)?;
    let envelope = seal(
        me,
        contact,
        session_id,
        seq,
        msg_type,
        receipt.encode(),
        now,
    )?;
    rhizo_store::messaging::insert_outgoing_tx(
        tx,
        &NewOutgoing {
            session_id: *session_id,
            sender_device: *me.device.public().as_bytes(),
            seq,
            kind: if msg_type == MessageType::ReadReceipt {
                "read_receipt"
            } else {
                "receipt"
            },
            body: None,
            sent_at: now,
            envelope: &envelope,
        },
        now,
    )?;
    Ok(())
}

/// Our current signed device list (what mailbox replicas check a fetch against): the last one
/// published, or a fresh one when there is none or it expires within a day.
fn current_device_list(store: &mut Store, me: &Me) -> Result<Vec<u8>, MessagingError> {
    let now = u64::try_from(unix_now()).unwrap_or(0);
    if let Some(stored) = store
        .get_meta(META_DEVICE_LIST)?
        .and_then(|h| hex::decode(h).ok())
        && let Ok(ValidRecord::DeviceList(list)) =
            validate_record(&device_list_key(&me.uid), &stored, now)
        && list.expires_at() > now + 24 * 3600
    {
        return Ok(stored);
    }
    new_device_list(store, me)
}

/// Signs a new device list (the version grows) and remembers it.
fn new_device_list(store: &mut Store, me: &Me) -> Result<Vec<u8>, MessagingError> {
    let now = u64::try_from(unix_now()).unwrap_or(0);
    let version = next_record_version(store)?;
    let list = DeviceList::new(
        &me.root,
        version,
        vec![me.certificate],
        now,
        RECORD_TTL_SECS,
    )
    .map_err(|e| MessagingError::Internal(e.to_string()))?
    .encode();
    store.set_meta(META_DEVICE_LIST, &hex::encode(&list))?;
    Ok(list)
}

/// The error code of an error response.
fn error_code_of(response: &[u8]) -> Option<ErrorCode> {
    match response.split_first() {
        Some((&RESPONSE_ERROR, body)) => ErrorMessage::decode(body).ok().map(|e| e.code),
        _ => None,
    }
}

/// Settles our pending self-update from what the peer said about the envelope carrying it:
/// delivered or read → merged (on every path, also when the row was already delivered);
/// refused for good → dropped, so the next rekey makes a new one. Anything else leaves it
/// pending (the outbox resends it).
fn settle_commit_tx(
    tx: &rusqlite::Transaction<'_>,
    conversations: &ConversationCache,
    session_id: &[u8; 16],
    commit_id: [u8; 32],
    state: MessageState,
) -> Result<(), MessagingError> {
    if !matches!(
        state,
        MessageState::Delivered | MessageState::Read | MessageState::Failed
    ) {
        return Ok(());
    }
    let Some(row) = rhizo_store::messaging::conversation_tx(tx, session_id)? else {
        return Ok(());
    };
    let mls = E2eStore::from_connection(tx).map_err(e2e)?;
    let Some(mut conversation) = conversations.load(&mls, &row.group_id).map_err(e2e)? else {
        return Ok(());
    };
    if conversation.pending_commit_id() == Some(commit_id) {
        if state == MessageState::Failed {
            conversation.discard_pending_commit(&mls).map_err(e2e)?;
            debug!("self-update refused by the peer: dropped, the next rekey redoes it");
        } else {
            conversation.confirm_commit(&mls).map_err(e2e)?;
            debug!(epoch = conversation.epoch(), "self-update confirmed");
        }
    }
    conversations.stage(conversation);
    Ok(())
}

fn retry_delay(attempts: u32) -> i64 {
    let noise = u64::from_le_bytes(random::<8>().unwrap_or_default());
    let delay =
        rhizo_core::delivery::RetryPolicy::default().backoff(attempts.saturating_add(1), noise);
    i64::try_from(delay).unwrap_or(MAX_RETRY_DELAY_MS)
}

fn dialable(addr: &Multiaddr) -> bool {
    use libp2p::multiaddr::Protocol;
    match addr.iter().next() {
        Some(Protocol::Ip4(ip)) => !ip.is_unspecified(),
        Some(Protocol::Ip6(ip)) => !ip.is_unspecified(),
        _ => false,
    }
}

/// The devices of a ticket that may be trusted: those with a [`DeviceProof`] (the ticket's
/// parser already checked it: certificate from the ticket's root, signed by the device).
/// Devices without one are left out; with none left, [`MessagingError::UnprovenDevices`].
///
/// [`DeviceProof`]: rhizo_core::ticket::DeviceProof
fn proven_ticket_devices(
    ticket: &ContactTicket,
    name: &str,
) -> Result<Vec<ContactDevice>, MessagingError> {
    let devices: Vec<ContactDevice> = ticket
        .devices()
        .iter()
        .filter_map(|d| {
            let certificate = d.proven_certificate()?;
            Some(ContactDevice {
                device_pk: *d.device_pk.as_bytes(),
                peer_id: peer_id_of_device(&d.device_pk)?.to_string(),
                addrs: d.addrs.clone(),
                certificate: Some(certificate.encode()),
            })
        })
        .collect();
    if devices.is_empty() {
        return Err(MessagingError::UnprovenDevices(name.to_string()));
    }
    Ok(devices)
}

/// The devices of a (validated) device list that may be trusted: certified by the list's root
/// (the list is) and proven by a (validated) KeyPackage bundle that the device itself signed
/// over the same root's certificate for it. With none left,
/// [`MessagingError::UnprovenDevices`].
fn proven_list_devices(
    list: &DeviceList,
    bundles: &[KeyPackageBundle],
    name: &str,
) -> Result<Vec<ContactDevice>, MessagingError> {
    let devices: Vec<ContactDevice> = list
        .devices()
        .iter()
        .filter(|cert| {
            cert.root() == list.root_pk()
                && bundles.iter().any(|b| {
                    b.device_cert().device() == cert.device()
                        && b.device_cert().root() == list.root_pk()
                })
        })
        .filter_map(|cert| {
            Some(ContactDevice {
                device_pk: *cert.device().as_bytes(),
                peer_id: peer_id_of_device(&cert.device())?.to_string(),
                addrs: Vec::new(),
                certificate: Some(cert.encode()),
            })
        })
        .collect();
    if devices.is_empty() {
        return Err(MessagingError::UnprovenDevices(name.to_string()));
    }
    Ok(devices)
}

/// The MLS membership rule for a conversation with `contact`: every member device is this
/// device or a listed device of the contact, certified by the contact's root (see
/// [`Conversation::check_members`]). Refused as [`ErrorCode::UnexpectedMember`] (final).
fn check_membership(conversation: &Conversation, me: &Me, contact: &Contact) -> Result<(), Reject> {
    conversation
        .check_members(&expected_members(me, contact))
        .map_err(|e| {
            debug!(error = %e, "conversation refused: unexpected member");
            Reject::Code(ErrorCode::UnexpectedMember)
        })
}

/// The (root, device) pairs a conversation with `contact` may contain: this device, and each
/// listed device of the contact under the contact's root.
fn expected_members(me: &Me, contact: &Contact) -> Vec<(RootPublicKey, DevicePublicKey)> {
    let mut expected = vec![(me.root.public(), me.device.public())];
    if let Ok(root) = RootPublicKey::from_bytes(&contact.root_pk) {
        expected.extend(
            contact
                .devices
                .iter()
                .filter_map(|d| DevicePublicKey::from_bytes(&d.device_pk).ok())
                .map(|device| (root, device)),
        );
    }
    expected
}

fn find_contact(store: &Store, name_or_uid: &str) -> Result<Contact, MessagingError> {
    if let Some(c) = store.contact_by_name(name_or_uid)? {
        return Ok(c);
    }
    if let Ok(uid) = name_or_uid.parse::<Uid>()
        && let Some(c) = store.contact_by_uid(uid.as_bytes())?
    {
        return Ok(c);
    }
    Err(MessagingError::UnknownContact(name_or_uid.to_string()))
}

fn view_of(c: &Contact, me: &Me) -> ContactView {
    let root = RootPublicKey::from_bytes(&c.root_pk);
    ContactView {
        name: c.name.clone(),
        uid: Uid::from_bytes(&c.uid).to_string(),
        fingerprint: root
            .as_ref()
            .map(|r| r.fingerprint().to_string())
            .unwrap_or_default(),
        safety_number: root
            .map(|r| SafetyNumber::between(&me.root.public(), &r).to_string())
            .unwrap_or_default(),
        verified: c.verified,
        devices: c.devices.iter().map(|d| d.peer_id.clone()).collect(),
    }
}

/// Creates the MLS group with the contact's devices, persists the conversation and queues the
/// Welcome as the conversation's first envelope.
fn create_conversation(
    store: &mut Store,
    inner: &Inner,
    contact: &Contact,
    key_packages: &[Vec<u8>],
    now: i64,
) -> Result<ConversationRow, MessagingError> {
    let session_id: [u8; 16] = random()?;
    let me = &inner.me;
    store.transaction(|tx| -> Result<_, MessagingError> {
        let mls = E2eStore::from_connection(tx).map_err(e2e)?;
        let (conversation, welcome) =
            Conversation::create(&mls, &inner.mls_device, key_packages, now as u64 / 1000)
                .map_err(e2e)?;
        // The KeyPackages came from the contact's bundles: each must be a listed device of the
        // contact, or we would invite someone else ourselves (rolled back if not).
        conversation
            .check_members(&expected_members(me, contact))
            .map_err(e2e)?;
        let row = ConversationRow {
            session_id,
            group_id: conversation.id().to_vec(),
            contact_uid: contact.uid,
            created_at: now,
        };
        insert_conversation_tx(tx, &row)?;
        let seq = rhizo_store::messaging::take_next_seq_tx(tx, &session_id)?;
        let envelope = seal(
            me,
            contact,
            &session_id,
            seq,
            MessageType::Welcome,
            welcome,
            now,
        )
        .map_err(e2e)?;
        rhizo_store::messaging::insert_outgoing_tx(
            tx,
            &NewOutgoing {
                session_id,
                sender_device: *me.device.public().as_bytes(),
                seq,
                kind: "welcome",
                body: None,
                sent_at: now,
                envelope: &envelope,
            },
            now,
        )?;
        Ok(row)
    })
}

/// Encrypts `content` in the conversation and queues the envelope, in one transaction.
#[allow(clippy::too_many_arguments)]
fn queue_application(
    store: &mut Store,
    inner: &Inner,
    contact: &Contact,
    session: &ConversationRow,
    content: &[u8],
    kind: &str,
    body: Option<&str>,
    now: i64,
) -> Result<i64, MessagingError> {
    let outcome = store.transaction(|tx| {
        queue_application_tx(tx, inner, contact, session, content, kind, body, now)
    });
    inner.conversations.settle(&outcome);
    outcome
}

/// [`queue_application`] inside a caller's transaction.
#[allow(clippy::too_many_arguments)]
fn queue_application_tx(
    tx: &rusqlite::Transaction<'_>,
    inner: &Inner,
    contact: &Contact,
    session: &ConversationRow,
    content: &[u8],
    kind: &str,
    body: Option<&str>,
    now: i64,
) -> Result<i64, MessagingError> {
    let me = &inner.me;
    {
        let mls = E2eStore::from_connection(tx).map_err(e2e)?;
        let mut conversation = inner
            .conversations
            .load(&mls, &session.group_id)
            .map_err(e2e)?
            .ok_or_else(|| MessagingError::Internal("conversation state missing".into()))?;
        let unix = u64::try_from(now / 1000).unwrap_or(0);
        // Seed 000's rekey rule: a self-update commit after N sent messages or T time. It goes
        // out before this message and is confirmed when the peer's receipt says it applied it.
        if conversation.rekey_due(&inner.rekey, unix) && !conversation.has_pending_commit() {
            let commit = conversation
                .self_update(&mls, &inner.mls_device, unix)
                .map_err(e2e)?;
            let seq = rhizo_store::messaging::take_next_seq_tx(tx, &session.session_id)?;
            let envelope = seal(
                me,
                contact,
                &session.session_id,
                seq,
                MessageType::Commit,
                commit,
                now,
            )?;
            rhizo_store::messaging::insert_outgoing_tx(
                tx,
                &NewOutgoing {
                    session_id: session.session_id,
                    sender_device: *me.device.public().as_bytes(),
                    seq,
                    kind: "commit",
                    body: None,
                    sent_at: now,
                    envelope: &envelope,
                },
                now,
            )?;
        }
        let ciphertext = conversation
            .encrypt(&mls, &inner.mls_device, content, unix)
            .map_err(e2e)?;
        let seq = rhizo_store::messaging::take_next_seq_tx(tx, &session.session_id)?;
        let envelope = seal(
            me,
            contact,
            &session.session_id,
            seq,
            MessageType::Application,
            ciphertext,
            now,
        )
        .map_err(e2e)?;
        let id = rhizo_store::messaging::insert_outgoing_tx(
            tx,
            &NewOutgoing {
                session_id: session.session_id,
                sender_device: *me.device.public().as_bytes(),
                seq,
                kind,
                body,
                sent_at: now,
                envelope: &envelope,
            },
            now,
        )?;
        inner.conversations.stage(conversation);
        Ok(id)
    }
}

/// Builds and signs an envelope.
fn seal(
    me: &Me,
    contact: &Contact,
    session_id: &[u8; 16],
    seq: u64,
    msg_type: MessageType,
    payload: Vec<u8>,
    now: i64,
) -> Result<Vec<u8>, MessagingError> {
    let mut envelope = SecureMessage {
        msg_type,
        sender_id: me.uid,
        sender_device: me.device.public(),
        recipient_id: Uid::from_bytes(&contact.uid),
        session_id: SessionId::from_bytes(*session_id),
        sequence_num: seq,
        timestamp: u64::try_from(now).unwrap_or(0),
        nonce: random::<NONCE_LEN>()?,
        payload: payload.into(),
        signature: [0; 64],
    };
    envelope
        .sign(&me.device)
        .map_err(|e| MessagingError::Internal(e.to_string()))?;
    Ok(envelope.encode())
}

/// One outgoing envelope's outcome, to write (see [`Messaging::record_outcomes`]).
struct SentUpdate {
    id: i64,
    attempts: u32,
    session_id: [u8; 16],
    kind: String,
    /// The commit id, if the envelope is a self-update.
    commit_id: Option<[u8; 32]>,
    outcome: Outcome,
}

impl SentUpdate {
    fn new(item: &OutboxItem, outcome: Outcome) -> Self {
        let commit_id = (item.kind == "commit")
            .then(|| SecureMessage::decode(&item.envelope).ok())
            .flatten()
            .map(|m| rhizo_e2e::commit_id(&m.payload));
        Self {
            id: item.id,
            attempts: item.attempts,
            session_id: item.session_id,
            kind: item.kind.clone(),
            commit_id,
            outcome,
        }
    }

    /// Writes it inside `tx`; pushes changed states on `changed`; returns how many
    /// conversations it closed (0 or 1).
    fn apply(
        self,
        tx: &rusqlite::Transaction<'_>,
        conversations: &ConversationCache,
        now: i64,
        changed: &mut Vec<(i64, MessageState)>,
    ) -> Result<u64, MessagingError> {
        let session = self.session_id;
        match self.outcome {
            Outcome::Final(state, error) => {
                if rhizo_store::messaging::advance_message_state_tx(
                    tx,
                    self.id,
                    state,
                    now,
                    error.as_deref(),
                )? {
                    changed.push((self.id, state));
                }
                if let Some(commit_id) = self.commit_id {
                    settle_commit_tx(tx, conversations, &session, commit_id, state)?;
                }
                if state == MessageState::Failed && self.kind == "welcome" {
                    // The Welcome was refused for good: nothing in this conversation can
                    // ever be read there.
                    return close_conversation(
                        tx,
                        &session,
                        "the recipient refused the conversation's Welcome; send again to start a new one",
                        now,
                        changed,
                    );
                }
                Ok(0)
            }
            Outcome::Held => {
                if rhizo_store::requests::mark_held_tx(tx, self.id)? {
                    changed.push((self.id, MessageState::Sent));
                }
                Ok(0)
            }
            Outcome::Closed(why) => {
                if rhizo_store::messaging::advance_message_state_tx(
                    tx,
                    self.id,
                    MessageState::Failed,
                    now,
                    Some(&why),
                )? {
                    changed.push((self.id, MessageState::Failed));
                }
                close_conversation(tx, &session, &why, now, changed)
            }
            Outcome::Retry(code, why) => {
                // UNKNOWN_SESSION while no Welcome of ours is on its way: the recipient lost
                // (or never had) this conversation, and retrying cannot change that.
                if code == Some(ErrorCode::UnknownSession)
                    && !rhizo_store::requests::welcome_pending_tx(tx, &session)?
                {
                    let why = "the recipient does not have this conversation any more; send \
                               again to start a new one";
                    if rhizo_store::messaging::advance_message_state_tx(
                        tx,
                        self.id,
                        MessageState::Failed,
                        now,
                        Some(why),
                    )? {
                        changed.push((self.id, MessageState::Failed));
                    }
                    return close_conversation(tx, &session, why, now, changed);
                }
                let error = format!("the recipient will take it later: {why}");
                rhizo_store::messaging::record_attempt_failed_tx(
                    tx,
                    self.id,
                    now + retry_delay(self.attempts),
                    &error,
                )?;
                Ok(0)
            }
        }
    }
}

/// Closes a conversation the recipient refused for good; what waited to go in it fails.
fn close_conversation(
    tx: &rusqlite::Transaction<'_>,
    session: &[u8; 16],
    why: &str,
    now: i64,
    changed: &mut Vec<(i64, MessageState)>,
) -> Result<u64, MessagingError> {
    let Some(failed) = rhizo_store::requests::close_conversation_tx(tx, session, why, now)? else {
        return Ok(0);
    };
    info!(
        failed = failed.len(),
        "conversation closed: the recipient refused it for good"
    );
    changed.extend(failed.into_iter().map(|id| (id, MessageState::Failed)));
    Ok(1)
}

/// What a device's receipt says about one envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// A final state: delivered or read, or failed with the reason to show.
    Final(MessageState, Option<String>),
    /// Held by the recipient's node as a message request: `sent`, not resent; a signed
    /// delivery receipt follows if the recipient accepts.
    Held,
    /// The recipient does not have this conversation and never will (SESSION_CLOSED): the
    /// conversation is closed; the next send starts a new one.
    Closed(String),
    /// Refused for now (with the code when the recipient gave one): retried later.
    Retry(Option<ErrorCode>, String),
}

impl Outcome {
    /// How good an outcome is for the sender (higher wins across a contact's devices).
    fn rank(&self) -> u8 {
        match self {
            Self::Retry(..) => 0,
            Self::Final(MessageState::Failed, _) | Self::Closed(_) => 1,
            Self::Held => 2,
            Self::Final(..) => 3,
        }
    }
}

/// The better of two devices' outcomes for one envelope: delivered (or read) beats held,
/// which beats failed, which beats a refusal to retry.
fn better_outcome(a: Outcome, b: Outcome) -> Outcome {
    if b.rank() > a.rank() { b } else { a }
}

/// Splits due envelopes into the batches sent together: up to [`MAX_BATCH_ENVELOPES`] and
/// within the frame limit.
fn batches(items: &[OutboxItem]) -> Vec<&[OutboxItem]> {
    // Room for the marker, version and each envelope's tag and length.
    const FRAME_BUDGET: usize = MAX_BATCH_FRAME_BYTES - 1024;
    let mut out = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start + 1;
        let mut bytes = items[start].envelope.len() + 8;
        while end < items.len()
            && end - start < MAX_BATCH_ENVELOPES
            && bytes + items[end].envelope.len() + 8 <= FRAME_BUDGET
        {
            bytes += items[end].envelope.len() + 8;
            end += 1;
        }
        out.push(&items[start..end]);
        start = end;
    }
    out
}

/// Interprets a `/rhizo/msg/1` response to the envelopes `sent` (one, or a batch): one outcome
/// per envelope, or `Err` when the response is not a valid receipt from `device` for all of
/// them.
fn parse_response(
    response: &[u8],
    device: &DevicePublicKey,
    sent: &[SecureMessage],
) -> Result<Vec<Outcome>, String> {
    match response.split_first() {
        Some((&RESPONSE_RECEIPT, body)) => {
            let receipt = DeliveryReceipt::decode(body).map_err(|e| e.to_string())?;
            if receipt.recipient_device != *device {
                return Err("receipt from another device".into());
            }
            receipt.verify(device).map_err(|e| e.to_string())?;
            sent.iter()
                .map(|m| {
                    let entry = receipt
                        .entries
                        .iter()
                        .find(|e| e.envelope == m.id() && e.envelope_digest == m.digest())
                        .ok_or("receipt does not acknowledge this envelope")?;
                    Ok(outcome_of(entry.status))
                })
                .collect()
        }
        Some((&RESPONSE_ERROR, body)) => {
            let e = ErrorMessage::decode(body).map_err(|e| e.to_string())?;
            Err(format!("recipient answered {}", e.code.as_str()))
        }
        _ => Err("malformed response".into()),
    }
}

/// What a receipt entry's status means for the envelope it names.
fn outcome_of(status: ReceiptStatus) -> Outcome {
    match status {
        ReceiptStatus::Delivered => Outcome::Final(MessageState::Delivered, None),
        ReceiptStatus::Read => Outcome::Final(MessageState::Read, None),
        ReceiptStatus::Held => Outcome::Held,
        // Seen before: our first receipt was lost; it was delivered. (Signed by the recipient's
        // device; a mailbox replica's unsigned REPLAY_DETECTED never comes this way.)
        ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
            Outcome::Final(MessageState::Delivered, None)
        }
        ReceiptStatus::Rejected(ErrorCode::SessionClosed) => Outcome::Closed(
            "the recipient does not have this conversation (a declined message request); \
             send again to start a new one"
                .into(),
        ),
        ReceiptStatus::Rejected(code) if code.is_transient() => {
            Outcome::Retry(Some(code), format!("recipient answered {}", code.as_str()))
        }
        // Final: retrying the same envelope cannot succeed.
        ReceiptStatus::Rejected(code) => Outcome::Final(
            MessageState::Failed,
            Some(format!("refused by the recipient: {}", code.as_str())),
        ),
    }
}

/// How many envelopes a `/rhizo/msg/1` request carries: a batch frame's count (0 if it does not
/// decode: it is refused whole), 1 for a bare envelope.
pub fn batch_len(request: &[u8]) -> usize {
    if is_batch_frame(request) {
        EnvelopeBatch::decode(request).map_or(0, |b| b.envelopes.len())
    } else {
        1
    }
}

/// The `/rhizo/msg/1` answer to a peer over its rate limit.
pub fn rate_limited_response() -> Vec<u8> {
    error_response(ErrorCode::RateLimited, "too many requests; slow down", None)
}

/// What an answer we gave says about the peer that sent the request: a signed receipt means
/// it sent a well-formed, correctly signed envelope; an undecodable, oversized or forged one
/// counts against it. Refusals honest peers also get (unknown sender, replay, stale) say
/// nothing.
pub fn conduct_of(response: &[u8]) -> Option<rhizo_core::abuse::Conduct> {
    use rhizo_core::abuse::Conduct;
    match response.split_first() {
        // A batch holding a forged envelope: that one counts against the peer.
        Some((&RESPONSE_RECEIPT, body)) => match DeliveryReceipt::decode(body) {
            Ok(r)
                if r.entries
                    .iter()
                    .any(|e| e.status == ReceiptStatus::Rejected(ErrorCode::InvalidSignature)) =>
            {
                Some(Conduct::InvalidMessage)
            }
            _ => Some(Conduct::ValidReply),
        },
        Some((&RESPONSE_ERROR, body)) => match ErrorMessage::decode(body).ok()?.code {
            ErrorCode::Malformed | ErrorCode::InvalidVersion | ErrorCode::InvalidSignature => {
                Some(Conduct::InvalidMessage)
            }
            ErrorCode::TooLarge => Some(Conduct::Oversized),
            _ => None,
        },
        _ => None,
    }
}

fn error_response(code: ErrorCode, detail: &str, refused: Option<(SessionId, u64)>) -> Vec<u8> {
    let mut out = vec![RESPONSE_ERROR];
    out.extend(ErrorMessage::new(code, detail, refused).encode());
    out
}

fn receipt_response(me: &Me, answers: &[(&SecureMessage, ReceiptStatus)]) -> Vec<u8> {
    let mut receipt = DeliveryReceipt {
        recipient_device: me.device.public(),
        timestamp: u64::try_from(now_ms()).unwrap_or(0),
        entries: answers
            .iter()
            .map(|(message, status)| ReceiptEntry::for_envelope(message, *status))
            .collect(),
        signature: [0; 64],
    };
    if receipt.sign(&me.device).is_err() {
        return error_response(ErrorCode::Internal, "cannot sign a receipt", None);
    }
    let mut out = vec![RESPONSE_RECEIPT];
    out.extend(receipt.encode());
    out
}

/// The receipt status inside a response built by [`receipt_response`].
fn status_of_response(response: &[u8]) -> Option<ReceiptStatus> {
    match response.split_first() {
        Some((&RESPONSE_RECEIPT, body)) => DeliveryReceipt::decode(body)
            .ok()
            .and_then(|r| r.entries.first().map(|e| e.status)),
        _ => None,
    }
}

/// How many envelopes a receipt response answers (None: an error response).
fn received_entries(response: &[u8]) -> Option<usize> {
    match response.split_first() {
        Some((&RESPONSE_RECEIPT, body)) => {
            DeliveryReceipt::decode(body).ok().map(|r| r.entries.len())
        }
        _ => None,
    }
}

struct Received {
    response: Vec<u8>,
    events: Vec<ApiEvent>,
    /// What the receipt says (None: an error response, nothing was decided).
    status: Option<ReceiptStatus>,
}

/// The answer to an envelope decided before any database change.
enum Precheck {
    /// Passed the cheap checks and the signature: apply it.
    Ready(Box<SecureMessage>, Contact),
    /// Correctly signed, from someone who is not a contact (or from a device of theirs we do
    /// not know): held as a message request (see [`requests`]).
    Request(Box<SecureMessage>),
    /// Answered with a signed receipt entry of this status (only ever for an envelope whose
    /// signature verified).
    Status(ReceiptStatus),
    /// Answered with an error (not signed for; a bare envelope gets an `ErrorMessage`, a batch
    /// holding one is refused whole).
    Error(ErrorCode, &'static str),
}

/// The checks before the transaction: the signature first (nothing is signed for an envelope
/// whose signature did not verify; size and the per-peer rate limit were checked before),
/// then recipient, replay window, known sender device, and the in-memory seen cache.
fn precheck(
    store: &Store,
    me: &Me,
    seen: &Mutex<SeenSet<InTransaction>>,
    message: SecureMessage,
    now: i64,
) -> Precheck {
    if message.verify(&message.sender_device).is_err() {
        return Precheck::Error(ErrorCode::InvalidSignature, "bad signature");
    }
    if message.recipient_id != me.uid {
        // Meant for someone else: final, retrying cannot help.
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::Malformed));
    }
    // The replay window (14 days back, 5 minutes ahead).
    if let Err(e) = check_timestamp(message.timestamp, u64::try_from(now).unwrap_or(0)) {
        return Precheck::Status(ReceiptStatus::Rejected(e.code()));
    }
    let contact = match store.contact_by_uid_device(
        message.sender_id.as_bytes(),
        message.sender_device.as_bytes(),
    ) {
        Ok(Some(c)) => c,
        Ok(None) => match store.contact_by_device(message.sender_device.as_bytes()) {
            // A contact's device claiming to be someone else.
            Ok(Some(_)) => {
                return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::UnknownSender));
            }
            Ok(None) => return requests::precheck_request(me, message),
            Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
        },
        Err(_) => return Precheck::Error(ErrorCode::Internal, "database"),
    };
    // The LRU of recently accepted ids answers most retransmissions without the database.
    let fresh = seen.lock().map_err(|_| ()).and_then(|mut s| {
        s.check(
            &message.id(),
            message.timestamp,
            u64::try_from(now).unwrap_or(0),
        )
        .map_err(|_| ())
    });
    if matches!(fresh, Ok(Freshness::Replay)) {
        return Precheck::Status(ReceiptStatus::Rejected(ErrorCode::ReplayDetected));
    }
    Precheck::Ready(Box::new(message), contact)
}

/// Applies one checked envelope inside `tx`: seen-set, MLS, message rows. On `Err` the caller
/// rolls back what it changed.
fn apply_envelope(
    tx: &rusqlite::Transaction<'_>,
    me: &Me,
    mls_device: &Device,
    conversations: &ConversationCache,
    contact: &Contact,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<ApiEvent>, Reject> {
    let ts = i64::try_from(message.timestamp).unwrap_or(i64::MAX);
    let session_id = *message.session_id.as_bytes();
    let sender_device = *message.sender_device.as_bytes();
    let seq = message.sequence_num;
    let digest = message.digest();
    if !seen_insert(tx, &sender_device, &session_id, seq, ts)? {
        return Err(Reject::Code(ErrorCode::ReplayDetected));
    }
    let mls = E2eStore::from_connection(tx).map_err(Reject::internal)?;
    let unix = u64::try_from(now / 1000).unwrap_or(0);
    match message.msg_type {
        MessageType::Welcome => {
            let conversation = Conversation::join(&mls, mls_device, &message.payload, unix)
                .map_err(|e| {
                    debug!(error = %e, "a Welcome could not be joined");
                    Reject::Code(ErrorCode::DecryptionFailed)
                })?;
            check_membership(&conversation, me, contact)?;
            insert_conversation_tx(
                tx,
                &ConversationRow {
                    session_id,
                    group_id: conversation.id().to_vec(),
                    contact_uid: contact.uid,
                    created_at: now,
                },
            )?;
            // A one-time KeyPackage was used: publish a fresh bundle.
            tx.execute("DELETE FROM meta WHERE key = ?1", [META_KEY_PACKAGE_BUNDLE])
                .map_err(Reject::internal)?;
            conversations.stage(conversation);
            Ok(Vec::new())
        }
        MessageType::Application | MessageType::Commit => {
            let row = rhizo_store::messaging::conversation_tx(tx, &session_id)?
                .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
            if row.contact_uid != contact.uid {
                return Err(Reject::Code(ErrorCode::UnknownSender));
            }
            let mut conversation = conversations
                .load(&mls, &row.group_id)
                .map_err(Reject::internal)?
                .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
            let processed = conversation
                .process(&mls, mls_device, &message.payload, unix)
                .map_err(|_| Reject::Code(ErrorCode::DecryptionFailed))?;
            let mut events = Vec::new();
            for p in &processed {
                match p {
                    // Not acknowledged (and rolled back): the sender retries once the
                    // commit that opens that epoch has been applied here.
                    Processed::Deferred => return Err(Reject::Code(ErrorCode::SequenceError)),
                    // Our own concurrent commit won the tie-break; the sender applies ours.
                    // A final refusal, so its commit is never confirmed.
                    Processed::CommitRejected { .. } => {
                        return Err(Reject::Code(ErrorCode::SessionExpired));
                    }
                    // Membership may have changed: only expected devices may be in it.
                    Processed::CommitApplied { .. } => {
                        check_membership(&conversation, me, contact)?
                    }
                    _ => {}
                }
            }
            for p in processed {
                let Processed::Application { plaintext, sender } = p else {
                    continue;
                };
                // The MLS leaf that encrypted it must be the device that signed the envelope.
                if sender.device() != message.sender_device {
                    return Err(Reject::Code(ErrorCode::UnknownSender));
                }
                let content = ChatContent::decode(plaintext.as_slice())
                    .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
                let sent_at = i64::try_from(rhizo_core::seen::bounded_sent_at(
                    content.sent_at_ms,
                    message.timestamp,
                    u64::try_from(now).unwrap_or(0),
                ))
                .unwrap_or(ts);
                if !content.profile.is_empty() {
                    accept_contact_profile(tx, contact, &content.profile, now)?;
                    if content.text.is_empty() {
                        continue;
                    }
                }
                if let Some(id) = insert_incoming(
                    tx,
                    &NewIncoming {
                        session_id,
                        sender_device,
                        seq,
                        kind: "text",
                        body: Some(&content.text),
                        sent_at,
                        digest,
                    },
                    now,
                )? {
                    events.push(ApiEvent::MessageReceived {
                        id,
                        contact: contact.name.clone(),
                        text: content.text.clone(),
                        sent_at,
                    });
                }
            }
            conversations.stage(conversation);
            Ok(events)
        }
        MessageType::ReadReceipt | MessageType::DeliveryReceipt => {
            let receipt = DeliveryReceipt::decode(&message.payload)
                .map_err(|_| Reject::Code(ErrorCode::Malformed))?;
            // Signed by the device that sent the envelope: only it can say it has ours.
            if receipt.recipient_device != message.sender_device {
                return Err(Reject::Code(ErrorCode::InvalidSignature));
            }
            receipt
                .verify(&message.sender_device)
                .map_err(|_| Reject::Code(ErrorCode::InvalidSignature))?;
            // Only for this conversation, which must be with this contact.
            let row = rhizo_store::messaging::conversation_tx(tx, &session_id)?
                .ok_or(Reject::Code(ErrorCode::UnknownSession))?;
            if row.contact_uid != contact.uid {
                return Err(Reject::Code(ErrorCode::UnknownSender));
            }
            apply_receipt_tx(tx, me, conversations, contact, &receipt, message, now)
        }
        _ => Err(Reject::Code(ErrorCode::Malformed)),
    }
}

/// Applies a contact's signed receipt (delivery or read) for our envelopes in this
/// conversation: new states; our self-update merged when its envelope is delivered or read
/// (also when the row was already delivered: an earlier path may have marked it without the
/// merge); a Welcome or any envelope refused for good with SESSION_CLOSED closes the
/// conversation, so nothing is sent into it forever.
fn apply_receipt_tx(
    tx: &rusqlite::Transaction<'_>,
    me: &Me,
    conversations: &ConversationCache,
    contact: &Contact,
    receipt: &DeliveryReceipt,
    message: &SecureMessage,
    now: i64,
) -> Result<Vec<ApiEvent>, Reject> {
    let mut events = Vec::new();
    for entry in receipt.entries.iter().filter(|e| {
        e.envelope.session_id == message.session_id
            && e.envelope.sender_device == me.device.public()
    }) {
        // What we sent under that id, if the receipt names its exact bytes.
        let sent_type = std::cell::Cell::new(None);
        let commit = std::cell::Cell::new(None);
        let matches = |sent: &[u8]| {
            if envelope_digest(sent) != entry.envelope_digest {
                return false;
            }
            if let Ok(m) = SecureMessage::decode(sent) {
                sent_type.set(Some(m.msg_type));
                if m.msg_type == MessageType::Commit {
                    commit.set(Some(rhizo_e2e::commit_id(&m.payload)));
                }
            }
            true
        };
        let (session, device, seq) = (
            entry.envelope.session_id.as_bytes(),
            me.device.public(),
            entry.envelope.sequence_num,
        );
        let state = match entry.status {
            ReceiptStatus::Read => MessageState::Read,
            // A receipt that came later (through a mailbox): it has our envelope.
            ReceiptStatus::Delivered | ReceiptStatus::Rejected(ErrorCode::ReplayDetected) => {
                MessageState::Delivered
            }
            // Held as a request: a Delivered receipt follows on acceptance.
            ReceiptStatus::Held => continue,
            ReceiptStatus::Rejected(code) if code.is_transient() => continue,
            ReceiptStatus::Rejected(code) => {
                let why = format!("refused by the recipient: {}", code.as_str());
                let Some(id) = rhizo_store::messaging::mark_outgoing_failed_tx(
                    tx,
                    session,
                    device.as_bytes(),
                    seq,
                    now,
                    &why,
                    matches,
                )?
                else {
                    continue;
                };
                events.push(ApiEvent::MessageState {
                    id,
                    contact: contact.name.clone(),
                    state: MessageState::Failed.to_string(),
                });
                if let Some(commit_id) = commit.get() {
                    settle_commit_tx(tx, conversations, session, commit_id, MessageState::Failed)
                        .map_err(Reject::internal)?;
                }
                if sent_type.get() == Some(MessageType::Welcome) || code == ErrorCode::SessionClosed
                {
                    let mut changed = Vec::new();
                    close_conversation(tx, session, &why, now, &mut changed)
                        .map_err(Reject::internal)?;
                    events.extend(
                        changed
                            .into_iter()
                            .map(|(id, state)| ApiEvent::MessageState {
                                id,
                                contact: contact.name.clone(),
                                state: state.to_string(),
                            }),
                    );
                }
                continue;
            }
        };
        let changed = if state == MessageState::Read {
            rhizo_store::messaging::mark_outgoing_read_tx(
                tx,
                session,
                device.as_bytes(),
                seq,
                now,
                matches,
            )?
        } else {
            rhizo_store::messaging::mark_outgoing_delivered_tx(
                tx,
                session,
                device.as_bytes(),
                seq,
                now,
                matches,
            )?
        };
        // Our self-update reached the peer: merge it, whether or not the row changed now.
        if let Some(commit_id) = commit.get() {
            settle_commit_tx(tx, conversations, session, commit_id, state)
                .map_err(Reject::internal)?;
        }
        if let Some(id) = changed {
            events.push(ApiEvent::MessageState {
                id,
                contact: contact.name.clone(),
                state: state.to_string(),
            });
        }
    }
    Ok(events)
}

/// Verifies, deduplicates, decrypts and stores one envelope. Everything it changes is one
/// transaction, committed before the receipt is returned.
fn receive(
    store: &mut Store,
    me: &Me,
    mls_device: &Device,
    conversations: &ConversationCache,
    seen: &Mutex<SeenSet<InTransaction>>,
    payload: &[u8],
) -> Received {
    // Cheap checks first: size and structure, before any signature or KEM work.
    let message = match SecureMessage::decode(payload) {
        Ok(m) => m,
        Err(e) => {
            return Received {
                response: error_response(e.code(), &e.to_string(), None),
                events: Vec::new(),
                status: None,
            };
        }
    };
    let reply = |response: Vec<u8>| Received {
        status: status_of_response(&response),
        response,
        events: Vec::new(),
    };
    let refused = Some((message.session_id, message.sequence_num));
    let now = now_ms();
    let (message, contact) = match precheck(store, me, seen, message.clone(), now) {
        Precheck::Ready(m, c) => (m, c),
        Precheck::Request(m) => return requests::hold(store, me, &m, now),
        Precheck::Status(status) => return reply(receipt_response(me, &[(&message, status)])),
        Precheck::Error(code, detail) => return reply(error_response(code, detail, refused)),
    };
    let outcome = store.transaction(|tx| {
        apply_envelope(tx, me, mls_device, conversations, &contact, &message, now)
    });
    conversations.settle(&outcome);
    if matches!(
        outcome,
        Ok(_) | Err(Reject::Code(ErrorCode::ReplayDetected))
    ) && let Ok(mut s) = seen.lock()
    {
        // Committed (or already stored): from now on the cache answers for it.
        s.confirm(&message.id());
    }
    match outcome {
        Ok(events) => Received {
            response: receipt_response(me, &[(&message, ReceiptStatus::Delivered)]),
            events,
            status: Some(ReceiptStatus::Delivered),
        },
        // The transaction rolled back: nothing was stored, the seen-set is unchanged.
        Err(Reject::Code(code)) => {
            debug!(
                code = code.as_str(),
                seq = message.sequence_num,
                "envelope refused"
            );
            reply(receipt_response(
                me,
                &[(&message, ReceiptStatus::Rejected(code))],
            ))
        }
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming message failed");
            reply(error_response(ErrorCode::Internal, "storage", refused))
        }
    }
}

/// Applies a batch frame (see [`EnvelopeBatch`]): every envelope is checked as a bare one would
/// be, then all are applied in order in ONE transaction (group commit: one `fsync` for the
/// batch), each inside its own savepoint so a refused envelope changes nothing while the others
/// stand. After a transient refusal the later envelopes are answered `SEQUENCE_ERROR`
/// unprocessed, so nothing overtakes a message the sender will retry. The answer is one signed
/// receipt with an entry per envelope, in order; a frame or an envelope that does not decode
/// refuses the whole batch with an error.
fn receive_batch(
    store: &mut Store,
    me: &Me,
    mls_device: &Device,
    conversations: &ConversationCache,
    seen: &Mutex<SeenSet<InTransaction>>,
    payload: &[u8],
) -> Received {
    let refuse = |code: ErrorCode, detail: &str| Received {
        response: error_response(code, detail, None),
        events: Vec::new(),
        status: None,
    };
    let batch = match EnvelopeBatch::decode(payload) {
        Ok(b) => b,
        Err(e) => return refuse(e.code(), &e.to_string()),
    };
    let mut messages = Vec::with_capacity(batch.envelopes.len());
    for bytes in &batch.envelopes {
        match SecureMessage::decode(bytes) {
            Ok(m) => messages.push(m),
            Err(e) => return refuse(e.code(), &format!("an envelope of the batch: {e}")),
        }
    }
    let now = now_ms();
    let checked: Vec<Precheck> = messages
        .iter()
        .map(|m| precheck(store, me, seen, m.clone(), now))
        .collect();
    // Nothing is signed for an envelope whose signature did not verify: a batch holding one
    // (which an honest sender never sends) is refused whole.
    if let Some(Precheck::Error(code, detail)) = checked
        .iter()
        .find(|c| matches!(c, Precheck::Error(ErrorCode::InvalidSignature, _)))
    {
        return refuse(*code, &format!("an envelope of the batch: {detail}"));
    }
    let outcome = store.transaction(|tx| -> Result<_, Reject> {
        let mut statuses = Vec::with_capacity(checked.len());
        let mut events = Vec::new();
        let mut confirmed = Vec::new();
        let mut blocked = false;
        for check in &checked {
            if blocked {
                statuses.push(ReceiptStatus::Rejected(ErrorCode::SequenceError));
                continue;
            }
            let status = match check {
                Precheck::Status(status) => *status,
                Precheck::Error(code, _) => ReceiptStatus::Rejected(*code),
                Precheck::Request(message) => {
                    match rhizo_store::messaging::in_savepoint(tx, || {
                        requests::hold_tx(tx, message, now)
                    })? {
                        Ok((status, event)) => {
                            events.extend(event);
                            status
                        }
                        Err(e) => {
                            warn!(error = %e, "holding a message request failed");
                            ReceiptStatus::Rejected(ErrorCode::Internal)
                        }
                    }
                }
                Precheck::Ready(message, contact) => {
                    let applied = rhizo_store::messaging::in_savepoint(tx, || {
                        apply_envelope(tx, me, mls_device, conversations, contact, message, now)
                    })?;
                    match applied {
                        Ok(new_events) => {
                            events.extend(new_events);
                            confirmed.push(message.id());
                            ReceiptStatus::Delivered
                        }
                        Err(Reject::Code(code)) => {
                            if code == ErrorCode::ReplayDetected {
                                confirmed.push(message.id());
                            }
                            debug!(
                                code = code.as_str(),
                                seq = message.sequence_num,
                                "envelope refused"
                            );
                            ReceiptStatus::Rejected(code)
                        }
                        Err(Reject::Store(e)) => {
                            warn!(error = %e, "storing an incoming message failed");
                            ReceiptStatus::Rejected(ErrorCode::Internal)
                        }
                    }
                }
            };
            if let ReceiptStatus::Rejected(code) = status
                && code.is_transient()
            {
                blocked = true;
            }
            statuses.push(status);
        }
        Ok((statuses, events, confirmed))
    });
    conversations.settle(&outcome);
    match outcome {
        Ok((statuses, events, confirmed)) => {
            if let Ok(mut s) = seen.lock() {
                for id in &confirmed {
                    s.confirm(id);
                }
            }
            let answers: Vec<(&SecureMessage, ReceiptStatus)> =
                messages.iter().zip(statuses).collect();
            let response = receipt_response(me, &answers);
            Received {
                status: status_of_response(&response),
                response,
                events,
            }
        }
        Err(Reject::Code(code)) => refuse(code, "batch refused"),
        Err(Reject::Store(e)) => {
            warn!(error = %e, "storing an incoming batch failed");
            refuse(ErrorCode::Internal, "storage")
        }
    }
}

/// Stores a contact's profile that came end-to-end, if it is signed by the contact's root key
/// and newer than the one we have. A bad profile is ignored (the message itself is fine).
fn accept_contact_profile(
    tx: &rusqlite::Connection,
    contact: &Contact,
    record: &[u8],
    now_ms: i64,
) -> Result<(), Reject> {
    let uid = Uid::from_bytes(&contact.uid);
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    match validate_record(&profile_key(&uid), record, now) {
        Ok(ValidRecord::Profile(p)) if p.root_pk().as_bytes() == &contact.root_pk => {
            upsert_profile_tx(tx, &profile_row(&uid, &p, record, false, now_ms))?;
        }
        Ok(_) => debug!("a contact's profile is not theirs; ignored"),
        Err(e) => debug!(error = %e, "a contact's profile does not verify; ignored"),
    }
    Ok(())
}

fn profile_row(uid: &Uid, p: &Profile, record: &[u8], public: bool, now_ms: i64) -> ProfileRow {
    ProfileRow {
        uid: *uid.as_bytes(),
        version: p.version(),
        name: p.name().to_string(),
        avatar: (!p.avatar().is_empty()).then(|| p.avatar().to_vec()),
        avatar_mime: (!p.avatar_mime().is_empty()).then(|| p.avatar_mime().to_string()),
        record: record.to_vec(),
        public,
        updated_at: now_ms,
    }
}

/// Our own signed profile record, if we set one.
fn own_profile_record(store: &Store, me: &Me) -> Result<Option<Vec<u8>>, MessagingError> {
    Ok(store.profile(me.uid.as_bytes())?.map(|p| p.record))
}

/// The persisted half of the node's seen-set is the `seen` table, written inside the same
/// transaction as the message (`seen_insert`); this store tells [`SeenSet`] nothing, so the set
/// serves as the LRU cache and timestamp window in front of that table.
#[derive(Debug, Clone, Copy)]
struct InTransaction;

impl SeenStore for InTransaction {
    type Error = std::convert::Infallible;

    fn contains(&self, _: &EnvelopeId) -> Result<bool, Self::Error> {
        Ok(false)
    }

    fn insert(&mut self, _: &EnvelopeId, _: u64) -> Result<(), Self::Error> {
        Ok(())
    }

    fn prune_before(&mut self, _: u64) -> Result<usize, Self::Error> {
        Ok(0)
    }
}

/// Why an envelope is refused; either way the transaction rolls back.
enum Reject {
    Code(ErrorCode),
    Store(StoreError),
}

impl From<StoreError> for Reject {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Reject {
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::Store(StoreError::InvalidInput(e.to_string()))
    }
}

#[cfg(test)]
mod tests;
