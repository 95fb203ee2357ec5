//! The [`Registry`]: every deployment this node orchestrates — created, planned, listed,
//! followed, shut down, pruned, resumed after a restart and drained at shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::error::Error;
use dms_actor::envelope::now_ms;
use dms_protocol::*;
use tokio::task::JoinSet;
use tracing::warn;

use crate::ask;
use crate::deployment::{AllocationView, Deployment, DeploymentState, Summary};
use crate::orchestrator::identity;
use crate::orchestrator::machine::Input;
use crate::orchestrator::{
    DEPLOYMENTS, NewDeployment, Orchestrator, Plan, Shared, Status, skipped,
};
use crate::{quota, select};

/// Every deployment this node orchestrates.
pub struct Registry {
    shared: Arc<Shared>,
    deployments: RwLock<BTreeMap<String, Arc<Orchestrator>>>,
    /// What a restart resumed besides placing (status refreshes, unfinished
    /// shutdowns); aborted by [`Registry::drain`].
    resumed: Mutex<JoinSet<()>>,
    /// Held from a creation's quota check until the deployment is listed, so that
    /// concurrent submissions cannot pass the quota together.
    admitting: Mutex<()>,
    /// Wakes the pruning task (a submission may have pushed the oldest finished
    /// deployment beyond `quotas.keep_finished`).
    pruning: Arc<tokio::sync::Notify>,
}

/// Most bytes of log lines one answer to `dms deployments logs` carries (a message
/// holds 1 MiB).
const LOGS_ANSWER_BYTES: usize = 640 * 1024;

/// How often finished deployments are checked against the pruning policy.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

impl Registry {
    /// The providers' capacity adverts this node keeps.
    pub fn directory(&self) -> Arc<crate::directory::Directory> {
        self.shared.directory.clone()
    }

    /// Loads the deployments kept in the store and resumes those not finished:
    /// running ones are asked for their allocations' status, ones caught placing are
    /// reverted and placed again (if their deadline allows), shutdowns are finished.
    pub fn open(shared: Shared) -> Result<Arc<Registry>, dms_store::Error> {
        let shared = Arc::new(shared);
        let registry = Arc::new(Registry {
            shared: shared.clone(),
            deployments: RwLock::new(BTreeMap::new()),
            resumed: Mutex::new(JoinSet::new()),
            admitting: Mutex::new(()),
            pruning: Arc::new(tokio::sync::Notify::new()),
        });
        for (id, record) in DEPLOYMENTS.list_now(&shared.store)? {
            let state = record.state;
            let key = identity::load(&shared, &id);
            let orchestrator = Orchestrator::spawn(shared.clone(), record, key);
            registry.deployments.write().expect("registry lock").insert(id, orchestrator.clone());
            if state.is_terminal() {
                continue;
            }
            // Credentials sent with the submission were in memory only; the node's own
            // (`[storage]`) serve the resumed deployment, if it has them.
            let credentials = shared.settings.storage_credentials.as_ref();
            let stores =
                orchestrator.peek(|r| dms_storage::Stores::connect(&r.ensemble, credentials));
            orchestrator.hold_stores(stores.ok().flatten());
            if state.is_placing() {
                orchestrator.start_placing(Input::Resume);
                continue;
            }
            // Providers need time to reconnect before anyone is declared lost.
            orchestrator.grace(shared.settings.restart_grace);
            registry.resumed.lock().expect("resumed lock").spawn(async move {
                if state == DeploymentState::Running {
                    orchestrator.change(
                        None,
                        "the orchestrating node restarted; asking providers how allocations are",
                        |_| {},
                    );
                    orchestrator.refresh().await;
                } else {
                    orchestrator.shutdown().await;
                }
            });
        }
        registry.start_pruning();
        Ok(registry)
    }

    /// Prunes by policy now, every [`PRUNE_EVERY`] and after each submission, on a
    /// task of the registry's own (stopped by [`Registry::drain`]).
    fn start_pruning(self: &Arc<Self>) {
        let (registry, wake) = (Arc::downgrade(self), self.pruning.clone());
        self.resumed.lock().expect("resumed lock").spawn(async move {
            loop {
                let Some(registry) = registry.upgrade() else { return };
                let pruned = registry.prune_expired().await;
                if !pruned.is_empty() {
                    tracing::info!(count = pruned.len(), "Pruned finished deployments by policy.");
                }
                drop(registry);
                tokio::select! {
                    () = tokio::time::sleep(PRUNE_EVERY) => {}
                    () = wake.notified() => {}
                }
            }
        });
    }

    /// For a node shutdown: stops placing (unfinished deployments resume after the
    /// restart), writes every record durably and stops the orchestrator actors.
    pub async fn drain(&self) {
        let mut resumed = std::mem::take(&mut *self.resumed.lock().expect("resumed lock"));
        resumed.shutdown().await;
        let all: Vec<Arc<Orchestrator>> =
            self.deployments.read().expect("registry lock").values().cloned().collect();
        for orchestrator in all {
            orchestrator.stop_watching();
            let placing = orchestrator.placing.lock().expect("placing lock").take();
            if let Some(placing) = placing {
                placing.abort();
                let _ = placing.await;
            }
            let latest = orchestrator.snapshot().next_seq.saturating_sub(1);
            orchestrator.writer.durable.store(true, Ordering::SeqCst);
            orchestrator.writer.dirty.notify_one();
            orchestrator.durable(latest).await;
            orchestrator.actor.stop();
        }
    }

    fn get(&self, id: &str) -> Result<Arc<Orchestrator>, Error> {
        self.deployments
            .read()
            .expect("registry lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NoDeployment(id.to_string()))
    }

    fn check(&self, request: &NewDeployment) -> Result<(), Error> {
        let errors: Vec<String> = dms_ensemble::check(&request.ensemble)
            .into_iter()
            .filter(dms_ensemble::Diagnostic::is_error)
            .map(|d| d.render("ensemble"))
            .collect();
        if !errors.is_empty() {
            return Err(Error::InvalidEnsemble(errors.join("\n")));
        }
        // Silence is judged in heartbeats of this node: a few must fit in lost_after.
        let heartbeat = self.shared.settings.heartbeat;
        let lost_after = request.ensemble.requirements.as_ref().and_then(|r| r.lost_after);
        if let Some(lost_after) = lost_after.map(|d| d.to_std())
            && lost_after < heartbeat * 2
        {
            return Err(Error::InvalidEnsemble(format!(
                "requirements.lost_after {} is shorter than two heartbeats of this node \
                 ({} each, deployment.heartbeat_interval): set it to {} or more",
                dms_types::units::format_duration(lost_after),
                dms_types::units::format_duration(heartbeat),
                dms_types::units::format_duration(heartbeat * 2)
            )));
        }
        for key in request.modules.keys() {
            let name = key.split_once('/').map_or(key.as_str(), |(name, _)| name);
            if !request.ensemble.allocations.contains_key(name) {
                return Err(Error::StrayModule(key.clone()));
            }
        }
        Ok(())
    }

    /// What the quotas look at, for every deployment.
    fn held(&self) -> Vec<quota::Held> {
        let deployments = self.deployments.read().expect("registry lock");
        deployments.values().map(|o| o.peek(quota::Held::of)).collect()
    }

    /// Creates a deployment for `submitter` and starts placing it; returns its id at
    /// once. Refused when the submitter, or the node, is at its quota.
    pub async fn create(&self, request: NewDeployment, submitter: String) -> Result<String, Error> {
        self.check(&request)?;
        if !request.ensemble.contracts.is_empty() || request.ensemble.requirements.is_some() {
            let (shared, ensemble) = (self.shared.clone(), request.ensemble.clone());
            tokio::task::spawn_blocking(move || {
                crate::orchestrator::billing::check(&shared, &ensemble)
            })
            .await
            .map_err(|e| Error::Contract(e.to_string()))??;
        }
        // Storage first: wrong credentials or a missing input is the submitter's to fix
        // now, before anything is placed.
        let credentials =
            request.credentials.as_ref().or(self.shared.settings.storage_credentials.as_ref());
        let stores = dms_storage::Stores::connect(&request.ensemble, credentials)?;
        if let Some(stores) = &stores {
            stores.verify(&request.ensemble).await?;
        }
        self.pruning.notify_one();
        let admitting = self.admitting.lock().expect("admitting lock");
        quota::admit(&self.shared.settings.quotas, &self.held(), &submitter)?;
        let id = format!("d-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff);
        let timeout = request
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(self.shared.settings.default_deadline);
        let node_of = ask::node_of(&request.ensemble);
        let subnet = ask::subnet(&request.ensemble).map_err(Error::InvalidEnsemble)?;
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
                        lineage: Vec::new(),
                        heard_ms: None,
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
            standby: BTreeMap::new(),
            allocations,
            failed_peers: BTreeSet::new(),
            failures: BTreeMap::new(),
            attempts: 0,
            events: Default::default(),
            next_seq: 0,
            orchestrator: None,
            submitter: Some(submitter),
            subnet,
            trace: dms_telemetry::propagate::current(),
        };
        // Queued before the record's first durable write, so flushed with it or earlier.
        let (key, key_stored) = identity::create(&self.shared.store, &id);
        let orchestrator = Orchestrator::spawn(self.shared.clone(), record, key);
        orchestrator.hold_stores(stores);
        let submitted = orchestrator.change_at(
            None,
            format!("submitted; placement deadline in {timeout:?}"),
            |_| {},
        );
        self.deployments.write().expect("registry lock").insert(id.clone(), orchestrator.clone());
        drop(admitting);
        orchestrator.start_placing(Input::Start);
        // Bids go out meanwhile; the caller hears "submitted" once it is on disk.
        orchestrator.durable(submitted).await;
        if let Ok(Err(error)) = key_stored.await {
            // Without its key a restarted node could not act as this orchestrator.
            let _ = self.shutdown(&id).await;
            return Err(error.into());
        }
        Ok(id)
    }

    /// Asks for bids without reserving anything, and says what would be chosen.
    pub async fn plan(&self, request: NewDeployment) -> Result<Plan, Error> {
        self.check(&request)?;
        let record = Deployment {
            id: format!("plan-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff),
            created_ms: now_ms(),
            deadline_ms: now_ms(),
            state: DeploymentState::Bidding,
            reason: None,
            ensemble: request.ensemble,
            modules: BTreeMap::new(),
            placement: BTreeMap::new(),
            standby: BTreeMap::new(),
            allocations: BTreeMap::new(),
            failed_peers: BTreeSet::new(),
            failures: BTreeMap::new(),
            attempts: 0,
            events: Default::default(),
            next_seq: 0,
            orchestrator: None,
            submitter: None,
            subnet: None,
            trace: None,
        };
        let asks = ask::asks(&record.ensemble);
        let key = dms_crypto::KeyPair::generate(dms_crypto::KeyType::Ed25519);
        let orchestrator = Orchestrator::spawn(self.shared.clone(), record.clone(), key);
        let answers = orchestrator.plan_bids(&record, &asks).await;
        orchestrator.actor.stop();
        let placement = select::place(&asks, &answers, &skipped(&record), &record.ensemble.edges)
            .map(|choice| choice.into_iter().map(|(node, c)| (node, c.peer)).collect());
        Ok(Plan {
            answered: answers.iter().map(|a| a.peer.clone()).collect(),
            nodes: select::plan(&asks, &answers),
            placement,
        })
    }

    /// The status with the events after `after` and every allocation; waits up to
    /// `wait` for a new event when there is none yet.
    pub async fn status(&self, id: &str, after: u64, wait: Duration) -> Result<Status, Error> {
        self.status_page(id, after, wait, None, usize::MAX).await
    }

    /// [`Registry::status`] as one answer carries it: the allocations after `from`, up
    /// to `budget` bytes, and `more` when some are left. Only a first page waits.
    pub async fn status_page(
        &self,
        id: &str,
        after: u64,
        wait: Duration,
        from: Option<&str>,
        budget: usize,
    ) -> Result<Status, Error> {
        let orchestrator = self.get(id)?;
        let mut changed = orchestrator.changed.subscribe();
        if from.is_none() && *changed.borrow_and_update() <= after && !wait.is_zero() {
            let _ = tokio::time::timeout(wait, changed.changed()).await;
        }
        Ok(orchestrator.status(after, from, budget))
    }

    /// What the node's metrics sample: deployments by state name, and how long the most
    /// silent running allocation of a running deployment has not been heard from.
    pub fn gauges(&self) -> (BTreeMap<&'static str, usize>, Option<Duration>) {
        let orchestrators: Vec<Arc<Orchestrator>> =
            self.deployments.read().expect("registry lock").values().cloned().collect();
        let mut by_state = BTreeMap::new();
        let mut silence = None;
        for o in orchestrators {
            let state = o.peek(|r| r.state);
            *by_state.entry(state.name()).or_default() += 1;
            if state == DeploymentState::Running {
                silence = silence.max(o.longest_silence());
            }
        }
        (by_state, silence)
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
    pub fn manifest(&self, id: &str) -> Result<Deployment, Error> {
        Ok(self.get(id)?.snapshot())
    }

    /// The output of the deployment's allocations (or one of them).
    pub async fn logs(
        &self,
        id: &str,
        allocation: Option<&str>,
        tail: Option<usize>,
        from: Option<usize>,
    ) -> Result<BTreeMap<String, Result<Logs, String>>, Error> {
        let orchestrator = self.get(id)?;
        let record = orchestrator.snapshot();
        if let Some(name) = allocation
            && !record.allocations.contains_key(name)
        {
            return Err(Error::NoAllocation { deployment: id.into(), allocation: name.into() });
        }
        // The answer must fit one message: the allocations asked share a budget.
        let asked = if allocation.is_some() { 1 } else { record.allocations.len().max(1) };
        let max_bytes = Some((LOGS_ANSWER_BYTES / asked).max(4096));
        let mut out = BTreeMap::new();
        for (name, view) in &record.allocations {
            if allocation.is_some_and(|a| a != name) {
                continue;
            }
            let Some(handle) = &view.handle else {
                out.insert(name.clone(), Err("not placed".to_string()));
                continue;
            };
            let logs = call(
                &orchestrator.actor,
                handle,
                &LogsRequest { tail, from, max_bytes },
                self.shared.settings.call_timeout,
            )
            .await;
            out.insert(name.clone(), logs.map_err(|e| e.to_string()));
        }
        Ok(out)
    }

    /// Asks the running allocations of deployment `id` that declare outputs (or only
    /// `allocation`) to publish them now: per allocation, its status as publishing
    /// began, or why not. The end of each is pushed as an update (an event).
    pub async fn publish(
        &self,
        id: &str,
        allocation: Option<&str>,
    ) -> Result<BTreeMap<String, Result<AllocationStatus, String>>, Error> {
        let orchestrator = self.get(id)?;
        let record = orchestrator.snapshot();
        if let Some(name) = allocation
            && !record.allocations.contains_key(name)
        {
            return Err(Error::NoAllocation { deployment: id.into(), allocation: name.into() });
        }
        let mut out = BTreeMap::new();
        for (name, view) in &record.allocations {
            let declares =
                record.ensemble.allocations.get(name).is_some_and(|a| !a.outputs.is_empty());
            if allocation.is_some_and(|a| a != name) || (allocation.is_none() && !declares) {
                continue;
            }
            let Some(handle) = &view.handle else {
                out.insert(name.clone(), Err("not placed".to_string()));
                continue;
            };
            let timeout = self.shared.settings.call_timeout;
            let began = call(&orchestrator.actor, handle, &dms_protocol::Publish {}, timeout).await;
            out.insert(name.clone(), began.map_err(|e| e.to_string()));
        }
        Ok(out)
    }

    /// The usage receipts of a deployment and what they owe.
    pub fn usage(&self, id: &str) -> Result<dms_protocol::contract::UsageReport, Error> {
        self.get(id)?.usage()
    }

    /// Takes a usage receipt given by hand, as if its provider had sent it.
    pub async fn import_receipt(
        &self,
        id: &str,
        receipt: String,
    ) -> Result<dms_protocol::contract::ReceiptAnswer, Error> {
        Ok(self.get(id)?.take_receipt(receipt).await)
    }

    /// Shuts a deployment down (stops placing it, stops its allocations, releases every
    /// resource) and returns its final record.
    pub async fn shutdown(&self, id: &str) -> Result<Deployment, Error> {
        let orchestrator = self.get(id)?;
        Ok(orchestrator.shutdown().await)
    }

    /// Forgets finished deployments (completed, failed, shut down), releasing what their
    /// providers still hold; returns their ids.
    pub async fn prune(&self) -> Vec<String> {
        let finished: Vec<String> =
            self.held().into_iter().filter(|h| h.finished).map(|h| h.id).collect();
        self.forget(finished).await
    }

    /// Forgets the finished deployments the pruning policy says are no longer kept
    /// (`quotas.keep_finished`, `quotas.keep_finished_for`).
    pub async fn prune_expired(&self) -> Vec<String> {
        let expired = quota::expired(&self.shared.settings.quotas, &self.held(), now_ms());
        self.forget(expired).await
    }

    /// Forgets the finished deployments among `ids`; returns those forgotten.
    async fn forget(&self, ids: Vec<String>) -> Vec<String> {
        let mut pruned = Vec::new();
        for id in ids {
            let Ok(orchestrator) = self.get(&id) else { continue };
            let state = orchestrator.peek(|r| r.state);
            if !state.is_terminal() {
                continue;
            }
            if state != DeploymentState::ShutDown {
                orchestrator.clone().shutdown().await;
            }
            orchestrator.actor.stop();
            // End the writer first (waiting out a write in progress), so that no late
            // write brings the record back after it is deleted.
            orchestrator.writer.closed.store(true, Ordering::SeqCst);
            let writing = orchestrator.writer.writing.clone().lock_owned().await;
            orchestrator.writer.dirty.notify_one();
            let deleted = DEPLOYMENTS.delete_now(&self.shared.store, &id);
            identity::forget(&self.shared.store, &id);
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
