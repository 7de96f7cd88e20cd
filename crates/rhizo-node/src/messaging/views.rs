//! What the local API shows of contacts, messages, profiles and the mailbox (JSON views).

use rhizo_core::{RootPublicKey, Uid, records::Profile, safety::SafetyNumber};
use rhizo_engine::Me;
use rhizo_store::messaging::{Contact, MessageRow, ProfileRow};

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
    /// They gained a device key since the user last verified them (docs/local-api.md "Key
    /// changes"): show a warning, and verify again to clear it.
    #[serde(default)]
    pub key_changed: bool,
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
    /// The attached file, for a file message (the text is then its caption).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileSummary>,
}

/// A file message's file, as the history shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FileSummary {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// Its MIME type.
    pub mime: String,
    /// `offered`, `downloading`, `done` or `failed`.
    pub state: String,
    /// Percent of the content held (0 to 100).
    pub percent: u8,
}

impl FileSummary {
    /// The summary of a file row.
    pub(crate) fn of(f: &rhizo_store::files::FileRow) -> Self {
        let total = rhizo_core::file::encrypted_size(f.size).max(1);
        Self {
            name: f.name.clone(),
            size: f.size,
            mime: f.mime.clone(),
            state: f.state.clone(),
            percent: u8::try_from((f.done_bytes.min(total) * 100) / total).unwrap_or(100),
        }
    }
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

pub(super) fn profile_view(uid: &Uid, p: &Profile, public: bool, source: &str) -> ProfileView {
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

pub(super) fn row_view(row: &ProfileRow, source: &str) -> ProfileView {
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
    /// Sources (replicas, or our own table) that refused this device's fetch: the newest
    /// device list they saw does not name it (revoked), or ours is older than that one.
    #[serde(default)]
    pub refused: usize,
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

pub(super) fn message_view(m: &MessageRow) -> MessageView {
    MessageView {
        id: m.id,
        direction: if m.outgoing { "out" } else { "in" }.into(),
        text: m.body.clone(),
        sent_at: m.sent_at,
        state: m.state.to_string(),
        seq: m.seq,
        error: m.error.clone(),
        replicas: m.replicas,
        file: None,
    }
}

/// A contact as the API shows it (with the safety number between us).
pub(super) fn view_of(c: &Contact, me: &Me, key_changed: bool) -> ContactView {
    let root = RootPublicKey::from_bytes(&c.root_pk);
    ContactView {
        name: c.name.clone(),
        uid: Uid::from_bytes(&c.uid).to_string(),
        fingerprint: root
            .as_ref()
            .map(|r| r.fingerprint().to_string())
            .unwrap_or_default(),
        safety_number: root
            .map(|r| SafetyNumber::between(&me.root_public, &r).to_string())
            .unwrap_or_default(),
        verified: c.verified,
        devices: c.devices.iter().map(|d| d.peer_id.clone()).collect(),
        key_changed,
    }
}
