//! Live usage: CPU load, memory, disk space and GPU load.
//!
//! CPU load is a difference between two readings, so the first sample of a [`Monitor`] waits
//! [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] (about 200 ms); later samples measure the time
//! since the previous one and wait only if it was shorter than that.

use std::path::Path;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nvml_wrapper::Nvml;
use serde::{Deserialize, Serialize};
use sysinfo::{CpuRefreshKind, Disks, MINIMUM_CPU_UPDATE_INTERVAL, RefreshKind, System};

use crate::gpu::{self, Card};
use crate::{Gpu, GpuVendor, disk};

/// A snapshot of what the machine is using. Made by [`usage()`] or [`Monitor::sample`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// When the sample was taken, unix seconds.
    pub timestamp: u64,
    /// CPU load over the sampling interval across all logical processors, 0–100.
    pub cpu_percent: f32,
    /// Physical RAM in bytes.
    pub ram_total_bytes: u64,
    /// RAM in use in bytes.
    pub ram_used_bytes: u64,
    /// RAM that can still be allocated without swapping, in bytes.
    pub ram_available_bytes: u64,
    /// Space on each real filesystem, sorted by mount point.
    pub disks: Vec<DiskUsage>,
    /// Load of each GPU whose driver reports it.
    pub gpus: Vec<GpuUsage>,
}

/// Space on one filesystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskUsage {
    /// Where it is mounted; matches [`Disk::mount_point`](crate::Disk::mount_point).
    pub mount_point: String,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Bytes in use (size minus available to this user).
    pub used_bytes: u64,
    /// Bytes this user can still write.
    pub available_bytes: u64,
}

/// Load of one GPU. Fields the driver does not report are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuUsage {
    /// Same as [`Gpu::index`](crate::Gpu::index).
    pub index: u32,
    /// Who made it.
    pub vendor: GpuVendor,
    /// NVIDIA UUID.
    pub uuid: Option<String>,
    /// Compute load in percent, 0–100.
    pub utilization_percent: Option<u32>,
    /// Memory in use in bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory in total in bytes.
    pub memory_total_bytes: Option<u64>,
}

/// Samples usage repeatedly, keeping NVML and the sysinfo state between samples.
pub struct Monitor {
    sys: System,
    disks: Disks,
    nvml: Option<Nvml>,
    last_cpu_refresh: Instant,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor").field("nvml", &self.nvml.is_some()).finish_non_exhaustive()
    }
}

impl Default for Monitor {
    fn default() -> Self {
        Self::new()
    }
}

impl Monitor {
    /// Takes the first CPU reading and starts NVML where available.
    pub fn new() -> Self {
        let sys = System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
        );
        Self {
            sys,
            disks: Disks::new(),
            nvml: gpu::init_nvml().ok(),
            last_cpu_refresh: Instant::now(),
        }
    }

    /// Takes a sample. Blocks until at least [`MINIMUM_CPU_UPDATE_INTERVAL`] has passed since
    /// the previous CPU reading; CPU load is the average since then.
    pub fn sample(&mut self) -> Usage {
        let since = self.last_cpu_refresh.elapsed();
        if since < MINIMUM_CPU_UPDATE_INTERVAL {
            std::thread::sleep(MINIMUM_CPU_UPDATE_INTERVAL - since);
        }
        self.sys.refresh_cpu_usage();
        self.last_cpu_refresh = Instant::now();
        self.sys.refresh_memory();
        self.disks.refresh(true);

        let disks = disk::real(&self.disks)
            .into_iter()
            .map(|d| DiskUsage {
                mount_point: d.mount_point().to_string_lossy().into_owned(),
                total_bytes: d.total_space(),
                used_bytes: d.total_space().saturating_sub(d.available_space()),
                available_bytes: d.available_space(),
            })
            .collect();
        let nvidia_count = self.nvml.as_ref().and_then(|n| n.device_count().ok()).unwrap_or(0);
        let mut gpus = self.nvml.as_ref().map(nvidia_usage).unwrap_or_default();
        let cards = gpu::drm_cards(Path::new(gpu::DRM_ROOT));
        gpus.extend(
            gpu::sysfs_gpus(&cards, nvidia_count)
                .iter()
                .filter_map(|(card, gpu)| sysfs_usage(card, gpu)),
        );
        Usage {
            timestamp: unix_now(),
            cpu_percent: self.sys.global_cpu_usage(),
            ram_total_bytes: self.sys.total_memory(),
            ram_used_bytes: self.sys.used_memory(),
            ram_available_bytes: self.sys.available_memory(),
            disks,
            gpus,
        }
    }
}

/// One usage sample, blocking about 200 ms to measure CPU load. Prefer a [`Monitor`] for
/// periodic sampling: it starts NVML once and does not wait between spaced-out samples.
pub fn usage() -> Usage {
    Monitor::new().sample()
}

/// Seconds since the unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn nvidia_usage(nvml: &Nvml) -> Vec<GpuUsage> {
    let count = nvml.device_count().unwrap_or(0);
    (0..count)
        .filter_map(|index| {
            let device = nvml.device_by_index(index).ok()?;
            let memory = device.memory_info().ok();
            Some(GpuUsage {
                index,
                vendor: GpuVendor::Nvidia,
                uuid: device.uuid().ok(),
                utilization_percent: device.utilization_rates().ok().map(|u| u.gpu),
                memory_used_bytes: memory.as_ref().map(|m| m.used),
                memory_total_bytes: memory.map(|m| m.total),
            })
        })
        .collect()
}

/// AMD cards report load and VRAM use in sysfs (`gpu_busy_percent`, `mem_info_vram_used`);
/// Intel cards have no such files and are left out.
fn sysfs_usage(card: &Card, gpu: &Gpu) -> Option<GpuUsage> {
    let read = |name: &str| gpu::read_attr(&card.device_dir.join(name));
    let utilization_percent = read("gpu_busy_percent").and_then(|v| v.parse().ok());
    let memory_used_bytes = read("mem_info_vram_used").and_then(|v| v.parse().ok());
    if utilization_percent.is_none() && memory_used_bytes.is_none() {
        return None;
    }
    Some(GpuUsage {
        index: gpu.index,
        vendor: gpu.vendor,
        uuid: None,
        utilization_percent,
        memory_used_bytes,
        memory_total_bytes: gpu.memory_total_bytes,
    })
}
