//! The orchestrator: one actor per deployment (inbox = deployment id) on the node that
//! received it, and the [`Registry`] that creates, lists, resumes and prunes them.
//!
//! Placement, attempt by attempt until the deadline:
//! 1. **Bid**: the request is broadcast on [`DEPLOYMENT_TOPIC`] (or sent straight to the
//!    pinned peers when every node is pinned). The window closes when every known peer
//!    answered, or a short grace after the bids first allow a placement, or at
//!    [`Settings::bid_window`] at the latest — not on a fixed timer.
//! 2. **Select** ([`crate::select::place`]); bids not chosen are released at once.
//! 3. **Commit** then **allocate** on every chosen provider, in parallel.
//! 4. **Start** allocations in `depends_on` order.
//!
//! A provider that fails step 3 or 4 is remembered and not asked again; everything
//! committed is reverted, and the next attempt follows a back-off (250 ms doubling to
//! 5 s). When the same reason blocks placement three attempts in a row the deployment
//! fails at once with it, rather than waiting for the deadline.
//!
//! Afterwards providers push [`UPDATE`]s; the deployment completes when every task has
//! exited 0, fails when all ended and one failed, and otherwise runs until shut down.
//! Every change is an [`Event`] and is written to the store before it is shown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::{Actor, ActorError, BoxFuture, Handle, Router, json_reply};
use dms_ensemble::model::Ensemble;
use dms_store::{Repo, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::ask;
use crate::deployment::{AllocationView, Deployment, DeploymentState, Event, Placed, Summary};
use crate::protocol::*;
use crate::select::{self, NodePlan};

const DEPLOYMENTS: Repo<Deployment> = Repo::new("deployments");

/// Timing of the orchestrator.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The longest a bid window stays open.
    pub bid_window: Duration,
    /// How long the window stays open after the bids first allow a placement, for
    /// better bids to arrive.
    pub bid_grace: Duration,
    /// How long providers hold a bid's reservation before it is committed.
    pub reservation: Duration,
    /// Timeout of commit, allocate, revert, status and logs calls.
    pub call_timeout: Duration,
    /// Timeout of an allocation's start (image checks, container creation).
    pub start_timeout: Duration,
    /// Placement deadline when the request gives none.
    pub default_deadline: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            bid_window: Duration::from_secs(3),
            bid_grace: Duration::from_millis(200),
            reservation: Duration::from_secs(15),
            call_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(60),
            default_deadline: Duration::from_secs(120),
        }
    }
}

/// Counts the peers expected to answer a bid request (this node included).
pub type PeerCount = Arc<dyn Fn() -> BoxFuture<usize> + Send + Sync>;
/// The root actor handle of a node, from its peer id.
pub type RootOf = Arc<dyn Fn(&str) -> Option<Handle> + Send + Sync>;

/// What the orchestrators of a node share.
pub struct Shared {
    /// The node's root actor (its key and capability context are the orchestrators').
    pub root: Actor,
    /// The node's router.
    pub router: Router,
    /// The node's store.
    pub store: Store,
    /// Timing.
    pub settings: Settings,
    /// Peers expected to bid.
    pub peers: PeerCount,
    /// Peer id to root handle.
    pub root_of: RootOf,
}

/// A request to deploy (`/dms/node/deployment/new` and `/dms/node/deployment/plan`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NewDeployment {
    /// The ensemble.
    pub ensemble: Ensemble,
    /// WebAssembly modules by allocation name, base64 (the CLI reads local files).
    #[serde(default)]
    pub modules: BTreeMap<String, String>,
    /// Placement deadline in milliseconds from now.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// The answer to a plan request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Peers that answered.
    pub answered: Vec<String>,
    /// Per node: candidates with scores, rejections with reasons.
    pub nodes: BTreeMap<String, NodePlan>,
    /// The placement a deployment would choose now, or why there is none.
    pub placement: Result<BTreeMap<String, String>, String>,
}

/// A deployment's status with the events after a sequence number.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Status {
    /// Id.
    pub id: String,
    /// State.
    pub state: DeploymentState,
    /// Why it failed.
    pub reason: Option<String>,
    /// When submitted.
    pub created_ms: u64,
    /// Placement deadline.
    pub deadline_ms: u64,
    /// Attempts so far.
    pub attempts: u32,
    /// Allocations.
    pub allocations: BTreeMap<String, AllocationView>,
    /// Events after the one asked for.
    pub events: Vec<Event>,
}

/// One deployment's orchestrator.
pub struct Orchestrator {
    record: Mutex<Deployment>,
    changed: watch::Sender<u64>,
    actor: Actor,
    shared: Arc<Shared>,
    cancel: AtomicBool,
    wake: Notify,
    placing: Mutex<Option<tokio::task::JoinHandle<()>>>,
    writer: Writer,
}

/// Writes a deployment's record to the store off the async path: in order, coalescing
/// bursts (the latest record is written), flushing to disk when a change asked for it.
struct Writer {
    /// Something changed.
    dirty: Arc<Notify>,
    /// A change since the last write must be durable.
    durable: Arc<AtomicBool>,
    /// The highest event sequence number durably written.
    flushed: watch::Receiver<u64>,
    /// Set when the deployment is pruned: the writer ends without writing again.
    closed: Arc<AtomicBool>,
    /// Held for each write, so that a prune can wait out the write in progress.
    writing: Arc<tokio::sync::Mutex<()>>,
}

impl Writer {
    fn start(
        orchestrator: std::sync::Weak<Orchestrator>,
        dirty: Arc<Notify>,
        durable: Arc<AtomicBool>,
        flushed: watch::Sender<u64>,
        closed: Arc<AtomicBool>,
        writing: Arc<tokio::sync::Mutex<()>>,
    ) {
        tokio::spawn(async move {
            loop {
                dirty.notified().await;
                let _writing = writing.lock().await;
                if closed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(o) = orchestrator.upgrade() else { return };
                let wants_durable = durable.swap(false, Ordering::SeqCst);
                let record = o.snapshot();
                let store = o.shared.store.clone();
                drop(o);
                let seq = record.next_seq;
                let written = tokio::task::spawn_blocking(move || {
                    if wants_durable {
                        DEPLOYMENTS.put_now(&store, &record.id, &record)
                    } else {
                        DEPLOYMENTS.put_lazy(&store, &record.id, &record)
                    }
                })
                .await;
                match written {
                    Ok(Ok(())) if wants_durable => {
                        flushed.send_replace(seq);
                    }
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => warn!(%error, "Could not persist a deployment."),
                    Err(error) => warn!(%error, "The deployment writer failed."),
                }
            }
        });
    }
}

fn bad(reason: impl std::fmt::Display) -> ActorError {
    ActorError::BadPayload { reason: reason.to_string() }
}

async fn call<T: DeserializeOwned>(
    actor: &Actor,
    to: &Handle,
    behavior: &str,
    payload: &impl Serialize,
    timeout: Duration,
) -> Result<T, ActorError> {
    let bytes =
        serde_json::to_vec(payload).map_err(|e| ActorError::Internal { reason: e.to_string() })?;
    let reply = actor.invoke(to, behavior, bytes, timeout).await?;
    serde_json::from_slice(&reply)
        .map_err(|e| ActorError::malformed(format!("{behavior} answer: {e}")))
}

impl Orchestrator {
    fn spawn(shared: Arc<Shared>, record: Deployment) -> Arc<Orchestrator> {
        let actor = Actor::spawn(
            &shared.router,
            &record.id,
            shared.root.signing_key().clone(),
            shared.root.live_context().clone(),
            shared.root.verifier().clone(),
        );
        let (changed, _) = watch::channel(record.next_seq);
        let (flushed_tx, flushed) = watch::channel(record.next_seq);
        let (dirty, durable) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        let closed = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(tokio::sync::Mutex::new(()));
        let orchestrator = Arc::new(Orchestrator {
            record: Mutex::new(record),
            changed,
            actor,
            shared,
            cancel: AtomicBool::new(false),
            wake: Notify::new(),
            placing: Mutex::new(None),
            writer: Writer {
                dirty: dirty.clone(),
                durable: durable.clone(),
                flushed,
                closed: closed.clone(),
                writing: writing.clone(),
            },
        });
        Writer::start(Arc::downgrade(&orchestrator), dirty, durable, flushed_tx, closed, writing);
        let weak = Arc::downgrade(&orchestrator);
        let registered = orchestrator.actor.behavior(UPDATE, move |message| {
            let weak = weak.clone();
            async move {
                let update: Update = message.json()?;
                let Some(orchestrator) = weak.upgrade() else { return Err(ActorError::Closed) };
                orchestrator.apply(&message.envelope.from, update)?;
                json_reply(&serde_json::json!({ "ok": true }))
            }
        });
        if let Err(error) = registered {
            warn!(%error, "Could not register the orchestrator's update behavior.");
        }
        orchestrator
    }

    /// The deployment as it is now.
    pub fn snapshot(&self) -> Deployment {
        self.record.lock().expect("deployment lock").clone()
    }

    /// Changes the record, adds an event, persists it and wakes status waiters.
    fn change(
        &self,
        allocation: Option<&str>,
        message: impl Into<String>,
        change: impl FnOnce(&mut Deployment),
    ) {
        self.change_at(allocation, message, change);
    }

    /// [`Orchestrator::change`], returning the event's sequence number.
    fn change_at(
        &self,
        allocation: Option<&str>,
        message: impl Into<String>,
        change: impl FnOnce(&mut Deployment),
    ) -> u64 {
        let seq = self.change_when(allocation, message, |record| {
            change(record);
            true
        });
        seq.expect("an unconditional change records an event")
    }

    /// Changes the record under its lock when `change` says so (returns true), adding an
    /// event, persisting it and waking status waiters; the event's sequence number, or
    /// `None` when `change` declined (nothing is written).
    fn change_when(
        &self,
        allocation: Option<&str>,
        message: impl Into<String>,
        change: impl FnOnce(&mut Deployment) -> bool,
    ) -> Option<u64> {
        let mut record = self.record.lock().expect("deployment lock");
        let before = Recovery::of(&record);
        if !change(&mut record) {
            return None;
        }
        let message = message.into();
        let seq = record.event(allocation, message.clone()).seq;
        info!(deployment = %record.id, state = record.state.name(), allocation = allocation.unwrap_or(""), "{message}");
        // What a restart needs is flushed to disk; progress notes ride along with the
        // next flush. Writing happens off this task; `durable` waits for it where it
        // matters.
        if record.next_seq == 1 || Recovery::of(&record) != before {
            self.writer.durable.store(true, Ordering::SeqCst);
        }
        drop(record);
        self.writer.dirty.notify_one();
        self.changed.send_replace(seq);
        Some(seq)
    }

    /// Waits until the record up to event `seq` is on disk.
    async fn durable(&self, seq: u64) {
        let mut flushed = self.writer.flushed.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), flushed.wait_for(|f| *f >= seq)).await;
    }

    fn set_state(&self, state: DeploymentState, message: impl Into<String>) {
        self.change(None, message, |r| r.state = state);
    }

    fn fail(&self, reason: String) {
        self.change(None, format!("failed: {reason}"), |r| {
            r.state = DeploymentState::Failed;
            r.reason = Some(reason.clone());
        });
    }

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Sleeps, waking early on cancellation.
    async fn pause(&self, duration: Duration) {
        let _ = tokio::time::timeout(duration, self.wake.notified()).await;
    }

    /// An update from an allocation's provider.
    fn apply(&self, from: &Handle, update: Update) -> Result<(), ActorError> {
        let record = self.snapshot();
        if update.deployment != record.id {
            return Err(bad(format!(
                "this is deployment {}, not {}",
                record.id, update.deployment
            )));
        }
        let view = record
            .allocations
            .get(&update.allocation)
            .ok_or_else(|| bad(format!("no allocation {:?}", update.allocation)))?;
        let owner = view.handle.as_ref().is_some_and(|h| h.peer == from.peer && h.did == from.did);
        if !owner {
            return Err(ActorError::Unauthorized {
                code: "not_the_host".into(),
                reason: format!("allocation {} is not hosted by {}", update.allocation, from.peer),
            });
        }
        self.record_status(&update.allocation, update.status);
        Ok(())
    }

    /// Records an allocation's status if it supersedes the one recorded (newer, and not
    /// reviving an ended allocation), deciding under the record's lock: statuses from
    /// updates, start answers and status polls arrive in any order.
    fn record_status(&self, allocation: &str, status: AllocationStatus) -> bool {
        let message = describe(&status);
        self.change_when(Some(allocation), message, |r| {
            let Some(view) = r.allocations.get_mut(allocation) else { return false };
            if !status.supersedes(&view.status) {
                return false;
            }
            view.status = status;
            if r.state == DeploymentState::Running {
                r.state = r.settled();
                if r.state == DeploymentState::Failed && r.reason.is_none() {
                    r.reason = first_failure(r);
                }
            }
            true
        })
        .is_some()
    }

    /// Places and starts the deployment, attempt after attempt, until it runs, fails
    /// or is cancelled.
    async fn place(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        let mut last_reason = String::new();
        let mut same_reason = 0;
        loop {
            if self.cancelled() {
                return;
            }
            let record = self.snapshot();
            let now = now_ms();
            if now >= record.deadline_ms {
                let why = if last_reason.is_empty() {
                    "no attempt finished".to_string()
                } else {
                    last_reason
                };
                self.fail(format!("deadline passed after {} attempts: {why}", record.attempts));
                return;
            }
            let attempt = record.attempts + 1;
            if attempt == 1 {
                for edge in record.ensemble.edges.iter().filter(|e| e.min_bandwidth.is_some()) {
                    self.change(
                        None,
                        format!(
                            "edge {}–{}: min_bandwidth cannot be checked (providers do not \
                             measure bandwidth yet); placing without it",
                            edge.source, edge.target
                        ),
                        |_| {},
                    );
                }
            }
            self.change(None, format!("attempt {attempt}: asking for bids"), |r| {
                r.state = DeploymentState::Bidding;
                r.attempts = attempt;
            });
            let asks = ask::asks(&record.ensemble);
            let answers = self.bids(&record, &asks, false).await;
            if self.cancelled() {
                self.release(&answers, &BTreeMap::new()).await;
                return;
            }
            let skip = skipped(&record);
            match select::place(&asks, &answers, &skip, &record.ensemble.edges) {
                Err(reason) => {
                    self.release(&answers, &BTreeMap::new()).await;
                    same_reason = if reason == last_reason { same_reason + 1 } else { 1 };
                    last_reason = reason.clone();
                    // Only lasting reasons end it early: resources in use may free up.
                    let lasting = !answers.is_empty()
                        && !answers
                            .iter()
                            .flat_map(|a| &a.refusals)
                            .flat_map(|r| &r.reasons)
                            .any(|r| r.transient);
                    if lasting && same_reason >= 3 {
                        self.fail(format!("cannot be placed: {reason}"));
                        return;
                    }
                    // A pending deployment says why it is pending (`dms deployments list`).
                    self.change(None, format!("cannot place yet: {reason}"), |r| {
                        r.reason = Some(format!("pending: {reason}"));
                    });
                }
                Ok(choice) => {
                    // Unchosen reservations are released beside the commit, not before it.
                    let releasing = self.clone();
                    let (unchosen, kept) = (answers.clone(), choice.clone());
                    tokio::spawn(async move { releasing.release(&unchosen, &kept).await });
                    let providers: BTreeMap<String, Handle> = answers
                        .iter()
                        .filter_map(|a| Some((a.peer.clone(), (self.shared.root_of)(&a.peer)?)))
                        .collect();
                    match self.clone().commit_and_start(&record, &choice, &providers).await {
                        Ok(()) => return,
                        Err((peer, reason)) => {
                            self.revert_all().await;
                            if self.cancelled() {
                                return;
                            }
                            last_reason = reason.clone();
                            same_reason = 0;
                            self.change(
                                None,
                                format!(
                                    "{reason}; reverted, {} will not be asked again",
                                    select::short(&peer)
                                ),
                                |r| {
                                    r.failed_peers.insert(peer.clone());
                                    r.reason = Some(format!("pending: {reason}"));
                                    r.placement.clear();
                                    for view in r.allocations.values_mut() {
                                        view.peer = None;
                                        view.handle = None;
                                        view.status = AllocationStatus::default();
                                    }
                                },
                            );
                        }
                    }
                }
            }
            let left = Duration::from_millis(self.snapshot().deadline_ms.saturating_sub(now_ms()));
            self.pause(backoff.min(left)).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Asks for bids and collects the answers until the window can close.
    async fn bids(&self, record: &Deployment, asks: &[NodeAsk], dry_run: bool) -> Vec<BidAnswer> {
        let settings = &self.shared.settings;
        let request = BidRequest {
            deployment: record.id.clone(),
            orchestrator: self.actor.handle().clone(),
            nodes: asks.to_vec(),
            exclude: skipped(record).into_iter().collect(),
            contracts: record.ensemble.contracts.keys().cloned().collect(),
            dry_run,
            reservation_ms: u64::try_from(settings.reservation.as_millis()).unwrap_or(u64::MAX),
        };
        let mut answers = Vec::new();
        let pinned: BTreeSet<String> = asks.iter().filter_map(|a| a.pinned.clone()).collect();
        if asks.iter().all(|a| a.pinned.is_some()) {
            let mut calls = JoinSet::new();
            for peer in pinned {
                let Some(to) = (self.shared.root_of)(&peer) else { continue };
                let actor = self.actor.clone();
                let request = request.clone();
                let timeout = settings.bid_window;
                calls.spawn(async move {
                    (peer, call::<BidAnswer>(&actor, &to, REQUEST, &request, timeout).await)
                });
            }
            while let Some(Ok((peer, answer))) = calls.join_next().await {
                match answer {
                    Ok(mut answer) => {
                        answer.peer = peer;
                        answers.push(answer);
                    }
                    Err(error) => self.change(
                        None,
                        format!("pinned peer {} did not bid: {error}", select::short(&peer)),
                        |_| {},
                    ),
                }
            }
            return answers;
        }
        let expected = (self.shared.peers)().await.max(1);
        let Ok(payload) = serde_json::to_vec(&request) else { return answers };
        let mut gathered = match self
            .actor
            .gather(DEPLOYMENT_TOPIC, REQUEST, payload, settings.bid_window, 4096)
            .await
        {
            Ok(gathered) => gathered,
            Err(error) => {
                self.change(None, format!("could not broadcast the bid request: {error}"), |_| {});
                return answers;
            }
        };
        let started = tokio::time::Instant::now();
        let mut close = started + settings.bid_window;
        let mut placeable = false;
        let skip = skipped(record);
        while let Some((from, reply)) = gathered.next_until(close).await {
            match reply
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<BidAnswer>(&b).map_err(|e| e.to_string()))
            {
                Ok(mut answer) => {
                    answer.peer = from.peer.clone();
                    answers.push(answer);
                }
                Err(error) => warn!(peer = %from.peer, %error, "A bid answer could not be read."),
            }
            if answers.len() >= expected {
                break;
            }
            if !placeable && select::place(asks, &answers, &skip, &record.ensemble.edges).is_ok() {
                placeable = true;
                close = close.min(tokio::time::Instant::now() + settings.bid_grace);
            }
        }
        let bids: usize = answers.iter().map(|a| a.bids.len()).sum();
        self.change(
            None,
            format!(
                "bid window closed after {} ms: {} of {expected} peers answered, {bids} bids",
                started.elapsed().as_millis(),
                answers.len()
            ),
            |_| {},
        );
        answers
    }

    /// Releases the reservations of bids that were not chosen.
    async fn release(&self, answers: &[BidAnswer], chosen: &BTreeMap<String, select::Choice>) {
        // A provider's bids share one reservation: keep it whole when one of them won.
        let mut calls = JoinSet::new();
        for answer in answers {
            let won = chosen.values().any(|c| c.peer == answer.peer);
            if won || answer.bids.iter().all(|b| b.reservation.is_empty()) {
                continue;
            }
            let Some(to) = (self.shared.root_of)(&answer.peer) else { continue };
            let revert = Revert { deployment: self.actor.handle().inbox.clone(), node: None };
            let actor = self.actor.clone();
            let timeout = self.shared.settings.call_timeout;
            calls.spawn(async move {
                let _ = call::<serde_json::Value>(&actor, &to, REVERT, &revert, timeout).await;
            });
        }
        while calls.join_next().await.is_some() {}
    }

    /// Commit, allocate, start; on failure, the peer to blame and why.
    async fn commit_and_start(
        self: Arc<Self>,
        record: &Deployment,
        choice: &BTreeMap<String, select::Choice>,
        providers: &BTreeMap<String, Handle>,
    ) -> Result<(), (String, String)> {
        let timeout = self.shared.settings.call_timeout;
        let placement: BTreeMap<String, Placed> = choice
            .iter()
            .filter_map(|(node, c)| {
                Some((
                    node.clone(),
                    Placed {
                        provider: providers.get(&c.peer)?.clone(),
                        reservation: c.reservation.clone(),
                        score: c.score,
                    },
                ))
            })
            .collect();
        let text: Vec<String> = placement
            .iter()
            .map(|(n, p)| format!("{n} → {} ({:.2})", select::short(&p.provider.peer), p.score))
            .collect();
        let chosen = self.change_at(None, format!("chose {}; committing", text.join(", ")), |r| {
            r.state = DeploymentState::Committing;
            r.placement = placement.clone();
            for view in r.allocations.values_mut() {
                view.peer = placement.get(&view.node).map(|p| p.provider.peer.clone());
            }
        });
        let mut calls = JoinSet::new();
        for (node, placed) in &placement {
            let commit = Commit {
                deployment: record.id.clone(),
                node: node.clone(),
                reservation: placed.reservation.clone(),
            };
            let (actor, to) = (self.actor.clone(), placed.provider.clone());
            calls.spawn(async move {
                (
                    to.peer.clone(),
                    call::<serde_json::Value>(&actor, &to, COMMIT, &commit, timeout).await,
                )
            });
        }
        while let Some(Ok((peer, result))) = calls.join_next().await {
            if let Err(error) = result {
                return Err((
                    peer.clone(),
                    format!("commit on {} failed: {error}", select::short(&peer)),
                ));
            }
        }
        if self.cancelled() {
            return Err((String::new(), "cancelled".into()));
        }
        // Allocation actors outlive a crash of this node; the placement must be on disk
        // first, so that a restart knows whom to revert. (Commits need not wait: their
        // reservations lapse on their own.)
        self.durable(chosen).await;
        self.set_state(DeploymentState::Allocating, "every provider committed; allocating");
        let mut calls = JoinSet::new();
        for (node, placed) in &placement {
            let names = &record.ensemble.nodes[node].allocations;
            let allocate = Allocate {
                deployment: record.id.clone(),
                node: node.clone(),
                reservation: placed.reservation.clone(),
                orchestrator: self.actor.handle().clone(),
                allocations: names
                    .iter()
                    .filter_map(|name| {
                        Some(AllocationSpec {
                            name: name.clone(),
                            allocation: record.ensemble.allocations.get(name)?.clone(),
                            module_b64: record.modules.get(name).cloned(),
                        })
                    })
                    .collect(),
            };
            let (actor, to) = (self.actor.clone(), placed.provider.clone());
            calls.spawn(async move {
                (
                    to.peer.clone(),
                    call::<Allocated>(&actor, &to, ALLOCATE, &allocate, timeout).await,
                )
            });
        }
        while let Some(Ok((peer, result))) = calls.join_next().await {
            match result {
                Ok(allocated) => self.change(
                    None,
                    format!(
                        "{} allocated {}",
                        select::short(&peer),
                        allocated.allocations.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                    |r| {
                        for (name, handle) in allocated.allocations {
                            if let Some(view) = r.allocations.get_mut(&name) {
                                view.handle = Some(handle);
                                view.status.state = AllocationState::Allocated;
                            }
                        }
                    },
                ),
                Err(error) => {
                    return Err((
                        peer.clone(),
                        format!("allocate on {} failed: {error}", select::short(&peer)),
                    ));
                }
            }
        }
        self.set_state(DeploymentState::Starting, "starting allocations in dependency order");
        for name in ask::start_order(&record.ensemble) {
            if self.cancelled() {
                return Err((String::new(), "cancelled".into()));
            }
            let Some(view) = self.snapshot().allocations.get(&name).cloned() else { continue };
            let Some(handle) = view.handle else {
                return Err((
                    view.peer.unwrap_or_default(),
                    format!("allocation {name} has no actor"),
                ));
            };
            match call::<AllocationStatus>(
                &self.actor,
                &handle,
                ALLOCATION_START,
                &serde_json::json!({}),
                self.shared.settings.start_timeout,
            )
            .await
            {
                Ok(status) => {
                    // An update pushed meanwhile (a quick task may have exited) is newer
                    // and wins: record_status keeps the newest.
                    self.record_status(&name, status);
                }
                Err(error) => {
                    return Err((
                        handle.peer.clone(),
                        format!(
                            "allocation {name} did not start on {}: {error}",
                            select::short(&handle.peer)
                        ),
                    ));
                }
            }
        }
        self.change(None, "every allocation started", |r| {
            r.state = r.settled();
            r.reason = (r.state == DeploymentState::Failed).then(|| first_failure(r)).flatten();
        });
        Ok(())
    }

    /// Reverts everything every placed provider holds for this deployment.
    async fn revert_all(&self) {
        let record = self.snapshot();
        let mut peers: BTreeMap<String, Handle> = record
            .placement
            .values()
            .map(|p| (p.provider.peer.clone(), p.provider.clone()))
            .collect();
        for view in record.allocations.values() {
            if let Some(handle) = &view.handle
                && let Some(root) = (self.shared.root_of)(&handle.peer)
            {
                peers.insert(handle.peer.clone(), root);
            }
        }
        let mut calls = JoinSet::new();
        for to in peers.into_values() {
            let revert = Revert { deployment: record.id.clone(), node: None };
            let actor = self.actor.clone();
            let timeout = self.shared.settings.call_timeout;
            calls.spawn(async move {
                (
                    to.peer.clone(),
                    call::<serde_json::Value>(&actor, &to, REVERT, &revert, timeout).await,
                )
            });
        }
        while let Some(Ok((peer, result))) = calls.join_next().await {
            if let Err(error) = result {
                warn!(%peer, %error, "Could not revert on a provider; its reservation lapses on its own.");
            }
        }
    }

    /// Stops every allocation and releases every resource.
    async fn shutdown(self: Arc<Self>) -> Deployment {
        self.cancel.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        let placing = self.placing.lock().expect("placing lock").take();
        if let Some(placing) = placing {
            let _ = placing.await;
        }
        let record = self.snapshot();
        if record.state == DeploymentState::ShutDown {
            return record;
        }
        self.set_state(DeploymentState::ShuttingDown, "shutting down");
        let mut calls = JoinSet::new();
        for (name, view) in &record.allocations {
            let Some(handle) = view.handle.clone() else { continue };
            let (actor, name) = (self.actor.clone(), name.clone());
            let timeout = self.shared.settings.start_timeout;
            calls.spawn(async move {
                (
                    name,
                    call::<AllocationStatus>(
                        &actor,
                        &handle,
                        ALLOCATION_SHUTDOWN,
                        &serde_json::json!({}),
                        timeout,
                    )
                    .await,
                )
            });
        }
        while let Some(Ok((name, result))) = calls.join_next().await {
            match result {
                Ok(status) => {
                    self.record_status(&name, status);
                }
                Err(error) => self.change(Some(&name), format!("could not stop: {error} (its provider releases it when it expires or restarts)"), |_| {}),
            }
        }
        self.revert_all().await;
        self.set_state(DeploymentState::ShutDown, "shut down; every resource released");
        self.snapshot()
    }

    /// Asks every running allocation for its status (after a restart of this node).
    async fn refresh(&self) {
        for (name, view) in self.snapshot().allocations {
            let Some(handle) = view.handle else { continue };
            if view.status.state.is_terminal() {
                continue;
            }
            match call::<AllocationStatus>(
                &self.actor,
                &handle,
                ALLOCATION_STATUS,
                &serde_json::json!({}),
                self.shared.settings.call_timeout,
            )
            .await
            {
                Ok(status) => {
                    self.record_status(&name, status);
                }
                Err(error) => self.change(
                    Some(&name),
                    format!("provider {} did not answer: {error}", select::short(&handle.peer)),
                    |_| {},
                ),
            }
        }
    }

    fn status(&self, after: u64) -> Status {
        let record = self.record.lock().expect("deployment lock");
        Status {
            id: record.id.clone(),
            state: record.state,
            reason: record.reason.clone(),
            created_ms: record.created_ms,
            deadline_ms: record.deadline_ms,
            attempts: record.attempts,
            allocations: record.allocations.clone(),
            events: record.events.iter().filter(|e| e.seq > after).cloned().collect(),
        }
    }
}

/// What resuming after a restart depends on: whether the deployment is being placed,
/// runs, shuts down or ended; where it was placed; the allocation actors; how ended
/// allocations ended; the peers not to ask again. A change to any of it is written
/// durably.
#[derive(PartialEq)]
struct Recovery {
    phase: u8,
    state: Option<DeploymentState>,
    placement: Vec<(String, String, String)>,
    allocations: Vec<(Option<Handle>, Option<AllocationState>)>,
    failed_peers: usize,
}

impl Recovery {
    fn of(record: &Deployment) -> Recovery {
        let phase = match record.state {
            s if s.is_placing() => 0,
            DeploymentState::Running => 1,
            DeploymentState::ShuttingDown => 2,
            _ => 3,
        };
        Recovery {
            phase,
            state: record.state.is_terminal().then_some(record.state),
            placement: record
                .placement
                .iter()
                .map(|(n, p)| (n.clone(), p.provider.peer.clone(), p.reservation.clone()))
                .collect(),
            allocations: record
                .allocations
                .values()
                .map(|a| (a.handle.clone(), a.status.state.is_terminal().then_some(a.status.state)))
                .collect(),
            failed_peers: record.failed_peers.len(),
        }
    }
}

fn skipped(record: &Deployment) -> BTreeSet<String> {
    record.failed_peers.iter().chain(&record.ensemble.exclude_peers).cloned().collect()
}

fn first_failure(record: &Deployment) -> Option<String> {
    record
        .allocations
        .iter()
        .find(|(_, v)| v.status.state == AllocationState::Failed)
        .map(|(name, v)| format!("allocation {name} {}", describe(&v.status)))
}

/// `running`, `completed (exit 0)`, `failed (exit 3): …`.
pub fn describe(status: &AllocationStatus) -> String {
    let state = match status.state {
        AllocationState::Pending => "pending",
        AllocationState::Allocated => "allocated",
        AllocationState::Starting => "starting",
        AllocationState::Running => "running",
        AllocationState::Completed => "completed",
        AllocationState::Failed => "failed",
        AllocationState::Stopped => "stopped",
    };
    let mut text = state.to_string();
    if let Some(code) = status.exit_code {
        text.push_str(&format!(" (exit {code})"));
    }
    if let Some(message) = &status.message {
        text.push_str(&format!(": {message}"));
    }
    text
}

/// Every deployment this node orchestrates.
pub struct Registry {
    shared: Arc<Shared>,
    deployments: RwLock<BTreeMap<String, Arc<Orchestrator>>>,
}

impl Registry {
    /// Loads the deployments kept in the store and resumes those not finished:
    /// running ones are asked for their allocations' status, ones caught placing are
    /// reverted and placed again (if their deadline allows), shutdowns are finished.
    pub fn open(shared: Shared) -> Result<Arc<Registry>, dms_store::Error> {
        let shared = Arc::new(shared);
        let registry = Arc::new(Registry {
            shared: shared.clone(),
            deployments: RwLock::new(BTreeMap::new()),
        });
        for (id, record) in DEPLOYMENTS.list_now(&shared.store)? {
            let state = record.state;
            let orchestrator = Orchestrator::spawn(shared.clone(), record);
            registry.deployments.write().expect("registry lock").insert(id, orchestrator.clone());
            if state.is_terminal() {
                continue;
            }
            tokio::spawn(async move {
                if state == DeploymentState::Running {
                    orchestrator.change(
                        None,
                        "the orchestrating node restarted; asking providers how allocations are",
                        |_| {},
                    );
                    orchestrator.refresh().await;
                } else if state == DeploymentState::ShuttingDown {
                    orchestrator.shutdown().await;
                } else {
                    orchestrator.revert_all().await;
                    orchestrator.change(
                        None,
                        "the orchestrating node restarted while placing; reverted, placing again",
                        |r| {
                            r.placement.clear();
                            for view in r.allocations.values_mut() {
                                view.peer = None;
                                view.handle = None;
                                view.status = AllocationStatus::default();
                            }
                        },
                    );
                    let task = tokio::spawn(orchestrator.clone().place());
                    *orchestrator.placing.lock().expect("placing lock") = Some(task);
                }
            });
        }
        Ok(registry)
    }

    fn get(&self, id: &str) -> Result<Arc<Orchestrator>, ActorError> {
        self.deployments.read().expect("registry lock").get(id).cloned().ok_or_else(|| {
            bad(format!("no deployment {id:?} on this node; see `dms deployments list`"))
        })
    }

    fn check(request: &NewDeployment) -> Result<(), ActorError> {
        let errors: Vec<String> = dms_ensemble::check(&request.ensemble)
            .into_iter()
            .filter(dms_ensemble::Diagnostic::is_error)
            .map(|d| d.render("ensemble"))
            .collect();
        if !errors.is_empty() {
            return Err(bad(format!("the ensemble is invalid:\n{}", errors.join("\n"))));
        }
        for name in request.modules.keys() {
            if !request.ensemble.allocations.contains_key(name) {
                return Err(bad(format!(
                    "a module was sent for {name:?}, which is not an allocation"
                )));
            }
        }
        Ok(())
    }

    /// Creates a deployment and starts placing it; returns its id at once.
    pub async fn create(&self, request: NewDeployment) -> Result<String, ActorError> {
        Registry::check(&request)?;
        let id = format!("d-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let timeout = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.shared.settings.default_deadline);
        let node_of = ask::node_of(&request.ensemble);
        let allocations = request
            .ensemble
            .allocations
            .iter()
            .map(|(name, a)| {
                (
                    name.clone(),
                    AllocationView {
                        node: node_of.get(name).cloned().unwrap_or_default(),
                        kind: a.kind,
                        executor: a.executor.name().into(),
                        peer: None,
                        handle: None,
                        status: AllocationStatus::default(),
                    },
                )
            })
            .collect();
        let now = now_ms();
        let record = Deployment {
            id: id.clone(),
            created_ms: now,
            deadline_ms: now.saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
            state: DeploymentState::Bidding,
            reason: None,
            ensemble: request.ensemble,
            modules: request.modules,
            placement: BTreeMap::new(),
            allocations,
            failed_peers: BTreeSet::new(),
            attempts: 0,
            events: Default::default(),
            next_seq: 0,
        };
        let orchestrator = Orchestrator::spawn(self.shared.clone(), record);
        let submitted = orchestrator.change_at(
            None,
            format!("submitted; placement deadline in {timeout:?}"),
            |_| {},
        );
        self.deployments.write().expect("registry lock").insert(id.clone(), orchestrator.clone());
        let task = tokio::spawn(orchestrator.clone().place());
        *orchestrator.placing.lock().expect("placing lock") = Some(task);
        // Bids go out meanwhile; the caller hears "submitted" once it is on disk.
        orchestrator.durable(submitted).await;
        Ok(id)
    }

    /// Asks for bids without reserving anything, and says what would be chosen.
    pub async fn plan(&self, request: NewDeployment) -> Result<Plan, ActorError> {
        Registry::check(&request)?;
        let record = Deployment {
            id: format!("plan-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
            created_ms: now_ms(),
            deadline_ms: now_ms(),
            state: DeploymentState::Bidding,
            reason: None,
            ensemble: request.ensemble,
            modules: BTreeMap::new(),
            placement: BTreeMap::new(),
            allocations: BTreeMap::new(),
            failed_peers: BTreeSet::new(),
            attempts: 0,
            events: Default::default(),
            next_seq: 0,
        };
        let asks = ask::asks(&record.ensemble);
        let orchestrator = Orchestrator::spawn(self.shared.clone(), record.clone());
        let answers = orchestrator.bids(&record, &asks, true).await;
        orchestrator.actor.stop();
        let placement = select::place(&asks, &answers, &skipped(&record), &record.ensemble.edges)
            .map(|choice| choice.into_iter().map(|(node, c)| (node, c.peer)).collect());
        Ok(Plan {
            answered: answers.iter().map(|a| a.peer.clone()).collect(),
            nodes: select::plan(&asks, &answers),
            placement,
        })
    }

    /// The status with the events after `after`; waits up to `wait` for a new event
    /// when there is none yet.
    pub async fn status(&self, id: &str, after: u64, wait: Duration) -> Result<Status, ActorError> {
        let orchestrator = self.get(id)?;
        let mut changed = orchestrator.changed.subscribe();
        if *changed.borrow_and_update() <= after && !wait.is_zero() {
            let _ = tokio::time::timeout(wait, changed.changed()).await;
        }
        Ok(orchestrator.status(after))
    }

    /// Summaries, newest first.
    pub fn list(&self) -> Vec<Summary> {
        let mut list: Vec<Summary> = self
            .deployments
            .read()
            .expect("registry lock")
            .values()
            .map(|o| o.snapshot().summary())
            .collect();
        list.sort_by_key(|s| std::cmp::Reverse(s.created_ms));
        list
    }

    /// The whole record (ensemble, placement, events).
    pub fn manifest(&self, id: &str) -> Result<Deployment, ActorError> {
        Ok(self.get(id)?.snapshot())
    }

    /// The output of the deployment's allocations (or one of them).
    pub async fn logs(
        &self,
        id: &str,
        allocation: Option<&str>,
        tail: Option<usize>,
    ) -> Result<BTreeMap<String, Result<Logs, String>>, ActorError> {
        let orchestrator = self.get(id)?;
        let record = orchestrator.snapshot();
        if let Some(name) = allocation
            && !record.allocations.contains_key(name)
        {
            return Err(bad(format!("deployment {id} has no allocation {name:?}")));
        }
        let mut out = BTreeMap::new();
        for (name, view) in &record.allocations {
            if allocation.is_some_and(|a| a != name) {
                continue;
            }
            let Some(handle) = &view.handle else {
                out.insert(name.clone(), Err("not placed".to_string()));
                continue;
            };
            let logs = call::<Logs>(
                &orchestrator.actor,
                handle,
                ALLOCATION_LOGS,
                &LogsRequest { tail },
                self.shared.settings.call_timeout,
            )
            .await;
            out.insert(name.clone(), logs.map_err(|e| e.to_string()));
        }
        Ok(out)
    }

    /// Shuts a deployment down (stops placing it, stops its allocations, releases every
    /// resource) and returns its final record.
    pub async fn shutdown(&self, id: &str) -> Result<Deployment, ActorError> {
        let orchestrator = self.get(id)?;
        Ok(orchestrator.shutdown().await)
    }

    /// Forgets finished deployments (completed, failed, shut down), releasing what their
    /// providers still hold; returns their ids.
    pub async fn prune(&self) -> Vec<String> {
        let finished: Vec<Arc<Orchestrator>> = self
            .deployments
            .read()
            .expect("registry lock")
            .values()
            .filter(|o| o.snapshot().state.is_terminal())
            .cloned()
            .collect();
        let mut pruned = Vec::new();
        for orchestrator in finished {
            if orchestrator.snapshot().state != DeploymentState::ShutDown {
                orchestrator.clone().shutdown().await;
            }
            let id = orchestrator.actor.handle().inbox.clone();
            orchestrator.actor.stop();
            // End the writer first (waiting out a write in progress), so that no late
            // write brings the record back after it is deleted.
            orchestrator.writer.closed.store(true, Ordering::SeqCst);
            let writing = orchestrator.writer.writing.clone().lock_owned().await;
            orchestrator.writer.dirty.notify_one();
            let deleted = DEPLOYMENTS.delete_now(&self.shared.store, &id);
            drop(writing);
            if let Err(error) = deleted {
                warn!(%id, %error, "Could not delete a pruned deployment.");
                continue;
            }
            self.deployments.write().expect("registry lock").remove(&id);
            pruned.push(id);
        }
        pruned
    }
}
