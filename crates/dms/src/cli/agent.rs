//! `dms agent`: the arguments.

use clap::Subcommand;

/// `dms agent ...`: keep keys unlocked for a while, so signed commands answer at once.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Unlock keys (passphrase from DMS_PASSPHRASE or asked once) and keep them in a
    /// background agent that signs this user's requests until it locks.
    Start {
        /// How long the agent keeps the keys, e.g. 15m or 2h.
        #[arg(long = "for", value_name = "DURATION", default_value = "15m")]
        lifetime: String,
        /// Only these keys (default: every key of the keystore).
        #[arg(long = "key", value_name = "NAME")]
        keys: Vec<String>,
    },
    /// Which keys the agent holds and when it locks.
    Status,
    /// Forget the keys now and stop the agent.
    Lock,
    /// The agent process itself (started by `dms agent start`).
    #[command(hide = true)]
    Serve {
        #[arg(long = "for", value_name = "DURATION")]
        lifetime: String,
    },
}
