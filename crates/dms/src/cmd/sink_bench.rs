//! `dms bench deploy --dead-sink`: what an Elasticsearch sink that is down costs a
//! deployment. The same runs as `dms bench deploy`, interleaved in blocks of
//! [`BLOCK`]: with events shipped nowhere, then with every node of the network shipping
//! them to an address nobody listens on (switched at run time through
//! `/dms/node/logger/config`), so both are measured under the same conditions. Each
//! node's previous setting is restored at the end.

use std::time::Duration;

use anyhow::{Context as _, bail};
use dms_protocol::peers::ListPeers;
use dms_protocol::telemetry::{EventSink, LoggerConfig, LoggerState};
use serde_json::json;

use super::Ctx;
use super::actor::Caller;
use super::bench::{WARMUP, once, percentile, request};
use crate::cli::{ActorTarget, Output};
use crate::output;

/// Runs per mode before switching to the other.
const BLOCK: usize = 5;
const CALL: Duration = Duration::from_secs(10);

/// One node of the network, with what it shipped to before the bench.
struct Node {
    caller: Caller,
    before: LoggerState,
}

async fn ship(nodes: &[Node], url: &str) -> anyhow::Result<()> {
    for node in nodes {
        let ask = EventSink { elasticsearch_url: url.to_string() };
        node.caller
            .request(&ask, CALL)
            .await
            .with_context(|| format!("cannot point node {} at {url:?}", node.caller.peer()))?;
    }
    Ok(())
}

/// Resident memory of the local node (the one this home runs), in MiB.
fn local_rss_mib(ctx: &Ctx) -> Option<f64> {
    let pid = ctx.home.daemon()?.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// `dms bench deploy --dead-sink --runs N`.
pub async fn dead_sink(ctx: &Ctx, runs: usize, target: &ActorTarget) -> anyhow::Result<()> {
    if runs < BLOCK {
        bail!(
            "--runs must be at least {BLOCK} (runs alternate between the modes in blocks of {BLOCK})"
        );
    }
    let request = request()?;
    let first = Caller::open(ctx, target).await?;
    let peers = first.request(&ListPeers {}, CALL).await?;
    let mut callers = vec![first];
    for peer in peers {
        let to = ActorTarget { dest: Some(peer.peer_id), ..target.clone() };
        callers.push(Caller::open(ctx, &to).await?);
    }
    let mut nodes = Vec::new();
    for caller in callers {
        let before = caller.request(&LoggerConfig::default(), CALL).await?;
        nodes.push(Node { caller, before });
    }
    // An address nobody listens on: every shipment is refused.
    let dead = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        format!("http://{}", listener.local_addr()?)
    };
    let result = measure(ctx, &nodes, &request, runs, &dead).await;
    for node in &nodes {
        let url = node.before.elasticsearch_url.clone().unwrap_or_default();
        ship(std::slice::from_ref(node), &url).await?;
    }
    let (mut none, mut down, rss) = result?;
    none.sort_by(f64::total_cmp);
    down.sort_by(f64::total_cmp);
    let (n50, n99, d50, d99) = (
        percentile(&none, 50.0),
        percentile(&none, 99.0),
        percentile(&down, 50.0),
        percentile(&down, 99.0),
    );
    let ratio = d50 / n50;
    let report = json!({
        "runs_per_mode": none.len(),
        "nodes": nodes.len(),
        "no_sink_ms": { "p50": n50, "p99": n99 },
        "dead_sink_ms": { "p50": d50, "p99": d99 },
        "ratio_p50": ratio,
        "goal_ratio_p50": 1.1,
        "met": ratio <= 1.1,
        "local_node_rss_mib": { "before": rss.0, "after": rss.1 },
    });
    match ctx.output {
        Output::Json => output::json(&report),
        Output::Table => {
            let rows = vec![
                vec!["no sink".into(), format!("{n50:.1}"), format!("{n99:.1}")],
                vec!["Elasticsearch sink down".into(), format!("{d50:.1}"), format!("{d99:.1}")],
            ];
            println!(
                "{} runs per mode, interleaved, on {} nodes; submit → running:",
                none.len(),
                nodes.len()
            );
            output::table(&["sink", "p50 ms", "p99 ms"], &rows);
            println!(
                "dead sink / no sink at p50: {ratio:.3}× (goal ≤ 1.10: {})",
                if ratio <= 1.1 { "met" } else { "NOT met" }
            );
            if let (Some(before), Some(after)) = rss {
                println!(
                    "local node memory: {before:.1} MiB before, {after:.1} MiB after the runs"
                );
            }
            Ok(())
        }
    }
}

type Measured = (Vec<f64>, Vec<f64>, (Option<f64>, Option<f64>));

async fn measure(
    ctx: &Ctx,
    nodes: &[Node],
    request: &dms_protocol::node::NewDeployment,
    runs: usize,
    dead: &str,
) -> anyhow::Result<Measured> {
    let caller = &nodes[0].caller;
    ship(nodes, "").await?;
    for _ in 0..WARMUP {
        once(caller, request).await?;
    }
    let rss_before = local_rss_mib(ctx);
    let (mut none, mut down) = (Vec::new(), Vec::new());
    let blocks = runs.div_ceil(BLOCK);
    for block in 0..blocks {
        for (url, into) in [("", &mut none), (dead, &mut down)] {
            ship(nodes, url).await?;
            for _ in 0..BLOCK {
                into.push(once(caller, request).await?.0);
            }
        }
        if ctx.output == Output::Table {
            eprint!("\rblock {}/{blocks}", block + 1);
        }
    }
    eprintln!();
    Ok((none, down, (rss_before, local_rss_mib(ctx))))
}
