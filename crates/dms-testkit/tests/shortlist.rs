//! Bounded-cost bidding: with every provider's capacity advert known, a placement asks
//! only the shortlist (not every peer), and a shortlisted provider whose advert was
//! stale refuses, so the orchestrator widens to the next one.

use std::sync::Arc;
use std::time::Instant;

use dms_executor::fake;
use dms_orchestrator::{NewDeployment, Registry};
use dms_protocol::Advert;
use dms_testkit::{Net, Options, eventually};
use dms_types::resources::Resources;

fn offer(cpu_millicores: u64) -> Resources {
    Resources { cpu_millicores, ram_bytes: 8 << 30, disk_bytes: 20 << 30, gpus: Vec::new() }
}

fn service() -> NewDeployment {
    let text = "version: V1\nallocations:\n  a:\n    type: service\n    executor: wasm\n    \
         resources: {cpu: {cores: 0.5}, ram: 16MiB}\n    \
         execution: {module: https://example.invalid/a.wasm}\nnodes:\n  n: {allocations: [a]}\n";
    let ensemble = dms_ensemble::load(text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    }
}

/// `n` nodes serving deployments with `shortlist`, node `i` offering `cpu(i)`; places
/// one deployment from node 0 and waits until node 0 knows every advert.
async fn network(n: usize, shortlist: usize, cpu: impl Fn(usize) -> u64) -> (Net, Arc<Registry>) {
    let mut config = dms_node::Config::default();
    config.deployment.shortlist = shortlist;
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut registries = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        registries.push(node.serve_deployments_with(engine.clone(), offer(cpu(i)), &config).await);
    }
    // The first bid round is a broadcast: it makes node 0 known to every provider,
    // which then send it their adverts.
    let warm = registries[0].create(service(), dms_testkit::submitter()).await.expect("submitted");
    dms_testkit::settle(&registries[0], &warm, false).await;
    registries[0].shutdown(&warm).await.expect("shut down");
    let directory = registries[0].directory();
    eventually("every provider advertised", || {
        let known = directory.len(Instant::now());
        async move { known >= n }
    })
    .await;
    (net, registries[0].clone())
}

/// The deployment's event messages once it runs.
async fn placed(registry: &Registry) -> (String, Vec<String>) {
    let id = registry.create(service(), dms_testkit::submitter()).await.expect("submitted");
    let status = dms_testkit::settle(registry, &id, false).await;
    assert_eq!(status.state, dms_orchestrator::DeploymentState::Running, "{:?}", status.reason);
    let peer = status.allocations["a"].peer.clone().expect("placed");
    let all = registry.status(&id, 0, std::time::Duration::ZERO).await.expect("status");
    (peer, all.events.into_iter().map(|e| e.message).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_placement_asks_the_shortlist_not_every_peer() {
    let (net, registry) = network(10, 3, |_| 4_000).await;
    let (_, events) = placed(&registry).await;
    assert!(
        events.iter().any(|e| e.starts_with("asked 3 of 10 advertised providers")),
        "{events:#?}"
    );
    assert!(!events.iter().any(|e| e.starts_with("bid window closed")), "broadcast: {events:#?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_advert_is_refused_and_the_orchestrator_widens() {
    // Node 3 offers a fifth of a core, but a stale advert (newer than its own) says it
    // has exactly what the service needs: the tightest fit, so the first one asked.
    let (net, registry) = network(4, 1, |i| if i == 3 { 200 } else { 2_000 }).await;
    let stale = net.node(3).peer_id().to_string();
    let mut machine = dms_types::capability::Machine {
        executors: vec!["wasm".into(), "docker".into()],
        ..Default::default()
    };
    machine.free =
        Resources { cpu_millicores: 500, ram_bytes: 16 << 20, disk_bytes: 0, gpus: Vec::new() };
    let advert = Advert { machine, at_ms: u64::MAX / 2, valid_ms: 60_000 };
    registry.directory().note(&stale, advert, Instant::now());

    let (peer, events) = placed(&registry).await;
    assert_ne!(peer, stale, "placed where it does not fit");
    assert!(
        events.iter().any(|e| e.starts_with("asked 3 of 4 advertised providers")),
        "the stale one first, then twice as many: {events:#?}"
    );
    net.shutdown().await;
}
