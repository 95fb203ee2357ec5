//! Which hypervisor runs this host's VMs, with what acceleration, and the command lines.
//!
//! [`detect`] picks Firecracker when it is on `PATH` (or configured) and `/dev/kvm` opens,
//! else QEMU's `microvm` machine: with KVM when a paused probe VM comes up with `-cpu host`
//! (a nested host whose KVM cannot set the CPU's registers fails here at once) and the
//! host is not itself a virtual machine ([`not_nested`]: nested KVM that passes the probe
//! was seen to hang every real guest; `DMS_VM_NESTED_KVM=1` overrides), with TCG
//! otherwise. Under TCG the guest kernel is told the host's TSC rate (`tsc_early_khz`,
//! from `/proc/cpuinfo`) and that the TSC is reliable: without them `microvm` hangs at boot, and with a
//! wrong rate the guest's clock runs fast or slow.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

/// Which hypervisor to use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Firecracker when installed and KVM opens, else QEMU (the default).
    #[default]
    Auto,
    /// QEMU `microvm` only.
    Qemu,
    /// Firecracker only.
    Firecracker,
}

/// The hypervisor program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hypervisor {
    /// `qemu-system-x86_64 -M microvm`.
    Qemu,
    /// Firecracker, driven through its API socket.
    Firecracker,
}

/// How guest code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// QEMU's binary translator: slower, runs anywhere.
    Tcg,
}

/// What [`detect`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backend {
    /// The hypervisor.
    pub hypervisor: Hypervisor,
    /// Its program.
    pub binary: PathBuf,
    /// The acceleration used.
    pub accel: Accel,
    /// Why KVM is not used, when it is not.
    pub no_kvm: Option<String>,
    /// The host's TSC rate in kHz, told to guests under TCG.
    pub tsc_khz: Option<u64>,
}

impl Backend {
    /// One line for `dms doctor` and bids, e.g. `qemu-microvm (tcg)`.
    pub fn describe(&self) -> String {
        let name = match self.hypervisor {
            Hypervisor::Qemu => "qemu-microvm",
            Hypervisor::Firecracker => "firecracker",
        };
        let accel = match self.accel {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        };
        format!("{name} ({accel})")
    }
}

/// How long a probe run of QEMU may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the hypervisor this host can use; says why none is usable.
pub async fn detect(
    choice: Choice,
    qemu: Option<&Path>,
    firecracker: Option<&Path>,
) -> Result<Backend, String> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Err("virtual machines run on x86_64 Linux hosts only".into());
    }
    let kvm = kvm_opens()
        .and_then(|()| not_nested(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()));
    if choice != Choice::Qemu {
        let found = firecracker.map(Path::to_path_buf).or_else(|| on_path("firecracker"));
        match (found, &kvm) {
            (Some(binary), Ok(())) if runs(&binary).await => {
                return Ok(Backend {
                    hypervisor: Hypervisor::Firecracker,
                    binary,
                    accel: Accel::Kvm,
                    no_kvm: None,
                    tsc_khz: None,
                });
            }
            (None, _) if choice == Choice::Firecracker => {
                return Err("firecracker is not on PATH (set vm.firecracker to its path)".into());
            }
            (Some(_), Err(why)) if choice == Choice::Firecracker => {
                return Err(format!("Firecracker needs KVM: {why}"));
            }
            (Some(binary), Ok(())) if choice == Choice::Firecracker => {
                return Err(format!("{} --version does not run", binary.display()));
            }
            _ => {}
        }
    }
    let binary = qemu.map(Path::to_path_buf).or_else(|| on_path("qemu-system-x86_64")).ok_or(
        "qemu-system-x86_64 is not on PATH (apt-get install qemu-system-x86, or set vm.qemu)",
    )?;
    probe(&binary, Accel::Tcg).await.map_err(|why| format!("QEMU cannot run microvm: {why}"))?;
    let no_kvm = match kvm {
        Ok(()) => probe(&binary, Accel::Kvm).await.err().map(|why| format!("KVM unusable: {why}")),
        Err(why) => Some(why),
    };
    let accel = if no_kvm.is_none() { Accel::Kvm } else { Accel::Tcg };
    let tsc_khz = (accel == Accel::Tcg).then(tsc_khz).flatten();
    Ok(Backend { hypervisor: Hypervisor::Qemu, binary, accel, no_kvm, tsc_khz })
}

/// Whether `binary --version` runs and succeeds.
async fn runs(binary: &Path) -> bool {
    let run = tokio::process::Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(tokio::time::timeout(PROBE_TIMEOUT, run).await, Ok(Ok(status)) if status.success())
}

/// Whether `/dev/kvm` opens for reading and writing.
fn kvm_opens() -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map(drop)
        .map_err(|e| format!("/dev/kvm: {e}"))
}

/// Set to `1` to use KVM on a host that is itself a virtual machine.
pub const NESTED_KVM_ENV: &str = "DMS_VM_NESTED_KVM";

/// Refuses KVM on a host that is itself a virtual machine (`hypervisor` among the CPU
/// flags of `cpuinfo`) unless [`NESTED_KVM_ENV`] is `1`: nested KVM may bring a probe VM
/// up and then hang every real guest (seen on this project's CI machines), which no
/// probe short of booting a guest can tell.
pub(crate) fn not_nested(cpuinfo: &str) -> Result<(), String> {
    let nested = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "hypervisor"));
    if nested && std::env::var(NESTED_KVM_ENV).as_deref() != Ok("1") {
        return Err(format!(
            "this host is itself a virtual machine, where KVM guests may hang; set \
             {NESTED_KVM_ENV}=1 for the daemon to use nested KVM anyway"
        ));
    }
    Ok(())
}

/// `name` in a directory of `PATH`.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Brings up a paused `microvm` with `accel` and quits it through QMP on stdin.
async fn probe(binary: &Path, accel: Accel) -> Result<(), String> {
    let (accel_arg, cpu) = match accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    let mut child = tokio::process::Command::new(binary)
        .args(["-M", "microvm", "-accel", accel_arg, "-cpu", cpu, "-m", "16"])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-S", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A QEMU that died at once closed its end: the exit status says why.
        let _ =
            stdin.write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"quit\"}\n").await;
    }
    let output = tokio::time::timeout(PROBE_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| format!("a paused probe VM did not quit within {PROBE_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let why = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("no message");
    Err(format!("{} ({})", why.trim(), output.status))
}

/// The host's TSC rate: the first `cpu MHz` of `/proc/cpuinfo` (the TSC's rate where the
/// TSC is constant, as `constant_tsc` hosts and virtual machines report it).
fn tsc_khz() -> Option<u64> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    cpu_mhz_khz(&cpuinfo)
}

/// The first `cpu MHz` line of a `/proc/cpuinfo` text, in kHz.
pub(crate) fn cpu_mhz_khz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split_once(':')?.1.trim().parse().ok()?;
    Some((mhz * 1000.0).round() as u64).filter(|k| *k > 0)
}

/// What one VM needs from its hypervisor.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The VM's directory: console, control socket, hypervisor log.
    pub dir: PathBuf,
    /// A name for the process (`dms-<id>`).
    pub name: String,
    /// The kernel on this host.
    pub kernel: PathBuf,
    /// The initial ramdisk on this host.
    pub initrd: Option<PathBuf>,
    /// The root disk image on this host.
    pub rootfs: Option<PathBuf>,
    /// Host directories shared with the guest (virtio-9p, QEMU only): tag, path, read-only.
    pub shares: Vec<(String, PathBuf, bool)>,
    /// Published ports (QEMU's user network forwards them to the guest's 10.0.2.15).
    pub forwards: Vec<Forward>,
    /// The kernel command line.
    pub cmdline: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Guest memory in MiB.
    pub memory_mib: u64,
}

/// A host port forwarded to a guest port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// TCP or UDP.
    pub protocol: crate::spec::Protocol,
    /// The host address bound (`None`: every address).
    pub host_ip: Option<std::net::IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The guest port.
    pub guest_port: u16,
}

/// The guest's address on QEMU's user network.
pub const GUEST_ADDRESS: &str = "10.0.2.15";

/// The console file of a VM directory.
pub(crate) fn console_path(dir: &Path) -> PathBuf {
    dir.join("console.log")
}

/// The control socket: QMP for QEMU, the API for Firecracker.
pub(crate) fn control_path(dir: &Path) -> PathBuf {
    dir.join("control.sock")
}

/// A path inside a QEMU option string: its commas doubled (QEMU's escape).
fn opt(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// QEMU's arguments for `plan`.
pub(crate) fn qemu_args(backend: &Backend, plan: &Plan) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
    let (accel, cpu) = match backend.accel {
        Accel::Kvm => ("kvm".to_string(), "host"),
        // A bounded translation cache keeps QEMU's own memory within the overhead.
        Accel::Tcg => (format!("tcg,tb-size={TCG_CACHE_MIB}"), "max"),
    };
    let memory = format!("{}M", plan.memory_mib);
    let vcpus = plan.vcpus.to_string();
    push(&["-name", &plan.name, "-M", "microvm", "-accel", &accel, "-cpu", cpu]);
    push(&["-smp", &vcpus, "-m", &memory, "-nodefaults", "-no-user-config"]);
    push(&["-display", "none", "-no-reboot"]);
    let console = console_path(&plan.dir);
    let chardev = format!("file,id=console,path={},append=on", opt(&console));
    push(&["-chardev", &chardev, "-serial", "chardev:console"]);
    let qmp = format!("unix:{},server=on,wait=off", opt(&control_path(&plan.dir)));
    push(&["-qmp", &qmp]);
    let kernel = plan.kernel.display().to_string();
    push(&["-kernel", &kernel, "-append", &plan.cmdline]);
    if let Some(initrd) = &plan.initrd {
        push(&["-initrd", &initrd.display().to_string()]);
    }
    if let Some(rootfs) = &plan.rootfs {
        let drive = format!("id=rootfs,file={},format=raw,if=none", opt(rootfs));
        push(&["-drive", &drive, "-device", "virtio-blk-device,drive=rootfs"]);
    }
    // A user-mode network that reaches nothing (`restrict=on`: not the host, not the
    // outside) but carries the published ports in.
    let mut netdev = "user,id=net0,restrict=on".to_string();
    for f in &plan.forwards {
        let protocol = match f.protocol {
            crate::spec::Protocol::Tcp => "tcp",
            crate::spec::Protocol::Udp => "udp",
        };
        let ip = f.host_ip.map(|ip| ip.to_string()).unwrap_or_default();
        netdev.push_str(&format!(
            ",hostfwd={protocol}:{ip}:{}-{GUEST_ADDRESS}:{}",
            f.host_port, f.guest_port
        ));
    }
    push(&["-netdev", &netdev, "-device", "virtio-net-device,netdev=net0"]);
    for (n, (tag, path, read_only)) in plan.shares.iter().enumerate() {
        let ro = if *read_only { ",readonly=on" } else { "" };
        // mapped-xattr: ownership and modes the guest sets are kept in extended
        // attributes, so a guest cannot leave a set-uid file owned by the host's root.
        let fsdev = format!("local,id=fs{n},path={},security_model=mapped-xattr{ro}", opt(path));
        let device = format!("virtio-9p-device,fsdev=fs{n},mount_tag={tag}");
        push(&["-fsdev", &fsdev, "-device", &device]);
    }
    args
}

/// Most MiB of translated code QEMU keeps under TCG.
pub(crate) const TCG_CACHE_MIB: u64 = 32;

/// Memory the hypervisor itself needs beside the guest's: the allocation's memory limit
/// must hold both.
pub fn overhead_bytes(hypervisor: Hypervisor) -> u64 {
    match hypervisor {
        // QEMU's own heap and libraries (≈ 30 MiB resident measured) plus the TCG cache.
        Hypervisor::Qemu => (48 + TCG_CACHE_MIB) << 20,
        Hypervisor::Firecracker => 16 << 20,
    }
}

/// Kernel parameters an environment variable must not be named like.
const KERNEL_PARAMETERS: &[&str] = &[
    "init",
    "rdinit",
    "root",
    "rootfstype",
    "rootflags",
    "ro",
    "rw",
    "console",
    "quiet",
    "debug",
    "loglevel",
    "panic",
    "reboot",
    "pci",
    "edd",
    "tsc",
    "tsc_early_khz",
    "nomodule",
    "mem",
    "maxcpus",
    "nosmp",
    "noapic",
    "acpi",
    "earlyprintk",
    "ip",
    "nfsroot",
];

/// The largest kernel command line x86 accepts (`COMMAND_LINE_SIZE`, less the NUL).
const MAX_CMDLINE: usize = 2047;

/// The guest kernel's command line: what the hypervisor needs, then the user's arguments,
/// then the environment (`NAME="value"`, which the kernel hands to init), then `--` and
/// the init's arguments.
pub(crate) fn cmdline(
    backend: &Backend,
    user: Option<&str>,
    rootfs: bool,
    env: &std::collections::BTreeMap<String, String>,
    args: &[String],
) -> Result<String, String> {
    let user = user.unwrap_or("").trim();
    // A guest's reboot ends the VM: QEMU is told not to reboot (triple fault), and
    // Firecracker, which has no power-off, stops on the keyboard controller's reset.
    let reboot = match backend.hypervisor {
        Hypervisor::Qemu => "reboot=t",
        Hypervisor::Firecracker => "reboot=k",
    };
    let mut parts = vec!["console=ttyS0".to_string(), reboot.into(), "panic=-1".into()];
    parts.push("pci=off".into());
    if backend.hypervisor == Hypervisor::Qemu {
        // A bzImage's real-mode stub probes the BIOS disks otherwise, and says so.
        parts.push("edd=off".into());
    }
    if let Some(khz) = backend.tsc_khz.filter(|_| backend.accel == Accel::Tcg) {
        parts.push(format!("tsc_early_khz={khz}"));
        parts.push("tsc=reliable".into());
    }
    let words: Vec<&str> = user.split_whitespace().collect();
    // Only critical kernel messages (panics, power-down) unless the user says otherwise:
    // the console is the workload's log.
    if !words.iter().any(|w| ["quiet", "debug"].contains(w) || w.starts_with("loglevel=")) {
        parts.push("loglevel=3".into());
    }
    if rootfs && !words.iter().any(|w| w.starts_with("root=")) {
        parts.push("root=/dev/vda".into());
        parts.push("rw".into());
    }
    if !user.is_empty() {
        parts.push(user.to_string());
    }
    // The kernel gives init at most 32 environment entries (HOME and TERM among them) and
    // 32 arguments; past that it panics at boot.
    if env.len() > 30 || args.len() > 31 {
        return Err(format!(
            "{} environment variables and {} arguments: the kernel passes a VM's init at most \
             30 and 31",
            env.len(),
            args.len()
        ));
    }
    for (name, value) in env {
        if KERNEL_PARAMETERS.contains(&name.as_str()) {
            return Err(format!(
                "environment variable {name}: the kernel takes `{name}=` as its own parameter; \
                 rename it (environment names of VMs are best upper case)"
            ));
        }
        let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(format!(
                "environment variable {name:?}: a VM gets its environment through the kernel \
                 command line, which takes names of letters, digits and `_` only"
            ));
        }
        if value.chars().any(|c| c == '"' || c.is_control()) {
            return Err(format!(
                "environment variable {name}: a value on the kernel command line cannot hold \
                 `\"` or control characters"
            ));
        }
        parts.push(format!("{name}=\"{value}\""));
    }
    if !args.is_empty() {
        parts.push("--".into());
        for arg in args {
            if arg.is_empty() || arg.chars().any(|c| c.is_whitespace() || c == '"') {
                return Err(format!(
                    "argument {arg:?}: a VM's init gets its arguments through the kernel \
                     command line, which splits them at spaces"
                ));
            }
            parts.push(arg.clone());
        }
    }
    let line = parts.join(" ");
    if line.len() > MAX_CMDLINE {
        return Err(format!(
            "the kernel command line would be {} bytes, more than the {MAX_CMDLINE} the kernel \
             accepts (shorten kernel_args, the environment or the arguments)",
            line.len()
        ));
    }
    Ok(line)
}

#[cfg(test)]
mod tests;
