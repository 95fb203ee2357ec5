//! Host checks behind `dms doctor`: can this machine run the executors?
//!
//! Each [`Check`] reads the real system (the Docker socket and version, cgroup mounts and
//! controllers, `/dev/kvm`, the hypervisor of VM allocations, `/dev/net/tun`, NVIDIA devices and toolkit, free disk) and, when it
//! does not pass, says what to do. Optional features (KVM, TUN, GPUs) warn or are skipped
//! rather than fail.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Works.
    Ok,
    /// Works partly, or an optional feature is missing.
    Warn,
    /// A required feature is missing: some executor cannot run.
    Fail,
    /// Not applicable on this host (e.g. no GPU).
    Skip,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. `docker`.
    pub name: &'static str,
    /// Outcome.
    pub status: Status,
    /// What was found.
    pub summary: String,
    /// What to do, when the status is not `ok`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn new(
        name: &'static str,
        status: Status,
        summary: impl Into<String>,
        fix: Option<String>,
    ) -> Check {
        Check { name, status, summary: summary.into(), fix }
    }
}

/// What to check.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Docker socket.
    pub docker_socket: String,
    /// Directories whose free space matters (dms home, Docker's data root is added).
    pub data_dirs: Vec<PathBuf>,
    /// The node's VM settings (`[vm]`: hypervisor, QEMU's and Firecracker's programs);
    /// `None` when VM allocations are off.
    pub vm: Option<(crate::vm::Choice, Option<PathBuf>, Option<PathBuf>)>,
}

/// Free space under which the disk check warns.
pub const DISK_WARN_BYTES: u64 = 10 << 30;
/// Free space under which the disk check fails.
pub const DISK_FAIL_BYTES: u64 = 2 << 30;

/// Runs every check.
pub async fn run(options: &Options) -> Vec<Check> {
    let (docker, docker_root) = docker(&options.docker_socket).await;
    let mut dirs = options.data_dirs.clone();
    dirs.push(docker_root.unwrap_or_else(|| PathBuf::from("/var/lib/docker")));
    let mut checks = vec![docker];
    checks.push(cgroups(Path::new("/sys/fs/cgroup"), Path::new("/proc/cgroups")));
    checks.push(kvm(Path::new("/dev/kvm"), Path::new("/sys/module"), Path::new("/proc/cpuinfo")));
    checks.push(vm(options.vm.as_ref()).await);
    checks.push(tun(Path::new("/dev/net/tun")));
    checks.push(nvidia(Path::new("/proc/driver/nvidia/gpus"), Path::new("/dev/nvidia0")));
    checks.push(disk(&dirs));
    checks
}

/// Which hypervisor the VM executor would use, with what acceleration.
async fn vm(settings: Option<&(crate::vm::Choice, Option<PathBuf>, Option<PathBuf>)>) -> Check {
    use crate::vm::{Accel, backend};
    let Some((choice, qemu, firecracker)) = settings else {
        return Check::new("vm", Status::Skip, "VM allocations are off (vm.enabled = false)", None);
    };
    match backend::detect(*choice, qemu.as_deref(), firecracker.as_deref()).await {
        Ok(found) if found.accel == Accel::Kvm => Check::new(
            "vm",
            Status::Ok,
            format!("{} at {}", found.describe(), found.binary.display()),
            None,
        ),
        Ok(found) => Check::new(
            "vm",
            Status::Warn,
            format!(
                "{} at {}: {}; VMs boot and run several times slower",
                found.describe(),
                found.binary.display(),
                found.no_kvm.as_deref().unwrap_or("no KVM")
            ),
            Some("run on a host whose KVM works (see the kvm check) for full speed".into()),
        ),
        Err(why) => Check::new(
            "vm",
            Status::Warn,
            format!("no hypervisor: {why}"),
            Some("apt-get install qemu-system-x86 (or put firecracker on PATH) to run VM allocations".into()),
        ),
    }
}

async fn docker(socket: &str) -> (Check, Option<PathBuf>) {
    let path = socket.trim_start_matches("unix://");
    let fail = |summary: String, fix: String| {
        (Check::new("docker", Status::Fail, summary, Some(fix)), None)
    };
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(
                format!("no Docker socket at {path}"),
                format!(
                    "install Docker (apt-get install docker.io) and {}",
                    crate::docker::START_HINT
                ),
            );
        }
        Err(e) => {
            return fail(format!("cannot access {path}: {e}"), crate::docker::START_HINT.into());
        }
        Ok(_) => {}
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        let fix = if e.kind() == std::io::ErrorKind::PermissionDenied {
            "run dms as root or add its user to the docker group (usermod -aG docker USER)"
                .to_owned()
        } else {
            crate::docker::START_HINT.to_owned()
        };
        return fail(format!("cannot connect to {path}: {e}"), fix);
    }
    let config =
        crate::docker::Config { socket: path.to_owned(), ..crate::docker::Config::default() };
    let executor = match crate::docker::Executor::connect(config).await {
        Ok(executor) => executor,
        Err(e) => return fail(e.to_string(), crate::docker::START_HINT.into()),
    };
    let client = executor.client();
    let version = match client.version().await {
        Ok(v) => v,
        Err(e) => {
            return fail(
                format!("engine at {path} did not report its version: {e}"),
                crate::docker::START_HINT.into(),
            );
        }
    };
    let root = client.info().await.ok().and_then(|i| i.docker_root_dir).map(PathBuf::from);
    let summary = format!(
        "Docker Engine {} (API {}) at {path}",
        version.version.as_deref().unwrap_or("?"),
        version.api_version.as_deref().unwrap_or("?"),
    );
    (Check::new("docker", Status::Ok, summary, None), root)
}

/// Controllers the Docker executor needs for its limits.
const NEEDED_CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];

fn cgroups(root: &Path, proc_cgroups: &Path) -> Check {
    let name = "cgroups";
    if let Ok(controllers) = std::fs::read_to_string(root.join("cgroup.controllers")) {
        let have: Vec<&str> = controllers.split_whitespace().collect();
        return controllers_check(name, "v2 (unified)", &have);
    }
    let Ok(table) = std::fs::read_to_string(proc_cgroups) else {
        return Check::new(
            name,
            Status::Fail,
            format!("no cgroup filesystem at {}", root.display()),
            Some("mount cgroups (a systemd host does this at boot); containers cannot be limited without them".into()),
        );
    };
    // Columns: subsys_name hierarchy num_cgroups enabled.
    let have: Vec<&str> = table
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.len() == 4 && cols[3] == "1").then(|| cols[0])
        })
        .collect();
    let layout = if root.join("unified").is_dir() { "v1 (hybrid, with a v2 mount)" } else { "v1" };
    controllers_check(name, layout, &have)
}

fn controllers_check(name: &'static str, layout: &str, have: &[&str]) -> Check {
    let missing: Vec<&str> =
        NEEDED_CONTROLLERS.iter().copied().filter(|c| !have.contains(c)).collect();
    let shown: Vec<&str> = have
        .iter()
        .copied()
        .filter(|c| NEEDED_CONTROLLERS.contains(c) || *c == "cpuset" || *c == "io" || *c == "blkio")
        .collect();
    if missing.is_empty() {
        Check::new(
            name,
            Status::Ok,
            format!("cgroup {layout}; controllers {}", shown.join(" ")),
            None,
        )
    } else {
        Check::new(
            name,
            Status::Fail,
            format!("cgroup {layout}; missing controllers: {}", missing.join(" ")),
            Some(format!(
                "enable them on the kernel command line (e.g. cgroup_enable=memory swapaccount=1) and reboot; \
                 without {} the Docker executor cannot enforce limits",
                missing.join("/")
            )),
        )
    }
}

fn open_rw(path: &Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().read(true).write(true).open(path)
}

fn kvm(path: &Path, modules: &Path, cpuinfo: &Path) -> Check {
    match open_rw(path) {
        Ok(_) => {
            let flags = std::fs::read_to_string(cpuinfo).unwrap_or_default();
            let hardware = flags
                .lines()
                .filter(|l| l.starts_with("flags"))
                .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
            if modules.join("kvm_pvm").exists() {
                Check::new(
                    "kvm",
                    Status::Warn,
                    format!(
                        "{} opens, but it is PVM (kvm_pvm: paravirtualized, nested KVM without \
                         hardware virtualization): stock guest kernels may hang",
                        path.display()
                    ),
                    Some("run VM executors on a host with hardware virtualization (vmx/svm), or use software emulation (QEMU TCG)".into()),
                )
            } else if !hardware {
                Check::new(
                    "kvm",
                    Status::Warn,
                    format!("{} opens, but the CPU shows no vmx/svm flag (nested or emulated KVM)", path.display()),
                    Some("enable nested virtualization on the outer hypervisor for full-speed VMs".into()),
                )
            } else {
                Check::new("kvm", Status::Ok, format!("{} opens read-write; hardware virtualization present", path.display()), None)
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Check::new(
            "kvm",
            Status::Warn,
            format!("no {}: VM executors fall back to software emulation", path.display()),
            Some("enable virtualization in the firmware and load the module (modprobe kvm_intel or kvm_amd)".into()),
        ),
        Err(e) => Check::new(
            "kvm",
            Status::Warn,
            format!("cannot open {}: {e}", path.display()),
            Some("run dms as root or add its user to the kvm group (usermod -aG kvm USER)".into()),
        ),
    }
}

fn tun(path: &Path) -> Check {
    match open_rw(path).map(|_| dms_subnet::tun::probe()) {
        Ok(Ok(())) => Check::new(
            "tun",
            Status::Ok,
            format!("{} opens read-write; allocations can be given interfaces", path.display()),
            None,
        ),
        Ok(Err(why)) => Check::new(
            "tun",
            Status::Warn,
            format!("{why}; this node refuses subnet deployments (reason `subnet`)"),
            Some("run dms as root (it needs CAP_NET_ADMIN and CAP_SYS_ADMIN)".into()),
        ),
        Err(e) => Check::new(
            "tun",
            Status::Warn,
            format!("cannot open {}: {e}; subnets (IP over libp2p) will not work", path.display()),
            Some("load the module (modprobe tun) and run dms as root or with CAP_NET_ADMIN".into()),
        ),
    }
}

/// Binaries installed by the NVIDIA container toolkit.
const TOOLKIT_BINARIES: [&str; 3] =
    ["nvidia-container-cli", "nvidia-ctk", "nvidia-container-runtime-hook"];

fn nvidia(gpus_dir: &Path, device: &Path) -> Check {
    let gpus = std::fs::read_dir(gpus_dir).map(|d| d.count()).unwrap_or(0);
    if gpus == 0 && !device.exists() {
        return Check::new("nvidia", Status::Skip, "no NVIDIA GPU on this host", None);
    }
    match TOOLKIT_BINARIES.iter().find_map(|b| which(b)) {
        Some(found) => Check::new(
            "nvidia",
            Status::Ok,
            format!("{gpus} NVIDIA GPU(s); container toolkit at {}", found.display()),
            None,
        ),
        None => Check::new(
            "nvidia",
            Status::Fail,
            format!("{gpus} NVIDIA GPU(s) but no NVIDIA container toolkit: containers cannot use them"),
            Some("install nvidia-container-toolkit, run `nvidia-ctk runtime configure --runtime=docker`, restart dockerd".into()),
        ),
    }
}

fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(binary)).find(|p| p.is_file())
}

fn disk(dirs: &[PathBuf]) -> Check {
    let mut worst: Option<(u64, PathBuf)> = None;
    let mut seen = Vec::new();
    for dir in dirs {
        // The directory may not exist yet (first run): measure its nearest existing ancestor.
        let Some(existing) = dir.ancestors().find(|p| p.exists()) else { continue };
        let Ok(stat) = rustix::fs::statvfs(existing) else { continue };
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        seen.push(format!("{} {}", dir.display(), human(free)));
        if worst.as_ref().is_none_or(|(w, _)| free < *w) {
            worst = Some((free, dir.clone()));
        }
    }
    let Some((free, dir)) = worst else {
        return Check::new("disk", Status::Warn, "could not measure free disk space", None);
    };
    let summary = format!("free: {}", seen.join(", "));
    let fix = || {
        Some(format!(
            "free space on the filesystem of {} (docker system prune removes unused images)",
            dir.display()
        ))
    };
    if free < DISK_FAIL_BYTES {
        Check::new("disk", Status::Fail, summary, fix())
    } else if free < DISK_WARN_BYTES {
        Check::new("disk", Status::Warn, summary, fix())
    } else {
        Check::new("disk", Status::Ok, summary, None)
    }
}

fn human(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_and_v1_layouts() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n")
            .expect("write");
        let check = cgroups(dir.path(), Path::new("/nonexistent"));
        assert_eq!(check.status, Status::Ok, "{check:?}");
        assert!(check.summary.contains("v2"));

        let v1 = tempfile::tempdir().expect("tempdir");
        let table = v1.path().join("cgroups");
        std::fs::write(&table, "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t2\t1\t1\nmemory\t3\t1\t0\npids\t4\t1\t1\n")
            .expect("write");
        let check = cgroups(v1.path(), &table);
        assert_eq!(check.status, Status::Fail);
        assert!(check.summary.contains("memory") && check.fix.is_some());
    }

    #[test]
    fn kvm_without_hardware_virtualization_warns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let device = dir.path().join("kvm");
        std::fs::write(&device, "").expect("stand-in device");
        let cpuinfo = dir.path().join("cpuinfo");
        std::fs::write(&cpuinfo, "flags\t\t: fpu vme vmx sse\n").expect("write");
        assert_eq!(kvm(&device, dir.path(), &cpuinfo).status, Status::Ok);
        std::fs::create_dir(dir.path().join("kvm_pvm")).expect("module dir");
        let check = kvm(&device, dir.path(), &cpuinfo);
        assert_eq!(check.status, Status::Warn);
        assert!(check.summary.contains("PVM") && check.fix.is_some());
        std::fs::remove_dir(dir.path().join("kvm_pvm")).expect("rm");
        std::fs::write(&cpuinfo, "flags\t\t: fpu vme sse hypervisor\n").expect("write");
        assert_eq!(kvm(&device, dir.path(), &cpuinfo).status, Status::Warn);
    }

    #[test]
    fn missing_devices_warn_or_skip() {
        let none = Path::new("/nonexistent");
        assert_eq!(kvm(Path::new("/nonexistent/kvm"), none, none).status, Status::Warn);
        assert_eq!(tun(Path::new("/nonexistent/tun")).status, Status::Warn);
        assert_eq!(
            nvidia(Path::new("/nonexistent/gpus"), Path::new("/nonexistent/nvidia0")).status,
            Status::Skip
        );
        let disk = disk(&[std::env::temp_dir()]);
        assert_ne!(disk.status, Status::Skip);
        assert!(disk.summary.contains("GiB"));
    }
}
