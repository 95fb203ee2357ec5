//! `dms devnet ...`: the arguments of the local-network commands.

use std::path::PathBuf;

use clap::Subcommand;

/// `dms devnet ...`
#[derive(Debug, Subcommand)]
pub enum DevnetCommand {
    /// Start N nodes as separate processes on loopback (own homes and keys), joined
    /// through node 0, all trusting one devnet user.
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Where the homes, logs and state live. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
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
    /// Stop every node (SIGTERM, then SIGKILL after 15 s).
    Down {
        /// The devnet directory. Default: $DMS_HOME/devnet.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Also remove the homes and logs.
        #[arg(long)]
        purge: bool,
    },
}
