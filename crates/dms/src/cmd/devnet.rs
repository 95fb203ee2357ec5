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
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::{Deserialize, Serialize};

use super::Ctx;
use super::devnet_net::Isolation;
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
}

impl DevnetNode {
    /// The command prefix that runs a program where this node runs (its namespace).
    pub(super) fn prefix(&self) -> Vec<String> {
        match &self.netns {
            Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
            None => Vec::new(),
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
const READY_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Runs this dms binary with `args` to completion; its stdout on success.
fn dms(home: &Path, args: &[&str], passphrase: &str) -> anyhow::Result<String> {
    dms_with_token(&[], home, args, passphrase, home)
}

/// A command that runs this dms binary after `prefix` (e.g. `ip netns exec NS`).
pub(super) fn dms_command(prefix: &[String]) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
    Ok(match prefix.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(exe);
            command
        }
        None => Command::new(exe),
    })
}

/// [`dms`] run after `prefix` (where the node runs), with the local API token of the
/// daemon of `daemon_home`.
pub(super) fn dms_with_token(
    prefix: &[String],
    home: &Path,
    args: &[&str],
    passphrase: &str,
    daemon_home: &Path,
) -> anyhow::Result<String> {
    let mut command = dms_command(prefix)?;
    match dms_node::home::Home::new(daemon_home).token() {
        Some(token) => command.env("DMS_API_TOKEN", token),
        None => command.env_remove("DMS_API_TOKEN"),
    };
    let output = command
        .arg("--home")
        .arg(home)
        .args(args)
        .env("DMS_PASSPHRASE", passphrase)
        .env_remove("DMS_API_ADDR")
        .stdin(Stdio::null())
        .output()
        .context("cannot run dms")?;
    if !output.status.success() {
        bail!(
            "`dms --home {} {}` failed: {}",
            home.display(),
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
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

/// Whether process `pid` runs. A node this process started and that has exited is
/// reaped first (a zombie still answers signals, and would look alive).
pub(super) fn alive(pid: u32) -> bool {
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
        return false;
    };
    // Not our child: ECHILD, nothing to reap.
    let _ = rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG);
    rustix::process::test_kill_process(pid).is_ok()
}

pub(super) fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn field(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// Where a node runs: its namespace (none: the host's loopback), its address there,
/// its location label.
#[derive(Clone, Debug, Default)]
pub(super) struct Spot {
    /// Its network namespace.
    pub netns: Option<String>,
    /// The address it listens on.
    pub ip: String,
    /// Its `deployment.location`.
    pub location: Option<String>,
}

impl Spot {
    /// The spot a node of `devnet` had (to start it again the same way).
    pub(super) fn of(node: &DevnetNode) -> Spot {
        let ip = node
            .addrs
            .first()
            .and_then(|a| a.split('/').nth(2))
            .filter(|_| node.netns.is_some())
            .unwrap_or("127.0.0.1")
            .to_string();
        Spot { netns: node.netns.clone(), ip, location: node.location.clone() }
    }
}

/// Starts `dms run` for `home` at `spot`, detached in its own process group, appending
/// to `<home>/dms.log` (a restarted node keeps its earlier log, the evidence of a crash,
/// after a line saying when it started again); waits for its ready line.
pub(super) fn start_node(
    name: &str,
    home: &Path,
    spot: &Spot,
    bootstrap: Option<&str>,
    passphrase: &str,
) -> anyhow::Result<DevnetNode> {
    use std::os::unix::process::CommandExt as _;
    let log_path = home.join("dms.log");
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("cannot open {}", log_path.display()))?;
    let start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    {
        use std::io::Write as _;
        writeln!(log, "=== dms devnet: {name} starting at {now} ===")
            .with_context(|| format!("cannot write {}", log_path.display()))?;
    }
    let prefix = match &spot.netns {
        Some(ns) => vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()],
        None => Vec::new(),
    };
    let mut command = dms_command(&prefix)?;
    let listen = format!("/ip4/{}/tcp/0", spot.ip);
    command.arg("--home").arg(home).args(["--api-addr", "127.0.0.1:0", "run", "--listen", &listen]);
    if let Some(bootstrap) = bootstrap {
        command.args(["--bootstrap", bootstrap]);
    }
    if let Some(location) = &spot.location {
        command.env("DMS_DEPLOYMENT_LOCATION", location);
    }
    // The nodes share one machine: benchmarking it once per node, all at once, measures
    // contention and writes a disk test file per node (up to 1 GiB each). Skipped
    // unless the user asks for it with DMS_NODE_BENCHMARK_BUDGET.
    if std::env::var_os("DMS_NODE_BENCHMARK_BUDGET").is_none() {
        command.env("DMS_NODE_BENCHMARK_BUDGET", "0s");
    }
    let child = command
        .env("DMS_PASSPHRASE", passphrase)
        .env("DMS_NETWORK_MDNS", "false")
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("cannot start dms run")?;
    let pid = child.id();
    let started = Instant::now();
    loop {
        // Only this start's lines: an earlier run's ready line is not this one's.
        let text = std::fs::read(&log_path).unwrap_or_default();
        let text = String::from_utf8_lossy(text.get(start as usize..).unwrap_or_default());
        if let Some(line) = text.lines().find(|l| l.contains("dms ready")) {
            let get =
                |n: &str| field(line, n).ok_or_else(|| anyhow!("{name}: ready line without {n}="));
            return Ok(DevnetNode {
                name: name.into(),
                home: home.to_path_buf(),
                pid,
                api: get("api")?,
                did: get("did")?,
                peer_id: get("peer_id")?,
                addrs: get("addrs")?.split(',').map(String::from).collect(),
                netns: spot.netns.clone(),
                location: spot.location.clone(),
            });
        }
        if !alive(pid) || started.elapsed() > READY_TIMEOUT {
            signal(pid, rustix::process::Signal::KILL);
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            bail!(
                "{name} did not become ready (log {}):\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
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
}

pub(super) fn up(ctx: &Ctx, dir: &Path, nodes: usize, options: UpOptions) -> anyhow::Result<()> {
    if nodes == 0 || nodes > 16 {
        bail!("--nodes {nodes}: a devnet has 1 to 16 nodes");
    }
    if let Some(existing) = load(dir)?
        && existing.nodes.iter().any(|n| alive(n.pid))
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
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let isolation = if options.isolated {
        Isolation::check_host()?;
        let isolation = Isolation::new(&std::fs::canonicalize(dir)?, options.cpus, memory);
        isolation.create_hub()?;
        Some(isolation)
    } else {
        None
    };
    let passphrase = passphrase(dir)?;
    let user_home = dir.join("user");
    if !user_home.join("keys").join("user.json").exists() {
        dms(&user_home, &["key", "new", "user"], &passphrase)?;
        dms(&user_home, &["cap", "new", "user"], &passphrase)?;
    }
    let user_did = dms(&user_home, &["key", "did", "user"], &passphrase)?;
    // Kept from the first node on, so that `down` can stop and remove what a failed or
    // interrupted `up` made.
    let mut devnet = Devnet { nodes: Vec::new(), user_home, user_did, isolation };
    let progress = output::Progress::new("nodes", nodes as u64, ctx.output == Output::Table);
    for i in 0..nodes {
        let name = format!("node-{i}");
        progress.doing(format!("starting {name}"));
        match up_node(dir, &devnet, i, &options.locations, &passphrase) {
            Ok(node) => {
                progress.note(format!("{name}: ready, peer {} api {}", node.peer_id, node.api));
                progress.step();
                devnet.nodes.push(node);
                write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
            }
            Err(error) => {
                progress.finish();
                for node in &devnet.nodes {
                    signal(node.pid, rustix::process::Signal::TERM);
                }
                if let Some(isolation) = &devnet.isolation {
                    std::thread::sleep(Duration::from_millis(500));
                    let _ = isolation.destroy(i + 1);
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

/// Makes node `i` (its key, its namespace when isolated), starts it bootstrapping from
/// node 0, and prepares it as a provider of the devnet user.
fn up_node(
    dir: &Path,
    devnet: &Devnet,
    i: usize,
    locations: &[String],
    passphrase: &str,
) -> anyhow::Result<DevnetNode> {
    let name = format!("node-{i}");
    let home = dir.join(&name);
    if !home.join("keys").join("dms.json").exists() {
        dms(&home, &["key", "new"], passphrase)?;
    }
    let mut spot = Spot { ip: "127.0.0.1".into(), ..Spot::default() };
    if !locations.is_empty() {
        spot.location = Some(locations[i % locations.len()].clone());
    }
    if let Some(isolation) = &devnet.isolation {
        isolation.add_node(i)?;
        spot.netns = Some(isolation.netns(i));
        spot.ip = Isolation::address(i);
    }
    let bootstrap = devnet.nodes.first().and_then(|n| n.addrs.first()).cloned();
    let node = start_node(&name, &home, &spot, bootstrap.as_deref(), passphrase)?;
    let prepared = devnet
        .isolation
        .as_ref()
        .map_or(Ok(()), |isolation| isolation.limit(i, node.pid))
        .and_then(|()| {
            let anchor =
                ["--api-addr", &node.api, "cap", "anchor", "-c", "dms", "--root", &devnet.user_did];
            dms_with_token(&node.prefix(), &home, &anchor, passphrase, &home)
        })
        .and_then(|_| prepare(&devnet.user_home, &home, &node, passphrase));
    if let Err(error) = prepared {
        signal(node.pid, rustix::process::Signal::TERM);
        return Err(error);
    }
    Ok(node)
}

/// Makes a started node a provider the devnet user can deploy to: it onboards a slice
/// of the machine ([`ONBOARD`]), and holds a grant from the devnet user for the
/// deployment protocol (`/dms/deployment`, also as a broadcast topic, and
/// `/dms/allocation`), so that the other nodes — which trust the user as a root — accept
/// its bid requests, bids and updates, and the allocation actors they host obey it.
fn prepare(
    user_home: &Path,
    home: &Path,
    node: &DevnetNode,
    passphrase: &str,
) -> anyhow::Result<()> {
    let api = ["--api-addr", node.api.as_str()];
    let mut onboard = api.to_vec();
    onboard.extend(["onboard", "--cpu", ONBOARD.0, "--ram", ONBOARD.1, "--disk", ONBOARD.2]);
    dms_with_token(&node.prefix(), user_home, &onboard, passphrase, home)?;
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
    dms_with_token(&node.prefix(), home, &anchor, passphrase, home)?;
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
                if alive(n.pid) { "running".into() } else { "stopped".into() },
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
                    v["running"] = serde_json::Value::Bool(alive(n.pid));
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
    // In an isolated devnet the node's API listens on loopback in its namespace.
    let mut command = dms_command(&target.prefix())?;
    if let Some(token) = dms_node::home::Home::new(target.home.clone()).token() {
        // The devnet user's CLI talks to the node's API: same OS user, the node's token.
        command.env("DMS_API_TOKEN", token);
    }
    let status = command
        .arg("--home")
        .arg(&devnet.user_home)
        .args(["--api-addr", &target.api])
        .args(args)
        .env("DMS_PASSPHRASE", passphrase)
        .env("DMS_DEVNET_DIR", dir)
        .status()
        .context("cannot run dms")?;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}
