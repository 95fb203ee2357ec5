//! GPUs: NVIDIA through NVML (loaded at run time), AMD and Intel from `/sys/class/drm`.
//!
//! NVML failing to start is normal on machines without an NVIDIA driver: it gives a note,
//! not an error. NVIDIA cards that sysfs shows while NVML is unavailable are named in a note
//! but not listed, as nothing could use them without the driver.

use std::fs;
use std::path::{Path, PathBuf};

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use serde::{Deserialize, Serialize};

pub use dms_types::resources::GpuVendor;

/// Where the kernel lists DRM devices.
pub(crate) const DRM_ROOT: &str = "/sys/class/drm";

const PCI_NVIDIA: u16 = 0x10de;
const PCI_AMD: u16 = 0x1002;
const PCI_INTEL: u16 = 0x8086;

/// One GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpu {
    /// Unique on this machine: NVIDIA GPUs first, numbered as NVML numbers them (the number
    /// `docker --gpus device=N` and `nvidia-smi` use), then AMD and Intel GPUs after them in
    /// DRM card order.
    pub index: u32,
    /// The DRM card number (`/dev/dri/cardN`) of AMD and Intel GPUs.
    pub drm_card: Option<u32>,
    /// Who made it: `Nvidia` (through NVML), `Amd` or `Intel` (through sysfs).
    pub vendor: GpuVendor,
    /// Product name, e.g. `NVIDIA H100 80GB HBM3`; for AMD/Intel without a `product_name` in sysfs, the PCI device id.
    pub name: String,
    /// Stable identifier (`GPU-…`), NVIDIA only.
    pub uuid: Option<String>,
    /// PCI address, e.g. `0000:3b:00.0`, where known.
    pub pci_bus_id: Option<String>,
    /// Dedicated memory in bytes; `None` for integrated GPUs and where not exposed.
    pub memory_total_bytes: Option<u64>,
    /// Kernel driver, e.g. `nvidia`, `amdgpu`, `i915`, `xe`.
    pub driver: Option<String>,
    /// Driver version, NVIDIA only (from NVML).
    pub driver_version: Option<String>,
    /// The CUDA version the driver supports (`12.4`), NVIDIA only (from NVML).
    #[serde(default)]
    pub cuda_version: Option<String>,
}

impl Gpu {
    /// This GPU as a dms resource.
    pub fn to_resource(&self) -> dms_types::resources::Gpu {
        dms_types::resources::Gpu {
            index: self.index,
            vendor: self.vendor,
            model: self.name.clone(),
            vram_bytes: self.memory_total_bytes.unwrap_or(0),
            uuid: self.uuid.clone(),
            drm_card: self.drm_card,
        }
    }
}

/// Starts NVML, or says in a note why it could not.
pub(crate) fn init_nvml() -> Result<Nvml, String> {
    Nvml::init().map_err(|error| match error {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => {
            "NVML not available (libnvidia-ml.so not found): no NVIDIA driver, so no NVIDIA GPUs \
             reported"
                .to_owned()
        }
        NvmlError::DriverNotLoaded => {
            "NVIDIA driver not loaded: no NVIDIA GPUs reported".to_owned()
        }
        other => format!("NVML failed to start ({other}): no NVIDIA GPUs reported"),
    })
}

/// Lists all GPUs, adding notes for what could not be learned.
pub(crate) fn detect(notes: &mut Vec<String>) -> Vec<Gpu> {
    let cards = drm_cards(Path::new(DRM_ROOT));
    let (mut gpus, nvidia_count) = match init_nvml() {
        Ok(nvml) => nvidia(&nvml, notes),
        Err(note) => {
            let unseen = cards.iter().filter(|c| c.vendor_id == PCI_NVIDIA).count();
            if unseen > 0 {
                notes.push(format!(
                    "{note}; sysfs shows {unseen} NVIDIA card(s): install the driver"
                ));
            } else {
                notes.push(note);
            }
            (Vec::new(), 0)
        }
    };
    gpus.extend(sysfs_gpus(&cards, nvidia_count).into_iter().map(|(_, gpu)| gpu));
    gpus
}

/// NVIDIA GPUs from a running NVML, and how many NVML counts (indices of GPUs that failed
/// to open are skipped, not reused).
fn nvidia(nvml: &Nvml, notes: &mut Vec<String>) -> (Vec<Gpu>, u32) {
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(error) => {
            notes.push(format!("NVML could not count GPUs ({error}): no NVIDIA GPUs reported"));
            return (Vec::new(), 0);
        }
    };
    let driver_version = nvml.sys_driver_version().ok();
    // NVML says e.g. 12040 for CUDA 12.4.
    let cuda_version =
        nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
    let mut gpus = Vec::new();
    for index in 0..count {
        let device = match nvml.device_by_index(index) {
            Ok(device) => device,
            Err(error) => {
                notes.push(format!("NVIDIA GPU {index} skipped: {error}"));
                continue;
            }
        };
        gpus.push(Gpu {
            index,
            drm_card: None,
            vendor: GpuVendor::Nvidia,
            name: device.name().unwrap_or_else(|_| "NVIDIA GPU".to_owned()),
            uuid: device.uuid().ok(),
            pci_bus_id: device.pci_info().ok().map(|p| p.bus_id.to_lowercase()),
            memory_total_bytes: device.memory_info().ok().map(|m| m.total),
            driver: Some("nvidia".to_owned()),
            driver_version: driver_version.clone(),
            cuda_version: cuda_version.clone(),
        });
    }
    (gpus, count)
}

/// The AMD and Intel GPUs among `cards`, indexed from `first_index` on, with their cards.
pub(crate) fn sysfs_gpus(cards: &[Card], first_index: u32) -> Vec<(&Card, Gpu)> {
    cards
        .iter()
        .filter_map(|card| Some((card, card.vendor()?)))
        .zip(first_index..)
        .map(|((card, vendor), index)| (card, card.to_gpu(vendor, index)))
        .collect()
}

/// A DRM card as sysfs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Card {
    pub(crate) number: u32,
    pub(crate) vendor_id: u16,
    pub(crate) device_id: Option<u16>,
    pub(crate) product_name: Option<String>,
    pub(crate) vram_total: Option<u64>,
    pub(crate) pci_bus_id: Option<String>,
    pub(crate) driver: Option<String>,
    /// `…/cardN/device`, for live usage.
    pub(crate) device_dir: PathBuf,
}

impl Card {
    /// The vendor, for the vendors detected through sysfs (not NVIDIA).
    fn vendor(&self) -> Option<GpuVendor> {
        match self.vendor_id {
            PCI_AMD => Some(GpuVendor::Amd),
            PCI_INTEL => Some(GpuVendor::Intel),
            _ => None,
        }
    }

    fn to_gpu(&self, vendor: GpuVendor, index: u32) -> Gpu {
        let maker = if vendor == GpuVendor::Amd { "AMD" } else { "Intel" };
        let name = self.product_name.clone().unwrap_or_else(|| match self.device_id {
            Some(id) => format!("{maker} GPU {id:#06x}"),
            None => format!("{maker} GPU"),
        });
        Gpu {
            index,
            drm_card: Some(self.number),
            vendor,
            name,
            uuid: None,
            pci_bus_id: self.pci_bus_id.clone(),
            memory_total_bytes: self.vram_total.filter(|b| *b > 0),
            driver: self.driver.clone(),
            driver_version: None,
            cuda_version: None,
        }
    }
}

/// Reads a trimmed, non-empty sysfs attribute.
pub(crate) fn read_attr(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// Parses `0x1002`-style hex.
fn hex_u16(text: &str) -> Option<u16> {
    u16::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()
}

/// Base name of the symlink at `path`.
fn link_name(path: &Path) -> Option<String> {
    Some(fs::read_link(path).ok()?.file_name()?.to_string_lossy().into_owned())
}

/// The `cardN` entries under `root` (connectors like `card0-DP-1` and render nodes skipped),
/// sorted by number. A missing root gives none.
pub(crate) fn drm_cards(root: &Path) -> Vec<Card> {
    let Ok(entries) = fs::read_dir(root) else { return Vec::new() };
    let mut cards: Vec<Card> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let number: u32 = name.to_str()?.strip_prefix("card")?.parse().ok()?;
            let device_dir = entry.path().join("device");
            let vendor_id = hex_u16(&read_attr(&device_dir.join("vendor"))?)?;
            Some(Card {
                number,
                vendor_id,
                device_id: read_attr(&device_dir.join("device")).and_then(|d| hex_u16(&d)),
                product_name: read_attr(&device_dir.join("product_name")),
                vram_total: read_attr(&device_dir.join("mem_info_vram_total"))
                    .and_then(|v| v.parse().ok()),
                pci_bus_id: link_name(&device_dir),
                driver: link_name(&device_dir.join("driver")),
                device_dir,
            })
        })
        .collect();
    cards.sort_by_key(|c| c.number);
    cards
}

#[cfg(test)]
mod tests;
