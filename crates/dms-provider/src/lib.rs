//! The providing side of deployments: what this machine offers, bids, reservations,
//! and the allocation actors that run workloads on its executors.
//!
//! | Behavior (root actor) | Request → answer |
//! |---|---|
//! | `/dms/deployment/request` (topic `/dms/deployment`, or direct) | `BidRequest` → `BidAnswer`: per node a bid (with a reservation) or a refusal with reasons |
//! | `/dms/deployment/commit` | `Commit` → `Committed` (keeps the reservation; fails when it lapsed) |
//! | `/dms/deployment/allocate` | `Allocate` → `Allocated`: the allocation actors' handles |
//! | `/dms/deployment/revert` | `Revert` → `Reverted`: reservations released, allocations stopped |
//! | `/dms/deployment/subnet` | `Routes` → `RoutesApplied`: where the deployment's addresses are (its orchestrator only) |
//!
//! A bid is a pure evaluation of the request against one snapshot of the machine
//! ([`bid::evaluate`]), then one reservation backs every bid of the answer. Each hosted
//! allocation is a state-owning actor ([`allocation`]) that owns its record, executor
//! handle, watcher and restart timer; the [`Ledger`] releases a node's resources once,
//! when the last of its allocations ends. After a restart, [`recover`] rebuilds every
//! actor from the stored records (nothing depends on the shape of ids).
//!
//! # Module map
//! - [`bid`]: the pure bid evaluation (quota and public-port refusals included).
//! - [`ports`]: public ports held with reservations, and refused when taken.
//! - [`allocation`]: the allocation actor; [`allocation::machine`] its life cycle; its
//!   output kept in log files within `deployment.log_cap`.
//! - [`hosted`]: the persisted allocation record.
//! - [`recover`]: rebuilding allocations after a restart.
//! - [`resources`]: the resource manager (onboarded, committed, allocated, free).
//! - [`onboarding`]: onboarding, resource and hardware behaviors, benchmarks.
//! - [`executors`]: the executor set the composition root builds.
//! - [`subnet`]: the routes behavior and the deployment network allocations join.
//! - `offer`: the answer to a bid request, backed by one reservation.
//! - `telemetry`: bid and allocation events, counters, the node's gauges.

pub mod advertise;
pub mod allocation;
pub mod bid;
pub mod contract;
pub mod executors;
pub mod hosted;
mod offer;
pub mod onboarding;
pub mod ports;
mod receipts;
pub mod recover;
pub mod resources;
pub mod subnet;
mod telemetry;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dms_actor::{Actor, ActorError, BoxFuture, Router};
use dms_crypto::Did;
use dms_protocol::{
    Allocate, Allocated, AllocationSpec, AllocationState, AllocationStatus, BidRequest, Commit,
    Committed, DEPLOYMENT_TOPIC, Revert, Reverted,
};
use dms_store::Store;
use dms_types::capability::Location;
use tracing::warn;

pub use executors::Executors;
use hosted::{HOSTED, Hosted};
use resources::ResourceManager;

/// How long a committed reservation is kept for its allocate.
const COMMIT_TTL: Duration = Duration::from_secs(120);

/// Round-trip times to connected peers, in milliseconds, by peer id (the network's
/// ping; wired by the composition root).
pub type Rtts = Arc<dyn Fn() -> BoxFuture<BTreeMap<String, u64>> + Send + Sync>;

/// Provider settings (`[deployment]`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest a bid's reservation is held.
    pub max_reservation: Duration,
    /// Refuse ensembles without a contract.
    pub require_contract: bool,
    /// Price per hour asked.
    pub price_per_hour: f64,
    /// How often an allocation under a contract signs a usage receipt
    /// (`deployment.receipt_every`).
    pub receipt_every: Duration,
    /// Where the machine is.
    pub location: Option<Location>,
    /// Most reservations (committed or not, and those turned into allocations) one
    /// peer may hold here at once; bids beyond are refused with `quota`.
    pub reservations_per_peer: usize,
    /// The address users reach this machine's published ports at (shown in each
    /// allocation's endpoints).
    pub public_host: String,
    /// What the machine says about itself (configured and detected), matched against
    /// ensemble nodes' `attributes`.
    pub attributes: BTreeMap<String, String>,
    /// Where allocations' whole output is kept (beside the store: `$DMS_HOME/db/logs`).
    pub logs_dir: std::path::PathBuf,
    /// Most bytes of output kept per allocation (`deployment.log_cap`).
    pub log_cap: u64,
    /// Where volumes live (`deployment.volumes_dir`; default `$DMS_HOME/db/volumes`).
    pub volumes_dir: std::path::PathBuf,
    /// Host paths `bind` volumes may name (`deployment.bind_paths`; none by default).
    pub bind_paths: Vec<std::path::PathBuf>,
    /// How often the capacity advert is repeated when nothing changes (zero: never
    /// advertise); see [`advertise`].
    pub advertise_every: Duration,
}

/// What the provider is built from.
pub struct Deps {
    /// Resource accounts.
    pub manager: ResourceManager,
    /// The node's store.
    pub store: Store,
    /// The node's router.
    pub router: Router,
    /// The node's root actor (bids are its behaviors; allocation actors share its key
    /// and live capability context).
    pub root: Actor,
    /// Round-trip times for bids.
    pub rtts: Rtts,
    /// Settings.
    pub settings: Settings,
    /// The executors allocations run on.
    pub executors: Executors,
    /// Whether allocations can join deployments' subnets, and through what.
    pub subnet: subnet::SubnetHost,
    /// A node's root actor from its peer id (where adverts go).
    pub root_of: RootOf,
}

/// What the provider and its allocation actors share.
pub struct Shared {
    store: Store,
    router: Router,
    root: Actor,
    manager: ResourceManager,
    executors: Executors,
    ledger: Ledger,
    settings: Settings,
    rtts: Rtts,
    allocations: Mutex<BTreeMap<String, allocation::Running>>,
    /// Who asked for each reservation (the orchestrator whose bid request made it): only
    /// it may commit, allocate or revert it. Kept in memory: a reservation outlives a
    /// restart only by its time to live, and one made before the restart is judged by
    /// its deployment id alone.
    reservers: Mutex<BTreeMap<String, Reserver>>,
    /// Public ports held for reservations.
    ports: ports::Ports,
    /// Volume directories.
    volumes: dms_storage::Volumes,
    /// Which allocations use each volume directory.
    volume_users: allocation::VolumeUsers,
    /// The client that moves data through presigned URLs.
    http: reqwest::Client,
    /// Deployments' subnets.
    subnet: subnet::SubnetHost,
    /// Held while one deployment's routes are compared, applied and stored.
    routes_lock: tokio::sync::Mutex<()>,
    /// The orchestrating nodes that asked for bids lately: who hears the adverts.
    audience: advertise::Audience,
    /// The node's contracts, receipts and provider-side ledger.
    contracts: dms_contracts::store::Contracts,
    /// Wakes the receipt courier ([`receipts`]).
    courier: Arc<tokio::sync::Notify>,
    /// A node's root actor from its peer id.
    root_of: RootOf,
}

/// A node's root actor from its peer id (wired by the composition root).
pub type RootOf = Arc<dyn Fn(&str) -> Option<dms_actor::Handle> + Send + Sync>;

/// Who made a reservation.
struct Reserver {
    /// The orchestrator actor.
    did: Did,
    /// The peer it runs on (counted against `reservations_per_peer`).
    peer: String,
}

impl Shared {
    /// Refuses `from` on `reservation` when another orchestrator made it.
    fn check_reserver(&self, reservation: &str, from: &Did) -> Result<(), ActorError> {
        let reservers = self.reservers.lock().expect("reservers lock");
        match reservers.get(reservation) {
            Some(owner) if owner.did != *from => Err(ActorError::Unauthorized {
                code: "not_the_reserver".into(),
                reason: format!("reservation {reservation} was made for {}, not {from}", owner.did),
            }),
            _ => Ok(()),
        }
    }

    /// Forgets who made reservations that no longer exist in `status`.
    fn prune_reservers(&self, status: &resources::Accounts) {
        let live: BTreeSet<&str> = status
            .reservations
            .iter()
            .map(|r| r.id.as_str())
            .chain(status.allocations.keys().map(String::as_str))
            .collect();
        self.reservers.lock().expect("reservers lock").retain(|id, _| live.contains(id.as_str()));
        self.ports.retain(&live);
    }

    /// How many live reservations `peer` holds here (after [`Shared::prune_reservers`]).
    fn held_by(&self, peer: &str) -> usize {
        self.reservers.lock().expect("reservers lock").values().filter(|r| r.peer == peer).count()
    }

    /// Forgets allocation `id` if `actor` is still the one hosting it.
    fn forget(&self, id: &str, actor: &Actor) {
        let mut allocations = self.allocations.lock().expect("allocations lock");
        if allocations.get(id).is_some_and(|running| running.actor.same(actor)) {
            allocations.remove(id);
        }
    }

    /// How many allocations run here under contract `id`.
    pub(crate) fn running_under(&self, id: &str) -> usize {
        let allocations = self.allocations.lock().expect("allocations lock");
        allocations.values().filter(|r| r.contract.as_deref() == Some(id)).count()
    }

    fn running(&self, deployment: &str, node: Option<&str>) -> Vec<allocation::Running> {
        let prefix = format!("{deployment}.");
        self.allocations
            .lock()
            .expect("allocations lock")
            .iter()
            .filter(|(id, _)| id.starts_with(&prefix))
            .filter(|(_, running)| node.is_none_or(|n| running.node == n))
            .map(|(_, running)| running.clone())
            .collect()
    }
}

/// Releases a node's resources once, when the last of its allocations has ended.
pub struct Ledger {
    manager: ResourceManager,
    /// Allocations not ended yet, by reservation.
    live: Mutex<BTreeMap<String, BTreeSet<String>>>,
}

impl Ledger {
    fn new(manager: ResourceManager) -> Ledger {
        Ledger { manager, live: Mutex::new(BTreeMap::new()) }
    }

    /// `allocation` runs on `reservation` and has not ended.
    fn hosting(&self, reservation: &str, allocation: &str) {
        let mut live = self.live.lock().expect("ledger lock");
        live.entry(reservation.to_string()).or_default().insert(allocation.to_string());
    }

    /// `allocation` ended; the reservation is released when it was the last.
    async fn ended(&self, reservation: &str, allocation: &str) {
        let last = {
            let mut live = self.live.lock().expect("ledger lock");
            let emptied = live.get_mut(reservation).is_some_and(|set| {
                set.remove(allocation);
                set.is_empty()
            });
            emptied && live.remove(reservation).is_some()
        };
        if last {
            self.release(reservation).await;
        }
    }

    async fn release(&self, reservation: &str) {
        let (manager, id) = (self.manager.clone(), reservation.to_string());
        match tokio::task::spawn_blocking(move || manager.release(&id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => warn!(%reservation, %error, "Could not release resources."),
            Err(error) => warn!(%reservation, %error, "The release failed."),
        }
    }
}

/// What this machine says about itself in bids, as detected (`Hardware::attributes`:
/// OS, architecture, CPU vendor and flags, first GPU's vendor, model, driver, CUDA).
/// Detected once per process: a daemon asks once, and a simulation of hundreds of
/// nodes in one process shares one machine (detection reads /proc, /sys and the GPU
/// libraries: tenths of a second each time).
pub async fn detected_attributes() -> BTreeMap<String, String> {
    static DETECTED: tokio::sync::OnceCell<BTreeMap<String, String>> =
        tokio::sync::OnceCell::const_new();
    DETECTED
        .get_or_init(|| async {
            tokio::task::spawn_blocking(|| dms_hardware::detect().attributes())
                .await
                .unwrap_or_default()
        })
        .await
        .clone()
}

/// The provider: its behaviors are on the node's root actor.
#[derive(Clone)]
pub struct Provider {
    shared: Arc<Shared>,
    /// The capacity advertiser, stopped at shutdown (and ending by itself once the
    /// provider is gone).
    advertiser: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
    /// The receipt courier, stopped at shutdown (what it had not sent stays in the
    /// outbox for the next start).
    courier: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

/// A behavior failed (store, resources), for the caller.
pub(crate) fn failed(error: impl std::fmt::Display) -> ActorError {
    ActorError::handler(error.to_string())
}

/// A request the behavior cannot use.
pub(crate) fn bad(reason: impl std::fmt::Display) -> ActorError {
    ActorError::BadPayload { reason: reason.to_string() }
}

impl Provider {
    /// Registers the behaviors on the root actor, subscribes it to bid requests and
    /// recovers the allocations kept in the store. (The composition root joins the
    /// network topic [`DEPLOYMENT_TOPIC`].)
    pub async fn start(deps: Deps) -> Result<Provider, ActorError> {
        let volumes =
            dms_storage::Volumes::new(&deps.settings.volumes_dir, deps.settings.bind_paths.clone());
        let shared = Arc::new(Shared {
            ledger: Ledger::new(deps.manager.clone()),
            contracts: dms_contracts::store::Contracts::new(deps.store.clone()),
            courier: Arc::default(),
            store: deps.store,
            router: deps.router,
            root: deps.root,
            manager: deps.manager,
            executors: deps.executors,
            rtts: deps.rtts,
            settings: deps.settings,
            subnet: deps.subnet,
            routes_lock: tokio::sync::Mutex::new(()),
            audience: advertise::Audience::default(),
            root_of: deps.root_of,
            allocations: Mutex::new(BTreeMap::new()),
            reservers: Mutex::new(BTreeMap::new()),
            ports: ports::Ports::default(),
            volumes,
            volume_users: Default::default(),
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
        });
        register(&shared)?;
        shared.root.subscribe(DEPLOYMENT_TOPIC);
        recover::recover(&shared).await;
        subnet::register(&shared)?;
        let advertiser = Arc::new(Mutex::new(advertise::start(&shared)));
        let courier = Arc::new(Mutex::new(Some(receipts::start(&shared))));
        Ok(Provider { shared, advertiser, courier })
    }

    /// Stops every allocation actor (their workloads keep running, to be re-attached
    /// after a restart) and flushes what was written lazily.
    pub async fn shutdown(&self) {
        for task in [&self.advertiser, &self.courier] {
            if let Some(task) = task.lock().ok().and_then(|mut a| a.take()) {
                task.abort();
            }
        }
        let running: Vec<allocation::Running> =
            self.shared.allocations.lock().expect("allocations lock").values().cloned().collect();
        for running in running {
            running.actor.stop();
        }
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.write(|_| Ok(()))).await;
    }
}

fn register(shared: &Arc<Shared>) -> Result<(), ActorError> {
    let root = &shared.root;
    let s = shared.clone();
    dms_protocol::handle::<BidRequest, _, _>(root, move |message, request| {
        let s = s.clone();
        let from = message.envelope.from.clone();
        let requester = contract::requester(&message.envelope, s.root.verifier());
        s.audience.heard(&from.peer, std::time::Instant::now());
        async move {
            let answer = offer::bid(&s, &request, from, &requester).await;
            if !request.dry_run {
                telemetry::bid_answered(&request, &answer);
            }
            Ok(answer)
        }
    })?;
    let s = shared.clone();
    dms_protocol::handle::<Commit, _, _>(root, move |message, commit| {
        let s = s.clone();
        let from = message.envelope.from.did.clone();
        async move {
            own_reservation(&commit.reservation, &commit.deployment)?;
            s.check_reserver(&commit.reservation, &from)?;
            let (manager, id) = (s.manager.clone(), commit.reservation.clone());
            let kept = tokio::task::spawn_blocking(move || manager.extend(&id, COMMIT_TTL))
                .await
                .map_err(failed)?
                .map_err(failed)?;
            Ok(Committed { expires_ms: kept.expires_ms })
        }
    })?;
    let s = shared.clone();
    dms_protocol::handle::<Allocate, _, _>(root, move |message, request| {
        let s = s.clone();
        let (from, trace) = (message.envelope.from.did.clone(), message.envelope.trace.clone());
        async move {
            s.check_reserver(&request.reservation, &from)?;
            // The allocations obey the orchestrator named here: it must be the sender.
            if request.orchestrator.did != from {
                return Err(ActorError::Unauthorized {
                    code: "not_the_orchestrator".into(),
                    reason: format!("{from} cannot allocate for {}", request.orchestrator.did),
                });
            }
            let requester = contract::requester(&message.envelope, s.root.verifier());
            let (s2, text, count) =
                (s.clone(), request.contract.clone(), request.allocations.len());
            let contract = tokio::task::spawn_blocking(move || {
                contract::at_allocate(&s2, text.as_deref(), &requester, count)
            })
            .await
            .map_err(failed)??;
            allocate(&s, request, trace, contract).await
        }
    })?;
    let s = shared.clone();
    dms_protocol::handle::<Revert, _, _>(root, move |message, revert| {
        let s = s.clone();
        let from = message.envelope.from.did.clone();
        async move { Ok(Reverted { released: revert_all(&s, &revert, &from).await }) }
    })?;
    Ok(())
}

/// Reservations of a deployment are named `<deployment>/…` by this provider.
fn own_reservation(reservation: &str, deployment: &str) -> Result<(), ActorError> {
    if reservation.strip_prefix(deployment).is_some_and(|rest| rest.starts_with('/')) {
        Ok(())
    } else {
        Err(bad(format!("reservation {reservation} is not for deployment {deployment}")))
    }
}

/// Turns a committed reservation into allocation actors.
async fn allocate(
    shared: &Arc<Shared>,
    request: Allocate,
    trace: Option<String>,
    contract: Option<String>,
) -> Result<Allocated, ActorError> {
    own_reservation(&request.reservation, &request.deployment)?;
    // An allocation id is taken once: a second allocate (a retry racing a slow revert, or
    // a caller naming someone else's deployment) must not replace a live allocation; and a
    // deployment id here belongs to one orchestrator (its routes and allocations are
    // trusted by that one only).
    {
        let other = shared
            .running(&request.deployment, None)
            .into_iter()
            .find(|r| r.orchestrator != request.orchestrator.did);
        if let Some(other) = other {
            return Err(ActorError::Unauthorized {
                code: "not_the_orchestrator".into(),
                reason: format!(
                    "deployment {} here belongs to {}, not {}",
                    request.deployment, other.orchestrator, request.orchestrator.did
                ),
            });
        }
        let live = shared.allocations.lock().expect("allocations lock");
        if let Some(spec) = request
            .allocations
            .iter()
            .find(|a| live.contains_key(&format!("{}.{}", request.deployment, a.name)))
        {
            return Err(failed(format!(
                "allocation {}.{} exists on this node already; revert it first",
                request.deployment, spec.name
            )));
        }
    }
    // Check every workload before taking the resources.
    for spec in &request.allocations {
        allocation::work::workload(spec, &[])
            .map_err(|e| bad(format!("allocation {}: {e}", spec.name)))?;
        if shared.executors.get(spec.allocation.executor).is_none() {
            let kind = spec.allocation.executor.name();
            return Err(failed(format!("allocation {}: no {kind} executor here", spec.name)));
        }
    }
    let (needed, gpus) = dms_protocol::total(request.allocations.iter().map(|a| &a.allocation));
    // The reservation's GPUs, in the order the accounts allocate them, shared out to
    // the allocations by their counts.
    let mut reserved_gpus = shared
        .manager
        .status()
        .reservations
        .into_iter()
        .find(|r| r.id == request.reservation)
        .map(|r| r.resources.gpus)
        .unwrap_or_default()
        .into_iter();
    let records: Vec<Hosted> = request
        .allocations
        .into_iter()
        .map(|spec: AllocationSpec| Hosted {
            gpus: reserved_gpus
                .by_ref()
                .take(dms_protocol::total([&spec.allocation]).1 as usize)
                .collect(),
            id: format!("{}.{}", request.deployment, spec.name),
            deployment: request.deployment.clone(),
            node: request.node.clone(),
            reservation: request.reservation.clone(),
            orchestrator: request.orchestrator.clone(),
            spec,
            execution: None,
            status: AllocationStatus { state: AllocationState::Allocated, ..Default::default() },
            restart_times: Vec::new(),
            grant: None,
            liveness: None,
            exit: None,
            publishing: None,
            trace: trace.clone(),
            contract: contract.clone(),
            billed_from_ms: None,
        })
        .collect();
    // The records are written lazily first; the durable allocation of the resources
    // then flushes them too, so both survive a crash or neither does.
    let (store, manager, written) = (shared.store.clone(), shared.manager.clone(), records.clone());
    let reservation = request.reservation.clone();
    // Each allocation actor has a key of its own.
    let keys = tokio::task::spawn_blocking(move || {
        let keys = hosted::create(&store, &written).map_err(failed)?;
        if let Err(error) = manager.allocate_as(&reservation, needed, gpus as usize) {
            for hosted in &written {
                let _ = HOSTED.delete_now(&store, &hosted.id);
            }
            return Err(failed(error));
        }
        Ok(keys)
    })
    .await
    .map_err(failed)??;
    let mut allocated = Allocated::default();
    if records.iter().any(|h| h.spec.subnet.is_some()) {
        allocated.subnet_endpoints = shared.subnet.endpoints();
    }
    for (hosted, key) in records.into_iter().zip(keys) {
        shared.ledger.hosting(&hosted.reservation, &hosted.id);
        let (id, name) = (hosted.id.clone(), hosted.spec.name.clone());
        let running = allocation::spawn(shared, hosted, key);
        allocated.allocations.insert(name, running.actor.handle().clone());
        shared.allocations.lock().expect("allocations lock").insert(id, running);
    }
    Ok(allocated)
}

/// Releases the reservations of a deployment and stops its allocations (of one node)
/// that `from` orchestrates: nobody else's.
async fn revert_all(shared: &Shared, revert: &Revert, from: &dms_crypto::Did) -> usize {
    // Reservations back every bid of a deployment at once, so only a whole revert
    // releases them; a revert of one node stops that node's allocations.
    let mut released = 0;
    if revert.node.is_none() {
        for reservation in shared.manager.status().reservations {
            if own_reservation(&reservation.id, &revert.deployment).is_ok()
                && shared.check_reserver(&reservation.id, from).is_ok()
            {
                shared.ledger.release(&reservation.id).await;
                released += 1;
            }
        }
    }
    let running = shared.running(&revert.deployment, revert.node.as_deref());
    for running in running.into_iter().filter(|r| r.orchestrator == *from) {
        if running.stop().await.is_some() {
            released += 1;
        }
    }
    released
}
