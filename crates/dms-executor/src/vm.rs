//! Micro virtual machines: Firecracker where it is installed, QEMU `microvm` elsewhere.
//!
//! [`Executor::new`] detects the hypervisor ([`backend::detect`]). A VM is a kernel, an
//! optional initramfs and an optional raw root disk ([`crate::Workload::Vm`]); its images
//! come from host files, bytes sent with the deployment or URLs ([`images`]: cached by
//! SHA-256). The executor adds what the hypervisor needs on the kernel command line
//! (console, reboot and panic behavior, the TSC rate under TCG) before the user's
//! `kernel_args`, then the environment, then `--` and the arguments of the guest's init.
//!
//! - **Limits**: vCPUs = the CPU limit rounded up; guest memory = `memory_bytes` of the
//!   workload, or the memory limit less [`backend::overhead_bytes`]; a guest whose memory
//!   and the overhead exceed the limit is refused before it starts.
//! - **Logs** are the serial console ([`console`]); the guest reports its exit code with a
//!   `dms-exit-code: N` line.
//! - **Stop**: an ACPI power-button press (QEMU) or Ctrl-Alt-Del (Firecracker), then
//!   SIGKILL after the grace period.
//! - **Restart of dms**: hypervisors run in their own process group and outlive it;
//!   [`Executor::reattach`](crate::Executor::reattach) finds them by their directory's
//!   record, re-attaches known allocations' VMs (running or ended) and kills the rest.
//! - **Network** (QEMU): a user-mode network that reaches nothing (`restrict=on`) but
//!   forwards the published ports to the guest at `10.0.2.15` (host ports chosen here
//!   when the spec leaves them out).
//! - No `exec` (there is no guest agent), GPUs, outbound network or deployment subnet yet:
//!   asked for, they are refused at start with that reason.

pub mod backend;
mod console;
pub mod firecracker;
mod images;
mod process;
mod qmp;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::info;

pub use backend::{Accel, Backend, Choice, Hypervisor};
pub use console::EXIT_MARKER;

use crate::error::{Error, Result};
use crate::execution::{
    ExecOutput, ExecutionId, ExecutionInfo, ExitReason, ExitStatus, Kind, LogOptions, LogStream,
    Recovery, State, Stats,
};
use crate::spec::{Spec, Workload};
use process::{End, Record};

/// Settings of the VM executor.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where VM directories (`vms/`) and the image cache (`images/`) live.
    pub state_dir: PathBuf,
    /// Which dms node owns the VMs: re-attachment only looks at its own.
    pub scope: String,
    /// Which hypervisor to use.
    pub choice: Choice,
    /// QEMU's program (default: `qemu-system-x86_64` on `PATH`).
    pub qemu: Option<PathBuf>,
    /// Firecracker's program (default: `firecracker` on `PATH`).
    pub firecracker: Option<PathBuf>,
    /// Largest image downloaded.
    pub max_image_bytes: u64,
}

impl Config {
    /// Defaults with VMs kept under `state_dir` for `scope`.
    pub fn new(state_dir: PathBuf, scope: impl Into<String>) -> Config {
        Config {
            state_dir,
            scope: scope.into(),
            choice: Choice::Auto,
            qemu: None,
            firecracker: None,
            max_image_bytes: 4 << 30,
        }
    }
}

/// Runs allocations as micro VMs.
pub struct Executor {
    config: Config,
    backend: Backend,
    images: images::Images,
    entries: Mutex<HashMap<ExecutionId, Arc<Entry>>>,
    /// Ids of VMs being started: not yet entries, never orphans to re-attachment.
    starting: Mutex<std::collections::HashSet<String>>,
}

/// A graceful stop was asked for (and when), or the VM was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    Asked,
    Killed,
}

/// One VM this executor manages.
struct Entry {
    record: Record,
    dir: PathBuf,
    state: Arc<watch::Sender<State>>,
    stopping: Arc<Mutex<Option<Stopping>>>,
    last_cpu: Mutex<Option<(Instant, u64)>>,
    monitor: tokio::task::AbortHandle,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.monitor.abort();
    }
}

/// How long the hypervisor may take to open its control socket.
const READY_WAIT: Duration = Duration::from_secs(10);
/// How long a killed hypervisor may take to exit.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// The longest path of a Unix socket (`sun_path` less its NUL).
const MAX_SOCKET_PATH: usize = 107;
/// Smallest guest memory accepted.
const MIN_GUEST: u64 = 32 << 20;
/// Guest memory when neither the workload nor the limit says.
const DEFAULT_GUEST: u64 = 256 << 20;

impl Executor {
    /// Detects the hypervisor; fails with the reason when none can run VMs here.
    pub async fn new(config: Config) -> Result<Executor> {
        let backend =
            backend::detect(config.choice, config.qemu.as_deref(), config.firecracker.as_deref())
                .await
                .map_err(|reason| Error::Unavailable { backend: "vm", reason })?;
        // The longest control socket path an id can give must fit a Unix socket address.
        let longest = config.state_dir.join("vms/vm-fffffffffff-99999/control.sock");
        if longest.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(Error::Unavailable {
                backend: "vm",
                reason: format!(
                    "{} is too deep for the VMs' control sockets ({} bytes; a Unix socket \
                     path has at most {MAX_SOCKET_PATH}): give dms a shorter home",
                    config.state_dir.display(),
                    longest.as_os_str().len()
                ),
            });
        }
        if let Some(why) = &backend.no_kvm {
            info!(%why, "Virtual machines run under QEMU's TCG: slower than with KVM.");
        }
        let images = images::Images::new(config.state_dir.join("images"), config.max_image_bytes);
        images.sweep();
        Ok(Executor {
            config,
            backend,
            images,
            entries: Mutex::new(HashMap::new()),
            starting: Mutex::new(Default::default()),
        })
    }

    /// The hypervisor and acceleration in use.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    fn vms_dir(&self) -> PathBuf {
        self.config.state_dir.join("vms")
    }

    fn entry(&self, id: &ExecutionId) -> Result<Arc<Entry>> {
        let entries = self.entries.lock().expect("vm entries lock");
        entries.get(id).cloned().ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Checks what the spec asks for and computes vCPUs, guest memory and its limit.
    fn sizes(&self, spec: &Spec, guest: Option<u64>) -> Result<(u32, u64, u64)> {
        let firecracker = self.backend.hypervisor == Hypervisor::Firecracker;
        let unsupported = [
            (!spec.ports.is_empty() && firecracker, "published ports under Firecracker"),
            (spec.privileged, "privileged mode"),
            (spec.resources.gpus.is_some() || !spec.devices.is_empty(), "GPUs or host devices"),
            (spec.network.is_some(), "joining a deployment subnet"),
            (spec.working_dir.is_some(), "a working directory"),
            (!spec.mounts.is_empty() && firecracker, "volumes under Firecracker"),
            (spec.mounts.iter().any(|m| m.tmpfs.is_some()), "memory-backed (tmpfs) volumes"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(asked, _)| *asked) {
            return Err(Error::InvalidSpec(format!("the vm executor does not support {what} yet")));
        }
        let overhead = backend::overhead_bytes(self.backend.hypervisor);
        let limit = spec.resources.memory_bytes;
        let guest = match (guest, limit) {
            (Some(guest), _) => guest,
            (None, Some(limit)) => limit.saturating_sub(overhead),
            (None, None) => DEFAULT_GUEST,
        };
        if let Some(limit) = limit.filter(|l| guest.saturating_add(overhead) > *l) {
            return Err(Error::InvalidSpec(format!(
                "the guest's {} MiB and the hypervisor's {} MiB do not fit the allocation's {} MiB \
                 of memory: ask for more memory, or give the guest less",
                guest >> 20,
                overhead >> 20,
                limit >> 20
            )));
        }
        if guest < MIN_GUEST {
            return Err(Error::InvalidSpec(format!(
                "a guest needs at least {} MiB of memory besides the hypervisor's {} MiB",
                MIN_GUEST >> 20,
                overhead >> 20
            )));
        }
        let vcpus = spec.resources.cpu_cores.map_or(1, |c| c.ceil().max(1.0) as u32);
        Ok((vcpus, guest, guest.saturating_add(overhead)))
    }

    /// Starts the hypervisor for `plan` and waits until it answers on its control socket.
    async fn launch(&self, plan: &backend::Plan) -> Result<tokio::process::Child> {
        let log = std::fs::File::create(plan.dir.join("hypervisor.log"))
            .map_err(|e| Error::io("cannot create the hypervisor log", e))?;
        let mut command = tokio::process::Command::new(&self.backend.binary);
        match self.backend.hypervisor {
            Hypervisor::Qemu => command.args(backend::qemu_args(&self.backend, plan)),
            Hypervisor::Firecracker => {
                // Its id: the VM directory's name (letters, digits and `-`, short).
                let id = plan.dir.file_name().map(|n| n.to_string_lossy().into_owned());
                command
                    .arg("--api-sock")
                    .arg(backend::control_path(&plan.dir))
                    .args(["--id", &id.unwrap_or_default()])
            }
        };
        let stderr = log.try_clone().map_err(|e| Error::io("hypervisor log", e))?;
        command.stdin(std::process::Stdio::null()).stdout(log).stderr(stderr);
        // Its own process group: a Ctrl-C of dms, or its exit, leaves the VM running.
        command.process_group(0).kill_on_drop(false);
        let mut child = command.spawn().map_err(|e| Error::Unavailable {
            backend: "vm",
            reason: format!("cannot start {}: {e}", self.backend.binary.display()),
        })?;
        let ready = match self.backend.hypervisor {
            Hypervisor::Qemu => wait_qmp(&plan.dir, &mut child).await,
            Hypervisor::Firecracker => {
                firecracker::send(&plan.dir, &firecracker::requests(plan)).await
            }
        };
        if let Err(why) = ready {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(KILL_WAIT, child.wait()).await;
            let log = process::hypervisor_log(&plan.dir);
            return Err(Error::Backend {
                backend: "vm",
                operation: "start the VM",
                message: if log.is_empty() { why } else { format!("{why}: {log}") },
            });
        }
        Ok(child)
    }

    /// Keeps an entry for `record` and watches its process until it ends.
    fn watch(
        &self,
        record: Record,
        dir: PathBuf,
        child: Option<tokio::process::Child>,
    ) -> Arc<Entry> {
        let running = child.is_some() || process::alive(record.pid, &dir);
        let initial = if running {
            State::Running
        } else {
            State::Exited(classify(&dir, End::Unknown, None))
        };
        let (state, _) = watch::channel(initial);
        let state = Arc::new(state);
        let stopping = Arc::new(Mutex::new(None));
        let task =
            tokio::spawn(monitor(dir.clone(), record.pid, child, state.clone(), stopping.clone()));
        let entry = Arc::new(Entry {
            record,
            dir,
            state,
            stopping,
            last_cpu: Mutex::new(None),
            monitor: task.abort_handle(),
        });
        let id = ExecutionId(entry.record.id.clone());
        self.entries.lock().expect("vm entries lock").insert(id, entry.clone());
        entry
    }

    fn info(entry: &Entry) -> ExecutionInfo {
        info_of(&entry.record, entry.state.borrow().clone())
    }
}

/// The execution `record` describes, in `state`.
fn info_of(record: &Record, state: State) -> ExecutionInfo {
    ExecutionInfo {
        id: ExecutionId(record.id.clone()),
        kind: Kind::Vm,
        allocation: record.allocation.clone(),
        deployment: record.deployment.clone(),
        state,
        address: None,
        published: record.published.clone(),
        network_pid: None,
    }
}

/// Connects to QEMU's QMP socket until it answers, or the process exits.
async fn wait_qmp(dir: &std::path::Path, child: &mut tokio::process::Child) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + READY_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("QEMU exited at once ({status})"));
        }
        if let Ok(mut qmp) = qmp::Qmp::connect(&backend::control_path(dir)).await {
            return qmp.execute("query-status").await.map(drop);
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("QEMU did not open its control socket within {READY_WAIT:?}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits for the hypervisor to end (rotating the console meanwhile), then says how the VM
/// ended.
async fn monitor(
    dir: PathBuf,
    pid: u32,
    child: Option<tokio::process::Child>,
    state: Arc<watch::Sender<State>>,
    stopping: Arc<Mutex<Option<Stopping>>>,
) {
    let console = backend::console_path(&dir);
    let end = match child {
        Some(mut child) => loop {
            tokio::select! {
                status = child.wait() => break status.map_or(End::Unknown, End::from),
                () = tokio::time::sleep(Duration::from_secs(1)) => console::rotate_if_large(&console),
            }
        },
        None => {
            tokio::select! {
                () = process::gone(pid, &dir) => End::Unknown,
                () = async { loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    console::rotate_if_large(&console);
                } } => End::Unknown,
            }
        }
    };
    let stopping = *stopping.lock().expect("stopping lock");
    let status = classify(&dir, end, stopping);
    state.send_replace(State::Exited(status));
}

/// How a VM ended, from what the stop asked, its console and its process's status.
fn classify(dir: &std::path::Path, end: End, stopping: Option<Stopping>) -> ExitStatus {
    let mut text = console::tail(&backend::console_path(dir), 64 << 10);
    if console::exit_code(&text).is_none() {
        // Rotated after the guest's last words: they are in the previous copy.
        text = console::tail(&console::rotated(&backend::console_path(dir)), 64 << 10) + &text;
    }
    let reported = console::exit_code(&text);
    match stopping {
        Some(Stopping::Killed) => return ExitStatus { code: 137, reason: ExitReason::Killed },
        Some(Stopping::Asked) => {
            return ExitStatus { code: reported.unwrap_or(0), reason: ExitReason::Stopped };
        }
        None => {}
    }
    if let Some(code) = reported {
        return ExitStatus { code, reason: ExitReason::Exited };
    }
    let failed = |why: String| ExitStatus { code: -1, reason: ExitReason::Failed(why) };
    if let Some(why) = console::panic_message(&text) {
        return failed(format!("the guest kernel panicked: {why}"));
    }
    match end {
        End::Code(0) => ExitStatus { code: 0, reason: ExitReason::Exited },
        End::Code(code) => failed(format!(
            "the hypervisor exited with status {code}: {}",
            process::hypervisor_log(dir)
        )),
        End::Signal(signal) => failed(format!("the hypervisor was killed by signal {signal}")),
        End::Unknown if text.contains("reboot: Power down") => {
            ExitStatus { code: 0, reason: ExitReason::Exited }
        }
        End::Unknown => failed(
            "the VM ended while dms was not running, without the guest reporting an exit code"
                .into(),
        ),
    }
}

/// A short execution id, unique across restarts of dms: `vm-<ms since 2020, hex>-<n>`.
/// Short because its directory holds the control socket, and a Unix socket's path has
/// at most 107 bytes.
fn new_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis()
        .saturating_sub(1_577_836_800_000);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("vm-{now:x}-{n}")
}

/// The hypervisor's name for the VM: `dms-<allocation>` in characters QEMU takes.
fn vm_name(allocation: &str) -> String {
    let safe: String = allocation
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '-' })
        .take(64)
        .collect();
    format!("dms-{safe}")
}

mod ops;
