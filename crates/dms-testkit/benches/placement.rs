//! Placement at scale: 100 in-process nodes (memory transport, one fake engine), every
//! one a provider. Node 0 orchestrates one-allocation services:
//! - one at a time: submit → running latency (p50, p99) with 100 bidders;
//! - many at once: how many are placed per second.
//!
//! `cargo bench -p dms-testkit --bench placement` (`DMS_BENCH_NODES`, default 100).

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
    let n: usize =
        std::env::var("DMS_BENCH_NODES").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let started = Instant::now();
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
        registries.push(node.serve_deployments(engine.clone(), offer.clone()).await);
    }
    // Let gossip learn every node's subscription to the bid topic.
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("{n} nodes up and meshed in {:.1} s", started.elapsed().as_secs_f64());
    let orchestrator = registries[0].clone();

    for _ in 0..3 {
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        orchestrator.shutdown(&id).await.expect("shutdown");
    }
    let mut latencies = Vec::new();
    for _ in 0..SEQUENTIAL {
        let t = Instant::now();
        let id = orchestrator.create(request(), dms_testkit::submitter()).await.expect("submitted");
        running(&orchestrator, &id).await;
        latencies.push(t.elapsed().as_secs_f64() * 1000.0);
        orchestrator.shutdown(&id).await.expect("shutdown");
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "one at a time ({SEQUENTIAL} runs, {n} bidders): submit → running p50 {:.1} ms, p99 {:.1} ms",
        pct(&latencies, 50.0),
        pct(&latencies, 99.0)
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
    println!(
        "{CONCURRENT} at once: all running after {:.2} s = {:.1} placements/s",
        took,
        CONCURRENT as f64 / took
    );
    for id in &ids {
        orchestrator.shutdown(id).await.expect("shutdown");
    }
    net.shutdown().await;
}
