//! The allocation life cycle as a plain state machine: the record and an input in,
//! the record changed and the effects to carry out (sans-IO; the actor in
//! [`super`] does the I/O and feeds results back as inputs).
//!
//! ```text
//!         Start (Staged, with inputs)   Started
//!  Allocated ─────────▶ Starting ─────────────▶ Running ──Exited / Unhealthy(policy: restart)──┐
//!      │                   │  ▲                   │                               │
//!      │                   │  └────RestartDue─────┼───────── Starting ◀───────────┘
//!      │   (after a provider restart: Recovered with the execution found → Running,
//!      │    without → Failed; from any state that has not ended)
//!      │            StartFailed                 Exited / Lost
//!      │                   ▼                      ▼
//!      │                Failed ◀─────────── Completed | Failed
//!      └──Stop──▶ Stopped ◀──Stop / Abandon── (any state that has not ended)
//! ```
//!
//! With `inputs`, a start stages them first (`Stage` → `Staged`; the start is answered
//! at once and the progress told); a task with `outputs` that ends publishes them
//! (`Publish` → `Published`) before its end is recorded, still `Running`; a running
//! allocation publishes on request (`PublishNow`) and runs on. A volume found over its
//! size (`Exceeded`) stops and fails the workload.
//!
//! Rules every path keeps: a terminal state (completed, failed, stopped) is final —
//! inputs after it change nothing but a `Stop` still removes leftovers; entering a
//! terminal state emits [`Effect::Ended`] exactly once (the resources of the
//! allocation may then be released); every status change bumps the status version and
//! is persisted.

use std::time::Duration;

use dms_ensemble::model::{AllocationType, Restart};
use dms_protocol::{AllocationState, AllocationStatus, Health};

use crate::hosted::Hosted;

mod publish;

/// What happened to the allocation.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// Its orchestrator asked to start it.
    Start,
    /// The executor started it.
    Started {
        /// The executor's id of the execution.
        execution: String,
        /// How long the start took, in microseconds.
        start_us: u64,
        /// Where its ports can be reached.
        endpoints: Vec<dms_protocol::Endpoint>,
    },
    /// The executor could not start it.
    StartFailed {
        /// Why.
        error: String,
    },
    /// The execution exited.
    Exited {
        /// Exit code.
        code: i64,
        /// How it ended, for people.
        reason: String,
        /// The end of its standard output.
        output: String,
    },
    /// The executor lost track of the execution.
    Lost {
        /// Why.
        error: String,
    },
    /// Its inputs were staged into its volumes, or why not.
    Staged(Result<(), String>),
    /// A task's outputs were published, or why not.
    Published(Result<Vec<dms_protocol::storage::Published>, String>),
    /// Staging or publishing made progress (for people).
    Progress(String),
    /// A volume holds more than its size: the workload is stopped and fails.
    Exceeded {
        /// Which volume, how much.
        reason: String,
    },
    /// Publish the outputs now (a service's, on request).
    PublishNow,
    /// The restart policy's delay passed.
    RestartDue,
    /// Its supervisor restarts it in place, for `reason` (a sibling failed).
    Restart {
        /// Why.
        reason: String,
    },
    /// A health probe passed (`Healthy`) — or the check has no verdict yet.
    Health(Health),
    /// Health probes failed `retries` times in a row, for `reason`: the workload is
    /// stopped and its restart policy decides, as after a failed exit.
    Unhealthy {
        /// The last probe's failure.
        reason: String,
    },
    /// Stop it and forget it (shutdown by its orchestrator, revert by the provider).
    Stop,
    /// Stop it and forget it on the provider's own account, for `reason`: the
    /// orchestrator placed it elsewhere, or has been silent too long. Nobody is told
    /// (nobody is listening who should be).
    Abandon {
        /// Why, for the record and the log.
        reason: String,
    },
    /// The provider restarted; the execution the engine still has for the allocation
    /// (found by its label, whatever the record says), if any.
    Recovered {
        /// The execution found and re-attached.
        execution: Option<String>,
    },
}

/// What the driver must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Start an execution from the record's spec; feed back `Started` or `StartFailed`.
    StartExecution,
    /// Stage the inputs into the volumes; feed back `Staged` (and `Progress`).
    Stage,
    /// Publish the outputs; feed back `Published` (and `Progress`).
    Publish,
    /// Remove a previous execution (before a restart).
    RemoveExecution(String),
    /// Wait for the current execution to exit; feed back `Exited` or `Lost`.
    Watch,
    /// Stop and remove an execution.
    StopExecution(String),
    /// Feed back `RestartDue` after this delay.
    ScheduleRestart(Duration),
    /// Write the record (durably: before anything is told).
    Persist {
        /// Flushed to disk before going on.
        durable: bool,
    },
    /// Push the status to the orchestrator.
    Tell,
    /// The allocation has ended: its share of the resources may be released.
    Ended,
    /// Delete the record and stop the actor once the current answer is sent.
    Forget,
}

/// Applies `input` at time `now_ms`; returns the effects.
pub fn step(hosted: &mut Hosted, input: Input, now_ms: u64) -> Vec<Effect> {
    use AllocationState as S;
    let state = hosted.status.state;
    if matches!(input, Input::Recovered { .. }) {
        // A publish the crash cut short is begun again when the exit is seen again.
        (hosted.publishing, hosted.exit) = (None, None);
    }
    if state.is_terminal() {
        return match input {
            Input::Stop | Input::Abandon { .. } => {
                let mut effects: Vec<Effect> =
                    hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
                effects.push(Effect::Forget);
                effects
            }
            _ => Vec::new(),
        };
    }
    match (state, input) {
        (S::Allocated, Input::Start) if hosted.stages() => {
            change(hosted, |s| {
                s.state = S::Starting;
                s.message = Some("staging inputs".into());
            });
            vec![Effect::Persist { durable: true }, Effect::Stage]
        }
        (S::Starting, Input::Staged(Ok(()))) => vec![Effect::StartExecution],
        (S::Starting, Input::Staged(Err(error))) => {
            end(hosted, S::Failed, format!("could not stage its inputs: {error}"), now_ms)
        }
        (S::Starting | S::Running, Input::Progress(message)) => {
            change(hosted, |s| s.message = Some(message));
            vec![Effect::Persist { durable: false }, Effect::Tell]
        }
        (S::Running, Input::Exceeded { reason }) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
            effects.extend(end(hosted, S::Failed, reason, now_ms));
            effects
        }
        (S::Running, Input::PublishNow) => publish::asked(hosted),
        (S::Running, Input::Published(result)) => publish::done(hosted, result, now_ms),
        (S::Allocated, Input::Start) => {
            change(hosted, |s| s.state = S::Starting);
            // Durable: the start brought the orchestrator's grant and the liveness
            // settings, without which a copy recovered after a crash could not send
            // heartbeats (and would stop itself as orphaned).
            vec![Effect::Persist { durable: true }, Effect::StartExecution]
        }
        (S::Starting, Input::Started { execution, start_us, endpoints }) => {
            hosted.execution = Some(execution);
            // Usage under a contract counts from the first start, kept with the record.
            if hosted.contract.is_some() {
                hosted.billed_from_ms.get_or_insert(now_ms);
            }
            let restarts = hosted.status.restarts;
            let health = hosted.spec.allocation.healthcheck.as_ref().map(|_| Health::Starting);
            change(hosted, |s| {
                *s = AllocationStatus {
                    state: S::Running,
                    started_ms: Some(now_ms),
                    start_us: Some(start_us),
                    restarts,
                    health,
                    endpoints,
                    version: s.version,
                    ..AllocationStatus::default()
                };
            });
            // The first start is answered to the orchestrator's call (unless it staged
            // first: that call was answered at once); restarts are told.
            let told = restarts > 0 || hosted.stages();
            let mut effects = vec![Effect::Persist { durable: told }, Effect::Watch];
            if told {
                effects.push(Effect::Tell);
            }
            effects
        }
        (S::Starting, Input::StartFailed { error }) => {
            let verb = if hosted.status.restarts > 0 { "restart" } else { "start" };
            end(hosted, S::Failed, format!("could not {verb}: {error}"), now_ms)
        }
        (S::Starting, Input::RestartDue) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::RemoveExecution).into_iter().collect();
            effects.push(Effect::StartExecution);
            effects
        }
        (S::Running, Input::Exited { code, reason, output }) => {
            let restarts = matches!(restart_due(hosted, code, now_ms), Some(Ok(_)));
            if hosted.publishes() && !restarts {
                return publish::ended(hosted, (code, reason, output));
            }
            exited(hosted, code, &reason, output, now_ms)
        }
        (S::Running, Input::Restart { reason }) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
            let restarts = hosted.status.restarts + 1;
            change(hosted, |s| {
                s.state = S::Starting;
                s.message = Some(format!("restarted by its supervisor: {reason}"));
                s.finished_ms = Some(now_ms);
                s.restarts = restarts;
            });
            effects.extend([Effect::Persist { durable: true }, Effect::StartExecution]);
            effects
        }
        (S::Running, Input::Health(health)) => {
            if hosted.status.health == Some(health) {
                return Vec::new();
            }
            change(hosted, |s| s.health = Some(health));
            vec![Effect::Persist { durable: false }, Effect::Tell]
        }
        (S::Running, Input::Unhealthy { reason }) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
            change(hosted, |s| s.health = Some(Health::Unhealthy));
            effects.extend(unhealthy(hosted, &reason, now_ms));
            effects
        }
        (S::Running, Input::Lost { error }) => {
            end(hosted, S::Failed, format!("lost track of the workload: {error}"), now_ms)
        }
        (_, Input::Stop) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
            effects.extend(end(hosted, S::Stopped, "stopped by a shutdown".into(), now_ms));
            effects.retain(|e| *e != Effect::Tell); // the orchestrator asked: it gets the answer
            effects.push(Effect::Forget);
            effects
        }
        (_, Input::Abandon { reason }) => {
            let mut effects: Vec<Effect> =
                hosted.execution.take().map(Effect::StopExecution).into_iter().collect();
            effects.extend(end(hosted, S::Stopped, reason, now_ms));
            effects.retain(|e| *e != Effect::Tell);
            effects.push(Effect::Forget);
            effects
        }
        (_, Input::Recovered { execution: Some(execution) }) => {
            // The engine still has it: follow it again. (A start or restart written
            // lazily may have been lost in the crash; the container was not. If it has
            // exited meanwhile, the watcher says so at once and the policy decides.)
            hosted.execution = Some(execution);
            if state == S::Running {
                return vec![Effect::Persist { durable: true }, Effect::Watch];
            }
            change(hosted, |s| {
                s.state = S::Running;
                s.started_ms.get_or_insert(now_ms);
            });
            vec![Effect::Persist { durable: true }, Effect::Watch, Effect::Tell]
        }
        (_, Input::Recovered { execution: None }) => {
            let message = if hosted.spec.allocation.executor == dms_ensemble::model::Executor::Wasm
            {
                "the provider restarted; a WebAssembly run does not survive a restart"
            } else {
                "the provider restarted and the workload was gone"
            };
            end(hosted, S::Failed, message.into(), now_ms)
        }
        // Late or out-of-place inputs (an exit after a restart began, a start twice).
        _ => Vec::new(),
    }
}

/// An execution exited: restart it by policy, or end.
pub(super) fn exited(
    hosted: &mut Hosted,
    code: i64,
    reason: &str,
    output: String,
    now_ms: u64,
) -> Vec<Effect> {
    use AllocationState as S;
    let task = hosted.spec.allocation.kind == AllocationType::Task;
    let ok = code == 0 && task;
    let mut message = (!ok).then(|| {
        if task {
            format!("the task exited with code {code} ({reason})")
        } else {
            format!("the service exited ({reason})")
        }
    });
    match restart_due(hosted, code, now_ms) {
        Some(Ok(delay)) => {
            let restarts = hosted.status.restarts + 1;
            let max = hosted.spec.allocation.restart.as_ref().and_then(|p| p.max_attempts);
            let note = format!(
                "exited with code {code}; restarting in {delay:?} (restart {restarts}{})",
                max.map(|m| format!(" of {m}")).unwrap_or_default()
            );
            hosted.restart_times.push(now_ms);
            change(hosted, |s| {
                s.state = S::Starting;
                s.exit_code = Some(code);
                s.message = Some(note);
                s.output = Some(output);
                s.finished_ms = Some(now_ms);
                s.restarts = restarts;
            });
            vec![Effect::Persist { durable: true }, Effect::Tell, Effect::ScheduleRestart(delay)]
        }
        Some(Err(made)) => {
            let text = message.take().unwrap_or_else(|| format!("exited with code {code}"));
            change(hosted, |s| {
                s.exit_code = Some(code);
                s.output = Some(output);
            });
            end(hosted, S::Failed, format!("{text}; gave up after {made} restarts"), now_ms)
        }
        None => {
            let state = if ok { S::Completed } else { S::Failed };
            change(hosted, |s| {
                s.exit_code = Some(code);
                s.output = Some(output);
            });
            end(hosted, state, message.unwrap_or_default(), now_ms)
        }
    }
}

/// Health checks failed for `reason` (the execution is already stopped): restart by
/// the policy, as after a failed exit, or fail.
fn unhealthy(hosted: &mut Hosted, reason: &str, now_ms: u64) -> Vec<Effect> {
    use AllocationState as S;
    // An unhealthy workload counts as a failed run (exit code 1 for the policy).
    match restart_due(hosted, 1, now_ms) {
        Some(Ok(delay)) => {
            let restarts = hosted.status.restarts + 1;
            let max = hosted.spec.allocation.restart.as_ref().and_then(|p| p.max_attempts);
            let note = format!(
                "{reason}; restarting in {delay:?} (restart {restarts}{})",
                max.map(|m| format!(" of {m}")).unwrap_or_default()
            );
            hosted.restart_times.push(now_ms);
            change(hosted, |s| {
                s.state = S::Starting;
                s.message = Some(note);
                s.finished_ms = Some(now_ms);
                s.restarts = restarts;
            });
            vec![Effect::Persist { durable: true }, Effect::Tell, Effect::ScheduleRestart(delay)]
        }
        Some(Err(made)) => end(
            hosted,
            S::Failed,
            format!("unhealthy ({reason}); gave up after {made} restarts"),
            now_ms,
        ),
        None => end(hosted, S::Failed, format!("unhealthy: {reason}"), now_ms),
    }
}

/// Enters terminal `state` with `message`.
pub(super) fn end(
    hosted: &mut Hosted,
    state: AllocationState,
    message: String,
    now_ms: u64,
) -> Vec<Effect> {
    change(hosted, |s| {
        s.state = state;
        s.message = (!message.is_empty()).then_some(message);
        s.finished_ms = Some(now_ms);
    });
    vec![Effect::Persist { durable: true }, Effect::Ended, Effect::Tell]
}

/// Applies `change` to the status; bumps the version when it changed anything.
pub(super) fn change(hosted: &mut Hosted, change: impl FnOnce(&mut AllocationStatus)) {
    let before = hosted.status.clone();
    change(&mut hosted.status);
    hosted.status.version = before.version;
    if hosted.status != before {
        hosted.status.version += 1;
    }
}

/// Whether the allocation's restart policy restarts it after exiting with `code`, and
/// after how long; `Err` with the number of restarts made when the policy gave up.
pub fn restart_due(hosted: &Hosted, code: i64, now: u64) -> Option<Result<Duration, u32>> {
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
