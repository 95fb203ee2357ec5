//! The allocation actor: one state-owning actor per hosted allocation (inbox
//! `<deployment>.<allocation>`), owning its record, its executor handle, its watcher and
//! its restart timer. Its life cycle is [`machine`] (sans-IO); this module carries out
//! the effects and feeds their results back, one message at a time.
//!
//! | Behavior | Request → answer |
//! |---|---|
//! | `/dms/allocation/start` | `Start` → `AllocationStatus` (an error when the first start fails) |
//! | `/dms/allocation/status` | `StatusRequest` → `AllocationStatus` |
//! | `/dms/allocation/logs` | `LogsRequest` → `Logs` |
//! | `/dms/allocation/shutdown` | `Shutdown` → the final `AllocationStatus`; the actor then ends |
//! | `/dms/allocation/restart` | `Restart` → the status as the restart begins (its supervisor's call) |
//! | `/dms/allocation/publish` | `Publish` → the status as publishing begins (outputs on request) |
//!
//! It authorizes with the node's live capability context (a revocation is in force for
//! it at once): its orchestrator must hold `/dms/allocation`, and only that orchestrator
//! is obeyed. Every state change after the first start is pushed to the orchestrator
//! (`/dms/deployment/update`, retried with back-off by a task the actor owns), and a
//! heartbeat follows every `heartbeat_ms` ([`beat`]): an allocation whose orchestrator
//! placed it elsewhere, or has been silent for `stop_after_ms`, stops and frees its
//! resources.

mod beat;
mod billing;
mod health;
pub(crate) mod logfile;
pub mod machine;
mod storage;
pub(crate) mod work;

pub(crate) use storage::VolumeUsers;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use dms_actor::envelope::now_ms;
use dms_actor::stateful::{Context, ExitReason, Stateful};
use dms_actor::{Actor, ActorError, Message, Reply};
use dms_crypto::KeyPair;
use dms_executor::{ExecutionId, Executor, LogOptions};
use dms_protocol::{
    AllocationStatus, Logs, LogsRequest, Publish, Request, Restart, Shutdown, Start, StatusRequest,
    Update,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::Shared;
use crate::hosted::{self, Hosted};
use machine::{Effect, Input};

/// Grace of a stop before the workload is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What the actor hears besides requests.
pub(crate) enum Internal {
    /// The result of one of its tasks or timers.
    Input(Input),
    /// The provider stops it (a revert); the final status comes back.
    Stop(oneshot::Sender<AllocationStatus>),
    /// The provider restarted; the execution the engine still had, if any.
    Recovered(Option<String>),
    /// What the watcher of `execution` saw (dropped unless it is the current one).
    Watched {
        /// The execution watched.
        execution: String,
        /// What happened to it.
        input: Input,
    },
    /// Time to probe `execution`'s health.
    Probe(String),
    /// What a probe of `execution` found.
    Probed {
        /// The execution probed.
        execution: String,
        /// Healthy, or why not.
        result: Result<(), String>,
    },
    /// The heartbeat task's verdict: the orchestrator's `keep: false`, or why the
    /// allocation is orphaned.
    Beaten(Result<dms_protocol::Ack, String>),
    /// Time to tell a transfer's progress.
    Tick,
    /// A usage receipt is due ([`billing`]).
    Receipt,
    /// Time to measure the volumes of `execution` against their sizes.
    Usage(String),
    /// What measuring found: the first volume over its size, if any.
    Measured {
        /// The execution running while it was measured.
        execution: String,
        /// Which volume, how much.
        over: Option<String>,
    },
}

/// A running allocation actor, as the provider holds it.
#[derive(Clone)]
pub(crate) struct Running {
    /// The actor.
    pub actor: Actor,
    /// Its internal mailbox, for the provider's controls.
    pub control: mpsc::Sender<Internal>,
    /// The ensemble node it belongs to.
    pub node: String,
    /// The orchestrator it obeys.
    pub orchestrator: dms_crypto::Did,
    /// The contract it runs under (its id).
    pub contract: Option<String>,
}

impl Running {
    /// Stops the allocation and waits for its final status.
    pub async fn stop(&self) -> Option<AllocationStatus> {
        let (tx, rx) = oneshot::channel();
        self.control.send(Internal::Stop(tx)).await.ok()?;
        rx.await.ok()
    }
}

/// The actor's state.
pub(crate) struct Allocation {
    hosted: Hosted,
    shared: Arc<Shared>,
    beats: beat::Beats,
    probes: health::Probes,
    /// The staging or publishing in progress.
    transfer: Option<Arc<storage::Transfer>>,
    /// A usage receipt is scheduled.
    receipting: bool,
}

/// Spawns the actor of `hosted` on the provider's node, signing with `key` (its own
/// identity), holding the orchestrator's grant once it has one.
pub(crate) fn spawn(shared: &Arc<Shared>, hosted: Hosted, key: KeyPair) -> Running {
    let root = &shared.root;
    let actor = Actor::spawn_sequential(
        &shared.router,
        &hosted.id,
        key,
        root.live_context().clone(),
        root.verifier().clone(),
    );
    if let Some(chain) = hosted.grant.as_deref().and_then(|g| g.parse().ok()) {
        actor.hold(chain);
    }
    let (node, orchestrator) = (hosted.node.clone(), hosted.orchestrator.did.clone());
    let contract = hosted
        .contract
        .as_deref()
        .and_then(|text| dms_contracts::Contract::from_text(text).ok())
        .map(|c| c.id());
    let beats = beat::Beats::new(hosted.status.clone());
    let state = Allocation {
        hosted,
        shared: shared.clone(),
        beats,
        probes: Default::default(),
        transfer: None,
        receipting: false,
    };
    let (actor, control) = dms_actor::stateful::spawn_with_sender(actor, state);
    Running { actor, control, node, orchestrator, contract }
}

impl Stateful for Allocation {
    type Internal = Internal;

    fn behaviors(&self) -> Vec<String> {
        [
            Start::BEHAVIOR,
            StatusRequest::BEHAVIOR,
            LogsRequest::BEHAVIOR,
            Shutdown::BEHAVIOR,
            Restart::BEHAVIOR,
            Publish::BEHAVIOR,
        ]
        .map(String::from)
        .to_vec()
    }

    async fn handle(&mut self, ctx: &mut Context<Internal>, message: Message) -> Reply {
        self.check_owner(&message)?;
        let payload = &message.envelope.payload;
        match message.envelope.behavior.as_str() {
            Start::BEHAVIOR => {
                let start = dms_protocol::decode::<Start>(payload)?;
                self.take_grant(ctx, start.grant)?;
                if start.liveness.is_some() {
                    self.hosted.liveness = start.liveness;
                }
                let first = self.hosted.status.state == dms_protocol::AllocationState::Allocated;
                self.apply(ctx, Input::Start).await;
                self.beat_soon(ctx);
                let status = &self.hosted.status;
                if first && status.state == dms_protocol::AllocationState::Failed {
                    let why = status.message.clone().unwrap_or_else(|| "could not start".into());
                    return Err(ActorError::handler(why));
                }
                dms_protocol::respond::<Start>(status)
            }
            StatusRequest::BEHAVIOR => {
                dms_protocol::decode::<StatusRequest>(payload)?;
                dms_protocol::respond::<StatusRequest>(&self.hosted.status)
            }
            LogsRequest::BEHAVIOR => {
                let request = dms_protocol::decode::<LogsRequest>(payload)?;
                dms_protocol::respond::<LogsRequest>(&self.logs(request).await?)
            }
            Restart::BEHAVIOR => {
                let Restart { reason } = dms_protocol::decode::<Restart>(payload)?;
                self.apply(ctx, Input::Restart { reason }).await;
                dms_protocol::respond::<Restart>(&self.hosted.status)
            }
            Publish::BEHAVIOR => {
                dms_protocol::decode::<Publish>(payload)?;
                let status = &self.hosted.status;
                if self.hosted.spec.allocation.outputs.is_empty() {
                    return Err(ActorError::handler("the allocation declares no outputs"));
                }
                if status.state != dms_protocol::AllocationState::Running || self.transfer.is_some()
                {
                    let state = status.state.name();
                    let busy = if self.transfer.is_some() { " and busy moving data" } else { "" };
                    return Err(ActorError::handler(format!(
                        "the allocation is {state}{busy}; outputs are published on request while it runs"
                    )));
                }
                self.apply(ctx, Input::PublishNow).await;
                dms_protocol::respond::<Publish>(&self.hosted.status)
            }
            Shutdown::BEHAVIOR => {
                dms_protocol::decode::<Shutdown>(payload)?;
                self.apply(ctx, Input::Stop).await;
                dms_protocol::respond::<Shutdown>(&self.hosted.status)
            }
            other => Err(ActorError::UnknownBehavior { behavior: other.into() }),
        }
    }

    async fn internal(&mut self, ctx: &mut Context<Internal>, message: Internal) {
        match message {
            Internal::Input(input) => {
                if matches!(input, Input::Staged(_) | Input::Published(_)) {
                    let done = self.transfer.take();
                    if self.hosted.status.state.is_terminal() {
                        // It ended while the transfer ran (and its volumes went): what
                        // the transfer wrote since goes too.
                        self.release_volumes();
                    }
                    if let (Input::Staged(Ok(())), Some(done)) = (&input, done) {
                        self.apply(ctx, Input::Progress(done.finished("staged"))).await;
                    }
                }
                self.apply(ctx, input).await
            }
            Internal::Usage(execution) => self.measure(ctx, execution),
            Internal::Measured { execution, over } => {
                if self.hosted.execution.as_deref() != Some(&execution) {
                    return;
                }
                match over {
                    Some(reason) => self.apply(ctx, Input::Exceeded { reason }).await,
                    None => self.measure_later(ctx),
                }
            }
            Internal::Tick => {
                if let Some(progress) = self.tick(ctx) {
                    self.apply(ctx, progress).await;
                }
            }
            Internal::Stop(done) => {
                self.apply(ctx, Input::Stop).await;
                let _ = done.send(self.hosted.status.clone());
            }
            Internal::Recovered(execution) => {
                self.apply(ctx, Input::Recovered { execution }).await;
                self.beat_soon(ctx);
            }
            Internal::Watched { execution, input } => {
                if self.hosted.execution.as_deref() == Some(&execution) {
                    self.apply(ctx, input).await;
                } else {
                    debug!(allocation = %self.hosted.id, %execution, "A stopped execution's exit.");
                }
            }
            Internal::Probe(execution) => self.probe(ctx, execution),
            Internal::Probed { execution, result } => self.probed(ctx, execution, result).await,
            Internal::Beaten(answer) => self.beaten(ctx, answer).await,
            Internal::Receipt => self.receipt_due(ctx).await,
        }
    }

    async fn stopping(&mut self, _: &mut Context<Internal>, reason: &ExitReason) {
        debug!(allocation = %self.hosted.id, %reason, "Allocation actor stopped.");
    }
}

impl Allocation {
    /// Only the orchestrator that created the allocation commands it.
    fn check_owner(&self, message: &Message) -> Result<(), ActorError> {
        let owner = &self.hosted.orchestrator.did;
        if message.envelope.from.did == *owner {
            return Ok(());
        }
        Err(ActorError::Unauthorized {
            code: "not_the_orchestrator".into(),
            reason: format!(
                "only the deployment's orchestrator ({owner}) commands this allocation, not {}",
                message.envelope.from.did
            ),
        })
    }

    /// Holds the orchestrator's grant (the right to update it); it is persisted with
    /// the record by the start that follows.
    fn take_grant(
        &mut self,
        ctx: &Context<Internal>,
        grant: Option<String>,
    ) -> Result<(), ActorError> {
        let Some(text) = grant else { return Ok(()) };
        let chain: dms_ucan::Chain = text
            .parse()
            .map_err(|e| ActorError::BadPayload { reason: format!("start: the grant: {e}") })?;
        ctx.actor().hold(chain);
        self.hosted.grant = Some(text);
        Ok(())
    }

    fn liveness(&self) -> dms_protocol::Liveness {
        self.hosted.liveness.unwrap_or_default()
    }

    fn executor(&self) -> Option<Arc<dyn Executor>> {
        self.shared.executors.get(self.hosted.spec.allocation.executor)
    }

    /// Feeds `input` to the life cycle and carries out its effects, feeding their
    /// results back until none is left.
    async fn apply(&mut self, ctx: &mut Context<Internal>, input: Input) {
        let mut inputs = VecDeque::from([input]);
        while let Some(input) = inputs.pop_front() {
            let (before, restarted) = (self.hosted.status.state, self.hosted.status.restarts);
            let failed_start = match &input {
                Input::StartFailed { error } => Some(error.clone()),
                _ => None,
            };
            let mut effects = machine::step(&mut self.hosted, input, now_ms());
            crate::telemetry::allocation_stepped(&self.hosted, before, restarted, failed_start);
            // Heartbeats carry the new status even while the effects take long.
            self.beats.publish(&self.hosted.status);
            if effects[..] == [Effect::Persist { durable: true }, Effect::StartExecution] {
                // A start's durable write and the start itself overlap: the record is
                // on disk before the start is answered, without adding its fsync to
                // the start's time.
                let store = self.shared.store.clone();
                let record = self.hosted.clone();
                let (_, started) = tokio::join!(hosted::save(&store, &record, true), self.start());
                inputs.push_back(started);
                effects.clear();
            }
            for effect in effects {
                if let Some(next) = self.carry_out(ctx, effect).await {
                    inputs.push_back(next);
                }
            }
        }
    }

    /// Carries out one effect; the input it produced at once, if any.
    async fn carry_out(&mut self, ctx: &mut Context<Internal>, effect: Effect) -> Option<Input> {
        match effect {
            Effect::StartExecution => return Some(self.start().await),
            Effect::Stage => self.stage(ctx),
            Effect::Publish => self.publish(ctx),
            Effect::RemoveExecution(execution) => {
                if let Some(executor) = self.executor() {
                    let _ = executor.remove(&ExecutionId(execution)).await;
                }
            }
            Effect::StopExecution(execution) => {
                if let Some(executor) = self.executor() {
                    let execution = ExecutionId(execution);
                    let _ = executor.stop(&execution, STOP_GRACE).await;
                    if let Err(error) = executor.remove(&execution).await {
                        warn!(allocation = %self.hosted.id, %error, "Could not remove the workload.");
                    }
                }
            }
            Effect::Watch => {
                self.watch(ctx);
                self.keep_logs(ctx);
                self.probe_soon(ctx);
                self.measure_later(ctx);
                self.bill_soon(ctx);
            }
            Effect::ScheduleRestart(delay) => ctx.after(delay, Internal::Input(Input::RestartDue)),
            Effect::Persist { durable } => {
                hosted::save(&self.shared.store, &self.hosted, durable).await;
            }
            Effect::Tell => self.tell(ctx),
            Effect::Ended => {
                self.final_receipt().await;
                crate::subnet::leave(&self.shared, &self.hosted).await;
                self.release_volumes();
                self.shared.ledger.ended(&self.hosted.reservation, &self.hosted.id).await
            }
            Effect::Forget => {
                crate::subnet::leave(&self.shared, &self.hosted).await;
                self.release_volumes();
                self.log_file().remove();
                hosted::forget(&self.shared.store, &self.hosted.id).await;
                self.shared.forget(&self.hosted.id, ctx.actor());
                ctx.stop(ExitReason::Normal);
            }
        }
        None
    }

    #[tracing::instrument(name = "start", skip_all,
        fields(allocation = %self.hosted.id, executor = self.hosted.spec.allocation.executor.name()))]
    async fn start(&mut self) -> Input {
        let Some(executor) = self.executor() else {
            let kind = self.hosted.spec.allocation.executor.name();
            return Input::StartFailed { error: format!("no {kind} executor here") };
        };
        let volumes = match self.place_volumes() {
            Ok(volumes) => volumes,
            Err(error) => return Input::StartFailed { error },
        };
        let mut spec = match work::executor_spec(&self.hosted, &volumes) {
            Ok(spec) => spec,
            Err(error) => return Input::StartFailed { error },
        };
        spec.network = match crate::subnet::network(&self.shared, &self.hosted) {
            Ok(network) => network,
            Err(error) => return Input::StartFailed { error },
        };
        let starting = std::time::Instant::now();
        let publishes = !spec.ports.is_empty();
        let execution = match executor.start(spec).await {
            Ok(execution) => execution,
            Err(error) => return Input::StartFailed { error: error.to_string() },
        };
        let start_us = u64::try_from(starting.elapsed().as_micros()).unwrap_or(u64::MAX);
        // Where the engine published the ports (the free ones it chose).
        let endpoints = match publishes {
            true => match executor.inspect(&execution).await {
                Ok(info) => work::endpoints(&info.published, &self.shared.settings.public_host),
                Err(error) => {
                    warn!(allocation = %self.hosted.id, %error, "Could not read the published ports.");
                    Vec::new()
                }
            },
            false => Vec::new(),
        };
        Input::Started { execution: execution.0, start_us, endpoints }
    }

    fn log_file(&self) -> logfile::LogFile {
        let settings = &self.shared.settings;
        logfile::LogFile::new(&settings.logs_dir, &self.hosted.id, settings.log_cap)
    }

    /// Copies the current execution's output to its log file as it comes, on a task the
    /// actor owns (it ends with the execution). An execution followed before a restart
    /// of this provider continues with new lines only.
    fn keep_logs(&self, ctx: &mut Context<Internal>) {
        let (Some(executor), Some(execution)) = (self.executor(), self.hosted.execution.clone())
        else {
            return;
        };
        let file = self.log_file();
        ctx.spawn(async move {
            let again = {
                let (file, execution) = (file.clone(), execution.clone());
                tokio::task::spawn_blocking(move || file.follows(&execution)).await
            };
            let tail = match again {
                Ok(Ok(true)) => Some(0),
                _ => None,
            };
            let options = LogOptions { follow: true, tail, stdout: true, stderr: true };
            if let Ok(stream) = executor.logs(&ExecutionId(execution), options).await {
                logfile::copy(stream, file).await;
            }
            None
        });
    }

    /// Waits for the current execution to exit, on a task the actor owns.
    fn watch(&self, ctx: &mut Context<Internal>) {
        let (Some(executor), Some(execution)) = (self.executor(), self.hosted.execution.clone())
        else {
            return;
        };
        ctx.spawn(async move {
            let id = ExecutionId(execution.clone());
            let input = match executor.wait(&id).await {
                Ok(exit) => Input::Exited {
                    code: exit.code,
                    reason: format!("{:?}", exit.reason),
                    output: work::output_of(executor.as_ref(), &id).await,
                },
                Err(error) => Input::Lost { error: error.to_string() },
            };
            Some(Internal::Watched { execution, input })
        });
    }

    /// Pushes the status to the orchestrator, retrying with back-off, on a task the
    /// actor owns (versions let the orchestrator drop a late, older one).
    fn tell(&self, ctx: &mut Context<Internal>) {
        let actor = ctx.actor().clone();
        let to = self.hosted.orchestrator.clone();
        let (id, update) = (
            self.hosted.id.clone(),
            Update {
                deployment: self.hosted.deployment.clone(),
                allocation: self.hosted.spec.name.clone(),
                status: self.hosted.status.clone(),
                heartbeat: false,
            },
        );
        ctx.spawn(async move {
            let mut delay = Duration::from_millis(500);
            for attempt in 1..=4 {
                match dms_protocol::call(&actor, &to, &update, Duration::from_secs(5)).await {
                    // A copy that was replaced meanwhile hears it here too (an ended one
                    // sends no heartbeats): it is forgotten.
                    Ok(ack) if !ack.keep => return Some(Internal::Beaten(Ok(ack))),
                    Ok(_) => break,
                    Err(error) if attempt == 4 => warn!(allocation = %id, %error,
                        "The orchestrator did not take the update; it asks again when it resumes."),
                    Err(_) => {
                        tokio::time::sleep(delay).await;
                        delay *= 2;
                    }
                }
            }
            None
        });
    }

    async fn logs(&self, request: LogsRequest) -> Result<Logs, ActorError> {
        let exited = self.hosted.status.state.is_terminal();
        let (file, tail) = (self.log_file(), request.tail);
        let kept = tokio::task::spawn_blocking(move || file.read(&request)).await.ok().flatten();
        if let Some(logs) = kept {
            return Ok(Logs { exited, ..logs });
        }
        // Started before output was kept in files: ask the executor.
        let Some(execution) = self.hosted.execution.clone() else {
            return Ok(Logs { lines: Vec::new(), exited, truncated: None, next: None });
        };
        let executor = self.executor().ok_or_else(|| ActorError::handler("executor gone"))?;
        let options = LogOptions { follow: false, tail, stdout: true, stderr: true };
        let failed = |e: dms_executor::Error| ActorError::handler(e.to_string());
        let lines = executor
            .logs(&ExecutionId(execution), options)
            .await
            .map_err(failed)?
            .collect()
            .await
            .map_err(failed)?
            .into_iter()
            .map(logfile::line)
            .collect();
        Ok(Logs { lines, exited, truncated: None, next: None })
    }
}
