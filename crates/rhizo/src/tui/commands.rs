//! The input line's `/` commands.

use super::{app::App, model::ConvKey, model::Overlay, net::Command};

/// What `/help` and F1 list (also the help overlay's text).
pub(crate) const HELP: &[(&str, &str)] = &[
    ("Enter", "send the text to the open conversation"),
    ("Tab / Shift-Tab", "next / previous conversation"),
    ("↑ / ↓", "input history"),
    ("PgUp / PgDn", "scroll the conversation"),
    ("F1", "this help"),
    ("F2 /ticket", "your contact ticket as a QR code"),
    ("F3 /requests", "message requests and group invitations"),
    ("F4 /devices", "your devices"),
    ("/link TICKET [NAME]", "link a new device from its ticket"),
    ("/revoke DEVICE", "revoke a device (its name or id)"),
    ("F5 /agents", "agents and tasks"),
    (
        "F6 /verify",
        "safety number of the open contact (v: verified)",
    ),
    ("F7 /file PATH", "send a file to the open contact"),
    ("/add TICKET", "add a contact (or paste the ticket, Enter)"),
    ("/accept WHO [NAME]", "accept a message request"),
    ("/decline WHO", "decline a message request"),
    (
        "/join ID, /refuse ID",
        "accept / decline a group invitation",
    ),
    ("/group NAME M1 M2…", "create a group with members"),
    ("/members M1 M2…", "add members to the open group"),
    ("Esc", "close a screen; cancel a send"),
    ("Ctrl-C, Ctrl-Q, /quit", "leave"),
];

/// Runs `/command args…` (without the slash).
pub(crate) fn run(app: &mut App, line: &str) {
    let mut words = line.split_whitespace();
    let name = words.next().unwrap_or_default();
    let args: Vec<String> = words.map(String::from).collect();
    let command = match (name, args.as_slice()) {
        ("quit" | "q", _) => {
            app.quit = true;
            return;
        }
        ("help", _) => {
            app.overlay = Some(Overlay::Help);
            return;
        }
        ("verify", _) => {
            app.on_key(crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::F(6),
            ));
            return;
        }
        ("file", path) if !path.is_empty() => {
            app.send_file(path.join(" "));
            return;
        }
        ("ticket" | "qr", _) => Command::ShowTicket,
        ("requests", _) => Command::ShowRequests,
        ("devices", _) => Command::ShowDevices,
        ("link", [ticket]) => Command::LinkDevice(ticket.clone(), None),
        ("link", [ticket, name]) => Command::LinkDevice(ticket.clone(), Some(name.clone())),
        ("revoke", [device]) => Command::RevokeDevice(device.clone()),
        ("agents" | "tasks", _) => Command::ShowAgents,
        ("add", [ticket]) => Command::AddContact(ticket.clone()),
        ("accept", [who]) => Command::Accept(request(app, who), None),
        ("accept", [who, name]) => Command::Accept(request(app, who), Some(name.clone())),
        ("decline", [who]) => Command::Decline(request(app, who)),
        ("join", [id]) | ("refuse", [id]) => {
            let Ok(id) = id.parse::<i64>() else {
                app.notice = Some(format!("not an invitation id: {id} (F3 lists them)"));
                return;
            };
            if name == "join" {
                Command::AcceptGroup(id)
            } else {
                Command::DeclineGroup(id)
            }
        }
        ("group", [group, members @ ..]) if !members.is_empty() => {
            Command::CreateGroup(group.clone(), members.to_vec())
        }
        ("members", members) if !members.is_empty() => match &app.selected {
            Some(ConvKey::Group(id)) => Command::AddMembers(id.clone(), members.to_vec()),
            _ => {
                app.notice = Some("open a group first".into());
                return;
            }
        },
        _ => {
            app.notice = Some(format!("unknown command or arguments: /{line} (F1: help)"));
            return;
        }
    };
    app.queue(command);
}

/// A request's number in the list last shown (F3) names its UID; anything else is a UID or a
/// name as typed.
fn request(app: &App, who: &str) -> String {
    who.parse::<usize>()
        .ok()
        .and_then(|n| app.request_uids.get(n.checked_sub(1)?))
        .cloned()
        .unwrap_or_else(|| who.to_string())
}
