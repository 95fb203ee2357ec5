//! Node attributes and ranking preferences across in-process nodes: a node that
//! requires an attribute goes to the provider that advertises it (configured or
//! detected), others refuse with `attribute`; an ensemble's `requirements.prefer`
//! weights reach the bids, and the plan carries how each score was made.

use std::sync::Arc;

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment};
use dms_testkit::{Net, Options, settle, submitter};
use dms_types::resources::Resources;

fn request(attributes: &str, prefer: &str) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  a:\n    type: service\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 0.1}}, ram: 16MiB}}\n    \
         execution: {{module: https://example.invalid/a.wasm}}\n\
         nodes:\n  n:\n    allocations: [a]\n    attributes: {{{attributes}}}\n{prefer}"
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
async fn attributes_choose_the_provider_and_preferences_weigh_the_score() {
    let net = Net::start(3, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let offer =
        Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 8 << 30, gpus: vec![] };
    let mut registries = Vec::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let mut config = dms_node::Config::default();
        if i == 2 {
            config.deployment.attributes = "rack=b4, gpu.class=a100".into();
        }
        registries.push(node.serve_deployments_with(engine.clone(), offer.clone(), &config).await);
    }
    let registry = &registries[0];

    // Configured: only node 2 says rack=b4. Detected: every node says its OS.
    let os = std::env::consts::OS;
    let plan = registry.plan(request(&format!("rack: b4, os: {os}"), "")).await.expect("plan");
    let node = &plan.nodes["n"];
    let candidates: Vec<&String> = node.candidates.iter().map(|(p, _)| p).collect();
    assert_eq!(candidates, [&net.node(2).peer_id().to_string()], "{plan:#?}");
    assert_eq!(node.rejected.len(), 2);
    assert!(
        node.rejected
            .iter()
            .all(|(_, why)| why.iter().any(|w| w.contains("needs attribute rack = \"b4\""))),
        "{:?}",
        node.rejected
    );

    let id = registry.create(request("rack: b4", ""), submitter()).await.expect("submitted");
    let status = settle(registry, &id, false).await;
    assert_eq!(status.state, DeploymentState::Running, "{:?}", status.reason);
    assert_eq!(status.allocations["a"].peer, Some(net.node(2).peer_id().to_string()));

    // Preferences reach the bids; the plan says how each score was made.
    let prefer = "requirements:\n  prefer: {price: 3, fit: 1}\n";
    let plan = registry.plan(request("", prefer)).await.expect("plan");
    let node = &plan.nodes["n"];
    assert_eq!(node.candidates.len(), 3, "{plan:#?}");
    for (peer, score) in &node.candidates {
        let parts = node.parts.get(peer).expect("parts of every candidate");
        assert_eq!((parts.weights.fit, parts.weights.price), (1.0, 3.0));
        assert!((parts.total - score).abs() < 1e-9);
        assert!((parts.total - (parts.fit + 3.0 * parts.price) / 4.0).abs() < 1e-9, "{parts:?}");
    }
    net.shutdown().await;
}
