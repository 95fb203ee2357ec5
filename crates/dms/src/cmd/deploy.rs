//! `dms deploy` and `dms deployments`: submit an ensemble to the local node and follow
//! it, list, inspect, read logs of, shut down and prune deployments — all through the
//! node's `/dms/node/deployment/*` behaviors, signed like every message.
//!
//! `dms deploy` reads WebAssembly modules and VM images named by path (relative to the
//! ensemble file) and sends them along, so providers need no copy of the file
//! (`submission.rs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use dms_ensemble::model::AllocationType;
use dms_protocol::AllocationState;
use dms_protocol::node::{
    DeploymentLogs, DeploymentStatus, ListDeployments, LogsEntry, Plan, PlanDeployment, Prune,
    ShutdownDeployment, Status,
};
use dms_protocol::record::{AllocationView, Deployment, DeploymentState, Event, Standby};

use super::actor::{self, Caller, timeout};
use super::submission::request;
use super::{Ctx, paging};
use crate::cli::{ActorTarget, DeploymentsCommand, Output};
use crate::output;

/// How long one status request waits for a new event.
const STATUS_WAIT_MS: u64 = 5_000;

pub(super) fn with_timeout(target: &ActorTarget, timeout: &str) -> ActorTarget {
    ActorTarget {
        context: target.context.clone(),
        dest: target.dest.clone(),
        timeout: timeout.into(),
    }
}

/// `dms deploy <file> [--plan] [--timeout] [--detach]`
pub async fn deploy(
    ctx: &Ctx,
    file: &Path,
    plan: bool,
    deadline: Option<&str>,
    detach: bool,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let deadline = deadline
        .map(|t| dms_types::units::parse_duration(t).with_context(|| format!("--deadline {t:?}")))
        .transpose()?;
    let mut submission = request(file, deadline)?;
    // Credentials go to this machine's own node only, and a plan needs none.
    let sent = if plan || target.dest.is_some() { submission.credentials.take() } else { None };
    if sent.is_some() && !plan {
        eprintln!(
            "note: this environment's AWS_* credentials are not sent to another node (--dest); \
             its own [storage] config must hold the store's credentials"
        );
    }
    if plan {
        let plan =
            actor::request(ctx, &with_timeout(target, "30s"), &PlanDeployment(submission)).await?;
        return print_plan(ctx, &plan);
    }
    // One signer for the submission and every status poll: the key is unlocked once.
    let caller = Caller::open(ctx, target).await?;
    let created = caller.request(&submission, timeout(&target.timeout)?).await?;
    let id = created.id.clone();
    if ctx.output == Output::Table {
        println!("deployment {id} submitted");
    }
    if detach {
        if ctx.output == Output::Json {
            output::json(&created)?;
        } else {
            println!("follow it with `dms deployments status {id}`");
        }
        return Ok(());
    }
    let status = follow(ctx, &caller, &id, true).await?;
    finish(ctx, &status)
}

/// Prints events until the deployment is finished, or runs with every allocation
/// started and only services left running. Returns the last status.
async fn follow(
    ctx: &Ctx,
    caller: &Caller,
    id: &str,
    until_settled: bool,
) -> anyhow::Result<Status> {
    let wait = Duration::from_millis(STATUS_WAIT_MS) + Duration::from_secs(10);
    let mut first_at: Option<u64> = None;
    let mut after = 0;
    loop {
        let ask = DeploymentStatus { id: id.into(), after, wait_ms: STATUS_WAIT_MS, from: None };
        let status = paging::status(caller, ask, wait).await?;
        for event in &status.events {
            after = after.max(event.seq);
            if ctx.output == Output::Table {
                let at = event.at_ms.saturating_sub(*first_at.get_or_insert(event.at_ms));
                println!("[{:6.2}s] {}", at as f64 / 1000.0, event_line(event));
            }
        }
        let only_services_left = status.state == DeploymentState::Running
            && status.allocations.values().all(|a| {
                a.kind == AllocationType::Service
                    || matches!(
                        a.status.state,
                        AllocationState::Completed
                            | AllocationState::Failed
                            | AllocationState::Stopped
                    )
            });
        if status.state.is_terminal() || (until_settled && only_services_left) {
            return Ok(status);
        }
    }
}

/// An event as one line: its state, then what it is about and what happened.
fn event_line(event: &Event) -> String {
    let subject = event.allocation.as_deref().map(|a| format!("{a}: ")).unwrap_or_default();
    format!("{:<13} {subject}{}", event.state.name(), event.message)
}

fn finish(ctx: &Ctx, status: &Status) -> anyhow::Result<()> {
    if ctx.output == Output::Json {
        output::json(status)?;
    } else {
        print_summary(&status.id, status.state, &status.allocations, &status.standby);
        print_endpoints(&status.allocations);
        super::outputs::print_published(&status.allocations);
    }
    if status.state == DeploymentState::Failed {
        bail!(
            "deployment {} failed: {}",
            status.id,
            status.reason.as_deref().unwrap_or("see its events")
        );
    }
    Ok(())
}

fn print_summary(
    id: &str,
    state: DeploymentState,
    allocations: &BTreeMap<String, AllocationView>,
    standby: &BTreeMap<String, Vec<Standby>>,
) {
    println!();
    let now = dms_actor::envelope::now_ms();
    let rows: Vec<Vec<String>> = allocations
        .iter()
        .map(|(name, view)| {
            let heard = view.heard_ms.map_or("-".into(), |at| {
                format!("{:.1} s ago", now.saturating_sub(at) as f64 / 1000.0)
            });
            vec![
                name.clone(),
                view.kind.name().into(),
                view.node.clone(),
                view.peer.clone().unwrap_or_else(|| "-".into()),
                view.status.state.name().into(),
                view.status.health.map_or("-", |h| h.name()).into(),
                view.status.exit_code.map_or("-".into(), |c| c.to_string()),
                view.status.restarts.to_string(),
                (view.lineage.len() + 1).to_string(),
                heard,
            ]
        })
        .collect();
    println!("deployment {id}: {}", state.name());
    let header = [
        "allocation",
        "type",
        "node",
        "peer",
        "state",
        "health",
        "exit",
        "restarts",
        "attempt",
        "heard",
    ];
    output::table(&header, &rows);
    for (name, view) in allocations {
        for (n, copy) in view.lineage.iter().enumerate() {
            println!("  {name} attempt {} on {}: {}", n + 1, copy.peer, copy.why);
        }
    }
    for (node, list) in standby {
        for s in list {
            let left = s.expires_ms.saturating_sub(now) / 1000;
            println!("  standby for {node} on {} (kept for {left} s more)", s.provider.peer);
        }
    }
    for (name, view) in allocations {
        if let Some(text) = &view.status.output
            && !text.is_empty()
        {
            println!("\n--- output of {name} ---\n{}", text.trim_end());
        }
    }
}

fn when(ms: u64) -> String {
    output::rfc3339_secs(ms / 1000)
}

fn print_info(record: &Deployment, events: usize) {
    let failed_peers: Vec<&str> = record.failed_peers.iter().map(String::as_str).collect();
    output::fields(&[
        ("deployment", record.id.clone()),
        ("state", record.state.name().into()),
        ("reason", record.reason.clone().unwrap_or_else(|| "-".into())),
        ("submitted", when(record.created_ms)),
        ("deadline", when(record.deadline_ms)),
        ("attempts", record.attempts.to_string()),
        ("orchestrator", record.orchestrator.as_ref().map_or("-".into(), |h| h.did.to_string())),
        (
            "failed peers",
            if failed_peers.is_empty() { "-".into() } else { failed_peers.join(", ") },
        ),
    ]);
    let placement: Vec<Vec<String>> = record
        .placement
        .iter()
        .map(|(node, p)| vec![node.clone(), p.provider.peer.clone(), format!("{:.3}", p.score)])
        .collect();
    if !placement.is_empty() {
        println!();
        output::table(&["node", "provider", "score"], &placement);
    }
    // Every allocation actor has an identity of its own, and on a subnet an address.
    let address = |name: &str| {
        let plan = record.subnet.as_ref();
        let address = plan.and_then(|p| Some(format!("{}/{}", p.addresses.get(name)?, p.prefix())));
        address.unwrap_or_else(|| "-".into())
    };
    let identities: Vec<Vec<String>> = record
        .allocations
        .iter()
        .filter_map(|(name, a)| {
            Some(vec![name.clone(), a.handle.as_ref()?.did.to_string(), address(name)])
        })
        .collect();
    if !identities.is_empty() {
        println!();
        output::table(&["allocation", "actor DID", "subnet address"], &identities);
    }
    print_summary(&record.id, record.state, &record.allocations, &record.standby);
    print_endpoints(&record.allocations);
    println!("\nlatest events:");
    for event in record.events.iter().skip(record.events.len().saturating_sub(events)) {
        println!("  {} {}", when(event.at_ms), event_line(event));
    }
}

/// Where each published port of the allocations can be reached.
fn print_endpoints(allocations: &BTreeMap<String, AllocationView>) {
    let rows: Vec<Vec<String>> = allocations
        .iter()
        .flat_map(|(name, view)| {
            view.status
                .endpoints
                .iter()
                .map(move |e| vec![name.clone(), format!("{}/{}", e.port, e.protocol), e.address()])
        })
        .collect();
    if !rows.is_empty() {
        println!();
        output::table(&["allocation", "port", "reachable at"], &rows);
    }
}

fn print_plan(ctx: &Ctx, plan: &Plan) -> anyhow::Result<()> {
    if ctx.output == Output::Json {
        return output::json(plan);
    }
    println!("{} peers answered", plan.answered.len());
    for (node, p) in &plan.nodes {
        println!("\nnode {node}:");
        let candidates = p.candidates.iter().map(|(peer, score)| {
            let verdict = match p.parts.get(peer) {
                Some(parts) => format!("candidate: {}", score_parts(parts)),
                None => "candidate".into(),
            };
            vec![peer.clone(), format!("{score:.3}"), verdict]
        });
        let rejected = p.rejected.iter().map(|(peer, reasons)| {
            vec![peer.clone(), "-".into(), format!("rejected: {}", reasons.join("; "))]
        });
        let rows: Vec<Vec<String>> = candidates.chain(rejected).collect();
        output::table(&["peer", "score", "verdict"], &rows);
    }
    match &plan.placement {
        Ok(placement) => {
            println!("\nwould place:");
            for (node, peer) in placement {
                println!("  {node} → {peer}");
            }
        }
        Err(why) => println!("\ncannot be placed now: {why}"),
    }
    Ok(())
}

/// Every kept line of every allocation (or of `allocation`), each read page by page so
/// that no answer is over a message.
async fn all_logs(
    caller: &Caller,
    id: &str,
    allocation: Option<&str>,
    wait: Duration,
) -> anyhow::Result<()> {
    // Which allocations there are: an answer with no lines.
    let names = DeploymentLogs {
        id: id.into(),
        allocation: allocation.map(String::from),
        tail: Some(0),
        from: None,
    };
    let names: Vec<String> = caller.request(&names, wait).await?.into_keys().collect();
    let several = names.len() > 1;
    for name in names {
        let prefix = if several { format!("{name} | ") } else { String::new() };
        let mut from = Some(0);
        let mut noted = false;
        while let Some(start) = from {
            let ask = DeploymentLogs {
                id: id.into(),
                allocation: Some(name.clone()),
                tail: None,
                from: Some(start),
            };
            let mut answer = caller.request(&ask, wait).await?;
            let logs = match answer.remove(&name) {
                Some(LogsEntry::Logs(logs)) => logs,
                Some(LogsEntry::Error { error }) => {
                    eprintln!("{prefix}{error}");
                    break;
                }
                None => break,
            };
            if let Some(truncated) = logs.truncated.as_deref().filter(|_| !noted) {
                eprintln!("{prefix}({truncated})");
                noted = true;
            }
            for line in &logs.lines {
                if line.stream == "stderr" {
                    eprintln!("{prefix}{}", line.text);
                } else {
                    println!("{prefix}{}", line.text);
                }
            }
            from = logs.next;
        }
    }
    Ok(())
}

/// How a score was made: each part with its weight (`fit 0.50 ×1, price 1.00 ×2`).
fn score_parts(parts: &dms_types::capability::ScoreParts) -> String {
    let w = parts.weights;
    let mut text =
        format!("fit {:.2} ×{}, price {:.2} ×{}", parts.fit, w.fit, parts.price, w.price);
    if let Some(benchmark) = parts.benchmark {
        text.push_str(&format!(", benchmark {benchmark:.2} ×{}", w.benchmark));
    }
    text
}

/// The `--state` filter of `dms deployments list`, checked.
fn state_filter(state: Option<&str>) -> anyhow::Result<Option<DeploymentState>> {
    state
        .map(|s| {
            serde_json::from_value(serde_json::Value::String(s.into())).map_err(|_| {
                anyhow!(
                    "--state {s:?} is not a deployment state; one of bidding, committing, \
                     allocating, starting, running, completed, failed, shutting_down, shut_down"
                )
            })
        })
        .transpose()
}

/// `dms deployments ...`
pub async fn deployments(ctx: &Ctx, command: DeploymentsCommand) -> anyhow::Result<()> {
    match command {
        DeploymentsCommand::List { state, target } => {
            let state = state_filter(state.as_deref())?;
            let mut list = actor::request(ctx, &target, &ListDeployments {}).await?;
            list.retain(|d| state.is_none_or(|s| d.state == s));
            if ctx.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|d| {
                    vec![
                        d.id.clone(),
                        d.state.name().into(),
                        format!("{}/{}", d.running, d.allocations),
                        d.peers.len().to_string(),
                        d.reason.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::table(&["id", "state", "running", "peers", "reason"], &rows);
            Ok(())
        }
        DeploymentsCommand::Status { id, follow: true, target } => {
            let caller = Caller::open(ctx, &target).await?;
            let status = self::follow(ctx, &caller, &id, false).await?;
            finish(ctx, &status)
        }
        DeploymentsCommand::Status { id, follow: false, target } => {
            let ask = DeploymentStatus { id, ..Default::default() };
            let caller = Caller::open(ctx, &target).await?;
            let status = paging::status(&caller, ask, actor::timeout(&target.timeout)?).await?;
            if ctx.output == Output::Json {
                return output::json(&status);
            }
            print_summary(&status.id, status.state, &status.allocations, &status.standby);
            print_endpoints(&status.allocations);
            if let Some(reason) = &status.reason {
                println!("\nreason: {reason}");
            }
            Ok(())
        }
        DeploymentsCommand::Info { id, events, target } => {
            let caller = Caller::open(ctx, &target).await?;
            let record = paging::record(&caller, &id, actor::timeout(&target.timeout)?).await?;
            if ctx.output == Output::Json {
                return output::json(&record);
            }
            print_info(&record, events);
            Ok(())
        }
        DeploymentsCommand::Manifest { id, target } => {
            let caller = Caller::open(ctx, &target).await?;
            output::json(&paging::record(&caller, &id, actor::timeout(&target.timeout)?).await?)
        }
        DeploymentsCommand::Logs { id, allocation, tail, follow, target } => {
            logs(ctx, &id, allocation.as_deref(), tail, follow, &target).await
        }
        DeploymentsCommand::Outputs { id, publish, allocation, target } => {
            if publish {
                super::outputs::publish(ctx, &id, allocation.as_deref(), &target).await?;
            }
            super::outputs::outputs(ctx, &id, &target).await
        }
        DeploymentsCommand::Usage { id, target } => super::contract::usage(ctx, &id, &target).await,
        DeploymentsCommand::Receipt { id, file, target } => {
            super::contract::import_receipt(ctx, &id, &file, &target).await
        }
        DeploymentsCommand::Shutdown { id, target } => {
            let target = with_timeout(&target, "90s");
            let (caller, timeout) =
                (Caller::open(ctx, &target).await?, actor::timeout(&target.timeout)?);
            let waiting = output::Spinner::new(
                format!("shutting {id} down: stopping its allocations"),
                ctx.output == Output::Table,
            );
            let first = caller.request(&ShutdownDeployment { id: id.clone() }, timeout).await?;
            let record = paging::rest(&caller, first, timeout).await?;
            drop(waiting);
            if ctx.output == Output::Json {
                return output::json(&record);
            }
            println!("deployment {id}: {}", record.state.name());
            Ok(())
        }
        DeploymentsCommand::Prune { target } => {
            let answer = actor::request(ctx, &with_timeout(&target, "90s"), &Prune {}).await?;
            if ctx.output == Output::Json {
                return output::json(&answer);
            }
            println!("pruned {} finished deployment(s)", answer.pruned.len());
            Ok(())
        }
    }
}

async fn logs(
    ctx: &Ctx,
    id: &str,
    allocation: Option<&str>,
    tail: Option<usize>,
    follow: bool,
    target: &ActorTarget,
) -> anyhow::Result<()> {
    let caller = Caller::open(ctx, target).await?;
    let wait = timeout(&target.timeout)?;
    let mut printed: BTreeMap<String, usize> = BTreeMap::new();
    if !follow && tail.is_none() && ctx.output == Output::Table {
        return all_logs(&caller, id, allocation, wait).await;
    }
    let ask = DeploymentLogs {
        id: id.into(),
        allocation: allocation.map(String::from),
        tail: if follow { None } else { tail },
        from: None,
    };
    loop {
        let logs = caller.request(&ask, wait).await?;
        if ctx.output == Output::Json && !follow {
            return output::json(&logs);
        }
        let mut all_exited = true;
        let several = logs.len() > 1;
        for (name, entry) in logs {
            let logs = match entry {
                LogsEntry::Logs(logs) => logs,
                LogsEntry::Error { error } => {
                    eprintln!("{name}: {error}");
                    continue;
                }
            };
            let prefix = if several { format!("{name} | ") } else { String::new() };
            if let Some(truncated) = &logs.truncated
                && !printed.contains_key(&name)
            {
                eprintln!("{prefix}({truncated})");
            }
            let seen = printed.entry(name).or_default();
            for line in logs.lines.iter().skip(*seen) {
                if line.stream == "stderr" {
                    eprintln!("{prefix}{}", line.text);
                } else {
                    println!("{prefix}{}", line.text);
                }
            }
            *seen = (*seen).max(logs.lines.len());
            all_exited &= logs.exited;
        }
        if !follow || all_exited {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
