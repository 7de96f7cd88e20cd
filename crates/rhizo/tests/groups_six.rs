//! The issue's group scenario with six real `rhizo` processes on 127.0.0.1: three admins
//! (alice, bob, carol) and three members (dave, erin, frank); 50 texts from several senders.
//! Frank's node is stopped during two commits (a rename, erin's removal) and 20 texts (from the
//! four who stay members), then
//! restarted: he gets all of it from his DHT mailbox, once, each sender's texts in order. Erin,
//! removed while her node stays up, gets nothing sent after her removal and cannot send. Every
//! member ends with the same epoch and safety fingerprint, every text once. Bob's `/v1/events`
//! stream shows the group's events. Then the admins leave: bob (one of two), and alice, the
//! last, whose role goes to the longest-standing member first.
//!
//! ```text
//!  alice (admin, bootstrap) ◀──▶ bob, carol (admins), dave, erin, frank (members)
//!  everyone is alice's contact (so joins at once); group frames go to every member device
//!  directly, and to a member's mailbox when its node is down
//! ```

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

mod agent_common;
mod groups_common;
use agent_common::Events;
use groups_common::*;

/// The most events the collector keeps (a test run shows a few hundred).
const MAX_EVENTS: usize = 10_000;
/// One read of the event stream waits at most this long (keep-alives come every 15 s).
const EVENT_READ_TIMEOUT: Duration = Duration::from_secs(30);

const NAMES: [&str; 6] = ["alice", "bob", "carol", "dave", "erin", "frank"];
const ALICE: usize = 0;
const BOB: usize = 1;
const CAROL: usize = 2;
const DAVE: usize = 3;
const ERIN: usize = 4;
const FRANK: usize = 5;

/// A text sent by `sender` in the scenario.
#[derive(Debug, Clone)]
struct Sent {
    sender: usize,
    text: String,
    /// Frank was offline when it was sent.
    frank_away: bool,
    /// Erin had been removed when it was sent.
    after_erin: bool,
}

#[test]
fn six_nodes_three_admins_offline_member_and_removed_member() {
    let mut nodes: Vec<TestNode> = NAMES
        .iter()
        .map(|n| TestNode::init(bin(), n).expect("init"))
        .collect();
    let events = Arc::new(Mutex::new(Vec::new()));
    let result = (|| -> anyhow::Result<()> {
        nodes[ALICE].start(&[])?;
        let boot = boot_args(&nodes[ALICE].listen_addr()?);
        for node in &mut nodes[1..] {
            node.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        }
        for i in 1..NAMES.len() {
            befriend(&nodes[ALICE], "alice", &nodes[i], NAMES[i])?;
        }
        collect_events(&nodes[BOB], Arc::clone(&events))?;
        scenario(&mut nodes, &boot, &events)
    })();
    if let Err(e) = result {
        let refs: Vec<&TestNode> = nodes.iter().collect();
        panic_with_logs(&e, &refs);
    }
}

/// Reads `node`'s event stream on a thread into `into` (bounded) until the stream ends.
fn collect_events(node: &TestNode, into: Arc<Mutex<Vec<Value>>>) -> anyhow::Result<()> {
    let mut stream = Events::open(node)?;
    std::thread::spawn(move || {
        while let Ok(event) = stream.next(EVENT_READ_TIMEOUT, |_| true) {
            let Ok(mut seen) = into.lock() else { return };
            if seen.len() < MAX_EVENTS {
                seen.push(event);
            }
        }
    });
    Ok(())
}

fn scenario(
    nodes: &mut [TestNode],
    boot: &[String],
    events: &Mutex<Vec<Value>>,
) -> anyhow::Result<()> {
    let id = form_group(nodes)?;
    let mut sent = Vec::new();

    // 30 texts while everyone is up: each of the six sends five.
    let all: Vec<usize> = (0..NAMES.len()).collect();
    send_round(nodes, &id, &all, 30, "online", &mut sent)?;
    wait_everyone_has(nodes, &id, &sent, &all)?;

    // Frank's node stops; two commits (a rename; carol removes erin) and 20 texts meanwhile.
    nodes[FRANK].stop()?;
    let up = [ALICE, BOB, CAROL, DAVE, ERIN];
    cli(&nodes[ALICE], &["group", "rename", &id, "six renamed"])?;
    for &i in &up[1..] {
        wait_group(&nodes[i], &id, "the rename", |g| g["name"] == "six renamed")?;
    }
    // Erin sends too while frank is away: frank may apply her removal (fetched from his
    // mailbox) before her texts, and still shows them (sealed before the removal, in an older
    // epoch: docs/protocol.md §29).
    let senders = [ALICE, BOB, CAROL, DAVE, ERIN];
    send_round(nodes, &id, &senders, 10, "away", &mut sent)?;
    // The members that stay up have them before she is removed (a text still in flight when
    // erin's node applies the removal is refused there: she is out).
    wait_everyone_has(nodes, &id, &sent, &up)?;
    let erin_uid = nodes[ERIN].uid().to_string();
    cli(&nodes[CAROL], &["group", "remove", &id, &erin_uid])?;
    wait_group(&nodes[ERIN], &id, "erin told she was removed", |g| {
        g["status"] == "removed"
    })?;
    let remaining: Vec<usize> = vec![ALICE, BOB, CAROL, DAVE];
    for &i in &remaining {
        wait_group(&nodes[i], &id, "erin gone", |g| g["members"] == 5)?;
    }
    // Erin's node refuses to send in a group she is out of.
    let (status, answer) = nodes[ERIN].api_post_raw(
        &format!("/v1/groups/{id}/messages"),
        &json!({"text": "erin after removal"}),
    )?;
    ensure!(
        status == 409 && answer.contains("NOT_IN_GROUP"),
        "erin's send: {status} {answer}"
    );
    send_round(nodes, &id, &remaining, 10, "after erin", &mut sent)?;
    for s in sent.iter_mut().skip(30) {
        s.frank_away = true;
    }
    for s in sent.iter_mut().skip(40) {
        s.after_erin = true;
    }
    ensure!(sent.len() == 50, "{} texts sent", sent.len());
    wait_everyone_has(nodes, &id, &sent, &remaining)?;
    wait_everyone_has(nodes, &id, &sent, &[ERIN])?;

    // Frank comes back: everything from his mailbox, once, in each sender's order.
    nodes[FRANK].start(boot)?;
    let members: Vec<usize> = vec![ALICE, BOB, CAROL, DAVE, FRANK];
    wait_everyone_has(nodes, &id, &sent, &[FRANK])?;
    wait_group(
        &nodes[FRANK],
        &id,
        "frank sees the rename and erin gone",
        |g| g["name"] == "six renamed" && g["members"] == 5,
    )?;
    check_erin(&nodes[ERIN], &id, &sent)?;
    same_epoch_and_fingerprint(nodes, &id, &members, 5)?;
    delivery_counts(nodes, &id, &sent)?;
    check_events(events, &id, &nodes[ERIN], &nodes[FRANK])?;
    admins_leave(nodes, &id)
}

/// Bob demotes carol, then leaves (an admin, not the last: alice removes him); alice, the last
/// admin, cannot demote herself, and leaving hands her role to the longest-standing member
/// (carol or dave, who joined at the creation; frank came later), who removes her.
fn admins_leave(nodes: &[TestNode], id: &str) -> anyhow::Result<()> {
    let admins_path = format!("/v1/groups/{id}/admins");
    let admin_uids = |node: &TestNode| -> Option<Vec<String>> {
        let admins = node.api_get(&admins_path).ok()?;
        admins
            .as_array()?
            .iter()
            .map(|a| a["uid"].as_str().map(String::from))
            .collect()
    };
    let carol = nodes[CAROL].uid().to_string();
    let shown = cli(&nodes[BOB], &["group", "admin", "remove", id, &carol])?;
    ensure!(shown.contains("is no longer an admin"), "{shown}");
    for &i in &[ALICE, BOB, CAROL, DAVE, FRANK] {
        wait_for(DELIVERY_TIMEOUT, "two admins", || {
            (admin_uids(&nodes[i])?.len() == 2).then_some(())
        })?;
    }
    cli(&nodes[BOB], &["group", "leave", id])?;
    let alice = nodes[ALICE].uid().to_string();
    for &i in &[ALICE, CAROL, DAVE, FRANK] {
        wait_group(&nodes[i], id, "bob gone", |g| g["members"] == 4)
            .with_context(|| states(nodes, id))?;
        wait_for(DELIVERY_TIMEOUT, "alice the only admin", || {
            (admin_uids(&nodes[i])? == [alice.clone()]).then_some(())
        })?;
    }
    let out = nodes[ALICE].cli(&["group", "admin", "remove", id, &alice])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("without an admin"),
        "demoting the last admin: {stderr}"
    );
    cli(&nodes[ALICE], &["group", "leave", id])?;
    let heirs = [
        nodes[CAROL].uid().to_string(),
        nodes[DAVE].uid().to_string(),
    ];
    let rest = [CAROL, DAVE, FRANK];
    for &i in &rest {
        wait_group(&nodes[i], id, "alice gone", |g| g["members"] == 3)?;
        wait_for(DELIVERY_TIMEOUT, "one heir admin", || {
            let admins = admin_uids(&nodes[i])?;
            (admins.len() == 1 && heirs.contains(&admins[0])).then_some(())
        })?;
    }
    let views: Vec<Option<Vec<String>>> = rest.iter().map(|&i| admin_uids(&nodes[i])).collect();
    ensure!(
        views.windows(2).all(|w| w[0] == w[1]),
        "the members disagree on the admin: {views:?}"
    );
    same_epoch_and_fingerprint(nodes, id, &rest, 3)
}

/// Alice creates the group with bob, carol, dave and erin, adds frank, and makes bob (by the
/// CLI) and carol (by the API) admins; everyone sees six members and three admins. The id.
fn form_group(nodes: &[TestNode]) -> anyhow::Result<String> {
    let info = post_when_ready(
        &nodes[ALICE],
        "/v1/groups",
        &json!({"name": "six", "members": ["bob", "carol", "dave", "erin"]}),
    )?;
    let id = info["id"].as_str().context("no group id")?.to_string();
    post_when_ready(
        &nodes[ALICE],
        &format!("/v1/groups/{id}/members"),
        &json!({"members": ["frank"]}),
    )?;
    for node in nodes {
        wait_group(node, &id, "six members", |g| g["members"] == 6)?;
    }
    // A member may not make anyone admin.
    let (status, answer) = nodes[DAVE].api_post_raw(
        &format!("/v1/groups/{id}/admins"),
        &json!({"member": nodes[DAVE].uid()}),
    )?;
    ensure!(
        status == 403 && answer.contains("NOT_ADMIN"),
        "dave promoting himself: {status} {answer}"
    );
    let shown = cli(&nodes[ALICE], &["group", "admin", "add", &id, "bob"])?;
    ensure!(shown.contains("is now an admin"), "{shown}");
    let answer = nodes[ALICE].api_post(
        &format!("/v1/groups/{id}/admins"),
        &json!({"member": "carol"}),
    )?;
    ensure!(answer["changed"] == true, "promoting carol: {answer}");
    for node in nodes {
        wait_for(DELIVERY_TIMEOUT, "three admins", || {
            let admins = node.api_get(&format!("/v1/groups/{id}/admins")).ok()?;
            (admins.as_array()?.len() == 3).then_some(())
        })
        .with_context(|| format!("{} waiting for three admins", node.uid()))?;
    }
    Ok(id)
}

/// Sends `count` texts, the `senders` taking turns, by the API; records them in `sent`.
fn send_round(
    nodes: &[TestNode],
    id: &str,
    senders: &[usize],
    count: usize,
    phase: &str,
    sent: &mut Vec<Sent>,
) -> anyhow::Result<()> {
    for k in 0..count {
        let sender = senders[k % senders.len()];
        let text = format!("{phase} {:02} from {}", sent.len(), NAMES[sender]);
        nodes[sender].api_post(&format!("/v1/groups/{id}/messages"), &json!({"text": text}))?;
        sent.push(Sent {
            sender,
            text,
            frank_away: false,
            after_erin: false,
        });
    }
    Ok(())
}

/// The texts of `sent` each of `at` should have received (not its own; erin nothing after her
/// removal).
fn expected_at(sent: &[Sent], at: usize) -> Vec<&str> {
    sent.iter()
        .filter(|s| s.sender != at && !(at == ERIN && s.after_erin))
        .map(|s| s.text.as_str())
        .collect()
}

/// Waits until every node of `at` has received what it should of `sent`; then checks each text
/// came once and each sender's texts are in the order sent.
fn wait_everyone_has(
    nodes: &[TestNode],
    id: &str,
    sent: &[Sent],
    at: &[usize],
) -> anyhow::Result<()> {
    for &i in at {
        let want = expected_at(sent, i);
        wait_received(&nodes[i], id, &want)?;
        let got = received(&history(&nodes[i], id)?);
        for (sender, name) in NAMES.iter().enumerate() {
            let mine: Vec<&String> = got
                .iter()
                .filter(|t| t.ends_with(&format!(" from {name}")))
                .collect();
            let order: Vec<&str> = sent
                .iter()
                .filter(|s| s.sender == sender && mine.iter().any(|m| **m == s.text))
                .map(|s| s.text.as_str())
                .collect();
            ensure!(
                mine.iter().map(|m| m.as_str()).eq(order.iter().copied()),
                "{}: {}'s texts out of order: {mine:?}",
                NAMES[i],
                name
            );
        }
    }
    Ok(())
}

/// Erin, removed but still running, has none of the texts sent after her removal.
fn check_erin(erin: &TestNode, id: &str, sent: &[Sent]) -> anyhow::Result<()> {
    let got = received(&history(erin, id)?);
    let leaked: Vec<&String> = got
        .iter()
        .filter(|t| sent.iter().any(|s| s.after_erin && s.text == **t))
        .collect();
    ensure!(
        leaked.is_empty(),
        "erin got texts after her removal: {leaked:?}"
    );
    Ok(())
}

/// `rhizo group info --json` shows the same epoch and safety fingerprint, and `count` members,
/// on every member.
fn same_epoch_and_fingerprint(
    nodes: &[TestNode],
    id: &str,
    members: &[usize],
    count: usize,
) -> anyhow::Result<()> {
    wait_for(
        DELIVERY_TIMEOUT,
        "the same epoch and fingerprint everywhere",
        || {
            let infos: Vec<Value> = members
                .iter()
                .map(|&i| cli(&nodes[i], &["group", "info", id, "--json"]).ok())
                .map(|out| serde_json::from_str(&out?).ok())
                .collect::<Option<_>>()?;
            let first = (&infos[0]["epoch"], &infos[0]["fingerprint"]);
            infos
                .iter()
                .all(|info| {
                    (&info["epoch"], &info["fingerprint"]) == first
                        && info["members"].as_array().map(Vec::len) == Some(count)
                })
                .then_some(())
        },
    )
}

/// On each sender, every text reaches `delivered == total` (member devices other than the
/// sender's when it was sent): 5/5 while everyone was up. A text frank fetched from his mailbox
/// is counted once a device answered for it directly: mailbox-fetched group messages send no
/// delivery receipt yet, so those stay at total − 1 (`stored`) until the sender's stored retry
/// (10 minutes) finds frank holding them.
fn delivery_counts(nodes: &[TestNode], id: &str, sent: &[Sent]) -> anyhow::Result<()> {
    for s in sent {
        let total = if s.after_erin { 4 } else { 5 };
        let least = if s.frank_away { total - 1 } else { total };
        wait_for(DELIVERY_TIMEOUT, "the delivery counts", || {
            let list = history(&nodes[s.sender], id).ok()?;
            let m = list.iter().find(|m| m["text"] == s.text.as_str())?;
            let (delivered, of) = (m["delivered"].as_u64()?, m["total"].as_u64()?);
            (of == total && delivered >= least && delivered <= total).then_some(())
        })
        .with_context(|| format!("{:?}", s.text))?;
    }
    Ok(())
}

/// What an expected event must also show.
type EventCheck<'a> = Box<dyn Fn(&Value) -> bool + 'a>;

/// Bob's events: he joined, frank was added, the rename, erin's removal, texts received with
/// their group, and one of his texts delivered 5/5.
fn check_events(
    events: &Mutex<Vec<Value>>,
    id: &str,
    erin: &TestNode,
    frank: &TestNode,
) -> anyhow::Result<()> {
    let (erin, frank) = (erin.uid().to_string(), frank.uid().to_string());
    let wants: [(&str, EventCheck<'_>); 6] = [
        ("group_created", Box::new(|e| e["name"] == "six")),
        ("group_member_added", Box::new(|e| uid_is(e, &frank))),
        ("group_renamed", Box::new(|e| e["name"] == "six renamed")),
        ("group_member_removed", Box::new(|e| uid_is(e, &erin))),
        (
            "group_message_received",
            Box::new(|e| e["text"].is_string()),
        ),
        (
            "group_message_state",
            Box::new(|e| e["delivered"] == 5 && e["total"] == 5),
        ),
    ];
    for (kind, want) in &wants {
        wait_for(Duration::from_secs(10), kind, || {
            let seen = events.lock().ok()?;
            seen.iter()
                .any(|e| e["type"] == *kind && e["group"] == id && want(e))
                .then_some(())
        })
        .map_err(|e| {
            let seen = events.lock().map(|s| s.len()).unwrap_or(0);
            anyhow!("{e:#}: bob's stream ({seen} events) lacks {kind}")
        })?;
    }
    Ok(())
}

/// Whether an event's `uid` names `uid` (events carry UIDs as hex, the CLI as base32).
fn uid_is(event: &Value, uid: &str) -> bool {
    event["uid"].as_str().is_some_and(|u| {
        u == uid
            || uid
                .parse::<rhizo_core::Uid>()
                .is_ok_and(|parsed| hex_of(parsed.as_bytes()) == u)
    })
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every node's view of the group (for a failure's message).
fn states(nodes: &[TestNode], id: &str) -> String {
    nodes
        .iter()
        .zip(NAMES)
        .map(|(node, name)| {
            let info = node
                .api_get(&format!("/v1/groups/{id}"))
                .unwrap_or_default();
            let members: Vec<String> = info["members"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .map(|m| format!("{}:{}", m["name"], m["role"]))
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "{name}: {} epoch {} {} {members:?}",
                info["status"], info["epoch"], info["fingerprint"]
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
