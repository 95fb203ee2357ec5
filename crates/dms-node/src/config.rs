//! The node configuration: `$DMS_HOME/config.toml`, environment overrides and edits.
//!
//! One table, [`KEYS`], names every key with what it expects and what it does. The
//! default file is rendered from it (so every key carries a comment), environment
//! overrides `DMS_<SECTION>_<KEY>` are looked up from it, and `dms config set` checks a
//! new value against it before the file is rewritten (comments preserved, atomically).
//!
//! Values are checked by deserializing the whole [`Config`] with only that key changed,
//! so a bad value is always reported with its key, the value and the expected form.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod file;
mod keys;
mod telemetry;
#[cfg(test)]
mod tests;
mod vm;

pub use file::{default_file, init, load, load_with_env, set};
pub use keys::{KEYS, KeyDoc, env_var, lookup};
pub use telemetry::TelemetryConfig;
pub use vm::VmConfig;

/// The whole node configuration. Every field has a default; a missing file or section
/// means defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Identity and life cycle of the node.
    pub node: NodeConfig,
    /// The local REST API.
    pub api: dms_api::Config,
    /// The peer-to-peer network.
    pub network: NetworkConfig,
    /// The embedded database.
    pub store: StoreConfig,
    /// Logging.
    pub log: LogConfig,
    /// Deployments: as orchestrator and as provider.
    pub deployment: DeploymentConfig,
    /// What one user or peer may make this node hold.
    pub quotas: QuotasConfig,
    /// Credentials for ensembles' stores.
    pub storage: StorageConfig,
    /// Deployments' private networks on this provider.
    pub subnet: SubnetConfig,
    /// Events, traces and metrics: where they go and how long they are kept.
    pub telemetry: TelemetryConfig,
    /// Virtual machine allocations.
    pub vm: VmConfig,
}

/// `[subnet]`: how this provider carries deployments' private networks: allocations get
/// an interface (`dms0`) in their namespace, and packets to allocations on other
/// providers travel as QUIC datagrams from this UDP endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubnetConfig {
    /// Whether allocations here may join subnets (needs root: CAP_NET_ADMIN).
    pub enabled: bool,
    /// The UDP address the endpoint listens on (`0.0.0.0:0`: every address, a free port).
    pub listen: String,
    /// The MTU of allocations' interfaces.
    pub mtu: u16,
}

impl Default for SubnetConfig {
    fn default() -> SubnetConfig {
        SubnetConfig { enabled: true, listen: "0.0.0.0:0".into(), mtu: 1400 }
    }
}

impl SubnetConfig {
    /// The listen address, parsed.
    pub fn listen(&self) -> Result<std::net::SocketAddr, Error> {
        self.listen.trim().parse().map_err(|_| {
            Error::Rule(format!(
                "subnet.listen: {:?} is not an address:port such as 0.0.0.0:4001",
                self.listen
            ))
        })
    }
}

/// Keys whose values `dms config show` and `dms config get` never print.
pub const SECRET_KEYS: &[&str] = &["storage.secret_access_key", "storage.session_token"];

/// `[storage]`: S3 credentials this node's orchestrators use for ensembles' `storage`
/// when `dms deploy` sends none (its environment's `AWS_*` variables come first). They
/// are used here only — providers get presigned URLs — and, unlike credentials sent
/// with a deployment, they survive a restart of this node. Keep the file private.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: String,
    /// A session token, for temporary credentials.
    pub session_token: String,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl StorageConfig {
    /// The credentials, when both keys are set.
    pub fn credentials(&self) -> Option<dms_protocol::storage::Credentials> {
        let set = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
        Some(dms_protocol::storage::Credentials {
            access_key_id: set(&self.access_key_id)?,
            secret_access_key: set(&self.secret_access_key)?,
            session_token: set(&self.session_token),
        })
    }
}

/// `[deployment]`: how this node orchestrates deployments and bids for them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeploymentConfig {
    /// Longest a bid window stays open.
    #[serde(with = "dms_types::units::serde_duration")]
    pub bid_window: Duration,
    /// How many advertised providers per ensemble node a placement asks first (0: ask
    /// every peer, by broadcast).
    pub shortlist: usize,
    /// How often this node advertises its capacity when nothing changes (also soon after
    /// its free resources change); 0s: never.
    #[serde(with = "dms_types::units::serde_duration")]
    pub advertise_every: Duration,
    /// Placement deadline when `dms deploy` gives none.
    #[serde(with = "dms_types::units::serde_duration")]
    pub default_timeout: Duration,
    /// Longest this node holds a bid's reservation before it is committed.
    #[serde(with = "dms_types::units::serde_duration")]
    pub max_reservation: Duration,
    /// Refuse bid requests whose ensemble references no contract.
    pub require_contract: bool,
    /// How often an allocation under a contract signs a usage receipt.
    #[serde(with = "dms_types::units::serde_duration")]
    pub receipt_every: Duration,
    /// Price per hour this node asks (0: free).
    pub price_per_hour: f64,
    /// Where this machine is: `continent[/country[/city]]`, e.g. `EU/DE/Berlin`
    /// (empty: not said, and ensembles that accept only some places skip it).
    pub location: String,
    /// How often allocations of the deployments this node orchestrates send a
    /// heartbeat.
    #[serde(with = "dms_types::units::serde_duration")]
    pub heartbeat_interval: Duration,
    /// How long a provider may be silent before this node, as orchestrator, checks it
    /// and declares it lost (then its allocations are placed elsewhere).
    #[serde(with = "dms_types::units::serde_duration")]
    pub lost_after: Duration,
    /// How long allocations of this node's deployments run on without an answer from
    /// it before their providers stop them.
    #[serde(with = "dms_types::units::serde_duration")]
    pub stop_after: Duration,
    /// The address users reach this machine's published ports at (empty: the address
    /// of the interface the default route leaves by, else 127.0.0.1).
    pub public_address: String,
    /// Attributes this machine advertises beside the detected ones, `key=value` pairs
    /// separated by commas (`rack=b4, gpu.class=a100`).
    pub attributes: String,
    /// Most output kept per allocation on this provider (`dms deployments logs`), a
    /// size such as `16MiB`; the oldest is dropped beyond it, and reads say so.
    pub log_cap: String,
    /// Where allocations' volumes live (empty: `volumes` beside the store,
    /// `$DMS_HOME/db/volumes`).
    pub volumes_dir: String,
    /// Host paths that `bind` volumes may name (the path or below it), separated by
    /// commas; empty: binds are refused.
    pub bind_paths: String,
}

impl DeploymentConfig {
    /// [`DeploymentConfig::log_cap`] in bytes.
    pub fn log_cap_bytes(&self) -> Result<u64, Error> {
        dms_types::units::parse_bytes(&self.log_cap)
            .map_err(|e| Error::Rule(format!("deployment.log_cap: {e}")))
    }

    /// [`DeploymentConfig::attributes`] parsed; an entry without `=` is refused naming
    /// the key.
    pub fn attributes(&self) -> Result<std::collections::BTreeMap<String, String>, Error> {
        self.attributes
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|entry| match entry.split_once('=') {
                Some((key, value)) if !key.trim().is_empty() => {
                    Ok((key.trim().to_string(), value.trim().to_string()))
                }
                _ => Err(Error::Rule(format!(
                    "deployment.attributes: {entry:?} is not key=value (e.g. \"rack=b4, gpu.class=a100\")"
                ))),
            })
            .collect()
    }

    /// [`DeploymentConfig::public_address`], or the address of the interface the
    /// default route leaves by (found by connecting a UDP socket, which sends nothing),
    /// else `127.0.0.1`.
    pub fn public_host(&self) -> String {
        let configured = self.public_address.trim();
        if !configured.is_empty() {
            return configured.to_string();
        }
        std::net::UdpSocket::bind(("0.0.0.0", 0))
            .and_then(|socket| {
                socket.connect(("192.0.2.1", 9))?;
                socket.local_addr()
            })
            .map(|addr| addr.ip())
            .ok()
            .filter(|ip| !ip.is_unspecified())
            .map_or_else(|| "127.0.0.1".to_string(), |ip| ip.to_string())
    }

    /// [`DeploymentConfig::bind_paths`] as paths; a relative one is refused.
    pub fn bind_paths(&self) -> Result<Vec<std::path::PathBuf>, Error> {
        self.bind_paths
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match std::path::Path::new(p).is_absolute() {
                true => Ok(p.into()),
                false => Err(Error::Rule(format!(
                    "deployment.bind_paths: {p:?} is not an absolute path"
                ))),
            })
            .collect()
    }

    /// [`DeploymentConfig::location`] parsed; `None` when not said.
    pub fn location(&self) -> Option<dms_types::capability::Location> {
        let mut parts = self.location.split('/').map(str::trim).filter(|p| !p.is_empty());
        let continent = parts.next()?.to_string();
        Some(dms_types::capability::Location {
            continent: Some(continent),
            country: parts.next().map(String::from),
            city: parts.next().map(String::from),
        })
    }
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        DeploymentConfig {
            bid_window: Duration::from_secs(3),
            shortlist: 1,
            advertise_every: Duration::from_secs(10),
            default_timeout: Duration::from_secs(120),
            max_reservation: Duration::from_secs(30),
            require_contract: false,
            receipt_every: Duration::from_secs(60),
            price_per_hour: 0.0,
            location: String::new(),
            heartbeat_interval: Duration::from_secs(1),
            lost_after: Duration::from_secs(5),
            stop_after: Duration::from_secs(60),
            public_address: String::new(),
            attributes: String::new(),
            log_cap: "16MiB".into(),
            volumes_dir: String::new(),
            bind_paths: String::new(),
        }
    }
}

/// `[quotas]`: what one user or one peer may make this node hold, and how long finished
/// deployments are kept.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Unfinished deployments per submitter.
    pub deployments_per_user: usize,
    /// Unfinished deployments in all.
    pub deployments: usize,
    /// Finished deployments kept.
    pub keep_finished: usize,
    /// How long finished deployments are kept.
    #[serde(with = "dms_types::units::serde_duration")]
    pub keep_finished_for: Duration,
    /// Reservations one peer may hold here.
    pub reservations_per_peer: usize,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        let orchestrator = dms_orchestrator::Quotas::default();
        QuotasConfig {
            deployments_per_user: orchestrator.deployments_per_user,
            deployments: orchestrator.deployments,
            keep_finished: orchestrator.keep_finished,
            keep_finished_for: orchestrator.keep_finished_for,
            reservations_per_peer: 64,
        }
    }
}

impl QuotasConfig {
    /// The orchestrator's share.
    pub fn orchestrator(&self) -> dms_orchestrator::Quotas {
        dms_orchestrator::Quotas {
            deployments_per_user: self.deployments_per_user,
            deployments: self.deployments,
            keep_finished: self.keep_finished,
            keep_finished_for: self.keep_finished_for,
        }
    }
}

/// `[network]`: how the node joins the peer-to-peer network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Multiaddrs (with `/p2p/<peer id>`) of peers to join through.
    pub bootstrap: Vec<String>,
    /// Find peers on the local network with mDNS.
    pub mdns: bool,
    /// Relay connections for peers behind NAT.
    pub relay_service: bool,
    /// Multiaddrs (with `/p2p/<peer id>`) of relays this node is reachable through when
    /// peers cannot dial it (behind NAT): it keeps a reservation on each.
    pub relays: Vec<String>,
    /// Largest direct message, in bytes.
    pub max_message_bytes: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            listen: vec!["/ip4/0.0.0.0/tcp/9000".into(), "/ip4/0.0.0.0/udp/9000/quic-v1".into()],
            bootstrap: Vec::new(),
            mdns: true,
            relay_service: false,
            relays: Vec::new(),
            max_message_bytes: 1024 * 1024,
        }
    }
}

impl NetworkConfig {
    /// The network crate's settings, with every address parsed (errors name the key).
    pub fn to_network(&self) -> Result<dms_network::Config, Error> {
        let parse = |key: &str, list: &[String]| -> Result<Vec<dms_network::Multiaddr>, Error> {
            list.iter()
                .map(|a| {
                    a.parse().map_err(|e| Error::InvalidValue {
                        key: key.into(),
                        value: format!("{a:?}"),
                        expected: "multiaddrs such as \"/ip4/0.0.0.0/tcp/9000\"",
                        detail: format!("{e}"),
                    })
                })
                .collect()
        };
        Ok(dms_network::Config {
            listen: parse("network.listen", &self.listen)?,
            bootstrap: parse("network.bootstrap", &self.bootstrap)?,
            mdns: self.mdns,
            relay_service: self.relay_service,
            relays: parse("network.relays", &self.relays)?,
            max_message_bytes: self.max_message_bytes,
            ..dms_network::Config::default()
        })
    }
}

/// `[node]`: identity and life cycle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// Keystore entry used as the node identity.
    pub key: String,
    /// Grace period for in-flight work after SIGINT/SIGTERM.
    #[serde(with = "dms_types::units::serde_duration")]
    pub shutdown_timeout: Duration,
    /// Time budget of the benchmarks run when the machine is first onboarded (0: none).
    #[serde(with = "dms_types::units::serde_duration")]
    pub benchmark_budget: Duration,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            key: default_node_key(),
            shutdown_timeout: Duration::from_secs(10),
            benchmark_budget: Duration::from_secs(15),
        }
    }
}

/// The keystore entry a node uses unless configured otherwise.
pub fn default_node_key() -> String {
    "dms".into()
}

/// `[store]`: the embedded database.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database file; relative paths are under the dms home.
    pub path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { path: PathBuf::from("db/dms.redb") }
    }
}

impl StoreConfig {
    /// The database file, resolved against `home` when relative.
    pub fn resolve(&self, home: &Path) -> PathBuf {
        if self.path.is_absolute() { self.path.clone() } else { home.join(&self.path) }
    }
}

/// `[log]`: logging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter; `RUST_LOG` wins when set.
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { level: "info".into(), format: LogFormat::Text }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// Checks the rules that span several keys (each message names the keys).
    pub fn validate(&self) -> Result<(), Error> {
        self.api.validate().map_err(Error::Rule)?;
        self.network.to_network()?;
        if self.node.key.is_empty() {
            return Err(Error::Rule("node.key must name a key in the keystore".into()));
        }
        if self.deployment.location.split('/').filter(|p| !p.trim().is_empty()).count() > 3 {
            return Err(Error::Rule(format!(
                "deployment.location is {:?}; expected continent[/country[/city]], e.g. EU/DE/Berlin",
                self.deployment.location
            )));
        }
        let price = self.deployment.price_per_hour;
        if !price.is_finite() || price < 0.0 {
            return Err(Error::Rule(format!(
                "deployment.price_per_hour is {price}; it must be a number, 0 or more"
            )));
        }
        let d = &self.deployment;
        if d.heartbeat_interval.is_zero()
            || d.lost_after <= d.heartbeat_interval
            || d.stop_after <= d.lost_after
        {
            return Err(Error::Rule(format!(
                "deployment.heartbeat_interval ({:?}) < deployment.lost_after ({:?}) < \
                 deployment.stop_after ({:?}) must hold, the first above zero: a provider is \
                 declared lost only after missing heartbeats, and allocations stop themselves \
                 only after their orchestrator could have replaced them",
                d.heartbeat_interval, d.lost_after, d.stop_after
            )));
        }
        self.telemetry.validate()?;
        self.vm.validate()?;
        self.deployment.attributes()?;
        self.deployment.log_cap_bytes()?;
        let q = &self.quotas;
        for (key, value) in [
            ("quotas.deployments_per_user", q.deployments_per_user),
            ("quotas.deployments", q.deployments),
            ("quotas.reservations_per_peer", q.reservations_per_peer),
        ] {
            if value == 0 {
                return Err(Error::Rule(format!(
                    "{key} is 0; it must be 1 or more (0 would refuse every request)"
                )));
            }
        }
        Ok(())
    }
}

/// Configuration errors. Each says which key or file, what was found, and what is
/// expected.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value does not have the form its key expects. Nothing was written.
    #[error("invalid value {value} for `{key}`: expected {expected} ({detail})")]
    InvalidValue {
        /// The dotted key, e.g. `api.addr`.
        key: String,
        /// The value as given.
        value: String,
        /// The form the key expects.
        expected: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// The key does not exist. Nothing was written.
    #[error("unknown config key `{key}`{}; run `dms config show` to list the keys",
        suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownKey {
        /// The key as given.
        key: String,
        /// The closest known key, when one is close.
        suggestion: Option<String>,
    },
    /// An environment override has a bad value.
    #[error("environment variable {var}: {source}")]
    Env {
        /// The variable, e.g. `DMS_API_ADDR`.
        var: String,
        /// What is wrong with it.
        source: Box<Error>,
    },
    /// The file is not valid TOML, or holds a bad value.
    #[error("config file {}: {message}", path.display())]
    File {
        /// The config file.
        path: PathBuf,
        /// What is wrong, with the key and position where known.
        message: String,
    },
    /// A rule across keys is broken; the message names the keys.
    #[error("{0}")]
    Rule(String),
    /// The file could not be read or written.
    #[error("cannot access config file {}: {source}", path.display())]
    Io {
        /// The config file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
