//! `dms bench failover` (on a devnet: `dms devnet cli bench failover`): how long a
//! service takes to run elsewhere after its provider dies.
//!
//! Deploys a one-allocation WebAssembly service that avoids the orchestrating node,
//! then N times: kills the node running it with SIGKILL, measures until the service runs
//! on another node, and starts the killed node again (so that the next kill has
//! somewhere to go). The goal is set by the orchestrating node's own settings: p99
//! within `deployment.lost_after` + 5 s. With `--redundancy N` the service keeps N
//! standbys; every kill waits until one is reserved, and the report counts the kills
//! a standby took over (no bid round).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use dms_protocol::AllocationState;
use dms_protocol::node::{DeploymentStatus, NewDeployment, ShutdownDeployment, Status};
use serde_json::json;

use super::Ctx;
use super::actor::Caller;
use super::bench::{SPIN, percentile};
use super::{devnet, devnet_ops};
use crate::cli::{ActorTarget, Output};
use crate::output;

/// Longest a kill may take to be repaired before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(90);

/// `dms bench failover --kills N`
pub async fn bench(
    ctx: &Ctx,
    kills: usize,
    redundancy: u32,
    dir: &Path,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    if kills < 1 {
        bail!("--kills must be at least 1");
    }
    let devnet = devnet::load(dir)?
        .ok_or_else(|| anyhow!("no devnet in {}: start one with `dms devnet up`", dir.display()))?;
    if devnet.nodes.len() < 3 {
        bail!("a failover needs somewhere to go: start a devnet of at least 3 nodes");
    }
    let caller = Caller::open(ctx, target).await?;
    let orchestrating = caller.peer().to_string();
    let lost_after = lost_after(&devnet, &orchestrating)?;
    let request = service(&orchestrating, redundancy)?;
    let id = caller.request(&request, Duration::from_secs(10)).await?.id;
    let mut on = wait_running(&caller, &id, None).await?;
    let mut times = Vec::with_capacity(kills);
    for kill in 1..=kills {
        if redundancy > 0 {
            wait_standby(&caller, &id).await?;
        }
        let index = index_of(dir, &on)?;
        let killed = on.clone();
        let dir_owned = dir.to_path_buf();
        tokio::task::spawn_blocking(move || devnet_ops::stop(&dir_owned, index, true)).await??;
        let started = Instant::now();
        on = wait_running(&caller, &id, Some(&killed)).await?;
        let took = started.elapsed().as_secs_f64();
        times.push(took);
        if ctx.output == Output::Table {
            eprintln!("kill {kill}/{kills}: node {index} → running elsewhere in {took:.2} s");
        }
        let dir_owned = dir.to_path_buf();
        tokio::task::spawn_blocking(move || devnet_ops::start(&dir_owned, index)).await??;
    }
    let events = caller
        .request(
            &DeploymentStatus { id: id.clone(), ..Default::default() },
            Duration::from_secs(10),
        )
        .await?
        .events;
    let takeovers = events.iter().filter(|e| e.message.starts_with("standby takes over")).count();
    caller.request(&ShutdownDeployment { id }, Duration::from_secs(60)).await?;
    report(ctx, &mut times, lost_after, (redundancy > 0).then_some(takeovers))
}

/// Waits until the service has a standby.
async fn wait_standby(caller: &Caller, id: &str) -> anyhow::Result<()> {
    let standing = |status: &Status| status.standby.values().any(|l| !l.is_empty()).then_some(());
    poll(caller, id, "no standby was reserved", standing).await
}

/// The orchestrating node's `deployment.lost_after`.
fn lost_after(devnet: &devnet::Devnet, orchestrating: &str) -> anyhow::Result<Duration> {
    let node = devnet
        .nodes
        .iter()
        .find(|n| n.peer_id == orchestrating)
        .ok_or_else(|| anyhow!("the node at --api-addr is not a node of this devnet"))?;
    let home = dms_node::home::Home::new(node.home.clone());
    Ok(dms_node::config::load(&home.config_path())?.deployment.lost_after)
}

fn service(avoid: &str, redundancy: u32) -> anyhow::Result<NewDeployment> {
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: service\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 0.1}}, ram: 16MiB}}\n    execution: {{module: spin.wat}}\n\
         nodes:\n  only: {{allocations: [work], redundancy: {redundancy}}}\n\
         exclude_peers: [{avoid}]\n"
    );
    let ensemble = dms_ensemble::load(&text).map_err(|e| anyhow!("bench ensemble: {e}"))?.ensemble;
    let module = base64::engine::general_purpose::STANDARD.encode(SPIN);
    Ok(NewDeployment {
        ensemble,
        modules: [("work".into(), module)].into(),
        timeout_ms: None,
        credentials: None,
    })
}

/// Waits until the service runs on a peer other than `not_on`; returns that peer.
async fn wait_running(caller: &Caller, id: &str, not_on: Option<&str>) -> anyhow::Result<String> {
    let moved = |status: &Status| {
        let work = status.allocations.get("work")?;
        let peer = work.peer.as_ref()?;
        let elsewhere = not_on.is_none_or(|lost| lost != peer);
        (work.status.state == AllocationState::Running && elsewhere).then(|| peer.clone())
    };
    poll(caller, id, "the service did not run elsewhere", moved).await
}

/// Follows the deployment's status until `found` finds something in it, for at most
/// [`PATIENCE`]; `failing` says what did not happen.
async fn poll<T>(
    caller: &Caller,
    id: &str,
    failing: &str,
    mut found: impl FnMut(&Status) -> Option<T>,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let mut after = 0;
    loop {
        let ask = DeploymentStatus { id: id.into(), after, wait_ms: 500, from: None };
        let status = caller.request(&ask, Duration::from_secs(10)).await?;
        after = status.events.last().map_or(after, |e| e.seq);
        if let Some(value) = found(&status) {
            return Ok(value);
        }
        if status.state.is_terminal() {
            bail!("deployment {id} ended: {}", status.reason.unwrap_or_default());
        }
        if started.elapsed() > PATIENCE {
            bail!("deployment {id}: {failing} within {PATIENCE:?}");
        }
    }
}

fn index_of(dir: &Path, peer: &str) -> anyhow::Result<usize> {
    let devnet = devnet::load(dir)?.context("the devnet went away")?;
    devnet
        .nodes
        .iter()
        .position(|n| n.peer_id == peer)
        .ok_or_else(|| anyhow!("peer {peer} is not a devnet node"))
}

fn report(
    ctx: &Ctx,
    times: &mut [f64],
    lost_after: Duration,
    takeovers: Option<usize>,
) -> anyhow::Result<()> {
    times.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(times, 50.0), percentile(times, 99.0));
    let goal = lost_after.as_secs_f64() + 5.0;
    let report = json!({
        "kills": times.len(),
        "kill_to_running_elsewhere_s": { "p50": p50, "p99": p99, "max": times.last() },
        "lost_after_s": lost_after.as_secs_f64(),
        "goal_p99_s": goal,
        "ratio_p99_to_goal": p99 / goal,
        "met": p99 <= goal,
        "standby_takeovers": takeovers,
    });
    match ctx.output {
        Output::Json => output::json(&report),
        Output::Table => {
            println!(
                "{} provider kills: kill → running elsewhere p50 {p50:.2} s, p99 {p99:.2} s \
                 (lost_after {:.1} s; goal p99 ≤ {goal:.1} s: {}; ratio {:.2})",
                times.len(),
                lost_after.as_secs_f64(),
                if p99 <= goal { "met" } else { "NOT met" },
                p99 / goal
            );
            if let Some(takeovers) = takeovers {
                println!("a standby took over {takeovers} of {} kills", times.len());
            }
            Ok(())
        }
    }
}
