//! Parts of an allocation: resources, ports, volumes, health checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, Duration, Frequency};

/// What an allocation needs from the machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Processor.
    pub cpu: Cpu,
    /// Memory, e.g. `512MiB`.
    pub ram: ByteSize,
    /// Disk space, e.g. `10GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<ByteSize>,
    /// GPUs, one entry per kind of GPU.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<Gpu>,
}

/// Processor requirements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    /// Cores; fractions allowed (`0.5`); at most 4096 (no machine offers more).
    #[schemars(range(min = 0.001, max = 4096))]
    pub cores: f64,
    /// Lowest clock speed, e.g. `2.5GHz`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<Frequency>,
    /// Required architecture, e.g. `amd64`, `arm64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
}

/// A kind of GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gpu {
    /// How many of this kind (default 1; at most 64).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    #[schemars(range(min = 1, max = 64))]
    pub count: u32,
    /// Vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<GpuVendor>,
    /// Model name, matched as a substring (`A100`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Lowest memory per GPU, e.g. `16GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram: Option<ByteSize>,
}

fn one() -> u32 {
    1
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// GPU vendors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpuVendor {
    /// NVIDIA.
    Nvidia,
    /// AMD.
    Amd,
    /// Intel.
    Intel,
}

/// A port the workload listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// The port number inside the workload (1-65535).
    pub port: u16,
    /// Transport protocol (default tcp).
    #[serde(default, skip_serializing_if = "Protocol::is_tcp")]
    pub protocol: Protocol,
    /// A name for the port (`http`), used by health checks and port maps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Transport protocols.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// Whether this is TCP (the default, left out when writing).
    pub fn is_tcp(&self) -> bool {
        *self == Protocol::Tcp
    }

    /// The lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Storage mounted into a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// Kind of storage (default `volume`).
    #[serde(rename = "type", default, skip_serializing_if = "VolumeKind::is_volume")]
    pub kind: VolumeKind,
    /// `volume`: the volume's name (shared by allocations on the same node that name it);
    /// `bind`: the path on the host. Not used by `tmpfs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Absolute path inside the workload.
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// Size to reserve, e.g. `1GiB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<ByteSize>,
}

/// An object store (S3-compatible), named at the top level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Kind of store.
    #[serde(rename = "type")]
    pub kind: StoreKind,
    /// The service's URL, e.g. `http://127.0.0.1:9000`; AWS's regional endpoint when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: String,
    /// The region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Kinds of object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StoreKind {
    /// Amazon S3 or a server speaking its API (path-style addressing).
    S3,
}

/// An object or prefix copied into the workload before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// `<store>:<key>` for one object, `<store>:<prefix>/` for every object under it.
    pub from: String,
    /// The path inside the workload, within a writable volume: a file for an object,
    /// a directory (ending in `/`) for a prefix.
    pub to: String,
}

/// A file or directory of the workload published to a store when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The path inside the workload, within a volume: a file, or a directory (ending in
    /// `/`) whose files are all published.
    pub from: String,
    /// `<store>:<key>` for a file, `<store>:<prefix>/` for a directory.
    pub to: String,
}

/// `<store>:<key>`, split; `None` without a colon.
pub fn object_ref(text: &str) -> Option<(&str, &str)> {
    text.split_once(':')
}

/// Kinds of storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum VolumeKind {
    /// A named volume managed by the provider, kept for the deployment's life.
    #[default]
    Volume,
    /// A path of the provider's host (providers may refuse).
    Bind,
    /// Memory-backed scratch space.
    Tmpfs,
}

impl VolumeKind {
    /// Whether this is the default kind.
    pub fn is_volume(&self) -> bool {
        *self == VolumeKind::Volume
    }
}

/// How to tell that a workload is healthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// How to probe.
    #[serde(rename = "type")]
    pub kind: HealthCheckKind,
    /// `command`: the command run inside the workload; exit 0 means healthy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// `http` and `tcp`: the workload port to probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http`: the request path (default `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Time between probes (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time a probe may take (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Consecutive failures before the workload counts as unhealthy (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Grace period after start during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
}

/// Kinds of health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKind {
    /// Run a command inside the workload.
    Command,
    /// An HTTP GET; any 2xx or 3xx status is healthy.
    Http,
    /// A TCP connection.
    Tcp,
}
