//! [`run`]: the daemon's main loop; `inbound` dispatches the network's requests to the
//! services.

mod inbound;
mod peer_book;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use libp2p::{Multiaddr, PeerId};
use rhizo_core::DeviceKey;
use rhizo_net::{NetConfig, NetEvent};
use rhizo_store::{Db, DbConfig, DbError, Store};
use tokio::net::TcpListener;
use tracing::{debug, info, warn};

use crate::{
    Config,
    api::{self, ApiState, PublicKeyResponse},
    channels::Channels,
    clock::{SharedClock, SystemClock},
    data_dir::{DataDir, DataDirError, DeviceIdentity, LocalIdentity},
    mailbox::{Mailbox, MailboxSettings},
    messaging::{Me, Messaging},
    peer_policy::PeerPolicy,
};

/// How long shutdown waits for the network and the API to close.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Inbound `/rhizo/msg/1`, `/rhizo/mailbox/1` and `/rhizo/pex/1` requests processed at once;
/// more are answered `RATE_LIMITED` (an empty sample for peer exchange) at once.
const MAX_INBOUND_IN_FLIGHT: usize = 64;
/// Peer-book updates (sightings, dial outcomes) waiting for the task that writes them; more are
/// dropped: a sighting repeats, and the node's loop never waits for the database.
const PEER_BOOK_QUEUE: usize = 1024;
/// Key of the display name in the `meta` table.
pub const META_DISPLAY_NAME: &str = "display_name";

/// Why the node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The data dir or identity is missing or damaged.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database could not be used.
    #[error(transparent)]
    Store(#[from] rhizo_store::StoreError),
    /// The database's owner refused or failed a job.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The network could not start.
    #[error(transparent)]
    Net(#[from] rhizo_net::NetError),
    /// The API port is taken.
    #[error(
        "cannot start the local API on {0}: the port is already in use (is another rhizo node \
         running? choose another address with --api 127.0.0.1:PORT)"
    )]
    ApiAddrInUse(SocketAddr),
    /// The API could not bind for another reason.
    #[error("cannot start the local API on {addr}: {reason}")]
    ApiBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// Every bootstrap peer failed and the peer book knows nobody else.
    #[error(
        "could not reach any bootstrap peer ({}): check the address and that the peer is \
         running, or start without --bootstrap to run on your own",
        describe_failures(.0)
    )]
    BootstrapUnreachable(Vec<(Multiaddr, String)>),
    /// A blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(String),
}

fn describe_failures(failed: &[(Multiaddr, String)]) -> String {
    failed
        .iter()
        .take(3)
        .map(|(_, why)| why.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the node reports to its caller (the CLI prints these).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum NodeReport {
    /// The node is up.
    Ready {
        /// User id.
        uid: String,
        /// Device PeerId.
        peer_id: PeerId,
        /// Where the local API listens.
        api_addr: SocketAddr,
    },
    /// A listen address is bound (ends in `/p2p/<peer id>`: give it to others as a bootstrap).
    Listening(Multiaddr),
    /// A peer connected.
    PeerConnected(PeerId),
    /// Some (not all) bootstrap peers failed.
    BootstrapPartlyFailed(Vec<(Multiaddr, String)>),
    /// This device, waiting to be linked, was linked to an identity.
    Linked {
        /// The identity's UID.
        uid: String,
    },
}

/// The services the node runs (each cheap to clone), and the bound on inbound requests
/// handled at once.
#[derive(Clone)]
struct Services {
    client: rhizo_net::Client,
    db: Db,
    guard: PeerPolicy,
    mailbox: Mailbox,
    messaging: Messaging,
    channels: Channels,
    files: crate::files::Files,
    /// Inbound requests are handled concurrently, but never more than this many at once.
    inbound_limit: Arc<tokio::sync::Semaphore>,
}

/// The background tasks, stopped in order at shutdown.
struct Background {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    peer_book: tokio::sync::mpsc::Sender<NetEvent>,
    peer_book_task: tokio::task::JoinHandle<()>,
}

/// Runs the node until `shutdown` completes, then closes everything in order.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
    mut report: impl FnMut(NodeReport) + Send,
) -> Result<(), NodeError> {
    // An encrypted data dir is unlocked first (RHIZO_PASSPHRASE_FILE, or typed at the terminal);
    // an interrupted passphrase change is finished or undone on the way.
    let dir = DataDir::new(config.data_dir.clone())
        .unlocked()
        .map_err(DataDirError::from)?;
    tokio::pin!(shutdown);
    let identity = match dir.load_device()? {
        DeviceIdentity::Primary(identity) => NodeIdentity::primary(*identity),
        DeviceIdentity::Companion(identity) => NodeIdentity::companion(identity),
        // A device waiting to be linked serves only `/rhizo/link/1` (see `devices`), then,
        // once linked, runs as the full node of a linked device.
        pending => {
            let linked = crate::devices::run_link_node(
                config.clone(),
                dir.clone(),
                pending,
                shutdown.as_mut(),
                &mut report,
            )
            .await?;
            match (linked, dir.load_device()?) {
                (true, DeviceIdentity::Companion(identity)) => NodeIdentity::companion(identity),
                _ => return Ok(()),
            }
        }
    };
    let _lock = dir.lock()?;
    let peer_id = identity.peer_id();
    let uid = identity.uid().to_string();
    let public_key = public_key_response(&identity);
    let clock: SharedClock = Arc::new(SystemClock);
    let (db, name, known_peers) = open_database(&dir, clock.now_ms()).await?;
    let had_known_peers = !known_peers.is_empty();
    info!(%peer_id, known = known_peers.len(), "starting node");
    let (client, mut net_events, event_loop) =
        start_network(&config, identity.libp2p_keypair(), known_peers)?;
    let services =
        start_services(&config, identity, name.clone(), db, client, clock.clone()).await?;
    let (listener, api_addr) = bind_api(&config).await?;
    let token = dir.load_or_create_api_token()?;
    let state = ApiState::new(
        services.client.clone(),
        services.db.clone(),
        services.messaging.clone(),
        services.channels.clone(),
        services.guard.clone(),
        services.files.clone(),
        &token,
        public_key,
        name,
        config.mdns,
        crate::api::ws::LightApi::open(dir.path(), api_addr)?,
    );
    drop(token);

    let net_task = tokio::spawn(event_loop.run());
    let background = Background::spawn(&services, &config, peer_id, clock).await;
    crate::gateway::start(config.gateway, state.clone(), &services.client).await?;
    let (api_stop_tx, api_task) = spawn_api(listener, state);
    dir.write_api_addr(api_addr)?;
    info!(%api_addr, "local API listening");
    report(NodeReport::Ready {
        uid,
        peer_id,
        api_addr,
    });

    // The node's event loop. It never waits on the network's event loop (which never waits on
    // it either): answers and bans are handed over with `try_` calls, request handlers run as
    // tasks bounded by `inbound_limit` (a full set answers RATE_LIMITED at once), and the peer
    // book is written by its own task.
    let outcome = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            event = net_events.recv() => {
                let Some(event) = event else {
                    break Err(NodeError::Net(rhizo_net::NetError::Stopped));
                };
                let Some(other) = inbound::dispatch(&services, event).await else {
                    continue;
                };
                let peer_book = &background.peer_book;
                if let Err(e) = handle_net_event(other, peer_book, peer_id, had_known_peers, &mut report) {
                    break Err(e);
                }
            }
        }
    };

    info!("shutting down");
    dir.remove_api_addr();
    background.stop().await;
    crate::restored::end_run(&services.db, &dir).await;
    let _ = services.client.shutdown().await;
    let _ = api_stop_tx.send(());
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
        let _ = net_task.await;
        let _ = api_task.await;
    })
    .await;
    outcome
}

/// Opens the database (and creates or upgrades the MLS tables in the same file), raises the
/// sequence floor for a start at `now_ms` (so a database restored from an older copy never
/// sends a sequence number twice: protocol.md §13), finds whether it was restored (then every
/// group gets a fresh epoch before we send in it: [`crate::restored`]), reads what the start
/// needs, and hands the store to its one owner.
async fn open_database(
    dir: &DataDir,
    now_ms: i64,
) -> Result<(Db, Option<String>, Vec<(PeerId, Vec<Multiaddr>)>), NodeError> {
    let data_dir = dir.clone();
    let store = blocking(move || -> Result<Store, NodeError> {
        // SQLCipher with the vault key when the data dir is encrypted, plain SQLite otherwise.
        let mut store = data_dir.open_store()?;
        // Create or upgrade the MLS tables (openmls' storage) in the same file, once.
        store.migrate_mls()?;
        store.write(|tx| tx.raise_sequence_floor(now_ms))?;
        crate::restored::start_run(&mut store, &data_dir, now_ms)?;
        Ok(store)
    })
    .await??;
    let name = store.read().get_meta(META_DISPLAY_NAME)?;
    let known_peers = peer_book::load_known_peers(store.read())?;
    // The database's one owner from here on: every service reads and writes through it.
    let db = Db::start(store, DbConfig::default())?;
    Ok((db, name, known_peers))
}

/// Starts the network's event loop (not yet running) with the settings of `config`.
pub(crate) fn start_network(
    config: &Config,
    keypair: libp2p::identity::Keypair,
    known_peers: Vec<(PeerId, Vec<Multiaddr>)>,
) -> Result<
    (
        rhizo_net::Client,
        tokio::sync::mpsc::Receiver<NetEvent>,
        rhizo_net::EventLoop,
    ),
    NodeError,
> {
    let ip_filter = match &config.geoip_db {
        Some(db) if !config.blocked_countries.is_empty() => Some(rhizo_net::IpFilter(
            crate::geoip::country_filter(db, &config.blocked_countries)
                .map_err(|e| NodeError::Task(e.to_string()))?,
        )),
        _ => None,
    };
    Ok(rhizo_net::start(NetConfig {
        keypair,
        listen: config.listen.clone(),
        bootstrap: config.bootstrap.clone(),
        known_peers,
        mdns: config.mdns,
        announce: config.announce.clone(),
        agent_version: crate::presence::agent_version(config.hide_presence),
        batch_frames: config.batch_frames,
        idle_connection_timeout: rhizo_net::DEFAULT_IDLE_CONNECTION_TIMEOUT,
        record_validator: std::sync::Arc::new(crate::record_validator::CoreRecordValidator),
        limits: rhizo_net::NetLimits {
            max_inbound: u32::try_from(config.max_inbound).unwrap_or(u32::MAX),
            max_outbound: u32::try_from(config.max_outbound).unwrap_or(u32::MAX),
            max_per_ip: u32::try_from(config.max_per_ip).unwrap_or(u32::MAX),
            ..rhizo_net::NetLimits::default()
        },
        trusted: config.trusted.clone(),
        banned_peers: config.banned_peers.clone(),
        banned_cidrs: config.banned_cidrs.clone(),
        ip_filter,
        routing_filter: None,
        disjoint_paths: true,
        relay_server: config.relay,
        upnp: config.upnp,
        relays: config.relays.clone(),
    })?)
}

/// The mailbox settings `config` asks for.
fn mailbox_settings(config: &Config) -> MailboxSettings {
    MailboxSettings {
        ttl_secs: u32::try_from(config.mailbox_ttl_days * 24 * 3600)
            .unwrap_or(rhizo_core::mailbox::MAX_TTL_SECS),
        poll: Duration::from_secs(config.mailbox_poll_secs),
        replicate: Duration::from_secs(config.mailbox_replicate_secs),
        quota: rhizo_store::mailbox::MailboxQuota {
            max_count_per_sender: config.mailbox_max_per_sender,
            max_total_bytes: config.mailbox_max_total_mib.saturating_mul(1024 * 1024),
            max_total_count: config.mailbox_max_total_entries,
            ..rhizo_store::mailbox::MailboxQuota::default()
        },
    }
}

/// Starts the peer policy, the mailbox, messaging and channels over `db` and `client`.
async fn start_services(
    config: &Config,
    identity: NodeIdentity,
    name: Option<String>,
    db: Db,
    client: rhizo_net::Client,
    clock: SharedClock,
) -> Result<Services, NodeError> {
    let peer_id = identity.peer_id();
    let trusted: std::collections::HashSet<PeerId> = config
        .trusted
        .iter()
        .filter_map(|a| match a.iter().last() {
            Some(libp2p::multiaddr::Protocol::P2p(p)) => Some(p),
            _ => None,
        })
        .collect();
    let guard = PeerPolicy::new(client.clone(), db.clone(), trusted).await;
    guard.apply_stored_bans().await;
    let settings = mailbox_settings(config);
    let mailbox = Mailbox::new(db.clone(), client.clone(), peer_id, settings, clock.clone());
    let device_secret = identity.device.to_bytes();
    let certificate = identity.certificate;
    let me = match identity.root {
        Some(root) => Me::primary(root, identity.device, certificate, name),
        None => Me::companion(identity.device, certificate, name),
    };
    let rekey = rhizo_e2e::RekeyPolicy {
        max_messages: config.rekey_messages,
        max_age_secs: config.rekey_interval_secs,
    };
    let presence = Arc::new(crate::agent_wake::AgentPresence::new(
        clock.clone(),
        config.agent.a2a_url.is_some(),
    ));
    let messaging = Messaging::new(
        db.clone(),
        client.clone(),
        me,
        rekey,
        mailbox.clone(),
        clock.clone(),
        presence,
    )
    .map_err(|e| NodeError::Task(e.to_string()))?;
    messaging.set_batch_frames(config.batch_frames);
    messaging.set_hide_presence(config.hide_presence);
    messaging.set_default_history_days(config.devices.history_days);
    // The `[agent]` config's part of the worker policy the inbound path applies.
    let (max_queue, accept) = (config.agent.max_queue, config.agent.accept_tasks_from);
    let applied = messaging
        .update_agent_policy(move |policy| {
            policy.max_queue = max_queue.map(|q| u32::try_from(q).unwrap_or(u32::MAX));
            policy.accept_tasks_from = accept;
        })
        .await;
    if let Err(e) = applied {
        warn!(error = %e, "cannot apply the [agent] settings to the worker policy");
    }
    let channels = Channels::new(
        db.clone(),
        client.clone(),
        guard.clone(),
        DeviceKey::from_bytes(&device_secret),
        certificate,
        messaging.event_sender(),
    );
    let files = crate::files::Files::new(
        &config.data_dir,
        crate::files::FileSettings {
            max_bytes: config.files_max_mib.saturating_mul(1 << 20),
            auto_download_bytes: config.files_auto_download_mib.saturating_mul(1 << 20),
            max_storage_bytes: config.files_max_storage_mib.saturating_mul(1 << 20),
            tamper_for_tests: std::env::var_os(crate::files::TAMPER_ENV).is_some(),
            hold_for_tests: std::env::var_os(crate::files::HOLD_ENV).is_some(),
        },
        db.clone(),
        client.clone(),
        guard.clone(),
        messaging.clone(),
        clock,
    )
    .map_err(|e| NodeError::Task(format!("cannot open the file store: {e}")))?;
    Ok(Services {
        client,
        db,
        guard,
        mailbox,
        messaging,
        channels,
        files,
        inbound_limit: Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_IN_FLIGHT)),
    })
}

/// The heartbeat loop's settings from the `[agent]` config.
fn heartbeat_settings(config: &Config) -> crate::messaging::HeartbeatSettings {
    crate::messaging::HeartbeatSettings {
        interval_secs: config.agent.heartbeat_secs,
        enabled: config.agent.enabled,
    }
}

/// Starts the wake-command supervisor if `agent.wake_command` is set.
fn spawn_wake_supervisor(
    messaging: &Messaging,
    config: &Config,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.agent.wake_command.is_empty() {
        return None;
    }
    let settings = crate::agent_wake::WakeSettings {
        command: config.agent.wake_command.clone(),
        log: config.data_dir.join(crate::agent_wake::WAKE_LOG_FILE),
        max_log_bytes: crate::agent_wake::MAX_WAKE_LOG_BYTES,
    };
    let (counts, _) = tokio::sync::watch::channel(crate::agent_wake::WakeCounts::default());
    let events = messaging.subscribe();
    let presence = Arc::clone(messaging.agent_presence());
    let m = messaging.clone();
    Some(tokio::spawn(crate::agent_wake::supervise(
        settings,
        presence,
        events,
        move || {
            let m = m.clone();
            async move { m.worker_work_pending().await }
        },
        counts,
        stop,
    )))
}

/// Binds the local API's address.
pub(crate) async fn bind_api(config: &Config) -> Result<(TcpListener, SocketAddr), NodeError> {
    let listener = TcpListener::bind(config.api).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            NodeError::ApiAddrInUse(config.api)
        } else {
            NodeError::ApiBind {
                addr: config.api,
                reason: e.to_string(),
            }
        }
    })?;
    let api_addr = listener.local_addr().map_err(|e| NodeError::ApiBind {
        addr: config.api,
        reason: e.to_string(),
    })?;
    Ok((listener, api_addr))
}

/// Serves the local API until the returned sender fires.
fn spawn_api(
    listener: TcpListener,
    state: ApiState,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (api_stop_tx, api_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let api_task = tokio::spawn(async move {
        let app = api::router(state);
        // Small answers and events (the light clients' frames on /v1/ws) would otherwise wait
        // for delayed ACKs under Nagle: ~40 ms each.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                warn!(error = %e, "cannot set TCP_NODELAY on a local API connection");
            }
        });
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = api_stop_rx.await;
            })
            .await;
        if let Err(e) = result {
            warn!(error = %e, "local API stopped with an error");
        }
    });
    (api_stop_tx, api_task)
}

impl Background {
    /// Starts the timers and writers: outbox, publisher, mailbox poll and replication, peer
    /// policy, peer exchange, contact protection, the peer-book writer; resubscribes to the
    /// joined channels.
    async fn spawn(
        services: &Services,
        config: &Config,
        peer_id: PeerId,
        clock: SharedClock,
    ) -> Self {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let Services {
            client,
            db,
            guard,
            mailbox,
            messaging,
            channels,
            files,
            ..
        } = services;
        let pex_interval = Duration::from_secs(config.pex_interval_secs);
        let tasks = vec![
            tokio::spawn(messaging.clone().run_outbox(stop_rx.clone())),
            tokio::spawn(messaging.clone().run_history(stop_rx.clone())),
            tokio::spawn(messaging.clone().run_task_timer(stop_rx.clone())),
            tokio::spawn(messaging.clone().run_publisher(stop_rx.clone())),
            tokio::spawn(messaging.clone().run_mailbox(stop_rx.clone())),
            tokio::spawn(mailbox.clone().run_push(stop_rx.clone())),
            tokio::spawn(crate::presence::run(
                messaging.clone(),
                client.clone(),
                config.hide_presence,
                stop_rx.clone(),
            )),
            tokio::spawn(guard.clone().run(stop_rx.clone())),
            tokio::spawn(files.clone().run(stop_rx.clone())),
            tokio::spawn(crate::pex::run(
                client.clone(),
                db.clone(),
                peer_id,
                pex_interval,
                clock,
                stop_rx.clone(),
            )),
            tokio::spawn(protect_contacts(
                client.clone(),
                db.clone(),
                stop_rx.clone(),
            )),
        ];
        if let Err(e) = channels.resubscribe().await {
            warn!(error = %e, "cannot resubscribe to channels");
        }
        let mut tasks = tasks;
        tasks.push(tokio::spawn(
            messaging
                .clone()
                .run_agent_liveness(heartbeat_settings(config), stop_rx.clone()),
        ));
        if let Some(wake) = spawn_wake_supervisor(messaging, config, stop_rx.clone()) {
            tasks.push(wake);
        }
        if let Some(url) = &config.agent.a2a_url {
            // The worker side of the A2A binding: received tasks go to the local A2A server.
            tasks.push(tokio::spawn(crate::a2a::forward::run(
                crate::a2a::NodeAgents::new(messaging.clone(), files.clone()),
                url.clone(),
                stop_rx.clone(),
            )));
        }
        tasks.push(tokio::spawn(mailbox.clone().run_replication(stop_rx)));
        let (peer_book, peer_book_rx) = tokio::sync::mpsc::channel(PEER_BOOK_QUEUE);
        let peer_book_task = tokio::spawn(peer_book::write_peer_book(
            peer_book_rx,
            db.clone(),
            peer_id,
        ));
        Self {
            stop,
            tasks,
            peer_book,
            peer_book_task,
        }
    }

    /// Stops the timers (bounded by [`SHUTDOWN_GRACE`]), then lets the peer-book writer drain.
    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            for task in self.tasks {
                let _ = task.await;
            }
        })
        .await;
        drop(self.peer_book);
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, self.peer_book_task).await;
    }
}

/// Keeps the network's set of protected peers (never dropped for idleness, not counted
/// against the limits) equal to our contacts' devices.
async fn protect_contacts(
    client: rhizo_net::Client,
    db: Db,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut last: Vec<PeerId> = Vec::new();
    loop {
        let contacts = db
            .read(|r| -> Result<_, DbError> { Ok(r.list_contacts()?) })
            .await;
        let peers: Vec<PeerId> = contacts
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c.devices.iter().filter_map(|d| d.peer_id.parse().ok()))
            .collect();
        if peers != last {
            let _ = client.set_protected(peers.clone()).await;
            last = peers;
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The identity a full node runs with: its device key and certificate, and the root key on a
/// device that holds it (`None` on a linked device).
struct NodeIdentity {
    root: Option<rhizo_core::RootKey>,
    device: rhizo_core::DeviceKey,
    certificate: rhizo_core::DeviceCertificate,
}

impl NodeIdentity {
    fn primary(identity: LocalIdentity) -> Self {
        Self {
            root: Some(identity.root),
            device: identity.device,
            certificate: identity.certificate,
        }
    }

    fn companion(identity: crate::data_dir::CompanionIdentity) -> Self {
        Self {
            root: None,
            device: identity.device,
            certificate: identity.certificate,
        }
    }

    fn root_public(&self) -> rhizo_core::RootPublicKey {
        self.certificate.root()
    }

    fn uid(&self) -> rhizo_core::Uid {
        self.root_public().uid()
    }

    fn libp2p_keypair(&self) -> libp2p::identity::Keypair {
        crate::data_dir::device_keypair(&self.device)
    }

    fn peer_id(&self) -> PeerId {
        self.libp2p_keypair().public().to_peer_id()
    }
}

fn public_key_response(identity: &NodeIdentity) -> PublicKeyResponse {
    let root = identity.root_public();
    PublicKeyResponse {
        uid: identity.uid().to_string(),
        fingerprint: root.fingerprint().to_string(),
        root_public_key: root.to_string(),
        device_public_key: identity.device.public().to_string(),
        peer_id: identity.peer_id().to_string(),
        device_certificate: data_encoding::HEXLOWER.encode(&identity.certificate.encode()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| NodeError::Task(e.to_string()))
}

/// Handles the network events that are not requests: reports them, and queues peer-book
/// updates for [`peer_book::write_peer_book`] without waiting (a full queue drops the update).
fn handle_net_event(
    event: NetEvent,
    peer_book: &tokio::sync::mpsc::Sender<NetEvent>,
    local: PeerId,
    had_known_peers: bool,
    report: &mut (impl FnMut(NodeReport) + Send),
) -> Result<(), NodeError> {
    match event {
        NetEvent::Listening { addr } => {
            report(NodeReport::Listening(
                addr.with_p2p(local).unwrap_or_else(|a| a),
            ));
        }
        NetEvent::BootstrapFinished { reached, failed } => {
            if reached == 0 && !failed.is_empty() {
                if had_known_peers {
                    warn!("no bootstrap peer reachable; carrying on with the peer book");
                    report(NodeReport::BootstrapPartlyFailed(failed));
                } else {
                    return Err(NodeError::BootstrapUnreachable(failed));
                }
            } else if !failed.is_empty() {
                report(NodeReport::BootstrapPartlyFailed(failed));
            }
        }
        event @ (NetEvent::PeerDiscovered { .. }
        | NetEvent::PeerConnected { .. }
        | NetEvent::DialFailed { .. }) => {
            if let NetEvent::PeerConnected { peer, .. } = &event {
                report(NodeReport::PeerConnected(*peer));
            }
            if peer_book.try_send(event).is_err() {
                debug!("peer-book update dropped: the writer is behind");
            }
        }
        _ => {}
    }
    Ok(())
}
