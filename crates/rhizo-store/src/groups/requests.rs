//! Group requests: invitations (Welcomes) to a group from someone who is not a contact, or
//! while auto-join is off, held until the user accepts or declines them (bounded, expiring).

use rusqlite::{OptionalExtension, Row, params};

use crate::error::{SqliteContext, StoreError};
use crate::messaging::blob;
use crate::tx::{Reader, Tx};

/// Group invitations held at once (each keeps a Welcome and its KeyPackage's private key).
pub const MAX_GROUP_REQUESTS: usize = rhizo_core::group::MAX_GROUP_REQUESTS;
/// How long an undecided invitation is kept (its KeyPackage's private key with it).
pub const GROUP_REQUEST_TTL_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// A held invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRequestRow {
    /// Row id (what accept/decline name).
    pub id: i64,
    /// The group's envelope session id.
    pub session_id: [u8; 16],
    /// Who invited us.
    pub inviter_uid: [u8; 32],
    /// The group's name (from the Welcome's extension).
    pub name: String,
    /// How many member UIDs the group had.
    pub members: u32,
    /// The whole signed Welcome envelope, applied on accept (for a Welcome that came in
    /// parts: the last part's envelope).
    pub envelope: Vec<u8>,
    /// The whole Welcome, when it came in parts (else it is the envelope's payload).
    pub welcome: Option<Vec<u8>>,
    /// When it arrived (unix ms).
    pub received_at: i64,
    /// When it is dropped undecided (unix ms).
    pub expires_at: i64,
}

/// An invitation to hold.
#[derive(Debug, Clone, Copy)]
pub struct NewGroupRequest<'a> {
    /// The group's envelope session id.
    pub session_id: [u8; 16],
    /// Who invited us.
    pub inviter_uid: [u8; 32],
    /// The group's name.
    pub name: &'a str,
    /// How many member UIDs.
    pub members: u32,
    /// The signed Welcome envelope (for a Welcome in parts: the last part's).
    pub envelope: &'a [u8],
    /// The whole Welcome, when it came in parts.
    pub welcome: Option<&'a [u8]>,
}

const COLUMNS: &str = "id, session_id, inviter_uid, name, members, envelope, received_at, \
                       expires_at, welcome";

/// Bytes of Welcomes that came in parts held in group requests at once (a whole Welcome of a
/// large group is up to ~16 MiB; the ones that fit one envelope are bounded by the count).
pub const MAX_HELD_WELCOME_BYTES: usize = 64 * 1024 * 1024;

impl Reader<'_> {
    /// The held invitations not expired at `now`, oldest first.
    pub fn group_requests(&self, now: i64) -> Result<Vec<GroupRequestRow>, StoreError> {
        const CTX: &str = "listing group requests";
        let sql = format!(
            "SELECT {COLUMNS} FROM group_requests WHERE expires_at > ?1 ORDER BY id LIMIT ?2"
        );
        let mut stmt = self.conn.prepare_cached(&sql).context(CTX)?;
        stmt.query_map(params![now, MAX_GROUP_REQUESTS as i64], request_row)
            .context(CTX)?
            .collect::<Result<Vec<_>, _>>()
            .context(CTX)
    }

    /// One held invitation by id.
    pub fn group_request(&self, id: i64) -> Result<Option<GroupRequestRow>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM group_requests WHERE id = ?1");
        self.conn
            .query_row(&sql, [id], request_row)
            .optional()
            .context("reading a group request")
    }
}

impl Tx<'_> {
    /// Holds an invitation (expired ones are dropped first); its id, or `None` if one for
    /// that group is already held.
    ///
    /// # Errors
    ///
    /// [`StoreError::LimitReached`] when [`MAX_GROUP_REQUESTS`] are held.
    pub fn hold_group_request(
        &mut self,
        r: &NewGroupRequest<'_>,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        const CTX: &str = "holding a group request";
        self.purge_group_requests(now)?;
        let held: i64 = self
            .conn
            .query_row("SELECT count(*) FROM group_requests", [], |row| row.get(0))
            .context(CTX)?;
        if held as usize >= MAX_GROUP_REQUESTS {
            return Err(StoreError::LimitReached {
                what: "held group requests",
                max: MAX_GROUP_REQUESTS,
            });
        }
        if let Some(welcome) = r.welcome {
            let bytes: i64 = self
                .conn
                .query_row(
                    "SELECT coalesce(sum(length(welcome)), 0) FROM group_requests",
                    [],
                    |row| row.get(0),
                )
                .context(CTX)?;
            if (bytes as usize).saturating_add(welcome.len()) > MAX_HELD_WELCOME_BYTES {
                return Err(StoreError::LimitReached {
                    what: "bytes of held invitations that came in parts",
                    max: MAX_HELD_WELCOME_BYTES,
                });
            }
        }
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO group_requests (session_id, inviter_uid, name, members,
                    envelope, received_at, expires_at, welcome)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    &r.session_id[..],
                    &r.inviter_uid[..],
                    r.name,
                    r.members,
                    r.envelope,
                    now,
                    now.saturating_add(GROUP_REQUEST_TTL_MS),
                    r.welcome
                ],
            )
            .context(CTX)?;
        Ok((n == 1).then(|| self.conn.last_insert_rowid()))
    }

    /// Removes a held invitation (accepted or declined); it, if it was held.
    pub fn take_group_request(&mut self, id: i64) -> Result<Option<GroupRequestRow>, StoreError> {
        let sql = format!("DELETE FROM group_requests WHERE id = ?1 RETURNING {COLUMNS}");
        self.conn
            .query_row(&sql, [id], request_row)
            .optional()
            .context("removing a group request")
    }

    /// Drops invitations expired at `now`; how many.
    pub fn purge_group_requests(&mut self, now: i64) -> Result<usize, StoreError> {
        self.conn
            .execute("DELETE FROM group_requests WHERE expires_at <= ?1", [now])
            .context("dropping expired group requests")
    }
}

fn request_row(r: &Row<'_>) -> rusqlite::Result<GroupRequestRow> {
    Ok(GroupRequestRow {
        id: r.get(0)?,
        session_id: blob(r.get(1)?)?,
        inviter_uid: blob(r.get(2)?)?,
        name: r.get(3)?,
        members: r.get::<_, i64>(4)? as u32,
        envelope: r.get(5)?,
        received_at: r.get(6)?,
        expires_at: r.get(7)?,
        welcome: r.get(8)?,
    })
}
