//! Command-line arguments (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod agent;
mod bench;
mod contract;
mod devnet;
mod key;
mod telemetry;
pub use agent::AgentCommand;
pub use bench::BenchCommand;
pub use contract::{ContractCommand, ModelName};
pub use devnet::{DevnetCommand, FaultCommand};
pub use key::KeyCommand;
pub use telemetry::{EventsArgs, LogLevelArgs};

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
    /// The daemon's API socket, for a daemon of another home or user (e.g. one whose
    /// api.socket_group you are in). Default: the socket of this home's daemon
    /// (api.socket), used whenever it exists and --api-addr is not given.
    #[arg(
        long,
        global = true,
        env = "DMS_API_SOCKET",
        value_name = "PATH",
        conflicts_with = "api_addr"
    )]
    pub api_socket: Option<PathBuf>,
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
    Run {
        /// Multiaddr to listen on for peers (repeatable); replaces network.listen.
        #[arg(long, value_name = "MULTIADDR")]
        listen: Vec<String>,
        /// Multiaddr of a peer to join through, with /p2p/<peer id> (repeatable);
        /// replaces network.bootstrap.
        #[arg(long, value_name = "MULTIADDR")]
        bootstrap: Vec<String>,
    },
    /// Show the running daemon's version, DID and uptime (through the local API).
    Info,
    /// Open the web dashboard of the running daemon in a browser, logged in with a
    /// one-time link (valid 2 minutes, once).
    Dashboard {
        /// Only print the login URL.
        #[arg(long)]
        url: bool,
    },
    /// One screen for an operator: the node, peers, resources, what runs here, what it
    /// orchestrates, recent failures with their reasons.
    Status {
        /// Redraw every 2 s until interrupted.
        #[arg(long, short)]
        watch: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Manage the keys in the encrypted keystore.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage capability contexts: trust anchors, grants, delegations, revocations.
    #[command(subcommand)]
    Cap(CapCommand),
    /// Talk to actors through the daemon: invoke a behavior, broadcast, show the handle.
    /// Envelopes are signed here with a capability context's key (`user` by default).
    #[command(subcommand)]
    Actor(ActorCommand),
    /// Peers of the network: list, self, ping, connect, dht, score.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Offer this machine's resources to the network (`dms onboard --cpu 2 --ram 4GiB
    /// --disk 20GiB`), or show what is offered (`dms onboard status`).
    #[command(args_conflicts_with_subcommands = true)]
    Onboard {
        /// `status`.
        #[command(subcommand)]
        command: Option<OnboardCommand>,
        /// The amounts.
        #[command(flatten)]
        amounts: OnboardArgs,
    },
    /// Withdraw this machine's offer (refused while allocations run).
    Offboard {
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Measure CPU, memory and disk (bounded in time, with progress) and record the
    /// results with the node.
    Benchmark {
        /// Time budget for all the steps, e.g. 15s.
        #[arg(long, default_value = "15s")]
        budget: String,
        /// Directory for the disk test (default: the dms home).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Describe this machine's hardware (`--usage` for live usage).
    Hardware {
        /// Show live usage instead of the specification.
        #[arg(long)]
        usage: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Deploy an ensemble through this node and follow it: bidding, committing,
    /// starting, running, per allocation; ends with a summary and task outputs.
    Deploy {
        /// The ensemble (YAML or JSON).
        file: PathBuf,
        /// Only ask for bids and show candidates with scores and every rejection with
        /// its reason; reserve nothing.
        #[arg(long)]
        plan: bool,
        /// Placement deadline, e.g. 2m (default: deployment.default_timeout).
        #[arg(long, value_name = "DURATION")]
        deadline: Option<String>,
        /// Return once submitted; follow later with `dms deployments status --follow`.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Measure the system: `dms bench deploy` (submit-to-running latency beside the
    /// executor's own start time).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Deployments orchestrated by this node: list, status, logs, manifest, usage,
    /// shutdown, prune.
    #[command(subcommand)]
    Deployments(DeploymentsCommand),
    /// Contracts between this node and others, signed by both: new, sign, list, show,
    /// revoke.
    #[command(subcommand)]
    Contract(ContractCommand),
    /// The node's recent events (deployments, allocations, bids, refusals, executors,
    /// peers): `dms events --deployment ID --since 10m -f`.
    Events(EventsArgs),
    /// Show or change a node's log level while it runs (`dms log-level debug`).
    LogLevel(LogLevelArgs),
    /// A local network of dms nodes in one command: `dms devnet up --nodes 3`.
    #[command(subcommand)]
    Devnet(DevnetCommand),
    /// Show and change the configuration ($DMS_HOME/config.toml).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Keep keys unlocked for a while (`dms agent start --for 15m`), so that signed
    /// commands answer at once; `dms agent lock` forgets them.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Check whether this host can run the executors: Docker, cgroups, KVM, TUN, NVIDIA
    /// container toolkit, free disk. Says what to do for each check that does not pass.
    Doctor,
    /// Check an ensemble file: every error with its line, column and a fix where known.
    Validate {
        /// The ensemble (YAML or JSON).
        file: PathBuf,
    },
    /// Print a commented starter ensemble.
    Scaffold {
        /// The executor of the example allocation.
        #[arg(long, value_enum, default_value_t = ScaffoldExecutor::Docker)]
        executor: ScaffoldExecutor,
        /// Write to this new file instead of stdout (never overwrites).
        #[arg(long = "out", short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Translate a docker-compose, Kubernetes or Nomad file into an ensemble.
    Translate {
        /// The file to translate.
        file: PathBuf,
        /// Its format (default: detected from the name and content).
        #[arg(long, value_enum)]
        from: Option<TranslateFrom>,
        /// Write to this new file instead of stdout (never overwrites).
        #[arg(long = "out", short = 'O', value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Stop and remove every workload this home's node left running (its containers and
    /// VMs), e.g. before uninstalling. The daemon must be stopped first.
    Cleanup,
    /// Print the version of this dms binary.
    Version,
    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Write the docs site's generated references into a folder (scripts/docs).
    #[command(hide = true)]
    DocsGen { out: PathBuf },
}

/// Executors `dms scaffold` can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScaffoldExecutor {
    /// A container image.
    Docker,
    /// A WebAssembly (WASI) module.
    Wasm,
    /// A micro virtual machine.
    Vm,
}

/// Formats `dms translate` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TranslateFrom {
    /// docker-compose.
    Compose,
    /// Kubernetes manifests.
    Kubernetes,
    /// Nomad job (HCL or JSON).
    Nomad,
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

/// What a grant or delegation gives.
#[derive(Debug, Args)]
pub struct GrantArgs {
    /// The context to act as.
    #[arg(long, short)]
    pub context: String,
    /// Capability path(s) granted, e.g. /dms/node/peers (implies every path under it).
    #[arg(long = "cap", value_name = "PATH")]
    pub caps: Vec<String>,
    /// Broadcast topic(s) granted.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Expiry as an RFC 3339 time, e.g. 2027-01-01T00:00:00Z.
    #[arg(long, conflicts_with = "duration")]
    pub expiry: Option<String>,
    /// Lifetime from now, e.g. 1h, 30d.
    #[arg(long)]
    pub duration: Option<String>,
    /// How many further delegations the audience may make.
    #[arg(long)]
    pub depth: Option<u32>,
    /// Bind the grant to one subject DID (whose behaviors may be invoked).
    #[arg(long)]
    pub subject: Option<String>,
    /// The DID receiving the capability.
    pub audience: String,
}

/// `dms cap ...`
#[derive(Debug, Subcommand)]
pub enum CapCommand {
    /// Create a capability context for an identity.
    New {
        /// Context name (`dms` is the node's, `user` the user's, or an organisation).
        name: String,
        /// Key the context belongs to. Default: the node key for `dms`, else a key of the same name.
        #[arg(long)]
        key: Option<String>,
    },
    /// Add a trust anchor: a root DID, or a require/provide token.
    Anchor {
        /// The context.
        #[arg(long, short)]
        context: String,
        /// Trust this DID fully.
        #[arg(long, group = "anchor")]
        root: Option<String>,
        /// Admit other issuers for what this token grants.
        #[arg(long, group = "anchor")]
        require: Option<String>,
        /// A token delegated to this identity, to present and delegate from.
        #[arg(long, group = "anchor")]
        provide: Option<String>,
    },
    /// Issue a root capability token from this context's identity.
    Grant(GrantArgs),
    /// Delegate part of a provide anchor to another DID.
    Delegate(GrantArgs),
    /// Revoke a token (by content id or token), or import someone's revocation token.
    Revoke {
        /// The context.
        #[arg(long, short)]
        context: String,
        /// A content id, a `dmscap1.` delegation (its last token is revoked), or a
        /// `dmscap1.` revocation issued elsewhere (imported).
        target: String,
    },
    /// Decide whether a token would let a DID invoke a behavior (what a node checks).
    Check {
        /// The context deciding.
        #[arg(long, short)]
        context: String,
        /// Who invokes.
        #[arg(long)]
        invoker: String,
        /// The behavior, e.g. /dms/node/peers/list.
        #[arg(long)]
        behavior: String,
        /// The broadcast topic, for broadcasts.
        #[arg(long)]
        topic: Option<String>,
        /// The subject (default: the context's own DID).
        #[arg(long)]
        subject: Option<String>,
        /// The `dmscap1.` chain presented (none for a root).
        token: Option<String>,
    },
    /// List contexts with their anchors and revocations.
    List {
        /// Only this context.
        #[arg(long, short)]
        context: Option<String>,
    },
    /// Remove a root or anchor from a context, or the whole context.
    Remove {
        /// The context.
        #[arg(long, short)]
        context: String,
        /// The root DID or anchor content id to remove.
        #[arg(required_unless_present = "all")]
        what: Option<String>,
        /// Remove the whole context.
        #[arg(long)]
        all: bool,
    },
}

/// Who signs, where to, and how long to wait (shared by `dms actor` and `dms peers`).
#[derive(Clone, Debug, Args)]
pub struct ActorTarget {
    /// Capability context whose key signs and whose tokens authorize.
    #[arg(long, short, default_value = "user")]
    pub context: String,
    /// The node to address: its peer id or DID. Default: the local node.
    #[arg(long, short)]
    pub dest: Option<String>,
    /// How long to wait for the answer (also the envelope's validity), e.g. 10s.
    #[arg(long, short, default_value = "10s")]
    pub timeout: String,
}

/// `dms actor ...`
#[derive(Debug, Subcommand)]
pub enum ActorCommand {
    /// Print the handle of the local node's root actor.
    Handle,
    /// Invoke a behavior and print its answer; arguments are KEY=VALUE (JSON values
    /// allowed). Behaviors reached by broadcast are broadcast.
    Cmd {
        /// The behavior, e.g. /dms/node/peers/list.
        behavior: Option<String>,
        /// Payload fields, KEY=VALUE.
        args: Vec<String>,
        /// Print the known behaviors and their arguments.
        #[arg(long)]
        list: bool,
        /// Send a behavior that is not in the table.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Broadcast a behavior on a topic and print every answer that comes back in time.
    Broadcast {
        /// The behavior, e.g. /broadcast/hello.
        behavior: String,
        /// The topic, e.g. /dms/hello.
        #[arg(long)]
        topic: String,
        /// Payload fields, KEY=VALUE.
        args: Vec<String>,
        #[command(flatten)]
        target: ActorTarget,
    },
}

/// `dms peers ...`
#[derive(Debug, Subcommand)]
pub enum PeersCommand {
    /// Connected peers: id, direct or relayed, round trip, address.
    List {
        #[command(flatten)]
        target: ActorTarget,
    },
    /// This node's peer id, listen addresses and NAT status.
    #[command(name = "self")]
    Self_ {
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Measure an actor round trip to a peer.
    Ping {
        /// The peer id.
        peer: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Connect to a peer by multiaddr (with /p2p/<peer id>).
    Connect {
        /// The address.
        address: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// The DHT routing table.
    Dht {
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Gossipsub scores of connected peers.
    Score {
        #[command(flatten)]
        target: ActorTarget,
    },
}

/// The amounts `dms onboard` offers.
#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// CPU cores, e.g. 4, 2.5 or 500m.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory, e.g. 8GiB.
    #[arg(long)]
    pub ram: Option<String>,
    /// Disk, e.g. 50GiB.
    #[arg(long)]
    pub disk: Option<String>,
    /// GPU indices to offer, e.g. 0,1.
    #[arg(long, value_delimiter = ',')]
    pub gpus: Vec<u32>,
    #[command(flatten)]
    pub target: ActorTarget,
}

/// `dms onboard ...`
#[derive(Debug, Subcommand)]
pub enum OnboardCommand {
    /// What is onboarded, committed, allocated and free, and the latest benchmarks.
    Status {
        #[command(flatten)]
        target: ActorTarget,
    },
}

/// `dms deployments ...`
#[derive(Debug, Subcommand)]
pub enum DeploymentsCommand {
    /// List deployments, newest first.
    List {
        /// Only those in this state (bidding, running, completed, failed, shut_down, …).
        #[arg(long)]
        state: Option<String>,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// A deployment's allocations and their state (`--follow`: print events until it
    /// finishes).
    Status {
        /// The deployment id.
        id: String,
        /// Print events as they happen, until the deployment finishes.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// A deployment in full, for people: state, deadline, attempts, where each node
    /// went and with which score, the allocations and the latest events.
    Info {
        /// The deployment id.
        id: String,
        /// How many of the latest events to show.
        #[arg(long, default_value_t = 15)]
        events: usize,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// The whole deployment record as JSON: ensemble, placement, allocations, events.
    Manifest {
        /// The deployment id.
        id: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// The output of a deployment's allocations.
    Logs {
        /// The deployment id.
        id: String,
        /// Only this allocation.
        #[arg(long, short)]
        allocation: Option<String>,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<usize>,
        /// Keep printing new lines until the allocations exit.
        #[arg(long, short = 'f')]
        follow: bool,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// What a deployment's `outputs` published: object, size and SHA-256 of each
    /// (`--publish`: publish the running allocations' outputs now, then list them).
    Outputs {
        /// The deployment id.
        id: String,
        /// Publish now (a service's outputs are published only on request; a task's
        /// also when it ends), and wait until every allocation asked has finished.
        #[arg(long)]
        publish: bool,
        /// Only this allocation (with `--publish`).
        #[arg(long, short)]
        allocation: Option<String>,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// The usage receipts a deployment's providers signed, per allocation, and what
    /// they owe under each contract, beside the budget.
    Usage {
        /// The deployment id.
        id: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Give a deployment a usage receipt by hand (one its provider kept, from `dms
    /// contract show` there): taken exactly like one the provider sent.
    Receipt {
        /// The deployment id.
        id: String,
        /// A file holding the receipt's text form (`-`: standard input).
        file: PathBuf,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Stop every allocation of a deployment and release its resources.
    Shutdown {
        /// The deployment id.
        id: String,
        #[command(flatten)]
        target: ActorTarget,
    },
    /// Forget finished deployments (completed, failed, shut down).
    Prune {
        #[command(flatten)]
        target: ActorTarget,
    },
}
