//! `dms devnet up|status|cli|deploy|restart|down`: a local network of dms nodes in one
//! command.
//!
//! `up` creates, under one directory, a home per node (its own key, config and store)
//! and a home for a devnet user (key `user` and capability context `user`), starts every
//! node as its own `dms run` process on loopback (node 0 first; the others bootstrap
//! from it), waits until each says ready, and anchors the devnet user as a root of every
//! node's `dms` context; the user onboards each node and grants it the deployment
//! protocol (see `prepare`). The state (pids, API addresses, peer ids, DIDs) is kept in
//! `devnet.json`; each node appends to `<dir>/node-N/dms.log` (a restart keeps the earlier
//! run's lines). `cli` runs a dms command as
//! the devnet user against node 0 (`deploy` runs `dms deploy` that way); `restart`
//! stops one node and starts it again; `down` stops every node (SIGTERM, then SIGKILL
//! after the grace period). The nodes share one machine, so they skip the benchmark of
//! a first onboarding (set `DMS_NODE_BENCHMARK_BUDGET` to run it anyway).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::Ctx;
use super::devnet_net::Isolation;
use super::devnet_place::Place;
use super::devnet_ssh::{Remote, quote};
pub(super) use super::devnet_start::{Spot, start_node};
use crate::cli::Output;
use crate::output;

/// One node of the devnet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DevnetNode {
    /// `node-N`.
    pub name: String,
    /// Its home.
    pub home: PathBuf,
    /// Its process id.
    pub pid: u32,
    /// Its local API address.
    pub api: String,
    /// Its DID.
    pub did: String,
    /// Its peer id.
    pub peer_id: String,
    /// Its listen multiaddrs.
    pub addrs: Vec<String>,
    /// Its network namespace, in an isolated devnet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
    /// Its location label (`deployment.location`), when given one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Its host, when it runs on another machine (`up --hosts`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<Remote>,
}

impl DevnetNode {
    /// Where it runs.
    pub(super) fn place(&self) -> Place {
        match (&self.remote, &self.netns) {
            (Some(remote), _) => Place::Host(remote.clone()),
            (None, Some(ns)) => Place::Netns(ns.clone()),
            (None, None) => Place::Here,
        }
    }

    /// Whether its process runs.
    pub(super) fn alive(&self) -> bool {
        self.place().alive(self.pid)
    }

    /// Sends `signal` to its process.
    pub(super) fn signal(&self, signal: rustix::process::Signal) {
        self.place().signal(self.pid, signal);
    }

    /// The devnet user's home where it runs (a copy on its host, when remote).
    pub(super) fn user_home(&self, devnet: &Devnet) -> PathBuf {
        match &self.remote {
            Some(remote) => PathBuf::from(remote.path("user")),
            None => devnet.user_home.clone(),
        }
    }
}

/// What `devnet.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Devnet {
    /// The nodes, node 0 first.
    pub nodes: Vec<DevnetNode>,
    /// The devnet user's home (key and context `user`).
    pub user_home: PathBuf,
    /// The devnet user's DID.
    pub user_did: String,
    /// The isolated network, when `up --isolated` made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
}

pub(super) const STATE: &str = "devnet.json";

pub(super) fn devnet_dir(ctx: &Ctx, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| ctx.home.root().join("devnet"))
}

/// The passphrase of every devnet key: `DMS_PASSPHRASE`, or one generated on first use
/// and kept in `<dir>/passphrase` (0600).
pub(super) fn passphrase(dir: &Path) -> anyhow::Result<String> {
    if let Ok(passphrase) = std::env::var("DMS_PASSPHRASE")
        && !passphrase.is_empty()
    {
        return Ok(passphrase);
    }
    let path = dir.join("passphrase");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_string());
    }
    let generated = format!("devnet-{:032x}", rand::random::<u128>());
    write_private(&path, &generated)?;
    Ok(generated)
}

pub(super) fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Runs this dms binary here with `args` to completion; its stdout on success.
fn dms(home: &Path, args: &[&str], passphrase: &str) -> anyhow::Result<String> {
    Place::Here.dms(home, args, passphrase, home)
}

pub(super) fn load(dir: &Path) -> anyhow::Result<Option<Devnet>> {
    let path = dir.join(STATE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is damaged", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// What `dms devnet up` asks for besides the node count.
#[derive(Debug, Default)]
pub(super) struct UpOptions {
    /// Each node in its own namespace.
    pub isolated: bool,
    /// CPU limit of each node, in cores.
    pub cpus: Option<f64>,
    /// Memory limit of each node, e.g. `512MiB`.
    pub memory: Option<String>,
    /// Location labels, one per node, repeated when fewer.
    pub locations: Vec<String>,
    /// The hosts file of a devnet on other machines.
    pub hosts: Option<PathBuf>,
}

/// Checks `up`'s request against the devnet folder: the node count (one per host with
/// `--hosts`), no devnet running there, the limits; the hosts.
fn plan_up(
    dir: &Path,
    nodes: Option<usize>,
    options: &UpOptions,
) -> anyhow::Result<(usize, Option<u64>, Vec<Remote>)> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tag = super::devnet_net::tag(&std::fs::canonicalize(dir)?);
    let remotes = match &options.hosts {
        Some(file) => super::devnet_ssh::load_hosts(file, &tag)?,
        None => Vec::new(),
    };
    let nodes = match (nodes, remotes.len()) {
        (Some(n), 0) => n,
        (None, 0) => 3,
        (None, hosts) => hosts,
        (Some(n), hosts) if n == hosts => n,
        (Some(n), hosts) => {
            bail!("--nodes {n}, but the hosts file has {hosts} hosts: one node per host")
        }
    };
    if nodes == 0 || nodes > 16 {
        bail!("--nodes {nodes}: a devnet has 1 to 16 nodes");
    }
    if let Some(existing) = load(dir)?
        && existing.nodes.iter().any(DevnetNode::alive)
    {
        bail!(
            "a devnet is already running in {} (see `dms devnet status`); stop it with \
             `dms devnet down` first",
            dir.display()
        );
    }
    let memory = options
        .memory
        .as_deref()
        .map(|m| dms_types::units::parse_bytes(m).map_err(|e| anyhow!("--memory {m:?}: {e}")))
        .transpose()?;
    if options.cpus.is_some_and(|c| !(c > 0.0 && c <= 1024.0)) {
        bail!("--cpus must be a number of cores above 0, e.g. 0.5");
    }
    Ok((nodes, memory, remotes))
}

pub(super) fn up(
    ctx: &Ctx,
    dir: &Path,
    nodes: Option<usize>,
    options: UpOptions,
) -> anyhow::Result<()> {
    let (nodes, memory, remotes) = plan_up(dir, nodes, &options)?;
    let passphrase = passphrase(dir)?;
    let user_home = dir.join("user");
    if !user_home.join("keys").join("user.json").exists() {
        dms(&user_home, &["key", "new", "user"], &passphrase)?;
        dms(&user_home, &["cap", "new", "user"], &passphrase)?;
    }
    let user_did = dms(&user_home, &["key", "did", "user"], &passphrase)?;
    let isolation = if options.isolated {
        Isolation::check_host()?;
        Some(Isolation::new(&std::fs::canonicalize(dir)?, options.cpus, memory))
    } else {
        None
    };
    // Kept from before the first thing made outside this folder, so that `down` can stop
    // and remove what a failed or interrupted `up` made.
    let mut devnet = Devnet { nodes: Vec::new(), user_home, user_did, isolation };
    write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
    if let Some(isolation) = &devnet.isolation
        && let Err(error) = isolation.create_hub()
    {
        let _ = isolation.destroy(0);
        std::fs::remove_file(dir.join(STATE)).ok();
        return Err(error);
    }
    let progress = output::Progress::new("nodes", nodes as u64, ctx.output == Output::Table);
    for i in 0..nodes {
        let name = format!("node-{i}");
        progress.doing(format!("starting {name}"));
        match up_node(dir, &devnet, i, &options.locations, remotes.get(i), &passphrase) {
            Ok(node) => {
                progress.note(format!("{name}: ready, peer {} api {}", node.peer_id, node.api));
                progress.step();
                devnet.nodes.push(node);
                write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
            }
            Err(error) => {
                progress.finish();
                // Undone as `down` would: the nodes stopped (and waited for), then the
                // namespaces and cgroups of every node tried, this one's included.
                super::devnet_ops::stop_all(&devnet.nodes);
                if let Some(isolation) = &devnet.isolation
                    && let Err(undo) = isolation.destroy(i + 1)
                {
                    eprintln!("cleaning up after the failed start: {undo:#}");
                }
                std::fs::remove_file(dir.join(STATE)).ok();
                return Err(error);
            }
        }
    }
    progress.finish();
    match ctx.output {
        Output::Json => output::json(&devnet),
        Output::Table => {
            print_table(&devnet);
            println!(
                "\nAct as the devnet user with `dms devnet cli <command>`, e.g. `dms devnet cli \
                 peers list`; stop with `dms devnet down`."
            );
            Ok(())
        }
    }
}

/// Makes node `i` (its key; its namespace when isolated; on its host, this binary and
/// the devnet user's home), starts it bootstrapping from node 0, and prepares it as a
/// provider of the devnet user.
fn up_node(
    dir: &Path,
    devnet: &Devnet,
    i: usize,
    locations: &[String],
    remote: Option<&Remote>,
    passphrase: &str,
) -> anyhow::Result<DevnetNode> {
    let name = format!("node-{i}");
    let mut spot = Spot { place: Place::Here, ip: "127.0.0.1".into(), location: None, limit: None };
    if !locations.is_empty() {
        spot.location = Some(locations[i % locations.len()].clone());
    }
    let home = match remote {
        Some(remote) => {
            let exe = std::env::current_exe().context("cannot find the dms binary")?;
            remote.copy(&exe, &remote.path("dms"), "755")?;
            remote.copy_dir(&devnet.user_home, &remote.path("user"))?;
            spot.ip = remote.address.clone();
            spot.location = remote.location.clone().or(spot.location);
            spot.place = Place::Host(remote.clone());
            PathBuf::from(remote.path(&name))
        }
        None => dir.join(&name),
    };
    if let Some(isolation) = &devnet.isolation {
        isolation.add_node(i)?;
        spot.place = Place::Netns(isolation.netns(i));
        spot.ip = Isolation::address(i);
        spot.limit = Some((isolation.clone(), i));
    }
    let has_key = match remote {
        Some(remote) => remote
            .run(&format!("test -e {}", quote(&format!("{}/keys/dms.json", home.display()))))
            .is_ok(),
        None => home.join("keys").join("dms.json").exists(),
    };
    if !has_key {
        spot.place.dms(&home, &["key", "new"], passphrase, &home)?;
    }
    let bootstrap = devnet.nodes.first().and_then(|n| n.addrs.first()).cloned();
    let node = start_node(&name, &home, &spot, bootstrap.as_deref(), passphrase)?;
    let anchor =
        ["--api-addr", &node.api, "cap", "anchor", "-c", "dms", "--root", &devnet.user_did];
    let prepared = node
        .place()
        .dms(&home, &anchor, passphrase, &home)
        .and_then(|_| prepare(devnet, &node, passphrase));
    if let Err(error) = prepared {
        node.signal(rustix::process::Signal::TERM);
        return Err(error);
    }
    Ok(node)
}

/// Makes a started node a provider the devnet user can deploy to: it onboards a slice
/// of the machine ([`ONBOARD`]), and holds a grant from the devnet user for the
/// deployment protocol (`/dms/deployment`, also as a broadcast topic, and
/// `/dms/allocation`), so that the other nodes — which trust the user as a root — accept
/// its bid requests, bids and updates, and the allocation actors they host obey it.
fn prepare(devnet: &Devnet, node: &DevnetNode, passphrase: &str) -> anyhow::Result<()> {
    let (user_home, home) = (devnet.user_home.as_path(), node.home.as_path());
    let api = ["--api-addr", node.api.as_str()];
    let mut onboard = api.to_vec();
    onboard.extend(["onboard", "--cpu", ONBOARD.0, "--ram", ONBOARD.1, "--disk", ONBOARD.2]);
    node.place().dms(&node.user_home(devnet), &onboard, passphrase, home)?;
    let token = dms(
        user_home,
        &[
            "cap",
            "grant",
            "-c",
            "user",
            "--cap",
            "/dms/deployment",
            "--cap",
            "/dms/allocation",
            "--topic",
            "/dms/deployment",
            "--duration",
            "30d",
            &node.did,
        ],
        passphrase,
    )?;
    let token = token
        .split_whitespace()
        .find(|w| w.starts_with("dmscap1."))
        .ok_or_else(|| anyhow!("`dms cap grant` printed no token: {token}"))?;
    let mut anchor = api.to_vec();
    anchor.extend(["cap", "anchor", "-c", "dms", "--provide", token]);
    node.place().dms(home, &anchor, passphrase, home)?;
    Ok(())
}

/// What each devnet node onboards: CPU cores, RAM, disk.
/// (Disk is checked against the machine's free space, which every node shares.)
const ONBOARD: (&str, &str, &str) = ("1", "1GiB", "1GiB");

fn print_table(devnet: &Devnet) {
    let rows: Vec<Vec<String>> = devnet
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                if n.alive() { "running".into() } else { "stopped".into() },
                n.pid.to_string(),
                n.api.clone(),
                n.peer_id.clone(),
            ]
        })
        .collect();
    output::table(&["node", "state", "pid", "api", "peer id"], &rows);
    println!("user: {} (home {})", devnet.user_did, devnet.user_home.display());
}

pub(super) fn status(ctx: &Ctx, dir: &Path) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}: start one with `dms devnet up`", dir.display());
    };
    match ctx.output {
        Output::Json => {
            let nodes: Vec<serde_json::Value> = devnet
                .nodes
                .iter()
                .map(|n| {
                    let mut v = serde_json::to_value(n).unwrap_or_default();
                    v["running"] = serde_json::Value::Bool(n.alive());
                    v
                })
                .collect();
            output::json(&serde_json::json!({ "nodes": nodes, "user_did": devnet.user_did }))
        }
        Output::Table => {
            print_table(&devnet);
            Ok(())
        }
    }
}

pub(super) fn cli(dir: &Path, node: usize, args: &[String]) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}: start one with `dms devnet up`", dir.display());
    };
    let target = devnet
        .nodes
        .get(node)
        .ok_or_else(|| anyhow!("--node {node}: the devnet has {} nodes", devnet.nodes.len()))?;
    let passphrase = passphrase(dir)?;
    let mut env = vec![
        ("DMS_PASSPHRASE".to_string(), passphrase),
        ("DMS_DEVNET_DIR".to_string(), dir.to_string_lossy().into_owned()),
    ];
    // The devnet user's CLI talks to the node's API: same OS user, the node's token.
    if let Some(token) = target.place().token(&target.home) {
        env.push(("DMS_API_TOKEN".into(), token));
    }
    // The node's API listens on loopback where it runs: in its namespace (the CLI runs
    // there), or on its host (reached through an SSH tunnel, so that files named on the
    // command line are read here).
    let (place, api, _tunnel) = match target.place() {
        Place::Host(remote) => {
            let port = target.api.rsplit(':').next().and_then(|p| p.parse().ok());
            let port = port.ok_or_else(|| {
                anyhow!("{}: API address {:?} has no port", target.name, target.api)
            })?;
            let tunnel = remote.tunnel(port)?;
            (Place::Here, tunnel.local.clone(), Some(tunnel))
        }
        place => (place, target.api.clone(), None),
    };
    let mut full = vec!["--home".to_string(), devnet.user_home.to_string_lossy().into_owned()];
    full.extend(["--api-addr".to_string(), api]);
    full.extend(args.iter().cloned());
    let status = place.command(&full, &env)?.status().context("cannot run dms")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
