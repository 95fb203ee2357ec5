//! Benchmarks bounded by a time budget: CPU (single and multi-core), memory copy bandwidth,
//! disk sequential write and read, and random 4 KiB reads.
//!
//! Every step runs for a fixed share of [`Options::total_budget`] on a fixed, deterministic
//! workload and reports work per second, so runs on one machine compare and a longer budget
//! only means less noise. The shares add up to 90% of the budget; the rest absorbs set-up
//! (buffers, the test file) and the short overshoot of the last batch of each step.
//!
//! - `cpu`: SHA-256 compression of a fixed 4 KiB block into a running state; MiB hashed per
//!   second.
//! - `memory`: copy between two 128 MiB buffers, split across threads; GiB copied per second.
//! - `disk`: a test file under [`Options::dir`], written with periodic `fdatasync`, read back
//!   after dropping it from the page cache (Linux `posix_fadvise`), then read in random 4 KiB
//!   blocks, each block once per pass. Removed afterwards, on error too.

mod cpu;
mod disk;
mod memory;

use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dms_types::capability::BenchmarkScores;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::usage::unix_now;

/// The smallest [`Options::total_budget`] accepted.
pub const MIN_BUDGET: Duration = Duration::from_millis(500);

/// How often progress is reported while a step runs, at most.
const PROGRESS_EVERY: Duration = Duration::from_millis(100);

/// Part of the budget the steps may use; the rest is slack for set-up and overshoot.
const STEPS_SHARE: f64 = 0.9;

/// Steps in the order they run, with their relative weights.
const PLAN: [(Step, f64); 6] = [
    (Step::CpuSingle, 0.14),
    (Step::CpuMulti, 0.14),
    (Step::Memory, 0.12),
    (Step::DiskWrite, 0.26),
    (Step::DiskRead, 0.12),
    (Step::DiskRandomRead, 0.12),
];

/// What to run and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Directory for the disk test file; it must exist and be writable. Default: the system
    /// temporary directory (which may be a RAM disk: pass a directory on the disk that
    /// workloads will use).
    pub dir: PathBuf,
    /// Wall-clock budget for the whole run, at least [`MIN_BUDGET`]. Default: 15 s.
    pub total_budget: Duration,
    /// Threads for the multi-core and memory steps. Default: the available parallelism.
    pub threads: Option<NonZeroUsize>,
    /// Whether to run the disk steps. Default: true.
    pub disk: bool,
    /// Upper bound on the disk test file; it is also kept under half the free space.
    /// Default: 1 GiB.
    pub max_disk_file_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            dir: std::env::temp_dir(),
            total_budget: default_total_budget(),
            threads: None,
            disk: true,
            max_disk_file_bytes: 1 << 30,
        }
    }
}

/// The default [`Options::total_budget`]: 15 s.
pub fn default_total_budget() -> Duration {
    Duration::from_secs(15)
}

/// One benchmark step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// MiB hashed (SHA-256) per second on one thread.
    CpuSingle,
    /// MiB hashed (SHA-256) per second on all threads together.
    CpuMulti,
    /// Memory copy bandwidth on all threads, GiB/s.
    Memory,
    /// Sequential write including `fdatasync`, MiB/s.
    DiskWrite,
    /// Sequential read of uncached data, MiB/s.
    DiskRead,
    /// Random 4 KiB reads of uncached data, reads per second.
    DiskRandomRead,
}

impl Step {
    /// Short name, e.g. `cpu_single`.
    pub fn name(self) -> &'static str {
        match self {
            Self::CpuSingle => "cpu_single",
            Self::CpuMulti => "cpu_multi",
            Self::Memory => "memory",
            Self::DiskWrite => "disk_write",
            Self::DiskRead => "disk_read",
            Self::DiskRandomRead => "disk_random_read",
        }
    }

    /// The unit of this step's score.
    pub fn unit(self) -> Unit {
        match self {
            Self::Memory => Unit::GibPerSec,
            Self::CpuSingle | Self::CpuMulti | Self::DiskWrite | Self::DiskRead => Unit::MibPerSec,
            Self::DiskRandomRead => Unit::Iops,
        }
    }

    fn is_disk(self) -> bool {
        matches!(self, Self::DiskWrite | Self::DiskRead | Self::DiskRandomRead)
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Unit of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// GiB (2^30 bytes) per second.
    GibPerSec,
    /// MiB (2^20 bytes) per second.
    MibPerSec,
    /// Operations (4 KiB reads) per second.
    Iops,
}

/// A progress event, sent when a step starts, about every 100 ms while it runs, and when it
/// ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The step running.
    pub step: Step,
    /// How far this step is, 0.0–1.0.
    pub step_fraction: f32,
    /// How far the whole run is, 0.0–1.0.
    pub fraction: f32,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:.0}% (overall {:.0}%)",
            self.step,
            self.step_fraction * 100.0,
            self.fraction * 100.0
        )
    }
}

/// One step's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// Which step.
    pub step: Step,
    /// Work per second, in `unit`.
    pub score: f64,
    /// Unit of `score`.
    pub unit: Unit,
    /// Work done: bytes hashed, copied, written or read, or 4 KiB reads.
    pub work: u64,
    /// Time measured, seconds.
    pub duration_secs: f64,
}

/// The scores of a run, flat. Disk scores are `None` when the disk steps were off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// MiB hashed (SHA-256) per second, one thread.
    pub cpu_single: f64,
    /// MiB hashed (SHA-256) per second, all threads.
    pub cpu_multi: f64,
    /// Memory copy bandwidth, GiB/s.
    pub memory_gib_per_sec: f64,
    /// Sequential write with `fdatasync`, MiB/s.
    pub disk_write_mib_per_sec: Option<f64>,
    /// Sequential uncached read, MiB/s.
    pub disk_read_mib_per_sec: Option<f64>,
    /// Random uncached 4 KiB reads per second.
    pub disk_random_read_iops: Option<f64>,
}

impl From<Scores> for BenchmarkScores {
    /// Sequential disk throughput is the slower of write and read; scores of steps not run
    /// are 0.
    fn from(scores: Scores) -> Self {
        let disk_seq = match (scores.disk_write_mib_per_sec, scores.disk_read_mib_per_sec) {
            (Some(write), Some(read)) => write.min(read),
            (write, read) => write.or(read).unwrap_or(0.0),
        };
        BenchmarkScores {
            cpu_single: scores.cpu_single,
            cpu_multi: scores.cpu_multi,
            memory_gib_s: scores.memory_gib_per_sec,
            disk_seq_mib_s: disk_seq,
            disk_random_iops: scores.disk_random_read_iops.unwrap_or(0.0),
        }
    }
}

/// Result of [`run_benchmarks`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchmarkReport {
    /// Start of the run, unix seconds.
    pub timestamp: u64,
    /// Wall-clock time of the whole run, seconds.
    pub duration_secs: f64,
    /// Logical processors of the machine.
    pub logical_cores: usize,
    /// Threads used for the multi-core and memory steps.
    pub threads: usize,
    /// The scores, flat.
    pub scores: Scores,
    /// Each step's measurement, in run order.
    pub steps: Vec<StepResult>,
}

/// What a step measured: work done over a time.
pub(crate) struct Measured {
    pub(crate) work: u64,
    pub(crate) elapsed: Duration,
}

/// Runs the benchmarks within `options.total_budget`, calling `progress` from this thread.
/// Blocking; async callers use `spawn_blocking`.
///
/// The benchmark directory is checked (and the test file created) before anything runs, so
/// a bad directory fails at once.
pub fn run_benchmarks(
    options: &Options,
    mut progress: impl FnMut(Progress),
) -> Result<BenchmarkReport, Error> {
    let start = Instant::now();
    let timestamp = unix_now();
    if options.total_budget < MIN_BUDGET {
        return Err(Error::BudgetTooShort { budget: options.total_budget, minimum: MIN_BUDGET });
    }
    let available = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let threads = options.threads.map_or(available, NonZeroUsize::get);
    let mut file = if options.disk {
        Some(disk::TestFile::create(&options.dir, options.max_disk_file_bytes)?)
    } else {
        None
    };

    let plan: Vec<(Step, f64)> =
        PLAN.into_iter().filter(|(step, _)| options.disk || !step.is_disk()).collect();
    let weights: f64 = plan.iter().map(|(_, w)| w).sum();
    let hard_deadline = start + options.total_budget;
    let mut before = 0.0;
    let mut steps = Vec::with_capacity(plan.len());
    for (step, weight) in plan {
        let share = weight / weights;
        let budget = options.total_budget.mul_f64(share * STEPS_SHARE);
        let mut ticker = Ticker::new(step, budget, hard_deadline, before, share, &mut progress);
        let measured = match (step, file.as_mut()) {
            (Step::CpuSingle, _) => cpu::single(&mut ticker),
            (Step::CpuMulti, _) => cpu::multi(threads, &mut ticker),
            (Step::Memory, _) => memory::copy(threads, &mut ticker),
            (Step::DiskWrite, Some(file)) => file.write(&mut ticker)?,
            (Step::DiskRead, Some(file)) => file.read(&mut ticker)?,
            (Step::DiskRandomRead, Some(file)) => file.random_read(&mut ticker)?,
            (_, None) => continue,
        };
        ticker.finish();
        before += share;
        steps.push(result(step, &measured));
    }
    drop(file);

    let score = |step: Step| steps.iter().find(|r| r.step == step).map(|r| r.score);
    let scores = Scores {
        cpu_single: score(Step::CpuSingle).unwrap_or_default(),
        cpu_multi: score(Step::CpuMulti).unwrap_or_default(),
        memory_gib_per_sec: score(Step::Memory).unwrap_or_default(),
        disk_write_mib_per_sec: score(Step::DiskWrite),
        disk_read_mib_per_sec: score(Step::DiskRead),
        disk_random_read_iops: score(Step::DiskRandomRead),
    };
    Ok(BenchmarkReport {
        timestamp,
        duration_secs: start.elapsed().as_secs_f64(),
        logical_cores: logical_cores().unwrap_or(available),
        threads,
        scores,
        steps,
    })
}

/// Logical processors the OS shows (more than the available parallelism under a cgroup
/// quota or CPU affinity).
fn logical_cores() -> Option<usize> {
    use sysinfo::{CpuRefreshKind, RefreshKind, System};
    let sys =
        System::new_with_specifics(RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()));
    Some(sys.cpus().len()).filter(|n| *n > 0)
}

/// Converts a measurement to a score in the step's unit.
fn result(step: Step, measured: &Measured) -> StepResult {
    const MIB: f64 = (1u64 << 20) as f64;
    const GIB: f64 = (1u64 << 30) as f64;
    let secs = measured.elapsed.as_secs_f64().max(1e-9);
    let per_sec = measured.work as f64 / secs;
    let unit = step.unit();
    let score = match unit {
        Unit::GibPerSec => per_sec / GIB,
        Unit::MibPerSec => per_sec / MIB,
        Unit::Iops => per_sec,
    };
    StepResult { step, score, unit, work: measured.work, duration_secs: secs }
}

/// Runs one step's clock: says when its time is up and reports progress on the way.
pub(crate) struct Ticker<'a> {
    step: Step,
    start: Instant,
    end: Instant,
    /// Fraction of the whole run done before this step.
    before: f64,
    /// This step's part of the whole run.
    share: f64,
    last_report: Instant,
    progress: &'a mut dyn FnMut(Progress),
}

impl<'a> Ticker<'a> {
    fn new(
        step: Step,
        budget: Duration,
        hard_deadline: Instant,
        before: f64,
        share: f64,
        progress: &'a mut dyn FnMut(Progress),
    ) -> Self {
        let start = Instant::now();
        let end = (start + budget).min(hard_deadline).max(start);
        let mut ticker = Self { step, start, end, before, share, last_report: start, progress };
        ticker.report(0.0);
        ticker
    }

    /// When this step must stop.
    pub(crate) fn deadline(&self) -> Instant {
        self.end
    }

    /// Whether the step's time is up; reports progress now and then. Steps call this
    /// between batches of work, so each step does at least one batch.
    pub(crate) fn finished(&mut self) -> bool {
        let now = Instant::now();
        if now >= self.end {
            return true;
        }
        if now.duration_since(self.last_report) >= PROGRESS_EVERY {
            self.last_report = now;
            let span = self.end.duration_since(self.start).as_secs_f64().max(1e-9);
            self.report(now.duration_since(self.start).as_secs_f64() / span);
        }
        false
    }

    /// Sleeps until the step's time is up, reporting progress (for steps whose work runs
    /// on other threads).
    pub(crate) fn wait(&mut self) {
        while !self.finished() {
            let left = self.end.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(PROGRESS_EVERY));
        }
    }

    fn finish(mut self) {
        self.report(1.0);
    }

    fn report(&mut self, step_fraction: f64) {
        let step_fraction = step_fraction.clamp(0.0, 1.0);
        (self.progress)(Progress {
            step: self.step,
            step_fraction: step_fraction as f32,
            fraction: (self.before + self.share * step_fraction).clamp(0.0, 1.0) as f32,
        });
    }
}

#[cfg(test)]
mod tests;
