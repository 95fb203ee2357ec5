//! Placement at scale: 100 in-process nodes (memory transport, one fake engine), every
//! one a provider. Node 0 orchestrates one-allocation services:
//! - one at a time: submit → running latency (p50, p99) with 100 bidders;
//! - many at once: how many are placed per second.
//!
//! `cargo bench -p dms-testkit --bench placement` (`DMS_BENCH_NODES`, default 100;
//! `DMS_BENCH_SHORTLIST`, default 3, 0 = broadcast every bid request as before;
//! `DMS_BENCH_ADVERTISE_SECS`, default 10, 0 = no capacity adverts).
//!
//! Beside the times it prints messages per placement (actor messages sent and
//! received, whole process: every node's) and the process's resident memory per node.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment, Registry};
use dms_testkit::{Net, Options};
use dms_types::resources::Resources;

const SEQUENTIAL: usize = 30;
const CONCURRENT: usize = 50;

fn request() -> NewDeployment {
    let text = "version: V1\nallocations:\n  s:\n    type: service\n    executor: wasm\n    resources: {cpu: {cores: 0.1}, ram: 16MiB}\n    execution: {module: https://example.invalid/s.wasm}\nnodes:\n  n: {allocations: [s]}\n";
    let ensemble = dms_ensemble::load(text).expect("valid").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(60_000),
        credentials: None,
    }
}

/// The process's counters of actor messages sent and received (every node's).
fn messages() -> (f64, f64) {
    let text = dms_telemetry::metrics::render();
    let total = |name: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (total("dms_messages_sent_total"), total("dms_messages_received_total"))
}

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

async fn running(registry: &Registry, id: &str) {
    let mut after = 0;
    loop {
        let status = registry.status(id, after, Duration::from_secs(10)).await.expect("status");
        after = status.events.last().map_or(after, |e| e.seq);
        match status.state {
            DeploymentState::Running => return,
            state if state.is_terminal() => {
                panic!("deployment {id} ended {state:?}: {:?}", status.reason)
            }
            _ => {}
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((p / 100.0) * (sorted.len() - 1) as f64).round() as usize]
}

#[tokio::main]
async fn main() {
    // Metrics are counted once telemetry is installed (logs: errors only).
    let telemetry = dms_telemetry::init(&dms_telemetry::Settings {
        log_level: "error".into(),
        ..Default::default()
    })
    .expect("telemetry");
    let n: usize =
        std::env::var("DMS_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let started = Instant::now();
    let shortlist: usize =
        std::env::var("DMS_BENCH_SHORTLIST").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let advertise: u64 =
        std::env::var("DMS_BENCH_ADVERTISE_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(10);
    let mut config = dms_node::Config::default();
    config.deployment.shortlist = shortlist;
    config.deployment.advertise_every = Duration::from_secs(advertise);
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let offer = Resources {
        cpu_millicores: 64_000,
        ram_bytes: 64 << 30,
        disk_bytes: 100 << 30,
        gpus: Vec::new(),
    };
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries.push(node.serve_deployments_with(engine.clone(), offer.clone(), &config).await);
    }
    // Let gossip learn every node's subscription to the bid topic, and (with a
    // shortlist) the orchestrator hear every provider's advert.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let orchestrator = registries[0].clone();
    // Warm-up; the first bid round is a broadcast (no adverts yet), after which every
    // provider sends node 0 its advert.
    for _ in 0..3 {
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        orchestrator.shutdown(&id).await.expect("shutdown");
    }
    let directory = orchestrator.directory();
    let waited = Instant::now();
    while shortlist > 0
        && advertise > 0
        && directory.len(Instant::now()) < n
        && waited.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "{n} nodes up and meshed in {:.1} s, {} adverts known, shortlist {shortlist}, {:.1} MiB resident ({:.2} MiB per node)",
        started.elapsed().as_secs_f64(),
        directory.len(Instant::now()),
        rss_mib(),
        rss_mib() / n as f64
    );

    // Background traffic (adverts, pings, gossip) over an idle while, to tell apart
    // what the placements themselves cost.
    let (idle_sent, idle_received) = messages();
    let idle = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (s, r) = messages();
    let idle_secs = idle.elapsed().as_secs_f64();
    let background = ((s - idle_sent) / idle_secs, (r - idle_received) / idle_secs);
    println!(
        "background (no placements): {:.0} messages/s sent, {:.0} received",
        background.0, background.1
    );
    let mut latencies = Vec::new();
    let (sent0, received0) = messages();
    let phase = Instant::now();
    let mut slowest = (0.0, String::new());
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        latencies.push(ms);
        orchestrator.shutdown(&id).await.expect("shutdown");
        if ms > slowest.0 {
            slowest = (ms, id);
        }
    }
    if std::env::var_os("DMS_BENCH_EXPLAIN").is_some() {
        let status = orchestrator.status(&slowest.1, 0, Duration::ZERO).await.expect("status");
        println!("the slowest ({:.1} ms), event by event:", slowest.0);
        for e in status.events {
            println!("  {} {}", e.at_ms, e.message);
        }
    }
    let (sent1, received1) = messages();
    let phase_secs = phase.elapsed().as_secs_f64();
    let net_of =
        |total: f64, rate: f64, secs: f64, count: usize| (total - rate * secs) / count as f64;
    latencies.sort_by(f64::total_cmp);
    println!(
        "one at a time ({SEQUENTIAL} runs, {n} providers): submit → running p50 {:.1} ms, p99 {:.1} ms; per placement (with its shutdown, background taken out) {:.0} messages sent, {:.0} received",
        pct(&latencies, 50.0),
        pct(&latencies, 99.0),
        net_of(sent1 - sent0, background.0, phase_secs, SEQUENTIAL),
        net_of(received1 - received0, background.1, phase_secs, SEQUENTIAL),
    );

    let t = Instant::now();
    let mut submitting = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        let orchestrator = orchestrator.clone();
        submitting.spawn(async move {
            orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted")
        });
    }
    let ids: Vec<String> = submitting.join_all().await;
    for id in &ids {
        running(&orchestrator, id).await;
    }
    let took = t.elapsed().as_secs_f64();
    let (sent2, received2) = messages();
    println!(
        "{CONCURRENT} at once: all running after {:.2} s = {:.1} placements/s; per placement (background taken out) {:.0} messages sent, {:.0} received",
        took,
        CONCURRENT as f64 / took,
        net_of(sent2 - sent1, background.0, took, CONCURRENT),
        net_of(received2 - received1, background.1, took, CONCURRENT),
    );
    for id in &ids {
        orchestrator.shutdown(id).await.expect("shutdown");
    }
    net.shutdown().await;
    telemetry.shutdown().await;
}
