//! `dms devnet ...`: the arguments of the local-network commands.

use std::path::PathBuf;

use clap::Subcommand;

/// `dms devnet ...`
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start N nodes as separate processes on loopback (own homes and keys), joined
    /// through node 0, all trusting one devnet user. With --isolated each node gets its
    /// own network namespace and address, so that `dms devnet fault` can cut and slow
    /// the links between them.
    Up {
        /// How many nodes (default 3; with --hosts, one per host).
        #[arg(long)]
        nodes: Option<usize>,
        /// Where the homes, logs and state live. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Each node in its own network namespace (10.99.0.10, .11, ...) on a bridge of
        /// the devnet's own: needs root.
        #[arg(long)]
        isolated: bool,
        /// CPU limit of each node, in cores (e.g. 0.5; a cgroup; with --isolated).
        #[arg(long, requires = "isolated")]
        cpus: Option<f64>,
        /// Memory limit of each node (e.g. 512MiB; a cgroup; with --isolated).
        #[arg(long, requires = "isolated")]
        memory: Option<String>,
        /// Location labels, one per node in order and repeated when fewer, e.g.
        /// `eu-west,us-east` (each node's `deployment.location`).
        #[arg(long, value_delimiter = ',')]
        locations: Vec<String>,
        /// Run the nodes on other machines over SSH, one per `[[host]]` of this file
        /// (address, user, port, identity, workdir, location): this binary is copied
        /// there, started, and its logs collected at `down`.
        #[arg(long, value_name = "FILE", conflicts_with = "isolated")]
        hosts: Option<PathBuf>,
    },
    /// Faults between the nodes of an isolated devnet: partition, heal, slow, kill, or
    /// a fault file's steps.
    Fault {
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR", global = true)]
        dir: Option<PathBuf>,
        /// The fault.
        #[command(subcommand)]
        fault: FaultCommand,
    },
    /// Show the devnet's nodes: running or not, API, peer id.
    Status {
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Run a dms command as the devnet user against a node, e.g. `dms devnet cli peers
    /// list`.
    Cli {
        /// Which node to talk to (its index).
        #[arg(long, default_value_t = 0)]
        node: usize,
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The dms command and its arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Deploy an ensemble as the devnet user through a node (`dms deploy` there).
    Deploy {
        /// Which node orchestrates (its index).
        #[arg(long, default_value_t = 0)]
        node: usize,
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// The ensemble, then any `dms deploy` option.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Stop one node and start it again with the same home (to pick up config changes,
    /// or with --kill to test recovery from a crash).
    Restart {
        /// Which node (its index).
        #[arg(long, default_value_t = 0)]
        node: usize,
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// SIGKILL instead of a graceful stop.
        #[arg(long)]
        kill: bool,
    },
    /// Stop one node and leave it stopped (its home stays; `dms devnet start` brings
    /// it back), e.g. to see a deployment survive the loss of a provider.
    Stop {
        /// Which node (its index).
        #[arg(long)]
        node: usize,
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// SIGKILL instead of a graceful stop (a crash: nothing is drained).
        #[arg(long)]
        kill: bool,
    },
    /// Start a stopped node again with the same home.
    Start {
        /// Which node (its index).
        #[arg(long)]
        node: usize,
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Collect every node's log, config and events into one folder, then stop every
    /// node (SIGTERM, then SIGKILL after 15 s) and remove an isolated devnet's network.
    Down {
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Where the collected logs, configs and events go. Default: <DIR>/artifacts.
        #[arg(long, value_name = "DIR")]
        collect: Option<PathBuf>,
        /// Also remove the homes (the collected artifacts stay).
        #[arg(long)]
        purge: bool,
    },
}

/// `dms devnet fault ...`
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Cut the link between two nodes, both ways: their packets to each other are dropped.
    Partition {
        /// One node (its index).
        a: usize,
        /// The other node (its index).
        b: usize,
    },
    /// Remove every partition and slow link.
    Heal,
    /// Limit a node's link to a rate.
    Slow {
        /// The node (its index).
        node: usize,
        /// The rate, in tc's units: 1mbit, 500kbit.
        #[arg(long)]
        rate: String,
    },
    /// Kill a node (SIGKILL: nothing drained); `dms devnet start` brings it back.
    Kill {
        /// The node (its index).
        node: usize,
    },
    /// Run the steps of a fault file (TOML: `[[fault]]` with `action`, `nodes`, `rate`,
    /// `after`), waiting `after` before each.
    Apply {
        /// The fault file.
        file: PathBuf,
    },
}
