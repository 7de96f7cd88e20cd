//! Drawing the state: conversation list (left), the conversation (right), the input line and
//! the status bar (bottom), and the overlays. Every state mark is a symbol, never colour only.

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Modifier, Style},
    text::Line as TextLine,
    widgets::{Block, Clear, Paragraph},
};

use super::{
    app::App,
    model::{ConvKey, FileLine, Line, Mark, Upload, presence_mark},
    overlays,
};

/// Width of the conversation list, borders included.
const LIST_WIDTH: u16 = 24;
/// Cells of a file's progress bar (between its brackets).
const BAR_CELLS: usize = 10;
/// A file's progress row starts under the text, past the time (`HH:MM `).
const BAR_INDENT: &str = "      ";

/// Draws the whole screen.
pub(crate) fn draw(frame: &mut Frame<'_>, app: &App) {
    let [main, input, status] = Layout::vertical([
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [list, conversation] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH), Constraint::Min(10)]).areas(main);
    draw_list(frame, app, list);
    draw_conversation(frame, app, conversation);
    draw_input(frame, app, input);
    draw_status(frame, app, status);
    if let Some(overlay) = &app.overlay {
        let area = centered(frame.area());
        frame.render_widget(Clear, area);
        overlays::draw(frame, overlay, area);
    }
}

/// The overlay's area: the screen less a margin.
fn centered(area: Rect) -> Rect {
    let w = area.width.saturating_sub(4).max(area.width.min(20));
    let h = area.height.saturating_sub(2).max(area.height.min(5));
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

fn draw_list(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let width = usize::from(area.width.saturating_sub(2));
    let rows: Vec<TextLine<'_>> = app
        .conversations
        .iter()
        .map(|c| {
            let selected = app.selected.as_ref() == Some(&c.key);
            let kind = match c.key {
                ConvKey::Contact(_) => '@',
                ConvKey::Group(_) => '#',
            };
            let unread = if c.unread > 0 {
                format!(" ({})", c.unread)
            } else {
                String::new()
            };
            let marker = if selected { '▶' } else { ' ' };
            let presence = presence_mark(c.presence);
            let room = width.saturating_sub(2 + presence.chars().count() + unread.chars().count());
            let title = fit(&c.title, room);
            let text = format!("{marker}{kind}{title:<room$}{presence}{unread}");
            let style = if selected {
                Style::new().add_modifier(Modifier::REVERSED)
            } else if c.unread > 0 {
                Style::new().add_modifier(Modifier::BOLD)
            } else {
                Style::new()
            };
            TextLine::styled(text, style)
        })
        .collect();
    let rows = if rows.is_empty() {
        vec![
            TextLine::from("no contacts yet:"),
            TextLine::from("F1 for help"),
        ]
    } else {
        rows
    };
    frame.render_widget(
        Paragraph::new(rows).block(Block::bordered().title("Conversations")),
        area,
    );
}

/// `text` cut to `max` characters (with `…` when cut).
pub(crate) fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The title of the open conversation: its name, and whether the contact is verified.
fn conversation_title(app: &App) -> String {
    match &app.selected {
        None => "no conversation".into(),
        Some(ConvKey::Contact(name)) => {
            let verified = app.contacts.get(name).is_some_and(|c| c.verified);
            if verified {
                format!("@{name} [✓ verified]")
            } else {
                format!("@{name} [not verified: F6]")
            }
        }
        Some(key @ ConvKey::Group(_)) => {
            let title = app
                .conversations
                .iter()
                .find(|c| &c.key == key)
                .map_or("group", |c| c.title.as_str());
            format!("#{title}")
        }
    }
}

fn draw_conversation(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let mut block = Block::bordered().title(conversation_title(app));
    if let Some(typing) = app.typing_line() {
        block = block.title_bottom(format!(" {typing} "));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let width = usize::from(inner.width);
    let mut rows: Vec<TextLine<'_>> = Vec::new();
    if let Some(ConvKey::Contact(name)) = &app.selected
        && app.key_changed.contains(name)
    {
        let banner = format!(
            "⚠ {name}'s keys changed (a new device): compare the safety number (F6, v \
             verifies); sending asks first"
        );
        for part in wrap(&banner, width) {
            rows.push(TextLine::styled(
                part,
                Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD),
            ));
        }
    }
    let height = usize::from(inner.height).saturating_sub(rows.len());
    let uploads = app.uploads.iter().filter(|u| match &app.selected {
        Some(ConvKey::Contact(name)) => &u.to == name,
        _ => false,
    });
    let mut body: Vec<String> = app
        .lines
        .iter()
        .flat_map(render_rows)
        .chain(uploads.flat_map(upload_rows))
        .flat_map(|row| wrap(&row, width))
        .collect();
    let end = body.len().saturating_sub(app.scroll.min(body.len()));
    body.truncate(end);
    let start = body.len().saturating_sub(height);
    // Newest at the bottom, as chats are read.
    let blank = height.saturating_sub(body.len() - start);
    rows.extend(std::iter::repeat_n(TextLine::from(""), blank));
    rows.extend(body.drain(start..).map(TextLine::from));
    frame.render_widget(Paragraph::new(rows), inner);
}

/// A line's rows: [`render_line`], and for a file its progress bar under it.
pub(crate) fn render_rows(line: &Line) -> Vec<String> {
    let mut rows = vec![render_line(line)];
    rows.extend(line.file.as_ref().map(progress_row));
    rows
}

/// A file of ours being encrypted to send: a line without a time yet, and its progress bar.
fn upload_rows(upload: &Upload) -> [String; 2] {
    [
        format!("--:-- me: {}", file_text(&upload.file)),
        progress_row(&upload.file),
    ]
}

/// `file NAME (SIZE)` (no size before it is known).
fn file_text(file: &FileLine) -> String {
    if file.size == 0 && file.state == "encrypting" {
        format!("file {}", file.name)
    } else {
        format!(
            "file {} ({})",
            file.name,
            crate::cmd::files::human_size(file.size)
        )
    }
}

/// `[██████░░░░]  60 % downloading`: the bar, the percent and the state in words (never
/// colour only).
pub(crate) fn progress_row(file: &FileLine) -> String {
    let state = if file.state == "failed" {
        "✗ failed"
    } else {
        file.state.as_str()
    };
    format!(
        "{BAR_INDENT}{} {:>3} % {state}",
        progress_bar(file.percent, BAR_CELLS),
        file.percent
    )
}

/// `percent` as `cells` cells between brackets: `█` held, `░` still to come.
pub(crate) fn progress_bar(percent: u8, cells: usize) -> String {
    let filled = usize::from(percent.min(100)) * cells / 100;
    format!("[{}{}]", "█".repeat(filled), "░".repeat(cells - filled))
}

/// `HH:MM sender: text mark`, the time in UTC; a file's line names the file before its caption.
pub(crate) fn render_line(line: &Line) -> String {
    let secs = line.sent_at.div_euclid(1000);
    let time = format!("{:02}:{:02}", (secs / 3600) % 24, (secs / 60) % 60);
    let mut mark = line.mark.symbol().to_string();
    if let (Some((delivered, total)), Mark::Sent | Mark::Queued) = (line.progress, line.mark) {
        mark = format!("{mark} {delivered}/{total}");
    }
    let text = match &line.file {
        Some(file) if line.text.is_empty() => file_text(file),
        Some(file) => format!("{} {}", file_text(file), line.text),
        None => line.text.clone(),
    };
    if mark.is_empty() {
        format!("{time} {}: {text}", line.from)
    } else {
        format!("{time} {}: {text} {mark}", line.from)
    }
}

/// Cuts `text` into rows of at most `width` characters.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    chars.chunks(width).map(|c| c.iter().collect()).collect()
}

fn draw_input(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let width = usize::from(area.width.saturating_sub(2));
    let count = app.input.chars().count();
    let shown: String = app
        .input
        .chars()
        .skip(count.saturating_sub(width))
        .collect();
    let cursor = u16::try_from(shown.chars().count()).unwrap_or(0) + 2;
    frame.render_widget(Paragraph::new(format!("› {shown}")), area);
    if app.overlay.is_none() {
        frame.set_cursor_position((area.x + cursor.min(area.width.saturating_sub(1)), area.y));
    }
}

fn draw_status(frame: &mut Frame<'_>, app: &App, area: Rect) {
    let s = &app.status;
    let mut text = format!(
        "peers {} · {} · held {} · outbox {} · requests {}",
        s.peers, s.reachability, s.held, s.outbox, s.requests
    );
    match &app.notice {
        Some(notice) => text = format!("{text} │ {notice}"),
        None => text.push_str(" │ F1 help"),
    }
    let text = fit(&text, usize::from(area.width));
    frame.render_widget(
        Paragraph::new(text).style(Style::new().add_modifier(Modifier::REVERSED)),
        area,
    );
}
