//! `dms key`: the arguments.

use clap::Subcommand;

/// `dms key ...`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key pair and store it encrypted (passphrase from DMS_PASSPHRASE,
    /// DMS_PASSPHRASE_FILE or a prompt).
    New {
        /// Key name. Default: the node key (node.key, "dms").
        name: Option<String>,
        /// Key type.
        #[arg(long = "type", short = 't', default_value = "ed25519", value_parser = ["ed25519", "secp256k1"])]
        key_type: String,
        /// Succeed without changing anything when the key exists (a service's first
        /// start creates its key this way).
        #[arg(long)]
        if_missing: bool,
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
