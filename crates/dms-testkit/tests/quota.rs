//! Quotas across in-process nodes: a submitter at its quota of unfinished deployments
//! is refused (typed, nothing created) while others are not; a peer holding its quota
//! of reservations on a provider is refused there with `quota`; finished deployments
//! beyond `quotas.keep_finished` are pruned.

use std::sync::Arc;
use std::time::Duration;

use dms_actor::ActorError;
use dms_executor::fake;
use dms_orchestrator::{DeploymentState, Error, NewDeployment, Registry};
use dms_testkit::{Net, Options, eventually};
use dms_types::resources::Resources;

fn offer() -> Resources {
    Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 20 << 30, gpus: Vec::new() }
}

/// One service, or one task that ends at once (`kind`).
fn one(kind: &str) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  a:\n    type: {kind}\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 0.1}}, ram: 16MiB}}\n    \
         execution: {{module: https://example.invalid/a.wasm}}\nnodes:\n  n: {{allocations: [a]}}\n"
    );
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    }
}

async fn network(
    n: usize,
    config: dms_node::Config,
) -> (Net, Vec<Arc<Registry>>, Arc<fake::Executor>) {
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries.push(node.serve_deployments_with(engine.clone(), offer(), &config).await);
    }
    (net, registries, engine)
}

/// The state once the deployment runs (`until_finished`: has ended) or has failed.
async fn settle_as(registry: &Registry, id: &str, until_finished: bool) -> DeploymentState {
    dms_testkit::settle(registry, id, until_finished).await.state
}

async fn settle(registry: &Registry, id: &str) -> DeploymentState {
    settle_as(registry, id, false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitter_at_its_quota_is_refused_and_others_are_not() {
    let mut config = dms_node::Config::default();
    config.quotas.deployments_per_user = 1;
    let (net, registries, _engine) = network(2, config).await;
    let registry = &registries[0];
    let first = registry.create(one("service"), "did:key:alice".into()).await.expect("first");
    assert_eq!(settle(registry, &first).await, DeploymentState::Running);

    let before = registry.list().len();
    let refused =
        registry.create(one("service"), "did:key:alice".into()).await.expect_err("at quota");
    assert!(matches!(refused, Error::Quota { limit: 1, .. }), "{refused}");
    let typed = ActorError::from(refused);
    assert_eq!(typed.code(), "quota");
    assert!(typed.to_string().contains("did:key:alice"), "{typed}");
    assert_eq!(registry.list().len(), before, "nothing was created");

    let bobs = registry.create(one("service"), "did:key:bob".into()).await.expect("bob may");
    assert_eq!(settle(registry, &bobs).await, DeploymentState::Running);

    // Room comes back when the first deployment is shut down.
    registry.shutdown(&first).await.expect("shutdown");
    registry.create(one("service"), "did:key:alice".into()).await.expect("room again");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_at_its_reservation_quota_is_refused_by_the_provider() {
    let mut config = dms_node::Config::default();
    config.quotas.reservations_per_peer = 1;
    let (net, registries, _engine) = network(2, config).await;
    let registry = &registries[0];
    let id = registry.create(one("service"), "did:key:alice".into()).await.expect("submitted");
    assert_eq!(settle(registry, &id).await, DeploymentState::Running);
    let host = registry.manifest(&id).expect("manifest").placement["n"].provider.peer.clone();

    let plan = registry.plan(one("service")).await.expect("plan");
    let rejected = &plan.nodes["n"].rejected;
    let (peer, reasons) = rejected
        .iter()
        .find(|(peer, _)| *peer == host)
        .unwrap_or_else(|| panic!("the host refuses: {plan:#?}"));
    assert_eq!(*peer, host);
    assert!(reasons.iter().any(|r| r.contains("quota")), "{reasons:?}");
    let candidates: Vec<&String> = plan.nodes["n"].candidates.iter().map(|(p, _)| p).collect();
    assert_eq!(candidates.len(), 1, "the other peer still bids: {plan:#?}");
    assert_ne!(candidates[0], &host);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_deployments_beyond_keep_finished_are_pruned() {
    let mut config = dms_node::Config::default();
    config.quotas.keep_finished = 2;
    let (net, registries, engine) = network(2, config).await;
    engine.world().script_others(fake::Script::exits(0, Duration::ZERO));
    let registry = registries[0].clone();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let id = registry.create(one("task"), "did:key:alice".into()).await.expect("submitted");
        assert_eq!(settle_as(&registry, &id, true).await, DeploymentState::Completed);
        ids.push(id);
    }
    // One more submission wakes the policy: only the two newest finished ones stay.
    let last = registry.create(one("task"), "did:key:alice".into()).await.expect("submitted");
    settle_as(&registry, &last, true).await;
    eventually("finished deployments beyond keep_finished are pruned", || {
        let (registry, earlier) = (registry.clone(), ids.clone());
        async move {
            let listed: Vec<String> = registry.list().into_iter().map(|s| s.id).collect();
            earlier.iter().filter(|id| listed.contains(id)).count() <= 2 && listed.len() <= 3
        }
    })
    .await;
    let listed: Vec<String> = registry.list().into_iter().map(|s| s.id).collect();
    assert!(listed.contains(&last), "the newest is kept: {listed:?}");
    assert!(!listed.contains(&ids[0]), "the oldest is gone: {listed:?}");
    net.shutdown().await;
}
