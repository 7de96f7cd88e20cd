//! Events streamed to API clients (`GET /v1/events`): incoming messages and state changes.

use rhizo_core::agent::{Artifact, Liveness, Side, TaskStatus};
use serde::{Deserialize, Serialize};

/// Capacity of the event broadcast: a slow subscriber that falls this far behind is told it
/// lagged (and can re-read history) instead of growing memory.
pub const EVENT_BUFFER: usize = 1024;

/// One event.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ApiEvent {
    /// A message arrived.
    MessageReceived {
        /// Message row id.
        id: i64,
        /// Contact name.
        contact: String,
        /// The text.
        text: String,
        /// Sender's timestamp (unix ms).
        sent_at: i64,
        /// The conversation is muted: show it, but do not notify.
        #[serde(default)]
        muted: bool,
    },
    /// A message was deleted on this node: at its sender's request (`for_everyone`), or by
    /// the user here.
    MessageDeleted {
        /// Message row id.
        id: i64,
        /// The conversation: the contact's name, or the group's id (hex).
        conversation: String,
        /// Its sender asked for it ("delete for everyone").
        for_everyone: bool,
    },
    /// A conversation was deleted (its history on this node), muted, unmuted, archived or
    /// unarchived; or a contact was renamed, removed, blocked or unblocked.
    ConversationChanged {
        /// The conversation: the contact's name (the new one after a rename), or the group's
        /// id (hex).
        conversation: String,
        /// `deleted`, `muted`, `unmuted`, `archived`, `unarchived`, `renamed`, `removed`,
        /// `blocked` or `unblocked`.
        change: String,
    },
    /// A file's transfer moved: `offered`, `downloading` (with the bytes held), `done` or
    /// `failed`.
    FileProgress {
        /// The file message's row id.
        id: i64,
        /// The file's state.
        state: String,
        /// Bytes of encrypted content held.
        done_bytes: u64,
        /// The encrypted size.
        total_bytes: u64,
    },
    /// A file being sent is encrypted into the content store (`POST /v1/files` with a
    /// `progress` id): plaintext bytes done, at most once per percent.
    FileImport {
        /// The `progress` id the request gave.
        progress: String,
        /// The file's name.
        name: String,
        /// Plaintext bytes encrypted so far.
        done_bytes: u64,
        /// The file's size.
        total_bytes: u64,
    },
    /// An outgoing message changed state.
    MessageState {
        /// Message row id.
        id: i64,
        /// Contact name.
        contact: String,
        /// The new state.
        state: String,
    },
    /// Someone who is not a contact sent a message: it is held as a message request
    /// (`GET /v1/requests`). Sent again once their identity was found in the DHT, with their
    /// profile name (if public) and the safety number.
    MessageRequest {
        /// The sender's UID.
        uid: String,
        /// The name on their public profile, if found.
        name: Option<String>,
        /// The safety number between us, once their identity was found.
        safety_number: Option<String>,
    },
    /// Someone is typing in a conversation (`typing`; ephemeral: never stored, show it for a
    /// few seconds).
    Typing {
        /// The conversation: the contact's name, or the group's id (hex).
        conversation: String,
        /// The typist's UID.
        from: String,
    },
    /// A contact came online, went offline, or hides its presence (`presence`).
    Presence {
        /// The contact's name.
        contact: String,
        /// Its UID.
        uid: String,
        /// `online`, `offline` or `hidden`.
        state: crate::presence::PresenceState,
        /// When it was last online (unix seconds), unless hidden.
        last_seen: Option<i64>,
    },
    /// A contact was added or updated.
    ContactAdded {
        /// Its name.
        name: String,
    },
    /// A contact's keys changed: it gained a device key we did not hold before (docs/local-api.md
    /// "Key changes"). Its `key_changed` flag stays set until the user verifies it again.
    KeyChange {
        /// The contact's name.
        contact: String,
    },
    /// A post arrived in a joined channel.
    ChannelPost {
        /// The channel id.
        channel: String,
        /// The author's UID.
        author: String,
        /// The text.
        text: String,
        /// Author's clock (unix ms).
        sent_at: i64,
    },
    /// A task arrived for our agent to execute (worker side), or more input for one.
    TaskReceived {
        /// The task id (32 hex digits).
        task_id: String,
        /// The client's UID.
        from: String,
        /// The skill asked for.
        skill: Option<String>,
    },
    /// A task changed: a new status, message or artifacts (either side). What A2A streams.
    TaskUpdated {
        /// The task id.
        task_id: String,
        /// Which end we are.
        side: Side,
        /// The other end's UID.
        peer: String,
        /// The status entered (`status.state` is the task's state now).
        status: TaskStatus,
        /// Artifacts this change added.
        new_artifacts: Vec<Artifact>,
    },
    /// A group task of ours was given to one agent member to run (client side).
    TaskAssigned {
        /// The task id.
        task_id: String,
        /// The group's id.
        group: String,
        /// The member that runs it (its UID).
        worker: String,
    },
    /// A remote agent's liveness changed (heartbeats).
    AgentLiveness {
        /// Its UID.
        uid: String,
        /// The new liveness.
        liveness: Liveness,
    },
    /// A contact answered a `capability_query` (`rhizo agents ask`): its card is cached
    /// (`agent`), or it has none.
    AgentCard {
        /// Its UID.
        uid: String,
        /// Whether it has a card.
        agent: bool,
    },
    /// A history transfer to (or from) another of our devices moved (issue 15).
    DeviceSyncProgress {
        /// Whether this device sends the history (else it receives it).
        sending: bool,
        /// Messages acknowledged (sender) or received (receiver) so far.
        done: u64,
        /// Messages in the transfer.
        total: u64,
        /// Whether it is over.
        finished: bool,
    },
    /// A group was created here, or joined (from an invitation).
    GroupCreated {
        /// The group's id (hex of its session id).
        group: String,
        /// Its name.
        name: String,
    },
    /// A message arrived in a group.
    GroupMessageReceived {
        /// Message row id.
        id: i64,
        /// The group's id.
        group: String,
        /// The sender's UID.
        from: String,
        /// The text.
        text: String,
        /// Sender's timestamp (unix ms).
        sent_at: i64,
        /// The group is muted: show it, but do not notify.
        #[serde(default)]
        muted: bool,
    },
    /// One of our group messages changed state or got more receipts.
    GroupMessageState {
        /// Message row id.
        id: i64,
        /// The group's id.
        group: String,
        /// The message's state.
        state: String,
        /// Member devices that have it.
        delivered: u32,
        /// Member devices that read it.
        read: u32,
        /// Member devices it went to.
        total: u32,
    },
    /// A member joined a group.
    GroupMemberAdded {
        /// The group's id.
        group: String,
        /// The member's UID.
        uid: String,
    },
    /// A member left a group or was removed.
    GroupMemberRemoved {
        /// The group's id.
        group: String,
        /// The member's UID.
        uid: String,
    },
    /// A group's name changed.
    GroupRenamed {
        /// The group's id.
        group: String,
        /// The new name.
        name: String,
    },
    /// We are no longer in a group: we left, or an admin removed us (`removed`).
    GroupLeft {
        /// The group's id.
        group: String,
        /// An admin removed us.
        removed: bool,
    },
    /// An invitation to a group held as a group request.
    GroupRequest {
        /// The request's id.
        id: i64,
        /// The inviter's UID.
        from: String,
        /// The group's name.
        name: String,
    },
    /// A contact asked us to wake our agent program (seed 004 `wake_up`).
    WakeUp {
        /// The sender's UID.
        from: String,
        /// Why.
        reason: String,
    },
    /// The recipient lost our conversation (or could not open it): the messages not yet
    /// delivered stay queued while a new conversation is started by itself.
    ConversationReestablishing {
        /// Contact name.
        contact: String,
        /// What the recipient answered.
        reason: String,
        /// How many messages wait.
        messages: u32,
    },
    /// A new conversation replaced the lost one: the waiting messages are queued in it, in
    /// their original order, with the same ids.
    ConversationReestablished {
        /// Contact name.
        contact: String,
        /// How many messages moved into it.
        messages: u32,
    },
    /// No new conversation could be started after every attempt: the waiting messages failed.
    ConversationReestablishFailed {
        /// Contact name.
        contact: String,
        /// What happened, and what to do.
        error: String,
        /// How many messages failed.
        messages: u32,
    },
}
