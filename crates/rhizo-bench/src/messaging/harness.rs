//! The in-process nodes, their local API clients, event streams and the warm pair the
//! messaging benchmarks (B2, B3, B4, B14, B15) run on.

use super::*;

// --- a node and its API --------------------------------------------------------------------

/// A running in-process rhizo node.
pub(super) struct Node {
    pub(super) api: Api,
    /// Listen address ending in `/p2p/<peer id>`.
    pub(super) listen: Multiaddr,
    #[allow(dead_code)]
    pub(super) peer_id: PeerId,
    pub(super) reports: mpsc::Receiver<NodeReport>,
    /// Whether a `PeerConnected` report was seen.
    pub(super) connected: bool,
    pub(super) stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub(super) task: Option<JoinHandle<Result<(), rhizo_node::NodeError>>>,
    pub(super) _dir: tempfile::TempDir,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

/// Where data dirs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disk {
    /// `$TMPDIR` (a real disk on the benchmark machine).
    Tmp,
    /// `/dev/shm` (tmpfs: `fsync` costs nothing).
    Tmpfs,
}

/// The node's database: plain SQLite, or SQLCipher with sealed key files (issue 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StoreKind {
    /// Plain SQLite.
    Plain,
    /// A vault with the passphrase in the file named by `RHIZO_PASSPHRASE_FILE`.
    Encrypted,
}

impl StoreKind {
    /// What `--encrypted-store` chose for every benchmark.
    pub(super) fn from_flag() -> Self {
        if super::ENCRYPTED_STORE.load(std::sync::atomic::Ordering::Relaxed) {
            Self::Encrypted
        } else {
            Self::Plain
        }
    }
}

impl Node {
    /// Creates an identity named `name` and starts a node on it.
    pub(super) async fn start(
        name: &str,
        bootstrap: Option<&Multiaddr>,
        disk: Disk,
    ) -> anyhow::Result<Self> {
        Self::start_with(name, bootstrap, disk, ConfigLayer::default()).await
    }

    /// [`start`](Self::start), with the settings of `extra` over the defaults.
    pub(super) async fn start_with(
        name: &str,
        bootstrap: Option<&Multiaddr>,
        disk: Disk,
        extra: ConfigLayer,
    ) -> anyhow::Result<Self> {
        Self::start_on(name, bootstrap, disk, extra, StoreKind::from_flag()).await
    }

    /// [`start_with`](Self::start_with) on a store of the given kind (whatever
    /// `--encrypted-store` says).
    pub(super) async fn start_on(
        name: &str,
        bootstrap: Option<&Multiaddr>,
        disk: Disk,
        extra: ConfigLayer,
        store: StoreKind,
    ) -> anyhow::Result<Self> {
        let (dir, data, data_dir) = fresh_data_dir(disk, store)?;
        let now = u64::try_from(rhizo_node::unix_now()).unwrap_or(0);
        let InitOutcome::Created(_) = data_dir.init(now)? else {
            bail!("a fresh data dir already had an identity");
        };
        data_dir
            .open_store()?
            .write(|tx| tx.set_meta(META_DISPLAY_NAME, name))?;
        Self::launch(name, (dir, data, data_dir), bootstrap, extra).await
    }

    /// A device waiting to be linked (`rhizo init --link`, then `run`), bootstrapping from
    /// `bootstrap`: its link node runs (see [`wait_full_node`](Self::wait_full_node)).
    pub(super) async fn start_link(bootstrap: &Multiaddr, disk: Disk) -> anyhow::Result<Self> {
        let (dir, data, data_dir) = fresh_data_dir(disk, StoreKind::from_flag())?;
        data_dir.init_link()?;
        let dirs = (dir, data, data_dir);
        Self::launch("new device", dirs, Some(bootstrap), ConfigLayer::default()).await
    }

    /// Runs the node on an initialised data dir and waits for its API and listen address.
    async fn launch(
        name: &str,
        (dir, data, data_dir): (tempfile::TempDir, std::path::PathBuf, DataDir),
        bootstrap: Option<&Multiaddr>,
        extra: ConfigLayer,
    ) -> anyhow::Result<Self> {
        let config = Config::resolve([
            extra,
            ConfigLayer {
                data_dir: Some(data.clone()),
                listen: Some(vec!["/ip4/127.0.0.1/tcp/0".into()]),
                bootstrap: Some(bootstrap.map(ToString::to_string).into_iter().collect()),
                mdns: Some(false),
                api: Some("127.0.0.1:0".into()),
                ..ConfigLayer::default()
            },
        ])?;
        let (report_tx, mut reports) = mpsc::channel(256);
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rhizo_node::run(
            config,
            async move {
                let _ = stop_rx.await;
            },
            move |r| {
                let _ = report_tx.try_send(r);
            },
        ));
        let mut api_addr = None;
        let mut listen = None;
        let mut peer = None;
        let mut connected = false;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while api_addr.is_none() || listen.is_none() {
            let report = tokio::time::timeout_at(deadline, reports.recv())
                .await
                .map_err(|_| anyhow!("node {name} did not start in time"))?;
            match report {
                Some(NodeReport::Ready {
                    api_addr: a,
                    peer_id,
                    ..
                }) => {
                    api_addr = Some(a);
                    peer = Some(peer_id);
                }
                Some(NodeReport::Listening(addr)) => listen = Some(addr),
                Some(NodeReport::PeerConnected(_)) => connected = true,
                Some(_) => {}
                None => {
                    let outcome = task.await;
                    bail!("node {name} stopped while starting: {outcome:?}");
                }
            }
        }
        let (Some(api_addr), Some(listen), Some(peer_id)) = (api_addr, listen, peer) else {
            bail!("node {name} did not report its addresses");
        };
        let token = data_dir.read_api_token()?;
        Ok(Self {
            api: Api::new(format!("http://{api_addr}"), token)?,
            listen,
            peer_id,
            reports,
            connected,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        })
    }

    /// On a device that was waiting to be linked: waits until its full node is ready (the
    /// link node stops a moment after the link) and points [`Self::api`] at its API.
    pub(super) async fn wait_full_node(&mut self) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        let mut linked = false;
        loop {
            let report = tokio::time::timeout_at(deadline, self.reports.recv())
                .await
                .map_err(|_| anyhow!("the linked device's full node did not start in time"))?;
            match report {
                Some(NodeReport::Linked { .. }) => linked = true,
                Some(NodeReport::Ready { api_addr, .. }) if linked => {
                    let token = self.api.token.clone();
                    self.api = Api::new(format!("http://{api_addr}"), token)?;
                    return Ok(());
                }
                Some(_) => {}
                None => bail!("the linked device's node stopped"),
            }
        }
    }

    /// Waits until the node reports a connection to some peer.
    pub(super) async fn wait_connected(&mut self) -> anyhow::Result<()> {
        if self.connected {
            return Ok(());
        }
        tokio::time::timeout(START_TIMEOUT, async {
            loop {
                match self.reports.recv().await {
                    Some(NodeReport::PeerConnected(_)) => return Ok(()),
                    Some(_) => {}
                    None => bail!("the node stopped"),
                }
            }
        })
        .await
        .context("no peer connected in time")?
    }

    /// Stops the node and waits for it (bounded).
    pub(super) async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A fresh temp dir (on `disk`) and the data dir inside it, not initialised.
fn fresh_data_dir(
    disk: Disk,
    store: StoreKind,
) -> anyhow::Result<(tempfile::TempDir, std::path::PathBuf, DataDir)> {
    let dir = match disk {
        Disk::Tmp => tempfile::Builder::new().prefix("rhizo-bench-").tempdir()?,
        Disk::Tmpfs => tempfile::Builder::new()
            .prefix("rhizo-bench-")
            .tempdir_in("/dev/shm")?,
    };
    let data = dir.path().join("data");
    let data_dir = if store == StoreKind::Encrypted {
        // The node's start reads the same file (RHIZO_PASSPHRASE_FILE) to unlock it.
        let passphrase = rhizo_node::vault::Passphrase::from_env_or_prompt(
            rhizo_node::vault::PASSPHRASE_FILE_ENV,
            "Passphrase for the benchmark's stores: ",
        )?;
        DataDir::new(&data).create_vault(&passphrase, rhizo_node::vault::KdfParams::DEFAULT)?
    } else {
        DataDir::new(&data)
    };
    Ok((dir, data, data_dir))
}

/// A client of one node's local API.
#[derive(Debug, Clone)]
pub(super) struct Api {
    pub(super) base: String,
    pub(super) token: String,
    pub(super) http: reqwest::Client,
}

impl Api {
    pub(super) fn new(base: String, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self { base, token, http })
    }

    pub(super) async fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> anyhow::Result<T> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: {text}"))
    }

    /// POSTs `body`; the status and the body text.
    pub(super) async fn post_raw(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        Ok((status, response.text().await?))
    }

    pub(super) async fn post<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<T> {
        let (status, text) = self.post_raw(path, body).await?;
        if !status.is_success() {
            bail!("POST {path}: {status} {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path}: {text}"))
    }

    /// `n` timed `GET /health` round trips (ms).
    pub(super) async fn health_round_trips(&self, n: usize) -> anyhow::Result<Vec<f64>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let response = self
                .http
                .get(format!("{}/v1/health", self.base))
                .send()
                .await?;
            response.bytes().await?;
            out.push(ms(start.elapsed()));
        }
        Ok(out)
    }

    /// Sends `text` to `contact`; returns the message id.
    /// The node's group-commit and batching counters (`GET /stats`).
    pub(super) async fn messaging_stats(
        &self,
    ) -> anyhow::Result<rhizo_node::messaging::MessagingStats> {
        let stats: rhizo_node::api::StatsResponse = self.get("/v1/stats").await?;
        Ok(stats.messaging)
    }

    pub(super) async fn send(&self, contact: &str, text: &str) -> anyhow::Result<i64> {
        let view: MessageView = self
            .post(
                &format!("/v1/conversations/{contact}/messages"),
                &TextBody { text: text.into() },
            )
            .await?;
        Ok(view.id)
    }

    /// Like [`send`](Self::send), retrying while the contact's KeyPackages are not in the DHT.
    pub(super) async fn send_when_ready(&self, contact: &str, text: &str) -> anyhow::Result<i64> {
        let deadline = Instant::now() + KEY_PACKAGES_TIMEOUT;
        loop {
            let (status, body) = self
                .post_raw(
                    &format!("/v1/conversations/{contact}/messages"),
                    &TextBody { text: text.into() },
                )
                .await?;
            if status.is_success() {
                let view: MessageView = serde_json::from_str(&body)?;
                return Ok(view.id);
            }
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && body.contains("NO_KEY_PACKAGES")
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            bail!("sending to {contact}: {status} {body}");
        }
    }
}

/// Adds each node's ticket on the other: `a` knows `b` as `b_name` and vice versa.
pub(super) async fn befriend(a: &Api, a_name: &str, b: &Api, b_name: &str) -> anyhow::Result<()> {
    let a_ticket: InviteResponse = a.get("/v1/invite").await?;
    let b_ticket: InviteResponse = b.get("/v1/invite").await?;
    let _: AddContactResponse = b
        .post(
            "/v1/contacts",
            &AddContactRequest {
                ticket: Some(a_ticket.ticket),
                uid: None,
                name: Some(a_name.into()),
            },
        )
        .await?;
    let _: AddContactResponse = a
        .post(
            "/v1/contacts",
            &AddContactRequest {
                ticket: Some(b_ticket.ticket),
                uid: None,
                name: Some(b_name.into()),
            },
        )
        .await?;
    Ok(())
}

// --- the event stream ----------------------------------------------------------------------

pub(super) enum Seen {
    State { id: i64, state: String, at: Instant },
    Received { text: String, at: Instant },
    Lagged,
}

/// A node's `GET /v1/events` stream, with the time each state event arrived.
pub(super) struct Events {
    pub(super) rx: mpsc::Receiver<Seen>,
    pub(super) task: JoinHandle<()>,
    pub(super) delivered: HashMap<i64, Instant>,
    pub(super) received: HashMap<String, Instant>,
    pub(super) lagged: bool,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Events {
    /// Subscribes (the subscription exists once this returns).
    pub(super) async fn open(api: &Api) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut response = http
            .get(format!("{}/v1/events", api.base))
            .bearer_auth(&api.token)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("GET /v1/events: {}", response.status());
        }
        let (tx, rx) = mpsc::channel(16 * 1024);
        let task = tokio::spawn(async move {
            let mut buf: Vec<u8> = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                let at = Instant::now();
                buf.extend_from_slice(&chunk);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let line = line.trim_end();
                    let seen = if line.starts_with("event: lagged") || line == "event:lagged" {
                        Some(Seen::Lagged)
                    } else if let Some(data) = line.strip_prefix("data:") {
                        match serde_json::from_str::<ApiEvent>(data.trim_start()) {
                            Ok(ApiEvent::MessageState { id, state, .. }) => {
                                Some(Seen::State { id, state, at })
                            }
                            Ok(ApiEvent::MessageReceived { text, .. }) => {
                                Some(Seen::Received { text, at })
                            }
                            _ => None,
                        }
                    } else {
                        None
                    };
                    if let Some(seen) = seen
                        && tx.send(seen).await.is_err()
                    {
                        return;
                    }
                }
            }
        });
        Ok(Self {
            rx,
            task,
            delivered: HashMap::new(),
            received: HashMap::new(),
            lagged: false,
        })
    }

    pub(super) fn note(&mut self, seen: Seen) -> anyhow::Result<()> {
        match seen {
            Seen::State { id, state, at } => match state.as_str() {
                "delivered" | "read" => {
                    self.delivered.entry(id).or_insert(at);
                }
                "failed" => bail!("message {id} failed"),
                _ => {}
            },
            Seen::Received { text, at } => {
                self.received.entry(text).or_insert(at);
            }
            Seen::Lagged => self.lagged = true,
        }
        Ok(())
    }

    /// When a message with `text` was reported received (waits for it).
    pub(super) async fn wait_received(&mut self, text: &str) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        loop {
            if let Some(at) = self.received.remove(text) {
                return Ok(at);
            }
            let seen = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow!("{text:?} not received in time"))?
                .ok_or_else(|| anyhow!("the event stream ended"))?;
            self.note(seen)?;
        }
    }

    /// When message `id` was reported delivered (waits for it).
    pub(super) async fn wait_delivered(&mut self, id: i64) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        loop {
            if let Some(at) = self.delivered.get(&id) {
                return Ok(*at);
            }
            let seen = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| anyhow!("message {id} not delivered in time"))?
                .ok_or_else(|| anyhow!("the event stream ended"))?;
            self.note(seen)?;
        }
    }

    /// When the last of `ids` was reported delivered (waits for all). If the stream lagged,
    /// falls back to polling the history (then the time is when the poll saw them).
    pub(super) async fn wait_all_delivered(
        &mut self,
        ids: &[i64],
        api: &Api,
        contact: &str,
    ) -> anyhow::Result<Instant> {
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        loop {
            if ids.iter().all(|id| self.delivered.contains_key(id)) {
                return Ok(ids
                    .iter()
                    .filter_map(|id| self.delivered.get(id).copied())
                    .max()
                    .unwrap_or_else(Instant::now));
            }
            if self.lagged {
                let history: Vec<MessageView> = api
                    .get(&format!(
                        "/v1/conversations/{contact}/messages?limit=100000"
                    ))
                    .await?;
                let now = Instant::now();
                for m in history {
                    if m.direction == "out" && (m.state == "delivered" || m.state == "read") {
                        self.delivered.entry(m.id).or_insert(now);
                    }
                }
                if ids.iter().all(|id| self.delivered.contains_key(id)) {
                    continue;
                }
            }
            match tokio::time::timeout(Duration::from_millis(250), self.rx.recv()).await {
                Ok(Some(seen)) => self.note(seen)?,
                Ok(None) => bail!("the event stream ended"),
                Err(_) => {}
            }
            if tokio::time::Instant::now() > deadline {
                let done = ids
                    .iter()
                    .filter(|id| self.delivered.contains_key(id))
                    .count();
                bail!("only {done} of {} messages delivered in time", ids.len());
            }
        }
    }
}

// --- a pair of nodes -----------------------------------------------------------------------

/// Alice and Bob, connected, contacts of each other, with alice's event stream open.
pub(super) struct Pair {
    pub(super) alice: Node,
    pub(super) bob: Node,
    pub(super) events: Events,
    pub(super) bob_events: Events,
}

impl Pair {
    pub(super) async fn start(disk: Disk) -> anyhow::Result<Self> {
        Self::start_on(disk, StoreKind::from_flag()).await
    }

    /// [`start`](Self::start) with both nodes on stores of kind `store`.
    pub(super) async fn start_on(disk: Disk, store: StoreKind) -> anyhow::Result<Self> {
        let none = ConfigLayer::default;
        let alice = Node::start_on("alice", None, disk, none(), store).await?;
        let mut bob = Node::start_on("bob", Some(&alice.listen), disk, none(), store).await?;
        bob.wait_connected().await?;
        let events = Events::open(&alice.api).await?;
        let bob_events = Events::open(&bob.api).await?;
        befriend(&alice.api, "alice", &bob.api, "bob").await?;
        Ok(Self {
            alice,
            bob,
            events,
            bob_events,
        })
    }

    /// Sends the first message (creates the MLS conversation; waits for KeyPackages) and
    /// `warmup` more, each delivered before the next. Returns the first message's time (ms).
    pub(super) async fn warm_up(&mut self, warmup: usize) -> anyhow::Result<f64> {
        let start = Instant::now();
        let id = self.alice.api.send_when_ready("bob", "hello bob").await?;
        let first = self.events.wait_delivered(id).await?;
        for i in 0..warmup {
            let id = self.alice.api.send("bob", &format!("warm-up {i}")).await?;
            self.events.wait_delivered(id).await?;
        }
        Ok(ms(first - start))
    }

    /// `n` sequential sends, each timed in stages (ms).
    pub(super) async fn sequential(&mut self, n: usize, tag: &str) -> anyhow::Result<Stages> {
        let mut stages = Stages::default();
        for i in 0..n {
            let text = format!("{tag} #{i}");
            let start = Instant::now();
            let id = self.alice.api.send("bob", &text).await?;
            let posted = Instant::now();
            let delivered = self.events.wait_delivered(id).await?;
            let received = self.bob_events.wait_received(&text).await?;
            stages
                .total
                .push(ms(delivered.saturating_duration_since(start)));
            stages.post.push(ms(posted - start));
            stages
                .to_receiver
                .push(ms(received.saturating_duration_since(posted)));
            stages
                .receipt_back
                .push(ms(delivered.saturating_duration_since(received)));
        }
        Ok(stages)
    }

    /// `n` messages of `size` bytes POSTed with [`B3_CONCURRENCY`] in flight; returns
    /// (delivered msgs/s, POSTed msgs/s).
    pub(super) async fn pipelined(
        &mut self,
        n: usize,
        size: usize,
        tag: &str,
    ) -> anyhow::Result<(f64, f64, Grouping)> {
        let api = self.alice.api.clone();
        let before = (
            self.alice.api.messaging_stats().await?,
            self.bob.api.messaging_stats().await?,
        );
        let start = Instant::now();
        let ids: Vec<i64> = futures::stream::iter(0..n)
            .map(|i| {
                let api = api.clone();
                let text = padded(&format!("{tag} #{i:06} "), size);
                async move { api.send("bob", &text).await }
            })
            .buffer_unordered(B3_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let posted = start.elapsed();
        let last = self
            .events
            .wait_all_delivered(&ids, &self.alice.api, "bob")
            .await?;
        let total = last.saturating_duration_since(start);
        let (a, b) = (
            self.alice.api.messaging_stats().await?,
            self.bob.api.messaging_stats().await?,
        );
        let grouping = Grouping {
            send_commits: a.send_commits - before.0.send_commits,
            grouped_sends: a.grouped_sends - before.0.grouped_sends,
            batches_received: b.batches_received - before.1.batches_received,
            batched_envelopes_received: b.batched_envelopes_received
                - before.1.batched_envelopes_received,
        };
        Ok((
            n as f64 / total.as_secs_f64(),
            n as f64 / posted.as_secs_f64(),
            grouping,
        ))
    }

    pub(super) async fn shutdown(self) {
        drop(self.events);
        // Bob first: alice's outbox then has nobody to talk to.
        self.bob.shutdown().await;
        self.alice.shutdown().await;
    }
}

/// Per-message times of sequential sends (ms).
#[derive(Debug, Clone, Default)]
pub(super) struct Stages {
    /// POST → `delivered` event (alice).
    pub(super) total: Vec<f64>,
    /// The POST (queue: MLS encrypt, durable store).
    pub(super) post: Vec<f64>,
    /// POST returned → `message_received` event at bob (outbox, network, verify, decrypt,
    /// durable store at bob).
    pub(super) to_receiver: Vec<f64>,
    /// Bob's event → alice's `delivered` event (signed receipt back, alice's durable update).
    pub(super) receipt_back: Vec<f64>,
}

/// `prefix` padded with `x` to exactly `size` bytes (ASCII).
pub(super) fn padded(prefix: &str, size: usize) -> String {
    let mut s: String = prefix.chars().take(size).collect();
    while s.len() < size {
        s.push('x');
    }
    s
}
