//! The provider side of deployments: bidding, commit, allocate, revert, and the
//! allocation actors that run workloads on this node's executors.
//!
//! | Behavior (root actor) | Payload | Answer |
//! |---|---|---|
//! | `/dms/deployment/request` (topic `/dms/deployment`, or direct) | `BidRequest` | `BidAnswer`: a bid (with a reservation) or a refusal with reasons, per node |
//! | `/dms/deployment/commit` | `Commit` | keeps the reservation (fails when it lapsed) |
//! | `/dms/deployment/allocate` | `Allocate` | creates allocation actors; their handles |
//! | `/dms/deployment/revert` | `Revert` | releases reservations, stops and removes allocations |
//!
//! Each allocation actor (inbox = `<deployment>.<allocation>`, the node key, the node's
//! capability context plus the orchestrator's DID as a root) answers
//! `/dms/allocation/{start,status,logs,shutdown}` and pushes every state change to the
//! orchestrator (`/dms/deployment/update`, retried). Allocations are persisted; after a
//! restart containers are re-attached, and WebAssembly runs (in-process, so gone) are
//! reported failed with that reason. Resources are released when every allocation of a
//! node has ended, on revert and on shutdown.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use dms_actor::envelope::now_ms;
use dms_actor::{Actor, ActorError, Handle, Router, json_reply};
use dms_ensemble::model::{AllocationType, Executor as ExecutorKind};
use dms_executor::{
    ExecutionId, Executor, LogOptions, ModuleSource, OutputStream, PullPolicy, Spec, Workload,
};
use dms_orchestrator::protocol::*;
use dms_store::{Repo, Store};
use dms_types::capability::{Machine, explain, score};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::behaviors::{bad, failed};
use crate::resources::ResourceManager;

const HOSTED: Repo<Hosted> = Repo::new("hosted_allocations");
/// How long a committed reservation is kept for its allocate.
const COMMIT_TTL: Duration = Duration::from_secs(120);
/// Grace of a stop before the workload is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// An allocation this node hosts, as persisted.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hosted {
    /// `<deployment>.<allocation>`: the actor's inbox and the executor's allocation id.
    pub id: String,
    /// The deployment.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The resource account of the node's allocations (`<deployment>/<node>/<n>`).
    pub reservation: String,
    /// The orchestrator actor.
    pub orchestrator: Handle,
    /// What to run.
    pub spec: AllocationSpec,
    /// The executor's id, once started.
    #[serde(default)]
    pub execution: Option<String>,
    /// Its status.
    pub status: AllocationStatus,
    /// When it was restarted (Unix milliseconds), for the policy's window.
    #[serde(default)]
    pub restart_times: Vec<u64>,
}

/// Provider settings (`[deployment]`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Longest a bid's reservation is held.
    pub max_reservation: Duration,
    /// Refuse ensembles without a contract.
    pub require_contract: bool,
    /// Price per hour asked.
    pub price_per_hour: f64,
    /// Where the machine is.
    pub location: Option<dms_types::capability::Location>,
}

/// What the provider uses.
pub struct Deps {
    /// Resource accounts.
    pub manager: ResourceManager,
    /// The node's store.
    pub store: Store,
    /// The node's router.
    pub router: Router,
    /// The node's root actor.
    pub root: Actor,
    /// The network (round-trip times for bids).
    pub client: dms_network::Client,
    /// Settings.
    pub settings: Settings,
    /// The executors allocations run on.
    pub executors: Executors,
}

/// The executors a provider runs allocations on.
#[derive(Clone, Default)]
pub enum Executors {
    /// WebAssembly in-process, and Docker when an engine answers (what `dms run` uses).
    #[default]
    Host,
    /// These, by executor name (`wasm`, `docker`): for the in-process test harness,
    /// which runs many nodes on one fake engine.
    Given(BTreeMap<String, Arc<dyn Executor>>),
}

/// The provider: its behaviors hold an `Arc` of it.
pub struct Provider {
    deps: Deps,
    wasm: Option<Arc<dyn Executor>>,
    docker: OnceCell<Option<Arc<dyn Executor>>>,
    actors: Mutex<BTreeMap<String, Actor>>,
    /// Serializes changes to hosted records (status writes from watchers and calls).
    records: Mutex<()>,
}

impl Provider {
    /// Starts the provider: registers the behaviors, subscribes to bid requests and
    /// recovers the allocations kept in the store.
    pub async fn start(deps: Deps) -> Result<Arc<Provider>, ActorError> {
        let (wasm, docker) = match &deps.executors {
            Executors::Host => {
                let wasm = dms_executor::wasm::Executor::new(dms_executor::wasm::Config::default())
                    .map_err(|e| ActorError::Internal { reason: format!("wasm executor: {e}") })?;
                (Some(Arc::new(wasm) as Arc<dyn Executor>), OnceCell::new())
            }
            Executors::Given(given) => {
                (given.get("wasm").cloned(), OnceCell::new_with(Some(given.get("docker").cloned())))
            }
        };
        let provider = Arc::new(Provider {
            deps,
            wasm,
            docker,
            actors: Mutex::new(BTreeMap::new()),
            records: Mutex::new(()),
        });
        provider.register()?;
        provider.deps.root.subscribe(DEPLOYMENT_TOPIC);
        provider.deps.client.subscribe(DEPLOYMENT_TOPIC).await.map_err(failed)?;
        provider.clone().recover().await;
        Ok(provider)
    }

    async fn docker(&self) -> Option<Arc<dyn Executor>> {
        self.docker
            .get_or_init(|| async {
                let config = dms_executor::docker::Config::default();
                match tokio::time::timeout(Duration::from_secs(3), dms_executor::docker::Executor::connect(config)).await {
                    Ok(Ok(docker)) => Some(Arc::new(docker) as Arc<dyn Executor>),
                    Ok(Err(error)) => {
                        info!(%error, "No Docker engine: this node bids only for WebAssembly allocations.");
                        None
                    }
                    Err(_) => None,
                }
            })
            .await
            .clone()
    }

    async fn executor(&self, kind: ExecutorKind) -> Option<Arc<dyn Executor>> {
        match kind {
            ExecutorKind::Wasm => self.wasm.clone(),
            ExecutorKind::Docker => self.docker().await,
            ExecutorKind::Vm => None,
        }
    }

    fn register(self: &Arc<Self>) -> Result<(), ActorError> {
        let root = &self.deps.root;
        let p = self.clone();
        root.behavior(REQUEST, move |message| {
            let p = p.clone();
            async move { json_reply(&p.bid(message.json()?).await) }
        })?;
        let p = self.clone();
        root.behavior(COMMIT, move |message| {
            let p = p.clone();
            async move {
                let commit: Commit = message.json()?;
                if !commit.reservation.starts_with(&format!("{}/", commit.deployment)) {
                    return Err(bad(format!(
                        "reservation {} is not for deployment {}",
                        commit.reservation, commit.deployment
                    )));
                }
                let reservation =
                    p.deps.manager.extend(&commit.reservation, COMMIT_TTL).map_err(failed)?;
                json_reply(&serde_json::json!({ "expires_ms": reservation.expires_ms }))
            }
        })?;
        let p = self.clone();
        root.behavior(ALLOCATE, move |message| {
            let p = p.clone();
            async move { json_reply(&p.allocate(message.json()?).await?) }
        })?;
        let p = self.clone();
        root.behavior(REVERT, move |message| {
            let p = p.clone();
            async move {
                let revert: Revert = message.json()?;
                let released = p.revert(&revert.deployment, revert.node.as_deref()).await;
                json_reply(&serde_json::json!({ "released": released }))
            }
        })?;
        Ok(())
    }

    /// What this machine offers now.
    async fn machine(&self) -> Machine {
        let mut executors = Vec::new();
        if self.wasm.is_some() {
            executors.push("wasm".to_string());
        }
        if self.docker().await.is_some() {
            executors.push("docker".into());
        }
        let price = self.deps.settings.price_per_hour;
        Machine {
            free: self.deps.manager.status().free,
            architecture: std::env::consts::ARCH.to_string(),
            executors,
            price_per_hour: (price > 0.0).then_some(price),
            location: self.deps.settings.location.clone(),
            benchmarks: crate::onboarding::benchmark_scores(&self.deps.store),
            ..Machine::default()
        }
    }

    async fn bid(&self, request: BidRequest) -> BidAnswer {
        let me = self.deps.router.peer().to_string();
        let mut answer = BidAnswer { peer: me.clone(), ..BidAnswer::default() };
        let refuse_all = |answer: &mut BidAnswer, code: &str, message: String| {
            for ask in &request.nodes {
                answer.refusals.push(Refusal {
                    node: ask.node.clone(),
                    reasons: vec![Reason {
                        transient: false,
                        code: code.into(),
                        message: message.clone(),
                    }],
                });
            }
        };
        if request.exclude.contains(&me) {
            refuse_all(
                &mut answer,
                "excluded",
                "this peer is excluded by the ensemble or failed it before".into(),
            );
            return answer;
        }
        let Some(offer) = self.deps.manager.status().onboarded.map(|o| o.resources) else {
            refuse_all(
                &mut answer,
                "not_onboarded",
                "this node offers no resources (`dms onboard`)".into(),
            );
            return answer;
        };
        if self.deps.settings.require_contract && request.contracts.is_empty() {
            refuse_all(
                &mut answer,
                "contract_required",
                "this node runs only deployments bound to a contract".into(),
            );
            return answer;
        }
        let rtt_ms: BTreeMap<String, f64> = self
            .deps
            .client
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.peer_id, p.rtt_ms? as f64)))
            .collect();
        let ttl = Duration::from_millis(request.reservation_ms.max(1))
            .min(self.deps.settings.max_reservation);
        // Every ask is judged against the same machine: one bid per node, all backed by
        // one reservation (below).
        let machine = self.machine().await;
        let mut claims = Vec::new();
        for ask in &request.nodes {
            if ask.pinned.as_ref().is_some_and(|p| *p != me) {
                answer.refusals.push(Refusal {
                    node: ask.node.clone(),
                    reasons: vec![Reason {
                        transient: false,
                        code: "pinned_elsewhere".into(),
                        message: "the node is pinned to another peer".into(),
                    }],
                });
                continue;
            }
            let mut reasons: Vec<Reason> = ask
                .executors
                .iter()
                .filter(|e| !machine.executors.contains(e))
                .map(|e| Reason {
                    transient: false,
                    code: "executor".into(),
                    message: format!("no {e} executor here"),
                })
                .collect();
            reasons.extend(location_reasons(ask, machine.location.as_ref()));
            let mut requirements = ask.requirements.clone();
            requirements.executors.clear();
            // Short of free resources the machine has in total: that passes when
            // allocations end.
            let fits_offer = requirements.claim(&offer).is_some();
            reasons.extend(explain(&requirements, &machine).into_iter().map(|m| {
                use dms_types::capability::MismatchCode as C;
                let shortage = matches!(
                    m.code,
                    C::InsufficientCpu
                        | C::InsufficientRam
                        | C::InsufficientDisk
                        | C::InsufficientGpus
                );
                Reason {
                    transient: shortage && fits_offer,
                    code: serde_json::to_value(m.code)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    message: m.message,
                }
            }));
            let claim = requirements.claim(&machine.free);
            let (Some(claim), true) = (claim, reasons.is_empty()) else {
                answer.refusals.push(Refusal { node: ask.node.clone(), reasons });
                continue;
            };
            let score = score(&requirements, &machine).unwrap_or(0.0);
            claims.push(claim);
            answer.bids.push(Bid {
                node: ask.node.clone(),
                reservation: String::new(),
                expires_ms: 0,
                machine: machine.clone(),
                score,
                rtt_ms: rtt_ms.clone(),
            });
        }
        // A provider takes at most one node of a deployment (nodes are distinct
        // machines), so one reservation covering the largest of its bids backs them all.
        if !request.dry_run && !answer.bids.is_empty() {
            let id = format!("{}/{:08x}", request.deployment, rand::random::<u32>());
            match self.deps.manager.reserve(&id, largest(&claims), ttl) {
                Ok(reservation) => {
                    for bid in &mut answer.bids {
                        bid.reservation = reservation.id.clone();
                        bid.expires_ms = reservation.expires_ms;
                    }
                }
                Err(error) => {
                    for bid in std::mem::take(&mut answer.bids) {
                        answer.refusals.push(Refusal {
                            node: bid.node,
                            reasons: vec![Reason {
                                transient: true,
                                code: "reserve_failed".into(),
                                message: error.to_string(),
                            }],
                        });
                    }
                }
            }
        }
        answer
    }

    async fn allocate(self: &Arc<Self>, request: Allocate) -> Result<Allocated, ActorError> {
        if !request.reservation.starts_with(&format!("{}/", request.deployment)) {
            return Err(bad(format!(
                "reservation {} is not for deployment {}",
                request.reservation, request.deployment
            )));
        }
        // Check every workload before taking the resources.
        for spec in &request.allocations {
            workload(spec).map_err(|e| bad(format!("allocation {}: {e}", spec.name)))?;
            if self.executor(spec.allocation.executor).await.is_none() {
                return Err(failed(format!(
                    "allocation {}: no {} executor here",
                    spec.name,
                    spec.allocation.executor.name()
                )));
            }
        }
        let (needed, gpus) =
            dms_orchestrator::ask::total(request.allocations.iter().map(|a| &a.allocation));
        // The records are written lazily first; the durable allocation of the resources
        // then flushes them too, so both survive a crash or neither does.
        let mut records = Vec::new();
        for spec in request.allocations {
            let hosted = Hosted {
                id: format!("{}.{}", request.deployment, spec.name),
                deployment: request.deployment.clone(),
                node: request.node.clone(),
                reservation: request.reservation.clone(),
                orchestrator: request.orchestrator.clone(),
                spec,
                execution: None,
                status: AllocationStatus {
                    state: AllocationState::Allocated,
                    ..AllocationStatus::default()
                },
                restart_times: Vec::new(),
            };
            HOSTED.put_lazy(&self.deps.store, &hosted.id, &hosted).map_err(failed)?;
            records.push(hosted);
        }
        if let Err(error) =
            self.deps.manager.allocate_as(&request.reservation, needed, gpus as usize)
        {
            for hosted in &records {
                let _ = HOSTED.delete_now(&self.deps.store, &hosted.id);
            }
            return Err(failed(error));
        }
        let mut allocated = Allocated::default();
        for hosted in records {
            let actor = self.spawn_actor(&hosted)?;
            allocated.allocations.insert(hosted.spec.name.clone(), actor.handle().clone());
        }
        Ok(allocated)
    }

    /// The allocation's actor. It authorizes with the node's live capability context (a
    /// revocation is in force for it at once): its orchestrator must hold `/dms/allocation`
    /// like any other caller, and only that orchestrator is obeyed.
    fn spawn_actor(self: &Arc<Self>, hosted: &Hosted) -> Result<Actor, ActorError> {
        let actor = Actor::spawn(
            &self.deps.router,
            &hosted.id,
            self.deps.root.signing_key().clone(),
            self.deps.root.live_context().clone(),
            self.deps.root.verifier().clone(),
        );
        let id = hosted.id.clone();
        let owner = hosted.orchestrator.did.clone();
        let p = self.clone();
        let (i, o) = (id.clone(), owner.clone());
        actor.behavior(ALLOCATION_START, move |message| {
            let (p, i) = (p.clone(), i.clone());
            let owned = from_owner(&message, &o);
            async move {
                owned?;
                json_reply(&p.run_allocation(&i).await?)
            }
        })?;
        let p = self.clone();
        let (i, o) = (id.clone(), owner.clone());
        actor.behavior(ALLOCATION_STATUS, move |message| {
            let (p, i) = (p.clone(), i.clone());
            let owned = from_owner(&message, &o);
            async move {
                owned?;
                json_reply(&p.load(&i)?.status)
            }
        })?;
        let p = self.clone();
        let (i, o) = (id.clone(), owner.clone());
        actor.behavior(ALLOCATION_LOGS, move |message| {
            let (p, i) = (p.clone(), i.clone());
            let owned = from_owner(&message, &o);
            async move {
                owned?;
                let request: LogsRequest = if message.envelope.payload.is_empty() {
                    LogsRequest::default()
                } else {
                    message.json()?
                };
                json_reply(&p.logs(&i, request.tail).await?)
            }
        })?;
        let p = self.clone();
        let (i, o) = (id.clone(), owner);
        actor.behavior(ALLOCATION_SHUTDOWN, move |message| {
            let (p, i) = (p.clone(), i.clone());
            let owned = from_owner(&message, &o);
            async move {
                owned?;
                let status = p.stop(&i).await?;
                Ok(serde_json::to_vec(&status).unwrap_or_default())
            }
        })?;
        self.actors.lock().expect("actors lock").insert(id, actor.clone());
        Ok(actor)
    }

    fn load(&self, id: &str) -> Result<Hosted, ActorError> {
        HOSTED
            .get_now(&self.deps.store, id)
            .map_err(failed)?
            .ok_or_else(|| bad(format!("no allocation {id} here")))
    }

    /// Writes a status change; returns the record, or `None` when it is unchanged, gone,
    /// or already ended (a terminal state is final: a late exit does not overwrite a
    /// stop). Every change bumps the status version, which orders what the orchestrator
    /// hears.
    fn set_status(&self, id: &str, change: impl FnOnce(&mut Hosted)) -> Option<Hosted> {
        self.set_status_with(true, id, change)
    }

    /// [`Provider::set_status`] written lazily (for the start path, which then flushes
    /// in the background).
    fn set_status_with(
        &self,
        durable: bool,
        id: &str,
        change: impl FnOnce(&mut Hosted),
    ) -> Option<Hosted> {
        let _guard = self.records.lock().expect("records lock");
        let mut hosted = HOSTED.get_now(&self.deps.store, id).ok().flatten()?;
        let before = hosted.status.clone();
        if before.state.is_terminal() {
            return None;
        }
        change(&mut hosted);
        hosted.status.version = before.version;
        let changed = hosted.status != before;
        if changed {
            hosted.status.version += 1;
        }
        let written = if durable {
            HOSTED.put_now(&self.deps.store, id, &hosted)
        } else {
            HOSTED.put_lazy(&self.deps.store, id, &hosted)
        };
        if let Err(error) = written {
            warn!(%id, %error, "Could not persist an allocation's status.");
        }
        changed.then_some(hosted)
    }

    async fn run_allocation(self: &Arc<Self>, id: &str) -> Result<AllocationStatus, ActorError> {
        let hosted = self.load(id)?;
        if hosted.status.state != AllocationState::Allocated {
            return Ok(hosted.status);
        }
        let executor = self.executor(hosted.spec.allocation.executor).await.ok_or_else(|| {
            failed(format!("no {} executor here", hosted.spec.allocation.executor.name()))
        })?;
        let spec = executor_spec(&hosted).map_err(bad)?;
        let starting = std::time::Instant::now();
        match executor.start(spec).await {
            Ok(execution) => {
                let start_us = u64::try_from(starting.elapsed().as_micros()).ok();
                // Answer first, flush right after: a crash in between leaves the record
                // "allocated", and recovery still finds the workload (containers by
                // label; WebAssembly runs die with the process anyway).
                let updated = self.set_status_with(false, id, |h| {
                    h.execution = Some(execution.0.clone());
                    h.status = AllocationStatus {
                        state: AllocationState::Running,
                        started_ms: Some(now_ms()),
                        start_us,
                        ..AllocationStatus::default()
                    };
                });
                let status = updated.map(|h| h.status).unwrap_or_default();
                let store = self.deps.store.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(error) = store.write(|_| Ok(())) {
                        warn!(%error, "Could not flush an allocation's start.");
                    }
                });
                tokio::spawn(self.clone().watch(id.to_string(), executor, execution));
                Ok(status)
            }
            Err(error) => {
                let message = format!("could not start: {error}");
                if let Some(hosted) = self.set_status(id, |h| {
                    h.status = AllocationStatus {
                        state: AllocationState::Failed,
                        message: Some(message.clone()),
                        finished_ms: Some(now_ms()),
                        ..AllocationStatus::default()
                    };
                }) {
                    self.release_if_done(&hosted);
                }
                Err(failed(message))
            }
        }
    }

    /// Waits for an execution to exit, records how, releases and tells the orchestrator.
    async fn watch(
        self: Arc<Self>,
        id: String,
        executor: Arc<dyn Executor>,
        mut execution: ExecutionId,
    ) {
        loop {
            match self.clone().watch_once(&id, &executor, &execution).await {
                Some(restarted) => execution = restarted,
                None => return,
            }
        }
    }

    /// Waits for one execution to exit and records it; the new execution when the
    /// restart policy started it again.
    async fn watch_once(
        self: Arc<Self>,
        id: &str,
        executor: &Arc<dyn Executor>,
        execution: &ExecutionId,
    ) -> Option<ExecutionId> {
        let id = id.to_string();
        let execution = execution.clone();
        let executor = executor.clone();
        let exit = executor.wait(&execution).await;
        let output = output_of(executor.as_ref(), &execution).await;
        let Ok(hosted) = self.load(&id) else { return None };
        if hosted.status.state.is_terminal() {
            return None; // stopped by a shutdown or revert meanwhile
        }
        let status = match exit {
            Ok(exit) => {
                let ok = exit.code == 0 && hosted.spec.allocation.kind == AllocationType::Task;
                AllocationStatus {
                    state: if ok { AllocationState::Completed } else { AllocationState::Failed },
                    exit_code: Some(exit.code),
                    message: (!ok).then(|| match hosted.spec.allocation.kind {
                        AllocationType::Service => {
                            format!("the service exited ({:?})", exit.reason)
                        }
                        AllocationType::Task => {
                            format!("the task exited with code {} ({:?})", exit.code, exit.reason)
                        }
                    }),
                    output: Some(output),
                    started_ms: hosted.status.started_ms,
                    finished_ms: Some(now_ms()),
                    start_us: hosted.status.start_us,
                    restarts: hosted.status.restarts,
                    version: hosted.status.version,
                }
            }
            Err(error) => AllocationStatus {
                state: AllocationState::Failed,
                message: Some(format!("lost track of the workload: {error}")),
                started_ms: hosted.status.started_ms,
                finished_ms: Some(now_ms()),
                ..AllocationStatus::default()
            },
        };
        let mut status = status;
        if let Some(code) = status.exit_code {
            match restart_due(&hosted, code, now_ms()) {
                Some(Ok(delay)) => {
                    return self.restart(hosted, executor, execution, status, delay).await;
                }
                Some(Err(made)) => {
                    let message =
                        status.message.take().unwrap_or_else(|| format!("exited with code {code}"));
                    status.state = AllocationState::Failed;
                    status.message = Some(format!("{message}; gave up after {made} restarts"));
                }
                None => {}
            }
        }
        if let Some(hosted) = self.set_status(&id, |h| h.status = status) {
            self.release_if_done(&hosted);
            self.tell(&hosted).await;
        }
        None
    }

    /// Restarts an exited workload after `delay` (its restart policy asked for it).
    async fn restart(
        self: Arc<Self>,
        hosted: Hosted,
        executor: Arc<dyn Executor>,
        old: ExecutionId,
        exited: AllocationStatus,
        delay: Duration,
    ) -> Option<ExecutionId> {
        let id = hosted.id.clone();
        let restarts = hosted.status.restarts + 1;
        let max = hosted.spec.allocation.restart.as_ref().and_then(|p| p.max_attempts);
        let note = format!(
            "exited with code {}; restarting in {delay:?} (restart {restarts}{})",
            exited.exit_code.unwrap_or_default(),
            max.map(|m| format!(" of {m}")).unwrap_or_default()
        );
        let waiting = self.set_status(&id, |h| {
            h.status = AllocationStatus {
                state: AllocationState::Starting,
                message: Some(note),
                restarts,
                ..exited.clone()
            };
            h.restart_times.push(now_ms());
        });
        if let Some(waiting) = &waiting {
            self.tell(waiting).await;
        }
        tokio::time::sleep(delay).await;
        let Ok(hosted) = self.load(&id) else { return None };
        if hosted.status.state != AllocationState::Starting {
            return None; // shut down meanwhile
        }
        let _ = executor.remove(&old).await;
        let started = match executor_spec(&hosted) {
            Ok(spec) => executor.start(spec).await.map_err(|e| e.to_string()),
            Err(error) => Err(error),
        };
        match started {
            Ok(execution) => {
                if let Some(running) = self.set_status(&id, |h| {
                    h.execution = Some(execution.0.clone());
                    h.status = AllocationStatus {
                        state: AllocationState::Running,
                        started_ms: Some(now_ms()),
                        restarts,
                        ..AllocationStatus::default()
                    };
                }) {
                    self.tell(&running).await;
                }
                Some(execution)
            }
            Err(error) => {
                if let Some(failed) = self.set_status(&id, |h| {
                    h.status.state = AllocationState::Failed;
                    h.status.message = Some(format!("could not restart: {error}"));
                    h.status.finished_ms = Some(now_ms());
                }) {
                    self.release_if_done(&failed);
                    self.tell(&failed).await;
                }
                None
            }
        }
    }

    /// Pushes the allocation's status to its orchestrator, retrying a few times.
    async fn tell(&self, hosted: &Hosted) {
        let Some(actor) = self.actors.lock().expect("actors lock").get(&hosted.id).cloned() else {
            return;
        };
        let update = Update {
            deployment: hosted.deployment.clone(),
            allocation: hosted.spec.name.clone(),
            status: hosted.status.clone(),
        };
        let payload = serde_json::to_vec(&update).unwrap_or_default();
        let mut delay = Duration::from_millis(500);
        for attempt in 1..=4 {
            match actor
                .invoke(&hosted.orchestrator, UPDATE, payload.clone(), Duration::from_secs(5))
                .await
            {
                Ok(_) => return,
                Err(error) if attempt == 4 => {
                    warn!(allocation = %hosted.id, %error, "The orchestrator did not take the update; it asks again when it resumes.");
                }
                Err(_) => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
    }

    /// Releases the node's resources once every allocation of it has ended.
    fn release_if_done(&self, hosted: &Hosted) {
        let siblings = HOSTED
            .scan_prefix_now(&self.deps.store, &format!("{}.", hosted.deployment))
            .unwrap_or_default();
        let all_ended = siblings
            .iter()
            .filter(|(_, h)| h.reservation == hosted.reservation)
            .all(|(_, h)| h.status.state.is_terminal());
        if all_ended && let Err(error) = self.deps.manager.release(&hosted.reservation) {
            warn!(reservation = %hosted.reservation, %error, "Could not release resources.");
        }
    }

    async fn logs(&self, id: &str, tail: Option<usize>) -> Result<Logs, ActorError> {
        let hosted = self.load(id)?;
        let Some(execution) = hosted.execution.clone() else {
            return Ok(Logs { lines: Vec::new(), exited: hosted.status.state.is_terminal() });
        };
        let executor = self
            .executor(hosted.spec.allocation.executor)
            .await
            .ok_or_else(|| failed("executor gone"))?;
        let options = LogOptions { follow: false, tail, stdout: true, stderr: true };
        let lines = executor
            .logs(&ExecutionId(execution), options)
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?
            .into_iter()
            .map(|l| LogLine {
                stream: match l.stream {
                    OutputStream::Stdout => "stdout".into(),
                    OutputStream::Stderr => "stderr".into(),
                },
                text: l.text.trim_end_matches('\n').to_string(),
            })
            .collect();
        Ok(Logs { lines, exited: hosted.status.state.is_terminal() })
    }

    /// Stops and removes the workload, releases resources, forgets the allocation.
    async fn stop(&self, id: &str) -> Result<AllocationStatus, ActorError> {
        let hosted = self.load(id)?;
        let stopped = self.set_status(id, |h| {
            if !h.status.state.is_terminal() {
                h.status.state = AllocationState::Stopped;
                h.status.message = Some("stopped by a shutdown".into());
                h.status.finished_ms = Some(now_ms());
            }
        });
        if let Some(execution) = &hosted.execution
            && let Some(executor) = self.executor(hosted.spec.allocation.executor).await
        {
            let execution = ExecutionId(execution.clone());
            let _ = executor.stop(&execution, STOP_GRACE).await;
            if let Err(error) = executor.remove(&execution).await {
                warn!(allocation = %id, %error, "Could not remove the workload.");
            }
        }
        let hosted = stopped.unwrap_or(hosted);
        if let Err(error) = self.deps.manager.release(&hosted.reservation) {
            warn!(reservation = %hosted.reservation, %error, "Could not release resources.");
        }
        let _ = HOSTED.delete_now(&self.deps.store, id);
        if let Some(actor) = self.actors.lock().expect("actors lock").remove(id) {
            // Let the reply to this call go out first.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                actor.stop();
            });
        }
        Ok(hosted.status)
    }

    /// Releases reservations and stops allocations of a deployment (one node of it).
    async fn revert(&self, deployment: &str, node: Option<&str>) -> usize {
        // Reservations back every bid of a deployment at once, so only a whole revert
        // releases them; a revert of one node stops that node's allocations.
        let prefix = format!("{deployment}/");
        let mut released = 0;
        for reservation in self.deps.manager.status().reservations {
            if node.is_none()
                && reservation.id.starts_with(&prefix)
                && self.deps.manager.release(&reservation.id).unwrap_or(false)
            {
                released += 1;
            }
        }
        for (id, hosted) in
            HOSTED.scan_prefix_now(&self.deps.store, &format!("{deployment}.")).unwrap_or_default()
        {
            if node.is_none_or(|n| n == hosted.node) && self.stop(&id).await.is_ok() {
                released += 1;
            }
        }
        released
    }

    /// After a restart: re-spawns allocation actors, re-attaches containers, reports
    /// in-process runs as lost, and frees resources no allocation accounts for.
    async fn recover(self: Arc<Self>) {
        let hosted: Vec<(String, Hosted)> = HOSTED.list_now(&self.deps.store).unwrap_or_default();
        let known: HashSet<String> = hosted
            .iter()
            .filter(|(_, h)| {
                h.spec.allocation.executor == ExecutorKind::Docker && !h.status.state.is_terminal()
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut reattached = HashSet::new();
        if !known.is_empty()
            && let Some(docker) = self.docker().await
        {
            match docker.reattach(&known).await {
                Ok(recovery) => {
                    for info in recovery.reattached {
                        reattached.insert(info.allocation.clone());
                        tokio::spawn(self.clone().watch(
                            info.allocation.clone(),
                            docker.clone(),
                            info.id.clone(),
                        ));
                    }
                }
                Err(error) => warn!(%error, "Could not re-attach containers."),
            }
        }
        let accounted: HashSet<String> =
            hosted.iter().map(|(_, h)| h.reservation.clone()).collect();
        for id in self.deps.manager.status().allocations.keys() {
            if id.starts_with("d-") && !accounted.contains(id) {
                let _ = self.deps.manager.release(id);
            }
        }
        for (id, h) in hosted {
            if let Err(error) = self.spawn_actor(&h) {
                warn!(allocation = %id, %error, "Could not recreate an allocation actor.");
                continue;
            }
            // "Allocated" counts too: its start may have been written lazily and lost.
            let running = matches!(
                h.status.state,
                AllocationState::Allocated | AllocationState::Running | AllocationState::Starting
            );
            if reattached.contains(&id) && h.status.state == AllocationState::Allocated {
                self.set_status(&id, |h| {
                    h.status.state = AllocationState::Running;
                    h.status.started_ms.get_or_insert_with(now_ms);
                });
            }
            if running && !reattached.contains(&id) {
                let lost = self.set_status(&id, |h| {
                    h.status.state = AllocationState::Failed;
                    h.status.message = Some(match h.spec.allocation.executor {
                        ExecutorKind::Wasm => {
                            "the provider restarted; a WebAssembly run does not survive a restart"
                                .into()
                        }
                        _ => "the provider restarted and the workload was gone".into(),
                    });
                    h.status.finished_ms = Some(now_ms());
                });
                if let Some(lost) = lost {
                    self.release_if_done(&lost);
                    let p = self.clone();
                    tokio::spawn(async move { p.tell(&lost).await });
                }
            }
        }
    }
}

/// Only the orchestrator that created an allocation may command it.
fn from_owner(message: &dms_actor::Message, owner: &dms_crypto::Did) -> Result<(), ActorError> {
    if message.envelope.from.did == *owner {
        Ok(())
    } else {
        Err(ActorError::Unauthorized {
            code: "not_the_orchestrator".into(),
            reason: format!(
                "only the deployment's orchestrator ({owner}) commands this allocation, not {}",
                message.envelope.from.did
            ),
        })
    }
}

/// Component by component, the largest of `claims` (GPUs: the longest list).
fn largest(claims: &[dms_types::resources::Resources]) -> dms_types::resources::Resources {
    let mut out = dms_types::resources::Resources::default();
    for c in claims {
        out.cpu_millicores = out.cpu_millicores.max(c.cpu_millicores);
        out.ram_bytes = out.ram_bytes.max(c.ram_bytes);
        out.disk_bytes = out.disk_bytes.max(c.disk_bytes);
        if c.gpus.len() > out.gpus.len() {
            out.gpus = c.gpus.clone();
        }
    }
    out
}

/// The executor's spec of a hosted allocation.
fn executor_spec(hosted: &Hosted) -> Result<Spec, String> {
    let mut spec = Spec::new(&hosted.id, &hosted.deployment, workload(&hosted.spec)?);
    let allocation = &hosted.spec.allocation;
    spec.env = allocation.environment.clone();
    spec.args = match allocation.executor {
        ExecutorKind::Docker => allocation.execution.command.clone(),
        _ => allocation.execution.args.clone(),
    };
    spec.working_dir = allocation.execution.working_dir.clone();
    spec.resources.cpu_cores = Some(allocation.resources.cpu.cores);
    spec.resources.memory_bytes = Some(allocation.resources.ram.0);
    Ok(spec)
}

/// Whether the allocation's restart policy restarts it after exiting with `code`, and
/// after how long; `Err` with the number of restarts made when the policy gave up.
fn restart_due(hosted: &Hosted, code: i64, now: u64) -> Option<Result<Duration, u32>> {
    use dms_ensemble::model::Restart;
    let policy = hosted.spec.allocation.restart.as_ref()?;
    let wanted = match policy.policy {
        Restart::Never => false,
        Restart::OnFailure => code != 0,
        Restart::Always => true,
    };
    if !wanted {
        return None;
    }
    let window = policy.window.map(|w| u64::try_from(w.to_std().as_millis()).unwrap_or(u64::MAX));
    let recent = hosted
        .restart_times
        .iter()
        .filter(|t| window.is_none_or(|w| now.saturating_sub(**t) <= w))
        .count();
    if policy.max_attempts.is_some_and(|max| recent >= max as usize) {
        return Some(Err(hosted.status.restarts));
    }
    Some(Ok(policy.delay.map_or(Duration::from_secs(1), |d| d.to_std())))
}

/// Why the machine's location does not suit the node, if it does not.
fn location_reasons(ask: &NodeAsk, here: Option<&dms_types::capability::Location>) -> Vec<Reason> {
    let show = |l: &dms_types::capability::Location| {
        [&l.continent, &l.country, &l.city]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("/")
    };
    let mut reasons = Vec::new();
    if !ask.accept.is_empty() {
        match here {
            None => reasons.push(Reason {
                transient: false,
                code: "location".into(),
                message: "this node does not say where it is (deployment.location)".into(),
            }),
            Some(here) if !ask.accept.iter().any(|a| a.includes(here)) => reasons.push(Reason {
                transient: false,
                code: "location".into(),
                message: format!(
                    "this node is in {}, not in {}",
                    show(here),
                    ask.accept.iter().map(show).collect::<Vec<_>>().join(" or ")
                ),
            }),
            Some(_) => {}
        }
    }
    if let Some(here) = here
        && let Some(rejected) = ask.reject.iter().find(|r| r.includes(here))
    {
        reasons.push(Reason {
            transient: false,
            code: "location".into(),
            message: format!(
                "this node is in {}, which the ensemble rejects ({})",
                show(here),
                show(rejected)
            ),
        });
    }
    reasons
}

/// The executor workload of an allocation.
fn workload(spec: &AllocationSpec) -> Result<Workload, String> {
    let execution = &spec.allocation.execution;
    match spec.allocation.executor {
        ExecutorKind::Wasm => {
            let module = if let Some(b64) = &spec.module_b64 {
                ModuleSource::Bytes(
                    base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| format!("module: {e}"))?,
                )
            } else {
                match execution.module.as_deref() {
                    Some(url) if url.starts_with("http://") || url.starts_with("https://") => {
                        ModuleSource::Url(url.into())
                    }
                    Some(path) => {
                        return Err(format!(
                            "the module {path:?} was not sent along (deploy with `dms deploy`, which reads local modules)"
                        ));
                    }
                    None => return Err("no module".into()),
                }
            };
            Ok(Workload::Wasm { module, cpu_time: None, fuel: None })
        }
        ExecutorKind::Docker => {
            let image = execution.image.clone().ok_or("no image")?;
            let entrypoint =
                (!execution.entrypoint.is_empty()).then(|| execution.entrypoint.clone());
            Ok(Workload::Docker { image, entrypoint, pull: PullPolicy::IfMissing })
        }
        ExecutorKind::Vm => Err("the vm executor is not available on this node".into()),
    }
}

/// The end of an exited execution's standard output (at most [`OUTPUT_KEEP`] bytes).
async fn output_of(executor: &dyn Executor, execution: &ExecutionId) -> String {
    let options = LogOptions { follow: false, tail: Some(200), stdout: true, stderr: false };
    let Ok(stream) = executor.logs(execution, options).await else { return String::new() };
    let lines = stream.collect().await.unwrap_or_default();
    let mut text: String = lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("");
    if text.len() > OUTPUT_KEEP {
        let mut cut = text.len() - OUTPUT_KEEP;
        while !text.is_char_boundary(cut) {
            cut += 1;
        }
        text = text.split_off(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosted(restart: serde_json::Value) -> Hosted {
        let allocation: dms_ensemble::model::Allocation =
            serde_json::from_value(serde_json::json!({
                "type": "service", "executor": "wasm",
                "resources": {"cpu": {"cores": 0.5}, "ram": "64MiB"},
                "execution": {"module": "https://example.invalid/m.wasm"},
                "restart": restart,
            }))
            .expect("allocation");
        let did = dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519).did();
        Hosted {
            id: "d-1.web".into(),
            deployment: "d-1".into(),
            node: "n".into(),
            reservation: "d-1/n/0".into(),
            orchestrator: Handle { did, peer: "p".into(), inbox: "d-1".into() },
            spec: AllocationSpec { name: "web".into(), allocation, module_b64: None },
            execution: None,
            status: AllocationStatus::default(),
            restart_times: Vec::new(),
        }
    }

    #[test]
    fn restart_policies() {
        let on_failure = hosted(
            serde_json::json!({"policy": "on_failure", "max_attempts": 2, "delay": "200ms"}),
        );
        assert_eq!(restart_due(&on_failure, 0, 0), None, "a clean exit is not a failure");
        assert_eq!(restart_due(&on_failure, 1, 0), Some(Ok(Duration::from_millis(200))));
        let mut spent = on_failure.clone();
        spent.restart_times = vec![1, 2];
        spent.status.restarts = 2;
        assert_eq!(restart_due(&spent, 1, 3), Some(Err(2)), "gives up after max_attempts");
        let windowed =
            hosted(serde_json::json!({"policy": "always", "max_attempts": 1, "window": "1s"}));
        let mut old = windowed.clone();
        old.restart_times = vec![0];
        assert_eq!(
            restart_due(&old, 0, 5_000),
            Some(Ok(Duration::from_secs(1))),
            "old restarts leave the window"
        );
        assert_eq!(restart_due(&old, 0, 500), Some(Err(0)));
        assert_eq!(restart_due(&hosted(serde_json::json!({"policy": "never"})), 1, 0), None);
    }

    #[test]
    fn locations_are_checked_both_ways() {
        let berlin = dms_types::capability::Location {
            continent: Some("EU".into()),
            country: Some("DE".into()),
            city: Some("Berlin".into()),
        };
        let country = |c: &str| dms_types::capability::Location {
            country: Some(c.into()),
            ..Default::default()
        };
        let mut ask = NodeAsk {
            node: "n".into(),
            requirements: Default::default(),
            executors: Vec::new(),
            pinned: None,
            accept: vec![country("DE")],
            reject: Vec::new(),
        };
        assert!(location_reasons(&ask, Some(&berlin)).is_empty());
        assert_eq!(
            location_reasons(&ask, None)[0].code,
            "location",
            "unknown places are not accepted"
        );
        ask.accept = vec![country("FR")];
        assert!(location_reasons(&ask, Some(&berlin))[0].message.contains("not in FR"));
        ask.accept.clear();
        ask.reject = vec![country("de")];
        assert!(location_reasons(&ask, Some(&berlin))[0].message.contains("rejects"));
        assert!(location_reasons(&ask, None).is_empty(), "a reject list alone admits the unknown");
    }
}
