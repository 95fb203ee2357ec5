//! [`detect()`]: what the machine has, in one serializable [`Hardware`] value.

use dms_types::resources::Resources;
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, RefreshKind, System};

use crate::{Cpu, Disk, Gpu, cpu, disk, gpu};

/// What this machine has. Gathered by [`detect()`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// The processor(s).
    pub cpu: Cpu,
    /// Main memory.
    pub memory: Memory,
    /// Mounted real filesystems, sorted by mount point.
    pub disks: Vec<Disk>,
    /// GPUs: NVIDIA first (NVML order), then AMD and Intel by card number.
    pub gpus: Vec<Gpu>,
    /// What could not be detected and why, e.g. that NVML is not available. For people.
    pub notes: Vec<String>,
}

/// Main memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    /// Physical RAM in bytes.
    pub total_bytes: u64,
    /// Swap in bytes.
    pub swap_total_bytes: u64,
    /// The memory limit of this process's cgroup (containers), where one is set (Linux).
    pub cgroup_limit_bytes: Option<u64>,
}

impl Hardware {
    /// What this machine offers, as dms [`Resources`]: every logical thread, all RAM (the
    /// cgroup limit where lower), the free space of all disks together, and every GPU (its
    /// memory 0 where unknown, as for integrated GPUs).
    pub fn capacity(&self) -> Resources {
        let threads = u64::try_from(self.cpu.logical_threads).unwrap_or(u64::MAX);
        Resources {
            cpu_millicores: threads.saturating_mul(1000),
            ram_bytes: self.memory.cgroup_limit_bytes.unwrap_or(self.memory.total_bytes),
            disk_bytes: self.disks.iter().map(|d| d.available_bytes).fold(0, u64::saturating_add),
            gpus: self.gpus.iter().map(Gpu::to_resource).collect(),
        }
    }
}

/// Detects CPU, memory, disks and GPUs. Blocking, with no sampling pause (tens of
/// milliseconds without NVIDIA GPUs; NVML start-up adds its own time where present).
pub fn detect() -> Hardware {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_frequency())
            .with_memory(MemoryRefreshKind::everything()),
    );
    let mut notes = Vec::new();
    let memory = Memory {
        total_bytes: sys.total_memory(),
        swap_total_bytes: sys.total_swap(),
        cgroup_limit_bytes: sys
            .cgroup_limits()
            .map(|c| c.total_memory)
            .filter(|limit| *limit > 0 && *limit < sys.total_memory()),
    };
    let disks = disk::detect(&Disks::new_with_refreshed_list());
    if disks.is_empty() {
        notes.push("no disks with a real filesystem found".to_owned());
    }
    let gpus = gpu::detect(&mut notes);
    Hardware { cpu: cpu::detect(&sys), memory, disks, gpus, notes }
}

impl Hardware {
    /// What the machine says about itself for ensembles' node `attributes`: `os`,
    /// `arch`, `cpu.vendor`, `cpu.flag.<flag>` = `true` for each CPU feature flag, and
    /// for the first GPU `gpu.vendor`, `gpu.model`, `gpu.driver` and `gpu.cuda`.
    pub fn attributes(&self) -> std::collections::BTreeMap<String, String> {
        let mut out = std::collections::BTreeMap::new();
        out.insert("os".to_string(), std::env::consts::OS.to_string());
        out.insert("arch".to_string(), std::env::consts::ARCH.to_string());
        if self.cpu.vendor != "unknown" {
            out.insert("cpu.vendor".to_string(), self.cpu.vendor.clone());
        }
        for flag in &self.cpu.flags {
            out.insert(format!("cpu.flag.{flag}"), "true".to_string());
        }
        if let Some(gpu) = self.gpus.first() {
            out.insert("gpu.vendor".to_string(), format!("{:?}", gpu.vendor).to_lowercase());
            out.insert("gpu.model".to_string(), gpu.name.clone());
            if let Some(driver) = &gpu.driver_version {
                out.insert("gpu.driver".to_string(), driver.clone());
            }
            if let Some(cuda) = &gpu.cuda_version {
                out.insert("gpu.cuda".to_string(), cuda.clone());
            }
        }
        out
    }
}
