//! Finding a database restored from an older copy at start (protocol.md §13).
//!
//! Each run of the node has a random token, kept in two places: the database (meta
//! `run_token`) and a file beside it (`run.token`, not in the database, so a copy of the
//! database does not carry it). The node writes a new one at start and again at a clean
//! stop. At start, a database whose token is not the file's is a copy from before the last
//! start or stop: restored. The engine is then told ([`rhizo_engine::restored`]): every group
//! gets a self-update of ours before our next application message in it, so no MLS generation
//! of ours is used twice.
//!
//! ```text
//!  start: meta run_token ≟ run.token ─▶ differ (or the file is gone): restored
//!     ─▶ rhizo_engine::restored::note_restored ─▶ a fresh token in the database, then the file
//!  clean stop: a fresh token in the database, then the file
//! ```
//!
//! Not found: a data dir restored whole (the file comes back with the database: both hold the
//! same older token), and a copy made during the last run put back after a crash (that run
//! never wrote its stop token).

use std::path::Path;

use rhizo_store::{Db, Store, StoreError, Tx};
use tracing::{info, warn};

use crate::data_dir::DataDir;
use crate::node::NodeError;

/// Meta key of the current run's token.
const META_RUN_TOKEN: &str = "run_token";

/// The token file's name in the data dir.
const RUN_TOKEN_FILE: &str = "run.token";

/// At start (before anything is sent): whether the database was restored from an older copy
/// (then noted for the engine at `now_ms`); a new run token is stored either way.
///
/// # Errors
///
/// If the database fails or the token file cannot be written.
pub(crate) fn start_run(store: &mut Store, dir: &DataDir, now_ms: i64) -> Result<bool, NodeError> {
    let file = dir.path().join(RUN_TOKEN_FILE);
    let in_file = std::fs::read_to_string(&file).ok();
    let token = new_token()?;
    let restored = store.write(|tx| {
        let in_db = tx.get_meta(META_RUN_TOKEN)?;
        // A database that never ran with a token (new, or from an older build): not restored.
        let restored = in_db.is_some_and(|t| in_file.as_deref().map(str::trim) != Some(&t));
        if restored {
            rhizo_engine::restored::note_restored(tx, now_ms)
                .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        }
        tx.set_meta(META_RUN_TOKEN, &token)?;
        Ok::<_, StoreError>(restored)
    })?;
    write_token(&file, &token)?;
    if restored {
        info!("the database was restored from an older copy: fresh group epochs before sending");
    }
    Ok(restored)
}

/// At a clean stop: a new run token, so that a copy made during this run is found restored
/// if it is put back. Failures are only logged (the next start then finds a mismatch and
/// takes the database as restored, which costs one self-update per group).
pub(crate) async fn end_run(db: &Db, dir: &DataDir) {
    let Ok(token) = new_token() else {
        return;
    };
    let stored = token.clone();
    let written = db
        .write(move |tx: &mut Tx<'_>| {
            tx.set_meta(META_RUN_TOKEN, &stored)
                .map_err(NodeError::from)
        })
        .await;
    let file = dir.path().join(RUN_TOKEN_FILE);
    match written.and_then(|()| write_token(&file, &token)) {
        Ok(()) => {}
        Err(e) => warn!(error = %e, "could not store the run token at stop"),
    }
}

fn new_token() -> Result<String, NodeError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| NodeError::Task(format!("randomness: {e}")))?;
    Ok(hex::encode(bytes))
}

/// Writes the token file whole (a temporary file renamed over it).
fn write_token(file: &Path, token: &str) -> Result<(), NodeError> {
    let tmp = file.with_extension("token.tmp");
    std::fs::write(&tmp, token)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|e| NodeError::Task(format!("writing {}: {e}", file.display())))
}

#[cfg(test)]
mod tests;
