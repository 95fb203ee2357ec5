//! A deployment too large for one message: its record and status come in pages that
//! each fit, over the real actor path, and together hold every allocation.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use dms_executor::fake;
use dms_orchestrator::protocol::node::{
    DeploymentStatus, MANIFEST, Manifest, PAGE_BYTES, RecordPage, STATUS, Status,
};
use dms_orchestrator::{DeploymentState, NewDeployment};
use dms_testkit::{Net, Options, settle, submitter};
use dms_types::resources::Resources;

const TASKS: usize = 1000;

/// One machine's worth of quick tasks with long names (large allocation views).
fn tasks() -> NewDeployment {
    let mut text = String::from("version: V1\nallocations:\n");
    let names: Vec<String> =
        (0..TASKS).map(|i| format!("a-task-with-a-rather-long-descriptive-name-{i:04}")).collect();
    for name in &names {
        text.push_str(&format!(
            "  {name}:\n    type: task\n    executor: wasm\n    resources: {{cpu: {{cores: 0.01}}, ram: 1MiB}}\n    execution: {{module: https://example.invalid/t.wasm}}\n"
        ));
    }
    text.push_str(&format!("nodes:\n  n0: {{allocations: [{}]}}\n", names.join(", ")));
    let ensemble = dms_ensemble::load(&text).expect("valid ensemble").ensemble;
    NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(120_000),
        credentials: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_allocations_come_in_pages_that_each_fit_a_message() {
    let net = Net::start(2, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    engine.world().script_others(fake::Script::exits(0, Duration::ZERO));
    let offer = Resources {
        cpu_millicores: 64_000,
        ram_bytes: 64 << 30,
        disk_bytes: 64 << 30,
        gpus: vec![],
    };
    let registry = net.node(0).serve_deployments(engine.clone(), offer.clone()).await;
    net.node(1).serve_deployments(engine, offer).await;
    let id = registry.create(tasks(), submitter()).await.expect("submitted");
    let status = settle(&registry, &id, true).await;
    assert_eq!(status.state, DeploymentState::Completed, "{:?}", status.reason);

    let (asker, node) = (net.node(1), net.node(0).handle().clone());
    let limit = dms_actor::Config::default().max_envelope_bytes;
    let (mut names, mut from, mut pages) = (BTreeSet::new(), None::<String>, 0);
    loop {
        let ask =
            serde_json::to_value(Manifest { id: id.clone(), from: from.clone() }).expect("json");
        let bytes = asker.invoke(&node, MANIFEST, ask).await.expect("a manifest page");
        assert!(bytes.len() < limit, "page {pages} is {} bytes, over {limit}", bytes.len());
        let page: RecordPage = serde_json::from_slice(&bytes).expect("a record page");
        assert_eq!(page.record.events.is_empty(), from.is_some(), "events on the first page only");
        names.extend(page.record.allocations.into_keys());
        pages += 1;
        match page.more {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(names.len(), TASKS, "every allocation, once");
    assert!(pages > 1, "{TASKS} allocations need more than one page of {PAGE_BYTES} bytes");

    let (mut seen, mut from) = (0, None::<String>);
    loop {
        let ask = DeploymentStatus { id: id.clone(), from: from.clone(), ..Default::default() };
        let ask = serde_json::to_value(ask).expect("json");
        let bytes = asker.invoke(&node, STATUS, ask).await.expect("a status page");
        assert!(bytes.len() < limit);
        let page: Status = serde_json::from_slice(&bytes).expect("a status page");
        seen += page.allocations.len();
        match page.more {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, TASKS);
    net.shutdown().await;
}
