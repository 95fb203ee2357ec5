//! The dms node: configuration, home layout and the composition root [`run`].
//!
//! `run` reads top to bottom as the start-up order: check the configuration, unlock the
//! node key, open the store, start the network, the provider and the deployment
//! registry, bind the API, say "ready"; then, on the shutdown signal,
//! stop accepting, let in-flight requests finish (bounded by `node.shutdown_timeout`),
//! record the clean stop and close the store.
//!
//! # Module map
//! - [`config`]: `config.toml`, the key table, environment overrides, `config set`.
//! - [`home`]: the home directory layout.
//! - [`lifecycle`]: the start/stop record kept in the store (unclean-stop detection).
//! - [`behaviors`]: the root actor's network and capability behaviors.
//! - [`caps`]: capability contexts in the store (behind `dms_ucan::Contexts`, the one
//!   write path that keeps every actor's live context current).
//! - [`telemetry`]: the event journal, its behaviors (`dms events`, `dms log-level`)
//!   and the sampler of the metrics' gauges.
//!
//! The provider side (`dms-provider`: bids, resources, onboarding, allocation actors) and
//! the orchestrator registry (`dms-orchestrator`) are built by [`start_deployments`]; this
//! crate only wires them (executors, network round trips, topics) and drains them at
//! shutdown.

pub mod behaviors;
pub mod caps;
pub mod config;
pub mod contracts;
mod executors;
pub mod home;
pub mod lifecycle;
mod subnet;
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dms_crypto::{KeyPair, Keystore};
use dms_store::Store;
use tokio::sync::watch;
use tracing::{info, warn};

pub use config::Config;
pub use executors::remove_workloads;
pub use home::Home;

/// The version of dms, as built.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid; nothing was started.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The node key is missing; nothing was started.
    #[error("no node key named '{name}' in {}", dir.display())]
    NoNodeKey {
        /// The configured key name (`node.key`).
        name: String,
        /// The keystore directory.
        dir: std::path::PathBuf,
    },
    /// The node key could not be unlocked (wrong passphrase, damaged file); nothing was
    /// started and the key file is unchanged.
    #[error("cannot unlock node key '{name}': {source}")]
    Key {
        /// The configured key name.
        name: String,
        /// What went wrong.
        source: dms_crypto::Error,
    },
    /// The store could not be opened or written.
    #[error("store: {0}")]
    Store(#[from] dms_store::Error),
    /// The network could not start.
    #[error("network: {0}")]
    Network(String),
    /// An executor could not be set up.
    #[error("executor: {0}")]
    Executor(String),
    /// The node's capability context could not be read or created.
    #[error("capabilities: {0}")]
    Caps(#[from] dms_ucan::Error),
    /// The API could not start or failed while serving.
    #[error(transparent)]
    Api(#[from] dms_api::Error),
    /// The resource accounts could not be loaded.
    #[error("resources: {0}")]
    Resources(#[from] dms_provider::resources::ResourceError),
    /// The home directory could not be created.
    #[error("cannot create dms home {}: {source}", path.display())]
    Home {
        /// The home directory.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Unlocks the key the node runs as (`node.key`).
pub fn unlock_node_key(home: &Home, config: &Config, passphrase: &str) -> Result<KeyPair, Error> {
    let name = &config.node.key;
    let keystore = Keystore::open(home.keys_dir())
        .map_err(|source| Error::Key { name: name.clone(), source })?;
    if !keystore.exists(name) {
        return Err(Error::NoNodeKey { name: name.clone(), dir: keystore.dir().to_path_buf() });
    }
    keystore.load(name, passphrase).map_err(|source| Error::Key { name: name.clone(), source })
}

/// Raises the soft limit of open files to the hard one (at most 2^20): the API's
/// connection cap, libp2p and the store must not run out of descriptors at the usual
/// soft limit of 1024 first.
fn raise_fd_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    const MOST: u64 = 1 << 20;
    let limit = getrlimit(Resource::Nofile);
    let target = limit.maximum.unwrap_or(MOST).min(MOST);
    if limit.current.is_some_and(|current| current < target) {
        let raised = Rlimit { current: Some(target), maximum: limit.maximum };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => info!(open_files = target, "Raised the open-file limit."),
            Err(error) => warn!(%error, "Could not raise the open-file limit."),
        }
    }
}

/// Runs the daemon until `shutdown` resolves.
///
/// Start-up errors are returned before anything listens. After `shutdown`, in-flight
/// API requests get `node.shutdown_timeout` to finish; the store is closed last.
pub async fn run(
    home: &Home,
    config: Config,
    passphrase: &str,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let started = Instant::now();
    config.validate()?;
    raise_fd_limit();
    home.ensure().map_err(|source| Error::Home { path: home.root().to_path_buf(), source })?;
    let key = unlock_node_key(home, &config, passphrase)?;
    let did = key.did();

    let store = Store::open(config.store.resolve(home.root()))?;
    lifecycle::record_start(&store)?;
    let mut telemetry = telemetry::start(&store, did.as_ref(), &config.telemetry)?;
    let verifier = Arc::new(dms_ucan::Verifier::default());
    let contexts =
        Arc::new(dms_ucan::Contexts::new(caps::StoreContexts(store.clone()), verifier.clone()));
    ensure_node_context(&contexts, &did)?;

    let node_info = dms_api::NodeInfo {
        did: did.to_string(),
        version: VERSION.to_string(),
        started,
        started_at: SystemTime::now(),
    };
    let runtime = dms_actor::Config {
        max_envelope_bytes: config.network.max_message_bytes,
        ..Default::default()
    };
    let network =
        start_network(&key, config.network.to_network()?, runtime, &contexts, started).await?;
    let manager = dms_provider::resources::ResourceManager::open(
        store.clone(),
        dms_provider::resources::system_clock(),
    )?;
    let onboarding = dms_provider::onboarding::Deps {
        manager: manager.clone(),
        store: store.clone(),
        home: home.root().to_path_buf(),
        benchmarking: Default::default(),
        benchmark_budget: config.node.benchmark_budget,
        rtts: rtts(&network.client),
    };
    dms_provider::onboarding::register(&network.actor, &onboarding)
        .map_err(|e| Error::Network(e.to_string()))?;
    telemetry::register(&network.actor, &store, &config.telemetry)
        .map_err(|e| Error::Network(e.to_string()))?;
    let deployments = start_deployments(
        &network,
        manager,
        &store,
        &config,
        executors::host(&network, &store, &config).await?,
    )
    .await?;
    telemetry.sample(&deployments, &store);
    let caps = dms_api::Caps { contexts: contexts.clone() };
    let max_wait = config
        .api
        .request_timeout
        .saturating_sub(Duration::from_secs(1))
        .max(Duration::from_secs(1));
    let dashboard = dashboard(&network, &key, max_wait);
    let relay = dms_api::Relay {
        router: network.router.clone(),
        root: network.actor.handle().clone(),
        max_wait,
        resolve: Arc::new(behaviors::resolve),
        dashboard: Some(dashboard.clone()),
    };
    // Only this home's user may use the local API: a fresh token each start, 0600.
    let token = hex::encode(rand::random::<[u8; 32]>());
    home.write_token(&token).map_err(|source| Error::Home { path: home.token_path(), source })?;
    let mut socket = home.socket_path(&config.api).map(|p| p.display().to_string());
    // A Unix socket path holds at most 107 bytes: a deep home serves TCP only (an
    // explicit api.socket that is too long fails at bind, naming the path).
    if config.api.socket.trim().is_empty() && socket.as_ref().is_some_and(|p| p.len() > 107) {
        warn!(home = %home.root().display(),
            "The home's path is too long for a Unix socket; the API is served on TCP only \
             (set api.socket to a shorter path to have one).");
        socket = None;
    }
    let api = dms_api::Config {
        local_token: Some(token),
        socket: socket.unwrap_or_else(|| "off".into()),
        ..config.api.clone()
    };
    let server = dms_api::Server::bind(&api, node_info, Some(caps), Some(relay)).await?;
    let api_addr = server.local_addr();
    let api_socket = server.socket_path().map(|p| p.display().to_string()).unwrap_or_default();
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let mut serving = tokio::spawn(server.serve(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));

    if let Err(error) = home.write_daemon(&home::Daemon { pid: std::process::id(), api: api_addr })
    {
        warn!(%error, "Could not write daemon.json; CLI commands may wait for the store.");
    }
    let addrs = listen_addrs(&network.client).await;
    info!(did = %did, api = %api_addr, socket = %api_socket, peer_id = %network.client.peer_id(), addrs = %addrs.join(","),
        home = %home.root().display(), startup_ms = started.elapsed().as_millis() as u64, "dms ready");
    dms_telemetry::event!(INFO, kind: dms_types::event::kind::NODE, state: "started";
        "dms {VERSION} started as {did}; API on {api_addr}.");

    let result = tokio::select! {
        served = &mut serving => Some(served),
        () = shutdown => None,
    };
    let result = match result {
        Some(served) => flatten(served),
        None => {
            info!("Shutting down: no new requests; waiting for in-flight ones.");
            let _ = stop_tx.send(true);
            match tokio::time::timeout(config.node.shutdown_timeout, &mut serving).await {
                Ok(served) => flatten(served),
                Err(_) => {
                    warn!(timeout = ?config.node.shutdown_timeout,
                        "In-flight requests did not finish in time; stopping anyway.");
                    serving.abort();
                    Ok(())
                }
            }
        }
    };
    let drained = tokio::time::timeout(config.node.shutdown_timeout, deployments.drain()).await;
    if drained.is_err() {
        warn!(timeout = ?config.node.shutdown_timeout, "Deployments did not drain in time.");
    }
    dashboard.actor.stop();
    network.shutdown().await;
    home.remove_daemon();
    dms_telemetry::event!(INFO, kind: dms_types::event::kind::NODE, state: "stopped"; "dms stopped.");
    telemetry.stop().await;
    lifecycle::record_stop(&store)?;
    drop(store);
    info!(did = %did, "dms stopped");
    result
}

/// A running network host with its router and the node's root actor.
pub struct NetworkRuntime {
    /// The network client.
    pub client: dms_network::Client,
    /// The router of the node's actors.
    pub router: dms_actor::Router,
    /// The node's root actor, with the behaviors of [`behaviors`].
    pub actor: dms_actor::Actor,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl NetworkRuntime {
    /// Stops the root actor, then the host (every connection closes).
    pub async fn shutdown(self) {
        self.actor.stop();
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// What the web dashboard reads through: an actor of the node's own (the node reading
/// itself), limited by the API to the read-only behaviors named here.
fn dashboard(network: &NetworkRuntime, key: &KeyPair, max_wait: Duration) -> dms_api::Dashboard {
    use dms_protocol::Request;
    let actor = dms_actor::Actor::spawn(
        &network.router,
        "dashboard",
        key.clone(),
        network.actor.live_context().clone(),
        network.actor.verifier().clone(),
    );
    let readable = [
        dms_protocol::peers::PublicStatus::BEHAVIOR,
        dms_protocol::peers::ListPeers::BEHAVIOR,
        dms_protocol::onboarding::GetOnboarding::BEHAVIOR,
        dms_protocol::node::ListDeployments::BEHAVIOR,
        dms_protocol::node::DeploymentStatus::BEHAVIOR,
        dms_protocol::node::DeploymentLogs::BEHAVIOR,
        dms_protocol::telemetry::ListEvents::BEHAVIOR,
    ];
    dms_api::Dashboard {
        actor,
        root: network.actor.handle().clone(),
        readable: readable.iter().map(|b| b.to_string()).collect(),
        max_wait,
    }
}

/// Starts the libp2p host, the router and the node's root actor with its behaviors,
/// and joins the topics the root actor listens on. The root actor authorizes with the
/// live node context of `contexts` (which must exist). `dms run` and the in-process test
/// harness (`dms-testkit`) both start nodes with this.
pub async fn start_network(
    key: &dms_crypto::KeyPair,
    network: dms_network::Config,
    runtime: dms_actor::Config,
    contexts: &Arc<dms_ucan::Contexts>,
    started: Instant,
) -> Result<NetworkRuntime, Error> {
    let context = contexts.live(caps::NODE_CONTEXT)?;
    let verifier = contexts.verifier().clone();
    let (client, event_loop, inbound) =
        dms_network::build(key, network).map_err(|e| Error::Network(e.to_string()))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(event_loop.run(async move {
        let _ = stopped.await;
    }));
    let router =
        dms_actor::Router::new(client.peer_id().to_string(), Arc::new(client.clone()), runtime);
    let actor = dms_actor::Actor::spawn(&router, "root", key.clone(), context, verifier.clone());
    let deps =
        behaviors::Deps { client: client.clone(), contexts: contexts.clone(), verifier, started };
    behaviors::register(&actor, &deps).map_err(|e| Error::Network(e.to_string()))?;
    for topic in [behaviors::HELLO_TOPIC, behaviors::REVOCATION_TOPIC] {
        client.subscribe(topic).await.map_err(|e| Error::Network(e.to_string()))?;
    }
    tokio::spawn(dms_network::serve(inbound, router.clone(), 256));
    Ok(NetworkRuntime { client, router, actor, stop, task })
}

/// The provider and the orchestrator registry of a node.
pub struct Deployments {
    /// The provider side.
    pub provider: dms_provider::Provider,
    /// The orchestrating side.
    pub registry: Arc<dms_orchestrator::Registry>,
    /// Deployments' subnets here, when allocations can join them.
    pub subnet: Option<dms_subnet::Subnet>,
}

impl Deployments {
    /// Stops placing (deployments resume after the restart), flushes every record, and
    /// stops the allocation actors (workloads keep running, to be re-attached, and get
    /// their subnet interface again then).
    pub async fn drain(&self) {
        self.registry.drain().await;
        self.provider.shutdown().await;
        if let Some(subnet) = &self.subnet {
            subnet.shutdown();
        }
    }
}

/// Starts the provider side (bids, allocation actors; recovers hosted allocations) and
/// the orchestrator registry (resumes unfinished deployments), and registers their
/// behaviors on the root actor.
pub async fn start_deployments(
    network: &NetworkRuntime,
    manager: dms_provider::resources::ResourceManager,
    store: &Store,
    config: &Config,
    executors: dms_provider::Executors,
) -> Result<Deployments, Error> {
    let d = &config.deployment;
    let store_dir = store.path().parent().unwrap_or(std::path::Path::new("."));
    // Detected attributes, then the configured ones over them.
    let mut attributes = dms_provider::detected_attributes().await;
    attributes.extend(executors.attributes().clone());
    attributes.extend(d.attributes()?);
    let deps = dms_provider::Deps {
        manager,
        store: store.clone(),
        router: network.router.clone(),
        root: network.actor.clone(),
        rtts: rtts(&network.client),
        settings: dms_provider::Settings {
            max_reservation: d.max_reservation,
            require_contract: d.require_contract,
            receipt_every: d.receipt_every.max(std::time::Duration::from_millis(100)),
            price_per_hour: d.price_per_hour,
            location: d.location(),
            reservations_per_peer: config.quotas.reservations_per_peer,
            public_host: d.public_host(),
            attributes,
            // Beside the store: `$DMS_HOME/db/logs` for a daemon.
            logs_dir: store_dir.join("logs"),
            log_cap: d.log_cap_bytes()?,
            volumes_dir: match d.volumes_dir.trim() {
                "" => store_dir.join("volumes"),
                dir => dir.into(),
            },
            bind_paths: d.bind_paths()?,
            advertise_every: d.advertise_every,
        },
        executors,
        subnet: subnet::host(network, config, store_dir),
        root_of: Arc::new(|peer| behaviors::root_of(peer).ok()),
    };
    let subnet = match &deps.subnet {
        dms_provider::subnet::SubnetHost::Ready { subnet, .. } => Some(subnet.clone()),
        dms_provider::subnet::SubnetHost::Unavailable(_) => None,
    };
    let provider =
        dms_provider::Provider::start(deps).await.map_err(|e| Error::Network(e.to_string()))?;
    for topic in [dms_protocol::DEPLOYMENT_TOPIC, dms_protocol::contract::REVOCATION_TOPIC] {
        network.client.subscribe(topic).await.map_err(|e| Error::Network(e.to_string()))?;
    }
    contracts::register(&network.actor, store).map_err(|e| Error::Network(e.to_string()))?;
    let client = network.client.clone();
    let connected: dms_orchestrator::orchestrator::Connected = Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let peers = client.peers().await.unwrap_or_default();
            peers.into_iter().map(|p| p.peer_id).collect()
        })
    });
    let root_of: dms_orchestrator::orchestrator::RootOf =
        Arc::new(|peer| behaviors::root_of(peer).ok());
    let registry = dms_orchestrator::Registry::open(dms_orchestrator::Shared {
        root: network.actor.clone(),
        router: network.router.clone(),
        store: store.clone(),
        settings: dms_orchestrator::Settings {
            bid_window: d.bid_window,
            shortlist: d.shortlist,
            default_deadline: d.default_timeout,
            heartbeat: d.heartbeat_interval,
            lost_after: d.lost_after,
            stop_after: d.stop_after,
            quotas: config.quotas.orchestrator(),
            storage_credentials: config.storage.credentials(),
            ..dms_orchestrator::Settings::default()
        },
        connected,
        root_of,
        directory: Arc::default(),
    })?;
    dms_orchestrator::behaviors::register(&network.actor, &registry)
        .map_err(|e| Error::Network(e.to_string()))?;
    Ok(Deployments { provider, registry, subnet })
}

/// Round-trip times to connected peers, from the network's ping.
pub fn rtts(client: &dms_network::Client) -> dms_provider::Rtts {
    let client = client.clone();
    Arc::new(move || {
        let client = client.clone();
        Box::pin(async move {
            let peers = client.peers().await.unwrap_or_default();
            peers.into_iter().filter_map(|p| Some((p.peer_id, p.rtt_ms?))).collect()
        })
    })
}

/// The node's listen multiaddrs (with `/p2p/<peer id>`), waiting briefly for the
/// listeners to come up.
async fn listen_addrs(client: &dms_network::Client) -> Vec<String> {
    for _ in 0..100 {
        match client.self_info().await {
            Ok(info) if !info.listen.is_empty() => return info.listen,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            Err(_) => break,
        }
    }
    Vec::new()
}

pub use caps::NODE_CONTEXT;

/// Creates the node's capability context (`dms`, owned by the node DID) on first start.
pub fn ensure_node_context(
    contexts: &dms_ucan::Contexts,
    did: &dms_crypto::Did,
) -> Result<(), Error> {
    match contexts.load(NODE_CONTEXT)? {
        Some(context) if context.did == *did => Ok(()),
        Some(context) => Err(Error::Caps(dms_ucan::Error::Context(format!(
            "capability context '{NODE_CONTEXT}' belongs to {}, but the node key is {did}; \
             node.key was changed — restore it, or remove the context with \
             `dms cap remove -c {NODE_CONTEXT} --all`",
            context.did
        )))),
        None => {
            let context = dms_ucan::CapContext::new(NODE_CONTEXT, did.clone());
            contexts.save(context, None)?;
            info!(context = NODE_CONTEXT, "Created the node's capability context.");
            Ok(())
        }
    }
}

fn flatten(
    served: Result<Result<(), dms_api::Error>, tokio::task::JoinError>,
) -> Result<(), Error> {
    match served {
        Ok(result) => result.map_err(Error::from),
        Err(join) => Err(Error::Api(dms_api::Error::Serve(std::io::Error::other(join)))),
    }
}
