//! Shared dms types: machine resources and the capability model.
//!
//! A provider's node describes what it offers as a [`Machine`] (free [`Resources`],
//! architecture, executors, location, ports, price, benchmarks); a job describes what it
//! needs as [`Requirements`]. [`explain`] says why a machine cannot take a job (one
//! [`Mismatch`] per missed limit, empty when it can), and [`score`] ranks the machines
//! that can. Resources add and subtract without underflow, so a node can keep its free
//! resources exact as allocations come and go.
//!
//! ```
//! use dms_types::capability::{Machine, Requirements, explain, score};
//! use dms_types::resources::{parse_bytes, parse_cpu};
//!
//! # fn main() -> Result<(), dms_types::Error> {
//! let job = Requirements {
//!     cpu_millicores: parse_cpu("2")?,
//!     ram_bytes: parse_bytes("16GiB")?,
//!     executors: vec!["wasm".into()],
//!     ..Requirements::default()
//! };
//! let mut machine = Machine { executors: vec!["docker".into()], ..Machine::default() };
//! machine.free.cpu_millicores = parse_cpu("8")?;
//! machine.free.ram_bytes = parse_bytes("6GiB")?;
//!
//! let why: Vec<String> = explain(&job, &machine).iter().map(ToString::to_string).collect();
//! assert_eq!(why, ["needs 16.0 GiB RAM, 6.0 GiB free", "needs executor wasm; offers docker"]);
//! assert_eq!(score(&job, &machine), None);
//! # Ok(())
//! # }
//! ```
//!
//! # Module map
//! - [`resources`]: [`Resources`], [`Gpu`], [`GpuVendor`]; checked arithmetic; human units
//!   ([`parse_bytes`], [`format_bytes`], [`parse_cpu`], [`format_cpu`]).
//! - [`capability`]: [`Requirements`], [`Machine`] and their parts; [`explain`],
//!   [`score`], GPU selection.
//! - [`units`]: the one parser of human units for the CLI, the configuration and
//!   ensembles: sizes, CPU amounts, frequencies, bandwidths, durations.
//! - [`peers`]: what a node says about its network (peers, itself, DHT, gossip scores).
//! - [`backoff`]: [`Backoff`](backoff::Backoff), the one doubling pause.
//! - [`event`]: [`Event`](event::Event), the telemetry event every sink and `dms events`
//!   read, and its bounded set of kinds.
//! - [`error`]: [`Error`], for human-written amounts that do not parse.

pub mod backoff;
pub mod capability;
pub mod error;
pub mod event;
pub mod peers;
pub mod resources;
pub mod units;

pub use capability::{
    BenchmarkPreference, BenchmarkScores, GpuRequirement, Location, Machine, Mismatch,
    MismatchCode, PortRange, Requirements, explain, score,
};
pub use error::Error;
pub use resources::{Gpu, GpuVendor, Resources, format_bytes, format_cpu, parse_bytes, parse_cpu};
