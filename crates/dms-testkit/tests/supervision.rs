//! Supervision across in-process nodes: a provider cut off from the network is lost
//! and its allocation runs elsewhere; when it comes back its stale copy is told to stop
//! and its resources are freed; an orchestrator that reaches nobody replaces nothing;
//! a copy whose orchestrator stays silent stops itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment, Registry};
use dms_protocol::AllocationState;
use dms_testkit::{Net, Options, eventually, submitter};
use dms_types::resources::Resources;

fn offer() -> Resources {
    Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 20 << 30, gpus: Vec::new() }
}

/// Short timings: heartbeats every 200 ms, lost after 1 s, orphans stop after
/// `stop_after`.
fn config(stop_after: Duration) -> dms_node::Config {
    let mut config = dms_node::Config::default();
    config.deployment.heartbeat_interval = Duration::from_millis(200);
    config.deployment.lost_after = Duration::from_secs(1);
    config.deployment.stop_after = stop_after;
    config
}

/// One service, never on `exclude` (the orchestrating node, so that losing the
/// provider never loses the orchestrator).
fn service(exclude: &str) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  web:\n    type: service\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 1}}, ram: 16MiB}}\n    execution: {{module: \
         https://example.invalid/s.wasm}}\nnodes:\n  n: {{allocations: [web]}}\n\
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

async fn network(n: usize, stop_after: Duration) -> (Net, Vec<Arc<Registry>>, Arc<fake::Executor>) {
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries
            .push(node.serve_deployments_with(engine.clone(), offer(), &config(stop_after)).await);
    }
    (net, registries, engine)
}

/// Where `web` runs now, once it runs.
async fn running_on(registry: &Registry, id: &str) -> String {
    let mut peer = String::new();
    eventually("web runs", || {
        let status = registry.manifest(id).expect("manifest");
        let web = &status.allocations["web"];
        let running = web.status.state == AllocationState::Running && web.handle.is_some();
        if running {
            peer = web.peer.clone().unwrap_or_default();
        }
        async move { running }
    })
    .await;
    peer
}

fn index_of(net: &Net, peer: &str) -> usize {
    net.nodes.iter().position(|n| n.peer_id().to_string() == peer).expect("a node of the net")
}

fn events(registry: &Registry, id: &str) -> Vec<String> {
    registry.manifest(id).expect("manifest").events.iter().map(|e| e.message.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_provider_is_replaced_and_its_stale_copy_stopped_when_it_returns() {
    let (net, registries, engine) = network(4, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let id = registries[0].create(service(&orchestrating), submitter()).await.expect("submitted");
    let first = running_on(&registries[0], &id).await;
    let lost = index_of(&net, &first);

    let cut = Instant::now();
    net.partition(&[lost]).await;
    let mut second = String::new();
    eventually("web runs on another provider", || {
        let record = registries[0].manifest(&id).expect("manifest");
        let web = &record.allocations["web"];
        let moved = web.status.state == AllocationState::Running
            && web.peer.as_ref().is_some_and(|p| *p != first);
        if moved {
            second = web.peer.clone().unwrap_or_default();
        }
        async move { moved }
    })
    .await;
    let took = cut.elapsed();
    assert!(took < Duration::from_secs(1 + 5), "lost_after + 5 s at most, took {took:?}");
    let record = registries[0].manifest(&id).expect("manifest");
    assert_eq!(record.state, DeploymentState::Running);
    let web = &record.allocations["web"];
    assert_eq!(web.lineage.len(), 1, "attempt 2: {:?}", web.lineage);
    assert_eq!(web.lineage[0].peer, first);
    assert!(!record.failed_peers.contains(&first), "a lost peer may host again once back");
    let said = events(&registries[0], &id);
    assert!(said.iter().any(|e| e.contains("lost: no heartbeat")), "{said:#?}");
    assert!(said.iter().any(|e| e.contains("placing n elsewhere")), "{said:#?}");

    // Back: the old copy's next heartbeat is answered "stop"; it frees its resources.
    net.heal().await;
    eventually("one copy is left in the engine", || {
        let copies = engine.world().allocations().len();
        async move { copies == 1 }
    })
    .await;
    eventually("the stale copy was told to stop", || {
        let said = events(&registries[0], &id);
        async move { said.iter().any(|e| e.contains("told it to stop (it was replaced)")) }
    })
    .await;
    assert_eq!(running_on(&registries[0], &id).await, second, "the replacement keeps running");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orchestrator_that_reaches_nobody_replaces_nothing() {
    let (net, registries, engine) = network(3, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let id = registries[0].create(service(&orchestrating), submitter()).await.expect("submitted");
    let first = running_on(&registries[0], &id).await;

    // The orchestrating node is cut off from everyone: it cannot tell who is lost.
    net.partition(&[0]).await;
    eventually("the orchestrator says it cannot tell", || {
        let said = events(&registries[0], &id);
        async move { said.iter().any(|e| e.contains("reaches no other peer")) }
    })
    .await;
    let record = registries[0].manifest(&id).expect("manifest");
    assert_eq!(record.allocations["web"].peer.as_deref(), Some(first.as_str()));
    assert!(record.allocations["web"].lineage.is_empty(), "nothing was replaced");

    // Healed before stop_after: the copy keeps running, still the only one.
    net.heal().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let record = registries[0].manifest(&id).expect("manifest");
    assert_eq!(record.allocations["web"].status.state, AllocationState::Running);
    assert_eq!(engine.world().allocations().len(), 1);
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_orchestrator_stays_silent_stops_itself_and_frees_its_resources() {
    let (net, registries, engine) = network(3, Duration::from_secs(3)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let id = registries[0].create(service(&orchestrating), submitter()).await.expect("submitted");
    running_on(&registries[0], &id).await;
    assert_eq!(engine.world().allocations().len(), 1);

    net.partition(&[0]).await;
    eventually("the orphan stopped itself (stop_after 3 s)", || {
        let copies = engine.world().allocations().len();
        async move { copies == 0 }
    })
    .await;
    net.shutdown().await;
}

/// `service`, with `extra` appended to the ensemble.
fn service_with(exclude: &str, extra: &str) -> NewDeployment {
    let mut request = service(exclude);
    let mut text = serde_json::to_value(&request.ensemble).expect("JSON");
    let extra: serde_json::Value = serde_json::from_str(extra).expect("extra JSON");
    for (key, value) in extra.as_object().expect("an object") {
        text[key] = value.clone();
    }
    request.ensemble = serde_json::from_value(text).expect("still an ensemble");
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_shuts_the_deployment_down_and_says_why() {
    let (net, registries, engine) = network(3, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let request = service_with(&orchestrating, r#"{"requirements": {"max_duration": "2s"}}"#);
    let id = registries[0].create(request, submitter()).await.expect("submitted");
    running_on(&registries[0], &id).await;
    eventually("shut down at max_duration", || {
        let state = registries[0].manifest(&id).expect("manifest").state;
        async move { state == DeploymentState::ShutDown }
    })
    .await;
    let record = registries[0].manifest(&id).expect("manifest");
    let reason = record.reason.unwrap_or_default();
    assert!(reason.contains("max_duration 2s reached"), "{reason}");
    assert!(engine.world().allocations().is_empty(), "its workload was stopped");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_teardown_shuts_down_instead_of_redeploying() {
    let (net, registries, _engine) = network(4, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    let request = service_with(&orchestrating, r#"{"escalation": "teardown"}"#);
    let id = registries[0].create(request, submitter()).await.expect("submitted");
    let first = running_on(&registries[0], &id).await;
    net.partition(&[index_of(&net, &first)]).await;
    eventually("torn down", || {
        let state = registries[0].manifest(&id).expect("manifest").state;
        async move { state == DeploymentState::ShutDown }
    })
    .await;
    let record = registries[0].manifest(&id).expect("manifest");
    assert!(record.allocations["web"].lineage.is_empty(), "nothing was placed again");
    let said = events(&registries[0], &id);
    assert!(said.iter().any(|e| e.contains("escalation is teardown")), "{said:#?}");
    // The lost provider could not confirm the stop: that is said, not glossed over.
    assert!(said.iter().any(|e| e.contains("web could not be reached")), "{said:#?}");
    assert!(!said.iter().any(|e| e.contains("every resource released")), "{said:#?}");
    net.shutdown().await;
}

/// Two services on two nodes under one `one_for_all` supervisor; `a` fails its runs.
fn pair_under(strategy: &str, escalation: &str, exclude: &str) -> NewDeployment {
    let service = |name: &str| {
        format!(
            "  {name}:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: \
             0.5}}, ram: 16MiB}}\n    execution: {{module: https://example.invalid/s.wasm}}\n    \
             restart: {{policy: on_failure, max_attempts: 1, delay: 100ms}}\n"
        )
    };
    let text = format!(
        "version: V1\nallocations:\n{}{}nodes:\n  na: {{allocations: [a]}}\n  nb: \
         {{allocations: [b]}}\nsupervisor: {{strategy: {strategy}, allocations: [a, b], \
         max_restarts: 2, window: 1m}}\nescalation: {escalation}\nexclude_peers: [{exclude}]\n",
        service("a"),
        service("b")
    );
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_for_all_restarts_the_sibling_on_another_provider_then_escalates() {
    let (net, registries, engine) = network(4, Duration::from_secs(60)).await;
    // `a` exits 1 a moment after every start; `b` runs until stopped.
    engine.world().script("a", fake::Script::exits(1, Duration::from_millis(300)));
    let orchestrating = net.node(0).peer_id().to_string();
    let id = registries[0]
        .create(pair_under("one_for_all", "teardown", &orchestrating), submitter())
        .await
        .expect("ok");
    eventually("b is restarted by its supervisor", || {
        let b = registries[0].manifest(&id).expect("manifest").allocations["b"].status.clone();
        async move { b.restarts >= 1 }
    })
    .await;
    let record = registries[0].manifest(&id).expect("manifest");
    assert_ne!(record.allocations["a"].peer, record.allocations["b"].peer, "two providers");
    // Two restarts of `a`'s runs spend the budget of 2; the third failure escalates to
    // the ensemble's teardown.
    eventually("torn down by escalation", || {
        let state = registries[0].manifest(&id).expect("manifest").state;
        async move { state == DeploymentState::ShutDown }
    })
    .await;
    let said = events(&registries[0], &id);
    let restarting = "supervisor (one_for_all): a failed and was restarted by its provider; \
                      restarting b";
    assert!(said.iter().any(|e| e == restarting), "{said:#?}");
    let replacing = "supervisor (one_for_all): a ended failed; restarting b, a (placed again)";
    assert!(said.iter().any(|e| e == replacing), "{said:#?}");
    assert!(!said.iter().any(|e| e.contains("supervisor (one_for_all): b")), "{said:#?}");
    assert!(said.iter().any(|e| e.contains("used up its 2 restarts")), "{said:#?}");
    assert!(said.iter().any(|e| e.contains("escalation is teardown")), "{said:#?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replacing_a_lost_node_never_touches_the_nodes_running_elsewhere() {
    let (net, registries, _engine) = network(4, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    // Two healthy services on two providers; the third provider and the one running
    // `b` both have room to bid when `a` must be placed again.
    let id = registries[0]
        .create(pair_under("one_for_one", "redeploy", &orchestrating), submitter())
        .await
        .expect("ok");
    eventually("both run", || {
        let record = registries[0].manifest(&id).expect("manifest");
        let running = record
            .allocations
            .values()
            .all(|v| v.status.state == AllocationState::Running && v.handle.is_some());
        async move { running }
    })
    .await;
    let record = registries[0].manifest(&id).expect("manifest");
    let (a_on, b_on) = (
        record.allocations["a"].peer.clone().unwrap_or_default(),
        record.allocations["b"].peer.clone().unwrap_or_default(),
    );
    net.partition(&[index_of(&net, &a_on)]).await;
    eventually("a runs elsewhere", || {
        let a = registries[0].manifest(&id).expect("manifest").allocations["a"].clone();
        let moved = a.status.state == AllocationState::Running
            && a.peer.as_ref().is_some_and(|p| *p != a_on);
        async move { moved }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let record = registries[0].manifest(&id).expect("manifest");
    let b = &record.allocations["b"];
    assert_eq!(b.status.state, AllocationState::Running, "{b:#?}");
    assert_eq!(b.peer.as_deref(), Some(b_on.as_str()));
    assert!(b.lineage.is_empty(), "b was never given up: {b:#?}");
    assert_ne!(record.allocations["a"].peer, b.peer, "one node per provider");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_lost_after_overrides_the_node_setting() {
    let (net, registries, _engine) = network(3, Duration::from_secs(60)).await;
    let orchestrating = net.node(0).peer_id().to_string();
    // Under a second: refused, saying why.
    let hasty = service_with(&orchestrating, r#"{"requirements": {"lost_after": "300ms"}}"#);
    let refused = registries[0].create(hasty, submitter()).await.expect_err("refused").to_string();
    assert!(refused.contains("requirements.lost_after: too short"), "{refused}");
    assert!(refused.contains("1s or more"), "{refused}");

    // 3 s instead of the node's 1 s: a cut provider is replaced no sooner.
    let patient = service_with(&orchestrating, r#"{"requirements": {"lost_after": "3s"}}"#);
    let id = registries[0].create(patient, submitter()).await.expect("submitted");
    let first = running_on(&registries[0], &id).await;
    let cut = Instant::now();
    net.partition(&[index_of(&net, &first)]).await;
    eventually("web runs on another provider", || {
        let web = registries[0].manifest(&id).expect("manifest").allocations["web"].clone();
        let moved = web.status.state == AllocationState::Running
            && web.peer.as_ref().is_some_and(|p| *p != first);
        async move { moved }
    })
    .await;
    let took = cut.elapsed();
    assert!(took >= Duration::from_secs(3), "lost before its lost_after: {took:?}");
    let said = events(&registries[0], &id);
    assert!(said.iter().any(|e| e.contains("lost: no heartbeat for")), "{said:#?}");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_lost_after_within_two_heartbeats_is_refused() {
    let net = Net::start(1, Options::default()).await;
    let mut config = config(Duration::from_secs(60));
    config.deployment.heartbeat_interval = Duration::from_secs(1);
    config.deployment.lost_after = Duration::from_secs(5);
    let engine = Arc::new(fake::Executor::new());
    let registry = net.node(0).serve_deployments_with(engine, offer(), &config).await;
    let request = service_with("nobody", r#"{"requirements": {"lost_after": "1500ms"}}"#);
    let refused = registry.create(request, submitter()).await.expect_err("refused").to_string();
    assert!(refused.contains("shorter than two heartbeats of this node (1s each"), "{refused}");
    assert!(refused.contains("set it to 2s or more"), "{refused}");
    net.shutdown().await;
}
