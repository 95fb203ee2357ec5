//! What to run: [`Spec`], the backend-neutral description of one execution.
//!
//! The fields common to every backend (arguments, environment, mounts, limits) live on
//! [`Spec`]; what only one backend understands lives in its [`Workload`] variant (`Vm`:
//! kernel, ramdisk, disk image, kernel arguments, guest memory).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Label holding the allocation id on everything an executor creates.
pub const LABEL_ALLOCATION: &str = "dms.allocation";
/// Label holding the deployment id on everything an executor creates.
pub const LABEL_DEPLOYMENT: &str = "dms.deployment";
/// Label holding the executor scope (which dms node owns it) on everything an executor
/// creates; re-attachment and orphan cleanup only look inside their own scope.
pub const LABEL_SCOPE: &str = "dms.executor";

/// One execution to start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The allocation this execution belongs to (label `dms.allocation`).
    pub allocation: String,
    /// The deployment the allocation belongs to (label `dms.deployment`).
    pub deployment: String,
    /// What to run and the backend-specific settings.
    pub workload: Workload,
    /// Arguments: the container command, or the module's `argv[1..]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the container (Docker only).
    #[serde(default)]
    pub working_dir: Option<String>,
    /// Host directories made visible inside: bind mounts, or WASI preopened directories.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Published ports (Docker only).
    #[serde(default)]
    pub ports: Vec<PortBinding>,
    /// Host device files given to the container at the same path (AMD and Intel GPUs:
    /// `/dev/dri/cardN`, its render node, `/dev/kfd`), Docker only.
    #[serde(default)]
    pub devices: Vec<PathBuf>,
    /// Resource limits, enforced by the backend.
    #[serde(default)]
    pub resources: Resources,
    /// Run privileged (Docker only). Refused unless the provider allows it.
    #[serde(default)]
    pub privileged: bool,
    /// Extra labels (Docker). The `dms.*` labels are set by the executor and cannot be
    /// overridden here.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The deployment network to join (Docker): names in `/etc/hosts` and an interface
    /// given before the workload starts. Not serialized: it holds a callback.
    #[serde(skip)]
    pub network: Option<Network>,
}

/// Label marking the container that holds an execution's network namespace.
pub const LABEL_ROLE: &str = "dms.role";

/// Called with the PID of a process inside an execution's network namespace, before the
/// workload starts, to give the namespace its interface; says why it could not.
pub type Attach =
    Arc<dyn Fn(u32) -> futures::future::BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A deployment network an execution joins.
#[derive(Clone)]
pub struct Network {
    /// Host names and their addresses, written to the execution's `/etc/hosts`.
    pub hosts: Vec<(String, IpAddr)>,
    /// Gives the namespace its interface.
    pub attach: Attach,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl PartialEq for Network {
    /// Networks are equal when their hosts are (callbacks cannot be compared).
    fn eq(&self, other: &Network) -> bool {
        self.hosts == other.hosts
    }
}

impl Spec {
    /// A spec with only the required fields; everything else empty.
    pub fn new(
        allocation: impl Into<String>,
        deployment: impl Into<String>,
        workload: Workload,
    ) -> Spec {
        Spec {
            allocation: allocation.into(),
            deployment: deployment.into(),
            workload,
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            mounts: Vec::new(),
            ports: Vec::new(),
            devices: Vec::new(),
            resources: Resources::default(),
            privileged: false,
            labels: BTreeMap::new(),
            network: None,
        }
    }
}

/// The backend-specific part of a [`Spec`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Workload {
    /// A container image run by the Docker engine.
    Docker {
        /// Image reference, e.g. `busybox:1.36`.
        image: String,
        /// Overrides the image's entrypoint.
        #[serde(default)]
        entrypoint: Option<Vec<String>>,
        /// When to pull the image.
        #[serde(default)]
        pull: PullPolicy,
    },
    /// A WASI (preview 1) module run in-process by wasmtime.
    Wasm {
        /// Where the module comes from.
        module: ModuleSource,
        /// CPU time the module may use before it is stopped.
        #[serde(default, with = "dms_types::units::serde_duration_option")]
        cpu_time: Option<Duration>,
        /// Fuel (roughly, WebAssembly instructions) the module may use before it is stopped:
        /// a deterministic budget, unlike `cpu_time`.
        #[serde(default)]
        fuel: Option<u64>,
    },
    /// A micro virtual machine booted by Firecracker or QEMU's `microvm` machine
    /// ([`crate::vm::Executor`]). `Spec::env` reaches the guest's init as its environment
    /// and `Spec::args` as its arguments (both through the kernel command line).
    Vm {
        /// The kernel (a bzImage for QEMU; an uncompressed `vmlinux` for Firecracker).
        kernel: VmImage,
        /// An initial ramdisk; with no `rootfs`, the guest runs from it alone.
        #[serde(default)]
        initrd: Option<VmImage>,
        /// A raw disk image given as the guest's `/dev/vda`, its root file system unless
        /// `kernel_args` names another `root=`.
        #[serde(default)]
        rootfs: Option<VmImage>,
        /// Extra kernel command line, after what the executor needs.
        #[serde(default)]
        kernel_args: Option<String>,
        /// Guest memory; by default the memory limit less the hypervisor's own overhead.
        /// Guest memory plus that overhead must fit the limit.
        #[serde(default)]
        memory_bytes: Option<u64>,
    },
}

/// A kernel, ramdisk or disk image of a virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmImage {
    /// Where it comes from: a host file, the bytes themselves or an `http(s)://` URL
    /// (downloaded into the executor's cache, kept by checksum).
    pub source: ModuleSource,
    /// Its SHA-256 (hex). Checked when given; a cached copy with this checksum is used
    /// without downloading again.
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Workload {
    /// The backend this workload needs.
    pub fn kind(&self) -> crate::Kind {
        match self {
            Workload::Docker { .. } => crate::Kind::Docker,
            Workload::Wasm { .. } => crate::Kind::Wasm,
            Workload::Vm { .. } => crate::Kind::Vm,
        }
    }
}

/// When the Docker executor pulls an image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PullPolicy {
    /// Pull only when the image is not present locally (the default).
    #[default]
    IfMissing,
    /// Never pull: fail when the image is not present locally.
    Never,
    /// Always pull before starting.
    Always,
}

/// Where a WebAssembly module (both binary `.wasm` and text `.wat` are accepted) or a VM
/// image comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleSource {
    /// A file on the host.
    File(PathBuf),
    /// The module itself.
    Bytes(Vec<u8>),
    /// An `http://` URL to download from (size-limited).
    Url(String),
}

/// A host directory visible inside the execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Directory on the host.
    pub source: PathBuf,
    /// Path inside the container, or the guest path of the WASI preopen.
    pub target: String,
    /// Mount read-only.
    #[serde(default)]
    pub read_only: bool,
    /// A memory-backed tmpfs of this many bytes instead of `source` (Docker; the wasm
    /// executor preopens `source`).
    #[serde(default)]
    pub tmpfs: Option<u64>,
}

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP (the default).
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A published port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    /// Port inside the container.
    pub container_port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Host address to bind; `None` binds all addresses.
    #[serde(default)]
    pub host_ip: Option<IpAddr>,
    /// Host port; `None` lets the engine choose a free one.
    #[serde(default)]
    pub host_port: Option<u16>,
}

/// Resource limits. `None` means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores (fractions allowed), enforced as a CFS quota per 100 ms period (Docker).
    #[serde(default)]
    pub cpu_cores: Option<f64>,
    /// Memory in bytes: the container's cgroup limit (swap disabled), or the most linear
    /// memory a WebAssembly module may have.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    /// Most processes/threads in the container (Docker).
    #[serde(default)]
    pub pids: Option<u64>,
    /// GPUs to pass through (Docker, NVIDIA).
    #[serde(default)]
    pub gpus: Option<GpuRequest>,
}

/// GPUs requested for a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpuRequest {
    /// Every GPU of the host.
    All,
    /// This many GPUs, chosen by the runtime.
    Count(u32),
    /// These devices (indices or UUIDs).
    Devices(Vec<String>),
}
