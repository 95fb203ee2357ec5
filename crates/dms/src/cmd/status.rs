//! `dms status [--watch]`: one screen for an operator — the node, its peers and how they
//! are reached, its resources, what runs on it, what it orchestrates, and its recent
//! failures with their reasons (warnings and errors of its event journal).

use std::io::IsTerminal;
use std::time::Duration;

use dms_protocol::node::ListDeployments;
use dms_protocol::onboarding::{GetOnboarding, OnboardingStatus};
use dms_protocol::peers::{ListPeers, Path, PeerInfo, PublicStatus};
use dms_protocol::record::Summary;
use dms_protocol::telemetry::{Event, EventQuery, ListEvents};
use dms_types::resources::{format_bytes, format_cpu};
use serde::Serialize;

use super::Ctx;
use super::actor::{Caller, timeout};
use crate::cli::{ActorTarget, Output};
use crate::output;

/// How often `--watch` redraws.
const EVERY: Duration = Duration::from_secs(2);
/// Failures shown.
const FAILURES: usize = 5;

/// Everything on the screen, as `--output json` prints it.
#[derive(Serialize)]
struct Screen {
    node: String,
    peer_id: String,
    uptime_secs: u64,
    peers: Vec<PeerInfo>,
    resources: OnboardingStatus,
    deployments: Vec<Summary>,
    failures: Vec<Event>,
}

/// `dms status [--watch]`.
pub async fn status(ctx: &Ctx, watch: bool, target: &ActorTarget) -> anyhow::Result<()> {
    // The key is unlocked once, however long the watch.
    let caller = Caller::open(ctx, target).await?;
    let wait = timeout(&target.timeout)?;
    let redraw = watch && std::io::stdout().is_terminal() && ctx.output == Output::Table;
    loop {
        let screen = gather(&caller, wait).await?;
        if redraw {
            print!("\x1b[2J\x1b[H");
        }
        match ctx.output {
            Output::Json => output::json(&screen)?,
            Output::Table => render(&screen),
        }
        if !watch {
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
        if !redraw {
            println!();
        }
    }
}

async fn gather(caller: &Caller, wait: Duration) -> anyhow::Result<Screen> {
    let node = caller.request(&PublicStatus {}, wait).await?;
    let peers = caller.request(&ListPeers {}, wait).await?;
    let resources = caller.request(&GetOnboarding {}, wait).await?;
    let deployments = caller.request(&ListDeployments {}, wait).await?;
    let recent = EventQuery { limit: 1000, ..EventQuery::default() };
    let events = caller.request(&ListEvents { query: recent }, wait).await?;
    let mut failures: Vec<Event> =
        events.into_iter().rev().filter(|e| e.level != "info").take(FAILURES).collect();
    failures.reverse();
    Ok(Screen {
        node: node.did.to_string(),
        peer_id: caller.peer().to_string(),
        uptime_secs: node.uptime_secs,
        peers,
        resources,
        deployments,
        failures,
    })
}

fn render(s: &Screen) {
    let relayed = s.peers.iter().filter(|p| p.path == Path::Relayed).count();
    let accounts = &s.resources.accounts;
    let resources = match &accounts.onboarded {
        None => "not onboarded (`dms onboard --cpu 2 --ram 4GiB --disk 20GiB`)".to_string(),
        Some(o) => format!(
            "{} CPU, {} RAM, {} disk free of {} CPU, {} RAM, {} disk onboarded",
            format_cpu(accounts.free.cpu_millicores),
            format_bytes(accounts.free.ram_bytes),
            format_bytes(accounts.free.disk_bytes),
            format_cpu(o.resources.cpu_millicores),
            format_bytes(o.resources.ram_bytes),
            format_bytes(o.resources.disk_bytes),
        ),
    };
    let active: Vec<&Summary> = s.deployments.iter().filter(|d| !d.state.is_terminal()).collect();
    output::fields(&[
        ("node", format!("{} ({})", s.node, s.peer_id)),
        ("up", humantime::format_duration(Duration::from_secs(s.uptime_secs)).to_string()),
        (
            "peers",
            format!("{} ({} direct, {relayed} relayed)", s.peers.len(), s.peers.len() - relayed),
        ),
        ("resources", resources),
        ("hosting", format!("{} allocations", accounts.allocations.len())),
        (
            "orchestrating",
            format!("{} unfinished of {} deployments", active.len(), s.deployments.len()),
        ),
    ]);
    if !active.is_empty() {
        println!();
        let rows: Vec<Vec<String>> = active
            .iter()
            .map(|d| {
                vec![
                    d.id.clone(),
                    d.state.name().into(),
                    format!("{}/{}", d.running, d.allocations),
                    d.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        output::table(&["deployment", "state", "running", "why"], &rows);
    }
    println!();
    if s.failures.is_empty() {
        println!("No recent failures.");
        return;
    }
    println!("Recent failures:");
    for e in &s.failures {
        let subject = e.allocation.as_deref().or(e.deployment.as_deref()).or(e.peer.as_deref());
        println!("  {}  {:<10}  {}  {}", e.timestamp, e.kind, subject.unwrap_or("-"), e.message);
    }
}
