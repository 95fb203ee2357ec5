//! Deployments across in-process nodes (memory transport, one fake engine): placement on
//! distinct providers, shutdown, and an impossible ensemble explained.

use std::sync::Arc;
use std::time::Duration;

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment, Registry};
use dms_testkit::{Net, Options, settle, submitter};
use dms_types::resources::Resources;

fn offer() -> Resources {
    Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 20 << 30, gpus: Vec::new() }
}

fn ensemble(nodes: usize, cores: f64) -> NewDeployment {
    let mut text = String::from("version: V1\nallocations:\n");
    for i in 0..nodes {
        text.push_str(&format!(
            "  s{i}:\n    type: service\n    executor: wasm\n    resources: {{cpu: {{cores: {cores}}}, ram: 16MiB}}\n    execution: {{module: https://example.invalid/s.wasm}}\n"
        ));
    }
    text.push_str("nodes:\n");
    for i in 0..nodes {
        text.push_str(&format!("  n{i}: {{allocations: [s{i}]}}\n"));
    }
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    }
}

async fn network(n: usize) -> (Net, Vec<Arc<Registry>>, Arc<fake::Executor>) {
    let net = Net::start(n, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries.push(node.serve_deployments(engine.clone(), offer()).await);
    }
    (net, registries, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_land_on_distinct_providers_and_shut_down() {
    let (net, registries, engine) = network(4).await;
    let id = registries[0].create(ensemble(3, 0.5), submitter()).await.expect("submitted");
    let status = settle(&registries[0], &id, false).await;
    let events: Vec<String> = registries[0]
        .manifest(&id)
        .expect("manifest")
        .events
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(status.state, DeploymentState::Running, "{events:#?}");
    let peers: std::collections::BTreeSet<_> =
        status.allocations.values().filter_map(|a| a.peer.clone()).collect();
    assert_eq!(peers.len(), 3, "three nodes, three machines: {status:#?}");
    assert_eq!(engine.world().allocations().len(), 3);

    let record = registries[0].shutdown(&id).await.expect("shutdown");
    assert_eq!(record.state, DeploymentState::ShutDown);
    for view in record.allocations.values() {
        assert_eq!(view.status.state, dms_orchestrator::protocol::AllocationState::Stopped);
    }
    assert!(engine.world().allocations().is_empty(), "every execution removed");
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impossible_ensemble_fails_fast_with_every_reason() {
    let (net, registries, _engine) = network(3).await;
    let id = registries[0].create(ensemble(1, 64.0), submitter()).await.expect("submitted");
    let started = std::time::Instant::now();
    let status = settle(&registries[0], &id, false).await;
    assert_eq!(status.state, DeploymentState::Failed);
    let reason = status.reason.expect("a reason");
    assert!(reason.contains("0 of 3 peers could take it"), "{reason}");
    assert!(reason.contains("insufficient_cpu"), "{reason}");
    assert!(started.elapsed() < Duration::from_secs(10), "fails early, not at the deadline");
    net.shutdown().await;
}

/// An ensemble of one machine running `tasks` quick tasks.
fn tasks(tasks: usize) -> NewDeployment {
    let mut text = String::from("version: V1\nallocations:\n");
    for i in 0..tasks {
        text.push_str(&format!(
            "  t{i}:\n    type: task\n    executor: wasm\n    resources: {{cpu: {{cores: 0.01}}, ram: 1MiB}}\n    execution: {{module: https://example.invalid/t.wasm}}\n"
        ));
    }
    let names: Vec<String> = (0..tasks).map(|i| format!("t{i}")).collect();
    text.push_str(&format!("nodes:\n  n0: {{allocations: [{}]}}\n", names.join(", ")));
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(60_000),
        credentials: None,
    }
}

/// Tasks that exit the moment they start race their own start answer to the
/// orchestrator: the exit must win however the two arrive, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_deployments_of_a_hundred_instant_tasks_all_complete() {
    let (net, registries, engine) = network(3).await;
    engine.world().script_others(fake::Script::exits(0, Duration::ZERO));
    for round in 0..10 {
        let id = registries[0].create(tasks(100), submitter()).await.expect("submitted");
        let status = tokio::time::timeout(Duration::from_secs(60), async {
            let mut after = 0;
            loop {
                let status =
                    registries[0].status(&id, after, Duration::from_secs(5)).await.expect("status");
                after = status.events.last().map_or(after, |e| e.seq);
                if status.state.is_terminal() {
                    return status;
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            let record = registries[0].manifest(&id).expect("manifest");
            let stuck: Vec<_> = record
                .allocations
                .iter()
                .filter(|(_, v)| !v.status.state.is_terminal())
                .map(|(name, v)| format!("{name}: {:?}", v.status.state))
                .collect();
            panic!("round {round}: deployment {id} never finished; not ended: {stuck:?}")
        });
        assert_eq!(status.state, DeploymentState::Completed, "round {round}: {:?}", status.reason);
        assert_eq!(status.allocations.len(), 100);
    }
    net.shutdown().await;
}

/// A reservation belongs to the orchestrator whose bid request made it: another caller
/// holding the same rights cannot commit it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_is_committed_only_by_whoever_asked_for_it() {
    use dms_orchestrator::protocol::{BidRequest, Commit, call};
    let (net, _registries, _engine) = network(3).await;
    let (asker, other, provider) = (net.node(0), net.node(1), net.node(2));
    let request = BidRequest {
        deployment: "d-test".into(),
        orchestrator: asker.handle().clone(),
        nodes: dms_orchestrator::ask::asks(&ensemble(1, 0.5).ensemble),
        exclude: Vec::new(),
        contracts: Vec::new(),
        dry_run: false,
        reservation_ms: 10_000,
        rtts: false,
    };
    let t = Duration::from_secs(5);
    let answer = call(asker.actor(), provider.handle(), &request, t).await.expect("bid");
    let reservation = answer.bids[0].reservation.clone();
    let commit = Commit { deployment: "d-test".into(), node: "n0".into(), reservation };
    let stolen = call(other.actor(), provider.handle(), &commit, t).await;
    assert!(
        matches!(&stolen, Err(dms_actor::ActorError::Unauthorized { code, .. }) if code == "not_the_reserver"),
        "{stolen:?}"
    );
    call(asker.actor(), provider.handle(), &commit, t).await.expect("the asker commits");
    net.shutdown().await;
}

/// When every provider fails to start the workload, the deployment's final reason
/// ends with that start error and on how many peers it happened, not only with "2
/// failed_before".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_nobody_can_start_ends_with_the_start_error() {
    let (net, registries, engine) = network(2).await;
    engine.world().script_others(fake::Script::fails_to_start("no such image: nginx:nope"));
    let id = registries[0].create(ensemble(1, 0.5), submitter()).await.expect("submitted");
    let status = settle(&registries[0], &id, false).await;
    assert_eq!(status.state, DeploymentState::Failed);
    let reason = status.reason.expect("a reason");
    assert!(reason.contains("2 failed_before"), "{reason}");
    let (_, last) = reason.rsplit_once("; root cause ").expect("a root cause at the end");
    assert!(last.starts_with("on 2 peers:"), "{reason}");
    assert!(last.ends_with("no such image: nginx:nope"), "{reason}");
    net.shutdown().await;
}

/// A task's output is kept by its provider within `deployment.log_cap`: read after the
/// task ended, the newest lines are there and what was dropped is stated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tasks_output_is_kept_within_the_cap_and_what_was_dropped_is_said() {
    let net = Net::start(1, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let mut config = dms_node::Config::default();
    config.deployment.log_cap = "8KiB".into();
    let registry = net.node(0).serve_deployments_with(engine.clone(), offer(), &config).await;
    let output: Vec<dms_executor::LogLine> = (0..500)
        .map(|i| dms_executor::LogLine {
            stream: dms_executor::OutputStream::Stdout,
            text: format!("line {i:03} of a chatty task"),
        })
        .collect();
    engine.world().script_others(fake::Script {
        output,
        exit: Some((0, Duration::from_millis(300))),
        ..fake::Script::default()
    });
    let id = registry.create(tasks(1), submitter()).await.expect("submitted");
    let status = settle(&registry, &id, true).await;
    assert_eq!(status.state, DeploymentState::Completed, "{:?}", status.reason);
    let logs = registry.logs(&id, None, None, None).await.expect("logs");
    let logs = logs["t0"].as_ref().expect("the allocation's logs");
    assert!(logs.exited);
    assert!(logs.lines.len() < 500, "8 KiB cannot hold 500 lines: {}", logs.lines.len());
    assert_eq!(logs.lines.last().map(|l| l.text.as_str()), Some("line 499 of a chatty task"));
    let truncated = logs.truncated.as_deref().expect("the drop is stated");
    assert!(
        truncated.contains("dropped to stay within deployment.log_cap (8.0 KiB)"),
        "{truncated}"
    );
    let tail = registry.logs(&id, None, Some(5), None).await.expect("logs");
    assert_eq!(tail["t0"].as_ref().expect("logs").lines.len(), 5);
    net.shutdown().await;
}
