//! Onboarding, resources and hardware behaviors of the root actor.
//!
//! The typed pairs are in `dms_protocol::onboarding` (which has the table):
//! onboard/offboard/status, resources onboarded/free/allocated, hardware spec/usage,
//! and benchmark (run here, or record a report run by the CLI).
//!
//! Capacity (what onboarding may offer) is read from the hardware at each request: all
//! logical CPUs, all RAM, the free space of the disk holding the dms home, the GPUs
//! detected. The first onboarding starts the benchmarks in the background (bounded by
//! `node.benchmark_budget`); their report is stored with its timestamp and goes into the
//! stored capability (`dms_types::capability::Machine`) with the free resources.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dms_actor::{Actor, ActorError};
use dms_hardware::{BenchmarkReport, Hardware};
use dms_protocol::handle;
use dms_protocol::onboarding::{
    AllocatedResources, Benchmark, FreeResources, GetOnboarding, HardwareSpec, HardwareUsage,
    Offboard, Offboarded, Onboard, OnboardedResources, OnboardingStatus, PeerRtt,
};
use dms_store::{Repo, Store};
use dms_types::capability::{BenchmarkScores, Machine};
use dms_types::resources::{Gpu, GpuVendor, Resources, parse_bytes, parse_cpu};
use tracing::{info, warn};

use crate::resources::{ResourceError, ResourceManager};
use crate::{Rtts, bad, failed};

/// Time budget of on-demand benchmarks run by the node when none is configured.
pub const BENCHMARK_BUDGET: Duration = Duration::from_secs(15);

const BENCHMARKS: Repo<BenchmarkReport> = Repo::new("hardware_benchmarks");
const CAPABILITY: Repo<Machine> = Repo::new("node_capability");
const LATEST: &str = "latest";

/// What the behaviors use.
#[derive(Clone)]
pub struct Deps {
    /// The accounts.
    pub manager: ResourceManager,
    /// The node's store (benchmarks and the capability are kept there).
    pub store: Store,
    /// The dms home: its disk is the one offered, and benchmarks write there.
    pub home: PathBuf,
    /// Set while a benchmark runs.
    pub benchmarking: Arc<AtomicBool>,
    /// Round-trip times to connected peers (the network's ping, kept current).
    pub rtts: Rtts,
    /// Budget of the benchmarks run at first onboarding (`node.benchmark_budget`; zero:
    /// none).
    pub benchmark_budget: Duration,
}

fn refused(error: ResourceError) -> ActorError {
    match error {
        ResourceError::Store(e) => ActorError::Internal { reason: e.to_string() },
        other => ActorError::handler(other.to_string()),
    }
}

/// The free space of the disk holding `path` (the longest mount point that contains it).
fn disk_free(hardware: &Hardware, path: &Path) -> u64 {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    hardware
        .disks
        .iter()
        .filter(|d| path.starts_with(Path::new(&d.mount_point)))
        .max_by_key(|d| d.mount_point.len())
        .map(|d| d.available_bytes)
        .unwrap_or_default()
}

/// What onboarding may offer on this machine: every logical CPU, all RAM (or the
/// cgroup limit), every GPU, and the free space of the disk holding the dms home.
pub fn capacity(hardware: &Hardware, home: &Path) -> Resources {
    let mut capacity = hardware.capacity();
    let home_disk = disk_free(hardware, home);
    if home_disk > 0 {
        capacity.disk_bytes = home_disk;
    }
    capacity
}

async fn detect() -> Result<Hardware, ActorError> {
    tokio::task::spawn_blocking(dms_hardware::detect).await.map_err(failed)
}

/// The scores of the latest benchmark report, if any (what bids advertise).
pub fn benchmark_scores(store: &dms_store::Store) -> Option<BenchmarkScores> {
    BENCHMARKS.get_now(store, LATEST).ok().flatten().as_ref().map(scores)
}

fn scores(report: &BenchmarkReport) -> BenchmarkScores {
    BenchmarkScores::from(report.scores)
}

impl Deps {
    fn latest_benchmark(&self) -> Option<BenchmarkReport> {
        BENCHMARKS.get_now(&self.store, LATEST).ok().flatten()
    }

    /// Rebuilds and stores the advertised capability from the accounts and benchmarks.
    fn refresh_capability(&self, hardware: &Hardware) -> Option<Machine> {
        let status = self.manager.status();
        status.onboarded.as_ref()?;
        let machine = Machine {
            free: status.free,
            architecture: hardware.cpu.architecture.clone(),
            benchmarks: benchmark_scores(&self.store),
            ..Machine::default()
        };
        if let Err(error) = CAPABILITY.put_now(&self.store, LATEST, &machine) {
            warn!(%error, "Could not store the node capability.");
        }
        Some(machine)
    }

    /// Offers `request`'s resources (checked against the hardware), then starts the
    /// first benchmark in the background when there is none yet.
    async fn onboard(&self, request: Onboard) -> Result<OnboardingStatus, ActorError> {
        let Onboard { cpu, ram, disk, gpus } = request;
        let hardware = detect().await?;
        let capacity = capacity(&hardware, &self.home);
        let mut wanted = Resources {
            cpu_millicores: parse_cpu(&cpu.text()).map_err(bad)?,
            ram_bytes: parse_bytes(&ram.text()).map_err(bad)?,
            disk_bytes: parse_bytes(&disk.text()).map_err(bad)?,
            gpus: Vec::new(),
        };
        for index in gpus {
            let gpu = capacity.gpus.iter().find(|g| g.index == index).cloned();
            wanted.gpus.push(gpu.unwrap_or(Gpu {
                index,
                vendor: GpuVendor::Other,
                model: String::new(),
                vram_bytes: 0,
                uuid: None,
                drm_card: None,
            }));
        }
        // Durable writes: off the async threads.
        let writer = self.clone();
        tokio::task::spawn_blocking(move || {
            writer.manager.onboard(wanted, &capacity).map_err(refused)?;
            writer.refresh_capability(&hardware);
            Ok::<_, ActorError>(())
        })
        .await
        .map_err(failed)??;
        let budget = self.benchmark_budget;
        if !budget.is_zero()
            && self.latest_benchmark().is_none()
            && !self.benchmarking.load(Ordering::SeqCst)
        {
            let background = self.clone();
            tokio::spawn(async move {
                if let Err(error) = background.benchmark(budget).await {
                    warn!(%error, "Onboarding benchmark failed.");
                }
            });
        }
        Ok(self.status().await)
    }

    async fn status(&self) -> OnboardingStatus {
        let accounts = self.manager.status();
        let capability = match accounts.onboarded {
            Some(_) => CAPABILITY.get_now(&self.store, LATEST).ok().flatten(),
            None => None,
        };
        // Round-trip times to the connected peers, as ping measures them.
        let peer_rtt_ms = (self.rtts)()
            .await
            .into_iter()
            .map(|(peer_id, rtt_ms)| PeerRtt { peer_id, rtt_ms })
            .collect();
        OnboardingStatus {
            accounts,
            benchmark: self.latest_benchmark(),
            benchmark_running: self.benchmarking.load(Ordering::SeqCst),
            peer_rtt_ms,
            capability,
        }
    }

    fn store_benchmark(&self, report: &BenchmarkReport) -> Result<(), ActorError> {
        let key = format!("{:020}", report.timestamp);
        self.store
            .write(|tx| {
                BENCHMARKS.put(tx, LATEST, report)?;
                BENCHMARKS.put(tx, &key, report)
            })
            .map_err(failed)
    }

    /// Runs the benchmarks unless they already run; stores the report.
    async fn benchmark(&self, budget: Duration) -> Result<BenchmarkReport, ActorError> {
        if self.benchmarking.swap(true, Ordering::SeqCst) {
            return Err(ActorError::handler("a benchmark is already running; try again later"));
        }
        let options = dms_hardware::Options {
            dir: self.home.clone(),
            total_budget: budget,
            ..Default::default()
        };
        let result =
            tokio::task::spawn_blocking(move || dms_hardware::run_benchmarks(&options, |_| {}))
                .await;
        self.benchmarking.store(false, Ordering::SeqCst);
        let report = result.map_err(failed)?.map_err(failed)?;
        self.store_benchmark(&report)?;
        if let Ok(hardware) = detect().await {
            self.refresh_capability(&hardware);
        }
        info!(duration_secs = report.duration_secs, "Benchmarks done.");
        Ok(report)
    }
}

/// Registers the behaviors of the table above.
pub fn register(actor: &Actor, deps: &Deps) -> Result<(), ActorError> {
    let d = deps.clone();
    handle(actor, move |_, request: Onboard| {
        let d = d.clone();
        async move { d.onboard(request).await }
    })?;
    let d = deps.clone();
    handle(actor, move |_, Offboard {}| {
        let d = d.clone();
        async move {
            let writer = d.clone();
            tokio::task::spawn_blocking(move || {
                writer.manager.offboard().map_err(refused)?;
                let _ = CAPABILITY.delete_now(&writer.store, LATEST);
                Ok::<_, ActorError>(())
            })
            .await
            .map_err(failed)??;
            Ok(Offboarded { offboarded: true })
        }
    })?;
    let d = deps.clone();
    handle(actor, move |_, GetOnboarding {}| {
        let d = d.clone();
        async move { Ok(d.status().await) }
    })?;
    let d = deps.clone();
    handle(actor, move |_, OnboardedResources {}| {
        let d = d.clone();
        async move { Ok(d.manager.status().onboarded.map(|o| o.resources).unwrap_or_default()) }
    })?;
    let d = deps.clone();
    handle(actor, move |_, FreeResources {}| {
        let d = d.clone();
        async move { Ok(d.manager.status().free) }
    })?;
    let d = deps.clone();
    handle(actor, move |_, AllocatedResources {}| {
        let d = d.clone();
        async move { Ok(d.manager.status().allocated) }
    })?;
    handle(actor, move |_, HardwareSpec {}| async move { detect().await })?;
    handle(actor, move |_, HardwareUsage {}| async move {
        tokio::task::spawn_blocking(dms_hardware::usage).await.map_err(failed)
    })?;
    let d = deps.clone();
    handle(actor, move |_, Benchmark { report }| {
        let d = d.clone();
        async move {
            match report {
                Some(report) => {
                    d.store_benchmark(&report)?;
                    if let Ok(hardware) = detect().await {
                        d.refresh_capability(&hardware);
                    }
                    Ok(report)
                }
                None if d.benchmark_budget.is_zero() => d.benchmark(BENCHMARK_BUDGET).await,
                None => d.benchmark(d.benchmark_budget).await,
            }
        }
    })?;
    Ok(())
}
