//! The wake-command supervisor with real shell commands (each records its start in a file),
//! and the presence rule on tokio's paused clock.

use std::sync::atomic::AtomicU32;

use super::*;
use crate::clock::{PausedClock, SystemClock};

/// A bound on every wait: generous for a loaded machine, never reached when things work.
const WAIT: Duration = Duration::from_secs(60);

struct Harness {
    dir: tempfile::TempDir,
    events: broadcast::Sender<ApiEvent>,
    counts: watch::Receiver<WakeCounts>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// A supervisor running `sh -c BODY` (with `$DIR` the temp dir); `pending` answers whether
/// work is left at each exit.
fn harness(
    body: &str,
    presence: Arc<AgentPresence>,
    pending: impl Fn() -> bool + Send + 'static,
    max_log_bytes: u64,
) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("wake.sh");
    let body = body.replace("$DIR", &dir.path().display().to_string());
    std::fs::write(&script, body).unwrap();
    let settings = WakeSettings {
        command: vec!["sh".into(), script.display().to_string()],
        log: dir.path().join(WAKE_LOG_FILE),
        max_log_bytes,
    };
    let (events, rx) = broadcast::channel(16);
    let (counts_tx, counts) = watch::channel(WakeCounts::default());
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(supervise(
        settings,
        presence,
        rx,
        move || std::future::ready(pending()),
        counts_tx,
        stop_rx,
    ));
    Harness {
        dir,
        events,
        counts,
        stop,
        task,
    }
}

fn presence() -> Arc<AgentPresence> {
    Arc::new(AgentPresence::new(Arc::new(SystemClock), false))
}

fn task_received() -> ApiEvent {
    ApiEvent::TaskReceived {
        task_id: "00".repeat(16),
        from: "someone".into(),
        skill: None,
    }
}

impl Harness {
    /// Waits until the counts satisfy `f` (bounded).
    async fn until(&mut self, f: impl Fn(&WakeCounts) -> bool) -> WakeCounts {
        let got = tokio::time::timeout(WAIT, self.counts.wait_for(|c| f(c)))
            .await
            .expect("the supervisor did not get there in time")
            .expect("the supervisor stopped");
        *got
    }

    fn starts(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("starts"))
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(WAKE_LOG_FILE)).unwrap_or_default()
    }

    async fn stop(self) -> tempfile::TempDir {
        self.stop.send(true).unwrap();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the supervisor did not stop")
            .unwrap();
        self.dir
    }
}

#[tokio::test]
async fn a_task_starts_the_command_which_is_not_restarted_when_no_work_is_left() {
    let mut h = harness(
        "echo started >> $DIR/starts\necho to-stdout\necho to-stderr >&2\n",
        presence(),
        || false,
        MAX_WAKE_LOG_BYTES,
    );
    // Other events do nothing.
    h.events
        .send(ApiEvent::ContactAdded { name: "x".into() })
        .unwrap();
    h.events.send(task_received()).unwrap();
    let c = h.until(|c| c.exits >= 1).await;
    assert_eq!((c.triggers, c.starts), (1, 1));
    assert_eq!(h.starts(), 1, "the real command ran once");
    // The next trigger starts it again.
    h.events
        .send(ApiEvent::WakeUp {
            from: "someone".into(),
            reason: "ping".into(),
        })
        .unwrap();
    let c = h.until(|c| c.exits >= 2).await;
    assert_eq!(c.starts, 2);
    assert_eq!(h.starts(), 2);
    // The output reaches the log (copied by its own tasks, maybe after the exit was seen).
    let deadline = tokio::time::Instant::now() + WAIT;
    while !(h.log().contains("to-stdout") && h.log().contains("to-stderr")) {
        assert!(tokio::time::Instant::now() < deadline, "log: {:?}", h.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.stop().await;
}

#[tokio::test]
async fn while_work_is_pending_the_command_is_restarted_with_backoff() {
    let left = Arc::new(AtomicU32::new(2));
    let l = Arc::clone(&left);
    let mut h = harness(
        "echo started >> $DIR/starts\n",
        presence(),
        move || {
            l.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        },
        MAX_WAKE_LOG_BYTES,
    );
    h.events.send(task_received()).unwrap();
    // Two restarts (after 1 s, then 2 s), then the work is done.
    let c = h.until(|c| c.exits >= 3).await;
    assert_eq!(c.starts, 3);
    assert_eq!(h.starts(), 3);
    assert_eq!(left.load(Ordering::Relaxed), 0);
    h.stop().await;
}

#[tokio::test]
async fn an_attached_agent_program_is_not_woken() {
    let presence = presence();
    let stream = presence.stream_opened();
    let mut h = harness(
        "echo started >> $DIR/starts\n",
        Arc::clone(&presence),
        || false,
        MAX_WAKE_LOG_BYTES,
    );
    h.events.send(task_received()).unwrap();
    let c = h.until(|c| c.triggers >= 1).await;
    assert_eq!(c.starts, 0, "an events stream with ?agent=1 is open");
    drop(stream);
    h.events.send(task_received()).unwrap();
    let c = h.until(|c| c.exits >= 1).await;
    assert_eq!(c.starts, 1);
    h.stop().await;
}

#[tokio::test]
async fn the_command_is_killed_when_the_node_stops() {
    let mut h = harness(
        "echo $$ > $DIR/pid.tmp && mv $DIR/pid.tmp $DIR/pid\nexec sleep 600\n",
        presence(),
        || false,
        MAX_WAKE_LOG_BYTES,
    );
    h.events.send(task_received()).unwrap();
    h.until(|c| c.starts >= 1).await;
    let pid_file = h.dir.path().join("pid");
    let deadline = tokio::time::Instant::now() + WAIT;
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            break pid.trim().to_string();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command never wrote its pid"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _dir = h.stop().await;
    let alive = std::process::Command::new("kill")
        .args(["-0", &pid])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success(), "process {pid} still runs");
}

#[tokio::test]
async fn the_log_is_bounded_with_one_rotation() {
    let mut h = harness(
        "i=0; while [ $i -lt 200 ]; do echo 0123456789012345678901234567890123456789; i=$((i+1)); done\n",
        presence(),
        || false,
        1000,
    );
    h.events.send(task_received()).unwrap();
    h.until(|c| c.exits >= 1).await;
    let dir = h.stop().await;
    let log = dir.path().join(WAKE_LOG_FILE);
    let old = dir.path().join(format!("{WAKE_LOG_FILE}.1"));
    for f in [&log, &old] {
        let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
        assert!(len <= 1000, "{} is {len} bytes", f.display());
    }
}

#[tokio::test(start_paused = true)]
async fn presence_counts_streams_recent_worker_calls_and_a2a() {
    let clock: SharedClock = Arc::new(PausedClock::starting_at(1_000_000));
    let p = Arc::new(AgentPresence::new(Arc::clone(&clock), false));
    assert!(!p.is_attached());
    p.touch();
    assert!(p.is_attached());
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(ATTACHED_FOR_MS).unwrap(),
    ))
    .await;
    assert!(p.is_attached(), "still within the window");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert!(!p.is_attached());
    let a = p.stream_opened();
    let b = p.stream_opened();
    assert!(p.is_attached());
    drop(a);
    assert!(p.is_attached());
    drop(b);
    assert!(!p.is_attached());
    assert!(AgentPresence::new(clock, true).is_attached());
}
