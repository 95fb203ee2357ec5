//! Steps for isolated devnets (`dms devnet up --isolated`): every node in its own
//! network namespace, with faults cut into the links between them (`dms devnet fault`).

use std::path::Path;
use std::time::Duration;

use cucumber::{given, then, when};
use serde_json::Value;

use super::daemon::patience;
use super::steps_deploy::{
    deployment_id, devnet_cli, devnet_up_args, dms, node, peer, repo_file, write,
};
use super::world::DmsWorld;

#[given(regex = r"^an isolated devnet of (\d+) nodes is up$")]
async fn isolated_up(world: &mut DmsWorld, nodes: usize) {
    devnet_up_args(world, nodes, &["--isolated"], &[]).await;
    for i in 0..nodes {
        let ns = node(world, i)["netns"].as_str().unwrap_or_default().to_string();
        assert!(Path::new("/run/netns").join(&ns).exists(), "node {i} has no namespace: {ns:?}");
    }
}

#[when(regex = r#"^the fault file "([^"]+)" is applied$"#)]
async fn apply(world: &mut DmsWorld, file: String) {
    let out = dms(world, &["devnet", "fault", "apply", &repo_file(&file)]).await;
    assert!(out.status.success(), "fault apply failed:\n{}", out.stderr);
}

#[when(regex = r#"^the partition is healed with "dms devnet fault heal"$"#)]
async fn heal(world: &mut DmsWorld) {
    let out = dms(world, &["devnet", "fault", "heal"]).await;
    assert!(out.status.success(), "fault heal failed:\n{}", out.stderr);
}

async fn peers_of(world: &DmsWorld, index: usize) -> Vec<String> {
    let out = devnet_cli(world, index, &["peers", "list", "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let peers: Value = serde_json::from_str(&out.stdout).expect("peers JSON");
    let ids = peers.as_array().into_iter().flatten();
    ids.filter_map(|p| p["peer_id"].as_str().map(String::from)).collect()
}

/// A cut link is noticed by pings (two in a row unanswered: up to 40 s), so this waits
/// twice the usual patience.
#[then(regex = r"^node (\d+) and node (\d+) each stop seeing the other$")]
async fn stop_seeing(world: &mut DmsWorld, a: usize, b: usize) {
    let deadline = tokio::time::Instant::now() + patience() * 2;
    for (me, other) in [(a, b), (b, a)] {
        let other_peer = peer(world, other);
        loop {
            let peers = peers_of(world, me).await;
            if !peers.contains(&other_peer) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {me} still lists node {other}: {peers:?}"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[then(regex = r"^node (\d+) still sees both$")]
async fn still_sees(world: &mut DmsWorld, index: usize) {
    let peers = peers_of(world, index).await;
    let nodes = world.devnet.as_ref().and_then(|d| d["nodes"].as_array()).map_or(0, Vec::len);
    for other in (0..nodes).filter(|i| *i != index) {
        assert!(peers.contains(&peer(world, other)), "node {index} lost node {other}: {peers:?}");
    }
}

#[when(regex = r"^node (\d+) orchestrates a WebAssembly task pinned to node (\d+)$")]
async fn pinned_task(world: &mut DmsWorld, orchestrator: usize, provider: usize) {
    let wat = std::fs::read_to_string(repo_file("examples/echo.wat")).expect("examples/echo.wat");
    let module = write(world, "echo.wat", &wat);
    let text = format!(
        "version: V1\nallocations:\n  work:\n    type: task\n    executor: wasm\n    resources: {{cpu: {{cores: 0.25}}, ram: 64MiB}}\n    execution: {{module: {module}, args: [across, the, partition]}}\nnodes:\n  only: {{allocations: [work], peer: {}}}\n",
        peer(world, provider)
    );
    let file = write(world, "pinned.yaml", &text);
    let index = orchestrator.to_string();
    let out = dms(world, &["devnet", "deploy", "--node", &index, &file, "--detach"]).await;
    assert!(out.status.success(), "deploy failed:\n{}", out.stderr);
    world.deployment = deployment_id(&out);
    assert!(world.deployment.is_some(), "no deployment id in:\n{}", out.stdout);
    world.orchestrator = orchestrator;
}

/// The deployment as its orchestrating node lists it.
async fn listed(world: &DmsWorld) -> Value {
    let id = world.deployment.clone().expect("a deployment");
    let out = devnet_cli(world, world.orchestrator, &["deployments", "list", "-o", "json"]).await;
    assert!(out.status.success(), "{}", out.stderr);
    let list: Value = serde_json::from_str(&out.stdout).expect("list JSON");
    list.as_array()
        .into_iter()
        .flatten()
        .find(|d| d["id"] == id.as_str())
        .cloned()
        .unwrap_or_default()
}

#[then(
    regex = r#"^the deployment waits, saying it is pinned to node (\d+), which does not answer$"#
)]
async fn waits_pinned(world: &mut DmsWorld, provider: usize) {
    let pinned = peer(world, provider);
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let entry = listed(world).await;
        let reason = entry["reason"].as_str().unwrap_or_default();
        if entry["state"] == "bidding"
            && reason.starts_with("pending")
            && reason.contains(&format!("pinned to peer {pinned}, which did not answer"))
        {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{entry:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[then("the deployment completes")]
async fn completes(world: &mut DmsWorld) {
    let deadline = tokio::time::Instant::now() + patience();
    loop {
        let entry = listed(world).await;
        if entry["state"] == "completed" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{entry:#}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[when("the devnet is brought down, collecting its artifacts")]
async fn down(world: &mut DmsWorld) {
    let out = dms(world, &["devnet", "down"]).await;
    assert!(out.status.success(), "devnet down failed:\n{}", out.stderr);
    assert!(out.stdout.contains("logs, configs and events in"), "{}", out.stdout);
}

#[then("its artifact folder holds every node's log, config and events")]
async fn artifacts(world: &mut DmsWorld) {
    let dir = world.home(0).join("devnet").join("artifacts");
    let nodes =
        world.devnet.as_ref().and_then(|d| d["nodes"].as_array()).cloned().unwrap_or_default();
    assert!(!nodes.is_empty());
    for n in &nodes {
        let name = n["name"].as_str().expect("node name");
        for file in ["dms.log", "config.toml", "events.jsonl"] {
            let path = dir.join(name).join(file);
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(size > 0, "{} is missing or empty", path.display());
        }
        let events = std::fs::read_to_string(dir.join(name).join("events.jsonl")).expect("events");
        for line in events.lines() {
            let event: Value = serde_json::from_str(line).expect("one JSON event per line");
            assert!(event.get("kind").is_some(), "an event without a kind: {line}");
        }
    }
}

#[then("no namespace of the devnet is left")]
async fn no_namespace(world: &mut DmsWorld) {
    let nodes =
        world.devnet.as_ref().and_then(|d| d["nodes"].as_array()).cloned().unwrap_or_default();
    for n in &nodes {
        let ns = n["netns"].as_str().expect("netns");
        assert!(!Path::new("/run/netns").join(ns).exists(), "namespace {ns} is left");
        let hub = format!("{}-hub", ns.rsplit_once('-').map_or(ns, |(head, _)| head));
        assert!(!Path::new("/run/netns").join(&hub).exists(), "namespace {hub} is left");
    }
}
