//! The orchestrator: one actor per deployment (inbox = deployment id) on the node that
//! received it (the [`crate::registry::Registry`] creates, lists, resumes and prunes them).
//!
//! Modules: [`placement`] (the attempt loop and its calls), [`policy`] (its decisions,
//! sans-IO: bid window, back-off, strikes), `writer` (the record's persistence worker).
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
//! Every change is an [`Event`] and is written to the store before it is shown (only
//! bookkeeping, such as a renewed standby, is not an event: [`Orchestrator::amend`]).
//!
//! Further modules: `liveness` (heartbeats, lost providers), `supervision` (the
//! ensemble's supervisor tree), `standby` (`nodes.<n>.redundancy`).

pub(crate) mod bidding;
pub(crate) mod billing;
pub(crate) mod identity;
pub(crate) mod liveness;
pub mod machine;
pub mod placement;
pub mod policy;
pub mod settings;
pub(crate) mod standby;
pub(crate) mod storage;
pub(crate) mod subnet;
pub(crate) mod supervision;
pub(crate) mod writer;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dms_actor::{Actor, ActorError, BoxFuture, Handle, Router};
use dms_crypto::KeyPair;
use dms_store::{Repo, Store};
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{Instrument as _, warn};

use crate::deployment::{Deployment, DeploymentState};
use crate::select;
pub use dms_protocol::node::{NewDeployment, NodePlan, Plan, Status};
use dms_protocol::*;
use dms_types::event::kind;

pub(crate) const DEPLOYMENTS: Repo<Deployment> = Repo::new("deployments");

pub use crate::registry::Registry;
pub use settings::{Quotas, Settings};
use writer::Writer;

/// The peers this node is connected to now (peer ids; this node not included).
pub type Connected = Arc<dyn Fn() -> BoxFuture<Vec<String>> + Send + Sync>;
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
    /// Connected peers: who is expected to bid, and whether this node reaches anyone.
    pub connected: Connected,
    /// Peer id to root handle.
    pub root_of: RootOf,
    /// The providers' capacity adverts (filled by the `/dms/deployment/capacity`
    /// behavior [`crate::behaviors::register`] adds).
    pub directory: Arc<crate::directory::Directory>,
}

/// One deployment's orchestrator.
pub struct Orchestrator {
    record: Mutex<Deployment>,
    pub(crate) changed: watch::Sender<u64>,
    pub(crate) actor: Actor,
    pub(crate) shared: Arc<Shared>,
    cancel: AtomicBool,
    wake: Notify,
    pub(crate) placing: Mutex<Option<tokio::task::JoinHandle<()>>>,
    pub(crate) writer: Writer,
    heard: Mutex<liveness::Heard>,
    watching: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Failures of supervised allocations, for the watching task (bounded: a flood is
    /// dropped with a warning, the supervisor sees the next one).
    failures: mpsc::Sender<(String, supervision::Cause)>,
    failures_rx: Mutex<Option<mpsc::Receiver<(String, supervision::Cause)>>>,
    supervision: Mutex<supervision::Budgets>,
    /// When standbys are next sought.
    upkeep: Mutex<standby::Upkeep>,
    /// One shutdown at a time (a user's and an escalation's may race): the second
    /// finds the deployment shut down.
    shutting: tokio::sync::Mutex<()>,
    stores: Mutex<Option<Arc<dms_storage::Stores>>>, // opened with credentials; memory only
    /// The usage receipts taken, per allocation and contract (rebuilt from the store).
    books: Mutex<billing::Books>,
}

pub(crate) fn bad(reason: impl std::fmt::Display) -> ActorError {
    ActorError::BadPayload { reason: reason.to_string() }
}

impl Orchestrator {
    /// The orchestrator of `record`, its actor signing with `key` (its own identity,
    /// holding the node's rights delegated to it).
    pub(crate) fn spawn(
        shared: Arc<Shared>,
        mut record: Deployment,
        key: KeyPair,
    ) -> Arc<Orchestrator> {
        let own = key.did() != shared.root.handle().did;
        let delegated = if own { identity::delegated(&shared, &key) } else { Vec::new() };
        let actor = Actor::spawn(
            &shared.router,
            &record.id,
            key,
            shared.root.live_context().clone(),
            shared.root.verifier().clone(),
        );
        for chain in delegated {
            actor.hold(chain);
        }
        if own {
            // The node's anchors change (renewed, added, revoked): delegate afresh when
            // none of the held chains serves a message any more.
            let (renewer, key) = (shared.clone(), actor.signing_key().clone());
            actor.renew_with(Arc::new(move || identity::delegated(&renewer, &key)));
        }
        record.orchestrator = Some(actor.handle().clone());
        actor.set_trace(record.trace.clone());
        let (changed, _) = watch::channel(record.next_seq);
        let (flushed_tx, flushed) = watch::channel(record.next_seq);
        let (dirty, durable) = (Arc::new(Notify::new()), Arc::new(AtomicBool::new(false)));
        let closed = Arc::new(AtomicBool::new(false));
        let writing = Arc::new(tokio::sync::Mutex::new(()));
        let (failures_tx, failures_rx) = mpsc::channel(64);
        let orchestrator = Arc::new(Orchestrator {
            record: Mutex::new(record),
            changed,
            actor,
            shared,
            cancel: AtomicBool::new(false),
            wake: Notify::new(),
            placing: Mutex::new(None),
            heard: Mutex::new(liveness::Heard::new()),
            watching: Mutex::new(None),
            failures: failures_tx,
            failures_rx: Mutex::new(Some(failures_rx)),
            supervision: Mutex::new(supervision::Budgets::default()),
            upkeep: Mutex::new(standby::Upkeep::default()),
            shutting: tokio::sync::Mutex::new(()),
            stores: Mutex::new(None),
            books: Mutex::default(),
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
        let registered =
            dms_protocol::handle::<Update, _, _>(&orchestrator.actor, move |message, update| {
                let weak = weak.clone();
                async move {
                    let Some(orchestrator) = weak.upgrade() else { return Err(ActorError::Closed) };
                    orchestrator.apply(&message.envelope.from, update)
                }
            });
        if let Err(error) = registered {
            warn!(%error, "Could not register the orchestrator's update behavior.");
        }
        orchestrator.register_storage();
        orchestrator.register_receipts();
        if !orchestrator.snapshot().state.is_terminal() {
            orchestrator.start_watching();
        }
        orchestrator
    }

    /// Starts placing on a task the orchestrator owns (a shutdown waits for it, a
    /// drain aborts it).
    pub(crate) fn start_placing(self: &Arc<Self>, input: machine::Input) {
        let mut placing = self.placing.lock().expect("placing lock");
        *placing = Some(tokio::spawn(self.clone().place(input).instrument(self.span())));
    }

    /// The span the deployment's own work runs in: a child of its first span, so that
    /// placing, supervision and what they send are one trace.
    pub(crate) fn span(&self) -> tracing::Span {
        let (id, trace) = self.peek(|r| (r.id.clone(), r.trace.clone()));
        let span = tracing::info_span!("deployment", id = %id);
        if let Some(trace) = &trace {
            dms_telemetry::propagate::adopt(&span, trace);
        }
        span
    }

    /// The deployment as it is now.
    pub fn snapshot(&self) -> Deployment {
        self.record.lock().expect("deployment lock").clone()
    }

    /// Reads the record without copying it.
    pub(crate) fn peek<T>(&self, read: impl FnOnce(&Deployment) -> T) -> T {
        read(&self.record.lock().expect("deployment lock"))
    }

    /// Changes the record, adds an event, persists it and wakes status waiters.
    pub(crate) fn change(
        &self,
        allocation: Option<&str>,
        message: impl Into<String>,
        change: impl FnOnce(&mut Deployment),
    ) {
        self.change_at(allocation, message, change);
    }

    /// [`Orchestrator::change`], returning the event's sequence number.
    pub(crate) fn change_at(
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
        let state = record.state.name();
        if record.state == DeploymentState::Failed {
            dms_telemetry::event!(WARN, kind: kind::DEPLOYMENT, deployment: record.id.as_str(), allocation: allocation, state: state; "{message}");
        } else {
            dms_telemetry::event!(INFO, kind: kind::DEPLOYMENT, deployment: record.id.as_str(), allocation: allocation, state: state; "{message}");
        }
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

    /// Changes the record without an event (bookkeeping such as a renewed standby): it
    /// is written with the next flush, durably when a restart depends on it.
    pub(crate) fn amend(&self, change: impl FnOnce(&mut Deployment)) {
        let mut record = self.record.lock().expect("deployment lock");
        let before = Recovery::of(&record);
        change(&mut record);
        if Recovery::of(&record) != before {
            self.writer.durable.store(true, Ordering::SeqCst);
        }
        drop(record);
        self.writer.dirty.notify_one();
    }

    /// Waits until the record up to event `seq` is on disk.
    pub(crate) async fn durable(&self, seq: u64) {
        let mut flushed = self.writer.flushed.clone();
        let _ =
            tokio::time::timeout(Duration::from_secs(30), flushed.wait_for(|f| *f >= seq)).await;
    }

    fn set_state(&self, state: DeploymentState, message: impl Into<String>) {
        self.change(None, message, |r| r.state = state);
    }

    fn fail(&self, reason: String) {
        let reason = self.peek(|r| with_root_cause(reason, r));
        self.change(None, format!("failed: {reason}"), |r| {
            r.state = DeploymentState::Failed;
            r.reason = Some(reason.clone());
        });
    }

    pub(crate) fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Sleeps, waking early on cancellation.
    async fn pause(&self, duration: Duration) {
        let _ = tokio::time::timeout(duration, self.wake.notified()).await;
    }

    /// Records an allocation's status if it supersedes the one recorded (newer, and not
    /// reviving an ended allocation), deciding under the record's lock: statuses from
    /// updates, start answers and status polls arrive in any order.
    pub(crate) fn record_status(&self, allocation: &str, status: AllocationStatus) -> bool {
        let message = describe(&status);
        let mut failed = None;
        let recorded = self
            .change_when(Some(allocation), message, |r| {
                let Some(view) = r.allocations.get_mut(allocation) else { return false };
                if !status.supersedes(&view.status) {
                    return false;
                }
                if r.ensemble.supervisor.is_some() {
                    let asked = self.supervision.lock().expect("budgets lock").asked(allocation);
                    failed = supervision::Cause::of(&view.status, &status, asked);
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
            .is_some();
        if let Some(cause) = failed
            && self.failures.try_send((allocation.to_string(), cause)).is_err()
        {
            warn!(allocation, "Too many failures at once; the supervisor sees the next one.");
        }
        recorded
    }

    /// Stops every allocation and releases every resource.
    pub(crate) async fn shutdown(self: Arc<Self>) -> Deployment {
        self.cancel.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
        let _once = self.shutting.lock().await;
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
            calls.spawn(async move { (name, call(&actor, &handle, &Shutdown {}, timeout).await) });
        }
        let mut unreached = Vec::new();
        while let Some(Ok((name, result))) = calls.join_next().await {
            match result {
                Ok(status) => {
                    self.record_status(&name, status);
                }
                Err(error) => {
                    let message = format!(
                        "could not stop it: {error}; its copy is told to stop at its next \
                         heartbeat, or stops itself when this node stays silent"
                    );
                    self.change(Some(&name), message, |_| {});
                    unreached.push(name);
                }
            }
        }
        self.revert(None).await;
        // Say only what was observed.
        let message = if unreached.is_empty() {
            "shut down; every resource released".to_string()
        } else {
            format!(
                "shut down; {} could not be reached to confirm it stopped",
                unreached.join(", ")
            )
        };
        self.set_state(DeploymentState::ShutDown, message);
        self.snapshot()
    }

    /// Asks every running allocation for its status (after a restart of this node).
    pub(crate) async fn refresh(&self) {
        for (name, view) in self.snapshot().allocations {
            let Some(handle) = view.handle else { continue };
            if view.status.state.is_terminal() {
                continue;
            }
            match call(&self.actor, &handle, &StatusRequest {}, self.shared.settings.call_timeout)
                .await
            {
                Ok(status) => {
                    self.record_status(&name, status);
                }
                Err(error) => self.change(
                    Some(&name),
                    format!(
                        "provider {} did not answer yet ({error}); its heartbeats will say how \
                         it is once it reconnects",
                        select::short(&handle.peer)
                    ),
                    |_| {},
                ),
            }
        }
    }

    /// The status with the events after `after`, and the allocations after `from`
    /// up to `budget` bytes ([`dms_protocol::node::page`]).
    pub(crate) fn status(&self, after: u64, from: Option<&str>, budget: usize) -> Status {
        let heard = self.heard_ms();
        let record = self.record.lock().expect("deployment lock");
        let (mut allocations, more) = dms_protocol::node::page(&record.allocations, from, budget);
        for (name, view) in &mut allocations {
            view.heard_ms = heard.get(name).copied();
        }
        let events = match from {
            None => record.events.iter().filter(|e| e.seq > after).cloned().collect(),
            Some(_) => Vec::new(),
        };
        Status {
            id: record.id.clone(),
            state: record.state,
            reason: record.reason.clone(),
            created_ms: record.created_ms,
            deadline_ms: record.deadline_ms,
            attempts: record.attempts,
            allocations,
            standby: record.standby.clone(),
            events,
            more,
        }
    }
}

/// What resuming after a restart depends on: whether the deployment is being placed,
/// runs, shuts down or ended; where it was placed and its standbys; the allocation actors; how ended
/// allocations ended; the peers not to ask again. A change to any of it is written
/// durably.
#[derive(PartialEq)]
struct Recovery {
    phase: u8,
    state: Option<DeploymentState>,
    placement: Vec<(String, String, String)>,
    standby: Vec<(String, String, String)>,
    allocations: Vec<(Option<Handle>, Option<AllocationState>)>,
    failed_peers: usize,
    /// The version of the subnet's routes last sent: providers ignore older ones, so a
    /// restart must not send an older number again.
    routes_version: Option<u64>,
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
            standby: record
                .standby
                .iter()
                .flat_map(|(n, s)| s.iter().map(move |s| (n, s)))
                .map(|(n, s)| (n.clone(), s.provider.peer.clone(), s.reservation.clone()))
                .collect(),
            allocations: record
                .allocations
                .values()
                .map(|a| (a.handle.clone(), a.status.state.is_terminal().then_some(a.status.state)))
                .collect(),
            failed_peers: record.failed_peers.len(),
            routes_version: record.subnet.as_ref().map(|p| p.version),
        }
    }
}

pub(crate) fn skipped(record: &Deployment) -> BTreeSet<String> {
    record.failed_peers.iter().chain(&record.ensemble.exclude_peers).cloned().collect()
}

/// `reason`, ending with what went wrong on the peers that failed this deployment (the
/// start error itself, and on how many peers), so that the last thing a user reads is
/// the root cause rather than "2 failed_before".
pub(crate) fn with_root_cause(reason: String, record: &Deployment) -> String {
    match record.root_cause() {
        Some(cause) if !reason.ends_with(&cause) => {
            format!("{reason}; root cause {cause}")
        }
        _ => reason,
    }
}

pub(crate) fn first_failure(record: &Deployment) -> Option<String> {
    record
        .allocations
        .iter()
        .find(|(_, v)| v.status.state == AllocationState::Failed)
        .map(|(name, v)| format!("allocation {name} {}", describe(&v.status)))
}

/// `running`, `completed (exit 0)`, `failed (exit 3): …`.
pub fn describe(status: &AllocationStatus) -> String {
    let mut text = status.state.name().to_string();
    if let Some(health) = status.health
        && !status.state.is_terminal()
    {
        text.push_str(&format!(", {}", health.name()));
    }
    if let Some(code) = status.exit_code {
        text.push_str(&format!(" (exit {code})"));
    }
    if let Some(message) = &status.message {
        text.push_str(&format!(": {message}"));
    }
    text
}
