//! The crate's error type.
//!
//! Every fallible operation in `dms-executor` returns [`Error`]. Each variant says what the
//! caller may assume about the execution it was asked about, and its message says what to do.

use crate::execution::ExecutionId;

/// Errors returned by executors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The backend cannot be reached (Docker socket missing or refusing, engine not
    /// answering). Nothing was started or changed; retrying after the engine is up may succeed.
    #[error("{backend} is unavailable: {reason}")]
    Unavailable {
        /// The backend, e.g. `docker`.
        backend: &'static str,
        /// What went wrong and how to fix it.
        reason: String,
    },

    /// The spec cannot run on this executor (wrong workload kind, invalid limits, a feature
    /// this backend does not have). Nothing was started.
    #[error("invalid execution spec: {0}")]
    InvalidSpec(String),

    /// The provider's policy forbids what the spec asks for (privileged containers when
    /// `allow_privileged` is off). Nothing was started.
    #[error("refused by provider policy: {0}")]
    Refused(String),

    /// The operation is not supported by this backend (for example `exec` on WebAssembly).
    /// The execution is unaffected.
    #[error("{backend} executor does not support {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation asked for.
        operation: &'static str,
    },

    /// The image is not present locally and the pull policy forbids pulling, or the pull
    /// failed. Nothing was started.
    #[error("image {image} is not available: {reason}")]
    Image {
        /// The image reference.
        image: String,
        /// Why, and what to do.
        reason: String,
    },

    /// GPUs were requested but the host cannot provide them (no NVIDIA container toolkit, no
    /// device). Nothing was started.
    #[error(
        "GPU requested but unavailable: {0} (install the NVIDIA driver and nvidia-container-toolkit, then restart dockerd; `dms doctor` checks this)"
    )]
    GpuUnavailable(String),

    /// The execution's deployment network could not be joined (the interface could not be
    /// made in its namespace). Nothing was left running.
    #[error("cannot join the deployment network: {0}")]
    Network(String),

    /// The WebAssembly module could not be loaded (file unreadable, download failed, not valid
    /// `.wasm`/`.wat`, missing `_start`). Nothing ran.
    #[error("cannot load WebAssembly module {source_name}: {reason}")]
    Module {
        /// Where the module came from (path, URL or `<bytes>`).
        source_name: String,
        /// What went wrong.
        reason: String,
    },

    /// No execution with this id is managed by this executor instance (never started here,
    /// already removed, or not re-attached after a restart).
    #[error(
        "no execution {0} on this executor (was it removed, or not re-attached after a restart?)"
    )]
    NotFound(ExecutionId),

    /// The execution did not exit within the stop timeout even after being killed (a
    /// WebAssembly module blocked in a host call). It may still be running.
    #[error("execution {0} did not exit after being killed; it may still be running")]
    StopTimeout(ExecutionId),

    /// The backend returned an error for an operation. What happened to the execution depends
    /// on the operation; the message is the backend's.
    #[error("{backend} {operation} failed: {message}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// The operation, e.g. `create container`.
        operation: &'static str,
        /// The backend's message.
        message: String,
    },

    /// Local I/O failed (reading a module, preparing a directory).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Io`] with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }
}
