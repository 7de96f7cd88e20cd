//! The TUI's screens rendered on ratatui's `TestBackend` at 80×24, and what keys, answers and
//! events do to the state.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::{Terminal, backend::TestBackend};
use rhizo_node::{
    events::ApiEvent,
    messaging::{ContactView, FileSummary, GroupMessageView, MessageView, RequestView},
};

use super::{
    app::App,
    model::{ConvKey, ConvSummary, Line, Mark, NodeStatus, Overlay},
    net::{Command, Update},
    terminal, view,
};

const UID_BOB: &str = "54V5VKD-MFEH3SG-3J7THL4-WBL5DXM-QROOTGZ-N7AFBPP-7OCGZMU-KTTDJAO";

fn contact(name: &str, devices: &[&str]) -> ContactView {
    ContactView {
        name: name.into(),
        uid: UID_BOB.into(),
        fingerprint: "4OZC KDPN 2L5Q".into(),
        safety_number: "19318 79507 11111 22222 33333 44444 55555 66666 77777 88888 99999 82887"
            .into(),
        verified: false,
        devices: devices.iter().map(|d| (*d).to_string()).collect(),
        key_changed: false,
    }
}

fn message(id: i64, direction: &str, text: &str, state: &str) -> MessageView {
    MessageView {
        id,
        direction: direction.into(),
        text: Some(text.into()),
        // 12:34:00 UTC on some day.
        sent_at: 1_763_814_840_000 + id,
        state: state.into(),
        seq: u64::try_from(id).unwrap(),
        error: None,
        replicas: None,
        file: None,
    }
}

fn summary(key: ConvKey, title: &str, unread: usize, last: i64) -> ConvSummary {
    ConvSummary {
        key,
        title: title.into(),
        unread,
        last_activity: last,
        presence: None,
    }
}

/// An app with bob (open, two lines), a group with 3 unread, and a status.
fn app_with_bob() -> App {
    let mut app = App::new();
    let list = vec![
        summary(ConvKey::Contact("bob".into()), "bob", 0, 20),
        summary(ConvKey::Group("dd30f89e".into()), "friends", 3, 10),
    ];
    let status = NodeStatus {
        peers: 2,
        reachability: "public".into(),
        held: 4,
        outbox: 1,
        requests: 1,
    };
    app.on_update(Update::Conversations(
        list,
        vec![contact("bob", &["d1"])],
        status,
    ));
    let lines = vec![
        Line::direct(&message(1, "out", "hello bob", "delivered"), "bob"),
        Line::direct(&message(2, "in", "hi alice", "read"), "bob"),
        Line::direct(&message(3, "out", "still queued", "queued"), "bob"),
    ];
    app.on_update(Update::History(ConvKey::Contact("bob".into()), lines));
    app
}

/// Renders `app` at `w`×`h` and returns the screen's rows.
fn render(app: &App, w: u16, h: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
    terminal.draw(|f| view::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buffer[(x, y)].symbol()).collect::<String>())
        .collect()
}

/// A row without the conversation list (its first 24 columns).
fn right_of_list(row: &str) -> String {
    row.chars().skip(24).collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(key(KeyCode::Char(c)));
    }
}

#[test]
fn main_screen_at_80x24() {
    let app = app_with_bob();
    let rows = render(&app, 80, 24);
    assert_eq!(rows.len(), 24);
    assert!(rows.iter().all(|r| r.chars().count() == 80));
    assert!(rows[0].starts_with("┌Conversations"), "{}", rows[0]);
    assert!(rows[0].contains("@bob [not verified: F6]"), "{}", rows[0]);
    assert!(
        rows[1].starts_with("│▶@bob                 │"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].starts_with("│ #friends          (3)│"),
        "{}",
        rows[2]
    );
    // Newest at the bottom of the conversation, with delivery marks as symbols.
    assert_eq!(
        right_of_list(&rows[18]),
        "│12:34 me: hello bob ✓✓                                │"
    );
    assert_eq!(
        right_of_list(&rows[19]),
        "│12:34 bob: hi alice                                   │"
    );
    assert_eq!(
        right_of_list(&rows[20]),
        "│12:34 me: still queued …                              │"
    );
    assert_eq!(rows[22].trim_end(), "›");
    assert_eq!(
        rows[23].trim_end(),
        "peers 2 · public · held 4 · outbox 1 · requests 1 │ F1 help"
    );
}

#[test]
fn empty_screen_says_what_to_do() {
    let rows = render(&App::new(), 80, 24);
    assert!(rows[1].starts_with("│no contacts yet:"), "{}", rows[1]);
    assert!(rows[0].contains("no conversation"), "{}", rows[0]);
}

#[test]
fn marks_are_symbols_for_every_state() {
    let mark = |d, s| Mark::of(d, s).symbol();
    assert_eq!(mark("out", "queued"), "…");
    assert_eq!(mark("out", "sent"), "✓");
    assert_eq!(mark("out", "stored"), "✓");
    assert_eq!(mark("out", "delivered"), "✓✓");
    assert_eq!(mark("out", "read"), "✓✓ read");
    assert_eq!(mark("out", "failed"), "✗ failed");
    assert_eq!(mark("in", "received"), "");
    // A group message of ours shows how many member devices have it.
    let m = GroupMessageView {
        message: message(5, "out", "all", "sent"),
        from: None,
        from_name: None,
        delivered: Some(2),
        read: Some(0),
        total: Some(3),
    };
    assert_eq!(view::render_line(&Line::group(&m)), "12:34 me: all ✓ 2/3");
}

#[test]
fn it_redraws_at_any_size() {
    let app = app_with_bob();
    let small = render(&app, 80, 24);
    let large = render(&app, 120, 40);
    assert_eq!(large.len(), 40);
    assert!(large[34].contains("12:34 me: hello bob ✓✓"), "{large:?}");
    assert!(small[18].contains("12:34 me: hello bob ✓✓"));
    // Tiny terminals do not panic.
    render(&app, 10, 4);
    render(&app, 1, 1);
}

#[test]
fn enter_sends_to_the_open_conversation_and_keeps_a_history() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    type_text(&mut app, "first");
    app.on_key(key(KeyCode::Enter));
    type_text(&mut app, "second");
    app.on_key(key(KeyCode::Enter));
    let commands = app.take_commands();
    assert_eq!(
        commands,
        vec![
            Command::Send(ConvKey::Contact("bob".into()), "first".into()),
            Command::Send(ConvKey::Contact("bob".into()), "second".into()),
        ]
    );
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input, "second");
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.input, "first");
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.input, "second");
    app.on_key(key(KeyCode::Down));
    assert_eq!(app.input, "");
}

#[test]
fn tab_moves_between_conversations_and_opens_them() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    app.on_key(key(KeyCode::Tab));
    // The first history read is still running: the next waits for it.
    assert!(app.take_commands().is_empty());
    app.on_update(Update::Done(Command::Open(ConvKey::Contact("bob".into()))));
    assert_eq!(app.selected, Some(ConvKey::Group("dd30f89e".into())));
    assert!(app.lines.is_empty());
    assert_eq!(
        app.take_commands(),
        vec![Command::Open(ConvKey::Group("dd30f89e".into()))]
    );
    app.on_key(key(KeyCode::BackTab));
    assert_eq!(app.selected, Some(ConvKey::Contact("bob".into())));
}

#[test]
fn events_refresh_once_however_many_arrive() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    app.on_update(Update::Done(Command::Refresh));
    app.on_update(Update::Done(Command::Open(ConvKey::Contact("bob".into()))));
    for id in 0..50 {
        app.on_update(Update::Event(Box::new(ApiEvent::MessageState {
            id,
            contact: "bob".into(),
            state: "delivered".into(),
        })));
    }
    let commands = app.take_commands();
    assert_eq!(
        commands,
        vec![
            Command::Refresh,
            Command::Open(ConvKey::Contact("bob".into()))
        ]
    );
    // More events while those run: nothing more until they are done.
    app.on_update(Update::Event(Box::new(ApiEvent::MessageReceived {
        id: 9,
        contact: "bob".into(),
        text: "x".into(),
        sent_at: 0,
        muted: false,
    })));
    assert!(app.take_commands().is_empty());
    app.on_update(Update::Done(Command::Refresh));
    assert_eq!(app.take_commands(), vec![Command::Refresh]);
    // A full queue: asked again later, not lost.
    app.requeue(Command::Refresh);
    assert_eq!(app.take_commands(), vec![Command::Refresh]);
}

#[test]
fn a_pasted_ticket_adds_a_contact() {
    let mut app = App::new();
    app.on_paste("rhz1contactabc\n");
    app.on_key(key(KeyCode::Enter));
    assert!(
        app.take_commands()
            .contains(&Command::AddContact("rhz1contactabc".into()))
    );
}

#[test]
fn slash_commands() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    let run = |app: &mut App, line: &str| {
        type_text(app, line);
        app.on_key(key(KeyCode::Enter));
        app.take_commands()
    };
    assert_eq!(
        run(&mut app, "/group team bob carol"),
        vec![Command::CreateGroup(
            "team".into(),
            vec!["bob".into(), "carol".into()]
        )]
    );
    assert!(run(&mut app, "/members dave").is_empty());
    assert_eq!(app.notice.as_deref(), Some("open a group first"));
    assert_eq!(run(&mut app, "/ticket"), vec![Command::ShowTicket]);
    assert_eq!(run(&mut app, "/join 7"), vec![Command::AcceptGroup(7)]);
    assert_eq!(
        run(&mut app, "/link rhz1linkabc laptop"),
        vec![Command::LinkDevice(
            "rhz1linkabc".into(),
            Some("laptop".into())
        )]
    );
    assert_eq!(
        run(&mut app, "/link rhz1linkabc"),
        vec![Command::LinkDevice("rhz1linkabc".into(), None)]
    );
    assert_eq!(
        run(&mut app, "/revoke laptop"),
        vec![Command::RevokeDevice("laptop".into())]
    );
    assert!(
        run(&mut app, "/revoke").is_empty(),
        "a device to revoke is needed"
    );
    assert!(run(&mut app, "/nonsense").is_empty());
    assert!(app.notice.as_deref().unwrap().contains("unknown command"));
    run(&mut app, "/quit");
    assert!(app.quit);
}

#[test]
fn requests_screen_and_accept_by_number() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    let request = RequestView {
        uid: "S4O22DO-AAAAAAA".into(),
        name: Some("carol".into()),
        fingerprint: None,
        safety_number: Some("12345 67890".into()),
        device_listed: Some(true),
        envelopes: 2,
        bytes: 900,
        first_at: 0,
        last_at: 0,
        blocked: false,
    };
    app.on_update(Update::Overlay(Overlay::Requests {
        people: vec![request],
        groups: Vec::new(),
    }));
    let rows = render(&app, 80, 24);
    let screen = rows.join("\n");
    assert!(
        screen.contains("Message requests (/accept N [NAME], /decline N):"),
        "{screen}"
    );
    assert!(
        screen.contains("1. carol S4O22DO-AAAAAAA · 2 message(s)"),
        "{screen}"
    );
    assert!(screen.contains("safety number 12345 67890"), "{screen}");
    type_text(&mut app, "/accept 1 carol");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(
        app.take_commands(),
        vec![Command::Accept(
            "S4O22DO-AAAAAAA".into(),
            Some("carol".into())
        )]
    );
    app.on_key(key(KeyCode::Esc));
    assert!(app.overlay.is_none());
}

#[test]
fn safety_number_screen_and_verify() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    app.on_key(key(KeyCode::F(6)));
    let screen = render(&app, 80, 24).join("\n");
    assert!(screen.contains("Safety number (Esc closes)"), "{screen}");
    assert!(screen.contains("19318 79507"), "{screen}");
    assert!(screen.contains("✗ not verified"), "{screen}");
    app.on_key(key(KeyCode::Char('v')));
    assert_eq!(app.take_commands(), vec![Command::Verify("bob".into())]);
    assert!(app.overlay.is_none());
}

#[test]
fn a_key_change_shows_a_banner_and_the_first_send_asks_until_verified() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    let list = app.conversations.clone();
    let mut bob = contact("bob", &["d1", "d2"]);
    bob.key_changed = true;
    app.on_update(Update::Conversations(
        list.clone(),
        vec![bob.clone()],
        NodeStatus::default(),
    ));
    let rows = render(&app, 80, 24);
    assert!(
        rows[1].contains("⚠ bob's keys changed (a new device)"),
        "{}",
        rows[1]
    );
    type_text(&mut app, "secret");
    app.on_key(key(KeyCode::Enter));
    assert!(
        app.take_commands()
            .iter()
            .all(|c| !matches!(c, Command::Send(..)))
    );
    assert!(
        app.notice
            .as_deref()
            .unwrap()
            .contains("Enter again to send")
    );
    // Esc cancels; a second try confirmed with Enter sends.
    app.on_key(key(KeyCode::Esc));
    assert_eq!(app.notice.as_deref(), Some("not sent"));
    type_text(&mut app, "secret");
    app.on_key(key(KeyCode::Enter));
    app.on_key(key(KeyCode::Enter));
    let send = Command::Send(ConvKey::Contact("bob".into()), "secret".into());
    assert_eq!(app.take_commands(), vec![send]);
    // Confirmed once: the next text goes at once, and the banner stays until verified.
    type_text(&mut app, "again");
    app.on_key(key(KeyCode::Enter));
    assert_eq!(app.take_commands().len(), 1);
    assert!(render(&app, 80, 24)[1].contains("⚠"));
    // Verifying (F6, v) lowers it; the node's cleared flag keeps it down.
    app.on_key(key(KeyCode::F(6)));
    app.on_key(key(KeyCode::Char('v')));
    assert_eq!(app.take_commands(), vec![Command::Verify("bob".into())]);
    assert!(!render(&app, 80, 24)[1].contains("⚠"));
    bob.key_changed = false;
    app.on_update(Update::Conversations(
        list,
        vec![bob],
        NodeStatus::default(),
    ));
    assert!(!render(&app, 80, 24)[1].contains("⚠"));
}

#[test]
fn a_key_change_event_raises_the_banner_and_asks_again() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    app.on_update(Update::Done(Command::Refresh));
    app.on_update(Update::Event(Box::new(ApiEvent::KeyChange {
        contact: "bob".into(),
    })));
    assert!(render(&app, 80, 24)[1].contains("⚠ bob's keys changed"));
    assert!(app.notice.as_deref().unwrap().contains("keys changed"));
    type_text(&mut app, "hi");
    app.on_key(key(KeyCode::Enter));
    assert!(app.confirm.is_some(), "asks before sending");
    // The list is read again, so the flag from the node follows.
    assert!(app.take_commands().contains(&Command::Refresh));
}

#[test]
fn a_file_is_sent_from_a_path_prompt_and_its_progress_shown() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    app.on_key(key(KeyCode::F(7)));
    assert_eq!(app.input, "/file ");
    assert!(app.notice.as_deref().unwrap().contains("path of the file"));
    type_text(&mut app, "/tmp/cat 1.png");
    app.on_key(key(KeyCode::Enter));
    let progress = format!("tui-{}-1", std::process::id());
    assert_eq!(
        app.take_commands(),
        vec![Command::SendFile(
            "bob".into(),
            "/tmp/cat 1.png".into(),
            progress
        )]
    );
    // A key change asks first for a file too.
    app.on_update(Update::Event(Box::new(ApiEvent::KeyChange {
        contact: "bob".into(),
    })));
    type_text(&mut app, "/file /tmp/x");
    app.on_key(key(KeyCode::Enter));
    assert!(matches!(app.confirm, Some(Command::SendFile(..))));
    app.on_key(key(KeyCode::Esc));
    // Esc also leaves the prompt.
    app.on_key(key(KeyCode::F(7)));
    app.on_key(key(KeyCode::Esc));
    assert!(app.input.is_empty());
    // Progress from file_progress events, in the status line.
    let _ = app.take_commands();
    app.on_update(Update::Event(Box::new(ApiEvent::FileProgress {
        id: 7,
        state: "downloading".into(),
        done_bytes: 512,
        total_bytes: 1024,
    })));
    assert_eq!(app.notice.as_deref(), Some("file #7: downloading 50 %"));
    assert!(app.take_commands().is_empty(), "progress reads nothing");
    let screen = render(&app, 80, 24).join("\n");
    assert!(screen.contains("file #7: downloading 50 %"), "{screen}");
    app.on_update(Update::Event(Box::new(ApiEvent::FileProgress {
        id: 7,
        state: "done".into(),
        done_bytes: 1024,
        total_bytes: 1024,
    })));
    assert_eq!(app.notice.as_deref(), Some("file #7: done 100 %"));
    // In a group there is no file prompt (files go to a contact).
    app.select(ConvKey::Group("dd30f89e".into()));
    app.on_key(key(KeyCode::F(7)));
    assert!(app.input.is_empty());
}

#[test]
fn help_and_ticket_screens() {
    let mut app = app_with_bob();
    app.on_key(key(KeyCode::F(1)));
    let screen = render(&app, 80, 24).join("\n");
    assert!(screen.contains("Help (Esc closes)"), "{screen}");
    assert!(screen.contains("F2 /ticket"), "{screen}");
    let qr = "█▀▀▀█\n█ █ █\n▀▀▀▀▀".to_string();
    app.on_update(Update::Overlay(Overlay::Ticket {
        ticket: "rhz1contactxyz".into(),
        qr: qr.clone(),
    }));
    let screen = render(&app, 80, 24).join("\n");
    assert!(screen.contains("█ █ █"), "{screen}");
    assert!(screen.contains("rhz1contactxyz"), "{screen}");
    // A QR code larger than the screen: the ticket text and the size needed.
    let big = "█".repeat(100);
    app.on_update(Update::Overlay(Overlay::Ticket {
        ticket: "rhz1contactxyz".into(),
        qr: big,
    }));
    let screen = render(&app, 80, 24).join("\n");
    assert!(screen.contains("The QR code needs 102×"), "{screen}");
    assert!(screen.contains("rhz1contactxyz"), "{screen}");
}

#[test]
fn ctrl_c_and_ctrl_q_quit() {
    for c in ['c', 'q'] {
        let mut app = App::new();
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
        assert!(app.quit);
    }
}

#[test]
fn typing_sends_an_indicator_at_most_every_three_ticks_and_not_for_commands() {
    let mut app = app_with_bob();
    let _ = app.take_commands();
    type_text(&mut app, "hel");
    let bob = ConvKey::Contact("bob".into());
    assert_eq!(app.take_typing(), Some(Command::Typing(bob.clone())));
    type_text(&mut app, "lo");
    assert_eq!(app.take_typing(), None, "within 3 ticks");
    for _ in 0..3 {
        app.on_tick();
    }
    type_text(&mut app, "!");
    assert_eq!(app.take_typing(), Some(Command::Typing(bob)));
    assert!(
        !app.take_commands()
            .iter()
            .any(|c| matches!(c, Command::Typing(_))),
        "typing is not among the commands"
    );
    app.on_key(key(KeyCode::Enter));
    for _ in 0..3 {
        app.on_tick();
    }
    type_text(&mut app, "/file x");
    assert_eq!(app.take_typing(), None, "a / command is not typing");
}

#[test]
fn someone_typing_shows_under_their_conversation_for_five_ticks_or_until_their_message() {
    let typing = |conversation: &str| {
        Update::Event(Box::new(ApiEvent::Typing {
            conversation: conversation.into(),
            from: UID_BOB.into(),
        }))
    };
    let shows = |app: &App| {
        render(app, 80, 24)
            .iter()
            .any(|r| r.contains("bob is typing…"))
    };
    let mut app = app_with_bob();
    app.on_update(typing("bob"));
    let screen = render(&app, 80, 24);
    // On the conversation's bottom border, above the input line.
    assert!(
        screen[21].contains("bob is typing…"),
        "{}",
        screen.join("\n")
    );
    for _ in 0..4 {
        app.on_tick();
    }
    assert!(shows(&app), "still within 5 ticks");
    app.on_tick();
    assert!(!shows(&app), "gone after 5 ticks without another");

    // Another conversation's typist is not shown here; their message clears it at once.
    app.on_update(typing("dd30f89e"));
    assert!(!shows(&app), "bob types in the group, not here");
    app.on_update(typing("bob"));
    assert!(shows(&app));
    app.on_update(Update::Event(Box::new(ApiEvent::MessageReceived {
        id: 10,
        contact: "bob".into(),
        text: "done typing".into(),
        sent_at: 0,
        muted: false,
    })));
    assert!(!shows(&app), "their message ends it");
    // In the group, the typist is named by the contact with that UID.
    app.select(ConvKey::Group("dd30f89e".into()));
    assert_eq!(app.typing_line().as_deref(), Some("bob is typing…"));
}

#[test]
fn presence_is_a_symbol_after_the_name_and_follows_the_events() {
    use rhizo_node::presence::PresenceState;
    let mut app = app_with_bob();
    let bob = ConvKey::Contact("bob".into());
    let row = |app: &App| render(app, 80, 24)[1].chars().take(24).collect::<String>();
    assert!(
        !row(&app).contains('●') && !row(&app).contains('○'),
        "unknown: no mark"
    );
    for (state, mark) in [
        (PresenceState::Online, "●"),
        (PresenceState::Offline, "○"),
        (PresenceState::Hidden, "-"),
    ] {
        app.on_update(Update::Event(Box::new(ApiEvent::Presence {
            contact: "bob".into(),
            uid: UID_BOB.into(),
            state,
            last_seen: None,
        })));
        assert_eq!(
            app.conversations
                .iter()
                .find(|c| c.key == bob)
                .and_then(|c| c.presence),
            Some(state)
        );
        let shown = row(&app);
        assert!(
            shown.starts_with("│▶@bob") && shown.trim_end_matches('│').trim_end().ends_with(mark),
            "{shown}"
        );
    }
}

/// A file message: `name` of `size` bytes, in `state` with `percent` held.
fn file_message(id: i64, direction: &str, state: &str, percent: u8) -> MessageView {
    let mut m = message(
        id,
        direction,
        "",
        if direction == "in" {
            "received"
        } else {
            "delivered"
        },
    );
    m.file = Some(FileSummary {
        name: "report.pdf".into(),
        size: 2048,
        mime: "application/pdf".into(),
        state: state.into(),
        percent,
    });
    m
}

/// The conversation's rows (right of the list, borders cut) that hold `what`.
fn rows_with(rows: &[String], what: &str) -> Vec<String> {
    rows.iter()
        .map(|r| right_of_list(r))
        .filter(|r| r.contains(what))
        .collect()
}

#[test]
fn a_received_file_shows_a_progress_bar_that_follows_its_events() {
    let mut app = app_with_bob();
    let mut lines = app.lines.clone();
    lines.push(Line::direct(&file_message(4, "in", "offered", 0), "bob"));
    app.on_update(Update::History(ConvKey::Contact("bob".into()), lines));
    let rows = render(&app, 80, 24);
    // The file's line, then its bar on the row under it, inside the conversation's borders.
    assert_eq!(
        right_of_list(&rows[19]),
        "│12:34 bob: file report.pdf (2.0 KiB)                  │"
    );
    assert_eq!(
        right_of_list(&rows[20]),
        "│      [░░░░░░░░░░]   0 % offered                      │"
    );
    // Half-way: five of ten cells full, from a `file_progress` event alone (nothing re-read).
    for command in app.take_commands() {
        app.on_update(Update::Done(command));
    }
    app.on_update(Update::Event(Box::new(ApiEvent::FileProgress {
        id: 4,
        state: "downloading".into(),
        done_bytes: 1100,
        total_bytes: 2200,
    })));
    assert!(app.take_commands().is_empty(), "progress reads nothing");
    let rows = render(&app, 80, 24);
    assert_eq!(
        right_of_list(&rows[20]),
        "│      [█████░░░░░]  50 % downloading                  │"
    );
    app.on_update(Update::Event(Box::new(ApiEvent::FileProgress {
        id: 4,
        state: "done".into(),
        done_bytes: 2200,
        total_bytes: 2200,
    })));
    let rows = render(&app, 80, 24);
    assert_eq!(
        right_of_list(&rows[20]),
        "│      [██████████] 100 % done                         │"
    );
    // The end re-reads the conversation (the file's final state).
    assert!(
        app.take_commands()
            .contains(&Command::Open(ConvKey::Contact("bob".into())))
    );
    // A failure says so in words, not only by the bar.
    app.on_update(Update::Event(Box::new(ApiEvent::FileProgress {
        id: 4,
        state: "failed".into(),
        done_bytes: 700,
        total_bytes: 2200,
    })));
    let rows = render(&app, 80, 24);
    assert_eq!(
        rows_with(&rows, "[███░░░░░░░]  31 % ✗ failed").len(),
        1,
        "{rows:#?}"
    );
}

#[test]
fn a_sent_file_shows_its_bar_while_encrypted_then_its_line() {
    let mut app = app_with_bob();
    app.on_key(key(KeyCode::F(7)));
    type_text(&mut app, "/data/report.pdf");
    app.on_key(key(KeyCode::Enter));
    let commands = app.take_commands();
    let Some(Command::SendFile(_, _, progress)) = commands.first() else {
        panic!("{commands:?}");
    };
    let progress = progress.clone();
    let rows = render(&app, 80, 24);
    assert_eq!(
        rows_with(&rows, "--:-- me: file report.pdf ").len(),
        1,
        "{rows:#?}"
    );
    assert_eq!(
        rows_with(&rows, "      [░░░░░░░░░░]   0 % encrypting").len(),
        1,
        "{rows:#?}"
    );
    // `file_import` events of this request move it; another request's do not.
    for (id, done) in [(progress.as_str(), 1024), ("someone-else", 2048)] {
        app.on_update(Update::Event(Box::new(ApiEvent::FileImport {
            progress: id.into(),
            name: "report.pdf".into(),
            done_bytes: done,
            total_bytes: 2048,
        })));
    }
    let rows = render(&app, 80, 24);
    assert_eq!(
        rows_with(&rows, "--:-- me: file report.pdf (2.0 KiB)").len(),
        1,
        "{rows:#?}"
    );
    assert_eq!(
        rows_with(&rows, "      [█████░░░░░]  50 % encrypting").len(),
        1,
        "{rows:#?}"
    );
    // Another conversation does not show it.
    app.select(ConvKey::Group("dd30f89e".into()));
    assert!(rows_with(&render(&app, 80, 24), "encrypting").is_empty());
    app.select(ConvKey::Contact("bob".into()));
    app.on_update(Update::Done(Command::Open(ConvKey::Contact("bob".into()))));
    // Sent: the history that follows holds the message, at 100 % with its delivery mark.
    app.on_update(Update::Done(Command::SendFile(
        "bob".into(),
        "/data/report.pdf".into(),
        progress,
    )));
    assert!(
        app.take_commands()
            .contains(&Command::Open(ConvKey::Contact("bob".into())))
    );
    let mut lines = app_with_bob().lines;
    lines.push(Line::direct(&file_message(9, "out", "done", 96), "bob"));
    app.on_update(Update::History(ConvKey::Contact("bob".into()), lines));
    assert!(app.uploads.is_empty());
    let rows = render(&app, 80, 24);
    assert!(rows_with(&rows, "encrypting").is_empty(), "{rows:#?}");
    assert_eq!(
        right_of_list(&rows[19]),
        "│12:34 me: file report.pdf (2.0 KiB) ✓✓                │"
    );
    assert_eq!(
        right_of_list(&rows[20]),
        "│      [██████████] 100 % done                         │"
    );
}

#[test]
fn progress_bars_round_down_and_stay_in_bounds() {
    assert_eq!(view::progress_bar(0, 10), "[░░░░░░░░░░]");
    assert_eq!(view::progress_bar(9, 10), "[░░░░░░░░░░]");
    assert_eq!(view::progress_bar(55, 10), "[█████░░░░░]");
    assert_eq!(view::progress_bar(99, 10), "[█████████░]");
    assert_eq!(view::progress_bar(100, 10), "[██████████]");
    assert_eq!(view::progress_bar(250, 10), "[██████████]");
    assert_eq!(super::model::percent_of(5, 0), 100);
    assert_eq!(super::model::percent_of(9, 4), 100);
    // A sender's file name cannot bring escapes to the screen.
    let mut m = file_message(4, "in", "offered", 0);
    if let Some(f) = m.file.as_mut() {
        f.name = "evil\u{1b}[2J.txt".into();
    }
    let line = Line::direct(&m, "bob");
    assert!(view::render_line(&line).contains("file evil?[2J.txt"));
}

/// Set in the child process of [`a_panic_gives_the_terminal_back_then_runs_the_previous_hook`].
const PANIC_CHILD: &str = "RHIZO_TUI_TEST_PANIC_CHILD";

/// The TUI's panic hook, installed as `rhizo tui` installs it, for a real panic: this test runs
/// itself again in a child process (a panic hook is global to a process, and other tests run
/// in parallel here), where a previous hook that prints a marker is in place, the TUI's hook
/// goes over it and the test panics. The child's stdout must hold the restoring sequences, then
/// the marker: the terminal is given back first, and the previous hook still runs.
#[test]
fn a_panic_gives_the_terminal_back_then_runs_the_previous_hook() {
    if std::env::var_os(PANIC_CHILD).is_some() {
        std::panic::set_hook(Box::new(|info| {
            println!("<previous hook ran: {info}>");
        }));
        terminal::install_panic_hook();
        panic!("a test panic");
    }
    let name = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, rest)| rest);
    let name = format!("{name}::a_panic_gives_the_terminal_back_then_runs_the_previous_hook");
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(PANIC_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child test panics: {stdout}");
    let at = |what: &str| {
        stdout
            .find(what)
            .unwrap_or_else(|| panic!("{what:?} not in the child's stdout: {stdout:?}"))
    };
    let leave_alternate = at("\x1b[?1049l");
    let show_cursor = at("\x1b[?25h");
    let paste_off = at("\x1b[?2004l");
    let previous = at("<previous hook ran: ");
    assert!(
        leave_alternate < previous && show_cursor < previous && paste_off < previous,
        "restored before the previous hook ran: {stdout:?}"
    );
    assert!(stdout[previous..].contains("a test panic"), "{stdout:?}");
}

#[test]
fn the_restoring_sequences_leave_the_alternate_screen_and_show_the_cursor() {
    let mut out = Vec::new();
    terminal::write_restore(&mut out).unwrap();
    assert_eq!(out, b"\x1b[?2004l\x1b[?1049l\x1b[?25h");
}
