//! Private groups (issue 14): the group of a `group` conversation, its members, the
//! per-device delivery state of our group messages, held invitations (group requests) and our
//! pending changes (intents) to re-propose after an MLS rollback.
//!
//! ```text
//!  conversations (kind = 'group') ── groups ─┬─ group_members   (UIDs; devices: the MLS roster)
//!                                            └─ group_intents   (add/remove/profile to redo)
//!  messages (ours) ── message_deliveries      (one row per member device: delivered k/n, read k/n)
//!  group_requests                             (Welcomes held until accepted/declined, bounded)
//!  group_rejoins                              (behind since when; our last GroupRejoin)
//! ```
//!
//! Every bound is a named constant here and breaking it is a [`StoreError::LimitReached`].

mod deliveries;
mod rejoins;
mod requests;

pub use deliveries::{
    DeliveryCounts, DeliveryState, GroupOutboxItem, GroupSend, MemberDevice, ResendRow,
};
pub use rejoins::{GroupRejoinRow, MAX_BEHIND_SENDERS};
pub use requests::{
    GROUP_REQUEST_TTL_MS, GroupRequestRow, MAX_GROUP_REQUESTS, MAX_HELD_WELCOME_BYTES,
    NewGroupRequest,
};

use rusqlite::{OptionalExtension, Row, params};

use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;
use crate::tx::{Reader, Tx};

/// Groups a node may be an active member of (each costs MLS state and fan-out work).
pub const MAX_GROUPS: usize = rhizo_core::group::MAX_GROUPS_PER_NODE;
/// Member UIDs per group (devices are bounded by MLS).
pub const MAX_GROUP_MEMBERS: usize = rhizo_core::group::MAX_GROUP_MEMBERS;
/// Pending changes (intents) per group: what a rollback may have to re-propose.
pub const MAX_GROUP_INTENTS: usize = rhizo_core::group::MAX_GROUP_INTENTS;
/// Longest group name kept (the profile's bound).
pub const MAX_GROUP_NAME_CHARS: usize = rhizo_core::group::MAX_GROUP_NAME_CHARS;

/// A member's role in a group (from the group's MLS extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupRole {
    /// May add and remove members and change the profile.
    Admin,
    /// May send, self-update and leave.
    Member,
}

impl GroupRole {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }

    fn parse(s: &str) -> Self {
        if s == "admin" {
            Self::Admin
        } else {
            Self::Member
        }
    }
}

/// Where this node is in a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupStatus {
    /// A member.
    Active,
    /// We left (a `GroupControl{leave}` was sent; the admins remove our leaves).
    Left,
    /// An admin removed us.
    Removed,
}

impl GroupStatus {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Left => "left",
            Self::Removed => "removed",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "left" => Self::Left,
            "removed" => Self::Removed,
            _ => Self::Active,
        }
    }
}

/// A group this node is (or was) in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// The envelope session id (the conversation's key).
    pub session_id: [u8; 16],
    /// The MLS group id (32 bytes).
    pub group_id: Vec<u8>,
    /// The group address (every group envelope's `recipient_id`).
    pub address: [u8; 32],
    /// The name from the group's profile (a cache of the MLS extension).
    pub name: String,
    /// Our role.
    pub my_role: GroupRole,
    /// Whether we are still in it.
    pub status: GroupStatus,
    /// Who invited us (None: we created it).
    pub invited_by: Option<[u8; 32]>,
    /// We joined without asking (the inviter was a contact and auto-join was on).
    pub auto_join: bool,
    /// When created or joined (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
}

/// One member (a UID) of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// The member's UID.
    pub uid: [u8; 32],
    /// Its root public key.
    pub root_pk: [u8; 32],
    /// Its role.
    pub role: GroupRole,
    /// When it was added (unix ms).
    pub added_at: i64,
}

/// What [`Tx::set_group_members`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembersChanged {
    /// UIDs now in the group that were not.
    pub added: Vec<[u8; 32]>,
    /// UIDs no longer in the group.
    pub removed: Vec<[u8; 32]>,
    /// UIDs whose role changed.
    pub role_changed: Vec<[u8; 32]>,
}

/// A kind of pending change to a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntentKind {
    /// Add members (body: the caller's encoding of whom).
    Add,
    /// Remove members.
    Remove,
    /// Change the profile.
    Profile,
    /// Change the admins.
    Admins,
}

impl IntentKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "add",
            Self::Remove => "remove",
            Self::Profile => "profile",
            Self::Admins => "admins",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "remove" => Self::Remove,
            "profile" => Self::Profile,
            "admins" => Self::Admins,
            _ => Self::Add,
        }
    }
}

/// A change we made to a group, kept until its commit stays applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupIntent {
    /// Row id.
    pub id: i64,
    /// The group.
    pub session_id: [u8; 16],
    /// What kind of change.
    pub kind: IntentKind,
    /// What exactly (the engine's encoding).
    pub body: Vec<u8>,
    /// The commit that carries it, once made.
    pub commit_id: Option<[u8; 32]>,
    /// The epoch that commit was made in.
    pub epoch: Option<u64>,
    /// When asked for (unix ms).
    pub created_at: i64,
}

const GROUP_COLUMNS: &str = "session_id, group_id, address, name, my_role, state, invited_by, \
                             auto_join, created_at, updated_at";

impl Reader<'_> {
    /// A group by session id.
    pub fn group_by_session(&self, session_id: &[u8; 16]) -> Result<Option<GroupRow>, StoreError> {
        self.group_where("session_id", &session_id[..])
    }

    /// A group by its address (a group envelope's `recipient_id`).
    pub fn group_by_address(&self, address: &[u8; 32]) -> Result<Option<GroupRow>, StoreError> {
        self.group_where("address", &address[..])
    }

    /// A group by its MLS group id.
    pub fn group_by_group_id(&self, group_id: &[u8]) -> Result<Option<GroupRow>, StoreError> {
        self.group_where("group_id", group_id)
    }

    fn group_where(&self, column: &str, key: &[u8]) -> Result<Option<GroupRow>, StoreError> {
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups WHERE {column} = ?1");
        self.conn
            .prepare_cached(&sql)
            .context("reading a group")?
            .query_row([key], group_row)
            .optional()
            .context("reading a group")
    }

    /// Every group, oldest first (at most [`MAX_GROUPS`] active ones, plus those we left).
    pub fn groups(&self) -> Result<Vec<GroupRow>, StoreError> {
        const CTX: &str = "listing groups";
        let sql = format!("SELECT {GROUP_COLUMNS} FROM groups ORDER BY created_at, session_id");
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map([], group_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// A group's members, by UID.
    pub fn group_members(&self, session_id: &[u8; 16]) -> Result<Vec<GroupMember>, StoreError> {
        const CTX: &str = "reading group members";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT uid, root_pk, role, added_at FROM group_members WHERE session_id = ?1
                 ORDER BY uid",
            )
            .context(CTX)?;
        stmt.query_map([&session_id[..]], |r| {
            Ok(GroupMember {
                uid: blob(r.get(0)?)?,
                root_pk: blob(r.get(1)?)?,
                role: GroupRole::parse(&r.get::<_, String>(2)?),
                added_at: r.get(3)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }

    /// A group's pending changes, oldest first.
    pub fn group_intents(&self, session_id: &[u8; 16]) -> Result<Vec<GroupIntent>, StoreError> {
        const CTX: &str = "reading group intents";
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, session_id, kind, body, commit_id, epoch, created_at
                 FROM group_intents WHERE session_id = ?1 ORDER BY id",
            )
            .context(CTX)?;
        stmt.query_map([&session_id[..]], |r| {
            Ok(GroupIntent {
                id: r.get(0)?,
                session_id: blob(r.get(1)?)?,
                kind: IntentKind::parse(&r.get::<_, String>(2)?),
                body: r.get(3)?,
                commit_id: r.get::<_, Option<Vec<u8>>>(4)?.map(blob).transpose()?,
                epoch: r.get::<_, Option<i64>>(5)?.map(|e| e as u64),
                created_at: r.get(6)?,
            })
        })
        .context(CTX)?
        .collect::<Result<Vec<_>, _>>()
        .context(CTX)
    }
}

/// A group to create (ours, or one we join from a Welcome).
#[derive(Debug, Clone)]
pub struct NewGroup<'a> {
    /// The envelope session id.
    pub session_id: [u8; 16],
    /// The MLS group id.
    pub group_id: &'a [u8],
    /// The group address.
    pub address: [u8; 32],
    /// The profile's name.
    pub name: &'a str,
    /// Our role.
    pub my_role: GroupRole,
    /// Who invited us (None: ours).
    pub invited_by: Option<[u8; 32]>,
    /// Joined without asking.
    pub auto_join: bool,
}

impl Tx<'_> {
    /// Creates a group conversation and its group row. A group we had left or been removed from
    /// comes back active (a re-add).
    ///
    /// # Errors
    ///
    /// [`StoreError::LimitReached`] past [`MAX_GROUPS`] active groups;
    /// [`StoreError::InvalidInput`] for a name over [`MAX_GROUP_NAME_CHARS`].
    pub fn insert_group(&mut self, g: &NewGroup<'_>, now: i64) -> Result<(), StoreError> {
        const CTX: &str = "creating a group";
        if g.name.chars().count() > MAX_GROUP_NAME_CHARS {
            return Err(StoreError::InvalidInput(format!(
                "a group name has at most {MAX_GROUP_NAME_CHARS} characters"
            )));
        }
        let active: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM groups WHERE state = 'active' AND session_id != ?1",
                [&g.session_id[..]],
                |r| r.get(0),
            )
            .context(CTX)?;
        if active as usize >= MAX_GROUPS {
            return Err(StoreError::LimitReached {
                what: "groups per node",
                max: MAX_GROUPS,
            });
        }
        self.atomic(|a| {
            a.execute(
                "INSERT OR IGNORE INTO conversations (session_id, group_id, kind, created_at)
                 VALUES (?1, ?2, 'group', ?3)",
                params![&g.session_id[..], g.group_id, now],
            )
            .context(CTX)?;
            a.execute(
                "INSERT INTO groups (session_id, group_id, address, name, my_role, state,
                    invited_by, auto_join, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?8)
                 ON CONFLICT (session_id) DO UPDATE SET state = 'active', my_role = ?5,
                    name = ?4, updated_at = ?8",
                params![
                    &g.session_id[..],
                    g.group_id,
                    &g.address[..],
                    g.name,
                    g.my_role.as_str(),
                    g.invited_by.as_ref().map(|u| &u[..]),
                    g.auto_join,
                    now
                ],
            )
            .context(CTX)?;
            Ok(())
        })
    }

    /// Updates a group's cached name, our role and our status; true if the row changed.
    pub fn update_group(
        &mut self,
        session_id: &[u8; 16],
        name: &str,
        my_role: GroupRole,
        status: GroupStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE groups SET name = ?2, my_role = ?3, state = ?4, updated_at = ?5
                 WHERE session_id = ?1 AND (name != ?2 OR my_role != ?3 OR state != ?4)",
                params![
                    &session_id[..],
                    name,
                    my_role.as_str(),
                    status.as_str(),
                    now
                ],
            )
            .context("updating a group")?
            == 1)
    }

    /// Replaces a group's member list with `members` (from the MLS roster and extension); what
    /// changed. A UID already present keeps its `added_at`.
    ///
    /// # Errors
    ///
    /// [`StoreError::LimitReached`] for more than [`MAX_GROUP_MEMBERS`] UIDs.
    pub fn set_group_members(
        &mut self,
        session_id: &[u8; 16],
        members: &[GroupMember],
    ) -> Result<MembersChanged, StoreError> {
        const CTX: &str = "updating group members";
        if members.len() > MAX_GROUP_MEMBERS {
            return Err(StoreError::LimitReached {
                what: "members per group",
                max: MAX_GROUP_MEMBERS,
            });
        }
        let before = self.group_members(session_id)?;
        let mut changed = MembersChanged::default();
        self.atomic(|a| {
            for old in &before {
                if !members.iter().any(|m| m.uid == old.uid) {
                    a.execute(
                        "DELETE FROM group_members WHERE session_id = ?1 AND uid = ?2",
                        params![&session_id[..], &old.uid[..]],
                    )
                    .context(CTX)?;
                    changed.removed.push(old.uid);
                }
            }
            for m in members {
                match before.iter().find(|o| o.uid == m.uid) {
                    Some(old) if old.role == m.role => continue,
                    Some(_) => changed.role_changed.push(m.uid),
                    None => changed.added.push(m.uid),
                }
                a.execute(
                    "INSERT INTO group_members (session_id, uid, root_pk, role, added_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (session_id, uid) DO UPDATE SET role = ?4",
                    params![
                        &session_id[..],
                        &m.uid[..],
                        &m.root_pk[..],
                        m.role.as_str(),
                        m.added_at
                    ],
                )
                .context(CTX)?;
            }
            Ok(())
        })?;
        Ok(changed)
    }

    /// Records a change we want in a group; its row id.
    ///
    /// # Errors
    ///
    /// [`StoreError::LimitReached`] past [`MAX_GROUP_INTENTS`] pending changes in the group.
    pub fn add_group_intent(
        &mut self,
        session_id: &[u8; 16],
        kind: IntentKind,
        body: &[u8],
        now: i64,
    ) -> Result<i64, StoreError> {
        const CTX: &str = "recording a group change";
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM group_intents WHERE session_id = ?1",
                [&session_id[..]],
                |r| r.get(0),
            )
            .context(CTX)?;
        if n as usize >= MAX_GROUP_INTENTS {
            return Err(StoreError::LimitReached {
                what: "pending changes per group",
                max: MAX_GROUP_INTENTS,
            });
        }
        self.conn
            .execute(
                "INSERT INTO group_intents (session_id, kind, body, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![&session_id[..], kind.as_str(), body, now],
            )
            .context(CTX)?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Names the commit (made in `epoch`) that carries an intent; true if it exists.
    pub fn set_intent_commit(
        &mut self,
        id: i64,
        commit_id: &[u8; 32],
        epoch: u64,
    ) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute(
                "UPDATE group_intents SET commit_id = ?2, epoch = ?3 WHERE id = ?1",
                params![id, &commit_id[..], epoch as i64],
            )
            .context("recording a group change's commit")?
            == 1)
    }

    /// Forgets an intent (done for good, or no longer needed); true if it existed.
    pub fn delete_group_intent(&mut self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .execute("DELETE FROM group_intents WHERE id = ?1", [id])
            .context("forgetting a group change")?
            == 1)
    }
}

fn group_row(r: &Row<'_>) -> rusqlite::Result<GroupRow> {
    Ok(GroupRow {
        session_id: blob(r.get(0)?)?,
        group_id: r.get(1)?,
        address: blob(r.get(2)?)?,
        name: r.get(3)?,
        my_role: GroupRole::parse(&r.get::<_, String>(4)?),
        status: GroupStatus::parse(&r.get::<_, String>(5)?),
        invited_by: r.get::<_, Option<Vec<u8>>>(6)?.map(blob).transpose()?,
        auto_join: r.get(7)?,
        created_at: r.get(8)?,
        updated_at: r.get(9)?,
    })
}

#[cfg(test)]
mod tests;
