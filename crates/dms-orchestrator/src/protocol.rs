//! The messages between an orchestrator and providers, and the behaviors that carry them.
//!
//! Every payload is JSON. Bids and refusals travel as replies, so they are signed by the
//! provider's node key like every envelope.

use std::collections::BTreeMap;

use dms_actor::Handle;
use dms_types::capability::{Location, Machine, Requirements};
use serde::{Deserialize, Serialize};

/// Topic bid requests are broadcast on.
pub const DEPLOYMENT_TOPIC: &str = "/dms/deployment";
/// Provider root: a bid request (broadcast on [`DEPLOYMENT_TOPIC`], or direct to a pinned
/// peer). Answer: [`BidAnswer`].
pub const REQUEST: &str = "/dms/deployment/request";
/// Provider root: keep a bid's reservation for the deployment ([`Commit`]).
pub const COMMIT: &str = "/dms/deployment/commit";
/// Provider root: turn the committed reservation into allocation actors ([`Allocate`]).
pub const ALLOCATE: &str = "/dms/deployment/allocate";
/// Provider root: undo reservations, commits and allocations of a deployment ([`Revert`]).
pub const REVERT: &str = "/dms/deployment/revert";
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

/// What an orchestrator asks providers to bid on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BidRequest {
    /// The deployment id.
    pub deployment: String,
    /// The orchestrator actor.
    pub orchestrator: Handle,
    /// The machines wanted.
    pub nodes: Vec<NodeAsk>,
    /// Peer ids that must not bid (the ensemble's `exclude_peers`, peers that failed).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Names of the contracts the ensemble references.
    #[serde(default)]
    pub contracts: Vec<String>,
    /// Only say what would be bid: reserve nothing (`dms deploy --plan`).
    #[serde(default)]
    pub dry_run: bool,
    /// How long a reservation must be held, in milliseconds.
    #[serde(default)]
    pub reservation_ms: u64,
}

/// One machine wanted: an ensemble node and what its allocations need together.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeAsk {
    /// The ensemble node name.
    pub node: String,
    /// Hard and soft limits (sum of the node's allocations).
    pub requirements: Requirements,
    /// Executors every one of which is needed (`docker`, `wasm`).
    pub executors: Vec<String>,
    /// The only peer that may take this node.
    #[serde(default)]
    pub pinned: Option<String>,
    /// The machine must be in one of these places (anywhere when empty).
    #[serde(default)]
    pub accept: Vec<Location>,
    /// The machine must be in none of these places.
    #[serde(default)]
    pub reject: Vec<Location>,
}

/// A provider's answer to a [`BidRequest`]: a bid or a refusal for every node asked.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BidAnswer {
    /// The provider's peer id.
    pub peer: String,
    /// Bids, one per node it can take.
    pub bids: Vec<Bid>,
    /// Refusals, one per node it cannot take.
    pub refusals: Vec<Refusal>,
}

/// An offer to run one ensemble node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Bid {
    /// The ensemble node.
    pub node: String,
    /// The reservation held for it (empty for a dry run).
    pub reservation: String,
    /// When the reservation lapses (Unix milliseconds).
    pub expires_ms: u64,
    /// What the machine offers.
    pub machine: Machine,
    /// [`dms_types::capability::score`] of the ask on the machine, in `[0, 1]`.
    pub score: f64,
    /// Round-trip times to the provider's connected peers, in milliseconds.
    #[serde(default)]
    pub rtt_ms: BTreeMap<String, f64>,
}

/// Why a provider does not bid on a node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Refusal {
    /// The ensemble node.
    pub node: String,
    /// Every reason.
    pub reasons: Vec<Reason>,
}

/// A reason with a stable code (`insufficient_ram`, `executor`, `not_onboarded`,
/// `contract_required`, `excluded`, `pinned_elsewhere`, `reserve_failed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// Whether it may pass: resources the machine has but are in use now. The
    /// orchestrator keeps trying until its deadline while such reasons block a node,
    /// and gives up early when only lasting ones do.
    #[serde(default)]
    pub transient: bool,
    /// For programs.
    pub code: String,
    /// For people.
    pub message: String,
}

/// Keep a bid's reservation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    /// The deployment id.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The bid's reservation.
    pub reservation: String,
}

/// Create the allocation actors of one node.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Allocate {
    /// The deployment id.
    pub deployment: String,
    /// The ensemble node.
    pub node: String,
    /// The committed reservation.
    pub reservation: String,
    /// The orchestrator actor, trusted by the allocation actors and told of changes.
    pub orchestrator: Handle,
    /// The node's allocations.
    pub allocations: Vec<AllocationSpec>,
}

/// One allocation to create.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AllocationSpec {
    /// Its name in the ensemble.
    pub name: String,
    /// The ensemble's definition.
    pub allocation: dms_ensemble::model::Allocation,
    /// The WebAssembly module, base64, when the client sent it along.
    #[serde(default)]
    pub module_b64: Option<String>,
}

/// The allocation actors created, by allocation name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Allocated {
    /// Handles by allocation name.
    pub allocations: BTreeMap<String, Handle>,
}

/// Undo everything a provider holds for a deployment (or one node of it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Revert {
    /// The deployment id.
    pub deployment: String,
    /// Only this node; all when `None`.
    #[serde(default)]
    pub node: Option<String>,
}

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
    /// Whether it will not change any more.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AllocationState::Completed | AllocationState::Failed | AllocationState::Stopped
        )
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
    /// Bumped by the provider on every change: statuses can arrive out of order (an
    /// update pushed while the answer to `start` is on its way), and only a newer one
    /// counts. See [`AllocationStatus::supersedes`].
    #[serde(default)]
    pub version: u64,
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

/// An allocation changed state (provider → orchestrator).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Update {
    /// The deployment id.
    pub deployment: String,
    /// The allocation name.
    pub allocation: String,
    /// Its status now.
    pub status: AllocationStatus,
}

/// Ask an allocation for its output.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LogsRequest {
    /// Only the last lines.
    #[serde(default)]
    pub tail: Option<usize>,
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
}
