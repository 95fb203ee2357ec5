//! Published ports across in-process nodes (one fake engine): a fixed public port is
//! held by the provider that bids with it, so a second deployment asking for it lands
//! elsewhere, and with every provider holding it nobody bids; the endpoints of a
//! running allocation say where each port is reachable.

use std::sync::Arc;

use dms_executor::fake;
use dms_orchestrator::{DeploymentState, NewDeployment};
use dms_testkit::{Net, Options, settle, submitter};
use dms_types::resources::Resources;

/// A Docker service with ports 8080 (published at `public`) and 9090 (at a free port).
fn web(public: u16) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  web:\n    type: service\n    executor: docker\n    \
         resources: {{cpu: {{cores: 0.1}}, ram: 16MiB}}\n    execution: {{image: \"busybox\"}}\n    \
         ports: [{{port: 8080}}, {{port: 9090}}]\nnodes:\n  n:\n    allocations: [web]\n    \
         ports: [{{public: {public}, private: 8080, allocation: web}}]\n"
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
async fn a_public_port_is_held_by_one_deployment_per_provider() {
    let net = Net::start(2, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let offer =
        Resources { cpu_millicores: 4000, ram_bytes: 8 << 30, disk_bytes: 8 << 30, gpus: vec![] };
    let mut registries = Vec::new();
    for node in &net.nodes {
        registries.push(node.serve_deployments(engine.clone(), offer.clone()).await);
    }
    let public = std::net::TcpListener::bind(("0.0.0.0", 0))
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();

    let first = registries[0].create(web(public), submitter()).await.expect("submitted");
    let status = settle(&registries[0], &first, false).await;
    assert_eq!(status.state, DeploymentState::Running, "{:?}", status.reason);
    let view = &status.allocations["web"];
    let endpoints: Vec<(u16, u16)> =
        view.status.endpoints.iter().map(|e| (e.port, e.public)).collect();
    assert_eq!(endpoints, vec![(8080, public), (9090, 40000 + 9090)], "fixed and engine-chosen");
    assert!(view.status.endpoints.iter().all(|e| e.protocol == "tcp" && !e.host.is_empty()));

    let second = registries[0].create(web(public), submitter()).await.expect("submitted");
    let status = settle(&registries[0], &second, false).await;
    assert_eq!(status.state, DeploymentState::Running, "{:?}", status.reason);
    let (one, two) = (
        registries[0].manifest(&first).expect("first").placement["n"].provider.peer.clone(),
        registries[0].manifest(&second).expect("second").placement["n"].provider.peer.clone(),
    );
    assert_ne!(one, two, "the provider holding the port did not bid for it again");

    let plan = registries[0].plan(web(public)).await.expect("plan");
    assert!(plan.placement.is_err(), "nobody may take the port a third time: {plan:#?}");
    let rejected = &plan.nodes["n"].rejected;
    assert_eq!(rejected.len(), 2, "{plan:#?}");
    assert!(
        rejected.iter().all(|(_, why)| why
            .iter()
            .any(|w| w.starts_with("port: port ") && w.contains("is held by"))),
        "{rejected:?}"
    );
    net.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gpus_reserved_for_an_allocation_reach_its_container() {
    use dms_types::resources::{Gpu, GpuVendor};
    let net = Net::start(1, Options::default()).await;
    net.trust_all();
    let engine = Arc::new(fake::Executor::new());
    let gpu = |index: u32| Gpu {
        index,
        vendor: GpuVendor::Nvidia,
        model: "NVIDIA H200".into(),
        vram_bytes: 141 << 30,
        uuid: Some(format!("GPU-{index}")),
        drm_card: None,
    };
    let offer = Resources {
        cpu_millicores: 4000,
        ram_bytes: 8 << 30,
        disk_bytes: 8 << 30,
        gpus: vec![gpu(0), gpu(1), gpu(2)],
    };
    let registry = net.node(0).serve_deployments(engine.clone(), offer).await;
    let text = "version: V1\nallocations:\n  a:\n    type: service\n    executor: docker\n    \
                resources: {cpu: {cores: 0.1}, ram: 16MiB, gpus: [{count: 2}]}\n    \
                execution: {image: busybox}\n  b:\n    type: service\n    executor: docker\n    \
                resources: {cpu: {cores: 0.1}, ram: 16MiB, gpus: [{count: 1}]}\n    \
                execution: {image: busybox}\nnodes:\n  n: {allocations: [a, b]}\n";
    let ensemble = dms_ensemble::load(text).expect("valid ensemble").ensemble;
    let request = NewDeployment {
        ensemble,
        modules: Default::default(),
        timeout_ms: Some(20_000),
        credentials: None,
    };
    let id = registry.create(request, submitter()).await.expect("submitted");
    let status = settle(&registry, &id, false).await;
    assert_eq!(status.state, DeploymentState::Running, "{:?}", status.reason);
    let devices = |name: &str| match engine.world().spec(&format!("{id}.{name}")) {
        Some(spec) => match spec.resources.gpus {
            Some(dms_executor::GpuRequest::Devices(ids)) => ids,
            other => panic!("{name}: {other:?}"),
        },
        None => panic!("{name} was not started"),
    };
    let (a, b) = (devices("a"), devices("b"));
    assert_eq!((a.len(), b.len()), (2, 1), "each gets its own count");
    assert!(
        a.iter().chain(&b).collect::<std::collections::BTreeSet<_>>().len() == 3,
        "none shared: {a:?} {b:?}"
    );
    net.shutdown().await;
}
