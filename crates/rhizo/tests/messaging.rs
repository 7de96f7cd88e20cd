//! End to end with real `rhizo` processes on 127.0.0.1: messages between two users arrive
//! exactly once and in order, under load, across a SIGKILL of the recipient, to a recipient
//! that lost the conversation (re-established by the sender's node), and never as plaintext
//! on the wire.
//!
//! ```text
//!  alice (rhizo run) ◀── /rhizo/msg/1 ──▶ bob (rhizo run)        tests 1 and 2
//!  alice ──▶ relay A ──▶ ... ◀── relay B ◀── bob                 test 3: every byte recorded
//! ```

use std::{
    collections::{BTreeSet, HashSet},
    hash::{BuildHasher, Hasher},
    io::{Read, Write},
    net::{Shutdown, TcpListener, TcpStream},
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail, ensure};
use rhizo_core::ticket::ContactTicket;
use rhizo_test_utils::{TestNode, free_loopback_port, wait_for, wait_for_every};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_rhizo");
/// The first message waits for the contact's KeyPackages in the DHT (published a couple of
/// seconds after their node has a peer).
const KEY_PACKAGES_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for a batch of messages to be delivered (normally a few seconds).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of each node's log a failure prints.
const LOG_TAIL_BYTES: usize = 96 * 1024;
/// History page size, more than any test sends.
const HISTORY_LIMIT: usize = 10_000;

fn bin() -> &'static Path {
    Path::new(BIN)
}

/// Panics with `e` and the tail of every node's logs.
fn fail_with_logs(e: &anyhow::Error, nodes: &[&TestNode]) -> ! {
    let logs: Vec<String> = nodes.iter().map(|n| n.logs_tail(LOG_TAIL_BYTES)).collect();
    panic!("{e:#}\n{}", logs.join("\n"));
}

/// Adds each node's ticket on the other as contacts `a_name` (on `b`) and `b_name` (on `a`).
fn befriend(a: &TestNode, a_name: &str, b: &TestNode, b_name: &str) -> anyhow::Result<()> {
    let a_ticket = a.api_get("/v1/invite")?["ticket"]
        .as_str()
        .context("invite has no ticket")?
        .to_string();
    let b_ticket = b.api_get("/v1/invite")?["ticket"]
        .as_str()
        .context("invite has no ticket")?
        .to_string();
    let added = b.api_post("/v1/contacts", &json!({"ticket": a_ticket, "name": a_name}))?;
    ensure!(added["added"] == true, "{a_name} not added: {added}");
    let added = a.api_post("/v1/contacts", &json!({"ticket": b_ticket, "name": b_name}))?;
    ensure!(added["added"] == true, "{b_name} not added: {added}");
    Ok(())
}

/// `POST /message`; retries (bounded) while the contact's KeyPackages are not in the DHT yet.
fn send(node: &TestNode, to: &str, text: &str) -> anyhow::Result<Value> {
    let body = json!({"to": to, "text": text});
    wait_for(
        KEY_PACKAGES_TIMEOUT,
        "the contact's KeyPackages",
        || match node.api_post_raw("/message", &body) {
            Ok((200..=299, answer)) => {
                Some(serde_json::from_str::<Value>(&answer).map_err(anyhow::Error::from))
            }
            Ok((503, answer)) if answer.contains("NO_KEY_PACKAGES") => None,
            Ok((status, answer)) => Some(Err(anyhow!("POST /message: {status} {answer}"))),
            Err(e) => Some(Err(e)),
        },
    )?
    .with_context(|| format!("sending {text:?} to {to}"))
}

/// The conversation with `contact`, as the API orders it.
fn history(node: &TestNode, contact: &str) -> anyhow::Result<Vec<Value>> {
    let list = node.api_get(&format!(
        "/v1/conversations/{contact}/messages?limit={HISTORY_LIMIT}"
    ))?;
    list.as_array()
        .cloned()
        .ok_or_else(|| anyhow!("history is not a list: {list}"))
}

/// The texts of one direction (`in` or `out`), in the API's order.
fn texts(history: &[Value], direction: &str) -> Vec<String> {
    history
        .iter()
        .filter(|m| m["direction"] == direction)
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

fn is_delivered(m: &Value) -> bool {
    // `read` is a later state of a delivered message.
    m["state"] == "delivered" || m["state"] == "read"
}

/// Outgoing texts the sender reports as delivered.
fn delivered_texts(history: &[Value]) -> BTreeSet<String> {
    history
        .iter()
        .filter(|m| m["direction"] == "out" && is_delivered(m))
        .filter_map(|m| m["text"].as_str().map(String::from))
        .collect()
}

/// Waits until every one of `texts` is delivered according to `sender`; fails at once on a
/// `failed` message.
fn wait_delivered(sender: &TestNode, to: &str, texts: &[String]) -> anyhow::Result<()> {
    sender.wait_delivered(to, texts, DELIVERY_TIMEOUT)
}

/// Checks that `got` is exactly `want`: each once, in order; names what is wrong otherwise.
fn check_exactly_once_in_order(who: &str, got: &[String], want: &[String]) -> anyhow::Result<()> {
    if got == want {
        return Ok(());
    }
    let wanted: HashSet<&String> = want.iter().collect();
    let mut seen = HashSet::new();
    let duplicates: Vec<&String> = got.iter().filter(|t| !seen.insert(*t)).collect();
    let missing: Vec<&String> = want.iter().filter(|t| !seen.contains(t)).collect();
    let unexpected: Vec<&String> = got.iter().filter(|t| !wanted.contains(t)).collect();
    let first_difference = got.iter().zip(want).position(|(g, w)| g != w);
    bail!(
        "{who}: got {} messages, want {}; duplicates {duplicates:?}; missing {missing:?}; \
         unexpected {unexpected:?}; first difference at index {first_difference:?}\n\
         got: {got:?}",
        got.len(),
        want.len()
    )
}

/// Checks the sender's view: the outgoing texts in order, each delivered.
fn check_sender_view(who: &str, list: &[Value], want: &[String]) -> anyhow::Result<()> {
    check_exactly_once_in_order(who, &texts(list, "out"), want)?;
    let not_delivered: Vec<&Value> = list
        .iter()
        .filter(|m| m["direction"] == "out" && !is_delivered(m))
        .collect();
    ensure!(
        not_delivered.is_empty(),
        "{who}: not delivered: {not_delivered:?}"
    );
    Ok(())
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} #{i:03}")).collect()
}

#[test]
fn hundred_messages_each_way_exactly_once_in_order() {
    hundred_each_way(&[]);
}

/// The same under load with a self-update commit every 7 messages from both sides, so commits
/// (and concurrent commits resolved by the tie-break) interleave with the traffic.
#[test]
fn hundred_messages_each_way_with_frequent_rekeys() {
    hundred_each_way(&["--rekey-messages".to_string(), "7".to_string()]);
}

fn hundred_each_way(extra: &[String]) {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(extra)?;
        let mut bob_args = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob_args.extend_from_slice(extra);
        bob.start(&bob_args)?;
        befriend(&alice, "alice", &bob, "bob")?;
        let a_texts = numbered("a->b", 0..100);
        let b_texts = numbered("b->a", 0..100);

        // Both send at once, each from its own thread: both first messages race to start the
        // conversation too.
        let started = Instant::now();
        let (a_queued, b_queued) = std::thread::scope(|s| {
            let a = s.spawn(|| -> anyhow::Result<Duration> {
                for t in &a_texts {
                    send(&alice, "bob", t)?;
                }
                Ok(started.elapsed())
            });
            let b = s.spawn(|| -> anyhow::Result<Duration> {
                for t in &b_texts {
                    send(&bob, "alice", t)?;
                }
                Ok(started.elapsed())
            });
            (a.join(), b.join())
        });
        let a_queued = a_queued.map_err(|_| anyhow!("alice's sender panicked"))??;
        let b_queued = b_queued.map_err(|_| anyhow!("bob's sender panicked"))??;
        eprintln!("queued 100 + 100 messages: alice {a_queued:.2?}, bob {b_queued:.2?}");

        wait_delivered(&alice, "bob", &a_texts)?;
        wait_delivered(&bob, "alice", &b_texts)?;
        eprintln!(
            "200 messages delivered {:.2?} after the first send",
            started.elapsed()
        );

        let at_alice = history(&alice, "bob")?;
        let at_bob = history(&bob, "alice")?;
        check_exactly_once_in_order("bob's inbox", &texts(&at_bob, "in"), &a_texts)?;
        check_exactly_once_in_order("alice's inbox", &texts(&at_alice, "in"), &b_texts)?;
        check_sender_view("alice's sent messages", &at_alice, &a_texts)?;
        check_sender_view("bob's sent messages", &at_bob, &b_texts)?;
        ensure!(
            at_bob
                .iter()
                .filter(|m| m["direction"] == "in")
                .all(|m| m["state"] == "received"),
            "incoming messages are `received`"
        );
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

/// The recipient loses the conversation (it is deleted from bob's database while his node is
/// stopped, as a data dir restored from before it would be): alice's next texts are answered
/// UNKNOWN_SESSION, her node starts a new conversation by itself (bob's KeyPackages fetched
/// again from the DHT) and the same messages arrive, in order, once, with no user action.
#[test]
fn texts_reach_a_recipient_that_lost_the_conversation_with_no_user_action() {
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        let bob_args = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start(&bob_args)?;
        befriend(&alice, "alice", &bob, "bob")?;
        send(&alice, "bob", "hello")?;
        wait_delivered(&alice, "bob", &["hello".to_string()])?;
        bob.stop()?;
        let db = rusqlite::Connection::open(bob.data_dir().join("rhizo.db"))?;
        db.execute_batch(
            "PRAGMA foreign_keys = ON; DELETE FROM conversations WHERE kind = 'direct';",
        )?;
        drop(db);
        bob.start(&bob_args)?;
        // Direct delivery (not bob's mailbox): wait until alice is connected to him again.
        let bob_peer = bob.peer_id().to_string();
        wait_for(KEY_PACKAGES_TIMEOUT, "alice to see bob again", || {
            alice.connected_peers().contains(&bob_peer).then_some(())
        })?;
        let after = numbered("after", 0..3);
        let mut ids = Vec::new();
        for t in &after {
            ids.push(send(&alice, "bob", t)?["id"].clone());
        }
        wait_delivered(&alice, "bob", &after)?;
        let at_bob = history(&bob, "alice")?;
        check_exactly_once_in_order("bob's inbox", &texts(&at_bob, "in"), &after)?;
        let at_alice = history(&alice, "bob")?;
        let delivered_ids: Vec<Value> = at_alice
            .iter()
            .filter(|m| m["direction"] == "out" && m["text"] != "hello")
            .map(|m| m["id"].clone())
            .collect();
        ensure!(
            delivered_ids == ids,
            "the same messages: {delivered_ids:?} vs {ids:?}"
        );
        check_sender_view("alice's sent messages", &at_alice, &{
            let mut all = vec!["hello".to_string()];
            all.extend(after.iter().cloned());
            all
        })?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

/// 8 senders at once, 25 messages each: the sends share group commits, the outbox sends
/// batch frames that bob applies in one transaction each, and still every message arrives
/// exactly once, each sender's in its order, all delivered (the counters show the grouping).
#[test]
fn concurrent_sends_are_group_committed_and_batched_exactly_once_in_order() {
    const SENDERS: usize = 8;
    const EACH: usize = 25;
    let mut alice = TestNode::init(bin(), "alice").expect("init alice");
    let mut bob = TestNode::init(bin(), "bob").expect("init bob");
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        bob.start(&["--bootstrap".to_string(), alice.listen_addr()?])?;
        befriend(&alice, "alice", &bob, "bob")?;
        // The first message opens the conversation on its own.
        let first = "group #first".to_string();
        send(&alice, "bob", &first)?;
        wait_delivered(&alice, "bob", std::slice::from_ref(&first))?;

        let per_sender: Vec<Vec<String>> = (0..SENDERS)
            .map(|t| numbered(&format!("group t{t}"), 0..EACH))
            .collect();
        let started = Instant::now();
        std::thread::scope(|s| -> anyhow::Result<()> {
            let handles: Vec<_> = per_sender
                .iter()
                .map(|texts| {
                    let alice = &alice;
                    s.spawn(move || -> anyhow::Result<()> {
                        for t in texts {
                            send(alice, "bob", t)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in handles {
                h.join().map_err(|_| anyhow!("a sender panicked"))??;
            }
            Ok(())
        })?;
        let all: Vec<String> = per_sender.iter().flatten().cloned().collect();
        wait_delivered(&alice, "bob", &all)?;
        eprintln!(
            "{} messages from {SENDERS} concurrent senders delivered in {:.2?}",
            all.len(),
            started.elapsed()
        );

        let inbox = texts(&history(&bob, "alice")?, "in");
        let mut want = vec![first.clone()];
        want.extend(all.iter().cloned());
        let got: BTreeSet<&String> = inbox.iter().collect();
        ensure!(
            inbox.len() == want.len() && want.iter().all(|t| got.contains(t)),
            "bob's inbox is not every message exactly once: {} of {} ({inbox:?})",
            inbox.len(),
            want.len()
        );
        for texts in &per_sender {
            let order: Vec<&String> = inbox.iter().filter(|t| texts.contains(t)).collect();
            ensure!(
                order.iter().copied().eq(texts.iter()),
                "one sender's messages out of order at bob: {order:?}"
            );
        }

        let a = alice.api_get("/stats")?;
        let b = bob.api_get("/stats")?;
        let count = |v: &Value, k: &str| v["messaging"][k].as_u64().unwrap_or(0);
        let (commits, grouped) = (count(&a, "send_commits"), count(&a, "grouped_sends"));
        let (batches, batched) = (
            count(&b, "batches_received"),
            count(&b, "batched_envelopes_received"),
        );
        eprintln!(
            "alice: {grouped} sends in {commits} commits; bob: {batched} envelopes in {batches} \
             batch frames"
        );
        ensure!(
            grouped == all.len() as u64,
            "every later send went through the group commit: {grouped}"
        );
        ensure!(
            commits < grouped,
            "concurrent sends shared commits: {commits} commits for {grouped} sends"
        );
        ensure!(
            batches >= 1 && batched > batches,
            "the outbox sent batch frames: {batches} frames, {batched} envelopes"
        );
        ensure!(
            count(&a, "batches_sent") == batches,
            "alice sent as many frames as bob applied: {a}"
        );
        // The MLS conversation stays loaded between messages on both sides.
        for (who, stats) in [("alice", &a), ("bob", &b)] {
            let (hits, misses) = (
                count(stats, "conversation_cache_hits"),
                count(stats, "conversation_cache_misses"),
            );
            ensure!(
                hits > misses,
                "{who} reloaded its conversation too often: {hits} hits, {misses} misses"
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().expect("stop alice");
    bob.stop().expect("stop bob");
}

#[test]
fn kill_9_mid_stream_loses_nothing_acknowledged_and_duplicates_nothing() {
    let mut alice = TestNode::init(bin(), "alice").unwrap();
    let mut bob = TestNode::init(bin(), "bob").unwrap();
    let result = (|| -> anyhow::Result<()> {
        alice.start(&[])?;
        // Bob bootstraps from alice: after his restart (on a new port) his node dials alice
        // again, and alice's outbox reaches him over that connection.
        let bob_args = vec!["--bootstrap".to_string(), alice.listen_addr()?];
        bob.start(&bob_args)?;
        befriend(&alice, "alice", &bob, "bob")?;
        let all = numbered("kill-9", 0..60);
        let (first, rest) = all.split_at(30);

        // Alice queues 30 while bob runs; once 20 are delivered bob is SIGKILLed; alice queues
        // the other 30 while he is down.
        let killed = AtomicBool::new(false);
        let (before_kill, stream) = std::thread::scope(|s| {
            let sender = s.spawn(|| -> anyhow::Result<()> {
                for t in first {
                    send(&alice, "bob", t)?;
                }
                wait_for(DELIVERY_TIMEOUT, "bob to be killed", || {
                    killed.load(Ordering::SeqCst).then_some(())
                })?;
                for t in rest {
                    send(&alice, "bob", t)?;
                }
                Ok(())
            });
            let before_kill = wait_for_every(
                DELIVERY_TIMEOUT,
                Duration::from_millis(5),
                "20 messages to be delivered",
                || {
                    let done = delivered_texts(&history(&alice, "bob").ok()?);
                    (done.len() >= 20).then_some(done)
                },
            );
            // The last view before the kill: everything in it was acknowledged by bob.
            let before_kill = before_kill.map(|seen| {
                let last = history(&alice, "bob").map(|l| delivered_texts(&l));
                bob.kill();
                killed.store(true, Ordering::SeqCst);
                last.unwrap_or(seen)
            });
            let stream = sender
                .join()
                .map_err(|_| anyhow!("alice's sender panicked"));
            if before_kill.is_err() {
                // Let the sender finish if it waits for the kill that will not come.
                killed.store(true, Ordering::SeqCst);
            }
            (before_kill, stream)
        });
        let before_kill = before_kill?;
        stream??;
        let at_kill = history(&alice, "bob")?;
        eprintln!(
            "bob killed with {} of 60 delivered ({} of the first 30 acknowledged before the kill)",
            delivered_texts(&at_kill).len(),
            before_kill.len()
        );

        let restarted = Instant::now();
        bob.start(&bob_args)?;
        wait_delivered(&alice, "bob", &all)?;
        eprintln!(
            "all 60 delivered {:.2?} after bob's restart",
            restarted.elapsed()
        );

        let inbox = texts(&history(&bob, "alice")?, "in");
        let inbox_set: BTreeSet<&String> = inbox.iter().collect();
        let lost: Vec<&String> = before_kill
            .iter()
            .filter(|t| !inbox_set.contains(t))
            .collect();
        ensure!(
            lost.is_empty(),
            "acknowledged before the kill but missing after bob's restart: {lost:?}"
        );
        check_exactly_once_in_order("bob's inbox after the restart", &inbox, &all)?;
        check_sender_view("alice's sent messages", &history(&alice, "bob")?, &all)?;
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().unwrap();
    bob.stop().unwrap();
}

// ---- a recording TCP relay ------------------------------------------------------------------

/// Most bytes a relay records (the rest is forwarded, not kept).
const RELAY_RECORD_CAP: usize = 64 * 1024 * 1024;
/// A relay's threads stop after this long even if the test forgot to drop it.
const RELAY_MAX_LIFETIME: Duration = Duration::from_secs(300);
/// Most connections a relay accepts.
const RELAY_MAX_CONNECTIONS: usize = 1_000;
/// How often blocked relay threads look at the stop flag.
const RELAY_TICK: Duration = Duration::from_millis(50);

/// The bytes of one direction of one connection.
type Recording = Arc<Mutex<Vec<u8>>>;

/// Locks, also after a panic elsewhere (the data is plain bytes).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forwards `127.0.0.1:port` to `127.0.0.1:target`, keeping every byte of each direction of
/// each connection. Dropping it stops and joins its threads.
struct Relay {
    port: u16,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<Recording>>>,
    total: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: Option<JoinHandle<()>>,
}

impl Relay {
    fn start(target: u16) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let total = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, streams, total, connections, threads) = (
                stop.clone(),
                streams.clone(),
                total.clone(),
                connections.clone(),
                threads.clone(),
            );
            std::thread::spawn(move || {
                let born = Instant::now();
                while !stop.load(Ordering::SeqCst)
                    && born.elapsed() < RELAY_MAX_LIFETIME
                    && connections.load(Ordering::SeqCst) < RELAY_MAX_CONNECTIONS
                {
                    let Ok((inbound, _)) = listener.accept() else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    let Ok(outbound) = TcpStream::connect_timeout(
                        &([127, 0, 0, 1], target).into(),
                        Duration::from_secs(5),
                    ) else {
                        continue; // dropping `inbound` closes it, as a dead target would
                    };
                    connections.fetch_add(1, Ordering::SeqCst);
                    let pumps = [
                        (inbound.try_clone(), outbound.try_clone()),
                        (outbound.try_clone(), inbound.try_clone()),
                    ];
                    for (from, to) in pumps {
                        let (Ok(from), Ok(to)) = (from, to) else {
                            continue;
                        };
                        let record = Arc::new(Mutex::new(Vec::new()));
                        lock(&streams).push(record.clone());
                        let (stop, total) = (stop.clone(), total.clone());
                        let handle =
                            std::thread::spawn(move || pump(from, to, &record, &stop, &total));
                        lock(&threads).push(handle);
                    }
                }
            })
        };
        Ok(Self {
            port,
            stop,
            streams,
            total,
            connections,
            threads,
            acceptor: Some(acceptor),
        })
    }

    fn addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    fn total_bytes(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// A copy of every recorded stream (one per direction per connection).
    fn recorded(&self) -> Vec<Vec<u8>> {
        lock(&self.streams)
            .iter()
            .map(|s| lock(s).clone())
            .collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to`, recording, until EOF, an error, the stop flag or the lifetime bound.
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    record: &Mutex<Vec<u8>>,
    stop: &AtomicBool,
    total: &AtomicUsize,
) {
    let born = Instant::now();
    let _ = from.set_read_timeout(Some(RELAY_TICK));
    let _ = to.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::SeqCst) && born.elapsed() < RELAY_MAX_LIFETIME {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if total.fetch_add(n, Ordering::SeqCst) < RELAY_RECORD_CAP {
                    lock(record).extend_from_slice(&buf[..n]);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Where any 16-character piece of `marker` (as UTF-8, UTF-16LE or UTF-16BE) occurs in
/// `streams`: "stream N offset M (encoding)".
fn find_marker(streams: &[Vec<u8>], marker: &str) -> Vec<String> {
    const CHARS: usize = 16;
    let utf16le: Vec<u8> = marker.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let utf16be: Vec<u8> = marker.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let encodings: [(&str, &[u8], usize); 3] = [
        ("UTF-8", marker.as_bytes(), CHARS),
        ("UTF-16LE", &utf16le, 2 * CHARS),
        ("UTF-16BE", &utf16be, 2 * CHARS),
    ];
    let mut hits = Vec::new();
    for (name, bytes, window) in encodings {
        let needles: HashSet<&[u8]> = bytes.windows(window).collect();
        for (i, stream) in streams.iter().enumerate() {
            if let Some(offset) = stream.windows(window).position(|w| needles.contains(w)) {
                hits.push(format!("stream {i} offset {offset} ({name})"));
            }
        }
    }
    hits
}

/// A marker no traffic could contain by chance.
fn unique_marker(label: &str) -> String {
    let state = std::collections::hash_map::RandomState::new();
    let mut hex = String::new();
    for i in 0..2u64 {
        let mut h = state.build_hasher();
        h.write_u64(i);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        hex.push_str(&format!("{:016x}", h.finish()));
    }
    format!("PLAINTEXT-MARKER-{label}-{hex}")
}

/// Starts `node` listening on `127.0.0.1:port` only and advertising `announce` only.
fn start_behind(node: &mut TestNode, port: u16, announce: &str) -> anyhow::Result<()> {
    node.spawn(
        &[
            "--listen",
            &format!("/ip4/127.0.0.1/tcp/{port}"),
            "--api",
            "127.0.0.1:0",
            "--no-mdns",
            "--announce",
            announce,
        ]
        .map(String::from),
    )?;
    node.wait_ready()
}

/// The addresses in a node's ticket.
fn ticket_addrs(node: &TestNode) -> anyhow::Result<Vec<String>> {
    let ticket: ContactTicket = node.api_get("/v1/invite")?["ticket"]
        .as_str()
        .context("invite has no ticket")?
        .parse()?;
    Ok(ticket
        .devices()
        .iter()
        .flat_map(|d| d.addrs.clone())
        .collect())
}

#[test]
fn the_leak_detector_finds_pieces_of_a_marker() {
    let marker = unique_marker("self-test");
    let piece = &marker[20..36];
    let mut stream = b"noise".to_vec();
    stream.extend_from_slice(piece.as_bytes());
    assert_eq!(find_marker(&[stream], &marker).len(), 1);
    let utf16: Vec<u8> = piece.encode_utf16().flat_map(u16::to_le_bytes).collect();
    // (found as UTF-16LE, and as UTF-16BE one byte off)
    assert!(!find_marker(&[b"x".to_vec(), utf16], &marker).is_empty());
    assert!(find_marker(&[marker.as_bytes()[..15].to_vec()], &marker).is_empty());
}

#[test]
fn no_plaintext_crosses_the_wire() {
    let mut alice = TestNode::init(bin(), "alice").unwrap();
    let mut bob = TestNode::init(bin(), "bob").unwrap();
    let result = (|| -> anyhow::Result<()> {
        // Each node listens on a port only its relay knows and advertises only the relay:
        // every connection between them, whoever dials, goes through a recording relay.
        let (alice_port, bob_port) = (free_loopback_port()?, free_loopback_port()?);
        let to_alice = Relay::start(alice_port)?;
        let to_bob = Relay::start(bob_port)?;
        start_behind(&mut alice, alice_port, &to_alice.addr())?;
        start_behind(&mut bob, bob_port, &to_bob.addr())?;
        for (node, relay) in [(&alice, &to_alice), (&bob, &to_bob)] {
            let addrs = ticket_addrs(node)?;
            ensure!(
                !addrs.is_empty() && addrs.iter().all(|a| a.starts_with(&relay.addr())),
                "the ticket must carry only the relay address {}: {addrs:?}",
                relay.addr()
            );
        }
        befriend(&alice, "alice", &bob, "bob")?;

        let to_bob_marker = unique_marker("to-bob");
        let to_alice_marker = unique_marker("to-alice");
        let a_texts: Vec<String> = (0..5)
            .map(|i| format!("message {i} for bob: {to_bob_marker}"))
            .collect();
        let b_texts = vec![format!("bob's reply: {to_alice_marker}")];
        let bytes_before = to_bob.total_bytes() + to_alice.total_bytes();
        for t in &a_texts {
            send(&alice, "bob", t)?;
        }
        wait_delivered(&alice, "bob", &a_texts)?;
        for t in &b_texts {
            send(&bob, "alice", t)?;
        }
        wait_delivered(&bob, "alice", &b_texts)?;
        let bytes_after = to_bob.total_bytes() + to_alice.total_bytes();
        eprintln!(
            "relays: to bob {} connection(s) {} bytes, to alice {} connection(s) {} bytes; \
             {} bytes while the 6 messages were exchanged",
            to_bob.connections(),
            to_bob.total_bytes(),
            to_alice.connections(),
            to_alice.total_bytes(),
            bytes_after - bytes_before
        );
        // Which relay carries the conversation depends on who dialled first (a connection
        // bob opened to alice carries alice's messages too); that it went through one is what
        // counts, and both are searched for plaintext below.
        ensure!(
            bytes_after > bytes_before,
            "the messages did not go through the relays"
        );

        // The receivers read the markers, so a leak would have been there to find.
        check_exactly_once_in_order(
            "bob's inbox",
            &texts(&history(&bob, "alice")?, "in"),
            &a_texts,
        )?;
        check_exactly_once_in_order(
            "alice's inbox",
            &texts(&history(&alice, "bob")?, "in"),
            &b_texts,
        )?;

        let mut recorded = to_bob.recorded();
        recorded.extend(to_alice.recorded());
        for marker in [&to_bob_marker, &to_alice_marker] {
            let hits = find_marker(&recorded, marker);
            ensure!(
                hits.is_empty(),
                "plaintext of {marker} on the wire: {hits:?}"
            );
        }
        Ok(())
    })();
    if let Err(e) = result {
        fail_with_logs(&e, &[&alice, &bob]);
    }
    alice.stop().unwrap();
    bob.stop().unwrap();
}
