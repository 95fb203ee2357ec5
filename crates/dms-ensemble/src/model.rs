//! The ensemble V1 data model: what a user asks to run, where, and under which constraints.
//!
//! The serde attributes here are the format: the JSON Schema (`docs/ensemble.schema.json`)
//! is generated from these types, and the structural validator walks that schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod placement;
mod workload;

use crate::units::{ByteSize, Duration};
pub use placement::*;
pub use workload::*;

/// A whole ensemble: named allocations (workloads), the nodes (machines) they run on, and
/// the constraints between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "dms ensemble V1")]
pub struct Ensemble {
    /// Format version; always `V1`.
    pub version: Version,
    /// Free-form labels, used to find deployments (`team: web`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// The workloads, by name. Names are DNS labels: lower-case letters, digits and `-`.
    pub allocations: BTreeMap<String, Allocation>,
    /// The machines to find, by name; every allocation is placed on exactly one node.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, Node>,
    /// Network constraints between pairs of nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edges: Vec<Edge>,
    /// How failures of allocations are handled, as a tree of supervisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<Supervisor>,
    /// The private network joining the allocations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Subnet>,
    /// Provisioning scripts, by name: a path to the script file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scripts: BTreeMap<String, String>,
    /// Keys installed into allocations, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub keys: BTreeMap<String, Key>,
    /// Object stores that `inputs` come from and `outputs` go to, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<String, Store>,
    /// Peer ids that must not run any part of this ensemble.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_peers: Vec<String>,
    /// Payment contracts this deployment is bound to, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contracts: BTreeMap<String, Contract>,
    /// Soft requirements: preferences the orchestrator honours when it can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements: Option<Requirements>,
    /// What the orchestrator does when a node cannot be recovered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

/// The format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Version {
    /// Version 1.
    V1,
}

/// One workload: a container, a WebAssembly module or a virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    /// `service` runs until stopped; `task` runs to completion.
    #[serde(rename = "type")]
    pub kind: AllocationType,
    /// What runs the workload.
    pub executor: Executor,
    /// What the workload needs.
    pub resources: Resources,
    /// Executor parameters: `image` for docker, `module` for wasm, `kernel` and `rootfs`
    /// for vm.
    pub execution: Execution,
    /// Ports the workload listens on (published through node port maps).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Storage mounted into the workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    /// Objects (or every object under a prefix) copied into a volume before the
    /// workload starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
    /// Files (or every file under a directory) of a volume published to a store when
    /// the workload ends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// How to tell that the workload is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthCheck>,
    /// Allocations that must be running before this one starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// What to do when the workload exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Host name in the ensemble's private DNS (`<name>.internal`); default: the
    /// allocation's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Names of top-level `keys` installed into the workload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Names of top-level `scripts` run before the workload starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub provision: Vec<String>,
}

/// Service or task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AllocationType {
    /// Runs until stopped; restarted by its policy.
    Service,
    /// Runs to completion.
    Task,
}

impl AllocationType {
    /// The lower-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            AllocationType::Service => "service",
            AllocationType::Task => "task",
        }
    }
}

/// The executor kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    /// A container on the provider's Docker engine.
    Docker,
    /// A WebAssembly (WASI) module, run in-process.
    Wasm,
    /// A micro virtual machine (Firecracker or QEMU/KVM).
    Vm,
}

impl Executor {
    /// The lower-case name used in files.
    pub fn name(self) -> &'static str {
        match self {
            Executor::Docker => "docker",
            Executor::Wasm => "wasm",
            Executor::Vm => "vm",
        }
    }
}

/// Executor parameters. Which ones apply depends on the executor; the validator reports
/// parameters given to the wrong executor and missing required ones.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Execution {
    /// docker: the image reference (`nginx:1.27`, `ghcr.io/org/app@sha256:…`). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// docker: replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    /// docker: replaces the image's command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// docker: working directory inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// docker: user (name or uid[:gid]) to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// wasm: path or URL of the `.wasm` module. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    /// wasm: arguments passed to the module.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// vm: the kernel image: an `http(s)://` URL, a local path (sent along when small), or
    /// an absolute path under one of the allocation's volume targets (staged by
    /// `inputs`). Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel: Option<String>,
    /// vm: path or URL of a raw root disk image (the guest's `/dev/vda`). It or `initrd`
    /// is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// vm: path or URL of an initial ramdisk; with no `rootfs`, the guest runs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initrd: Option<String>,
    /// vm: kernel command line, added after what the executor needs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_args: Option<String>,
    /// vm: the guest's memory (default: `resources.ram` less the hypervisor's overhead);
    /// with that overhead it must fit `resources.ram`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    /// vm: SHA-256 of `kernel`, `initrd` and `rootfs` (`sha256:<64 hex digits>`), checked
    /// by the provider; a provider that has the image cached does not download it again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checksums: BTreeMap<String, String>,
}

impl Allocation {
    /// The volume whose `target` holds the absolute `path` (`/boot/vmlinuz` under a volume
    /// mounted at `/boot`), and the path relative to it: a VM image named so is read from
    /// that volume on the provider (staged there by `inputs`), not sent by the client.
    pub fn in_volume<'a>(&'a self, path: &'a str) -> Option<(&'a Volume, &'a str)> {
        self.volumes.iter().find_map(|v| {
            let rest = path.strip_prefix(v.target.trim_end_matches('/'))?.strip_prefix('/')?;
            // Plain names only: no empty, `.` or `..` component can lead out of the volume.
            let plain = rest.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            plain.then_some((v, rest))
        })
    }
}

/// Memory a VM's hypervisor needs beside its guest, the most of any backend: a VM
/// allocation's `resources.ram` must hold its guest's `memory` and this.
pub const VM_OVERHEAD: ByteSize = ByteSize(80 << 20);

/// What to do when a workload exits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// When to restart.
    pub policy: Restart,
    /// Restarts allowed within `window` before giving up (default: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Wait before each restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// The window `max_attempts` counts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// When a workload is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Never.
    Never,
    /// Only after a non-zero exit.
    OnFailure,
    /// After every exit.
    Always,
}

/// Soft requirements: the orchestrator prefers bids that meet them and reports when none do.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Highest acceptable price per hour for the whole ensemble, in `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_price_per_hour: Option<f64>,
    /// Highest acceptable total spend, in `currency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<f64>,
    /// Currency or token of the prices (e.g. `USD`, `NTX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Longest the deployment may run; it is shut down after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<Duration>,
    /// How long a provider may be silent before its allocations are placed elsewhere
    /// (default: the orchestrating node's `deployment.lost_after`). Longer tolerates
    /// flaky links; shorter fails over sooner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_after: Option<Duration>,
    /// How providers that can take the deployment are ranked: weights of a tight fit,
    /// a low price and high benchmark scores (`dms deploy --plan` shows each part).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Prefer>,
}

/// Ranking preferences; every weight is 0 or more, and a weight of 0 leaves its part out.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Prefer {
    /// Weight of a tight resource fit (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub fit: Option<f64>,
    /// Weight of a low price per hour (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub price: Option<f64>,
    /// Prefer machines with higher benchmark scores (`dms benchmark`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<PreferBenchmark>,
}

/// Which benchmark scores count, and how much the benchmark part weighs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferBenchmark {
    /// Weight of the benchmark part against fit and price (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0))]
    pub weight: Option<f64>,
    /// Weight of single-thread CPU speed.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub cpu_single: f64,
    /// Weight of all-threads CPU speed.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub cpu_multi: f64,
    /// Weight of memory bandwidth.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub memory: f64,
    /// Weight of sequential disk throughput.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub disk_seq: f64,
    /// Weight of random disk operations.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub disk_random: f64,
}

/// What happens when a node is lost for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    /// Deploy the node's allocations elsewhere.
    Redeploy,
    /// Shut the whole ensemble down.
    Teardown,
}
