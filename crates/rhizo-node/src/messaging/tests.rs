//! Driver tests on tokio's paused clock: the node's timers move through simulated hours in
//! milliseconds, with a network whose event loop never runs (every call times out).

use std::sync::Arc;
use std::time::Duration;

use rhizo_core::{DeviceKey, RootKey};
use rhizo_engine::{Me, contacts::peer_id_of_device};
use rhizo_store::{
    Db, DbConfig, DbError, Store,
    messaging::{Contact, ContactDevice, ConversationRow, MessageRow, NewMessage},
};

use super::Messaging;
use crate::clock::{Clock, PausedClock};
use crate::mailbox::{Mailbox, MailboxSettings};

const START_MS: i64 = 1_800_000_000_000;

fn me(seed: u8) -> Me {
    let root = RootKey::from_bytes(&[seed; 32]);
    let device = DeviceKey::from_bytes(&[seed + 100; 32]);
    let certificate = root.certify_device(&device.public(), 1);
    Me::primary(root, device, certificate, Some("alice".into()))
}

/// Alice's messaging service on an in-memory store and a paused clock, with bob as a contact
/// and one message to him queued; the network's event loop is returned, never run.
fn alice_with_a_queued_message(
    clock: Arc<PausedClock>,
) -> (Messaging, Db, i64, rhizo_net::EventLoop) {
    let (client, _events, event_loop) = rhizo_net::start(rhizo_net::NetConfig::new(
        rhizo_net::Keypair::generate_ed25519(),
    ))
    .unwrap();
    let mut store = Store::open_in_memory().unwrap();
    let bob = me(2);
    let id = {
        let s = &mut store;
        let contact = Contact {
            uid: *bob.uid.as_bytes(),
            root_pk: *bob.root_public.as_bytes(),
            name: "bob".into(),
            verified: false,
            added_at: START_MS,
            devices: vec![ContactDevice {
                device_pk: *bob.device.public().as_bytes(),
                peer_id: peer_id_of_device(&bob.device.public()).unwrap().to_string(),
                addrs: vec!["/ip4/127.0.0.1/tcp/9".into()],
                certificate: None,
            }],
        };
        s.write(|tx| tx.add_contact(&contact, START_MS)).unwrap();
        let session_id = [9u8; 16];
        s.write(|tx| {
            tx.insert_conversation(&ConversationRow {
                session_id,
                group_id: vec![1; 16],
                contact_uid: contact.uid,
                created_at: START_MS,
            })
        })
        .unwrap();
        let message = NewMessage {
            session_id,
            sender_device: *me(1).device.public().as_bytes(),
            seq: 1,
            kind: "text",
            body: Some("hello"),
            sent_at: START_MS,
        };
        s.write(|tx| tx.insert_outgoing(&message, b"an envelope bob never gets", START_MS))
            .unwrap()
    };
    let db = Db::start(store, DbConfig::default()).unwrap();
    let mailbox = Mailbox::new(
        db.clone(),
        client.clone(),
        libp2p::PeerId::random(),
        MailboxSettings {
            ttl_secs: 3600,
            poll: Duration::from_secs(60),
            replicate: Duration::from_secs(60),
            quota: rhizo_store::mailbox::MailboxQuota::default(),
        },
        clock.clone(),
    );
    let messaging = Messaging::new(
        db.clone(),
        client,
        me(1),
        rhizo_e2e::RekeyPolicy {
            max_messages: 100,
            max_age_secs: 86_400,
        },
        mailbox,
        clock.clone(),
        Arc::new(crate::agent_wake::AgentPresence::new(clock, false)),
    )
    .unwrap();
    (messaging, db, id, event_loop)
}

/// Runs `future` to its end with a bound in real time, `None` past it. A `tokio::time::timeout`
/// on the paused clock is no bound here: while the future waits for the database's writer
/// thread (a real thread), tokio sees nothing runnable and jumps straight to the timeout.
/// Polling and yielding keeps this task runnable, so the clock stays put while the thread works.
async fn within_real_seconds<F: std::future::Future>(future: F, secs: u64) -> Option<F::Output> {
    use futures::FutureExt;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let mut future = std::pin::pin!(future);
    while std::time::Instant::now() < deadline {
        if let Some(output) = (&mut future).now_or_never() {
            return Some(output);
        }
        std::thread::sleep(Duration::from_millis(2));
        tokio::task::yield_now().await;
    }
    None
}

/// Waits for `task` to stop, at most `secs` real seconds.
async fn join_within_real_seconds<T>(task: tokio::task::JoinHandle<T>, secs: u64) {
    within_real_seconds(task, secs)
        .await
        .unwrap_or_else(|| panic!("the task did not stop within {secs} s"))
        .unwrap();
}

/// The message row and when the outbox tries it next.
async fn row(db: &Db, id: i64) -> (MessageRow, i64) {
    db.read(move |r| {
        let row = r
            .message(id)?
            .ok_or(rhizo_store::StoreError::InvalidInput("gone".into()))?;
        Ok::<_, DbError>((row, r.outbox_next_attempt()?.unwrap_or(i64::MAX)))
    })
    .await
    .unwrap()
}

/// Bob is unreachable (no device answers, no mailbox replica takes it): the outbox retries on
/// the node's clock with a doubling backoff capped at five minutes, never in a hot loop and
/// never giving up, and every time it stores comes from the injected clock.
///
/// Simulated time also moves on while a task waits for the database's writer thread (a real
/// thread: tokio does not count it as work), so the test checks what holds however far it
/// moved: each retry is due at least the policy's shortest delay after the one before, and
/// never more than the cap after the moment it was scheduled.
#[tokio::test(start_paused = true)]
async fn an_unreachable_contact_is_retried_with_a_capped_backoff_on_the_node_clock() {
    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, db, id, _event_loop) = alice_with_a_queued_message(clock.clone());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(messaging.run_outbox(shutdown));

    let policy = rhizo_core::delivery::RetryPolicy::default();
    // (attempts, next attempt due) each time the outbox tried again.
    let mut schedule: Vec<(u32, i64)> = Vec::new();
    while schedule.last().is_none_or(|(n, _)| *n < 20) {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (r, due) = row(&db, id).await;
        assert_eq!(
            r.state.to_string(),
            "queued",
            "never delivered, never given up"
        );
        if r.attempts == 0 {
            continue;
        }
        let error = r.error.unwrap_or_default();
        assert!(error.contains("no device of bob is reachable"), "{error}");
        // Scheduled by now on the node's clock, at most the cap ahead.
        let cap = i64::try_from(policy.max_backoff).unwrap();
        assert!(due > START_MS && due <= clock.now_ms() + cap, "due {due}");
        if schedule.last().is_none_or(|(n, _)| *n != r.attempts) {
            schedule.push((r.attempts, due));
        }
    }
    stop.send(true).unwrap();
    join_within_real_seconds(outbox, 60).await;

    // Between two retries: at least the shorter delay of the backoff (a quarter of jitter off).
    for pair in schedule.windows(2) {
        let ((_, before), (n, after)) = (pair[0], pair[1]);
        let shortest = i64::try_from(policy.backoff(n, 0) * 3 / 4).unwrap();
        assert!(
            after - before >= shortest,
            "retry {n} due {after}, {before} before"
        );
    }
}

/// The task timer ends a task at its deadline on the node's clock (a client task whose worker
/// never answered): `failed`, "deadline passed", shown as a `task_updated` event.
#[tokio::test(start_paused = true)]
async fn the_task_timer_fails_a_task_at_its_deadline_on_the_node_clock() {
    use rhizo_store::agents::{NewTaskRow, TaskSide};

    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, db, _id, _event_loop) = alice_with_a_queued_message(clock.clone());
    let deadline = START_MS + 90_000;
    db.write(move |tx| -> Result<_, DbError> {
        Ok(tx.insert_task(
            &NewTaskRow {
                task_id: [5; 16],
                side: TaskSide::Client,
                peer_uid: *me(2).uid.as_bytes(),
                context_id: "c",
                skill: None,
                priority: 1,
                deadline: Some(deadline),
                requirements: "[]",
                state: "submitted",
                reason: None,
                request: r#"{"message_id":"m","role":"user","parts":[{"text":"hi"}]}"#,
            },
            START_MS,
        )?)
    })
    .await
    .unwrap();
    let mut events = messaging.subscribe();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let timer = tokio::spawn(messaging.clone().run_task_timer(shutdown));
    let id = "05".repeat(16);

    // Simulated time also moves while a job waits for the database's threads, so the test
    // checks what must hold however far it moved: the task ends `failed` at or after its
    // deadline, never before.
    let mut failed = None;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let task = messaging.task(&id).await.unwrap();
        if task.status.state.as_str() == "failed" {
            failed = Some(task);
            break;
        }
        assert_eq!(task.status.state.as_str(), "submitted");
    }
    let task = failed.expect("failed at its deadline");
    assert!(task.status.timestamp >= deadline, "{task:?}");
    assert_eq!(task.status.reason.as_deref(), Some("deadline passed"));
    // The timer emits the event after its write committed: wait for it (bounded), since this
    // task may read the stored state before the timer's task runs again.
    let shown = within_real_seconds(
        async {
            loop {
                match events.recv().await {
                    Ok(crate::events::ApiEvent::TaskUpdated { status, .. })
                        if status.state.as_str() == "failed" =>
                    {
                        return true;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        },
        60,
    )
    .await
    .unwrap_or(false);
    assert!(shown, "a task_updated event");
    stop.send(true).unwrap();
    join_within_real_seconds(timer, 60).await;
}

/// Our agent card on the driver: set (signed as version 1, a bad card refused), shown,
/// removed; lookups the DHT does not answer (the event loop never runs) are UNKNOWN_AGENT.
#[tokio::test(start_paused = true)]
async fn our_agent_card_is_set_shown_and_removed() {
    use super::CardError;
    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, _db, _id, _event_loop) = alice_with_a_queued_message(clock);
    assert!(!messaging.has_agent_card().await);
    assert!(matches!(
        messaging.agent_card().await,
        Err(CardError::NoCard)
    ));
    let card: rhizo_core::agent::AgentCard = serde_json::from_value(serde_json::json!({
        "name": "Echo", "skills": [{"id": "echo.v1", "name": "Echo"}]
    }))
    .unwrap();
    let set = messaging.set_agent_card(card.clone()).await.unwrap();
    assert_eq!((set.card_version, &set.card), (1, &card));
    assert_eq!(set.uid, me(1).uid.to_string());
    assert!(messaging.has_agent_card().await);
    assert_eq!(messaging.agent_card().await.unwrap(), set);
    let mut bad = card.clone();
    bad.skills.clear();
    assert!(matches!(
        messaging.set_agent_card(bad).await,
        Err(CardError::BadCard(_))
    ));
    assert_eq!(messaging.agent_card().await.unwrap().card_version, 1);
    messaging.clear_agent_card().await.unwrap();
    assert!(!messaging.has_agent_card().await);
    assert!(matches!(
        messaging.clear_agent_card().await,
        Err(CardError::NoCard)
    ));
    assert!(matches!(
        messaging.agent("bob", false).await,
        Err(CardError::UnknownAgent(_))
    ));
    assert!(matches!(
        messaging.agent("nobody", true).await,
        Err(CardError::UnknownAgent(_))
    ));
    assert!(messaging.agents().await.unwrap().is_empty());
    assert!(matches!(
        messaging.find_agents("Not A Skill").await,
        Err(CardError::BadSkill(_))
    ));
}

/// Bob lost the conversation and his KeyPackages cannot be found (the DHT never answers): the
/// driver tries a new conversation on the engine's schedule on the node's clock, and after the
/// last attempt the parked text fails with a `conversation_reestablish_failed` event.
#[tokio::test(start_paused = true)]
async fn a_lost_conversation_is_retried_a_bounded_number_of_times_then_fails_with_an_event() {
    use rhizo_engine::reestablish::{MAX_REESTABLISH_ATTEMPTS, REESTABLISH_DELAYS_MS};

    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, db, id, _event_loop) = alice_with_a_queued_message(clock.clone());
    db.write(move |tx| -> Result<_, DbError> {
        Ok(tx.park_conversation(
            &[9; 16],
            "lost",
            START_MS + REESTABLISH_DELAYS_MS[0],
            START_MS,
        )?)
    })
    .await
    .unwrap()
    .expect("parked");
    let mut events = messaging.subscribe();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(messaging.clone().run_outbox(shutdown));
    let mut attempts_seen = 0;
    let mut failed = None;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(30)).await;
        let (r, _) = row(&db, id).await;
        if r.state.to_string() == "failed" {
            failed = Some(r);
            break;
        }
        assert_eq!(r.state.to_string(), "queued", "parked, never sent");
        attempts_seen = attempts_seen.max(r.attempts);
    }
    let r = failed.expect("failed after the last attempt");
    assert!(attempts_seen >= 1, "the driver retried");
    let error = r.error.unwrap_or_default();
    assert!(
        error.contains(&format!(
            "no new one could be started after {MAX_REESTABLISH_ATTEMPTS} attempts"
        )),
        "{error}"
    );
    let shown = within_real_seconds(
        async {
            loop {
                match events.recv().await {
                    Ok(crate::events::ApiEvent::ConversationReestablishFailed {
                        messages, ..
                    }) => {
                        return messages == 1;
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return false,
                }
            }
        },
        60,
    )
    .await
    .unwrap_or(false);
    assert!(shown, "a conversation_reestablish_failed event");
    stop.send(true).unwrap();
    join_within_real_seconds(outbox, 60).await;
}

/// Carol's ticket naming the devices with seeds `devices` (each certified by her root, with
/// its proof of possession).
fn carol_ticket(devices: &[u8]) -> String {
    use rhizo_core::ticket::{ContactTicket, TicketDevice};
    let root = RootKey::from_bytes(&[5; 32]);
    let listed = devices
        .iter()
        .map(|seed| {
            let device = DeviceKey::from_bytes(&[*seed; 32]);
            let cert = root.certify_device(&device.public(), 1);
            TicketDevice::with_proof(&device, cert, Vec::new()).unwrap()
        })
        .collect();
    ContactTicket::new(&root, listed, Some("carol".into()), 1)
        .unwrap()
        .to_string()
}

/// A known contact re-added with a device key we did not hold: a `key_change` event, and
/// `key_changed` in the contact's view until it is verified again.
#[tokio::test(start_paused = true)]
async fn a_new_device_key_on_a_known_contact_is_a_key_change_event_and_flag() {
    use crate::events::ApiEvent;
    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, _db, _id, _event_loop) = alice_with_a_queued_message(clock);
    let mut events = messaging.subscribe();
    let (view, added) = messaging
        .add_contact(&carol_ticket(&[51]), None)
        .await
        .unwrap();
    assert!(added && !view.key_changed);
    let (view, _) = messaging
        .add_contact(&carol_ticket(&[51]), None)
        .await
        .unwrap();
    assert!(!view.key_changed, "the same device again");
    let (view, added) = messaging
        .add_contact(&carol_ticket(&[51, 52]), None)
        .await
        .unwrap();
    assert!(!added && view.key_changed);
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push(event);
    }
    let changes: Vec<_> = seen
        .iter()
        .filter(|e| matches!(e, ApiEvent::KeyChange { .. }))
        .collect();
    assert_eq!(
        changes,
        [&ApiEvent::KeyChange {
            contact: "carol".into()
        }]
    );
    let listed = messaging.contacts().await.unwrap();
    assert!(listed.iter().any(|c| c.name == "carol" && c.key_changed));
    let verified = messaging.verify_contact("carol").await.unwrap();
    assert!(verified.verified && !verified.key_changed);
    let listed = messaging.contacts().await.unwrap();
    assert!(listed.iter().all(|c| !c.key_changed));
}

/// Blocking asks for a mailbox fetch at once, so what the replicas hold for us from the
/// blocked sender is fetched, acknowledged (dropped there) and never shown without waiting for
/// the next poll; the replicas are never told whom we block.
#[tokio::test(start_paused = true)]
async fn a_block_fetches_the_mailbox_at_once() {
    let clock = Arc::new(PausedClock::starting_at(START_MS));
    let (messaging, _db, _id, _event_loop) = alice_with_a_queued_message(clock);
    messaging
        .add_contact(&carol_ticket(&[51]), None)
        .await
        .unwrap();
    let woken = || {
        tokio::time::timeout(
            Duration::from_secs(1),
            messaging.inner.mailbox_wake.notified(),
        )
    };
    assert!(
        woken().await.is_err(),
        "no fetch asked for before the block"
    );
    messaging.block("carol").await.unwrap();
    assert!(woken().await.is_ok(), "the block asks for a fetch");
    messaging.unblock("carol").await.unwrap();
    assert!(woken().await.is_err(), "an unblock does not");
}
