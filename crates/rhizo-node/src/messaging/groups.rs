//! Private groups: the driver around the engine's group calls. Creating a group or adding
//! members fetches each member's KeyPackage bundles from the DHT (members are contact names
//! or UIDs; a UID that is no contact has its identity record and device list fetched and
//! checked), then runs the engine in one job of the database's group commit and wakes the
//! outbox. The outbox pass also sends the due group frames to every member device that lacks
//! them, reports the answers, and stores on a member's mailbox replicas what none of its
//! devices took. Members whose add lost the commit ordering are added again, a bounded number
//! of times.

use futures::{StreamExt, stream};
use libp2p::PeerId;
use rhizo_core::{Uid, group::MAX_GROUP_MEMBERS};
use rhizo_engine::{
    Event, MAX_TEXT_BYTES, MailboxAttempt,
    contacts::find_contact_in,
    groups::{GroupTransmit, group_id_hex},
    outbox::DeviceAnswer,
};
use rhizo_store::{
    Durability, Reader,
    groups::{GroupOutboxItem, GroupRow},
    messaging::Contact,
};
use tracing::{debug, warn};

use super::{GroupError, JobError, MessageView, Messaging, SendError, views::message_view};
use crate::{events::ApiEvent, mailbox::StoreVerdict};

/// How many times a member whose add lost the commit ordering is added again.
pub(super) const MAX_READD_ATTEMPTS: u32 = 3;
/// Member devices one group frame is sent to at once.
const MAX_CONCURRENT_SENDS: usize = 64;
/// The most (group, member) re-add counters kept (the oldest are forgotten past it).
const MAX_READD_ENTRIES: usize = 1024;

/// What sending one group frame left to do.
struct GroupSent {
    /// Members none of whose devices answered (their mailboxes get the envelopes).
    missing: Vec<[u8; 32]>,
    /// Member-relayed fan-out: the subtrees of relays that did not take it, to send directly.
    fallback: Option<GroupTransmit>,
    /// The envelopes one by one, for devices that took no batch frame.
    singles: Vec<GroupTransmit>,
}

impl Messaging {
    /// Sends the due group frames: each to the member devices that lack it, at once; members
    /// none of whose devices answered get the frame's envelopes in their mailboxes. A member
    /// unreachable once is not dialled again in the same pass.
    pub(super) async fn group_outbox_pass(&self) -> Result<(), JobError> {
        let now = self.now();
        let this = self.clone();
        let transmits = self
            .inner
            .db
            .read(move |reader| -> Result<_, JobError> {
                Ok(this.inner.engine.poll_group_transmits(&reader, now)?)
            })
            .await?;
        let mut unreachable: Vec<[u8; 32]> = Vec::new();
        // A relay that did not take a message hands its subtree back: sent directly next.
        let mut queue: std::collections::VecDeque<GroupTransmit> = transmits.into();
        while let Some(mut transmit) = queue.pop_front() {
            let skipped: Vec<_> = transmit
                .targets
                .iter()
                .filter(|t| unreachable.contains(&t.member))
                .cloned()
                .collect();
            transmit
                .targets
                .retain(|t| !unreachable.contains(&t.member));
            let mut missing = if transmit.targets.is_empty() {
                Vec::new()
            } else {
                let sent = self.deliver_group(&transmit).await?;
                if let Some(fallback) = sent.fallback {
                    queue.push_front(fallback);
                }
                // Devices that take no batch frames get the envelopes one by one, next.
                for single in sent.singles.into_iter().rev() {
                    queue.push_front(single);
                }
                sent.missing
            };
            missing.extend(skipped.iter().map(|t| t.member));
            missing.sort_unstable();
            missing.dedup();
            for member in missing {
                for item in &transmit.items {
                    if item.recipient_uid.is_some_and(|r| r != member) {
                        continue;
                    }
                    self.store_group_item(item, &transmit, &member).await?;
                }
                if !unreachable.contains(&member) {
                    unreachable.push(member);
                }
            }
        }
        Ok(())
    }

    /// Sends one group frame to its member devices ([`MAX_CONCURRENT_SENDS`] at once; a relay
    /// head gets its own relay frame) and writes what they answered: the members none of whose
    /// devices answered, the direct fallback for relays that did not take it, and the envelopes
    /// one by one for devices that took no batch frame (nodes older than them, as in 1:1).
    async fn deliver_group(&self, transmit: &GroupTransmit) -> Result<GroupSent, JobError> {
        // Collected first: a lazy `map` of borrowing futures is not provably `Send` for the
        // spawned outbox task.
        let sends: Vec<_> = transmit
            .targets
            .iter()
            .map(|t| async move {
                self.send_frame_to(&t.target, transmit.frame_for(&t.target.device))
                    .await
                    .map(|answer| (t, answer))
            })
            .collect();
        let results: Vec<_> = stream::iter(sends)
            .buffer_unordered(MAX_CONCURRENT_SENDS)
            .filter_map(std::future::ready)
            .collect()
            .await;
        let batch = transmit.items.len() > 1;
        let mut refused = Vec::new();
        let mut refused_members = Vec::new();
        let mut answers: Vec<DeviceAnswer> = Vec::new();
        for (t, answer) in results {
            match answer {
                Err(rhizo_net::SendError::BatchUnsupported) if batch => {
                    refused.push(t.target.device);
                    refused_members.push(t.member);
                }
                answer => answers.push((t.target.device, answer.map_err(|e| e.to_string()))),
            }
        }
        let now = self.now();
        let this = self.clone();
        let written = transmit.clone();
        // Relaxed, as the 1:1 path: lost in a crash, the frame is sent again and answered
        // "already have it".
        let result = self
            .inner
            .db
            .write_with(Durability::Relaxed, move |tx| -> Result<_, JobError> {
                Ok(this
                    .inner
                    .engine
                    .on_group_transmit_result(tx, &written, answers, now)?)
            })
            .await?;
        self.emit_events(result.events);
        let mut missing = result.unreachable;
        let singles = if refused.is_empty() {
            Vec::new()
        } else {
            debug!(
                devices = refused.len(),
                envelopes = transmit.items.len(),
                "group: a device takes no batch frames: sending the envelopes one by one"
            );
            // Their members' mailboxes wait for the single envelopes' own answers.
            missing.retain(|m| !refused_members.contains(m));
            transmit.singles_to(&refused)
        };
        Ok(GroupSent {
            missing,
            fallback: result.fallback,
            singles,
        })
    }

    /// Stores one group envelope on `member`'s mailbox replicas (not on its own devices),
    /// and writes how that went.
    async fn store_group_item(
        &self,
        item: &GroupOutboxItem,
        transmit: &GroupTransmit,
        member: &[u8; 32],
    ) -> Result<(), JobError> {
        let exclude: Vec<PeerId> = transmit
            .targets
            .iter()
            .filter(|t| &t.member == member)
            .filter_map(|t| t.target.peer_id.parse().ok())
            .collect();
        let ttl = self.inner.mailbox.settings().ttl_secs;
        let stored = self
            .inner
            .mailbox
            .store_for(
                &Uid::from_bytes(member),
                &exclude,
                &item.envelope,
                ttl,
                &self.inner.engine.me().certificate,
            )
            .await;
        let attempt = MailboxAttempt {
            stored_on: match stored.verdict() {
                StoreVerdict::Stored { replicas } => Some(replicas),
                _ => None,
            },
            quota_full: stored.quota_full,
            errors: stored.errors,
        };
        let (item, member) = (item.clone(), *member);
        let now = self.now();
        let events = self
            .with_engine(move |tx, engine| {
                engine.on_group_mailbox_result(tx, &item, &member, &attempt, now)
            })
            .await?;
        self.emit_events(events);
        Ok(())
    }

    /// Creates a group named `name` with `members` (contact names or UIDs); we are its admin.
    pub async fn create_group(
        &self,
        name: &str,
        members: Vec<String>,
    ) -> Result<GroupRow, GroupError> {
        let key_packages = self.member_key_packages(members).await?;
        let (name, now) = (name.to_string(), self.now());
        let group = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.create_group(tx, &name, &key_packages, now)?)
            })
            .await?;
        self.emit(ApiEvent::GroupCreated {
            group: group_id_hex(&group.session_id),
            name: group.name.clone(),
        });
        self.inner.outbox_wake.notify_one();
        Ok(group)
    }

    /// Adds `members` (contact names or UIDs) to a group we administer; the added UIDs.
    pub async fn add_group_members(
        &self,
        group: &str,
        members: Vec<String>,
    ) -> Result<Vec<String>, GroupError> {
        let group = self.find_group(group).await?;
        let key_packages = self.member_key_packages(members).await?;
        let now = self.now();
        let added = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.add_group_members(
                    tx,
                    &group.session_id,
                    &key_packages,
                    now,
                )?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(added
            .iter()
            .map(|u| Uid::from_bytes(u).to_string())
            .collect())
    }

    /// Removes a member (contact name or UID) from a group we administer; whether they were
    /// in it.
    pub async fn remove_group_member(&self, group: &str, member: &str) -> Result<bool, GroupError> {
        let group = self.find_group(group).await?;
        let uid = self.member_uid(member).await?;
        let now = self.now();
        let removed = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.remove_group_member(tx, &group.session_id, &uid, now)?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(removed)
    }

    /// Makes a member (contact name or UID) an admin of a group we administer, or a member
    /// again (`admin` false); whether the roles changed. One MLS commit every member checks.
    pub async fn set_group_admin(
        &self,
        group: &str,
        member: &str,
        admin: bool,
    ) -> Result<bool, GroupError> {
        let group = self.find_group(group).await?;
        let uid = self.member_uid(member).await?;
        let now = self.now();
        let changed = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.set_group_admin(
                    tx,
                    &group.session_id,
                    &uid,
                    admin,
                    now,
                )?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(changed)
    }

    /// A member's UID: a contact's by name or UID, else the UID given.
    async fn member_uid(&self, member: &str) -> Result<[u8; 32], GroupError> {
        let name = member.to_string();
        let found = self
            .with_reader(move |r, _| Ok::<_, GroupError>(find_contact_in(r, &name)?))
            .await?;
        match found {
            Some(contact) => Ok(contact.uid),
            None => Ok(*member
                .trim()
                .parse::<Uid>()
                .map_err(|_| GroupError::UnknownMember(member.to_string()))?
                .as_bytes()),
        }
    }

    /// Renames a group or changes its description (admins only); whether it changed.
    pub async fn update_group_profile(
        &self,
        group: &str,
        name: Option<String>,
        description: Option<String>,
    ) -> Result<bool, GroupError> {
        let group = self.find_group(group).await?;
        let now = self.now();
        let changed = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.update_group_profile(
                    tx,
                    &group.session_id,
                    name.as_deref(),
                    description.as_deref(),
                    now,
                )?)
            })
            .await?;
        self.inner.outbox_wake.notify_one();
        Ok(changed)
    }

    /// Leaves a group (the members are told; an admin commits our removal).
    pub async fn leave_group(&self, group: &str) -> Result<(), GroupError> {
        let group = self.find_group(group).await?;
        let now = self.now();
        let session_id = group.session_id;
        self.with_tx(move |tx, engine| {
            Ok::<_, GroupError>(engine.leave_group(tx, &session_id, now)?)
        })
        .await?;
        self.emit(ApiEvent::GroupLeft {
            group: group_id_hex(&session_id),
            removed: false,
        });
        self.inner.outbox_wake.notify_one();
        Ok(())
    }

    /// Queues a text in a group: its row and the member devices it goes to.
    pub async fn send_group_text(
        &self,
        group: &str,
        text: &str,
    ) -> Result<(MessageView, u32), GroupError> {
        if text.is_empty() || text.len() > MAX_TEXT_BYTES {
            return Err(GroupError::BadText {
                max: MAX_TEXT_BYTES,
            });
        }
        let group = self.find_group(group).await?;
        let (text, now, session_id) = (text.to_string(), self.now(), group.session_id);
        let queued = self
            .with_tx(move |tx, engine| {
                Ok::<_, GroupError>(engine.queue_group_text(tx, &session_id, &text, now)?)
            })
            .await?;
        let view = message_view(&queued.row);
        self.emit_group_queued(&group, &view, queued.total);
        self.inner.outbox_wake.notify_one();
        Ok((view, queued.total))
    }

    /// A group by its id (hex of the session id), an id prefix, or its name.
    pub(super) async fn find_group(&self, group: &str) -> Result<GroupRow, GroupError> {
        let group = group.to_string();
        self.with_reader(move |reader, _| find_group_in(reader, &group))
            .await
    }

    /// The KeyPackages of every listed device of each member (contact names or UIDs).
    async fn member_key_packages(&self, members: Vec<String>) -> Result<Vec<Vec<u8>>, GroupError> {
        if members.is_empty() || members.len() > MAX_GROUP_MEMBERS {
            return Err(GroupError::BadMembers {
                max: MAX_GROUP_MEMBERS,
            });
        }
        let mut out = Vec::new();
        for member in members {
            let contact = self.member_contact(&member).await?;
            let key_packages = self
                .fetch_key_packages(&contact)
                .await
                .map_err(|e| match e {
                    SendError::Db(e) => GroupError::Db(e),
                    SendError::Engine(e) => GroupError::Engine(e),
                    _ => GroupError::NoKeyPackages(member.clone()),
                })?;
            out.extend(key_packages);
        }
        Ok(out)
    }

    /// A member as a contact: ours by name or UID, or a UID's checked records from the DHT.
    async fn member_contact(&self, member: &str) -> Result<Contact, GroupError> {
        let name = member.to_string();
        let found = self
            .with_reader(move |r, _| Ok::<_, GroupError>(find_contact_in(r, &name)?))
            .await?;
        if let Some(contact) = found {
            return Ok(contact);
        }
        let uid: Uid = member
            .trim()
            .parse()
            .map_err(|_| GroupError::UnknownMember(member.to_string()))?;
        Ok(self.contact_from_dht(&uid, member).await?)
    }

    /// Members we added lost the commit ordering: add them again with fresh KeyPackages, at
    /// most [`MAX_READD_ATTEMPTS`] times per (group, member).
    pub(super) fn spawn_readd(&self, group: String, uids: Vec<String>) {
        let uids: Vec<String> = {
            let Ok(mut readds) = self.inner.readds.lock() else {
                return;
            };
            if readds.len() >= MAX_READD_ENTRIES {
                readds.clear();
            }
            uids.into_iter()
                .filter(|uid| {
                    let n = readds.entry((group.clone(), uid.clone())).or_insert(0);
                    *n += 1;
                    *n <= MAX_READD_ATTEMPTS
                })
                .collect()
        };
        if uids.is_empty() {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.add_group_members(&group, uids).await {
                warn!(error = %e, "adding members again after a lost commit ordering failed");
            }
        });
    }
}

/// [`Messaging::find_group`] on a reader: an exact id, then a unique name, then a unique id
/// prefix (at least 4 hex digits).
pub(super) fn find_group_in(reader: &Reader<'_>, group: &str) -> Result<GroupRow, GroupError> {
    let wanted = group.trim().to_ascii_lowercase();
    let sync = rhizo_engine::sync::sync_session(reader)?;
    let mut all = reader.groups()?;
    // Our devices' sync group is no group the user names.
    all.retain(|g| sync != Some(g.session_id));
    if let Some(g) = all.iter().find(|g| group_id_hex(&g.session_id) == wanted) {
        return Ok(g.clone());
    }
    let by_name: Vec<&GroupRow> = all.iter().filter(|g| g.name == group.trim()).collect();
    match by_name.as_slice() {
        [one] => return Ok((*one).clone()),
        [_, _, ..] => return Err(GroupError::AmbiguousGroup(group.to_string())),
        [] => {}
    }
    let by_prefix: Vec<&GroupRow> = all
        .iter()
        .filter(|g| wanted.len() >= 4 && group_id_hex(&g.session_id).starts_with(&wanted))
        .collect();
    match by_prefix.as_slice() {
        [one] => Ok((*one).clone()),
        [_, _, ..] => Err(GroupError::AmbiguousGroup(group.to_string())),
        [] => Err(GroupError::UnknownGroup(group.to_string())),
    }
}

/// The API event of an engine group event (`None` for the others).
pub(super) fn api_event(event: Event) -> Option<ApiEvent> {
    Some(match event {
        Event::GroupCreated { group, name } => ApiEvent::GroupCreated { group, name },
        Event::GroupMessageReceived {
            id,
            group,
            from,
            text,
            sent_at,
            muted,
        } => ApiEvent::GroupMessageReceived {
            id,
            group,
            from,
            text,
            sent_at,
            muted,
        },
        Event::GroupMessageState {
            id,
            group,
            state,
            delivered,
            read,
            total,
        } => ApiEvent::GroupMessageState {
            id,
            group,
            state: state.to_string(),
            delivered,
            read,
            total,
        },
        Event::GroupMemberAdded { group, uid } => ApiEvent::GroupMemberAdded { group, uid },
        Event::GroupMemberRemoved { group, uid } => ApiEvent::GroupMemberRemoved { group, uid },
        Event::GroupRenamed { group, name } => ApiEvent::GroupRenamed { group, name },
        Event::GroupLeft { group, removed } => ApiEvent::GroupLeft { group, removed },
        Event::GroupRequest { id, from, name } => ApiEvent::GroupRequest { id, from, name },
        _ => return None,
    })
}
