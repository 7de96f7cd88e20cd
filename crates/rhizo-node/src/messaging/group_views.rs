//! Reading groups: the list, one group's members and safety fingerprint, its history (which
//! marks it read: READ receipts go to the senders), and the held invitations (group requests)
//! with accepting and declining them. The JSON views the API and the CLI show.

use rhizo_core::Uid;
use rhizo_engine::groups::{GroupInfo, group_id_hex};
use rhizo_store::{
    Reader,
    groups::{GroupRequestRow, GroupRow},
    messaging::{MessageRow, MessageState},
};
use serde::{Deserialize, Serialize};

use super::{GroupError, MessageView, Messaging, views::message_view};
use crate::events::ApiEvent;

/// How many recent messages of a group the list counts unread ones among.
const UNREAD_WINDOW: usize = 500;

/// A group as the list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupView {
    /// The group's id (hex of its session id).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Member UIDs (us included).
    pub members: usize,
    /// Our role: `admin` or `member`.
    pub role: String,
    /// `active`, `left` or `removed`.
    pub status: String,
    /// Received messages not read yet (among the recent ones).
    pub unread: usize,
    /// The last change or message (unix ms).
    pub last_activity: i64,
}

/// One member of a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupMemberView {
    /// The member's UID.
    pub uid: String,
    /// The contact's name, when the member is a contact (`you` for us).
    pub name: Option<String>,
    /// `admin` or `member`.
    pub role: String,
    /// Its devices in the group.
    pub devices: usize,
}

/// One group in detail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupInfoView {
    /// The group's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Our role.
    pub role: String,
    /// `active`, `left`, `removed`, or `rejoining` (waiting for an admin to add this device
    /// again: members without devices, the epoch we were stuck at, no fingerprint).
    pub status: String,
    /// The MLS epoch.
    pub epoch: u64,
    /// The safety fingerprint (every member sees the same one in the same epoch).
    pub fingerprint: String,
    /// The members.
    pub members: Vec<GroupMemberView>,
}

/// A group message: the message, its sender, and for ours how far it got.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupMessageView {
    /// The message.
    #[serde(flatten)]
    pub message: MessageView,
    /// The sender's UID (received messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The sender's contact name, if a contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_name: Option<String>,
    /// Ours: member devices that have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<u32>,
    /// Ours: member devices that read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<u32>,
    /// Ours: member devices it went to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u32>,
}

/// A held invitation to a group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GroupRequestView {
    /// Its id (accept / decline name it).
    pub id: i64,
    /// The inviter's UID.
    pub from: String,
    /// The inviter's contact name, if a contact.
    pub from_name: Option<String>,
    /// The group's name.
    pub name: String,
    /// How many member UIDs the group had.
    pub members: u32,
    /// When it arrived (unix ms).
    pub received_at: i64,
    /// When it is dropped undecided (unix ms).
    pub expires_at: i64,
}

impl Messaging {
    /// Our groups, most recent activity first.
    pub async fn groups(&self) -> Result<Vec<GroupView>, GroupError> {
        self.with_reader(|reader, _| {
            let mut out = Vec::new();
            let sync = rhizo_engine::sync::sync_session(reader)?;
            for g in reader.groups()? {
                if sync == Some(g.session_id) {
                    continue; // Our devices' sync group is no group the user sees.
                }
                out.push(group_view(reader, &g)?);
            }
            out.sort_by_key(|g| std::cmp::Reverse(g.last_activity));
            Ok(out)
        })
        .await
    }

    /// One group's members, epoch, fingerprint and profile.
    pub async fn group_info(&self, group: &str) -> Result<GroupInfoView, GroupError> {
        let group = self.find_group(group).await?;
        let me = *self.inner.engine.me().uid.as_bytes();
        self.with_tx(move |tx, engine| {
            let info = engine.group_info(tx, &group.session_id)?;
            info_view(tx, &info, &me)
        })
        .await
    }

    /// A group's history, oldest first (the newest `limit`). With `mark_read`, received
    /// messages become `read` and READ receipts go to their senders.
    pub async fn group_history(
        &self,
        group: &str,
        limit: usize,
        mark_read: bool,
    ) -> Result<Vec<GroupMessageView>, GroupError> {
        let group = self.find_group(group).await?;
        let now = self.now();
        let (views, queued) = self
            .with_tx(move |tx, engine| {
                let queued = mark_read
                    && group.status == rhizo_store::groups::GroupStatus::Active
                    && engine.mark_group_read(tx, &group.session_id, now)?;
                let info = engine.group_info(tx, &group.session_id).ok();
                let mut rows = tx.messages(&group.session_id, limit)?;
                rows.retain(|m| m.kind == "text");
                let mut views = Vec::with_capacity(rows.len());
                for row in &rows {
                    views.push(message_of(tx, info.as_ref(), row)?);
                }
                Ok::<_, GroupError>((views, queued))
            })
            .await?;
        if queued {
            self.inner.outbox_wake.notify_one();
        }
        Ok(views)
    }

    /// The held invitations, oldest first.
    pub async fn group_requests(&self) -> Result<Vec<GroupRequestView>, GroupError> {
        let now = self.now();
        self.with_reader(move |reader, _| {
            let mut out = Vec::new();
            for r in reader.group_requests(now)? {
                out.push(request_view(reader, &r)?);
            }
            Ok(out)
        })
        .await
    }

    /// Accepts a held invitation: joins the group.
    pub async fn accept_group_request(&self, id: i64) -> Result<GroupView, GroupError> {
        let now = self.now();
        let (view, events) = self
            .with_tx(move |tx, engine| {
                let (group, events) =
                    engine
                        .accept_group_request(tx, id, now)
                        .map_err(|e| match e {
                            rhizo_engine::EngineError::UnknownGroup => {
                                GroupError::UnknownRequest(id)
                            }
                            e => GroupError::Engine(e),
                        })?;
                Ok::<_, GroupError>((group_view(tx, &group)?, events))
            })
            .await?;
        self.emit_events(events);
        self.inner.outbox_wake.notify_one();
        Ok(view)
    }

    /// Declines a held invitation (dropped).
    pub async fn decline_group_request(&self, id: i64) -> Result<(), GroupError> {
        let held = self
            .with_tx(move |tx, engine| Ok::<_, GroupError>(engine.decline_group_request(tx, id)?))
            .await?;
        if !held {
            return Err(GroupError::UnknownRequest(id));
        }
        Ok(())
    }

    /// Emits the API event of a queued group text.
    pub(super) fn emit_group_queued(&self, group: &GroupRow, view: &MessageView, total: u32) {
        self.emit(ApiEvent::GroupMessageState {
            id: view.id,
            group: group_id_hex(&group.session_id),
            state: view.state.clone(),
            delivered: 0,
            read: 0,
            total,
        });
    }
}

fn group_view(reader: &Reader<'_>, g: &GroupRow) -> Result<GroupView, GroupError> {
    let members = reader.group_members(&g.session_id)?.len();
    let recent = reader.messages(&g.session_id, UNREAD_WINDOW)?;
    let unread = recent
        .iter()
        .filter(|m| m.kind == "text" && m.state == MessageState::Received)
        .count();
    let last = recent
        .iter()
        .map(|m| m.received_at.unwrap_or(m.sent_at))
        .max()
        .unwrap_or(0);
    Ok(GroupView {
        id: group_id_hex(&g.session_id),
        name: g.name.clone(),
        members,
        role: g.my_role.as_str().to_string(),
        status: g.status.as_str().to_string(),
        unread,
        last_activity: last.max(g.updated_at),
    })
}

fn info_view(
    reader: &Reader<'_>,
    info: &GroupInfo,
    me: &[u8; 32],
) -> Result<GroupInfoView, GroupError> {
    let mut members = Vec::with_capacity(info.members.len());
    for m in &info.members {
        let name = if &m.uid == me {
            Some("you".to_string())
        } else {
            reader.contact_by_uid(&m.uid)?.map(|c| c.name)
        };
        members.push(GroupMemberView {
            uid: Uid::from_bytes(&m.uid).to_string(),
            name,
            role: m.role.as_str().to_string(),
            devices: m.devices.len(),
        });
    }
    Ok(GroupInfoView {
        id: group_id_hex(&info.group.session_id),
        name: info.profile.name.clone(),
        description: info.profile.description.clone(),
        role: info.group.my_role.as_str().to_string(),
        status: if info.rejoining {
            "rejoining".to_string()
        } else {
            info.group.status.as_str().to_string()
        },
        epoch: info.epoch,
        fingerprint: info.fingerprint.clone(),
        members,
    })
}

fn message_of(
    reader: &Reader<'_>,
    info: Option<&GroupInfo>,
    row: &MessageRow,
) -> Result<GroupMessageView, GroupError> {
    let mut view = GroupMessageView {
        message: message_view(row),
        from: None,
        from_name: None,
        delivered: None,
        read: None,
        total: None,
    };
    if row.outgoing {
        let counts = reader.delivery_counts(row.id)?;
        view.delivered = Some(counts.delivered);
        view.read = Some(counts.read);
        view.total = Some(counts.total);
    } else if let Some(member) = info.and_then(|i| {
        i.members
            .iter()
            .find(|m| m.devices.contains(&row.sender_device))
    }) {
        view.from = Some(Uid::from_bytes(&member.uid).to_string());
        view.from_name = reader.contact_by_uid(&member.uid)?.map(|c| c.name);
    }
    Ok(view)
}

fn request_view(reader: &Reader<'_>, r: &GroupRequestRow) -> Result<GroupRequestView, GroupError> {
    Ok(GroupRequestView {
        id: r.id,
        from: Uid::from_bytes(&r.inviter_uid).to_string(),
        from_name: reader.contact_by_uid(&r.inviter_uid)?.map(|c| c.name),
        name: r.name.clone(),
        members: r.members,
        received_at: r.received_at,
        expires_at: r.expires_at,
    })
}
