//! One module run on its own thread: compile, link WASI, enforce limits, classify the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};
use tracing::{debug, info};
use wasmtime::{Engine, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{DirPerms, FilePerms, I32Exit, WasiCtxBuilder};

use super::capture::Capture;
use crate::error::{Error, Result};
use crate::execution::{ExitReason, ExitStatus, OutputStream, State};
use crate::logbuf::LogBuffer;
use crate::spec::Mount;

/// What a run needs besides the engine.
pub struct Job {
    /// Module bytes (`.wasm` or `.wat`).
    pub bytes: Vec<u8>,
    /// Where they came from, for messages.
    pub source_name: String,
    /// `argv` including `argv[0]`.
    pub argv: Vec<String>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// Preopened directories.
    pub mounts: Vec<Mount>,
    /// Linear memory limit in bytes.
    pub memory_limit: Option<u64>,
    /// CPU-time limit.
    pub cpu_time: Option<Duration>,
    /// CPU share in cores (`0.1`): the module's thread is paused at epoch ticks while it
    /// is ahead of `cores × wall time`.
    pub cpu_cores: Option<f64>,
    /// Fuel limit.
    pub fuel: Option<u64>,
}

/// State shared between the run's thread and the executor.
#[derive(Debug)]
pub struct Shared {
    /// Output.
    pub logs: Arc<LogBuffer>,
    /// Life-cycle state; `Exited` is final.
    pub state: watch::Sender<State>,
    /// Set by `stop`: the module is interrupted at the next epoch tick.
    pub cancel: AtomicBool,
    /// Linear memory in bytes, updated as it grows.
    pub memory_bytes: AtomicU64,
    /// CPU time used by the run's thread, in nanoseconds, updated every tick.
    pub cpu_ns: AtomicU64,
}

/// Why the epoch callback interrupted the module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum Interrupt {
    #[error("stopped")]
    Stopped,
    #[error("CPU time limit reached")]
    CpuTime,
}

/// The module tried to grow memory past its limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes reached (asked for {desired} bytes)")]
struct MemoryLimitReached {
    limit: u64,
    desired: usize,
}

/// Per-store data: the WASI context and the memory limiter.
struct Host {
    wasi: WasiP1Ctx,
    limits: Limits,
}

struct Limits {
    memory_limit: Option<u64>,
    shared: Arc<Shared>,
    hit: bool,
}

impl ResourceLimiter for Limits {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if let Some(limit) = self.memory_limit
            && desired as u64 > limit
        {
            self.hit = true;
            return Err(MemoryLimitReached { limit, desired }.into());
        }
        self.shared.memory_bytes.store(desired as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Runs `job` on the current thread. `ready` gets the load result (compile, link, preopens)
/// before the module starts; afterwards the outcome goes to `shared.state`.
pub fn run(engine: &Engine, job: Job, shared: Arc<Shared>, ready: oneshot::Sender<Result<()>>) {
    let prepared = prepare(engine, &job, &shared);
    let (module, linker, wasi) = match prepared {
        Ok(p) => p,
        Err(e) => {
            shared.logs.close();
            let _ = ready.send(Err(e));
            return;
        }
    };
    shared.state.send_replace(State::Running);
    if ready.send(Ok(())).is_err() {
        debug!("Start was cancelled before the module ran.");
    }
    let status = execute(engine, &job, &shared, &module, &linker, wasi);
    info!(code = status.code, reason = ?status.reason, "WebAssembly module exited.");
    shared.logs.close();
    shared.state.send_replace(State::Exited(status));
}

fn prepare(
    engine: &Engine,
    job: &Job,
    shared: &Arc<Shared>,
) -> Result<(Module, Linker<Host>, WasiP1Ctx)> {
    let module_error =
        |reason: String| Error::Module { source_name: job.source_name.clone(), reason };
    let module = Module::new(engine, &job.bytes).map_err(|e| module_error(format!("{e:#}")))?;
    if !module.exports().any(|e| e.name() == "_start") {
        return Err(module_error("no `_start` export: only WASI command modules can run".into()));
    }
    let mut linker: Linker<Host> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |host: &mut Host| &mut host.wasi)
        .map_err(|e| module_error(format!("cannot link WASI: {e:#}")))?;

    let mut builder = WasiCtxBuilder::new();
    builder
        .args(job.argv.as_slice())
        .envs(job.env.as_slice())
        .stdout(Capture::new(shared.logs.clone(), OutputStream::Stdout))
        .stderr(Capture::new(shared.logs.clone(), OutputStream::Stderr));
    for mount in &job.mounts {
        let (dirs, files) = if mount.read_only {
            (DirPerms::READ, FilePerms::READ)
        } else {
            (DirPerms::all(), FilePerms::all())
        };
        builder.preopened_dir(&mount.source, &mount.target, dirs, files).map_err(|e| {
            Error::InvalidSpec(format!(
                "cannot preopen {} as {}: {e:#} (does the directory exist?)",
                mount.source.display(),
                mount.target
            ))
        })?;
    }
    Ok((module, linker, builder.build_p1()))
}

fn execute(
    engine: &Engine,
    job: &Job,
    shared: &Arc<Shared>,
    module: &Module,
    linker: &Linker<Host>,
    wasi: WasiP1Ctx,
) -> ExitStatus {
    let limits = Limits { memory_limit: job.memory_limit, shared: shared.clone(), hit: false };
    let mut store = Store::new(engine, Host { wasi, limits });
    store.limiter(|host| &mut host.limits);
    if let Err(e) = store.set_fuel(job.fuel.unwrap_or(u64::MAX)) {
        return failed(format!("cannot set fuel: {e:#}"));
    }
    let cpu_start = thread_cpu_time();
    let wall_start = Instant::now();
    let cpu_limit = job.cpu_time;
    let cpu_share = job.cpu_cores.filter(|c| c.is_finite() && *c > 0.0);
    let ticker_shared = shared.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let used = thread_cpu_time()
            .zip(cpu_start)
            .map(|(now, start)| now.saturating_sub(start))
            .unwrap_or_else(|| wall_start.elapsed());
        ticker_shared.cpu_ns.store(used.as_nanos() as u64, Ordering::Relaxed);
        if ticker_shared.cancel.load(Ordering::Relaxed) {
            return Err(Interrupt::Stopped.into());
        }
        if cpu_limit.is_some_and(|limit| used >= limit) {
            return Err(Interrupt::CpuTime.into());
        }
        if let Some(cores) = cpu_share {
            throttle(used, wall_start.elapsed(), cores, &ticker_shared.cancel);
        }
        Ok(UpdateDeadline::Continue(1))
    });

    let result = linker
        .instantiate(&mut store, module)
        .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
        .and_then(|start| start.call(&mut store, ()));
    if let Some(used) =
        thread_cpu_time().zip(cpu_start).map(|(now, start)| now.saturating_sub(start))
    {
        shared.cpu_ns.store(used.as_nanos() as u64, Ordering::Relaxed);
    }
    match result {
        Ok(()) => ExitStatus { code: 0, reason: ExitReason::Exited },
        Err(e) => classify(&e, store.data().limits.hit),
    }
}

/// Longest single pause of a throttled module (cancellation is checked between).
const MAX_PAUSE: Duration = Duration::from_millis(50);

/// Holds the module's thread while it has used more than `cores` of the `wall` time
/// since it started: it sleeps its excess divided by its share, so that over any
/// stretch it uses at most its share of a core (a 0.1-core module that ran a 10 ms tick
/// pauses about 90 ms).
fn throttle(used: Duration, wall: Duration, cores: f64, cancel: &AtomicBool) {
    let allowed = wall.mul_f64(cores);
    let Some(excess) = used.checked_sub(allowed) else { return };
    let mut pause = excess.div_f64(cores);
    while !pause.is_zero() && !cancel.load(Ordering::Relaxed) {
        let step = pause.min(MAX_PAUSE);
        std::thread::sleep(step);
        pause -= step;
    }
}

/// Turns the error that ended a run into an exit status.
fn classify(e: &wasmtime::Error, memory_hit: bool) -> ExitStatus {
    if let Some(exit) = e.downcast_ref::<I32Exit>() {
        return ExitStatus { code: i64::from(exit.0), reason: ExitReason::Exited };
    }
    let reason = if memory_hit || e.downcast_ref::<MemoryLimitReached>().is_some() {
        ExitReason::MemoryLimit
    } else if let Some(interrupt) = e.downcast_ref::<Interrupt>() {
        match interrupt {
            Interrupt::Stopped => ExitReason::Stopped,
            Interrupt::CpuTime => ExitReason::CpuTimeLimit,
        }
    } else if let Some(trap) = e.downcast_ref::<Trap>() {
        match trap {
            Trap::OutOfFuel => ExitReason::FuelExhausted,
            other => ExitReason::Trap(other.to_string()),
        }
    } else {
        ExitReason::Failed(format!("{e:#}"))
    };
    ExitStatus { code: -1, reason }
}

fn failed(reason: String) -> ExitStatus {
    ExitStatus { code: -1, reason: ExitReason::Failed(reason) }
}

/// CPU time of the calling thread, where the platform reports it.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
    {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Some(Duration::new(u64::try_from(t.tv_sec).ok()?, u32::try_from(t.tv_nsec).ok()?))
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "freebsd")))]
    {
        None
    }
}
