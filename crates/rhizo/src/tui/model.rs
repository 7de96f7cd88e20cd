//! What the screen shows: conversations, lines of one conversation, the status bar and the
//! overlays, as plain data built from the local API's views (no I/O here).

use rhizo_node::{
    api::StatsResponse,
    devices::DeviceView,
    messaging::{
        ContactView, FileSummary, GroupMessageView, GroupRequestView, GroupView, MailboxStatus,
        MessageView, RequestView,
    },
    presence::PresenceState,
};

/// Which conversation: a 1:1 with a contact (by local name) or a group (by id).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ConvKey {
    /// A contact's local name.
    Contact(String),
    /// A group's id (hex).
    Group(String),
}

/// One row of the conversation list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConvSummary {
    /// Which conversation.
    pub(crate) key: ConvKey,
    /// The contact's or the group's name.
    pub(crate) title: String,
    /// Received messages not read yet.
    pub(crate) unread: usize,
    /// The last message or change (unix ms; 0: none).
    pub(crate) last_activity: i64,
    /// A contact's presence (none for a group).
    pub(crate) presence: Option<PresenceState>,
}

/// A contact's presence as a symbol after its name: `●` online, `○` offline, `-` hidden.
pub(crate) fn presence_mark(presence: Option<PresenceState>) -> &'static str {
    match presence {
        Some(PresenceState::Online) => " ●",
        Some(PresenceState::Offline) => " ○",
        Some(PresenceState::Hidden) => " -",
        None => "",
    }
}

/// How far an outgoing message got, as a symbol (never colour only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// A received message.
    Incoming,
    /// Persisted here, not yet accepted anywhere.
    Queued,
    /// Held by the recipient's node (a request) or by mailbox replicas.
    Sent,
    /// A device of theirs (every member device, in a group) has it.
    Delivered,
    /// Read.
    Read,
    /// Refused for good.
    Failed,
}

impl Mark {
    /// The state of a `MessageView`.
    pub(crate) fn of(direction: &str, state: &str) -> Self {
        match (direction, state) {
            ("in", _) => Self::Incoming,
            (_, "queued") => Self::Queued,
            (_, "sent" | "stored") => Self::Sent,
            (_, "delivered") => Self::Delivered,
            (_, "read") => Self::Read,
            (_, "failed") => Self::Failed,
            _ => Self::Queued,
        }
    }

    /// The symbol shown after the text.
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Self::Incoming => "",
            Self::Queued => "…",
            Self::Sent => "✓",
            Self::Delivered => "✓✓",
            Self::Read => "✓✓ read",
            Self::Failed => "✗ failed",
        }
    }
}

/// One message line of the open conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    /// Row id (events name it).
    pub(crate) id: i64,
    /// Sender's time (unix ms).
    pub(crate) sent_at: i64,
    /// `me`, the contact's name, or a group member's name or short UID.
    pub(crate) from: String,
    /// The text.
    pub(crate) text: String,
    /// Delivery state.
    pub(crate) mark: Mark,
    /// Group messages of ours: `delivered/total` member devices.
    pub(crate) progress: Option<(u32, u32)>,
    /// A file message's file (the text is then its caption).
    pub(crate) file: Option<FileLine>,
}

/// A file as its message line shows it: name, size and how much of it this node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileLine {
    /// Its name (control characters replaced: it comes from the sender).
    pub(crate) name: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// `offered`, `downloading`, `done` or `failed`; `encrypting` while we send it.
    pub(crate) state: String,
    /// Percent held (0 to 100).
    pub(crate) percent: u8,
}

impl FileLine {
    /// From the history's file summary (`done` is always 100 %).
    pub(crate) fn of(f: &FileSummary) -> Self {
        let mut line = Self {
            name: printable(&f.name),
            size: f.size,
            state: String::new(),
            percent: 0,
        };
        line.set(&f.state, f.percent);
        line
    }

    /// A new state and percent (from a `file_progress` event or the history).
    pub(crate) fn set(&mut self, state: &str, percent: u8) {
        self.state = printable(state);
        self.percent = if state == "done" {
            100
        } else {
            percent.min(100)
        };
    }
}

/// `done` of `total` bytes as a percent (0 to 100; a zero total counts as done).
pub(crate) fn percent_of(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    u8::try_from(done.min(total).saturating_mul(100) / total).unwrap_or(100)
}

/// `text` with control characters (a peer's file name may hold escapes) replaced by `?`.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// A file of ours being encrypted into the content store (`POST /v1/files` with a `progress`
/// id, followed by its `file_import` events), shown under its conversation until the history
/// holds its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Upload {
    /// The `progress` id of its request.
    pub(crate) progress: String,
    /// The contact it goes to.
    pub(crate) to: String,
    /// Its file (state `encrypting`).
    pub(crate) file: FileLine,
    /// The request answered (sent or refused): gone with the next history.
    pub(crate) finished: bool,
}

impl Line {
    /// A 1:1 message with `contact`.
    pub(crate) fn direct(m: &MessageView, contact: &str) -> Self {
        let mark = Mark::of(&m.direction, &m.state);
        Self {
            id: m.id,
            sent_at: m.sent_at,
            from: if mark == Mark::Incoming {
                contact.to_string()
            } else {
                "me".into()
            },
            text: m.text.clone().unwrap_or_default(),
            mark,
            progress: None,
            file: m.file.as_ref().map(FileLine::of),
        }
    }

    /// A group message.
    pub(crate) fn group(m: &GroupMessageView) -> Self {
        let mark = Mark::of(&m.message.direction, &m.message.state);
        let from = if mark == Mark::Incoming {
            m.from_name
                .clone()
                .or_else(|| m.from.as_ref().map(|u| short(u)))
                .unwrap_or_else(|| "?".into())
        } else {
            "me".into()
        };
        Self {
            id: m.message.id,
            sent_at: m.message.sent_at,
            from,
            text: m.message.text.clone().unwrap_or_default(),
            mark,
            progress: m.delivered.zip(m.total),
            file: m.message.file.as_ref().map(FileLine::of),
        }
    }
}

/// The first 7 characters of a UID or id (enough to tell them apart on screen).
pub(crate) fn short(id: &str) -> String {
    id.chars().take(7).collect()
}

/// A 1:1 conversation's row, from its history and the contact's presence.
pub(crate) fn contact_summary(
    contact: &ContactView,
    history: &[MessageView],
    presence: PresenceState,
) -> ConvSummary {
    ConvSummary {
        key: ConvKey::Contact(contact.name.clone()),
        title: contact.name.clone(),
        unread: history
            .iter()
            .filter(|m| m.direction == "in" && m.state == "received")
            .count(),
        last_activity: history.iter().map(|m| m.sent_at).max().unwrap_or(0),
        presence: Some(presence),
    }
}

/// A group's row.
pub(crate) fn group_summary(group: &GroupView) -> ConvSummary {
    ConvSummary {
        key: ConvKey::Group(group.id.clone()),
        title: group.name.clone(),
        unread: group.unread,
        last_activity: group.last_activity,
        presence: None,
    }
}

/// Most recent activity first; ties by title, so the order is stable.
pub(crate) fn sort_conversations(list: &mut [ConvSummary]) {
    list.sort_by(|a, b| {
        b.last_activity
            .cmp(&a.last_activity)
            .then_with(|| a.title.cmp(&b.title))
    });
}

/// The status bar: what `/v1/stats`, `/v1/mailbox` and the request lists say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NodeStatus {
    /// Connected peers.
    pub(crate) peers: usize,
    /// `public`, `via relay`, `LAN only` or `unknown`.
    pub(crate) reachability: String,
    /// Envelopes held here for others (mailbox replica).
    pub(crate) held: u64,
    /// Our outgoing messages not yet delivered.
    pub(crate) outbox: u64,
    /// Pending message and group requests.
    pub(crate) requests: usize,
}

impl NodeStatus {
    /// From the API's answers.
    pub(crate) fn from_views(
        stats: &StatsResponse,
        mailbox: &MailboxStatus,
        requests: usize,
    ) -> Self {
        Self {
            peers: stats.connected_peers,
            reachability: stats
                .reachability
                .as_ref()
                .map_or("unknown", |r| r.describe())
                .to_string(),
            held: mailbox.held.count,
            outbox: mailbox.queued.iter().map(|q| q.count).sum(),
            requests,
        }
    }
}

/// A screen over the conversation view (closed with Esc).
#[derive(Debug, Clone)]
pub(crate) enum Overlay {
    /// Keys and commands.
    Help,
    /// Our contact ticket and its QR code.
    Ticket {
        /// `rhz1contact…`.
        ticket: String,
        /// Drawn with half blocks, several lines.
        qr: String,
    },
    /// Pending message requests and group invitations.
    Requests {
        /// Message requests.
        people: Vec<RequestView>,
        /// Group invitations.
        groups: Vec<GroupRequestView>,
    },
    /// A contact's safety number (`v` marks it verified).
    Safety(ContactView),
    /// This identity's devices.
    Devices(Vec<DeviceView>),
    /// Known agents and tasks (JSON as the API gives them).
    Agents {
        /// `GET /v1/agents`.
        agents: Vec<serde_json::Value>,
        /// `GET /v1/tasks`.
        tasks: Vec<serde_json::Value>,
    },
}
