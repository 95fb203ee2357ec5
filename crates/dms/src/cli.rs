//! Command-line arguments (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// dms — the Device Management Service: run the daemon, manage keys and configuration,
/// and talk to a running daemon through its local API.
#[derive(Debug, Parser)]
#[command(name = "dms", version, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// The dms home directory (config, keys, database). Default: ~/.dms
    #[arg(long, global = true, env = "DMS_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Address of the daemon's local API: where `dms run` serves it and where the other
    /// commands reach it. Default: api.addr from the config (127.0.0.1:9999).
    #[arg(long, global = true, env = "DMS_API_ADDR", value_name = "HOST:PORT")]
    pub api_addr: Option<SocketAddr>,
    /// Output format for commands that print data.
    #[arg(long, short, global = true, env = "DMS_OUTPUT", value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How data is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns and sentences, for people.
    Table,
    /// JSON, for scripts.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground until SIGINT or SIGTERM.
    Run,
    /// Show the running daemon's version, DID and uptime (through the local API).
    Info,
    /// Manage the keys in the encrypted keystore.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Show and change the configuration ($DMS_HOME/config.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version of this dms binary.
    Version,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// `dms key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key pair and store it encrypted (passphrase from DMS_PASSPHRASE or a prompt).
    New {
        /// Key name. Default: the node key (node.key, "dms").
        name: Option<String>,
        /// Key type.
        #[arg(long = "type", short = 't', default_value = "ed25519", value_parser = ["ed25519", "secp256k1"])]
        key_type: String,
    },
    /// List the keys in the keystore.
    List,
    /// Print the DID of a key.
    Did {
        /// Key name. Default: the node key.
        name: Option<String>,
    },
    /// Show a key's public details (never the secret).
    Show {
        /// Key name. Default: the node key.
        name: Option<String>,
    },
}

/// `dms config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file, then environment, then flags).
    Show,
    /// Print one value.
    Get {
        /// Dotted key, e.g. api.addr.
        key: String,
    },
    /// Check and write one value, keeping the file's comments.
    Set {
        /// Dotted key, e.g. api.addr.
        key: String,
        /// The new value, e.g. 127.0.0.1:9100.
        value: String,
    },
    /// Print the path of the configuration file.
    Path,
}
