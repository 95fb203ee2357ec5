//! `dms bench deploy --dead-sink`: what an Elasticsearch sink that is down costs a
//! deployment. The same runs as `dms bench deploy`, interleaved in blocks of
//! [`BLOCK`]: with events shipped nowhere, then with every node of the network shipping
//! them to an address nobody listens on, then to a server that accepts connections and
//! never answers (switched at run time through `/dms/node/logger/sink`), so all are
//! measured under the same conditions. Each node's previous setting is restored at the
//! end.

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

/// The sinks compared: none, one that refuses connections, one that never answers.
const MODES: [&str; 3] =
    ["no sink", "Elasticsearch refusing connections", "Elasticsearch not answering"];

/// `dms bench deploy --dead-sink --runs N`.
pub async fn dead_sink(ctx: &Ctx, runs: usize, target: &ActorTarget) -> anyhow::Result<()> {
    if runs < BLOCK {
        bail!(
            "--runs must be at least {BLOCK} (runs alternate between the modes in blocks of {BLOCK})"
        );
    }
    let request = request()?;
    let nodes = network(ctx, target).await?;
    // An address nobody listens on (every shipment refused at once), and a server that
    // takes connections and never answers (every shipment waits for its timeout).
    let refused = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        format!("http://{}", listener.local_addr()?)
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hung = format!("http://{}", silent.local_addr()?);
    let urls = [String::new(), refused, hung];
    let result = measure(ctx, &nodes, &request, runs, &urls).await;
    drop(silent);
    for node in &nodes {
        let url = node.before.elasticsearch_url.clone().unwrap_or_default();
        ship(std::slice::from_ref(node), &url).await?;
    }
    let (mut times, rss) = result?;
    for t in &mut times {
        t.sort_by(f64::total_cmp);
    }
    report(ctx, nodes.len(), &times, rss)
}

/// Callers for the node this CLI talks to and every peer it is connected to.
async fn network(ctx: &Ctx, target: &ActorTarget) -> anyhow::Result<Vec<Node>> {
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
    Ok(nodes)
}

fn report(
    ctx: &Ctx,
    nodes: usize,
    times: &[Vec<f64>; 3],
    rss: (Option<f64>, Option<f64>),
) -> anyhow::Result<()> {
    let p = |i: usize, q: f64| percentile(&times[i], q);
    let ratios = [p(1, 50.0) / p(0, 50.0), p(2, 50.0) / p(0, 50.0)];
    let met = ratios.iter().all(|r| *r <= 1.1);
    let report = json!({
        "runs_per_mode": times[0].len(),
        "nodes": nodes,
        "no_sink_ms": { "p50": p(0, 50.0), "p99": p(0, 99.0) },
        "refusing_sink_ms": { "p50": p(1, 50.0), "p99": p(1, 99.0) },
        "silent_sink_ms": { "p50": p(2, 50.0), "p99": p(2, 99.0) },
        "ratio_p50": { "refusing": ratios[0], "silent": ratios[1] },
        "goal_ratio_p50": 1.1,
        "met": met,
        "local_node_rss_mib": { "before": rss.0, "after": rss.1 },
    });
    if ctx.output == Output::Json {
        return output::json(&report);
    }
    let rows: Vec<Vec<String>> = (0..3)
        .map(|i| vec![MODES[i].into(), format!("{:.1}", p(i, 50.0)), format!("{:.1}", p(i, 99.0))])
        .collect();
    println!("{} runs per mode, interleaved, on {nodes} nodes; submit → running:", times[0].len());
    output::table(&["sink", "p50 ms", "p99 ms"], &rows);
    println!(
        "sink down / no sink at p50: refusing {:.3}×, not answering {:.3}× (goal ≤ 1.10: {})",
        ratios[0],
        ratios[1],
        if met { "met" } else { "NOT met" }
    );
    if let (Some(before), Some(after)) = rss {
        println!("local node memory: {before:.1} MiB before, {after:.1} MiB after the runs");
    }
    Ok(())
}

type Measured = ([Vec<f64>; 3], (Option<f64>, Option<f64>));

async fn measure(
    ctx: &Ctx,
    nodes: &[Node],
    request: &dms_protocol::node::NewDeployment,
    runs: usize,
    urls: &[String; 3],
) -> anyhow::Result<Measured> {
    let caller = &nodes[0].caller;
    ship(nodes, "").await?;
    for _ in 0..WARMUP {
        once(caller, request).await?;
    }
    let rss_before = local_rss_mib(ctx);
    let mut times: [Vec<f64>; 3] = Default::default();
    let blocks = runs.div_ceil(BLOCK);
    let progress = output::Progress::new("block", blocks as u64, ctx.output == Output::Table);
    for _ in 0..blocks {
        for (url, into) in urls.iter().zip(times.iter_mut()) {
            ship(nodes, url).await?;
            for _ in 0..BLOCK {
                into.push(once(caller, request).await?.0);
            }
        }
        progress.step();
    }
    progress.finish();
    Ok((times, (rss_before, local_rss_mib(ctx))))
}
