//! The screens over the conversation: help, ticket QR, requests, safety number, devices,
//! agents and tasks.

use ratatui::{
    Frame,
    layout::Rect,
    text::Line as TextLine,
    widgets::{Block, Paragraph, Wrap},
};
use serde_json::Value;

use super::{commands::HELP, model::Overlay, model::short, view::fit};

/// Draws `overlay` in `area` (already cleared).
pub(crate) fn draw(frame: &mut Frame<'_>, overlay: &Overlay, area: Rect) {
    let (title, rows) = match overlay {
        Overlay::Help => ("Help (Esc closes)", help()),
        Overlay::Ticket { ticket, qr } => (
            "Your contact ticket (Esc closes)",
            ticket_rows(ticket, qr, area),
        ),
        Overlay::Requests { people, groups } => ("Requests (Esc closes)", requests(people, groups)),
        Overlay::Safety(contact) => ("Safety number (Esc closes)", safety(contact)),
        Overlay::Devices(devices) => ("Your devices (Esc closes)", devices_rows(devices)),
        Overlay::Agents { agents, tasks } => {
            ("Agents and tasks (Esc closes)", agents_rows(agents, tasks))
        }
    };
    let lines: Vec<TextLine<'_>> = rows.into_iter().map(TextLine::from).collect();
    frame.render_widget(
        Paragraph::new(lines)
            .block(Block::bordered().title(title))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn help() -> Vec<String> {
    HELP.iter()
        .map(|(keys, what)| format!("{keys:<22} {what}"))
        .collect()
}

/// The QR code when it fits, else the ticket and how large the terminal must be.
fn ticket_rows(ticket: &str, qr: &str, area: Rect) -> Vec<String> {
    let qr_rows: Vec<&str> = qr.lines().collect();
    let qr_width = qr_rows.iter().map(|r| r.chars().count()).max().unwrap_or(0);
    let room_w = usize::from(area.width.saturating_sub(2));
    let room_h = usize::from(area.height.saturating_sub(2));
    let ticket_h = ticket.chars().count().div_ceil(room_w.max(1));
    let mut rows = Vec::new();
    if qr_width <= room_w && qr_rows.len() + ticket_h < room_h {
        rows.extend(qr_rows.iter().map(|r| (*r).to_string()));
    } else {
        rows.push(format!(
            "The QR code needs {}×{} characters: enlarge the terminal to scan it.",
            qr_width + 2,
            qr_rows.len() + ticket_h + 3
        ));
        rows.push("Share the ticket text instead:".into());
    }
    rows.push(ticket.to_string());
    rows
}

fn requests(
    people: &[rhizo_node::messaging::RequestView],
    groups: &[rhizo_node::messaging::GroupRequestView],
) -> Vec<String> {
    let mut rows = vec!["Message requests (/accept N [NAME], /decline N):".to_string()];
    if people.is_empty() {
        rows.push("  none".into());
    }
    for (i, r) in people.iter().enumerate() {
        let name = r.name.as_deref().unwrap_or("(no public name)");
        rows.push(format!(
            "  {}. {name} {} · {} message(s)",
            i + 1,
            r.uid,
            r.envelopes
        ));
        rows.push(match &r.safety_number {
            Some(n) => format!("     safety number {n}"),
            None => "     identity not found in the DHT yet".into(),
        });
    }
    rows.push(String::new());
    rows.push("Group invitations (/join ID, /refuse ID):".into());
    if groups.is_empty() {
        rows.push("  none".into());
    }
    for g in groups {
        let from = g.from_name.clone().unwrap_or_else(|| short(&g.from));
        rows.push(format!(
            "  id {}: {} from {from}, {} member(s)",
            g.id, g.name, g.members
        ));
    }
    rows
}

fn safety(c: &rhizo_node::messaging::ContactView) -> Vec<String> {
    vec![
        format!("Contact:      {}", c.name),
        format!("UID:          {}", c.uid),
        format!("Fingerprint:  {}", c.fingerprint),
        format!("Devices:      {}", c.devices.len()),
        "Safety number (the same on both sides):".into(),
        format!("  {}", c.safety_number),
        String::new(),
        if c.verified {
            "✓ verified".into()
        } else {
            "✗ not verified: compare the number with them in person or on a call, then press v"
                .into()
        },
    ]
}

fn devices_rows(devices: &[rhizo_node::devices::DeviceView]) -> Vec<String> {
    let mut rows = Vec::new();
    for d in devices {
        let name = if d.this_device {
            "this device".to_string()
        } else {
            d.name.clone().unwrap_or_else(|| "(unnamed)".into())
        };
        let seen = d
            .last_seen
            .map_or_else(|| "never seen".into(), |s| format!("last seen {s}"));
        rows.push(format!("{name}: {} · {seen}", d.fingerprint));
        rows.push(format!("  {}", d.id));
    }
    rows.push(String::new());
    rows.push("Link a device: /link TICKET [NAME]; revoke one: /revoke NAME (or its id).".into());
    rows
}

fn text_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

fn agents_rows(agents: &[Value], tasks: &[Value]) -> Vec<String> {
    let mut rows = vec!["Agents (name · liveness · skills):".to_string()];
    if agents.is_empty() {
        rows.push("  none known".into());
    }
    for a in agents {
        let who = a["name"]
            .as_str()
            .map_or_else(|| short(text_of(a, "uid")), String::from);
        let skills: Vec<&str> = a["card"]["skills"]
            .as_array()
            .map(|s| s.iter().filter_map(|s| s["id"].as_str()).collect())
            .unwrap_or_default();
        rows.push(format!(
            "  {who} · {} · {}",
            text_of(a, "liveness"),
            skills.join(", ")
        ));
    }
    rows.push(String::new());
    rows.push("Tasks, newest first (id · side · state · peer):".into());
    if tasks.is_empty() {
        rows.push("  none".into());
    }
    for t in tasks {
        rows.push(format!(
            "  {} · {} · {} · {}",
            short(text_of(t, "id")),
            text_of(t, "side"),
            t["status"]["state"].as_str().unwrap_or("-"),
            t["peer_name"]
                .as_str()
                .map_or_else(|| short(text_of(t, "peer")), |n| fit(n, 16))
        ));
    }
    rows
}
