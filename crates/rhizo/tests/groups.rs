//! End to end with real `rhizo` processes on 127.0.0.1: a private group of three. Alice (its
//! admin) creates it with bob, adds carol; each sends one text and every member gets each
//! text exactly once, alice's showing `delivered 2/2`; a rename reaches everyone; carol is
//! removed while her node stays up and does not get the text that follows; bob leaves. A
//! member whose node is down gets the group's text from its DHT mailbox when it comes back. An
//! invitation from someone who is not a contact (who named us by UID) is held until accepted.
//!
//! ```text
//!  alice (admin) ◀──▶ bob        bob and carol are alice's contacts (not each other's):
//!        ▲                       group frames go to every member device directly
//!        └──────────▶ carol
//! ```

use anyhow::{Context, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::json;

mod groups_common;
use groups_common::*;

#[test]
fn three_people_create_add_send_rename_remove() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let mut carol = TestNode::init(bin(), "carol").expect("init carol");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let boot = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        carol.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        befriend(&alice, "alice", &bob, "bob")?;
        befriend(&alice, "alice", &carol, "carol")?;
        scenario(&alice, &bob, &carol)
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob, &carol]);
    }
}

fn scenario(alice: &TestNode, bob: &TestNode, carol: &TestNode) -> anyhow::Result<()> {
    let info = post_when_ready(
        alice,
        "/v1/groups",
        &json!({"name": "friends", "members": ["bob"]}),
    )?;
    let id = info["id"].as_str().context("no group id")?.to_string();
    ensure!(info["role"] == "admin", "alice is not admin: {info}");
    wait_group(bob, &id, "bob joins", |g| g["members"] == 2)?;

    // Carol is added once her KeyPackages are found.
    post_when_ready(
        alice,
        &format!("/v1/groups/{id}/members"),
        &json!({"members": ["carol"]}),
    )?;
    wait_group(carol, &id, "carol joins", |g| g["members"] == 3)?;
    wait_group(bob, &id, "bob sees carol", |g| g["members"] == 3)?;

    // Each sends once: alice by API, bob by the group's name on the CLI (no contact has it),
    // carol with --group.
    alice.api_post(
        &format!("/v1/groups/{id}/messages"),
        &json!({"text": "hello from alice"}),
    )?;
    cli(bob, &["send", "friends", "hello from bob"])?;
    cli(carol, &["send", "--group", &id, "hello from carol"])?;
    wait_received(alice, &id, &["hello from bob", "hello from carol"])?;
    wait_received(bob, &id, &["hello from alice", "hello from carol"])?;
    wait_received(carol, &id, &["hello from alice", "hello from bob"])?;
    wait_for(DELIVERY_TIMEOUT, "alice's text delivered 2/2", || {
        let list = history(alice, &id).ok()?;
        list.iter()
            .any(|m| m["text"] == "hello from alice" && m["delivered"] == 2 && m["total"] == 2)
            .then_some(())
    })?;
    let shown = cli(alice, &["messages", "friends"])?;
    ensure!(
        shown.contains("delivered 2/2"),
        "`rhizo messages friends` does not show delivered 2/2:\n{shown}"
    );

    // A rename reaches everyone.
    cli(alice, &["group", "rename", &id, "best friends"])?;
    for node in [bob, carol] {
        wait_group(node, &id, "the rename", |g| g["name"] == "best friends")?;
    }

    // Carol is removed while her node stays up; the next text does not reach her.
    cli(alice, &["group", "remove", &id, "carol"])?;
    wait_group(carol, &id, "carol told she was removed", |g| {
        g["status"] == "removed"
    })?;
    wait_group(bob, &id, "bob sees carol removed", |g| g["members"] == 2)?;
    alice.api_post(
        &format!("/v1/groups/{id}/messages"),
        &json!({"text": "carol must not read this"}),
    )?;
    wait_received(bob, &id, &["carol must not read this"])?;
    let carol_got = received(&history(carol, &id)?);
    ensure!(
        !carol_got.iter().any(|t| t == "carol must not read this"),
        "a removed member got a later text: {carol_got:?}"
    );
    let listed = cli(carol, &["group", "list", "--json"])?;
    ensure!(listed.contains("removed"), "carol's list: {listed}");

    // Bob leaves: the admin commits his removal.
    cli(bob, &["group", "leave", &id])?;
    wait_group(bob, &id, "bob has left", |g| g["status"] == "left")?;
    wait_group(alice, &id, "alice sees bob gone", |g| g["members"] == 1)?;
    Ok(())
}

#[test]
fn an_offline_member_gets_the_group_text_from_its_mailbox() {
    let mut hub = TestNode::init(bin(), "hub").expect("init hub");
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        hub.start(&[])?;
        let boot = boot_args(&hub.listen_addr()?);
        alice.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        bob.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        let id = pair(&alice, &bob)?;

        bob.stop()?;
        let text = "while bob was away";
        alice.api_post(&format!("/v1/groups/{id}/messages"), &json!({"text": text}))?;
        wait_for(DELIVERY_TIMEOUT, "the text stored on bob's mailbox", || {
            let list = history(&alice, &id).ok()?;
            list.iter()
                .any(|m| m["text"] == text && m["state"] == "stored")
                .then_some(())
        })?;
        bob.start(&boot)?;
        wait_received(&bob, &id, &[text])
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&hub, &alice, &bob]);
    }
}

#[test]
fn an_invitation_from_a_stranger_is_held_until_accepted() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut dave = TestNode::init(bin(), "dave").expect("init dave");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let boot = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        dave.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        // Dave is no contact of alice's: she names him by UID (his records come from the DHT).
        let info = post_when_ready(
            &alice,
            "/v1/groups",
            &json!({"name": "strangers", "members": [dave.uid()]}),
        )?;
        let id = info["id"].as_str().context("no group id")?.to_string();
        let request = wait_for(DELIVERY_TIMEOUT, "dave's group request", || {
            let list = dave.api_get("/v1/group-requests").ok()?;
            list.as_array()?.first().cloned()
        })?;
        ensure!(request["name"] == "strangers", "request: {request}");
        ensure!(request["from"] == alice.uid(), "request: {request}");
        let groups = dave.api_get("/v1/groups")?;
        ensure!(
            groups.as_array().is_some_and(Vec::is_empty),
            "dave joined before accepting: {groups}"
        );
        let request_id = request["id"].as_i64().context("no request id")?.to_string();
        cli(&dave, &["group", "accept", &request_id])?;
        wait_group(&dave, &id, "dave joins", |g| g["members"] == 2)?;
        alice.api_post(
            &format!("/v1/groups/{id}/messages"),
            &json!({"text": "welcome dave"}),
        )?;
        wait_received(&dave, &id, &["welcome dave"])
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &dave]);
    }
}

/// Alice's database is put back from a copy made before she sent two texts (her node was
/// stopped; the copy is older than her last start): at start her node finds it restored, and
/// her next text goes out after a self-update of hers, in a fresh epoch. Bob reads it (sealed
/// with the generation she had used for "one", he would have refused it: its key is gone).
#[test]
fn a_text_after_a_restore_from_an_older_copy_reaches_the_group() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let boot = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start_and_publish(&boot, KEY_PACKAGES_TIMEOUT)?;
        let id = pair(&alice, &bob)?;
        let epoch = |node: &TestNode| -> anyhow::Result<u64> {
            let g = node.api_get(&format!("/v1/groups/{id}"))?;
            g["epoch"].as_u64().context("no epoch")
        };
        let before = epoch(&alice)?;
        alice.stop()?;
        let backup = alice.data_dir().join("backup");
        copy_database(alice.data_dir(), &backup)?;
        alice.start(&[])?;
        for text in ["one", "two"] {
            post_when_ready(
                &alice,
                &format!("/v1/groups/{id}/messages"),
                &json!({"text": text}),
            )?;
        }
        wait_received(&bob, &id, &["one", "two"])?;
        alice.stop()?;
        copy_database(&backup, alice.data_dir())?;
        alice.start(&[])?;
        ensure!(
            epoch(&alice)? == before,
            "alice's database is not the old copy"
        );
        post_when_ready(
            &alice,
            &format!("/v1/groups/{id}/messages"),
            &json!({"text": "three"}),
        )?;
        wait_received(&bob, &id, &["one", "two", "three"])?;
        ensure!(epoch(&bob)? == before + 1, "no fresh epoch at bob's");
        Ok(())
    })();
    if let Err(e) = result {
        panic_with_logs(&e, &[&alice, &bob]);
    }
}

/// Alice and bob befriend; alice makes the group "pair" with bob, who joins: its id.
fn pair(alice: &TestNode, bob: &TestNode) -> anyhow::Result<String> {
    befriend(alice, "alice", bob, "bob")?;
    let info = post_when_ready(
        alice,
        "/v1/groups",
        &json!({"name": "pair", "members": ["bob"]}),
    )?;
    let id = info["id"].as_str().context("no group id")?.to_string();
    wait_group(bob, &id, "bob joins", |g| g["members"] == 2)?;
    Ok(id)
}

/// Copies `rhizo.db` with its WAL from the directory `from` to `to` (the node is stopped).
fn copy_database(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for ext in ["", "-wal", "-shm"] {
        let name = format!("rhizo.db{ext}");
        let _ = std::fs::remove_file(to.join(&name));
        if ext != "-shm" && from.join(&name).exists() {
            std::fs::copy(from.join(&name), to.join(&name))?;
        }
    }
    Ok(())
}
