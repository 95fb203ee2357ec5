//! `dms devnet restart|stop|start|fault|down`: what is done to a running devnet — a
//! node stopped, killed or started again, a link cut or slowed, and at the end every
//! node's log, config and events collected into one folder before it all goes away.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use super::Ctx;
use super::devnet::{
    Devnet, DevnetNode, STATE, Spot, UpOptions, devnet_dir, load, passphrase, start_node,
    write_private,
};
use crate::cli::{DevnetCommand, FaultCommand};
use crate::output;

const STOP_GRACE: Duration = Duration::from_secs(15);

fn restart(dir: &Path, index: usize, kill: bool) -> anyhow::Result<()> {
    stop(dir, index, kill)?;
    start(dir, index)
}

/// Stops node `index` (SIGTERM, SIGKILL after the grace; at once with `kill`).
pub(super) fn stop(dir: &Path, index: usize, kill: bool) -> anyhow::Result<()> {
    let (_, node) = devnet_node(dir, index)?;
    if !node.alive() {
        bail!("{} is not running (start it with `dms devnet start --node {index}`)", node.name);
    }
    node.signal(if kill { rustix::process::Signal::KILL } else { rustix::process::Signal::TERM });
    let waiting = output::Spinner::new(format!("stopping {}", node.name), !kill);
    let deadline = Instant::now() + STOP_GRACE;
    while node.alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(waiting);
    if node.alive() {
        node.signal(rustix::process::Signal::KILL);
    }
    eprintln!("{}: stopped{}", node.name, if kill { " (killed)" } else { "" });
    Ok(())
}

/// Starts the stopped node `index` with its home (and namespace, limits and location),
/// bootstrapping from a running node.
pub(super) fn start(dir: &Path, index: usize) -> anyhow::Result<()> {
    let (mut devnet, node) = devnet_node(dir, index)?;
    if node.alive() {
        bail!("{} is already running (pid {})", node.name, node.pid);
    }
    let bootstrap = devnet
        .nodes
        .iter()
        .enumerate()
        .find(|(i, n)| *i != index && n.alive())
        .and_then(|(_, n)| n.addrs.first().cloned());
    let passphrase = passphrase(dir)?;
    let mut spot = Spot::of(&node);
    spot.limit = devnet.isolation.clone().map(|isolation| (isolation, index));
    let started = start_node(&node.name, &node.home, &spot, bootstrap.as_deref(), &passphrase)?;
    eprintln!("{}: started, peer {} api {}", started.name, started.peer_id, started.api);
    devnet.nodes[index] = started;
    write_private(&dir.join(STATE), &serde_json::to_string_pretty(&devnet)?)?;
    Ok(())
}

/// The devnet and its node `index`.
fn devnet_node(dir: &Path, index: usize) -> anyhow::Result<(Devnet, DevnetNode)> {
    let devnet = existing(dir)?;
    let count = devnet.nodes.len();
    let node = devnet.nodes.get(index).cloned().ok_or_else(|| {
        anyhow!("node {index}: the devnet has {count} nodes (0 to {})", count.saturating_sub(1))
    })?;
    Ok((devnet, node))
}

fn existing(dir: &Path) -> anyhow::Result<Devnet> {
    load(dir)?
        .ok_or_else(|| anyhow!("no devnet in {}: start one with `dms devnet up`", dir.display()))
}

/// One step of a fault file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultStep {
    /// `partition`, `heal`, `slow` or `kill`.
    action: String,
    /// The nodes it acts on: two for a partition, one for slow and kill.
    #[serde(default)]
    nodes: Vec<usize>,
    /// For `slow`: the rate.
    #[serde(default)]
    rate: Option<String>,
    /// How long to wait before it, e.g. `10s`.
    #[serde(default)]
    after: Option<String>,
}

/// A fault file: `[[fault]]` steps, run in order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultFile {
    fault: Vec<FaultStep>,
}

impl FaultStep {
    fn wait(&self) -> anyhow::Result<Duration> {
        self.after.as_deref().map_or(Ok(Duration::ZERO), |a| {
            humantime::parse_duration(a).map_err(|e| anyhow!("after = {a:?}: {e} (e.g. \"10s\")"))
        })
    }

    fn command(&self) -> anyhow::Result<FaultCommand> {
        let need = |n: usize| {
            if self.nodes.len() == n {
                Ok(())
            } else {
                Err(anyhow!("{:?} takes {n} node(s) in `nodes`, not {:?}", self.action, self.nodes))
            }
        };
        Ok(match self.action.as_str() {
            "partition" => {
                need(2)?;
                FaultCommand::Partition { a: self.nodes[0], b: self.nodes[1] }
            }
            "heal" => FaultCommand::Heal,
            "slow" => {
                need(1)?;
                let rate = self
                    .rate
                    .clone()
                    .ok_or_else(|| anyhow!("\"slow\" needs a `rate`, e.g. rate = \"1mbit\""))?;
                FaultCommand::Slow { node: self.nodes[0], rate }
            }
            "kill" => {
                need(1)?;
                FaultCommand::Kill { node: self.nodes[0] }
            }
            other => bail!("unknown action {other:?}: partition, heal, slow or kill"),
        })
    }
}

fn fault(dir: &Path, command: FaultCommand) -> anyhow::Result<()> {
    let devnet = existing(dir)?;
    let check = |i: usize| {
        if i < devnet.nodes.len() {
            Ok(())
        } else {
            Err(anyhow!("node {i}: the devnet has {} nodes", devnet.nodes.len()))
        }
    };
    let isolation = || {
        devnet.isolation.as_ref().ok_or_else(|| {
            anyhow!(
                "this devnet's nodes share the host's loopback, where links cannot be cut or \
                 slowed: start it with `dms devnet up --isolated`"
            )
        })
    };
    match command {
        FaultCommand::Partition { a, b } => {
            check(a)?;
            check(b)?;
            isolation()?.partition(a, b)?;
            eprintln!(
                "node {a} and node {b}: partitioned (their packets to each other are dropped)"
            );
        }
        FaultCommand::Heal => {
            isolation()?.heal(devnet.nodes.len())?;
            eprintln!("every link healed");
        }
        FaultCommand::Slow { node, rate } => {
            check(node)?;
            isolation()?.slow(node, &rate)?;
            eprintln!("node {node}: link limited to {rate}");
        }
        FaultCommand::Kill { node } => stop(dir, node, true)?,
        FaultCommand::Apply { file } => apply(dir, &file)?,
    }
    Ok(())
}

fn apply(dir: &Path, file: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let steps: FaultFile =
        toml::from_str(&text).with_context(|| format!("{} is not a fault file", file.display()))?;
    // Every step is checked before the first runs: a typo found halfway would leave the
    // devnet half-faulted.
    let commands = steps
        .fault
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let checked = s.wait().and_then(|wait| Ok((wait, s.command()?)));
            checked.with_context(|| format!("{}: step {}", file.display(), i + 1))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let devnet = existing(dir)?;
    for (i, (_, command)) in commands.iter().enumerate() {
        let nodes: &[usize] = match command {
            FaultCommand::Partition { a, b } => &[*a, *b],
            FaultCommand::Slow { node, .. } | FaultCommand::Kill { node } => {
                std::slice::from_ref(node)
            }
            _ => &[],
        };
        if let Some(bad) = nodes.iter().find(|n| **n >= devnet.nodes.len()) {
            bail!(
                "{}: step {}: node {bad}: the devnet has {} nodes",
                file.display(),
                i + 1,
                devnet.nodes.len()
            );
        }
        let needs_isolation = !matches!(command, FaultCommand::Kill { .. });
        if needs_isolation && devnet.isolation.is_none() {
            bail!(
                "{}: step {}: links can only be cut or slowed in an isolated devnet \
                 (`dms devnet up --isolated`)",
                file.display(),
                i + 1
            );
        }
    }
    for (wait, command) in commands {
        if !wait.is_zero() {
            eprintln!("waiting {}", humantime::format_duration(wait));
            std::thread::sleep(wait);
        }
        fault(dir, command)?;
    }
    Ok(())
}

/// Copies `file` of a node's home (on its host, when remote) to `to`; best effort.
fn fetch(node: &DevnetNode, file: &str, to: &Path) {
    let from = node.home.join(file);
    match &node.remote {
        Some(remote) => {
            if let Some(bytes) = remote.read(&from.to_string_lossy()) {
                std::fs::write(to, bytes).ok();
            }
        }
        None => {
            std::fs::copy(from, to).ok();
        }
    }
}

/// Copies every node's log and config, and the events of those still running, into
/// `into` (`node-N/dms.log`, `config.toml`, `events.jsonl` (one JSON event per line), and `devnet.json`).
fn collect(dir: &Path, devnet: &Devnet, into: &Path) -> anyhow::Result<()> {
    let passphrase = passphrase(dir)?;
    std::fs::create_dir_all(into).with_context(|| format!("cannot create {}", into.display()))?;
    std::fs::copy(dir.join(STATE), into.join(STATE)).ok();
    for node in &devnet.nodes {
        let to = into.join(&node.name);
        std::fs::create_dir_all(&to)?;
        for file in ["dms.log", "config.toml"] {
            fetch(node, file, &to.join(file));
        }
        if node.alive() {
            let args =
                ["--api-addr", &node.api, "events", "--since", "24h", "-n", "1000", "--json"];
            match node.place().dms(&node.user_home(devnet), &args, &passphrase, &node.home) {
                Ok(events) => std::fs::write(to.join("events.jsonl"), events)?,
                Err(e) => std::fs::write(to.join("events.error.txt"), format!("{e:#}\n"))?,
            }
        }
    }
    Ok(())
}

/// Stops `nodes`: SIGTERM, SIGKILL to those still running after the grace, and waits
/// (a little) for those to be gone, so that their cgroups can be removed.
pub(super) fn stop_all(nodes: &[DevnetNode]) {
    let running: Vec<&DevnetNode> = nodes.iter().filter(|n| n.alive()).collect();
    if running.is_empty() {
        return;
    }
    for node in &running {
        node.signal(rustix::process::Signal::TERM);
    }
    let waiting = output::Spinner::new(
        format!("stopping {} nodes (each drains its work, at most {STOP_GRACE:?})", running.len()),
        true,
    );
    let deadline = Instant::now() + STOP_GRACE;
    while running.iter().any(|n| n.alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(waiting);
    let stuck: Vec<&&DevnetNode> = running.iter().filter(|n| n.alive()).collect();
    for node in &stuck {
        eprintln!("{} did not stop within {STOP_GRACE:?}; killing it", node.name);
        node.signal(rustix::process::Signal::KILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while stuck.iter().any(|n| n.alive()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn down(dir: &Path, collect_into: Option<PathBuf>, purge: bool) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}", dir.display());
    };
    let artifacts = collect_into.unwrap_or_else(|| dir.join("artifacts"));
    let collected = collect(dir, &devnet, &artifacts);
    for node in devnet.nodes.iter().filter(|n| n.alive()) {
        node.signal(rustix::process::Signal::TERM);
    }
    let waiting = output::Spinner::new(
        format!(
            "stopping {} nodes (each drains its work, at most {STOP_GRACE:?})",
            devnet.nodes.len()
        ),
        true,
    );
    let deadline = Instant::now() + STOP_GRACE;
    while devnet.nodes.iter().any(DevnetNode::alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(waiting);
    for node in devnet.nodes.iter().filter(|n| n.alive()) {
        eprintln!("{} did not stop within {STOP_GRACE:?}; killing it", node.name);
        node.signal(rustix::process::Signal::KILL);
    }
    // The logs end with the nodes' last lines: copied again now that they stopped.
    for node in &devnet.nodes {
        fetch(node, "dms.log", &artifacts.join(&node.name).join("dms.log"));
    }
    if purge {
        for remote in devnet.nodes.iter().filter_map(|n| n.remote.as_ref()) {
            if let Err(e) =
                remote.run(&format!("rm -rf {}", super::devnet_ssh::quote(&remote.workdir)))
            {
                eprintln!("{e:#}");
            }
        }
    }
    if let Some(isolation) = &devnet.isolation {
        isolation.destroy(devnet.nodes.len()).context("removing the devnet's namespaces")?;
    }
    if purge {
        for entry in std::fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            if !artifacts.starts_with(&path) {
                let removed = if path.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                removed.with_context(|| format!("cannot remove {}", path.display()))?;
            }
        }
    } else {
        std::fs::remove_file(dir.join(STATE)).ok();
    }
    let kept = if purge { "homes removed" } else { "homes kept" };
    match collected {
        Ok(()) => println!(
            "devnet stopped ({} nodes, {kept}); logs, configs and events in {}",
            devnet.nodes.len(),
            artifacts.display()
        ),
        Err(e) => println!(
            "devnet stopped ({} nodes, {kept}); collecting into {} failed: {e:#}",
            devnet.nodes.len(),
            artifacts.display()
        ),
    }
    Ok(())
}

/// `dms devnet ...`
pub fn devnet(ctx: &Ctx, command: DevnetCommand) -> anyhow::Result<()> {
    use super::devnet::{cli, status, up};
    match command {
        DevnetCommand::Up { nodes, dir, isolated, cpus, memory, locations, hosts } => {
            let options = UpOptions { isolated, cpus, memory, locations, hosts };
            up(ctx, &devnet_dir(ctx, dir), nodes, options)
        }
        DevnetCommand::Status { dir } => status(ctx, &devnet_dir(ctx, dir)),
        DevnetCommand::Cli { node, dir, args } => cli(&devnet_dir(ctx, dir), node, &args),
        DevnetCommand::Deploy { node, dir, args } => {
            let args: Vec<String> = std::iter::once("deploy".to_string()).chain(args).collect();
            cli(&devnet_dir(ctx, dir), node, &args)
        }
        DevnetCommand::Restart { node, dir, kill } => restart(&devnet_dir(ctx, dir), node, kill),
        DevnetCommand::Stop { node, dir, kill } => stop(&devnet_dir(ctx, dir), node, kill),
        DevnetCommand::Start { node, dir } => start(&devnet_dir(ctx, dir), node),
        DevnetCommand::Fault { dir, fault: command } => fault(&devnet_dir(ctx, dir), command),
        DevnetCommand::Down { dir, collect, purge } => down(&devnet_dir(ctx, dir), collect, purge),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_files_are_checked_step_by_step() {
        let file: FaultFile = toml::from_str(
            "[[fault]]\naction = \"partition\"\nnodes = [1, 2]\n\n[[fault]]\naction = \"heal\"\nafter = \"10s\"\n",
        )
        .expect("a fault file");
        assert!(matches!(file.fault[0].command(), Ok(FaultCommand::Partition { a: 1, b: 2 })));
        assert_eq!(file.fault[1].wait().expect("10s"), Duration::from_secs(10));
        let bad = FaultStep { action: "partition".into(), nodes: vec![1], rate: None, after: None };
        assert!(bad.command().expect_err("one node").to_string().contains("takes 2 node(s)"));
        let slow = FaultStep { action: "slow".into(), nodes: vec![0], rate: None, after: None };
        assert!(slow.command().expect_err("no rate").to_string().contains("rate"));
        let odd = FaultStep { action: "flood".into(), nodes: vec![], rate: None, after: None };
        assert!(odd.command().expect_err("unknown").to_string().contains("partition, heal"));
    }
}
