//! The hypervisor process: its record on disk, whether it lives, its usage, its end.
//!
//! Each VM has a directory `<state_dir>/vms/<id>/` holding `vm.json` (the [`Record`]),
//! `console.log`, `control.sock` and `hypervisor.log`. The process runs in its own process
//! group and outlives dms; a re-attaching executor finds it by the record's PID, checked
//! against the process's arguments (one of which is the VM's control socket), so a reused
//! PID — or another program reading the VM's files — is not mistaken for the VM.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::backend::Hypervisor;

/// What survives a restart of dms about one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: String,
    pub allocation: String,
    pub deployment: String,
    pub scope: String,
    pub hypervisor: Hypervisor,
    pub pid: u32,
    /// Guest memory plus the hypervisor's overhead: the limit `stats` reports.
    pub memory_limit: u64,
    /// Its ports published on the host.
    #[serde(default)]
    pub published: Vec<crate::execution::Published>,
}

const RECORD: &str = "vm.json";

impl Record {
    /// Writes the record atomically into `dir`.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let tmp = dir.join(".vm.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, dir.join(RECORD))
    }

    /// Reads the record of `dir`.
    pub fn load(dir: &Path) -> Option<Record> {
        serde_json::from_slice(&std::fs::read(dir.join(RECORD)).ok()?).ok()
    }
}

/// The VM directories under `root`.
pub(crate) fn dirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else { return Vec::new() };
    entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect()
}

/// Whether `pid` is a live (not zombie) hypervisor of the VM in `dir`: one of its
/// arguments is, or starts with, the VM's control socket (`<dir>/control.sock` for
/// Firecracker, `unix:<dir>/control.sock,…` for QEMU's QMP).
pub(crate) fn alive(pid: u32, dir: &Path) -> bool {
    if pid == 0 {
        return false;
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let Ok(cmdline) = std::fs::read(proc.join("cmdline")) else { return false };
    let socket = super::backend::control_path(dir);
    let socket = socket.as_os_str().as_encoded_bytes();
    let names_dir = cmdline.split(|b| *b == 0).any(|arg| {
        let arg = arg.strip_prefix(b"unix:").unwrap_or(arg);
        arg.strip_prefix(socket).is_some_and(|rest| rest.is_empty() || rest.starts_with(b","))
    });
    let zombie = std::fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('Z')))
        .unwrap_or(true);
    names_dir && !zombie
}

/// The process whose command line names `dir`, if one lives (a VM whose PID was not
/// recorded: dms stopped between starting it and writing its record).
pub(crate) fn find(dir: &Path) -> Option<u32> {
    let entries = std::fs::read_dir("/proc").ok()?;
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| alive(*pid, dir))
}

/// Sends SIGKILL to `pid` if it is still the VM of `dir`.
pub(crate) fn kill(pid: u32, dir: &Path) {
    if !alive(pid, dir) {
        return;
    }
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Waits until `pid` is no longer the VM of `dir` (a process this one did not start).
pub(crate) async fn gone(pid: u32, dir: &Path) {
    while alive(pid, dir) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU time used (ns) and resident memory (bytes) of `pid`.
pub(crate) fn usage(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14 and stime 15 (1-based, whole line).
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((ticks * 1_000_000_000 / hz, pages * rustix::param::page_size() as u64))
}

/// How the hypervisor process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
    /// It ended while another process was its parent: no status.
    Unknown,
}

impl From<std::process::ExitStatus> for End {
    fn from(status: std::process::ExitStatus) -> End {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => End::Code(code),
            (None, Some(signal)) => End::Signal(signal),
            (None, None) => End::Unknown,
        }
    }
}

/// The last lines of the hypervisor's own log, for error messages.
pub(crate) fn hypervisor_log(dir: &Path) -> String {
    let text = super::console::tail(&dir.join("hypervisor.log"), 4096);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_process_with_the_vm_control_socket_argument_is_the_vm() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vm = dir.path().join("vm-1");
        let socket = format!("unix:{}/control.sock,server=on,wait=off", vm.display());
        // A shell that stays (two commands), with the socket among its arguments.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true", "sh", &socket])
            .spawn()
            .expect("sh");
        let pid = child.id();
        // Until the child has executed `sh`, its command line is still this test's.
        let started = std::time::Instant::now();
        while !alive(pid, &vm) && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(alive(pid, &vm), "QEMU's form of the argument");
        assert!(!alive(pid, &dir.path().join("vm-")), "a prefix of the directory is another VM");
        assert!(!alive(std::process::id(), &vm), "another process");
        assert_eq!(find(&vm), Some(pid));
        kill(pid, &vm);
        let _ = child.wait();
        assert!(!alive(pid, &vm));
        let (cpu, rss) = usage(std::process::id()).expect("usage");
        assert!(rss > 0 && cpu < 3_600_000_000_000);
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = Record {
            id: "vm-a-1".into(),
            allocation: "a".into(),
            deployment: "d".into(),
            scope: "s".into(),
            hypervisor: Hypervisor::Qemu,
            pid: 42,
            memory_limit: 1 << 30,
            published: Vec::new(),
        };
        record.save(dir.path()).expect("save");
        assert_eq!(Record::load(dir.path()), Some(record));
        assert!(!dirs(dir.path().parent().expect("parent")).is_empty());
    }
}
