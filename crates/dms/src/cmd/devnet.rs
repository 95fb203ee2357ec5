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
use crate::cli::{DevnetCommand, Output};
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
}

const STATE: &str = "devnet.json";
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_GRACE: Duration = Duration::from_secs(15);

fn devnet_dir(ctx: &Ctx, dir: Option<PathBuf>) -> PathBuf {
    dir.unwrap_or_else(|| ctx.home.root().join("devnet"))
}

/// The passphrase of every devnet key: `DMS_PASSPHRASE`, or one generated on first use
/// and kept in `<dir>/passphrase` (0600).
fn passphrase(dir: &Path) -> anyhow::Result<String> {
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

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
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
    dms_with_token(home, args, passphrase, home)
}

/// [`dms`] with the local API token of the daemon of `daemon_home`.
fn dms_with_token(
    home: &Path,
    args: &[&str],
    passphrase: &str,
    daemon_home: &Path,
) -> anyhow::Result<String> {
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
    let mut command = Command::new(exe);
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

fn signal(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process(pid, signal);
    }
}

fn field(line: &str, name: &str) -> Option<String> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(&format!("{name}=")))
        .map(|v| v.trim_matches('"').to_string())
}

/// Starts `dms run` for `home`, detached in its own process group, appending to
/// `<home>/dms.log` (a restarted node keeps its earlier log, the evidence of a crash,
/// after a line saying when it started again); waits for its ready line.
fn start_node(
    name: &str,
    home: &Path,
    bootstrap: Option<&str>,
    passphrase: &str,
) -> anyhow::Result<DevnetNode> {
    use std::os::unix::process::CommandExt as _;
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
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
    let mut command = Command::new(exe);
    command.arg("--home").arg(home).args([
        "--api-addr",
        "127.0.0.1:0",
        "run",
        "--listen",
        "/ip4/127.0.0.1/tcp/0",
    ]);
    if let Some(bootstrap) = bootstrap {
        command.args(["--bootstrap", bootstrap]);
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

fn up(ctx: &Ctx, dir: &Path, nodes: usize) -> anyhow::Result<()> {
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
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let passphrase = passphrase(dir)?;
    let user_home = dir.join("user");
    if !user_home.join("keys").join("user.json").exists() {
        dms(&user_home, &["key", "new", "user"], &passphrase)?;
        dms(&user_home, &["cap", "new", "user"], &passphrase)?;
    }
    let user_did = dms(&user_home, &["key", "did", "user"], &passphrase)?;
    let mut started: Vec<DevnetNode> = Vec::new();
    let progress = output::Progress::new("nodes", nodes as u64, ctx.output == Output::Table);
    for i in 0..nodes {
        let name = format!("node-{i}");
        progress.doing(format!("starting {name}"));
        let home = dir.join(&name);
        if !home.join("keys").join("dms.json").exists() {
            dms(&home, &["key", "new"], &passphrase)?;
        }
        let bootstrap = started.first().and_then(|n| n.addrs.first()).cloned();
        let ready = start_node(&name, &home, bootstrap.as_deref(), &passphrase).and_then(|node| {
            let anchored = dms(
                &home,
                &["--api-addr", &node.api, "cap", "anchor", "-c", "dms", "--root", &user_did],
                &passphrase,
            )
            .and_then(|_| prepare(&user_home, &home, &node, &passphrase));
            if anchored.is_err() {
                signal(node.pid, rustix::process::Signal::TERM);
            }
            anchored.map(|()| node)
        });
        let node = match ready {
            Ok(node) => node,
            Err(error) => {
                progress.finish();
                for node in &started {
                    signal(node.pid, rustix::process::Signal::TERM);
                }
                return Err(error);
            }
        };
        progress.note(format!("{name}: ready, peer {} api {}", node.peer_id, node.api));
        progress.step();
        started.push(node);
    }
    progress.finish();
    let devnet = Devnet { nodes: started, user_home, user_did };
    write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
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
    dms_with_token(user_home, &onboard, passphrase, home)?;
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
    dms(home, &anchor, passphrase)?;
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

fn status(ctx: &Ctx, dir: &Path) -> anyhow::Result<()> {
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

fn cli(dir: &Path, node: usize, args: &[String]) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}: start one with `dms devnet up`", dir.display());
    };
    let target = devnet
        .nodes
        .get(node)
        .ok_or_else(|| anyhow!("--node {node}: the devnet has {} nodes", devnet.nodes.len()))?;
    let passphrase = passphrase(dir)?;
    let exe = std::env::current_exe().context("cannot find the dms binary")?;
    let mut command = Command::new(exe);
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

fn restart(dir: &Path, index: usize, kill: bool) -> anyhow::Result<()> {
    stop(dir, index, kill)?;
    start(dir, index)
}

/// Stops node `index` (SIGTERM, SIGKILL after the grace; at once with `kill`).
pub(super) fn stop(dir: &Path, index: usize, kill: bool) -> anyhow::Result<()> {
    let (_, node) = devnet_node(dir, index)?;
    if !alive(node.pid) {
        bail!("{} is not running (start it with `dms devnet start --node {index}`)", node.name);
    }
    signal(
        node.pid,
        if kill { rustix::process::Signal::KILL } else { rustix::process::Signal::TERM },
    );
    let waiting = output::Spinner::new(format!("stopping {}", node.name), !kill);
    let deadline = Instant::now() + STOP_GRACE;
    while alive(node.pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(waiting);
    if alive(node.pid) {
        signal(node.pid, rustix::process::Signal::KILL);
    }
    eprintln!("{}: stopped{}", node.name, if kill { " (killed)" } else { "" });
    Ok(())
}

/// Starts the stopped node `index` with its home, bootstrapping from a running node.
pub(super) fn start(dir: &Path, index: usize) -> anyhow::Result<()> {
    let (mut devnet, node) = devnet_node(dir, index)?;
    if alive(node.pid) {
        bail!("{} is already running (pid {})", node.name, node.pid);
    }
    let bootstrap = devnet
        .nodes
        .iter()
        .enumerate()
        .find(|(i, n)| *i != index && alive(n.pid))
        .and_then(|(_, n)| n.addrs.first().cloned());
    let passphrase = passphrase(dir)?;
    let started = start_node(&node.name, &node.home, bootstrap.as_deref(), &passphrase)?;
    eprintln!("{}: started, peer {} api {}", started.name, started.peer_id, started.api);
    devnet.nodes[index] = started;
    write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
    Ok(())
}

/// The devnet and its node `index`.
fn devnet_node(dir: &Path, index: usize) -> anyhow::Result<(Devnet, DevnetNode)> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}: start one with `dms devnet up`", dir.display());
    };
    let count = devnet.nodes.len();
    let node = devnet
        .nodes
        .get(index)
        .cloned()
        .ok_or_else(|| anyhow!("--node {index}: the devnet has {count} nodes"))?;
    Ok((devnet, node))
}

fn down(dir: &Path, purge: bool) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}", dir.display());
    };
    for node in devnet.nodes.iter().filter(|n| alive(n.pid)) {
        signal(node.pid, rustix::process::Signal::TERM);
    }
    let waiting = output::Spinner::new(
        format!(
            "stopping {} nodes (each drains its work, at most {STOP_GRACE:?})",
            devnet.nodes.len()
        ),
        true,
    );
    let deadline = Instant::now() + STOP_GRACE;
    while devnet.nodes.iter().any(|n| alive(n.pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(waiting);
    for node in devnet.nodes.iter().filter(|n| alive(n.pid)) {
        eprintln!("{} did not stop within {STOP_GRACE:?}; killing it", node.name);
        signal(node.pid, rustix::process::Signal::KILL);
    }
    if purge {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))?;
        println!("devnet stopped and {} removed", dir.display());
    } else {
        std::fs::remove_file(dir.join(STATE)).ok();
        println!(
            "devnet stopped ({} nodes); homes and logs kept in {}",
            devnet.nodes.len(),
            dir.display()
        );
    }
    Ok(())
}

/// `dms devnet ...`
pub fn devnet(ctx: &Ctx, command: DevnetCommand) -> anyhow::Result<()> {
    match command {
        DevnetCommand::Up { nodes, dir } => up(ctx, &devnet_dir(ctx, dir), nodes),
        DevnetCommand::Status { dir } => status(ctx, &devnet_dir(ctx, dir)),
        DevnetCommand::Cli { node, dir, args } => cli(&devnet_dir(ctx, dir), node, &args),
        DevnetCommand::Deploy { node, dir, args } => {
            let args: Vec<String> = std::iter::once("deploy".to_string()).chain(args).collect();
            cli(&devnet_dir(ctx, dir), node, &args)
        }
        DevnetCommand::Restart { node, dir, kill } => restart(&devnet_dir(ctx, dir), node, kill),
        DevnetCommand::Stop { node, dir, kill } => stop(&devnet_dir(ctx, dir), node, kill),
        DevnetCommand::Start { node, dir } => start(&devnet_dir(ctx, dir), node),
        DevnetCommand::Down { dir, purge } => down(&devnet_dir(ctx, dir), purge),
    }
}
