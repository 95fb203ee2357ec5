//! Standbys (`nodes.<n>.redundancy`) across in-process nodes: one is reserved on a
//! provider that runs nothing else of the deployment; when the primary's provider is
//! cut off, the standby takes over without a bid round; a new standby is sought (and
//! found once the lost provider is back); a shutdown releases it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_executor::fake;
use dms_orchestrator::{NewDeployment, Registry};
use dms_protocol::AllocationState;
use dms_testkit::{Net, Options, eventually, submitter};
use dms_types::resources::Resources;

fn offer() -> Resources {
    Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 20 << 30, gpus: Vec::new() }
}

/// Heartbeats every 200 ms, lost after 1 s.
fn config() -> dms_node::Config {
    let mut config = dms_node::Config::default();
    config.deployment.heartbeat_interval = Duration::from_millis(200);
    config.deployment.lost_after = Duration::from_secs(1);
    config.deployment.stop_after = Duration::from_secs(60);
    config
}

/// One service with one standby, never on the orchestrating node `exclude`.
fn service(exclude: &str) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  web:\n    type: service\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 1}}, ram: 16MiB}}\n    execution: {{module: \
         https://example.invalid/s.wasm}}\nnodes:\n  n: {{allocations: [web], redundancy: 1}}\n\
         exclude_peers: [{exclude}]\n"
    );
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    }
}

async fn network(n: usize) -> (Net, Vec<Arc<Registry>>) {
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries.push(node.serve_deployments_with(engine.clone(), offer(), &config()).await);
    }
    (net, registries)
}

fn index_of(net: &Net, peer: &str) -> usize {
    net.nodes.iter().position(|n| n.peer_id().to_string() == peer).expect("a node of the net")
}

fn events(registry: &Registry, id: &str) -> Vec<String> {
    registry.manifest(id).expect("manifest").events.iter().map(|e| e.message.clone()).collect()
}

/// The peer keeping node `n`'s standby, once there is one.
async fn standby_peer(registry: &Registry, id: &str, not: &str) -> String {
    let mut peer = String::new();
    eventually("a standby is reserved", || {
        let record = registry.manifest(id).expect("manifest");
        let found =
            record.standby.get("n").and_then(|l| l.first()).map(|s| s.provider.peer.clone());
        let ok = found.as_deref().is_some_and(|p| p != not);
        peer = found.unwrap_or_default();
        async move { ok }
    })
    .await;
    peer
}

/// Millicores node `i` holds committed (reserved, not allocated).
fn committed(net: &Net, i: usize) -> u64 {
    net.node(i).accounts().committed.cpu_millicores
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_without_a_bid_round_and_is_replaced_in_turn() {
    let (net, registries) = network(3).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let id = registries[0].create(service(&orchestrating), submitter()).await.expect("submitted");
    let mut first = String::new();
    eventually("web runs", || {
        let web = registries[0].manifest(&id).expect("manifest").allocations["web"].clone();
        first = web.peer.clone().unwrap_or_default();
        async move { web.status.state == AllocationState::Running }
    })
    .await;
    let standby = standby_peer(&registries[0], &id, &first).await;
    assert_ne!(standby, orchestrating);
    assert_eq!(committed(&net, index_of(&net, &standby)), 1000, "one core kept for it");

    // The primary's provider is cut off: the standby takes over.
    let before = events(&registries[0], &id).len();
    let cut = Instant::now();
    net.partition(&[index_of(&net, &first)]).await;
    eventually("web runs on the standby", || {
        let web = registries[0].manifest(&id).expect("manifest").allocations["web"].clone();
        let there = web.status.state == AllocationState::Running
            && web.peer.as_deref() == Some(standby.as_str());
        async move { there }
    })
    .await;
    let took = cut.elapsed();
    assert!(took < Duration::from_secs(1 + 5), "lost_after + 5 s at most, took {took:?}");
    let said = events(&registries[0], &id);
    let since: Vec<&String> = said.iter().skip(before).collect();
    let takeover = since.iter().position(|e| e.contains("standby takes over: n on")).expect("said");
    assert!(
        !since[..takeover].iter().any(|e| e.contains("bid window closed")),
        "no bid round before the takeover: {since:#?}"
    );
    let record = registries[0].manifest(&id).expect("manifest");
    assert_eq!(record.allocations["web"].lineage.len(), 1, "attempt 2");
    assert!(record.standby.get("n").is_none_or(|l| l.iter().all(|s| s.provider.peer != standby)));

    // Nobody is free for a new standby until the lost provider is back; then it is.
    eventually("no standby yet, and it says why", || {
        let said = events(&registries[0], &id);
        async move { said.iter().any(|e| e.starts_with("no standby for n yet")) }
    })
    .await;
    net.heal().await;
    let again = standby_peer(&registries[0], &id, &standby).await;
    assert_eq!(again, first, "the provider back from the cut is the only one free");

    // A shutdown releases the standby's reservation.
    registries[0].shutdown(&id).await.expect("shut down");
    let kept_by = index_of(&net, &again);
    let released = Instant::now();
    while committed(&net, kept_by) != 0 {
        assert!(released.elapsed() < Duration::from_secs(10), "the standby was never released");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    net.shutdown().await;
}
