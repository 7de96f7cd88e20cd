//! Public broadcast channels over gossipsub (topic `rhizo/channel/<id>`): create, join, post,
//! read. Posts are signed by their author's device (rhizo-core's [`ChannelPost`]), checked by
//! every node before gossipsub forwards them, deduplicated with an LRU (seed 000) and kept in a
//! bounded history in SQLite. Private groups are MLS conversations, not channels.
//!
//! ```text
//!  post ─▶ ChannelPost::new (sign) ─▶ store (own) ─▶ Client::publish(topic)
//!  NetEvent::GossipMessage ─▶ PeerPolicy rate ─▶ decode_verified (size, channel, cert, signature,
//!     time) ─▶ dedupe LRU ─▶ store (history ≤ 1000) ─▶ report Accept (forwarded) | Reject
//!  create / join / start ─▶ announce: Kademlia provider record under
//!     ChannelId::provider_key (again after 1, 2, 4 … s while it reaches no peer)
//!     ─▶ get_providers ─▶ dial ≤ 8 members not yet connected
//!     (so a node that knows nobody in the channel still meets its mesh)
//!  leave ─▶ forget the channel ─▶ unsubscribe, stop providing
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use libp2p::PeerId;
use rhizo_core::{
    DeviceCertificate, DeviceKey, RootPublicKey, Uid,
    abuse::Conduct,
    channel::{ChannelId, ChannelPost, PostDedupe},
};
use rhizo_net::{Client, GossipVerdict};
use rhizo_store::{
    Db, DbError, Reader, StoreError, Tx,
    channels::{ChannelPostRow, ChannelRow},
};
use tokio::sync::broadcast;
use tracing::debug;

use crate::{
    events::ApiEvent,
    messaging::MessagingError,
    peer_policy::{PeerPolicy, Protocol},
};

/// Posts kept per channel.
pub const MAX_HISTORY: usize = 1000;
/// Post ids remembered for deduplication.
const DEDUPE_CAPACITY: usize = 16 * 1024;
/// Members found through the DHT that a join dials at most.
const MAX_MEMBER_DIALS: usize = 8;
/// Announcements of a channel while they reach no peer (the node has just started, or knows
/// nobody yet); Kademlia itself announces again every 12 h.
const ANNOUNCE_ATTEMPTS: u32 = 6;
/// Wait before the second announcement; it doubles for each one after (31 s in all).
const ANNOUNCE_RETRY_FIRST: Duration = Duration::from_secs(1);

/// A channel as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ChannelView {
    /// The id (base32), what others join with.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The gossipsub topic.
    pub topic: String,
    /// Peers we know on the topic (0 until the gossip mesh formed).
    #[serde(default)]
    pub peers: usize,
    /// Members found by the last DHT lookup of the channel's providers (None: no lookup has
    /// finished yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_found: Option<usize>,
}

/// A post as the API shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PostView {
    /// Post id (hex).
    pub id: String,
    /// The author's UID.
    pub author: String,
    /// The text.
    pub text: String,
    /// Author's clock (unix ms).
    pub sent_at: i64,
    /// Whether we wrote it.
    pub own: bool,
    /// For a post just made: whether it went out to at least one channel peer (false: no
    /// peer of the channel is connected yet, so it is only stored here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,
}

/// The channel service (cheap to clone).
#[derive(Clone)]
pub struct Channels {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Channels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channels").finish_non_exhaustive()
    }
}

struct Inner {
    db: Db,
    client: Client,
    guard: PeerPolicy,
    device: DeviceKey,
    certificate: DeviceCertificate,
    root: RootPublicKey,
    dedupe: Mutex<PostDedupe>,
    events: broadcast::Sender<ApiEvent>,
    /// Per joined channel, how many members the last provider lookup found (at most
    /// [`MAX_CHANNELS`](rhizo_store::channels::MAX_CHANNELS) entries).
    members_found: Mutex<HashMap<ChannelId, usize>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn view(row: &ChannelRow) -> ChannelView {
    let id = ChannelId::from_bytes(row.id);
    ChannelView {
        id: id.to_string(),
        name: row.name.clone(),
        topic: id.topic(),
        peers: 0,
        members_found: None,
    }
}

fn post_view(row: &ChannelPostRow) -> PostView {
    PostView {
        id: hex::encode(row.post_id),
        author: Uid::from_bytes(&row.author_uid).to_string(),
        text: row.text.clone(),
        sent_at: row.sent_at,
        own: row.own,
        published: None,
    }
}

fn internal(e: impl std::fmt::Display) -> MessagingError {
    MessagingError::Internal(e.to_string())
}

fn db_error(e: DbError) -> MessagingError {
    match e {
        DbError::Store(e) => MessagingError::Store(e),
        DbError::Busy => MessagingError::Busy(e.to_string()),
        other => internal(other),
    }
}

impl Channels {
    /// The service; `events` is the API's event stream.
    pub fn new(
        db: Db,
        client: Client,
        guard: PeerPolicy,
        device: DeviceKey,
        certificate: DeviceCertificate,
        events: broadcast::Sender<ApiEvent>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                client,
                guard,
                root: certificate.root(),
                device,
                certificate,
                dedupe: Mutex::new(PostDedupe::new(DEDUPE_CAPACITY)),
                events,
                members_found: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs `f` on one of the database's readers.
    async fn db_read<T: Send + 'static>(
        &self,
        f: impl FnOnce(Reader<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MessagingError> {
        let out = self.inner.db.read(move |r| f(r).map_err(DbError::from));
        out.await.map_err(db_error)
    }

    /// Runs `f` in the database's next group commit.
    async fn db_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, MessagingError> {
        let out = self.inner.db.write(move |tx| f(tx).map_err(DbError::from));
        out.await.map_err(db_error)
    }

    /// Subscribes to every joined channel (at start), and announces them in the DHT in the
    /// background, one after the other: the first one again while it reaches no peer (the
    /// routing table fills as the node connects), the others once each.
    pub async fn resubscribe(&self) -> Result<usize, MessagingError> {
        let channels = self.db_read(|r| r.channels()).await?;
        let ids: Vec<ChannelId> = channels
            .iter()
            .map(|r| ChannelId::from_bytes(r.id))
            .collect();
        for id in &ids {
            self.inner
                .client
                .subscribe(id.topic())
                .await
                .map_err(internal)?;
        }
        if !ids.is_empty() {
            let this = self.clone();
            tokio::spawn(async move {
                let mut attempts = ANNOUNCE_ATTEMPTS;
                for id in ids {
                    this.announce_and_meet(id, attempts).await;
                    attempts = 1;
                }
            });
        }
        Ok(channels.len())
    }

    /// Announces this node as a member of `id` (a Kademlia provider record under
    /// [`ChannelId::provider_key`], which Kademlia republishes) up to `attempts` times while
    /// the announcement reaches no peer, then looks the members up and dials up to
    /// [`MAX_MEMBER_DIALS`] it is not connected to, so that gossipsub can form the channel's
    /// mesh with them. Stops providing if the channel was left meanwhile. Best effort:
    /// failures are logged.
    async fn announce_and_meet(&self, id: ChannelId, attempts: u32) {
        let client = &self.inner.client;
        let key = id.provider_key();
        let mut retry_in = ANNOUNCE_RETRY_FIRST;
        for attempt in 1..=attempts {
            match client.start_providing(key.clone()).await {
                Ok(0) => debug!(channel = %id, attempt, "channel announcement reached no peer"),
                Ok(peers) => {
                    debug!(channel = %id, peers, "channel announced");
                    break;
                }
                Err(e) => debug!(channel = %id, attempt, error = %e, "channel announcement failed"),
            }
            if attempt == attempts || !self.is_joined(id).await {
                break;
            }
            tokio::time::sleep(retry_in).await;
            retry_in = retry_in.saturating_mul(2);
        }
        // Left while announcing: `leave` forgets the channel before it stops providing, so
        // either it stopped after our announcement, or we see that here.
        if !self.is_joined(id).await {
            let _ = client.stop_providing(key).await;
            return;
        }
        let members: Vec<PeerId> = match client.get_providers(key).await {
            Ok(found) => {
                let local = client.info().await.map(|i| i.peer_id).ok();
                found.into_iter().filter(|p| Some(*p) != local).collect()
            }
            Err(e) => {
                debug!(channel = %id, error = %e, "channel member lookup failed");
                return;
            }
        };
        if let Ok(mut found) = self.inner.members_found.lock()
            && (found.contains_key(&id) || found.len() < rhizo_store::channels::MAX_CHANNELS)
        {
            found.insert(id, members.len());
        }
        let connected: Vec<PeerId> = client
            .peers()
            .await
            .map(|peers| {
                peers
                    .into_iter()
                    .filter(|p| p.connections > 0)
                    .map(|p| p.peer_id)
                    .collect()
            })
            .unwrap_or_default();
        for member in members
            .into_iter()
            .filter(|m| !connected.contains(m))
            .take(MAX_MEMBER_DIALS)
        {
            if let Err(e) = client.dial_peer(member, Vec::new()).await {
                debug!(channel = %id, peer = %member, error = %e, "cannot dial a channel member");
            }
        }
    }

    /// Whether `id` is joined (false if the store cannot say).
    async fn is_joined(&self, id: ChannelId) -> bool {
        self.db_read(move |r| Ok(r.channel(id.as_bytes())?.is_some()))
            .await
            .unwrap_or(false)
    }

    /// Creates a channel named `name` (its id derives from our root key and the name) and
    /// joins it.
    pub async fn create(&self, name: &str) -> Result<ChannelView, MessagingError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(MessagingError::BadInput(
                "a channel name has 1 to 64 characters and no control characters".into(),
            ));
        }
        let id = ChannelId::new(&self.inner.root, name);
        let creator = self.inner.root.uid();
        self.join_id(id, name, Some(creator)).await
    }

    /// Joins a channel by its id (text form); `name` is a local label.
    pub async fn join(&self, id: &str, name: Option<&str>) -> Result<ChannelView, MessagingError> {
        let id: ChannelId = id
            .trim()
            .parse()
            .map_err(|e| MessagingError::BadInput(format!("invalid channel id: {e}")))?;
        let label = name.map_or_else(|| id.to_string()[..8].to_string(), str::to_string);
        self.join_id(id, &label, None).await
    }

    async fn join_id(
        &self,
        id: ChannelId,
        name: &str,
        creator: Option<Uid>,
    ) -> Result<ChannelView, MessagingError> {
        let row = ChannelRow {
            id: *id.as_bytes(),
            name: name.to_string(),
            creator_uid: creator.map(|u| *u.as_bytes()),
            joined_at: now_ms(),
        };
        let stored = row.clone();
        self.db_write(move |tx| tx.join_channel(&stored)).await?;
        self.inner
            .client
            .subscribe(id.topic())
            .await
            .map_err(internal)?;
        let this = self.clone();
        tokio::spawn(async move { this.announce_and_meet(id, ANNOUNCE_ATTEMPTS).await });
        Ok(view(&row))
    }

    /// Leaves a channel (its history is deleted).
    pub async fn leave(&self, id: &str) -> Result<bool, MessagingError> {
        let id = self.known(id).await?;
        // Forgotten first, so that an announcement still running sees it and withdraws.
        let left = self
            .db_write(move |tx| tx.leave_channel(id.as_bytes()))
            .await?;
        let _ = self.inner.client.unsubscribe(id.topic()).await;
        let _ = self.inner.client.stop_providing(id.provider_key()).await;
        if let Ok(mut found) = self.inner.members_found.lock() {
            found.remove(&id);
        }
        Ok(left)
    }

    /// Joined channels.
    pub async fn list(&self) -> Result<Vec<ChannelView>, MessagingError> {
        let rows = self.db_read(|r| r.channels()).await?;
        let mut views = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut v = view(row);
            v.members_found = self
                .inner
                .members_found
                .lock()
                .ok()
                .and_then(|found| found.get(&ChannelId::from_bytes(row.id)).copied());
            v.peers = self
                .inner
                .client
                .gossip_peers(v.topic.clone())
                .await
                .map(|p| p.len())
                .unwrap_or(0);
            views.push(v);
        }
        Ok(views)
    }

    /// A joined channel by id or name.
    async fn known(&self, id_or_name: &str) -> Result<ChannelId, MessagingError> {
        let key = id_or_name.trim().to_string();
        let rows = self.db_read(|r| r.channels()).await?;
        rows.iter()
            .find(|r| r.name == key || ChannelId::from_bytes(r.id).to_string() == key)
            .map(|r| ChannelId::from_bytes(r.id))
            .ok_or_else(|| {
                MessagingError::UnknownChannel(format!(
                    "not in channel '{key}': join it with `rhizo channel join ID`"
                ))
            })
    }

    /// Signs and publishes a post.
    pub async fn post(&self, channel: &str, text: &str) -> Result<PostView, MessagingError> {
        let id = self.known(channel).await?;
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(internal)?;
        let sent_at = now_ms();
        let post = ChannelPost::new(
            &self.inner.device,
            &self.inner.certificate,
            id,
            text,
            u64::try_from(sent_at).unwrap_or(0),
            nonce,
        )
        .map_err(|e| MessagingError::BadInput(e.to_string()))?;
        let row = row_of(&post, sent_at, true);
        let stored = row.clone();
        self.db_write(move |tx| tx.insert_channel_post(&stored, MAX_HISTORY))
            .await?;
        if let Ok(mut d) = self.inner.dedupe.lock() {
            d.first_time(post.post_id());
        }
        let published = match self.inner.client.publish(id.topic(), post.encode()).await {
            Ok(_) => true,
            // Nobody of the channel is connected: the post stays here, and the caller is told.
            Err(rhizo_net::NetError::Gossip(e)) if e.contains("insufficient peers") => false,
            Err(e) => return Err(MessagingError::Internal(format!("cannot publish: {e}"))),
        };
        let mut view = post_view(&row);
        view.published = Some(published);
        Ok(view)
    }

    /// The newest `limit` posts of a channel, oldest first.
    pub async fn read(&self, channel: &str, limit: usize) -> Result<Vec<PostView>, MessagingError> {
        let id = self.known(channel).await?;
        let rows = self
            .db_read(move |r| r.channel_posts(id.as_bytes(), limit))
            .await?;
        Ok(rows.iter().map(post_view).collect())
    }

    /// Checks one gossiped post and tells gossipsub whether to forward it.
    pub async fn handle_gossip(
        &self,
        source: PeerId,
        message_id: Vec<u8>,
        topic: String,
        data: Vec<u8>,
    ) {
        let verdict = self.check(source, &topic, &data).await;
        if verdict == GossipVerdict::Reject {
            self.inner
                .guard
                .record(source, Conduct::InvalidMessage)
                .await;
        }
        let _ = self
            .inner
            .client
            .report_validation(message_id, source, verdict)
            .await;
    }

    async fn check(&self, source: PeerId, topic: &str, data: &[u8]) -> GossipVerdict {
        if !self.inner.guard.allow(source, Protocol::Gossip).await {
            return GossipVerdict::Ignore;
        }
        let Some(id) = topic
            .strip_prefix("rhizo/channel/")
            .and_then(|t| t.parse::<ChannelId>().ok())
        else {
            return GossipVerdict::Reject;
        };
        let post =
            match ChannelPost::decode_verified(data, &id, u64::try_from(now_ms()).unwrap_or(0)) {
                Ok(p) => p,
                Err(e) => {
                    debug!(%source, error = %e, "channel post refused");
                    return GossipVerdict::Reject;
                }
            };
        let first = self
            .inner
            .dedupe
            .lock()
            .map(|mut d| d.first_time(post.post_id()))
            .unwrap_or(true);
        if !first {
            return GossipVerdict::Ignore;
        }
        let row = row_of(&post, now_ms(), false);
        let stored = row.clone();
        let joined = self
            .db_write(move |tx| {
                if tx.channel(&stored.channel_id)?.is_none() {
                    return Ok(false);
                }
                tx.insert_channel_post(&stored, MAX_HISTORY)?;
                Ok(true)
            })
            .await;
        match joined {
            Ok(true) => {
                let _ = self.inner.events.send(ApiEvent::ChannelPost {
                    channel: id.to_string(),
                    author: Uid::from_bytes(&row.author_uid).to_string(),
                    text: row.text.clone(),
                    sent_at: row.sent_at,
                });
                GossipVerdict::Accept
            }
            // Not ours (any more): do not forward it for others.
            Ok(false) => GossipVerdict::Ignore,
            Err(_) => GossipVerdict::Ignore,
        }
    }
}

fn row_of(post: &ChannelPost, received_at: i64, own: bool) -> ChannelPostRow {
    ChannelPostRow {
        post_id: post.post_id(),
        channel_id: *post.channel().as_bytes(),
        author_uid: *post.author_uid().as_bytes(),
        author_device: *post.author_device().as_bytes(),
        text: post.text().to_string(),
        sent_at: i64::try_from(post.sent_at_ms()).unwrap_or(i64::MAX),
        received_at,
        own,
    }
}
