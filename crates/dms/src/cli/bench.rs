//! `dms bench ...`: the arguments of the end-to-end benchmarks.

use std::path::PathBuf;

use clap::Subcommand;

use super::ActorTarget;

/// `dms bench ...`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Deploy a one-allocation WebAssembly service N times through the local node and
    /// report submit-to-running p50/p99 beside the executor's own start time (run it
    /// against a devnet: `dms devnet cli bench deploy`).
    Deploy {
        /// Measured runs (after 2 warm-up runs).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Measure twice in the same run, interleaved in blocks of 5: with events shipped
        /// nowhere, and with every node shipping them to a dead Elasticsearch address;
        /// report both and their ratio (goal: within 10 %).
        #[arg(long)]
        dead_sink: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// On a devnet: deploy a WebAssembly service, then kill its provider with SIGKILL N
    /// times (starting each killed node again) and report kill-to-running-elsewhere
    /// p50/p99 against `lost_after` (run it as `dms devnet cli bench failover`).
    Failover {
        /// Provider kills measured.
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Standbys kept for the service (`nodes.<n>.redundancy`): each kill waits for
        /// one, and the report says how many kills a standby took over.
        #[arg(long, default_value_t = 0)]
        redundancy: u32,
        /// The devnet (`dms devnet cli` sets it).
        #[arg(long, env = "DMS_DEVNET_DIR", value_name = "DIR")]
        devnet_dir: PathBuf,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// On a devnet: time `dms devnet cli peers list` (a signed call) N times without the
    /// key agent, then N times with it running, and report both medians and their ratio
    /// (run it as `dms devnet cli bench signed-calls`).
    SignedCalls {
        /// Calls measured each way (after one warm-up call).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// The devnet (`dms devnet cli` sets it).
        #[arg(long, env = "DMS_DEVNET_DIR", value_name = "DIR")]
        devnet_dir: PathBuf,
    },
}
