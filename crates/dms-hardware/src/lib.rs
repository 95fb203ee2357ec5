//! Machine hardware: detection, live usage and benchmarks.
//!
//! A dms node describes what it has ([`detect()`]), what it is using right now ([`usage()`],
//! [`Monitor`]) and how fast it is ([`run_benchmarks`]). Everything here is blocking; async
//! callers run it under `tokio::task::spawn_blocking`.
//!
//! Detection never fails: what cannot be learned is left out and explained in
//! [`Hardware::notes`]. In particular NVIDIA GPUs come through NVML, which is loaded at run
//! time (`libnvidia-ml.so`), so a binary built here runs on machines without the driver and
//! simply reports no NVIDIA GPU, with a note saying why.
//!
//! # Module map
//!
//! - [`detect`](mod@detect): [`Hardware`], [`detect()`] and [`Hardware::capacity`] (as
//!   `dms_types` resources), tying the parts below together.
//! - [`cpu`]: [`Cpu`] (model, cores, frequencies, flags from `/proc/cpuinfo`).
//! - [`disk`]: [`Disk`], real filesystems only (pseudo filesystems and bind-mount
//!   duplicates are skipped).
//! - [`gpu`]: [`Gpu`] ([`GpuVendor`] is `dms_types`'); NVIDIA via NVML, AMD and Intel via
//!   `/sys/class/drm`.
//! - [`usage`](mod@usage): [`Usage`], [`usage()`] and the reusable [`Monitor`].
//! - [`bench`](mod@bench): [`run_benchmarks`], its [`Options`], [`Progress`] events and the
//!   [`BenchmarkReport`]; steps in `bench/cpu.rs`, `bench/memory.rs`, `bench/disk.rs`.
//! - [`error`]: [`Error`], what benchmarks can fail with.
//!
//! # Example
//!
//! ```no_run
//! let hardware = dms_hardware::detect();
//! println!("{} logical threads", hardware.cpu.logical_threads);
//!
//! let options = dms_hardware::Options::default();
//! let report = dms_hardware::run_benchmarks(&options, |p| eprintln!("{p}"))?;
//! println!("{:?}", report.scores);
//! # Ok::<(), dms_hardware::Error>(())
//! ```

pub mod bench;
pub mod cpu;
pub mod detect;
pub mod disk;
pub mod error;
pub mod gpu;
pub mod usage;

pub use bench::{
    BenchmarkReport, Options, Progress, Scores, Step, StepResult, Unit, run_benchmarks,
};
pub use cpu::Cpu;
pub use detect::{Hardware, Memory, detect};
pub use disk::{Disk, DiskKind};
pub use error::Error;
pub use gpu::{Gpu, GpuVendor};
pub use usage::{DiskUsage, GpuUsage, Monitor, Usage, usage};
