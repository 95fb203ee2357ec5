//! Machine resources: CPU, memory, disk and whole GPUs, their arithmetic, and human units.
//!
//! One [`Resources`] value says how much a machine has free, how much a job asks for, or
//! how much an allocation holds. Reserving is `free.checked_sub(&claim)`, releasing is
//! `free.checked_add(&claim)`; both refuse (`None`) rather than go negative, overflow or
//! count one GPU twice.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

#[cfg(test)]
mod tests;

pub use crate::units::{format_bytes, format_cpu, parse_bytes, parse_cpu};

/// An amount of compute resources.
///
/// GPUs are whole devices: they are matched by [`Gpu::index`], which is unique within one
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Resources {
    /// CPU in millicores (1000 = one core).
    pub cpu_millicores: u64,
    /// Memory in bytes.
    pub ram_bytes: u64,
    /// Disk in bytes.
    pub disk_bytes: u64,
    /// Whole GPUs, each with a distinct index.
    pub gpus: Vec<Gpu>,
}

/// One GPU device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// The device index on its machine (as NVML or the driver numbers it).
    pub index: u32,
    /// Who made it.
    pub vendor: GpuVendor,
    /// The model name as the driver reports it (`NVIDIA GeForce RTX 4090`).
    pub model: String,
    /// Video memory in bytes.
    pub vram_bytes: u64,
    /// The driver's stable device id, when it has one (`GPU-5c4f…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The DRM card number (`/dev/dri/cardN`) of AMD and Intel GPUs, through which a
    /// container is given the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drm_card: Option<u32>,
}

/// A GPU maker. Serialized in lowercase (`"nvidia"`); parsed in any case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuVendor {
    /// NVIDIA (CUDA).
    Nvidia,
    /// AMD (ROCm).
    Amd,
    /// Intel.
    Intel,
    /// Any other maker.
    Other,
}

impl Resources {
    /// The GPU with this index, if present.
    pub fn gpu(&self, index: u32) -> Option<&Gpu> {
        self.gpus.iter().find(|gpu| gpu.index == index)
    }

    /// `self + other`: GPUs of `other` are appended after those of `self`.
    ///
    /// `None` when an amount overflows or when both hold a GPU with the same index (adding
    /// a device twice).
    pub fn checked_add(&self, other: &Resources) -> Option<Resources> {
        if other.gpus.iter().any(|gpu| self.gpu(gpu.index).is_some()) {
            return None;
        }
        Some(Resources {
            cpu_millicores: self.cpu_millicores.checked_add(other.cpu_millicores)?,
            ram_bytes: self.ram_bytes.checked_add(other.ram_bytes)?,
            disk_bytes: self.disk_bytes.checked_add(other.disk_bytes)?,
            gpus: self.gpus.iter().chain(&other.gpus).cloned().collect(),
        })
    }

    /// `self - other`: GPUs of `other` are removed by index; the rest keep their order.
    ///
    /// `None` when an amount of `other` is larger than that of `self`, or when a GPU of
    /// `other` is absent from `self`.
    pub fn checked_sub(&self, other: &Resources) -> Option<Resources> {
        if other.gpus.iter().any(|gpu| self.gpu(gpu.index).is_none()) {
            return None;
        }
        Some(Resources {
            cpu_millicores: self.cpu_millicores.checked_sub(other.cpu_millicores)?,
            ram_bytes: self.ram_bytes.checked_sub(other.ram_bytes)?,
            disk_bytes: self.disk_bytes.checked_sub(other.disk_bytes)?,
            gpus: self.gpus_without(other),
        })
    }

    /// `self - other`, with amounts stopping at zero and absent GPUs ignored.
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millicores: self.cpu_millicores.saturating_sub(other.cpu_millicores),
            ram_bytes: self.ram_bytes.saturating_sub(other.ram_bytes),
            disk_bytes: self.disk_bytes.saturating_sub(other.disk_bytes),
            gpus: self.gpus_without(other),
        }
    }

    /// Whether `self` can be taken out of `available`: every amount is at most the available
    /// one and every GPU (by index) is available. The same as
    /// `available.checked_sub(self).is_some()`.
    pub fn fits_in(&self, available: &Resources) -> bool {
        self.cpu_millicores <= available.cpu_millicores
            && self.ram_bytes <= available.ram_bytes
            && self.disk_bytes <= available.disk_bytes
            && self.gpus.iter().all(|gpu| available.gpu(gpu.index).is_some())
    }

    /// The GPUs of `self` whose index is not in `other`.
    fn gpus_without(&self, other: &Resources) -> Vec<Gpu> {
        self.gpus.iter().filter(|gpu| other.gpu(gpu.index).is_none()).cloned().collect()
    }
}

/// `2.5 CPU, 8.0 GiB RAM, 100.0 GiB disk, 1 GPU`.
impl fmt::Display for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} CPU, {} RAM, {} disk",
            format_cpu(self.cpu_millicores),
            format_bytes(self.ram_bytes),
            format_bytes(self.disk_bytes)
        )?;
        match self.gpus.len() {
            0 => Ok(()),
            1 => write!(f, ", 1 GPU"),
            n => write!(f, ", {n} GPUs"),
        }
    }
}

/// `NVIDIA`, `AMD`, `Intel`, `other`: the way people write them.
impl fmt::Display for GpuVendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GpuVendor::Nvidia => "NVIDIA",
            GpuVendor::Amd => "AMD",
            GpuVendor::Intel => "Intel",
            GpuVendor::Other => "other",
        })
    }
}

/// `nvidia`, `amd`, `intel` or `other`, in any case.
impl FromStr for GpuVendor {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        [GpuVendor::Nvidia, GpuVendor::Amd, GpuVendor::Intel, GpuVendor::Other]
            .into_iter()
            .find(|vendor| vendor.to_string().eq_ignore_ascii_case(input.trim()))
            .ok_or_else(|| Error::UnknownGpuVendor { input: input.to_owned() })
    }
}
