//! Allocation actor ↔ orchestrator: start, status, logs, shutdown, and the updates an
//! allocation pushes when its state changes.

use serde::{Deserialize, Serialize};

use crate::Request;

/// Orchestrator actor: an allocation changed state ([`Update`]).
pub const UPDATE: &str = "/dms/deployment/update";
/// Allocation actor: start the workload.
pub const ALLOCATION_START: &str = "/dms/allocation/start";
/// Allocation actor: its [`AllocationStatus`].
pub const ALLOCATION_STATUS: &str = "/dms/allocation/status";
/// Allocation actor: its output ([`LogsRequest`] → [`Logs`]).
pub const ALLOCATION_LOGS: &str = "/dms/allocation/logs";
/// Allocation actor: stop and remove the workload, release its resources.
pub const ALLOCATION_SHUTDOWN: &str = "/dms/allocation/shutdown";
/// Behavior: restart a running allocation in place (its supervisor's decision).
pub const ALLOCATION_RESTART: &str = "/dms/allocation/restart";
/// Behavior: publish the allocation's outputs now (a service's, on request).
pub const ALLOCATION_PUBLISH: &str = "/dms/allocation/publish";

/// An allocation's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AllocationState {
    /// Not placed yet.
    #[default]
    Pending,
    /// Placed; its actor exists; not started.
    Allocated,
    /// Starting.
    Starting,
    /// Running.
    Running,
    /// A task that exited with code 0.
    Completed,
    /// Exited with a non-zero code, could not start, or was lost.
    Failed,
    /// Stopped by a shutdown.
    Stopped,
}

impl AllocationState {
    /// Every state, in life-cycle order.
    pub const ALL: [AllocationState; 7] = [
        AllocationState::Pending,
        AllocationState::Allocated,
        AllocationState::Starting,
        AllocationState::Running,
        AllocationState::Completed,
        AllocationState::Failed,
        AllocationState::Stopped,
    ];

    /// Whether it will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AllocationState::Completed | AllocationState::Failed | AllocationState::Stopped
        )
    }

    /// The snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            AllocationState::Pending => "pending",
            AllocationState::Allocated => "allocated",
            AllocationState::Starting => "starting",
            AllocationState::Running => "running",
            AllocationState::Completed => "completed",
            AllocationState::Failed => "failed",
            AllocationState::Stopped => "stopped",
        }
    }
}

/// What an allocation's health check says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No probe has passed yet.
    Starting,
    /// The last probe passed.
    Healthy,
    /// Probes failed `retries` times in a row: the workload is restarted by its policy.
    Unhealthy,
}

impl Health {
    /// The snake-case name.
    pub fn name(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// What an allocation is doing, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AllocationStatus {
    /// Its state.
    pub state: AllocationState,
    /// The exit code, once exited.
    #[serde(default)]
    pub exit_code: Option<i64>,
    /// Why it failed or stopped, for people.
    #[serde(default)]
    pub message: Option<String>,
    /// The end of its standard output, once exited (at most [`OUTPUT_KEEP`] bytes).
    #[serde(default)]
    pub output: Option<String>,
    /// When it started running (Unix milliseconds).
    #[serde(default)]
    pub started_ms: Option<u64>,
    /// When it exited (Unix milliseconds).
    #[serde(default)]
    pub finished_ms: Option<u64>,
    /// How long the executor took to start it, in microseconds (what `dms bench deploy`
    /// compares the whole submit-to-running time with).
    #[serde(default)]
    pub start_us: Option<u64>,
    /// How many times the provider restarted it (by its `restart` policy).
    #[serde(default)]
    pub restarts: u32,
    /// What its health check says, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Where each of its ports can be reached, once it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// What its `outputs` published (a task's, once it ended).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<crate::storage::Published>,
    /// Bumped by the provider on every change: statuses can arrive out of order (an
    /// update pushed while the answer to `start` is on its way), and only a newer one
    /// counts. See [`AllocationStatus::supersedes`].
    #[serde(default)]
    pub version: u64,
}

/// A published port of a running allocation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The port inside the workload.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The provider's address as users reach it (`deployment.public_address`).
    pub host: String,
    /// The port on that address.
    pub public: u16,
}

impl Endpoint {
    /// Where users connect: `host:public`, an IPv6 host in brackets.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.public)
        } else {
            format!("{}:{}", self.host, self.public)
        }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} → {}", self.port, self.protocol, self.address())
    }
}

impl AllocationStatus {
    /// Whether this status, arriving now, replaces `current`: it must be newer, and an
    /// ended allocation never comes back to life (a terminal state is final).
    pub fn supersedes(&self, current: &AllocationStatus) -> bool {
        let revives = current.state.is_terminal() && !self.state.is_terminal();
        self.version > current.version && !revives
    }
}

/// Most bytes of output kept with an exited allocation's status.
pub const OUTPUT_KEEP: usize = 16 * 1024;

/// An allocation changed state, or (with `heartbeat`) says it is alive (provider →
/// orchestrator). The answer says whether it is still the deployment's copy.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Update {
    /// The deployment id.
    pub deployment: String,
    /// The allocation name.
    pub allocation: String,
    /// Its status now.
    pub status: AllocationStatus,
    /// A periodic heartbeat rather than a change (it carries the status all the same).
    #[serde(default)]
    pub heartbeat: bool,
}

/// How an allocation and its orchestrator watch each other, set by the orchestrator in
/// [`Start`] and kept with the allocation's record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Liveness {
    /// How often the allocation sends a heartbeat ([`Update`] with `heartbeat`).
    pub heartbeat_ms: u64,
    /// How long the orchestrator may stay silent (no heartbeat answered) before the
    /// allocation stops itself and frees its resources: no orphans.
    pub stop_after_ms: u64,
}

impl Default for Liveness {
    fn default() -> Liveness {
        Liveness { heartbeat_ms: 1_000, stop_after_ms: 60_000 }
    }
}

/// Ask an allocation for its output.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogsRequest {
    /// Only the last lines.
    #[serde(default)]
    pub tail: Option<usize>,
    /// The kept lines from this one on (oldest first), as far as one answer carries;
    /// the answer's `next` continues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<usize>,
    /// Most bytes of lines in the answer (the provider's own limit when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<usize>,
}

/// One line of output.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogLine {
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The text, without its line end.
    pub text: String,
}

/// An allocation's output.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Logs {
    /// The lines, oldest first.
    pub lines: Vec<LogLine>,
    /// Whether the allocation has exited (no more lines will come).
    pub exited: bool,
    /// What was dropped to stay within the provider's log cap, in words; `None` when
    /// nothing was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<String>,
    /// More kept lines follow (a read with `from`): ask again from this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<usize>,
}

/// Start the workload (answer: the status after the start).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Start {
    /// The orchestrator's grant to the allocation actor (`dmscap1.…`): the right to
    /// push updates to it, presented with every update.
    #[serde(default)]
    pub grant: Option<String>,
    /// How the allocation and the orchestrator watch each other (`None`: the
    /// provider's defaults).
    #[serde(default)]
    pub liveness: Option<Liveness>,
}

/// The allocation's status now.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StatusRequest {}

/// Stop and remove the workload, release its resources (answer: the final status).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Shutdown {}

/// Restart a running allocation in place, for `reason` (its supervisor restarts it
/// because a sibling failed); answer: the status after the restart began.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Restart {
    /// Why, for the allocation's status and events.
    pub reason: String,
}

impl Request for Restart {
    const BEHAVIOR: &'static str = ALLOCATION_RESTART;
    type Response = AllocationStatus;
}

/// Publish the outputs now; the answer is the status as publishing begins (its end is
/// pushed as an update: `published N object(s)` or why not).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Publish {}

impl Request for Publish {
    const BEHAVIOR: &'static str = ALLOCATION_PUBLISH;
    type Response = AllocationStatus;
}

/// An update was taken.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ack {
    /// Whether the sender is still the deployment's copy of the allocation. `false`:
    /// it was placed elsewhere meanwhile (its provider was lost), or the deployment
    /// ended; the sender stops and frees its resources.
    #[serde(default = "yes")]
    pub keep: bool,
}

fn yes() -> bool {
    true
}

impl Default for Ack {
    fn default() -> Ack {
        Ack { keep: true }
    }
}

impl Request for Start {
    const BEHAVIOR: &'static str = ALLOCATION_START;
    type Response = AllocationStatus;
}

impl Request for StatusRequest {
    const BEHAVIOR: &'static str = ALLOCATION_STATUS;
    type Response = AllocationStatus;
}

impl Request for LogsRequest {
    const BEHAVIOR: &'static str = ALLOCATION_LOGS;
    type Response = Logs;
}

impl Request for Shutdown {
    const BEHAVIOR: &'static str = ALLOCATION_SHUTDOWN;
    type Response = AllocationStatus;
}

impl Request for Update {
    const BEHAVIOR: &'static str = UPDATE;
    type Response = Ack;
}
