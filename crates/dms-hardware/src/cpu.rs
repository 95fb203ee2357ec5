//! CPU detection: sysinfo for the portable facts, `/proc/cpuinfo` and cpufreq sysfs on Linux
//! for flags and frequencies.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sysinfo::System;

/// The machine's processor(s), as one description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cpu {
    /// Marketing name, e.g. `AMD EPYC 7763 64-Core Processor`; `unknown` if not reported.
    pub model: String,
    /// Vendor id, e.g. `GenuineIntel`, `AuthenticAMD`; `unknown` if not reported.
    pub vendor: String,
    /// Architecture as the kernel names it, e.g. `x86_64`, `aarch64`.
    pub architecture: String,
    /// Physical cores; the logical thread count where the OS does not say.
    pub physical_cores: usize,
    /// Logical processors (hardware threads) the OS shows, at least 1.
    pub logical_threads: usize,
    /// Base (nominal) frequency in MHz, where known.
    pub base_frequency_mhz: Option<u64>,
    /// Maximum (boost) frequency in MHz, where the OS exposes it (cpufreq); often absent in VMs.
    pub max_frequency_mhz: Option<u64>,
    /// Feature flags (`flags` on x86, `Features` on Arm), sorted; empty off Linux.
    pub flags: Vec<String>,
}

/// What `/proc/cpuinfo` says about the first processor.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CpuInfo {
    pub(crate) model: Option<String>,
    pub(crate) vendor: Option<String>,
    pub(crate) mhz: Option<f64>,
    pub(crate) flags: Vec<String>,
}

/// Parses `/proc/cpuinfo` text (x86 and Arm layouts).
pub(crate) fn parse_cpuinfo(text: &str) -> CpuInfo {
    let mut info = CpuInfo::default();
    // Every processor repeats the fields; the first occurrence of each wins.
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "model name" | "Model" | "cpu model" if info.model.is_none() && !value.is_empty() => {
                info.model = Some(value.to_owned());
            }
            "vendor_id" | "CPU implementer" if info.vendor.is_none() => {
                info.vendor = Some(arm_implementer(value).unwrap_or(value).to_owned());
            }
            "cpu MHz" if info.mhz.is_none() => info.mhz = value.parse().ok(),
            "flags" | "Features" if info.flags.is_empty() => {
                let mut flags: Vec<String> = value.split_whitespace().map(str::to_owned).collect();
                flags.sort_unstable();
                flags.dedup();
                info.flags = flags;
            }
            _ => {}
        }
    }
    info
}

/// Names the common Arm implementer codes.
fn arm_implementer(code: &str) -> Option<&'static str> {
    Some(match code {
        "0x41" => "ARM",
        "0x42" => "Broadcom",
        "0x43" => "Cavium",
        "0x46" => "Fujitsu",
        "0x48" => "HiSilicon",
        "0x4e" => "NVIDIA",
        "0x51" => "Qualcomm",
        "0x61" => "Apple",
        "0xc0" => "Ampere",
        _ => return None,
    })
}

/// Reads a cpufreq value (kHz) from `dir` as MHz.
fn cpufreq_mhz(dir: &Path, file: &str) -> Option<u64> {
    let khz: u64 = std::fs::read_to_string(dir.join(file)).ok()?.trim().parse().ok()?;
    (khz > 0).then_some(khz / 1000)
}

/// Finds `@ 2.40GHz` in a model name, as MHz.
pub(crate) fn mhz_from_model(model: &str) -> Option<u64> {
    let (_, tail) = model.rsplit_once('@')?;
    let ghz: f64 = tail.trim().strip_suffix("GHz")?.trim().parse().ok()?;
    (ghz > 0.0).then(|| (ghz * 1000.0).round() as u64)
}

/// Describes the CPU. `sys` must have had its CPU list refreshed.
pub(crate) fn detect(sys: &System) -> Cpu {
    let info = std::fs::read_to_string("/proc/cpuinfo")
        .map(|text| parse_cpuinfo(&text))
        .unwrap_or_default();
    let first = sys.cpus().first();
    let nonempty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
    let model = first
        .and_then(|c| nonempty(c.brand()))
        .or(info.model)
        .unwrap_or_else(|| "unknown".to_owned());
    let vendor = info
        .vendor
        .or_else(|| first.and_then(|c| nonempty(c.vendor_id())))
        .unwrap_or_else(|| "unknown".to_owned());
    let logical_threads = match sys.cpus().len() {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let architecture =
        nonempty(&System::cpu_arch()).unwrap_or_else(|| std::env::consts::ARCH.into());

    let cpufreq = Path::new("/sys/devices/system/cpu/cpu0/cpufreq");
    let base_frequency_mhz = cpufreq_mhz(cpufreq, "base_frequency")
        .or_else(|| mhz_from_model(&model))
        .or_else(|| info.mhz.filter(|m| *m > 0.0).map(|m| m.round() as u64))
        .or_else(|| first.map(|c| c.frequency()).filter(|f| *f > 0));
    Cpu {
        physical_cores: System::physical_core_count().filter(|n| *n > 0).unwrap_or(logical_threads),
        logical_threads,
        base_frequency_mhz,
        max_frequency_mhz: cpufreq_mhz(cpufreq, "cpuinfo_max_freq"),
        flags: info.flags,
        model,
        vendor,
        architecture,
    }
}

#[cfg(test)]
mod tests;
