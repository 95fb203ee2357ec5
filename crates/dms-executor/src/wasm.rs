//! The WebAssembly backend: WASI preview 1 command modules run in-process by [wasmtime].
//!
//! Each execution runs on its own OS thread with its own `Store`. Limits:
//! - **memory**: a `ResourceLimiter` refuses growth past `resources.memory_bytes`; the module
//!   ends with [`ExitReason::MemoryLimit`].
//! - **CPU time**: a ticker thread advances the engine's epoch every [`Config::tick`]; at each
//!   tick the store's callback reads the thread's CPU clock and interrupts the module past
//!   `cpu_time` ([`ExitReason::CpuTimeLimit`]). The same callback serves `stop`.
//! - **fuel**: an optional deterministic instruction budget ([`ExitReason::FuelExhausted`]).
//!
//! Output is captured line by line into a bounded [`LogBuffer`]. Nothing survives a daemon
//! restart, so [`reattach`](crate::Executor::reattach) finds nothing. `capture.rs` adapts WASI
//! output streams; `run.rs` is the thread body.

mod capture;
mod run;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument as _, info, info_span, instrument, warn};
use wasmtime::Engine;

use crate::error::{Error, Result};
use crate::execution::{
    ExecOutput, ExecutionId, ExecutionInfo, ExitReason, ExitStatus, Kind, LogOptions, LogStream,
    Recovery, State, Stats,
};
use crate::logbuf::{DEFAULT_LOG_LINES, LogBuffer};
use crate::spec::{ModuleSource, Spec, Workload};

const BACKEND: &str = "wasm";

/// Settings of the WebAssembly executor (the `[executor.wasm]` config section).
#[derive(Debug, Clone)]
pub struct Config {
    /// Lines of output kept per execution.
    pub log_lines: usize,
    /// Largest module accepted, in bytes (files, bytes and downloads).
    pub max_module_bytes: usize,
    /// Epoch tick: how often CPU time and stop requests are checked.
    pub tick: Duration,
    /// Timeout of a module download.
    pub download_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log_lines: DEFAULT_LOG_LINES,
            max_module_bytes: 64 << 20,
            tick: Duration::from_millis(10),
            download_timeout: Duration::from_secs(60),
        }
    }
}

/// One execution.
#[derive(Debug)]
struct Entry {
    allocation: String,
    deployment: String,
    memory_limit: Option<u64>,
    shared: Arc<run::Shared>,
}

/// The WebAssembly executor.
pub struct Executor {
    engine: Engine,
    config: Config,
    table: Mutex<HashMap<ExecutionId, Arc<Entry>>>,
    counter: AtomicU64,
    http: reqwest::Client,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("wasm::Executor").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        // Interrupt every module still running: their threads end at the next check.
        for entry in self.table().values() {
            entry.shared.cancel.store(true, Ordering::Relaxed);
        }
    }
}

impl Executor {
    /// Creates the engine (Cranelift, epoch interruption, fuel) and starts the epoch ticker.
    pub fn new(config: Config) -> Result<Executor> {
        let mut engine_config = wasmtime::Config::new();
        engine_config.epoch_interruption(true).consume_fuel(true);
        let engine = Engine::new(&engine_config).map_err(|e| Error::Unavailable {
            backend: BACKEND,
            reason: format!("cannot create the wasmtime engine: {e:#}"),
        })?;
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let (weak, stop, tick) =
            (engine.weak(), ticker_stop.clone(), config.tick.max(Duration::from_millis(1)));
        std::thread::Builder::new()
            .name("dms-wasm-epoch".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| Error::io("cannot start the wasm epoch thread", e))?;
        let http =
            reqwest::Client::builder().timeout(config.download_timeout).build().map_err(|e| {
                let mut reason = format!("HTTP client for module downloads: {e}");
                let mut source = std::error::Error::source(&e);
                while let Some(cause) = source {
                    reason.push_str(&format!(": {cause}"));
                    source = cause.source();
                }
                if reason.contains("certificate") || reason.contains("root") {
                    reason.push_str(" (install the ca-certificates package)");
                }
                Error::Unavailable { backend: BACKEND, reason }
            })?;
        Ok(Executor {
            engine,
            config,
            table: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            http,
            ticker_stop,
        })
    }

    fn table(&self) -> MutexGuard<'_, HashMap<ExecutionId, Arc<Entry>>> {
        // Single inserts and removes: a poisoned lock still holds a consistent map.
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn entry(&self, id: &ExecutionId) -> Result<Arc<Entry>> {
        self.table().get(id).cloned().ok_or_else(|| Error::NotFound(id.clone()))
    }

    /// Reads a module from its source, bounded by `max_module_bytes`.
    async fn load(&self, source: &ModuleSource) -> Result<(Vec<u8>, String)> {
        let limit = self.config.max_module_bytes;
        let too_big = |name: String| Error::Module {
            source_name: name,
            reason: format!("larger than the {limit}-byte limit (executor.wasm.max_module_bytes)"),
        };
        match source {
            ModuleSource::Bytes(bytes) => {
                if bytes.len() > limit {
                    return Err(too_big("<bytes>".into()));
                }
                Ok((bytes.clone(), "<bytes>".into()))
            }
            ModuleSource::File(path) => {
                let name = path.display().to_string();
                let meta = tokio::fs::metadata(path).await.map_err(|e| Error::Module {
                    source_name: name.clone(),
                    reason: format!("cannot read it: {e}"),
                })?;
                if meta.len() > limit as u64 {
                    return Err(too_big(name));
                }
                let bytes = tokio::fs::read(path).await.map_err(|e| Error::Module {
                    source_name: name.clone(),
                    reason: format!("cannot read it: {e}"),
                })?;
                Ok((bytes, name))
            }
            ModuleSource::Url(url) => self.download(url).await.map(|b| (b, url.clone())),
        }
    }

    async fn download(&self, url: &str) -> Result<Vec<u8>> {
        let fail = |reason: String| Error::Module { source_name: url.to_owned(), reason };
        let mut response =
            self.http.get(url).send().await.map_err(|e| {
                fail(format!("download failed: {e} (only http:// URLs are supported)"))
            })?;
        if !response.status().is_success() {
            return Err(fail(format!("download failed: HTTP {}", response.status())));
        }
        let limit = self.config.max_module_bytes;
        let mut bytes = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| fail(format!("download failed: {e}")))?
        {
            if bytes.len() + chunk.len() > limit {
                return Err(fail(format!(
                    "larger than the {limit}-byte limit (executor.wasm.max_module_bytes)"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn info(id: &ExecutionId, entry: &Entry) -> ExecutionInfo {
        ExecutionInfo {
            id: id.clone(),
            kind: Kind::Wasm,
            allocation: entry.allocation.clone(),
            deployment: entry.deployment.clone(),
            state: entry.shared.state.borrow().clone(),
            address: None,
            published: Vec::new(),
            network_pid: None,
        }
    }
}

/// Waits for the run behind `entry` to exit.
async fn wait_exit(entry: &Entry) -> ExitStatus {
    let mut state = entry.shared.state.subscribe();
    let outcome = state.wait_for(State::is_exited).await.map(|s| s.clone());
    match outcome {
        Ok(State::Exited(status)) => status,
        // The sender lives in the entry we hold, so the channel cannot close under us.
        _ => ExitStatus { code: -1, reason: ExitReason::Failed("run state lost".into()) },
    }
}

#[async_trait]
impl crate::Executor for Executor {
    fn kind(&self) -> Kind {
        Kind::Wasm
    }

    #[instrument(skip_all, fields(allocation = %spec.allocation, deployment = %spec.deployment))]
    async fn start(&self, spec: Spec) -> Result<ExecutionId> {
        let Workload::Wasm { module, cpu_time, fuel } = &spec.workload else {
            return Err(Error::InvalidSpec(format!(
                "the wasm executor cannot run a {} workload",
                spec.workload.kind()
            )));
        };
        let unsupported = [
            (!spec.ports.is_empty(), "published ports"),
            (spec.privileged, "privileged mode"),
            (spec.resources.gpus.is_some(), "GPUs"),
        ];
        if let Some((_, what)) = unsupported.iter().find(|(asked, _)| *asked) {
            return Err(Error::InvalidSpec(format!("the wasm executor does not support {what}")));
        }
        let (bytes, source_name) = self.load(module).await?;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let id = ExecutionId(format!("wasm-{}-{n}", spec.allocation));
        let mut argv = vec![spec.allocation.clone()];
        argv.extend(spec.args.iter().cloned());
        let job = run::Job {
            bytes,
            source_name,
            argv,
            env: spec.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            mounts: spec.mounts.clone(),
            memory_limit: spec.resources.memory_bytes,
            cpu_time: *cpu_time,
            cpu_cores: spec.resources.cpu_cores,
            fuel: *fuel,
        };
        let shared = Arc::new(run::Shared {
            logs: LogBuffer::new(self.config.log_lines),
            state: watch::channel(State::Created).0,
            cancel: AtomicBool::new(false),
            memory_bytes: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
        });
        let (ready_tx, ready_rx) = oneshot::channel();
        let (engine, thread_shared) = (self.engine.clone(), shared.clone());
        let span = info_span!("wasm", execution = %id, allocation = %spec.allocation);
        std::thread::Builder::new()
            .name(format!("dms-wasm-{n}"))
            .spawn(move || span.in_scope(|| run::run(&engine, job, thread_shared, ready_tx)))
            .map_err(|e| Error::io("cannot start a thread for the module", e))?;
        ready_rx.instrument(info_span!("load")).await.map_err(|_| Error::Backend {
            backend: BACKEND,
            operation: "start",
            message: "the module's thread ended before reporting".into(),
        })??;
        self.table().insert(
            id.clone(),
            Arc::new(Entry {
                allocation: spec.allocation,
                deployment: spec.deployment,
                memory_limit: spec.resources.memory_bytes,
                shared,
            }),
        );
        info!(execution = %id, "WebAssembly module started.");
        Ok(id)
    }

    async fn wait(&self, id: &ExecutionId) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        Ok(wait_exit(&entry).await)
    }

    /// WebAssembly has no graceful signal: the module is interrupted at the next epoch tick.
    /// `grace` bounds the wait for a module blocked in a host call.
    async fn stop(&self, id: &ExecutionId, grace: Duration) -> Result<ExitStatus> {
        let entry = self.entry(id)?;
        if let State::Exited(status) = &*entry.shared.state.borrow() {
            return Ok(status.clone());
        }
        entry.shared.cancel.store(true, Ordering::Relaxed);
        let wait = grace.max(self.config.tick * 10);
        tokio::time::timeout(wait, wait_exit(&entry))
            .await
            .map_err(|_| Error::StopTimeout(id.clone()))
    }

    async fn remove(&self, id: &ExecutionId) -> Result<()> {
        let Some(entry) = self.table().remove(id) else { return Err(Error::NotFound(id.clone())) };
        entry.shared.cancel.store(true, Ordering::Relaxed);
        if !entry.shared.state.borrow().is_exited() {
            warn!(execution = %id, "Removed a running module: it is interrupted at the next tick.");
        }
        Ok(())
    }

    async fn logs(&self, id: &ExecutionId, options: LogOptions) -> Result<LogStream> {
        Ok(self.entry(id)?.shared.logs.stream(options))
    }

    async fn exec(&self, _id: &ExecutionId, _command: Vec<String>) -> Result<ExecOutput> {
        Err(Error::Unsupported { backend: BACKEND, operation: "exec" })
    }

    async fn stats(&self, id: &ExecutionId) -> Result<Stats> {
        let entry = self.entry(id)?;
        Ok(Stats {
            cpu_percent: None,
            cpu_time_ns: Some(entry.shared.cpu_ns.load(Ordering::Relaxed)),
            memory_bytes: entry.shared.memory_bytes.load(Ordering::Relaxed),
            memory_limit_bytes: entry.memory_limit,
            net_rx_bytes: 0,
            net_tx_bytes: 0,
            pids: Some(1),
        })
    }

    async fn inspect(&self, id: &ExecutionId) -> Result<ExecutionInfo> {
        let entry = self.entry(id)?;
        Ok(Self::info(id, &entry))
    }

    async fn list(&self) -> Result<Vec<ExecutionInfo>> {
        let mut out: Vec<ExecutionInfo> =
            self.table().iter().map(|(id, e)| Self::info(id, e)).collect();
        out.sort_by(|a, b| a.allocation.cmp(&b.allocation).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// In-process modules end with the process: there is never anything to re-attach.
    async fn reattach(&self, _known: &HashSet<String>) -> Result<Recovery> {
        Ok(Recovery::default())
    }
}
