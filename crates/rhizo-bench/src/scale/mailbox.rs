//! The lab's mailboxes: every honest node runs rhizo-node's [`Mailbox`] (the replica and the
//! client) on its own in-memory SQLite database; a Sybil node answers every mailbox request
//! with a lie (`Stored` for a store it drops, an empty page for a fetch).
//!
//! ```text
//!  offline recipient (root + device key from the seed, no node) ◀── M messages
//!  sender node ── Mailbox::store_for(uid) ──▶ the 5 closest replicas (real client code)
//!  churn steps: every honest node runs one re-replication pass (Mailbox::replicate_pass)
//!  the recipient comes online on a live honest node ── local table + its replica plan
//!     ── Challenge / Fetch (signed by its device, with its device list) ──▶ distinct envelopes
//! ```

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rhizo_core::envelope::{MessageType, NONCE_LEN, SecureMessage, SessionId};
use rhizo_core::mailbox::{FetchPager, MailboxRequest, MailboxResponse};
use rhizo_core::records::DeviceList;
use rhizo_core::{DeviceCertificate, DeviceKey, RootKey, Uid};
use rhizo_net::{Client, PeerId, ResponseChannel};
use rhizo_node::clock::{SharedClock, SystemClock};
use rhizo_node::mailbox::{Mailbox, MailboxSettings, Source};
use rhizo_store::{Db, DbConfig, Store, mailbox::MailboxQuota};

use super::lab::derive;

/// The TTL senders ask for (the node's default: 7 days).
const TTL_SECS: u32 = 7 * 24 * 3600;
/// Lifetime of a recipient's device list.
const LIST_TTL_SECS: u64 = 3 * 24 * 3600;

/// An honest node's mailbox service on a fresh in-memory database.
pub fn honest_mailbox(client: Client, peer: PeerId) -> anyhow::Result<Mailbox> {
    let db = Db::start(Store::open_in_memory()?, DbConfig::default())?;
    let clock: SharedClock = Arc::new(SystemClock);
    let settings = MailboxSettings {
        ttl_secs: TTL_SECS,
        poll: Duration::from_secs(60),
        replicate: Duration::from_secs(600),
        quota: MailboxQuota::default(),
    };
    Ok(Mailbox::new(db, client, peer, settings, clock))
}

/// Answers one inbound mailbox request: with the real replica on an honest node (`Some`),
/// with a lie on a Sybil node (`None`).
pub fn answer(
    mailbox: Option<Mailbox>,
    client: Client,
    peer: PeerId,
    payload: Vec<u8>,
    channel: ResponseChannel<Vec<u8>>,
) {
    tokio::spawn(async move {
        let response = match mailbox {
            Some(mailbox) => match mailbox.try_admit() {
                Ok(permit) => mailbox.handle_inbound(permit, peer, payload).await,
                Err(refusal) => refusal,
            },
            None => sybil_answer(&payload).encode(),
        };
        let _ = client.respond_mailbox(channel, response).await;
    });
}

/// What a Sybil answers: it acknowledges every store and keeps nothing.
fn sybil_answer(payload: &[u8]) -> MailboxResponse {
    let now_ms = u64::try_from(rhizo_node::unix_now()).unwrap_or(0) * 1000;
    match MailboxRequest::decode(payload) {
        Ok(MailboxRequest::Store { .. }) => MailboxResponse::Stored {
            expires_at_ms: now_ms + u64::from(TTL_SECS) * 1000,
            duplicate: false,
        },
        Ok(MailboxRequest::Challenge { .. }) => MailboxResponse::Challenge {
            nonce: [7; 32],
            expires_at_ms: now_ms + 60_000,
        },
        Ok(MailboxRequest::Delete(_)) => MailboxResponse::Deleted { count: 0 },
        _ => MailboxResponse::Fetched {
            entries: Vec::new(),
            more: false,
            next_cursor: 0,
        },
    }
}

/// A user of the lab's mailboxes: a root key and one device, drawn from the seed.
#[derive(Debug)]
pub struct User {
    root: RootKey,
    device: DeviceKey,
    /// The user's UID.
    pub uid: Uid,
}

impl User {
    /// User `index` of `purpose` (`"recipient"`, `"sender"`) under `seed`.
    pub fn new(seed: u64, purpose: &str, index: u64) -> Self {
        let root = RootKey::from_bytes(&derive(seed, &format!("{purpose}-root"), index));
        let device = DeviceKey::from_bytes(&derive(seed, &format!("{purpose}-device"), index));
        let uid = root.public().uid();
        Self { root, device, uid }
    }

    fn cert(&self) -> DeviceCertificate {
        self.root.certify_device(&self.device.public(), 1)
    }

    /// The user's signed device list (version 1, listing its one device).
    fn device_list(&self, now_secs: u64) -> anyhow::Result<Bytes> {
        let list = DeviceList::new(&self.root, 1, vec![self.cert()], now_secs, LIST_TTL_SECS)?;
        Ok(list.encode().into())
    }

    /// Envelope `seq` to `to`, signed by this user's device (its payload stands for the
    /// ciphertext; replicas never open it).
    fn envelope(&self, to: &Uid, seq: u64, now_ms: u64) -> anyhow::Result<Vec<u8>> {
        let mut nonce = [0; NONCE_LEN];
        nonce[..8].copy_from_slice(&seq.to_be_bytes());
        let mut message = SecureMessage {
            msg_type: MessageType::Application,
            sender_id: self.uid,
            sender_device: self.device.public(),
            recipient_id: *to,
            session_id: SessionId::from_bytes([1; 16]),
            sequence_num: seq,
            timestamp: now_ms,
            nonce,
            payload: vec![0xAB; 200].into(),
            signature: [0; 64],
        };
        message.sign(&self.device)?;
        Ok(message.encode())
    }
}

/// One message sent to an offline recipient: the envelope and whether a replica took it.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The recipient (an index into the lab's recipients).
    pub recipient: usize,
    /// The envelope.
    pub envelope: Vec<u8>,
    /// Replicas that acknowledged it (a Sybil's lie included).
    pub replicas: u32,
    /// How long the store took (finding the replicas and storing on them).
    pub elapsed: Duration,
}

/// Sends envelope `seq` from `sender` to `recipient` through `mailbox` (a live honest node):
/// the node's real store path, to the replicas of the recipient's mailbox key.
pub async fn send(
    mailbox: &Mailbox,
    sender: &User,
    recipient: (usize, &User),
    seq: u64,
) -> anyhow::Result<Sent> {
    let now_ms = u64::try_from(rhizo_node::unix_now()).unwrap_or(0) * 1000;
    let envelope = sender.envelope(&recipient.1.uid, seq, now_ms)?;
    let started = std::time::Instant::now();
    let outcome = mailbox
        .store_for(&recipient.1.uid, &[], &envelope, TTL_SECS, &sender.cert())
        .await;
    Ok(Sent {
        recipient: recipient.0,
        envelope,
        replicas: outcome.replicas,
        elapsed: started.elapsed(),
    })
}

/// What one recipient's fetch found.
#[derive(Debug, Default, Clone)]
pub struct Fetched {
    /// Distinct envelopes.
    pub envelopes: HashSet<Vec<u8>>,
    /// Copies of envelopes already fetched from another replica (the engine drops them).
    pub copies: usize,
    /// Replicas that answered.
    pub replicas: usize,
    /// How long the whole fetch took (every source, every page).
    pub elapsed: Duration,
}

/// `recipient` comes online on `mailbox`'s node and fetches its mailbox as the node does:
/// the node's own table, then the replicas of its plan (`Mailbox::fetch_sources`: 5 + 3 that
/// count, and every deep peer before them), every page of each.
pub async fn fetch(mailbox: &Mailbox, recipient: &User) -> anyhow::Result<Fetched> {
    let now_secs = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
    let list = recipient.device_list(now_secs)?;
    let started = std::time::Instant::now();
    let sources = mailbox.fetch_sources(&recipient.uid).await;
    let mut fetched = Fetched::default();
    for source in &sources {
        let mut pager = FetchPager::new();
        let mut answered = false;
        while let Some(cursor) = pager.next() {
            let Ok(page) = mailbox
                .fetch_page(source, &recipient.device, &recipient.uid, &list, cursor)
                .await
            else {
                pager.failed();
                continue;
            };
            answered = true;
            let returned = page.entries.len();
            for entry in page.entries {
                if !fetched.envelopes.insert(entry.envelope.to_vec()) {
                    fetched.copies += 1;
                }
            }
            // Nothing is deleted here: every entry counts as left on the replica.
            pager.page(returned, 0, page.more, page.next_cursor);
        }
        if answered && matches!(source, Source::Remote(_)) {
            fetched.replicas += 1;
        }
    }
    fetched.elapsed = started.elapsed();
    Ok(fetched)
}

/// The mailbox key of the lab's first recipient under `seed`: what an eclipse aims at.
pub fn eclipse_target(seed: u64) -> [u8; 32] {
    rhizo_core::mailbox::mailbox_key(&User::new(seed, "recipient", 0).uid)
}

/// Sender identities the lab's messages come from (one replica keeps at most 1,024 envelopes
/// per sender).
const SENDERS: u64 = 64;

/// The messages of one scenario: the offline recipients and what was sent to them.
#[derive(Debug)]
pub struct MailRun {
    recipients: Vec<User>,
    sent: Vec<Sent>,
}

/// What the recipients got back.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct MailFigures {
    /// Messages sent.
    pub messages: usize,
    /// Fraction of them that at least one replica acknowledged.
    pub stored: f64,
    /// Fraction of them their recipient fetched (each counted once).
    pub delivered: f64,
    /// Copies fetched from a second replica, per message delivered (the engine drops them).
    pub copies_per_message: f64,
    /// Replicas that answered a recipient's fetch, on average.
    pub replicas_answering: f64,
    /// Fraction of the messages to the first recipient (an eclipse's target) fetched.
    pub first_recipient_delivered: f64,
    /// Store time (closest-peers lookup + stores on the replicas), p50 and p99, ms.
    pub store_ms: (f64, f64),
    /// Fetch time of a recipient (its node's table, then 8 replicas, every page), p50 and
    /// p99, ms.
    pub fetch_ms: (f64, f64),
}

/// The p50 and p99 of `times`, ms.
fn p50_p99(times: impl Iterator<Item = Duration>) -> (f64, f64) {
    let mut sorted: Vec<f64> = times.map(crate::ms).collect();
    sorted.sort_by(f64::total_cmp);
    (
        crate::percentile(&sorted, 50.0),
        crate::percentile(&sorted, 99.0),
    )
}

/// Sends `messages` envelopes to `recipients` offline users, each from a random live honest
/// node and one of [`SENDERS`] sender identities, through the node's real store path.
pub async fn send_all(
    lab: &mut super::lab::Lab,
    seed: u64,
    recipients: usize,
    messages: usize,
) -> MailRun {
    use futures::StreamExt;
    let users: Vec<User> = (0..recipients as u64)
        .map(|i| User::new(seed, "recipient", i))
        .collect();
    let mut jobs = Vec::with_capacity(messages);
    for seq in 0..messages {
        let Some(node) = lab.pick_live(true).and_then(|i| lab.mailbox(i)) else {
            break;
        };
        jobs.push((node, seq));
    }
    let sent = futures::stream::iter(jobs)
        .map(|(node, seq)| {
            let to = seq % recipients.max(1);
            let users = &users;
            async move {
                let sender = User::new(seed, "sender", seq as u64 % SENDERS);
                send(&node, &sender, (to, &users[to]), seq as u64 + 1).await
            }
        })
        .buffer_unordered(super::lab::CONCURRENCY)
        .filter_map(|sent| async move { sent.ok() })
        .collect()
        .await;
    MailRun {
        recipients: users,
        sent,
    }
}

/// Every recipient comes online on a random live honest node and fetches its mailbox.
pub async fn fetch_all(lab: &mut super::lab::Lab, run: &MailRun) -> MailFigures {
    use futures::StreamExt;
    let mut jobs = Vec::with_capacity(run.recipients.len());
    for (index, user) in run.recipients.iter().enumerate() {
        if let Some(node) = lab.pick_live(true).and_then(|i| lab.mailbox(i)) {
            jobs.push((index, node, user));
        }
    }
    let fetched: Vec<(usize, Fetched)> =
        futures::stream::iter(jobs)
            .map(|(index, node, user)| async move {
                (index, fetch(&node, user).await.unwrap_or_default())
            })
            .buffer_unordered(super::lab::CONCURRENCY)
            .collect()
            .await;
    let mut delivered = 0usize;
    let (mut to_first, mut first_delivered) = (0usize, 0usize);
    for sent in &run.sent {
        let got = fetched
            .iter()
            .any(|(i, f)| *i == sent.recipient && f.envelopes.contains(&sent.envelope));
        delivered += usize::from(got);
        if sent.recipient == 0 {
            to_first += 1;
            first_delivered += usize::from(got);
        }
    }
    let messages = run.sent.len().max(1) as f64;
    let stored = run.sent.iter().filter(|s| s.replicas > 0).count();
    let copies: usize = fetched.iter().map(|(_, f)| f.copies).sum();
    let answering: usize = fetched.iter().map(|(_, f)| f.replicas).sum();
    MailFigures {
        messages: run.sent.len(),
        stored: stored as f64 / messages,
        delivered: delivered as f64 / messages,
        copies_per_message: copies as f64 / delivered.max(1) as f64,
        replicas_answering: answering as f64 / fetched.len().max(1) as f64,
        first_recipient_delivered: first_delivered as f64 / to_first.max(1) as f64,
        store_ms: p50_p99(run.sent.iter().map(|s| s.elapsed)),
        fetch_ms: p50_p99(fetched.iter().map(|(_, f)| f.elapsed)),
    }
}
