//! Typing indicators (issue 20), the driver half: `POST /v1/conversations/{id}/typing` seals
//! one in the engine for the devices this node is connected to and sends it once to each,
//! directly; nothing goes to a mailbox and nothing is stored (see `rhizo_engine::typing`).
//!
//! ```text
//!  send_typing(who) ─▶ hide_presence? skipped "hidden" ─▶ connected peers (rhizo-net)
//!     ─▶ Db::write: seal_typing(to, connected, now) ─▶ Sealed ─▶ send once per device
//!                                                   └▶ Offline / TooSoon / TooMany: skipped
//! ```

use std::collections::HashSet;

use futures::StreamExt as _;
use rhizo_engine::typing::{TypingSeal, TypingTo};
use serde::{Deserialize, Serialize};
use tracing::debug;

use super::{Messaging, manage::Named};
use crate::messaging::ManageError;

/// Devices one typing indicator is sent to at once.
const TYPING_SENDS_IN_FLIGHT: usize = 16;

/// What `POST /v1/conversations/{id}/typing` did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TypingView {
    /// Devices that took it.
    pub sent: usize,
    /// Why nothing was sent: `hidden` (we hide our presence), `offline` (no device of the
    /// conversation is connected), `rate_limited` (one per 3 s per conversation), `too_many`
    /// (a long run of indicators; the next message ends it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl Messaging {
    /// Hides our presence: typing indicators are then never sent.
    pub fn set_hide_presence(&self, hide: bool) {
        self.inner
            .hide_presence
            .store(hide, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tells `who` (a contact's name or UID, or a group's name or id) that we are typing: once,
    /// directly to its devices this node is connected to.
    ///
    /// # Errors
    ///
    /// [`ManageError::UnknownConversation`], [`ManageError::Ambiguous`]; the database or MLS.
    pub async fn send_typing(&self, who: &str) -> Result<TypingView, ManageError> {
        let who = who.to_string();
        let to = self
            .with_reader(move |reader, _| {
                Ok::<_, ManageError>(match super::manage::conversation_in(reader, &who)? {
                    Named::Direct(c) => TypingTo::Contact(c.uid),
                    Named::Group(g) => TypingTo::Group(g.session_id),
                })
            })
            .await?;
        if self
            .inner
            .hide_presence
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Ok(skipped("hidden"));
        }
        let connected: HashSet<String> = match self.inner.client.peers().await {
            Ok(peers) => peers
                .into_iter()
                .filter(|p| p.connections > 0)
                .map(|p| p.peer_id.to_string())
                .collect(),
            Err(_) => return Ok(skipped("offline")),
        };
        let now = self.now();
        let sealed = self
            .with_tx(move |tx, engine| {
                Ok::<_, ManageError>(engine.seal_typing(
                    tx,
                    to,
                    &|t| connected.contains(&t.peer_id),
                    now,
                )?)
            })
            .await?;
        let TypingSeal::Sealed { frame, targets } = sealed else {
            return Ok(skipped(sealed.skipped().unwrap_or("offline")));
        };
        let frame = &frame;
        let sent = futures::stream::iter(targets)
            .map(|target| async move {
                match self.send_frame(&target, frame).await {
                    Some(Ok(_)) => 1,
                    Some(Err(e)) => {
                        debug!(error = %e, "a typing indicator was not taken");
                        0
                    }
                    None => 0,
                }
            })
            .buffer_unordered(TYPING_SENDS_IN_FLIGHT)
            .fold(0usize, |n, one| async move { n + one })
            .await;
        Ok(TypingView {
            sent,
            skipped: None,
        })
    }
}

fn skipped(why: &str) -> TypingView {
    TypingView {
        sent: 0,
        skipped: Some(why.to_string()),
    }
}
