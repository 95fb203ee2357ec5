//! Executors for dms allocations: one interface, several backends.
//!
//! An allocation runs inside an execution started by an [`Executor`]. The trait covers the
//! whole life cycle — start, wait, stop (graceful, then kill after a timeout), remove, logs
//! (tail and follow, stdout and stderr apart), exec, stats, list — and recovery after a daemon
//! restart ([`Executor::reattach`]: re-attach the executions of known allocations, remove
//! orphans). Executors know nothing of deployments or the network: the node's allocation
//! actors drive them.
//!
//! Backends:
//! - [`docker::Executor`]: containers through the Docker Engine API, with real cgroup limits
//!   (CPU quota, memory without swap, pids), GPU device requests, ports, bind mounts and
//!   `dms.*` labels for re-attachment.
//! - [`wasm::Executor`]: WASI preview 1 modules run in-process by wasmtime, with memory,
//!   CPU-time and fuel limits and captured output. Runs anywhere, no daemon.
//! - [`fake::Executor`]: scripted, in-memory, for orchestration tests.
//!
//! A VM backend adds a [`Workload`] variant and an `Executor` implementation; nothing else
//! changes. [`doctor`] checks whether a host can run the backends.
//!
//! ```no_run
//! use dms_executor::{Executor as _, Spec, Workload, PullPolicy, docker};
//! # async fn demo() -> dms_executor::Result<()> {
//! let executor = docker::Executor::connect(docker::Config::default()).await?;
//! let mut spec = Spec::new("alloc-1", "dep-1", Workload::Docker {
//!     image: "busybox:1.36".into(), entrypoint: None, pull: PullPolicy::IfMissing,
//! });
//! spec.args = vec!["echo".into(), "hello".into()];
//! spec.resources.memory_bytes = Some(64 << 20);
//! let id = executor.start(spec).await?;
//! let status = executor.wait(&id).await?;
//! assert!(status.success());
//! executor.remove(&id).await?;
//! # Ok(()) }
//! ```
//!
//! # Module map
//!
//! | module      | contents                                                                  |
//! |-------------|---------------------------------------------------------------------------|
//! | `executor`  | [`Executor`]: the trait every backend implements                          |
//! | `spec`      | [`Spec`], [`Workload`], [`Resources`], mounts, ports, the `dms.*` labels  |
//! | `execution` | [`ExecutionId`], [`State`], [`ExitStatus`], [`LogStream`], [`Stats`], …   |
//! | [`docker`]  | Docker backend (`body`: spec → create request; `ops`: logs, exec, stats)   |
//! | [`wasm`]    | WebAssembly backend (`run`: the module's thread; `capture`: WASI output)   |
//! | [`fake`]    | scripted executor and its shared "engine" ([`fake::World`])               |
//! | [`logbuf`]  | bounded output buffer with live followers, line splitting                 |
//! | [`doctor`]  | host checks: Docker, cgroups, KVM, TUN, NVIDIA toolkit, disk              |
//! | `error`     | [`Error`]                                                                 |

pub mod docker;
pub mod doctor;
mod error;
mod execution;
mod executor;
pub mod fake;
pub mod logbuf;
mod spec;
pub mod vm;
pub mod wasm;

pub use error::{Error, Result};
pub use execution::{
    EXEC_OUTPUT_LIMIT, ExecOutput, ExecutionId, ExecutionInfo, ExitReason, ExitStatus, Kind,
    LOG_CHANNEL_CAPACITY, LogLine, LogOptions, LogStream, OutputStream, Published, Recovery, State,
    Stats,
};
pub use executor::Executor;
pub use spec::{
    Attach, GpuRequest, LABEL_ALLOCATION, LABEL_DEPLOYMENT, LABEL_ROLE, LABEL_SCOPE, ModuleSource,
    Mount, Network, PortBinding, Protocol, PullPolicy, Resources, Spec, VmImage, Workload,
};
