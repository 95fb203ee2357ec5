//! What executors report: ids, states, exit statuses, log lines, exec output, statistics.

use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::error::Result;

/// Capacity of the bounded channel behind every [`LogStream`]: a slow reader makes the
/// producer wait (Docker) or skip lines it reports as lost (in-process backends).
pub const LOG_CHANNEL_CAPACITY: usize = 256;

/// Identifies one execution on its executor: the container id for Docker, a generated id for
/// WebAssembly. Opaque to callers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ExecutionId(pub String);

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ExecutionId {
    fn from(id: &str) -> Self {
        ExecutionId(id.to_owned())
    }
}

/// The kind of backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Kind {
    /// Docker Engine containers.
    Docker,
    /// In-process WASI WebAssembly.
    Wasm,
    /// Micro virtual machines (Firecracker or QEMU `microvm`).
    Vm,
    /// The fake executor for tests.
    Fake,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Docker => "docker",
            Kind::Wasm => "wasm",
            Kind::Vm => "vm",
            Kind::Fake => "fake",
        })
    }
}

/// Where an execution is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum State {
    /// Created but not yet running (module compiling, container created).
    Created,
    /// Running.
    Running,
    /// Finished.
    Exited(ExitStatus),
}

impl State {
    /// Whether the execution has finished.
    pub fn is_exited(&self) -> bool {
        matches!(self, State::Exited(_))
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code: the process's or module's; 137 for a container killed by SIGKILL; -1 where
    /// the workload never produced one (trap, limit, load failure).
    pub code: i64,
    /// Why it ended.
    pub reason: ExitReason,
}

impl ExitStatus {
    /// Whether it exited on its own with code 0.
    pub fn success(&self) -> bool {
        self.code == 0 && self.reason == ExitReason::Exited
    }
}

/// Why an execution ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ExitReason {
    /// It exited on its own.
    Exited,
    /// It exited after the graceful stop signal.
    Stopped,
    /// It ignored the graceful stop and was killed after the timeout.
    Killed,
    /// The kernel's OOM killer ended it for exceeding the memory limit.
    OomKilled,
    /// It tried to grow memory past the limit (WebAssembly).
    MemoryLimit,
    /// It used up its CPU time (WebAssembly).
    CpuTimeLimit,
    /// It used up its fuel (WebAssembly).
    FuelExhausted,
    /// It trapped (WebAssembly), with the trap message.
    Trap(String),
    /// It could not run or the backend lost it, with the reason.
    Failed(String),
}

/// One execution as an executor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionInfo {
    /// Its id.
    pub id: ExecutionId,
    /// The backend.
    pub kind: Kind,
    /// Allocation id (label `dms.allocation`).
    pub allocation: String,
    /// Deployment id (label `dms.deployment`).
    pub deployment: String,
    /// Current state.
    pub state: State,
    /// Where the workload can be reached from this host (a container's address on its
    /// network), for health probes; `None` when it has none of its own.
    pub address: Option<std::net::IpAddr>,
    /// Its ports published on this host (Docker), as the engine bound them.
    pub published: Vec<Published>,
    /// A process inside its deployment-network namespace (its sandbox), when it joined
    /// one: after a restart of dms the interface is given again through it.
    pub network_pid: Option<u32>,
}

/// A port of the workload published on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// The port inside the workload.
    pub port: u16,
    /// Its protocol.
    pub protocol: crate::spec::Protocol,
    /// The host port bound to it.
    pub host_port: u16,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of output (without its newline).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Which stream.
    pub stream: OutputStream,
    /// The text, lossily decoded as UTF-8.
    pub text: String,
}

/// What [`crate::Executor::logs`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new lines until the execution exits.
    pub follow: bool,
    /// Only the last `n` lines already produced; `None` for all that are kept.
    pub tail: Option<usize>,
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { follow: false, tail: None, stdout: true, stderr: true }
    }
}

impl LogOptions {
    /// Both streams, following.
    pub fn follow() -> LogOptions {
        LogOptions { follow: true, ..LogOptions::default() }
    }

    pub(crate) fn wants(&self, stream: OutputStream) -> bool {
        match stream {
            OutputStream::Stdout => self.stdout,
            OutputStream::Stderr => self.stderr,
        }
    }
}

/// A stream of log lines over a bounded channel. Ends when the execution's output ends (with
/// `follow`) or when the lines already kept have been read (without). Dropping it stops the
/// producer.
#[derive(Debug)]
pub struct LogStream {
    rx: mpsc::Receiver<Result<LogLine>>,
}

impl LogStream {
    /// A stream and the sender that feeds it.
    pub(crate) fn channel() -> (mpsc::Sender<Result<LogLine>>, LogStream) {
        let (tx, rx) = mpsc::channel(LOG_CHANNEL_CAPACITY);
        (tx, LogStream { rx })
    }

    /// The next line, or `None` at the end. Cancel-safe.
    pub async fn next(&mut self) -> Option<Result<LogLine>> {
        self.rx.recv().await
    }

    /// Whether no line is waiting now (a reader may write what it has).
    pub fn is_idle(&self) -> bool {
        self.rx.is_empty()
    }

    /// Reads to the end and returns every line.
    pub async fn collect(mut self) -> Result<Vec<LogLine>> {
        let mut lines = Vec::new();
        while let Some(line) = self.next().await {
            lines.push(line?);
        }
        Ok(lines)
    }
}

/// Result of running a command inside an execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// The command's exit code.
    pub exit_code: i64,
    /// Its standard output (at most [`EXEC_OUTPUT_LIMIT`] bytes kept).
    pub stdout: String,
    /// Its standard error (at most [`EXEC_OUTPUT_LIMIT`] bytes kept).
    pub stderr: String,
    /// Whether output beyond the limit was dropped.
    pub truncated: bool,
}

/// Most bytes of each stream kept in an [`ExecOutput`].
pub const EXEC_OUTPUT_LIMIT: usize = 1 << 20;

/// A resource usage sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// CPU use since the previous sample, in percent of one core (200.0 = two cores busy).
    pub cpu_percent: Option<f64>,
    /// Total CPU time used, in nanoseconds, where known.
    pub cpu_time_ns: Option<u64>,
    /// Memory in use, in bytes.
    pub memory_bytes: u64,
    /// Memory limit in bytes, where set.
    pub memory_limit_bytes: Option<u64>,
    /// Bytes received over the network.
    pub net_rx_bytes: u64,
    /// Bytes sent over the network.
    pub net_tx_bytes: u64,
    /// Processes/threads, where known.
    pub pids: Option<u64>,
}

/// What [`crate::Executor::reattach`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovery {
    /// Executions of known allocations, now managed by this executor again.
    pub reattached: Vec<ExecutionInfo>,
    /// Executions of unknown allocations (orphans), stopped and removed.
    pub removed: Vec<ExecutionInfo>,
}
