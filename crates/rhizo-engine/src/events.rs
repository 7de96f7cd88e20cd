//! [`Event`]: what the engine tells the driver to show the local API.

use rhizo_core::agent::{Artifact, Liveness, Side, TaskStatus};
use rhizo_store::messaging::MessageState;

/// Something the user should see.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
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
        muted: bool,
    },
    /// A message was deleted on this node: at its sender's request ("delete for everyone"),
    /// or by the user.
    MessageDeleted {
        /// Message row id.
        id: i64,
        /// The conversation: the contact's name, or the group's id (hex).
        conversation: String,
        /// Its sender asked for it (false: deleted here by the user).
        for_everyone: bool,
    },
    /// Another of our devices changed a contact's or conversation's settings, and it was
    /// applied here: as the local API's `conversation_changed` event.
    ConversationChanged {
        /// The conversation: the contact's name (or a blocked UID), or the group's id (hex).
        conversation: String,
        /// `renamed`, `removed`, `blocked`, `unblocked`, `muted`, `unmuted`, `archived`,
        /// `unarchived` or `deleted` (its history).
        change: String,
    },
    /// A known contact gained a device key we did not have, learned from another of our
    /// devices (its `key_changed` flag is set until the user verifies it again).
    KeyChange {
        /// The contact's name.
        contact: String,
    },
    /// Someone is typing in a conversation (ephemeral: never stored).
    Typing {
        /// The conversation: the contact's name, or the group's id (hex).
        conversation: String,
        /// The typist's UID.
        from: String,
    },
    /// An outgoing message changed state.
    MessageState {
        /// Message row id.
        id: i64,
        /// Contact name.
        contact: String,
        /// The new state.
        state: MessageState,
    },
    /// Someone who is not a contact sent a message: it is held as a message request.
    MessageRequest {
        /// The sender's UID.
        uid: String,
    },
    /// A task arrived for us to execute (worker side), or more input for one.
    TaskReceived {
        /// The task id (32 hex digits).
        task_id: String,
        /// The client's UID.
        from: String,
        /// The skill asked for.
        skill: Option<String>,
    },
    /// A task changed: a new status, message or artifacts (either side).
    TaskUpdated {
        /// The task id.
        task_id: String,
        /// Which end we are.
        side: Side,
        /// The other end's UID.
        peer: String,
        /// The status entered.
        status: TaskStatus,
        /// Artifacts this change added.
        new_artifacts: Vec<Artifact>,
    },
    /// A group task of ours was given to one member to run (client side).
    TaskAssigned {
        /// The task id.
        task_id: String,
        /// The group (hex of its session id).
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
    /// A contact answered our `capability_query`: its card, validated, is cached (`agent`), or
    /// it said it has none (not an agent any more: the cached card was dropped).
    AgentCard {
        /// Its UID.
        uid: String,
        /// Whether it has a card.
        agent: bool,
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
        /// The sender's UID (hex).
        from: String,
        /// The text.
        text: String,
        /// Sender's timestamp (unix ms).
        sent_at: i64,
        /// The conversation is muted: show it, but do not notify.
        muted: bool,
    },
    /// One of our group messages changed state or got more receipts.
    GroupMessageState {
        /// Message row id.
        id: i64,
        /// The group's id.
        group: String,
        /// The message's state (delivered once every member device has it).
        state: MessageState,
        /// Member devices that have it.
        delivered: u32,
        /// Member devices that read it.
        read: u32,
        /// Member devices it went to (other than ours, when it was sent).
        total: u32,
    },
    /// A member joined a group.
    GroupMemberAdded {
        /// The group's id.
        group: String,
        /// The member's UID (hex).
        uid: String,
    },
    /// A member left a group or was removed.
    GroupMemberRemoved {
        /// The group's id.
        group: String,
        /// The member's UID (hex).
        uid: String,
    },
    /// A group's name changed.
    GroupRenamed {
        /// The group's id.
        group: String,
        /// The new name.
        name: String,
    },
    /// We are no longer in a group: we left it, or an admin removed us (`removed`).
    GroupLeft {
        /// The group's id.
        group: String,
        /// An admin removed us (false: we left).
        removed: bool,
    },
    /// Members we added lost the commit ordering to a concurrent commit and are not in the
    /// group: add them again (fresh KeyPackages, `Engine::add_group_members`).
    GroupAddUndone {
        /// The group's id.
        group: String,
        /// The UIDs (hex) to add again.
        uids: Vec<String>,
    },
    /// An invitation to a group from someone who is not a contact (or while auto-join is off):
    /// held as a group request.
    GroupRequest {
        /// The request's id (accept / decline name it).
        id: i64,
        /// The inviter's UID (hex).
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
    /// The recipient lost our conversation (or could not open it): what had not been
    /// delivered waits, still queued, for a new conversation the engine starts by itself.
    ConversationReestablishing {
        /// Contact name.
        contact: String,
        /// What the recipient answered.
        reason: String,
        /// How many messages wait.
        messages: u32,
    },
    /// A new conversation replaced the lost one: the waiting messages are queued in it, in
    /// their original order (same message ids).
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
    /// A history page or its acknowledgement arrived (issue 15): the driver runs
    /// [`Engine::poll_history`](crate::Engine::poll_history) now (the next pages or the
    /// acknowledgement go), not at its next timer. Nothing for the user.
    HistoryMoved,
}
