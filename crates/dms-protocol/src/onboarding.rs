//! CLI → node: the machine's resources (`dms onboard`, `dms offboard`, `dms hardware`,
//! `dms benchmark`), and the provider's accounts those answers carry.
//!
//! | Request | Behavior | Answer |
//! |---|---|---|
//! | [`Onboard`] | `/dms/node/onboarding/onboard` | [`OnboardingStatus`] |
//! | [`Offboard`] | `/dms/node/onboarding/offboard` | [`Offboarded`] |
//! | [`GetOnboarding`] | `/dms/node/onboarding/status` | [`OnboardingStatus`] |
//! | [`OnboardedResources`] | `/dms/node/resources/onboarded` | what is offered |
//! | [`FreeResources`] | `/dms/node/resources/free` | what is free |
//! | [`AllocatedResources`] | `/dms/node/resources/allocated` | what runs |
//! | [`HardwareSpec`] | `/dms/node/hardware/spec` | CPU, RAM, disks, GPUs |
//! | [`HardwareUsage`] | `/dms/node/hardware/usage` | live usage |
//! | [`Benchmark`] | `/dms/node/hardware/benchmark` | the report run (or recorded) |

use std::collections::BTreeMap;

use dms_hardware::{BenchmarkReport, Hardware, Usage};
use dms_types::capability::Machine;
use dms_types::resources::Resources;
use serde::{Deserialize, Serialize};

use crate::Request;

/// What is onboarded, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onboarding {
    /// The resources offered.
    pub resources: Resources,
    /// Unix seconds of the last change.
    pub since: u64,
}

/// Resources promised to a deployment until `expires_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// Who holds it (a deployment or bid id).
    pub id: String,
    /// What it holds.
    pub resources: Resources,
    /// Unix milliseconds after which it is void.
    pub expires_ms: u64,
}

/// A snapshot of a provider's accounts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    /// Offered resources (`None` when not onboarded).
    pub onboarded: Option<Onboarding>,
    /// Sum of live reservations.
    pub committed: Resources,
    /// Sum of running allocations.
    pub allocated: Resources,
    /// Onboarded minus committed minus allocated.
    pub free: Resources,
    /// Live reservations.
    pub reservations: Vec<Reservation>,
    /// Running allocations by id.
    pub allocations: BTreeMap<String, Resources>,
}

/// A size or CPU amount given as a string ("8GiB", "500m") or a number.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Amount {
    /// Human units.
    Text(String),
    /// A plain number (cores, or bytes).
    Number(f64),
}

impl Amount {
    /// As text for the unit parsers.
    pub fn text(&self) -> String {
        match self {
            Amount::Text(t) => t.clone(),
            Amount::Number(n) => n.to_string(),
        }
    }
}

/// Offer resources (answer: [`OnboardingStatus`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Onboard {
    /// Cores, e.g. `4` or `500m`.
    pub cpu: Amount,
    /// RAM, e.g. `8GiB`.
    pub ram: Amount,
    /// Disk, e.g. `50GiB`.
    pub disk: Amount,
    /// GPU indices.
    #[serde(default)]
    pub gpus: Vec<u32>,
}

impl Request for Onboard {
    const BEHAVIOR: &'static str = "/dms/node/onboarding/onboard";
    type Response = OnboardingStatus;
}

/// Withdraw the offer (answer: [`Offboarded`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Offboard {}

impl Request for Offboard {
    const BEHAVIOR: &'static str = "/dms/node/onboarding/offboard";
    type Response = Offboarded;
}

/// The offer is withdrawn.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Offboarded {
    /// Always true.
    pub offboarded: bool,
}

/// The accounts, benchmarks and peer round trips (answer: [`OnboardingStatus`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct GetOnboarding {}

impl Request for GetOnboarding {
    const BEHAVIOR: &'static str = "/dms/node/onboarding/status";
    type Response = OnboardingStatus;
}

/// What a machine offers and how it is used.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OnboardingStatus {
    /// The accounts.
    #[serde(flatten)]
    pub accounts: Accounts,
    /// The latest benchmark report.
    #[serde(default)]
    pub benchmark: Option<BenchmarkReport>,
    /// Whether a benchmark runs now.
    #[serde(default)]
    pub benchmark_running: bool,
    /// Round trips to connected peers.
    #[serde(default)]
    pub peer_rtt_ms: Vec<PeerRtt>,
    /// The capability advertised to orchestrators, when onboarded.
    #[serde(default)]
    pub capability: Option<Machine>,
}

/// A round trip to a peer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PeerRtt {
    /// The peer id.
    pub peer_id: String,
    /// Milliseconds.
    pub rtt_ms: u64,
}

/// What is offered (answer: resources).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OnboardedResources {}

impl Request for OnboardedResources {
    const BEHAVIOR: &'static str = "/dms/node/resources/onboarded";
    type Response = Resources;
}

/// What is free (answer: resources).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FreeResources {}

impl Request for FreeResources {
    const BEHAVIOR: &'static str = "/dms/node/resources/free";
    type Response = Resources;
}

/// What runs (answer: resources).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AllocatedResources {}

impl Request for AllocatedResources {
    const BEHAVIOR: &'static str = "/dms/node/resources/allocated";
    type Response = Resources;
}

/// The machine's hardware (answer: [`Hardware`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HardwareSpec {}

impl Request for HardwareSpec {
    const BEHAVIOR: &'static str = "/dms/node/hardware/spec";
    type Response = Hardware;
}

/// The machine's usage now (answer: [`Usage`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HardwareUsage {}

impl Request for HardwareUsage {
    const BEHAVIOR: &'static str = "/dms/node/hardware/usage";
    type Response = Usage;
}

/// Run the benchmarks on the node, or record a report run elsewhere (answer: the
/// report).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Benchmark {
    /// A report to record instead of running.
    #[serde(default)]
    pub report: Option<BenchmarkReport>,
}

impl Request for Benchmark {
    const BEHAVIOR: &'static str = "/dms/node/hardware/benchmark";
    type Response = BenchmarkReport;
}
