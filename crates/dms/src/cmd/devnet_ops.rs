//! `dms devnet restart|stop|start|fault|down`: what is done to a running devnet — a
//! node stopped, killed or started again, a link cut or slowed, and at the end every
//! node's log, config and events collected into one folder before it all goes away.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;

use super::Ctx;
use super::devnet::{
    Devnet, DevnetNode, STATE, Spot, UpOptions, alive, devnet_dir, dms_with_token, load,
    passphrase, signal, start_node, write_private,
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

/// Starts the stopped node `index` with its home (and namespace, limits and location),
/// bootstrapping from a running node.
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
    let started =
        start_node(&node.name, &node.home, &Spot::of(&node), bootstrap.as_deref(), &passphrase)?;
    if let Some(isolation) = &devnet.isolation {
        isolation.limit(index, started.pid)?;
    }
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
    for (wait, command) in commands {
        if !wait.is_zero() {
            eprintln!("waiting {}", humantime::format_duration(wait));
            std::thread::sleep(wait);
        }
        fault(dir, command)?;
    }
    Ok(())
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
            std::fs::copy(node.home.join(file), to.join(file)).ok();
        }
        if alive(node.pid) {
            let args =
                ["--api-addr", &node.api, "events", "--since", "24h", "-n", "1000", "--json"];
            match dms_with_token(&node.prefix(), &devnet.user_home, &args, &passphrase, &node.home)
            {
                Ok(events) => std::fs::write(to.join("events.jsonl"), events)?,
                Err(e) => std::fs::write(to.join("events.error.txt"), format!("{e:#}\n"))?,
            }
        }
    }
    Ok(())
}

fn down(dir: &Path, collect_into: Option<PathBuf>, purge: bool) -> anyhow::Result<()> {
    let Some(devnet) = load(dir)? else {
        bail!("no devnet in {}", dir.display());
    };
    let artifacts = collect_into.unwrap_or_else(|| dir.join("artifacts"));
    let collected = collect(dir, &devnet, &artifacts);
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
    // The logs end with the nodes' last lines: copied again now that they stopped.
    for node in &devnet.nodes {
        std::fs::copy(node.home.join("dms.log"), artifacts.join(&node.name).join("dms.log")).ok();
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
        DevnetCommand::Up { nodes, dir, isolated, cpus, memory, locations } => {
            up(ctx, &devnet_dir(ctx, dir), nodes, UpOptions { isolated, cpus, memory, locations })
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
