//! Disks: mounted real filesystems, without pseudo filesystems and bind-mount duplicates.

use serde::{Deserialize, Serialize};
use sysinfo::Disks;

/// One mounted filesystem on a real device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Device name as the OS reports it, e.g. `/dev/nvme0n1p2`.
    pub device: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type, e.g. `ext4`, `xfs`, `overlay`.
    pub file_system: String,
    /// Solid-state or spinning, where the OS says.
    pub kind: DiskKind,
    /// Whether the device is removable (USB stick, SD card).
    pub removable: bool,
    /// Size in bytes.
    pub total_bytes: u64,
    /// Bytes this user can still write.
    pub available_bytes: u64,
}

/// Storage medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskKind {
    /// Solid-state drive (SATA or NVMe).
    Ssd,
    /// Spinning disk.
    Hdd,
    /// Not reported (typical for virtual disks).
    Unknown,
}

/// Filesystems that hold no user data or are memory-backed. `overlay` is kept: it is the root
/// filesystem inside containers and lives on a real disk.
const PSEUDO: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
];

/// Whether a filesystem type is a pseudo (non-storage) filesystem.
pub(crate) fn is_pseudo(file_system: &str) -> bool {
    PSEUDO.contains(&file_system)
}

/// The real disks in `disks`: pseudo filesystems and empty ones dropped, and of mounts that
/// share a device and size (bind mounts, btrfs subvolumes) only the shortest mount point kept.
pub(crate) fn real(disks: &Disks) -> Vec<&sysinfo::Disk> {
    let mut real: Vec<&sysinfo::Disk> = disks
        .list()
        .iter()
        .filter(|d| d.total_space() > 0 && !is_pseudo(&d.file_system().to_string_lossy()))
        .collect();
    real.sort_by_key(|d| d.mount_point().as_os_str().len());
    let mut kept: Vec<&sysinfo::Disk> = Vec::with_capacity(real.len());
    for disk in real {
        let duplicate =
            kept.iter().any(|k| k.name() == disk.name() && k.total_space() == disk.total_space());
        if !duplicate {
            kept.push(disk);
        }
    }
    kept.sort_by(|a, b| a.mount_point().cmp(b.mount_point()));
    kept
}

/// Lists the real disks.
pub(crate) fn detect(disks: &Disks) -> Vec<Disk> {
    real(disks)
        .into_iter()
        .map(|d| Disk {
            device: d.name().to_string_lossy().into_owned(),
            mount_point: d.mount_point().to_string_lossy().into_owned(),
            file_system: d.file_system().to_string_lossy().into_owned(),
            kind: match d.kind() {
                sysinfo::DiskKind::SSD => DiskKind::Ssd,
                sysinfo::DiskKind::HDD => DiskKind::Hdd,
                _ => DiskKind::Unknown,
            },
            removable: d.is_removable(),
            total_bytes: d.total_space(),
            available_bytes: d.available_space(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_filesystems_are_recognised_and_real_ones_kept() {
        for fs in ["tmpfs", "proc", "sysfs", "cgroup2", "devtmpfs", "squashfs"] {
            assert!(is_pseudo(fs), "{fs}");
        }
        for fs in ["ext4", "xfs", "btrfs", "overlay", "zfs", "nfs4", "vfat"] {
            assert!(!is_pseudo(fs), "{fs}");
        }
    }
}
