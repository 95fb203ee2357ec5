//! The executor interface every backend implements.

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::execution::{
    ExecOutput, ExecutionId, ExecutionInfo, ExitStatus, Kind, LogOptions, LogStream, Recovery,
    Stats,
};
use crate::spec::Spec;

/// Runs executions on one backend. Object-safe: the node holds `Arc<dyn Executor>` per kind.
///
/// Life cycle: [`start`](Executor::start) → [`wait`](Executor::wait) or
/// [`stop`](Executor::stop) → [`remove`](Executor::remove). An exited execution keeps its
/// status and logs until removed. After a daemon restart a new instance knows nothing until
/// [`reattach`](Executor::reattach) is called with the allocations the node still tracks.
///
/// Every method is cancel-safe in the sense that dropping its future leaves the execution in a
/// state the next call can observe (a dropped `stop` may leave it running or stopped, never
/// half-removed).
#[async_trait]
pub trait Executor: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> Kind;

    /// Starts an execution and returns once it is running (or, for in-process backends, once
    /// it is scheduled). Errors leave nothing behind.
    async fn start(&self, spec: Spec) -> Result<ExecutionId>;

    /// Waits until the execution exits and returns how it ended. Returns at once for an
    /// execution that already exited.
    async fn wait(&self, id: &ExecutionId) -> Result<ExitStatus>;

    /// Asks the execution to stop (SIGTERM for containers), waits up to `grace`, then kills it
    /// and waits for it to exit. Returns its exit status; stopping an exited execution returns
    /// its status unchanged.
    async fn stop(&self, id: &ExecutionId, grace: Duration) -> Result<ExitStatus>;

    /// Removes an execution, killing it if it still runs, with its logs and state. Succeeds
    /// when the workload already vanished (container removed by hand); an id this instance
    /// does not manage is [`Error::NotFound`](crate::Error::NotFound).
    async fn remove(&self, id: &ExecutionId) -> Result<()>;

    /// Streams the execution's output, stdout and stderr kept apart.
    async fn logs(&self, id: &ExecutionId, options: LogOptions) -> Result<LogStream>;

    /// Runs a command inside the running execution and returns its exit code and output.
    async fn exec(&self, id: &ExecutionId, command: Vec<String>) -> Result<ExecOutput>;

    /// Samples the execution's resource usage.
    async fn stats(&self, id: &ExecutionId) -> Result<Stats>;

    /// Returns the execution's current state.
    async fn inspect(&self, id: &ExecutionId) -> Result<ExecutionInfo>;

    /// Lists the executions this instance manages, with fresh states.
    async fn list(&self) -> Result<Vec<ExecutionInfo>>;

    /// After a restart: finds executions left by a previous instance in this executor's scope,
    /// re-attaches those whose allocation is in `known`, and stops and removes the others
    /// (orphans).
    async fn reattach(&self, known: &HashSet<String>) -> Result<Recovery>;
}
