//! A scripted in-memory executor for orchestration tests.
//!
//! A [`World`] plays the role of the container engine: it outlives executor instances, so a
//! test can "restart the daemon" with [`Executor::restarted`] and exercise
//! [`reattach`](crate::Executor::reattach). What each allocation does is a [`Script`]
//! (output, exit code and when, whether it honours a graceful stop, a start failure). Timing
//! uses tokio time, so tests may run with paused time. Every call is recorded ([`Call`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::execution::{
    ExecOutput, ExecutionId, ExecutionInfo, ExitReason, ExitStatus, Kind, LogLine, LogOptions,
    LogStream, Recovery, State, Stats,
};
use crate::logbuf::{DEFAULT_LOG_LINES, LogBuffer};
use crate::spec::Spec;

/// What a fake execution does.
#[derive(Debug, Clone)]
pub struct Script {
    /// Lines written as soon as it starts.
    pub output: Vec<LogLine>,
    /// Exit code and when; `None` runs until stopped (a service).
    pub exit: Option<(i64, Duration)>,
    /// Whether a graceful stop ends it; if not, stop waits the grace period and kills it.
    pub honours_stop: bool,
    /// Make `start` fail with this message.
    pub start_error: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script { output: Vec::new(), exit: None, honours_stop: true, start_error: None }
    }
}

impl Script {
    /// Runs until stopped.
    pub fn service() -> Script {
        Script::default()
    }

    /// Exits with `code` after `after`.
    pub fn exits(code: i64, after: Duration) -> Script {
        Script { exit: Some((code, after)), ..Script::default() }
    }

    /// Fails to start with `message`.
    pub fn fails_to_start(message: impl Into<String>) -> Script {
        Script { start_error: Some(message.into()), ..Script::default() }
    }
}

/// A call made on a fake executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `start` for an allocation.
    Start(String),
    /// `stop` of an execution.
    Stop(ExecutionId),
    /// `remove` of an execution.
    Remove(ExecutionId),
    /// `reattach` with these known allocations (sorted).
    Reattach(Vec<String>),
}

#[derive(Debug)]
struct Run {
    allocation: String,
    deployment: String,
    /// The spec's ports as an engine would publish them (a free port is 40000 + the
    /// container port).
    published: Vec<crate::execution::Published>,
    script: Script,
    logs: Arc<LogBuffer>,
    state: watch::Sender<State>,
}

impl Run {
    fn finish(&self, status: ExitStatus) {
        let changed = self.state.send_if_modified(|state| {
            if state.is_exited() {
                return false;
            }
            *state = State::Exited(status.clone());
            true
        });
        if changed {
            self.logs.close();
        }
    }
}

/// The fake engine: executions that outlive executor instances.
#[derive(Debug, Default)]
pub struct World {
    runs: Mutex<HashMap<ExecutionId, Arc<Run>>>,
    scripts: Mutex<HashMap<String, Script>>,
    /// What allocations without a script of their own do.
    fallback: Mutex<Script>,
    calls: Mutex<Vec<Call>>,
    /// The spec of the latest start of each allocation.
    specs: Mutex<HashMap<String, Spec>>,
    counter: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Test double: every update is a single insert/remove, consistent even after a panic.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl World {
    /// Sets what executions of `allocation` do: an allocation id (`<deployment>.<name>`),
    /// or just a name, for that allocation in every deployment.
    pub fn script(&self, allocation: impl Into<String>, script: Script) {
        lock(&self.scripts).insert(allocation.into(), script);
    }

    /// Sets what executions of allocations without a script of their own do (by
    /// default: run until stopped).
    pub fn script_others(&self, script: Script) {
        *lock(&self.fallback) = script;
    }

    /// The spec the latest start of `allocation` (its id) was given.
    pub fn spec(&self, allocation: &str) -> Option<Spec> {
        lock(&self.specs).get(allocation).cloned()
    }

    /// Every call made so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        lock(&self.calls).clone()
    }

    /// Allocations with an execution in the world (attached or not), sorted.
    pub fn allocations(&self) -> Vec<String> {
        let mut all: Vec<String> =
            lock(&self.runs).values().map(|r| r.allocation.clone()).collect();
        all.sort();
        all
    }

    fn record(&self, call: Call) {
        lock(&self.calls).push(call);
    }
}

/// The fake executor.
#[derive(Debug)]
pub struct Executor {
    world: Arc<World>,
    attached: Mutex<HashSet<ExecutionId>>,
}

impl Default for Executor {
    fn default() -> Self {
        Executor::new()
    }
}

impl Executor {
    /// An executor over a new, empty world.
    pub fn new() -> Executor {
        Executor { world: Arc::new(World::default()), attached: Mutex::new(HashSet::new()) }
    }

    /// A new instance over the same world, knowing nothing: a daemon restart.
    pub fn restarted(&self) -> Executor {
        Executor { world: self.world.clone(), attached: Mutex::new(HashSet::new()) }
    }

    /// The world this executor runs in.
    pub fn world(&self) -> &Arc<World> {
        &self.world
    }

    fn run(&self, id: &ExecutionId) -> Result<Arc<Run>> {
        if !lock(&self.attached).contains(id) {
            return Err(Error::NotFound(id.clone()));
        }
        lock(&self.world.runs).get(id).cloned().ok_or_else(|| Error::NotFound(id.clone()))
    }

    fn info(id: &ExecutionId, run: &Run) -> ExecutionInfo {
        ExecutionInfo {
            id: id.clone(),
            kind: Kind::Fake,
            allocation: run.allocation.clone(),
            deployment: run.deployment.clone(),
            state: run.state.borrow().clone(),
            address: None,
            published: run.published.clone(),
            network_pid: None,
        }
    }
}

async fn wait_exit(run: &Run) -> ExitStatus {
    let mut rx = run.state.subscribe();
    match rx.wait_for(State::is_exited).await.map(|s| s.clone()) {
        Ok(State::Exited(status)) => status,
        _ => ExitStatus { code: -1, reason: ExitReason::Failed("fake run lost".into()) },
    }
}

#[async_trait]
impl crate::Executor for Executor {
    fn kind(&self) -> Kind {
        Kind::Fake
    }

    async fn start(&self, spec: Spec) -> Result<ExecutionId> {
        self.world.record(Call::Start(spec.allocation.clone()));
        lock(&self.world.specs).insert(spec.allocation.clone(), spec.clone());
        // By allocation id, else by the allocation's own name (after the deployment id).
        let name = spec.allocation.rsplit('.').next().unwrap_or_default();
        let script = {
            let scripts = lock(&self.world.scripts);
            scripts.get(&spec.allocation).or_else(|| scripts.get(name)).cloned()
        }
        .unwrap_or_else(|| lock(&self.world.fallback).clone());
        if let Some(message) = &script.start_error {
            return Err(Error::Backend {
                backend: "fake",
                operation: "start",
                message: message.clone(),
            });
        }
        let n = self.world.counter.fetch_add(1, Ordering::Relaxed);
        let id = ExecutionId(format!("fake-{}-{n}", spec.allocation));
        let logs = LogBuffer::new(DEFAULT_LOG_LINES);
        for line in &script.output {
            logs.line(line.stream, line.text.clone());
        }
        let published = spec
            .ports
            .iter()
            .map(|p| crate::execution::Published {
                port: p.container_port,
                protocol: p.protocol,
                host_port: p.host_port.unwrap_or(40000_u16.saturating_add(p.container_port)),
            })
            .collect();
        let run = Arc::new(Run {
            published,
            allocation: spec.allocation,
            deployment: spec.deployment,
            script: script.clone(),
            logs,
            state: watch::channel(State::Running).0,
        });
        if let Some((code, after)) = script.exit {
            let run = run.clone();
            tokio::spawn(async move {
                let mut rx = run.state.subscribe();
                tokio::select! {
                    _ = tokio::time::sleep(after) => run.finish(ExitStatus { code, reason: ExitReason::Exited }),
                    _ = rx.wait_for(State::is_exited) => {}
                }
            });
        }
        lock(&self.world.runs).insert(id.clone(), run);
        lock(&self.attached).insert(id.clone());
        Ok(id)
    }

    async fn wait(&self, id: &ExecutionId) -> Result<ExitStatus> {
        let run = self.run(id)?;
        Ok(wait_exit(&run).await)
    }

    async fn stop(&self, id: &ExecutionId, grace: Duration) -> Result<ExitStatus> {
        self.world.record(Call::Stop(id.clone()));
        let run = self.run(id)?;
        if run.script.honours_stop {
            run.finish(ExitStatus { code: 0, reason: ExitReason::Stopped });
        } else if tokio::time::timeout(grace, wait_exit(&run)).await.is_err() {
            run.finish(ExitStatus { code: 137, reason: ExitReason::Killed });
        }
        Ok(wait_exit(&run).await)
    }

    async fn remove(&self, id: &ExecutionId) -> Result<()> {
        self.world.record(Call::Remove(id.clone()));
        let run = self.run(id)?;
        run.finish(ExitStatus { code: 137, reason: ExitReason::Killed });
        lock(&self.world.runs).remove(id);
        lock(&self.attached).remove(id);
        Ok(())
    }

    async fn logs(&self, id: &ExecutionId, options: LogOptions) -> Result<LogStream> {
        Ok(self.run(id)?.logs.stream(options))
    }

    /// Echoes the command: exit code 0, the arguments joined by spaces on stdout.
    async fn exec(&self, id: &ExecutionId, command: Vec<String>) -> Result<ExecOutput> {
        let run = self.run(id)?;
        if run.state.borrow().is_exited() {
            return Err(Error::Backend {
                backend: "fake",
                operation: "exec",
                message: "not running".into(),
            });
        }
        Ok(ExecOutput {
            exit_code: 0,
            stdout: command.join(" ") + "\n",
            stderr: String::new(),
            truncated: false,
        })
    }

    async fn stats(&self, id: &ExecutionId) -> Result<Stats> {
        self.run(id)?;
        Ok(Stats::default())
    }

    async fn inspect(&self, id: &ExecutionId) -> Result<ExecutionInfo> {
        let run = self.run(id)?;
        Ok(Self::info(id, &run))
    }

    async fn list(&self) -> Result<Vec<ExecutionInfo>> {
        let attached = lock(&self.attached).clone();
        let runs = lock(&self.world.runs);
        let mut out: Vec<ExecutionInfo> = runs
            .iter()
            .filter(|(id, _)| attached.contains(*id))
            .map(|(id, r)| Self::info(id, r))
            .collect();
        out.sort_by(|a, b| a.allocation.cmp(&b.allocation).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    async fn reattach(&self, known: &HashSet<String>) -> Result<Recovery> {
        let mut sorted: Vec<String> = known.iter().cloned().collect();
        sorted.sort();
        self.world.record(Call::Reattach(sorted));
        let mut recovery = Recovery::default();
        let runs: Vec<(ExecutionId, Arc<Run>)> =
            lock(&self.world.runs).iter().map(|(id, r)| (id.clone(), r.clone())).collect();
        for (id, run) in runs {
            if lock(&self.attached).contains(&id) {
                continue;
            }
            if known.contains(&run.allocation) {
                lock(&self.attached).insert(id.clone());
                recovery.reattached.push(Self::info(&id, &run));
            } else {
                run.finish(ExitStatus { code: 137, reason: ExitReason::Killed });
                recovery.removed.push(Self::info(&id, &run));
                lock(&self.world.runs).remove(&id);
            }
        }
        recovery.reattached.sort_by(|a, b| a.allocation.cmp(&b.allocation));
        recovery.removed.sort_by(|a, b| a.allocation.cmp(&b.allocation));
        Ok(recovery)
    }
}

#[cfg(test)]
mod tests;
