//! A revocation spread over gossip is in force in actors that were already running: the
//! next message to a running orchestrator, and from it to a running allocation actor, is
//! refused with `revoked`.

use std::sync::Arc;
use std::time::Duration;

use dms_actor::ActorError;
use dms_executor::fake;
use dms_orchestrator::protocol::{UPDATE, Update};
use dms_orchestrator::{DeploymentState, NewDeployment};
use dms_testkit::{Net, Options, PATIENCE, eventually, submitter};
use dms_types::resources::Resources;
use serde_json::json;

const DEPLOY: [&str; 2] = ["/dms/deployment", "/dms/allocation"];

fn service_pinned_to(peer: &str) -> NewDeployment {
    let text = format!(
        "version: V1\nallocations:\n  web:\n    type: service\n    executor: wasm\n    \
         resources: {{cpu: {{cores: 0.1}}, ram: 16MiB}}\n    execution: {{module: \
         https://example.invalid/w.wasm}}\nnodes:\n  n0: {{allocations: [web], peer: {peer}}}\n"
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
async fn a_gossiped_revocation_stops_running_orchestrators_and_allocations() {
    let net = Net::start(3, Options::default()).await;
    net.wait_full_mesh().await;
    // Node 2 is the authority both others trust; it grants them the deployment protocol.
    let (orchestrating, provider, authority) = (net.node(0), net.node(1), net.node(2));
    for node in [orchestrating, provider] {
        node.trust(&authority.did());
        node.provide(&authority.grant(&node.did(), &DEPLOY, &["/dms/deployment"]));
        // (Grants delegate on: orchestrators and allocations get their part.)
    }
    let engine = Arc::new(fake::Executor::new());
    let offer = Resources { cpu_millicores: 2000, ram_bytes: 1 << 30, ..Resources::default() };
    let registry = orchestrating.serve_deployments(engine.clone(), offer.clone()).await;
    provider.serve_deployments(engine.clone(), offer).await;

    let id = registry
        .create(service_pinned_to(&provider.peer_id().to_string()), submitter())
        .await
        .expect("submitted");
    eventually("the service runs", || async {
        registry.status(&id, 0, Duration::ZERO).await.expect("status").state
            == DeploymentState::Running
    })
    .await;
    let record = registry.manifest(&id).expect("manifest");
    let web = record.allocations["web"].clone();
    let orchestrator = record.orchestrator.clone().expect("the orchestrator's handle");
    assert_ne!(orchestrator.did, orchestrating.did(), "the orchestrator has a DID of its own");
    let update = serde_json::to_vec(&Update {
        deployment: id.clone(),
        allocation: "web".into(),
        status: web.status.clone(),
        heartbeat: false,
    })
    .expect("JSON");
    let provider_grant = provider.actor().context().provide[0].clone();
    // The provider's key updates the orchestrator with its grant, as its allocation
    // actors do.
    let update_with_grant = || {
        let chain = provider_grant.to_bytes();
        provider.actor().invoke_with(&orchestrator, UPDATE, update.clone(), PATIENCE, move |e| {
            e.capabilities = chain
        })
    };
    // Authorized by the grant; refused only because the provider's root actor is not
    // the allocation's host.
    assert!(
        matches!(
            update_with_grant().await,
            Err(ActorError::Unauthorized { ref code, .. }) if code == "not_the_host"
        ),
        "the grant authorizes the provider's key"
    );
    let logs = registry.logs(&id, None, None, None).await.expect("logs");
    assert!(logs["web"].is_ok(), "the orchestrator may read its allocation: {logs:?}");
    let allocation = web.handle.clone().expect("the allocation actor");
    let granted = orchestrating.actor().context().provide[0].clone();
    // The orchestrating node's key asks the allocation with the node's grant (which its
    // orchestrator's own rights are delegated from).
    let ask_with_grant = || {
        let chain = granted.to_bytes();
        orchestrating.actor().invoke_with(
            &allocation,
            dms_orchestrator::protocol::ALLOCATION_STATUS,
            Vec::new(),
            PATIENCE,
            move |envelope| envelope.capabilities = chain,
        )
    };
    assert!(
        matches!(
            ask_with_grant().await,
            Err(ActorError::Unauthorized { ref code, .. }) if code == "not_the_orchestrator"
        ),
        "the grant authorizes the node's key; only the orchestrator's own DID is obeyed"
    );
    assert_ne!(
        web.handle.as_ref().map(|h| h.did.clone()),
        Some(provider.did()),
        "the allocation has a DID of its own"
    );

    // The authority revokes both grants through its own behavior, which spreads them.
    for grant in [granted.clone(), provider_grant.clone()] {
        let cid = grant.leaf().expect("leaf").cid().to_string();
        authority.trust(&authority.did());
        authority
            .invoke(authority.handle(), "/dms/cap/revoke", json!({ "cid": cid }))
            .await
            .expect("revoked");
    }

    eventually("the running orchestrator refuses the provider's update", || async {
        matches!(
            update_with_grant().await,
            Err(ActorError::Unauthorized { ref code, .. }) if code == "revoked"
        )
    })
    .await;
    eventually("the running allocation actor refuses the revoked grant", || async {
        matches!(
            ask_with_grant().await,
            Err(ActorError::Unauthorized { ref code, .. }) if code == "revoked"
        )
    })
    .await;
    // The orchestrator itself no longer presents it, and is refused as well.
    let logs = registry.logs(&id, None, None, None).await.expect("logs");
    assert!(
        logs["web"].as_ref().is_err_and(|e| e.contains("unauthorized")),
        "the orchestrator has no right left: {logs:?}"
    );
    net.shutdown().await;
}
