//! The arguments of the commands that manage conversations and messages (issue 20):
//! `rhizo conversations …` and `rhizo messages delete …`.

use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub(crate) enum MessagesCommand {
    /// Delete a message on this device (its id: `rhizo messages NAME --json`)
    Delete {
        /// The message's id
        id: i64,
        /// Also ask the conversation's other devices to delete it (only a message you sent).
        /// Best effort: their nodes honour it, but a modified client, a screenshot or a copy
        /// made before cannot be undone
        #[arg(long)]
        for_everyone: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ConversationsArgs {
    /// What to do (none: list them)
    #[command(subcommand)]
    pub(crate) command: Option<ConversationsCommand>,
    /// List archived conversations too
    #[arg(long)]
    pub(crate) archived: bool,
    /// Machine-readable JSON output (for the list)
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConversationsCommand {
    /// Delete a conversation's history on this device (the contact or the group stays)
    Delete {
        /// Contact name or UID, or a group's name or id
        conversation: String,
    },
    /// Mute: its messages still arrive and show, without notifications
    Mute {
        /// Contact name or UID, or a group's name or id
        conversation: String,
    },
    /// Unmute
    Unmute {
        /// Contact name or UID, or a group's name or id
        conversation: String,
    },
    /// Archive: hidden from `rhizo conversations` (shown with --archived)
    Archive {
        /// Contact name or UID, or a group's name or id
        conversation: String,
    },
    /// Unarchive
    Unarchive {
        /// Contact name or UID, or a group's name or id
        conversation: String,
    },
}
