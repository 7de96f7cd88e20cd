//! A node started on a database restored from an older copy (protocol.md §13): its MLS state
//! is the copy's, so its own sender ratchets are back at the generations they had then, and
//! the next application messages would use generations it already used after the copy was
//! made. Once the driver says the database was restored ([`note_restored`], stored, so it
//! also holds after another restart), the rekey rule fires in every conversation whose last
//! own commit is older than the restore: a self-update of ours (a fresh epoch, from this
//! device's fresh randomness) goes out before our next application message in it.
//!
//! - In a group our commit is applied at once, so that message is sealed in the fresh epoch.
//! - In a 1:1 conversation the commit is pending until the peer confirms it: that message is
//!   still sealed in the old epoch (the ones after the confirmation are not).
//!
//! ```text
//!  driver: the database was restored ─▶ note_restored(tx, now): meta fresh_epoch_before = now
//!  our next application message in a conversation ─▶ fresh_epoch_due?
//!     ─▶ our last own commit < fresh_epoch_before: a self-update first
//!        (group: applied at once, the message in the new epoch; 1:1: pending until confirmed)
//! ```

use rhizo_e2e::Conversation;
use rhizo_store::{Reader, Tx};

use crate::{EngineError, secs};

/// Meta key: unix seconds of the start that found the database restored; every conversation
/// whose last own commit is older needs a fresh epoch before our next application message.
pub const META_FRESH_EPOCH_BEFORE: &str = "fresh_epoch_before";

/// Whether `conversation` needs a fresh epoch of ours before our next application message in
/// it: its last own commit is older than the restore the driver noted.
pub(crate) fn fresh_epoch_due(
    reader: &Reader<'_>,
    conversation: &Conversation,
) -> Result<bool, EngineError> {
    let Some(before) = reader.get_meta(META_FRESH_EPOCH_BEFORE)? else {
        return Ok(false);
    };
    // Seconds: a commit in the same second as the restore was found may be from the copy (a
    // restore right after a commit), so it counts as older. The price: our fresh commit, if made
    // in that same second, counts as older too, so the next message (in a later second) gets
    // one more self-update; after that the last own commit is newer and none follows.
    Ok(before
        .parse::<u64>()
        .is_ok_and(|before| conversation.last_own_commit_at() <= before))
}

/// The driver found the database restored from an older copy at `now` (unix ms): from now on
/// every group gets a self-update of ours before our next application message in it (see the
/// module doc). Stored, so it holds across restarts until each group had its fresh epoch.
///
/// # Errors
///
/// If the database fails.
pub fn note_restored(tx: &mut Tx<'_>, now: i64) -> Result<(), EngineError> {
    Ok(tx.set_meta(META_FRESH_EPOCH_BEFORE, &secs(now).to_string())?)
}
