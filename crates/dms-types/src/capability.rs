//! The capability model: what a job requires, what a machine offers, and how they compare.
//!
//! [`Requirements`] holds hard limits (resources, GPUs, architecture, executors, location,
//! ports) and soft ones (price per hour, total price, duration, benchmark preference).
//! [`Machine`] is what a provider offers. [`explain`] lists every limit a machine misses,
//! as a [`Mismatch`] with a stable [`MismatchCode`] and a message for people; [`score`]
//! ranks the machines that miss none.
//!
//! Limits that are not given (`None`, empty lists) admit anything. Names (architecture,
//! executors, location parts, GPU models) compare without regard to ASCII case.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resources::{Gpu, GpuVendor, Resources, format_bytes};

mod explain;
mod score;
#[cfg(test)]
mod tests;

pub use explain::explain;
pub use score::{ScoreParts, parts, score};

/// What a job needs from a machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Requirements {
    /// CPU in millicores.
    pub cpu_millicores: u64,
    /// Memory in bytes.
    pub ram_bytes: u64,
    /// Disk in bytes.
    pub disk_bytes: u64,
    /// GPUs, if any are needed.
    pub gpu: Option<GpuRequirement>,
    /// The CPU architecture (`x86_64`, `aarch64`; `amd64` and `arm64` are taken as these).
    pub architecture: Option<String>,
    /// Executors the job can run on (`docker`, `wasm`, `vm`); any one of them will do.
    pub executors: Vec<String>,
    /// Where the machine must be.
    pub location: Option<Location>,
    /// Host ports the job must be able to bind.
    pub ports: Vec<u16>,
    /// The most the job pays per hour.
    pub max_price_per_hour: Option<f64>,
    /// The most the job pays in all: checked against the machine's price times
    /// [`Requirements::max_duration_secs`].
    pub max_total_price: Option<f64>,
    /// The longest the job runs, in seconds; the machine must accept at least this long.
    pub max_duration_secs: Option<u64>,
    /// How much the job cares about each benchmark score when ranking machines.
    pub prefer_benchmark: Option<BenchmarkPreference>,
    /// Machine attributes that must be exactly these (`gpu.driver: "550.54"`).
    pub attributes: BTreeMap<String, String>,
    /// How much each part of [`score`] counts (all 1 when `None`).
    pub weights: Option<Weights>,
}

/// Weights of the parts of [`score`]: a weighted mean of fit, price and benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Weight of a tight resource fit.
    pub fit: f64,
    /// Weight of a low price.
    pub price: f64,
    /// Weight of high benchmark scores (only with a [`BenchmarkPreference`]).
    pub benchmark: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { fit: 1.0, price: 1.0, benchmark: 1.0 }
    }
}

/// GPUs a job needs: `count` devices that each match every given condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuRequirement {
    /// How many GPUs.
    pub count: u32,
    /// Their maker, if it matters.
    #[serde(default)]
    pub vendor: Option<GpuVendor>,
    /// Text the model name must contain, in any case (`4090`, `a100`).
    #[serde(default)]
    pub model: Option<String>,
    /// The least video memory of each GPU, in bytes.
    #[serde(default)]
    pub min_vram_bytes: Option<u64>,
}

/// A place, as precise as it needs to be. In a requirement, each given part must equal the
/// machine's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Location {
    /// `Europe`, `Asia`, ….
    pub continent: Option<String>,
    /// Country, as its ISO 3166 code (`DE`) by convention.
    pub country: Option<String>,
    /// City.
    pub city: Option<String>,
}

/// An inclusive range of ports, `start..=end`; one port when they are equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortRange {
    /// The first port.
    pub start: u16,
    /// The last port (inclusive).
    pub end: u16,
}

/// What a provider's machine offers a job now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Machine {
    /// Resources onboarded and not in use.
    pub free: Resources,
    /// The CPU architecture (`x86_64`, `aarch64`).
    pub architecture: String,
    /// Executors it can run (`docker`, `wasm`, `vm`).
    pub executors: Vec<String>,
    /// Where it is, if it says.
    pub location: Option<Location>,
    /// Host ports jobs may bind; `None`: ports are not restricted.
    pub free_ports: Option<Vec<PortRange>>,
    /// Its price per hour; `None`: it does not charge.
    pub price_per_hour: Option<f64>,
    /// The longest it accepts a job for, in seconds; `None`: no limit.
    pub max_duration_secs: Option<u64>,
    /// Its benchmark scores, if measured.
    pub benchmarks: Option<BenchmarkScores>,
    /// What it says about itself: configured (`deployment.attributes`) and detected
    /// (`os`, `arch`, `cpu.vendor`, `cpu.flag.<flag>`, `gpu.vendor`, `gpu.model`,
    /// `gpu.driver`, `gpu.cuda`).
    pub attributes: BTreeMap<String, String>,
}

/// Measured machine performance; higher is better in every field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchmarkScores {
    /// Single-thread CPU score.
    pub cpu_single: f64,
    /// All-threads CPU score.
    pub cpu_multi: f64,
    /// Memory bandwidth in GiB/s.
    pub memory_gib_s: f64,
    /// Sequential disk throughput in MiB/s.
    pub disk_seq_mib_s: f64,
    /// Random 4 KiB disk operations per second.
    pub disk_random_iops: f64,
}

impl BenchmarkScores {
    /// A typical machine: [`score`] rates a benchmark equal to this at one half.
    pub const REFERENCE: BenchmarkScores = BenchmarkScores {
        cpu_single: 1000.0,
        cpu_multi: 8000.0,
        memory_gib_s: 20.0,
        disk_seq_mib_s: 1000.0,
        disk_random_iops: 50_000.0,
    };
}

/// Weights of the benchmark scores in [`score`]; zero (the default) ignores a score.
/// Negative or non-finite weights count as zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BenchmarkPreference {
    /// Weight of [`BenchmarkScores::cpu_single`].
    pub cpu_single: f64,
    /// Weight of [`BenchmarkScores::cpu_multi`].
    pub cpu_multi: f64,
    /// Weight of [`BenchmarkScores::memory_gib_s`].
    pub memory: f64,
    /// Weight of [`BenchmarkScores::disk_seq_mib_s`].
    pub disk_seq: f64,
    /// Weight of [`BenchmarkScores::disk_random_iops`].
    pub disk_random: f64,
}

/// One limit a machine misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Which limit, for programs.
    pub code: MismatchCode,
    /// What was needed and what is offered, for people
    /// (`needs 16.0 GiB RAM, 6.0 GiB free`).
    pub message: String,
}

/// Which limit a [`Mismatch`] is about. Serialized in snake case (`insufficient_ram`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchCode {
    /// Not enough free CPU.
    InsufficientCpu,
    /// Not enough free memory.
    InsufficientRam,
    /// Not enough free disk.
    InsufficientDisk,
    /// Fewer free GPUs than needed, whatever their kind.
    InsufficientGpus,
    /// Enough GPUs, but too few of the needed maker.
    GpuVendor,
    /// Enough GPUs of the maker, but too few of the needed model.
    GpuModel,
    /// Enough GPUs of the maker and model, but too few with enough video memory.
    GpuVram,
    /// Another CPU architecture.
    Architecture,
    /// None of the needed executors.
    Executor,
    /// Elsewhere, or nowhere said.
    Location,
    /// A needed port is not free.
    Port,
    /// A required attribute is missing or has another value.
    Attribute,
    /// Dearer per hour than the job pays.
    Price,
    /// Dearer in all than the job pays.
    TotalPrice,
    /// Does not accept a job that long.
    Duration,
}

impl Requirements {
    /// The resources the job would hold on a machine with `free` resources: its CPU,
    /// memory and disk, and the GPUs [`GpuRequirement::select`] picks. `None` when they do
    /// not fit. Reserve them with `free.checked_sub(&claim)`.
    pub fn claim(&self, free: &Resources) -> Option<Resources> {
        let gpus = match &self.gpu {
            Some(requirement) => requirement.select(&free.gpus)?.into_iter().cloned().collect(),
            None => Vec::new(),
        };
        let claim = Resources {
            cpu_millicores: self.cpu_millicores,
            ram_bytes: self.ram_bytes,
            disk_bytes: self.disk_bytes,
            gpus,
        };
        claim.fits_in(free).then_some(claim)
    }
}

impl GpuRequirement {
    /// Whether one GPU meets the vendor, model and memory conditions.
    pub fn matches(&self, gpu: &Gpu) -> bool {
        self.vendor.is_none_or(|vendor| vendor == gpu.vendor)
            && self.model.as_deref().is_none_or(|model| contains_ignore_case(&gpu.model, model))
            && self.min_vram_bytes.is_none_or(|min| gpu.vram_bytes >= min)
    }

    /// Picks `count` matching GPUs out of `gpus`, preferring those with the least video
    /// memory (then the lowest index) so that larger ones stay free for larger jobs. `None`
    /// when fewer than `count` match.
    pub fn select<'a>(&self, gpus: &'a [Gpu]) -> Option<Vec<&'a Gpu>> {
        let mut matching: Vec<&Gpu> = gpus.iter().filter(|gpu| self.matches(gpu)).collect();
        let count = usize::try_from(self.count).ok()?;
        if matching.len() < count {
            return None;
        }
        matching.sort_by_key(|gpu| (gpu.vram_bytes, gpu.index));
        matching.truncate(count);
        Some(matching)
    }
}

/// `2 NVIDIA GPUs with at least 24.0 GiB VRAM`, `1 GPU matching "a100"`.
impl fmt::Display for GpuRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.count)?;
        if let Some(vendor) = self.vendor {
            write!(f, " {vendor}")?;
        }
        f.write_str(if self.count == 1 { " GPU" } else { " GPUs" })?;
        if let Some(model) = &self.model {
            write!(f, " matching {model:?}")?;
        }
        if let Some(min) = self.min_vram_bytes {
            write!(f, " with at least {} VRAM", format_bytes(min))?;
        }
        Ok(())
    }
}

impl Location {
    /// Whether `place` is within this location: every part given here equals `place`'s.
    pub fn includes(&self, place: &Location) -> bool {
        let part = |want: &Option<String>, have: &Option<String>| match (want, have) {
            (None, _) => true,
            (Some(want), Some(have)) => want.eq_ignore_ascii_case(have),
            (Some(_), None) => false,
        };
        part(&self.continent, &place.continent)
            && part(&self.country, &place.country)
            && part(&self.city, &place.city)
    }

    /// Whether no part is given (the location includes every place).
    pub fn is_anywhere(&self) -> bool {
        self.continent.is_none() && self.country.is_none() && self.city.is_none()
    }
}

/// The given parts, most precise first: `Berlin, DE, Europe`; `anywhere` when none is.
impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<&str> = [&self.city, &self.country, &self.continent]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if parts.is_empty() { f.write_str("anywhere") } else { f.write_str(&parts.join(", ")) }
    }
}

impl PortRange {
    /// Whether `port` is in the range.
    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

/// `8000-8100`, or `8080` for a single port.
impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl MismatchCode {
    /// The snake-case name, as serialized (`insufficient_ram`).
    pub fn as_str(self) -> &'static str {
        match self {
            MismatchCode::InsufficientCpu => "insufficient_cpu",
            MismatchCode::InsufficientRam => "insufficient_ram",
            MismatchCode::InsufficientDisk => "insufficient_disk",
            MismatchCode::InsufficientGpus => "insufficient_gpus",
            MismatchCode::GpuVendor => "gpu_vendor",
            MismatchCode::GpuModel => "gpu_model",
            MismatchCode::GpuVram => "gpu_vram",
            MismatchCode::Architecture => "architecture",
            MismatchCode::Executor => "executor",
            MismatchCode::Location => "location",
            MismatchCode::Port => "port",
            MismatchCode::Attribute => "attribute",
            MismatchCode::Price => "price",
            MismatchCode::TotalPrice => "total_price",
            MismatchCode::Duration => "duration",
        }
    }
}

impl fmt::Display for MismatchCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `haystack` contains `needle`, ignoring ASCII case.
fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
}
