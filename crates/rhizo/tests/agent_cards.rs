//! Agent cards with real processes on 127.0.0.1: a node sets a card, and a node that has never
//! had contact with it finds it by skill through the DHT (provider records, then the card
//! record, validated); a contact asks for it over MLS (`rhizo agents ask`,
//! `capability_query`/`capability_answer`); the card routes' errors.

mod agent_common;

use std::{path::Path, time::Duration};

use anyhow::{Context, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
const TIMEOUT: Duration = Duration::from_secs(90);

fn delete(node: &TestNode, path: &str) -> u16 {
    let addr = node.api_addr().expect("running");
    reqwest::blocking::Client::new()
        .delete(format!("http://{addr}{path}"))
        .bearer_auth(node.api_token().expect("token"))
        .send()
        .expect("DELETE")
        .status()
        .as_u16()
}

fn code(body: &str) -> String {
    serde_json::from_str::<Value>(body).expect("JSON error")["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn a_stranger_finds_an_agent_by_skill_through_the_dht() {
    let mut boot = TestNode::init(Path::new(BIN), "boot").unwrap();
    boot.start(&[]).unwrap();
    let bootstrap = vec!["--bootstrap".to_string(), boot.listen_addr().unwrap()];
    let mut alice = TestNode::init(Path::new(BIN), "alice").unwrap();
    let mut carol = TestNode::init(Path::new(BIN), "carol").unwrap();
    alice.start(&bootstrap).unwrap();
    carol.start(&bootstrap).unwrap();
    let logs = |nodes: &[&TestNode]| nodes.iter().map(|n| n.logs()).collect::<String>();
    // Alice and carol both know two peers, so the card and the skill reach the DHT.
    for node in [&alice, &carol] {
        wait_for(TIMEOUT, "a routing table of two peers", || {
            (node.routing_table_peers().len() >= 2).then_some(())
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", logs(&[&boot, &alice, &carol])));
    }

    // Alice has no card yet; a card that breaks a rule is refused and changes nothing.
    let (status, body) = alice
        .api_raw("/v1/agent/card", Some(&alice.api_token().unwrap()))
        .unwrap();
    assert_eq!((status, code(&body).as_str()), (404, "NO_CARD"), "{body}");
    let (status, body) = alice
        .api_post_raw("/v1/agent/card", &json!({"name": "Echo", "skills": []}))
        .unwrap();
    assert_eq!((status, code(&body).as_str()), (400, "BAD_INPUT"), "{body}");
    assert!(body.contains("1 to 32 skills"), "{body}");

    // Alice becomes an agent with skill echo.v1.
    let card = json!({
        "name": "Echo", "description": "repeats its input", "version": "1.0",
        "skills": [{"id": "echo.v1", "name": "Echo", "tags": ["text"]}]
    });
    let set = alice.api_post("/v1/agent/card", &card).unwrap();
    assert_eq!(set["card_version"], 1, "{set}");
    assert_eq!(set["uid"], alice.uid(), "{set}");
    let shown = alice.api_get("/v1/agent/card").unwrap();
    assert_eq!(
        (shown["name"].clone(), shown["version"].clone()),
        (json!("Echo"), json!("1.0"))
    );

    // Carol (no contact with alice) finds her by the skill, with the validated card.
    let found = wait_for(TIMEOUT, "carol to find alice by echo.v1", || {
        let found = carol.api_get("/v1/agents/find?skill=echo.v1").ok()?;
        found
            .as_array()?
            .iter()
            .find(|a| a["uid"] == alice.uid())
            .cloned()
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&[&boot, &alice, &carol])));
    assert_eq!(found["card"]["name"], "Echo", "{found}");
    assert_eq!(found["card"]["skills"][0]["id"], "echo.v1", "{found}");
    assert_eq!(found["card_version"], 1, "{found}");
    assert_eq!(found["name"], Value::Null, "not a contact: {found}");
    assert_eq!(found["liveness"], "unknown", "{found}");
    assert_eq!(found["breaker"], "closed", "{found}");
    // Nobody offers another skill.
    let none = carol.api_get("/v1/agents/find?skill=nobody.v1").unwrap();
    assert_eq!(none, json!([]));

    // The card is cached: listed, and shown by UID.
    let agents = carol.api_get("/v1/agents").unwrap();
    assert!(
        agents
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["uid"] == alice.uid()),
        "{agents}"
    );
    let one = carol
        .api_get(&format!("/v1/agents/{}", alice.uid()))
        .unwrap();
    assert_eq!(one["card"]["name"], "Echo", "{one}");

    // A new version replaces it: refresh reads it from the DHT.
    let mut card2 = card.clone();
    card2["description"] = json!("repeats its input, twice");
    assert_eq!(
        alice.api_post("/v1/agent/card", &card2).unwrap()["card_version"],
        2
    );
    wait_for(TIMEOUT, "carol to see version 2", || {
        let one = carol
            .api_get(&format!("/v1/agents/{}?refresh=1", alice.uid()))
            .ok()?;
        (one["card_version"] == 2).then_some(one)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", logs(&[&boot, &alice, &carol])));

    // Errors: a bad skill id, an agent nobody knows, removing a card twice.
    let token = carol.api_token().unwrap();
    let (status, body) = carol
        .api_raw("/v1/agents/find?skill=Not%20A%20Skill", Some(&token))
        .unwrap();
    assert_eq!((status, code(&body).as_str()), (400, "BAD_INPUT"), "{body}");
    let stranger = rhizo_core::RootKey::from_bytes(&[77; 32]).public().uid();
    let (status, body) = carol
        .api_raw(&format!("/v1/agents/{stranger}"), Some(&token))
        .unwrap();
    assert_eq!(
        (status, code(&body).as_str()),
        (404, "UNKNOWN_AGENT"),
        "{body}"
    );
    let (status, body) = carol.api_raw("/v1/agents/nobody", Some(&token)).unwrap();
    assert_eq!(
        (status, code(&body).as_str()),
        (404, "UNKNOWN_AGENT"),
        "{body}"
    );
    assert_eq!(delete(&alice, "/v1/agent/card"), 204);
    assert_eq!(delete(&alice, "/v1/agent/card"), 404);
    let (status, _) = alice
        .api_raw("/v1/agent/card", Some(&alice.api_token().unwrap()))
        .unwrap();
    assert_eq!(status, 404);
}

/// `rhizo agents ask` / `GET /v1/agents/{who}?live=1`: the client asks its contact for the card
/// over their conversation and gets the answer (signed card, validated) within the bound; a
/// contact without a card says so; a name that is no contact is a clear error.
#[test]
fn a_contact_answers_a_capability_query_end_to_end() {
    let net = agent_common::Net::start("ask", 1).expect("start the nodes");
    if let Err(e) = ask_scenario(&net) {
        panic!("{e:#}\n{}", net.logs());
    }
}

fn ask_scenario(net: &agent_common::Net) -> anyhow::Result<()> {
    net.befriend()?;
    let (client, worker) = (&net.client, net.worker());
    let token = client.api_token()?;
    // Not an agent yet: it answers that it has no card.
    let (status, body) = client.api_raw("/v1/agents/worker?live=1", Some(&token))?;
    ensure!(
        (status, code(&body).as_str()) == (404, "UNKNOWN_AGENT") && body.contains("no agent card"),
        "{status} {body}"
    );
    // It becomes an agent: asked through the CLI, the client gets its card end to end.
    let card = json!({"name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]});
    ensure!(worker.api_post("/v1/agent/card", &card)?["card_version"] == 1);
    let out = client.cli(&["agents", "ask", "worker", "--json"])?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let view: Value = serde_json::from_slice(&out.stdout).context("ask --json")?;
    ensure!(
        view["uid"] == worker.uid()
            && view["name"] == "worker"
            && view["card"]["name"] == "Echo"
            && view["card_version"] == 1,
        "{view}"
    );
    // A new version is what the next question answers.
    let card = json!({"name": "Echo 2", "skills": [{"id": "echo.v1", "name": "Echo"}]});
    ensure!(worker.api_post("/v1/agent/card", &card)?["card_version"] == 2);
    let view = client.api_get("/v1/agents/worker?live=1")?;
    ensure!(
        view["card"]["name"] == "Echo 2" && view["card_version"] == 2,
        "{view}"
    );
    // A name that is no contact: the question cannot go anywhere.
    let (status, body) = client.api_raw("/v1/agents/nobody?live=1", Some(&token))?;
    ensure!(
        (status, code(&body).as_str()) == (404, "UNKNOWN_CONTACT"),
        "{status} {body}"
    );
    let out = client.cli(&["agents", "ask", "nobody"])?;
    ensure!(!out.status.success(), "asking nobody succeeded");
    ensure!(
        String::from_utf8_lossy(&out.stderr).contains("not a contact"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
