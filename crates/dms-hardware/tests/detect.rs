//! Detection and usage on the machine running the tests.

use std::time::Instant;

use dms_hardware::{GpuVendor, detect, usage};

#[test]
fn detection_gives_sane_values_for_this_machine() {
    let started = Instant::now();
    let hardware = detect();
    eprintln!("detect() took {:?}", started.elapsed());

    let cpu = &hardware.cpu;
    assert!(cpu.logical_threads >= 1 && cpu.physical_cores >= 1, "{cpu:?}");
    assert!(cpu.physical_cores <= cpu.logical_threads, "{cpu:?}");
    assert!(!cpu.architecture.is_empty() && !cpu.model.is_empty(), "{cpu:?}");
    if cfg!(target_os = "linux") {
        assert!(!cpu.flags.is_empty(), "no CPU flags from /proc/cpuinfo");
    }
    assert!(hardware.memory.total_bytes > 0);

    assert!(!hardware.disks.is_empty(), "no disk detected: {hardware:?}");
    for disk in &hardware.disks {
        assert!(disk.total_bytes > 0 && disk.available_bytes <= disk.total_bytes, "{disk:?}");
        assert!(!["tmpfs", "proc", "sysfs", "devtmpfs"].contains(&disk.file_system.as_str()));
    }

    // With NVML, every NVIDIA GPU is listed; without it, none is, and a note says why.
    let nvidia = hardware.gpus.iter().filter(|g| g.vendor == GpuVendor::Nvidia).count();
    match nvml_wrapper::Nvml::init() {
        Ok(nvml) => assert_eq!(nvidia as u32, nvml.device_count().unwrap_or(0)),
        Err(_) => {
            assert_eq!(nvidia, 0);
            assert!(
                hardware.notes.iter().any(|n| n.contains("NVIDIA")),
                "no note on NVML: {:?}",
                hardware.notes
            );
        }
    }

    let capacity = hardware.capacity();
    assert_eq!(capacity.cpu_millicores, 1000 * hardware.cpu.logical_threads as u64);
    assert!(capacity.ram_bytes > 0 && capacity.ram_bytes <= hardware.memory.total_bytes);
    assert!(capacity.disk_bytes > 0);
    assert_eq!(capacity.gpus.len(), hardware.gpus.len());

    let json = serde_json::to_string(&hardware).expect("hardware serializes");
    let back: dms_hardware::Hardware = serde_json::from_str(&json).expect("and deserializes");
    assert_eq!(back, hardware);
}

#[test]
fn usage_gives_sane_values_for_this_machine() {
    let now = usage();
    assert!((0.0..=100.0).contains(&now.cpu_percent), "{now:?}");
    assert!(now.ram_total_bytes > 0 && now.ram_used_bytes <= now.ram_total_bytes, "{now:?}");
    assert!(now.ram_available_bytes <= now.ram_total_bytes, "{now:?}");
    assert!(!now.disks.is_empty());
    for disk in &now.disks {
        assert_eq!(disk.used_bytes + disk.available_bytes, disk.total_bytes, "{disk:?}");
    }
}

#[test]
fn a_monitor_samples_repeatedly() {
    let mut monitor = dms_hardware::Monitor::new();
    let first = monitor.sample();
    let second = monitor.sample();
    assert!(second.timestamp >= first.timestamp);
    assert_eq!(first.disks.len(), second.disks.len());
}
