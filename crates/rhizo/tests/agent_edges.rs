//! Agent protocol edges with real `rhizo` processes on 127.0.0.1 (issue 13's bad-input and
//! duplicate tests that need the real path): the exact bytes of a delivered `task_delegate`
//! envelope, read from the client's SQLite database and sent again over `/rhizo/msg/1`, are
//! refused as a replay and the task runs once; a task from a blocked sender is refused and
//! leaves nothing on the worker; unknown task ids and bad transitions change nothing; forged
//! and malformed agent card records in the DHT are refused and never shown.
//!
//! ```text
//!  client ── task_delegate (envelope E) ──▶ worker        client.db: messages.envelope = E
//!  raw libp2p node ── E again ──▶ worker: receipt REPLAY_DETECTED, the task exists once
//!  mallory (raw libp2p node) ── forged cards ──▶ DHT: refused, or never believed by readers
//! ```

mod agent_common;

use std::{path::Path, time::Duration};

use agent_common::{BIN, Events, Net, TIMEOUT, delegate, states, wait_task};
use anyhow::{Context, anyhow, ensure};
use rhizo_test_utils::{TestNode, wait_for};
use serde_json::{Value, json};

const LOG_TAIL_BYTES: usize = 48 * 1024;

fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// Delegates a task (it starts `submitted`); its id.
fn delegate_id(node: &TestNode, body: &Value) -> anyhow::Result<String> {
    let task = delegate(node, body)?;
    ensure!(task["status"]["state"] == "submitted", "{task}");
    Ok(task["id"].as_str().context("a task has no id")?.to_string())
}

/// The ids of a task list.
fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|l| {
            l.iter()
                .filter_map(|t| t["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// `(status, error code)` of a GET (no `body`) or a POST of `body` on `node`'s API.
fn refusal(node: &TestNode, path: &str, body: Option<Value>) -> anyhow::Result<(u16, String)> {
    let (status, body) = match body {
        None => node.api_raw(path, Some(&node.api_token()?))?,
        Some(body) => node.api_post_raw(path, &body)?,
    };
    let code = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(String::from))
        .unwrap_or(body);
    Ok((status, code))
}

/// The sealed envelope of the `task_delegate` for task `id` that `node` sent, once it is
/// delivered: read from the node's own SQLite database (`messages.envelope`).
fn delivered_delegate_envelope(node: &TestNode, id: &str) -> anyhow::Result<Vec<u8>> {
    let db = rusqlite::Connection::open_with_flags(
        node.data_dir().join("rhizo.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )?;
    db.busy_timeout(Duration::from_secs(5))?;
    // The row's body is the JSON summary (`kind`, `task`) plus the encoded message (`wire`).
    let mut last = None;
    wait_for(TIMEOUT, "the task_delegate to be delivered", || {
        let row: Option<(String, Vec<u8>)> = db
            .query_row(
                "SELECT state, envelope FROM messages
                  WHERE direction = 'out' AND kind = 'agent'
                    AND json_extract(body, '$.kind') = 'task_delegate'
                    AND json_extract(body, '$.task') = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        last = row.as_ref().map(|(state, _)| state.clone());
        row.filter(|(state, _)| state == "delivered")
            .map(|(_, envelope)| envelope)
    })
    .map_err(|e| anyhow!("{e}; the row's state: {last:?}"))
}

/// Sends `payload` once over `/rhizo/msg/1` to `node` from a fresh libp2p node in this
/// process; the response.
fn send_raw(node: &TestNode, payload: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let peer: rhizo_net::PeerId = node.peer_id().parse()?;
    let addr: rhizo_net::Multiaddr = node.listen_addr()?.parse()?;
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let (client, mut events, event_loop) = rhizo_net::start(rhizo_net::NetConfig {
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
            agent_version: "rhizo-test-replayer".into(),
            ..rhizo_net::NetConfig::new(rhizo_net::Keypair::generate_ed25519())
        })?;
        tokio::spawn(event_loop.run());
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        let answer = client
            .send_message(peer, vec![addr], payload)
            .await
            .map_err(|e| anyhow!("sending the envelope again: {e:?}"));
        let _ = client.shutdown().await;
        answer
    })
}

#[test]
fn a_task_envelope_sent_twice_is_refused_as_a_replay_and_the_task_runs_once() {
    use rhizo_core::envelope::{DeliveryReceipt, ErrorCode, ReceiptStatus};
    let net = Net::start("dup", 1).expect("start the nodes");
    let result = (|| -> anyhow::Result<()> {
        net.befriend()?;
        let (client, worker) = (&net.client, net.worker());
        let mut events = Events::open(worker)?;
        let id = delegate_id(client, &json!({"to": "worker", "text": "run me once"}))?;
        let received = |e: &Value| e["type"] == "task_received" && e["task_id"] == id.as_str();
        events.collect_until(TIMEOUT, received)?;
        let envelope = delivered_delegate_envelope(client, &id)?;

        // The worker claims it; a bad transition (back to `submitted`) changes nothing.
        let claimed = worker.api_post("/v1/agent/tasks/next", &json!({}))?;
        ensure!(claimed["id"] == id.as_str(), "claimed {claimed}");
        let (status, answer) = worker.api_post_raw(
            &format!("/v1/agent/tasks/{id}"),
            &json!({"state": "submitted"}),
        )?;
        ensure!(
            status == 409 && answer.contains("BAD_TRANSITION"),
            "{status} {answer}"
        );

        // The same envelope again, byte for byte: a signed receipt saying it is a replay.
        let response = send_raw(worker, envelope)?;
        let (&kind, body) = response.split_first().context("an empty response")?;
        ensure!(kind == 1, "not a receipt: {response:?}");
        let receipt = DeliveryReceipt::decode(body)?;
        ensure!(
            receipt.entries.len() == 1
                && receipt.entries[0].status == ReceiptStatus::Rejected(ErrorCode::ReplayDetected),
            "receipt entries: {:?}",
            receipt.entries.iter().map(|e| e.status).collect::<Vec<_>>()
        );

        // The task exists once on the worker, still working; nothing new to claim.
        let live = worker.api_get("/v1/agent/tasks")?;
        ensure!(ids(&live) == [id.clone()], "worker tasks: {live}");
        let all = worker.api_get("/v1/tasks?side=worker")?;
        ensure!(ids(&all) == [id.clone()], "worker tasks: {all}");
        let (status, _) = worker.api_post_raw("/v1/agent/tasks/next", &json!({}))?;
        ensure!(status == 204, "a second claim found a task: {status}");
        let shown = worker.api_get(&format!("/v1/tasks/{id}"))?;
        ensure!(
            states(&shown) == ["submitted", "working"],
            "worker history {:?}",
            states(&shown)
        );

        // Completed once; a finished task then moves nowhere and nothing changes on either side.
        worker.api_post(
            &format!("/v1/agent/tasks/{id}"),
            &json!({"state": "completed", "artifacts": [{"artifact_id": "r", "parts": [{"text": "ran once"}]}]}),
        )?;
        let done = wait_task(client, &id, "completed")?;
        // `working` is not sent when `completed` follows while it still waits in the outbox.
        let history = states(&done);
        ensure!(
            history == ["submitted", "working", "completed"]
                || history == ["submitted", "completed"],
            "client history {:?}",
            history
        );
        let before = worker.api_get(&format!("/v1/tasks/{id}"))?;
        let (status, answer) = worker.api_post_raw(
            &format!("/v1/agent/tasks/{id}"),
            &json!({"state": "working"}),
        )?;
        ensure!(
            status == 409 && answer.contains("BAD_TRANSITION"),
            "{status} {answer}"
        );
        ensure!(worker.api_get(&format!("/v1/tasks/{id}"))? == before);
        ensure!(client.api_get(&format!("/v1/tasks/{id}"))? == done);

        // Exactly one task_received for it: every worker event up to a later marker.
        client.api_post(
            "/v1/conversations/worker/messages",
            &json!({"text": "marker"}),
        )?;
        let seen = events.collect_until(TIMEOUT, |e| e["type"] == "message_received")?;
        ensure!(
            !seen.iter().any(received),
            "a second task_received: {seen:?}"
        );
        Ok(())
    })();
    if let Err(e) = result {
        panic!("{e:#}\n{}", net.logs());
    }
}

#[test]
fn a_task_from_a_blocked_sender_is_refused_and_unknown_tasks_are_clear_errors() {
    let net = Net::start("blocked", 1).expect("start the nodes");
    let result = (|| -> anyhow::Result<()> {
        let (client, worker) = (&net.client, net.worker());
        // An agent that takes tasks from anyone, but has blocked this client.
        worker.api_post(
            "/v1/agent/card",
            &json!({"name": "Worker", "skills": [{"id": "work.v1", "name": "Work"}]}),
        )?;
        let blocked =
            worker.api_post(&format!("/v1/requests/{}/block", client.uid()), &json!({}))?;
        ensure!(blocked["dropped"] == 0, "{blocked}");
        let mut events = Events::open(worker)?;

        let id = delegate_id(client, &json!({"to": worker.uid(), "text": "let me in"}))?;
        let failed = wait_task(client, &id, "failed")?;
        let reason = failed["status"]["reason"].as_str().unwrap_or_default();
        ensure!(
            reason.starts_with("not delivered: the recipient refused")
                && !reason.contains("send again"),
            "reason: {failed}"
        );
        ensure!(
            states(&failed) == ["submitted", "failed"],
            "{:?}",
            states(&failed)
        );

        // Nothing on the worker: no task, no request, no task_received (up to a later marker:
        // the worker adds the hub as a contact).
        let (status, code) = refusal(worker, &format!("/v1/tasks/{id}"), None)?;
        ensure!(
            (status, code.as_str()) == (404, "UNKNOWN_TASK"),
            "{status} {code}"
        );
        ensure!(worker.api_get("/v1/tasks?side=worker")? == json!([]));
        ensure!(worker.api_get("/v1/agent/tasks?state=submitted")? == json!([]));
        ensure!(worker.api_get("/v1/requests")? == json!([]));
        let list = worker.api_get("/v1/blocked")?;
        ensure!(
            list.as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["uid"] == client.uid()),
            "{list}"
        );
        worker.api_post(
            "/v1/contacts",
            &json!({"ticket": net.hub.ticket()?, "name": "hub"}),
        )?;
        let seen = events.collect_until(TIMEOUT, |e| e["type"] == "contact_added")?;
        ensure!(
            !seen.iter().any(|e| e["type"] == "task_received"),
            "{seen:?}"
        );

        // Unknown task ids, on every task route of either side: 404 UNKNOWN_TASK.
        let unknown = "ab".repeat(16);
        let working = json!({"state": "working"});
        for (node, path, body) in [
            (
                worker,
                format!("/v1/agent/tasks/{unknown}"),
                Some(working.clone()),
            ),
            (
                worker,
                format!("/v1/agent/tasks/{id}"),
                Some(working.clone()),
            ),
            (
                client,
                format!("/v1/tasks/{unknown}/cancel"),
                Some(json!({})),
            ),
            (
                client,
                format!("/v1/tasks/{unknown}/input"),
                Some(json!({"text": "x"})),
            ),
            (worker, format!("/v1/tasks/{unknown}"), None),
        ] {
            let (status, code) = refusal(node, &path, body)?;
            ensure!(
                (status, code.as_str()) == (404, "UNKNOWN_TASK"),
                "{path}: {status} {code}"
            );
        }
        // The client's failed task moves nowhere: canceling it answers it as it is, unchanged.
        let canceled = client.api_post(&format!("/v1/tasks/{id}/cancel"), &json!({}))?;
        ensure!(canceled == failed, "{canceled}");
        ensure!(client.api_get(&format!("/v1/tasks/{id}"))? == failed);
        Ok(())
    })();
    if let Err(e) = result {
        panic!("{e:#}\n{}", net.logs());
    }
}

/// The ed25519 device key inside a PeerId (the last 32 bytes of its identity multihash).
fn device_of(peer: &str) -> anyhow::Result<rhizo_core::DevicePublicKey> {
    let bytes = peer.parse::<rhizo_net::PeerId>()?.to_bytes();
    let key: [u8; 32] = bytes[bytes.len() - 32..].try_into()?;
    Ok(rhizo_core::DevicePublicKey::from_bytes(&key)?)
}

/// Mallory: a raw libp2p node in this process (no record validation of its own), with the
/// runtime it runs on.
struct Mallory {
    rt: tokio::runtime::Runtime,
    client: rhizo_net::Client,
}

impl Mallory {
    fn join(hub: &TestNode) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Runtime::new()?;
        let hub_addr: rhizo_net::Multiaddr = hub.listen_addr()?.parse()?;
        let raw = rt.block_on(async {
            rhizo_test_utils::RawNode::start("rhizo-test-mallory", vec![hub_addr])
        })?;
        Ok(Self {
            rt,
            client: raw.client,
        })
    }

    /// Hands `value` under `key` to `peers` (Kademlia acknowledges before the storing node
    /// validates, so the outcome is read from the nodes).
    fn put(&self, key: &[u8], value: Vec<u8>, peers: &[rhizo_net::PeerId]) {
        let _ = self.rt.block_on(
            self.client
                .put_record_to(key.to_vec(), value, peers.to_vec()),
        );
    }

    /// The values the DHT holds under `key`.
    fn get(&self, key: &[u8]) -> Vec<Vec<u8>> {
        self.rt
            .block_on(self.client.get_records(key.to_vec()))
            .unwrap_or_default()
    }
}

/// The records `nodes` refused so far (their `records_rejected` counters).
fn rejected(nodes: &[&TestNode]) -> u64 {
    nodes
        .iter()
        .filter_map(|n| n.api_get("/v1/stats").ok())
        .filter_map(|s| s["net"]["records_rejected"].as_u64())
        .sum()
}

/// A card of `root` listing `device` (someone else's) as mallory can make it: certified by
/// `root`, with a binding signature that is not the device's (mallory does not hold its key),
/// the record signed by `root`.
fn squatting_card(
    root: &rhizo_core::RootKey,
    card: rhizo_core::agent::AgentCard,
    device: &rhizo_core::DevicePublicKey,
    now: u64,
    ttl: u64,
) -> anyhow::Result<Vec<u8>> {
    use prost::Message as _;
    use rhizo_core::{
        DeviceKey, proto,
        records::{AgentCardRecord, CardDevice, RECORD_SIGNATURE_DOMAIN},
    };
    // Mallory's card bound to a device of hers, then that device swapped for alice's.
    let own = DeviceKey::from_bytes(&[67; 32]);
    let bound = CardDevice::sign(&own, root.certify_device(&own.public(), now))?;
    let record = AgentCardRecord::new(root, 1000, card, vec![bound], now, ttl)?.encode();
    let envelope = proto::SignedRecord::decode(&record[..])?;
    let mut body = proto::AgentCardBody::decode(&envelope.body[..])?;
    body.devices = vec![root.certify_device(device, now).to_bytes().to_vec().into()];
    let body = body.encode_to_vec();
    let kind = u8::try_from(envelope.kind)?;
    let signed = [RECORD_SIGNATURE_DOMAIN, &[kind], &body].concat();
    Ok(proto::SignedRecord {
        kind: envelope.kind,
        body: body.into(),
        signature: root.sign(&signed).to_vec().into(),
    }
    .encode_to_vec())
}

#[test]
fn forged_and_malformed_agent_cards_in_the_dht_are_refused_and_never_shown() {
    use rhizo_core::{
        RootKey,
        agent::AgentCard,
        records::{AgentCardRecord, agent_card_device_key, agent_card_key, validate_record},
    };
    let bin = Path::new(BIN);
    let mut nodes: Vec<TestNode> = ["hub", "alice", "bob", "carol"]
        .iter()
        .map(|n| TestNode::init(bin, &format!("forge-{n}")))
        .collect::<anyhow::Result<_>>()
        .expect("init");
    let result = (|| -> anyhow::Result<()> {
        nodes[0].start(&[])?;
        let bootstrap = vec!["--bootstrap".to_string(), nodes[0].listen_addr()?];
        for node in &mut nodes[1..] {
            node.start_and_publish(&bootstrap, TIMEOUT)?;
        }
        let [hub, alice, bob, carol] = &nodes[..] else {
            unreachable!()
        };
        let storing: Vec<rhizo_net::PeerId> = [hub, bob, carol]
            .iter()
            .map(|n| n.peer_id().parse())
            .collect::<Result<_, _>>()?;
        let mallory = Mallory::join(hub)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let ttl = 3 * 24 * 3600;
        let root = RootKey::from_bytes(&[66; 32]);
        let evil: AgentCard = serde_json::from_value(
            json!({"name": "Evil Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]}),
        )?;
        let own = AgentCardRecord::new(&root, 1000, evil.clone(), Vec::new(), now, ttl)?.encode();

        // Before alice is an agent, mallory claims her device (a PeerId is public): a card of
        // mallory's own root, certifying alice's device key, under that device's card key:
        // what a search by skill reads for a provider. Alice's device never signed its binding
        // to mallory's root, so every storing node refuses it (it used to be kept, and block
        // alice's own card there).
        let alice_device = device_of(alice.peer_id())?;
        let device_key = agent_card_device_key(&alice_device);
        let squat = squatting_card(&root, evil, &alice_device, now, ttl)?;
        let why = validate_record(&device_key, &squat, now)
            .err()
            .context("the squatting card validates")?;
        ensure!(
            why.to_string().contains("binding"),
            "refused for another reason: {why}"
        );
        // Handed over again until all three refused it (mallory may not be connected yet).
        let before = rejected(&[hub, bob, carol]);
        wait_for(
            TIMEOUT,
            "the storing nodes to refuse mallory's claim",
            || {
                mallory.put(&device_key, squat.clone(), &storing);
                (rejected(&[hub, bob, carol]) >= before + 3).then_some(())
            },
        )?;
        ensure!(mallory.get(&device_key).is_empty());

        // Alice becomes an agent with skill echo.v1.
        let card = json!({"name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]});
        ensure!(alice.api_post("/v1/agent/card", &card)?["card_version"] == 1);
        let alice_key = agent_card_key(&alice.uid().parse()?);
        let genuine = wait_for(TIMEOUT, "alice's card in the DHT", || {
            mallory
                .get(&alice_key)
                .into_iter()
                .find(|v| validate_record(&alice_key, v, now).is_ok())
        })?;
        // Her card is stored under her device's key too (nothing of mallory's is there).
        wait_for(TIMEOUT, "alice's card under her device's key", || {
            (mallory.get(&device_key) == std::slice::from_ref(&genuine)).then_some(())
        })?;

        // Forgeries under the UID keys: a bad signature, another identity's card, not a
        // record, and a card for bob (who has none). Every storing node refuses each.
        let mut flipped = genuine.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        let bob_key = agent_card_key(&bob.uid().parse()?);
        let forgeries = [
            (alice_key, flipped),
            (alice_key, own.clone()),
            (alice_key, vec![0x0a, 0xff, 0xff, 0x01]),
            (bob_key, own),
        ];
        let before = rejected(&[hub, bob, carol]);
        for (key, value) in forgeries {
            ensure!(validate_record(&key, &value, now).is_err());
            mallory.put(&key, value, &storing);
        }
        wait_for(TIMEOUT, "the storing nodes to refuse the forgeries", || {
            (rejected(&[hub, bob, carol]) >= before + 12).then_some(())
        })?;
        ensure!(mallory.get(&alice_key) == std::slice::from_ref(&genuine));
        ensure!(mallory.get(&bob_key).is_empty());

        // Readers see alice's genuine card only: by UID, by skill (CLI too); bob has none.
        let found = wait_for(TIMEOUT, "carol to find alice by echo.v1", || {
            let found = carol.api_get("/v1/agents/find?skill=echo.v1").ok()?;
            (!found.as_array()?.is_empty()).then_some(found)
        })?;
        ensure!(
            found.as_array().is_some_and(|f| f.len() == 1
                && f[0]["uid"] == alice.uid()
                && f[0]["card"]["name"] == "Echo"
                && f[0]["card_version"] == 1),
            "found: {found}"
        );
        let out = carol.cli(&["agents", "find", "echo.v1", "--json"])?;
        let listed: Value = serde_json::from_slice(&out.stdout)
            .with_context(|| String::from_utf8_lossy(&out.stderr).to_string())?;
        ensure!(
            listed
                .as_array()
                .is_some_and(|l| l.len() == 1 && l[0]["uid"] == alice.uid()),
            "{listed}"
        );
        let one = carol.api_get(&format!("/v1/agents/{}?refresh=1", alice.uid()))?;
        ensure!(
            one["card"]["name"] == "Echo" && one["card_version"] == 1,
            "{one}"
        );
        let (status, code) = refusal(carol, &format!("/v1/agents/{}?refresh=1", bob.uid()), None)?;
        ensure!(
            (status, code.as_str()) == (404, "UNKNOWN_AGENT"),
            "{status} {code}"
        );
        let _ = mallory.rt.block_on(mallory.client.shutdown());
        Ok(())
    })();
    if let Err(e) = result {
        let all: Vec<&TestNode> = nodes.iter().collect();
        fail_with_logs(&e, &all);
    }
    for node in &mut nodes {
        let _ = node.stop();
    }
}
