//! `dms contract ...`: the arguments of the contract commands.

use std::path::PathBuf;

use clap::{Subcommand, ValueEnum};

use super::ActorTarget;

/// Payment models of `dms contract new` (NuNet's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ModelName {
    /// `--price` once, for the contract.
    FixedRental,
    /// `--price` per allocation that ran.
    PayPerAllocation,
    /// `--price` per deployment that ran.
    PayPerDeployment,
    /// `--per-core-hour`, `--per-gib-hour`, `--per-gpu-hour` of the resources held.
    PayPerResourceUtilization,
    /// `--price` per hour of running time.
    PayPerTimeUtilization,
    /// `--price` per `--period` of running time begun.
    Periodic,
}

/// `dms contract ...`
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Make a contract with this node as the requester (who pays), signed by it; give the
    /// document to the provider to sign (`dms contract sign` there), then sign the copy
    /// it returns here.
    New {
        /// The provider's DID (`dms info` on its node).
        #[arg(long)]
        provider: String,
        /// How the provider is paid.
        #[arg(long, value_enum)]
        model: ModelName,
        /// The price (in `--currency`): per hour, per allocation, per deployment, per
        /// period or once, by the model.
        #[arg(long, default_value_t = 0.0)]
        price: f64,
        /// `pay_per_resource_utilization`: per core-hour.
        #[arg(long, default_value_t = 0.0)]
        per_core_hour: f64,
        /// `pay_per_resource_utilization`: per GiB-hour of memory.
        #[arg(long, default_value_t = 0.0)]
        per_gib_hour: f64,
        /// `pay_per_resource_utilization`: per GPU-hour.
        #[arg(long, default_value_t = 0.0)]
        per_gpu_hour: f64,
        /// `periodic`: the period, e.g. 1h.
        #[arg(long)]
        period: Option<String>,
        /// The currency of every amount, e.g. USD, NTX.
        #[arg(long)]
        currency: String,
        /// The most owed in all under it.
        #[arg(long)]
        max_total: Option<f64>,
        /// The most allocations at once.
        #[arg(long)]
        max_allocations: Option<u32>,
        /// How long it is in force from now, e.g. 30d.
        #[arg(long, default_value = "30d")]
        valid_for: String,
        /// A contract host's DID.
        #[arg(long)]
        host: Option<String>,
        /// Write the document here (else it is printed).
        #[arg(long = "out", short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Sign a contract this node is a party to and keep it (the provider signs the
    /// requester's document; the requester keeps the copy both signed).
    Sign {
        /// A file holding the document (`-`: standard input).
        file: PathBuf,
        /// Write the signed document here (else it is printed).
        #[arg(long = "out", short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// The contracts this node keeps, with what its ledger booked under each.
    List {
        #[command(flatten)]
        target: ActorTarget,
    },
    /// One contract: terms, signatures, revocation, this side's receipts and ledger.
    Show {
        /// The contract id.
        id: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Revoke a contract this node is a party to: no new work under it, here or at the
    /// other party (the revocation is spread to the network).
    Revoke {
        /// The contract id.
        id: String,
        /// Why, for the other party.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        target: ActorTarget,
    },
}
