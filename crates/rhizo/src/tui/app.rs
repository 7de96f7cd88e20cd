//! The TUI's state and what keys, updates and events do to it. No I/O: the UI loop feeds it
//! and sends the [`Command`]s it queues.

use std::collections::{HashMap, HashSet, VecDeque};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use rhizo_node::{events::ApiEvent, messaging::ContactView};

use super::{
    model::{ConvKey, ConvSummary, FileLine, Line, NodeStatus, Overlay, Upload, percent_of},
    net::{Command, Update},
};

/// Lines kept in the input history.
const INPUT_HISTORY: usize = 100;
/// Longest input line (the API refuses texts over 64 KiB anyway).
const MAX_INPUT_CHARS: usize = 16 * 1024;
/// Commands waiting to be handed to the network side.
const MAX_OUTBOX: usize = 64;
/// Ticks (seconds) between refreshes when no event says something changed.
const REFRESH_EVERY_TICKS: u32 = 10;
/// Ticks (seconds) between two typing indicators sent while the user types.
const TYPING_EVERY_TICKS: u32 = 3;
/// Ticks (seconds) "… is typing" stays without another indicator (docs/local-api.md: ~5 s).
const TYPING_SHOWN_TICKS: u32 = 5;
/// Typists remembered at once (conversations × members); the oldest go first.
const MAX_TYPISTS: usize = 64;
/// Files of ours being sent (encrypted by the node) at once.
const MAX_UPLOADS: usize = 8;

/// The whole TUI state.
#[derive(Debug, Default)]
pub(crate) struct App {
    /// Conversations, most recent activity first.
    pub(crate) conversations: Vec<ConvSummary>,
    /// Contacts by name.
    pub(crate) contacts: HashMap<String, ContactView>,
    /// The open conversation.
    pub(crate) selected: Option<ConvKey>,
    /// Its lines, oldest first.
    pub(crate) lines: Vec<Line>,
    /// Lines scrolled up from the bottom.
    pub(crate) scroll: usize,
    /// The input line.
    pub(crate) input: String,
    /// What was entered before, newest last.
    history: VecDeque<String>,
    /// Position while walking the history with ↑/↓.
    history_pos: Option<usize>,
    /// The status bar.
    pub(crate) status: NodeStatus,
    /// The last notice (a success or an error).
    pub(crate) notice: Option<String>,
    /// The overlay shown over the conversation.
    pub(crate) overlay: Option<Overlay>,
    /// Contacts whose keys changed (the API's `key_changed` flag or a `key_change` event):
    /// banner until verified again, and the first send asks first.
    pub(crate) key_changed: HashSet<String>,
    /// Of those, the ones the user already confirmed a send to (asked once per session).
    confirmed: HashSet<String>,
    /// A send (text or file) waiting for the user to confirm: its contact's keys changed.
    pub(crate) confirm: Option<Command>,
    /// The UIDs of the message requests last shown (`/accept 1` names the first).
    pub(crate) request_uids: Vec<String>,
    /// Commands to hand to the network side.
    outbox: VecDeque<Command>,
    /// Refresh asked, or running.
    list_dirty: bool,
    list_in_flight: bool,
    /// The open conversation's history asked, or running.
    history_dirty: bool,
    history_in_flight: bool,
    ticks: u32,
    /// The tick of the last typing indicator sent (at most one per `TYPING_EVERY_TICKS`).
    typed_at: Option<u32>,
    /// A typing indicator to send (kept apart from the commands: best effort, never shown).
    typing: Option<ConvKey>,
    /// Who types where, from `typing` events: (conversation: a contact's name or a group's id,
    /// the typist's UID, the tick it expires at), oldest first.
    typists: VecDeque<(String, String, u32)>,
    /// Files of ours the node is encrypting to send, with their progress bars.
    pub(crate) uploads: Vec<Upload>,
    /// Files sent from this TUI so far (their `progress` ids count).
    uploads_made: u64,
    /// The user asked to leave.
    pub(crate) quit: bool,
}

impl App {
    /// A new state that first reads everything.
    pub(crate) fn new() -> Self {
        Self {
            list_dirty: true,
            ..Self::default()
        }
    }

    /// The commands to send now: queued actions, then the refreshes that are due.
    pub(crate) fn take_commands(&mut self) -> Vec<Command> {
        let mut out: Vec<Command> = self.outbox.drain(..).collect();
        if self.list_dirty && !self.list_in_flight {
            self.list_dirty = false;
            self.list_in_flight = true;
            out.push(Command::Refresh);
        }
        if self.history_dirty && !self.history_in_flight {
            if let Some(key) = self.selected.clone() {
                self.history_in_flight = true;
                out.push(Command::Open(key));
            }
            self.history_dirty = false;
        }
        out
    }

    /// A command the network side could not take (its queue is full): try again later.
    pub(crate) fn requeue(&mut self, command: Command) {
        match command {
            Command::Refresh => (self.list_dirty, self.list_in_flight) = (true, false),
            Command::Open(_) => (self.history_dirty, self.history_in_flight) = (true, false),
            Command::Typing(_) => {}
            Command::SendFile(_, _, progress) => {
                self.uploads.retain(|u| u.progress != progress);
                self.notice = Some("busy: try again".into());
            }
            _ => self.notice = Some("busy: try again".into()),
        }
    }

    /// Every second.
    pub(crate) fn on_tick(&mut self) {
        self.ticks = self.ticks.wrapping_add(1);
        let now = self.ticks;
        self.typists
            .retain(|(_, _, until)| (1..=TYPING_SHOWN_TICKS).contains(&until.wrapping_sub(now)));
        if self.ticks.is_multiple_of(REFRESH_EVERY_TICKS) {
            self.list_dirty = true;
        }
    }

    /// An answer or event from the network side.
    pub(crate) fn on_update(&mut self, update: Update) {
        match update {
            Update::Conversations(list, contacts, status) => {
                self.set_contacts(contacts);
                self.conversations = list;
                self.status = status;
                if self.selected.is_none()
                    && let Some(first) = self.conversations.first()
                {
                    self.select(first.key.clone());
                }
            }
            Update::History(key, lines) => {
                // A finished upload's message is in the history now (or it was refused).
                self.uploads.retain(|u| !u.finished);
                if self.selected.as_ref() == Some(&key) {
                    self.lines = lines;
                }
            }
            Update::Overlay(overlay) => {
                if let Overlay::Requests { people, .. } = &overlay {
                    self.request_uids = people.iter().map(|r| r.uid.clone()).collect();
                }
                self.overlay = Some(overlay);
            }
            Update::Notice(text) => self.notice = Some(text),
            Update::Done(Command::Refresh) => self.list_in_flight = false,
            Update::Done(Command::Open(_)) => self.history_in_flight = false,
            Update::Done(Command::SendFile(_, _, progress)) => {
                if let Some(upload) = self.uploads.iter_mut().find(|u| u.progress == progress) {
                    upload.finished = true;
                }
                self.history_dirty = true;
            }
            Update::Done(Command::Send(..)) => self.history_dirty = true,
            Update::Done(_) => self.list_dirty = true,
            Update::Event(event) => self.on_event(&event),
            Update::Lagged => (self.list_dirty, self.history_dirty) = (true, true),
        }
    }

    /// Remembers contacts; their `key_changed` flags raise (or, once verified, lower) the banner.
    fn set_contacts(&mut self, contacts: Vec<ContactView>) {
        self.contacts.clear();
        self.key_changed.clear();
        for contact in contacts {
            if contact.key_changed {
                self.key_changed.insert(contact.name.clone());
            }
            self.contacts.insert(contact.name.clone(), contact);
        }
        let changed = &self.key_changed;
        self.confirmed.retain(|name| changed.contains(name));
    }

    /// What an event from the node changes: the list, and the open conversation if it is the
    /// event's.
    fn on_event(&mut self, event: &ApiEvent) {
        if let ApiEvent::MessageReceived { contact, .. } = event {
            self.typists
                .retain(|(conversation, ..)| conversation != contact);
        }
        let touched = match event {
            ApiEvent::MessageReceived { contact, .. }
            | ApiEvent::MessageState { contact, .. }
            | ApiEvent::ConversationReestablished { contact, .. }
            | ApiEvent::ConversationReestablishFailed { contact, .. } => {
                Some(ConvKey::Contact(contact.clone()))
            }
            ApiEvent::GroupMessageReceived { group, .. }
            | ApiEvent::GroupMessageState { group, .. }
            | ApiEvent::GroupMemberAdded { group, .. }
            | ApiEvent::GroupMemberRemoved { group, .. }
            | ApiEvent::GroupRenamed { group, .. }
            | ApiEvent::GroupLeft { group, .. } => Some(ConvKey::Group(group.clone())),
            ApiEvent::MessageRequest { uid, name, .. } => {
                let who = name.clone().unwrap_or_else(|| super::model::short(uid));
                self.notice = Some(format!("message request from {who}: F3 to answer"));
                None
            }
            ApiEvent::GroupRequest { name, .. } => {
                self.notice = Some(format!("invitation to group {name}: F3 to answer"));
                None
            }
            ApiEvent::KeyChange { contact } => {
                self.key_changed.insert(contact.clone());
                self.confirmed.remove(contact);
                self.notice = Some(format!("⚠ {contact}'s keys changed: F6 to verify"));
                Some(ConvKey::Contact(contact.clone()))
            }
            ApiEvent::FileProgress {
                id,
                state,
                done_bytes,
                total_bytes,
            } => {
                let percent = percent_of(*done_bytes, *total_bytes);
                self.notice = Some(format!("file #{id}: {state} {percent} %"));
                // Every percent moves the bar of its line, if on screen; the end re-reads the
                // conversation.
                if let Some(file) = self
                    .lines
                    .iter_mut()
                    .find(|l| l.id == *id)
                    .and_then(|l| l.file.as_mut())
                {
                    file.set(state, percent);
                }
                if state == "done" || state == "failed" {
                    self.history_dirty = true;
                }
                return;
            }
            ApiEvent::FileImport {
                progress,
                done_bytes,
                total_bytes,
                ..
            } => {
                if let Some(upload) = self.uploads.iter_mut().find(|u| &u.progress == progress) {
                    upload.file.size = *total_bytes;
                    upload.file.percent = percent_of(*done_bytes, *total_bytes);
                }
                return;
            }
            ApiEvent::Presence { contact, state, .. } => {
                let key = ConvKey::Contact(contact.clone());
                if let Some(row) = self.conversations.iter_mut().find(|c| c.key == key) {
                    row.presence = Some(*state);
                }
                return;
            }
            ApiEvent::Typing { conversation, from } => {
                self.typists
                    .retain(|(c, f, _)| !(c == conversation && f == from));
                if self.typists.len() >= MAX_TYPISTS {
                    self.typists.pop_front();
                }
                let until = self.ticks.wrapping_add(TYPING_SHOWN_TICKS);
                self.typists
                    .push_back((conversation.clone(), from.clone(), until));
                return;
            }
            ApiEvent::ContactAdded { .. } | ApiEvent::GroupCreated { .. } => None,
            _ => return,
        };
        self.list_dirty = true;
        if touched.is_some() && touched == self.selected {
            self.history_dirty = true;
        }
    }

    /// Opens a conversation.
    pub(crate) fn select(&mut self, key: ConvKey) {
        if self.selected.as_ref() != Some(&key) {
            self.lines.clear();
            self.scroll = 0;
            self.confirm = None;
        }
        self.selected = Some(key);
        self.history_dirty = true;
    }

    /// Moves the selection `by` rows in the list (wrapping).
    fn move_selection(&mut self, forward: bool) {
        let n = self.conversations.len();
        if n == 0 {
            return;
        }
        let at = self
            .selected
            .as_ref()
            .and_then(|k| self.conversations.iter().position(|c| &c.key == k));
        let next = match (at, forward) {
            (None, _) => 0,
            (Some(i), true) => (i + 1) % n,
            (Some(i), false) => (i + n - 1) % n,
        };
        self.select(self.conversations[next].key.clone());
    }

    /// Queues a command for the network side (bounded: beyond it the user is told). A file
    /// to send gets its progress bar under its conversation.
    pub(crate) fn queue(&mut self, command: Command) {
        if self.outbox.len() >= MAX_OUTBOX {
            self.notice = Some("busy: try again".into());
            return;
        }
        if let Command::SendFile(to, path, progress) = &command {
            if self.uploads.len() >= MAX_UPLOADS {
                self.notice = Some("busy sending files: try again when one is sent".into());
                return;
            }
            let name = std::path::Path::new(path)
                .file_name()
                .map_or_else(|| path.clone(), |n| n.to_string_lossy().into_owned());
            self.uploads.push(Upload {
                progress: progress.clone(),
                to: to.clone(),
                file: FileLine {
                    name: super::model::printable(&name),
                    size: 0,
                    state: "encrypting".into(),
                    percent: 0,
                },
                finished: false,
            });
        }
        self.outbox.push_back(command);
    }

    /// Pasted text goes into the input line (a ticket, typically).
    pub(crate) fn on_paste(&mut self, text: &str) {
        for c in text.chars().filter(|c| !c.is_control()) {
            self.push_char(c);
        }
    }

    fn push_char(&mut self, c: char) {
        if self.input.chars().count() < MAX_INPUT_CHARS {
            self.input.push(c);
            self.note_typing();
        }
    }

    /// Tells the open conversation we are typing, at most once per [`TYPING_EVERY_TICKS`]
    /// (not for `/` commands; the node also rate-limits, and sends none while hidden).
    fn note_typing(&mut self) {
        let Some(key) = self.selected.clone() else {
            return;
        };
        if self.input.starts_with('/')
            || self
                .typed_at
                .is_some_and(|t| self.ticks.wrapping_sub(t) < TYPING_EVERY_TICKS)
        {
            return;
        }
        self.typed_at = Some(self.ticks);
        self.typing = Some(key);
    }

    /// "bob is typing…" (or "bob and carol are typing…") for the open conversation.
    pub(crate) fn typing_line(&self) -> Option<String> {
        let (ConvKey::Contact(open) | ConvKey::Group(open)) = self.selected.as_ref()?;
        let names: Vec<String> = self
            .typists
            .iter()
            .filter(|(conversation, ..)| conversation == open)
            .map(|(conversation, from, _)| {
                if self.contacts.contains_key(conversation) {
                    return conversation.clone();
                }
                self.contacts
                    .values()
                    .find(|c| &c.uid == from)
                    .map_or_else(|| super::model::short(from), |c| c.name.clone())
            })
            .collect();
        match names.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing…")),
            [rest @ .., last] => Some(format!("{} and {last} are typing…", rest.join(", "))),
        }
    }

    /// The typing indicator to send now, if the user typed.
    pub(crate) fn take_typing(&mut self) -> Option<Command> {
        self.typing.take().map(Command::Typing)
    }

    /// A key press.
    pub(crate) fn on_key(&mut self, key: KeyEvent) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c' | 'q') if ctrl => self.quit = true,
            KeyCode::Esc => {
                self.overlay = None;
                if self.input.starts_with("/file ") {
                    self.input.clear();
                }
                if self.confirm.take().is_some() {
                    self.notice = Some("not sent".into());
                }
            }
            KeyCode::Char('v') if self.input.is_empty() && self.safety_open().is_some() => {
                if let Some(name) = self.safety_open() {
                    self.key_changed.remove(&name);
                    self.queue(Command::Verify(name));
                    self.overlay = None;
                }
            }
            KeyCode::Char(c) if !ctrl => self.push_char(c),
            KeyCode::Backspace => {
                self.input.pop();
            }
            KeyCode::Enter => self.enter(),
            KeyCode::Up => self.walk_history(true),
            KeyCode::Down => self.walk_history(false),
            KeyCode::Tab | KeyCode::Char('n') => self.move_selection(true),
            KeyCode::BackTab | KeyCode::Char('p') => self.move_selection(false),
            KeyCode::PageUp => self.scroll = self.scroll.saturating_add(10),
            KeyCode::PageDown => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::F(n) => self.function_key(n),
            _ => {}
        }
    }

    /// The contact whose safety number is on screen.
    fn safety_open(&self) -> Option<String> {
        match &self.overlay {
            Some(Overlay::Safety(c)) => Some(c.name.clone()),
            _ => None,
        }
    }

    fn function_key(&mut self, n: u8) {
        match n {
            1 => self.overlay = Some(Overlay::Help),
            2 => self.queue(Command::ShowTicket),
            3 => self.queue(Command::ShowRequests),
            4 => self.queue(Command::ShowDevices),
            5 => self.queue(Command::ShowAgents),
            6 => self.show_safety(),
            7 => self.file_prompt(),
            _ => {}
        }
    }

    /// F7: the input line asks for the path of a file to send to the open contact.
    fn file_prompt(&mut self) {
        match &self.selected {
            Some(ConvKey::Contact(name)) => {
                self.notice = Some(format!(
                    "path of the file to send to {name}: Enter sends, Esc cancels"
                ));
                self.input = "/file ".into();
            }
            _ => self.notice = Some("open a 1:1 conversation to send a file".into()),
        }
    }

    fn show_safety(&mut self) {
        match &self.selected {
            Some(ConvKey::Contact(name)) => match self.contacts.get(name) {
                Some(c) => self.overlay = Some(Overlay::Safety(c.clone())),
                None => self.notice = Some(format!("{name} is not a contact")),
            },
            _ => self.notice = Some("open a 1:1 conversation to verify a contact".into()),
        }
    }

    fn walk_history(&mut self, back: bool) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() - 1;
        let pos = match (self.history_pos, back) {
            (None, true) => Some(last),
            (None, false) => None,
            (Some(p), true) => Some(p.saturating_sub(1)),
            (Some(p), false) if p < last => Some(p + 1),
            (Some(_), false) => None,
        };
        self.history_pos = pos;
        self.input = pos
            .and_then(|p| self.history.get(p).cloned())
            .unwrap_or_default();
    }

    /// Enter: a command (`/…`), a pasted ticket, or a text to the open conversation.
    fn enter(&mut self) {
        let line = std::mem::take(&mut self.input).trim().to_string();
        self.history_pos = None;
        if let Some(command) = self.confirm.take() {
            if line.is_empty() {
                if let Some(name) = command.contact() {
                    self.confirmed.insert(name.to_string());
                }
                self.queue(command);
                return;
            }
            self.notice = Some("not sent".into());
        }
        if line.is_empty() {
            return;
        }
        if self.history.back() != Some(&line) {
            if self.history.len() >= INPUT_HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(line.clone());
        }
        if line.starts_with("rhz1contact") {
            self.queue(Command::AddContact(line));
        } else if let Some(command) = line.strip_prefix('/') {
            super::commands::run(self, command);
        } else {
            self.send(line);
        }
    }

    fn send(&mut self, text: String) {
        let Some(key) = self.selected.clone() else {
            self.notice = Some("no conversation open: add a contact first (F1 for help)".into());
            return;
        };
        self.send_checked(Command::Send(key, text));
    }

    /// `/file PATH`: sends a file to the open contact (asking first, as a text does).
    pub(crate) fn send_file(&mut self, path: String) {
        match self.selected.clone() {
            Some(ConvKey::Contact(name)) => {
                // Distinct per process and file: other clients of the node see these events.
                self.uploads_made += 1;
                let progress = format!("tui-{}-{}", std::process::id(), self.uploads_made);
                self.send_checked(Command::SendFile(name, path, progress));
            }
            _ => self.notice = Some("open a 1:1 conversation to send a file".into()),
        }
    }

    /// Queues a send, unless its contact's keys changed and the user has not confirmed a send
    /// to them yet: then Enter sends, Esc cancels.
    fn send_checked(&mut self, command: Command) {
        if let Some(name) = command.contact()
            && self.key_changed.contains(name)
            && !self.confirmed.contains(name)
        {
            self.notice = Some(format!(
                "⚠ {name}'s keys changed: Enter again to send anyway, Esc to cancel"
            ));
            self.confirm = Some(command);
            return;
        }
        self.queue(command);
    }
}
